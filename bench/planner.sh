#!/usr/bin/env bash
# bench/planner.sh — the planner's error tables.
#
# CPU: every tiny synthetic model × K/V type {f16, q8_0, q4_0} × context
# {2048, 8192, 32768} × ubatch {128, 512}, predicted vs what the real
# llama-server reports (-lv 4) on the CPU backend (tests/test_e2e_plan.c);
# then the companions: projectors (both types, flash attention on/off, token
# limits, --no-mmproj-offload) and drafts (their KV types, ubatch, the
# model's context) beside the tiny models, with the worst projector and
# draft compute errors; and the projector compute formula against
# llama-server's own reserve for 69 recorded encoder shapes.
#
# GPU: every GPU fixture in tests/fixtures (H100 load logs, the H200 tuning
# histories, winners and anchors), predicted per device — weights, KV,
# recurrent state, GPU and host compute buffers — and the context llama-server's
# --fit chose (tests/test_plan.c). Prints the worst compute error (overall and
# with host-resident experts) and the worst fit-context error: the ratios the
# planner is held to (5% and 1%).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
scripts/build.sh build
VARIET_LLAMA_SERVER=$(scripts/get-llama-server.sh)
export VARIET_LLAMA_SERVER
echo "## CPU backend (real llama-server runs)"
echo
VARIET_PLAN_TABLE=1 build/tests/test_e2e_plan | grep -E '^\||^planner accuracy|^companions'
echo
echo "## GPU fixtures (CUDA logs and histories; fit replayed on the free memory they saw)"
echo
VARIET_PLAN_TABLE=1 build/tests/test_plan | grep -E '^\||^planner GPU fixtures|^projector compute'
