#!/usr/bin/env bash
# bench/planner.sh — the planner's error table: every tiny synthetic model ×
# K/V type {f16, q8_0, q4_0} × context {2048, 8192, 32768} × ubatch {128,
# 512}, predicted vs what the real llama-server reports (-lv 4) on the CPU
# backend. Prints a Markdown table and the worst compute-buffer error (the
# ratio it exists for). Same harness as tests/test_e2e_plan.c.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
scripts/build.sh build
VARIET_LLAMA_SERVER=$(scripts/get-llama-server.sh)
export VARIET_LLAMA_SERVER
VARIET_PLAN_TABLE=1 build/tests/test_e2e_plan | grep -E '^\||^planner accuracy'
echo
echo "GPU side: tests/test_plan.c checks the H100 fixture logs (KV, RS, output exact; compute within 10%)."
