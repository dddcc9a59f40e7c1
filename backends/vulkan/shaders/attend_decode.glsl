// attend_decode — one key split of attention for calls with few query rows per KV head (decode:
// the query heads of one KV head × a few query tokens). Included by attend_decode.comp
// (DECODE_SUBGROUP 1) and attend_decode_shared.comp (DECODE_SUBGROUP 0).
//
// Shapes as attend.comp (src/backend.hpp, AttendArgs): q [batch, n_q phys, hq, D] any float dtype
// and strides; k [batch, ·, hkv, D], v [batch, ·, hkv, DV] f32 / f16 / bf16 with contiguous rows
// whose starts are 16-byte aligned (read as 16-byte vectors); affine key positions k_pos0 + j (no
// key gather, positions, log-weights or exclusion groups); query gathers and positions allowed.
//
// Work item (as attend.comp): batch b, KV head hk, a block of HG query heads, TR query rows:
// BQ = HG·TR rows, row r: head g = r / TR, row q0 + r % TR. One workgroup = NH work items that
// differ only in their KV head (hk0 … hk0 + NH − 1, NH dividing hkv) × one split of their key
// tiles. The WG lanes form CL clusters of LPK lanes; cluster c serves head hk0 + c % NH and key
// slot c / NH of SPH = CL / NH slots. A cluster takes one key at a time, each lane reading its UK
// 16-byte vectors of the K row (lane i of the cluster: vectors i, i + LPK, … so that the cluster's
// loads are contiguous) and UV of the V row. With the heads of a token adjacent in memory (a
// KV cache [tokens, heads, dim]) the NH clusters of a key read NH consecutive rows: the workgroup
// streams through contiguous memory.
//
// A step covers CHUNK = SPH·KPL consecutive keys: cluster c takes keys j0 + c / NH + SPH·k
// (k < KPL), all of whose K and V vectors are loaded before any is used; the vectors of the next
// step are requested before the current step's arithmetic (PREFETCH), so that a lane always has
// loads in flight.
//
// Per key j and row r (log2 units, q pre-scaled by scale·log2e):
//   s = Σ_lanes Σ_own columns q[r]·k[j]            (reduction over the cluster's lanes)
//   softcap: s = c·log2e·tanh(q·k·scale / c);  s = −inf where the mask predicate forbids
// Online softmax per cluster and row, over the KPL keys of a step:
//   m_new = max(m, max_k s_k);  α = 2^(m − m_new);  p_k = 2^(s_k − m_new)
//   l = α·l + Σ_k p_k;  acc = α·acc + Σ_k p_k·v_k;  m = m_new
// At the end the SPH clusters of a head are merged per row (M = max_c m_c, w_c = 2^(m_c − M),
// L = Σ_c w_c·l_c, ACC = Σ_c w_c·acc_c; nothing to merge when SPH = 1) and (M, L, ACC) is stored
// in `part` ([item][split][row][2 + DV] floats), which attend_combine.comp merges over the splits
// (with a running state and sinks) into out / lse or the state.
//
// Every lane of the workgroup runs the same number of steps (the split's tiles are uniform), so
// the shuffles see whole clusters and the barriers of the shared-memory variant are uniform.

#include "common.glsl"
#include "attend_common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int BQ = 4;    // query rows per item (HG·TR ≤ BQ)
layout(constant_id = 2) const int D = 128;   // q/k head dim
layout(constant_id = 3) const int DV = 128;  // v/out head dim
layout(constant_id = 4) const int Q_DT = 0;  // longattn_dtype of q
layout(constant_id = 5) const int K_DT = 1;  // of k (f32 / f16 / bf16)
layout(constant_id = 6) const int V_DT = 1;  // of v
layout(constant_id = 7) const int LPK = 16;  // lanes per key (a power of two dividing the subgroup)
layout(constant_id = 8) const int KPL = 2;   // keys per cluster and step (rows in flight per lane)
layout(constant_id = 9) const int NH = 1;    // KV heads per workgroup (a power of two dividing CL and hkv)
layout(constant_id = 10) const bool PREFETCH = true;  // next step's loads before this step's arithmetic
layout(constant_id = 11) const bool LOADS_ONLY = false;  // measurement: the loads without the arithmetic

const int WG = int(gl_WorkGroupSize.x);
const int CL = WG / LPK;                      // clusters
const int SPH = CL / NH;                      // clusters (key slots) per head
const int CHUNK = SPH * KPL;                  // keys per step
const int KE = K_DT == kDtypeF32 ? 4 : 8;     // elements per 16-byte vector of K
const int VE = V_DT == kDtypeF32 ? 4 : 8;     // of V
const int UK = D / (KE * LPK);                // K vectors per lane and key
const int UV = DV / (VE * LPK);               // V vectors per lane and key
const int QE = UK * KE;                       // K / q columns per lane
const int AE = UV * VE;                       // V / acc columns per lane
const int PART_STRIDE = DV + 2;               // floats per row in `part`: m, l, acc[DV]

layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer Vec16s { uvec4 v[]; };

// merge of the key slots of a head (SPH > 1 only)
shared float sStat[SPH > 1 ? CL * BQ * 2 : 1];  // per cluster and row: m, l
shared float sAcc[SPH > 1 ? NH * BQ * DV : 1];  // per head slot and row: merged accumulators
#if !DECODE_SUBGROUP
shared float sDot[KPL * BQ * WG];  // per lane: its partial dot products of one step
#endif

// ---- per-lane state (private; every index below is a constant after unrolling) ----
float q[BQ * QE];          // this lane's columns of the query rows, pre-scaled
int64_t qpos[BQ];
bool rvalid[BQ];
float m[BQ], l[BQ], acc[BQ * AE];
uvec4 kCur[KPL * UK], vCur[KPL * UV];  // K / V vectors of the step being computed
uvec4 kNxt[KPL * UK], vNxt[KPL * UV];  // … and of the step loaded ahead
uint loadSink = 0u;                    // LOADS_ONLY: keeps the loads alive

// Key tiles of this split: range 0 is [rb0, re0), range 1 [rb1, re1); tile t < tiles0 lies in
// range 0. Filled once by main().
int64_t rb0, re0, rb1, re1, tiles0;

// Element e (0 .. 7, or 0 .. 3 for f32) of a 16-byte vector of `dtype`.
float vec_elem(uvec4 w, int dtype, int e) {
  if (dtype == kDtypeF32) return uintBitsToFloat(w[e]);
  const uint word = w[e >> 1];
  if (dtype == kDtypeF16) return unpackHalf2x16(word)[e & 1];
  return uintBitsToFloat((e & 1) != 0 ? word & 0xffff0000u : word << 16);
}

// First key and key count of tile t.
void tile_span(int64_t t, out int64_t j0, out int nc) {
  if (t < tiles0) {
    j0 = rb0 + t * CHUNK;
    nc = int(min(int64_t(CHUNK), re0 - j0));
  } else {
    j0 = rb1 + (t - tiles0) * CHUNK;
    nc = int(min(int64_t(CHUNK), re1 - j0));
  }
}

// Requests this cluster's K and V vectors of tile t into kNxt / vNxt (zero for keys past the
// range and for skipped tiles); returns the tile's class.
int load_tile(Args A, int64_t t, int64_t q_lo, int64_t q_hi, uint64_t k_head, uint64_t v_head, int slot0,
              out int64_t j0, out int nc) {
  tile_span(t, j0, nc);
  const int kind = classify(A, q_lo, q_hi, A.k_pos0 + j0, A.k_pos0 + j0 + nc - 1);
  [[unroll]] for (int k = 0; k < KPL; ++k) {
    const int c = slot0 + SPH * k;
    if (c < nc && kind != kSkip) {
      const uint64_t kr = k_head + uint64_t((j0 + c) * A.k_stride[1]);
      const uint64_t vr = v_head + uint64_t((j0 + c) * A.v_stride[1]);
      [[unroll]] for (int u = 0; u < UK; ++u) kNxt[k * UK + u] = Vec16s(kr + uint64_t(u * LPK * 16)).v[0];
      [[unroll]] for (int u = 0; u < UV; ++u) vNxt[k * UV + u] = Vec16s(vr + uint64_t(u * LPK * 16)).v[0];
    } else {
      [[unroll]] for (int u = 0; u < UK; ++u) kNxt[k * UK + u] = uvec4(0);
      [[unroll]] for (int u = 0; u < UV; ++u) vNxt[k * UV + u] = uvec4(0);
    }
  }
  return kind;
}

// One step over kCur / vCur: keys j0 + slot0 + SPH·k of the tile (nc keys, class `kind`).
void consume_tile(Args A, int64_t j0, int nc, int kind, int slot0, int tid) {
  if (LOADS_ONLY) {
    [[unroll]] for (int x = 0; x < KPL * UK; ++x) loadSink ^= kCur[x].x ^ kCur[x].y ^ kCur[x].z ^ kCur[x].w;
    [[unroll]] for (int x = 0; x < KPL * UV; ++x) loadSink ^= vCur[x].x ^ vCur[x].y ^ vCur[x].z ^ vCur[x].w;
    return;
  }
  // partial dot products of this lane's columns, s[k·BQ + r]
  float s[KPL * BQ];
  [[unroll]] for (int k = 0; k < KPL; ++k) {
    float kf[QE];
    [[unroll]] for (int u = 0; u < UK; ++u)
      [[unroll]] for (int e = 0; e < KE; ++e) kf[u * KE + e] = vec_elem(kCur[k * UK + u], K_DT, e);
    [[unroll]] for (int r = 0; r < BQ; ++r) {
      float dot = 0.0;
      [[unroll]] for (int x = 0; x < QE; ++x) dot += q[r * QE + x] * kf[x];
      s[k * BQ + r] = dot;
    }
  }
  // sum over the cluster's lanes (every lane ends with the same, bitwise equal, sums)
#if DECODE_SUBGROUP
  [[unroll]] for (int off = LPK / 2; off > 0; off /= 2)
    [[unroll]] for (int x = 0; x < KPL * BQ; ++x) s[x] += subgroupShuffleXor(s[x], uint(off));
#else
  const int first_lane = tid - tid % LPK;
  [[unroll]] for (int x = 0; x < KPL * BQ; ++x) sDot[x * WG + tid] = s[x];
  barrier();
  [[unroll]] for (int x = 0; x < KPL * BQ; ++x) {
    float sum = 0.0;
    for (int i = 0; i < LPK; ++i) sum += sDot[x * WG + first_lane + i];
    s[x] = sum;
  }
  barrier();
#endif
  // scores: softcap, then the mask (keys past the range and invalid rows are −inf)
  const bool softcap_on = A.softcap > 0.0;
  const float softcap_log2 = A.softcap * kLog2e;
  [[unroll]] for (int k = 0; k < KPL; ++k) {
    const int c = slot0 + SPH * k;
    const int64_t kp = A.k_pos0 + j0 + c;
    [[unroll]] for (int r = 0; r < BQ; ++r) {
      float x = s[k * BQ + r];
      if (softcap_on) x = softcap_log2 * tanh(x / A.softcap);
      if (c >= nc || !rvalid[r] || (kind == kPartial && !mask_allows(A, qpos[r], kp))) x = kNegInf;
      s[k * BQ + r] = x;
    }
  }
  // V as floats, then the online softmax step of each row
  float vf[KPL * AE];
  [[unroll]] for (int k = 0; k < KPL; ++k)
    [[unroll]] for (int u = 0; u < UV; ++u)
      [[unroll]] for (int e = 0; e < VE; ++e) vf[k * AE + u * VE + e] = vec_elem(vCur[k * UV + u], V_DT, e);
  [[unroll]] for (int r = 0; r < BQ; ++r) {
    float m_new = m[r];
    [[unroll]] for (int k = 0; k < KPL; ++k) m_new = max(m_new, s[k * BQ + r]);
    if (m_new == kNegInf) continue;  // nothing allowed yet for this row
    const float alpha = exp2(m[r] - m_new);
    float sum = 0.0;
    [[unroll]] for (int x = 0; x < AE; ++x) acc[r * AE + x] *= alpha;
    [[unroll]] for (int k = 0; k < KPL; ++k) {
      const float p = exp2(s[k * BQ + r] - m_new);
      sum += p;
      [[unroll]] for (int x = 0; x < AE; ++x) acc[r * AE + x] += p * vf[k * AE + x];
    }
    l[r] = l[r] * alpha + sum;
    m[r] = m_new;
  }
}

// Row r of a work item exists (the same for every KV head).
bool row_valid(Args A, Item it, int r) { return r / A.tr < A.hg && it.q0 + r % A.tr < it.q1; }

// Row r of the item of KV head hk: validity, query head, physical row and position.
bool row_of(Args A, Item it, int64_t b, int hk, int r, out int h, out int64_t phys, out int64_t pos) {
  const int64_t i = it.q0 + r % A.tr;
  h = hk * A.group + it.hb * A.hg + r / A.tr;
  phys = 0;
  pos = 0;
  if (!row_valid(A, it, r)) return false;
  phys = A.q_rows != 0 ? int64_t(ld_i32(A.q_rows, (b * A.hq + h) * A.n_q + i)) : i;
  pos = A.q_pos != 0 ? ld_i64(A.q_pos, phys) : A.q_pos0 + phys;
  return true;
}

void main() {
  Args A = Args(pc.args);
  const uint64_t gid = linear_group_id();
  if (gid >= uint64_t(A.n_groups)) return;
  const int tid = int(gl_LocalInvocationID.x);
#if DECODE_SUBGROUP
  const int slot = int(gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID);
#else
  const int slot = tid;
#endif
  const int cluster = slot / LPK, li = slot % LPK;
  const int hs = cluster % NH, slot0 = cluster / NH;  // head slot, key slot

  // ---- the workgroup: split, query tile, head block, group of NH KV heads, batch ----
  const int split = int(gid % uint64_t(A.n_splits));
  uint64_t rest = gid / uint64_t(A.n_splits);
  const uint64_t tile_id = rest % uint64_t(A.n_tiles);
  rest /= uint64_t(A.n_tiles);
  const uint64_t hb = rest % uint64_t(A.n_head_blocks);
  rest /= uint64_t(A.n_head_blocks);
  const uint64_t n_hgroups = uint64_t(A.hkv / NH);
  const int hk0 = int(rest % n_hgroups) * NH;
  const uint64_t b_id = rest / n_hgroups;
  // the work item of head hk0 (its rows and keys are every head's); head hk0 + x is item + x·stride
  const uint64_t head_stride = uint64_t(A.n_head_blocks) * uint64_t(A.n_tiles);
  const uint64_t item0 = ((b_id * uint64_t(A.hkv) + uint64_t(hk0)) * uint64_t(A.n_head_blocks) + hb) *
                             uint64_t(A.n_tiles) + tile_id;
  const Item it = decode_item(A, item0, false);
  const int64_t b = it.b;
  const int hk = hk0 + hs;

  // ---- query rows of this cluster's head: validity, position, this lane's columns of q ----
  [[unroll]] for (int r = 0; r < BQ; ++r) {
    int h;
    int64_t phys;
    rvalid[r] = row_of(A, it, b, hk, r, h, phys, qpos[r]);
    [[unroll]] for (int x = 0; x < QE; ++x) q[r * QE + x] = 0.0;
    if (rvalid[r]) {
      const uint64_t row = elem_addr(A.q, A.q_stride[0], A.q_stride[1], A.q_stride[2], A.q_stride[3], b, phys, h, 0);
      [[unroll]] for (int u = 0; u < UK; ++u)
        [[unroll]] for (int e = 0; e < KE; ++e) {
          const int col = (u * LPK + li) * KE + e;
          q[r * QE + u * KE + e] = load_elem(row + uint64_t(col * A.q_stride[3]), Q_DT) * A.qscale;
        }
    }
  }
  // position range of the workgroup's rows (uniform: over every head when rows are gathered)
  int64_t q_lo = kFarHigh, q_hi = kFarLow;
  const int heads_to_scan = A.q_rows != 0 ? NH : 1;
  for (int x = 0; x < heads_to_scan; ++x)
    for (int r = 0; r < BQ; ++r) {
      int h;
      int64_t phys, pos;
      if (row_of(A, it, b, hk0 + x, r, h, phys, pos)) {
        q_lo = min(q_lo, pos);
        q_hi = max(q_hi, pos);
      }
    }

  // ---- running statistics of this cluster ----
  [[unroll]] for (int r = 0; r < BQ; ++r) {
    m[r] = kNegInf;
    l[r] = 0.0;
  }
  [[unroll]] for (int x = 0; x < BQ * AE; ++x) acc[x] = 0.0;

  // ---- this split's key tiles (CHUNK keys each) over the ranges the mask allows ----
  const int n_ranges = key_ranges(A, true, q_lo, q_hi, it.kb, it.ke, rb0, re0, rb1, re1);
  tiles0 = n_ranges > 0 ? (re0 - rb0 + CHUNK - 1) / CHUNK : 0;
  int64_t t_begin, t_end;
  split_tiles(n_ranges, rb0, re0, rb1, re1, CHUNK, split, A.n_splits, t_begin, t_end);
  const uint64_t k_head = A.k + uint64_t(b * A.k_stride[0] + hk * A.k_stride[2]) + uint64_t(li * 16);
  const uint64_t v_head = A.v + uint64_t(b * A.v_stride[0] + hk * A.v_stride[2]) + uint64_t(li * 16);

  int64_t j0n = 0;
  int ncn = 0, kindn = kSkip;
  if (PREFETCH && t_begin < t_end) kindn = load_tile(A, t_begin, q_lo, q_hi, k_head, v_head, slot0, j0n, ncn);
  for (int64_t t = t_begin; t < t_end; ++t) {
    if (!PREFETCH) kindn = load_tile(A, t, q_lo, q_hi, k_head, v_head, slot0, j0n, ncn);
    [[unroll]] for (int x = 0; x < KPL * UK; ++x) kCur[x] = kNxt[x];
    [[unroll]] for (int x = 0; x < KPL * UV; ++x) vCur[x] = vNxt[x];
    const int64_t j0 = j0n;
    const int nc = ncn, kind = kindn;
    if (PREFETCH && t + 1 < t_end) kindn = load_tile(A, t + 1, q_lo, q_hi, k_head, v_head, slot0, j0n, ncn);
    if (kind != kSkip) consume_tile(A, j0, nc, kind, slot0, tid);
  }

  // ---- the split's partial (M, L, ACC) per row, at part[(item·n_splits + split)·BQ + r] ----
  const uint64_t item = item0 + uint64_t(hs) * head_stride;
  const uint64_t part_row0 = (item * uint64_t(A.n_splits) + uint64_t(split)) * uint64_t(BQ);
  if (LOADS_ONLY && loadSink == 0x9e3779b9u) st_f32(A.part, 0, 1.0);  // a store that needs every load
  if (SPH == 1) {
    // each cluster owns its head's rows: straight from registers
    [[unroll]] for (int r = 0; r < BQ; ++r)
      if (rvalid[r]) {
        const int64_t at = int64_t(part_row0 + uint64_t(r)) * PART_STRIDE;
        if (li == 0) {
          st_f32(A.part, at, m[r]);
          st_f32(A.part, at + 1, l[r]);
        }
        [[unroll]] for (int u = 0; u < UV; ++u)
          [[unroll]] for (int e = 0; e < VE; ++e)
            st_f32(A.part, at + 2 + (u * LPK + li) * VE + e, acc[r * AE + u * VE + e]);
      }
    return;
  }
  // merge the key slots of each head: M = max_c m_c, w_c = 2^(m_c − M), L = Σ w_c·l_c, ACC = Σ w_c·acc_c
  if (li == 0)
    [[unroll]] for (int r = 0; r < BQ; ++r) {
      sStat[(cluster * BQ + r) * 2] = m[r];
      sStat[(cluster * BQ + r) * 2 + 1] = l[r];
    }
  barrier();
  [[unroll]] for (int r = 0; r < BQ; ++r) {
    float mx = kNegInf;
    for (int x = 0; x < SPH; ++x) mx = max(mx, sStat[((x * NH + hs) * BQ + r) * 2]);
    const float w = mx == kNegInf ? 0.0 : exp2(m[r] - mx);
    [[unroll]] for (int x = 0; x < AE; ++x) acc[r * AE + x] *= w;
  }
  for (int x = 0; x < SPH; ++x) {  // one key slot at a time adds its columns
    if (slot0 == x)
      [[unroll]] for (int r = 0; r < BQ; ++r)
        [[unroll]] for (int u = 0; u < UV; ++u)
          [[unroll]] for (int e = 0; e < VE; ++e) {
            const int at = (hs * BQ + r) * DV + (u * LPK + li) * VE + e;
            const float add = acc[r * AE + u * VE + e];
            sAcc[at] = x == 0 ? add : sAcc[at] + add;
          }
    barrier();
  }
  // rows are valid or not alike for every head of the workgroup
  const uint64_t part_base = (item0 * uint64_t(A.n_splits) + uint64_t(split)) * uint64_t(BQ);
  const uint64_t part_head = head_stride * uint64_t(A.n_splits) * uint64_t(BQ);  // rows from head to head
  for (int p = tid; p < NH * BQ * DV; p += WG) {
    const int x = p / (BQ * DV), r = (p / DV) % BQ, col = p % DV;
    if (row_valid(A, it, r))
      st_f32(A.part, int64_t(part_base + uint64_t(x) * part_head + uint64_t(r)) * PART_STRIDE + 2 + col, sAcc[p]);
  }
  if (tid < NH * BQ) {
    const int x = tid / BQ, r = tid % BQ;
    if (row_valid(A, it, r)) {
      float mx = kNegInf, sum = 0.0;
      for (int y = 0; y < SPH; ++y) mx = max(mx, sStat[((y * NH + x) * BQ + r) * 2]);
      if (mx != kNegInf)
        for (int y = 0; y < SPH; ++y) {
          const int c = y * NH + x;
          sum += sStat[(c * BQ + r) * 2 + 1] * exp2(sStat[(c * BQ + r) * 2] - mx);
        }
      const int64_t at = int64_t(part_base + uint64_t(x) * part_head + uint64_t(r)) * PART_STRIDE;
      st_f32(A.part, at, mx);
      st_f32(A.part, at + 1, sum);
    }
  }
}
