// Split-KV combine: the partial results of n_splits key ranges of the same rows become one.
//
//   part_lse [split][b][hkv][packed row]        log2 units, −inf for an empty partial
//   part_o   [split][b][hkv][packed row][dv]    normalised partial outputs (fp32)
//   M = max_s lse_s;  w_s = 2^(lse_s − M);  o = Σ w_s·o_s / Σ w_s;  lse = (M + log2 Σ w_s)·ln 2
// A sink σ_h (natural log, per query head) is one more partial with lse = σ·log2e and o = 0: it
// enters M and Σ w_s but no output column, so a row with nothing but the sink gets o = 0, lse = σ.
// This is the only place a split call applies its sinks (the splits themselves never do).
// A row whose partials are all empty (and no sink) gets o = 0, lse = −inf. One warp per (packed
// row, 32 output columns): the lanes first share out the splits to find M and Σ w_s (warp
// reductions), then each lane sums its column over the splits, several loads in flight; the row
// is written at its physical position (q_rows gather) in out / lse. (One warp per row looping over
// splits and columns with dependent loads left decode latency-bound: ~30 µs for 32 rows × 33
// splits on an H100, a seventh of the whole call.)
#include <cuda_runtime.h>

#include <cmath>

#include "attend_launch.hpp"
#include "cuda_check.hpp"
#include "launch.cuh"
#include "device_dtype.cuh"

namespace longattn::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    flash_combine_kernel(const __grid_constant__ AttendParams p, const float* __restrict__ sinks) {
  pdl_begin();
  const int lane = threadIdx.x & 31;
  const int n_chunks = (p.dv + 31) / 32;
  const int64_t item = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int64_t rows_total = int64_t(p.batch) * p.hkv * p.packed_rows;
  if (item >= rows_total * n_chunks) return;  // whole warps only: the shuffles below see 32 lanes
  const int64_t unit = item / n_chunks;
  const int chunk = int(item % n_chunks);
  const int64_t r = unit % p.packed_rows;
  const int64_t bh = unit / p.packed_rows;  // b·hkv + hk
  const int32_t b = int32_t(bh / p.hkv), hk = int32_t(bh % p.hkv);
  const int64_t split_stride = rows_total;

  const int64_t i = r / p.group;
  const int32_t h = hk * p.group + int32_t(r % p.group);
  const float sink = sinks ? sinks[h] * kLog2e : -INFINITY;

  float mx = -INFINITY;
  for (int s = lane; s < p.n_splits; s += 32) mx = fmaxf(mx, p.part_lse[s * split_stride + unit]);
  mx = fmaxf(warp_max(mx), sink);
  const float m_use = mx == -INFINITY ? 0.0f : mx;
  float wpart = 0.0f;
  for (int s = lane; s < p.n_splits; s += 32) wpart += exp2f(p.part_lse[s * split_stride + unit] - m_use);
  const float wsum = warp_sum(wpart) + exp2f(sink - m_use);  // the sink term is 0 without a sink
  const float inv = wsum > 0.0f ? 1.0f / wsum : 0.0f;

  const int64_t phys = p.q_rows ? p.q_rows[(int64_t(b) * p.hq + h) * p.n_q + i] : i;
  char* o_row = p.out + b * p.o_stride[0] + phys * p.o_stride[1] + h * p.o_stride[2];
  const int c = chunk * 32 + lane;
  if (c < p.dv) {
    float acc = 0.0f;
#pragma unroll 8
    for (int s = 0; s < p.n_splits; ++s) {
      const float ws = exp2f(p.part_lse[s * split_stride + unit] - m_use);
      const float o = p.part_o[(s * split_stride + unit) * p.dv + c];
      acc += ws > 0.0f ? ws * o : 0.0f;  // an empty partial's o is never read into the sum
    }
    store_from_float(o_row + c * p.o_stride[3], p.o_dtype, acc * inv);
  }
  if (p.lse && chunk == 0 && lane == 0)
    *reinterpret_cast<float*>(p.lse + b * p.lse_stride[0] + phys * p.lse_stride[1] +
                              h * p.lse_stride[2]) = wsum > 0.0f ? (mx + log2f(wsum)) * kLn2 : -INFINITY;
}

}  // namespace

void launch_flash_combine(const AttendParams& p, const float* sinks, cudaStream_t stream) {
  const int64_t units = int64_t(p.batch) * p.hkv * p.packed_rows * ((p.dv + 31) / 32);
  if (units == 0) return;
  const int64_t blocks = (units + kWarpsPerBlock - 1) / kWarpsPerBlock;
  launch("flash_combine_kernel", flash_combine_kernel, dim3(unsigned(blocks)), dim3(kWarpsPerBlock * 32), 0, stream,
         p, sinks);
}

}  // namespace longattn::cuda
