#!/usr/bin/env bash
# setup.sh — install what Variet needs from Debian packages (only those
# missing), then make sure a runnable llama-server exists.
#   scripts/setup.sh            build + test dependencies (chromium: the
#                               dashboard's test, scripts/ui-test.sh)
# Idempotent; needs root or sudo only when something is missing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

pkgs=(gcc make cmake pkg-config libevent-dev libjansson-dev libcmocka-dev libcurl4-openssl-dev
      patchelf clang libclang-rt-14-dev curl ca-certificates debian-archive-keyring
      chromium
      ${VARIET_EXTRA_PKGS:-})
# the openai SDK test needs Node.js and npm (the machine's own, else Debian's)
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >/dev/null
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$root/scripts/get-llama-server.sh" >/dev/null
