#!/usr/bin/env bash
# bench/tuner-gpu.sh — `variet tune` against llama.cpp's own placement on a
# real GPU, under emulated free memory (a helper process holds the rest).
#
# For each free-memory figure: llama.cpp's untouched defaults (no args,
# --fit on), `-c CTX -np 1` with --fit, and `variet tune` from the seed's
# args, each then benched the same way (`variet bench --direct --scenario
# both --runs 3`: short ≈188 prompt tokens + 300 generated → gen t/s; long
# ≈3,100 prompt tokens → prefill t/s). Prints one table with the ratios
# against the defaults, which are what it exists for:
#   12,800 MiB, --ctx 32768:  tuned ≥ 1.15× gen and ≥ 1.25× long prompt
#   21,500 MiB, one slot ≥ the defaults' context: ≥ 1.25× long prompt, gen ≥ 1×
#
#   VARIET_LLAMA_SERVER=/path/to/cuda/llama-server bench/tuner-gpu.sh \
#       [--free "12800 21500"] [--budget 10m] [--model FILE] [--work DIR]
# It never builds llama-server. Needs python3 with torch for the memory
# holder (bench/gpu-hold.py) and nvidia-smi/NVML. VARIET=path picks the
# variet binary (default build/variet, built when missing).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
free_list="12800 21500"
budget=10m
model=""
work=""
while [ $# -gt 0 ]; do
    case $1 in
        --free) free_list=$2; shift 2 ;;
        --budget) budget=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        *) echo "usage: $0 [--free 'MiB ...'] [--budget 10m] [--model FILE] [--work DIR]" >&2; exit 2 ;;
    esac
done
: "${VARIET_LLAMA_SERVER:?set VARIET_LLAMA_SERVER to a CUDA llama-server (this script never builds one)}"
variet=${VARIET:-$root/build/variet}
[ -x "$variet" ] || { "$root/scripts/build.sh" "$root/build"; variet=$root/build/variet; }
work=${work:-$(mktemp -d "${TMPDIR:-/tmp}/variet-tuner-gpu-XXXXXX")}
mkdir -p "$work"
model=${model:-$work/qwen35-35b-a3b.gguf}
[ -f "$model" ] || "$variet" synth qwen35-35b-a3b -o "$model" >/dev/null
hold_pid=""
cleanup() { [ -z "$hold_pid" ] || kill "$hold_pid" 2>/dev/null || true; }
trap cleanup EXIT

seed_args='"-ngl","999","-c","32768","-np","1","-fa","on","-ctk","q4_0","-ctv","q4_0","-ub","256","-b","512","-t","6","-tb","6","--poll","50","--prio","3"'

config() { # DIR ARGS_JSON
    mkdir -p "$1"
    cat >"$1/engine_models.json" <<JSON
{"_engine": {"llama_server": "$VARIET_LLAMA_SERVER", "load_timeout": 600},
 "balanced": {"display_name": "Qwen3.5-35B-A3B (synthetic)", "model_path": "$model", "measured_tps": 0, "args": [$2]}}
JSON
}

bench_role() { # DIR LABEL → "gen long"
    "$variet" bench balanced --config "$1/engine_models.json" --direct --scenario both --runs 3 --json \
        >"$1/bench.json" 2>"$1/bench.err" || { echo "bench failed ($2):" >&2; tail -5 "$1/bench.err" >&2; echo "0 0"; return; }
    python3 - "$1/bench.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
s = j["scenarios"]
print(f'{s["short"]["median"]["gen_tps"]:.2f} {s["long"]["median"]["prompt_tps"]:.1f}')
PY
}

args_of() { python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["balanced"]["args"]))' "$1/engine_models.json"; }

rows=()
for free in $free_list; do
    cleanup
    python3 "$here/gpu-hold.py" "$free" >"$work/hold-$free.log" 2>&1 &
    hold_pid=$!
    for _ in $(seq 1 120); do grep -q holding "$work/hold-$free.log" 2>/dev/null && break; sleep 0.5; done
    echo "== $free MiB free: $(cat "$work/hold-$free.log")" >&2
    if [ "$free" -le 16000 ]; then ctx=32768; else ctx=47872; fi
    d=$work/$free
    config "$d/defaults" ""
    read -r g0 l0 < <(bench_role "$d/defaults" defaults)
    echo "defaults: gen $g0, long prompt $l0" >&2
    config "$d/fit" "\"-c\",\"$ctx\",\"-np\",\"1\""
    read -r g1 l1 < <(bench_role "$d/fit" fit)
    echo "-c $ctx -np 1 (fit): gen $g1, long prompt $l1" >&2
    if [ "$free" -le 16000 ]; then config "$d/tune" "$seed_args"
    else config "$d/tune" "${seed_args/\"32768\"/\"262144\"}"; fi
    t0=$(date +%s)
    (cd "$d/tune" && "$variet" tune balanced --config engine_models.json --ctx "$ctx" --budget "$budget" \
        --objective gen=1,prompt=1 >"$d/tune.out" 2>"$d/tune.err") || { echo "tune failed:" >&2; tail -20 "$d/tune.err" >&2; }
    t1=$(date +%s)
    read -r g2 l2 < <(bench_role "$d/tune" tuned)
    echo "tuned ($(( (t1 - t0) / 60 )) min): gen $g2, long prompt $l2: $(args_of "$d/tune")" >&2
    rows+=("| $free | llama.cpp defaults (\`--fit\` on) | $g0 | $l0 | 1.00 | 1.00 |")
    rows+=("| $free | \`-c $ctx -np 1\`, \`--fit\` on | $g1 | $l1 | $(awk -v a="$g1" -v b="$g0" 'BEGIN{printf "%.2f", (b>0?a/b:0)}') | $(awk -v a="$l1" -v b="$l0" 'BEGIN{printf "%.2f", (b>0?a/b:0)}') |")
    rows+=("| $free | \`variet tune --ctx $ctx --budget $budget\` ($(( (t1 - t0) / 60 )) min): \`$(args_of "$d/tune")\` | $g2 | $l2 | $(awk -v a="$g2" -v b="$g0" 'BEGIN{printf "%.2f", (b>0?a/b:0)}') | $(awk -v a="$l2" -v b="$l0" 'BEGIN{printf "%.2f", (b>0?a/b:0)}') |")
    cp "$d"/tune/tune-balanced-*.md "$work/tune-$free.md" 2>/dev/null || true
    cp "$d/tune/tune-balanced.json" "$work/tune-$free.json" 2>/dev/null || true
done
cleanup
hold_pid=""
echo
echo "| free MiB | configuration | short gen t/s | long prompt t/s | gen × defaults | long prompt × defaults |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "(targets: 12,800 MiB: ≥ 1.15× gen and ≥ 1.25× long prompt; 21,500 MiB: ≥ 1.25× long prompt, gen ≥ 1.00×;"
echo " retuning logs and histories in $work)"
