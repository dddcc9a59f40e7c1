// Scalar conversions between fp32 and the 16-bit float formats (IEEE binary16, bfloat16).
// Round-to-nearest-even; NaN stays NaN; used by the reference, the CPU scalar path and tests.
#pragma once

#include <cstdint>
#include <cstring>

#include "longattn.h"

namespace longattn {

inline float bits_to_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t float_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

inline float bf16_to_float(uint16_t h) { return bits_to_float(uint32_t(h) << 16); }

inline uint16_t float_to_bf16(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                        // round to nearest even
  return uint16_t(u >> 16);
}

inline float f16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp != 0) return bits_to_float(sign | ((exp + 112) << 23) | (man << 13));
  if (man == 0) return bits_to_float(sign);
  // subnormal: man · 2^-24
  const float v = float(man) * 5.9604644775390625e-08f;
  return sign ? -v : v;
}

inline uint16_t float_to_f16(float f) {
  const uint32_t u = float_to_bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u);         // nan
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);        // overflow (>= 65520) → inf
  if (a < 0x38800000u) {                                        // subnormal or zero
    // value · 2^24 rounded to nearest even integer gives the subnormal mantissa
    const float v = bits_to_float(a) * 16777216.0f;
    uint32_t m = uint32_t(v);
    const float rem = v - float(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    return uint16_t(sign | m);
  }
  uint32_t r = a + 0xfffu + ((a >> 13) & 1u);  // round mantissa to 10 bits, nearest even
  r -= 112u << 23;
  return uint16_t(sign | (r >> 13));
}

inline float load_as_float(const void* p, longattn_dtype t) {
  switch (t) {
    case LONGATTN_DTYPE_F16: return f16_to_float(*static_cast<const uint16_t*>(p));
    case LONGATTN_DTYPE_BF16: return bf16_to_float(*static_cast<const uint16_t*>(p));
    default: return *static_cast<const float*>(p);
  }
}

inline void store_from_float(void* p, longattn_dtype t, float v) {
  switch (t) {
    case LONGATTN_DTYPE_F16: *static_cast<uint16_t*>(p) = float_to_f16(v); break;
    case LONGATTN_DTYPE_BF16: *static_cast<uint16_t*>(p) = float_to_bf16(v); break;
    default: *static_cast<float*>(p) = v; break;
  }
}

}  // namespace longattn
