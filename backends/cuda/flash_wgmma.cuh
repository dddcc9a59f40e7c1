// FLASH prefill on Hopper (sm_90a): the plain variant of flash_kernel.cuh (same blocks, mask
// classification, softmax and epilogue) with the matrix products on warpgroup MMA (wgmma).
//
// A block has kWarpgroups warpgroups of 4 warps; warpgroup wg owns the 64 packed rows
// 64·wg … 64·wg + 63 of the block's kBlockM. Per key tile of kBlockN keys:
//   S = Q·Kᵀ   wgmma m64 n=kBlockN k16, Q and K from shared memory (K-major, 128-byte swizzle)
//   softmax    in registers, exactly as the mma.sync kernel (the accumulator layouts agree)
//   O += P·V   wgmma m64 n=d k16, P from registers (the S accumulators repacked to 16 bits), V
//              from shared memory read transposed (its rows hold the head-dim axis)
// The products of consecutive tiles overlap: S(t) and P(t−1)·V(t−1) are issued together and the
// softmax of tile t runs while P(t−1)·V(t−1) is still on the tensor cores. K/V tiles are fetched
// with cp.async into kStages stages; a stage is refilled only after the block barrier that follows
// every warpgroup's last read of it (wgmma.wait_group 0).
//
// Shared-memory tiles (Q, each K and V stage) are stored in 128-byte swizzle atoms: the head dim
// is cut into 64-element (128-byte) slices; slice a of row r sits at a·rows·128 + r·128, and its
// 16-byte chunk c at ((c ^ (r % 8))·16) within the row. Descriptors (wgmma_sm90.cuh):
//   K-major (Q, K): start = tile + slice·rows·128 + 32·(k-step within the slice),
//                   stride byte offset 1024 (8 rows of 128 bytes), leading offset unused
//   V (N-major):    start = tile + 16 keys·128·(key step), leading byte offset rows·128 (next
//                   64-wide head-dim slice), stride byte offset 1024 (next 8 keys)
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "attend_launch.hpp"
#include "attend_params.hpp"
#include "cuda_check.hpp"
#include "launch.cuh"
#include "device_dtype.cuh"
#include "flash_block.cuh"
#include "flash_epilogue.cuh"
#include "flash_traits.hpp"
#include "mma_sm80.cuh"
#include "barriers_sm90.cuh"
#include "wgmma_sm90.cuh"

namespace longattn::cuda {

template <class Elem, int kHeadDim>
struct WgmmaConfig {
  static constexpr int kBlockM = WgmmaTraits<kHeadDim>::kBlockM;
  static constexpr int kBlockN = WgmmaTraits<kHeadDim>::kBlockN;
  static constexpr int kStages = WgmmaTraits<kHeadDim>::kStages;
  static constexpr bool kPingPong = WgmmaTraits<kHeadDim>::kPingPong;
  static constexpr int kWarpgroups = kBlockM / 64;
  static constexpr int kThreads = 128 * kWarpgroups;
  static constexpr int kChunks = kHeadDim / 8;  // 16-byte chunks per row
  static constexpr int kNTiles = kBlockN / 8;   // n8 slices of S
  static constexpr int kDTiles = kHeadDim / 8;  // n8 slices of O
  static constexpr int kQBytes = kBlockM * kHeadDim * 2;
  static constexpr int kKVBytes = kBlockN * kHeadDim * 2;
  static constexpr int kSmemBytes = wgmma_smem_bytes<kHeadDim>();
  static_assert(kHeadDim % 64 == 0, "128-byte swizzle slices");
  static_assert(kStages >= 3, "K(t) and V(t - 1) in use while tile t + 1 loads");
  static_assert(kBlockM % 64 == 0 && kBlockN % 16 == 0, "tile shapes");

  // byte offset of 16-byte chunk `chunk` of row `row` in a tile of `rows` rows
  __device__ static __forceinline__ uint32_t offset(int rows, int row, int chunk) {
    return uint32_t((chunk >> 3) * rows * 128 + row * 128 + (((chunk & 7) ^ (row & 7)) << 4));
  }
};

// Pairwise trees over a register array (a[0] ends with the result), unrolled at every width so the
// array stays in registers.
template <int W>
__device__ __forceinline__ void tree_max(float* a) {
#pragma unroll
  for (int x = 0; x < W; ++x) a[x] = fmaxf(a[x], a[x + W]);
  if constexpr (W > 1) tree_max<W / 2>(a);
}
template <int W>
__device__ __forceinline__ void tree_sum(float* a) {
#pragma unroll
  for (int x = 0; x < W; ++x) a[x] += a[x + W];
  if constexpr (W > 1) tree_sum<W / 2>(a);
}

template <class Elem, int kHeadDim>
__global__ void __launch_bounds__(WgmmaConfig<Elem, kHeadDim>::kThreads, 1)
    flash_wgmma_kernel(const __grid_constant__ AttendParams p) {
  pdl_begin();
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = WgmmaConfig<Elem, kHeadDim>;
  constexpr int kBlockM = C::kBlockM, kBlockN = C::kBlockN, kStages = C::kStages;
  constexpr int kNT = C::kNTiles, kDT = C::kDTiles, kChunks = C::kChunks;

  extern __shared__ __align__(128) unsigned char smem_raw[];
  // 1024-byte aligned base (swizzle atoms), then Q, K stages, V stages, query positions
  const uint32_t raw_addr = smem_addr(smem_raw);
  unsigned char* smem = smem_raw + (((raw_addr + 1023u) & ~1023u) - raw_addr);
  const uint32_t sQ = smem_addr(smem);
  const uint32_t sK = sQ + C::kQBytes;
  const uint32_t sV = sK + kStages * C::kKVBytes;
  int64_t* sQPos = reinterpret_cast<int64_t*>(smem + C::kQBytes + 2 * kStages * C::kKVBytes);
  // per stage: "full" completes when every thread's copies into it landed (cp.async arrives),
  // "empty" when every thread is done reading it
  __shared__ __align__(8) uint64_t s_full[kStages], s_empty[kStages];
  if (threadIdx.x == 0) {
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      mbar_init(smem_addr(&s_full[s]), C::kThreads);
      mbar_init(smem_addr(&s_empty[s]), C::kThreads);
    }
  }
  __syncthreads();  // the barriers exist before anyone arrives on them

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int wg = warp >> 2;  // warpgroup
  const int g = lane >> 2, tq = lane & 3;
  const int q_row0 = wg * 64 + (warp & 3) * 16;  // this warp's first row in the block

  const FlashBlock w = flash_block<kBlockM, kBlockN, false>(p);

  // ---- Q tile → shared memory (zero rows past the segment), row positions ----
  for (int idx = tid; idx < kBlockM * kChunks; idx += C::kThreads) {
    const int row = idx / kChunks, c = idx % kChunks;
    bool valid;
    const char* src = q_chunk_source<false>(p, w, row, c, valid);
    cp_async_16(smem + C::offset(kBlockM, row, c), src, valid);
  }
  cp_async_commit();
  for (int row = tid; row < kBlockM; row += C::kThreads) {
    const int32_t r = w.r0 + row;
    // packed_row(p, w, r).i in a 64-bit sum, so that q_pos0 + seg_q0 is computed once
    sQPos[row] = r < w.seg_rows ? p.q_pos0 + w.seg_q0 + r / p.group : 0;
  }

  // ---- K/V tile t → stage (zero rows past the segment) ----
  const char* k_head = p.k + w.b * p.k_stride[0] + w.hk * p.k_stride[2];
  const char* v_head = p.v + w.b * p.v_stride[0] + w.hk * p.v_stride[2];
  // Each thread copies one fixed 16-byte chunk of rows ld_row0 + kRowsPerPass·x: the rows of one
  // thread share their swizzle (kRowsPerPass is a multiple of 8), so shared offsets and global
  // addresses advance by constants and one address per tile is computed.
  constexpr int kRowsPerPass = C::kThreads / kChunks;
  static_assert(C::kThreads % kChunks == 0 && kRowsPerPass % 8 == 0 && kBlockN % kRowsPerPass == 0,
                "whole rows per pass");
  const int ld_row0 = tid / kChunks, ld_c = tid % kChunks;
  const uint32_t ld_off0 = C::offset(kBlockN, ld_row0, ld_c);
  const int64_t k_step = int64_t(kRowsPerPass) * p.k_stride[1], v_step = int64_t(kRowsPerPass) * p.v_stride[1];
  const char* k_mine = k_head + int64_t(ld_row0) * p.k_stride[1] + ld_c * 16;
  const char* v_mine = v_head + int64_t(ld_row0) * p.v_stride[1] + ld_c * 16;
  auto load_kv = [&](int32_t t, int stage) {
    unsigned char* dk = smem + C::kQBytes + stage * C::kKVBytes + ld_off0;
    unsigned char* dv = dk + kStages * C::kKVBytes;
    const int32_t j_first = w.kb + t * kBlockN;
    const int32_t n_rows = w.ke - j_first - ld_row0;  // this thread's rows x·kRowsPerPass < n_rows exist
    const char* ks = k_mine + int64_t(j_first) * p.k_stride[1];
    const char* vs = v_mine + int64_t(j_first) * p.v_stride[1];
#pragma unroll
    for (int x = 0; x < kBlockN / kRowsPerPass; ++x) {
      const bool valid = x * kRowsPerPass < n_rows;
      cp_async_16(dk + x * kRowsPerPass * 128, valid ? ks + x * k_step : p.k, valid);
      cp_async_16(dv + x * kRowsPerPass * 128, valid ? vs + x * v_step : p.v, valid);
    }
  };

  // ---- softmax state (one m16 row tile per warp: the epilogue's kMT = 1) ----
  float o_acc[1][kDT][4];
  float m_row[1][2], l_row[1][2];
#pragma unroll
  for (int dt = 0; dt < kDT; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o_acc[0][dt][e] = 0.0f;
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) m_row[0][hf] = -INFINITY, l_row[0][hf] = 0.0f;
  const float c_log2 = p.scale_log2;
  if (p.st_m) {
    // fold the incoming running state in (l into lane tq = 0's partial)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int32_t r = w.r0 + q_row0 + g + hf * 8;
      if (r >= w.seg_rows) continue;
      const PackedRow q = packed_row<false>(p, w, r);
      const int64_t idx = q.index(p, w, q.phys);
      m_row[0][hf] = p.st_m[idx] / c_log2;
      l_row[0][hf] = tq == 0 ? p.st_l[idx] : 0.0f;
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) {
        const float2 a = *reinterpret_cast<const float2*>(p.st_acc + idx * kHeadDim + dt * 8 + 2 * tq);
        o_acc[0][dt][2 * hf] = a.x;
        o_acc[0][dt][2 * hf + 1] = a.y;
      }
    }
  }

  // ---- main loop ----
  // The two warpgroups run decoupled: a stage is waited for on its "full" barrier and given back
  // on its "empty" barrier (mbarriers), not with block-wide barriers, and the warpgroups take turns
  // issuing their products (named barriers 1 and 2), so one's softmax overlaps the other's
  // matrix products. Within a warpgroup, step t issues S(t) = Q·K(t)ᵀ and O += P(t−1)·V(t−1)
  // together and runs the softmax of tile t while P·V still runs. Tile t reads K(t) and
  // V(t − 1): two stages in use, the others load ahead (kStages − 2 tiles).
  // Every thread walks the live tiles twice with the same iterator: once to load, once to consume.
  TileKind kind_issue;
  int32_t full_end_issue = 0;
  int32_t t_issue = flash_next_tile_run<kBlockN>(p, w, w.t_begin, kind_issue, full_end_issue);
  int n_filled = 0;
  auto issue = [&]() {
    if (t_issue >= w.t_end) return;
    const int st = n_filled % kStages, round = n_filled / kStages;
    if (round > 0) mbar_wait(smem_addr(&s_empty[st]), uint32_t(round - 1) & 1u);
    load_kv(t_issue, st);
    cp_async_mbar_arrive_noinc(smem_addr(&s_full[st]));
    ++n_filled;
    t_issue = flash_next_tile_run<kBlockN>(p, w, t_issue + 1, kind_issue, full_end_issue);
  };
#pragma unroll
  for (int s = 0; s < kStages - 2; ++s) issue();
  cp_async_wait<0>();          // Q (and what loaded already) landed for this thread's copies
  fence_proxy_async_shared();  // … visible to the tensor cores
  __syncthreads();             // every thread's Q copies

  // descriptors of this warpgroup's Q rows (k-step kk: slice kk / 4, 32 bytes per step in it)
  const uint32_t q_base = sQ + uint32_t(wg * 64 * 128);
  float(&o_flat)[kDT * 4] = reinterpret_cast<float(&)[kDT * 4]>(o_acc[0]);
  auto issue_pv = [&](const uint32_t (&pf)[kNT / 2][4], int v_stage) {
    // O += P·V (V read transposed: 16 keys per step, the head dim as N)
    const uint32_t tV = sV + uint32_t(v_stage * C::kKVBytes);
#pragma unroll
    for (int kc = 0; kc < kNT / 2; ++kc) {
      const uint64_t db = wgmma_desc_sw128(tV + uint32_t(kc * 16 * 128), uint32_t(kBlockN * 128), 1024);
      if constexpr (kDT == 16)
        wgmma_m64n128k16_rs<Elem>(o_flat, pf[kc], db, 1);
      else
        wgmma_m64n64k16_rs<Elem>(o_flat, pf[kc], db, 1);
    }
    wgmma_commit();
  };
  uint32_t p_frag[kNT / 2][4];  // P of the previous tile as 16-bit A fragments
  float s_acc[kNT][4];
  float(&s_flat)[kNT * 4] = reinterpret_cast<float(&)[kNT * 4]>(s_acc);
  // S = Q·K(stage)ᵀ: this warpgroup's 64 rows × kBlockN keys (committed, not waited for)
  auto issue_s = [&](int k_stage) {
    const uint32_t tK = sK + uint32_t(k_stage * C::kKVBytes);
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
      const uint32_t slice = uint32_t((kk >> 2) * 128), step = uint32_t((kk & 3) * 32);
      const uint64_t da = wgmma_desc_sw128(q_base + slice * kBlockM + step, 16, 1024);
      const uint64_t db = wgmma_desc_sw128(tK + slice * kBlockN + step, 16, 1024);
      if constexpr (kNT == 16)
        wgmma_m64n128k16_ss<Elem>(s_flat, da, db, kk);
      else
        wgmma_m64n64k16_ss<Elem>(s_flat, da, db, kk);
    }
    wgmma_commit();
  };
  // Online softmax of tile t (see flash_kernel.cuh: raw logits, every exponent scaled by c in one
  // FFMA); P goes straight to 16-bit A fragments (n8 slices 2·kc and 2·kc + 1 are key step kc).
  // The S registers are only read: writing them while P(t−1)·V(t−1) may still run would make
  // the compiler serialize the products. Masked logits become −inf on the fly.
  auto softmax = [&](int32_t t, TileKind kind, float (&alpha)[2], uint32_t (&p_next)[kNT / 2][4]) {
    const int32_t j_tile = w.kb + t * kBlockN;
    auto run = [&](auto masked) {
      ColumnBounds cb[2];
      if constexpr (decltype(masked)::value) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf)  // key column c of the tile sits at k_pos0 + j_tile + c
          cb[hf] = column_bounds(p.mask, sQPos[q_row0 + g + hf * 8], p.k_pos0 + j_tile, w.ke - j_tile, kBlockN);
      }
      auto logit = [&](int nt, int hf, int e) {
        if constexpr (decltype(masked)::value) {
          const int col = nt * 8 + 2 * tq + e;
          const bool ok = (col >= cb[hf].lo && col <= cb[hf].hi) || col < cb[hf].g_end;
          return ok ? s_acc[nt][2 * hf + e] : -INFINITY;
        } else {
          return s_acc[nt][2 * hf + e];
        }
      };
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        float part[kNT];
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) part[nt] = fmaxf(logit(nt, hf, 0), logit(nt, hf, 1));
        tree_max<kNT / 2>(part);
        float mx = fmaxf(m_row[0][hf], part[0]);
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_use = mx == -INFINITY ? 0.0f : mx * c_log2;  // a row with nothing allowed yet
        alpha[hf] = fast_exp2(fmaf(m_row[0][hf], c_log2, -m_use));
        m_row[0][hf] = mx;
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          const float p0 = fast_exp2(fmaf(logit(nt, hf, 0), c_log2, -m_use));
          const float p1 = fast_exp2(fmaf(logit(nt, hf, 1), c_log2, -m_use));
          part[nt] = p0 + p1;
          p_next[nt >> 1][(nt & 1) * 2 + hf] = pack2<Elem>(p0, p1);
        }
        tree_sum<kNT / 2>(part);
        l_row[0][hf] = fmaf(l_row[0][hf], alpha[hf], part[0]);
      }
    };
    if (kind == TileKind::partial || j_tile + kBlockN > w.ke)
      run(std::true_type{});
    else
      run(std::false_type{});
  };
  // O = α·O (all products into O done), P(t) becomes the pending P
  auto rescale = [&](const float (&alpha)[2], const uint32_t (&p_next)[kNT / 2][4]) {
    if (__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f)) {
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt)
#pragma unroll
        for (int e = 0; e < 4; ++e) o_acc[0][dt][e] *= alpha[e >> 1];
    }
#pragma unroll
    for (int kc = 0; kc < kNT / 2; ++kc)
#pragma unroll
      for (int x = 0; x < 4; ++x) p_frag[kc][x] = p_next[kc][x];
  };

  // turn-taking of the two warpgroups' product issue: warpgroup 1 lets warpgroup 0 go first
  if (C::kPingPong && wg == 1) named_barrier_arrive(1, C::kThreads);
#pragma unroll
  for (int kc = 0; kc < kNT / 2; ++kc)
#pragma unroll
    for (int x = 0; x < 4; ++x) p_frag[kc][x] = 0u;
  // Every step has the same shape (branches between the products make the compiler serialize
  // them): the first tile's "previous" P is zero against its own (finite) V.
  TileKind kind;
  int32_t full_end = 0;
  int32_t t = flash_next_tile_run<kBlockN>(p, w, w.t_begin, kind, full_end);
  int n_used = 0, prev_stage = -1;
  while (t < w.t_end) {
    const int32_t t_cur = t;
    const TileKind kind_cur = kind;
    t = flash_next_tile_run<kBlockN>(p, w, t + 1, kind, full_end);
    const int st = n_used % kStages;
    mbar_wait(smem_addr(&s_full[st]), uint32_t(n_used / kStages) & 1u);
    fence_proxy_async_shared();  // the copies, seen through the barrier, are visible to the tensor cores
    issue();                     // the tile kStages − 2 ahead
    // pin the operands' definitions before the fence and their uses after the waits (the
    // compiler does not know that the products run asynchronously)
    wgmma_hold(s_flat);
    wgmma_hold(o_flat);
    wgmma_hold(reinterpret_cast<uint32_t(&)[kNT * 2]>(p_frag));
    if (C::kPingPong) named_barrier_sync(1 + wg, C::kThreads);  // this warpgroup's turn
    wgmma_fence();
    issue_s(st);
    issue_pv(p_frag, prev_stage >= 0 ? prev_stage : st);
    if (C::kPingPong) named_barrier_arrive(2 - wg, C::kThreads);  // the other warpgroup's turn
    wgmma_wait<1>();  // S(t) done; P(t−1)·V(t−1) may still run
    wgmma_hold(s_flat);
    float alpha[2];
    uint32_t p_next[kNT / 2][4];
    softmax(t_cur, kind_cur, alpha, p_next);
    wgmma_wait<0>();  // O holds every earlier tile now
    wgmma_hold(reinterpret_cast<uint32_t(&)[kNT * 2]>(p_frag));
    wgmma_hold(o_flat);
    if (prev_stage >= 0) mbar_arrive(smem_addr(&s_empty[prev_stage]));  // K and V of tile t − 1 read
    rescale(alpha, p_next);
    prev_stage = st;
    ++n_used;
  }
  if (C::kPingPong && wg == 0) named_barrier_sync(1, C::kThreads);  // warpgroup 1's last turn signal
  if (prev_stage >= 0) {  // the last tile's P·V
    wgmma_hold(o_flat);
    wgmma_hold(reinterpret_cast<uint32_t(&)[kNT * 2]>(p_frag));
    wgmma_fence();
    issue_pv(p_frag, prev_stage);
    wgmma_wait<0>();
    wgmma_hold(o_flat);
  }
  cp_async_wait<0>();

  // ---- full row sums; m in log2 units from here on ----
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    float l = l_row[0][hf];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    l_row[0][hf] = l;
    m_row[0][hf] *= c_log2;
  }
  flash_store_rows<1, kDT, kHeadDim, false>(p, w, q_row0, g, tq, m_row, l_row, o_acc);
#endif
}

template <class Elem, int kHeadDim>
struct WgmmaInstance {
  using C = WgmmaConfig<Elem, kHeadDim>;
  static void configure() {
    static std::atomic<int> configured[kCachedDevices] = {};
    once_per_device(configured, [] {
      check(cudaFuncSetAttribute(flash_wgmma_kernel<Elem, kHeadDim>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 C::kSmemBytes),
            "cudaFuncSetAttribute(flash_wgmma_kernel, max dynamic shared memory)");
      return 1;
    });
  }
  static void launch(const AttendParams& p, cudaStream_t stream) {
    configure();
    const dim3 grid(unsigned(p.seg.unit_begin[p.seg.n]), unsigned(p.batch * p.hkv), unsigned(p.n_splits));
    if (grid.x == 0) return;
    cuda::launch("flash_wgmma_kernel", flash_wgmma_kernel<Elem, kHeadDim>, grid, dim3(C::kThreads), C::kSmemBytes, stream, p);
  }
  static int blocks_per_sm() {
    configure();
    static std::atomic<int> cached[kCachedDevices] = {};
    return once_per_device(cached, [] {
      int n = 0;
      check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, flash_wgmma_kernel<Elem, kHeadDim>, C::kThreads,
                                                          C::kSmemBytes),
            "cudaOccupancyMaxActiveBlocksPerMultiprocessor(flash_wgmma_kernel)");
      return n;
    });
  }
};

template <int kHeadDim>
void launch_flash_wgmma(const AttendParams& p, bool bf16, cudaStream_t stream) {
  if (bf16)
    WgmmaInstance<__nv_bfloat16, kHeadDim>::launch(p, stream);
  else
    WgmmaInstance<__half, kHeadDim>::launch(p, stream);
}

template <int kHeadDim>
int flash_wgmma_blocks_per_sm(bool bf16) {
  return bf16 ? WgmmaInstance<__nv_bfloat16, kHeadDim>::blocks_per_sm()
              : WgmmaInstance<__half, kHeadDim>::blocks_per_sm();
}

}  // namespace longattn::cuda
