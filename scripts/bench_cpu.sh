#!/usr/bin/env bash
# The CPU benchmark behind docs/PERFORMANCE.md: the machine's ceilings, then FLASH prefill and
# decode, dtypes, head dims, thread scaling, SPARSE and HYPER, q8_0 decode — one JSON line per case
# into $1 (default bench-cpu.jsonl). Takes ~15 minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-cpu.jsonl}
tool=${LONGATTN_TOOL:-build/examples/longattn}
: > "$out"
run() { echo "+ $*" >&2; "$tool" "$@" --json | tee -a "$out"; }
"$tool" ceiling --threads 1 --json | tee -a "$out"
"$tool" ceiling --threads 2 --json | tee -a "$out"
common=(--heads 32:8 --head-dim 128 --threads 2 --repeat 3 --check)
# prefill, causal and not, f32 and f16 K/V (Q f32); bf16 everywhere
run bench --q-tokens 4096 --dtype f32 --kv-dtype f32,f16 --causal "${common[@]}"
run bench --q-tokens 4096 --dtype f32 --kv-dtype f32,f16 "${common[@]}"
run bench --q-tokens 4096 --dtype bf16 --kv-dtype bf16 --causal "${common[@]}"
# the same with the avx512 kernels (bf16 widened to fp32) where the automatic choice is avx512bf16
if "$tool" info | grep -q 'selected: avx512bf16'; then
  LONGATTN_CPU_ISA=avx512 run bench --q-tokens 4096 --dtype bf16 --kv-dtype bf16 --causal "${common[@]}"
fi
run bench --q-tokens 16384 --dtype f32 --kv-dtype f16 --causal --heads 32:8 --head-dim 128 --threads 2 --repeat 1 --check
# head dims
run bench --q-tokens 4096 --dtype f32 --kv-dtype f16 --causal --heads 32:8 --head-dim 64,80,96,256 --threads 2 --repeat 2 --check
# thread scaling
run bench --q-tokens 4096 --dtype f32 --kv-dtype f16 --causal --heads 32:8 --head-dim 128 --threads 1 --repeat 1
run bench --q-tokens 1 --kv-tokens 131072 --dtype f32 --kv-dtype f16 --causal --heads 32:8 --head-dim 128 --threads 1,2 --repeat 5
# decode: one token and a speculative batch of 4, long caches; batch 8; q8_0 / q4_0 caches
run bench --q-tokens 1,4 --kv-tokens 32768,131072 --dtype f32 --kv-dtype f16 --causal "${common[@]}"
run bench --batch 8 --q-tokens 1 --kv-tokens 32768 --dtype f32 --kv-dtype f16 --causal "${common[@]}"
run bench --q-tokens 1 --kv-tokens 131072 --dtype f32 --kv-dtype q8_0,q4_0 --causal "${common[@]}"
# SPARSE and HYPER against causal FLASH on the same inputs (8:2 heads keep FLASH at 65536 to minutes)
run bench --algo flash,sparse --q-tokens 65536 --dtype f32 --kv-dtype f16 --causal --window 4095:-1 --global 4 \
  --heads 8:2 --head-dim 128 --threads 2 --repeat 1
run bench --algo sparse --q-tokens 262144 --dtype f32 --kv-dtype f16 --causal --window 4095:-1 --global 4 \
  --heads 8:2 --head-dim 128 --threads 2 --repeat 1
run bench --algo hyper --q-tokens 65536 --dtype f32 --kv-dtype f16 --heads 8:2 --head-dim 128 --threads 2 --repeat 1 --check --check-rows 16
run bench --algo hyper --q-tokens 65536 --dtype f32 --kv-dtype f16 --causal --heads 8:2 --head-dim 128 --threads 2 --repeat 1 --check --check-rows 16
run bench --algo flash --q-tokens 65536 --dtype f32 --kv-dtype f16 --heads 8:2 --head-dim 128 --threads 2 --repeat 1
