// attend_decode — one key split of attention for calls with few query rows per KV head (decode:
// the query heads of one KV head × a few query tokens). Included by attend_decode.comp
// (DECODE_SUBGROUP 1) and attend_decode_shared.comp (DECODE_SUBGROUP 0).
//
// Shapes as attend.comp (src/backend.hpp, AttendArgs): q [batch, n_q phys, hq, D] any float dtype
// and strides; k [batch, ·, hkv, D], v [batch, ·, hkv, DV] f32 / f16 / bf16 with contiguous rows
// whose starts are 16-byte aligned (read as 16-byte vectors); affine key positions k_pos0 + j (no
// key gather, positions, log-weights or exclusion groups); query gathers and positions allowed.
//
// One workgroup = one work item (batch b, KV head hk, a block of HG query heads, TR query rows:
// BQ = HG·TR rows, row r: head g = r / TR, row q0 + r % TR, laid out as attend.comp) × one split
// of its key tiles (PHASE 1 of attend.comp). The WG lanes form clusters of LPK lanes; a cluster
// takes one key at a time, each lane reading its UK 16-byte vectors of the K row (lane i of the
// cluster: vectors i, i + LPK, … so that the cluster's loads are contiguous) and UV of the V row.
// A step of the workgroup covers CHUNK = CL·KPL consecutive keys: cluster c takes keys
// j0 + c + CL·k (k < KPL), all of whose K and V vectors are loaded before any is used.
//
// Per key j and row r (log2 units, q pre-scaled by scale·log2e):
//   s = Σ_lanes Σ_own columns q[r]·k[j]            (reduction over the cluster's lanes)
//   softcap: s = c·log2e·tanh(q·k·scale / c);  s = −inf where the mask predicate forbids
// Online softmax per cluster and row, over the KPL keys of a step:
//   m_new = max(m, max_k s_k);  α = 2^(m − m_new);  p_k = 2^(s_k − m_new)
//   l = α·l + Σ_k p_k;  acc = α·acc + Σ_k p_k·v_k;  m = m_new
// At the end the clusters are merged per row (M = max_c m_c, w_c = 2^(m_c − M),
// L = Σ_c w_c·l_c, ACC = Σ_c w_c·acc_c) and (M, L, ACC) is stored in `part`
// ([item][split][row][2 + DV] floats) exactly as attend.comp's PHASE 1 does, so that its PHASE 2
// finishes the rows (merging the splits and a running state, applying sinks, writing out/lse).
//
// Every lane of the workgroup runs the same number of steps (the split's tiles are uniform), so
// the shuffles see whole clusters and the barriers of the shared-memory variant are uniform.

#include "common.glsl"
#include "attend_common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int BQ = 4;    // query rows per item (HG·TR ≤ BQ), as PHASE 2's BQ
layout(constant_id = 2) const int D = 128;   // q/k head dim
layout(constant_id = 3) const int DV = 128;  // v/out head dim
layout(constant_id = 4) const int Q_DT = 0;  // longattn_dtype of q
layout(constant_id = 5) const int K_DT = 1;  // of k (f32 / f16 / bf16)
layout(constant_id = 6) const int V_DT = 1;  // of v
layout(constant_id = 7) const int LPK = 16;  // lanes per key (a power of two dividing the subgroup)
layout(constant_id = 8) const int KPL = 2;   // keys per cluster and step (rows in flight per lane)

const int WG = int(gl_WorkGroupSize.x);
const int CL = WG / LPK;                      // clusters
const int CHUNK = CL * KPL;                   // keys per step
const int KE = K_DT == kDtypeF32 ? 4 : 8;     // elements per 16-byte vector of K
const int VE = V_DT == kDtypeF32 ? 4 : 8;     // of V
const int UK = D / (KE * LPK);                // K vectors per lane and key
const int UV = DV / (VE * LPK);               // V vectors per lane and key
const int QE = UK * KE;                       // K / q columns per lane
const int AE = UV * VE;                       // V / acc columns per lane
const int PART_STRIDE = DV + 2;               // floats per row in `part`: m, l, acc[DV]

layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer Vec16s { uvec4 v[]; };

shared float sStat[CL * BQ * 2];  // per cluster and row: m, l
shared float sAcc[BQ * DV];       // merged accumulators
#if !DECODE_SUBGROUP
shared float sDot[KPL * BQ * WG];  // per lane: its partial dot products of one step
#endif

// Element e (0 .. 7, or 0 .. 3 for f32) of a 16-byte vector of `dtype`.
float vec_elem(uvec4 w, int dtype, int e) {
  if (dtype == kDtypeF32) return uintBitsToFloat(w[e]);
  const uint word = w[e >> 1];
  if (dtype == kDtypeF16) return unpackHalf2x16(word)[e & 1];
  return uintBitsToFloat((e & 1) != 0 ? word & 0xffff0000u : word << 16);
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
  const Item it = decode_item(A, gid, true);
  const int64_t b = it.b;
  const int hk = it.hk;

  // ---- query rows: validity, position, this lane's columns of q (pre-scaled) ----
  float q[BQ * QE];
  int64_t qpos[BQ];
  bool rvalid[BQ];
  int64_t q_lo = kFarHigh, q_hi = kFarLow;
  [[unroll]] for (int r = 0; r < BQ; ++r) {
    const int g = r / A.tr;
    const int64_t i = it.q0 + r % A.tr;
    rvalid[r] = g < A.hg && i < it.q1;
    qpos[r] = 0;
    [[unroll]] for (int x = 0; x < QE; ++x) q[r * QE + x] = 0.0;
    if (rvalid[r]) {
      const int h = hk * A.group + it.hb * A.hg + g;
      const int64_t phys = A.q_rows != 0 ? int64_t(ld_i32(A.q_rows, (b * A.hq + h) * A.n_q + i)) : i;
      qpos[r] = A.q_pos != 0 ? ld_i64(A.q_pos, phys) : A.q_pos0 + phys;
      q_lo = min(q_lo, qpos[r]);
      q_hi = max(q_hi, qpos[r]);
      const uint64_t row = elem_addr(A.q, A.q_stride[0], A.q_stride[1], A.q_stride[2], A.q_stride[3], b, phys, h, 0);
      [[unroll]] for (int u = 0; u < UK; ++u)
        [[unroll]] for (int e = 0; e < KE; ++e) {
          const int col = (u * LPK + li) * KE + e;
          q[r * QE + u * KE + e] = load_elem(row + uint64_t(col * A.q_stride[3]), Q_DT) * A.qscale;
        }
    }
  }

  // ---- running statistics of this cluster ----
  float m[BQ], l[BQ], acc[BQ * AE];
  [[unroll]] for (int r = 0; r < BQ; ++r) {
    m[r] = kNegInf;
    l[r] = 0.0;
  }
  [[unroll]] for (int x = 0; x < BQ * AE; ++x) acc[x] = 0.0;

  // ---- this split's key tiles (CHUNK keys each) over the ranges the mask allows ----
  int64_t rb[2], re[2];
  const int n_ranges = key_ranges(A, true, q_lo, q_hi, it.kb, it.ke, rb[0], re[0], rb[1], re[1]);
  int64_t t_begin, t_end;
  split_tiles(n_ranges, rb[0], re[0], rb[1], re[1], CHUNK, it.split, A.n_splits, t_begin, t_end);
  const bool softcap_on = A.softcap > 0.0;
  const float softcap_log2 = A.softcap * kLog2e;
  const uint64_t k_head = A.k + uint64_t(b * A.k_stride[0] + hk * A.k_stride[2]) + uint64_t(li * 16);
  const uint64_t v_head = A.v + uint64_t(b * A.v_stride[0] + hk * A.v_stride[2]) + uint64_t(li * 16);

  int64_t t = 0;
  for (int ri = 0; ri < n_ranges; ++ri) {
    const int64_t range_tiles = (re[ri] - rb[ri] + CHUNK - 1) / CHUNK;
    if (t + range_tiles <= t_begin || t >= t_end) {
      t += range_tiles;
      continue;
    }
    const int64_t first = max(int64_t(0), t_begin - t), last = min(range_tiles, t_end - t);
    t += range_tiles;
    for (int64_t tt = first; tt < last; ++tt) {
      const int64_t j0 = rb[ri] + tt * CHUNK;
      const int nc = int(min(int64_t(CHUNK), re[ri] - j0));
      const int kind = classify(A, q_lo, q_hi, A.k_pos0 + j0, A.k_pos0 + j0 + nc - 1);
      if (kind == kSkip) continue;

      // K and V vectors of the cluster's KPL keys, all in flight at once (zero past the range)
      uvec4 kw[KPL * UK], vw[KPL * UV];
      [[unroll]] for (int k = 0; k < KPL; ++k) {
        const int c = cluster + CL * k;
        if (c < nc) {
          const uint64_t kr = k_head + uint64_t((j0 + c) * A.k_stride[1]);
          const uint64_t vr = v_head + uint64_t((j0 + c) * A.v_stride[1]);
          [[unroll]] for (int u = 0; u < UK; ++u) kw[k * UK + u] = Vec16s(kr + uint64_t(u * LPK * 16)).v[0];
          [[unroll]] for (int u = 0; u < UV; ++u) vw[k * UV + u] = Vec16s(vr + uint64_t(u * LPK * 16)).v[0];
        } else {
          [[unroll]] for (int u = 0; u < UK; ++u) kw[k * UK + u] = uvec4(0);
          [[unroll]] for (int u = 0; u < UV; ++u) vw[k * UV + u] = uvec4(0);
        }
      }

      // partial dot products of this lane's columns, s[k·BQ + r]
      float s[KPL * BQ];
      [[unroll]] for (int k = 0; k < KPL; ++k) {
        float kf[QE];
        [[unroll]] for (int u = 0; u < UK; ++u)
          [[unroll]] for (int e = 0; e < KE; ++e) kf[u * KE + e] = vec_elem(kw[k * UK + u], K_DT, e);
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
      [[unroll]] for (int x = 0; x < KPL * BQ; ++x) sDot[x * WG + tid] = s[x];
      barrier();
      [[unroll]] for (int x = 0; x < KPL * BQ; ++x) {
        float sum = 0.0;
        for (int i = 0; i < LPK; ++i) sum += sDot[x * WG + cluster * LPK + i];
        s[x] = sum;
      }
      barrier();
#endif
      // scores: softcap, then the mask (keys past the range and invalid rows are −inf)
      [[unroll]] for (int k = 0; k < KPL; ++k) {
        const int c = cluster + CL * k;
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
          [[unroll]] for (int e = 0; e < VE; ++e) vf[k * AE + u * VE + e] = vec_elem(vw[k * UV + u], V_DT, e);
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
  }

  // ---- merge the clusters: M = max_c m_c, w_c = 2^(m_c − M), L = Σ w_c·l_c, ACC = Σ w_c·acc_c ----
  if (li == 0)
    [[unroll]] for (int r = 0; r < BQ; ++r) {
      sStat[(cluster * BQ + r) * 2] = m[r];
      sStat[(cluster * BQ + r) * 2 + 1] = l[r];
    }
  barrier();
  [[unroll]] for (int r = 0; r < BQ; ++r) {
    float mx = kNegInf;
    for (int c = 0; c < CL; ++c) mx = max(mx, sStat[(c * BQ + r) * 2]);
    const float w = mx == kNegInf ? 0.0 : exp2(m[r] - mx);
    [[unroll]] for (int x = 0; x < AE; ++x) acc[r * AE + x] *= w;
  }
  for (int c = 0; c < CL; ++c) {  // one cluster at a time adds its columns
    if (cluster == c)
      [[unroll]] for (int r = 0; r < BQ; ++r)
        [[unroll]] for (int u = 0; u < UV; ++u)
          [[unroll]] for (int e = 0; e < VE; ++e) {
            const int at = r * DV + (u * LPK + li) * VE + e;
            const float add = acc[r * AE + u * VE + e];
            sAcc[at] = c == 0 ? add : sAcc[at] + add;
          }
    barrier();
  }

  // ---- the split's partial, as attend.comp's PHASE 1 ----
  const uint64_t part_row0 = gid * uint64_t(BQ);
  for (int p = tid; p < BQ * DV; p += WG) {
    const int r = p / DV, col = p % DV;
    const int64_t i = it.q0 + r % A.tr;
    if (r / A.tr < A.hg && i < it.q1) st_f32(A.part, int64_t(part_row0 + uint64_t(r)) * PART_STRIDE + 2 + col, sAcc[p]);
  }
  if (tid < BQ) {
    const int r = tid;
    const int64_t i = it.q0 + r % A.tr;
    if (r / A.tr < A.hg && i < it.q1) {
      float mx = kNegInf, sum = 0.0;
      for (int c = 0; c < CL; ++c) mx = max(mx, sStat[(c * BQ + r) * 2]);
      if (mx != kNegInf)
        for (int c = 0; c < CL; ++c) sum += sStat[(c * BQ + r) * 2 + 1] * exp2(sStat[(c * BQ + r) * 2] - mx);
      const int64_t at = int64_t(part_row0 + uint64_t(r)) * PART_STRIDE;
      st_f32(A.part, at, mx);
      st_f32(A.part, at + 1, sum);
    }
  }
}
