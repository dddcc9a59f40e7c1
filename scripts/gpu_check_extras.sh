#!/usr/bin/env bash
# Quick correctness pass on a GPU machine: the CPU tests with the host's best micro-kernels (the
# GPU machines have AVX-512, this project's CI machine does not), the CUDA tests incl. the
# ggml-style extras, the ring tests, and compute-sanitizer memcheck on the extras.
#
# Build machine (nvcc; binaries are statically linked, packed to stay small enough to carry):
#   cmake -S . -B build-cudax -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGATTN_VULKAN=OFF -DCMAKE_CUDA_ARCHITECTURES=90
#   cmake --build build-cudax --target test_cuda test_cuda_extras test_ring_cuda test_flash test_ggml
#   mkdir -p /tmp/b && cp build-cudax/tests/{test_cuda,test_cuda_extras,test_ring_cuda,test_flash,test_ggml} /tmp/b
#   strip /tmp/b/* && mkdir -p build-gpu && tar cf - -C /tmp/b . | xz -6 -T2 > build-gpu/gpu.tar.xz
# GPU machine, repository root, build-gpu carried along; logs go to $OUT (default /tmp/gpu_extras):
#   bash scripts/gpu_check_extras.sh
set -u
OUT=${OUT:-/tmp/gpu_extras}
mkdir -p "$OUT" build-gpu && tar xJf build-gpu/gpu.tar.xz -C build-gpu
B=build-gpu
export PATH="$PATH:/usr/local/cuda/bin"
lscpu | grep -o 'avx512[a-z_0-9]*' | sort -u | tr '\n' ' '; echo
for t in test_flash test_ggml; do echo "== $t (default ISA)"; timeout 120 $B/$t 2>&1 | tail -3; done
for t in test_cuda test_cuda_extras test_ring_cuda; do
  echo "== $t"; timeout 200 $B/$t > "$OUT/$t.log" 2>&1; echo "rc=$?"
  tail -3 "$OUT/$t.log"; grep -B2 -A10 "ERROR" "$OUT/$t.log" | head -40
done
echo "== memcheck extras"
timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 $B/test_cuda_extras > "$OUT/memcheck_extras.log" 2>&1
echo "rc=$?"; grep -E "ERROR SUMMARY|Invalid|test cases" "$OUT/memcheck_extras.log" | head
