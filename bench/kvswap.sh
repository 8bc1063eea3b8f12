#!/usr/bin/env bash
# bench/kvswap.sh — time to first token of the next turn of a long conversation after a swap,
# with the context restored from the saved slot and without (kv_store_max 0: prefilled again).
#
# Two roles on the tiny models, max_loaded 1: a conversation of about N prompt tokens on role a,
# one request to role b (a is stopped; with restore its slot is saved first), then a's next turn,
# streamed: TTFT is the wall clock from sending it to its first content chunk (a's reload
# included in both columns). Prints a table and the ratio without/with.
#
#   bench/kvswap.sh                    # 8K tokens, 3 runs each
#   SIZES="8192 30720" RUNS=1 bench/kvswap.sh
#   MODEL_A=/path/qwen35-35b-a3b.gguf ARGS_A='"-ngl","999","-fa","on","--no-jinja"' bench/kvswap.sh   # GPU
# Env: VARIET (default build/variet), VARIET_LLAMA_SERVER (else scripts/get-llama-server.sh),
#      THREADS (llama-server -t, default 2), PORT (default 18600), MODEL_A (role a's model instead
#      of tiny-llama), ARGS_A (extra args for role a, as JSON strings).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
variet=${VARIET:-$root/build/variet}
llama=${VARIET_LLAMA_SERVER:-$("$root/scripts/get-llama-server.sh")}
sizes=${SIZES:-8192}
runs=${RUNS:-3}
threads=${THREADS:-2}
port=${PORT:-18600}
work=$(mktemp -d /tmp/variet-kvswap.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/models"
if [ -n "${MODEL_A:-}" ]; then ln -s "$(realpath "$MODEL_A")" "$work/models/a.gguf"
else "$variet" synth tiny-llama -o "$work/models/a.gguf" >/dev/null; fi
args_a=${ARGS_A:+,$ARGS_A}
cap=32768; [ -z "${MODEL_A:-}" ] || cap=1048576
# role b: tiny-qwen3moe, or tiny-llama beside a MODEL_A (newer llama-server builds answer 500 "output
# does not match the expected peg-native format" when tiny-qwen3moe's random text breaks its parser)
bp=tiny-qwen3moe; [ -z "${MODEL_A:-}" ] || bp=tiny-llama
"$variet" synth $bp -o "$work/models/b.gguf" >/dev/null

# one measurement: mode (restore|prefill), tokens → "ttft_s first_prompt_n next_prompt_n cache_n"
measure() {
    # the tiny models are trained for 32768 tokens: llama-server caps -c there
    local mode=$1 n=$2 ctx=$(( $2 + 2048 > cap ? cap : $2 + 2048 )) kvmax='"8G"'
    [ "$mode" = prefill ] && kvmax=0
    rm -rf "$work/logs"
    cat >"$work/engine_models.json" <<EOF
{"_engine": {"max_loaded": 1, "stop_grace": 3, "kv_store_max": $kvmax, "llama_server": "$llama",
             "upstream_timeout": 1800, "queue_timeout": 1800},
 "a": {"model_path": "models/a.gguf", "args": ["-c", "$ctx", "-np", "1", "-t", "$threads", "-b", "2048", "-ub", "512"$args_a]},
 "b": {"model_path": "models/b.gguf", "args": ["-c", "2048", "-np", "1", "-t", "$threads"]}}
EOF
    "$variet" serve --config "$work/engine_models.json" --port "$port" >"$work/serve.log" 2>&1 &
    pid=$!
    python3 - "$port" "$n" <<'EOF'
import json, sys, time, urllib.request
port, n = int(sys.argv[1]), int(sys.argv[2])
base = "http://127.0.0.1:%d" % port
for _ in range(200):
    try:
        urllib.request.urlopen(base + "/health", timeout=1); break
    except Exception:
        time.sleep(0.05)
def post(body, stream=False):
    req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.time()
    r = urllib.request.urlopen(req, timeout=1800)
    if not stream:
        return json.load(r), time.time() - t0
    ttft, timings = None, None
    for line in r:
        line = line.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        ev = json.loads(line[6:])
        for c in ev.get("choices", []):
            if ttft is None and (c.get("delta") or {}).get("content"):
                ttft = time.time() - t0
        if "timings" in ev:
            timings = ev["timings"]
    return timings, ttft
# a user turn of about n tokens, sized with the role's own /tokenize
def words(k):
    return " ".join("word%d" % i for i in range(k))
def ntok(k):
    req = urllib.request.Request(base + "/tokenize", data=json.dumps({"model": "a", "content": words(k)}).encode(),
                                 headers={"Content-Type": "application/json"})
    return len(json.load(urllib.request.urlopen(req, timeout=600))["tokens"])
k = int(n / 7)
for _ in range(3):
    k = max(1, int(k * n / ntok(k)))
msgs = [{"role": "user", "content": "Summarise: " + words(k)}]
a1, _ = post({"model": "a", "messages": msgs, "max_tokens": 8, "temperature": 0})
msgs += [{"role": "assistant", "content": a1["choices"][0]["message"]["content"]},
         {"role": "user", "content": "And what comes next?"}]
post({"model": "b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
t, ttft = post({"model": "a", "messages": msgs, "max_tokens": 8, "temperature": 0, "stream": True}, True)
print("%.3f %d %d %d" % (ttft if ttft is not None else -1, a1["timings"]["prompt_n"], t["prompt_n"], t["cache_n"]))
EOF
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

median() { tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

printf '%-8s %-8s %10s %10s %10s   %s\n' tokens mode "TTFT s" prompt_n cache_n "runs (TTFT s)"
for n in $sizes; do
    declare -A med=()
    for mode in prefill restore; do
        all="" last=""
        for _ in $(seq "$runs"); do
            last=$(measure "$mode" "$n")
            all="$all ${last%% *}"
        done
        read -r _ first pn cn <<<"$last"
        med[$mode]=$(echo $all | median)
        printf '%-8s %-8s %10s %10s %10s   %s\n' "$first" "$mode" "${med[$mode]}" "$pn" "$cn" "${all# }"
    done
    awk -v a="${med[prefill]}" -v b="${med[restore]}" -v n="$n" \
        'BEGIN {printf "ratio    %-8s %10.1fx  (TTFT without restore / with, ~%d tokens)\n", "", a / b, n}'
done
