#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan) and runs each
# for FUZZ_SECONDS (default 30) on a copy of its seed corpus in fuzz/corpus/.
# Fails on any crash, sanitizer report, leak, timeout (10 s per input) or
# memory blow-up (2 GiB); the input that did it is kept in
# $FUZZ_BUILD/artifacts/. See docs/security.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
build=${FUZZ_BUILD:-build-fuzz}

cmake -S . -B "$build" -DPRIMARY_FUZZ=ON -DPRIMARY_BUILD_TESTS=OFF \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$build" --target primary-fuzzers -j "${FUZZ_JOBS:-2}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/artifacts"
status=0
for src in fuzz/fuzz_*.cpp; do
  target=$(basename "$src" .cpp)
  cp -r "fuzz/corpus/$target" "$work/$target"
  log="$work/$target.log"
  if "$build/fuzz/$target" "$work/$target" -max_total_time="$seconds" -max_len=65536 \
       -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$build/artifacts/$target-" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz: $target ok, $runs runs in ${seconds}s"
  else
    status=1
    echo "fuzz: $target FAILED; last lines of its log:"
    tail -n 60 "$log"
  fi
done
exit $status
