#!/usr/bin/env bash
# One command from a fresh clone to a green test suite:
#   installs missing system packages (apt), configures build/, builds, runs the tests.
# Also builds the checkpoint-parser tests with ASan+UBSan (build-asan/) and runs them;
# set IPA_ASAN=0 to skip that step. Ends with ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

ipa_install_deps
ipa_check_blas
mkdir -p build

if [[ "${IPA_ASAN:-1}" != 0 ]]; then
    echo "== ASan+UBSan build of the I/O parser tests (build-asan/)"
    mkdir -p build-asan
    ipa_configure build-asan -DIPA_SANITIZE=ON -DIPA_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug
    cmake --build build-asan -j "$IPA_JOBS" --target test_io
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --test-dir build-asan -L io --output-on-failure -j "$IPA_JOBS"
fi

echo "== build/"
ipa_configure build
cmake --build build -j "$IPA_JOBS"
echo "== tests"
ctest --test-dir build --output-on-failure -j "$IPA_JOBS" -LE gpu
