# Shared set-up for scripts/test.sh and scripts/demo.sh (source it; not executable alone).
# Installs the system packages the build needs (idempotent) and sets thread counts.

IPA_APT_PACKAGES=(
    g++ cmake ninja-build pkg-config
    libtorch-dev libopenblas0-pthread
    libopencv-dev libsentencepiece-dev libgloo-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
    libgtest-dev
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

# ipa_configure BUILD_DIR [cmake args...]
ipa_configure() {
    local dir=$1
    shift
    local launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="${IPA_BUILD_TYPE:-RelWithDebInfo}" \
        "${launcher[@]}" "$@" >"$dir.configure.log" 2>&1 || {
        cat "$dir.configure.log"
        return 1
    }
}
