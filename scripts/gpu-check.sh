#!/usr/bin/env bash
# The one-shot GPU check: on a machine with an NVIDIA GPU, a Python torch 2.x + CUDA, nvcc,
# cmake and ninja (no apt, no network needed), it
#   1. builds the media-free stack (-DIPA_WITH_MEDIA=OFF: no OpenCV / SentencePiece) against
#      that torch with NCCL + Gloo, taking the small libraries it lacks from the bundle that
#      scripts/gpu-bundle.sh prepared on a build machine (.deps/gpu-bundle/*.deb);
#   2. runs the `gpu`-labelled tests (DiT/VACE parity on CUDA in fp32 without TF32 and in
#      bf16, LoRA + Flow-IPA trainer steps on CUDA, a one-rank NCCL all-reduce);
#   3. benchmarks VACE-14B at 480x832x81 + reference frame (34,320 tokens) on random bf16
#      weights made on the GPU: forward, one IPA + HALO step (rank-128 QKV LoRA, gradient
#      checkpointing) with its phases, one UniPC step with CFG, VAE decode of 21 latents;
#   4. writes gpu-check.md + gpu-check.json (and the raw logs) to --out (default gpu-check-out/).
#
#   scripts/gpu-check.sh [--out DIR] [--python PY] [--skip-bench]
#   scripts/gpu-check.sh --build-only     # the build part only (CI; tests then skip: no GPU)
#
# Environment: IPA_PYTHON (the Python whose torch to build against; default: python3 if its
# torch has CUDA, else the project venv of scripts/env.sh), IPA_JOBS, TORCH_CUDA_ARCH_LIST.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

build_only=0 skip_bench=0 out=gpu-check-out py="${IPA_PYTHON:-}"
while (($#)); do
    case "$1" in
        --build-only) build_only=1 ;;
        --skip-bench) skip_bench=1 ;;
        --out) out=$2; shift ;;
        --python) py=$2; shift ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
die() { echo "gpu-check: $*" >&2; exit 1; }
t_start=$SECONDS
export IPA_JOBS="${IPA_JOBS:-$(nproc)}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"

# ---- 1. the torch to build against
torch_info() { "$1" -c 'import os, torch; print(torch.__version__, torch.version.cuda or "none", os.path.dirname(torch.__file__))' 2>/dev/null; }
if [[ -z "$py" ]]; then
    if command -v python3 >/dev/null && info=$(torch_info python3) && [[ $(cut -d' ' -f2 <<<"$info") != none ]]; then
        py=python3
    else
        # A build machine: the project's venv (PyPI's CUDA wheel), created if missing.
        source scripts/env.sh
        ipa_python_env
        py="$IPA_VENV/bin/python"
    fi
fi
info=$(torch_info "$py") || die "'$py' has no torch (set IPA_PYTHON or --python to a Python with torch 2.x + CUDA)"
read -r torch_version torch_cuda torch_root <<<"$info"
[[ ${torch_version%%.*} -ge 2 ]] || die "torch $torch_version at $torch_root: LibTorch 2.x is needed for the GPU build"
[[ $torch_cuda != none ]] || die "torch $torch_version at $torch_root is a CPU-only build (torch.version.cuda is None); install a CUDA wheel"
echo "gpu-check: torch $torch_version (CUDA $torch_cuda) at $torch_root"

# nvcc: TorchConfig.cmake of a CUDA build needs the CUDA toolkit at configure time.
nvcc=$(command -v nvcc || true)
[[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc
[[ -n "$nvcc" ]] || die "no CUDA toolkit: nvcc not on PATH nor in /usr/local/cuda/bin (LibTorch's CMake package needs it to configure)"
echo "gpu-check: $("$nvcc" --version | tail -1)"
for tool in cmake ninja; do command -v $tool >/dev/null || die "$tool not found"; done

# ---- the small libraries: system ones where present (a build machine), else the bundle
# (.deb files unpacked without installing)
prefix="$root/.deps/gpu-prefix"
bundle="$root/.deps/gpu-bundle"
system_libs=1
for h in yaml-cpp/yaml.h spdlog/spdlog.h fmt/format.h CLI/CLI.hpp nlohmann/json.hpp gtest/gtest.h gloo/algorithm.h; do
    [[ -e /usr/include/$h ]] || system_libs=0
done
if [[ ! -f "$bundle/PACKAGES" ]] && command -v apt-get >/dev/null; then
    bash scripts/gpu-bundle.sh
fi
if [[ -f "$bundle/PACKAGES" ]]; then
    if [[ ! -f "$prefix/.unpacked" ]] || [[ "$bundle/PACKAGES" -nt "$prefix/.unpacked" ]]; then
        rm -rf "$prefix"
        mkdir -p "$prefix"
        for deb in "$bundle"/*.deb; do
            if command -v dpkg >/dev/null; then
                dpkg -x "$deb" "$prefix"
            else  # ar + tar: a .deb is an ar archive holding data.tar.*
                tmp=$(mktemp -d)
                (cd "$tmp" && ar x "$deb" && tar -xf data.tar.* -C "$prefix")
                rm -rf "$tmp"
            fi
        done
        touch "$prefix/.unpacked"
    fi
elif ((system_libs == 0)); then
    die "missing libraries (yaml-cpp, spdlog, fmt, CLI11, nlohmann-json, GoogleTest, Gloo headers) and no bundle: run scripts/gpu-bundle.sh on a Debian 12 build machine and carry .deps/gpu-bundle here"
fi
bundle_prefix=""
[[ -f "$prefix/.unpacked" ]] && bundle_prefix="$prefix/usr;$prefix/usr/lib/x86_64-linux-gnu/cmake;$prefix/usr/share/cmake"

# check_bundle BUILD_DIR: every bundled package was found in the bundle, not the system.
check_bundle() {
    local var val
    for var in yaml-cpp_DIR spdlog_DIR fmt_DIR nlohmann_json_DIR GTest_DIR IPA_GLOO_INCLUDE; do
        val=$(grep -E "^$var:" "$1/CMakeCache.txt" | cut -d= -f2- || true)
        [[ "$val" == "$prefix"* ]] || die "$var = '$val' does not come from the bundle ($prefix)"
    done
    echo "gpu-check: every library of the bundle resolves inside $prefix"
}

# ---- configure + build (media-free, NCCL + Gloo)
source scripts/env.sh  # ipa_fast_build_flags: the same unity / debug-info choice as test.sh
build=build-gpu
launcher=()
if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
    export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$root}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
fi
configure() {  # configure DIR PREFIX_PATH
    mkdir -p "$1"
    cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE="${IPA_BUILD_TYPE:-RelWithDebInfo}" -DIPA_WITH_MEDIA=OFF \
        $(ipa_fast_build_flags) \
        -DIPA_WITH_NCCL=ON -DCMAKE_PREFIX_PATH="$2" -DCMAKE_CUDA_COMPILER="$nvcc" "${launcher[@]}" \
        >"$1.configure.log" 2>&1 || { cat "$1.configure.log"; die "configure failed (log: $1.configure.log)"; }
}
echo "gpu-check: configuring $build/ (IPA_WITH_MEDIA=OFF, IPA_WITH_NCCL=ON, arch $TORCH_CUDA_ARCH_LIST)"
if ((system_libs)); then
    configure "$build" "$torch_root"
    if [[ -n "$bundle_prefix" ]]; then  # the bundle as a GPU machine will use it: configure only
        configure "$build-bundle" "$torch_root;$bundle_prefix"
        check_bundle "$build-bundle"
    fi
else
    configure "$build" "$torch_root;$bundle_prefix"
    check_bundle "$build"
fi
t0=$SECONDS
cmake --build "$build" -j "$IPA_JOBS"
build_s=$((SECONDS - t0))
"$build/apps/ipa-inspect" version | tee "$build/version.txt"
grep -q "nccl" "$build/version.txt" || die "the build has no NCCL process group"
echo "gpu-check: built in ${build_s} s"

# ---- 2. tests (skipped, and reported as skipped, without a GPU)
mkdir -p "$out"
set +e
ctest --test-dir "$build" -L 'gpu|bench' --output-on-failure 2>&1 | tee "$out/ctest-gpu.log"
tests_rc=${PIPESTATUS[0]}
set -e
((tests_rc == 0)) || die "gpu tests failed (log: $out/ctest-gpu.log)"
if ((build_only)); then
    echo "gpu-check: build part passed in $((SECONDS - t_start)) s"
    exit 0
fi

# ---- 3. the GPU itself
cc=$("$py" -c 'import torch; print("%d%d" % torch.cuda.get_device_capability(0) if torch.cuda.is_available() else "0")')
((cc > 0)) || die "no usable CUDA device (torch.cuda.is_available() is False: driver? CUDA_VISIBLE_DEVICES?)"
((cc >= 80)) || die "GPU compute capability sm_$cc is too old: the bf16 training path needs sm_80+ (A100, H20/H100/H200)"
if ((skip_bench == 0)); then
    "$build/bench/bench_gpu" --model vace-14b --device cuda --dtype bf16 --latent 22 60 104 --rank 128 \
        --warmup 1 --iters 3 --vae wan2.1 --vae-latent-frames 21 \
        --json "$out/bench.json" --markdown "$out/bench.md" 2>&1 | tee "$out/bench.log"
fi

# ---- 4. report
{
    echo "# ipa GPU check"
    echo
    echo "- $(date -u +%Y-%m-%dT%H:%M:%SZ), $(hostname)"
    echo "- torch $torch_version (CUDA $torch_cuda), $("$nvcc" --version | tail -1)"
    sed 's/^/- /' "$build/version.txt"
    echo "- build: ${build_s} s with $IPA_JOBS jobs"
    echo
    echo "## gpu tests"
    echo
    echo '```'
    grep -E "tests passed|Passed|Failed|Skipped|Not Run|\[gpu parity" "$out/ctest-gpu.log" | tail -40
    echo '```'
    [[ -f "$out/bench.md" ]] && { echo; sed 's/^# /## /' "$out/bench.md"; }
} >"$out/gpu-check.md"
"$py" - "$out" "$torch_version" "$build_s" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
bench = json.loads((out / "bench.json").read_text()) if (out / "bench.json").exists() else None
json.dump({"torch": sys.argv[2], "build_s": int(sys.argv[3]), "bench": bench}, open(out / "gpu-check.json", "w"), indent=2)
PY
echo "gpu-check: done in $((SECONDS - t_start)) s; report: $out/gpu-check.md"
