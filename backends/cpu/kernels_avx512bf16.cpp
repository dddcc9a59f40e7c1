// AVX512-BF16 micro-kernels (compiled with the AVX-512 flags plus -mavx512bf16): the avx512 table,
// with Sᵀ = K·Qᵀ and O += P·V on bf16 operands computed by VDPBF16PS, which per fp32 lane j does
//   acc[j] += a[2j]·b[2j] + a[2j+1]·b[2j+1]      (bf16 products are exact in fp32; fp32 sums)
// so each operand is a vector of bf16 PAIRS along the contracted dimension: the head dimension for
// Sᵀ, the keys for P·V. One instruction does the work of two fp32 FMAs, and K/V rows are read as
// stored, with no conversion. Every other kernel and dtype combination is the plain AVX-512 one.
// (On Zen 4 VDPBF16PS issues at the FMA rate; on Sapphire Rapids at a quarter of it, so there this
// table is slower than avx512: it is chosen automatically on AMD CPUs only, see kernels_select.cpp.)
#include <immintrin.h>

#include <cstring>

#include "cpu_kernels.hpp"

namespace longattn::cpu {
namespace {

constexpr int W = 16;  // fp32 lanes per vector = bf16 pairs per vector

inline __m512bh as_bh(__m512i x) { return reinterpret_cast<__m512bh>(x); }

// The two consecutive bf16 values at p, as one pair broadcast to every lane.
inline __m512bh broadcast_pair(const uint16_t* p) {
  uint32_t w;
  std::memcpy(&w, p, sizeof(w));
  return as_bh(_mm512_set1_epi32(int(w)));
}

inline __m512bh broadcast_pair(uint32_t w) { return as_bh(_mm512_set1_epi32(int(w))); }

inline __m512bh load_pairs(const uint32_t* p) { return as_bh(_mm512_loadu_si512(p)); }

// Register blocking as in kernels_impl.hpp: NK keys × NV row-vectors of Sᵀ, and kPvRows rows ×
// kPvVecs column-vectors of O, in accumulators (24 of the 32 registers for the wide blocks).
template <int NV>
constexpr int qk_keys() {
  return (32 - NV - 1) / NV > 12 ? 12 : (32 - NV - 1) / NV;
}
constexpr int kQkVecs = 4, kPvRows = 6, kPvVecs = 4;

// ---- Sᵀ = K·Qᵀ ----

// Sᵀ block: NK keys × NV row-vectors from lane r0:
//   st[c][r] = scale · Σ_i (q[r][2i]·k[c][2i] + q[r][2i+1]·k[c][2i+1])
// with qp[i][r] the pair (q[r][2i], q[r][2i+1]) and k[c]'s pair i broadcast to every lane.
template <int NK, int NV>
void qk_block(const uint32_t* qp, int rpad, int d, const uint16_t* const* kr, int r0, float scale, float* st) {
  __m512 acc[NK][NV];
  for (int c = 0; c < NK; ++c)
    for (int v = 0; v < NV; ++v) acc[c][v] = _mm512_setzero_ps();
  for (int i = 0; i < d / 2; ++i) {
    const uint32_t* q = qp + size_t(i) * rpad + r0;
    __m512bh qv[NV];
    for (int v = 0; v < NV; ++v) qv[v] = load_pairs(q + v * W);
    for (int c = 0; c < NK; ++c) {
      const __m512bh kb = broadcast_pair(kr[c] + 2 * i);
      for (int v = 0; v < NV; ++v) acc[c][v] = _mm512_dpbf16_ps(acc[c][v], qv[v], kb);
    }
  }
  const __m512 s = _mm512_set1_ps(scale);
  for (int c = 0; c < NK; ++c)
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(st + size_t(c) * rpad + r0 + v * W, _mm512_mul_ps(acc[c][v], s));
}

template <int NV>
void qk_cols(const uint32_t* qp, int rpad, int d, const uint16_t* const* kr, int nc, int r0, float scale, float* st) {
  constexpr int NK = qk_keys<NV>();
  int c = 0;
  for (; c + NK <= nc; c += NK) qk_block<NK, NV>(qp, rpad, d, kr + c, r0, scale, st + size_t(c) * rpad);
  for (; c < nc; ++c) qk_block<1, NV>(qp, rpad, d, kr + c, r0, scale, st + size_t(c) * rpad);
}

void qk_bf16(const uint32_t* qp, int rpad, int d, const uint16_t* const* kr, int nc, float scale, float* st) {
  const int nvec = rpad / W;
  int v = 0;
  for (; v + kQkVecs <= nvec; v += kQkVecs) qk_cols<kQkVecs>(qp, rpad, d, kr, nc, v * W, scale, st);
  for (; v < nvec; ++v) qk_cols<1>(qp, rpad, d, kr, nc, v * W, scale, st);
}

// ---- O = α·O + P·V ----

// V pairs of a tile: vp[i][j] = (v[2i][j], v[2i+1][j]) for i < ⌈nc/2⌉, j < dvpad; a missing key
// (2i+1 = nc) and the columns j ≥ dv are 0. Two rows of 32 columns interleave into two vectors
// of 16 pairs (columns 0..15, then 16..31) with one two-source word permute each.
void pack_v_pairs(const uint16_t* const* vr, int nc, int dv, int dvpad, uint32_t* vp) {
  alignas(64) uint16_t lo_idx[32], hi_idx[32];
  for (int m = 0; m < W; ++m) {  // index 32 + m selects word m of the second source
    lo_idx[2 * m] = uint16_t(m), lo_idx[2 * m + 1] = uint16_t(32 + m);
    hi_idx[2 * m] = uint16_t(16 + m), hi_idx[2 * m + 1] = uint16_t(48 + m);
  }
  const __m512i lo = _mm512_load_si512(lo_idx), hi = _mm512_load_si512(hi_idx);
  for (int i = 0; i < (nc + 1) / 2; ++i) {
    const uint16_t* a = vr[2 * i];
    const uint16_t* b = 2 * i + 1 < nc ? vr[2 * i + 1] : nullptr;
    uint32_t* dst = vp + size_t(i) * dvpad;
    int j = 0;
    if (b)
      for (; j + 2 * W <= dv; j += 2 * W) {
        const __m512i x = _mm512_loadu_si512(a + j), y = _mm512_loadu_si512(b + j);
        _mm512_storeu_si512(dst + j, _mm512_permutex2var_epi16(x, lo, y));
        _mm512_storeu_si512(dst + j + W, _mm512_permutex2var_epi16(x, hi, y));
      }
    for (; j < dv; ++j) dst[j] = uint32_t(a[j]) | uint32_t(b ? b[j] : 0) << 16;
    for (; j < dvpad; ++j) dst[j] = 0;
  }
}

// P pairs of a tile, rounded to bf16 (nearest even): pp[i][r] = (p[2i][r], p[2i+1][r]) for
// i < ⌈nc/2⌉, r < rpad (a missing key: 0). VCVTNE2PS2BF16 puts 16 values of each key side by side
// (key 2i in words 0..15, key 2i+1 in 16..31); a word permute interleaves them.
void pack_p_pairs(const float* st, int nc, int rpad, uint32_t* pp) {
  alignas(64) uint16_t idx[32];
  for (int m = 0; m < W; ++m) idx[2 * m] = uint16_t(m), idx[2 * m + 1] = uint16_t(W + m);
  const __m512i interleave = _mm512_load_si512(idx);
  for (int i = 0; i < (nc + 1) / 2; ++i) {
    const float* p0 = st + size_t(2 * i) * rpad;
    const bool odd = 2 * i + 1 < nc;
    for (int r = 0; r < rpad; r += W) {
      const __m512 x0 = _mm512_loadu_ps(p0 + r);
      const __m512 x1 = odd ? _mm512_loadu_ps(p0 + rpad + r) : _mm512_setzero_ps();
      const __m512i h = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(x1, x0));  // x0 low words, x1 high
      _mm512_storeu_si512(pp + size_t(i) * rpad + r, _mm512_permutexvar_epi16(interleave, h));
    }
  }
}

// O block: NR rows × NV column-vectors from column j0, over np key pairs:
//   o[r][j] = alpha[r]·o[r][j] + Σ_i (p[2i][r]·v[2i][j] + p[2i+1][r]·v[2i+1][j])
template <int NR, int NV>
void pv_block(const uint32_t* pp, int np, int rpad, int r0, const uint32_t* vp, int dvpad, int j0,
              const float* alpha, float* o) {
  __m512 acc[NR][NV];
  for (int r = 0; r < NR; ++r) {
    const __m512 a = _mm512_set1_ps(alpha[r0 + r]);
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_mul_ps(_mm512_loadu_ps(o + size_t(r0 + r) * dvpad + j0 + v * W), a);
  }
  for (int i = 0; i < np; ++i) {
    __m512bh vv[NV];
    for (int v = 0; v < NV; ++v) vv[v] = load_pairs(vp + size_t(i) * dvpad + j0 + v * W);
    const uint32_t* p = pp + size_t(i) * rpad + r0;
    for (int r = 0; r < NR; ++r) {
      const __m512bh pb = broadcast_pair(p[r]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], vv[v], pb);
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(o + size_t(r0 + r) * dvpad + j0 + v * W, acc[r][v]);
}

template <int NR>
void pv_rows(const uint32_t* pp, int np, int rpad, int r0, const uint32_t* vp, int dvpad, const float* alpha,
             float* o) {
  const int nvec = dvpad / W;
  int v = 0;
  for (; v + kPvVecs <= nvec; v += kPvVecs) pv_block<NR, kPvVecs>(pp, np, rpad, r0, vp, dvpad, v * W, alpha, o);
  for (; v < nvec; ++v) pv_block<NR, 1>(pp, np, rpad, r0, vp, dvpad, v * W, alpha, o);
}

void pv_bf16(const float* st, int nc, int rpad, int rows, const uint16_t* const* vr, int dv, int dvpad,
             const float* alpha, float* o, uint32_t* pp, uint32_t* vp) {
  pack_v_pairs(vr, nc, dv, dvpad, vp);
  pack_p_pairs(st, nc, rpad, pp);
  const int np = (nc + 1) / 2;
  int r = 0;
  for (; r + kPvRows <= rows; r += kPvRows) pv_rows<kPvRows>(pp, np, rpad, r, vp, dvpad, alpha, o);
  for (; r + 4 <= rows; r += 4) pv_rows<4>(pp, np, rpad, r, vp, dvpad, alpha, o);
  for (; r + 2 <= rows; r += 2) pv_rows<2>(pp, np, rpad, r, vp, dvpad, alpha, o);
  for (; r < rows; ++r) pv_rows<1>(pp, np, rpad, r, vp, dvpad, alpha, o);
}

}  // namespace

const CpuKernels& cpu_kernels_avx512bf16() {
  static const CpuKernels table = [] {
    CpuKernels t = cpu_kernels_avx512();
    t.isa = "avx512bf16";
    t.qk_bf16 = &qk_bf16;
    t.pv_bf16 = &pv_bf16;
    return t;
  }();
  return table;
}

}  // namespace longattn::cpu
