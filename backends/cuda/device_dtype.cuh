// Element access on the device: any longattn dtype to and from fp32 (round to nearest even).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "longattn.h"

namespace longattn::cuda {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ float load_as_float(const char* p, int32_t dtype) {
  switch (dtype) {
    case LONGATTN_DTYPE_F16: return __half2float(*reinterpret_cast<const __half*>(p));
    case LONGATTN_DTYPE_BF16: return __bfloat162float(*reinterpret_cast<const __nv_bfloat16*>(p));
    default: return *reinterpret_cast<const float*>(p);
  }
}

__device__ __forceinline__ void store_from_float(char* p, int32_t dtype, float v) {
  switch (dtype) {
    case LONGATTN_DTYPE_F16: *reinterpret_cast<__half*>(p) = __float2half_rn(v); break;
    case LONGATTN_DTYPE_BF16: *reinterpret_cast<__nv_bfloat16*>(p) = __float2bfloat16_rn(v); break;
    default: *reinterpret_cast<float*>(p) = v; break;
  }
}

// Stores two consecutive elements (c, c+1) of a row whose dim axis is contiguous.
__device__ __forceinline__ void store_pair(char* p, int32_t dtype, float a, float b) {
  switch (dtype) {
    case LONGATTN_DTYPE_F16:
      *reinterpret_cast<__half2*>(p) = __floats2half2_rn(a, b);
      break;
    case LONGATTN_DTYPE_BF16:
      *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
      break;
    default:
      *reinterpret_cast<float2*>(p) = make_float2(a, b);
      break;
  }
}

}  // namespace longattn::cuda
