#!/usr/bin/env bash
# openai-test.sh — the official `openai` npm SDK, unchanged, against `variet
# serve`: installs the pinned SDK (tests/openai/package.json: openai 4.x,
# which supports Debian 12's Node.js 18) into tests/openai/node_modules when
# missing or another version is there,
# synthesizes a tiny model, writes a config with an API key, starts variet
# on a free port, runs tests/openai/openai_test.mjs and stops variet again
# (whatever happens). Exits with the node test's status (1 when setup fails).
# Idempotent; runs from any folder.
#   VARIET_BINARY=path/to/variet   (default: build/variet)
#   VARIET_LLAMA_SERVER=path       (default: scripts/get-llama-server.sh)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pkg="$root/tests/openai"
variet=${VARIET_BINARY:-$root/build/variet}

die() { echo "openai-test: $*" >&2; exit 1; }
[ -x "$variet" ] || die "no variet binary at $variet (set VARIET_BINARY or run scripts/build.sh)"
command -v node >/dev/null || die "node is not installed (Node.js 18 or later; scripts/setup.sh installs Debian's nodejs)"
command -v npm >/dev/null || die "npm is not installed"
command -v curl >/dev/null || die "curl is not installed"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] || die "Node.js $(node --version) is too old: the pinned openai SDK (tests/openai/package.json) needs 18 or later"
llama=${VARIET_LLAMA_SERVER:-}
[ -n "$llama" ] || llama=$("$root/scripts/get-llama-server.sh")
[ -x "$llama" ] || die "no runnable llama-server ($llama)"

# the pinned version (package.json), reinstalled when another one is there
want=$(node -p 'require(process.argv[1]).dependencies.openai' "$pkg/package.json")
have=$(node -p 'require(process.argv[1]).version' "$pkg/node_modules/openai/package.json" 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  rm -rf "$pkg/node_modules"
  echo "openai-test: installing openai@$want into $pkg/node_modules" >&2
  npm install --no-audit --no-fund --no-package-lock --loglevel=error --prefix "$pkg" >&2 ||
    die "npm install failed"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/variet-openai-XXXXXX")
pid=
cleanup() {
  local rc=$?
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -f "$work/variet.log" ]; then
    echo "openai-test: variet log (last 30 lines):" >&2
    tail -n 30 "$work/variet.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$variet" synth tiny-llama -o "$work/tiny-llama.gguf" >/dev/null
key="variet-sdk-$$-$RANDOM$RANDOM"
cat > "$work/engine_models.json" <<JSON
{
  "_engine": {"host": "127.0.0.1", "llama_server": "$llama", "api_key": "$key", "stop_grace": 3},
  "fast": {"display_name": "Fast (tiny llama)", "model_path": "tiny-llama.gguf",
           "args": ["-c", "2048", "-np", "2", "-t", "2"], "aliases": ["small"]}
}
JSON

# --port 0: the kernel picks a free port; variet prints the one it bound
"$variet" serve --config "$work/engine_models.json" --port 0 >"$work/variet.log" 2>&1 &
pid=$!
port=
for _ in $(seq 1 150); do
  kill -0 "$pid" 2>/dev/null || die "variet serve exited early"
  port=$(sed -n 's/.* on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/variet.log" | head -n 1)
  if [ -n "$port" ] && curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/health"; then
    break
  fi
  port=
  sleep 0.1
done
[ -n "$port" ] || die "variet serve did not answer /health within 15 s"

set +e
VARIET_URL="http://127.0.0.1:$port/v1" VARIET_KEY="$key" VARIET_ROLE=fast node "$pkg/openai_test.mjs"
status=$?
set -e
exit "$status"
