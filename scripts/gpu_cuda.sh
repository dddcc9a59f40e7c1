#!/usr/bin/env bash
# CUDA backend on a GPU machine: tests, compute-sanitizer (memcheck, racecheck), benchmarks, and
# PyTorch SDPA (FLASH_ATTENTION, CUDNN_ATTENTION) on the same shapes, in one go.
#
#   scripts/gpu_cuda.sh [step ...]      steps: info test memcheck racecheck bench sdpa
#                                       (default: all of them, in that order)
# Environment:
#   BIN  folder holding the prebuilt test_cuda and cuda_bench (default build-cuda-gpu)
#   OUT  folder for the logs (default /tmp/gpu_cuda); a summary table is printed last
#   QUICK=1  shorter benchmarks (sequence 32768 instead of 131072, fewer repetitions)
#
# Build the binaries on a machine with nvcc (Release, the GPU's architecture), e.g.
#   cmake -S . -B build-cuda -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 -DLONGATTN_VULKAN=OFF
#   cmake --build build-cuda --target test_cuda test_cuda_extras cuda_bench
#   mkdir -p build-cuda-gpu && cp build-cuda/tests/test_cuda build-cuda/tests/test_cuda_extras \
#     build-cuda/examples/cuda_bench/cuda_bench build-cuda-gpu/
set -u
BIN=${BIN:-build-cuda-gpu}
OUT=${OUT:-/tmp/gpu_cuda}
mkdir -p "$OUT"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(info test memcheck racecheck bench sdpa)
summary=()
note() { summary+=("$1"); echo "== $1"; }

run_step() {  # name, command...
  local name=$1; shift
  local t0=$(date +%s)
  "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  note "$name: exit $rc in $(( $(date +%s) - t0 )) s (log $OUT/$name.log)"
  return $rc
}

# Test cases small enough for the sanitizers (they slow kernels down 10-100x).
SANITIZE_CASES='*features*,*running state*,*merge*,*LSH*,*tensor-core head dims*'

for step in "${steps[@]}"; do
  case $step in
    info)
      nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv >"$OUT/info.log" 2>&1
      cat "$OUT/info.log"
      ;;
    test)
      run_step test "$BIN/test_cuda"
      tail -4 "$OUT/test.log"
      grep -B3 -A12 "ERROR\|FATAL" "$OUT/test.log" | head -60
      if [ -x "$BIN/test_cuda_extras" ]; then  # mask, ALiBi, sinks, Q8_0/Q4_0 K/V
        run_step test_extras "$BIN/test_cuda_extras"
        tail -4 "$OUT/test_extras.log"
        grep -B3 -A12 "ERROR\|FATAL" "$OUT/test_extras.log" | head -60
      fi
      ;;
    memcheck)
      run_step memcheck compute-sanitizer --tool memcheck --error-exitcode 9 "$BIN/test_cuda" -tc="$SANITIZE_CASES"
      grep -E "ERROR SUMMARY|Invalid|test cases" "$OUT/memcheck.log" | head -10
      if [ -x "$BIN/test_cuda_extras" ]; then
        run_step memcheck_extras compute-sanitizer --tool memcheck --error-exitcode 9 "$BIN/test_cuda_extras"
        grep -E "ERROR SUMMARY|Invalid|test cases" "$OUT/memcheck_extras.log" | head -10
      fi
      ;;
    racecheck)
      run_step racecheck compute-sanitizer --tool racecheck --racecheck-report hazard --error-exitcode 9 \
        "$BIN/test_cuda" -tc='*tensor-core head dims*,*merge*'
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY|hazard|test cases" "$OUT/racecheck.log" | head -10
      ;;
    bench)
      run_step bench "$BIN/cuda_bench" ${QUICK:+--quick}
      cat "$OUT/bench.log"
      ;;
    sdpa)
      N_LONG=131072
      [ -n "${QUICK:-}" ] && N_LONG=32768
      run_step sdpa env N_LONG=$N_LONG python3 - <<'PY'
# PyTorch scaled_dot_product_attention on the shapes cuda_bench times (bf16, B = 1).
import os, torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend

def median_ms(fn, reps):
    fn(); torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); e.synchronize(); ts.append(s.elapsed_time(e))
    ts.sort(); return ts[len(ts) // 2]

n_long = int(os.environ["N_LONG"])
cases = [  # name, hq, hkv, n_q, n_k, d, causal (decode: one query sees every key)
    ("prefill", 32, 8, 16384, 16384, 128, False),
    ("prefill", 32, 8, 16384, 16384, 128, True),
    ("prefill", 12, 12, n_long, n_long, 64, False),
    ("prefill", 12, 12, n_long, n_long, 64, True),
    ("decode", 32, 8, 1, 131072, 128, False),
]
print("torch", torch.__version__, torch.cuda.get_device_name())
for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION):
    for name, hq, hkv, nq, nk, d, causal in cases:
        g = torch.Generator(device="cuda").manual_seed(0)
        q = torch.randn(1, hq, nq, d, device="cuda", dtype=torch.bfloat16, generator=g)
        k = torch.randn(1, hkv, nk, d, device="cuda", dtype=torch.bfloat16, generator=g)
        v = torch.randn(1, hkv, nk, d, device="cuda", dtype=torch.bfloat16, generator=g)
        how = "gqa"
        def run(kk=k, vv=v, gqa=hq != hkv):
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q, kk, vv, is_causal=causal, enable_gqa=gqa)
        try:
            run()
            fn = run
        except Exception:
            ke, ve = k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1)
            how = "expanded kv"
            fn = lambda: run(ke, ve, False)
            try:
                fn()
            except Exception as ex:
                print(f"{backend.name:16s} {name} n={nk} d={d} causal={causal}: unsupported ({str(ex).splitlines()[0][:80]})")
                continue
        ms = median_ms(fn, 3 if nk > 65536 and nq > 1 else 10)
        pairs = nq * nk / (2 if causal else 1)
        tf = 4 * pairs * d * hq / (ms * 1e-3) / 1e12
        gbs = 2 * (nq * hq * d * 2 + nk * hkv * d * 2) / (ms * 1e-3) / 1e9
        print(f"{backend.name:16s} {name:8s} n_q={nq:<7d} n_k={nk:<7d} h={hq}/{hkv} d={d:<3d} "
              f"{'causal' if causal else 'non-causal':10s} {ms:10.3f} ms {tf:8.1f} TFLOP/s {gbs:8.1f} GB/s ({how})")
PY
      cat "$OUT/sdpa.log"
      ;;
    *) echo "unknown step $step" ;;
  esac
done
echo
echo "== summary"
printf '%s\n' "${summary[@]}"
