#!/usr/bin/env bash
# bench/tuner.sh — the tuner against the exhaustive grid, on the CPU.
#
# For each tiny synthetic model: measure every configuration of the space
# `variet tune` searches by default on a CPU (threads × ubatch × KV type ×
# flash attention, 72 configurations; `--space` for another) with `variet
# tune --strategy grid`, then replay the default search on that recorded
# landscape with `variet tune --replay`: how many trials it needs and how
# close its pick is to the grid's best. (A grid of 8 or 27 points measures
# mostly the search's fixed cost: baseline, measure, the interleaved
# confirmation, pruning.) Then the same on the
# simulated GPU-like landscapes (`variet tune --simulate`, shaped after the
# H200 histories in tests/fixtures/gpu/, with run noise and between-load
# drift), four seeds each, against the landscape's noise-free grid. Target:
# within 3% of the grid's best in at most 25% of its trials, averaged.
#   bench/tuner.sh [--runs N] [--space SPEC] [--models "tiny-llama ..."] [--sim-only]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=2
space=''
models="tiny-llama tiny-llama-q tiny-qwen3moe tiny-qwen35moe"
while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --space) space=$2; shift 2 ;;
        --models) models=$2; shift 2 ;;
        --sim-only) models=""; shift ;;
        *) echo "usage: $0 [--runs N] [--space SPEC] [--models LIST]" >&2; exit 2 ;;
    esac
done
cd "$root"
scripts/setup.sh
scripts/build.sh build
llama=$(scripts/get-llama-server.sh)
work=$(mktemp -d "${TMPDIR:-/tmp}/variet-tuner-XXXXXX")
[ -n "${VARIET_BENCH_KEEP:-}" ] || trap 'rm -rf "$work"' EXIT

sum_share=0 sum_ratio=0 n=0 rows_share=0 rows_ratio=0 rows=0
[ -z "$models" ] || printf '| model | grid loads | grid best gen t/s | search loads | share of the grid'"'"'s loads | search pick gen t/s | of grid best score |\n|---|---|---|---|---|---|---|\n'
for m in $models; do
    d=$work/$m
    mkdir -p "$d"
    build/variet synth "$m" -o "$d/m.gguf" >/dev/null
    cat > "$d/engine_models.json" <<JSON
{"_engine": {"llama_server": "$llama"},
 "fast": {"display_name": "$m", "model_path": "m.gguf", "measured_tps": 0, "args": ["-c", "2048", "-np", "1"]}}
JSON
    cp "$d/engine_models.json" "$d/start.json"
    build/variet tune fast --config "$d/engine_models.json" ${space:+--space "$space"} --strategy grid --runs "$runs" \
        >"$d/grid.out" 2>"$d/grid.err" || { echo "grid run failed for $m:" >&2; tail -5 "$d/grid.err" >&2; exit 1; }
    # replay from the starting configuration (the grid run rewrote the registry)
    line=$(build/variet tune fast --config "$d/start.json" ${space:+--space "$space"} --replay "$d/tune-fast.json" 2>/dev/null)
    # replay: grid G loads, best B t/s; search S loads (P% of the grid's), found F t/s (R% of the grid's best score)
    read -r G B S P F R < <(sed -E 's/replay: grid ([0-9]+) loads, best ([0-9.]+) t\/s; search ([0-9]+) loads \(([0-9.]+)% of the grid.s\), found ([0-9.]+) t\/s \(([0-9.]+)% of the grid.s best score\)/\1 \2 \3 \4 \5 \6/' <<<"$line")
    printf '| %s | %s | %s | %s | %s%% | %s | %s%% |\n' "$m" "$G" "$B" "$S" "$P" "$F" "$R"
    sum_share=$(awk -v a="$sum_share" -v b="$P" 'BEGIN{print a+b}')
    sum_ratio=$(awk -v a="$sum_ratio" -v b="$R" 'BEGIN{print a+b}')
    rows_share=$(awk -v a="$rows_share" -v b="$P" 'BEGIN{print a+b}')
    rows_ratio=$(awk -v a="$rows_ratio" -v b="$R" 'BEGIN{print a+b}')
    rows=$((rows + 1))
    n=$((n + 1))
done
# simulated GPU-like landscapes on the real 35B shape (a sparse file: shapes only)
sim=$work/sim
mkdir -p "$sim"
build/variet synth qwen35-35b-a3b --sparse -o "$sim/m.gguf" >/dev/null
seed_args='"-ngl","999","-c","32768","-np","1","-fa","on","-ctk","q4_0","-ctv","q4_0","-ub","256","-b","512","-t","6","-tb","6","--poll","50","--prio","3"'
printf '{"balanced": {"display_name": "B", "model_path": "m.gguf", "measured_tps": 0, "args": [%s]}}\n' "$seed_args" >"$sim/engine_models.json"
printf '\n| simulated landscape | free MiB | seed | grid configurations | grid loads | search loads | share of the grid'"'"'s loads | of grid best score |\n|---|---|---|---|---|---|---|---|\n'
for spec in "gpu-host-experts 12800 32768" "gpu-full 21500 47872" "gpu-full-pair 21500 47872"; do
    read -r land free ctx <<<"$spec"
    ls_share=0 ls_ratio=0
    for seed in 1 2 3 4; do
        line=$(build/variet tune balanced --config "$sim/engine_models.json" --simulate "$land" --gpu-free "$free" \
            --ctx "$ctx" --budget 10m --seed "$seed" 2>/dev/null | head -1)
        # simulate L: grid G configurations (F run), L loads, best ...; search S loads (P% of the grid's loads), ...; found R% of the grid's best; ...
        read -r G L S P R < <(sed -E 's/.*grid ([0-9]+) configurations \([0-9]+ run\), ([0-9]+) loads.*search ([0-9]+) loads \(([0-9.]+)% of the grid.s loads\).*found ([0-9.]+)% of the grid.s best.*/\1 \2 \3 \4 \5/' <<<"$line")
        printf '| %s | %s | %s | %s | %s | %s | %s%% | %s%% |\n' "$land" "$free" "$seed" "$G" "$L" "$S" "$P" "$R"
        ls_share=$(awk -v a="$ls_share" -v b="$P" 'BEGIN{print a+b}')
        ls_ratio=$(awk -v a="$ls_ratio" -v b="$R" 'BEGIN{print a+b}')
        rows_share=$(awk -v a="$rows_share" -v b="$P" 'BEGIN{print a+b}')
        rows_ratio=$(awk -v a="$rows_ratio" -v b="$R" 'BEGIN{print a+b}')
        rows=$((rows + 1))
    done
    # a landscape counts once: its four seeds are noise draws of it
    sum_share=$(awk -v a="$sum_share" -v b="$ls_share" 'BEGIN{print a+b/4}')
    sum_ratio=$(awk -v a="$sum_ratio" -v b="$ls_ratio" 'BEGIN{print a+b/4}')
    n=$((n + 1))
done
awk -v s="$sum_share" -v r="$sum_ratio" -v n="$n" -v rs="$rows_share" -v rr="$rows_ratio" -v rn="$rows" 'BEGIN{
    printf "\naverage over %d landscapes (each simulated one the mean of its seeds): search used %.0f%% of the grid'"'"'s loads and found %.1f%% of its best (target: <= 25%% of loads, >= 97%% of best)\n", n, s/n, r/n
    printf "average over all %d rows: %.0f%% of the grid'"'"'s loads, %.1f%% of its best\n", rn, rs/rn, rr/rn }'
echo "(grid measured with --runs $runs per configuration; a grid's loads include failed ones, not the planner's rejections; CPU figures on a shared 2-core machine are noisy)"
