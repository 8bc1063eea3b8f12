#!/usr/bin/env bash
# ui-test.sh — the dashboard (/ui) in headless Chromium: Debian's chromium
# package driven by playwright-core (pinned in tests/ui/package.json,
# installed into tests/ui/node_modules when missing or another version is
# there). Synthesizes two tiny models, starts `variet serve` with two roles
# (and a tuning history for one of them) on a free port and runs
# tests/ui/ui_test.mjs against it: once without an API key, once with one
# (the page's key prompt). Screenshots go to $VARIET_UI_SHOTS (default: the
# current folder). variet is stopped whatever happens.
# Exits with the node test's status; 77 (ctest: skipped) only when chromium
# is not installed, saying so; 1 when anything else is missing or fails.
#   VARIET_BINARY=path/to/variet   (default: build/variet)
#   VARIET_LLAMA_SERVER=path       (default: scripts/get-llama-server.sh)
#   VARIET_CHROMIUM=path           (default: /usr/bin/chromium)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pkg="$root/tests/ui"
variet=${VARIET_BINARY:-$root/build/variet}
chromium=${VARIET_CHROMIUM:-/usr/bin/chromium}
shots=${VARIET_UI_SHOTS:-$PWD}

die() { echo "ui-test: $*" >&2; exit 1; }
if [ ! -x "$chromium" ]; then
  echo "ui-test: SKIPPED: no chromium at $chromium (Debian's chromium package; scripts/setup.sh installs it)"
  exit 77
fi
[ -x "$variet" ] || die "no variet binary at $variet (set VARIET_BINARY or run scripts/build.sh)"
command -v node >/dev/null || die "node is not installed (Node.js 18 or later; scripts/setup.sh installs Debian's nodejs)"
command -v npm >/dev/null || die "npm is not installed"
command -v curl >/dev/null || die "curl is not installed"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] || die "Node.js $(node --version) is too old: playwright-core (tests/ui/package.json) needs 18 or later"
llama=${VARIET_LLAMA_SERVER:-}
[ -n "$llama" ] || llama=$("$root/scripts/get-llama-server.sh")
[ -x "$llama" ] || die "no runnable llama-server ($llama)"
mkdir -p "$shots"

# the pinned version (package.json), reinstalled when another one is there
want=$(node -p 'require(process.argv[1]).dependencies["playwright-core"]' "$pkg/package.json")
have=$(node -p 'require(process.argv[1]).version' "$pkg/node_modules/playwright-core/package.json" 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  rm -rf "$pkg/node_modules"
  echo "ui-test: installing playwright-core@$want into $pkg/node_modules" >&2
  # playwright-core downloads no browser (that is the playwright package);
  # Debian's chromium is the one driven
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --no-package-lock --loglevel=error \
    --prefix "$pkg" >&2 || die "npm install failed"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/variet-ui-XXXXXX")
pid=
unclean=0
# stop variet (SIGTERM); it must exit 0 with no sanitizer report in its log
stop_variet() {
  if [ -n "$pid" ]; then
    local st=0
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || st=$?
    pid=
    if [ "$st" -ne 0 ]; then
      echo "ui-test: variet exited with status $st on SIGTERM" >&2
      unclean=1
    fi
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$work/variet.log" 2>/dev/null; then
      echo "ui-test: sanitizer report in variet's log:" >&2
      grep -A 30 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$work/variet.log" | head -n 60 >&2
      unclean=1
    fi
  fi
}
cleanup() {
  local rc=$?
  stop_variet
  if [ "$rc" -ne 0 ] && [ -f "$work/variet.log" ]; then
    echo "ui-test: variet log (last 30 lines):" >&2
    tail -n 30 "$work/variet.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$variet" synth tiny-llama -o "$work/fast.gguf" >/dev/null
"$variet" synth tiny-qwen35moe -o "$work/balanced.gguf" >/dev/null
# a recorded tuning history for one role (an H200 run), where variet tune
# writes it: the configuration's folder
cp "$root/tests/fixtures/gpu/h200-tune-2/tune-12800.json" "$work/tune-balanced.json"

# serve KEY: (re)start variet with a config whose api_key is KEY ("" none)
serve() {
  local key=$1 keyfield=""
  [ -n "$key" ] && keyfield="\"api_key\": \"$key\","
  stop_variet
  cat > "$work/engine_models.json" <<JSON
{
  "_engine": {"host": "127.0.0.1", "llama_server": "$llama", $keyfield "max_loaded": 1, "stop_grace": 3},
  "fast": {"display_name": "Fast (tiny llama)", "model_path": "fast.gguf",
           "args": ["-c", "2048", "-np", "1", "-t", "2"], "aliases": ["small"]},
  "balanced": {"display_name": "Balanced (tiny qwen3.5 MoE)", "model_path": "balanced.gguf",
               "args": ["-c", "2048", "-np", "1", "-t", "2"]}
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
      return 0
    fi
    port=
    sleep 0.1
  done
  die "variet serve did not answer /health within 15 s"
}

status=0
serve ""
VARIET_URL="http://127.0.0.1:$port" VARIET_CHROMIUM="$chromium" VARIET_UI_SHOT="$shots/ui-dashboard.png" \
  node "$pkg/ui_test.mjs" || status=1
key="variet-ui-$$-$RANDOM$RANDOM"
serve "$key"
VARIET_URL="http://127.0.0.1:$port" VARIET_KEY="$key" VARIET_CHROMIUM="$chromium" \
  VARIET_UI_SHOT="$shots/ui-dashboard-key.png" node "$pkg/ui_test.mjs" || status=1
stop_variet
[ "$unclean" -eq 0 ] || status=1
exit "$status"
