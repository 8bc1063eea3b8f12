#!/usr/bin/env bash
# bench/tuner-gpu.sh — `variet tune` against llama.cpp's own placement on a
# real GPU, under emulated free memory (a helper process holds the rest).
#
# For each free-memory figure: llama.cpp's untouched defaults (no args,
# --fit on), `-c CTX -np 1` with --fit, and `variet tune` from the seed's
# args. After the tuning the three are benched in interleaved rounds
# (defaults, fit, tuned, defaults, fit, tuned, …; `--rounds`, default 3),
# each a fresh load measured the same way (`variet bench --direct --scenario
# both --runs 3`: short ≈188 prompt tokens + 300 generated → gen t/s; long
# ≈3,100 prompt tokens → prefill t/s), so a drift between loads (±8% seen on
# the H200) falls on all three alike; each figure is the median over the
# rounds (each round also runs `--scenario turn`, a chat's second turn with
# the prompt cache on, printed in a second table: what context checkpoints
# buy a hybrid model). Prints one table with the ratios against the
# defaults, which are what it exists for:
#   12,800 MiB, --ctx 32768:  tuned ≥ 1.15× gen and ≥ 1.25× long prompt
#   21,500 MiB, one slot ≥ the defaults' context: ≥ 1.25× long prompt, gen ≥ 1×
#
#   VARIET_LLAMA_SERVER=/path/to/cuda/llama-server bench/tuner-gpu.sh \
#       [--free "12800 21500"] [--budget 10m] [--rounds 3] [--model FILE] [--work DIR] [--stage all|tune|bench]
#       [--objective W] [--also "ARGS"]...
# --objective is variet tune's (default gen=1,prompt=1,gen>=1: the targets
# want prefill without generation below llama.cpp's own, and the tuner
# measures llama.cpp's own placement, `-c CTX -np 1` with --fit, beside its
# search and compares its winner with it at the end).
# --stage tune stops after the tuning and --stage bench (same --work) goes on
# from there, for machines that limit how long one command runs. --also adds
# a configuration of your own (llama-server args, space-separated) to the
# interleaved rounds and the table, e.g. a hand-tuned one or a variant of
# the tuned args, measured the same way beside the others.
# It never builds llama-server. Needs python3 with torch for the memory
# holder (bench/gpu-hold.py) and nvidia-smi/NVML. VARIET=path picks the
# variet binary (default build/variet, built when missing).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
free_list="12800 21500"
budget=10m
rounds=3
model=""
work=""
stage=all
objective='gen=1,prompt=1,gen>=1'
also=()
while [ $# -gt 0 ]; do
    case $1 in
        --free) free_list=$2; shift 2 ;;
        --budget) budget=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --stage) stage=$2; shift 2 ;;
        --also) also+=("$2"); shift 2 ;;
        --objective) objective=$2; shift 2 ;;
        *) echo "usage: $0 [--free 'MiB ...'] [--budget 10m] [--rounds 3] [--model FILE] [--work DIR] [--stage all|tune|bench] [--objective W] [--also 'ARGS']..." >&2; exit 2 ;;
    esac
done
case $stage in all | tune | bench) ;; *) echo "$0: --stage is all, tune or bench" >&2; exit 2 ;; esac
[ "$stage" != bench ] || [ -n "$work" ] || { echo "$0: --stage bench needs the --work DIR of --stage tune" >&2; exit 2; }
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

bench_role() { # DIR LABEL ROUND → "gen long turn_s kept" (also appended to DIR/rounds.txt)
    "$variet" bench balanced --config "$1/engine_models.json" --direct --scenario both,turn --runs 3 --json \
        >"$1/bench-$3.json" 2>"$1/bench-$3.err" || { echo "bench failed ($2):" >&2; tail -5 "$1/bench-$3.err" >&2; echo "0 0 0 -1"; return; }
    python3 - "$1/bench-$3.json" <<'PY' | tee -a "$1/rounds.txt"
import json, sys
j = json.load(open(sys.argv[1]))
s = j["scenarios"]
t = s.get("turn", {}).get("median", {})  # a chat's second turn: its prefill s and the tokens it kept
print(f'{s["short"]["median"]["gen_tps"]:.2f} {s["long"]["median"]["prompt_tps"]:.1f} '
      f'{t.get("prefill_s", 0):.4f} {t.get("cache_n", -1)}')
PY
}

median_of() { # DIR → "gen long turn_s kept": medians over its rounds
    python3 - "$1/rounds.txt" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
rows = [r + [0, -1][len(r) - 2:] if len(r) < 4 else r for r in rows]
rows = [r for r in rows if r[0] > 0] or [[0, 0, 0, -1]]
m = [statistics.median(r[k] for r in rows) for k in range(4)]
print(f'{m[0]:.2f} {m[1]:.1f} {m[2]:.3f} {m[3]:.0f}')
PY
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", (b>0?a/b:0)}'; }

args_of() { python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["balanced"]["args"]))' "$1/engine_models.json"; }

rows=() turns=()
for free in $free_list; do
    cleanup
    python3 "$here/gpu-hold.py" "$free" >"$work/hold-$free.log" 2>&1 &
    hold_pid=$!
    for _ in $(seq 1 120); do grep -q holding "$work/hold-$free.log" 2>/dev/null && break; sleep 0.5; done
    echo "== $free MiB free: $(cat "$work/hold-$free.log")" >&2
    if [ "$free" -le 16000 ]; then ctx=32768; else ctx=47872; fi
    d=$work/$free
    if [ "$stage" != bench ]; then
        config "$d/defaults" ""
        read -r g0 l0 _ < <(bench_role "$d/defaults" defaults 0)
        echo "defaults (before tuning): gen $g0, long prompt $l0" >&2
        config "$d/fit" "\"-c\",\"$ctx\",\"-np\",\"1\""
        if [ "$free" -le 16000 ]; then config "$d/tune" "$seed_args"
        else config "$d/tune" "${seed_args/\"32768\"/\"262144\"}"; fi
        t0=$(date +%s)
        (cd "$d/tune" && "$variet" tune balanced --config engine_models.json --ctx "$ctx" --budget "$budget" \
            --objective "$objective" >"$d/tune.out" 2>"$d/tune.err") || { echo "tune failed:" >&2; tail -20 "$d/tune.err" >&2; }
        t1=$(date +%s)
        echo $(( (t1 - t0) / 60 )) >"$d/tune-minutes"
        echo "$objective" >"$d/tune-objective"
        [ "$stage" = tune ] && continue
    fi
    [ -f "$d/tune-minutes" ] || { echo "$0: no tuning in $d (run --stage tune first)" >&2; exit 1; }
    mins=$(cat "$d/tune-minutes")
    obj=$(cat "$d/tune-objective" 2>/dev/null || echo "gen=1,prompt=1")
    which_all="defaults fit tune"
    for i in "${!also[@]}"; do
        json=$(python3 -c 'import json,sys; print(",".join(json.dumps(a) for a in sys.argv[1].split()))' "${also[$i]}")
        config "$d/also$i" "$json"
        which_all="$which_all also$i"
    done
    for which in $which_all; do : >"$d/$which/rounds.txt"; done
    for k in $(seq 1 "$rounds"); do
        for which in $which_all; do
            read -r g l ts tk < <(bench_role "$d/$which" "$which" "$k")
            echo "round $k, $which: gen $g, long prompt $l, second turn $ts s ($tk kept)" >&2
        done
    done
    read -r g0 l0 t0 k0 < <(median_of "$d/defaults")
    read -r g1 l1 t1 k1 < <(median_of "$d/fit")
    read -r g2 l2 t2 k2 < <(median_of "$d/tune")
    echo "tuned ($mins min): gen $g2, long prompt $l2: $(args_of "$d/tune")" >&2
    # where the search started, and its own final comparison with llama.cpp's placement (-c CTX -np 1,
    # --fit), when it made one
    sed -n -e "s/^the search starts from /  the search started from /p" \
        -e "s/^ *the search's best against llama.cpp's own placement (paired): /  in the tuning, against -c $ctx -np 1 with --fit: /p" \
        "$d/tune.out" "$d/tune.err" >&2 2>/dev/null || true
    rows+=("| $free | llama.cpp defaults (\`--fit\` on) | $g0 | $l0 | 1.00 | 1.00 |")
    rows+=("| $free | \`-c $ctx -np 1\`, \`--fit\` on | $g1 | $l1 | $(ratio "$g1" "$g0") | $(ratio "$l1" "$l0") |")
    rows+=("| $free | \`variet tune --ctx $ctx --budget $budget --objective $obj\` ($mins min): \`$(args_of "$d/tune")\` | $g2 | $l2 | $(ratio "$g2" "$g0") | $(ratio "$l2" "$l0") |")
    turns+=("| $free | llama.cpp defaults | $k0 | $t0 |" "| $free | \`-c $ctx -np 1\`, \`--fit\` on | $k1 | $t1 |"
        "| $free | tuned | $k2 | $t2 |")
    for i in "${!also[@]}"; do
        read -r ga la ta ka < <(median_of "$d/also$i")
        rows+=("| $free | --also \`${also[$i]}\` | $ga | $la | $(ratio "$ga" "$g0") | $(ratio "$la" "$l0") |")
        turns+=("| $free | --also \`${also[$i]}\` | $ka | $ta |")
    done
    cp "$d"/tune/tune-balanced-*.md "$work/tune-$free.md" 2>/dev/null || true
    cp "$d/tune/tune-balanced.json" "$work/tune-$free.json" 2>/dev/null || true
done
cleanup
hold_pid=""
[ "$stage" != tune ] || { echo "tuned; the table comes from: $0 --stage bench --work $work --free \"$free_list\"" >&2; exit 0; }
echo
echo "| free MiB | configuration | short gen t/s | long prompt t/s | gen × defaults | long prompt × defaults |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "(each figure: the median over $rounds interleaved rounds after the tuning, each a fresh load with 3 runs of each scenario)"
echo "(targets: 12,800 MiB: ≥ 1.15× gen and ≥ 1.25× long prompt; 21,500 MiB: ≥ 1.25× long prompt, gen ≥ 1.00×;"
echo " retuning logs and histories in $work)"
echo
echo "A chat's second turn after the long prompt (variet bench --scenario turn, prompt cache on): what context"
echo "checkpoints buy, beside what they cost the long prompt above"
echo
echo "| free MiB | configuration | tokens kept from the first turn | second turn prefill s |"
echo "|---|---|---|---|"
printf '%s\n' "${turns[@]}"
echo
