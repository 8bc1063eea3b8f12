#!/usr/bin/env bash
# fresh-check.sh — does the project stand alone on a fresh Debian 12?
#
# Builds a Debian 12 (bookworm) root with debootstrap (nothing but git
# added), from the Debian archive named in this machine's own apt
# configuration; clones the current commit into it (committed work only);
# runs the README's two commands inside it (chroot, as root):
# `scripts/test.sh` and `DEMO_EXIT=1 scripts/demo.sh`; prints pass/fail and
# the time of each step. Installs debootstrap with apt-get when missing.
# Needs root (or sudo), network access to the archive and the npm registry,
# and ~4 GB in the work folder. The root is removed afterwards (KEEP=1
# keeps it); each step's full output is kept in the work folder's logs.
#   FRESH_DIR=/var/tmp  (where the root and the logs go)   KEEP=1
# Exit 0 when both commands pass, 1 otherwise.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf 'fresh-check: %s\n' "$*"; }
die() { log "error: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "needs root (debootstrap, chroot)"
    exec sudo -E "$0" "$@"
fi
command -v git >/dev/null || die "git is needed to clone the commit"
commit=$(git -C "$root" rev-parse HEAD)
dirty=$(git -C "$root" status --porcelain --untracked-files=no | wc -l)

export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# The machine's Debian archive serving bookworm itself (not -updates or
# -security), from its apt configuration; nothing about it is stored here.
uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(IDENTIFIER)' 2>/dev/null |
      awk '$3 == "Packages" && $2 == "bookworm" { print $1; exit }')
if [ -z "$uri" ]; then
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
          awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }')
fi
if [ -z "$uri" ]; then
    uri=$(awk '/^URIs:/ { u = $2 } /^Suites:/ && / bookworm( |$)/ && u != "" { print u; exit }' \
          /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
fi
[ -n "$uri" ] || die "no Debian 12 (bookworm) archive in this machine's apt configuration"

base=${FRESH_DIR:-/var/tmp}
mkdir -p "$base"
work=$(mktemp -d "$base/variet-fresh-XXXXXX")
chr="$work/root"
mounted=()

in_root() { # kill what still runs inside the root (by pid), then unmount
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$chr" ] && kill -KILL "${p#/proc/}" 2>/dev/null || true
    done
}
cleanup() {
    local rc=$? i
    in_root
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null || true
    done
    if grep -q " $chr[/ ]" /proc/mounts; then
        log "something is still mounted under $chr: left in place"
    elif [ "${KEEP:-0}" = 1 ]; then
        log "root kept: $chr"
    else
        rm -rf --one-file-system "$chr"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { # NAME LOG command...: run, time, report; returns its status
    local name=$1 logf=$2 t0=$SECONDS rc=0
    shift 2
    "$@" >"$logf" 2>&1 || rc=$?
    local dt=$((SECONDS - t0))
    if [ "$rc" -eq 0 ]; then
        log "$(printf '%-32s PASS  %5d s' "$name" "$dt")"
    else
        log "$(printf '%-32s FAIL  %5d s  (exit %d; log %s)' "$name" "$dt" "$rc" "$logf")"
        tail -n 25 "$logf" | sed 's/^/    | /'
    fi
    return "$rc"
}

log "commit $commit$([ "$dirty" -gt 0 ] && echo " (uncommitted changes are not part of the check)")"
log "work folder $work"
t_all=$SECONDS
keyring=()
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] &&
    keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
step "debootstrap bookworm (+git)" "$work/debootstrap.log" \
    debootstrap --variant=minbase --include=git "${keyring[@]}" bookworm "$chr" "$uri" ||
    exit 1

for m in proc sys dev dev/pts dev/shm; do
    mkdir -p "$chr/$m"
    case $m in
        proc) mount -t proc proc "$chr/proc" ;;
        sys) mount -t sysfs sysfs "$chr/sys" ;;
        dev) mount --bind /dev "$chr/dev" ;;
        dev/pts) mount --bind /dev/pts "$chr/dev/pts" ;;
        dev/shm) mount -t tmpfs tmpfs "$chr/dev/shm" ;;
    esac
    mounted+=("$chr/$m")
done
cp -L /etc/resolv.conf "$chr/etc/resolv.conf"
# This machine's own local trust anchors go in too, as its resolv.conf
# does: on a network that intercepts TLS (an egress proxy) npm cannot reach
# its registry without them; on an open network there are none to copy.
node_ca=()
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$chr/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$chr/usr/local/share/ca-certificates/"
    [ -x "$chr/usr/sbin/update-ca-certificates" ] && chroot "$chr" update-ca-certificates >/dev/null 2>&1 || true
    node_ca=(NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt)
    log "this machine's local CA certificates copied in ($(cd /usr/local/share/ca-certificates && ls *.crt | wc -l) files; they join the bundle when setup.sh installs ca-certificates)"
fi

step "clone $(git -C "$root" rev-parse --short HEAD)" "$work/clone.log" \
    bash -c 'git clone -q --no-hardlinks "$1" "$2" && git -C "$2" checkout -q "$3"' _ \
    "$root" "$chr/root/variet" "$commit" || exit 1

run_in() { # command line, run as root in the fresh root's clone with a clean environment
    env -i HOME=/root USER=root LANG=C.UTF-8 TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        "${node_ca[@]}" chroot "$chr" /bin/bash -c "cd /root/variet && $1"
}
# the demo serves on 8000; another gateway of this machine may hold it
demo_env="DEMO_EXIT=1"
if (exec 3<>/dev/tcp/127.0.0.1/8000) 2>/dev/null; then
    p=8000
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
    demo_env="DEMO_EXIT=1 PORT=$p"
    log "port 8000 is taken on this machine (shared network): the demo uses PORT=$p"
fi

status=0
step "scripts/test.sh" "$work/test.log" run_in "scripts/test.sh" || status=1
log "  test.sh's ctest summaries: $(grep -E '^[0-9]+% tests passed' "$work/test.log" | tr '\n' ';' || true)"
step "$demo_env scripts/demo.sh" "$work/demo.log" run_in "$demo_env scripts/demo.sh" || status=1
node=$(run_in 'node --version 2>/dev/null' || echo none)
log "inside: $(. "$chr/etc/os-release" && echo "$PRETTY_NAME"), Node.js $node, $(nproc) CPUs"
log "$( [ "$status" -eq 0 ] && echo PASS || echo FAIL ): both README commands on a fresh Debian 12 root, $((SECONDS - t_all)) s in all (logs in $work)"
exit "$status"
