#!/usr/bin/env python3
"""Writes backends/cuda/wgmma_sm90.cuh: inline-PTX wrappers of the Hopper warpgroup matrix
instructions used by the FLASH kernel (wgmma.mma_async m64nNk16, fp32 accumulators, bf16 or f16
inputs), one function per (N, A from shared memory or registers). The accumulator operand lists
are long and regular, hence a generator: run `python3 scripts/gen_wgmma.py` after editing it."""
import pathlib

NS = (64, 128)


def acc_list(n):
    return ", ".join(f"%{i}" for i in range(n // 2))


def acc_constraints(n):
    return ", ".join(f'"+f"(d[{i}])' for i in range(n // 2))


def emit(n, regs_a):
    nacc = n // 2
    name = f"wgmma_m64n{n}k16_{'rs' if regs_a else 'ss'}"
    if regs_a:
        a_ops = "{" + ", ".join(f"%{nacc + i}" for i in range(4)) + "}"
        b_op, flag = f"%{nacc + 4}", f"%{nacc + 5}"
        tail = "p, 1, 1, 1"  # scale-d, scale-a, scale-b, B transposed (V rows hold the N axis)
        ins = '"r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate)'
        args = "const uint32_t (&a)[4], uint64_t desc_b"
    else:
        a_ops, b_op, flag = f"%{nacc}", f"%{nacc + 1}", f"%{nacc + 2}"
        tail = "p, 1, 1, 0, 0"  # scale-d, scale-a, scale-b, A and B K-major
        ins = '"l"(desc_a), "l"(desc_b), "r"(accumulate)'
        args = "uint64_t desc_a, uint64_t desc_b"
    out = []
    for ty, suffix in (("__nv_bfloat16", "bf16"), ("__half", "f16")):
        out.append(f"""template <>
__device__ __forceinline__ void {name}<{ty}>(float (&d)[{nacc}], {args}, int accumulate) {{
  asm volatile(
      "{{\\n.reg .pred p;\\nsetp.ne.b32 p, {flag}, 0;\\n"
      "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{suffix}.{suffix} "
      "{{{acc_list(n)}}}, "
      "{a_ops}, {b_op}, {tail};\\n}}\\n"
      : {acc_constraints(n)}
      : {ins});
}}
""")
    decl = f"template <class Elem>\n__device__ void {name}(float (&d)[{nacc}], {args}, int accumulate);\n"
    return decl + "\n".join(out)


def main():
    parts = ["""// Hopper warpgroup matrix instructions (sm_90a) as inline PTX: D (64 × N, fp32, in registers)
// = A·B (+ D when `accumulate` is non-zero), K = 16, A 64 × 16 and B 16 × N of 16-bit elements.
//   _ss: A and B from shared memory (matrix descriptors), both K-major (rows hold the K axis).
//   _rs: A from registers (the mma.m16n8k16 A-fragment layout per warp: rows 16·warp + …), B from
//        shared memory with its rows holding the N axis (transposed).
// Accumulator layout per thread: d[4·i + e] is row 16·(warp % 4) + g + 8·(e / 2), column
// 8·i + 2·tq + e % 2 (g = lane / 4, tq = lane % 4), as in mma.m16n8k16 for each n8 slice i.
// This file is written by scripts/gen_wgmma.py.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace longattn::cuda {

// Orders this thread's earlier register and shared-memory accesses before the next wgmma.
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\\n" ::: "memory"); }
// Waits until at most N committed groups of this warpgroup are still running.
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\\n" ::"n"(N) : "memory");
}
// Makes this thread's generic-proxy shared-memory writes (st.shared, cp.async) visible to the
// async proxy (wgmma operand reads); a barrier then publishes them to the warpgroups.
__device__ __forceinline__ void fence_proxy_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\\n" ::: "memory");
}
// Keeps registers that an issued wgmma still reads (A fragments) or writes (accumulators) alive
// and unmoved up to this point: the compiler sees only the issuing instruction, so without this it
// may reuse or move them while the tensor cores still use them (ptxas then serializes).
template <class T, int N>  // T: float (accumulators) or uint32_t (A fragments)
__device__ __forceinline__ void wgmma_hold(T (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
    if constexpr (std::is_same_v<T, float>) asm volatile("" : "+f"(r[i]));
    else asm volatile("" : "+r"(r[i]));
  }
}
// Shared-memory matrix descriptor, 128-byte swizzle: start address, leading and stride byte
// offsets (PTX ISA, "Matrix Descriptor Format"); the 1024-byte swizzle atoms must start on
// 1024-byte boundaries (base offset 0).
__device__ __forceinline__ uint64_t wgmma_desc_sw128(uint32_t smem_address, uint32_t lbo, uint32_t sbo) {
  return uint64_t((smem_address & 0x3FFFFu) >> 4) | (uint64_t(lbo >> 4) << 16) | (uint64_t(sbo >> 4) << 32) |
         (uint64_t(1) << 62);
}
"""]
    for n in NS:
        parts.append(emit(n, False))
        parts.append(emit(n, True))
    parts.append("}  // namespace longattn::cuda\n")
    path = pathlib.Path(__file__).resolve().parent.parent / "backends/cuda/wgmma_sm90.cuh"
    path.write_text("\n".join(parts))


if __name__ == "__main__":
    main()
