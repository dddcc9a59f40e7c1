// LSH primitives of HyperAttention.
//
// lsh_codes: x {batch, n, heads, d} (any dtype, byte strides), G [d][r] fp32 row-major, center
//   [batch][heads][d] fp32 or null. codes[(b·heads + h)·n + i] = gray_rank(bits), bit t set when
//   Σ_k (x_ik − c_k)·G[k][t] > 0. Products and sums are rounded separately in k order (no fused
//   multiply-add) so codes match the CPU backend bit for bit. One thread per row; the rows of a
//   block are staged through shared memory chunk by chunk so the loads coalesce (16-byte loads of
//   eight 16-bit values when the view allows them), and G takes d·r floats of shared memory.
// counting_sort: stable order of every segment by (code, index). Keys (segment << r) | code are
//   radix-sorted with their local index as value (cub::DeviceRadixSort, stable), so segment s
//   lands in perm[s·n … s·n + n − 1] already; segments are processed in chunks whose key fits in
//   32 bits.
#include <cub/device/device_radix_sort.cuh>

#include <cuda_runtime.h>

#include <algorithm>

#include "cuda_check.hpp"
#include "launch.cuh"
#include "cuda_internal.hpp"
#include "device_dtype.cuh"

namespace longattn::cuda {
namespace {

constexpr int kMaxBits = 16;
constexpr int kThreads = 256;

__device__ __forceinline__ uint32_t gray_rank(uint32_t g) {
  for (uint32_t shift = 1; shift < 32; shift <<= 1) g ^= g >> shift;
  return g;
}

// Block of kRowsPerBlock consecutive rows (e = (b·heads + h)·n + i); the head dim is walked in
// chunks of kDimChunk: the block stages (x − centre) of its rows for the chunk in shared memory
// with coalesced loads, then each thread continues its own row's sums in k order.
constexpr int kRowsPerBlock = 128;
constexpr int kDimChunk = 32;

// Eight 16-bit values (f16 or bf16) from one 16-byte load, as floats.
__device__ __forceinline__ void load8_as_float(const char* p, int32_t dtype, float* v) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const uint16_t lo = uint16_t(w[j] & 0xffffu), hi = uint16_t(w[j] >> 16);
    if (dtype == LONGATTN_DTYPE_F16) {
      v[2 * j] = __half2float(__ushort_as_half(lo));
      v[2 * j + 1] = __half2float(__ushort_as_half(hi));
    } else {
      v[2 * j] = __uint_as_float(uint32_t(lo) << 16);
      v[2 * j + 1] = __uint_as_float(uint32_t(hi) << 16);
    }
  }
}

// vec16: x is f16/bf16 with unit element stride and every row 16-byte aligned, d % 8 == 0.
// kR: the number of hyperplanes when known at compile time (r = 8, the default), else 0 (r ≤ 16
// at run time, loops predicated on t < r).
template <int kR>
__global__ void __launch_bounds__(kRowsPerBlock)
    lsh_codes_kernel(const char* x, int32_t dtype, int64_t s0, int64_t s1, int64_t s2, int64_t s3,
                     int64_t batch, int64_t n, int64_t heads, int64_t d, const float* G, int32_t r,
                     const float* center, uint16_t* codes, bool vec16) {
  pdl_begin();
  extern __shared__ float g_smem[];  // [d][r]
  __shared__ float x_smem[kRowsPerBlock][kDimChunk + 1];
  __shared__ int64_t row_offset[kRowsPerBlock];  // byte offset of each row's element 0, or −1
  __shared__ int64_t row_center[kRowsPerBlock];  // index of each row's centre in `center`
  const int64_t total = batch * heads * n;
  const int64_t e0 = int64_t(blockIdx.x) * kRowsPerBlock;
  for (int64_t idx = threadIdx.x; idx < d * r; idx += kRowsPerBlock) g_smem[idx] = G[idx];
  {  // the (b, h, i) split of this thread's row, once (not per staged element)
    const int64_t e = e0 + threadIdx.x;
    const int64_t i = e % n, h = (e / n) % heads, b = e / (n * heads);
    row_offset[threadIdx.x] = e < total ? b * s0 + i * s1 + h * s2 : -1;
    row_center[threadIdx.x] = (b * heads + h) * d;
  }

  constexpr int kBits = kR > 0 ? kR : kMaxBits;
  float dots[kBits];
#pragma unroll
  for (int t = 0; t < kBits; ++t) dots[t] = 0.0f;
  for (int64_t k0 = 0; k0 < d; k0 += kDimChunk) {
    const int width = d - k0 < kDimChunk ? int(d - k0) : kDimChunk;
    __syncthreads();  // the previous chunk is consumed (and G is loaded)
    if (vec16) {  // four threads per row and 64-byte chunk: 16 bytes each
      const int pieces = width / 8;
      for (int idx = threadIdx.x; idx < kRowsPerBlock * pieces; idx += kRowsPerBlock) {
        const int row = idx / pieces, k = (idx % pieces) * 8;
        const int64_t offset = row_offset[row];
        float v[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        if (offset >= 0) {
          load8_as_float(x + offset + (k0 + k) * 2, dtype, v);
          if (center)
#pragma unroll
            for (int j = 0; j < 8; ++j) v[j] = __fsub_rn(v[j], center[row_center[row] + k0 + k + j]);
        }
#pragma unroll
        for (int j = 0; j < 8; ++j) x_smem[row][k + j] = v[j];
      }
    } else {
      for (int idx = threadIdx.x; idx < kRowsPerBlock * width; idx += kRowsPerBlock) {
        const int row = idx / width, k = idx % width;
        const int64_t offset = row_offset[row];
        float v = 0.0f;
        if (offset >= 0) {
          v = load_as_float(x + offset + (k0 + k) * s3, dtype);
          if (center) v = __fsub_rn(v, center[row_center[row] + k0 + k]);
        }
        x_smem[row][k] = v;
      }
    }
    __syncthreads();
    for (int k = 0; k < width; ++k) {
      const float v = x_smem[threadIdx.x][k];
      const float* g = g_smem + (k0 + k) * r;
#pragma unroll
      for (int t = 0; t < kBits; ++t)
        if (kR > 0 || t < r) dots[t] = __fadd_rn(dots[t], __fmul_rn(v, g[t]));
    }
  }
  const int64_t e = e0 + threadIdx.x;
  if (e >= total) return;
  uint32_t bits = 0;
#pragma unroll
  for (int t = 0; t < kBits; ++t)
    if ((kR > 0 || t < r) && dots[t] > 0.0f) bits |= 1u << t;
  codes[e] = uint16_t(gray_rank(bits));
}

__global__ void sort_keys_kernel(const uint16_t* codes, int64_t n_seg, int64_t n, int32_t r,
                                 uint32_t* keys, int32_t* values) {
  pdl_begin();
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= n_seg * n) return;
  keys[e] = (uint32_t(e / n) << r) | codes[e];
  values[e] = int32_t(e % n);
}

int bits_for(int64_t count) {  // bits needed for values 0 … count − 1
  int b = 0;
  while ((int64_t(1) << b) < count) ++b;
  return b;
}

}  // namespace

void lsh_codes(const View& x, const float* G, int32_t r, const float* center, uint16_t* codes,
               cudaStream_t stream) {
  const int64_t total = x.shape[0] * x.shape[1] * x.shape[2];
  if (total == 0) return;
  const bool is16 = x.dtype == LONGATTN_DTYPE_F16 || x.dtype == LONGATTN_DTYPE_BF16;
  const bool vec16 = is16 && x.strides[3] == 2 && x.shape[3] % 8 == 0 &&
                     reinterpret_cast<uintptr_t>(x.data) % 16 == 0 && x.strides[0] % 16 == 0 &&
                     x.strides[1] % 16 == 0 && x.strides[2] % 16 == 0;
  const size_t g_bytes = size_t(x.shape[3]) * size_t(r) * sizeof(float);
  const unsigned blocks = unsigned((total + kRowsPerBlock - 1) / kRowsPerBlock);
  auto kernel = r == 8 ? lsh_codes_kernel<8> : lsh_codes_kernel<0>;
  launch("lsh_codes_kernel", kernel, blocks, kRowsPerBlock, g_bytes, stream, static_cast<const char*>(x.data),
         x.dtype, x.strides[0], x.strides[1], x.strides[2], x.strides[3], x.shape[0], x.shape[1], x.shape[2],
         x.shape[3], G, r, center, codes, vec16);
}

void counting_sort(const uint16_t* codes, int64_t n_seg, int64_t n, int32_t r, int32_t* perm,
                   ScratchPool& scratch, cudaStream_t stream) {
  if (n_seg == 0 || n == 0) return;
  // segments per chunk: (segment index bits) + r ≤ 32, and at most 2^31 elements
  const int seg_bits = std::max(0, 32 - r);
  int64_t chunk = std::min<int64_t>(n_seg, int64_t(1) << std::min(seg_bits, 30));
  chunk = std::max<int64_t>(1, std::min<int64_t>(chunk, (int64_t(1) << 30) / n));
  const int64_t elems = chunk * n;
  uint32_t* keys_in = static_cast<uint32_t*>(scratch.get(kSlotSortKeysIn, size_t(elems) * 4));
  uint32_t* keys_out = static_cast<uint32_t*>(scratch.get(kSlotSortKeysOut, size_t(elems) * 4));
  int32_t* values_in = static_cast<int32_t*>(scratch.get(kSlotSortValuesIn, size_t(elems) * 4));
  for (int64_t s0 = 0; s0 < n_seg; s0 += chunk) {
    const int64_t segs = std::min(chunk, n_seg - s0);
    const int64_t count = segs * n;
    launch("sort_keys_kernel", sort_keys_kernel, unsigned((count + kThreads - 1) / kThreads), kThreads, 0, stream,
           codes + s0 * n, segs, n, r, keys_in, values_in);
    const int end_bit = r + bits_for(segs);
    size_t temp_bytes = 0;
    check(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys_out, values_in,
                                          perm + s0 * n, int(count), 0, end_bit, stream),
          "cub::DeviceRadixSort::SortPairs (size query)");
    void* temp = scratch.get(kSlotSortTemp, std::max<size_t>(temp_bytes, 1));
    check(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys_in, keys_out, values_in,
                                          perm + s0 * n, int(count), 0, end_bit, stream),
          "cub::DeviceRadixSort::SortPairs");
  }
}

}  // namespace longattn::cuda
