#!/usr/bin/env bash
# demo.sh — set up, build, write two synthetic models and inspect them.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
scripts/build.sh build
mkdir -p demo
build/variet synth tiny-llama -o demo/fast.gguf
build/variet synth tiny-qwen35moe -o demo/balanced.gguf
build/variet inspect demo/fast.gguf
build/variet inspect demo/balanced.gguf
