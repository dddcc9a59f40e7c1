#!/usr/bin/env bash
# Runs every test: installs what is missing, builds (Release), runs ctest (CPU, Vulkan on lavapipe
# with the validation layer, CUDA when a GPU is present), the Rust and Go bindings, then the whole
# suite again in a Debug build with AddressSanitizer and UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(nproc)

echo "== Release build and tests"
scripts/build.sh build
ctest --test-dir build --output-on-failure -j "$jobs"

if [ -x scripts/test_bindings.sh ]; then
  echo "== Rust and Go bindings"
  scripts/test_bindings.sh build
fi

echo "== Debug build with AddressSanitizer + UndefinedBehaviorSanitizer"
scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DLONGATTN_SANITIZE=ON -DLONGATTN_CUDA=OFF \
  -DLONGATTN_BUILD_EXAMPLES=OFF
# (the HyperAttention quality table is numerics only and takes minutes unoptimised: Release covers it)
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -E "consumer_install|test_hyper_quality"
echo "== all tests passed"
