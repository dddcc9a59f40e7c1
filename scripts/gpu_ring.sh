#!/usr/bin/env bash
# Ring mode over a machine's real GPUs (NVLink / PCIe peers), for docs/RING.md: the GPU topology,
# test_ring_cuda (its first case rings the real GPUs with every transport; the rest use virtual
# ranks), that case again under compute-sanitizer memcheck, then cuda_bench --only ring-gpus for each token count in LONGATTN_RING_TOKENS (default
# "32768 65536 131072": strong scaling at one length, weak scaling across them), every transport
# (AUTO, PEER, HOST_STAGED, NCCL) on 2 and, where there are 4 GPUs, 4 ranks, each output compared
# with single-device FLASH on GPU 0. NVLink SHARP (multicast) stays off: NCCL_NVLS_ENABLE=0.
#
# Build machine:
#   cmake --build build-cudax --target cuda_bench
#   cmake --build build-cudax --target test_ring_cuda
#   mkdir -p build-ring/lib && cp build-cudax/examples/cuda_bench/cuda_bench build-cudax/tests/test_ring_cuda build-ring/
#   strip build-ring/cuda_bench build-ring/test_ring_cuda
#   cp -L /lib/x86_64-linux-gnu/libgomp.so.1 build-ring/lib/
# GPU machine, repository root, build-ring carried along; logs go to $OUT (default /tmp/gpu_ring):
#   bash scripts/gpu_ring.sh
set -u
OUT=${OUT:-/tmp/gpu_ring}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 LD_LIBRARY_PATH="$PWD/build-ring/lib:${LD_LIBRARY_PATH:-}"
nvidia-smi -L | tee "$OUT/gpus.txt"
nvidia-smi topo -m | tee -a "$OUT/gpus.txt"
echo "== test_ring_cuda"
timeout 300 build-ring/test_ring_cuda 2>&1 | tee "$OUT/test_ring_cuda.txt" | grep -E 'ERROR|FAILED|MESSAGE|test cases|assertions|Status' | head -30
echo "== test_ring_cuda, real-GPU case, compute-sanitizer memcheck"
timeout 300 /usr/local/cuda/bin/compute-sanitizer --tool memcheck --print-limit 1000 build-ring/test_ring_cuda \
  -tc='*real GPUs*' > "$OUT/memcheck_ring.txt" 2>&1
grep -E '^========= [A-Z][a-z]' "$OUT/memcheck_ring.txt" | sed 's/0x[0-9a-f]*/X/g' | sort | uniq -c | sort -rn | head
grep -E 'test cases|assertions|Status|ERROR SUMMARY' "$OUT/memcheck_ring.txt"
for n in ${LONGATTN_RING_TOKENS:-32768 65536 131072}; do
  echo "== ring over the GPUs, $n tokens"
  timeout 240 build-ring/cuda_bench --only ring-gpus --ring-tokens "$n" 2>&1 | tee "$OUT/ring_$n.txt"
done
