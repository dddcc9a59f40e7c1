// Index bookkeeping kept on the device (so that data-dependent indices never visit the host).
//
// gather_i32:     dst[s·n_index + j] = src[s·n_src + index[s·n_index + j]]; one thread per output.
// segment_labels: dst[c·n + i] = s for offsets[s] ≤ i < offsets[s + 1], n = offsets[n_seg], every
//                 copy c. One block per (segment, copy), threads over the segment's rows; the
//                 offsets travel in the kernel parameters, kMaxSegments per launch.
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda_check.hpp"
#include "launch.cuh"
#include "cuda_internal.hpp"

namespace longattn::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxSegments = 512;  // 4 KB of offsets per launch
constexpr int64_t kMaxGridY = 65535;

__global__ void gather_i32_kernel(int32_t* dst, const int32_t* src, const int32_t* index,
                                  int64_t n_src, int64_t n_index, int64_t total) {
  pdl_begin();
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= total) return;
  dst[e] = src[(e / n_index) * n_src + index[e]];
}

struct SegmentOffsets {
  int64_t begin[kMaxSegments + 1];  // rows of segment s0 + t: [begin[t], begin[t + 1])
};

__global__ void segment_labels_kernel(int32_t* dst, SegmentOffsets off, int32_t s0, int64_t n,
                                      int64_t copies) {
  pdl_begin();
  const int t = blockIdx.x;
  const int64_t i0 = off.begin[t], i1 = off.begin[t + 1];
  for (int64_t c = blockIdx.y; c < copies; c += gridDim.y)
    for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) dst[c * n + i] = s0 + t;
}

}  // namespace

void gather_i32(int32_t* dst, const int32_t* src, const int32_t* index, int64_t n_seg, int64_t n_src,
                int64_t n_index, cudaStream_t stream) {
  const int64_t total = n_seg * n_index;
  if (total == 0) return;
  launch("gather_i32_kernel", gather_i32_kernel, unsigned((total + kThreads - 1) / kThreads), kThreads, 0, stream,
         dst, src, index, n_src, n_index, total);
}

void segment_labels(int32_t* dst, const int64_t* offsets, int32_t n_seg, int64_t copies,
                    cudaStream_t stream) {
  const int64_t n = offsets[n_seg];
  if (n == 0 || copies == 0) return;
  for (int32_t s0 = 0; s0 < n_seg; s0 += kMaxSegments) {
    const int32_t count = std::min(kMaxSegments, n_seg - s0);
    SegmentOffsets off;
    for (int32_t t = 0; t <= count; ++t) off.begin[t] = offsets[s0 + t];
    const dim3 grid(unsigned(count), unsigned(std::min(copies, kMaxGridY)));
    launch("segment_labels_kernel", segment_labels_kernel, grid, kThreads, 0, stream, dst, off, s0, n, copies);
  }
}

}  // namespace longattn::cuda
