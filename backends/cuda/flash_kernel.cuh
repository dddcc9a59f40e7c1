// Tensor-core FLASH attention (FlashAttention-2 order) for one head dim and 16-bit inputs.
//
// Shapes: q [batch, n_q, hq, d], k / v [batch, n_k, hkv, d] (16-bit, dim axis contiguous, rows
// 16-byte aligned), out any float dtype. GQA rows are packed: for (b, KV head hk) the packed row
// r = i·group + g is query i of head hk·group + g, so one block's K/V tile serves every query head
// of the group. Block (tile, b·hkv, split) owns kBlockM packed rows of one segment and the key
// tiles [t_begin, t_end) of that segment's key range (split-KV when n_splits > 1).
//
// Per key tile (kBlockN keys; kStages shared-memory stages, cp.async keeps kStages − 1 in flight):
//   S = Q·Kᵀ                      mma.m16n8k16, fp32 accumulators (ldmatrix from swizzled smem)
//   plain:   m' = max(m, rowmax S);  P = 2^(S·c − m'·c)  with c = scale·log2e (one FFMA + EX2)
//   general: S = c·S or softcap·log2e·tanh(scale·S / softcap); S += log2e·key_logw;
//            m' = max(m, rowmax S);  P = 2^(S − m')
//   −inf where the mask, the groups or the segment end forbid: per (row, key) on partial tiles
//            and where the rows' groups differ, else through the per-key bias (groups the
//            same for every row of the block fold into it)
//   α = 2^(m − m');  l = α·l + rowsum P;  O = α·O + P·V
// P never leaves registers: the S accumulators of two n8 tiles are exactly the A fragment of the
// next mma. Tiles are classified skip / full / partial from their position ranges (classify_tile)
// when positions are affine; skipped tiles are jumped over analytically (band + global ranges).
// End: O / l and LSE = (m + log2 l)·ln 2 (out mode), normalised partials (split-KV), or the raw
// (m, l, O) folded into the running state (m in log2 units).
//
// The plain variant serves FLASH / SPARSE (affine positions, no gathers, log-weights, groups or
// softcap, scale > 0); the general variant serves every AttendArgs feature.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cmath>
#include <cstdint>

#include "attend_launch.hpp"
#include "attend_params.hpp"
#include "cuda_check.hpp"
#include "launch.cuh"
#include "device_dtype.cuh"
#include "flash_block.cuh"
#include "flash_epilogue.cuh"
#include "flash_traits.hpp"
#include "mma_sm80.cuh"

namespace longattn::cuda {

template <class Elem, int kHeadDim, bool kDecode, bool kGeneral>
struct FlashConfig {
  using Traits = FlashTraitsOf<kHeadDim, kDecode, kGeneral>;
  static constexpr int kBlockM = Traits::kBlockM;
  static constexpr int kBlockN = Traits::kBlockN;
  static constexpr int kWarpsM = Traits::kWarpsM;
  static constexpr int kWarpsN = Traits::kWarpsN;
  static constexpr int kStages = Traits::kStages;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  static constexpr int kMTiles = kBlockM / (16 * kWarpsM);  // m16 row tiles per warp
  static constexpr int kKeysPerWarp = kBlockN / kWarpsN;
  static constexpr int kNTiles = kKeysPerWarp / 8;  // n8 column tiles of S per warp
  static constexpr int kDTiles = kHeadDim / 8;      // n8 column tiles of O
  static constexpr int kChunks = kHeadDim / 8;      // 16-byte chunks per row
  static constexpr bool kSwizzle = kHeadDim % 64 == 0;
  static constexpr int kPitch = flash_row_pitch(kHeadDim);
  static constexpr int kQElems = kBlockM * kPitch;
  static constexpr int kKVElems = kBlockN * kPitch;
  static constexpr int kTileBytes = flash_tile_bytes(kHeadDim, kBlockM, kBlockN, kStages);
  static constexpr int kSmemBytes = flash_smem_bytes(kHeadDim, kBlockM, kBlockN, kStages, kGeneral);
  // decode: per-warp (m, l, O) of 16 rows for the final merge, reusing the K/V stages
  static constexpr int kMergeFloats = kWarpsN * 16 * (kHeadDim + 2);

  static_assert(kMTiles >= 1 && kBlockM == kMTiles * 16 * kWarpsM, "row tiling");
  static_assert(kKeysPerWarp % 16 == 0, "keys per warp must be a multiple of 16");
  static_assert(kHeadDim % 16 == 0, "head dim must be a multiple of 16");
  static_assert(kStages >= 2, "at least double buffering");
  static_assert(kWarpsN == 1 || kMTiles == 1, "key-split warps hold one row tile");
  static_assert(kWarpsN == 1 || kMergeFloats * 4 <= 2 * kStages * kKVElems * 2, "merge scratch fits");

  // Element offset of 16-byte chunk `chunk` of row `row` in a tile.
  __device__ static __forceinline__ int offset(int row, int chunk) {
    if constexpr (kSwizzle)
      return row * kPitch + ((chunk ^ (row & 7)) << 3);
    else
      return row * kPitch + (chunk << 3);
  }
};

// ldmatrix addressing for one lane: the lane reads chunk 2·x + c of rows row0 + 16·y (x over the
// head dim in steps of 16 elements, y over row tiles). Rows of one lane differ by multiples of 8,
// so the swizzle term (row & 7) is fixed per lane and the whole address is
//   base + 16·y·pitch·2 + (x / 4)·128 + sw[x % 4]       (swizzled: four lane-dependent offsets)
//   base + 16·y·pitch·2 + x·32                          (padded rows)
// which keeps the unrolled loops on immediate offsets instead of one register per address.
template <class Cfg>
struct LdmatrixAddr {
  uint32_t base;   // shared address of chunk c of row row0 (swizzled: of chunk 0)
  uint32_t sw[4];  // swizzled byte offsets ((2x + c) ^ (row0 & 7))·16, x = 0..3

  __device__ __forceinline__ LdmatrixAddr(uint32_t tile, int row0, int c) {
    if constexpr (Cfg::kSwizzle) {
      base = tile + uint32_t(row0 * Cfg::kPitch * 2);
#pragma unroll
      for (int x = 0; x < 4; ++x) sw[x] = uint32_t(((2 * x + c) ^ (row0 & 7)) * 16);
    } else {
      base = tile + uint32_t(row0 * Cfg::kPitch * 2 + c * 16);
    }
  }
  // byte address for head-dim step x (16 elements) and row tile y (16 rows)
  __device__ __forceinline__ uint32_t at(int x, int y) const {
    if constexpr (Cfg::kSwizzle)
      return base + uint32_t(y * 16 * Cfg::kPitch * 2 + (x >> 2) * 128) + sw[x & 3];
    else
      return base + uint32_t(y * 16 * Cfg::kPitch * 2 + x * 32);
  }
};

template <class Elem, int kHeadDim, bool kDecode, bool kGeneral>
__global__ void __launch_bounds__(FlashConfig<Elem, kHeadDim, kDecode, kGeneral>::kThreads,
                                  FlashTraitsOf<kHeadDim, kDecode, kGeneral>::kMinBlocksPerSm)
    flash_attend_kernel(const __grid_constant__ AttendParams p) {
  pdl_begin();
  using C = FlashConfig<Elem, kHeadDim, kDecode, kGeneral>;
  constexpr int kBlockM = C::kBlockM, kBlockN = C::kBlockN, kMT = C::kMTiles, kStages = C::kStages;
  constexpr int kNT = C::kNTiles, kDT = C::kDTiles, kChunks = C::kChunks;

  extern __shared__ __align__(128) unsigned char smem_raw[];
  Elem* sQ = reinterpret_cast<Elem*>(smem_raw);
  Elem* sK = sQ + C::kQElems;              // [kStages][kBlockN][pitch]
  Elem* sV = sK + kStages * C::kKVElems;   // [kStages][kBlockN][pitch]
  // facts: query positions, then (general) query groups and per-stage key bias / position / group
  int64_t* sQPos = reinterpret_cast<int64_t*>(smem_raw + C::kTileBytes);  // [kBlockM]
  int64_t* sKPos = sQPos + kBlockM;                                       // [kStages][kBlockN]
  float* sBias = reinterpret_cast<float*>(sKPos + kStages * kBlockN);     // [kStages][kBlockN]
  int32_t* sKGrp = reinterpret_cast<int32_t*>(sBias + kStages * kBlockN); // [kStages][kBlockN]
  int32_t* sQGrp = sKGrp + kStages * kBlockN;                             // [kBlockM]

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int wm = warp % C::kWarpsM;  // row slice of this warp
  const int wn = warp / C::kWarpsM;  // key slice of this warp
  const int g = lane >> 2, tq = lane & 3;

  const FlashBlock w = flash_block<kBlockM, kBlockN, kDecode>(p);
  const int64_t kv_bh = int64_t(w.b) * p.hkv + w.hk;

  // ---- Q tile → shared memory (zero rows past the segment), row facts ----
  for (int idx = tid; idx < kBlockM * kChunks; idx += C::kThreads) {
    const int row = idx / kChunks, c = idx % kChunks;
    bool valid;
    const char* src = q_chunk_source<kGeneral>(p, w, row, c, valid);
    cp_async_16(sQ + C::offset(row, c), src, valid);
  }
  cp_async_commit();
  // Exclusion groups: when every row of the tile has the same group (HYPER's sampled keys: a
  // query tile lies inside one query block), keys of that group get a −inf bias instead, so
  // that full tiles need one add per logit rather than a per-(row, key) comparison.
  const bool groups = kGeneral && p.q_group && p.k_group;
  int32_t tile_grp = -1;
  if (groups) {
    const int32_t h0 = w.hk * p.group + w.r0 % p.group;
    tile_grp = p.q_group[(int64_t(w.b) * p.hq + h0) * p.n_q + w.seg_q0 + w.r0 / p.group];
  }
  bool same_grp = true;
  for (int row = tid; row < kBlockM; row += C::kThreads) {
    const int32_t r = w.r0 + row;
    int64_t position = 0;
    int32_t grp = -1;
    if (r < w.seg_rows) {
      const PackedRow q = packed_row<kGeneral>(p, w, r);
      if constexpr (kGeneral) {
        position = p.q_pos ? p.q_pos[q.phys] : p.q_pos0 + q.phys;
        if (p.q_group) grp = p.q_group[q.index(p, w, q.i)];
        same_grp = same_grp && grp == tile_grp;
      } else {
        position = p.q_pos0 + q.i;
      }
    }
    sQPos[row] = position;
    if constexpr (kGeneral) sQGrp[row] = grp;
  }
  const bool tile_groups = groups && __syncthreads_and(same_grp);  // uniform over the block

  // ---- K/V tile t → stage (zero rows past the segment), key facts (general) ----
  // When the threads tile whole rows (kThreads a multiple of the chunks per row), each thread
  // copies one fixed chunk of rows ld_row0 + kLoadRows·x: the row bases advance by a constant
  // and only the first row's address is computed per tile.
  constexpr bool kRowPasses = C::kThreads % kChunks == 0 && kBlockN % (C::kThreads / kChunks) == 0;
  constexpr int kLoadRows = kRowPasses ? C::kThreads / kChunks : 1;  // rows per pass
  const int ld_row0 = tid / kChunks, ld_c = tid % kChunks;
  const char* k_head = p.k + w.b * p.k_stride[0] + w.hk * p.k_stride[2] + ld_c * 16;
  const char* v_head = p.v + w.b * p.v_stride[0] + w.hk * p.v_stride[2] + ld_c * 16;
  auto load_kv = [&](int32_t t, int stage) {
    Elem* dk = sK + stage * C::kKVElems;
    Elem* dv = sV + stage * C::kKVElems;
    if constexpr (kRowPasses) {
      const int32_t j0 = w.kb + t * kBlockN + ld_row0;  // this thread's first key of the tile
#pragma unroll
      for (int x = 0; x < kBlockN / kLoadRows; ++x) {
        const int row = ld_row0 + x * kLoadRows;
        const int32_t j = j0 + x * kLoadRows;
        const bool valid = j < w.ke;
        int64_t phys = j;
        if constexpr (kGeneral) {
          if (p.k_rows && valid) phys = p.k_rows[kv_bh * p.n_k + j];
        }
        const char* ksrc = valid ? k_head + phys * p.k_stride[1] : p.k;
        const char* vsrc = valid ? v_head + phys * p.v_stride[1] : p.v;
        cp_async_16(dk + C::offset(row, ld_c), ksrc, valid);
        cp_async_16(dv + C::offset(row, ld_c), vsrc, valid);
      }
    } else {
    for (int idx = tid; idx < kBlockN * kChunks; idx += C::kThreads) {
      const int row = idx / kChunks, c = idx % kChunks;
      const int32_t j = w.kb + t * kBlockN + row;
      const bool valid = j < w.ke;
      const char* ksrc = p.k;
      const char* vsrc = p.v;
      if (valid) {
        const int64_t phys = kGeneral && p.k_rows ? p.k_rows[kv_bh * p.n_k + j] : j;
        ksrc = p.k + w.b * p.k_stride[0] + phys * p.k_stride[1] + w.hk * p.k_stride[2] + c * 16;
        vsrc = p.v + w.b * p.v_stride[0] + phys * p.v_stride[1] + w.hk * p.v_stride[2] + c * 16;
      }
      cp_async_16(dk + C::offset(row, c), ksrc, valid);
      cp_async_16(dv + C::offset(row, c), vsrc, valid);
    }
    }
    if constexpr (kGeneral) {
      for (int row = tid; row < kBlockN; row += C::kThreads) {
        const int32_t j = w.kb + t * kBlockN + row;
        float bias = -INFINITY;
        int64_t position = 0;
        int32_t grp = -2;
        if (j < w.ke) {
          bias = p.key_logw ? kLog2e * p.key_logw[kv_bh * p.n_k + j] : 0.0f;
          if (!p.mask_full) {
            const int64_t phys = p.k_rows ? p.k_rows[kv_bh * p.n_k + j] : j;
            position = p.k_pos ? p.k_pos[phys] : p.k_pos0 + phys;
          }
          if (p.k_group) grp = p.k_group[kv_bh * p.n_k + j];
          if (tile_groups && tile_grp >= 0 && grp == tile_grp) bias = -INFINITY;
        }
        sBias[stage * kBlockN + row] = bias;
        sKPos[stage * kBlockN + row] = position;
        sKGrp[stage * kBlockN + row] = grp;
      }
    }
  };

  // ---- softmax state ----
  const int q_row0 = wm * 16 * kMT;  // this warp's first row in the block
  const int k_row0 = wn * C::kKeysPerWarp;
  float o_acc[kMT][kDT][4];
  float m_row[kMT][2], l_row[kMT][2];  // m: plain raw logits, general log2 units; l: thread partial
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
    for (int dt = 0; dt < kDT; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o_acc[mt][dt][e] = 0.0f;
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) m_row[mt][hf] = -INFINITY, l_row[mt][hf] = 0.0f;
  }
  // logit scale of the plain variant: s2 = S·c (log2 units)
  const float c_log2 = p.scale_log2;
  if (p.st_m && wn == 0) {
    // fold the incoming running state into the key-slice-0 warps (l into lane tq = 0's partial)
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int32_t r = w.r0 + q_row0 + mt * 16 + g + hf * 8;
        if (r >= w.seg_rows) continue;
        const PackedRow q = packed_row<kGeneral>(p, w, r);
        const int64_t idx = q.index(p, w, q.phys);
        const float m_in = p.st_m[idx];
        m_row[mt][hf] = kGeneral ? m_in : m_in / c_log2;
        l_row[mt][hf] = tq == 0 ? p.st_l[idx] : 0.0f;
#pragma unroll
        for (int dt = 0; dt < kDT; ++dt) {
          const float2 a = *reinterpret_cast<const float2*>(p.st_acc + idx * kHeadDim + dt * 8 + 2 * tq);
          o_acc[mt][dt][2 * hf] = a.x;
          o_acc[mt][dt][2 * hf + 1] = a.y;
        }
      }
  }

  // ---- main loop over key tiles; loads run kStages − 1 tiles ahead ----
  // The issuing side walks the live tiles (skipping what the mask excludes) and records each
  // tile's index and kind with its stage, so the consuming side only reads them back.
  __shared__ int32_t s_tile_of[kStages];
  __shared__ int32_t s_kind_of[kStages];
  TileKind kind_issue;
  int32_t full_end = 0;
  int32_t t_issue = flash_next_tile_run<kBlockN>(p, w, w.t_begin, kind_issue, full_end);
  int stage_issue = 0, n_pending = 0;
  auto issue = [&]() {
    if (t_issue < w.t_end) {
      load_kv(t_issue, stage_issue);
      if (tid == 0) s_tile_of[stage_issue] = t_issue, s_kind_of[stage_issue] = int32_t(kind_issue);
      ++n_pending;
      t_issue = flash_next_tile_run<kBlockN>(p, w, t_issue + 1, kind_issue, full_end);
    }
    cp_async_commit();
    stage_issue = stage_issue + 1 == kStages ? 0 : stage_issue + 1;
  };
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) issue();
  int stage = 0;
  const uint32_t sQ_addr = smem_addr(sQ);
  while (n_pending > 0) {
    issue();
    cp_async_wait<kStages - 1>();
    __syncthreads();
    const int32_t t = s_tile_of[stage];
    const TileKind kind = TileKind(s_kind_of[stage]);

    const uint32_t tK = smem_addr(sK + stage * C::kKVElems);
    const uint32_t tV = smem_addr(sV + stage * C::kKVElems);

    // S = Q·Kᵀ for this warp's rows × keys
    float s_acc[kMT][kNT][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s_acc[mt][nt][e] = 0.0f;
    {
      const LdmatrixAddr<C> q_addr(sQ_addr, q_row0 + (lane & 15), lane >> 4);
      const LdmatrixAddr<C> k_addr(tK, k_row0 + (lane & 7) + ((lane >> 4) << 3), (lane >> 3) & 1);
#pragma unroll
      for (int kk = 0; kk < kHeadDim / 16; ++kk) {
        uint32_t qa[kMT][4];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) ldmatrix_x4(qa[mt], q_addr.at(kk, mt));
#pragma unroll
        for (int nt2 = 0; nt2 < kNT / 2; ++nt2) {
          uint32_t kb4[4];
          ldmatrix_x4(kb4, k_addr.at(kk, nt2));
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt) {
            mma_16816<Elem>(s_acc[mt][2 * nt2], qa[mt], kb4[0], kb4[1]);
            mma_16816<Elem>(s_acc[mt][2 * nt2 + 1], qa[mt], kb4[2], kb4[3]);
          }
        }
      }
    }

    const int32_t j_tile = w.kb + t * kBlockN;
    const bool ragged = j_tile + kBlockN > w.ke;
    if constexpr (kGeneral) {
      // logits in log2 units, then log-weights, mask, groups, segment end
      if (p.softcap_in > 0.0f) {
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
          for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e)
              s_acc[mt][nt][e] = p.softcap_log2 * fast_tanh(p.softcap_in * s_acc[mt][nt][e]);
      } else {
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
          for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) s_acc[mt][nt][e] *= c_log2;
      }
      if (kind == TileKind::partial || (groups && !tile_groups)) {
        const float* bias = sBias + stage * kBlockN;
        const int64_t* k_position = sKPos + stage * kBlockN;
        const int32_t* k_grp = sKGrp + stage * kBlockN;
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
          for (int hf = 0; hf < 2; ++hf) {
            const int row = q_row0 + mt * 16 + g + hf * 8;
            const int64_t q_position = sQPos[row];
            const int32_t q_grp = sQGrp[row];
#pragma unroll
            for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
              for (int e = 0; e < 2; ++e) {
                const int col = k_row0 + nt * 8 + 2 * tq + e;
                bool ok = kind != TileKind::partial || p.mask.allows(q_position, k_position[col]);
                if (groups && q_grp >= 0 && q_grp == k_grp[col]) ok = false;
                float& sv = s_acc[mt][nt][2 * hf + e];
                sv = ok ? sv + bias[col] : -INFINITY;
              }
          }
      } else if (ragged || p.key_logw || groups) {
        // per-key bias only: log-weight, −inf past the end of the keys or in the tile's group
        const float* bias = sBias + stage * kBlockN;
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float b = bias[k_row0 + nt * 8 + 2 * tq + e];
#pragma unroll
            for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
              for (int hf = 0; hf < 2; ++hf) s_acc[mt][nt][2 * hf + e] += b;
          }
      }
    } else if (kind == TileKind::partial || ragged) {
      // positions are affine: key column c of the tile sits at k_pos0 + j_tile + c
      const int64_t k_pos_tile = p.k_pos0 + j_tile;
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
          const ColumnBounds cb = column_bounds(p.mask, sQPos[q_row0 + mt * 16 + g + hf * 8],
                                                k_pos_tile, w.ke - j_tile, kBlockN);
#pragma unroll
          for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int col = k_row0 + nt * 8 + 2 * tq + e;
              const bool ok = (col >= cb.lo && col <= cb.hi) || col < cb.g_end;
              if (!ok) s_acc[mt][nt][2 * hf + e] = -INFINITY;
            }
        }
    }

    // online softmax: m' = max(m, rowmax S), α = 2^(m − m'), P = 2^(S − m'), l = α·l + rowsum P
    // (plain: S and m are raw logits and every exponent is scaled by c in one FFMA). Row maxima
    // and sums are pairwise trees (short dependency chains); O is rescaled only when some row's
    // maximum moved (α = 1 exactly otherwise, a no-op).
    float alpha[kMT][2];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        float part[kNT];
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) part[nt] = fmaxf(s_acc[mt][nt][2 * hf], s_acc[mt][nt][2 * hf + 1]);
#pragma unroll
        for (int width = kNT / 2; width >= 1; width /= 2)
#pragma unroll
          for (int x = 0; x < width; ++x) part[x] = fmaxf(part[x], part[x + width]);
        float mx = fmaxf(m_row[mt][hf], part[0]);
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float scale = kGeneral ? 1.0f : c_log2;
        const float m_use = mx == -INFINITY ? 0.0f : mx * scale;  // a row with nothing allowed yet
        alpha[mt][hf] = fast_exp2(fmaf(m_row[mt][hf], scale, -m_use));
        m_row[mt][hf] = mx;
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          float& s0 = s_acc[mt][nt][2 * hf];
          float& s1 = s_acc[mt][nt][2 * hf + 1];
          s0 = fast_exp2(fmaf(s0, scale, -m_use));
          s1 = fast_exp2(fmaf(s1, scale, -m_use));
          part[nt] = s0 + s1;
        }
#pragma unroll
        for (int width = kNT / 2; width >= 1; width /= 2)
#pragma unroll
          for (int x = 0; x < width; ++x) part[x] += part[x + width];
        l_row[mt][hf] = fmaf(l_row[mt][hf], alpha[mt][hf], part[0]);
      }
    bool moved = false;
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) moved = moved || alpha[mt][0] != 1.0f || alpha[mt][1] != 1.0f;
    if (__any_sync(0xffffffffu, moved)) {
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int dt = 0; dt < kDT; ++dt)
#pragma unroll
          for (int e = 0; e < 4; ++e) o_acc[mt][dt][e] *= alpha[mt][e >> 1];
    }
    // P as 16-bit A fragments (half the registers of the fp32 S from here on): the accumulators
    // of n8 tiles 2·kc and 2·kc + 1 form the A fragment of key chunk kc
    uint32_t p_frag[kMT][kNT / 2][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int kc = 0; kc < kNT / 2; ++kc) {
        p_frag[mt][kc][0] = pack2<Elem>(s_acc[mt][2 * kc][0], s_acc[mt][2 * kc][1]);
        p_frag[mt][kc][1] = pack2<Elem>(s_acc[mt][2 * kc][2], s_acc[mt][2 * kc][3]);
        p_frag[mt][kc][2] = pack2<Elem>(s_acc[mt][2 * kc + 1][0], s_acc[mt][2 * kc + 1][1]);
        p_frag[mt][kc][3] = pack2<Elem>(s_acc[mt][2 * kc + 1][2], s_acc[mt][2 * kc + 1][3]);
      }

    // O += P·V, P straight from registers
    {
      const LdmatrixAddr<C> v_addr(tV, k_row0 + (lane & 7) + (((lane >> 3) & 1) << 3), lane >> 4);
#pragma unroll
      for (int kc = 0; kc < kNT / 2; ++kc) {
#pragma unroll
        for (int nd2 = 0; nd2 < kHeadDim / 16; ++nd2) {
          uint32_t vb[4];
          ldmatrix_x4_trans(vb, v_addr.at(nd2, kc));
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt) {
            mma_16816<Elem>(o_acc[mt][2 * nd2], p_frag[mt][kc], vb[0], vb[1]);
            mma_16816<Elem>(o_acc[mt][2 * nd2 + 1], p_frag[mt][kc], vb[2], vb[3]);
          }
        }
      }
    }

    __syncthreads();  // this stage is refilled by a later prefetch
    stage = stage + 1 == kStages ? 0 : stage + 1;
    --n_pending;
  }
  cp_async_wait<0>();

  // ---- full row sums; m in log2 units from here on ----
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      float l = l_row[mt][hf];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      l_row[mt][hf] = l;
      if constexpr (!kGeneral) m_row[mt][hf] *= c_log2;
    }

  // ---- merge the key-slice warps (decode): (m, l, O) = ⊕_w (m_w, l_w, O_w) ----
  if constexpr (C::kWarpsN > 1) {
    __syncthreads();  // every warp is done with the K/V stages
    float* red = reinterpret_cast<float*>(sK);
    constexpr int kRowFloats = kHeadDim + 2;
    float* mine = red + wn * 16 * kRowFloats;
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      float* row = mine + (g + hf * 8) * kRowFloats;
      if (tq == 0) row[kHeadDim] = m_row[0][hf], row[kHeadDim + 1] = l_row[0][hf];
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) {
        row[dt * 8 + 2 * tq] = o_acc[0][dt][2 * hf];
        row[dt * 8 + 2 * tq + 1] = o_acc[0][dt][2 * hf + 1];
      }
    }
    __syncthreads();
    if (wn != 0) return;
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int rr = g + hf * 8;
      float mx = -INFINITY;
#pragma unroll
      for (int x = 0; x < C::kWarpsN; ++x) mx = fmaxf(mx, red[(x * 16 + rr) * kRowFloats + kHeadDim]);
      const float m_use = mx == -INFINITY ? 0.0f : mx;
      float l = 0.0f;
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) o_acc[0][dt][2 * hf] = o_acc[0][dt][2 * hf + 1] = 0.0f;
#pragma unroll
      for (int x = 0; x < C::kWarpsN; ++x) {
        const float* row = red + (x * 16 + rr) * kRowFloats;
        const float f = fast_exp2(row[kHeadDim] - m_use);
        l += f * row[kHeadDim + 1];
#pragma unroll
        for (int dt = 0; dt < kDT; ++dt) {
          o_acc[0][dt][2 * hf] += f * row[dt * 8 + 2 * tq];
          o_acc[0][dt][2 * hf + 1] += f * row[dt * 8 + 2 * tq + 1];
        }
      }
      m_row[0][hf] = mx;
      l_row[0][hf] = l;
    }
  }

  // ---- epilogue ----
  flash_store_rows<kMT, kDT, kHeadDim, kGeneral>(p, w, q_row0, g, tq, m_row, l_row, o_acc);
}

// Launches one instance; the shared-memory opt-in is set once per device.
template <class Elem, int kHeadDim, bool kDecode, bool kGeneral>
struct FlashInstance {
  using C = FlashConfig<Elem, kHeadDim, kDecode, kGeneral>;

  static void configure() {
    static std::atomic<int> configured[kCachedDevices] = {};
    once_per_device(configured, [] {
      check(cudaFuncSetAttribute(flash_attend_kernel<Elem, kHeadDim, kDecode, kGeneral>,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes),
            "cudaFuncSetAttribute(flash_attend_kernel, max dynamic shared memory)");
      return 1;
    });
  }
  static void launch(const AttendParams& p, cudaStream_t stream) {
    configure();
    const dim3 grid(unsigned(p.seg.unit_begin[p.seg.n]), unsigned(p.batch * p.hkv), unsigned(p.n_splits));
    if (grid.x == 0) return;
    cuda::launch("flash_attend_kernel", flash_attend_kernel<Elem, kHeadDim, kDecode, kGeneral>, grid, dim3(C::kThreads),
           C::kSmemBytes, stream, p);
  }
  // Resident blocks per SM (a decode call sizes its split-KV from it before its first launch, so
  // the query is asked once per device rather than in every call's latency).
  static int blocks_per_sm() {
    configure();
    static std::atomic<int> cached[kCachedDevices] = {};
    return once_per_device(cached, [] {
      int n = 0;
      check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, flash_attend_kernel<Elem, kHeadDim, kDecode, kGeneral>,
                                                          C::kThreads, C::kSmemBytes),
            "cudaOccupancyMaxActiveBlocksPerMultiprocessor(flash_attend_kernel)");
      return n;
    });
  }
};

// Runs `f` with the FlashInstance of (variant, element type).
template <int kHeadDim, class F>
auto with_flash_instance(FlashVariant variant, bool bf16, F&& f) {
  switch (variant) {
    case FlashVariant::decode_plain:
      return bf16 ? f(FlashInstance<__nv_bfloat16, kHeadDim, true, false>{})
                  : f(FlashInstance<__half, kHeadDim, true, false>{});
    case FlashVariant::prefill_general:
      return bf16 ? f(FlashInstance<__nv_bfloat16, kHeadDim, false, true>{})
                  : f(FlashInstance<__half, kHeadDim, false, true>{});
    default:
      return bf16 ? f(FlashInstance<__nv_bfloat16, kHeadDim, false, false>{})
                  : f(FlashInstance<__half, kHeadDim, false, false>{});
  }
}

template <int kHeadDim>
void launch_flash(const AttendParams& p, FlashVariant variant, bool bf16, cudaStream_t stream) {
  with_flash_instance<kHeadDim>(variant, bf16, [&](auto inst) { decltype(inst)::launch(p, stream); return 0; });
}

template <int kHeadDim>
int flash_blocks_per_sm(FlashVariant variant, bool bf16) {
  return with_flash_instance<kHeadDim>(variant, bf16, [&](auto inst) { return decltype(inst)::blocks_per_sm(); });
}

}  // namespace longattn::cuda
