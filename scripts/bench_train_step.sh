#!/usr/bin/env bash
# Training-step cost, side by side in one run: ipa-train with loss ipa and sft on the same
# config (IPA should cost one extra no-grad forward, not a second model), and a peer's
# Python training step on the same shapes, in two set-ups:
#   - as its users run it: glibc's malloc, the threading runtimes' defaults;
#   - like for like with ipa: tcmalloc preloaded and the idle-thread settings every ipa
#     executable starts with (OMP_WAIT_POLICY=PASSIVE, OPENBLAS_THREAD_TIMEOUT=4; see
#     docs/architecture.md §12).
# Peers (IPA_BENCH_PEER):
#   official   (default) the official Wan/VACE model + the official IPA snippet, whose
#              reference is a deep copy (scripts/bench_ipa_step_upstream.py, Debian's torch
#              1.13 = build/'s LibTorch); losses ipa and sft;
#   diffsynth  DiffSynth-Studio's own Wan/VACE LoRA training step (scripts/bench_diffsynth_step.py,
#              the torch 2.11 reference venv = build-pip/'s LibTorch), QKV-only adapter and
#              grad clip 1.0 like ipa; sft only (DiffSynth has no preference loss).
# ipa runs as shipped (it links tcmalloc and sets the thread defaults itself). The programs
# take turns, ROUNDS times, so a slower minute of the machine hits all of them; the table is
# the median over every timed step of every round.
# usage: [IPA_BENCH_PEER=official|diffsynth] scripts/bench_train_step.sh WAN_SRC [MODEL_YAML] [FRAMES] [H] [W] [BATCH] [RANK] [STEPS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
wan_src=${1:?upstream Wan2.1 tree}; model=${2:-configs/models/tiny.yaml}
frames=${3:-9}; h=${4:-64}; w=${5:-64}; batch=${6:-2}; rank=${7:-8}; steps=${8:-8}; rounds=${9:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
peer=${IPA_BENCH_PEER:-official}
case $peer in
    official) build=build; losses="ipa sft"; py=(/usr/bin/python3 scripts/bench_ipa_step_upstream.py --wan-src "$wan_src") ;;
    diffsynth) build=build-pip; losses="sft"
        py=(/root/.cache/ipa/venv-torch-2.11/bin/python scripts/bench_diffsynth_step.py
            --targets self_attn.q,self_attn.k,self_attn.v --clip-grad-norm 1.0) ;;
    *) echo "IPA_BENCH_PEER must be official or diffsynth, got '$peer'" >&2; exit 2 ;;
esac
tcmalloc=$(ls /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 2>/dev/null || true)
[[ -n "$tcmalloc" ]] || { echo "libtcmalloc_minimal.so.4 missing (apt install libtcmalloc-minimal4)" >&2; exit 1; }
"$build"/apps/ipa-inspect version | grep -E '^(LibTorch|host allocator|idle threads)'
echo "peer: $peer (${py[*]:0:2}, torch $("${py[0]}" -c 'import torch; print(torch.__version__)'))"
echo "model $model, $frames frames at ${h}x${w}, batch $batch, LoRA rank $rank, $steps timed steps x $rounds rounds"

ipa_step() {  # loss round -> "seconds... | peak MiB" lines in $work/ipa-$loss.txt
    local loss=$1 r=$2 out
    out=$("$build"/apps/ipa-train --config configs/train/tiny-cpu.yaml --no-progress --log-level error \
        --set model.config="$model" --set loss.kind="$loss" --set train.steps=$((steps + 1)) \
        --set train.batch_size="$batch" --set lora.rank="$rank" --set lora.alpha="$rank" \
        --set data.frames="$frames" --set "data.size=[$h, $w]" --set data.cache_dir="$work/cache" \
        --set checkpoint.dir="$work/run-$loss-$r" --set checkpoint.every=100000)
    # every step after the first, from metrics.jsonl; peak from the summary line
    python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["step_time_s"]) for l in open(sys.argv[1]).readlines()[1:]))' \
        "$work/run-$loss-$r/metrics.jsonl" >>"$work/ipa-$loss.times"
    echo "$out" | sed -n 's/.*peak memory \([0-9]*\) MiB.*/\1/p' >>"$work/ipa-$loss.peak"
    echo "$out" | grep 'step phases' >>"$work/ipa-$loss.phases"
}

py_step() {  # loss setup round
    local loss=$1 setup=$2 out
    local -a env=()
    # like for like: ipa's allocator, and its idle-thread settings where it sets them (Debian's
    # LibTorch on OpenBLAS; the wheel's MKL keeps the runtimes' defaults, docs/architecture.md §12)
    if [[ $setup == like ]]; then
        env=(LD_PRELOAD="$tcmalloc")
        [[ $peer == official ]] && env+=(OMP_WAIT_POLICY=PASSIVE OPENBLAS_THREAD_TIMEOUT=4)
    fi
    local -a loss_arg=()
    [[ $peer == official ]] && loss_arg=(--loss "$loss")
    out=$(env "${env[@]}" "${py[@]}" \
        --model "$model" --frames "$frames" --size "$h" "$w" --batch "$batch" --rank "$rank" "${loss_arg[@]}" \
        --steps "$steps" --warmup 1 --print-times)
    echo "$out" | sed -n 's/^step times *//p' >>"$work/py-$loss-$setup.times"
    echo "$out" | sed -n 's/^peak memory *\([0-9.]*\) MiB.*/\1/p' >>"$work/py-$loss-$setup.peak"
}

for r in $(seq "$rounds"); do
    for loss in $losses; do
        ipa_step "$loss" "$r"
        py_step "$loss" users "$r"
        py_step "$loss" like "$r"
    done
    echo "round $r of $rounds done" >&2
done

python3 - "$work" "$peer" "$losses" <<'PY'
import statistics, sys, os
work, peer, losses = sys.argv[1], sys.argv[2], sys.argv[3].split()
def read(name):
    times = [float(x) for line in open(os.path.join(work, name + '.times')) for x in line.split()]
    peak = max(float(x) for x in open(os.path.join(work, name + '.peak')).read().split())
    return statistics.median(times), min(times), len(times), peak
name = {'official': 'Python recipe', 'diffsynth': 'DiffSynth-Studio'}[peer]
print(f'| step | ipa (C++, as shipped) | {name}, as its users run it | {name}, like for like '
      '| ipa / as run | ipa / like for like |')
print('|---|---|---|---|---|---|')
for loss in losses:
    a, u, k = read(f'ipa-{loss}'), read(f'py-{loss}-users'), read(f'py-{loss}-like')
    cell = lambda m: f'{m[0]:.3g} s (best {m[1]:.3g}, n={m[2]}), {m[3]:.0f} MiB'
    print(f'| {loss.upper()} | {cell(a)} | {cell(u)} | {cell(k)} | {a[0] / u[0]:.2f}× time, {a[3] / u[3]:.2f}× RSS '
          f'| {a[0] / k[0]:.2f}× time, {a[3] / k[3]:.2f}× RSS |')
for loss in losses:
    lines = open(os.path.join(work, f'ipa-{loss}.phases')).read().splitlines()
    print(f'ipa {loss} {lines[-1].strip()}')
PY
