// Micro-kernel bodies, written once over a vector type `Ops` and instantiated per ISA in
// kernels_<isa>.cpp (each translation unit compiled with its own -m flags). See cpu_kernels.hpp
// for the shapes and the math of each kernel.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "cpu_kernels.hpp"
#include "half.hpp"
#include "quant.hpp"

namespace longattn::cpu {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Elements the decode kernels read straight from K/V rows as stored, converting in registers:
// 16-bit floats, and ggml's 32-value blocks (fp16 scale d; value i = d·q_i, Q4_0: q_i = nibble − 8
// with values 0..15 in the low nibbles of bytes 0..15 and 16..31 in the high ones).
struct F16 { uint16_t bits; };
struct BF16 { uint16_t bits; };
struct __attribute__((packed)) Q8_0Block { uint16_t d; int8_t qs[kQuantBlock]; };
struct __attribute__((packed)) Q4_0Block { uint16_t d; uint8_t qs[kQuantBlock / 2]; };
static_assert(sizeof(Q8_0Block) == kQ8_0BlockBytes && sizeof(Q4_0Block) == kQ4_0BlockBytes, "ggml block sizes");
inline float to_float(float x) { return x; }
inline float to_float(F16 x) { return f16_to_float(x.bits); }
inline float to_float(BF16 x) { return bf16_to_float(x.bits); }

template <class E>
constexpr bool is_block_v = std::is_same_v<E, Q8_0Block> || std::is_same_v<E, Q4_0Block>;

// Value i of a row of E.
template <class E>
inline float row_value(const E* row, int i) {
  if constexpr (is_block_v<E>)
    return dequant_block_value(reinterpret_cast<const uint8_t*>(row + i / kQuantBlock),
                               std::is_same_v<E, Q8_0Block> ? LONGATTN_DTYPE_Q8_0 : LONGATTN_DTYPE_Q4_0, i % kQuantBlock);
  else
    return to_float(row[i]);
}

// The integer of value i of one block of E (value = scale · integer).
template <class E>
inline float block_int_value(const E* block, int i) {
  return float(dequant_block_int(reinterpret_cast<const uint8_t*>(block),
                                 std::is_same_v<E, Q8_0Block> ? LONGATTN_DTYPE_Q8_0 : LONGATTN_DTYPE_Q4_0, i));
}

// Byte offset of value i in a row of E.
template <class E>
constexpr int64_t row_byte(int i) {
  return is_block_v<E> ? int64_t(i / kQuantBlock) * int64_t(sizeof(E)) : int64_t(i) * int64_t(sizeof(E));
}

// Register blocking: the QK kernel keeps qk_keys<NV>() keys × NV row-vectors of Sᵀ in registers,
// the PV kernel kPvRows rows × kPvVecs column-vectors of O: 6 × 4 = 24 accumulators on 32-register
// ISAs (AVX-512, NEON), 6 × 2 = 12 on 16-register ones (AVX2), leaving room for the operands.
template <class Ops>
struct Kernels {
  using V = typename Ops::V;
  static constexpr int W = Ops::W;
  // __builtin_prefetch locality of the rows prefetched a tile ahead: 2 = prefetcht1, into L2. (On
  // Zen 4 decode took 31 – 33 ms with it against 41 – 51 with prefetcht0 and 33 – 38 with prefetcht2.)
  static constexpr int kPrefetchLocality = 2;
  static_assert(kQuantBlock % W == 0, "a vector of values never straddles a block");

  // W values of a row from value i on (i a multiple of W), as floats.
  template <class E>
  static V load_row(const E* row, int i) {
    if constexpr (is_block_v<E>)
      return Ops::load_block(row[i / kQuantBlock], i % kQuantBlock);
    else
      return Ops::load(row + i);
  }

  // Prefetches every line that values i .. i + N − 1 of `row` occupy (i a multiple of N; for the
  // block formats, the whole blocks that hold them, a straddled line included) into L2: the rows
  // prefetched are read a tile later. Branch-free, so register allocation of the calling loop is
  // undisturbed.
  template <class E, int N>
  static void prefetch_cols(const E* row, int i) {
    // bytes of N values, or of the blocks holding them
    constexpr int64_t span = is_block_v<E> ? (N + kQuantBlock - 1) / kQuantBlock * int64_t(sizeof(E)) : N * int64_t(sizeof(E));
    const char* p = reinterpret_cast<const char*>(row) + row_byte<E>(i);
    for (int64_t b = 0; b < span; b += 64) __builtin_prefetch(p + b, 0, kPrefetchLocality);
    if constexpr (span % 64 != 0) __builtin_prefetch(p + span - 1, 0, kPrefetchLocality);
  }
  // values per prefetch: a cache line, or a block
  template <class E>
  static constexpr int prefetch_values() { return is_block_v<E> ? kQuantBlock : 64 / int(sizeof(E)); }

  static constexpr int kQkVecs = Ops::kRegs >= 32 ? 4 : 2;
  // keys per QK block for NV row-vectors: NK·NV accumulators + NV operands fit the register file,
  // and at least ~8 independent FMA chains hide the FMA latency when NV is small (decode)
  template <int NV>
  static constexpr int qk_keys() {
    constexpr int fit = (Ops::kRegs - NV - 1) / NV;
    return fit > 12 ? 12 : fit;
  }
  static constexpr int kPvRows = 6;
  static constexpr int kPvVecs = Ops::kRegs >= 32 ? 4 : 2;

  // Sᵀ block: NK keys × NV row-vectors starting at lane r0.
  template <int NK, int NV>
  static void qk_block(const float* qt, int rpad, int d, const float* const* kr, int r0,
                       float* st) {
    V acc[NK][NV];
    for (int c = 0; c < NK; ++c)
      for (int v = 0; v < NV; ++v) acc[c][v] = Ops::zero();
    for (int k = 0; k < d; ++k) {
      const float* q = qt + size_t(k) * rpad + r0;
      V qv[NV];
      for (int v = 0; v < NV; ++v) qv[v] = Ops::load(q + v * W);
      for (int c = 0; c < NK; ++c) {
        const V kb = Ops::set1(kr[c][k]);
        for (int v = 0; v < NV; ++v) acc[c][v] = Ops::fma(qv[v], kb, acc[c][v]);
      }
    }
    for (int c = 0; c < NK; ++c)
      for (int v = 0; v < NV; ++v) Ops::store(st + size_t(c) * rpad + r0 + v * W, acc[c][v]);
  }

  template <int NV>
  static void qk_cols(const float* qt, int rpad, int d, const float* const* kr, int nc, int r0,
                      float* st) {
    constexpr int NK = qk_keys<NV>();
    int c = 0;
    for (; c + NK <= nc; c += NK) qk_block<NK, NV>(qt, rpad, d, kr + c, r0, st + size_t(c) * rpad);
    for (; c < nc; ++c) qk_block<1, NV>(qt, rpad, d, kr + c, r0, st + size_t(c) * rpad);
  }

  static void qk(const float* qt, int rpad, int d, const float* const* kr, int nc, float* st) {
    const int nvec = rpad / W;
    int v = 0;
    for (; v + kQkVecs <= nvec; v += kQkVecs) qk_cols<kQkVecs>(qt, rpad, d, kr, nc, v * W, st);
    for (; v < nvec; ++v) qk_cols<1>(qt, rpad, d, kr, nc, v * W, st);
  }

  // Few query rows (decode): lanes over the head dimension instead of over rows, so no lane is
  // idle. st[c][r] = Σ_k q[r][k] · krows[c][k], q row-major [rows][d]. A block is KB = W / NR keys ×
  // NR rows: W accumulators (W independent FMA chains), each q vector loaded once per block and
  // used KB times; one parallel horizontal sum (hsum_lanes) then yields the W dot products, lane
  // kb·NR + r. Keys past nc repeat the last key (their lanes are dropped). Pf: pr holds the rows
  // to prefetch, pr[c] while reading key c (without, no prefetching and no registers for it).
  template <int NR, class E, bool Pf>
  static void qk_dot_rows(const float* q, int d, const E* const* kr, int nc, float* st, int rpad, int r0,
                          const E* const* pr) {
    static_assert(W % NR == 0, "NR divides the vector width");
    constexpr int KB = W / NR;
    const int dv = d / W * W;
    alignas(64) float sums[W];
    for (int c = 0; c < nc; c += KB) {
      const E* k[KB];
      const E* pk[KB];  // rows to prefetch
      for (int kb = 0; kb < KB; ++kb) {
        k[kb] = kr[std::min(c + kb, nc - 1)];
        if constexpr (Pf) pk[kb] = pr[std::min(c + kb, nc - 1)];
      }
      V acc[W];
      for (int j = 0; j < W; ++j) acc[j] = Ops::zero();
      constexpr int L = std::is_same_v<E, float> ? W : std::max(W, prefetch_values<E>());
      for (int i0 = 0; i0 < dv; i0 += L) {
        if constexpr (Pf)  // rows read as stored: prefetch the next tile's
          for (int kb = 0; kb < KB; ++kb) prefetch_cols<E, prefetch_values<E>()>(pk[kb], i0);
        const int i1 = std::min(i0 + L, dv);
        for (int i = i0; i < i1; i += W) {
          V qv[NR];
          for (int r = 0; r < NR; ++r) {
            V x = Ops::load(q + size_t(r0 + r) * d + i);
            if constexpr (KB > 1) Ops::pin(x);  // (pinned as a local: pinning the array element kept the array in memory)
            qv[r] = x;
          }
          for (int kb = 0; kb < KB; ++kb) {
            const V kv = load_row(k[kb], i);
            for (int r = 0; r < NR; ++r) acc[kb * NR + r] = Ops::fma(qv[r], kv, acc[kb * NR + r]);
          }
        }
      }
      if (rpad == NR && dv == d && c + KB <= nc) {  // Sᵀ rows of NR lanes: the sums in place
        Ops::store(st + size_t(c) * rpad, Ops::hsum_lanes(acc));
        continue;
      }
      Ops::store(sums, Ops::hsum_lanes(acc));
      for (int kb = 0; kb < KB && c + kb < nc; ++kb)
        for (int r = 0; r < NR; ++r) {
          float sum = sums[kb * NR + r];
          for (int t = dv; t < d; ++t) sum += q[size_t(r0 + r) * d + t] * row_value(k[kb], t);
          st[size_t(c + kb) * rpad + r0 + r] = sum;
        }
    }
  }

  // ---- ggml blocks read as stored (Q8_0, Q4_0) ----
  // The fp16 scales of a tile's rows are converted once, into a table [c][block], W at a time;
  // the kernels then multiply each vector of a block's integers by its broadcast scale. (Converting
  // the scale next to every vector of values cost three more instructions per vector.)
  static constexpr int kMaxBlocks = 256 / kQuantBlock;  // blocks per row: head dims up to 256
  template <class E>
  static void block_scales(const E* const* rows, int nc, int nb, float* scales) {
    alignas(64) F16 h[kMaxStoredKeys * kMaxBlocks + W];
    const int n = nc * nb;
    for (int c = 0; c < nc; ++c)
      for (int b = 0; b < nb; ++b) h[c * nb + b] = F16{rows[c][b].d};
    for (int i = n; i < round_up_w(n); ++i) h[i] = F16{0};
    for (int i = 0; i < n; i += W) Ops::store(scales + i, Ops::load(h + i));
  }
  static int round_up_w(int n) { return (n + W - 1) / W * W; }

  // qk_dot_rows for block rows: ks[c·nb + b] = scale of block b of key c.
  template <int NR, class E, bool Pf>
  static void qk_dot_blocks(const float* q, int d, const E* const* kr, const float* ks, int nc, float* st, int rpad,
                            int r0, const E* const* pr) {
    static_assert(W % NR == 0 && kQuantBlock % W == 0, "NR divides the vector width, W divides a block");
    constexpr int KB = W / NR, S = kQuantBlock / W;  // keys per block of lanes, vectors per quant block
    const int nb = d / kQuantBlock;
    const float* qr = q + size_t(r0) * d;
    alignas(64) float sums[W];
    for (int c = 0; c < nc; c += KB) {
      const E* k[KB];
      const E* pk[KB];
      const float* sc[KB];
      for (int kb = 0; kb < KB; ++kb) {
        const int ck = std::min(c + kb, nc - 1);  // keys past nc repeat the last one (dropped)
        k[kb] = kr[ck];
        if constexpr (Pf) pk[kb] = pr[ck];
        sc[kb] = ks + size_t(ck) * nb;
      }
      V acc[W];
      for (int j = 0; j < W; ++j) acc[j] = Ops::zero();
      for (int b = 0; b < nb; ++b) {
        if constexpr (Pf)
          for (int kb = 0; kb < KB; ++kb) prefetch_cols<E, kQuantBlock>(pk[kb], b * kQuantBlock);
        V scale[KB];
        for (int kb = 0; kb < KB; ++kb) scale[kb] = Ops::set1(sc[kb][b]);
        for (int s = 0; s < S; ++s) {
          V qv[NR];
          for (int r = 0; r < NR; ++r) {
            V x = Ops::load(qr + size_t(r) * d + b * kQuantBlock + s * W);
            if constexpr (KB > 1) Ops::pin(x);
            qv[r] = x;
          }
          for (int kb = 0; kb < KB; ++kb) {
            const V kv = Ops::mul(Ops::block_ints(k[kb][b], s * W), scale[kb]);
            for (int r = 0; r < NR; ++r) acc[kb * NR + r] = Ops::fma(qv[r], kv, acc[kb * NR + r]);
          }
        }
      }
      if (rpad == NR && c + KB <= nc) {
        Ops::store(st + size_t(c) * rpad, Ops::hsum_lanes(acc));
        continue;
      }
      Ops::store(sums, Ops::hsum_lanes(acc));
      for (int kb = 0; kb < KB && c + kb < nc; ++kb)
        for (int r = 0; r < NR; ++r) st[size_t(c + kb) * rpad + r0 + r] = sums[kb * NR + r];
    }
  }

  // NR rows of qk_dot_t: the kernel for the row format, with prefetching where there are rows to
  // prefetch (rows of a format other than fp32)
  template <int NR, class E>
  static void qk_group(const float* q, int d, const E* const* kr, const float* ks, int nc, float* st, int rpad,
                       int r0, const E* const* pr) {
    if constexpr (is_block_v<E>) {
      if (pr) return qk_dot_blocks<NR, E, true>(q, d, kr, ks, nc, st, rpad, r0, pr);
      return qk_dot_blocks<NR, E, false>(q, d, kr, ks, nc, st, rpad, r0, pr);
    } else if constexpr (!std::is_same_v<E, float>) {
      if (pr) return qk_dot_rows<NR, E, true>(q, d, kr, nc, st, rpad, r0, pr);
    }
    if constexpr (!is_block_v<E>) qk_dot_rows<NR, E, false>(q, d, kr, nc, st, rpad, r0, pr);
  }

  template <class E>
  static void qk_dot_t(const float* q, int rows, int d, const E* const* kr, int nc, float* st, int rpad,
                       const E* const* pr = nullptr) {
    // idle lanes of Sᵀ: zero (their rows do not exist; the driver's rpad here is the rows rounded
    // up to a power of two, so at most a few per key)
    for (int c = 0; c < nc; ++c)
      for (int p = rows; p < rpad; ++p) st[size_t(c) * rpad + p] = 0.0f;
    alignas(64) float ks[is_block_v<E> ? kMaxStoredKeys * kMaxBlocks + W : 1];
    if constexpr (is_block_v<E>) block_scales(kr, nc, d / kQuantBlock, ks);
    int r = 0;  // rows in groups of 4, 2, 1; the first group prefetches
    if constexpr (W >= 4)
      for (; r + 4 <= rows; r += 4, pr = nullptr) qk_group<4, E>(q, d, kr, ks, nc, st, rpad, r, pr);
    if constexpr (W >= 2)
      for (; r + 2 <= rows; r += 2, pr = nullptr) qk_group<2, E>(q, d, kr, ks, nc, st, rpad, r, pr);
    for (; r < rows; ++r, pr = nullptr) qk_group<1, E>(q, d, kr, ks, nc, st, rpad, r, pr);
  }

  static void qk_dot(const float* q, int rows, int d, const float* const* kr, int nc, float* st, int rpad) {
    qk_dot_t<float>(q, rows, d, kr, nc, st, rpad);
  }
  template <class E>
  static const E* const* rows_as(const void* const* r) { return reinterpret_cast<const E* const*>(r); }

  static void qk_dot_stored(const float* q, int rows, int d, const void* const* kr, longattn_dtype kt, int nc,
                            float* st, int rpad, const void* const* pr) {
    switch (kt) {
      case LONGATTN_DTYPE_F16: return qk_dot_t(q, rows, d, rows_as<F16>(kr), nc, st, rpad, rows_as<F16>(pr));
      case LONGATTN_DTYPE_BF16: return qk_dot_t(q, rows, d, rows_as<BF16>(kr), nc, st, rpad, rows_as<BF16>(pr));
      case LONGATTN_DTYPE_Q8_0: return qk_dot_t(q, rows, d, rows_as<Q8_0Block>(kr), nc, st, rpad, rows_as<Q8_0Block>(pr));
      case LONGATTN_DTYPE_Q4_0: return qk_dot_t(q, rows, d, rows_as<Q4_0Block>(kr), nc, st, rpad, rows_as<Q4_0Block>(pr));
      default: return qk_dot_t(q, rows, d, rows_as<float>(kr), nc, st, rpad, rows_as<float>(pr));
    }
  }

  static void softcap(float* st, int64_t n, float cap, float cap_log2) {
    const float inv = 1.0f / cap;
    int64_t i = 0;
    for (; i + W <= n; i += W)
      Ops::store(st + i, Ops::mul(Ops::tanh(Ops::mul(Ops::load(st + i), Ops::set1(inv))),
                                  Ops::set1(cap_log2)));
    for (; i < n; ++i) st[i] = cap_log2 * std::tanh(st[i] * inv);
  }

  static void softmax(float* st, int nc, int rpad, float* m, float* l, float* alpha) {
    if (rpad < W) return softmax_narrow(st, nc, rpad, m, l, alpha);
    for (int r = 0; r < rpad; r += W) {
      V mx = Ops::load(m + r);
      for (int c = 0; c < nc; ++c) mx = Ops::max(mx, Ops::load(st + size_t(c) * rpad + r));
      // ref = m_new, or 0 where m_new = −inf (a row with nothing allowed yet) so that
      // exp2(−inf − ref) = 0 instead of NaN.
      const V ref = Ops::select_neginf(mx, Ops::zero());
      const V a = Ops::exp2(Ops::sub(Ops::load(m + r), ref));
      V sum = Ops::zero();
      for (int c = 0; c < nc; ++c) {
        float* s = st + size_t(c) * rpad + r;
        const V p = Ops::exp2(Ops::sub(Ops::load(s), ref));
        Ops::store(s, p);
        sum = Ops::add(sum, p);
      }
      Ops::store(l + r, Ops::fma(Ops::load(l + r), a, sum));
      Ops::store(alpha + r, a);
      Ops::store(m + r, mx);
    }
  }

  // The softmax when rpad is a power of two below W (few rows: the dot kernels' Sᵀ): W / rpad keys
  // share a vector, lane j holding row j % rpad. The running max and sum are taken over whole
  // vectors, then folded over the lanes of each row; lanes past the tile's last key count as −inf.
  static void softmax_narrow(float* st, int nc, int rpad, float* m, float* l, float* alpha) {
    const int n = nc * rpad, nfull = n / W * W;
    alignas(64) float pat[W], tail[W];
    for (int j = 0; j < W; ++j) pat[j] = m[j & (rpad - 1)];
    for (int j = 0; j < W; ++j) tail[j] = nfull + j < n ? st[nfull + j] : kNegInf;
    const V m_old = Ops::load(pat);
    V mx = Ops::max(m_old, Ops::load(tail));
    for (int i = 0; i < nfull; i += W) mx = Ops::max(mx, Ops::load(st + i));
    Ops::store(pat, mx);
    for (int j = rpad; j < W; ++j) pat[j & (rpad - 1)] = std::max(pat[j & (rpad - 1)], pat[j]);
    for (int j = rpad; j < W; ++j) pat[j] = pat[j & (rpad - 1)];
    const V m_new = Ops::load(pat);
    const V ref = Ops::select_neginf(m_new, Ops::zero());  // as in softmax: 0 where m_new = −inf
    const V a = Ops::exp2(Ops::sub(m_old, ref));
    V sum = Ops::zero();
    for (int i = 0; i < nfull; i += W) {
      const V p = Ops::exp2(Ops::sub(Ops::load(st + i), ref));
      Ops::store(st + i, p);
      sum = Ops::add(sum, p);
    }
    if (n > nfull) {
      const V p = Ops::exp2(Ops::sub(Ops::load(tail), ref));  // 0 past the last key
      Ops::store(tail, p);
      sum = Ops::add(sum, p);
      for (int j = 0; nfull + j < n; ++j) st[nfull + j] = tail[j];
    }
    alignas(64) float sums[W], av[W];
    Ops::store(sums, sum);
    Ops::store(av, a);
    for (int r = 0; r < rpad; ++r) {
      float s = 0.0f;
      for (int j = r; j < W; j += rpad) s += sums[j];
      l[r] = l[r] * av[r] + s;
      alpha[r] = av[r];
      m[r] = pat[r];
    }
  }

  // O block: NR rows × NV column-vectors starting at column j0.
  // (vs, nb: for block rows, the scale table [c·nb + block] of the tile, as for qk_dot_blocks)
  template <int NR, int NV, class E>
  static void pv_block(const float* st, int nc, int rpad, int r0, const E* const* vr, int dvpad,
                       int j0, const float* alpha, float* o, const E* const* pr = nullptr, const float* vs = nullptr,
                       int nb = 0) {
    V acc[NR][NV];
    for (int r = 0; r < NR; ++r) {
      const V a = Ops::set1(alpha[r0 + r]);
      for (int v = 0; v < NV; ++v)
        acc[r][v] = Ops::mul(Ops::load(o + size_t(r0 + r) * dvpad + j0 + v * W), a);
    }
    for (int c = 0; c < nc; ++c) {
      if constexpr (!std::is_same_v<E, float>)  // rows read as stored: prefetch the next tile's
        if (pr) prefetch_cols<E, NV * W>(pr[c], j0);
      V vv[NV];
      if constexpr (is_block_v<E>) {
        for (int v = 0; v < NV; ++v) {
          const int j = j0 + v * W;
          vv[v] = Ops::mul(Ops::block_ints(vr[c][j / kQuantBlock], j % kQuantBlock),
                           Ops::set1(vs[size_t(c) * nb + j / kQuantBlock]));
        }
      } else {
        for (int v = 0; v < NV; ++v) vv[v] = load_row(vr[c], j0 + v * W);
      }
      const float* p = st + size_t(c) * rpad + r0;
      for (int r = 0; r < NR; ++r) {
        const V pb = Ops::set1(p[r]);
        for (int v = 0; v < NV; ++v) acc[r][v] = Ops::fma(pb, vv[v], acc[r][v]);
      }
    }
    for (int r = 0; r < NR; ++r)
      for (int v = 0; v < NV; ++v) Ops::store(o + size_t(r0 + r) * dvpad + j0 + v * W, acc[r][v]);
  }

  // (pr: rows to prefetch, pr[c] while reading V row c; each column block prefetches its columns,
  // so that the first pass over the rows brings in the whole of the rows pr)
  template <int NR, class E>
  static void pv_rows(const float* st, int nc, int rpad, int r0, const E* const* vr, int dvpad,
                      const float* alpha, float* o, const E* const* pr = nullptr, const float* vs = nullptr,
                      int nb = 0) {
    const int nvec = dvpad / W;
    int v = 0;
    for (; v + kPvVecs <= nvec; v += kPvVecs)
      pv_block<NR, kPvVecs, E>(st, nc, rpad, r0, vr, dvpad, v * W, alpha, o, pr, vs, nb);
    for (; v < nvec; ++v) pv_block<NR, 1, E>(st, nc, rpad, r0, vr, dvpad, v * W, alpha, o, pr, vs, nb);
  }

  template <class E>
  static void pv_t(const float* st, int nc, int rpad, int rows, const E* const* vr, int dvpad,
                   const float* alpha, float* o, const E* const* pr = nullptr) {
    const float* vs = nullptr;
    int nb = 0;
    alignas(64) float scales[is_block_v<E> ? kMaxStoredKeys * kMaxBlocks + W : 1];
    if constexpr (is_block_v<E>) {  // dvpad = head_dim_v here: whole blocks
      nb = dvpad / kQuantBlock;
      block_scales(vr, nc, nb, scales);
      vs = scales;
    }
    int r = 0;
    for (; r + kPvRows <= rows; r += kPvRows, pr = nullptr) pv_rows<kPvRows, E>(st, nc, rpad, r, vr, dvpad, alpha, o, pr, vs, nb);
    for (; r + 4 <= rows; r += 4, pr = nullptr) pv_rows<4, E>(st, nc, rpad, r, vr, dvpad, alpha, o, pr, vs, nb);
    for (; r + 2 <= rows; r += 2, pr = nullptr) pv_rows<2, E>(st, nc, rpad, r, vr, dvpad, alpha, o, pr, vs, nb);
    for (; r < rows; ++r, pr = nullptr) pv_rows<1, E>(st, nc, rpad, r, vr, dvpad, alpha, o, pr, vs, nb);
  }
  static void pv(const float* st, int nc, int rpad, int rows, const float* const* vr, int dvpad,
                 const float* alpha, float* o) {
    pv_t<float>(st, nc, rpad, rows, vr, dvpad, alpha, o);
  }
  static void pv_stored(const float* st, int nc, int rpad, int rows, const void* const* vr, longattn_dtype vt,
                        int dv, const float* alpha, float* o, const void* const* pr) {
    switch (vt) {
      case LONGATTN_DTYPE_F16: return pv_t(st, nc, rpad, rows, rows_as<F16>(vr), dv, alpha, o, rows_as<F16>(pr));
      case LONGATTN_DTYPE_BF16: return pv_t(st, nc, rpad, rows, rows_as<BF16>(vr), dv, alpha, o, rows_as<BF16>(pr));
      case LONGATTN_DTYPE_Q8_0: return pv_t(st, nc, rpad, rows, rows_as<Q8_0Block>(vr), dv, alpha, o, rows_as<Q8_0Block>(pr));
      case LONGATTN_DTYPE_Q4_0: return pv_t(st, nc, rpad, rows, rows_as<Q4_0Block>(vr), dv, alpha, o, rows_as<Q4_0Block>(pr));
      default: return pv_t(st, nc, rpad, rows, rows_as<float>(vr), dv, alpha, o, rows_as<float>(pr));
    }
  }
};

// Scalar conversion with element stride; the ISA files vectorise the unit-stride case.
inline void to_f32_scalar(const void* src, longattn_dtype dtype, int64_t n, int64_t stride,
                          float* dst) {
  switch (dtype) {
    case LONGATTN_DTYPE_Q8_0:
    case LONGATTN_DTYPE_Q4_0: dequant_row(src, dtype, n, stride, dst); break;
    case LONGATTN_DTYPE_F16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_float(s[i * stride]);
      break;
    }
    case LONGATTN_DTYPE_BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(s[i * stride]);
      break;
    }
    default: {
      const float* s = static_cast<const float*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = s[i * stride];
      break;
    }
  }
}

template <class Ops>
const CpuKernels& make_table(const char* isa,
                             void (*to_f32)(const void*, longattn_dtype, int64_t, int64_t, float*)) {
  static const CpuKernels table = {isa,
                                   Ops::W,
                                   to_f32,
                                   &Kernels<Ops>::qk,
                                   &Kernels<Ops>::qk_dot,
                                   &Kernels<Ops>::qk_dot_stored,
                                   &Kernels<Ops>::softcap,
                                   &Kernels<Ops>::softmax,
                                   &Kernels<Ops>::pv,
                                   &Kernels<Ops>::pv_stored,
                                   nullptr,   // qk_bf16: AVX512-BF16 only
                                   nullptr};  // pv_bf16
  return table;
}

}  // namespace longattn::cpu
