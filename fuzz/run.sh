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
TARGETS="chunk_index selection_parse npy_header zarr_metadata blosc_frame store_ops"
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

# RUNS: stop fuzzing after this many new inputs (a deep run:
# `RUNS=1000000 fuzz/run.sh --all 3600`), or at SECONDS, whichever first.
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

# FUZZ_FLAGS: extra `cargo fuzz run` options (CI passes --dev).
run() {
  # shellcheck disable=SC2086
  cargo +nightly fuzz run ${FUZZ_FLAGS:-} "${build_flags[@]}" "$target" "$@"
}

mkdir -p "corpus/$target" "artifacts/$target"
replay=()
for d in seeds regressions corpus artifacts; do
  if [ -n "$(ls -A "$d/$target" 2>/dev/null)" ]; then
    replay+=("$d/$target")
  fi
done
n=$(find "${replay[@]}" -type f | wc -l)
# -runs=0: run each given input once, mutate nothing. Its own artifact
# directory, so that a replayed crash is not copied over itself.
mkdir -p "artifacts/replay-$target"
log="artifacts/replay-$target/log"
if ! run "${replay[@]}" -- -runs=0 "${limits[@]}" \
  -artifact_prefix="artifacts/replay-$target/" >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "$target: a replayed input failed (${replay[*]}); full log: fuzz/$log"
  exit 1
fi
echo "$target: replayed $n inputs (${replay[*]}): all pass"
[ "$secs" -gt 0 ] || exit 0

if [ -d "seeds/$target" ]; then
  cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
fi
run "corpus/$target" -- \
  -max_total_time="$secs" \
  "${runs[@]}" \
  "${limits[@]}" \
  -artifact_prefix="artifacts/$target/" \
  -print_final_stats=1
