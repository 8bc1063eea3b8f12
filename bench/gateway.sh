#!/usr/bin/env bash
# gateway.sh — how much does `variet serve` cost in front of llama-server?
#
# One run, side by side, four ways to reach the same tiny synthetic model
# served by llama-server with the same arguments:
#   direct   llama-server itself
#   variet   variet serve, one role "fast" (it starts its own llama-server)
#   router   llama-server's router mode (--models-dir; it starts a child)
#   nginx    nginx proxy_pass to the direct llama-server (the floor a proxy
#            can reach; skipped when nginx cannot be installed)
# plus variet-lv4, variet as configured by default (see ARGS below), and
# measures: wrk req/s, p50, p99 for POST /tokenize (proxy overhead dominated)
# and POST /v1/chat/completions (max_tokens 4), with the proxy's CPU per
# request; the gap between SSE chunks of a 200-token stream; a burst of
# concurrent streams run to their end; memory left by streams aborted
# mid-response; the proxies' RSS idle and with many streams open; variet's
# role-swap overhead beyond the model load. Prints figures, ratios against
# direct and the targets beside them; it asserts nothing (exit 0 unless the
# benchmark itself could not run).
#
#   bench/gateway.sh [--duration S] [--connections N] [--threads N] [--rounds N]
#                    [--streams N] [--swaps N] [--gap-rounds N] [--abort-rounds N]
#                    [--burst N] [--keep]
#
# Installs wrk (and nginx-light, optional) with apt-get when absent, builds
# variet into build-bench/ (Release) and bench's helper gateway_stream.c with
# cc. Every process it starts is stopped on exit. See bench/README.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bdir=$root/build-bench

duration=10 connections=4 threads=1 rounds=1 streams=256 swaps=5 gap_rounds=5 abort_rounds=256 burst=32 keep=0
usage() {
    sed -n '/^#   bench/,/^#  *\[--burst/p' "$0" | sed 's/^# \{0,3\}//'
    exit "${1:-2}"
}
while [ $# -gt 0 ]; do
    case $1 in
    --duration) duration=${2:?}; shift 2 ;;
    --connections) connections=${2:?}; shift 2 ;;
    --threads) threads=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --streams) streams=${2:?}; shift 2 ;;
    --swaps) swaps=${2:?}; shift 2 ;;
    --gap-rounds) gap_rounds=${2:?}; shift 2 ;;
    --abort-rounds) abort_rounds=${2:?}; shift 2 ;;
    --burst) burst=${2:?}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage 0 ;;
    *) echo "gateway.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
for v in duration connections threads rounds streams swaps gap_rounds abort_rounds burst; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "gateway.sh: --${v/_/-} wants a positive integer" >&2; exit 2; }
done
[ "$threads" -le "$connections" ] || threads=$connections

# Same llama-server arguments for every backend. -lv 3 is llama-server's
# default verbosity, written out because variet starts a backend whose role
# args set no verbosity with -lv 4 (for its load report), which slows
# llama-server itself; the extra target "variet-lv4" measures that default.
ARGS=(-c 2048 -np 4 -t 1 -lv 3)
ARGS_NOLV=(-c 2048 -np 4 -t 1)

log() { printf '%s\n' "$*" >&2; }
die() { log "gateway.sh: error: $*"; exit 1; }

# ---------------------------------------------------------------- processes

tmp=$(mktemp -d "${TMPDIR:-/tmp}/variet-bench.XXXXXX")
pids=()
start_bg() { # NAME LOG CMD... : start in the background, remember the pid
    local logf=$2
    shift 2
    "$@" >"$logf" 2>&1 &
    pids+=($!)
    LAST_PID=$!
}
is_gone() { # PID: exited (zombies count as exited)
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
    [ -z "$st" ] || [ "$st" = Z ]
}
stop_pid() { # PID [GRACE_S]: SIGTERM, wait, SIGKILL; reap
    local p=$1 grace=${2:-15} i
    kill -TERM "$p" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        is_gone "$p" && break
        sleep 0.1
    done
    is_gone "$p" || { log "gateway.sh: pid $p did not stop on SIGTERM in ${grace} s; SIGKILL"; kill -KILL "$p" 2>/dev/null || true; }
    wait "$p" 2>/dev/null || true
}
cleanup() {
    local rc=$? i p left=()
    trap - EXIT INT TERM
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        is_gone "${pids[i]}" || stop_pid "${pids[i]}"
    done
    # Anything still running from our temp folder (backends of the gateways)
    # was started by this run: it is a leak worth reporting, then killed.
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" = $$ ] && continue
        if { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -qF -- "$tmp/"; then
            left+=("$p: $({ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | cut -c1-160)")
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
    if [ ${#left[@]} -gt 0 ]; then
        log "gateway.sh: LEFT BEHIND after their parents stopped (killed now):"
        printf '  %s\n' "${left[@]}" >&2
    fi
    if [ "$keep" = 1 ] || [ "$rc" != 0 ]; then
        log "gateway.sh: logs kept in $tmp"
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- setup

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
have() { command -v "$1" >/dev/null 2>&1; }
apt_install() { # PKG...: install with apt-get (only called when absent)
    have apt-get || return 1
    [ -z "$sudo" ] || have sudo || return 1
    log "gateway.sh: installing $* with apt-get"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >"$tmp/apt.log" 2>&1 && return 0
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq >>"$tmp/apt.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >>"$tmp/apt.log" 2>&1
}
have wrk || apt_install wrk || die "wrk is needed (apt-get install wrk); see $tmp/apt.log"
NGINX=""
if have nginx || [ -x /usr/sbin/nginx ] || apt_install nginx-light; then
    NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
    [ -x "$NGINX" ] || NGINX=""
fi
for t in cc cmake curl; do have $t || die "$t is needed (scripts/setup.sh installs the build dependencies)"; done

log "gateway.sh: building variet (Release) in $bdir"
# Warnings that only -O2/-O3 analysis raises stay warnings here: a benchmark
# should not refuse to run over them (the project's -Werror still applies).
relflags="-Wno-error=maybe-uninitialized -Wno-error=array-bounds -Wno-error=stringop-overflow -Wno-error=stringop-truncation -Wno-error=format-truncation"
cmake -S "$root" -B "$bdir" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_C_FLAGS=$relflags" >"$tmp/cmake.log" 2>&1 ||
    die "cmake configure failed: $(tail -5 "$tmp/cmake.log")"
cmake --build "$bdir" -j"$(nproc)" --target variet >>"$tmp/cmake.log" 2>&1 ||
    die "build failed: $(grep -m3 -E 'error' "$tmp/cmake.log")"
VARIET=$bdir/variet
cc -O2 -std=c11 -Wall -Wextra -o "$bdir/gateway_stream" "$root/bench/gateway_stream.c" -lcurl -ljansson -lm \
    >"$tmp/cc.log" 2>&1 || die "cannot build bench/gateway_stream.c: $(head -5 "$tmp/cc.log")"
GS=$bdir/gateway_stream
LS=$("$root/scripts/get-llama-server.sh") || die "no llama-server (scripts/get-llama-server.sh failed)"

mkdir -p "$tmp/models"
"$VARIET" synth tiny-llama -o "$tmp/models/fast.gguf" >/dev/null
"$VARIET" synth tiny-llama -o "$tmp/a.gguf" --seed 11 >/dev/null
"$VARIET" synth tiny-llama -o "$tmp/b.gguf" --seed 12 >/dev/null

# ---------------------------------------------------------------- helpers

free_port() { # a port nothing listens on (nginx needs one up front)
    local p i
    for ((i = 0; i < 100; i++)); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    return 1
}
wait_port() { # PID LOG REGEX : port from the first log line matching REGEX (…:PORT)
    local pid=$1 logf=$2 re=$3 i port
    for ((i = 0; i < 300; i++)); do
        port=$(grep -v '^\[' "$logf" 2>/dev/null | grep -m1 -oE "$re" | grep -oE '[0-9]+$' || true)
        [ -n "$port" ] && { echo "$port"; return 0; }
        is_gone "$pid" && break
        sleep 0.1
    done
    die "no listening port in $logf: $(tail -3 "$logf")"
}
post() { # URL BODY → HTTP code (body to $tmp/last.json)
    curl -s -o "$tmp/last.json" -w '%{http_code}' --max-time 60 -H 'Content-Type: application/json' -d "$2" "$1" || echo 000
}
wait_200() { # URL BODY WHAT : POST until 200 (30 s)
    local i code
    for ((i = 0; i < 300; i++)); do
        code=$(post "$1" "$2")
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    die "$3 never answered 200 (last: HTTP $code $(head -c 300 "$tmp/last.json"))"
}
rss_kb() { # PID,PID… → summed VmRSS kB
    local s=0 p v
    for p in ${1//,/ }; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        s=$((s + ${v:-0}))
    done
    echo "$s"
}
children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' | paste -sd, -; }
cmdline() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null | sed "s#$tmp#\$TMP#g; s#$root/##g"; }
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1" | head -1; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}'; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
cpu_busy() { # % of all CPUs busy over 1 s (everything on the machine)
    local a b
    a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
    awk -v u1="${a[1]}" -v n1="${a[2]}" -v s1="${a[3]}" -v i1="${a[4]}" -v w1="${a[5]}" \
        -v u2="${b[1]}" -v n2="${b[2]}" -v s2="${b[3]}" -v i2="${b[4]}" -v w2="${b[5]}" \
        'BEGIN { busy = (u2+n2+s2) - (u1+n1+s1); tot = busy + (i2+w2) - (i1+w1); printf "%.0f", (tot > 0 ? 100 * busy / tot : 0) }'
}
proc_ticks() { # PID,PID… → utime+stime summed (clock ticks)
    local s=0 p
    for p in ${1//,/ }; do
        s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$s"
}
wait_quiet() { # PIDS : until they use < 5% of a CPU over 0.5 s (max 30 s)
    local i a b
    for ((i = 0; i < 60; i++)); do
        a=$(proc_ticks "$1"); sleep 0.5; b=$(proc_ticks "$1")
        [ $((b - a)) -le 2 ] && return 0
    done
    log "gateway.sh: warning: $1 still busy after 30 s"
}

# ---------------------------------------------------------------- servers

log "gateway.sh: starting servers (llama-server ${ARGS[*]})"
start_bg direct "$tmp/direct.log" "$LS" -m "$tmp/models/fast.gguf" --host 127.0.0.1 --port 0 "${ARGS[@]}"
DPID=$LAST_PID
DPORT=$(wait_port "$DPID" "$tmp/direct.log" 'listening on http://[0-9.]+:[0-9]+')
D=http://127.0.0.1:$DPORT

args_json=$(printf '"%s",' "${ARGS[@]}")
cat >"$tmp/variet.json" <<EOF
{
  "_engine": { "queue_size": $((streams + 1024)) },
  "fast": { "model_path": "models/fast.gguf", "args": [${args_json%,}] }
}
EOF
start_bg variet "$tmp/variet.log" "$VARIET" serve --config "$tmp/variet.json" --host 127.0.0.1 --port 0 --llama-server "$LS"
VPID=$LAST_PID
VPORT=$(wait_port "$VPID" "$tmp/variet.log" 'on http://[0-9.]+:[0-9]+')
V=http://127.0.0.1:$VPORT

mkdir -p "$tmp/lv4"
args_nolv_json=$(printf '"%s",' "${ARGS_NOLV[@]}")
printf '{\n  "fast": { "model_path": "../models/fast.gguf", "args": [%s] }\n}\n' "${args_nolv_json%,}" >"$tmp/lv4/variet.json"
start_bg variet-lv4 "$tmp/variet-lv4.log" "$VARIET" serve --config "$tmp/lv4/variet.json" --host 127.0.0.1 --port 0 --llama-server "$LS"
V4PID=$LAST_PID
V4PORT=$(wait_port "$V4PID" "$tmp/variet-lv4.log" 'on http://[0-9.]+:[0-9]+')
V4=http://127.0.0.1:$V4PORT

start_bg router "$tmp/router.log" "$LS" --models-dir "$tmp/models" --host 127.0.0.1 --port 0 "${ARGS[@]}"
RPID=$LAST_PID
RPORT=$(wait_port "$RPID" "$tmp/router.log" 'listening on http://[0-9.]+:[0-9]+')
R=http://127.0.0.1:$RPORT

TOK='{"model":"fast","content":"hello world"}'
CHAT='{"model":"fast","messages":[{"role":"user","content":"hello"}],"max_tokens":4,"temperature":0,"ignore_eos":true}'
STREAM='{"model":"fast","messages":[{"role":"user","content":"Tell me a long story."}],"max_tokens":200,"stream":true,"ignore_eos":true,"temperature":0,"cache_prompt":false}'
HOLD='{"model":"fast","messages":[{"role":"user","content":"Tell me a long story."}],"max_tokens":400,"stream":true,"ignore_eos":true,"temperature":0}'

wait_200 "$D/tokenize" "$TOK" "direct llama-server"
wait_200 "$V/tokenize" "$TOK" "variet (role fast)"
wait_200 "$R/tokenize" "$TOK" "router (model fast)"
wait_200 "$V4/tokenize" "$TOK" "variet-lv4 (role fast)"
for u in "$D" "$V" "$R" "$V4"; do
    wait_200 "$u/v1/chat/completions" "$CHAT" "$u chat"
done

NPORT="" N="" NPIDS=""
if [ -n "$NGINX" ]; then
    mkdir -p "$tmp/nginx/logs" "$tmp/nginx/tmp"
    NPORT=$(free_port) || die "no free port for nginx"
    temp_paths=""
    for k in client_body proxy fastcgi uwsgi scgi; do temp_paths+="    ${k}_temp_path $tmp/nginx/tmp/$k;"$'\n'; done
    write_nginx_conf() {
        cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
$1
    upstream llama { server 127.0.0.1:$DPORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NPORT;
        location / {
            proxy_pass http://llama;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
        }
    }
}
EOF
    }
    write_nginx_conf "$temp_paths"
    if ! "$NGINX" -t -p "$tmp/nginx" -e "$tmp/nginx/logs/error.log" -c "$tmp/nginx/nginx.conf" >"$tmp/nginx/test.log" 2>&1; then
        write_nginx_conf "    client_body_temp_path $tmp/nginx/tmp/client_body; proxy_temp_path $tmp/nginx/tmp/proxy;"
        "$NGINX" -t -p "$tmp/nginx" -e "$tmp/nginx/logs/error.log" -c "$tmp/nginx/nginx.conf" >"$tmp/nginx/test.log" 2>&1 ||
            { log "gateway.sh: nginx config refused, skipping nginx: $(tail -2 "$tmp/nginx/test.log")"; NGINX=""; }
    fi
fi
if [ -n "$NGINX" ]; then
    start_bg nginx "$tmp/nginx/stderr.log" "$NGINX" -p "$tmp/nginx" -e "$tmp/nginx/logs/error.log" \
        -c "$tmp/nginx/nginx.conf" -g 'daemon off;'
    NMASTER=$LAST_PID
    N=http://127.0.0.1:$NPORT
    wait_200 "$N/tokenize" "$TOK" "nginx"
    wait_200 "$N/v1/chat/completions" "$CHAT" "nginx chat"
    NPIDS=$NMASTER${NMASTER:+,}$(children "$NMASTER")
fi

targets=(direct variet router)
[ -n "$N" ] && targets+=(nginx)
targets+=(variet-lv4)
cols=(direct variet router nginx variet-lv4)
declare -A URL=([direct]=$D [variet]=$V [router]=$R [nginx]=$N [variet-lv4]=$V4)

# The backends actually serving each target, to show the arguments are the same.
VCHILD=$(curl -s "$V/status" | grep -oE '"pid":[0-9]+' | sed -n 2p | cut -d: -f2)
V4CHILD=$(curl -s "$V4/status" | grep -oE '"pid":[0-9]+' | sed -n 2p | cut -d: -f2)
RCHILD=$(children "$RPID" | cut -d, -f1)
echo "# Variet gateway benchmark"
echo
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), load average $(cut -d' ' -f1-3 /proc/loadavg), CPU busy before start: $(cpu_busy)%"
echo "llama-server: $LS ($("$LS" --version 2>&1 | grep -m1 version))"
echo "variet: $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?') built Release in build-bench/"
echo "nginx: ${NGINX:-not available (skipped)}${NGINX:+ ($("$NGINX" -v 2>&1 | sed 's/.*: //'))}"
echo "wrk: $duration s per run, $connections connections, $threads thread(s), $rounds round(s); warm-up 1 s before each run"
echo
echo "backends (same model file, same arguments):"
echo "  direct: $(cmdline "$DPID")"
echo "  variet: $(cmdline "$VCHILD")"
echo "  router: $(cmdline "$RCHILD")"
echo "          (router mode passes the router's own arguments to its child, adding --alias and --log-colors off)"
echo "  variet-lv4 (same role without -lv: variet's default): $(cmdline "$V4CHILD")"
echo

# ---------------------------------------------------------------- idle RSS

declare -A IDLE_RSS
IDLE_RSS[variet]=$(rss_kb "$VPID")
IDLE_RSS[variet-lv4]=$(rss_kb "$V4PID")
VANON=$(awk '/^RssAnon:/ {print $2}' "/proc/$VPID/status")
IDLE_RSS[router]=$(rss_kb "$RPID")
[ -n "$N" ] && IDLE_RSS[nginx]=$(rss_kb "$NPIDS")

# ---------------------------------------------------------------- wrk

cat >"$tmp/report.lua" <<'EOF'
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "WRK requests=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f errors=%d non2xx=%d\n",
        summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50),
        latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
        e.connect + e.read + e.write + e.timeout, e.status))
end
EOF
mklua() { # FILE BODY
    { printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[%s]]\n' "$2"
      cat "$tmp/report.lua"; } >"$1"
}
mklua "$tmp/tokenize.lua" "$TOK"
mklua "$tmp/chat.lua" "$CHAT"
declare -A EPATH=([tokenize]=/tokenize [chat]=/v1/chat/completions)
declare -A RPS P50 P99 ERRS CPU
# the proxy processes whose CPU time is charged per request (not direct:
# there the CPU is llama-server's own work)
declare -A PROXY=([variet]=$VPID [router]=$RPID [nginx]=$NPIDS [variet-lv4]=$V4PID)
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
for ep in tokenize chat; do
    for ((r = 1; r <= rounds; r++)); do
        for t in "${targets[@]}"; do
            log "gateway.sh: wrk $ep → $t (round $r/$rounds)"
            wrk -t"$threads" -c"$connections" -d1s --timeout 10s -s "$tmp/$ep.lua" "${URL[$t]}${EPATH[$ep]}" >/dev/null 2>&1 || true
            tk0=$(proc_ticks "${PROXY[$t]:-}")
            out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --timeout 10s --latency -s "$tmp/$ep.lua" \
                "${URL[$t]}${EPATH[$ep]}" 2>&1) || die "wrk failed against $t: $out"
            tk1=$(proc_ticks "${PROXY[$t]:-}")
            printf '%s\n' "$out" >>"$tmp/wrk-$ep-$t.txt"
            line=$(grep '^WRK ' <<<"$out") || die "no summary from wrk against $t: $out"
            RPS[$ep,$t]+=" $(kv "$line" rps)"
            P50[$ep,$t]+=" $(kv "$line" p50_us)"
            P99[$ep,$t]+=" $(kv "$line" p99_us)"
            ERRS[$ep,$t]=$(( ${ERRS[$ep,$t]:-0} + $(kv "$line" errors) + $(kv "$line" non2xx) ))
            [ -n "${PROXY[$t]:-}" ] && CPU[$ep,$t]+=" $(calc '%.1f' "($tk1 - $tk0) * 1e6 / $hz / $(kv "$line" requests)")"
        done
    done
    for t in "${targets[@]}"; do
        RPS[$ep,$t]=$(median <<<"${RPS[$ep,$t]}")
        P50[$ep,$t]=$(median <<<"${P50[$ep,$t]}")
        P99[$ep,$t]=$(median <<<"${P99[$ep,$t]}")
        [ -n "${CPU[$ep,$t]:-}" ] && CPU[$ep,$t]=$(median <<<"${CPU[$ep,$t]}")
    done
done

# ---------------------------------------------------------------- stream gaps

log "gateway.sh: stream gaps ($gap_rounds rounds of a 200-token stream per target)"
wait_quiet "$DPID,$VCHILD,$RCHILD,$V4CHILD"
gargs=()
for t in "${targets[@]}"; do gargs+=("$t" "${URL[$t]}/v1/chat/completions"); done
gout=$("$GS" gaps "$gap_rounds" "$STREAM" "${gargs[@]}" 2>&1) || die "gateway_stream gaps: $gout"
declare -A GMED GP99 GEV GN
for t in "${targets[@]}"; do
    line=$(grep "^gaps name=$t " <<<"$gout")
    GMED[$t]=$(kv "$line" median_us) GP99[$t]=$(kv "$line" p99_us) GEV[$t]=$(kv "$line" events) GN[$t]=$(kv "$line" n)
done

# ---------------------------------------------------------------- burst

# More concurrent streams than llama-server has slots, each run to its end:
# every one should complete, whatever waits where.
BURST='{"model":"fast","messages":[{"role":"user","content":"Tell me a long story."}],"max_tokens":50,"stream":true,"ignore_eos":true,"temperature":0}'
declare -A BURST_OK BURST_CODES
for t in "${targets[@]}"; do
    log "gateway.sh: burst of $burst concurrent streams → $t"
    line=$("$GS" burst "${URL[$t]}/v1/chat/completions" "$burst" "$BURST" 2>&1) || die "gateway_stream burst: $line"
    BURST_OK[$t]="$(kv "$line" complete)/$burst"
    BURST_CODES[$t]=$(kv "$line" codes)
    printf '%s %s\n' "$t" "$line" >>"$tmp/burst.txt"
done
wait_quiet "$DPID,$VCHILD,$RCHILD,$V4CHILD"

# ---------------------------------------------------------------- aborted streams

# Memory left behind by streams aborted while being proxied: rounds of 4
# streams (no more than variet proxies at once, so none waits in its queue).
# Measured before the burst below, whose freed heap would hide it.
log "gateway.sh: streams aborted mid-response (4 × $abort_rounds)"
ABORTS=$("$GS" aborts "$VPID" "$V/v1/chat/completions" 4 "$abort_rounds" "$HOLD" "$V/status" fast 2>&1) ||
    die "gateway_stream aborts: $ABORTS"
LEAK_B=$(kv "$ABORTS" bytes_per_stream)
wait_quiet "$VCHILD"

# ---------------------------------------------------------------- RSS with streams open

declare -A OPEN_RSS OPEN_INFO
rss_run() { # NAME PIDS URL [STATUS_URL ROLE]
    local name=$1 line
    log "gateway.sh: RSS of $name with $streams streams open"
    line=$("$GS" rss "$2" "$3/v1/chat/completions" "$streams" "$HOLD" 1 "${@:4}" 2>&1) || { log "$line"; return 0; }
    printf '%s: %s\n' "$name" "$line" >>"$tmp/rss.txt"
    OPEN_RSS[$name]=$(kv "$line" open_kb)
    OPEN_INFO[$name]="$line"
}
rss_run variet "$VPID" "$V" "$V/status" fast
wait_quiet "$VCHILD"
# the same burst against variet's default queue (variet-lv4 has a default _engine)
rss_run variet-lv4 "$V4PID" "$V4" "$V4/status" fast
unset 'OPEN_RSS[variet-lv4]' # not all streams held: not comparable
wait_quiet "$V4CHILD"
rss_run router "$RPID" "$R"
wait_quiet "$RCHILD"
if [ -n "$N" ]; then
    rss_run nginx "$NPIDS" "$N"
    wait_quiet "$DPID"
fi

# ---------------------------------------------------------------- swap

log "gateway.sh: swap latency ($swaps swaps, max_loaded 1)"
cat >"$tmp/swap.json" <<EOF
{
  "_engine": { "max_loaded": 1 },
  "A": { "model_path": "a.gguf", "args": [${args_json%,}] },
  "B": { "model_path": "b.gguf", "args": [${args_json%,}] }
}
EOF
start_bg variet-swap "$tmp/variet-swap.log" "$VARIET" serve --config "$tmp/swap.json" --host 127.0.0.1 --port 0 --llama-server "$LS"
SPID=$LAST_PID
SPORT=$(wait_port "$SPID" "$tmp/variet-swap.log" 'on http://[0-9.]+:[0-9]+')
sout=$("$GS" swap "http://127.0.0.1:$SPORT" A B "$swaps" 2>&1) || die "gateway_stream swap: $sout"
printf '%s\n' "$sout" >"$tmp/swap.txt"
sline=$(grep '^swap summary' <<<"$sout")
SW_OV=$(kv "$sline" median_overhead_ms) SW_MIN=$(kv "$sline" min_overhead_ms) SW_MAX=$(kv "$sline" max_overhead_ms)
SW_COLD=$(kv "$sline" median_cold_ms) SW_LOAD=$(kv "$sline" median_load_ms) SW_WARM=$(kv "$sline" median_warm_ms)
stop_pid "$SPID"

# Reference: how long llama-server itself takes to stop (part of every swap).
stops=""
for i in 1 2 3; do
    "$LS" -m "$tmp/a.gguf" --host 127.0.0.1 --port 0 "${ARGS[@]}" >"$tmp/stopref.log" 2>&1 &
    p=$!
    wait_port "$p" "$tmp/stopref.log" 'listening on http://[0-9.]+:[0-9]+' >/dev/null
    t0=$(date +%s%N); kill -TERM "$p"; wait "$p" 2>/dev/null || true; t1=$(date +%s%N)
    stops+=" $(calc '%.2f' "($t1 - $t0) / 1e6")"
done
STOP_MS=$(median <<<"$stops")

IDLE_RSS_AFTER=$(rss_kb "$VPID")

# ---------------------------------------------------------------- report

ms() { calc '%.3f' "$1 / 1000"; }
mib() { calc '%.2f' "$1 / 1024"; }
row() { # LABEL TARGET CELL-FUNCTION : one table row over all columns
    local label=$1 target=$2 fn=$3 t r="| $1"
    for t in "${cols[@]}"; do r+=" | $($fn "$t")"; done
    echo "$r | $target |"
}
has() { [ -n "${URL[$1]:-}" ]; }
c_rps() { has "$1" && calc '%.0f' "${RPS[$ep,$1]}" || echo –; }
c_p50() { has "$1" && ms "${P50[$ep,$1]}" || echo –; }
c_p99() { has "$1" && ms "${P99[$ep,$1]}" || echo –; }
c_cpu() { [ -n "${CPU[$ep,$1]:-}" ] && echo "${CPU[$ep,$1]}" || echo –; }
c_err() { has "$1" && echo "${ERRS[$ep,$1]}" || echo –; }
c_gmed() { has "$1" && ms "${GMED[$1]}" || echo –; }
c_gp99() { has "$1" && ms "${GP99[$1]}" || echo –; }
c_gev() { has "$1" && echo "${GEV[$1]}" || echo –; }
c_idle() { [ -n "${IDLE_RSS[$1]:-}" ] && mib "${IDLE_RSS[$1]}" || echo –; }
c_open() { [ -n "${OPEN_RSS[$1]:-}" ] && mib "${OPEN_RSS[$1]}" || echo –; }
c_burst() { has "$1" && echo "${BURST_OK[$1]}" || echo –; }
c_burstc() { has "$1" && echo "${BURST_CODES[$1]//x/×}" || echo –; }
c_leak() { [ "$1" = variet ] && echo "$LEAK_B" || echo –; }
c_swap() { [ "$1" = variet ] && echo "$SW_OV ($SW_MIN … $SW_MAX)" || echo –; }
c_swap2() { [ "$1" = variet ] && echo "$SW_COLD / $SW_LOAD / $SW_WARM" || echo –; }

echo "## Results"
echo
echo "wrk: POST, $connections connections, $threads thread(s), ${duration} s per run (median of $rounds round(s));"
echo "stream: $gap_rounds streamed chats of 200 tokens per target; RSS: VmRSS of the proxy process."
echo
hdr="| figure"; sep="|---"
for t in "${cols[@]}"; do hdr+=" | $t"; [ "$t" = variet-lv4 ] && hdr+=" ¹"; sep+="|---:"; done
echo "$hdr | target (variet) |"
echo "$sep|---|"
for ep in tokenize chat; do
    row "${EPATH[$ep]} req/s" "≥ 95% of direct" c_rps
    row "${EPATH[$ep]} p50 ms" "≤ direct + 0.1 ms" c_p50
    row "${EPATH[$ep]} p99 ms" "≤ direct + 1 ms" c_p99
    row "${EPATH[$ep]} proxy CPU µs per request" "–" c_cpu
    row "${EPATH[$ep]} errors (socket + non-2xx)" "0" c_err
done
row "stream inter-chunk gap, median ms" "≤ direct + 0.1 ms ²" c_gmed
row "stream inter-chunk gap, p99 ms" "≤ direct + 1 ms ²" c_gp99
row "stream SSE events per response" "= direct" c_gev
row "burst of $burst concurrent streams (max_tokens 50): complete" "all" c_burst
row "burst: HTTP status × count" "200 only" c_burstc
row "proxy RSS idle, MiB" "≤ 8 MiB" c_idle
row "proxy RSS, $streams streams open, MiB" "–" c_open
row "RSS left per stream aborted mid-response, bytes ³" "≈ 0" c_leak
row "swap overhead ms, median of $swaps (min … max)" "≤ 20 ms" c_swap
row "swap: first byte / load / warm request, ms (medians)" "–" c_swap2
echo
echo "¹ variet-lv4: the same variet role with args that set no verbosity, so variet starts its backend with"
echo "  \`-lv 4\` (what a user gets by default); every other backend runs at llama-server's default \`-lv 3\`."
echo "² no target was set for stream gaps; the request-latency targets are shown for scale."
echo "³ $(kv "$ABORTS" aborted_mid_stream) streams aborted after their first bytes, 4 at a time; VmRSS growth over the"
echo "  second half of the rounds (after the heap has warmed up) divided by the streams aborted in it."
echo
echo "- variet idle RSS: $(mib "${IDLE_RSS[variet]}") MiB, of which anonymous $(mib "$VANON") MiB (the rest is"
echo "  file-backed pages of the executable and its shared libraries); after all runs $(mib "$IDLE_RSS_AFTER") MiB."
v4line=${OPEN_INFO[variet-lv4]:-}
vline=${OPEN_INFO[variet]:-}
echo "- variet's RSS run sets \"_engine\": {\"queue_size\": $((streams + 1024))} so that all $streams streams can be held:"
echo "  it held $(kv "$vline" held) (inflight + queued); requests that ended while the rest were held, by HTTP status:"
echo "  $(kv "$vline" ended_early). With the default queue_size (the same burst sent to variet-lv4, whose _engine"
echo "  is default) it held $(kv "$v4line" held); ended early: $(kv "$v4line" ended_early)."
echo "  llama-server, the router and nginx keep every connection waiting instead."
echo "- router RSS is the router process only (not its llama-server child); nginx is master + worker."
echo "- swap overhead = first byte of a request to a stopped role − that role's last_load.seconds (GET /status)"
echo "  − the same request to the role once warm. It includes stopping the other role: llama-server's own"
echo "  SIGTERM → exit takes $STOP_MS ms here (median of 3)."
echo
echo "## Ratios against direct"
echo
echo "| proxy | request | throughput % of direct | added p50 ms | added p99 ms |"
echo "|---|---|---:|---:|---:|"
for t in "${cols[@]}"; do
    [ "$t" = direct ] && continue
    has "$t" || continue
    for ep in tokenize chat; do
        echo "| $t | ${EPATH[$ep]} | $(calc '%.1f' "100 * ${RPS[$ep,$t]} / ${RPS[$ep,direct]}")% |" \
            "$(calc '%+.3f' "(${P50[$ep,$t]} - ${P50[$ep,direct]}) / 1000") |" \
            "$(calc '%+.3f' "(${P99[$ep,$t]} - ${P99[$ep,direct]}) / 1000") |"
    done
    echo "| $t | stream gap (median, p99) | – | $(calc '%+.3f' "(${GMED[$t]} - ${GMED[direct]}) / 1000") |" \
        "$(calc '%+.3f' "(${GP99[$t]} - ${GP99[direct]}) / 1000") |"
done
echo
echo "Targets for variet (printed, not asserted): ≥ 95% of direct throughput, ≤ 0.1 ms added at p50,"
echo "≤ 1 ms added at p99, RSS ≤ 8 MiB idle, swap overhead ≤ 20 ms. On a machine with few cores the"
echo "load generator, the proxy and llama-server share the CPUs, so every proxy loses throughput there."
echo
echo "## Details"
echo
echo '```'
for n in variet variet-lv4 router nginx; do [ -n "${OPEN_INFO[$n]:-}" ] && echo "$n ${OPEN_INFO[$n]}"; done
echo "$ABORTS"
printf '%s\n' "$sout"
grep -h '^gaps ' <<<"$gout"
echo '```'
echo
echo "rss: held = requests variet holds for the role once all are sent (inflight + queued); drain_s = time"
echo "until variet lets go of all of them after the clients close; open_at_peak = streams open when RSS peaked."
