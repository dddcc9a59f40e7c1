#!/usr/bin/env bash
# Vulkan backend on an NVIDIA GPU machine: tests (portable and cooperative-matrix kernels) and the
# benchmark, with PyTorch's scaled_dot_product_attention (FlashAttention-2 backend) timed on the
# same shapes in the same run.
#
#   scripts/gpu_vulkan.sh prepare   on the build machine (needs glslc and the Vulkan headers):
#                                   builds build-vk and copies the test binaries to build-vkbin/, and the
#                                   Vulkan loader package to .gl/ (both ignored by git)
#   scripts/gpu_vulkan.sh run       on the GPU machine, from the repository root, with build-vkbin and
#                                   .gl carried along: installs the loader, runs the decode sweep
#                                   (decode-kernel choices, GPU timestamps, GPU clocks sampled
#                                   meanwhile), the decode benchmark (decode kernel, portable kernel,
#                                   PyTorch), the tests (with the decode kernel forced, ggml-style
#                                   extras, automatic), then other decode split counts;
#                                   prints JSON lines and writes them to $OUT (or ./gpu_vulkan_out).
#                                   Steps are cut to LONGATTN_VK_BUDGET_S seconds (340) in all;
#                                   LONGATTN_VK_SWEEP=0 leaves out the sweep;
#                                   LONGATTN_VK_FULL_BENCH=1 adds the prefill/sparse/hyper cases.
#   scripts/gpu_vulkan.sh prefill   likewise for the cooperative-matrix prefill kernel: its tests
#                                   forced wherever eligible (LONGATTN_VK_TEST_CASES: the doctest -tc
#                                   filter), the prefill benchmark for each tile in LONGATTN_VK_TILES
#                                   (default: the automatic one; e.g. "auto 4x32 8x32", GPU
#                                   timestamps on, with each pipeline's registers and spills from
#                                   the driver; LONGATTN_VK_TILE_CASES: the cases for the tiles
#                                   other than auto), PyTorch on the same shapes, the forced tests again
#                                   for each tile in LONGATTN_VK_FORCE_TILES, then the tests with the
#                                   automatic choice; LONGATTN_VK_FULL_BENCH=1 adds the sparse/hyper
#                                   cases (HYPER's exact leaves alone too) and a second run of
#                                   FLASH causal, SPARSE and HYPER without timestamps; GPU clocks are
#                                   sampled meanwhile (clocks_prefill.csv); LONGATTN_VK_SKIP_TESTS=1
#                                   leaves the tests out.
#   scripts/gpu_vulkan.sh diag      what each part of the cooperative-matrix tile loop costs
#                                   (see diag() below)
#   scripts/gpu_vulkan.sh sass      the same variants' machine code (see sass() below)
#   scripts/gpu_vulkan.sh compare   two builds (or tiles) side by side on the same machine (see
#                                   compare() below)
# Every mode but prepare: LONGATTN_VK_BUNDLE=1 packs its output files into $OUT/results.tar.gz.
set -u
# LONGATTN_VK_ROOT: the repository root (default: this script's parent folder); LONGATTN_VK_BIN: the
# folder with the test binaries (default build-vkbin)
cd "${LONGATTN_VK_ROOT:-$(dirname "$0")/..}"
BIN="${LONGATTN_VK_BIN:-build-vkbin}"

prepare() {
  set -e
  cmake -S . -B build-vk -G Ninja -DLONGATTN_CUDA=OFF -DLONGATTN_VULKAN=ON -DLONGATTN_BUILD_EXAMPLES=OFF
  cmake --build build-vk -j2 --target test_vulkan test_vulkan_extras test_vulkan_bench
  mkdir -p build-vkbin .gl
  cp build-vk/tests/test_vulkan build-vk/tests/test_vulkan_extras build-vk/tests/test_vulkan_bench build-vkbin/
  if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then (cd .gl && apt-get download libvulkan1); fi
}

# Output folder, time budget helpers and the Vulkan loader; shared by run and prefill.
setup() {
  out="${OUT:-gpu_vulkan_out}"
  mkdir -p "$out"
  # one run gets a fixed time: steps are ordered by importance and each is cut to what is left
  budget="${LONGATTN_VK_BUDGET_S:-340}"
  # the Vulkan loader and the GL dispatch libraries NVIDIA's ICD links against (the machine has
  # NVIDIA's driver and ICD description but neither of those)
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  if [ -e /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  fi
  nvidia-smi -L
  export LONGATTN_VULKAN_VALIDATION=0  # no validation layer there; lavapipe runs validate in CI
}
left() { local l=$((budget - SECONDS)); [ "$l" -lt "$1" ] && echo "$l" || echo "$1"; }
step() {  # step CAP_SECONDS command...: runs when at least 15 s are left
  local cap="$1"; shift
  local t; t=$(left "$cap")
  if [ "$t" -lt 15 ]; then echo "(skipped: ${t}s left)"; return; fi
  timeout "$t" "$@"
}

# PyTorch's scaled_dot_product_attention with the FLASH_ATTENTION backend on the benchmark shapes
# (torch_bench CAP_SECONDS; LONGATTN_VK_TORCH_PREFILL=1: the prefill shapes only).
torch_bench() {
  step "$1" python3 - <<'EOF' 2>&1
import json, torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend

def timed(fn, reps):
    fn(); torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]

dev, f16 = "cuda", torch.float16
print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__}))
x = torch.empty(1 << 29, dtype=torch.int16, device=dev); y = torch.empty_like(x)
ms = timed(lambda: y.copy_(x), 5)
print(json.dumps({"case": "torch_copy", "ms": ms, "gbps": 2 * x.numel() * 2 / (ms * 1e6)}))
del x, y

def sdpa(name, nq, nk, hq, hkv, d, causal, reps):
    q = torch.randn(1, hq, nq, d, dtype=f16, device=dev)
    k = torch.randn(1, hkv, nk, d, dtype=f16, device=dev)
    v = torch.randn(1, hkv, nk, d, dtype=f16, device=dev)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        try:
            fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
            fn(); gqa = "enable_gqa"
        except Exception:
            ke, ve = k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1)
            fn = lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=causal and nq > 1)
            gqa = "expanded"
        ms = timed(fn, reps)
    pairs = nq * (nq + 1) / 2 if causal and nq == nk else nq * nk
    flops = 4.0 * d * pairs * hq
    bytes_ = 2.0 * (nq * hq * 2 * d + nk * hkv * 2 * d)
    print(json.dumps({"case": name, "ms": ms, "tflops": flops / (ms * 1e9), "gbps": bytes_ / (ms * 1e6), "gqa": gqa}))

import os
if os.environ.get("LONGATTN_VK_FULL_BENCH") == "1" or os.environ.get("LONGATTN_VK_TORCH_PREFILL") == "1":
    sdpa("prefill_causal", 16384, 16384, 32, 8, 128, True, 5)
    sdpa("prefill_full", 4096, 4096, 32, 8, 128, False, 5)
if os.environ.get("LONGATTN_VK_TORCH_PREFILL") != "1":
    sdpa("decode", 1, 131072, 32, 8, 128, False, 20)
EOF
}

run() {
  setup
  # SM / memory clocks, power and utilisation every 200 ms while the benchmarks run
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,pstate,power.draw,utilization.gpu \
    --format=csv,noheader -lms 200 >"$out/clocks.csv" 2>&1 &
  local smi=$!

  export LONGATTN_VULKAN_BENCH=1
  if [ "${LONGATTN_VK_SWEEP:-1}" != 0 ]; then
    echo "== decode sweep: decode-kernel choices (GPU timestamps) [t=${SECONDS}s]"
    LONGATTN_VULKAN_BENCH_CASES=decode_sweep LONGATTN_VULKAN_PROFILE=1 \
      step 110 "$BIN"/test_vulkan_bench 2>&1 | grep '^{' >"$out/bench_decode_sweep.jsonl"
    grep -v '"gpu_dispatch"' "$out/bench_decode_sweep.jsonl"
  fi
  echo "== decode benchmark: decode kernel (automatic choice, no timestamps) [t=${SECONDS}s]"
  LONGATTN_VULKAN_BENCH_CASES=decode \
    step 45 "$BIN"/test_vulkan_bench 2>&1 | grep '^{' | tee "$out/bench_decode_auto_noprofile.jsonl"
  kill "$smi" 2>/dev/null
  echo "== tests, decode kernel wherever eligible [t=${SECONDS}s]"
  LONGATTN_VULKAN_DECODE=force step 120 "$BIN"/test_vulkan 2>&1 | tee "$out/test_decode_force.txt" | tail -8
  echo "== decode benchmark: decode kernel and portable kernel, GPU timestamps [t=${SECONDS}s]"
  LONGATTN_VULKAN_BENCH_CASES=decode LONGATTN_VULKAN_PROFILE=1 \
    step 45 "$BIN"/test_vulkan_bench 2>&1 | grep '^{' | tee "$out/bench_decode_auto.jsonl"
  LONGATTN_VULKAN_BENCH_CASES=decode LONGATTN_VULKAN_PROFILE=1 LONGATTN_VULKAN_DECODE=0 \
    step 45 "$BIN"/test_vulkan_bench 2>&1 | grep '^{' | tee "$out/bench_decode_portable.jsonl"
  if [ -x "$BIN"/test_vulkan_extras ]; then
    echo "== ggml-style extras (mask, ALiBi, sinks, Q8_0/Q4_0), automatic choice [t=${SECONDS}s]"
    step 40 "$BIN"/test_vulkan_extras 2>&1 | tee "$out/test_extras_auto.txt" | tail -6
  fi
  echo "== PyTorch scaled_dot_product_attention (FLASH_ATTENTION backend), decode"
  torch_bench 60 | tee "$out/bench_torch.jsonl"

  echo "== tests, automatic kernel choice"
  step 80 "$BIN"/test_vulkan 2>&1 | tee "$out/test_auto.txt" | tail -8
  echo "== decode benchmark, other split counts"
  for sp in 32 256; do
    LONGATTN_VULKAN_BENCH_CASES=decode LONGATTN_VULKAN_DECODE_SPLITS=$sp \
      step 40 "$BIN"/test_vulkan_bench 2>&1 | grep '^{' | tee "$out/bench_decode_splits$sp.jsonl"
  done
  if [ "${LONGATTN_VK_FULL_BENCH:-0}" = 1 ]; then
    echo "== whole benchmark"
    step 150 "$BIN"/test_vulkan_bench 2>&1 | grep '^{' | tee "$out/bench_auto.jsonl"
  fi
}

prefill() {
  setup
  local t tiles="${LONGATTN_VK_TILES:-auto}"
  local attend_cases="${LONGATTN_VK_TEST_CASES:-*attend*,*FLASH*,*SPARSE*,*HYPER*,*device buffers*}"
  local tests=1
  [ "${LONGATTN_VK_SKIP_TESTS:-0}" = 1 ] && tests=0
  if [ $tests = 1 ]; then
    echo "== tests, cooperative-matrix kernel wherever eligible (LONGATTN_VULKAN_COOPMAT=force)"
    LONGATTN_VULKAN_COOPMAT=force step 100 "$BIN"/test_vulkan -tc="$attend_cases" 2>&1 |
      tee "$out/test_coopmat_force.txt" | grep -E 'ERROR|FAILED|CHECK|test cases|assertions|Status' | head -40
  fi
  echo "== prefill benchmark per tile (GPU timestamps), at ${SECONDS}s"
  export LONGATTN_VULKAN_BENCH=1
  local cases="prefill_causal,prefill_full"
  [ "${LONGATTN_VK_FULL_BENCH:-0}" = 1 ] && cases="$cases,sparse_w4096,hyper_causal,hyper_leaves,causal_4096_f32"
  # SM / memory clocks, power and utilisation every 200 ms while the benchmarks run
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,pstate,power.draw,utilization.gpu \
    --format=csv,noheader -lms 200 >"$out/clocks_prefill.csv" 2>&1 &
  local smi=$!
  for t in $tiles; do
    if [ "$t" = auto ]; then
      LONGATTN_VULKAN_BENCH_CASES=$cases LONGATTN_VULKAN_PROFILE=1 LONGATTN_VULKAN_PIPELINE_STATS=1 \
        step 90 "$BIN"/test_vulkan_bench 2>&1 | grep '^{' | tee "$out/bench_prefill_auto.jsonl"
    else
      LONGATTN_VULKAN_COOPMAT_TILE=$t LONGATTN_VULKAN_BENCH_CASES=${LONGATTN_VK_TILE_CASES:-$cases} LONGATTN_VULKAN_PROFILE=1 \
        LONGATTN_VULKAN_PIPELINE_STATS=1 \
        step 40 "$BIN"/test_vulkan_bench 2>&1 | grep '^{' | sed "s/^{/{\"tile\":\"$t\",/" |
        tee "$out/bench_prefill_$t.jsonl"
    fi
  done
  if [ "${LONGATTN_VK_FULL_BENCH:-0}" = 1 ]; then
    echo "== sparse and hyper cases without GPU timestamps, at ${SECONDS}s"
    LONGATTN_VULKAN_BENCH_CASES=prefill_causal,sparse_w4096,hyper_causal \
      step 60 "$BIN"/test_vulkan_bench 2>&1 | grep '^{' | tee "$out/bench_prefill_noprofile.jsonl"
  fi
  kill "$smi" 2>/dev/null
  echo "== PyTorch scaled_dot_product_attention (FLASH_ATTENTION backend), prefill, at ${SECONDS}s"
  LONGATTN_VK_TORCH_PREFILL=1 torch_bench 60 | tee "$out/bench_torch_prefill.jsonl"
  [ $tests = 1 ] || return 0
  if [ -n "${LONGATTN_VK_FORCE_TILES:-}" ]; then
    for t in $LONGATTN_VK_FORCE_TILES; do
      echo "== tests, cooperative-matrix kernel forced with tile $t"
      LONGATTN_VULKAN_COOPMAT=force LONGATTN_VULKAN_COOPMAT_TILE=$t step 60 "$BIN"/test_vulkan -tc="$attend_cases" 2>&1 |
        tee "$out/test_coopmat_force_$t.txt" | grep -E 'ERROR|FAILED|test cases|assertions|Status' | head -20
    done
  fi
  echo "== tests, automatic kernel choice, at ${SECONDS}s"
  step 90 "$BIN"/test_vulkan 2>&1 | tee "$out/test_auto.txt" | grep -E 'ERROR|FAILED|test cases|assertions|Status' | head -20
}

# What each part of the cooperative-matrix kernel's tile loop costs: the prefill benchmark with
# LONGATTN_VULKAN_COOPMAT_DIAG = each of LONGATTN_VK_DIAGS (default "0 1 2 3 4 5 6"; 0 is the real
# kernel, the others leave a part out and give wrong results), tile LONGATTN_VK_DIAG_TILE.
diag() {
  setup
  local d
  export LONGATTN_VULKAN_BENCH=1 LONGATTN_VULKAN_COOPMAT_TILE="${LONGATTN_VK_DIAG_TILE:-8x32x1x0x2x1}"
  for d in ${LONGATTN_VK_DIAGS:-0 1 2 3 4 5 6}; do
    LONGATTN_VULKAN_COOPMAT_DIAG=$d LONGATTN_VULKAN_BENCH_CASES=${LONGATTN_VK_TILE_CASES:-prefill_causal,prefill_full} \
      step 40 "$BIN"/test_vulkan_bench 2>&1 | grep '^{' | grep -v gpu_dispatch | sed "s/^{/{\"diag\":$d,/" |
      tee "$out/bench_diag_$d.jsonl"
  done
}

# The cooperative-matrix kernel's machine code for each DIAG in LONGATTN_VK_DIAGS (default "0 9 18 19"),
# recovered from the driver's shader disk cache (scripts/vk_sass.py), with each variant's benchmark
# (prefill_full, LONGATTN_VK_DIAG_TILE); writes $out/sass.tar.gz. LONGATTN_VK_ZSTD: a zstd binary
# (carried along where the machine has none).
sass() {
  setup
  local d dir here
  here="$(cd "$(dirname "$0")" && pwd)"
  dir=$(mktemp -d)
  export LONGATTN_VULKAN_BENCH=1 LONGATTN_VULKAN_PIPELINE_STATS=1 LONGATTN_VULKAN_COOPMAT_TILE="${LONGATTN_VK_DIAG_TILE:-8x32x1x0x2x1}"
  for d in ${LONGATTN_VK_DIAGS:-0 9 18 19}; do
    mkdir -p "$dir/cache_$d"
    __GL_SHADER_DISK_CACHE=1 __GL_SHADER_DISK_CACHE_PATH="$dir/cache_$d" __GL_SHADER_DISK_CACHE_SKIP_CLEANUP=1 \
      LONGATTN_VULKAN_COOPMAT_DIAG=$d LONGATTN_VULKAN_BENCH_CASES=${LONGATTN_VK_TILE_CASES:-prefill_full} \
      step 60 "$BIN"/test_vulkan_bench >"$dir/bench_$d.txt" 2>&1
    grep '^{' "$dir/bench_$d.txt" | grep -v 'gpu_dispatch\|pipeline_stats' | sed "s/^{/{\"diag\":$d,/" | tee -a "$out/bench_sass.jsonl"
    python3 "$here/vk_sass.py" "$dir/cache_$d" "$dir/bench_$d.txt" "$dir/diag_$d" "${LONGATTN_VK_ZSTD:-zstd}" \
      /usr/local/cuda/bin/nvdisasm
  done
  tar -C "$dir" -czf "$out/sass.tar.gz" .
}

# Two or more builds side by side: the forced cooperative-matrix tests of the first (they also
# warm the GPU up), then the benchmark cases LONGATTN_VK_COMPARE_CASES (GPU timestamps on) for
# each entry of LONGATTN_VK_COMPARE ("DIR", "DIR:TILE" or "DIR:TILE:VAR=VALUE,...", DIR a folder
# with test_vulkan_bench, TILE a LONGATTN_VULKAN_COOPMAT_TILE or empty, then environment settings
# for that entry, e.g. LONGATTN_VULKAN_BENCH_BLOCK=512), the whole list twice, interleaved, so that
# clock drift shows; one JSONL file per entry and round. LONGATTN_VK_FORCE_TILES: the forced tests
# again with each of these tiles (before the rounds).
compare() {
  setup
  export LONGATTN_VULKAN_BENCH=1
  local entries="${LONGATTN_VK_COMPARE:-$BIN}" e dir tile envs round i first
  first="${entries%% *}"; first="${first%%:*}"
  if [ "${LONGATTN_VK_SKIP_TESTS:-0}" != 1 ]; then
    # the automatic tiles (an empty tile), then each forced one
    for tile in "" ${LONGATTN_VK_FORCE_TILES:-}; do
      echo "== tests of $first, cooperative-matrix kernel wherever eligible, tile ${tile:-auto}, at ${SECONDS}s"
      LONGATTN_VULKAN_COOPMAT=force LONGATTN_VULKAN_COOPMAT_TILE="$tile" step 110 "$first"/test_vulkan \
        -tc="${LONGATTN_VK_TEST_CASES:-*attend*,*FLASH*,*SPARSE*,*HYPER*,*device buffers*}" 2>&1 |
        tee "$out/test_coopmat_force${tile:+_$tile}.txt" | grep -E 'ERROR|FAILED|CHECK|test cases|assertions|Status|fit' | head -30
    done
  fi
  for round in 1 2; do
    i=0
    for e in $entries; do
      i=$((i + 1))
      dir="${e%%:*}"; tile=""; envs=""
      [ "$e" != "$dir" ] && tile="${e#*:}"
      [ "$tile" != "${tile%%:*}" ] && { envs="${tile#*:}"; tile="${tile%%:*}"; }
      echo "== round $round, entry $i: $dir ${tile:-auto} ${envs}, at ${SECONDS}s"
      ( [ -z "$envs" ] || export ${envs//,/ }
        LONGATTN_VULKAN_COOPMAT_TILE="$tile" LONGATTN_VULKAN_BENCH_CASES="${LONGATTN_VK_COMPARE_CASES:-prefill_causal}" \
          LONGATTN_VULKAN_PROFILE=1 step 80 "$dir"/test_vulkan_bench ) 2>&1 | grep '^{' |
        sed "s|^{|{\"entry\":$i,\"round\":$round,|" | tee "$out/compare_${i}_$round.jsonl" | grep -v gpu_dispatch
    done
  done
}

# LONGATTN_VK_BUNDLE=1: pack what a mode wrote into $out/results.tar.gz (one file to copy back from
# the GPU machine instead of one per step and tile)
bundle() {
  [ "${LONGATTN_VK_BUNDLE:-0}" = 1 ] && [ -n "${out:-}" ] || return 0
  (cd "$out" && find . -maxdepth 1 -type f ! -name results.tar.gz -printf '%P\n' | tar -czf results.tar.gz -T - &&
    find . -maxdepth 1 -type f ! -name results.tar.gz -delete)
}

case "${1:-run}" in
  prepare) prepare ;;
  run) run; bundle ;;
  prefill) prefill; bundle ;;
  diag) diag; bundle ;;
  sass) sass; bundle ;;
  compare) compare; bundle ;;
  *) echo "usage: $0 prepare|run|prefill|diag|sass|compare" >&2; exit 2 ;;
esac
