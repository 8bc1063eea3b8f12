#!/usr/bin/env bash
# demo.sh — set everything up, build, write two synthetic models and serve
# them as roles "fast" and "balanced" on http://127.0.0.1:${PORT:-8000};
# shows a request to each, then keeps serving until Ctrl-C.
#   DEMO_EXIT=1 scripts/demo.sh   stop after the demo requests
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
scripts/build.sh build
llama=$(scripts/get-llama-server.sh)
port=${PORT:-8000}
mkdir -p demo
[ -f demo/fast.gguf ] || build/variet synth tiny-llama -o demo/fast.gguf
[ -f demo/balanced.gguf ] || build/variet synth tiny-qwen35moe -o demo/balanced.gguf
cat > demo/engine_models.json <<JSON
{
  "_engine": {"host": "127.0.0.1", "port": $port, "llama_server": "$llama", "max_loaded": 1, "idle_ttl": 300},
  "fast": {"display_name": "Fast (tiny llama)", "model_path": "fast.gguf", "measured_tps": 0,
           "args": ["-c", "4096", "-np", "2", "-t", "2"], "aliases": ["small"]},
  "balanced": {"display_name": "Balanced (tiny qwen3.5 MoE hybrid)", "model_path": "balanced.gguf", "measured_tps": 0,
               "args": ["-c", "8192", "-np", "2", "-t", "2"]}
}
JSON
build/variet inspect demo/balanced.gguf
build/variet serve --config demo/engine_models.json &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
for role in fast balanced; do
    echo
    echo "\$ curl http://127.0.0.1:$port/v1/chat/completions -H 'Content-Type: application/json' -d '{\"model\": \"$role\", ...}'"
    curl -s "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
        -d "{\"model\": \"$role\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello!\"}], \"max_tokens\": 16}"
    echo
done
echo
curl -s "http://127.0.0.1:$port/v1/models"
echo
if [ "${DEMO_EXIT:-0}" = 1 ]; then exit 0; fi
echo "serving on http://127.0.0.1:$port (roles fast, balanced) — Ctrl-C to stop"
wait $pid
