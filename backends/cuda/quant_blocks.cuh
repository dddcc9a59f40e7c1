// ggml block formats on the device (the layouts of src/quant.hpp): a block holds 32 values and
// starts with its fp16 scale d.
//   Q8_0 (34 bytes): value i = d · int8(byte[2 + i])
//   Q4_0 (18 bytes): value i = d · (nibble − 8), the low nibble of byte[2 + i] for i < 16, the
//                    high nibble of byte[2 + i − 16] for i ≥ 16
// A row of a block-format tensor has its blocks `block_stride` bytes apart (the view's strides[3]).
// The scale is assembled from two bytes: a block may sit at any byte address.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "device_dtype.cuh"
#include "longattn.h"

namespace longattn::cuda {

constexpr int kQuantBlock = 32;
constexpr int kQ4_0Offset = 8;

__host__ __device__ constexpr bool is_block_dtype(int32_t dtype) {
  return dtype == LONGATTN_DTYPE_Q8_0 || dtype == LONGATTN_DTYPE_Q4_0;
}

__device__ __forceinline__ float block_scale(const unsigned char* block) {
  const unsigned short bits = static_cast<unsigned short>(block[0] | (block[1] << 8));
  return __half2float(__ushort_as_half(bits));
}

// Value i (0..31) of one block, without the scale.
__device__ __forceinline__ float block_quant(const unsigned char* block, int32_t dtype, int i) {
  if (dtype == LONGATTN_DTYPE_Q8_0) return float(static_cast<signed char>(block[2 + i]));
  const unsigned char byte = block[2 + (i & 15)];
  return float(int(i < 16 ? (byte & 15) : (byte >> 4)) - kQ4_0Offset);
}

// Element c of a row of any dtype: `stride` is the byte stride of the dim axis for the float
// types, of the blocks for the block formats.
__device__ __forceinline__ float load_row_element(const char* row, int32_t dtype, int64_t stride, int c) {
  if (!is_block_dtype(dtype)) return load_as_float(row + c * stride, dtype);
  const unsigned char* block = reinterpret_cast<const unsigned char*>(row) + (c / kQuantBlock) * stride;
  return block_scale(block) * block_quant(block, dtype, c % kQuantBlock);
}

// q · row over d elements (d a multiple of 32 for the block formats); q is fp32 in shared memory.
// For the block formats each block's scale multiplies the block's partial sum once.
__device__ __forceinline__ float dot_row(const float* q, const char* row, int32_t dtype, int64_t stride, int d) {
  float dot = 0.0f;
  if (!is_block_dtype(dtype)) {
    for (int c = 0; c < d; ++c) dot = fmaf(q[c], load_as_float(row + c * stride, dtype), dot);
    return dot;
  }
  for (int blk = 0; blk < d / kQuantBlock; ++blk) {
    const unsigned char* block = reinterpret_cast<const unsigned char*>(row) + blk * stride;
    const float* qb = q + blk * kQuantBlock;
    float part = 0.0f;
    if (dtype == LONGATTN_DTYPE_Q8_0) {
      for (int i = 0; i < kQuantBlock; ++i) part = fmaf(qb[i], float(static_cast<signed char>(block[2 + i])), part);
    } else {
      for (int i = 0; i < kQuantBlock / 2; ++i) {
        const unsigned char byte = block[2 + i];
        part = fmaf(qb[i], float(int(byte & 15) - kQ4_0Offset), part);
        part = fmaf(qb[i + 16], float(int(byte >> 4) - kQ4_0Offset), part);
      }
    }
    dot = fmaf(block_scale(block), part, dot);
  }
  return dot;
}

}  // namespace longattn::cuda
