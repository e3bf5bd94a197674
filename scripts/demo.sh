#!/usr/bin/env bash
# Fresh machine -> the main job on the built-in tiny default, all on CPU, nothing downloaded:
#  1. ipa-curate: a small synthetic animation set (dancers with labelled hand defects),
#     scored for hand quality, the DPO-pair statistics, a static review index; DWPose
#     keypoints of two candidates estimated in C++ (ipa-curate pose, synthetic ONNX models)
#     and scored;
#  2. marking (the scorer's verdict stands in for the reviewer) and selection -> train.csv;
#  3. ipa-train on that manifest: it builds the training cache (tiny VAE + umT5 of the test
#     fixtures: latents with the reference frame first, VACE context of the pose video,
#     latent hand masks from the keypoints, prompt embeddings), then a real (tiny) IPA run —
#     QKV LoRA on the tiny VACE DiT (random base weights) with Flow-IPA + HALO against its
#     adapter-off reference, 60 steps with checkpoints and metrics; then Flow-DPO on the
#     strict winner/loser windows of the same candidates (ipa-curate pairs --out);
#  4. ipa-sample with that adapter: pose video + reference image -> video (random weights,
#     so the video is noise-like);
#  5. ipa-eval: the sampled video and every synthetic candidate of that clip against the
#     clip's clean render (PSNR, SSIM, and the same on hand crops from its keypoints), and
#     base model vs adapter side by side;
#  6. the DiT against the official PyTorch output.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

ipa_install_deps
ipa_check_blas
mkdir -p build
ipa_configure build
cmake --build build -j "$IPA_JOBS" --target ipa-train ipa-inspect ipa-curate ipa-sample ipa-eval

rm -rf demo-out
echo
echo "== 1. curation on a synthetic animation set (demo-out/synth)"
build/apps/ipa-curate synth --out demo-out/synth --clips 4 --seed 1
build/apps/ipa-curate score --manifest demo-out/synth/candidates.csv --out demo-out/scores
build/apps/ipa-curate pairs --scores demo-out/scores/scores.json
build/apps/ipa-curate index --manifest demo-out/synth/candidates.csv --scores demo-out/scores/scores.json \
    --out demo-out/index.html

echo
echo "== 1b. DWPose keypoints in C++ (ipa-curate pose) for two candidates of clip_000, then the scorer on them"
echo "   (the synthetic YOLOX-L / DWPose-L-structured ONNX models of tests/fixtures/dwpose: random weights, so"
echo "   the keypoints are not a real pose; with the released yolox_l.onnx + dw-ll_ucoco_384.onnx they are)"
python3 - <<'PY'
import csv
rows = [r for r in csv.DictReader(open("demo-out/synth/candidates.csv")) if r["group"] == "clip_000"][:2]
with open("demo-out/synth/clip_000-no-keypoints.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(dict(r, keypoints="") for r in rows)
PY
build/apps/ipa-curate pose --manifest demo-out/synth/clip_000-no-keypoints.csv \
    --manifest-out demo-out/synth/clip_000-dwpose.csv --out demo-out/dwpose \
    --det tests/fixtures/dwpose/det.onnx --pose tests/fixtures/dwpose/pose.onnx
build/apps/ipa-curate score --manifest demo-out/synth/clip_000-dwpose.csv --out demo-out/scores-dwpose

echo
echo "== 2. marking and selection (the scorer's pass/fail stands in for a human reviewer here)"
tail -n +2 demo-out/scores/scores.csv | while IFS=, read -r id _group _score pass _rest; do
    decision=bad
    [[ "$pass" == 1 ]] && decision=good
    build/apps/ipa-curate mark "$id" "$decision" --manifest demo-out/synth/candidates.csv \
        --decisions demo-out/decisions.csv --reviewer demo --note "scorer pass=$pass"
done
build/apps/ipa-curate select --manifest demo-out/synth/candidates.csv --decisions demo-out/decisions.csv \
    --out demo-out/train.csv

echo
echo "== 3. tiny IPA training on the selected samples (configs/train/tiny-curated.yaml into demo-out/run-curated)"
echo "   ipa-train first builds the cache: VAE latents, VACE context, latent hand masks, prompt embeddings"
build/apps/ipa-train --config configs/train/tiny-curated.yaml --no-progress
build/apps/ipa-inspect keys demo-out/run-curated/latest/adapter.safetensors --grep blocks.0.

echo
echo "== 3b. Flow-DPO on the strict winner/loser windows of the same candidates (loss.kind: dpo, one --set)"
build/apps/ipa-curate pairs --scores demo-out/scores/scores.json --manifest demo-out/synth/candidates.csv \
    --window 9 --out demo-out/pairs.csv
build/apps/ipa-train --config configs/train/tiny-curated.yaml --no-progress --set loss.kind=dpo \
    --set data.manifest=demo-out/pairs.csv --set data.cache_dir=demo-out/cache-pairs \
    --set checkpoint.dir=demo-out/run-dpo --set train.steps=30 --set loss.beta=2000

echo
echo "== 4. ipa-sample with the trained adapter (tiny DiT, tiny VAE + umT5 from tests/fixtures)"
clip=demo-out/synth/clip_000  # its pose video and reference image
build/apps/ipa-sample --model tiny --lora demo-out/run-curated/latest/adapter.safetensors \
    --vae tests/fixtures/vae/tiny.weights.pth --text-encoder tests/fixtures/t5/tiny_umt5.pth \
    --tokenizer tests/fixtures/t5 --pose "$clip/pose.mp4" --ref "$clip/reference.png" \
    --prompt "$(cat "$clip/prompt.txt")" \
    --size 64x64 --frames 9 --steps 8 --dtype fp32 --device cpu --no-progress --out demo-out/sample.mp4

echo
echo "== 5. ipa-eval against the clip's clean render (its 'good' candidate) and its keypoints"
# The clip's frames and size (256x256, 17 frames) so the sample lines up with the ground truth;
# once with the adapter, once without (the base model).
for which in adapter base; do
    lora=()
    [[ $which == adapter ]] && lora=(--lora demo-out/run-curated/latest/adapter.safetensors)
    build/apps/ipa-sample --model tiny "${lora[@]}" \
        --vae tests/fixtures/vae/tiny.weights.pth --text-encoder tests/fixtures/t5/tiny_umt5.pth \
        --tokenizer tests/fixtures/t5 --pose "$clip/pose.mp4" --ref "$clip/reference.png" \
        --prompt "$(cat "$clip/prompt.txt")" --size 256x256 --frames 17 --steps 4 --dtype fp32 --device cpu \
        --no-progress --out "demo-out/eval-$which/clip_000.mp4" >/dev/null
done
# Manifests for ipa-eval (paths relative to demo-out/): the clip's good candidate is the ground truth.
python3 - <<'PY'
import csv
rows = [r for r in csv.DictReader(open("demo-out/synth/candidates.csv")) if r["group"] == "clip_000"]
gt = "synth/" + next(r["video"] for r in rows if r["label"] == "good")
kp = "synth/clip_000/gt_keypoints"
def manifest(path, entries):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "generated", "ground_truth", "keypoints"])
        w.writerows([i, g, gt, kp] for i, g in entries)
manifest("demo-out/eval.csv", [("sample_adapter", "eval-adapter/clip_000.mp4")] +
         [("candidate_%s_%s" % (r["id"], r["defect"]), "synth/" + r["video"]) for r in rows if r["label"] != "good"])
manifest("demo-out/eval-base.csv", [("sample", "eval-base/clip_000.mp4")])
manifest("demo-out/eval-adapter.csv", [("sample", "eval-adapter/clip_000.mp4")])
PY
build/apps/ipa-eval frames --gen demo-out/eval.csv --out demo-out/eval
build/apps/ipa-eval frames --gen demo-out/eval-base.csv --out demo-out/eval-base >/dev/null
build/apps/ipa-eval frames --gen demo-out/eval-adapter.csv --out demo-out/eval-adapter-only >/dev/null
build/apps/ipa-eval compare demo-out/eval-base/metrics.json demo-out/eval-adapter-only/metrics.json

fx=tests/fixtures/wan
echo
echo "== 6. the DiT against the official PyTorch output (tiny VACE fixture)"
build/apps/ipa-inspect forward --model "$fx/vace_b2.yaml" --weights "$fx/vace_b2.weights.safetensors" \
    --inputs "$fx/vace_b2.io.safetensors" --out demo-out/vace_b2.out.safetensors
echo
echo "demo done. index: demo-out/index.html  evaluation: demo-out/eval/index.html  adapter: demo-out/run-curated/latest/adapter.safetensors  metrics: demo-out/run-curated/metrics.jsonl  video: demo-out/sample.mp4"
