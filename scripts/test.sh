#!/usr/bin/env bash
# One command from a fresh clone to a green test suite, on both supported toolchains:
#   IPA_TORCH=debian  Debian's libtorch-dev 1.13 (CPU): the I/O parser tests under
#                     ASan+UBSan (build-asan/, skip with IPA_ASAN=0), then build/ and its suite;
#   IPA_TORCH=pip     LibTorch 2.11 + CUDA 13 from PyPI's torch wheel (a venv, see env.sh),
#                     with NCCL and Gloo: build-pip/ and the whole suite on the CPU, then the
#                     media-free GPU-machine build (scripts/gpu-check.sh --build-only);
#   IPA_TORCH=both    (default) one after the other.
# Installs what is missing (apt, pip). Builds with unity files and without debug information
# (scripts/env.sh: ipa_fast_build_flags; the ASan build keeps -g for its reports). Ends with
# ctest's summary of the last suite run and a line per leg.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

legs=()
case "${IPA_TORCH:-both}" in
    debian) legs=(debian) ;;
    pip) legs=(pip) ;;
    both) legs=(debian pip) ;;
    *)
        echo "IPA_TORCH must be debian, pip or both (got '${IPA_TORCH}')" >&2
        exit 2
        ;;
esac

ipa_install_deps
ipa_check_blas
summary=()
t_start=$SECONDS

# Formatting is part of the suite: every tracked C++ file as clang-format (.clang-format) has it.
echo "== clang-format check"
if ! git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run --Werror; then
    echo "clang-format: the files above are not formatted; run: git ls-files '*.cpp' '*.h' | xargs clang-format -i" >&2
    exit 1
fi

leg_debian() {
    local t0=$SECONDS
    if [[ "${IPA_ASAN:-1}" != 0 ]]; then
        echo "== [debian] ASan+UBSan build of the I/O parser tests (build-asan/)"
        mkdir -p build-asan
        ipa_configure build-asan -DIPA_SANITIZE=ON -DIPA_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug -DIPA_DEBUG_INFO=ON
        cmake --build build-asan -j "$IPA_JOBS" --target test_io
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
            ctest --test-dir build-asan -L io --output-on-failure -j "$IPA_JOBS"
    fi
    echo "== [debian] build/ (LibTorch 1.13, CPU)"
    mkdir -p build
    ipa_configure build
    cmake --build build -j "$IPA_JOBS"
    echo "== [debian] tests"
    ctest --test-dir build --output-on-failure -j "$IPA_JOBS"
    summary+=("debian (LibTorch 1.13): passed in $((SECONDS - t0)) s")
}

leg_pip() {
    local t0=$SECONDS
    echo "== [pip] LibTorch ${IPA_TORCH_PIP_VERSION} (CUDA) from PyPI in $IPA_VENV"
    ipa_python_env
    echo "== [pip] build-pip/ (LibTorch $IPA_TORCH_PIP_VERSION + CUDA, NCCL + Gloo)"
    mkdir -p build-pip
    ipa_configure_pip build-pip
    cmake --build build-pip -j "$IPA_JOBS"
    build-pip/apps/ipa-inspect version
    echo "== [pip] tests (CPU)"
    ctest --test-dir build-pip --output-on-failure -j "$IPA_JOBS"
    echo "== [pip] media-free GPU-machine build (scripts/gpu-check.sh --build-only)"
    bash scripts/gpu-check.sh --build-only
    summary+=("pip (LibTorch $IPA_TORCH_PIP_VERSION + CUDA): passed in $((SECONDS - t0)) s")
}

for leg in "${legs[@]}"; do
    "leg_$leg"
done
echo
printf '%s\n' "${summary[@]}"
echo "all legs passed in $((SECONDS - t_start)) s"
