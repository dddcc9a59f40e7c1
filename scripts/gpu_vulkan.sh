#!/usr/bin/env bash
# Vulkan backend on an NVIDIA GPU machine: tests (portable and cooperative-matrix kernels) and the
# benchmark, with PyTorch's scaled_dot_product_attention (FlashAttention-2 backend) timed on the
# same shapes in the same run.
#
#   scripts/gpu_vulkan.sh prepare   on the build machine (needs glslc and the Vulkan headers):
#                                   builds build-vk and copies the test binaries to build-vkbin/, and the
#                                   Vulkan loader package to .gl/ (both ignored by git)
#   scripts/gpu_vulkan.sh run       on the GPU machine, from the repository root, with build-vkbin and
#                                   .gl carried along: installs the loader, runs, prints JSON lines
#                                   and writes them to $OUT (or ./gpu_vulkan_out) as well
set -u
cd "$(dirname "$0")/.."

prepare() {
  set -e
  cmake -S . -B build-vk -G Ninja -DLONGATTN_CUDA=OFF -DLONGATTN_VULKAN=ON -DLONGATTN_BUILD_EXAMPLES=OFF
  cmake --build build-vk -j2 --target test_vulkan test_vulkan_extras test_vulkan_bench
  mkdir -p build-vkbin .gl
  cp build-vk/tests/test_vulkan build-vk/tests/test_vulkan_extras build-vk/tests/test_vulkan_bench build-vkbin/
  if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then (cd .gl && apt-get download libvulkan1); fi
}

run() {
  local out="${OUT:-gpu_vulkan_out}"
  mkdir -p "$out"
  # the Vulkan loader and the GL dispatch libraries NVIDIA's ICD links against (the machine has
  # NVIDIA's driver and ICD description but neither of those)
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  if [ -e /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  fi
  nvidia-smi -L
  ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d 2>/dev/null
  echo "== devices (loader errors shown)"
  VK_LOADER_DEBUG=error timeout 30 build-vkbin/test_vulkan -tc='vulkan: device enumeration' 2>&1 | grep -E 'MESSAGE|ERROR|rror' | head -20
  export LONGATTN_VULKAN_VALIDATION=0  # no validation layer there; lavapipe runs validate in CI

  echo "== tests, automatic kernel choice"
  timeout 120 build-vkbin/test_vulkan 2>&1 | tee "$out/test_auto.txt" | tail -25
  echo "== tests, cooperative-matrix kernel wherever eligible"
  LONGATTN_VULKAN_COOPMAT=force timeout 120 build-vkbin/test_vulkan 2>&1 | tee "$out/test_coopmat.txt" | tail -25
  echo "== ggml-style extras (mask, ALiBi, sinks, Q8_0/Q4_0), automatic and cooperative-matrix"
  timeout 120 build-vkbin/test_vulkan_extras 2>&1 | tee "$out/test_extras_auto.txt" | tail -6
  LONGATTN_VULKAN_COOPMAT=force timeout 120 build-vkbin/test_vulkan_extras 2>&1 | tee "$out/test_extras_coopmat.txt" | tail -6

  echo "== benchmark"
  LONGATTN_VULKAN_BENCH=1 timeout 150 build-vkbin/test_vulkan_bench 2>&1 | grep '^{' | tee "$out/bench_auto.jsonl"
  LONGATTN_VULKAN_BENCH=1 LONGATTN_VULKAN_BENCH_CASES=prefill_causal,prefill_full LONGATTN_VULKAN_COOPMAT=0 \
    timeout 90 build-vkbin/test_vulkan_bench 2>&1 | grep '^{' | tee "$out/bench_portable.jsonl"

  echo "== PyTorch scaled_dot_product_attention (FLASH_ATTENTION backend), same shapes"
  timeout 120 python3 - <<'EOF' 2>&1 | tee "$out/bench_torch.jsonl"
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

sdpa("prefill_causal", 16384, 16384, 32, 8, 128, True, 5)
sdpa("prefill_full", 4096, 4096, 32, 8, 128, False, 5)
sdpa("decode", 1, 131072, 32, 8, 128, False, 20)
EOF
}

case "${1:-run}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
