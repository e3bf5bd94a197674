#!/usr/bin/env bash
# Fresh machine -> the main job on the built-in tiny default.
# Training (ipa-train) is not built yet; until it is, the demo runs what exists: it checks
# and runs the tiny VACE DiT on saved inputs from the upstream-parity fixtures, compares
# the result with the official PyTorch output, and benchmarks forward/backward on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

ipa_install_deps
ipa_check_blas
mkdir -p build demo-out
ipa_configure build -DIPA_BUILD_TESTS=OFF
cmake --build build -j "$IPA_JOBS" --target ipa-inspect

inspect=build/apps/ipa-inspect
fx=tests/fixtures/wan
echo
echo "== 1. the weights of a tiny VACE model (official key names)"
$inspect keys "$fx/vace_b2.weights.safetensors" --totals
echo
echo "== 2. strict check of those weights against the model config"
$inspect check --model "$fx/vace_b2.yaml" --weights "$fx/vace_b2.weights.safetensors"
echo
echo "== 3. one DiT forward on saved inputs (x, t, context, vace_context, context_scale)"
$inspect forward --model "$fx/vace_b2.yaml" --weights "$fx/vace_b2.weights.safetensors" \
    --inputs "$fx/vace_b2.io.safetensors" --out demo-out/vace_b2.out.safetensors
echo
echo "== 4. forward / forward+backward benchmark of the tiny config (random weights)"
$inspect bench-forward --model configs/models/tiny.yaml --latent 5 16 16 --iters 3
echo
echo "demo done: output tensor in demo-out/vace_b2.out.safetensors;"
echo "the parity tests (scripts/test.sh) compare it with the official PyTorch output."
