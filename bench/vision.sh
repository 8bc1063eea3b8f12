#!/usr/bin/env bash
# bench/vision.sh — what a picture costs and what a draft model buys, measured with `variet bench`.
#
# Vision: `variet bench ROLE --scenario vision` (one generated PNG per size, sent as an image_url
# part): image tokens, the projector's encode ms (llama-server's log), time to first token and the
# generation after the picture — with the projector on the host (--no-mmproj-offload) and, on a
# machine with a GPU and a CUDA llama-server, on the GPU; the ratio host / GPU of encode ms.
# Draft: the short scenario (~170 prompt tokens, 300 generated) without and with a draft model
# (-md DRAFT --spec-type draft-simple): generation t/s, cold start, acceptance; the ratio on / off.
#
#   bench/vision.sh                                  # CPU, tiny models: host column, draft table
#   VARIET_LLAMA_SERVER=/opt/llama-cuda/llama-server bench/vision.sh \
#       --model qwen35-35b-a3b.gguf --mmproj qwen35-35b-a3b-mmproj.gguf --draft draft.gguf --args '"-c","16384"'
#
# Options: --model FILE --mmproj FILE (default: `variet synth tiny-qwen35moe` and
#          `tiny-qwen35-mmproj`), --draft FILE (default tiny-draft with the tiny model; with --model
#          the draft table needs --draft), --sizes 640,1024, --runs N (3), --args 'JSON strings'
#          (added to every role's args, e.g. '"-c","16384","-fa","on"').
# Env: VARIET (default build/variet), VARIET_LLAMA_SERVER (else scripts/get-llama-server.sh),
#      THREADS (llama-server -t, default: llama-server's own).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
variet=${VARIET:-$root/build/variet}
llama=${VARIET_LLAMA_SERVER:-$("$root/scripts/get-llama-server.sh")}
model= mmproj= draft= sizes=640,1024 runs=3 extra=
while [ $# -gt 0 ]; do
    case $1 in
    --model) model=$(realpath "$2"); shift 2 ;;
    --mmproj) mmproj=$(realpath "$2"); shift 2 ;;
    --draft) draft=$(realpath "$2"); shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --args) extra=",$2"; shift 2 ;;
    *) echo "bench/vision.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -x "$variet" ] || { echo "bench/vision.sh: $variet not built (scripts/build.sh)" >&2; exit 1; }
work=$(mktemp -d /tmp/variet-vision.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [ -z "$model" ]; then
    "$variet" synth tiny-qwen35moe -o "$work/model.gguf" >/dev/null
    "$variet" synth tiny-qwen35-mmproj -o "$work/mmproj.gguf" >/dev/null
    "$variet" synth tiny-draft -o "$work/draft.gguf" >/dev/null
    model=$work/model.gguf mmproj=$work/mmproj.gguf draft=$work/draft.gguf
    ctx=8192
else
    [ -n "$mmproj" ] || { echo "bench/vision.sh: --model needs --mmproj" >&2; exit 2; }
    ctx=16384
fi
[ -z "${THREADS:-}" ] || extra="$extra,\"-t\",\"$THREADS\""
gpus=$("$variet" hw --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("gpus") or []))')

cat >"$work/engine_models.json" <<EOF
{"_engine": {"llama_server": "$llama", "stop_grace": 5},
 "host": {"model_path": "$model", "args": ["-c", "$ctx", "-np", "1", "-ngl", "999", "--mmproj", "$mmproj", "--no-mmproj-offload"$extra]},
 "gpu": {"model_path": "$model", "args": ["-c", "$ctx", "-np", "1", "-ngl", "999", "--mmproj", "$mmproj"$extra]},
 "nodraft": {"model_path": "$model", "args": ["-c", "$ctx", "-np", "1", "-ngl", "999"$extra]},
 "draft": {"model_path": "$model", "args": ["-c", "$ctx", "-np", "1", "-ngl", "999", "-md", "${draft:-none}", "-ngld", "999", "--spec-type", "draft-simple"$extra]}}
EOF
bench() { # role scenario args... → JSON file $work/ROLE.json
    local role=$1; shift
    echo "bench/vision.sh: variet bench $role $*" >&2
    "$variet" bench "$role" --config "$work/engine_models.json" --direct --runs "$runs" --json "$@" \
        >"$work/$role.json" 2>"$work/$role.err" || { cat "$work/$role.err" >&2; return 1; }
}
bench host --scenario vision --image-size "$sizes"
cols=host
if [ "$gpus" -gt 0 ]; then bench gpu --scenario vision --image-size "$sizes" && cols="host gpu"; fi
if [ -n "$draft" ]; then bench nodraft --scenario short && bench draft --scenario short; fi

python3 - "$work" "$cols" "$model" "$mmproj" "${draft:-}" "$llama" <<'EOF'
import json, os, sys
work, cols, model, mmproj, draft, llama = sys.argv[1], sys.argv[2].split(), *sys.argv[3:]
load = lambda r: json.load(open(os.path.join(work, r + ".json")))
res = {c: load(c) for c in cols}
# a GPU column whose projector did not run on a GPU (a CPU build of llama-server) says so, not a ratio
if "gpu" in res:
    devs = {v.get("projector_device") for v in res["gpu"]["scenarios"].values()}
    if devs <= {"CPU", "", None}:
        print("note: the GPU role's projector ran on %s (is %s a CUDA build?): GPU column left out" % (", ".join(sorted(d or "?" for d in devs)), llama))
        del res["gpu"]
        cols = ["host"]
print("vision: %s + %s, llama-server %s" % (os.path.basename(model), os.path.basename(mmproj), llama))
def med(c, key, f):
    v = res[c]["scenarios"].get(key, {})
    x = (v.get("median") or {}).get(f)
    return x
hdr = "%-8s %7s %9s" % ("picture", "tokens", "(inspect)")
for f in ("encode ms", "TTFT ms", "gen t/s"):
    for c in cols:
        hdr += " | %14s" % ("%s %s" % (f, "host" if c == "host" else "GPU"))
if "gpu" in res:
    hdr += " | encode host/GPU"
print(hdr)
keys = [k for k in res["host"]["scenarios"]]
fmt = lambda x, d: "–" if x is None else ("%.*f" % (d, x))
for k in keys:
    v = res["host"]["scenarios"][k]
    line = "%-8s %7s %9s" % (str(v.get("image_px")) + " px", fmt(v.get("image_tokens"), 0), "(" + fmt(v.get("image_tokens_inspect"), 0) + ")")
    for f, d in (("encode_ms", 1), ("ttft_ms", 1), ("gen_tps", 2)):
        for c in cols:
            line += " | %14s" % fmt(med(c, k, f), d)
    if "gpu" in res:
        h, g = med("host", k, "encode_ms"), med("gpu", k, "encode_ms")
        line += " | %s" % ("%.2fx" % (h / g) if h and g else "–")
    print(line)
    if v.get("note"):
        print("  %s: %s" % (k, v["note"]))
print("projector on: " + ", ".join("%s %s" % (c, next(iter(res[c]["scenarios"].values())).get("projector_device") or "?") for c in cols))
if draft:
    off, on = load("nodraft"), load("draft")
    so, sn = off["scenarios"]["short"], on["scenarios"]["short"]
    print("\ndraft: %s for %s, short scenario (~170 prompt tokens, 300 generated), median of the runs" % (os.path.basename(draft), os.path.basename(model)))
    print("%-10s | %9s | %12s | %s" % ("", "gen t/s", "cold start s", "acceptance"))
    print("%-10s | %9.2f | %12.2f | %s" % ("off", so["median"]["gen_tps"], off["cold_start_s"], "–"))
    d = sn.get("draft")
    acc = "%.3f (%d of %d)" % (d["acceptance"], d["accepted"], d["drafted"]) if d else "– (%s)" % on.get("draft_note", "no draft figures")
    print("%-10s | %9.2f | %12.2f | %s" % ("on", sn["median"]["gen_tps"], on["cold_start_s"], acc))
    print("ratio on/off: gen %.2fx, cold start %.2fx" % (sn["median"]["gen_tps"] / so["median"]["gen_tps"], on["cold_start_s"] / off["cold_start_s"]))
EOF
