// AVX-512 (F, BW, DQ, VL) micro-kernels (compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl
// -mfma -mf16c).
#include <immintrin.h>

#include "kernels_impl.hpp"
#include "xsimd_ops.hpp"

namespace longattn::cpu {
namespace {

// ggml blocks (see quant.hpp): fp16 scale, then 32 int8 (Q8_0) or 16 bytes of nibbles − 8 (Q4_0)
void dequant_avx512(const uint8_t* p, longattn_dtype dtype, int64_t n, int64_t block_stride, float* dst) {
  for (int64_t b = 0; b < n / kQuantBlock; ++b, p += block_stride, dst += kQuantBlock) {
    const __m512 scale = _mm512_set1_ps(_cvtsh_ss(uint16_t(p[0] | (p[1] << 8))));
    __m128i lo, hi;  // values 0..15 and 16..31 as int8
    if (dtype == LONGATTN_DTYPE_Q8_0) {
      lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
      hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 18));
    } else {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
      const __m128i mask = _mm_set1_epi8(0x0F), offset = _mm_set1_epi8(kQ4_0Offset);
      lo = _mm_sub_epi8(_mm_and_si128(bytes, mask), offset);
      hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask), offset);
    }
    _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), scale));
    _mm512_storeu_ps(dst + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)), scale));
  }
}

void to_f32_avx512(const void* src, longattn_dtype dtype, int64_t n, int64_t stride, float* dst) {
  if (is_block_dtype(dtype)) return dequant_avx512(static_cast<const uint8_t*>(src), dtype, n, stride, dst);
  if (stride != 1 || dtype == LONGATTN_DTYPE_F32) return to_f32_scalar(src, dtype, n, stride, dst);
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
