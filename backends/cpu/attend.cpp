// CPU `attend`: tiled online-softmax attention (FlashAttention-2 order) over the micro-kernels.
//
// Work item = (batch b, KV head hk, query tile): the rows of ALL query heads of the KV group for a
// tile of query rows, so every key tile loaded serves group × tile rows (GQA reuse). For each key
// tile the driver gathers/converts K and V rows to fp32 (or points at f32 rows in place), then
//   Sᵀ = K·Qᵀ (log2 units) → mask/log-weights → online softmax → O = α·O + P·V.
// Key tiles are visited only where the mask can allow something (band + global ranges when
// positions are affine; tile classification skip/full/partial otherwise), so the band costs
// O(n·(w+g)). When there are too few items to feed every thread (decode), each item's key range is
// split and the partial (m, l, O) states are merged afterwards (flash-decoding).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#if LONGATTN_HAVE_OPENMP
#include <omp.h>
#endif

#include "attend.hpp"
#include "half.hpp"
#include "quant.hpp"

namespace longattn::cpu {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr int kKeyTile = 128;         // most keys per tile (Bc); scratch is sized for it
static_assert(kKeyTile <= kMaxStoredKeys, "a tile is one call of the stored-row kernels");
constexpr int kPackedKeyTile = 64;    // most keys per tile when K/V rows are packed as fp32
constexpr int kMaxRowsPerItem = 128;  // most query rows per work item, all heads of a group
constexpr int kMinRowsPerItem = 16;
constexpr int kMaxHeadsPerUnit = 8;
constexpr int64_t kTargetUnits = 64;  // work units a call is cut into at least, when keys allow
constexpr int64_t kPrefetchRows = 48;  // tokens ahead to prefetch K/V rows (decode: 48 measured ~5 % faster than 16, 32, 64 or 128)
constexpr int64_t kCacheLine = 64;  // bytes per prefetch
constexpr int64_t kAliasingRowStride = 2048;  // f32 rows this many bytes apart (or a multiple) are packed
constexpr float kNegInfF = -std::numeric_limits<float>::infinity();

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
int pow2_at_least(int x) {
  int p = 1;
  while (p < x) p *= 2;
  return p;
}

struct KeyRange {
  int64_t begin, end;  // logical key indices [begin, end)
};

// Everything about one call that does not depend on the work item.
struct Plan {
  explicit Plan(AttendPool& pool)
      : seg_q(pool.seg_q), seg_k(pool.seg_k), tile_seg(pool.tile_seg), tile_q0(pool.tile_q0), tile_q1(pool.tile_q1) {}
  std::vector<int64_t>& seg_q;  // n_seg + 1 offsets (storage in the AttendPool)
  std::vector<int64_t>& seg_k;
  std::vector<int64_t>& tile_seg;  // query tiles of all segments
  std::vector<int64_t>& tile_q0;
  std::vector<int64_t>& tile_q1;
  const AttendArgs* a;
  const CpuKernels* K;
  int group;             // query heads per KV head
  int64_t rows_per_tile; // query rows per head in one item
  int dvpad;             // head_dim_v rounded up to the vector width
  bool affine_k;         // key positions are k_pos0 + logical index (no gather, no explicit pos)
  bool k_direct;         // K rows can be read in place as fp32
  bool v_direct;         // V rows can be read in place as fp32 (dv a multiple of the width)
  int64_t q_elem_stride, k_elem_stride, v_elem_stride;  // head-dim strides in elements
  int heads_per_unit;    // KV heads one work unit streams together
  int key_tile;          // keys per tile (<= kKeyTile)
  bool dot_mode;         // few rows per item: QK with lanes over the head dimension (qk_dot)
  bool k_stored, v_stored;  // dot mode reads K / V rows as stored (f16, bf16, Q8_0, Q4_0), converting in registers
  bool qk_bf16;          // Sᵀ by bf16 dot products from Q as bf16 pairs (qp) and bf16 K rows read in place
  bool pv_bf16;          // O += P·V by bf16 dot products (P rounded to bf16), bf16 V rows read in place
  int64_t k_row_bytes, v_row_bytes;  // bytes of one K / V row (head dim), for prefetching
  bool k_next, v_next;  // the kernels, reading rows in place, prefetch the next tile's rows (ungathered keys)
  float q_scale;         // scale applied while packing Q
  int64_t n_seg;
  int64_t n_splits;
};

int64_t q_phys(const AttendArgs& a, int64_t b, int64_t h, int64_t i) {
  return a.q_rows ? a.q_rows[(b * a.n_q_heads + h) * a.n_q + i] : i;
}
// Where logical key j of (batch b, KV head hk) finds its gather, log-weight and group: entry i
// of the own keys' arrays, or of the shared tail's (AttendArgs::n_tail_keys).
struct KeyArrays {
  const int32_t* rows;
  const float* logw;
  const int32_t* group;
  int64_t i;
};
KeyArrays key_arrays(const AttendArgs& a, int64_t b, int64_t hk, int64_t j) {
  const int64_t tail = shared_tail_keys(a), own = a.n_k - tail;
  if (j < own) return {a.k_rows, a.key_logw, a.k_group, (b * a.n_kv_heads + hk) * own + j};
  return {a.tail_k_rows, a.tail_key_logw, a.tail_k_group, (b * a.n_kv_heads + hk) * tail + (j - own)};
}
int64_t k_phys(const AttendArgs& a, int64_t b, int64_t hk, int64_t j) {
  const KeyArrays f = key_arrays(a, b, hk, j);
  return f.rows ? f.rows[f.i] : j;
}
int64_t q_position(const AttendArgs& a, int64_t phys) { return a.q_pos ? a.q_pos[phys] : a.q_pos0 + phys; }
int64_t k_position(const AttendArgs& a, int64_t phys) { return a.k_pos ? a.k_pos[phys] : a.k_pos0 + phys; }

// At most three key ranges: the global prefix, the band and the segments' shared tail.
struct KeyRanges {
  KeyRange r[3];
  int n = 0;
  void push(KeyRange x) { r[n++] = x; }
};

// Key ranges (logical) worth visiting for query positions [q_lo, q_hi] within [kb, ke), when key
// positions are affine. Band ∩ causal, plus the global keys, sorted and disjoint.
KeyRanges key_ranges(const AttendArgs& a, int64_t q_lo, int64_t q_hi, int64_t kb, int64_t ke) {
  const Mask& m = a.mask;
  const int64_t p0 = a.k_pos0;
  auto clip = [&](int64_t lo, int64_t hi) {  // positions [lo, hi] → logical [begin, end)
    return KeyRange{std::max(kb, lo - p0), std::min(ke, hi - p0 + 1)};
  };
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min() / 4;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max() / 4;
  const int64_t causal_hi = m.causal ? q_hi : kMax;
  KeyRanges out;
  const bool global_row = q_lo < m.n_global;
  int64_t lo = kMin, hi = causal_hi;
  if (!global_row) {
    if (m.window_left >= 0) lo = q_lo - m.window_left;
    if (m.window_right >= 0) hi = std::min(hi, q_hi + m.window_right);
  }
  KeyRange band = clip(lo, hi);
  KeyRange glob = clip(kMin, std::min(m.n_global - 1, causal_hi));
  if (glob.begin < glob.end) out.push(glob);
  if (band.begin < band.end) {
    if (out.n == 1 && band.begin <= out.r[0].end) {
      out.r[0].begin = std::min(out.r[0].begin, band.begin);
      out.r[0].end = std::max(out.r[0].end, band.end);
    } else {
      out.push(band);
    }
  }
  return out;
}

// Tile sizes from the caches (read at run time by the backend):
// keys per tile: the fp32 K tile (Bc × d) fits in L1, 16 ≤ Bc ≤ 64 (kKeyTile only for rows read in place);
// rows per item: what stays hot in L2 across the key loop — Qᵀ twice (d × R each), O (R × dvpad),
// Sᵀ and the mask tile (2 × Bc × R) and the K/V tiles (Bc × (d + dvpad)) — fits in half of L2.
int key_tile_for(int d, size_t l1_bytes) {
  const int64_t fit = int64_t(l1_bytes / (sizeof(float) * size_t(d))) / 16 * 16;
  return int(std::clamp<int64_t>(fit, 16, kPackedKeyTile));
}

int rows_per_item_for(int d, int dvpad, int bc, size_t l2_bytes) {
  const int64_t budget = int64_t(l2_bytes / 2 / sizeof(float)) - int64_t(bc) * (d + dvpad);
  const int64_t per_row = 2 * d + dvpad + 2 * bc;
  const int64_t rows = budget / per_row / 16 * 16;
  return int(std::clamp<int64_t>(rows, kMinRowsPerItem, kMaxRowsPerItem));
}

// Per-thread scratch, carved from one float buffer.
struct Scratch {
  float *qt, *qr, *st, *mt, *o, *m, *l, *alpha, *kbuf, *vbuf;
  uint32_t *qp, *pp, *vp;  // bf16 pairs (Plan::qk_bf16 / pv_bf16 only): Q [d/2][rpad], P [Bc/2][rpad], V [Bc/2][dvpad]
  float* slope_log2;  // ALiBi slope of each lane's head, times log2e
  const float** krows;
  const float** vrows;
  const void** kpf;  // rows the kernels prefetch while reading krows / vrows (the next tile's)
  const void** vpf;
  int64_t* qpos;
  int64_t* kpos;
  int64_t* kphys;
  int32_t* qgrp;
  int64_t* qrow_phys;
};

// Words of the bf16 pair buffers (qp, pp, vp), when a call uses them.
size_t pair_words(int d, int dvpad, int64_t rpad) {
  return size_t(d / 2) * rpad + size_t(kKeyTile / 2) * (size_t(rpad) + size_t(dvpad)) + 3 * 16;
}

// (a multiple of 16 floats, so that consecutive scratch blocks stay 64-byte aligned)
size_t scratch_floats(int d, int dvpad, int64_t rpad, bool pairs) {
  // qt d·rpad, st Bc·rpad, o rpad·dvpad, m/l/alpha 3·rpad, kbuf Bc·d, vbuf Bc·dvpad,
  // krows/vrows/kpf/vpf 4·Bc pointers, qpos/kpos/qrow rpad+Bc+rpad int64, qgrp rpad int32 (as floats ×2)
  return round_up(int64_t(2 * size_t(d) * rpad + 2 * size_t(kKeyTile) * rpad + size_t(rpad) * dvpad + 3 * size_t(rpad) +
         size_t(kKeyTile) * (d + dvpad) + 4 * 2 * kKeyTile + 2 * (2 * rpad + 2 * kKeyTile) + 2 * rpad + 19 * 16 +
         (pairs ? pair_words(d, dvpad, rpad) : 0)), 16);
}

Scratch carve(float* base, int d, int dvpad, int64_t rpad, bool pairs) {
  Scratch s;
  float* p = base;
  auto take = [&](size_t n) { float* r = p; p += (n + 15) & ~size_t(15); return r; };  // 64-byte steps
  s.qt = take(size_t(d) * rpad);
  s.qr = take(size_t(d) * rpad);
  s.st = take(size_t(kKeyTile) * rpad);
  s.mt = take(size_t(kKeyTile) * rpad);
  s.o = take(size_t(rpad) * dvpad);
  s.m = take(rpad);
  s.l = take(rpad);
  s.alpha = take(rpad);
  s.slope_log2 = take(rpad);
  s.kbuf = take(size_t(kKeyTile) * d);
  s.vbuf = take(size_t(kKeyTile) * dvpad);
  s.krows = reinterpret_cast<const float**>(take(2 * kKeyTile));
  s.vrows = reinterpret_cast<const float**>(take(2 * kKeyTile));
  s.kpf = reinterpret_cast<const void**>(take(2 * kKeyTile));
  s.vpf = reinterpret_cast<const void**>(take(2 * kKeyTile));
  s.qpos = reinterpret_cast<int64_t*>(take(2 * rpad));
  s.kpos = reinterpret_cast<int64_t*>(take(2 * kKeyTile));
  s.kphys = reinterpret_cast<int64_t*>(take(2 * kKeyTile));
  s.qrow_phys = reinterpret_cast<int64_t*>(take(2 * rpad));
  s.qgrp = reinterpret_cast<int32_t*>(take(rpad));
  s.qp = s.pp = s.vp = nullptr;
  if (pairs) {
    s.qp = reinterpret_cast<uint32_t*>(take(size_t(d / 2) * rpad));
    s.pp = reinterpret_cast<uint32_t*>(take(size_t(kKeyTile / 2) * rpad));
    s.vp = reinterpret_cast<uint32_t*>(take(size_t(kKeyTile / 2) * dvpad));
  }
  return s;
}

// Identifies a work unit: query tile × a group of KV heads × one split of the key tiles.
struct Unit {
  int64_t b, hk0, hk1, tile, split;
};

// One KV head's share of a unit: its packed queries, running state and key ranges.
struct HeadWork {
  Scratch s;
  int64_t hk = 0;
  int rows = 0, rpad = 0, tile_rows = 0;
  int64_t q_lo = 0, q_hi = 0;
};

// Packs Qᵀ (lane r = g·tile_rows + i) with positions and groups, and loads or resets the state.
void head_begin(const Plan& P, const Unit& u, HeadWork& w, const RunningState* init) {
  const AttendArgs& a = *P.a;
  const CpuKernels& K = *P.K;
  Scratch& s = w.s;
  const int d = a.head_dim, dv = a.head_dim_v, dvpad = P.dvpad;
  const int64_t q0 = P.tile_q0[size_t(u.tile)], q1 = P.tile_q1[size_t(u.tile)];
  w.tile_rows = int(q1 - q0);
  w.rows = P.group * w.tile_rows;
  // lanes of Sᵀ per key: the rows rounded up to the vector width, or in dot mode (rows <= W / 2)
  // to a power of two, so that W / rpad keys share a vector of the softmax
  w.rpad = P.dot_mode ? pow2_at_least(w.rows) : int(round_up(w.rows, K.width));
  const int rpad = w.rpad;
  w.q_lo = std::numeric_limits<int64_t>::max();
  w.q_hi = std::numeric_limits<int64_t>::min();
  if (P.qk_bf16)
    std::fill(s.qp, s.qp + size_t(d / 2) * rpad, 0u);
  else if (!P.dot_mode)  // (the dot kernels read Q row-major, from qr)
    std::fill(s.qt, s.qt + size_t(d) * rpad, 0.0f);
  for (int g = 0; g < P.group; ++g) {
    const int64_t h = w.hk * P.group + g;
    for (int i = 0; i < w.tile_rows; ++i) {
      const int r = g * w.tile_rows + i;
      const int64_t phys = q_phys(a, u.b, h, q0 + i);
      s.qrow_phys[r] = phys;
      const int64_t qp = q_position(a, phys);
      s.qpos[r] = qp;
      w.q_lo = std::min(w.q_lo, qp);
      w.q_hi = std::max(w.q_hi, qp);
      if (a.q_group) s.qgrp[r] = a.q_group[(u.b * a.n_q_heads + h) * a.n_q + q0 + i];
      if (a.alibi_slopes) w.s.slope_log2[r] = a.alibi_slopes[h] * kLog2e;
      if (P.qk_bf16) {  // the bf16 values as they are, in pairs along d (the kernel applies q_scale to Sᵀ)
        const char* qrow = a.q.at<char>(u.b, phys, h);
        const int64_t qs = a.q.strides[3];
        for (int i = 0; i < d / 2; ++i) {
          uint16_t lo, hi;
          std::memcpy(&lo, qrow + 2 * i * qs, sizeof(lo));
          std::memcpy(&hi, qrow + (2 * i + 1) * qs, sizeof(hi));
          s.qp[size_t(i) * rpad + r] = uint32_t(lo) | uint32_t(hi) << 16;
        }
        continue;
      }
      // one row of q → fp32 in kbuf (free until the key loop), then into qr (dot mode) or qt
      K.to_f32(a.q.at<char>(u.b, phys, h), a.q.dtype, d, P.q_elem_stride, s.kbuf);
      if (P.dot_mode)
        for (int k = 0; k < d; ++k) s.qr[size_t(r) * d + k] = s.kbuf[k] * P.q_scale;
      else
        for (int k = 0; k < d; ++k) s.qt[size_t(k) * rpad + r] = s.kbuf[k] * P.q_scale;
    }
  }
  if (init) {
    for (int r = 0; r < w.rows; ++r) {
      const int64_t h = w.hk * P.group + r / w.tile_rows;
      const size_t idx = size_t((u.b * a.n_q_heads + h) * a.n_q + s.qrow_phys[r]);
      s.m[r] = init->m[idx];
      s.l[r] = init->l[idx];
      std::memcpy(s.o + size_t(r) * dvpad, init->acc + idx * size_t(dv), sizeof(float) * size_t(dv));
      std::fill(s.o + size_t(r) * dvpad + dv, s.o + size_t(r + 1) * dvpad, 0.0f);
    }
  } else {
    std::fill(s.m, s.m + rpad, kNegInfF);
    std::fill(s.l, s.l + rpad, 0.0f);
    std::fill(s.o, s.o + size_t(rpad) * dvpad, 0.0f);
  }
  for (int r = w.rows; r < rpad; ++r) s.m[r] = kNegInfF, s.l[r] = 0.0f;
}

// Positions of key tile [j0, j0 + nc) for one head (physical rows into s.kphys, positions into
// s.kpos) and the tile's class against the head's query positions.
TileKind tile_positions(const Plan& P, const Unit& u, HeadWork& w, int64_t j0, int nc) {
  const AttendArgs& a = *P.a;
  Scratch& s = w.s;
  int64_t k_lo = std::numeric_limits<int64_t>::max(), k_hi = std::numeric_limits<int64_t>::min();
  for (int c = 0; c < nc; ++c) {
    const int64_t phys = k_phys(a, u.b, w.hk, j0 + c);
    s.kphys[c] = phys;
    s.kpos[c] = k_position(a, phys);
    k_lo = std::min(k_lo, s.kpos[c]);
    k_hi = std::max(k_hi, s.kpos[c]);
  }
  return classify_tile(a.mask, w.q_lo, w.q_hi, k_lo, k_hi);
}

// Row c of the tile for one head: K and V as fp32 (in place for f32 rows, else converted).
void pack_row(const Plan& P, const Unit& u, HeadWork& w, int c) {
  const AttendArgs& a = *P.a;
  const CpuKernels& K = *P.K;
  Scratch& s = w.s;
  const int d = a.head_dim, dv = a.head_dim_v, dvpad = P.dvpad;
  const char* krow = a.k.at<char>(u.b, s.kphys[c], w.hk);
  const char* vrow = a.v.at<char>(u.b, s.kphys[c], w.hk);
  // streaming through a long cache (decode): ask for every line of the rows kPrefetchRows tokens
  // ahead (the kernels do it themselves for rows they read in place)
  if (!P.k_next)
    for (int64_t off = 0; off < P.k_row_bytes; off += kCacheLine) __builtin_prefetch(krow + kPrefetchRows * a.k.strides[1] + off);
  if (!P.v_next)
    for (int64_t off = 0; off < P.v_row_bytes; off += kCacheLine) __builtin_prefetch(vrow + kPrefetchRows * a.v.strides[1] + off);
  if (P.k_direct || P.k_stored || P.qk_bf16) {  // f32 rows, or rows the kernels read as stored
    s.krows[c] = reinterpret_cast<const float*>(krow);
  } else {
    K.to_f32(krow, a.k.dtype, d, P.k_elem_stride, s.kbuf + size_t(c) * d);
    s.krows[c] = s.kbuf + size_t(c) * d;
  }
  if (P.v_direct || P.v_stored || P.pv_bf16) {
    s.vrows[c] = reinterpret_cast<const float*>(vrow);
  } else {
    float* dst = s.vbuf + size_t(c) * dvpad;
    K.to_f32(vrow, a.v.dtype, dv, P.v_elem_stride, dst);
    std::fill(dst + dv, dst + dvpad, 0.0f);
    s.vrows[c] = dst;
  }
}

// Fills s.mt[c][r] with the additive mask of the tile in log2 units (times the ALiBi slope when
// there is one). Returns false when every (row, key) pair of the tile is masked (−inf).
bool mask_tile(const Plan& P, const Unit& u, HeadWork& w, int nc) {
  const AttendArgs& a = *P.a;
  const View& mk = a.add_mask;
  Scratch& s = w.s;
  const int64_t mb = mk.shape[0] == 1 ? 0 : u.b;
  bool any = false;
  for (int r = 0; r < w.rows; ++r) {
    const int64_t h = w.hk * P.group + r / w.tile_rows;
    const char* row = mk.at<char>(mb, s.qrow_phys[r], mk.shape[2] == 1 ? 0 : h);
    const float mul = a.alibi_slopes ? w.s.slope_log2[r] : kLog2e;
    for (int c = 0; c < nc; ++c) {
      const float v = load_as_float(row + s.kphys[c] * mk.strides[3], mk.dtype);
      any |= v != kNegInfF;
      s.mt[size_t(c) * w.rpad + r] = v == kNegInfF ? kNegInfF : v * mul;
    }
  }
  for (int c = 0; c < nc; ++c)
    for (int r = w.rows; r < w.rpad; ++r) s.mt[size_t(c) * w.rpad + r] = 0.0f;
  return any;
}

// Folds a positioned and packed key tile into one head's state: Sᵀ = K·Qᵀ, softcap, log-weights,
// mask, online softmax, O = α·O + P·V.
void head_tile(const Plan& P, const Unit& u, HeadWork& w, int64_t j0, int nc, TileKind kind) {
  const AttendArgs& a = *P.a;
  const CpuKernels& K = *P.K;
  Scratch& s = w.s;
  const int d = a.head_dim, dvpad = P.dvpad, rpad = w.rpad, rows = w.rows;
  if (a.add_mask.data && !mask_tile(P, u, w, nc)) return;  // every pair masked: skip the tile
  if (P.qk_bf16)  // bf16 Q and K: pairs of products per instruction, K as stored
    K.qk_bf16(s.qp, rpad, d, reinterpret_cast<const uint16_t* const*>(s.krows), nc, P.q_scale, s.st);
  else if (P.k_stored)  // few rows, K as stored: lanes over the head dimension, conversion in registers
    K.qk_dot_stored(s.qr, rows, d, reinterpret_cast<const void* const*>(s.krows), a.k.dtype, nc, s.st, rpad,
                    P.k_next ? s.kpf : nullptr);
  else if (P.dot_mode)  // few rows: lanes over the head dimension
    K.qk_dot(s.qr, rows, d, s.krows, nc, s.st, rpad);
  else
    K.qk(s.qt, rpad, d, s.krows, nc, s.st);
  if (a.softcap > 0) K.softcap(s.st, int64_t(nc) * rpad, a.softcap, a.softcap * kLog2e);
  // a tile lies within the own keys or within the tail: one set of arrays for all of it
  const KeyArrays facts = key_arrays(a, u.b, w.hk, j0);
  if (facts.logw) {
    const float* lw = facts.logw + facts.i;
    for (int c = 0; c < nc; ++c) {
      const float add = lw[c] * kLog2e;
      float* row = s.st + size_t(c) * rpad;
      for (int r = 0; r < rpad; ++r) row[r] += add;
    }
  }
  if (a.add_mask.data) {
    for (size_t e = 0; e < size_t(nc) * size_t(rpad); ++e) s.st[e] += s.mt[e];
  } else if (a.alibi_slopes) {  // −m_h·|qp − kp| in log2 units
    for (int c = 0; c < nc; ++c) {
      float* row = s.st + size_t(c) * rpad;
      for (int r = 0; r < rows; ++r) {
        const int64_t dist = s.qpos[r] > s.kpos[c] ? s.qpos[r] - s.kpos[c] : s.kpos[c] - s.qpos[r];
        row[r] -= w.s.slope_log2[r] * float(dist);
      }
    }
  }
  if (kind == TileKind::partial) {
    for (int c = 0; c < nc; ++c) {
      float* row = s.st + size_t(c) * rpad;
      for (int r = 0; r < rows; ++r)
        if (!a.mask.allows(s.qpos[r], s.kpos[c])) row[r] = kNegInfF;
    }
  }
  if (a.q_group && facts.group) {
    const int32_t* kg = facts.group + facts.i;
    for (int c = 0; c < nc; ++c) {
      float* row = s.st + size_t(c) * rpad;
      for (int r = 0; r < rows; ++r)
        if (s.qgrp[r] >= 0 && s.qgrp[r] == kg[c]) row[r] = kNegInfF;
    }
  }
  K.softmax(s.st, nc, rpad, s.m, s.l, s.alpha);
  if (P.pv_bf16)
    K.pv_bf16(s.st, nc, rpad, rows, reinterpret_cast<const uint16_t* const*>(s.vrows), a.head_dim_v, dvpad, s.alpha,
              s.o, s.pp, s.vp);
  else if (P.v_stored)
    K.pv_stored(s.st, nc, rpad, rows, reinterpret_cast<const void* const*>(s.vrows), a.v.dtype, dvpad, s.alpha, s.o,
           P.v_next ? s.vpf : nullptr);
  else
    K.pv(s.st, nc, rpad, rows, s.vrows, dvpad, s.alpha, s.o);
}

// Key tiles of a unit: kKeyTile chunks of each key range (ranges from the first head; every head
// of a multi-head unit has the same query positions, see Plan::heads_per_unit).
KeyRanges unit_ranges(const Plan& P, const Unit& u, const HeadWork& w) {
  const int64_t seg = P.tile_seg[size_t(u.tile)];
  const int64_t kb = P.seg_k[size_t(seg)], ke = P.seg_k[size_t(seg) + 1];
  KeyRanges r;
  if (P.affine_k) {
    r = key_ranges(*P.a, w.q_lo, w.q_hi, kb, ke);
  } else if (kb < ke) {
    r.push({kb, ke});  // gathered keys: positions known per tile only
  }
  // the keys every segment shares (positions, if any mask needs them, are checked per tile)
  const int64_t tail = shared_tail_keys(*P.a);
  if (tail > 0) r.push({P.a->n_k - tail, P.a->n_k});
  return r;
}

// Rows the kernels read in place, K and V both, prefetching the next tile's: pointers only.
void point_rows(const Plan& P, const Unit& u, HeadWork& w, int nc) {
  const AttendArgs& a = *P.a;
  Scratch& s = w.s;
  for (int c = 0; c < nc; ++c) {
    s.krows[c] = reinterpret_cast<const float*>(a.k.at<char>(u.b, s.kphys[c], w.hk));
    s.vrows[c] = reinterpret_cast<const float*>(a.v.at<char>(u.b, s.kphys[c], w.hk));
  }
}

// The rows the kernels prefetch while they read key tile [j0, j0 + nc): the next tile's, taken in
// (token, head) order and dealt out in the order the heads read theirs — head i's key c gets row
// i·nc + c. The heads read a tile one after the other, each its own row of every token; a KV cache
// stores the heads of a token side by side, so reads in head order are strided, and the memory
// streams them at less than half the rate of reads in address order (scripts/probes/read_order.cpp).
// Prefetching the next tile in address order restores sequential reads; the tile is then read
// from L2.
void next_tile_rows(const Plan& P, const Unit& u, HeadWork* heads, int nh, int64_t j0, int nc) {
  const AttendArgs& a = *P.a;
  for (int i = 0; i < nh; ++i)
    for (int c = 0; c < nc; ++c) {
      const int64_t row = int64_t(i) * nc + c;
      const int64_t j = std::min(j0 + nc + row / nh, a.n_k - 1);
      const int64_t hk = u.hk0 + row % nh;
      if (P.k_next) heads[i].s.kpf[c] = a.k.at<char>(u.b, j, hk);
      if (P.v_next) heads[i].s.vpf[c] = a.v.at<char>(u.b, j, hk);
    }
}

// Runs a unit: every head of the group over this split's key tiles.
void run_unit(const Plan& P, const Unit& u, HeadWork* heads, const RunningState* init) {
  const int nh = int(u.hk1 - u.hk0);
  for (int i = 0; i < nh; ++i) {
    heads[i].hk = u.hk0 + i;
    head_begin(P, u, heads[i], init);
  }
  const KeyRanges ranges = unit_ranges(P, u, heads[0]);
  int64_t n_tiles = 0;
  const int64_t bc = P.key_tile;
  for (int i = 0; i < ranges.n; ++i) n_tiles += (ranges.r[i].end - ranges.r[i].begin + bc - 1) / bc;
  const int64_t t_begin = n_tiles * u.split / P.n_splits, t_end = n_tiles * (u.split + 1) / P.n_splits;
  int64_t t = 0;
  for (int ri = 0; ri < ranges.n; ++ri)
    for (int64_t j0 = ranges.r[ri].begin; j0 < ranges.r[ri].end; j0 += bc, ++t) {
      if (t < t_begin || t >= t_end) continue;
      const int nc = int(std::min<int64_t>(bc, ranges.r[ri].end - j0));
      if (nh == 1) {
        const TileKind kind = tile_positions(P, u, heads[0], j0, nc);
        if (kind == TileKind::skip) continue;
        for (int c = 0; c < nc; ++c) pack_row(P, u, heads[0], c);
        if (P.k_next || P.v_next) next_tile_rows(P, u, heads, 1, j0, nc);
        head_tile(P, u, heads[0], j0, nc, kind);
        continue;
      }
      // Several heads (no gathers): identical positions; pack token by token so the reads walk
      // each token's K/V heads in address order, then compute head by head.
      TileKind kinds[kMaxHeadsPerUnit];
      for (int i = 0; i < nh; ++i) kinds[i] = tile_positions(P, u, heads[i], j0, nc);
      if (P.k_next && P.v_next) {
        for (int i = 0; i < nh; ++i)
          if (kinds[i] != TileKind::skip) point_rows(P, u, heads[i], nc);
      } else {
        for (int c = 0; c < nc; ++c)
          for (int i = 0; i < nh; ++i)
            if (kinds[i] != TileKind::skip) pack_row(P, u, heads[i], c);
      }
      if (P.k_next || P.v_next) next_tile_rows(P, u, heads, nh, j0, nc);
      for (int i = 0; i < nh; ++i)
        if (kinds[i] != TileKind::skip) head_tile(P, u, heads[i], j0, nc, kinds[i]);
    }
}

// Writes a finished head: O = acc / l, LSE = (m + log2 l)·ln 2 (O = 0, LSE = −inf when l = 0),
// or the raw state when the call carries one.
void write_head(const Plan& P, const Unit& u, const HeadWork& w) {
  const AttendArgs& a = *P.a;
  const Scratch& s = w.s;
  const int dv = a.head_dim_v;
  for (int r = 0; r < w.rows; ++r) {
    const int64_t h = w.hk * P.group + r / w.tile_rows;
    const int64_t phys = s.qrow_phys[r];
    const float* orow = s.o + size_t(r) * P.dvpad;
    if (a.state) {
      const size_t idx = size_t((u.b * a.n_q_heads + h) * a.n_q + phys);
      a.state->m[idx] = s.m[r];
      a.state->l[idx] = s.l[r];
      std::memcpy(a.state->acc + idx * size_t(dv), orow, sizeof(float) * size_t(dv));
      continue;
    }
    float m = s.m[r], l = s.l[r], o_scale = 1.0f;
    if (a.sinks && a.sinks[h] != kNegInfF) {  // one more denominator term 2^(sink·log2e − m'), m' = max(m, sink·log2e)
      const float sink = a.sinks[h] * kLog2e;
      const float m2 = std::max(m, sink);
      o_scale = std::exp2(m - m2);
      l = l * o_scale + std::exp2(sink - m2);
      m = m2;
    }
    const bool empty = l == 0.0f;
    const float inv = empty ? 0.0f : o_scale / l;
    char* dst = a.out.at<char>(u.b, phys, h);
    const int64_t ostride = a.out.strides[3];
    if (a.out.dtype == LONGATTN_DTYPE_F32 && ostride == 4) {
      float* f = reinterpret_cast<float*>(dst);
      for (int c = 0; c < dv; ++c) f[c] = empty ? 0.0f : orow[c] * inv;
    } else {
      for (int c = 0; c < dv; ++c) store_from_float(dst + c * ostride, a.out.dtype, empty ? 0.0f : orow[c] * inv);
    }
    if (a.lse.data) *a.lse.at<float>(u.b, phys, h) = empty ? kNegInfF : (m + std::log2(l)) * kLn2;
  }
}

}  // namespace

void attend(const AttendArgs& a, const CpuKernels& K, int n_threads, AttendPool& store) {
  Plan P(store);
  std::vector<float>& pool = store.floats;
  P.a = &a;
  P.K = &K;
  P.group = a.n_q_heads / a.n_kv_heads;
  const int W = K.width;
  P.dvpad = int(round_up(a.head_dim_v, W));
  P.affine_k = a.k_rows == nullptr && a.k_pos == nullptr;
  const int64_t qdt = int64_t(longattn_dtype_size(a.q.dtype));
  const int64_t kdt = int64_t(longattn_dtype_size(a.k.dtype));
  const int64_t vdt = int64_t(longattn_dtype_size(a.v.dtype));
  // head-dim strides in elements; for the block formats, the byte stride between blocks
  P.q_elem_stride = a.q.strides[3] / qdt;
  P.k_elem_stride = is_block_dtype(a.k.dtype) ? a.k.strides[3] : a.k.strides[3] / kdt;
  P.v_elem_stride = is_block_dtype(a.v.dtype) ? a.v.strides[3] : a.v.strides[3] / vdt;
  P.q_scale = a.softcap > 0 ? a.scale : a.scale * kLog2e;

  // segments and query tiles
  if (a.n_segments > 0) {
    P.n_seg = a.n_segments;
    P.seg_q.assign(a.q_seg, a.q_seg + a.n_segments + 1);
    P.seg_k.assign(a.k_seg, a.k_seg + a.n_segments + 1);
  } else {
    P.n_seg = 1;
    P.seg_q.assign({0, a.n_q});
    P.seg_k.assign({0, a.n_k});
  }
  P.key_tile = key_tile_for(a.head_dim, store.l1_bytes);
  P.rows_per_tile = std::max<int64_t>(1, rows_per_item_for(a.head_dim, P.dvpad, P.key_tile, store.l2_bytes) / P.group);
  P.tile_seg.clear();
  P.tile_q0.clear();
  P.tile_q1.clear();
  for (int64_t sgi = 0; sgi < P.n_seg; ++sgi)
    for (int64_t q0 = P.seg_q[size_t(sgi)]; q0 < P.seg_q[size_t(sgi) + 1]; q0 += P.rows_per_tile) {
      P.tile_seg.push_back(sgi);
      P.tile_q0.push_back(q0);
      P.tile_q1.push_back(std::min(q0 + P.rows_per_tile, P.seg_q[size_t(sgi) + 1]));
    }
  const int64_t n_tiles = int64_t(P.tile_q0.size());
  if (n_tiles == 0) return;
  const int64_t max_tile_rows = std::min<int64_t>(P.rows_per_tile, a.n_q);
  auto is16 = [](longattn_dtype t) { return t == LONGATTN_DTYPE_F16 || t == LONGATTN_DTYPE_BF16; };
  P.dot_mode = 2 * P.group * max_tile_rows <= W;
  // f32 rows with unit element stride are read in place, except by the many-row kernels when the
  // rows are 2 KiB or a multiple apart: those read each tile's rows many times, and such rows (f32
  // KV caches with 8 heads of 64–128) start in few L1 sets, so the tile is copied contiguous
  // (n = 4096 causal, 32/8 heads, d = 128: 113 → 126 GFLOP/s; rows 1 KiB or 512 B apart were
  // 2–4 % faster in place).
  auto in_place = [&](const View& t, int64_t elem_bytes) {
    return t.dtype == LONGATTN_DTYPE_F32 && t.strides[3] == elem_bytes &&
           (P.dot_mode || t.strides[1] % kAliasingRowStride != 0);
  };
  P.k_direct = in_place(a.k, kdt);
  P.v_direct = in_place(a.v, vdt) && a.head_dim_v % W == 0;
  P.k_row_bytes = is_block_dtype(a.k.dtype) ? a.head_dim / kQuantBlock * a.k.strides[3] : a.head_dim * a.k.strides[3];
  P.v_row_bytes = is_block_dtype(a.v.dtype) ? a.head_dim_v / kQuantBlock * a.v.strides[3] : a.head_dim_v * a.v.strides[3];
  // rows the kernels can read as stored: 16-bit values or blocks back to back
  auto packed = [&](const View& t) {
    return (is16(t.dtype) && t.strides[3] == 2) || (t.dtype == LONGATTN_DTYPE_Q8_0 && t.strides[3] == kQ8_0BlockBytes) ||
           (t.dtype == LONGATTN_DTYPE_Q4_0 && t.strides[3] == kQ4_0BlockBytes);
  };
  P.k_stored = P.dot_mode && packed(a.k) && a.head_dim % W == 0;
  P.v_stored = P.dot_mode && packed(a.v) && a.head_dim_v % W == 0;
  // rows read in place by the kernels: they prefetch the next tile's (ungathered keys)
  P.k_next = P.k_stored && a.k_rows == nullptr;
  P.v_next = P.v_stored && a.k_rows == nullptr;
  // bf16 dot products (tables that have them) for the many-row kernels. Sᵀ: bf16 Q and K, the
  // products exact in fp32 and summed in fp32, so as accurate as the fp32 kernel on the same
  // values. P·V rounds P to bf16 (relative error up to 2^-8): only when the output is bf16 itself,
  // whose own rounding is as large, and never into a running state.
  const bool bf16_k = a.k.dtype == LONGATTN_DTYPE_BF16 && a.k.strides[3] == 2;
  const bool bf16_v = a.v.dtype == LONGATTN_DTYPE_BF16 && a.v.strides[3] == 2;
  P.qk_bf16 = K.qk_bf16 && !P.dot_mode && a.q.dtype == LONGATTN_DTYPE_BF16 && bf16_k && a.head_dim % 2 == 0;
  P.pv_bf16 = K.pv_bf16 && !P.dot_mode && bf16_v && a.state == nullptr && a.out.dtype == LONGATTN_DTYPE_BF16;

  // Decode-like calls (a few query rows per head) stream every KV head of a key tile together:
  // K/V rows of all heads of a token are adjacent in a KV cache, so one pass reads them in order.
  P.heads_per_unit = 1;
  if (P.group * max_tile_rows <= 2 * W && a.q_rows == nullptr && a.k_rows == nullptr)
    for (int h = kMaxHeadsPerUnit; h > 1; --h)
      if (a.n_kv_heads % h == 0) {
        P.heads_per_unit = h;
        break;
      }
  // Streaming several heads packs heads × Bc rows of K and V as fp32: keep that within half of L2.
  // Rows read as stored (K and V in dot mode) are not packed: longer tiles amortise more, up to
  // what the prefetched next tile leaves of L2.
  if (P.k_stored && P.v_stored) {
    P.key_tile = kKeyTile;
    // The tile being read and the next one, which the kernels prefetch, of every head of the unit
    // within half of L2 (8 heads of f16 rows of 128: 64 keys; 128 took a median 38 ms against 28 for
    // n_k = 131072 on Zen 4, the prefetched rows pushing out the ones not yet read)
    if (P.k_next && P.v_next && P.heads_per_unit > 1) {
      const int64_t per_key = 2 * P.heads_per_unit * (P.k_row_bytes + P.v_row_bytes);
      P.key_tile = int(std::clamp<int64_t>(int64_t(store.l2_bytes / 2) / per_key / 16 * 16, 16, kKeyTile));
    }
  } else if (P.heads_per_unit > 1) {
    const int64_t per_key = int64_t(sizeof(float)) * P.heads_per_unit * (a.head_dim + P.dvpad);
    P.key_tile = int(std::clamp<int64_t>(int64_t(store.l2_bytes / 2) / per_key / 16 * 16, 16, P.key_tile));
  }
  const int64_t n_hgroups = a.n_kv_heads / P.heads_per_unit;
  const int64_t n_items = a.batch * n_hgroups * n_tiles;

  // Split the keys of each item when there are few items (decode), so that every thread has work.
  // The split count depends on the shape only — never on the thread count — so results are the
  // same bits on every machine.
  const int64_t key_tiles = (a.n_k + P.key_tile - 1) / P.key_tile;
  P.n_splits = 1;
  if (n_items < kTargetUnits && key_tiles >= 8)
    P.n_splits = std::max<int64_t>(1, std::min<int64_t>((kTargetUnits + n_items - 1) / n_items, key_tiles / 4));

  const int64_t rpad_max = round_up(P.group * max_tile_rows, W);
  const bool pairs = P.qk_bf16 || P.pv_bf16;
  const size_t per_head = scratch_floats(a.head_dim, P.dvpad, rpad_max, pairs);
  const size_t per_thread = per_head * size_t(P.heads_per_unit);
  const size_t part_stride = size_t(round_up(rpad_max * (P.dvpad + 2), 16));  // m, l, o of one head of a unit
  const int64_t n_units = n_items * P.n_splits;
  const size_t n_parts = P.n_splits > 1 ? size_t(n_units * P.heads_per_unit) : 0;
  const size_t need = per_thread * size_t(n_threads) + part_stride * n_parts;
  if (pool.size() < need) pool.resize(need);
  float* parts = pool.data() + per_thread * size_t(n_threads);
  // the scratch of head i of thread t
  auto head_scratch = [&](int t, int i) {
    return carve(pool.data() + per_head * (size_t(t) * size_t(P.heads_per_unit) + size_t(i)), a.head_dim, P.dvpad,
                 rpad_max, pairs);
  };

  auto unit_of = [&](int64_t x) {
    Unit u;
    u.split = x % P.n_splits;
    int64_t item = x / P.n_splits;
    u.tile = item % n_tiles;
    item /= n_tiles;
    const int64_t hg = item % n_hgroups;
    u.hk0 = hg * P.heads_per_unit;
    u.hk1 = u.hk0 + P.heads_per_unit;
    u.b = item / n_hgroups;
    return u;
  };

  // Split units are handed out in runs of consecutive ones (a quarter of a thread's share): the
  // splits of an item follow each other in the KV cache, so the next-tile prefetch at the end of
  // one unit fetches the start of the next (n_q = 1, n_k = 32768, 32/8 heads, Zen 4: 6.4 → 5.6 ms).
  const int chunk = P.n_splits > 1 ? int(std::max<int64_t>(1, n_units / (4 * int64_t(n_threads)))) : 1;
#if LONGATTN_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, chunk) num_threads(n_threads)
#endif
  for (int64_t x = 0; x < n_units; ++x) {
#if LONGATTN_HAVE_OPENMP
    const int tid = omp_get_thread_num();
#else
    const int tid = 0;
#endif
    HeadWork heads[kMaxHeadsPerUnit];
    for (int i = 0; i < P.heads_per_unit; ++i) heads[i].s = head_scratch(tid, i);
    const Unit u = unit_of(x);
    // the initial state (if any) is folded into split 0 only
    run_unit(P, u, heads, u.split == 0 ? a.state : nullptr);
    for (int i = 0; i < P.heads_per_unit; ++i) {
      const HeadWork& w = heads[i];
      if (P.n_splits == 1) {
        write_head(P, u, w);
        continue;
      }
      float* part = parts + part_stride * size_t(x * P.heads_per_unit + i);
      std::memcpy(part, w.s.m, sizeof(float) * size_t(w.rows));
      std::memcpy(part + rpad_max, w.s.l, sizeof(float) * size_t(w.rows));
      std::memcpy(part + 2 * rpad_max, w.s.o, sizeof(float) * size_t(w.rows) * size_t(P.dvpad));
    }
  }
  if (P.n_splits == 1) return;

  // merge the splits of each (item, head): m = max m_s; l = Σ l_s·2^(m_s − m); o = Σ o_s·2^(m_s − m)
  const int64_t n_merge = n_items * P.heads_per_unit;
#if LONGATTN_HAVE_OPENMP
#pragma omp parallel for schedule(static) num_threads(n_threads)
#endif
  for (int64_t e = 0; e < n_merge; ++e) {
#if LONGATTN_HAVE_OPENMP
    const int tid = omp_get_thread_num();
#else
    const int tid = 0;
#endif
    const int64_t item = e / P.heads_per_unit;
    const int i = int(e % P.heads_per_unit);
    HeadWork w;
    w.s = head_scratch(tid, 0);
    const Unit u = unit_of(item * P.n_splits);
    w.hk = u.hk0 + i;
    w.tile_rows = int(P.tile_q1[size_t(u.tile)] - P.tile_q0[size_t(u.tile)]);
    w.rows = P.group * w.tile_rows;
    for (int r = 0; r < w.rows; ++r)
      w.s.qrow_phys[r] = q_phys(a, u.b, w.hk * P.group + r / w.tile_rows, P.tile_q0[size_t(u.tile)] + r % w.tile_rows);
    auto part_of = [&](int64_t sp) { return parts + part_stride * size_t((item * P.n_splits + sp) * P.heads_per_unit + i); };
    for (int r = 0; r < w.rows; ++r) {
      float mx = kNegInfF;
      for (int64_t sp = 0; sp < P.n_splits; ++sp) mx = std::max(mx, part_of(sp)[r]);
      const float ref = mx == kNegInfF ? 0.0f : mx;
      float l = 0.0f;
      float* o = w.s.o + size_t(r) * P.dvpad;
      std::fill(o, o + P.dvpad, 0.0f);
      for (int64_t sp = 0; sp < P.n_splits; ++sp) {
        const float* part = part_of(sp);
        const float wgt = std::exp2(part[r] - ref);
        if (wgt == 0.0f) continue;
        l += part[rpad_max + r] * wgt;
        const float* po = part + 2 * rpad_max + size_t(r) * P.dvpad;
        for (int c = 0; c < P.dvpad; ++c) o[c] += po[c] * wgt;
      }
      w.s.m[r] = mx;
      w.s.l[r] = l;
    }
    write_head(P, u, w);
  }
}

}  // namespace longattn::cpu
