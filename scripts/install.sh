#!/usr/bin/env bash
# install.sh — put `variet` on PATH: builds build/variet when needed
# (scripts/build.sh, incremental), then `cmake --install` copies it to
# $PREFIX/bin (default PREFIX=~/.local). Says so when $PREFIX/bin is not on
# PATH. Idempotent; needs write access to $PREFIX only.
#   PREFIX=/usr/local scripts/install.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=${PREFIX:-$HOME/.local}
build=${VARIET_BUILD_DIR:-$root/build}

die() { echo "install: $*" >&2; exit 1; }
command -v cmake >/dev/null || die "cmake is missing (scripts/setup.sh installs what the build needs)"
"$root/scripts/build.sh" "$build"
[ -x "$build/variet" ] || die "the build produced no $build/variet"
cmake --install "$build" --prefix "$prefix" >/dev/null
bin="$prefix/bin"
"$bin/variet" --version >/dev/null || die "$bin/variet does not run"
echo "install: $bin/variet ($("$bin/variet" --version))"
case ":$PATH:" in
  *":$bin:"*) ;;
  *) echo "install: $bin is not on PATH; add it, e.g.: export PATH=\"$bin:\$PATH\"" >&2 ;;
esac
