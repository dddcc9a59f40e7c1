// AVX-512 (F, BW, DQ, VL) micro-kernels (compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl
// -mfma -mf16c).
#include <immintrin.h>

#include "kernels_impl.hpp"
#include "xsimd_ops.hpp"

namespace longattn::cpu {
namespace {

void to_f32_avx512(const void* src, longattn_dtype dtype, int64_t n, int64_t stride, float* dst) {
  if (stride != 1 || dtype == LONGATTN_DTYPE_F32 || is_block_dtype(dtype))
    return to_f32_scalar(src, dtype, n, stride, dst);
  const uint16_t* s = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  if (dtype == LONGATTN_DTYPE_F16) {
    for (; i + 16 <= n; i += 16)
      _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))));
  } else {  // bf16: the high half of an fp32
    for (; i + 16 <= n; i += 16) {
      const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
      _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
  }
  to_f32_scalar(s + i, dtype, n - i, 1, dst + i);
}

}  // namespace

const CpuKernels& cpu_kernels_avx512() {
  return make_table<XsimdOps<xsimd::avx512bw, 32>>("avx512", &to_f32_avx512);
}

}  // namespace longattn::cpu
