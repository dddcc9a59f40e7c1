// The end of a FLASH block: each thread's rows of (m, l, O) in the mma accumulator layout (rows g
// and g + 8 of each m16 tile, columns 8·dt + 2·tq + {0, 1}) become the output row O / l and its
// LSE, this split's normalised partial (split-KV), or the raw running state. m is in log2 units and
// l is the full row sum. Shared by the mma.sync and the Hopper kernels.
#pragma once

#include <cstdint>

#include "attend_params.hpp"
#include "device_dtype.cuh"
#include "flash_block.cuh"

namespace longattn::cuda {

template <int kMT, int kDT, int kHeadDim, bool kGeneral>
__device__ __forceinline__ void flash_store_rows(const AttendParams& p, const FlashBlock& w, int q_row0, int g,
                                                 int tq, const float (&m_row)[kMT][2],
                                                 const float (&l_row)[kMT][2],
                                                 const float (&o_acc)[kMT][kDT][4]) {
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int32_t r = w.r0 + q_row0 + mt * 16 + g + hf * 8;
      if (r >= w.seg_rows) continue;
      const PackedRow q = packed_row<kGeneral>(p, w, r);
      const float m = m_row[mt][hf], l = l_row[mt][hf];
      if (p.st_m) {
        const int64_t idx = q.index(p, w, q.phys);
        if (tq == 0) p.st_m[idx] = m, p.st_l[idx] = l;
#pragma unroll
        for (int dt = 0; dt < kDT; ++dt)
          *reinterpret_cast<float2*>(p.st_acc + idx * kHeadDim + dt * 8 + 2 * tq) =
              make_float2(o_acc[mt][dt][2 * hf], o_acc[mt][dt][2 * hf + 1]);
        continue;
      }
      const bool empty = l == 0.0f;
      const float inv_l = empty ? 0.0f : 1.0f / l;
      const float lse2 = empty ? -INFINITY : m + __log2f(l);
      // destination: the output row, or this split's fp32 partial row (split-KV)
      char* o_row;
      int64_t col_stride;
      int32_t dtype;
      float* lse_dst = nullptr;
      float lse_val = lse2 * kLn2;
      if (p.n_splits > 1) {
        const int64_t pidx = ((int64_t(blockIdx.z) * p.batch + w.b) * p.hkv + w.hk) * p.packed_rows +
                             int64_t(w.seg_q0) * p.group + r;
        o_row = reinterpret_cast<char*>(p.part_o + pidx * kHeadDim);
        col_stride = 4;
        dtype = LONGATTN_DTYPE_F32;
        lse_dst = p.part_lse + pidx;
        lse_val = lse2;
      } else {
        o_row = p.out + w.b * p.o_stride[0] + q.phys * p.o_stride[1] + q.h * p.o_stride[2];
        col_stride = p.o_stride[3];
        dtype = p.o_dtype;
        if (p.lse)
          lse_dst = reinterpret_cast<float*>(p.lse + w.b * p.lse_stride[0] + q.phys * p.lse_stride[1] +
                                             q.h * p.lse_stride[2]);
      }
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt)
        store_pair(o_row + (dt * 8 + 2 * tq) * col_stride, dtype, o_acc[mt][dt][2 * hf] * inv_l,
                   o_acc[mt][dt][2 * hf + 1] * inv_l);
      if (lse_dst && tq == 0) *lse_dst = lse_val;
    }
}

}  // namespace longattn::cuda
