// ggml's block formats for KV caches (see LONGATTN_DTYPE_Q8_0 / Q4_0 in longattn.h): constants and
// scalar dequantisation, shared by the reference, validation and the CPU scalar path.
#pragma once

#include <cstdint>

#include "half.hpp"
#include "longattn.h"

namespace longattn {

constexpr int kQuantBlock = 32;        // values per block
constexpr int kQ8_0BlockBytes = 34;    // fp16 scale + 32 int8
constexpr int kQ4_0BlockBytes = 18;    // fp16 scale + 16 bytes of nibbles
constexpr int kQ4_0Offset = 8;         // nibble value 8 means 0

inline bool is_block_dtype(longattn_dtype t) { return t == LONGATTN_DTYPE_Q8_0 || t == LONGATTN_DTYPE_Q4_0; }

// The integer of value i (0..31) of one block (value = scale · integer), and the value itself.
inline int dequant_block_int(const uint8_t* block, longattn_dtype t, int i) {
  if (t == LONGATTN_DTYPE_Q8_0) return int8_t(block[2 + i]);
  const uint8_t byte = block[2 + (i & 15)];
  return int((i < 16) ? (byte & 15) : (byte >> 4)) - kQ4_0Offset;
}
inline float dequant_block_scale(const uint8_t* block) { return f16_to_float(uint16_t(block[0] | (block[1] << 8))); }
inline float dequant_block_value(const uint8_t* block, longattn_dtype t, int i) {
  return dequant_block_scale(block) * float(dequant_block_int(block, t, i));
}

// n values (n a multiple of 32) of a row whose blocks are `block_stride` bytes apart.
inline void dequant_row(const void* row, longattn_dtype t, int64_t n, int64_t block_stride, float* dst) {
  const uint8_t* p = static_cast<const uint8_t*>(row);
  for (int64_t b = 0; b < n / kQuantBlock; ++b)
    for (int i = 0; i < kQuantBlock; ++i) dst[b * kQuantBlock + i] = dequant_block_value(p + b * block_stride, t, i);
}

// Quantises n values (n a multiple of 32) the way ggml does (scale = max|x| / 127, or / -8 of the
// signed extreme for Q4_0). Used by tests and the benchmark to build KV caches.
inline void quantize_row(const float* x, longattn_dtype t, int64_t n, uint8_t* dst, int64_t block_stride) {
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    const float* v = x + b * kQuantBlock;
    uint8_t* blk = dst + b * block_stride;
    float amax = 0, vmax = 0;
    for (int i = 0; i < kQuantBlock; ++i)
      if (v[i] * v[i] > amax * amax) amax = v[i] < 0 ? -v[i] : v[i], vmax = v[i];
    float d = t == LONGATTN_DTYPE_Q8_0 ? amax / 127.0f : vmax / -8.0f;
    const uint16_t dh = float_to_f16(d);
    d = f16_to_float(dh);
    blk[0] = uint8_t(dh & 0xff);
    blk[1] = uint8_t(dh >> 8);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    if (t == LONGATTN_DTYPE_Q8_0) {
      for (int i = 0; i < kQuantBlock; ++i) {
        float q = v[i] * id;
        q = q > 127.f ? 127.f : (q < -127.f ? -127.f : q);
        blk[2 + i] = uint8_t(int8_t(q < 0 ? q - 0.5f : q + 0.5f));
      }
    } else {
      for (int i = 0; i < 16; ++i) {
        auto nib = [&](float f) {
          int q = int(f * id + 8.5f);
          return uint8_t(q < 0 ? 0 : (q > 15 ? 15 : q));
        };
        blk[2 + i] = uint8_t(nib(v[i]) | (nib(v[i + 16]) << 4));
      }
    }
  }
}

}  // namespace longattn

#include "backend.hpp"

namespace longattn {

// Element (b, t, h, d) of a host view of any dtype, block formats included.
inline float load_element(const View& v, int64_t b, int64_t t, int64_t h, int64_t d) {
  if (is_block_dtype(v.dtype))
    return dequant_block_value(v.at<uint8_t>(b, t, h) + (d / kQuantBlock) * v.strides[3], v.dtype,
                               int(d % kQuantBlock));
  return load_as_float(v.at<char>(b, t, h, d), v.dtype);
}

}  // namespace longattn
