#!/usr/bin/env bash
# Training-step cost, side by side in one run: ipa-train with loss ipa vs sft on the same
# config (IPA should cost one extra no-grad forward, not a second model), and the Python
# reference step (upstream model + the official IPA snippet, whose reference is a deep copy),
# once with glibc's malloc (as its users run it) and once with tcmalloc preloaded (like for like).
# usage: scripts/bench_train_step.sh WAN_SRC [MODEL_YAML] [FRAMES] [H] [W] [BATCH] [RANK] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
wan_src=${1:?upstream Wan2.1 tree}; model=${2:-configs/models/tiny.yaml}
frames=${3:-9}; h=${4:-64}; w=${5:-64}; batch=${6:-2}; rank=${7:-8}; steps=${8:-8}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The official recipe as its users run it (glibc malloc), and like for like with ipa's
# allocator (tcmalloc preloaded into Python; ipa links it, see IPA_ALLOCATOR).
tcmalloc=$(ls /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 2>/dev/null || true)
echo "ipa-train host allocator: $(build/apps/ipa-inspect version | sed -n 's/^host allocator: //p')"
for loss in ipa sft; do
    out=$(build/apps/ipa-train --config configs/train/tiny-cpu.yaml --no-progress --log-level warn \
        --set model.config="$model" --set loss.kind=$loss --set train.steps="$steps" \
        --set train.batch_size="$batch" --set lora.rank="$rank" --set lora.alpha="$rank" \
        --set data.frames="$frames" --set "data.size=[$h, $w]" --set data.cache_dir="$work/cache" \
        --set checkpoint.dir="$work/run-$loss" --set checkpoint.every=100000)
    echo "ipa (C++)                    $loss: $(echo "$out" | grep 'step time')"
    for alloc in glibc tcmalloc; do
        preload=""
        if [[ $alloc == tcmalloc ]]; then
            [[ -n "$tcmalloc" ]] || continue
            preload=$tcmalloc
        fi
        py=$(LD_PRELOAD=$preload /usr/bin/python3 scripts/bench_ipa_step_upstream.py --wan-src "$wan_src" \
            --model "$model" --frames "$frames" --size "$h" "$w" --batch "$batch" --rank "$rank" --loss $loss \
            --steps "$steps" --warmup 1)
        echo "upstream (Python, $alloc) $loss: $(echo "$py" | grep -E 'step time|peak' | tr -s ' ' | paste -sd ' ')"
    done
done
