// Generic `attend`: every AttendArgs feature, any dtypes (the block formats Q8_0 / Q4_0 for K and
// V included), strides and head dims (≤ 256), fp32 math. It is the reference the FLASH kernels are
// tested against and the path for f32 inputs, mixed dtypes, head dims without a tensor-core
// instance, unaligned views and the ggml-style extras (additive mask, ALiBi, sinks).
//
// One warp computes one logical query row (b, h, i) of segment s against keys [kb, ke) of s (or
// against split blockIdx.y of them, see below):
//   s_j   = scale·log2e·(q_i·k_j)   or   softcap·log2e·tanh(scale·q_i·k_j / softcap)
//   s_j  += log2e·key_logw[j]
//   s_j  += log2e·bias_j, bias_j = mask(i, j)          (additive mask, no ALiBi)
//                                = m_h·mask(i, j)      (additive mask and ALiBi slope m_h)
//                                = −m_h·|qpos − kpos|  (ALiBi without a mask)
//   s_j = −inf where the mask predicate, the groups, the segment or a −inf additive mask forbid j
//   (k_j is then never read)
//   keys are visited 32 at a time, lane ℓ owning key j0 + ℓ:
//     m' = max(m, max_ℓ s);  α = 2^(m − m');  p_ℓ = 2^(s_ℓ − m');  l = α·l + Σ p;  acc = α·acc + Σ p_ℓ·v
//   output: o = acc / l and lse = (m + log2 l)·ln 2, or the raw (m, l, acc) into the running state.
//   A sink σ_h (natural log) is one more denominator term when o / lse are written:
//     m'' = max(m, σ·log2e);  l'' = 2^(m − m'')·l + 2^(σ·log2e − m'');  o = 2^(m − m'')·acc / l''
//   so a row with nothing but the sink gets o = 0 and lse = σ. A running state never gets it.
// Lane ℓ owns output columns ℓ, ℓ + 32, … (≤ 8 of them). q is staged per warp in shared memory.
//
// Split-KV (p.n_splits > 1, one segment, no running state): blockIdx.y = split s takes the keys
// [n_k·s / S, n_k·(s+1) / S) and writes the normalised partial o and its lse (log2 units, −inf when
// empty) into p.part_o / p.part_lse at packed row i·group + (h mod group); the combine kernel
// (flash_combine.cu) merges the splits and adds the sink there, once.
#include <cuda_runtime.h>

#include <cmath>

#include "attend_launch.hpp"
#include "cuda_check.hpp"
#include "launch.cuh"
#include "device_dtype.cuh"
#include "quant_blocks.cuh"

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
    generic_attend_kernel(const __grid_constant__ AttendParams p, const __grid_constant__ ExtrasParams x) {
  pdl_begin();
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
  int64_t kb = seg.k_begin[s], ke = seg.k_begin[s + 1];
  const bool split = p.n_splits > 1;
  if (split) {  // this block's share of the keys
    const int64_t n = ke - kb;
    const int64_t s0 = kb + n * int64_t(blockIdx.y) / p.n_splits;
    const int64_t s1 = kb + n * (int64_t(blockIdx.y) + 1) / p.n_splits;
    kb = s0, ke = s1;
  }

  const int64_t q_phys = p.q_rows ? p.q_rows[(int64_t(b) * p.hq + h) * p.n_q + i] : i;
  const int64_t q_position = p.q_pos ? p.q_pos[q_phys] : p.q_pos0 + q_phys;
  const int32_t q_grp = p.q_group ? p.q_group[(int64_t(b) * p.hq + h) * p.n_q + i] : -1;

  const char* q_row = p.q + b * p.q_stride[0] + q_phys * p.q_stride[1] + h * p.q_stride[2];
  for (int c = lane; c < p.d; c += kWarpSize)
    q_smem[warp][c] = load_as_float(q_row + c * p.q_stride[3], p.q_dtype);
  __syncwarp();

  // the extras of this row: its additive-mask row, the mask multiplier and the ALiBi slope
  const char* mask_row = x.mask ? x.mask + b * x.mask_stride[0] + q_phys * x.mask_stride[1] + h * x.mask_stride[2]
                                : nullptr;
  const float slope_log2 = x.alibi_slopes ? x.alibi_slopes[h] * kLog2e : 0.0f;
  const float mask_mul = x.alibi_slopes ? slope_log2 : kLog2e;

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
      float bias = 0.0f;  // log2 units
      if (allowed && mask_row) {
        const float mv = load_as_float(mask_row + k_phys * x.mask_stride[3], x.mask_dtype);
        if (mv == -INFINITY)
          allowed = false;
        else
          bias = mv * mask_mul;
      } else if (allowed && x.alibi_slopes) {
        const int64_t dist = q_position > k_position ? q_position - k_position : k_position - q_position;
        bias = -slope_log2 * float(dist);
      }
      if (allowed) {
        const float dot = dot_row(q_smem[warp], k_base + k_phys * p.k_stride[1], p.k_dtype, p.k_stride[3], p.d);
        s_j = p.softcap_in > 0.0f ? p.softcap_log2 * tanhf(p.softcap_in * dot) : p.scale_log2 * dot;
        if (p.key_logw) s_j += kLog2e * p.key_logw[kv_bh * p.n_k + j];
        s_j += bias;
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
        if (c < p.dv) acc[u] = fmaf(pj, load_row_element(v_row, p.v_dtype, p.v_stride[3], c), acc[u]);
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
  if (split) {  // normalised partial of this split; the combine adds the sink
    const int64_t packed = i * p.group + (h - hk * p.group);
    const int64_t idx = (int64_t(blockIdx.y) * p.batch * p.hkv + kv_bh) * p.packed_rows + packed;
    const bool empty = l == 0.0f;
    const float inv_l = empty ? 0.0f : 1.0f / l;
#pragma unroll
    for (int u = 0; u < kColsPerLane; ++u) {
      const int c = lane + u * kWarpSize;
      if (c < p.dv) p.part_o[idx * p.dv + c] = acc[u] * inv_l;
    }
    if (lane == 0) p.part_lse[idx] = empty ? -INFINITY : m + log2f(l);
    return;
  }
  float o_scale = 1.0f;  // rescales acc when the sink raises the running max
  if (x.sinks) {
    const float sink = x.sinks[h] * kLog2e;
    if (sink != -INFINITY) {
      const float m2 = fmaxf(m, sink);
      o_scale = exp2f(m - m2);  // m = −inf ⇒ 0
      l = l * o_scale + exp2f(sink - m2);
      m = m2;
    }
  }
  const bool empty = l == 0.0f;
  const float inv_l = empty ? 0.0f : o_scale / l;
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

void launch_generic_attend(const AttendParams& p, const ExtrasParams& x, cudaStream_t stream) {
  const int64_t rows = p.seg.q_begin[p.seg.n] - p.seg.q_begin[0];
  const int64_t units = rows * p.batch * p.hq;
  if (units == 0) return;
  const int64_t blocks = (units + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const dim3 grid(unsigned(blocks), unsigned(p.n_splits > 1 ? p.n_splits : 1));
  launch("generic_attend_kernel", generic_attend_kernel, grid, dim3(kWarpsPerBlock * kWarpSize), 0, stream, p, x);
}

// Asked once per device (decode-shaped calls size their split from it before launching).
int generic_warps_per_sm() {
  static std::atomic<int> cached[kCachedDevices] = {};
  return once_per_device(cached, [] {
    int blocks = 0;
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, generic_attend_kernel, kWarpsPerBlock * kWarpSize, 0),
          "cudaOccupancyMaxActiveBlocksPerMultiprocessor(generic_attend_kernel)");
    return blocks * kWarpsPerBlock;
  });
}

}  // namespace longattn::cuda
