#!/usr/bin/env bash
# Ring mode over a machine's real GPUs (NVLink / PCIe peers), for docs/RING.md: the GPU topology,
# then cuda_bench --only ring-gpus for each token count in LONGATTN_RING_TOKENS (default
# "32768 65536 131072": strong scaling at one length, weak scaling across them), every transport
# (AUTO, PEER, HOST_STAGED, NCCL) on 2 and, where there are 4 GPUs, 4 ranks, each output compared
# with single-device FLASH on GPU 0. NVLink SHARP (multicast) stays off: NCCL_NVLS_ENABLE=0.
#
# Build machine:
#   cmake --build build-cudax --target cuda_bench
#   mkdir -p build-ring/lib && cp build-cudax/examples/cuda_bench/cuda_bench build-ring/ && strip build-ring/cuda_bench
#   cp -L /lib/x86_64-linux-gnu/libgomp.so.1 build-ring/lib/
# GPU machine, repository root, build-ring carried along; logs go to $OUT (default /tmp/gpu_ring):
#   bash scripts/gpu_ring.sh
set -u
OUT=${OUT:-/tmp/gpu_ring}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 LD_LIBRARY_PATH="$PWD/build-ring/lib:${LD_LIBRARY_PATH:-}"
nvidia-smi -L | tee "$OUT/gpus.txt"
nvidia-smi topo -m | tee -a "$OUT/gpus.txt"
for n in ${LONGATTN_RING_TOKENS:-32768 65536 131072}; do
  echo "== ring over the GPUs, $n tokens"
  timeout 240 build-ring/cuda_bench --only ring-gpus --ring-tokens "$n" 2>&1 | tee "$OUT/ring_$n.txt"
done
