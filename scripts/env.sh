# Shared set-up for scripts/test.sh and scripts/demo.sh (source it; not executable alone).
# Installs the system packages the build needs (idempotent) and sets thread counts.

IPA_APT_PACKAGES=(
    g++ cmake ninja-build pkg-config ccache clang-format
    libtorch-dev libopenblas0-pthread libtcmalloc-minimal4
    libopencv-dev libsentencepiece-dev libgloo-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
    libgtest-dev
    libcpp-httplib-dev chromium chromium-driver
)

ipa_install_deps() {
    local missing=()
    for p in "${IPA_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "ipa: installing system packages: ${missing[*]}"
        local sudo=""
        [[ $(id -u) -ne 0 ]] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# Python side (parity fixtures only; not needed to build or test).
ipa_install_python_deps() {
    local missing=()
    for p in python3-torch python3-numpy; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        local sudo=""
        [[ $(id -u) -ne 0 ]] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# OpenBLAS (not the ~20x slower reference BLAS); LibTorch's intra-op pool and OpenBLAS
# both use one thread per core unless OMP_NUM_THREADS / OPENBLAS_NUM_THREADS say otherwise.
export IPA_JOBS="${IPA_JOBS:-$(nproc)}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"

ipa_check_blas() {
    local blas
    blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
    case "$blas" in
        *openblas*) ;;
        *) echo "ipa: warning: libblas.so.3 -> ${blas:-?} is not OpenBLAS; LibTorch will be slow." \
                "Run: update-alternatives --config libblas.so.3-x86_64-linux-gnu" ;;
    esac
}

# The scripts' builds are fresh-machine builds: unity files and no debug information
# (about half the time of a per-file -g build; IPA_UNITY_BUILD=OFF / IPA_DEBUG_INFO=ON to
# change, e.g. for a debugger or many small edits).
ipa_fast_build_flags() {
    echo "-DIPA_UNITY_BUILD=${IPA_UNITY_BUILD:-ON} -DIPA_DEBUG_INFO=${IPA_DEBUG_INFO:-OFF}"
}

# ipa_configure BUILD_DIR [cmake args...]
ipa_configure() {
    local dir=$1
    shift
    local launcher=()
    if command -v ccache >/dev/null; then
        launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
        # The shared PCH is cacheable with these; base_dir makes the build directories'
        # own paths relative, so two build dirs of one tree share cache entries.
        export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
        export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
        export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
        export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-8G}"
    fi
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="${IPA_BUILD_TYPE:-RelWithDebInfo}" \
        $(ipa_fast_build_flags) "${launcher[@]}" "$@" >"$dir.configure.log" 2>&1 || {
        cat "$dir.configure.log"
        return 1
    }
}

# ---- The LibTorch 2.x toolchain from PyPI (IPA_TORCH=pip) ----
# A venv outside the work tree, reused by every clone on this machine (about 2.7 GB with
# the CUDA wheels). IPA_VENV overrides its place.
IPA_TORCH_PIP_VERSION=2.11.0
IPA_VENV="${IPA_VENV:-$HOME/.cache/ipa/venv-torch-$IPA_TORCH_PIP_VERSION}"
# A100 (8.0) and H20/H100/H200 (9.0); CUDA 13 builds nothing below sm_75.
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"

# ipa_python_env [REQUIREMENTS...]: creates the venv if needed and installs the pinned
# requirements (scripts/requirements-torch.txt by default) under the torch constraints.
ipa_python_env() {
    local reqs=("$@")
    ((${#reqs[@]})) || reqs=(scripts/requirements-torch.txt)
    local py=python3
    if [[ ! -x "$IPA_VENV/bin/python" ]]; then
        if ! $py -c 'import venv, ensurepip' 2>/dev/null; then
            local sudo=""
            [[ $(id -u) -ne 0 ]] && sudo="sudo"
            $sudo apt-get update -qq
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv
            py=/usr/bin/python3
        fi
        echo "ipa: creating the Python env $IPA_VENV"
        $py -m venv "$IPA_VENV"
    fi
    local stamp="$IPA_VENV/.ipa-installed" want
    want=$(cat scripts/constraints-torch.txt "${reqs[@]}" | sha256sum | cut -c1-16)
    if ! grep -qx "$want" "$stamp" 2>/dev/null; then
        echo "ipa: installing into $IPA_VENV: ${reqs[*]}"
        "$IPA_VENV/bin/pip" install -q --disable-pip-version-check -c scripts/constraints-torch.txt \
            $(printf -- '-r %s ' "${reqs[@]}")
        echo "$want" >>"$stamp"
    fi
}

# The LibTorch root inside the venv's torch (holds include/, lib/, share/cmake/).
ipa_pip_torch_root() {
    "$IPA_VENV/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))'
}

# ipa_configure_pip BUILD_DIR [cmake args...]: configure against the venv's LibTorch (CUDA
# build: NCCL and Gloo process groups, sm_80 + sm_90).
ipa_configure_pip() {
    local dir=$1
    shift
    local root
    root=$(ipa_pip_torch_root)
    local nvcc
    nvcc=$(command -v nvcc || true)
    [[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc
    if [[ -z "$nvcc" ]]; then
        echo "ipa: no CUDA toolkit (nvcc not on PATH nor in /usr/local/cuda/bin): PyPI's torch is a CUDA" \
            "build and its CMake package needs the toolkit to configure; install CUDA 13" >&2
        return 1
    fi
    ipa_configure "$dir" -DCMAKE_PREFIX_PATH="$root" -DIPA_WITH_NCCL=ON -DCMAKE_CUDA_COMPILER="$nvcc" "$@"
}
