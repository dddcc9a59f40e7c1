// AVX2 + FMA + F16C micro-kernels (compiled with -mavx2 -mfma -mf16c).
#include <immintrin.h>

#include "kernels_impl.hpp"
#include "xsimd_ops.hpp"

namespace longattn::cpu {
namespace {

// 8 int8 → 8 floats times the block scale
inline void store_q8x8(float* dst, const uint8_t* q, __m256 scale) {
  const __m256i w = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q)));
  _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_cvtepi32_ps(w), scale));
}

// ggml blocks (see quant.hpp): fp16 scale, then 32 int8 (Q8_0) or 16 bytes of nibbles − 8 (Q4_0)
void dequant_avx2(const uint8_t* p, longattn_dtype dtype, int64_t n, int64_t block_stride, float* dst) {
  for (int64_t b = 0; b < n / kQuantBlock; ++b, p += block_stride, dst += kQuantBlock) {
    const __m256 scale = _mm256_set1_ps(_cvtsh_ss(uint16_t(p[0] | (p[1] << 8))));
    if (dtype == LONGATTN_DTYPE_Q8_0) {
      for (int i = 0; i < kQuantBlock; i += 8) store_q8x8(dst + i, p + 2 + i, scale);
    } else {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
      const __m128i low = _mm_and_si128(bytes, _mm_set1_epi8(0x0F));
      const __m128i high = _mm_and_si128(_mm_srli_epi16(bytes, 4), _mm_set1_epi8(0x0F));
      const __m128i offset = _mm_set1_epi8(kQ4_0Offset);
      alignas(16) uint8_t q[32];
      _mm_store_si128(reinterpret_cast<__m128i*>(q), _mm_sub_epi8(low, offset));        // values 0..15
      _mm_store_si128(reinterpret_cast<__m128i*>(q + 16), _mm_sub_epi8(high, offset));  // values 16..31
      for (int i = 0; i < kQuantBlock; i += 8) store_q8x8(dst + i, q + i, scale);
    }
  }
}

void to_f32_avx2(const void* src, longattn_dtype dtype, int64_t n, int64_t stride, float* dst) {
  if (is_block_dtype(dtype)) return dequant_avx2(static_cast<const uint8_t*>(src), dtype, n, stride, dst);
  if (stride != 1 || dtype == LONGATTN_DTYPE_F32) return to_f32_scalar(src, dtype, n, stride, dst);
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
