#!/usr/bin/env bash
# Fresh machine -> the main job on the built-in tiny default, all on CPU, nothing downloaded:
#  1. ipa-curate: a small synthetic animation set (dancers with labelled hand defects),
#     scored for hand quality, the DPO-pair statistics, and the good candidates selected;
#  2. ipa-train: a real (tiny) IPA run — QKV LoRA on the tiny VACE DiT (random base weights)
#     with Flow-IPA + HALO against its adapter-off reference, on a synthetic cache of 8
#     samples with latent hand masks, 60 steps with checkpoints and metrics;
#  3. ipa-sample with that adapter: pose video + reference image -> video, through the tiny
#     VAE and umT5 of the test fixtures (random weights, so the video is noise-like);
#  4. the DiT against the official PyTorch output.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

ipa_install_deps
ipa_check_blas
mkdir -p build
ipa_configure build
cmake --build build -j "$IPA_JOBS" --target ipa-train ipa-inspect ipa-curate ipa-sample

rm -rf demo-out
echo
echo "== 1. curation on a synthetic animation set (demo-out/synth)"
build/apps/ipa-curate synth --out demo-out/synth --clips 4 --seed 1
build/apps/ipa-curate score --manifest demo-out/synth/candidates.csv --out demo-out/scores
build/apps/ipa-curate pairs --scores demo-out/scores/scores.json
build/apps/ipa-curate index --manifest demo-out/synth/candidates.csv --scores demo-out/scores/scores.json \
    --out demo-out/index.html

echo
echo "== 2. tiny IPA training (configs/train/tiny-cpu.yaml) into demo-out/run"
build/apps/ipa-train --config configs/train/tiny-cpu.yaml --no-progress
build/apps/ipa-inspect keys demo-out/run/latest/adapter.safetensors --grep blocks.0.

echo
echo "== 3. ipa-sample with the trained adapter (tiny DiT, tiny VAE + umT5 from tests/fixtures)"
clip=demo-out/synth/clip_000  # its pose video and reference image
build/apps/ipa-sample --model tiny --lora demo-out/run/latest/adapter.safetensors \
    --vae tests/fixtures/vae/tiny.weights.pth --text-encoder tests/fixtures/t5/tiny_umt5.pth \
    --tokenizer tests/fixtures/t5 --pose "$clip/pose.mp4" --ref "$clip/reference.png" \
    --prompt "$(cat "$clip/prompt.txt")" \
    --size 64x64 --frames 9 --steps 8 --dtype fp32 --device cpu --no-progress --out demo-out/sample.mp4

fx=tests/fixtures/wan
echo
echo "== 4. the DiT against the official PyTorch output (tiny VACE fixture)"
build/apps/ipa-inspect forward --model "$fx/vace_b2.yaml" --weights "$fx/vace_b2.weights.safetensors" \
    --inputs "$fx/vace_b2.io.safetensors" --out demo-out/vace_b2.out.safetensors
echo
echo "demo done. index: demo-out/index.html  adapter: demo-out/run/latest/adapter.safetensors  metrics: demo-out/run/metrics.jsonl  video: demo-out/sample.mp4"
