// Running-state and merge primitives (fp32 math, −inf safe).
//
// state_init:   m = −inf, l = 0, acc = 0 for [batch][heads][rows] (acc × dv).
// state_finish: o = acc / l, lse = (m + log2 l)·ln 2; o = 0, lse = −inf where l = 0.
//               state index (b·heads + h)·rows + row; out / lse are views {batch, rows, heads, ·}.
// merge:        L = logaddexp(La, Lb); o = e^(La − L)·oa + e^(Lb − L)·ob; both −inf ⇒ o = 0, L = −inf.
//               out may alias a (each element is read before it is written by the same thread).
// One warp per (b, row, h), lanes over the dv columns; merge takes 16-byte loads, one thread per
// 4 columns, when the layout allows (fp32 inputs, contiguous aligned rows).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda_check.hpp"
#include "launch.cuh"
#include "cuda_internal.hpp"
#include "device_dtype.cuh"

namespace longattn::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kThreads = kWarpsPerBlock * 32;

struct ViewArg {
  char* data;
  int32_t dtype;
  int64_t stride[4];
};
ViewArg view_arg(const View& v) {
  ViewArg x;
  x.data = static_cast<char*>(v.data);
  x.dtype = v.dtype;
  for (int i = 0; i < 4; ++i) x.stride[i] = v.strides[i];
  return x;
}
__device__ __forceinline__ char* at(const ViewArg& v, int64_t b, int64_t t, int64_t h, int64_t c) {
  return v.data + b * v.stride[0] + t * v.stride[1] + h * v.stride[2] + c * v.stride[3];
}

unsigned blocks_for(int64_t warps) { return unsigned((warps + kWarpsPerBlock - 1) / kWarpsPerBlock); }

__global__ void state_init_kernel(float* m, float* l, float* acc, int64_t n_rows, int32_t dv) {
  pdl_begin();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n_rows) m[i] = -INFINITY, l[i] = 0.0f;
  if (i < n_rows * dv) acc[i] = 0.0f;
}

__global__ void state_finish_kernel(const float* m, const float* l, const float* acc, int64_t batch,
                                    int32_t heads, int64_t rows, int32_t dv, ViewArg out, ViewArg lse) {
  pdl_begin();
  const int lane = threadIdx.x & 31;
  const int64_t unit = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (unit >= batch * rows * heads) return;
  const int64_t h = unit % heads, row = (unit / heads) % rows, b = unit / (heads * rows);
  const int64_t idx = (b * heads + h) * rows + row;
  const float lv = l[idx];
  const bool empty = lv == 0.0f;
  const float inv = empty ? 0.0f : 1.0f / lv;
  for (int c = lane; c < dv; c += 32)
    store_from_float(at(out, b, row, h, c), out.dtype, acc[idx * dv + c] * inv);
  if (lse.data && lane == 0)
    *reinterpret_cast<float*>(at(lse, b, row, h, 0)) = empty ? -INFINITY : (m[idx] + log2f(lv)) * kLn2;
}

// The weights of two partials with log-sum-exps lse_a, lse_b (natural log): o = (wa·o_a + wb·o_b)·inv,
// lse = log(e^lse_a + e^lse_b); −inf-safe (two empty partials give weights 0 and lse −inf).
struct MergeWeights {
  float wa, wb, inv, lse;
};
__device__ __forceinline__ MergeWeights merge_weights(float lse_a, float lse_b) {
  const float mx = fmaxf(lse_a, lse_b);
  const float m_use = mx == -INFINITY ? 0.0f : mx;
  const float wa = expf(lse_a - m_use), wb = expf(lse_b - m_use);
  const float sum = wa + wb;
  return {wa, wb, sum > 0.0f ? 1.0f / sum : 0.0f, sum > 0.0f ? m_use + logf(sum) : -INFINITY};
}

__global__ void merge_kernel(ViewArg a, ViewArg la, ViewArg b, ViewArg lb, ViewArg out, ViewArg lout,
                             int64_t batch, int64_t rows, int64_t heads, int64_t dv) {
  pdl_begin();
  const int lane = threadIdx.x & 31;
  const int64_t unit = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (unit >= batch * rows * heads) return;
  const int64_t h = unit % heads, row = (unit / heads) % rows, bi = unit / (heads * rows);
  const MergeWeights w = merge_weights(*reinterpret_cast<const float*>(at(la, bi, row, h, 0)),
                                       *reinterpret_cast<const float*>(at(lb, bi, row, h, 0)));
  const float wa = w.wa, wb = w.wb, inv = w.inv;
  for (int64_t c = lane; c < dv; c += 32) {
    const float oa = wa > 0.0f ? load_as_float(at(a, bi, row, h, c), a.dtype) : 0.0f;
    const float ob = wb > 0.0f ? load_as_float(at(b, bi, row, h, c), b.dtype) : 0.0f;
    store_from_float(at(out, bi, row, h, c), out.dtype, (wa * oa + wb * ob) * inv);
  }
  __syncwarp();
  if (lane == 0)
    *reinterpret_cast<float*>(at(lout, bi, row, h, 0)) = w.lse;
}

// Fast merge for the common layout: a and b fp32 with a contiguous, 16-byte aligned dim axis,
// dv / 4 a divisor of 32, out of any float dtype with a contiguous dim axis. One thread per 4
// columns of a row (16-byte loads), groups = dv / 4 threads per row, so a row never straddles
// two warps; the row's LSEs are read by each of its threads (one broadcast transaction), and the
// warp synchronises before its first thread overwrites them (lse_out may alias lse_a). Same
// formula as merge_kernel.
__global__ void merge4_kernel(ViewArg a, ViewArg la, ViewArg b, ViewArg lb, ViewArg out, ViewArg lout,
                              int32_t rows, int32_t heads, int32_t groups, int64_t batch) {
  pdl_begin();
  const uint32_t tid = blockIdx.x * blockDim.x + threadIdx.x;
  const uint32_t per_batch = uint32_t(rows) * uint32_t(heads) * uint32_t(groups);
  if (tid >= per_batch) return;
  const uint32_t unit = tid / uint32_t(groups), cg = tid - unit * uint32_t(groups);
  const uint32_t row = unit / uint32_t(heads), h = unit - row * uint32_t(heads);
  const int64_t c = int64_t(cg) * 4;
  const unsigned active = __activemask();  // whole rows: every thread of a row is here
  for (int64_t bi = blockIdx.y; bi < batch; bi += gridDim.y) {
    const MergeWeights w = merge_weights(*reinterpret_cast<const float*>(at(la, bi, row, h, 0)),
                                         *reinterpret_cast<const float*>(at(lb, bi, row, h, 0)));
    const float wa = w.wa, wb = w.wb, inv = w.inv;
    const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    const float4 oa = wa > 0.0f ? *reinterpret_cast<const float4*>(at(a, bi, row, h, c)) : zero;
    const float4 ob = wb > 0.0f ? *reinterpret_cast<const float4*>(at(b, bi, row, h, c)) : zero;
    char* dst = at(out, bi, row, h, c);
    const float r0 = (wa * oa.x + wb * ob.x) * inv, r1 = (wa * oa.y + wb * ob.y) * inv;
    const float r2 = (wa * oa.z + wb * ob.z) * inv, r3 = (wa * oa.w + wb * ob.w) * inv;
    if (out.dtype == LONGATTN_DTYPE_F32) {
      *reinterpret_cast<float4*>(dst) = make_float4(r0, r1, r2, r3);
    } else {
      store_pair(dst, out.dtype, r0, r1);
      store_pair(dst + 2 * out.stride[3], out.dtype, r2, r3);
    }
    __syncwarp(active);
    if (cg == 0)
      *reinterpret_cast<float*>(at(lout, bi, row, h, 0)) = w.lse;
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// The layout merge4_kernel takes (see there).
bool merge4_fits(const View& a, const View& b, const View& out) {
  auto f32_rows16 = [](const View& v) {
    return v.dtype == LONGATTN_DTYPE_F32 && v.strides[3] == 4 && aligned16(v.data) && v.strides[0] % 16 == 0 &&
           v.strides[1] % 16 == 0 && v.strides[2] % 16 == 0;
  };
  const int64_t es = int64_t(longattn_dtype_size(out.dtype));
  const bool out_ok = out.dtype == LONGATTN_DTYPE_F32 ? f32_rows16(out)
                                                      : (out.dtype == LONGATTN_DTYPE_F16 || out.dtype == LONGATTN_DTYPE_BF16) &&
                                                            out.strides[3] == es && aligned16(out.data) &&
                                                            out.strides[0] % 8 == 0 && out.strides[1] % 8 == 0 &&
                                                            out.strides[2] % 8 == 0;
  return a.shape[3] >= 4 && a.shape[3] % 4 == 0 && 32 % (a.shape[3] / 4) == 0 && f32_rows16(a) && f32_rows16(b) && out_ok &&
         a.shape[1] * a.shape[2] * (a.shape[3] / 4) < (int64_t(1) << 31);
}

}  // namespace

void state_init(RunningState& s, int64_t batch, int32_t heads, int64_t rows, int32_t dv,
                cudaStream_t stream) {
  const int64_t n_rows = batch * heads * rows;
  const int64_t n = n_rows * std::max<int64_t>(dv, 1);
  if (n == 0) return;
  launch("state_init_kernel", state_init_kernel, unsigned((n + kThreads - 1) / kThreads), kThreads, 0, stream, s.m,
         s.l, s.acc, n_rows, dv);
}

void state_finish(const RunningState& s, int64_t batch, int32_t heads, int64_t rows, int32_t dv,
                  const View& out, const View& lse, cudaStream_t stream) {
  const int64_t warps = batch * heads * rows;
  if (warps == 0) return;
  launch("state_finish_kernel", state_finish_kernel, blocks_for(warps), kThreads, 0, stream, s.m, s.l, s.acc, batch,
         heads, rows, dv, view_arg(out), view_arg(lse));
}

void merge(const View& a, const View& lse_a, const View& b, const View& lse_b, const View& out,
           const View& lse_out, cudaStream_t stream) {
  const int64_t batch = a.shape[0], rows = a.shape[1], heads = a.shape[2], dv = a.shape[3];
  const int64_t warps = batch * rows * heads;
  if (warps == 0) return;
  if (merge4_fits(a, b, out)) {
    const int64_t threads = rows * heads * (dv / 4);
    const dim3 grid(unsigned((threads + kThreads - 1) / kThreads), unsigned(std::min<int64_t>(batch, 65535)));
    launch("merge4_kernel", merge4_kernel, grid, kThreads, 0, stream, view_arg(a), view_arg(lse_a), view_arg(b),
           view_arg(lse_b), view_arg(out), view_arg(lse_out), int32_t(rows), int32_t(heads), int32_t(dv / 4), batch);
    return;
  }
  launch("merge_kernel", merge_kernel, blocks_for(warps), kThreads, 0, stream, view_arg(a), view_arg(lse_a),
         view_arg(b), view_arg(lse_b), view_arg(out), view_arg(lse_out), batch, rows, heads, dv);
}

}  // namespace longattn::cuda
