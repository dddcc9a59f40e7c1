// Running-state and merge primitives (fp32 math, −inf safe).
//
// state_init:   m = −inf, l = 0, acc = 0 for [batch][heads][rows] (acc × dv).
// state_finish: o = acc / l, lse = (m + log2 l)·ln 2; o = 0, lse = −inf where l = 0.
//               state index (b·heads + h)·rows + row; out / lse are views {batch, rows, heads, ·}.
// merge:        L = logaddexp(La, Lb); o = e^(La − L)·oa + e^(Lb − L)·ob; both −inf ⇒ o = 0, L = −inf.
//               out may alias a (each element is read before it is written by the same thread).
// One warp per (b, row, h); lanes over the dv columns.
#include <cuda_runtime.h>

#include <cmath>

#include "cuda_check.hpp"
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
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n_rows) m[i] = -INFINITY, l[i] = 0.0f;
  if (i < n_rows * dv) acc[i] = 0.0f;
}

__global__ void state_finish_kernel(const float* m, const float* l, const float* acc, int64_t batch,
                                    int32_t heads, int64_t rows, int32_t dv, ViewArg out, ViewArg lse) {
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

__global__ void merge_kernel(ViewArg a, ViewArg la, ViewArg b, ViewArg lb, ViewArg out, ViewArg lout,
                             int64_t batch, int64_t rows, int64_t heads, int64_t dv) {
  const int lane = threadIdx.x & 31;
  const int64_t unit = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (unit >= batch * rows * heads) return;
  const int64_t h = unit % heads, row = (unit / heads) % rows, bi = unit / (heads * rows);
  const float lse_a = *reinterpret_cast<const float*>(at(la, bi, row, h, 0));
  const float lse_b = *reinterpret_cast<const float*>(at(lb, bi, row, h, 0));
  const float mx = fmaxf(lse_a, lse_b);
  const float m_use = mx == -INFINITY ? 0.0f : mx;
  const float wa = expf(lse_a - m_use), wb = expf(lse_b - m_use);
  const float sum = wa + wb;
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int64_t c = lane; c < dv; c += 32) {
    const float oa = wa > 0.0f ? load_as_float(at(a, bi, row, h, c), a.dtype) : 0.0f;
    const float ob = wb > 0.0f ? load_as_float(at(b, bi, row, h, c), b.dtype) : 0.0f;
    store_from_float(at(out, bi, row, h, c), out.dtype, (wa * oa + wb * ob) * inv);
  }
  __syncwarp();
  if (lane == 0)
    *reinterpret_cast<float*>(at(lout, bi, row, h, 0)) = sum > 0.0f ? m_use + logf(sum) : -INFINITY;
}

}  // namespace

void state_init(RunningState& s, int64_t batch, int32_t heads, int64_t rows, int32_t dv,
                cudaStream_t stream) {
  const int64_t n_rows = batch * heads * rows;
  const int64_t n = n_rows * std::max<int64_t>(dv, 1);
  if (n == 0) return;
  state_init_kernel<<<unsigned((n + kThreads - 1) / kThreads), kThreads, 0, stream>>>(s.m, s.l, s.acc, n_rows, dv);
  check_launch("state_init_kernel");
}

void state_finish(const RunningState& s, int64_t batch, int32_t heads, int64_t rows, int32_t dv,
                  const View& out, const View& lse, cudaStream_t stream) {
  const int64_t warps = batch * heads * rows;
  if (warps == 0) return;
  state_finish_kernel<<<blocks_for(warps), kThreads, 0, stream>>>(s.m, s.l, s.acc, batch, heads, rows, dv,
                                                                 view_arg(out), view_arg(lse));
  check_launch("state_finish_kernel");
}

void merge(const View& a, const View& lse_a, const View& b, const View& lse_b, const View& out,
           const View& lse_out, cudaStream_t stream) {
  const int64_t batch = a.shape[0], rows = a.shape[1], heads = a.shape[2], dv = a.shape[3];
  const int64_t warps = batch * rows * heads;
  if (warps == 0) return;
  merge_kernel<<<blocks_for(warps), kThreads, 0, stream>>>(view_arg(a), view_arg(lse_a), view_arg(b),
                                                          view_arg(lse_b), view_arg(out), view_arg(lse_out),
                                                          batch, rows, heads, dv);
  check_launch("merge_kernel");
}

}  // namespace longattn::cuda
