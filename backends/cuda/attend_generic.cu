// Generic `attend`: every AttendArgs feature, any dtypes, strides and head dims (≤ 256), fp32 math.
// It is the reference the FLASH kernels are tested against and the path for f32 inputs, mixed
// dtypes, head dims without a tensor-core instance and unaligned views.
//
// One warp computes one logical query row (b, h, i) of segment s against keys [kb, ke) of s:
//   s_j   = scale·log2e·(q_i·k_j)   or   softcap·log2e·tanh(scale·q_i·k_j / softcap)
//   s_j  += log2e·key_logw[j];  s_j = −inf where the mask, the groups or the segment forbid j
//   keys are visited 32 at a time, lane ℓ owning key j0 + ℓ:
//     m' = max(m, max_ℓ s);  α = 2^(m − m');  p_ℓ = 2^(s_ℓ − m');  l = α·l + Σ p;  acc = α·acc + Σ p_ℓ·v
//   output: o = acc / l and lse = (m + log2 l)·ln 2, or the raw (m, l, acc) into the running state.
// Lane ℓ owns output columns ℓ, ℓ + 32, … (≤ 8 of them). q is staged per warp in shared memory.
#include <cuda_runtime.h>

#include <cmath>

#include "attend_launch.hpp"
#include "cuda_check.hpp"
#include "device_dtype.cuh"

namespace longattn::cuda {
namespace {

constexpr int kWarpSize = 32;
constexpr int kWarpsPerBlock = 4;
constexpr int kMaxDim = 256;
constexpr int kColsPerLane = kMaxDim / kWarpSize;

__device__ __forceinline__ float warp_max(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

__global__ void __launch_bounds__(kWarpsPerBlock* kWarpSize)
    generic_attend_kernel(const __grid_constant__ AttendParams p) {
  __shared__ float q_smem[kWarpsPerBlock][kMaxDim];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const SegmentTable& seg = p.seg;
  const int64_t rows = seg.q_begin[seg.n] - seg.q_begin[0];
  const int64_t unit = int64_t(blockIdx.x) * kWarpsPerBlock + warp;
  if (unit >= rows * p.batch * p.hq) return;
  const int64_t i = seg.q_begin[0] + unit % rows;
  const int32_t h = int32_t((unit / rows) % p.hq);
  const int32_t b = int32_t(unit / (rows * p.hq));
  const int32_t hk = h / p.group;
  int s = 0, hi = seg.n - 1;  // segment with q_begin[s] ≤ i < q_begin[s + 1] (binary search)
  while (s < hi) {
    const int mid = (s + hi + 1) >> 1;
    if (seg.q_begin[mid] <= i) s = mid; else hi = mid - 1;
  }
  const int64_t kb = seg.k_begin[s], ke = seg.k_begin[s + 1];

  const int64_t q_phys = p.q_rows ? p.q_rows[(int64_t(b) * p.hq + h) * p.n_q + i] : i;
  const int64_t q_position = p.q_pos ? p.q_pos[q_phys] : p.q_pos0 + q_phys;
  const int32_t q_grp = p.q_group ? p.q_group[(int64_t(b) * p.hq + h) * p.n_q + i] : -1;

  const char* q_row = p.q + b * p.q_stride[0] + q_phys * p.q_stride[1] + h * p.q_stride[2];
  for (int c = lane; c < p.d; c += kWarpSize)
    q_smem[warp][c] = load_as_float(q_row + c * p.q_stride[3], p.q_dtype);
  __syncwarp();

  const int64_t state_idx = (int64_t(b) * p.hq + h) * p.n_q + q_phys;
  float m = -INFINITY, l = 0.0f;
  float acc[kColsPerLane];
#pragma unroll
  for (int u = 0; u < kColsPerLane; ++u) acc[u] = 0.0f;
  if (p.st_m) {
    m = p.st_m[state_idx];
    l = p.st_l[state_idx];
#pragma unroll
    for (int u = 0; u < kColsPerLane; ++u) {
      const int c = lane + u * kWarpSize;
      if (c < p.dv) acc[u] = p.st_acc[state_idx * p.dv + c];
    }
  }

  const int64_t kv_bh = int64_t(b) * p.hkv + hk;
  const char* k_base = p.k + b * p.k_stride[0] + hk * p.k_stride[2];
  const char* v_base = p.v + b * p.v_stride[0] + hk * p.v_stride[2];
  for (int64_t j0 = kb; j0 < ke; j0 += kWarpSize) {
    const int64_t j = j0 + lane;
    float s_j = -INFINITY;
    int64_t k_phys = 0;
    if (j < ke) {
      k_phys = p.k_rows ? p.k_rows[kv_bh * p.n_k + j] : j;
      const int64_t k_position = p.k_pos ? p.k_pos[k_phys] : p.k_pos0 + k_phys;
      bool allowed = p.mask_full || p.mask.allows(q_position, k_position);
      if (p.q_group && p.k_group && q_grp >= 0 && q_grp == p.k_group[kv_bh * p.n_k + j])
        allowed = false;
      if (allowed) {
        const char* k_row = k_base + k_phys * p.k_stride[1];
        float dot = 0.0f;
        for (int c = 0; c < p.d; ++c)
          dot = fmaf(q_smem[warp][c], load_as_float(k_row + c * p.k_stride[3], p.k_dtype), dot);
        s_j = p.softcap_in > 0.0f ? p.softcap_log2 * tanhf(p.softcap_in * dot) : p.scale_log2 * dot;
        if (p.key_logw) s_j += kLog2e * p.key_logw[kv_bh * p.n_k + j];
      }
    }
    const float chunk_max = warp_max(s_j);
    if (chunk_max == -INFINITY) continue;  // nothing allowed in these 32 keys (warp-uniform)
    const float m_new = fmaxf(m, chunk_max);
    const float alpha = exp2f(m - m_new);  // m = −inf ⇒ 0
    const float p_j = exp2f(s_j - m_new);
    l = l * alpha + warp_sum(p_j);
    m = m_new;
#pragma unroll
    for (int u = 0; u < kColsPerLane; ++u) acc[u] *= alpha;
    const int n_keys = ke - j0 < kWarpSize ? int(ke - j0) : kWarpSize;
    for (int jj = 0; jj < n_keys; ++jj) {
      const float pj = __shfl_sync(0xffffffffu, p_j, jj);
      const int64_t vj = __shfl_sync(0xffffffffu, k_phys, jj);
      if (pj == 0.0f) continue;  // warp-uniform
      const char* v_row = v_base + vj * p.v_stride[1];
#pragma unroll
      for (int u = 0; u < kColsPerLane; ++u) {
        const int c = lane + u * kWarpSize;
        if (c < p.dv) acc[u] = fmaf(pj, load_as_float(v_row + c * p.v_stride[3], p.v_dtype), acc[u]);
      }
    }
  }

  if (p.st_m) {
    if (lane == 0) {
      p.st_m[state_idx] = m;
      p.st_l[state_idx] = l;
    }
#pragma unroll
    for (int u = 0; u < kColsPerLane; ++u) {
      const int c = lane + u * kWarpSize;
      if (c < p.dv) p.st_acc[state_idx * p.dv + c] = acc[u];
    }
    return;
  }
  const bool empty = l == 0.0f;
  const float inv_l = empty ? 0.0f : 1.0f / l;
  char* o_row = p.out + b * p.o_stride[0] + q_phys * p.o_stride[1] + h * p.o_stride[2];
#pragma unroll
  for (int u = 0; u < kColsPerLane; ++u) {
    const int c = lane + u * kWarpSize;
    if (c < p.dv) store_from_float(o_row + c * p.o_stride[3], p.o_dtype, acc[u] * inv_l);
  }
  if (p.lse && lane == 0) {
    float* lse = reinterpret_cast<float*>(p.lse + b * p.lse_stride[0] + q_phys * p.lse_stride[1] +
                                          h * p.lse_stride[2]);
    *lse = empty ? -INFINITY : (m + log2f(l)) * kLn2;
  }
}

}  // namespace

void launch_generic_attend(const AttendParams& p, cudaStream_t stream) {
  const int64_t rows = p.seg.q_begin[p.seg.n] - p.seg.q_begin[0];
  const int64_t units = rows * p.batch * p.hq;
  if (units == 0) return;
  const int64_t blocks = (units + kWarpsPerBlock - 1) / kWarpsPerBlock;
  generic_attend_kernel<<<dim3(unsigned(blocks)), dim3(kWarpsPerBlock * kWarpSize), 0, stream>>>(p);
  check_launch("generic_attend_kernel");
}

}  // namespace longattn::cuda
