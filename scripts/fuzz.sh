#!/usr/bin/env bash
# fuzz.sh [SECONDS] — build the fuzzers with clang (libFuzzer + ASan +
# UBSan) and run them: gguf_fuzzer (GGUF reader, seed corpus written by
# gguf_make_corpus) and registry_fuzzer (engine_models.json, seeds in
# fuzz/corpus/registry/) for SECONDS each (default 60); srvhelp_fuzzer
# (llama-server --help text, seeds in fuzz/corpus/srvhelp/) and http_fuzzer
# (request framing, routes and access policy, seeds in fuzz/corpus/http/)
# and loadlog_fuzzer (llama-server's log: load report, a request's image
# lines; seeds in fuzz/corpus/loadlog/) for half of it each (srvhelp's
# inputs are whole help texts, a few hundred runs a second; http's and the
# log lines' are simple and reach their depth in seconds).
#
# Works from any folder. Corpora grow in build-fuzz/corpus (gguf),
# build-fuzz/corpus-registry, corpus-srvhelp, corpus-http and
# corpus-loadlog across runs;
# crash/leak reproducers land in build-fuzz/artifacts/ (registry ones
# prefixed "registry-", srvhelp ones "srvhelp-", http ones "http-", loadlog
# ones "loadlog-") and the full logs in build-fuzz/fuzz.log,
# fuzz-registry.log, fuzz-srvhelp.log, fuzz-http.log and fuzz-loadlog.log.
# Exits
# non-zero on any crash, leak or timeout. VARIET_FUZZ_BUILD names another
# build folder (default build-fuzz).
set -euo pipefail

secs=${1:-60}
if ! [[ $secs =~ ^[0-9]+$ ]] || (( secs < 1 )); then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${VARIET_FUZZ_BUILD:-build-fuzz}

cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DVARIET_FUZZ=ON >/dev/null
cmake --build "$build" --target gguf_fuzzer gguf_make_corpus registry_fuzzer srvhelp_fuzzer http_fuzzer loadlog_fuzzer \
  -j "$(nproc)" >/dev/null

mkdir -p "$build/corpus" "$build/corpus-registry" "$build/corpus-srvhelp" "$build/corpus-http" "$build/corpus-loadlog" \
  "$build/artifacts"
"$build/fuzz/gguf_make_corpus" "$build/corpus"

# A fixed seed by default (VARIET_FUZZ_SEED=1), so a CI run is reproducible;
# VARIET_FUZZ_SEED=0 lets libFuzzer pick one (long runs by hand).
seed=${VARIET_FUZZ_SEED:-1}

# run NAME LOG ARTIFACT_PREFIX FUZZER_ARGS... — one fuzzer; report and
# remember a failure, so the second still runs after the first fails.
failed=0
run() {
  local name=$1 log=$2 prefix=$3 t=$4
  shift 4
  local rc=0
  "$build/fuzz/$name" -max_total_time="$t" -timeout=10 -artifact_prefix="$prefix" \
    -seed="$seed" -print_final_stats=1 "$@" >"$log" 2>&1 || rc=$?
  if (( rc != 0 )); then
    tail -n 60 "$log" >&2
    echo "fuzz: $name FAILED (exit $rc); reproducer in $build/artifacts/, log in $log" >&2
    failed=1
    return
  fi
  local runs
  runs=$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$log" | tail -n1)
  echo "fuzz: $name ${runs:-?} runs, no crash"
}

run gguf_fuzzer "$build/fuzz.log" "$build/artifacts/" "$secs" \
  -dict=fuzz/gguf.dict -max_len=65536 "$build/corpus"
# new inputs go to the first folder; the checked-in seeds stay as they are
run registry_fuzzer "$build/fuzz-registry.log" "$build/artifacts/registry-" "$secs" \
  -dict=fuzz/registry.dict -max_len=16384 "$build/corpus-registry" fuzz/corpus/registry
run srvhelp_fuzzer "$build/fuzz-srvhelp.log" "$build/artifacts/srvhelp-" "$(( (secs + 1) / 2 ))" \
  -dict=fuzz/srvhelp.dict -max_len=16384 "$build/corpus-srvhelp" fuzz/corpus/srvhelp
run http_fuzzer "$build/fuzz-http.log" "$build/artifacts/http-" "$(( (secs + 1) / 2 ))" \
  -dict=fuzz/http.dict -max_len=8192 "$build/corpus-http" fuzz/corpus/http
run loadlog_fuzzer "$build/fuzz-loadlog.log" "$build/artifacts/loadlog-" "$(( (secs + 1) / 2 ))" \
  -dict=fuzz/loadlog.dict -max_len=8192 "$build/corpus-loadlog" fuzz/corpus/loadlog

exit "$failed"
