#!/usr/bin/env bash
# get-llama-server.sh — print the path of a runnable llama-server, providing one if needed.
#
# Order: $VARIET_LLAMA_SERVER, a llama-server on PATH, the project's cache
# (.cache/llama/bin/llama-server), else fetch Debian unstable's binary packages
# (llama.cpp-tools, libllama0, libggml0 and the runtime libraries they need),
# unpack them with dpkg -x and give the binary its own loader and rpath with
# patchelf so it runs on Debian 12.  The archive location is read from this
# machine's own apt configuration; nothing about it is stored in the repo.
#
# Idempotent; progress goes to stderr, the path alone to stdout.
# Exit 0 with the path, or 1 with a reason on stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${VARIET_CACHE:-$root/.cache}/llama
log() { printf 'get-llama-server: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

works() { "$1" --version >/dev/null 2>&1; }

if [ -n "${VARIET_LLAMA_SERVER:-}" ]; then
    works "$VARIET_LLAMA_SERVER" || die "VARIET_LLAMA_SERVER=$VARIET_LLAMA_SERVER does not run (--version failed)"
    echo "$VARIET_LLAMA_SERVER"; exit 0
fi
if p=$(command -v llama-server 2>/dev/null) && works "$p"; then echo "$p"; exit 0; fi
if [ -x "$cache/bin/llama-server" ] && works "$cache/bin/llama-server"; then
    echo "$cache/bin/llama-server"; exit 0
fi

for t in apt-get dpkg patchelf; do
    command -v "$t" >/dev/null || die "$t is needed to provide llama-server (apt-get install $t)"
done
arch=$(dpkg --print-architecture)

# The machine's main Debian archive: the URI serving a plain suite (no -updates/-security).
uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(IDENTIFIER)' 2>/dev/null |
      awk '$3 == "Packages" && $2 !~ /-/ && $1 ~ /debian/ { print $1; exit }')
[ -n "$uri" ] || die "no Debian archive found in this machine's apt configuration (run apt-get update first)"

work=$cache/apt
rm -rf "$work" "$cache/root" "$cache/bin.tmp"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || die "$keyring missing (apt-get install debian-archive-keyring)"
echo "deb [arch=$arch signed-by=$keyring] $uri sid main" > "$work/sources.list"
# Check-Valid-Until off: a mirror's sid snapshot may be older than its
# Valid-Until on this machine's clock ("Release file ... is expired"); the
# signature is still checked, and only these private lists are affected.
aptopts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
         -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
         -o "APT::Architecture=$arch" -o "Debug::NoLocking=1" -o "Acquire::Check-Valid-Until=false")
log "reading the sid package list from the machine's archive"
apt-get "${aptopts[@]}" update >"$work/update.log" 2>&1 || die "apt-get update for sid failed (see $work/update.log)"

pkgs=(llama.cpp-tools libllama0 libggml0 libc6 libstdc++6 libgcc-s1 libgomp1 libssl3t64 zlib1g libzstd1)
log "downloading ${pkgs[*]}"
(cd "$work/debs" && apt-get "${aptopts[@]}" download "${pkgs[@]}" >"$work/download.log" 2>&1) ||
    die "apt-get download failed (see $work/download.log)"

mkdir -p "$cache/root"
for d in "$work/debs"/*.deb; do dpkg -x "$d" "$cache/root"; done

srv=$cache/root/usr/bin/llama-server; [ -f "$srv" ] || srv=
[ -n "$srv" ] || die "llama-server not found in the downloaded packages"
ld=$(find "$cache/root/usr/lib" -name 'ld-linux-*.so.*' | head -n1)
[ -n "$ld" ] || die "dynamic loader not found in the downloaded libc6"

mkdir -p "$cache/bin.tmp"
cp "$srv" "$cache/bin.tmp/llama-server"
# ggml looks for its CPU backends next to the executable.
find "$cache/root" -name 'libggml-cpu-*.so' -exec cp {} "$cache/bin.tmp/" \;
rpath=$(find "$cache/root" -name '*.so*' -printf '%h\n' | sort -u | tr '\n' ':')
patchelf --set-interpreter "$ld" --set-rpath "${rpath%:}" "$cache/bin.tmp/llama-server"
# RUNPATH is not inherited: every llama/ggml library gets it too.
while IFS= read -r so; do
    patchelf --set-rpath "${rpath%:}" "$so"
done < <(find "$cache/bin.tmp" "$cache/root/usr/lib" -type f \( -name 'libllama*.so*' -o -name 'libggml*.so*' -o -name 'libmtmd*.so*' \))
rm -rf "$cache/bin"; mv "$cache/bin.tmp" "$cache/bin"
works "$cache/bin/llama-server" || die "the patched llama-server does not run: $("$cache/bin/llama-server" --version 2>&1 | tail -n 3)"
log "$("$cache/bin/llama-server" --version 2>&1 | grep -m1 version || true)"
echo "$cache/bin/llama-server"
