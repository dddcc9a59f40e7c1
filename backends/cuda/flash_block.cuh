// The work of one FLASH block (segment, packed rows, key tiles) and the tile classification of the
// mask, shared by the mma.sync kernel (flash_kernel.cuh) and the Hopper kernel (flash_wgmma.cuh).
#pragma once

#include <cstdint>

#include "attend_params.hpp"

namespace longattn::cuda {

// Per-block view of the problem: which segment, rows and key tiles. Row and key indices are
// 32-bit (the dispatcher sends larger problems to the generic kernel); positions are 64-bit.
struct FlashBlock {
  int32_t b, hk;
  int32_t seg_q0;    // first logical query of the segment
  int32_t seg_rows;  // packed rows of the segment (queries · group)
  int32_t r0;        // first packed row of this block within the segment
  int32_t kb, ke;    // logical key range of the segment
  int32_t t_begin, t_end;
  int64_t q_lo, q_hi;  // position range of the block's queries (affine only)
};

template <int kBlockM, int kBlockN, bool kDecode>
__device__ __forceinline__ FlashBlock flash_block(const AttendParams& p) {
  FlashBlock w;
  const int32_t unit = kDecode ? int32_t(blockIdx.x) : int32_t(gridDim.x - 1 - blockIdx.x);
  // segment s with unit_begin[s] ≤ unit < unit_begin[s + 1] (binary search)
  int s = 0, hi = p.seg.n - 1;
  while (s < hi) {
    const int mid = (s + hi + 1) >> 1;
    if (p.seg.unit_begin[mid] <= unit) s = mid; else hi = mid - 1;
  }
  w.b = int32_t(blockIdx.y) / p.hkv;
  w.hk = int32_t(blockIdx.y) % p.hkv;
  w.seg_q0 = int32_t(p.seg.q_begin[s]);
  w.seg_rows = int32_t(p.seg.q_begin[s + 1] - w.seg_q0) * p.group;
  w.r0 = (unit - p.seg.unit_begin[s]) * kBlockM;
  w.kb = int32_t(p.seg.k_begin[s]);
  w.ke = int32_t(p.seg.k_begin[s + 1]);
  const int32_t n_tiles = (w.ke - w.kb + kBlockN - 1) / kBlockN;
  w.t_begin = int32_t(int64_t(n_tiles) * blockIdx.z / p.n_splits);
  w.t_end = int32_t(int64_t(n_tiles) * (blockIdx.z + 1) / p.n_splits);
  const int32_t r_last = min(w.r0 + kBlockM, w.seg_rows) - 1;
  w.q_lo = p.q_pos0 + w.seg_q0 + w.r0 / p.group;
  w.q_hi = p.q_pos0 + w.seg_q0 + r_last / p.group;
  return w;
}

// Packed row r of a segment (r < w.seg_rows): logical query i = w.seg_q0 + r / group of query
// head h = hk·group + r % group; its physical row comes from p.q_rows when kGathered and that is
// given (HYPER's sorted order), else it is i. index(): the row's place in [batch, hq, n_q] tables
// (p.q_rows, p.q_group) and, with phys, in the running state.
struct PackedRow {
  int32_t i, h;
  int64_t phys;
  __device__ __forceinline__ int64_t index(const AttendParams& p, const FlashBlock& w, int64_t row) const {
    return (int64_t(w.b) * p.hq + h) * p.n_q + row;
  }
};

template <bool kGathered>
__device__ __forceinline__ PackedRow packed_row(const AttendParams& p, const FlashBlock& w, int32_t r) {
  PackedRow q;
  q.i = w.seg_q0 + r / p.group;
  q.h = w.hk * p.group + r % p.group;
  q.phys = kGathered && p.q_rows ? p.q_rows[q.index(p, w, q.i)] : q.i;
  return q;
}

// Packed row `row` of the block (r = w.r0 + row): whether it exists, and the address of its
// 16-byte chunk c of Q (p.q for rows past the segment, which are copied as zeros).
template <bool kGathered>
__device__ __forceinline__ const char* q_chunk_source(const AttendParams& p, const FlashBlock& w, int row, int c,
                                                      bool& valid) {
  const int32_t r = w.r0 + row;
  valid = r < w.seg_rows;
  if (!valid) return p.q;
  const PackedRow q = packed_row<kGathered>(p, w, r);
  return p.q + w.b * p.q_stride[0] + q.phys * p.q_stride[1] + q.h * p.q_stride[2] + c * 16;
}

template <int kBlockN>
__device__ __forceinline__ TileKind flash_tile_kind(const AttendParams& p, const FlashBlock& w,
                                                    int32_t t) {
  if (p.mask_full) return TileKind::full;
  if (!p.affine) return TileKind::partial;
  const int64_t k_lo = p.k_pos0 + w.kb + t * kBlockN;
  const int64_t k_hi = p.k_pos0 + min(w.kb + (t + 1) * kBlockN, w.ke) - 1;
  return classify_tile(p.mask, w.q_lo, w.q_hi, k_lo, k_hi);
}

// The mask predicate of one query row over the columns of a key tile with affine positions
// (column c at position kp0 + c), as column intervals:
//   allowed(c) = (lo ≤ c ≤ hi) || c < g_end
// lo/hi: causal ∩ band (∩ valid columns); g_end: global keys (kp < n_global) ∩ causal. A global
// row (qp < n_global) sees the whole causal range. Equal to Mask::allows for every column.
struct ColumnBounds {
  int32_t lo, hi, g_end;
};

__device__ __forceinline__ ColumnBounds column_bounds(const Mask& m, int64_t qp, int64_t kp0,
                                                      int32_t n_valid, int32_t n_cols) {
  constexpr int64_t kFar = int64_t(1) << 40;
  const int64_t d = qp - kp0;  // column where kp == qp
  const int64_t causal_hi = m.causal ? d : kFar;
  int64_t lo = -kFar, hi = causal_hi;
  if (qp >= m.n_global) {
    if (m.window_left >= 0) lo = d - m.window_left;
    if (m.window_right >= 0) hi = min(hi, d + m.window_right);
  }
  hi = min(hi, int64_t(n_valid) - 1);
  const int64_t g_end = min(min(int64_t(m.n_global) - kp0, causal_hi + 1), int64_t(n_valid));
  auto clamp = [&](int64_t x) {
    return int32_t(x < -1 ? int64_t(-1) : (x > int64_t(n_cols) + 1 ? int64_t(n_cols) + 1 : x));
  };
  return {clamp(lo), clamp(hi), clamp(g_end)};
}

// Smallest tile index ≥ t that the mask does not skip (w.t_end when none), and its kind.
template <int kBlockN>
__device__ __forceinline__ int32_t flash_next_tile(const AttendParams& p, const FlashBlock& w,
                                                   int32_t t, TileKind& kind) {
  kind = p.mask_full ? TileKind::full : TileKind::partial;
  if (p.mask_full || !p.affine) return t < w.t_end ? t : w.t_end;
  const Mask& m = p.mask;
  while (t < w.t_end) {
    kind = flash_tile_kind<kBlockN>(p, w, t);
    if (kind != TileKind::skip) return t;
    // Skipped: keys in the future (causal), or outside the band with no global row or key. Later
    // tiles only move further right, so only "too far left of the band" can end.
    const int64_t k_hi = p.k_pos0 + min(w.kb + (t + 1) * kBlockN, w.ke) - 1;
    const bool global_rows = w.q_lo < m.n_global;
    const bool left_of_band = !global_rows && m.window_left >= 0 && w.q_lo - k_hi > m.window_left;
    if (!left_of_band) return w.t_end;
    // jump to the tile holding the band's first key (global key tiles below it are never skipped)
    const int64_t t_band = (w.q_lo - m.window_left - p.k_pos0 - w.kb) / kBlockN;
    t = max(t + 1, int32_t(t_band < w.t_end ? t_band : w.t_end));
  }
  return w.t_end;
}

// Given tile t classified full, the end (exclusive) of the run of full tiles that starts at t,
// from the mask's monotone structure: along the key tiles the differences qp − kp only shrink, so
// once the left band holds it keeps holding and the causal condition holds up to a computable
// tile. Masks where the run is not that simple (a right window, a tile that is full only through
// global rows or keys) give t + 1, i.e. no shortcut.
template <int kBlockN>
__device__ __forceinline__ int32_t flash_full_run_end(const AttendParams& p, const FlashBlock& w, int32_t t) {
  const Mask& m = p.mask;
  if (m.window_right >= 0) return t + 1;
  const int64_t k_lo = p.k_pos0 + w.kb + int64_t(t) * kBlockN;
  if (m.window_left >= 0 && w.q_hi - k_lo > m.window_left) return t + 1;
  if (!m.causal) return w.t_end;
  // causal for the whole tile t': q_lo ≥ k_pos0 + kb + (t' + 1)·kBlockN − 1 (positive: t is full)
  const int64_t last = (w.q_lo - p.k_pos0 - w.kb + 1) / kBlockN - 1;
  return int32_t(min(int64_t(w.t_end), last + 1));
}

// flash_next_tile with the current run of full tiles remembered in `full_end` (start it at 0):
// inside the run a tile costs one comparison instead of a classification.
template <int kBlockN>
__device__ __forceinline__ int32_t flash_next_tile_run(const AttendParams& p, const FlashBlock& w, int32_t t,
                                                       TileKind& kind, int32_t& full_end) {
  if (t < full_end) {
    kind = TileKind::full;
    return t;
  }
  t = flash_next_tile<kBlockN>(p, w, t, kind);
  if (kind == TileKind::full && p.affine && !p.mask_full && t < w.t_end) full_end = flash_full_run_end<kBlockN>(p, w, t);
  return t;
}

}  // namespace longattn::cuda
