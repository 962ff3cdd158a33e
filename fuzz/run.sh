#!/usr/bin/env bash
# Runs one fuzz target for a number of seconds: fuzz/run.sh TARGET SECONDS
#
# The working corpus (corpus/TARGET, untracked) starts from the committed
# seeds (seeds/TARGET) and keeps whatever libFuzzer found on earlier runs.
# A crash leaves its input in artifacts/TARGET/ and fails the script; turn
# it into a regression test in the main crate (see fuzz/README.md).
#
# Memory limits: any single allocation over 512 MiB, or a resident set over
# 2 GiB, is reported as a crash: a corrupt header must never make chunkyard
# allocate what it claims.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET SECONDS}
secs=${2:-30}
mkdir -p "corpus/$target" "artifacts/$target"
if [ -d "seeds/$target" ]; then
  cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
fi
# FUZZ_FLAGS: extra `cargo fuzz run` options (CI passes --dev).
# shellcheck disable=SC2086
exec cargo +nightly fuzz run ${FUZZ_FLAGS:-} "$target" "corpus/$target" -- \
  -max_total_time="$secs" \
  -malloc_limit_mb=512 -rss_limit_mb=2048 \
  -timeout=20 \
  -artifact_prefix="artifacts/$target/" \
  -print_final_stats=1
