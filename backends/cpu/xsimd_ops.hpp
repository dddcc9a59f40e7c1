// Vector operations the micro-kernels need, over xsimd::batch<float, Arch> (xsimd 8.1).
#pragma once

#include <type_traits>

#include <xsimd/xsimd.hpp>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include "kernels_impl.hpp"

namespace longattn::cpu {

// (ln 2)^k / k! — the Taylor coefficients of 2^f = e^(f·ln 2)
constexpr float kExp2C1 = 0.69314718056f, kExp2C2 = 0.24022650696f, kExp2C3 = 0.05550410866f,
                kExp2C4 = 0.00961812911f, kExp2C5 = 0.00133335581f, kExp2C6 = 0.00015403530f;
constexpr float kExp2Min = -126.0f, kExp2Max = 127.0f;  // normal-range exponents only

template <class Arch, int Regs>
struct XsimdOps {
  using V = xsimd::batch<float, Arch>;
  static constexpr int W = int(V::size);
  static constexpr int kRegs = Regs;  // architectural vector registers
  static V zero() { return V(0.0f); }
  static V set1(float x) { return V(x); }
  static V load(const float* p) { return V::load_unaligned(p); }
  // W consecutive f16 / bf16 values as floats (F16C / AVX-512 conversions; a scalar loop elsewhere)
  static V load(const F16* p) {
#if defined(__x86_64__) || defined(_M_X64)
    if constexpr (std::is_same_v<Arch, xsimd::avx512bw>)
      return V(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
    if constexpr (std::is_same_v<Arch, xsimd::fma3<xsimd::avx2>>)
      return V(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#endif
    alignas(64) float t[W];
    for (int i = 0; i < W; ++i) t[i] = to_float(p[i]);
    return V::load_aligned(t);
  }
  static V load(const BF16* p) {
#if defined(__x86_64__) || defined(_M_X64)
    if constexpr (std::is_same_v<Arch, xsimd::avx512bw>)
      return V(_mm512_castsi512_ps(
          _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16)));
    if constexpr (std::is_same_v<Arch, xsimd::fma3<xsimd::avx2>>)
      return V(_mm256_castsi256_ps(
          _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16)));
#endif
    alignas(64) float t[W];
    for (int i = 0; i < W; ++i) t[i] = to_float(p[i]);
    return V::load_aligned(t);
  }
  // W values of a ggml block from value i on (i a multiple of W; W divides 32): the block's
  // integers as floats (block_ints, without the scale) or the values (load_block, scaled)
  static V block_ints(const Q8_0Block& b, int i) {
#if defined(__x86_64__) || defined(_M_X64)
    if constexpr (std::is_same_v<Arch, xsimd::fma3<xsimd::avx2>>)
      return V(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.qs + i)))));
    if constexpr (std::is_same_v<Arch, xsimd::avx512bw>)
      return V(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + i)))));
#endif
    return block_ints_scalar(b, i);
  }
  static V block_ints(const Q4_0Block& b, int i) {
#if defined(__x86_64__) || defined(_M_X64)
    // values 0..15: low nibbles of bytes 0..15; values 16..31: high nibbles of the same bytes
    const int shift = i < kQuantBlock / 2 ? 0 : 4;
    const int byte0 = i % (kQuantBlock / 2);
    if constexpr (std::is_same_v<Arch, xsimd::fma3<xsimd::avx2>>) {
      const __m256i bytes = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.qs + byte0)));
      const __m256i q = _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(bytes, shift), _mm256_set1_epi32(15)),
                                         _mm256_set1_epi32(kQ4_0Offset));
      return V(_mm256_cvtepi32_ps(q));
    }
    if constexpr (std::is_same_v<Arch, xsimd::avx512bw>) {
      const __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + byte0)));
      const __m512i q = _mm512_sub_epi32(_mm512_and_si512(_mm512_srli_epi32(bytes, unsigned(shift)), _mm512_set1_epi32(15)),
                                         _mm512_set1_epi32(kQ4_0Offset));
      return V(_mm512_cvtepi32_ps(q));
    }
#endif
    return block_ints_scalar(b, i);
  }
  template <class B>
  static V load_block(const B& b, int i) {
    return block_ints(b, i) * V(f16_to_float(b.d));
  }
  template <class B>
  static V block_ints_scalar(const B& b, int i) {
    alignas(64) float t[W];
    for (int j = 0; j < W; ++j) t[j] = block_int_value(&b, i + j);
    return V::load_aligned(t);
  }
  static void store(float* p, V v) { v.store_unaligned(p); }
  // Keeps v in a register: a loaded operand used by several FMAs is then loaded once, not folded
  // into each FMA as a memory operand (which makes the decode kernels load-bound).
  static void pin(V& v) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(_M_X64))
    __asm__("" : "+v"(v.data));
#else
    (void)v;
#endif
  }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V fma(V a, V b, V c) { return xsimd::fma(a, b, c); }
  static V max(V a, V b) { return xsimd::max(a, b); }
  // lane j = the horizontal sum of a[j], for W vectors a[0..W)
  static V hsum_lanes(const V* a) {
#if defined(__x86_64__) || defined(_M_X64)
    if constexpr (std::is_same_v<Arch, xsimd::avx512bw>) {
      // fold each 16-lane vector to 8 lanes, then the 8-wide parallel sum on each half (xsimd
      // 8.1's 16-wide haddp does not return the sums in lane order)
      using H = xsimd::batch<float, xsimd::avx2>;
      H lo[8], hi[8];
      for (int j = 0; j < 8; ++j) {
        lo[j] = H(_mm256_add_ps(_mm512_castps512_ps256(a[j]), _mm512_extractf32x8_ps(a[j], 1)));
        hi[j] = H(_mm256_add_ps(_mm512_castps512_ps256(a[8 + j]), _mm512_extractf32x8_ps(a[8 + j], 1)));
      }
      const __m256 l = xsimd::haddp(lo), h = xsimd::haddp(hi);
      return V(_mm512_insertf32x8(_mm512_castps256_ps512(l), h, 1));
    }
#endif
    return xsimd::haddp(a);
  }
  // 2^x for the softmax (x <= 0 in practice): x = n + f, |f| <= 1/2, 2^f by its degree-6 Taylor
  // polynomial in f·ln2 (relative error ~1.5e-7), 2^n by building the exponent bits. x < −126
  // (−inf included) gives exactly 0; NaN stays NaN. About half the instructions of xsimd::exp2,
  // which also handles the whole float range.
  static V exp2(V x) {
    using I = xsimd::batch<int32_t, Arch>;
    const V xc = xsimd::min(V(kExp2Max), xsimd::max(V(kExp2Min), x));  // NaN passes (second operand)
    const V n = xsimd::nearbyint(xc);
    const V f = xc - n;
    V p = V(kExp2C6);
    p = xsimd::fma(p, f, V(kExp2C5));
    p = xsimd::fma(p, f, V(kExp2C4));
    p = xsimd::fma(p, f, V(kExp2C3));
    p = xsimd::fma(p, f, V(kExp2C2));
    p = xsimd::fma(p, f, V(kExp2C1));
    p = xsimd::fma(p, f, V(1.0f));
    const I bits = (xsimd::to_int(n) + I(127)) << 23;
    const V r = p * xsimd::bitwise_cast<V>(bits);
    return xsimd::select(x < V(kExp2Min), V(0.0f), r);
  }
  static V tanh(V x) { return xsimd::tanh(x); }
  // x where x != −inf, else r
  static V select_neginf(V x, V r) {
    return xsimd::select(x == V(-std::numeric_limits<float>::infinity()), r, x);
  }
};

}  // namespace longattn::cpu
