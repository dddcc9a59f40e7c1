#!/usr/bin/env bash
# HYPER on a CUDA GPU in one go: test_cuda (everything, then the HYPER, LSH and merge cases under
# compute-sanitizer memcheck and racecheck), FLASH vs HYPER timings with cuda_bench, and optionally
# per-kernel durations of the HYPER calls (ncu).
#
# Build machine (nvcc; static binaries, stripped and packed so that the folder can be carried):
#   cmake -S . -B build-hyper -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGATTN_VULKAN=OFF -DCMAKE_CUDA_ARCHITECTURES=90
#   cmake --build build-hyper --target test_cuda cuda_bench
#   mkdir -p /tmp/b && cp build-hyper/tests/test_cuda build-hyper/examples/cuda_bench/cuda_bench /tmp/b
#   strip /tmp/b/* && mkdir -p build-hyper/gpu && tar cf - -C /tmp/b . | xz -6 -T2 > build-hyper/gpu/bins.tar.xz
#   cp scripts/gpu_hyper.sh build-hyper/gpu/
# GPU machine, repository root, the gpu folder carried along (logs under $OUT):
#   GPU=build-hyper/gpu bash build-hyper/gpu/gpu_hyper.sh [test] [memcheck] [bench] [profile]
# A second cuda_bench named cuda_bench_before in the archive is timed too (HYPER only), so that
# two versions are compared in one call.
set -u
GPU=${GPU:-build-hyper/gpu}
OUT=${OUT:-/tmp/gpu_hyper}
B=/tmp/gpu_hyper_bin
mkdir -p "$OUT" "$B" && tar xJf "$GPU/bins.tar.xz" -C "$B"
export PATH="$PATH:/usr/local/cuda/bin"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(test memcheck bench)
summary=()
for step in "${steps[@]}"; do
  t0=$(date +%s)
  case $step in
    test)
      timeout 300 "$B/test_cuda" > "$OUT/test_cuda.log" 2>&1
      rc=$?
      tail -3 "$OUT/test_cuda.log"; grep -B3 -A12 "ERROR\|FATAL" "$OUT/test_cuda.log" | head -60
      summary+=("test_cuda: rc=$rc $(grep 'test cases' "$OUT/test_cuda.log")")
      ;;
    memcheck)
      timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 "$B/test_cuda" \
        -tc='*HYPER*,*gathers*,*merge*,*LSH*' > "$OUT/memcheck.log" 2>&1
      rc=$?
      grep -E "ERROR SUMMARY|Invalid|test cases" "$OUT/memcheck.log" | head -10
      summary+=("memcheck HYPER, gathers, merge, LSH: rc=$rc $(grep 'ERROR SUMMARY' "$OUT/memcheck.log")")
      timeout 200 compute-sanitizer --tool racecheck --racecheck-report hazard --error-exitcode 9 "$B/test_cuda" \
        -tc='*LSH*,*merge*' > "$OUT/racecheck.log" 2>&1
      rc=$?
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test cases" "$OUT/racecheck.log" | head -5
      summary+=("racecheck LSH, merge: rc=$rc $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$OUT/racecheck.log" | head -1)")
      ;;
    bench)
      if [ -x "$B/cuda_bench_before" ]; then
        timeout 200 "$B/cuda_bench_before" --only hyper > "$OUT/bench_before.log" 2>&1
        summary+=("bench before: rc=$?"); grep -i "hyper" "$OUT/bench_before.log"
      fi
      timeout 240 "$B/cuda_bench" --only prefill64,hyper > "$OUT/bench.log" 2>&1
      summary+=("bench: rc=$?"); cat "$OUT/bench.log"
      ;;
    profile)
      # per-kernel durations (ncu, clocks as found) of a warm-up call and one timed call of each
      # HYPER case; the FLASH calls of the error metric show up too
      for c in noncausal causal; do
        timeout 240 ncu --clock-control none --metrics gpu__time_duration.sum --csv \
          --log-file "$OUT/ncu_$c.csv" "$B/cuda_bench" --only hyper-$c --reps 1 > "$OUT/ncu_$c.log" 2>&1
        summary+=("ncu $c: rc=$? $(wc -l < "$OUT/ncu_$c.csv") lines")
      done
      ;;
    *) echo "unknown step $step" ;;
  esac
  summary+=("  ($step took $(( $(date +%s) - t0 )) s)")
done
echo; echo "== summary"; printf '%s\n' "${summary[@]}"
