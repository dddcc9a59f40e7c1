#!/usr/bin/env bash
# One correctness-and-timing pass on a GPU machine, in one call: the CPU tests with the host's best
# micro-kernels (the GPU machines have AVX-512, this project's CI machine does not), the CUDA tests
# (FLASH/SPARSE/HYPER primitives, the ggml-style extras, ring mode with every transport one GPU
# allows), compute-sanitizer memcheck on the extras and the HYPER/gather/merge/LSH cases, and the
# FLASH vs HYPER and ring timings of cuda_bench.
#
# Build machine (nvcc; binaries are statically linked, packed to stay small enough to carry):
#   cmake -S . -B build-cudax -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGATTN_VULKAN=OFF -DCMAKE_CUDA_ARCHITECTURES=90
#   cmake --build build-cudax --target test_cuda test_cuda_extras test_ring_cuda test_flash test_ggml cuda_bench
#   rm -rf /tmp/b && mkdir -p /tmp/b && cp build-cudax/tests/{test_cuda,test_cuda_extras,test_ring_cuda,test_flash,test_ggml} \
#     build-cudax/examples/cuda_bench/cuda_bench /tmp/b
#   strip /tmp/b/* && mkdir -p build-gpu && tar cf - -C /tmp/b . | xz -6 -T2 > build-gpu/gpu.tar.xz
# GPU machine, repository root, build-gpu carried along; logs go to $OUT (default /tmp/gpu_check):
#   bash scripts/gpu_check.sh [step ...]    steps: cpu cuda ring memcheck bench (default: all),
#                                           and on request: sanitize_flash (memcheck and racecheck on
#                                           the prefill kernels only), cuda_mma (test_cuda with the Hopper
#                                           kernel off), prefill (FLASH prefill with the Hopper kernel
#                                           and with the mma.sync kernel), sdpa (PyTorch on the same shapes),
#                                           nopdl (the FLASH/HYPER timings with programmatic dependent
#                                           launch off: LONGATTN_CUDA_PDL=0)
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT" build-gpu && tar xJf build-gpu/gpu.tar.xz -C build-gpu
B=build-gpu
export PATH="$PATH:/usr/local/cuda/bin"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(cpu cuda ring memcheck bench)
summary=()
run() {  # name, seconds, command...: log to $OUT/name.log, keep the exit status and the test totals
  local name=$1 limit=$2; shift 2
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  summary+=("$name: rc=$rc $(grep -E 'test cases|ERROR SUMMARY' "$OUT/$name.log" | tr '\n' ' ')")
  [ $rc -ne 0 ] && grep -B3 -A12 "ERROR\|FATAL" "$OUT/$name.log" | head -60
  return 0
}
sanitize_flash() {  # the prefill kernels (the Hopper one where the GPU has it): memory, shared-memory races
  run memcheck_flash 300 compute-sanitizer --tool memcheck --error-exitcode 9 $B/test_cuda \
    -tc='*tensor-core head dims*,*SPARSE masks*'
  run racecheck_flash 300 compute-sanitizer --tool racecheck --error-exitcode 9 $B/test_cuda \
    -tc='*tensor-core head dims*'
}
for step in "${steps[@]}"; do
  case $step in
    cpu)
      lscpu | grep -o 'avx512[a-z_0-9]*' | sort -u | tr '\n' ' '; echo
      run test_flash 150 $B/test_flash
      run test_ggml 150 $B/test_ggml ;;
    cuda)
      run test_cuda 300 $B/test_cuda
      run test_cuda_extras 200 $B/test_cuda_extras ;;
    ring)
      run test_ring_cuda 200 $B/test_ring_cuda -tce="*NCCL*"
      # NCCL stays loaded once loaded: the missing-library case first, each set in its own process
      run ring_nccl 60 env NCCL_DEBUG=WARN $B/test_ring_cuda -tc="*NCCL*" -tce="*virtual ranks*"
      run ring_nccl_virtual 60 env NCCL_DEBUG=WARN $B/test_ring_cuda -tc="*NCCL with virtual ranks*" ;;
    cuda_mma)
      run test_cuda_mma 300 env LONGATTN_CUDA_WGMMA=0 $B/test_cuda ;;
    prefill)
      run bench_prefill 240 $B/cuda_bench --only prefill128,prefill64
      cat "$OUT/bench_prefill.log"
      run bench_prefill_mma 240 env LONGATTN_CUDA_WGMMA=0 $B/cuda_bench --only prefill128,prefill64
      cat "$OUT/bench_prefill_mma.log" ;;
    sdpa)
      OUT="$OUT" bash "$(dirname "$0")/gpu_cuda.sh" sdpa ;;
    memcheck)
      run memcheck_extras 240 compute-sanitizer --tool memcheck --error-exitcode 9 $B/test_cuda_extras
      run memcheck_hyper 300 compute-sanitizer --tool memcheck --error-exitcode 9 $B/test_cuda \
        -tc='*HYPER*,*gathers*,*merge*,*LSH*'
      sanitize_flash ;;
    sanitize_flash)
      sanitize_flash ;;
    nopdl)
      run bench_hyper_nopdl 240 env LONGATTN_CUDA_PDL=0 $B/cuda_bench --only prefill64,hyper
      cat "$OUT/bench_hyper_nopdl.log" ;;
    bench)
      run bench_hyper 240 $B/cuda_bench --only decode,prefill64,sparse,hyper
      cat "$OUT/bench_hyper.log"
      run bench_ring 200 $B/cuda_bench --only ring
      cat "$OUT/bench_ring.log" ;;
    *) echo "unknown step $step" ;;
  esac
done
echo; echo "== summary"; printf '%s\n' "${summary[@]}" | tee "$OUT/summary.log"
