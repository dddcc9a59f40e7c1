#!/usr/bin/env bash
# Ring mode on one GPU: N virtual ranks (LONGATTN_CONTEXT_RING_VIRTUAL) in one go: the ring tests
# (every transport: device-to-device peer copies, pinned-host staging, NCCL as far as one GPU
# allows), compute-sanitizer memcheck and racecheck on small cases, and the ring-vs-single-device
# timings (device tensors through cuda_bench, host tensors through `longattn bench`). On a machine
# with several GPUs `test` also rings the real GPUs (test_ring_cuda's first case: every transport),
# and two more steps take them on: memcheck_gpus (that case under compute-sanitizer memcheck) and
# bench_gpus (cuda_bench --only ring-gpus: rings of devices 0 … N − 1 against one GPU).
#
#   scripts/gpu_ring.sh [step ...]   steps: info test nccl nccl_virtual bench_device bench_host
#                                    memcheck racecheck (default: all of them, in that order),
#                                    memcheck_gpus bench_gpus (on request)
# Environment:
#   BIN     folder holding the prebuilt test_ring_cuda, cuda_bench and longattn (default build-ringcuda/gpu);
#           a gpu.tar.xz there is unpacked first
#   OUT     folder for the logs (default /tmp/gpu_ring); summary.log is written last
#   BUDGET  seconds the whole script may take (default 400); every step is cut off so that the
#           later ones still get their turn, and a failing step never stops the others
#   TOKENS  sequence length of the benchmarks (default 65536)
#   GPU_TOKENS  sequence lengths of bench_gpus (default "32768 65536 131072": weak and strong scaling)
#
# Build the binaries on a machine with nvcc (Release, the GPU's architecture), e.g.
#   cmake -S . -B build-ringcuda -G Ninja -DLONGATTN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
#         -DLONGATTN_VULKAN=OFF -DCMAKE_BUILD_TYPE=Release
#   cmake --build build-ringcuda --target test_ring_cuda cuda_bench longattn_tool
#   mkdir -p build-ringcuda/gpu && cp build-ringcuda/tests/test_ring_cuda \
#     build-ringcuda/examples/cuda_bench/cuda_bench build-ringcuda/examples/longattn build-ringcuda/gpu/
# (strip them, and if they are too big to carry: tar cf - -C DIR . | xz > build-ringcuda/gpu/gpu.tar.xz)
set -u
set -x
BIN=${BIN:-build-ringcuda/gpu}
OUT=${OUT:-/tmp/gpu_ring}
BUDGET=${BUDGET:-400}
TOKENS=${TOKENS:-65536}
export PATH="$PATH:/usr/local/cuda/bin"  # compute-sanitizer
export NCCL_NVLS_ENABLE=0  # no NVLink SHARP (multicast) on the multi-GPU machines
export LD_LIBRARY_PATH="$BIN/lib:${LD_LIBRARY_PATH:-}"  # libraries carried beside the binaries, if any
mkdir -p "$OUT"
[ -f "$BIN/gpu.tar.xz" ] && tar xJf "$BIN/gpu.tar.xz" -C "$BIN"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(info test nccl nccl_virtual bench_device bench_host memcheck racecheck)
t_start=$(date +%s)
summary=()
note() { summary+=("$1"); echo "== $1"; }

# seconds a step may run: its own cap, and never past the budget (minus a few for the summary)
allowance() {
  local cap=$1 left=$(( BUDGET - ($(date +%s) - t_start) - 5 ))
  [ "$left" -lt "$cap" ] && cap=$left
  [ "$cap" -lt 1 ] && cap=1
  echo "$cap"
}

run_step() {  # name, cap in seconds, command...
  local name=$1 cap=$2; shift 2
  local limit; limit=$(allowance "$cap")
  local t0; t0=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" 2>&1 | tee -a "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  local what="exit $rc"
  [ "$rc" -eq 124 ] && what="cut off after $limit s"
  note "$name: $what in $(( $(date +%s) - t0 )) s"
  return "$rc"
}

# Small cases for the sanitizers (they slow kernels down 10-1000x).
MEMCHECK_CASES='*small mixed*,*shard tensors*,*decode*'
RACECHECK_CASES='*small mixed*'
BENCH_ARGS=(bench --backend cuda --q-tokens "$TOKENS" --dtype bf16 --kv-dtype bf16 --heads 32:8 --head-dim 128
            --causal --repeat 3 --warmup 1 --json)

for step in "${steps[@]}"; do
  case $step in
    info)
      nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv >"$OUT/info.log" 2>&1
      compute-sanitizer --version >>"$OUT/info.log" 2>&1
      { nvidia-smi topo -m; ldconfig -p | grep -i nccl; } >>"$OUT/info.log" 2>&1
      cat "$OUT/info.log"
      ;;
    test)
      # on failure, once more with every launch and copy synchronous: failures that vanish then
      # point at a missing wait between streams rather than at the arithmetic
      # (the NCCL cases run in the next steps, each in its own process)
      run_step test 170 "$BIN/test_ring_cuda" -tce="*NCCL*" ||
        run_step test_blocking 90 env CUDA_LAUNCH_BLOCKING=1 "$BIN/test_ring_cuda" -tce="*NCCL*"
      ;;
    nccl)
      # missing library (first: NCCL stays loaded once loaded), 1-rank communicator, self exchange
      run_step nccl 45 env NCCL_DEBUG=WARN "$BIN/test_ring_cuda" -tc="*NCCL*" -tce="*virtual ranks*"
      ;;
    nccl_virtual)
      # what NCCL answers to two and four ranks on one GPU
      run_step nccl_virtual 45 env NCCL_DEBUG=WARN "$BIN/test_ring_cuda" -tc="*NCCL with virtual ranks*"
      ;;
    bench_device)
      run_step bench_device 90 "$BIN/cuda_bench" --only ring --ring-tokens "$TOKENS"
      ;;
    bench_host)
      run_step bench_host 60 "$BIN/longattn" "${BENCH_ARGS[@]}"
      run_step bench_host 60 "$BIN/longattn" "${BENCH_ARGS[@]}" --ring-devices 4 --ring-virtual --ring-layout zigzag
      run_step bench_host 60 "$BIN/longattn" "${BENCH_ARGS[@]}" --ring-devices 4 --ring-virtual --ring-layout zigzag \
        --ring-transport host
      ;;
    memcheck)
      run_step memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 9 "$BIN/test_ring_cuda" -tc="$MEMCHECK_CASES"
      ;;
    memcheck_gpus)
      run_step memcheck_gpus 240 compute-sanitizer --tool memcheck --error-exitcode 9 "$BIN/test_ring_cuda" -tc="*real GPUs*"
      ;;
    bench_gpus)
      for n in ${GPU_TOKENS:-32768 65536 131072}; do
        run_step bench_gpus 120 "$BIN/cuda_bench" --only ring-gpus --ring-tokens "$n"
      done
      ;;
    racecheck)
      run_step racecheck 120 compute-sanitizer --tool racecheck --racecheck-report hazard --error-exitcode 9 \
        "$BIN/test_ring_cuda" -tc="$RACECHECK_CASES"
      ;;
    *) echo "unknown step $step" ;;
  esac
done

{
  echo "== summary (budget $BUDGET s, used $(( $(date +%s) - t_start )) s)"
  printf '%s\n' "${summary[@]}"
  for f in test test_blocking nccl nccl_virtual memcheck memcheck_gpus racecheck; do
    [ -f "$OUT/$f.log" ] && grep -H -E "test cases:|assertions:|ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/$f.log"
  done
  for f in nccl nccl_virtual; do
    [ -f "$OUT/$f.log" ] && grep -H -E "NCCL (with|not)|accepted|WARN" "$OUT/$f.log" | head -8
  done
  [ -f "$OUT/bench_device.log" ] && grep -E "ms|skipped" "$OUT/bench_device.log"
  [ -f "$OUT/bench_gpus.log" ] && grep -E "ms|skipped" "$OUT/bench_gpus.log"
  [ -f "$OUT/bench_host.log" ] && grep '^{' "$OUT/bench_host.log"
} 2>&1 | tee "$OUT/summary.log"
