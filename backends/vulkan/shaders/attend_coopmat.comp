#version 460
// attend_coopmat — attend with VK_NV_cooperative_matrix tensor-core tiles (f16 q/k/v, fp32
// accumulation), for devices with 16×16×16 f16→f32 subgroup matrices and 32-lane subgroups.
//
// Same contract, argument block and work items as attend.comp (see there and src/backend.hpp).
// A workgroup has NW subgroups of SR = 16·RF query rows (RF row fragments each), BQ = NW·SR rows:
// hg query heads of one KV head × tr queries (row r = head r / tr, query q0 + r % tr, as the
// portable kernel packs them), so the heads of a GQA group share every K/V tile. Subgroup w owns
// rows SR·w … SR·w + SR − 1; each K/V fragment it loads serves its RF row fragments. Shapes:
// q [batch, n_q, hq, D] f16, k [batch, ·, hkv, D] f16, v [batch, ·, hkv, DV] f16 (K/V rows
// contiguous and 16-byte aligned), D and DV multiples of 16.
//
// Per key tile of BK keys:
//   S = Q·Kᵀ                      (16×16×16 matrix products, fp32 accumulators for the whole tile)
//   s = S·scale·log2e              (softcap; on partial tiles the mask, per element)
//   lazy rescale: the row reference m_ref moves only when the tile max exceeds it by more than
//   kTau (so P ≤ 2^kTau fits f16); then O_row ·= α = 2^(m_ref − m_new)
//   P = exp2(s − m_ref) in f16;  l = α·l + rowsum P;  O += P·V  (matrix products)
// and at the end out = O / l, lse = (m_ref + log2 l)·ln 2, or (m_ref, l, O) into the state.
// Two softmax variants:
// - REG_SOFTMAX: on the fp32 accumulators in registers, component by component, with the
//   device's fragment layout (probed by the host, see below): row maxima and sums over the 4
//   lanes of a row by shuffles, O rescaled in registers, P converted to f16 fragments in place.
// - otherwise through a per-subgroup scratch: S is stored there and read back, LPR = 32 / SR
//   lanes per row (lane rr + SR·hh takes part hh of row rr), P (f16) written over it and loaded as
//   fragments; O fragments go through the scratch for rescales.
// Either way the output leaves through the scratch. No split-KV here: the host uses this kernel
// when the call has enough work items.
//
// Shared memory is one array of 16-byte units: Q [BQ][D] when Q_SHARED (else Q is staged there
// once and held in registers), the K tile [BK][D], the V tile [BK][DV] (f16), and per subgroup a
// scratch of SR rows for S (fp32), O fragments (16×16 fp32, for rescales and the output) or P
// (f16, over S); with REG_SOFTMAX only O fragments (rows of 16 floats), used outside the tile
// loop only (in the plain case placed over the K/V tiles). Every row stride is padded by one
// unit, so the 8 rows one 8-lane phase of a fragment load or store touches fall in 8 different
// bank groups. K/V move in 16-byte units (global → registers → shared) and are software
// pipelined: KV_PIPE = 1 reads V(t) from global memory while S(t) and its softmax are computed and
// K(t + 1) while P·V(t) is; KV_PIPE = 2 reads K(t + 1) and V(t + 1) while the whole of tile t is
// computed; KV_PIPE = 0 copies both at the start of the tile. Two workgroup barriers per tile in
// every case (PINGPONG below included).
//
// Every loop over fragments, units or lanes' elements is marked [[unroll]]: arrays of fragments
// and registers indexed in a loop the driver does not unroll would live in local memory.
//
// GENERAL = false (specialization) is the plain case: affine query and key positions (no gathers,
// no explicit positions), no log-weights, no exclusion groups. Full tiles then skip all per-element
// mask work. GENERAL = true handles every attend feature of the portable kernel except the
// ggml-style extras.

#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_NV_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_KHR_shader_subgroup_vote : require
#include "common.glsl"
#include "attend_common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int BK = 32;      // keys per tile, a multiple of 16
layout(constant_id = 2) const int D = 64;       // q/k head dim, a multiple of 16
layout(constant_id = 3) const int DV = 64;      // v/out head dim, a multiple of 16
layout(constant_id = 4) const int O_DT = 0;     // longattn_dtype of out
layout(constant_id = 5) const bool STATE = false;
layout(constant_id = 6) const bool GENERAL = true;
layout(constant_id = 7) const int RF = 1;       // row fragments per subgroup: 1 or 2
layout(constant_id = 8) const bool Q_SHARED = false;  // Q fragments read from shared memory per tile
layout(constant_id = 9) const int KV_PIPE = 1;  // K/V staging: 0 none, 1 half a tile ahead, 2 a tile ahead
// REG_SOFTMAX: the softmax runs on the fp32 accumulators in registers (no S/P round trip through
// shared memory). It needs the device's fragment layout, probed by the host (coopmat_layout.comp)
// and fitted to this model: component e (of 8) of lane l holds row (l >> LANE_ROW_SHIFT) + 8·bit e
// of ELEM_ROW_HI, column nibble e of ELEM_COLS + LANE_COL_STEP·(l mod 2^LANE_ROW_SHIFT); the lanes
// of a row differ in their low LANE_ROW_SHIFT bits only.
layout(constant_id = 10) const bool REG_SOFTMAX = false;
layout(constant_id = 11) const int LANE_ROW_SHIFT = 2;
layout(constant_id = 12) const int ELEM_ROW_HI = 0;
layout(constant_id = 13) const int ELEM_COLS = 0;
layout(constant_id = 14) const int LANE_COL_STEP = 0;
// DIAG (measurement only, wrong results; LONGATTN_VULKAN_COOPMAT_DIAG): 0 off, else a part of the
// REG_SOFTMAX tile loop left out to see what it costs — 1 K fragments loaded with the other
// orientation, 3 no Q·Kᵀ products, 4 no global K/V loads, 5 no workgroup barriers in the loop, 6 no
// P·V products; and, to split a workgroup's fixed cost (the parts that do not depend on its key
// count; runtime-true conditions keep the compiler from dropping code): 7 no global stores of O and
// LSE, 8 no global loads of Q, 9 return after the work item is decoded, 10 return before the tile
// loop, 11 no key tiles. docs/PERFORMANCE_VULKAN.md has what they measured (and why variants that leave out
// parts of the softmax measure nothing: with no row sums the output is O·0, and the compiler drops
// O altogether).
#ifdef COOPMAT_KHR
const int DIAG = 0;
#else
layout(constant_id = 15) const int DIAG = 0;
#endif
// TRANSPOSED (with REG_SOFTMAX): the tile computes Sᵀ = K·Qᵀ and Oᵀ += Vᵀ·Pᵀ, so that the K and V
// fragments loaded every tile are left operands (NVIDIA's driver keeps 16-bit matrices in the left
// operand's register layout and converts a right operand with one MOVM per register at each use,
// so the count of conversions stays the same; the transposed 8 × 64 tile measured faster all the
// same: docs/PERFORMANCE_VULKAN.md). The softmax then reduces over the rows of Sᵀ: a lane's
// components cover 4 query columns (nibbles 0, 1, 8, 9 of ELEM_COLS, the host checks) of 2 key
// rows each.
#ifdef COOPMAT_KHR
const bool TRANSPOSED = false;
#else
layout(constant_id = 16) const bool TRANSPOSED = false;
#endif
// COOPMAT_KHR (the build compiles this file a second time with it defined and turns the SPIR-V into
// SPV_KHR_cooperative_matrix: backends/vulkan/tools/coopmat_khr.cpp): right operands are declared
// with KB_MARK columns, which gives them a type of their own there (they become MatrixB), and P
// is copied into its left-operand fragments component by component (KHR has no conversion
// between roles; the host checks that the two roles' components hold the same elements).
layout(constant_id = 17) const int KB_MARK = 16;
// PINGPONG (plain case, softmax in registers, not transposed, an even number of subgroups; the
// host passes KV_PIPE = 2 with it): the second half of the subgroups computes each tile's softmax
// a step later than the first half, so that on each SM sub-partition (one subgroup of each half)
// one subgroup's softmax runs while the other's matrix products do, as FlashAttention-3 staggers
// its warpgroups. Step t stores K(t) and V(t − 1) (one tile behind) and runs: first half
// O += P(t − 1)·V(t − 1), S(t) = Q·K(t)ᵀ, softmax → P(t); second half softmax of S(t − 1) →
// P(t − 1), O += P(t − 1)·V(t − 1), S(t) = Q·K(t)ᵀ (held to the next step). Same barriers and
// shared memory as KV_PIPE = 2; one step more.
layout(constant_id = 18) const bool PINGPONG = false;
// UNMASKED (general variant): the mask allows every pair (no causality, no windows: HYPER's block
// and sample calls), so query and key positions, the tile classification and the per-element mask
// are compiled out; the registers they held are free for the tile loop.
layout(constant_id = 19) const bool UNMASKED = false;

const int kLanes = 32;                          // subgroup size (checked by the host)
const int kFrag = 16;                           // matrix fragment edge
const int WG = int(gl_WorkGroupSize.x);
const int NW = WG / kLanes;                     // subgroups
const int SR = kFrag * RF;                      // query rows per subgroup
const int BQ = NW * SR;
const int LPR = kLanes / SR;                    // lanes per softmax row (2 or 1)
const int COLS = BK / LPR;                      // columns of a row handled by one lane
const int OU = 4 / LPR;                         // 16-byte units of a 16-float O row per lane
const int NJ = BK / kFrag, NKK = D / kFrag, NC = DV / kFrag;  // fragments per tile / Q row / O row
const float kTau = 8.0;                         // lazy-rescale threshold (log2 units)
const int kElems = 8;                           // REG_SOFTMAX: components of a fragment per lane
const int RS_ROWS = (TRANSPOSED ? 4 : 2) * RF;  // REG_SOFTMAX: rows a lane holds parts of
// (the host checks for an even NW: glslc's optimizer fails on that as a specialization-constant expression)
const bool PP = PINGPONG && REG_SOFTMAX && !GENERAL && !TRANSPOSED;

// 16-byte units: per K/V row, per S row (4 floats), per P row (8 halves); each padded by one
const int KU = D / 8, VU = DV / 8;              // units of a K / V row
const int KS = KU + 1, VS = VU + 1;             // row strides of the K / V tiles and of Q
const int SS = (REG_SOFTMAX ? 4 : BK / 4) + 1;  // S row stride (also O fragment rows: 16 floats)
const int PS = BK / 8 + 1;                      // P row stride
const int SCR = SR * SS;                        // scratch units per subgroup (S, O fragments or P)
const int Q_UNITS = BQ * KS;
const int K_AT = Q_SHARED ? Q_UNITS : 0;
const int V_AT = K_AT + BK * KS;
const int KV_END = V_AT + BK * VS;
// With REG_SOFTMAX the scratch serves only outside the tile loop (a running state's initial O,
// the output), so in the plain case it overlaps the K/V tiles (barriers on both sides). The
// general variant keeps it apart: measured slower there (HYPER's block and sample calls).
const bool SCR_OVER_KV = REG_SOFTMAX && !GENERAL;
const int SCR_AT = SCR_OVER_KV ? K_AT : KV_END;
const int TILE_UNITS = SCR_AT + NW * SCR > KV_END ? SCR_AT + NW * SCR : KV_END;
// Q rows staged per pass (whole subgroups): all of them with Q_SHARED (they stay), else as many as
// the tile area holds
const int QP_FIT = (TILE_UNITS / (SR * KS) > 0 ? TILE_UNITS / (SR * KS) : 1) * SR;
const int QP = Q_SHARED ? BQ : (QP_FIT < BQ ? QP_FIT : BQ);
const int SM_UNITS = TILE_UNITS > QP * KS ? TILE_UNITS : QP * KS;
const int NKC = (BK * KU + WG - 1) / WG;        // K units per lane and tile
const int NVC = (BK * VU + WG - 1) / WG;        // V units per lane and tile
const int NQU = (QP * KU + WG - 1) / WG;        // Q units per lane and pass

#define HMAT fcoopmatNV<16, gl_ScopeSubgroup, kFrag, kFrag>
#ifdef COOPMAT_KHR
#define HMAT_B fcoopmatNV<16, gl_ScopeSubgroup, kFrag, KB_MARK>
#else
#define HMAT_B HMAT
#endif
#define FMAT fcoopmatNV<32, gl_ScopeSubgroup, kFrag, kFrag>

layout(buffer_reference, std430, buffer_reference_align = 16) buffer U32x4s { uvec4 v[]; };
// Q, K and V are only read by the dispatch: declared read-only, their loads take the GPU's
// non-coherent (read-only) path instead of strong loads.
layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer U32x4r { uvec4 v[]; };

shared uvec4 sm[SM_UNITS];
const int GQ = GENERAL ? BQ : 1, GK = GENERAL ? BK : 1;  // (one unused entry in the plain case)
shared int64_t sRowPos[GQ];                     // GENERAL: query positions of the rows,
shared int64_t sRowPhys[GQ];                    //   their physical indices
shared int sRowGroup[GQ];                       //   and exclusion groups
shared int64_t sKpos[GK];                       // GENERAL: the tile's key positions,
shared float sKlogw[GK];                        //   log-weights (log2 units)
shared int sKgroup[GK];                         //   and exclusion groups

// Orders this subgroup's shared-memory accesses (fragment stores/loads and the lanes' own reads
// and writes of the scratch) and waits for its lanes. Shared memory semantics only: GLSL's
// subgroupBarrier() also orders global memory, which would make every lane wait here for the
// K/V loads it has in flight (the software pipelining's whole point).
void sync_subgroup() {
  controlBarrier(gl_ScopeSubgroup, gl_ScopeSubgroup, gl_StorageSemanticsShared, gl_SemanticsAcquireRelease);
}

// A query row of the work item: head, logical and physical index, position, exclusion group.
struct Row {
  bool valid;
  int h;
  int64_t phys, pos;
  int group;
};

// Whether row r of the work item exists (its head within the item's heads, its query within the
// item's rows).
bool row_valid(Args A, Item it, int r) { return r / A.tr < A.hg && it.q0 + r % A.tr < it.q1; }

Row row_of(Args A, Item it, int r) {
  Row q;
  const int g = r / A.tr;
  const int64_t i = it.q0 + r % A.tr;
  q.valid = row_valid(A, it, r);
  q.h = it.hk * A.group + it.hb * A.hg + min(g, A.hg - 1);
  q.phys = i;
  q.group = -1;
  if (GENERAL && q.valid && A.q_rows != 0) q.phys = int64_t(ld_i32(A.q_rows, (it.b * A.hq + q.h) * A.n_q + i));
  q.pos = GENERAL && q.valid && A.q_pos != 0 ? ld_i64(A.q_pos, q.phys) : A.q_pos0 + q.phys;
  if (GENERAL && q.valid && A.q_group != 0 && keys_have_groups(A))
    q.group = ld_i32(A.q_group, (it.b * A.hq + q.h) * A.n_q + i);
  return q;
}

// row_of for the rows of this workgroup once GENERAL has stored them in shared memory (no global
// loads: the gathers, positions and groups of the rows are read once per workgroup).
Row row_at(Args A, Item it, int r) {
  if (!GENERAL) return row_of(A, it, r);
  Row q;
  q.valid = row_valid(A, it, r);
  q.h = it.hk * A.group + it.hb * A.hg + min(r / A.tr, A.hg - 1);
  q.phys = sRowPhys[r];
  q.pos = sRowPos[r];
  q.group = sRowGroup[r];
  return q;
}

// Physical K/V row of logical key j (kv_bh = b·hkv + KV head).
int64_t key_phys(Args A, int64_t kv_bh, int64_t j) {
  if (!GENERAL) return j;
  const KeyArrays ka = key_arrays(A, kv_bh, j);
  return key_row(ka, j);
}

// GENERAL: what the softmax needs of column c of a key tile (first key j0, nc keys): the key's
// position (only where the mask needs one; far right past the tile, outside any range), its
// log-weight in log2 units (−inf past the tile, so that one addition masks those columns) and its
// exclusion group (−2 past the tile: no row has it).
struct KeyFacts {
  int64_t pos;
  float logw;
  int group;
};

KeyFacts key_facts(Args A, int64_t kv_bh, int64_t j0, int nc, int c, bool any_mask, bool has_groups) {
  KeyFacts f = KeyFacts(kFarHigh, kNegInf, -2);
  if (c < nc) {
    const int64_t j = j0 + c;
    const KeyArrays ka = key_arrays(A, kv_bh, j);
    const int64_t phys = key_row(ka, j);
    if (any_mask) f.pos = A.k_pos != 0 ? ld_i64(A.k_pos, phys) : A.k_pos0 + phys;
    f.logw = ka.logw != 0 ? ld_f32(ka.logw, ka.i) * kLog2e : 0.0;
    if (has_groups && ka.group != 0) f.group = ld_i32(ka.group, ka.i);
  }
  return f;
}

// Two 16-bit elements of out (dtype O_DT, not f32) as one 32-bit word, x0 in the low half.
uint pack_two(float x0, float x1) {
  const uint lo = O_DT == kDtypeF16 ? float_to_f16_bits(x0) : float_to_bf16_bits(x0);
  const uint hi = O_DT == kDtypeF16 ? float_to_f16_bits(x1) : float_to_bf16_bits(x1);
  return lo | (hi << 16);
}

// Elements at byte addresses `at` and `at + step` of out (dtype O_DT): one 32-bit store when they
// are the two halves of an aligned word.
void store_two(uint64_t at, int64_t step, float x0, float x1) {
  if (O_DT != kDtypeF32 && step == 2 && (at & uint64_t(3)) == 0) {
    U32s(at).v[0] = pack_two(x0, x1);
  } else {
    store_elem(at, O_DT, x0);
    store_elem(at + uint64_t(step), O_DT, x1);
  }
}

// Tile t of the key ranges: first key and key count.
void tile_at(int t, int n_t0, int64_t rb0, int64_t re0, int64_t rb1, int64_t re1, out int64_t j0, out int nc) {
  if (t < n_t0) {
    j0 = rb0 + int64_t(t) * BK;
    nc = int(min(int64_t(BK), re0 - j0));
  } else {
    j0 = rb1 + int64_t(t - n_t0) * BK;
    nc = int(min(int64_t(BK), re1 - j0));
  }
}

// Unit i (of NKC or NVC) of this lane's share of a K or V tile: 16 bytes of key row j0 + c, zero
// past the nc keys of the tile.
uvec4 load_kv_unit(Args A, uint64_t head, int64_t row_bytes, int units, int64_t kv_bh, int64_t j0, int nc, int p) {
  const int c = p / units, u = p % units;
  if (p >= BK * units || c >= nc) return uvec4(0);
  if (DIAG == 4) return uvec4(uint(p));
  return U32x4r(head + uint64_t(key_phys(A, kv_bh, j0 + c) * row_bytes) + uint64_t(u) * 16).v[0];
}

// Score of column c (log2 units) of a row at position qpos: scale, softcap and, where `exact`, the
// per-element mask (columns past the tile, log-weights, the analytic mask on partial tiles,
// exclusion groups). The callers run a loop of plain `dot · qscale` instead where neither softcap
// nor mask applies: the compiler evaluates both sides of these selects for every element.
float score(Args A, float qscale, float softcap, float dot, int c, bool exact, int kind, int nc, int64_t qpos,
            int qgroup, int64_t kpos0, bool has_groups) {
  const float x = dot * qscale;
  float s = softcap > 0.0 ? softcap * kLog2e * tanh(x * (1.0 / softcap)) : x;
  if (exact) {
    if (c >= nc) {
      s = kNegInf;
    } else if (GENERAL) {
      s += sKlogw[c];
      if (kind == kPartial && !mask_allows(A, qpos, sKpos[c])) s = kNegInf;
      if (has_groups && qgroup >= 0 && qgroup == sKgroup[c]) s = kNegInf;
    } else if (kind == kPartial && !mask_allows(A, qpos, kpos0 + c)) {
      s = kNegInf;
    }
  }
  return s;
}

// REG_SOFTMAX (layout model above): row slot k = 2·f + h of a lane is fragment f's row
// (lane >> LANE_ROW_SHIFT) + 8·h; component e of fragment f lies in slot 2·f + 1 where rs_hi(e), else
// 2·f, and, of key block j, in column rs_col(j, e, lr) of the tile (lr: the lane's place among its
// row's lanes).
// TRANSPOSED swaps the roles: component e of fragment f lies in the slot 4·f + rs_nib_slot(e) of its
// query column (column nibbles 0, 1, 8, 9 → 0 … 3), that slot's row being the column's
// nibble + LANE_COL_STEP·lr; its key (row of Sᵀ) is (lane >> LANE_ROW_SHIFT) + 8·bit e. The lanes of
// a row are then those with the same lr (others: the same lane >> LANE_ROW_SHIFT).
bool rs_hi(int e) { return ((ELEM_ROW_HI >> e) & 1) != 0; }
int rs_nib(int e) { return (ELEM_COLS >> (4 * e)) & 15; }
int rs_nib_slot(int e) { return (rs_nib(e) & 1) | ((rs_nib(e) >> 3) << 1); }
int rs_row(int w, int lane, int k) {
  const int lr = lane & ((1 << LANE_ROW_SHIFT) - 1);
  if (TRANSPOSED) return w * SR + (k / 4) * kFrag + (k % 4 & 1) + 8 * (k % 4 >> 1) + LANE_COL_STEP * lr;
  return w * SR + (k / 2) * kFrag + (lane >> LANE_ROW_SHIFT) + 8 * (k % 2);
}
int rs_slot(int f, int e) { return TRANSPOSED ? 4 * f + rs_nib_slot(e) : 2 * f + (rs_hi(e) ? 1 : 0); }
int rs_col(int j, int e, int lane) {
  if (TRANSPOSED) return j * kFrag + (lane >> LANE_ROW_SHIFT) + 8 * (rs_hi(e) ? 1 : 0);
  return j * kFrag + rs_nib(e) + LANE_COL_STEP * (lane & ((1 << LANE_ROW_SHIFT) - 1));
}
// Xor distances between the lanes of a row: below 2^LANE_ROW_SHIFT, or (TRANSPOSED) from there to 32.
const int RS_XOR0 = TRANSPOSED ? 1 << LANE_ROW_SHIFT : 1;
const int RS_XOR_END = TRANSPOSED ? kLanes : 1 << LANE_ROW_SHIFT;
// The lane that writes a row's statistics (and holds its initial sum)
bool rs_writer(int lane) { return TRANSPOSED ? (lane >> LANE_ROW_SHIFT) == 0 : (lane & ((1 << LANE_ROW_SHIFT) - 1)) == 0; }

// P (fp32 accumulator) → f16 left operand (KHR: component by component, the host checked that both
// roles' components hold the same elements; TRANSPOSED: Pᵀ, a right operand of the same layout).
void to_operand(FMAT x, out HMAT y) {
#ifdef COOPMAT_KHR
  [[unroll]] for (int e = 0; e < kElems; ++e) y[e] = float16_t(x[e]);
#else
  y = HMAT(x);
#endif
}

void main() {
  Args A = Args(pc.args);
  const uint64_t gid = linear_group_id();
  if (gid >= uint64_t(A.n_groups)) return;
  const int tid = int(gl_LocalInvocationID.x);
  const int w = int(gl_SubgroupID);
  const int lane = int(gl_SubgroupInvocationID);
  const Item it = decode_item(A, gid, false);
  const int64_t b = it.b;
  const int hk = it.hk;
  if (DIAG == 9 && A.n_q > 0) return;

  // ---- query positions covered by the workgroup ----
  // (without causality or windows every pair is allowed: no positions are needed)
  const bool any_mask = !(GENERAL && UNMASKED) && (A.causal != 0 || A.window_left >= 0 || A.window_right >= 0);
  int64_t q_lo = kFarLow, q_hi = kFarHigh;
  if (GENERAL) {
    if (lane < SR) {
      const int r = w * SR + lane;
      const Row q = row_of(A, it, r);
      sRowPos[r] = q.pos;
      sRowPhys[r] = q.phys;
      sRowGroup[r] = q.group;
    }
    barrier();
    if (any_mask) {
      q_lo = kFarHigh;
      q_hi = kFarLow;
      for (int r = 0; r < BQ; ++r) {
        if (!row_valid(A, it, r)) continue;
        q_lo = min(q_lo, sRowPos[r]);
        q_hi = max(q_hi, sRowPos[r]);
      }
    }
  } else {  // every head has the rows q0 … q1 − 1
    q_lo = A.q_pos0 + it.q0;
    q_hi = A.q_pos0 + it.q1 - 1;
  }

  // ---- key tiles (the first one's K/V and key facts are loaded now, ahead of Q) ----
  const bool affine_k = !GENERAL || (A.k_pos == 0 && !keys_gathered(A));
  const bool has_groups = GENERAL && A.q_group != 0 && keys_have_groups(A);
  const bool has_logw = GENERAL && keys_have_logw(A);
  int64_t rb0, re0, rb1, re1;
  const int n_ranges = key_ranges(A, affine_k, q_lo, q_hi, it.kb, it.ke, rb0, re0, rb1, re1);
  const int n_t0 = n_ranges > 0 ? int((re0 - rb0 + BK - 1) / BK) : 0;
  const int n_t = DIAG == 11 && A.n_q > 0 ? 0 : n_t0 + (n_ranges > 1 ? int((re1 - rb1 + BK - 1) / BK) : 0);
  const int64_t k_pos0 = A.k_pos0;
  // Plain case: logical keys [full_lo, full_hi] are allowed for every row of the workgroup (causal
  // and window bounds taken at the rows' extreme positions), so a tile inside them is full without
  // classify(), whose loads of the argument block would sit on every tile's critical path (with
  // PINGPONG twice per step: without this, ping-pong gained nothing on causal calls).
  int64_t full_lo = kFarHigh, full_hi = kFarLow;
  if (!GENERAL && any_mask) {
    const bool banded = !(q_hi < A.n_global);  // rows at global positions see every earlier key
    full_lo = (banded && A.window_left >= 0 ? q_hi - A.window_left : kFarLow) - k_pos0;
    full_hi = min(A.causal != 0 ? q_lo : kFarHigh, banded && A.window_right >= 0 ? q_lo + A.window_right : kFarHigh) - k_pos0;
  }
  const int64_t kv_bh = b * A.hkv + hk;  // KV head row of the key arrays (key_arrays)
  const uint64_t k_head = A.k + uint64_t(b * A.k_stride[0] + hk * A.k_stride[2]);
  const uint64_t v_head = A.v + uint64_t(b * A.v_stride[0] + hk * A.v_stride[2]);
  const int64_t k_row_bytes = A.k_stride[1], v_row_bytes = A.v_stride[1];

  uvec4 kreg[NKC], vreg[NVC];
  KeyFacts kf;  // GENERAL, lanes below BK: the facts of key j0 + lane of the tile that comes next
  if (GENERAL && tid < BK && n_t > 0) {
    int64_t j0;
    int nc;
    tile_at(0, n_t0, rb0, re0, rb1, re1, j0, nc);
    kf = key_facts(A, kv_bh, j0, nc, tid, any_mask, has_groups);
  }
  if (KV_PIPE != 0 && n_t > 0) {  // K (with KV_PIPE = 2 also V) of the first tile into registers
    int64_t j0;
    int nc;
    tile_at(0, n_t0, rb0, re0, rb1, re1, j0, nc);
    [[unroll]] for (int i = 0; i < NKC; ++i) kreg[i] = load_kv_unit(A, k_head, k_row_bytes, KU, kv_bh, j0, nc, tid + i * WG);
    if (KV_PIPE == 2 && !PP)
      [[unroll]] for (int i = 0; i < NVC; ++i) vreg[i] = load_kv_unit(A, v_head, v_row_bytes, VU, kv_bh, j0, nc, tid + i * WG);
  }

  // ---- Q rows as f16 in shared memory (kept there with Q_SHARED, else held as fragments) ----
  // Without Q_SHARED the rows pass through the tile area QP rows (whole subgroups) at a time, so
  // that workgroups with more rows than that area holds still fit the shared memory. Each lane
  // issues all its loads of a pass before it stores any (one memory latency per pass, not one
  // per 16-byte unit); the first K/V tile is already in flight (above).
  HMAT qf[Q_SHARED ? 1 : RF * NKK];
  [[unroll]] for (int r0 = 0; r0 < BQ; r0 += QP) {
    uvec4 qu[NQU];
    [[unroll]] for (int i = 0; i < NQU; ++i) {
      const int p = tid + i * WG;
      const int r = r0 + p / KU, u = p % KU;
      qu[i] = uvec4(0);
      if (p < QP * KU && r < BQ) {
        const Row q = row_at(A, it, r);
        if (DIAG == 8 && A.n_q > 0) {
          qu[i] = uvec4(uint(p));
        } else if (q.valid) {
          const uint64_t at = elem_addr(A.q, A.q_stride[0], A.q_stride[1], A.q_stride[2], A.q_stride[3], b, q.phys, q.h, u * 8);
          if (A.q_stride[3] == 2 && (at & uint64_t(15)) == 0) {
            qu[i] = U32x4r(at).v[0];
          } else {
            [[unroll]] for (int e = 0; e < 4; ++e)
              qu[i][e] = load_half_bits(at + uint64_t((2 * e) * A.q_stride[3])) |
                         (load_half_bits(at + uint64_t((2 * e + 1) * A.q_stride[3])) << 16);
          }
        }
      }
    }
    [[unroll]] for (int i = 0; i < NQU; ++i) {
      const int p = tid + i * WG;
      if (p < QP * KU) sm[(p / KU) * KS + p % KU] = qu[i];
    }
    barrier();
    if (!Q_SHARED) {
      if (w * SR >= r0 && w * SR < r0 + QP)
        [[unroll]] for (int f = 0; f < RF; ++f)
          [[unroll]] for (int kk = 0; kk < NKK; ++kk)
            coopMatLoadNV(qf[f * NKK + kk], sm, uint((w * SR - r0 + f * kFrag) * KS + kk * 2), uint(KS), TRANSPOSED);
      barrier();  // this pass's rows are in registers: the shared array takes the next pass, then K, V and the scratches
    }
  }

  // ---- this lane's query row (SR·w + rr, part hh), its statistics, the accumulators ----
  const int rr = lane % SR, hh = lane / SR;
  const Row me = row_at(A, it, w * SR + rr);
  const int64_t sidx = state_index(A, b, me.h, me.phys);
  const int scr = SCR_AT + w * SCR;             // this subgroup's S / O scratch
  const int my_o = scr + rr * SS + hh * OU;     // this lane's units of an O fragment row there
  float m_ref = kNegInf, l = 0.0;
  FMAT of[RF * NC];
  [[unroll]] for (int i = 0; i < RF * NC; ++i) of[i] = FMAT(0.0);
  if (STATE) {
    if (me.valid) {
      m_ref = ld_f32(A.st_m, sidx);
      l = ld_f32(A.st_l, sidx);
    }
    [[unroll]] for (int c = 0; c < NC; ++c) {
      [[unroll]] for (int e = 0; e < OU; ++e) {
        vec4 x = vec4(0.0);
        const int64_t i0 = sidx * DV + c * kFrag + hh * 4 * OU + e * 4;
        if (me.valid && ((A.st_acc + uint64_t(i0) * 4) & uint64_t(15)) == 0)
          x = uintBitsToFloat(U32x4s(A.st_acc + uint64_t(i0) * 4).v[0]);
        else if (me.valid)
          [[unroll]] for (int k = 0; k < 4; ++k) x[k] = ld_f32(A.st_acc, i0 + k);
        sm[my_o + e] = floatBitsToUint(x);
      }
      sync_subgroup();
      [[unroll]] for (int f = 0; f < RF; ++f) coopMatLoadNV(of[f * NC + c], sm, uint(scr + f * kFrag * SS), uint(SS), TRANSPOSED);
      sync_subgroup();
    }
  }

  // REG_SOFTMAX: the rows this lane holds parts of, their reference maxima, this lane's share of
  // their sums (the lanes of a row add theirs at the end)
  const float qscale = A.qscale, softcap = A.softcap;
  float rm[RS_ROWS], rl[RS_ROWS];
  int64_t rpos[RS_ROWS];
  int rgroup[RS_ROWS];
  if (REG_SOFTMAX) {
    [[unroll]] for (int k = 0; k < RS_ROWS; ++k) {
      const Row q = row_at(A, it, rs_row(w, lane, k));
      rpos[k] = q.pos;
      rgroup[k] = q.group;
      rm[k] = kNegInf;
      rl[k] = 0.0;
      if (STATE && q.valid) {
        const int64_t si = state_index(A, b, q.h, q.phys);
        rm[k] = ld_f32(A.st_m, si);
        if (rs_writer(lane)) rl[k] = ld_f32(A.st_l, si);
      }
    }
  }

  if (STATE && SCR_OVER_KV) barrier();  // every subgroup's scratch (over the K/V tiles) is read
  if (DIAG == 10 && A.n_q > 0) return;
  const int pp_half = PP && w >= NW / 2 ? 1 : 0;
  // PP: what a subgroup holds from one step to the next, S(t) (second half) or P(t) in fp32 (first
  // half; converted to f16 just before P·V). Without PP, s and pf are declared afresh in each step,
  // so that the compiler keeps nothing of them across steps, and P is converted as it is computed.
  FMAT s_held[RF * NJ];
  const int n_steps = PP && n_t > 0 ? n_t + 1 : n_t;
  for (int t = 0; t < n_steps; ++t) {
    FMAT s[RF * NJ];   // REG_SOFTMAX: S of a tile, then its P (fp32)
    HMAT pf[RF * NJ];  // P as the left operands of P·V (TRANSPOSED: Pᵀ, right operands)
    if (PP) [[unroll]] for (int i = 0; i < RF * NJ; ++i) s[i] = s_held[i];
    int64_t j0;
    int nc;
    tile_at(min(t, n_t - 1), n_t0, rb0, re0, rb1, re1, j0, nc);

    if (PP) {
      // K(t) and V(t − 1) into shared memory (loaded during the step before): the last barrier
      // ended every read of K(t − 1) and V(t − 2)
      [[unroll]] for (int i = 0; i < NKC; ++i) {
        const int p = tid + i * WG;
        if (t < n_t && p < BK * KU) sm[K_AT + (p / KU) * KS + p % KU] = kreg[i];
      }
      [[unroll]] for (int i = 0; i < NVC; ++i) {
        const int p = tid + i * WG;
        if (t > 0 && p < BK * VU) sm[V_AT + (p / VU) * VS + p % VU] = vreg[i];
      }
      barrier();
      // K(t + 1) and V(t) global → registers, in flight during the whole step
      if (t + 1 < n_t) {
        int64_t j1;
        int nc1;
        tile_at(t + 1, n_t0, rb0, re0, rb1, re1, j1, nc1);
        [[unroll]] for (int i = 0; i < NKC; ++i) kreg[i] = load_kv_unit(A, k_head, k_row_bytes, KU, kv_bh, j1, nc1, tid + i * WG);
      }
      if (t < n_t)
        [[unroll]] for (int i = 0; i < NVC; ++i) vreg[i] = load_kv_unit(A, v_head, v_row_bytes, VU, kv_bh, j0, nc, tid + i * WG);
    } else {
      // K(t) (and unless KV_PIPE = 1 V(t)) into shared memory: the last barrier ended every read of
      // the previous tile's K (and V)
      if (KV_PIPE == 0) {
        [[unroll]] for (int i = 0; i < NKC; ++i) kreg[i] = load_kv_unit(A, k_head, k_row_bytes, KU, kv_bh, j0, nc, tid + i * WG);
        [[unroll]] for (int i = 0; i < NVC; ++i) vreg[i] = load_kv_unit(A, v_head, v_row_bytes, VU, kv_bh, j0, nc, tid + i * WG);
      }
      [[unroll]] for (int i = 0; i < NKC; ++i) {
        const int p = tid + i * WG;
        if (p < BK * KU) sm[K_AT + (p / KU) * KS + p % KU] = kreg[i];
      }
      if (KV_PIPE != 1) {
        [[unroll]] for (int i = 0; i < NVC; ++i) {
          const int p = tid + i * WG;
          if (p < BK * VU) sm[V_AT + (p / VU) * VS + p % VU] = vreg[i];
        }
      }
      if (GENERAL && tid < BK) {  // the key facts (with KV_PIPE = 2 loaded a tile ahead, below)
        if (KV_PIPE != 2 && t > 0) kf = key_facts(A, kv_bh, j0, nc, tid, any_mask, has_groups);
        sKpos[tid] = kf.pos;
        sKlogw[tid] = kf.logw;
        sKgroup[tid] = kf.group;
      }
      // KV_PIPE = 1: V(t) global → registers, consumed after S(t) and its softmax
      if (KV_PIPE == 1)
        [[unroll]] for (int i = 0; i < NVC; ++i) vreg[i] = load_kv_unit(A, v_head, v_row_bytes, VU, kv_bh, j0, nc, tid + i * WG);
      if (DIAG != 5) barrier();  // K(t) (V(t)) and the key metadata are visible
      // KV_PIPE = 2: K(t + 1) and V(t + 1) global → registers, in flight during the whole tile
      if (KV_PIPE == 2 && t + 1 < n_t) {
        int64_t j1;
        int nc1;
        tile_at(t + 1, n_t0, rb0, re0, rb1, re1, j1, nc1);
        [[unroll]] for (int i = 0; i < NKC; ++i) kreg[i] = load_kv_unit(A, k_head, k_row_bytes, KU, kv_bh, j1, nc1, tid + i * WG);
        [[unroll]] for (int i = 0; i < NVC; ++i) vreg[i] = load_kv_unit(A, v_head, v_row_bytes, VU, kv_bh, j1, nc1, tid + i * WG);
        if (GENERAL && tid < BK) kf = key_facts(A, kv_bh, j1, nc1, tid, any_mask, has_groups);
      }
    }

    // The step's work, in two parts with PP: part 0 has the second half's softmax of tile t − 1
    // and everyone's O += P(t − 1)·V(t − 1), part 1 everyone's S(t) = Q·K(t)ᵀ and the first half's
    // softmax of it; without PP part 1 alone, all of tile t. (j0, nc below: the part's tile.)
    [[unroll]] for (int part = PP ? 0 : 1; part < 2; ++part) {
      const int tp = PP ? t - 1 + part : t;
      const bool do_qk = !PP || (part == 1 && t < n_t);
      const bool do_sm = !PP || (part == 0 ? pp_half == 1 && t > 0 : pp_half == 0 && t < n_t);
      const bool do_pv = !PP || (part == 0 && t > 0);
      if (!do_qk && !do_sm && !do_pv) continue;
      int64_t j0;
      int nc;
      tile_at(tp, n_t0, rb0, re0, rb1, re1, j0, nc);
      int kind;
      if (!any_mask || (!GENERAL && j0 >= full_lo && j0 + nc - 1 <= full_hi)) {
        kind = kFull;
      } else if (affine_k) {
        kind = classify(A, q_lo, q_hi, k_pos0 + j0, k_pos0 + j0 + nc - 1);
      } else {
        int64_t k_lo = kFarHigh, k_hi = kFarLow;
        for (int c = 0; c < nc; ++c) {
          k_lo = min(k_lo, sKpos[c]);
          k_hi = max(k_hi, sKpos[c]);
        }
        kind = classify(A, q_lo, q_hi, k_lo, k_hi);
      }

      if (kind != kSkip && REG_SOFTMAX && do_qk) {
        // S = Q·Kᵀ (TRANSPOSED: Sᵀ = K·Qᵀ) in registers, the whole tile at once (RF·NJ fragments)
        [[unroll]] for (int i = 0; i < RF * NJ; ++i) s[i] = FMAT(0.0);
        [[unroll]] for (int kk = 0; kk < NKK; ++kk) {
          HMAT qa[RF];
          [[unroll]] for (int f = 0; f < RF; ++f) {
            if (Q_SHARED) coopMatLoadNV(qa[f], sm, uint((w * SR + f * kFrag) * KS + kk * 2), uint(KS), TRANSPOSED);
            else qa[f] = qf[f * NKK + kk];
          }
          [[unroll]] for (int j = 0; j < NJ; ++j) {
            HMAT_B kt;  // Kᵀ block, or (TRANSPOSED) the K block
            coopMatLoadNV(kt, sm, uint(K_AT + j * kFrag * KS + kk * 2), uint(KS), DIAG == 1 ? false : !TRANSPOSED);
            [[unroll]] for (int f = 0; f < RF; ++f)
              if (DIAG != 3) {
                if (TRANSPOSED) s[f * NJ + j] = coopMatMulAddNV(kt, qa[f], s[f * NJ + j]);
                else s[f * NJ + j] = coopMatMulAddNV(qa[f], kt, s[f * NJ + j]);
              }
          }
        }
      }
      if (kind != kSkip && REG_SOFTMAX && do_sm) {
        // scores in place and the row maxima: each lane its components, then over the row's lanes
        const bool exact = has_logw || has_groups || kind == kPartial || nc < BK;
        const int64_t kpos0 = k_pos0 + j0;
        float mx[RS_ROWS];
        [[unroll]] for (int k = 0; k < RS_ROWS; ++k) mx[k] = kNegInf;
        if (!exact && softcap <= 0.0) {  // scale only
          [[unroll]] for (int f = 0; f < RF; ++f)
            [[unroll]] for (int j = 0; j < NJ; ++j)
              [[unroll]] for (int e = 0; e < kElems; ++e) {
                const float x = s[f * NJ + j][e] * qscale;
                s[f * NJ + j][e] = x;
                mx[rs_slot(f, e)] = max(mx[rs_slot(f, e)], x);
              }
        } else if (GENERAL && softcap <= 0.0 && kind != kPartial) {
          // log-weights, exclusion groups and columns past the tile only (the key facts hold −inf
          // there): HYPER's sample calls
          [[unroll]] for (int f = 0; f < RF; ++f)
            [[unroll]] for (int j = 0; j < NJ; ++j)
              [[unroll]] for (int e = 0; e < kElems; ++e) {
                const int k = rs_slot(f, e), c = rs_col(j, e, lane);
                float x = s[f * NJ + j][e] * qscale + sKlogw[c];
                if (has_groups && rgroup[k] >= 0 && rgroup[k] == sKgroup[c]) x = kNegInf;
                s[f * NJ + j][e] = x;
                mx[k] = max(mx[k], x);
              }
        } else {
          [[unroll]] for (int f = 0; f < RF; ++f)
            [[unroll]] for (int j = 0; j < NJ; ++j)
              [[unroll]] for (int e = 0; e < kElems; ++e) {
                const int k = rs_slot(f, e);
                const float x = score(A, qscale, softcap, s[f * NJ + j][e], rs_col(j, e, lane), exact, kind, nc, rpos[k],
                                      rgroup[k], kpos0, has_groups);
                s[f * NJ + j][e] = x;
                mx[k] = max(mx[k], x);
              }
        }
        [[unroll]] for (int k = 0; k < RS_ROWS; ++k)
          [[unroll]] for (int o = RS_XOR0; o < RS_XOR_END; o *= 2) mx[k] = max(mx[k], subgroupShuffleXor(mx[k], o));
        // lazy reference per row (as below), O rescaled in registers where one moved
        float alpha[RS_ROWS], m_sub[RS_ROWS];
        bool rescale = false;
        [[unroll]] for (int k = 0; k < RS_ROWS; ++k) {
          const bool move = mx[k] > rm[k] + kTau;
          const float m_new = move ? mx[k] : rm[k];
          alpha[k] = move ? exp2(rm[k] - m_new) : 1.0;
          rescale = rescale || (move && rm[k] != kNegInf);
          m_sub[k] = m_new == kNegInf ? 0.0 : m_new;
          rm[k] = m_new;
        }
        if (subgroupAny(rescale))
          [[unroll]] for (int f = 0; f < RF; ++f)
            [[unroll]] for (int c = 0; c < NC; ++c)
              [[unroll]] for (int e = 0; e < kElems; ++e) of[f * NC + c][e] *= alpha[rs_slot(f, e)];
        // P = exp2(s − m_ref) in place, converted to f16 fragments (PP: just before P·V); this lane's
        // share of the row sums
        float sum[RS_ROWS];
        [[unroll]] for (int k = 0; k < RS_ROWS; ++k) sum[k] = 0.0;
        [[unroll]] for (int f = 0; f < RF; ++f)
          [[unroll]] for (int j = 0; j < NJ; ++j) {
            [[unroll]] for (int e = 0; e < kElems; ++e) {
              const int k = rs_slot(f, e);
              const float p = exp2(s[f * NJ + j][e] - m_sub[k]);
              s[f * NJ + j][e] = p;
              sum[k] += p;
            }
            if (!PP) to_operand(s[f * NJ + j], pf[f * NJ + j]);
          }
        [[unroll]] for (int k = 0; k < RS_ROWS; ++k) rl[k] = rl[k] * alpha[k] + sum[k];
      } else if (kind != kSkip && !REG_SOFTMAX) {
        // S = Q·Kᵀ for this subgroup's SR rows into its scratch; each Kᵀ block serves RF row
        // fragments. With Q in registers one key block at a time (8 accumulator registers per row
        // fragment); with Q_SHARED every block of the tile at once, so that each Q fragment is read
        // from shared memory once per tile.
        if (Q_SHARED) {
          FMAT s[RF * NJ];
          [[unroll]] for (int i = 0; i < RF * NJ; ++i) s[i] = FMAT(0.0);
          [[unroll]] for (int kk = 0; kk < NKK; ++kk) {
            HMAT qa[RF];
            [[unroll]] for (int f = 0; f < RF; ++f)
              coopMatLoadNV(qa[f], sm, uint((w * SR + f * kFrag) * KS + kk * 2), uint(KS), false);
            [[unroll]] for (int j = 0; j < NJ; ++j) {
              HMAT_B kt;
              coopMatLoadNV(kt, sm, uint(K_AT + j * kFrag * KS + kk * 2), uint(KS), true);  // Kᵀ block
              [[unroll]] for (int f = 0; f < RF; ++f) s[f * NJ + j] = coopMatMulAddNV(qa[f], kt, s[f * NJ + j]);
            }
          }
          [[unroll]] for (int f = 0; f < RF; ++f)
            [[unroll]] for (int j = 0; j < NJ; ++j)
              coopMatStoreNV(s[f * NJ + j], sm, uint(scr + f * kFrag * SS + j * 4), uint(SS), false);
        } else {
          [[unroll]] for (int j = 0; j < NJ; ++j) {
            FMAT s[RF];
            [[unroll]] for (int f = 0; f < RF; ++f) s[f] = FMAT(0.0);
            [[unroll]] for (int kk = 0; kk < NKK; ++kk) {
              HMAT_B kt;
              coopMatLoadNV(kt, sm, uint(K_AT + j * kFrag * KS + kk * 2), uint(KS), true);  // Kᵀ block
              [[unroll]] for (int f = 0; f < RF; ++f) s[f] = coopMatMulAddNV(qf[f * NKK + kk], kt, s[f]);
            }
            [[unroll]] for (int f = 0; f < RF; ++f) coopMatStoreNV(s[f], sm, uint(scr + f * kFrag * SS + j * 4), uint(SS), false);
          }
        }
        sync_subgroup();

        // scores of this lane's part of its row, the row max, the lazy reference
        const bool exact = has_logw || has_groups || kind == kPartial || nc < BK;  // per-element masking
        const int64_t kpos0 = k_pos0 + j0;
        const int s_at = scr + rr * SS + hh * (COLS / 4);
        float sv[COLS];
        float mx = kNegInf;
        if (!exact && softcap <= 0.0) {  // scale only
          [[unroll]] for (int e = 0; e < COLS / 4; ++e) {
            const vec4 x = uintBitsToFloat(sm[s_at + e]) * qscale;
            [[unroll]] for (int k = 0; k < 4; ++k) {
              sv[4 * e + k] = x[k];
              mx = max(mx, x[k]);
            }
          }
        } else {
          [[unroll]] for (int e = 0; e < COLS / 4; ++e) {
            const vec4 x = uintBitsToFloat(sm[s_at + e]);
            [[unroll]] for (int k = 0; k < 4; ++k) {
              sv[4 * e + k] = score(A, qscale, softcap, x[k], hh * COLS + 4 * e + k, exact, kind, nc, me.pos, me.group,
                                    kpos0, has_groups);
              mx = max(mx, sv[4 * e + k]);
            }
          }
        }
        if (LPR == 2) mx = max(mx, subgroupShuffleXor(mx, 16));
        const bool move = mx > m_ref + kTau;  // also true for the first finite max (m_ref = −inf)
        const float m_new = move ? mx : m_ref;
        const float alpha = move ? exp2(m_ref - m_new) : 1.0;
        const bool rescale = move && m_ref != kNegInf;  // O holds something to scale
        const float m_sub = m_new == kNegInf ? 0.0 : m_new;  // an empty row keeps P = exp2(−inf) = 0
        m_ref = m_new;
        sync_subgroup();  // S is read: the scratch takes O fragments, then P

        // O_row ·= α, one column of fragments at a time through the scratch (each lane scales its
        // own part of its row)
        if (subgroupAny(rescale)) {
          [[unroll]] for (int c = 0; c < NC; ++c) {
            [[unroll]] for (int f = 0; f < RF; ++f) coopMatStoreNV(of[f * NC + c], sm, uint(scr + f * kFrag * SS), uint(SS), false);
            sync_subgroup();
            [[unroll]] for (int e = 0; e < OU; ++e) sm[my_o + e] = floatBitsToUint(uintBitsToFloat(sm[my_o + e]) * alpha);
            sync_subgroup();
            [[unroll]] for (int f = 0; f < RF; ++f) coopMatLoadNV(of[f * NC + c], sm, uint(scr + f * kFrag * SS), uint(SS), false);
            sync_subgroup();
          }
        }

        // P = exp2(s − m_ref) as f16 over S;  l = α·l + rowsum P
        float sum = 0.0;
        const int p_at = scr + rr * PS + hh * (COLS / 8);
        [[unroll]] for (int e = 0; e < COLS / 8; ++e) {
          uvec4 packed;
          [[unroll]] for (int k = 0; k < 4; ++k) {
            const float p0 = exp2(sv[8 * e + 2 * k] - m_sub), p1 = exp2(sv[8 * e + 2 * k + 1] - m_sub);
            sum += p0 + p1;
            packed[k] = packFloat2x16(f16vec2(p0, p1));
          }
          sm[p_at + e] = packed;
        }
        if (LPR == 2) sum += subgroupShuffleXor(sum, 16);
        l = l * alpha + sum;
      }

      if (KV_PIPE == 1 && !PP) {
        // V(t) registers → shared (every read of V(t − 1) ended before the barrier above)
        [[unroll]] for (int i = 0; i < NVC; ++i) {
          const int p = tid + i * WG;
          if (p < BK * VU) sm[V_AT + (p / VU) * VS + p % VU] = vreg[i];
        }
        // K(t + 1) global → registers, consumed at the start of the next tile
        if (t + 1 < n_t) {
          int64_t j1;
          int nc1;
          tile_at(t + 1, n_t0, rb0, re0, rb1, re1, j1, nc1);
          [[unroll]] for (int i = 0; i < NKC; ++i) kreg[i] = load_kv_unit(A, k_head, k_row_bytes, KU, kv_bh, j1, nc1, tid + i * WG);
        }
        if (DIAG != 5) barrier();  // V(t) and P are visible; every read of K(t) has ended
      } else if (!REG_SOFTMAX) {
        sync_subgroup();  // P is visible to the subgroup
      }

      if (kind != kSkip && do_pv) {
        // O += P·V (P from the scratch without REG_SOFTMAX; with PP converted from s now)
        [[unroll]] for (int f = 0; f < RF; ++f)
          [[unroll]] for (int j = 0; j < NJ; ++j) {
            if (!REG_SOFTMAX) coopMatLoadNV(pf[f * NJ + j], sm, uint(scr + f * kFrag * PS + j * 2), uint(PS), false);
            else if (PP) to_operand(s[f * NJ + j], pf[f * NJ + j]);
          }
        [[unroll]] for (int c = 0; c < NC; ++c) {
          [[unroll]] for (int j = 0; j < NJ; ++j) {
            HMAT_B vf;  // V block, or (TRANSPOSED) the Vᵀ block
            coopMatLoadNV(vf, sm, uint(V_AT + j * kFrag * VS + c * 2), uint(VS), TRANSPOSED);
            [[unroll]] for (int f = 0; f < RF; ++f)
              if (DIAG != 6) {
                if (TRANSPOSED) of[f * NC + c] = coopMatMulAddNV(vf, pf[f * NJ + j], of[f * NC + c]);
                else of[f * NC + c] = coopMatMulAddNV(pf[f * NJ + j], vf, of[f * NC + c]);
              }
          }
        }
      }
    }  // parts
    if (PP) [[unroll]] for (int i = 0; i < RF * NJ; ++i) s_held[i] = s[i];
    if (PP || (KV_PIPE != 1 && DIAG != 5)) barrier();  // every read of K(t) and V(t) (PP: of K(t) and V(t − 1)) has ended
  }
  sync_subgroup();  // the scratch's P is read
  // SCR_OVER_KV: the scratch overlaps the K/V tiles, whose last reads the loop's final barrier
  // ended unless K/V are staged half a tile ahead (that loop ends with P·V)
  if (SCR_OVER_KV && (KV_PIPE == 1 || DIAG == 5)) barrier();

  // REG_SOFTMAX: the row sums over the row's lanes; without a running state O is normalized in
  // registers (the stores below then scale by 1); the row statistics from each row's first lane
  if (REG_SOFTMAX) {
    [[unroll]] for (int k = 0; k < RS_ROWS; ++k)
      [[unroll]] for (int o = RS_XOR0; o < RS_XOR_END; o *= 2) rl[k] += subgroupShuffleXor(rl[k], o);
    if (!STATE) {
      [[unroll]] for (int f = 0; f < RF; ++f)
        [[unroll]] for (int c = 0; c < NC; ++c)
          [[unroll]] for (int e = 0; e < kElems; ++e) {
            const float lk = rl[rs_slot(f, e)];
            of[f * NC + c][e] *= lk == 0.0 ? 0.0 : 1.0 / lk;
          }
    }
    if (rs_writer(lane))
      [[unroll]] for (int k = 0; k < RS_ROWS; ++k) {
        const Row q = row_at(A, it, rs_row(w, lane, k));
        if (!q.valid || (DIAG == 7 && A.n_q > 0)) continue;
        if (STATE) {
          const int64_t si = state_index(A, b, q.h, q.phys);
          st_f32(A.st_m, si, rm[k]);
          st_f32(A.st_l, si, rl[k]);
        } else if (A.lse != 0) {
          const float lse = rl[k] == 0.0 ? kNegInf : (rm[k] + log2(rl[k])) * kLn2;
          F32s(elem_addr(A.lse, A.lse_stride[0], A.lse_stride[1], A.lse_stride[2], A.lse_stride[3], b, q.phys, q.h, 0)).v[0] = lse;
        }
      }
  }

  // ---- write out (or the running state): O fragments through the scratch, 4·OU consecutive
  // elements of its row per lane ----
  const float inv_l = REG_SOFTMAX ? 1.0 : l == 0.0 ? 0.0 : 1.0 / l;
  const int64_t o_step = A.o_stride[3];
  [[unroll]] for (int c = 0; c < NC; ++c) {
    [[unroll]] for (int f = 0; f < RF; ++f) coopMatStoreNV(of[f * NC + c], sm, uint(scr + f * kFrag * SS), uint(SS), TRANSPOSED);
    sync_subgroup();
    const int d0 = c * kFrag + hh * 4 * OU;
    // contiguous, 16-byte aligned destination (the usual case): 16-byte stores, with which a
    // row's lanes fill whole 32-byte sectors (scalar stores touched each sector 4 to 8 times)
    const uint64_t at = STATE ? A.st_acc + uint64_t(sidx * DV + d0) * 4
                              : elem_addr(A.o, A.o_stride[0], A.o_stride[1], A.o_stride[2], o_step, b, me.phys, me.h, d0);
    if (me.valid && !(DIAG == 7 && A.n_q > 0) && (STATE || o_step == (O_DT == kDtypeF32 ? 4 : 2)) &&
        (at & uint64_t(15)) == 0 && (STATE || O_DT == kDtypeF32 || OU % 2 == 0)) {
      if (STATE) {
        [[unroll]] for (int e = 0; e < OU; ++e) U32x4s(at).v[e] = sm[my_o + e];
      } else if (O_DT == kDtypeF32) {
        [[unroll]] for (int e = 0; e < OU; ++e) U32x4s(at).v[e] = floatBitsToUint(uintBitsToFloat(sm[my_o + e]) * inv_l);
      } else {
        [[unroll]] for (int e = 0; e < OU; e += 2) {
          const vec4 x0 = uintBitsToFloat(sm[my_o + e]) * inv_l, x1 = uintBitsToFloat(sm[my_o + e + 1]) * inv_l;
          U32x4s(at).v[e / 2] = uvec4(pack_two(x0.x, x0.y), pack_two(x0.z, x0.w), pack_two(x1.x, x1.y), pack_two(x1.z, x1.w));
        }
      }
    } else if (me.valid && !(DIAG == 7 && A.n_q > 0)) {
      [[unroll]] for (int e = 0; e < OU; ++e) {
        const vec4 x = uintBitsToFloat(sm[my_o + e]);
        [[unroll]] for (int k = 0; k < 4; k += 2) {
          const int d = d0 + 4 * e + k;
          if (STATE) {
            st_f32(A.st_acc, sidx * DV + d, x[k]);
            st_f32(A.st_acc, sidx * DV + d + 1, x[k + 1]);
          } else {
            store_two(elem_addr(A.o, A.o_stride[0], A.o_stride[1], A.o_stride[2], o_step, b, me.phys, me.h, d),
                      o_step, x[k] * inv_l, x[k + 1] * inv_l);
          }
        }
      }
    }
    sync_subgroup();
  }
  if (!REG_SOFTMAX && hh == 0 && me.valid && !(DIAG == 7 && A.n_q > 0)) {  // row statistics
    if (STATE) {
      st_f32(A.st_m, sidx, m_ref);
      st_f32(A.st_l, sidx, l);
    } else if (A.lse != 0) {
      const float lse = l == 0.0 ? kNegInf : (m_ref + log2(l)) * kLn2;
      F32s(elem_addr(A.lse, A.lse_stride[0], A.lse_stride[1], A.lse_stride[2], A.lse_stride[3], b, me.phys, me.h, 0)).v[0] = lse;
    }
  }
}
