#!/usr/bin/env bash
# Fresh machine -> the main job on the built-in tiny default: a real (tiny) IPA training
# run on CPU. The tiny VACE DiT (random base weights: no real checkpoint is downloaded) gets
# QKV LoRA trained with Flow-IPA + HALO against its adapter-off reference, on a synthetic
# cache of 8 samples with latent hand masks, for 60 steps with checkpoints and metrics.
# Then it shows the parity check of the DiT against the official PyTorch output.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

ipa_install_deps
ipa_check_blas
mkdir -p build
ipa_configure build
cmake --build build -j "$IPA_JOBS" --target ipa-train ipa-inspect

echo
echo "== 1. tiny IPA training (configs/train/tiny-cpu.yaml) into demo-out/"
rm -rf demo-out
build/apps/ipa-train --config configs/train/tiny-cpu.yaml --no-progress

echo
echo "== 2. the trained adapter (portable LoRA keys: diffusion_model.blocks.N.self_attn.{q,k,v}.lora_A/B)"
build/apps/ipa-inspect keys demo-out/run/latest/adapter.safetensors --grep blocks.0.

fx=tests/fixtures/wan
echo
echo "== 3. the DiT against the official PyTorch output (tiny VACE fixture)"
build/apps/ipa-inspect forward --model "$fx/vace_b2.yaml" --weights "$fx/vace_b2.weights.safetensors" \
    --inputs "$fx/vace_b2.io.safetensors" --out demo-out/vace_b2.out.safetensors
echo
echo "demo done. adapter: demo-out/run/latest/adapter.safetensors  metrics: demo-out/run/metrics.jsonl"
