#!/usr/bin/env bash
# readme-examples.sh — run the README's examples as written and fail when
# one does not work.
#
# A fenced block right after a line `<!-- runnable ... -->` is run:
#   <!-- runnable -->                    every command must exit 0
#   <!-- runnable output -->             and every output line the block shows must appear, in order,
#                                        in what the command printed (spacing squeezed; a line "..."
#                                        is an elision, a line ending in "..." matches by its prefix)
#   <!-- runnable ... exit=N -->         the block's last command must exit N instead
#   <!-- runnable file=NAME -->          the block is the file NAME (written before any command runs)
# In a block with "$ " prompts the prompted lines are commands and the lines after one are its
# output; in a block without, every line is a command. A line ending in "\" continues. Commands
# run in the README's order, in one shell (a command ending in "&" stays in the background and
# "kill %1" stops it), in a scratch folder laid out like the repository root after
# scripts/setup.sh and scripts/install.sh: `variet` on PATH, llama-server at
# .cache/llama/bin/llama-server. Port 8000 is replaced by a free port everywhere (other
# gateways may be running here).
#   VARIET_BINARY=path/to/variet   (default: build/variet)
#   VARIET_LLAMA_SERVER=path       (default: scripts/get-llama-server.sh)
#   README=path                    (default: README.md)   KEEP=1 keeps the scratch folder
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readme=${README:-$root/README.md}
variet=${VARIET_BINARY:-$root/build/variet}
die() { echo "readme-examples: $*" >&2; exit 1; }
[ -x "$variet" ] || die "no variet binary at $variet (set VARIET_BINARY or run scripts/build.sh)"
[ -f "$readme" ] || die "no $readme"
command -v curl >/dev/null || die "curl is not installed"
llama=${VARIET_LLAMA_SERVER:-}
[ -n "$llama" ] || llama=$("$root/scripts/get-llama-server.sh")
[ -x "$llama" ] || die "no runnable llama-server ($llama)"
variet=$(cd "$(dirname "$variet")" && pwd)/$(basename "$variet")
llama=$(cd "$(dirname "$llama")" && pwd)/$(basename "$llama")

work=$(mktemp -d "${TMPDIR:-/tmp}/variet-readme-XXXXXX")
cleanup() {
  local rc=$?
  for p in $(jobs -p); do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
    echo "readme-examples: scratch folder kept: $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# a port nothing listens on (bash's /dev/tcp connects, or fails), below the
# kernel's ephemeral range: the other tests' servers and llama-servers bind
# port 0 and get ports from that range, so they cannot take this one first
lo=32768
read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
[ "$lo" -gt 12000 ] || lo=32768
port=
for _ in $(seq 1 50); do
  p=$((10000 + RANDOM % (lo - 11000)))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || die "no free port found"

# the README's blocks as two scripts: files.sh writes the files, cmds.sh
# runs the commands (cmd LINE WANT <<text, expect LINE <<lines)
awk -v files="$work/files.sh" -v cmds="$work/cmds.sh" '
function flush(   i, j, text, want, last) {
  if (file != "") {
    printf "file %d %s <<'\''__README_EOF__'\''\n", start, file > files
    for (i = 1; i <= n; i++) print lines[i] > files
    print "__README_EOF__" > files
    return
  }
  # the commands, each with its output lines
  nc = 0
  for (i = 1; i <= n; i++) {
    if (dollar && lines[i] !~ /^\$ /) { if (nc) outp[nc] = outp[nc] lines[i] "\n"; continue }
    if (!dollar && lines[i] ~ /^[ \t]*$/) continue
    text = dollar ? substr(lines[i], 3) : lines[i]
    at = lno[i]
    while (text ~ /\\$/ && i < n) { i++; text = text "\n" lines[i] }
    nc++; cmd[nc] = text; cline[nc] = at; outp[nc] = ""
  }
  for (j = 1; j <= nc; j++) {
    want = (j == nc) ? exitcode : 0
    printf "cmd %d %d <<'\''__README_EOF__'\''\n%s\n__README_EOF__\n", cline[j], want, cmd[j] > cmds
    if (output && outp[j] != "")
      printf "expect %d <<'\''__README_EOF__'\''\n%s__README_EOF__\n", cline[j], outp[j] > cmds
  }
  blocks++
}
/^<!-- runnable/ { marker = $0; markline = NR; armed = 1; next }
armed && /^```/ {
  armed = 0; inblock = 1; n = 0; dollar = 0; start = NR
  output = (marker ~ / output/); file = ""; exitcode = 0
  if (match(marker, /file=[^ ]+/)) file = substr(marker, RSTART + 5, RLENGTH - 5)
  if (match(marker, /exit=[0-9]+/)) exitcode = substr(marker, RSTART + 5, RLENGTH - 5) + 0
  next
}
armed { printf "README:%d: <!-- runnable --> is not followed by a fenced block\n", markline > "/dev/stderr"; bad = 1; armed = 0 }
inblock && /^```/ { flush(); inblock = 0; next }
inblock { n++; lines[n] = $0; lno[n] = NR; if ($0 ~ /^\$ /) dollar = 1; next }
END {
  if (bad) exit 1
  if (!blocks) { print "no runnable blocks" > "/dev/stderr"; exit 1 }
}' "$readme" || die "cannot read the runnable blocks of $readme"
touch "$work/files.sh" "$work/cmds.sh"
sed -i "s/\\b8000\\b/$port/g" "$work/files.sh" "$work/cmds.sh"

mkdir -p "$work/root/.cache/llama/bin" "$work/bin"
ln -s "$variet" "$work/bin/variet"
ln -s "$llama" "$work/root/.cache/llama/bin/llama-server"
export PATH="$work/bin:$PATH"
unset VARIET_CONFIG VARIET_API_KEY VARIET_LLAMA_SERVER
cd "$work/root"

n_cmd=0
last_out=
t_start=$SECONDS
file() { # LINE NAME, text on stdin
  mkdir -p "$(dirname "$2")"
  cat > "$2"
  echo "== README:$1: file $2"
}
cmd() { # LINE WANT, command on stdin
  local line=$1 want=$2 c rc=0 t0=$SECONDS
  c=$(cat)
  n_cmd=$((n_cmd + 1))
  last_out="$work/out.$n_cmd"
  echo "== README:$line: $c"
  if [[ $c == *'&' || $c == 'kill %'* ]]; then
    eval "$c" >"$last_out" 2>&1 || rc=$?
  else
    timeout "${README_STEP_TIMEOUT:-900}" bash -c "$c" >"$last_out" 2>&1 </dev/null || rc=$?
  fi
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL README:$line: exit $rc, expected $want; its output:"
    tail -n 40 "$last_out"
    exit 1
  fi
  echo "   ok ($((SECONDS - t0)) s)"
}
squeeze() { sed -e 's/[[:space:]][[:space:]]*/ /g' -e 's/^ //' -e 's/ $//'; }
expect() { # LINE, the output lines shown on stdin
  squeeze >"$work/expected"
  squeeze <"$last_out" >"$work/actual"
  if ! awk -v want="$work/expected" '
    BEGIN { while ((getline l < want) > 0) if (l != "" && l != "...") e[++n] = l; i = 1 }
    i <= n {
      x = e[i]
      if (x ~ /\.\.\.$/) { p = substr(x, 1, length(x) - 3); if (substr($0, 1, length(p)) == p) i++ }
      else if ($0 == x) i++
    }
    END { if (i <= n) { print "   not in the output (in this order): " e[i]; exit 1 } }' "$work/actual"; then
    echo "FAIL README:$1: the output differs from what the README shows; the output:"
    cat "$last_out"
    exit 1
  fi
  echo "   output as shown"
}
# shellcheck source=/dev/null
. "$work/files.sh"
# shellcheck source=/dev/null
. "$work/cmds.sh"
echo "readme-examples: $n_cmd commands ran as written ($((SECONDS - t_start)) s)"
