#!/usr/bin/env bash
# Side-by-side CPU benchmark: ipa-inspect bench-forward vs the official Wan2.1 PyTorch model
# (same config, same random-weight recipe, same inputs shape, same threads), one run each,
# then the speed ratio. Needs Debian's python3-torch and an upstream tree:
#   git --git-dir=<mirror of Wan-Video/Wan2.1> archive HEAD | tar -x -C /tmp/Wan2.1
# usage: scripts/bench_forward_vs_upstream.sh WAN_SRC MODEL F H W [LAYERS] [ITERS]
set -euo pipefail
cd "$(dirname "$0")/.."
wan_src=${1:?upstream Wan2.1 tree}; model=${2:-tiny}; f=${3:-3}; h=${4:-16}; w=${5:-16}
layers=${6:--1}; iters=${7:-3}
threads=${OMP_NUM_THREADS:-$(nproc)}
layer_args=()
[[ "$layers" != -1 ]] && layer_args=(--layers "$layers")
cpp=$(OMP_NUM_THREADS=$threads build/apps/ipa-inspect bench-forward --model "$model" --latent "$f" "$h" "$w" \
    "${layer_args[@]}" --iters "$iters")
py=$(/usr/bin/python3 scripts/bench_wan_upstream.py --wan-src "$wan_src" --model "$model" --latent "$f" "$h" "$w" \
    "${layer_args[@]}" --iters "$iters" --threads "$threads")
echo "--- ipa (C++)"; echo "$cpp"
echo "--- upstream (Python)"; echo "$py"
best() { echo "$1" | awk -v k="$2" '$1 == k { print $3 }'; }
for k in forward forward+backward; do
    awk -v a="$(best "$cpp" "$k")" -v b="$(best "$py" "$k")" -v k="$k" \
        'BEGIN { printf "%-17s upstream/ipa time ratio %.2fx\n", k, b / a }'
done
