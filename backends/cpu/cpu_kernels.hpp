// The CPU micro-kernels, one table per instruction set (AVX512-BF16, AVX-512, AVX2+FMA, NEON, scalar). The
// tiled attention driver (attend.cpp) is ISA-neutral and calls through the table chosen at run time.
//
// Layout the kernels share (one work item = `rows` query rows × a tile of `nc` keys):
//   qt  [d][rpad]      Qᵀ, pre-scaled (scale·log2e, or scale alone with softcap), lanes = rows
//   st  [nc][rpad]     Sᵀ: logits in log2 units, then P = exp2(S − m) in place (rpad a multiple of
//                      the width, or for the dot kernels a power of two below it: several keys a vector)
//   krows[c], vrows[c] fp32 rows of d and dvpad floats (dvpad = head_dim_v rounded up to width)
//   m, l, alpha [rpad] running max (log2 units), running sum, per-tile rescale factor
//   o   [rows][dvpad]  unnormalised output accumulator
#pragma once

#include <cstdint>

#include "longattn.h"

namespace longattn::cpu {

// Most keys (nc) one call of qk_dot_stored / pv_stored takes (their scale tables live on the stack).
constexpr int kMaxStoredKeys = 128;

struct CpuKernels {
  const char* isa;  // "avx512bf16", "avx512", "avx2", "neon", "scalar"
  int width;        // fp32 lanes per vector

  // dst[i] = float(src[i * stride_elems]) for i < n (stride in elements of dtype); for the block
  // formats Q8_0 / Q4_0, n values of a row whose blocks are stride_elems BYTES apart
  void (*to_f32)(const void* src, longattn_dtype dtype, int64_t n, int64_t stride_elems, float* dst);

  // st[c][r] = Σ_k qt[k][r] · krows[c][k]      for c < nc, r < rpad (rpad a multiple of width)
  void (*qk)(const float* qt, int rpad, int d, const float* const* krows, int nc, float* st);

  // The same Sᵀ from row-major q [rows][d] (rows <= rpad; lanes r >= rows set to 0; rpad may be
  // a power of two below the width): for a few rows, lanes run over the head dimension instead.
  void (*qk_dot)(const float* q, int rows, int d, const float* const* krows, int nc, float* st, int rpad);

  // qk_dot with K rows read as stored (kt: f16, bf16, or Q8_0 / Q4_0 blocks packed back to back)
  // and converted in registers; d a multiple of width, nc <= kMaxStoredKeys. pf: null, or nc rows
  // of the same format to prefetch into L2, pf[c] while reading row c (the driver picks them: the
  // next tile's rows, in address order).
  void (*qk_dot_stored)(const float* q, int rows, int d, const void* const* krows, longattn_dtype kt, int nc, float* st,
                   int rpad, const void* const* pf);

  // st[c][r] = cap_log2 · tanh(st[c][r] / cap)   (softcap applied to scale-only logits; cap_log2 =
  // cap · log2e so the result is in log2 units)
  void (*softcap)(float* st, int64_t n, float cap, float cap_log2);

  // Online softmax over one tile, per lane r < rpad (any rpad the layout allows):
  //   m_new = max(m, max_c st[c][r]);  ref = (m_new == −inf ? 0 : m_new)
  //   alpha = exp2(m − ref);  st[c][r] = exp2(st[c][r] − ref);  l = l·alpha + Σ_c st[c][r];  m = m_new
  void (*softmax)(float* st, int nc, int rpad, float* m, float* l, float* alpha);

  // o[r][:] = alpha[r]·o[r][:] + Σ_c st[c][r] · vrows[c][:]   for r < rows, over dvpad columns
  void (*pv)(const float* st, int nc, int rpad, int rows, const float* const* vrows, int dvpad,
             const float* alpha, float* o);

  // pv with V rows read as stored (vt as for qk_dot_stored) and converted in registers; dv a
  // multiple of width, nc <= kMaxStoredKeys; pf as for qk_dot_stored.
  void (*pv_stored)(const float* st, int nc, int rpad, int rows, const void* const* vrows, longattn_dtype vt, int dv,
               const float* alpha, float* o, const void* const* pf);

  // ---- bf16 dot products (the avx512bf16 table; null in the others) ----
  // qk from bf16 Q and K: st[c][r] = scale · Σ_k q[r][k] · krows[c][k] for c < nc, r < rpad, where
  // qp [d/2][rpad] holds Q unscaled as bf16 pairs (word qp[i][r] = q[r][2i] | q[r][2i+1] << 16;
  // lanes past the rows 0), krows[c] are bf16 rows of d values read as stored, d even. The
  // products are exact in fp32 and summed in fp32: the same accuracy as qk on the same values.
  void (*qk_bf16)(const uint32_t* qp, int rpad, int d, const uint16_t* const* krows, int nc, float scale,
                  float* st);

  // pv with P rounded to bf16 (nearest even) and bf16 V rows of dv values read as stored (dv <= dvpad;
  // columns past dv get 0): o[r][:] = alpha[r]·o[r][:] + Σ_c bf16(st[c][r]) · vrows[c][:], r < rows.
  // Scratch: pp ⌈nc/2⌉·rpad words (P pairs), vp ⌈nc/2⌉·dvpad words (V pairs); nc <= kMaxStoredKeys.
  void (*pv_bf16)(const float* st, int nc, int rpad, int rows, const uint16_t* const* vrows, int dv, int dvpad,
                  const float* alpha, float* o, uint32_t* pp, uint32_t* vp);
};

const CpuKernels& cpu_kernels_scalar();
#if defined(__x86_64__) || defined(_M_X64)
const CpuKernels& cpu_kernels_avx2();
const CpuKernels& cpu_kernels_avx512();
const CpuKernels& cpu_kernels_avx512bf16();  // cpu_kernels_avx512() plus qk_bf16 / pv_bf16
#endif
#if defined(__aarch64__)
const CpuKernels& cpu_kernels_neon();
#endif

// The best table this CPU supports, unless LONGATTN_CPU_ISA (avx512bf16|avx512|avx2|neon|scalar) names
// another one this CPU supports (avx512bf16 is taken automatically on AMD CPUs only). Null when
// `name` is given and unsupported.
const CpuKernels* cpu_kernels_by_name(const char* name);
const CpuKernels& cpu_kernels_best();
// Comma-separated list of the tables compiled in.
const char* cpu_isas_compiled();

}  // namespace longattn::cpu
