// attend on Vulkan: picks the kernel (decode, cooperative-matrix or portable) and its tile sizes
// for the device, lays out the work items (segments × query tiles × head blocks × KV heads ×
// batch), decides split-KV, and records shaders/attend_decode.comp, shaders/attend_coopmat.comp
// or shaders/attend.comp (split-KV: + shaders/attend_combine.comp).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "error.hpp"
#include "quant.hpp"
#include "vulkan_backend.hpp"

namespace longattn::vk {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int32_t kThreadsPerWorkgroup = 128;

// std430 mirror of `Args` in shaders/attend_common.glsl.
struct AttendGpuArgs {
  int64_t n_groups;
  uint64_t q, k, v, o, lse;
  uint64_t st_m, st_l, st_acc;
  uint64_t q_pos, k_pos, q_rows, k_rows, key_logw, q_group, k_group;
  uint64_t part;
  int64_t q_stride[4], k_stride[4], v_stride[4], o_stride[4], lse_stride[4];
  int64_t n_q, n_k, q_pos0, k_pos0;
  int64_t window_left, window_right, n_global;
  int64_t n_tiles, n_segments, table_offset;
  float qscale, softcap;
  int32_t causal, hq, hkv, group, hg, tr, n_head_blocks;
  int32_t n_splits;
  int32_t n_tail;
  uint64_t add_mask, alibi_slopes, sinks;
  int64_t mask_stride[4];
  uint64_t tail_k_rows, tail_key_logw, tail_k_group;
};

// Split-KV phases (PHASE in attend.comp); the splits are merged by attend_combine.comp.
constexpr int32_t kPhaseDirect = 0, kPhasePartial = 1;
// Workgroups a dispatch should have for the device to be busy; below half of it, work items are
// split over their keys (each split at least kMinTilesPerSplit key tiles).
constexpr int64_t kBusyWorkgroupsGpu = 1024;
constexpr int64_t kBusyWorkgroupsCpu = 32;
constexpr int64_t kMinTilesPerSplit = 2;
constexpr int64_t kMaxSplits = 256;
constexpr uint64_t kVectorBytes = 16;

// Cooperative-matrix kernel (attend_coopmat.comp): subgroups of 32 lanes, 16 query rows each,
// 16×16×16 fragments; the tile (subgroups, keys per tile) is the first of kCoopmatTiles whose
// shared memory fits.
constexpr int32_t kCoopmatLanes = 32;
constexpr int32_t kCoopmatFragment = 16;
constexpr int32_t kCoopmatMaxDim = 128;  // larger head dims spill registers: portable kernel
constexpr int32_t kCoopmatRightOperandMark = 16;  // attend_coopmat.comp's KB_MARK (its default)
struct CoopmatTile {
  int32_t subgroups, bk;
  int32_t row_fragments = 1;  // 16-row fragments per subgroup (1 or 2)
  bool q_shared = false;      // Q fragments read from shared memory per tile (not held in registers)
  int32_t kv_pipe = 1;        // K/V staging: 0 none, 1 half a tile ahead, 2 a whole tile ahead
  bool reg_softmax = false;   // softmax on the accumulators in registers (needs a known layout)
  bool transposed = false;    // with reg_softmax: Sᵀ = K·Qᵀ, Oᵀ += Vᵀ·Pᵀ (needs a transposable layout)
  bool khr = false;           // with reg_softmax, not transposed: the KHR build (attend_coopmat_khr)
  bool pingpong = false;      // with reg_softmax, not transposed, the plain case, an even number of
                              // subgroups: half of them compute each softmax a step later
  int32_t rows() const { return kCoopmatFragment * row_fragments * subgroups; }
};
// Measured on an H100 (docs/PERFORMANCE_VULKAN.md): the KHR build with 8 subgroups × 64 keys, K/V
// loaded a whole tile ahead and the softmax in registers is the fastest for long key ranges (its
// matrices carry their roles, so no operand is converted by MOVM); where the device has no
// VK_KHR_cooperative_matrix, the NV build's transposed 8 × 64 follows, then 8 × 32 not transposed
// for layouts that do not allow the transposed tile, the same through shared memory for devices
// whose fragment layout is not known, the others for devices with less shared memory. Calls whose
// work items visit at most kCoopmatShortSpan keys take the same kinds of tile: plain segmented
// ones (HYPER's exact leaves) 8 × 64, and the general ones (its block and sample calls of 256 keys:
// gathers, explicit positions, log-weights or exclusion groups) 8 × 64 too where their row and key
// facts fit next to 64 keys (the KHR build, 48 KB), else 8 × 32.
constexpr CoopmatTile kCoopmatTiles[] = {{8, 64, 1, false, 2, true, false, true},
                                         {8, 64, 1, false, 2, true, true},
                                         {8, 32, 1, false, 2, true},
                                         {8, 32, 1, false, 2},
                                         {4, 48},
                                         {4, 32},
                                         {4, 16}};
constexpr CoopmatTile kCoopmatTilesShortSegmented[] = {{8, 64, 1, false, 2, true, false, true},
                                                       {8, 32, 1, false, 2, true, false, true},
                                                       {8, 32, 1, false, 2, true, true},
                                                       {8, 32, 1, false, 1, true},
                                                       {8, 32},
                                                       {4, 16}};
constexpr CoopmatTile kCoopmatTilesShortGeneral[] = {{8, 64, 1, false, 2, true, false, true},
                                                     {8, 32, 1, false, 2, true, false, true},
                                                     {8, 32, 1, false, 2, true, true},
                                                     {8, 32, 1, false, 1, true},
                                                     {8, 32},
                                                     {4, 32},
                                                     {4, 16}};
// Plain calls over long key ranges without a window (full attention, causal): the same tile with
// half of the subgroups a softmax behind (ping-pong). Measured on an H100: full n = 4096 1.586 →
// 1.42 ms, causal n = 16384 11.12 → 10.32 – 10.45 ms (once full tiles no longer go through
// classify()); not kept for windows (SPARSE window 4096: 5.86 – 5.91 → 5.98 – 6.03 ms) or HYPER's
// leaves (3.23 → 3.48 ms).
constexpr CoopmatTile kCoopmatTilesPlain[] = {{8, 64, 1, false, 2, true, false, true, true}};
// Plain calls with a window (SPARSE): 48 keys per tile. Measured on an H100 (window 4096 + 4
// sinks, n = 65536): 24.69 – 24.73 ms against 24.97 – 25.05 ms with 64 keys (8 × 80: 29.15 ms).
constexpr CoopmatTile kCoopmatTilesWindowed[] = {{8, 48, 1, false, 2, true, false, true}};
constexpr int64_t kCoopmatShortSpan = 4096;
// The cooperative-matrix kernel has no split-KV: it runs when the call has at least this many
// work items (otherwise the portable kernel with split-KV keeps the device busier).
constexpr int64_t kCoopmatMinItems = 128;

// Decode kernel (attend_decode.glsl): WG lanes in clusters of `lanes` per key, `heads` KV heads
// per workgroup, `keys` keys per cluster and step, `bq` query rows per work item. Its split
// partials are finished by attend_combine.comp.
constexpr int32_t kDecodeThreads = 128;
constexpr int32_t kDecodeMaxRows = 16;        // query rows per work item
constexpr int32_t kDecodeAutoRows = 8;        // automatic choice: at most this many rows per KV head
constexpr int32_t kDecodeMinLanes = 4;        // fewer lanes per key: rows too short to spread
constexpr int32_t kDecodeMaxLanes = 32;
constexpr int32_t kDecodeMaxLaneFloats = 64;  // q and acc registers per lane: bq·(D + DV) / lanes
// Registers per lane the key loop may hold (decode_lane_registers); the plan takes the most keys
// per step within it, loaded ahead. H100 (NVIDIA driver), f16 D = 128, 4 rows per item, steady
// clock: 1 / 2 / 3 keys per step (92 / 112 / 132 registers) ran the kernel in 0.566 / 0.375 /
// 0.332 ms; larger values were not measured at a steady clock, and the budget keeps them out.
constexpr int32_t kDecodeLaneRegisters = 136;
constexpr int32_t kDecodeMaxKeys = 8;
constexpr int32_t kDecodeMaxDim = 256;
constexpr int64_t kDecodeBusyGpu = 512;       // workgroups (work items / heads × splits) to aim for
constexpr int64_t kDecodeBusyCpu = 32;
constexpr int64_t kDecodeMinKeysPerSplit = 128;
constexpr int64_t kDecodeMaxSplits = 1024;

// attend_combine.comp: CT column lanes × SP split lanes per workgroup.
constexpr int32_t kCombineColumnLanes = 16;
constexpr int32_t kCombineSplitLanes = 16;

struct DecodePlan {
  int32_t bq = 0, lanes = 0, keys = 0, heads = 1;
  int32_t qe = 0, ae = 0, uk = 0, uv = 0;  // q / acc columns and K / V vectors per lane
  bool subgroup = false;  // reduction by subgroup shuffles (else shared memory)
  bool prefetch = true;   // the next step's K/V loaded ahead of this step's arithmetic
};

// Registers per lane held across the key loop of attend_decode.glsl: q and acc, m and l, the
// step's scores and its K/V vectors (twice when loaded ahead).
int32_t decode_lane_registers(const DecodePlan& p) {
  return p.bq * (p.qe + p.ae) + 2 * p.bq + p.keys * p.bq + (p.prefetch ? 2 : 1) * p.keys * (p.uk + p.uv) * 4;
}

// Shared memory of attend_decode.glsl (keep in step with its `shared` declarations).
size_t decode_shared_bytes(const DecodePlan& p, int32_t dv) {
  const size_t clusters = size_t(kDecodeThreads / p.lanes);
  const bool merge = clusters > size_t(p.heads);  // several key slots per head
  size_t floats = merge ? clusters * size_t(p.bq) * 2 + size_t(p.heads) * size_t(p.bq) * size_t(dv) : 2;
  if (!p.subgroup) floats += size_t(p.keys) * size_t(p.bq) * size_t(kDecodeThreads);
  return 4 * floats;
}

// Tile shape of the portable kernel.
struct TileShape {
  int32_t bq, bk, threads, nc;
};

// Shared memory of attend.comp for a tile shape (keep in step with its `shared` declarations).
size_t shared_bytes(int32_t bq, int32_t bk, int32_t d, int32_t dv) {
  const size_t floats = size_t(bq) * d + size_t(bk) * (d + 1) + size_t(bk) * dv + size_t(bq) * (bk + 1) +
                        4 * size_t(bq) + size_t(bk);  // ... m, l, α, bias scale per row; log-weights
  const size_t int64s = 2 * size_t(bq) + 2 * size_t(bk) + 4;
  const size_t ints = 2 * size_t(bq) + size_t(bk) + size_t(bq) + 2;  // groups, heads, group ids, valid flags,
                                                                      // mask flags
  return 4 * floats + 8 * int64s + 4 * ints;
}

// Shared memory of attend_coopmat.comp (keep in step with its `shared` declarations): 16-byte
// units for the K and V tiles and the per-subgroup scratches (rows padded by one unit; with the
// softmax in registers, in the plain case, the scratches overlap the K/V tiles), or for the Q rows
// while they are staged; for the general variant the row positions, physical indices and groups
// and the tile's key positions, log-weights and groups (one entry each otherwise).
size_t coopmat_shared_bytes(const CoopmatTile& t, int32_t d, int32_t dv, bool general) {
  const size_t bq = size_t(t.rows()), bk = size_t(t.bk), gq = general ? bq : 1, gk = general ? bk : 1;
  const size_t ks = size_t(d) / 8 + 1, vs = size_t(dv) / 8 + 1, ss = (t.reg_softmax ? 4 : bk / 4) + 1;
  const size_t q_units = bq * ks;
  const size_t kv_units = bk * (ks + vs), scratch_units = bq * ss;
  const size_t tile_units = (t.q_shared ? q_units : 0) +
                            (t.reg_softmax && !general ? std::max(kv_units, scratch_units) : kv_units + scratch_units);
  // without q_shared, Q passes through the tile area a subgroup's rows or more at a time
  const size_t sr = size_t(kCoopmatFragment * t.row_fragments);
  const size_t units = t.q_shared ? tile_units : std::max(tile_units, sr * ks);
  return 16 * units + gq * (8 + 8 + 4) + gk * (8 + 4 + 4);
}

// Rows per workgroup follow the head dim (shared memory) and, for calls with few query rows per
// item (decode: the query heads of one KV head), the rows there are: fewer rows, longer key tiles.
TileShape choose_tiles(const PhysicalDeviceInfo& info, int32_t d, int32_t dv, int64_t rows_hint) {
  constexpr int32_t kMaxKeyTile = 64;
  const int32_t width = std::max(d, dv);
  const int32_t full = width <= 64 ? 32 : width <= 128 ? 16 : 8;
  int32_t bq = 1;
  while (bq < full && bq < rows_hint) bq *= 2;
  int32_t bk = full;
  while (bq < full && bk < kMaxKeyTile && shared_bytes(bq, 2 * bk, d, dv) <= info.max_shared_memory) bk *= 2;
  while (shared_bytes(bq, bk, d, dv) > info.max_shared_memory && (bq > 1 || bk > 1)) {
    if (bk >= bq && bk > 1) bk /= 2; else bq /= 2;
  }
  if (shared_bytes(bq, bk, d, dv) > info.max_shared_memory)
    throw Error(LONGATTN_ERROR_UNSUPPORTED, "Vulkan: head_dim " + std::to_string(d) + "/" + std::to_string(dv) +
                                                " does not fit in " + std::to_string(info.max_shared_memory) +
                                                " bytes of shared memory");
  TileShape t;
  t.bq = bq;
  t.bk = bk;
  const int32_t tpr = std::max(1, std::min<int32_t>(kThreadsPerWorkgroup, int32_t(info.max_workgroup_invocations)) / bq);
  t.threads = bq * tpr;
  t.nc = (dv + tpr - 1) / tpr;
  return t;
}

// Largest divisor of `group` that is ≤ limit.
int32_t largest_divisor_at_most(int32_t group, int32_t limit) {
  for (int32_t x = std::min(group, limit); x > 1; --x)
    if (group % x == 0) return x;
  return 1;
}

void copy_strides(int64_t dst[4], const View& v) {
  for (int i = 0; i < 4; ++i) dst[i] = v.strides[i];
}

// Rows of the view can be read as 16-byte vectors: a float dtype, contiguous innermost axis, every
// row start 16-byte aligned and the row length a whole number of vectors.
bool rows_vectorizable(const View& v, int32_t dim) {
  if (is_block_dtype(v.dtype)) return false;
  const uint64_t es = longattn_dtype_size(v.dtype);
  if (uint64_t(v.strides[3]) != es || (uint64_t(dim) * es) % kVectorBytes != 0) return false;
  if (addr(v.data) % kVectorBytes != 0) return false;
  for (int i = 0; i < 3; ++i)
    if (v.shape[i] > 1 && uint64_t(v.strides[i]) % kVectorBytes != 0) return false;
  return true;
}

// The argument block with its segment table: query tiles of `tr` rows per segment.
struct Block {
  AttendGpuArgs g{};
  std::vector<int64_t> seg_q, seg_k, tile_start;

  void lay_out(const AttendArgs& a, int32_t hg, int32_t tr) {
    g.group = a.n_q_heads / a.n_kv_heads;
    g.hg = hg;
    g.tr = tr;
    g.n_head_blocks = g.group / hg;
    const size_t n_seg = seg_q.size() - 1;
    tile_start.assign(n_seg + 1, 0);
    for (size_t s = 0; s < n_seg; ++s) {
      const int64_t rows = std::max<int64_t>(0, seg_q[s + 1] - seg_q[s]);
      tile_start[s + 1] = tile_start[s] + (rows + tr - 1) / tr;
    }
    g.n_tiles = tile_start[n_seg];
    g.n_segments = int64_t(n_seg);
    g.n_groups = a.batch * g.hkv * g.n_head_blocks * g.n_tiles;
  }

  // Bytes handed to the dispatch: the block, then seg_q, seg_k, tile_start (int64 each) and,
  // with several segments, each query tile's segment (int32 [n_tiles]): a workgroup finds its
  // segment with one load instead of a binary search over tile_start (one dependent load per
  // step, before anything else of the work item can start).
  std::vector<uint8_t> bytes() const {
    const size_t n = seg_q.size();
    const size_t n_tile_segments = n > 2 ? size_t(g.n_tiles) : 0;
    std::vector<uint8_t> out(size_t(g.table_offset) + 3 * n * sizeof(int64_t) + n_tile_segments * sizeof(int32_t), 0);
    std::memcpy(out.data(), &g, sizeof g);
    auto* table = reinterpret_cast<int64_t*>(out.data() + g.table_offset);
    std::copy(seg_q.begin(), seg_q.end(), table);
    std::copy(seg_k.begin(), seg_k.end(), table + n);
    std::copy(tile_start.begin(), tile_start.end(), table + 2 * n);
    auto* tile_segment = reinterpret_cast<int32_t*>(table + 3 * n);
    for (size_t s = 0; s + 1 < n && n_tile_segments > 0; ++s)
      for (int64_t t = tile_start[s]; t < tile_start[s + 1]; ++t) tile_segment[t] = int32_t(s);
    return out;
  }
};

Block common_block(const AttendArgs& a) {
  Block blk;
  AttendGpuArgs& g = blk.g;
  g.hq = a.n_q_heads;
  g.hkv = a.n_kv_heads;
  if (a.n_segments > 0) {
    blk.seg_q.assign(a.q_seg, a.q_seg + a.n_segments + 1);
    blk.seg_k.assign(a.k_seg, a.k_seg + a.n_segments + 1);
  } else {
    blk.seg_q = {0, a.n_q};
    blk.seg_k = {0, a.n_k};
  }
  g.q = addr(a.q.data);
  g.k = addr(a.k.data);
  g.v = addr(a.v.data);
  g.o = addr(a.out.data);
  g.lse = addr(a.lse.data);
  if (a.state) {
    g.st_m = addr(a.state->m);
    g.st_l = addr(a.state->l);
    g.st_acc = addr(a.state->acc);
    g.o = 0;
    g.lse = 0;
  }
  g.q_pos = addr(a.q_pos);
  g.k_pos = addr(a.k_pos);
  g.q_rows = addr(a.q_rows);
  g.k_rows = addr(a.k_rows);
  g.key_logw = addr(a.key_logw);
  g.q_group = addr(a.q_group);
  g.k_group = addr(a.k_group);
  copy_strides(g.q_stride, a.q);
  copy_strides(g.k_stride, a.k);
  copy_strides(g.v_stride, a.v);
  copy_strides(g.o_stride, a.out);
  copy_strides(g.lse_stride, a.lse);
  g.n_q = a.n_q;
  g.n_k = a.n_k;
  g.q_pos0 = a.q_pos0;
  g.k_pos0 = a.k_pos0;
  g.window_left = a.mask.window_left;
  g.window_right = a.mask.window_right;
  g.n_global = a.mask.n_global;
  if (shared_tail_keys(a) > 0) {
    g.n_tail = int32_t(a.n_tail_keys);
    g.tail_k_rows = addr(a.tail_k_rows);
    g.tail_key_logw = addr(a.tail_key_logw);
    g.tail_k_group = addr(a.tail_k_group);
  }
  g.causal = a.mask.causal ? 1 : 0;
  g.softcap = a.softcap;
  g.qscale = a.softcap > 0.0f ? a.scale : a.scale * kLog2e;
  g.table_offset = int64_t(sizeof(AttendGpuArgs) + 7) / 8 * 8;
  g.n_splits = 1;
  if (a.add_mask.data) {
    g.add_mask = addr(a.add_mask.data);
    copy_strides(g.mask_stride, a.add_mask);
    // a size-1 batch or head axis broadcasts: stride 0 reads its one entry for every b / h
    if (a.add_mask.shape[0] == 1) g.mask_stride[0] = 0;
    if (a.add_mask.shape[2] == 1) g.mask_stride[2] = 0;
  }
  g.alibi_slopes = addr(a.alibi_slopes);
  g.sinks = addr(a.sinks);
  return blk;
}

// The call uses a ggml-style extra (additive mask, ALiBi, sinks, block-format K/V): only the
// portable kernel implements them.
bool uses_extras(const AttendArgs& a) {
  return a.add_mask.data || a.alibi_slopes || a.sinks || is_block_dtype(a.k.dtype) || is_block_dtype(a.v.dtype);
}

// LONGATTN_VULKAN_COOPMAT_TILE=SxK, SxKxRxQxP, SxKxRxQxPxM, SxKxRxQxPxMxT, SxKxRxQxPxMxTxH or SxKxRxQxPxMxTxHxW (benchmarks):
// S subgroups, K keys per tile, R row fragments per subgroup, Q fragments from shared memory (Q = 1),
// K/V staged in registers half a tile (P = 1) or a whole tile (P = 2) ahead or not at all (P = 0),
// softmax in registers (M = 1, where the device's fragment layout is known) or through shared
// memory (M = 0), transposed products (T = 1, with M = 1), the KHR build of the kernel (H = 1, with
// M = 1 and T = 0, where the device has VK_KHR_cooperative_matrix), half of the subgroups a
// softmax behind the other half (W = 1, with M = 1 and T = 0; plain calls only), instead of
// the automatic tile (reported on stderr and ignored when it does not fit).
CoopmatTile coopmat_tile_override() {
  CoopmatTile t{0, 0};
  const char* e = std::getenv("LONGATTN_VULKAN_COOPMAT_TILE");
  int rf = 1, qs = 0, pipe = 1, rs = 0, tr = 0, khr = 0, pp = 0;
  if (!e) return t;
  const int n = std::sscanf(e, "%dx%dx%dx%dx%dx%dx%dx%dx%d", &t.subgroups, &t.bk, &rf, &qs, &pipe, &rs, &tr, &khr, &pp);
  if (n != 2 && n != 5 && n != 6 && n != 7 && n != 8 && n != 9) return {0, 0};
  t.pingpong = pp != 0;
  t.transposed = tr != 0;
  t.khr = khr != 0;
  t.row_fragments = rf;
  t.q_shared = qs != 0;
  t.kv_pipe = t.pingpong ? 2 : pipe;
  t.reg_softmax = rs != 0;
  return t;
}

// LONGATTN_VULKAN_COOPMAT_DIAG=N (measurement only: wrong results): attend_coopmat.comp's DIAG,
// parts of its tile loop left out to see what each costs.
int32_t coopmat_diagnostic() {
  static const int32_t diag = [] {
    const char* e = std::getenv("LONGATTN_VULKAN_COOPMAT_DIAG");
    return e ? int32_t(std::atoi(e)) : 0;
  }();
  return diag;
}

// The call needs the cooperative-matrix kernel's general variant (GENERAL = true): gathers, explicit
// positions, log-weights or exclusion groups.
bool coopmat_general(const AttendArgs& a) {
  return a.q_rows || a.q_pos || a.k_rows || a.k_pos || a.key_logw || a.q_group || a.k_group || a.n_tail_keys > 0;
}

// The most keys one work item can visit: the longest segment's key range, or n_k.
int64_t longest_key_span(const AttendArgs& a) {
  if (a.n_segments <= 0) return a.n_k;
  int64_t span = 0;
  for (int32_t s = 0; s < a.n_segments; ++s) span = std::max(span, a.k_seg[s + 1] - a.k_seg[s]);
  return span + a.n_tail_keys;
}

// The cooperative-matrix kernel's tile for the call, or {0, 0} when the call cannot use it.
CoopmatTile coopmat_tile(VulkanBackend& backend, const AttendArgs& a) {
  const PhysicalDeviceInfo& info = backend.device().info();
  const CoopmatTile none{0, 0};
  if (backend.coopmat_mode() == CoopmatMode::off || !info.cooperative_matrix_nv) return none;
  if (uses_extras(a)) return none;
  if (info.subgroup_size != uint32_t(kCoopmatLanes)) return none;
  if (a.q.dtype != LONGATTN_DTYPE_F16 || a.k.dtype != LONGATTN_DTYPE_F16 || a.v.dtype != LONGATTN_DTYPE_F16) return none;
  if (a.head_dim % kCoopmatFragment || a.head_dim_v % kCoopmatFragment) return none;
  if (a.head_dim > kCoopmatMaxDim || a.head_dim_v > kCoopmatMaxDim) return none;
  if (!rows_vectorizable(a.k, a.head_dim) || !rows_vectorizable(a.v, a.head_dim_v)) return none;
  auto fits = [&](const CoopmatTile& t) {
    const int32_t threads = kCoopmatLanes * t.subgroups;
    return t.subgroups >= 1 && (t.row_fragments == 1 || t.row_fragments == 2) && t.kv_pipe >= 0 && t.kv_pipe <= 2 &&
           t.bk >= kCoopmatFragment &&
           t.bk % kCoopmatFragment == 0 && t.bk <= threads &&
           uint32_t(threads) <= info.max_workgroup_invocations &&
           coopmat_shared_bytes(t, a.head_dim, a.head_dim_v, coopmat_general(a)) <= info.max_shared_memory &&
           (!t.reg_softmax || backend.coopmat_layout().known) &&
           (!t.transposed || (t.reg_softmax && backend.coopmat_layout().transposable())) &&
           (!t.khr || (t.reg_softmax && !t.transposed && info.cooperative_matrix_khr &&
                       backend.coopmat_layout_khr().known && backend.coopmat_layout_khr().operand_matches)) &&
           (!t.pingpong ||
            (t.reg_softmax && !t.transposed && !coopmat_general(a) && t.subgroups % 2 == 0 && t.kv_pipe == 2));
  };
  const CoopmatTile forced = coopmat_tile_override();
  if (forced.subgroups > 0) {
    if (fits(forced)) return forced;
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
      std::fprintf(stderr,
                   "longattn: LONGATTN_VULKAN_COOPMAT_TILE does not fit this call (%zu bytes of shared memory, %u allowed; "
                   "fragment layout %s)\n",
                   coopmat_shared_bytes(forced, a.head_dim, a.head_dim_v, coopmat_general(a)), info.max_shared_memory,
                   backend.coopmat_layout().describe().c_str());
  }
  if (longest_key_span(a) <= kCoopmatShortSpan) {
    if (coopmat_general(a)) {
      for (const CoopmatTile& t : kCoopmatTilesShortGeneral)
        if (fits(t)) return t;
    } else if (a.n_segments > 0) {
      for (const CoopmatTile& t : kCoopmatTilesShortSegmented)
        if (fits(t)) return t;
    }
  }
  if (!coopmat_general(a)) {
    if (a.mask.window_left >= 0 || a.mask.window_right >= 0) {
      for (const CoopmatTile& t : kCoopmatTilesWindowed)
        if (fits(t)) return t;
    } else {
      for (const CoopmatTile& t : kCoopmatTilesPlain)
        if (fits(t)) return t;
    }
  }
  for (const CoopmatTile& t : kCoopmatTiles)
    if (fits(t)) return t;
  return none;
}

// The decode kernel's plan for the call, or false when it does not handle it (then the portable
// or cooperative-matrix kernel runs). It handles f32/f16/bf16 K/V rows readable as 16-byte vectors,
// any float Q (gathered rows and explicit positions too), GQA, the analytic mask, segments,
// softcap, sinks and running states; not additive masks, ALiBi, Q8_0/Q4_0, key gathers, explicit
// key positions, log-weights or exclusion groups.
bool decode_plan(VulkanBackend& backend, const AttendArgs& a, int64_t rows_per_kv_head, DecodePlan& p) {
  const DecodeMode mode = backend.decode_mode();
  const PhysicalDeviceInfo& info = backend.device().info();
  if (mode == DecodeMode::off) return false;
  if (mode == DecodeMode::automatic &&
      (rows_per_kv_head > kDecodeAutoRows || backend.coopmat_mode() == CoopmatMode::force))
    return false;
  if (a.add_mask.data || a.alibi_slopes || is_block_dtype(a.k.dtype) || is_block_dtype(a.v.dtype)) return false;
  if (a.k_pos || a.k_rows || a.key_logw || a.q_group || a.k_group || a.n_tail_keys > 0) return false;
  if (a.head_dim > kDecodeMaxDim || a.head_dim_v > kDecodeMaxDim) return false;
  if (!rows_vectorizable(a.k, a.head_dim) || !rows_vectorizable(a.v, a.head_dim_v)) return false;
  if (info.max_workgroup_invocations < uint32_t(kDecodeThreads)) return false;
  p.subgroup = info.subgroup_shuffle && mode != DecodeMode::force_shared;
  int32_t max_lanes = kDecodeMaxLanes;
  if (p.subgroup) {
    // clusters must not straddle subgroups, and subgroups must tile the workgroup
    if (info.subgroup_size == 0 || kDecodeThreads % int32_t(info.subgroup_size) != 0) return false;
    max_lanes = std::min<int32_t>(max_lanes, int32_t(info.subgroup_size));
  }
  // lanes per key: a power of two dividing the 16-byte vectors of a K row and of a V row
  const int64_t vk = int64_t(a.head_dim) * int64_t(longattn_dtype_size(a.k.dtype)) / int64_t(kVectorBytes);
  const int64_t vv = int64_t(a.head_dim_v) * int64_t(longattn_dtype_size(a.v.dtype)) / int64_t(kVectorBytes);
  p.lanes = 1;
  while (p.lanes * 2 <= max_lanes && vk % (p.lanes * 2) == 0 && vv % (p.lanes * 2) == 0) p.lanes *= 2;
  if (p.lanes < kDecodeMinLanes) return false;
  p.uk = int32_t(vk / p.lanes);
  p.uv = int32_t(vv / p.lanes);
  p.qe = a.head_dim / p.lanes;
  p.ae = a.head_dim_v / p.lanes;
  p.bq = 1;
  while (p.bq < kDecodeMaxRows && p.bq < rows_per_kv_head) p.bq *= 2;
  while (p.bq > 1 && p.bq * (p.qe + p.ae) > kDecodeMaxLaneFloats) p.bq /= 2;
  // keys per step: the most that keep the loop within the register budget, loaded ahead if
  // possible (fewer rows per item where even one key does not fit)
  const DecodeTuning& tune = backend.decode_tuning();
  p.prefetch = tune.prefetch;
  for (;;) {
    p.keys = kDecodeMaxKeys;
    while (p.keys > 1 && decode_lane_registers(p) > kDecodeLaneRegisters) --p.keys;
    if (decode_lane_registers(p) <= kDecodeLaneRegisters || p.bq == 1) break;
    p.bq /= 2;
  }
  if (tune.keys > 0) p.keys = std::min(tune.keys, kDecodeMaxKeys);
  // KV heads per workgroup: where the heads of a token are adjacent in memory (a [tokens, heads,
  // dim] cache), the clusters of one key take consecutive heads and a workgroup reads whole token
  // rows; a power of two dividing both the clusters and hkv (fewer where the call has too few
  // keys to give the device enough workgroups otherwise, see record_decode)
  const int32_t clusters = kDecodeThreads / p.lanes;
  const bool heads_inner = a.k.strides[2] * a.n_kv_heads <= a.k.strides[1] &&
                           a.v.strides[2] * a.n_kv_heads <= a.v.strides[1];
  const int32_t max_heads = heads_inner ? (tune.heads > 0 ? std::min(tune.heads, clusters) : clusters) : 1;
  p.heads = 1;
  while (p.heads * 2 <= max_heads && a.n_kv_heads % (p.heads * 2) == 0) p.heads *= 2;
  while (p.heads > 1 && decode_shared_bytes(p, a.head_dim_v) > info.max_shared_memory) p.heads /= 2;
  while (p.keys > 1 && decode_shared_bytes(p, a.head_dim_v) > info.max_shared_memory) --p.keys;
  return decode_shared_bytes(p, a.head_dim_v) <= info.max_shared_memory;
}

// Records attend_combine.comp over the split partials in blk.g.part of `items` work items of `bq`
// rows each (n_splits splits): running state, sinks, out / lse.
void record_combine(VulkanBackend& backend, const AttendArgs& a, Block& blk, int64_t items, int32_t bq,
                    const char* label) {
  Device& dev = backend.device();
  const PhysicalDeviceInfo& info = dev.info();
  // a workgroup per row and chunk of ct columns; with a running state one chunk of every column
  const int32_t ct = kCombineColumnLanes;
  const int32_t nc = a.state ? (a.head_dim_v + ct - 1) / ct : 1;
  const int64_t chunks = (a.head_dim_v + ct * nc - 1) / (ct * nc);
  int32_t sp = std::min<int32_t>(kCombineSplitLanes, int32_t(info.max_workgroup_invocations) / ct);
  while (sp > 1 && 4 * (size_t(sp) * size_t(ct) + size_t(sp) * size_t(ct * nc)) > info.max_shared_memory) sp /= 2;
  const int32_t out_dtype = a.state ? LONGATTN_DTYPE_F32 : a.out.dtype;
  VkPipeline p = dev.pipeline("attend_combine", {ct * sp, bq, a.head_dim_v, out_dtype, a.state ? 1 : 0, ct, nc});
  blk.g.n_groups = items * bq * chunks;
  const std::vector<uint8_t> bytes = blk.bytes();
  backend.stream().dispatch(p, bytes.data(), bytes.size(), uint64_t(blk.g.n_groups), label);
}

// Records the decode kernel over the key splits of every work item, then attend_combine.comp
// (which applies the running state and sinks and writes out / lse).
void record_decode(VulkanBackend& backend, const AttendArgs& a, const DecodePlan& p) {
  Device& dev = backend.device();
  const PhysicalDeviceInfo& info = dev.info();
  const DecodeTuning& tune = backend.decode_tuning();
  Block blk = common_block(a);
  const int32_t group = a.n_q_heads / a.n_kv_heads;
  const int32_t hg = largest_divisor_at_most(group, p.bq);
  blk.lay_out(a, hg, p.bq / hg);
  AttendGpuArgs& g = blk.g;
  if (g.n_tiles == 0) return;

  // workgroups: (work items / heads) × splits; splits keep the device busy, each at least
  // kDecodeMinKeysPerSplit keys; where even the most splits leave it idle, fewer heads per
  // workgroup (more workgroups per split, more keys per step)
  const int64_t items = g.n_groups;
  const int64_t busy = info.is_gpu() ? kDecodeBusyGpu : kDecodeBusyCpu;
  const int64_t max_splits = std::max<int64_t>(1, std::min(kDecodeMaxSplits, a.n_k / kDecodeMinKeysPerSplit));
  DecodePlan plan = p;
  while (tune.heads == 0 && plan.heads > 1 && items / plan.heads * max_splits < busy) {
    DecodePlan fewer = plan;
    fewer.heads /= 2;
    if (decode_shared_bytes(fewer, a.head_dim_v) > info.max_shared_memory) break;
    plan = fewer;
  }
  const int64_t groups_per_split = items / plan.heads;
  int64_t splits = tune.splits;
  if (splits == 0) splits = std::min((busy + groups_per_split - 1) / groups_per_split, max_splits);
  splits = std::max<int64_t>(1, std::min(splits, kDecodeMaxSplits));
  g.n_splits = int32_t(splits);
  const size_t part_floats = size_t(items) * size_t(splits) * size_t(p.bq) * size_t(a.head_dim_v + 2);
  g.part = backend.scratch(part_floats * sizeof(float));
  g.n_groups = groups_per_split * splits;
  std::vector<uint8_t> bytes = blk.bytes();
  VkPipeline decode = dev.pipeline(plan.subgroup ? "attend_decode" : "attend_decode_shared",
                                   {kDecodeThreads, plan.bq, a.head_dim, a.head_dim_v, a.q.dtype, a.k.dtype,
                                    a.v.dtype, plan.lanes, plan.keys, plan.heads, plan.prefetch ? 1 : 0,
                                    tune.loads_only ? 1 : 0});
  backend.stream().dispatch(decode, bytes.data(), bytes.size(), uint64_t(g.n_groups), "attend_decode");
  backend.count_decode_dispatch();
  record_combine(backend, a, blk, items, plan.bq, "attend_decode_combine");
}

}  // namespace

void record_attend(VulkanBackend& backend, const AttendArgs& a) {
  if (a.batch == 0 || a.n_q == 0) return;
  if (a.n_tail_keys > 0 &&
      (a.n_segments <= 0 || (!a.k_rows && a.n_k > a.n_tail_keys) || !a.tail_k_rows || a.n_tail_keys > a.n_k ||
       a.n_tail_keys > INT32_MAX))
    throw Error(LONGATTN_ERROR_INTERNAL, "Vulkan: shared tail keys need segments, gathered own and tail keys, n_tail ≤ n_k");
  Device& dev = backend.device();
  const int32_t out_dtype = a.state ? LONGATTN_DTYPE_F32 : a.out.dtype;
  const int32_t group = a.n_q_heads / a.n_kv_heads;
  int64_t longest_segment = a.n_q;
  if (a.n_segments > 0) {
    longest_segment = 0;
    for (int32_t s = 0; s < a.n_segments; ++s) longest_segment = std::max(longest_segment, a.q_seg[s + 1] - a.q_seg[s]);
  }

  // ---- decode kernel, for few query rows per KV head ----
  DecodePlan plan;
  if (decode_plan(backend, a, int64_t(group) * longest_segment, plan)) {
    record_decode(backend, a, plan);
    return;
  }

  // ---- cooperative-matrix kernel, when the device, dtypes and shapes allow and there is work ----
  if (const CoopmatTile t = coopmat_tile(backend, a); t.bk > 0) {
    Block blk = common_block(a);
    const int32_t rows = t.rows();
    // the heads of a GQA group share the workgroup's K/V tiles: as many heads as leave each at
    // least 16 rows (or all the rows of its longest segment)
    const int64_t head_rows = std::max<int64_t>(1, std::min<int64_t>(longest_segment, kCoopmatFragment));
    const int32_t hg = largest_divisor_at_most(group, int32_t(rows / head_rows));
    blk.lay_out(a, hg, rows / hg);
    if (blk.g.n_groups >= kCoopmatMinItems || backend.coopmat_mode() == CoopmatMode::force) {
      if (blk.g.n_tiles == 0) return;
      const std::vector<uint8_t> bytes = blk.bytes();
      // the plain case (affine positions, no log-weights or groups) skips every per-element feature
      const bool general = coopmat_general(a);
      // every pair allowed: the general variant leaves out positions and tile classification
      const bool unmasked = a.mask.is_full();
      const CoopmatLayout lay =
          !t.reg_softmax ? CoopmatLayout{} : t.khr ? backend.coopmat_layout_khr() : backend.coopmat_layout();
      VkPipeline p = dev.pipeline(t.khr ? "attend_coopmat_khr" : "attend_coopmat", {kCoopmatLanes * t.subgroups, t.bk, a.head_dim, a.head_dim_v,
                                                     out_dtype, a.state ? 1 : 0, general ? 1 : 0,
                                                     t.row_fragments, t.q_shared ? 1 : 0, t.kv_pipe,
                                                     t.reg_softmax ? 1 : 0, lay.lane_row_shift, lay.elem_row_hi,
                                                     int32_t(lay.elem_cols), lay.lane_col_step, coopmat_diagnostic(),
                                                     t.transposed ? 1 : 0, kCoopmatRightOperandMark, t.pingpong ? 1 : 0,
                                                     general && unmasked ? 1 : 0});
      backend.stream().dispatch(p, bytes.data(), bytes.size(), uint64_t(blk.g.n_groups), "attend_coopmat");
      return;
    }
  }

  // ---- portable kernel ----
  Block blk = common_block(a);
  const TileShape t = choose_tiles(dev.info(), a.head_dim, a.head_dim_v, int64_t(group) * longest_segment);
  const int32_t hg = largest_divisor_at_most(group, t.bq);
  blk.lay_out(a, hg, t.bq / hg);
  AttendGpuArgs& g = blk.g;
  if (g.n_tiles == 0) return;

  // split the keys of each item when there are too few items to fill the device
  const int64_t items = g.n_groups;
  const int64_t key_tiles = (a.n_k + t.bk - 1) / t.bk;
  const int64_t busy = dev.info().is_gpu() ? kBusyWorkgroupsGpu : kBusyWorkgroupsCpu;
  int64_t splits = 1;
  if (items < busy / 2 && key_tiles >= 2 * kMinTilesPerSplit)
    splits = std::min({(busy + items - 1) / items, key_tiles / kMinTilesPerSplit, kMaxSplits});
  g.n_splits = int32_t(splits);

  const bool vec_k = rows_vectorizable(a.k, a.head_dim), vec_v = rows_vectorizable(a.v, a.head_dim_v);
  const int32_t mask_dtype = a.add_mask.data ? a.add_mask.dtype : LONGATTN_DTYPE_F32;
  auto pipeline = [&](int32_t phase) {
    // the partial phase writes no output: its out dtype and state switch stay fixed
    const int32_t o_dt = phase == kPhasePartial ? LONGATTN_DTYPE_F32 : out_dtype;
    return dev.pipeline("attend", {t.threads, t.bq, t.bk, a.head_dim, a.head_dim_v, t.nc, a.q.dtype, a.k.dtype,
                                   a.v.dtype, o_dt, a.state && phase != kPhasePartial ? 1 : 0, phase,
                                   vec_k ? 1 : 0, vec_v ? 1 : 0, mask_dtype});
  };
  if (splits == 1) {
    const std::vector<uint8_t> bytes = blk.bytes();
    backend.stream().dispatch(pipeline(kPhaseDirect), bytes.data(), bytes.size(), uint64_t(g.n_groups), "attend");
    return;
  }
  const size_t part_floats = size_t(items) * size_t(splits) * size_t(t.bq) * size_t(a.head_dim_v + 2);
  g.part = backend.scratch(part_floats * sizeof(float));
  g.n_groups = items * splits;
  std::vector<uint8_t> bytes = blk.bytes();
  backend.stream().dispatch(pipeline(kPhasePartial), bytes.data(), bytes.size(), uint64_t(g.n_groups),
                            "attend_split");
  record_combine(backend, a, blk, items, t.bq, "attend_combine");
}

}  // namespace longattn::vk
