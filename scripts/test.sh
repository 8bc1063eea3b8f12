#!/usr/bin/env bash
# test.sh — set everything up on a fresh Debian 12 machine and run every
# test: unit + end-to-end under AddressSanitizer/UBSan, a short libFuzzer run
# on each parser, then the whole suite on the release build (its ctest
# summary is the last line).
#   FUZZ_SECONDS=60 (default) sets the fuzzing time per target.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

scripts/setup.sh
VARIET_LLAMA_SERVER=$(scripts/get-llama-server.sh)
export VARIET_LLAMA_SERVER

echo "== build (ASan + UBSan)"
scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DVARIET_SANITIZE=address,undefined
echo "== tests under ASan + UBSan"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j2)

echo "== fuzz"
scripts/fuzz.sh "${FUZZ_SECONDS:-60}"

echo "== build (release)"
scripts/build.sh build
echo "== tests"
cd build && ctest --output-on-failure
