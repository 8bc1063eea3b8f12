#!/usr/bin/env bash
# fuzz.sh [SECONDS] — build the GGUF fuzzer with clang (libFuzzer + ASan +
# UBSan), write the seed corpus and fuzz for SECONDS (default 60).
#
# Works from any folder. The corpus grows in build-fuzz/corpus across runs;
# crash/leak reproducers land in build-fuzz/artifacts/ and the full log in
# build-fuzz/fuzz.log. Exits non-zero on any crash, leak or timeout.
set -euo pipefail

secs=${1:-60}
if ! [[ $secs =~ ^[0-9]+$ ]] || (( secs < 1 )); then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=build-fuzz

cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DVARIET_FUZZ=ON >/dev/null
cmake --build "$build" --target gguf_fuzzer gguf_make_corpus -j "$(nproc)" >/dev/null

fuzzer=$build/fuzz/gguf_fuzzer
maker=$build/fuzz/gguf_make_corpus

mkdir -p "$build/corpus" "$build/artifacts"
"$maker" "$build/corpus"

log=$build/fuzz.log
rc=0
"$fuzzer" -max_total_time="$secs" -dict=fuzz/gguf.dict -max_len=65536 -timeout=10 \
  -artifact_prefix="$build/artifacts/" -print_final_stats=1 "$build/corpus" >"$log" 2>&1 || rc=$?

if (( rc != 0 )); then
  tail -n 60 "$log" >&2
  echo "fuzz: gguf_fuzzer FAILED (exit $rc); reproducer in $build/artifacts/, log in $log" >&2
  exit 1
fi
runs=$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$log" | tail -n1)
echo "fuzz: gguf_fuzzer ${runs:-?} runs, no crash"
