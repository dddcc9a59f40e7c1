#!/usr/bin/env bash
# Configures and builds longattn into the given directory (default: build) with extra CMake flags.
# CUDA, when /usr/local/cuda exists, is compiled for one architecture unless
# LONGATTN_CUDA_ARCHS is set (a full build compiles sm_80/86/89/90).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cuda_flags=()
if [ -x /usr/local/cuda/bin/nvcc ]; then
  cuda_flags=(-DCMAKE_CUDA_ARCHITECTURES="${LONGATTN_CUDA_ARCHS:-90}")
fi
cmake -S . -B "$dir" -G Ninja "${cuda_flags[@]}" "$@" >/dev/null
cmake --build "$dir" -j "$(nproc)"
