#!/usr/bin/env bash
# Fuzzes chunkyard: fuzz/run.sh TARGET SECONDS, or fuzz/run.sh --all SECONDS
# for every target in turn.
#
# Each target first replays, once each, every input it has ever had:
# the committed seeds (seeds/TARGET), the committed past crash inputs
# (regressions/TARGET), and, when present on this machine, the working
# corpus (corpus/TARGET) and the crash inputs of earlier runs
# (artifacts/TARGET). Any failure there fails the script before fuzzing
# starts, so a regression cannot hide behind a short time budget. Then it
# fuzzes new inputs for SECONDS (0: replay only).
#
# The working corpus (corpus/TARGET, untracked) starts from the seeds and
# keeps whatever libFuzzer found on earlier runs. A crash leaves its input
# in artifacts/TARGET/ and fails the script; copy it to regressions/TARGET/
# and turn it into a test in the main crate (see fuzz/README.md).
#
# Memory limits: any single allocation over 512 MiB, or a resident set over
# 2 GiB, is reported as a crash: a corrupt header must never make chunkyard
# allocate what it claims.
set -euo pipefail
cd "$(dirname "$0")"
# store_ops last: built without comparison tracing, it rebuilds every crate.
TARGETS="chunk_index selection_parse npy_header zarr_metadata blosc_frame s3_responses hdf5_chunks store_ops"
usage="usage: fuzz/run.sh TARGET SECONDS | fuzz/run.sh --all SECONDS"
if [ "${1:-}" = "--all" ]; then
  secs=${2:?$usage}
  for t in $TARGETS; do
    echo "== $t"
    ./run.sh "$t" "$secs"
  done
  exit 0
fi
target=${1:?$usage}
secs=${2:-30}
limits=(-malloc_limit_mb=512 -rss_limit_mb=2048 -timeout=20)

# RUNS: stop fuzzing after this many inputs run, counting the corpus
# libFuzzer loads first (a deep run: `RUNS=1000000 fuzz/run.sh --all
# 3600`), or at SECONDS, whichever first.
# Not part of `limits`: the replay below must stay `-runs=0`.
runs=()
if [ -n "${RUNS:-}" ]; then
  runs=(-runs="$RUNS")
fi

# store_ops's input is an operation list decoded by `arbitrary`, with no
# magic value for comparison tracing to solve, and tracing each comparison
# of its dense-model oracle took more than half its time
# (docs/reliability.md, "Fuzzing and bad input"). The parsers keep it: it finds their
# magic strings and JSON keys.
build_flags=()
if [ "$target" = store_ops ]; then
  build_flags+=(--no-trace-compares)
fi

# The optional backends' targets need chunkyard's feature: zarr_metadata
# and blosc_frame `zarr`, s3_responses `s3`, hdf5_chunks `hdf5`
# (libhdf5-dev). The parsers' targets are built with the same features
# (FUZZ_FEATURES; by default `s3`, which brings `zarr`, and `hdf5` where
# libhdf5 is installed), so that one `cargo fuzz build` (CI's) serves them
# all and running one does not rebuild chunkyard for another feature set.
# store_ops, rebuilt anyway (above), takes none: without zarrs (whose
# codecs register themselves at start-up, so they are linked whether
# called or not) and the regex crates it brings, its binary has a fraction
# of the coverage counters that libFuzzer scans after every input
# (docs/reliability.md).
if [ "$target" = store_ops ]; then
  FUZZ_FEATURES=""
elif [ -z "${FUZZ_FEATURES:-}" ]; then
  FUZZ_FEATURES=s3
  if pkg-config --exists hdf5 2>/dev/null || [ -e /usr/include/hdf5/serial/hdf5.h ]; then
    FUZZ_FEATURES=s3,hdf5
  fi
fi
if [ "$target" = hdf5_chunks ] && [[ ",$FUZZ_FEATURES," != *,hdf5,* ]]; then
  echo "hdf5_chunks needs libhdf5 (apt-get install libhdf5-dev) and FUZZ_FEATURES with hdf5"
  exit 1
fi
if [ -n "$FUZZ_FEATURES" ]; then
  build_flags+=(--features "$FUZZ_FEATURES")
fi

# s3_responses: libFuzzer's entropic schedule (its per-input bookkeeping
# of rare features) took 60% of the time of this target, whose inputs
# reach many counters in the async client stack; without it the target
# runs 3 times as many inputs (docs/reliability.md).
extra=()
if [ "$target" = s3_responses ]; then
  extra+=(-entropic=0)
fi

# store_ops fuzzes without a sanitizer, and every input it keeps is run
# under AddressSanitizer and LeakSanitizer too: the replay below runs the
# corpus with them before fuzzing, and again after it. Its faults are its
# oracle's (the budget, durability, fail-closed), which need no
# sanitizer; chunkyard has no unsafe code on its path (cache, array,
# memory store); and ASan (its allocator, allocation stacks and fake
# stacks) made a pinned replay of fuzz-grown inputs 5.5-5.9x as long as
# the same build without it (docs/benchmarks.md, "Fuzz target store_ops
# without a sanitizer"). The unsanitized build
# has its own target directory, so that the two builds do not replace
# each other. The other targets parse bytes, where ASan and the malloc
# limit (which needs a sanitizer's hooks) are the point: they keep it.
fuzz_build=()
if [ "$target" = store_ops ]; then
  fuzz_build=(-s none --target-dir target/unsanitized)
fi

# LeakSanitizer: lsan.supp says what is not chunkyard's.
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/lsan.supp:print_suppressions=0}"

# FUZZ_FLAGS: extra `cargo fuzz run` options (CI passes --dev).
run() {
  # shellcheck disable=SC2086
  cargo +nightly fuzz run ${FUZZ_FLAGS:-} "${build_flags[@]}" "$target" "$@"
}
# The fuzzing run's build (for store_ops, unsanitized).
run_fuzz() {
  # shellcheck disable=SC2086
  cargo +nightly fuzz run ${FUZZ_FLAGS:-} "${build_flags[@]}" "${fuzz_build[@]}" "$target" "$@"
}

mkdir -p "corpus/$target" "artifacts/$target"
replay=()
for d in seeds regressions corpus artifacts; do
  if [ -n "$(ls -A "$d/$target" 2>/dev/null)" ]; then
    replay+=("$d/$target")
  fi
done
# -runs=0: run each given input once, mutate nothing, with the default
# (sanitized) build. Its own artifact directory, so that a replayed crash
# is not copied over itself. Fails the script if an input fails.
mkdir -p "artifacts/replay-$target"
log="artifacts/replay-$target/log"
replay_all() {
  local n
  n=$(find "$@" -type f | wc -l)
  if ! run "$@" -- -runs=0 "${limits[@]}" \
    -artifact_prefix="artifacts/replay-$target/" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "$target: a replayed input failed ($*); full log: fuzz/$log"
    exit 1
  fi
  echo "$target: replayed $n inputs ($*): all pass"
}
replay_all "${replay[@]}"
[ "$secs" -gt 0 ] || exit 0

if [ -d "seeds/$target" ]; then
  cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
fi
run_fuzz "corpus/$target" -- \
  -max_total_time="$secs" \
  "${runs[@]}" \
  "${limits[@]}" \
  "${extra[@]}" \
  -artifact_prefix="artifacts/$target/" \
  -print_final_stats=1
if [ "${#fuzz_build[@]}" -gt 0 ]; then
  # What the unsanitized run kept, under the sanitizers.
  replay_all "corpus/$target"
fi
