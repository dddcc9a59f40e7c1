// AVX2 + FMA + F16C micro-kernels (compiled with -mavx2 -mfma -mf16c).
#include <immintrin.h>

#include "kernels_impl.hpp"
#include "xsimd_ops.hpp"

namespace longattn::cpu {
namespace {

void to_f32_avx2(const void* src, longattn_dtype dtype, int64_t n, int64_t stride, float* dst) {
  if (stride != 1 || dtype == LONGATTN_DTYPE_F32 || is_block_dtype(dtype))
    return to_f32_scalar(src, dtype, n, stride, dst);
  const uint16_t* s = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  if (dtype == LONGATTN_DTYPE_F16) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
  } else {  // bf16: the high half of an fp32
    for (; i + 8 <= n; i += 8) {
      const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
      _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
  }
  to_f32_scalar(s + i, dtype, n - i, 1, dst + i);
}

}  // namespace

const CpuKernels& cpu_kernels_avx2() {
  return make_table<XsimdOps<xsimd::fma3<xsimd::avx2>, 16>>("avx2", &to_f32_avx2);
}

}  // namespace longattn::cpu
