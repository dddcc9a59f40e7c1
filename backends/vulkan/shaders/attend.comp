#version 460
// attend — tiled online-softmax attention (FlashAttention-2 order), the portable path.
//
// Shapes (see src/backend.hpp, AttendArgs): q [batch, n_q phys, hq, D], k [batch, ·, hkv, D],
// v [batch, ·, hkv, DV], out [batch, n_q phys, hq, DV], lse f32 [batch, n_q phys, hq, 1], all with
// byte strides; state m, l [batch·hq·n_q], acc [batch·hq·n_q·DV] (index (b·hq + h)·n_q + phys).
// K and V may be f32 / f16 / bf16 or the block formats Q8_0 / Q4_0 (kv_blocks.glsl), each its own.
//
// One workgroup = one work item: batch b, KV head hk, a block of HG query heads of its group and
// a tile of TR logical query rows of one segment, i.e. BQ = HG·TR rows (row r: head g = r / TR,
// row q0 + r % TR). Every key tile of BK keys is loaded once for all of them (GQA reuse):
//   S = (q·scale)·Kᵀ in log2 units   (softcap: S = c·log2e·tanh(q·k·scale / c))
//   S += key_logw·log2e
//   S += mask·log2e, or with ALiBi slopes m_h: S += m_h·mask·log2e (additive mask present) or
//        S −= m_h·|qpos − kpos|·log2e (no additive mask)
//   S = −inf where the mask predicate, segment or exclusion group forbids
//   m_new = max(m, rowmax S); P = exp2(S − m_new); α = exp2(m − m_new)
//   l = α·l + rowsum P;  acc = α·acc + P·V;  m = m_new
// and at the end out = acc / l, lse = (m + log2 l)·ln 2 (out = 0, lse = −inf when l = 0), or
// (m, l, acc) written back to the running state. A sink logit σ_h (natural log) joins the
// denominator only when out/lse are written: with s = σ_h·log2e and m' = max(m, s),
//   l' = l·2^(m − m') + 2^(s − m'),  out = acc·2^(m − m') / l',  lse = (m' + log2 l')·ln 2,
// so a row with no allowed key gets out = 0 and lse = σ_h. Partials and running states never
// carry the sink: it is applied exactly once, where the row is finished.
//
// Key tiles are visited only where the mask can allow something: when key positions are affine
// (k_pos0 + index, no gather) over the band ∩ causal range and the global prefix; otherwise over
// the segment, classifying each tile from its position range (skip / full / partial). With an
// additive mask, the tile's mask values are read first (into the S tile) and a tile whose values
// are all −inf is skipped before K and V are loaded.
//
// Split-KV (decode and other calls with few work items): PHASE 1 runs n_splits workgroups per
// item, each over its share of the item's key tiles, and stores (m, l, acc) per row in `part`
// ([item][split][row][2 + DV] floats); attend_combine.comp merges them per row
//   m = max_s m_s,  l = Σ_s l_s·2^(m_s − m),  acc = Σ_s acc_s·2^(m_s − m)
// (with the running state as one more term) and writes like PHASE 0.
//
// Threads: WG = BQ·TPR. S: one (row, key) pair per thread at a time; softmax statistics: thread
// r < BQ for row r; P·V: thread (r, c0) owns columns c0 + TPR·k of row r (NC accumulators).

#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "attend_common.glsl"
#include "kv_blocks.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int BQ = 16;      // query rows per workgroup (HG·TR ≤ BQ)
layout(constant_id = 2) const int BK = 16;      // keys per tile
layout(constant_id = 3) const int D = 64;       // q/k head dim
layout(constant_id = 4) const int DV = 64;      // v/out head dim
layout(constant_id = 5) const int NC = 8;       // accumulators per thread = ceil(DV / TPR)
layout(constant_id = 6) const int Q_DT = 0;     // longattn_dtype of q
layout(constant_id = 7) const int K_DT = 0;     // of k (float or block format)
layout(constant_id = 8) const int V_DT = 0;     // of v (float or block format)
layout(constant_id = 9) const int O_DT = 0;     // of out
layout(constant_id = 10) const bool STATE = false;  // fold into a running state instead of out/lse
layout(constant_id = 11) const int PHASE = 0;       // kPhaseDirect / kPhasePartial
layout(constant_id = 12) const bool VEC_K = false;  // K rows contiguous and 16-byte aligned (float)
layout(constant_id = 13) const bool VEC_V = false;  // V rows likewise
layout(constant_id = 14) const int MASK_DT = 0;     // dtype of the additive mask (f32 / f16), if any

const int WG = int(gl_WorkGroupSize.x);
const int TPR = WG / BQ;      // threads per row in the P·V step
const int KS = D + 1;         // padded row stride of the K tile (no bank conflicts)
const int SS = BK + 1;        // padded row stride of the S tile

layout(buffer_reference, std430, buffer_reference_align = 16) buffer U32x4s { uvec4 v[]; };

shared float sQ[BQ * D];
shared float sK[BK * KS];
shared float sV[BK * DV];
shared float sS[BQ * SS];
shared float sM[BQ], sL[BQ], sAlpha[BQ];
shared int64_t sQpos[BQ], sQphys[BQ];
shared int sQgroup[BQ], sQhead[BQ];
shared bool sQvalid[BQ];
shared int64_t sKpos[BK], sKphys[BK];
shared float sKlogw[BK];
shared int sKgroup[BK];
shared int64_t sRange[2];   // q_lo, q_hi of the rows
shared int64_t sKrange[2];  // k_lo, k_hi of the current tile (gathered / explicit keys)
shared float sBiasScale[BQ];  // per row: multiplier of the additive mask (log2e or m_h·log2e),
                              // or m_h·log2e for distance ALiBi
shared uint sMaskAny[2];      // per tile (alternating): some mask value of the tile is finite

// Converts 16 bytes of float elements of `dtype` to floats into sK or sV [at .. at + 4 or 8).
void store_unit(uvec4 w, int dtype, bool to_k, int at) {
  if (dtype == kDtypeF32) {
    for (int e = 0; e < 4; ++e) {
      const float x = uintBitsToFloat(w[e]);
      if (to_k) sK[at + e] = x; else sV[at + e] = x;
    }
  } else {
    for (int e = 0; e < 4; ++e) {
      vec2 x;
      if (dtype == kDtypeF16) x = unpackHalf2x16(w[e]);
      else x = vec2(uintBitsToFloat(w[e] << 16), uintBitsToFloat(w[e] & 0xffff0000u));
      if (to_k) { sK[at + 2 * e] = x.x; sK[at + 2 * e + 1] = x.y; }
      else { sV[at + 2 * e] = x.x; sV[at + 2 * e + 1] = x.y; }
    }
  }
}

// Loads rows [0, nc) of one key tile of K (to_k) or V into sK / sV as floats; rows nc .. BK − 1
// become zero (so that P·V stays finite). `head` is the (batch, KV head) base address; row c is
// physical row sKphys[c] (gathered) or j0 + c. Block formats: elem_stride is the block stride.
void load_kv_tile(bool to_k, int dtype, bool vec, uint64_t head, int64_t row_stride, int64_t elem_stride,
                  int dim, int dst_stride, int nc, bool gathered, int64_t j0) {
  const int tid = int(gl_LocalInvocationID.x);
  if (is_block_dtype(dtype)) {
    // quads of 4 values of one block: scale and quants read once per quad
    const int quads = dim / 4;
    for (int p = tid; p < BK * quads; p += WG) {
      const int c = p / quads, i = (p % quads) * 4;
      vec4 x = vec4(0.0);
      if (c < nc) {
        const int64_t phys = gathered ? sKphys[c] : j0 + c;
        const uint64_t block = head + uint64_t(phys * row_stride + int64_t(i / kQuantBlock) * elem_stride);
        x = block_quad(block, i % kQuantBlock, dtype);
      }
      for (int e = 0; e < 4; ++e) {
        if (to_k) sK[c * dst_stride + i + e] = x[e]; else sV[c * dst_stride + i + e] = x[e];
      }
    }
  } else if (vec) {
    const int epl = dtype == kDtypeF32 ? 4 : 8, units = dim / epl;
    for (int p = tid; p < BK * units; p += WG) {
      const int c = p / units, u = p % units;
      uvec4 w = uvec4(0);
      if (c < nc) {
        const int64_t phys = gathered ? sKphys[c] : j0 + c;
        w = U32x4s(head + uint64_t(phys * row_stride) + uint64_t(u) * 16).v[0];
      }
      store_unit(w, dtype, to_k, c * dst_stride + u * epl);
    }
  } else {
    for (int p = tid; p < BK * dim; p += WG) {
      const int c = p / dim, d = p % dim;
      float x = 0.0;
      if (c < nc) {
        const int64_t phys = gathered ? sKphys[c] : j0 + c;
        x = load_elem(head + uint64_t(phys * row_stride + d * elem_stride), dtype);
      }
      if (to_k) sK[c * dst_stride + d] = x; else sV[c * dst_stride + d] = x;
    }
  }
}

void main() {
  Args A = Args(pc.args);
  const uint64_t gid = linear_group_id();
  if (gid >= uint64_t(A.n_groups)) return;
  const int tid = int(gl_LocalInvocationID.x);
  const Item it = decode_item(A, gid, PHASE == kPhasePartial);
  const int64_t b = it.b;
  const int hk = it.hk;

  // ---- query rows: identity, position, group ----
  if (tid < BQ) {
    const int r = tid;
    const int g = r / A.tr;
    const int64_t i = it.q0 + r % A.tr;
    const bool valid = g < A.hg && i < it.q1;
    sQvalid[r] = valid;
    if (valid) {
      const int h = hk * A.group + it.hb * A.hg + g;
      const int64_t phys = A.q_rows != 0 ? int64_t(ld_i32(A.q_rows, (b * A.hq + h) * A.n_q + i)) : i;
      sQhead[r] = h;
      sQphys[r] = phys;
      sQpos[r] = A.q_pos != 0 ? ld_i64(A.q_pos, phys) : A.q_pos0 + phys;
      sQgroup[r] = A.q_group != 0 ? ld_i32(A.q_group, (b * A.hq + h) * A.n_q + i) : -1;
      const float slope = A.alibi_slopes != 0 ? ld_f32(A.alibi_slopes, h) : 1.0;
      sBiasScale[r] = slope * kLog2e;
    }
  }
  if (tid < 2) sMaskAny[tid] = 0u;
  barrier();
  if (tid == 0) {
    int64_t q_lo = kFarHigh, q_hi = kFarLow;
    for (int r = 0; r < BQ; ++r)
      if (sQvalid[r]) {
        q_lo = min(q_lo, sQpos[r]);
        q_hi = max(q_hi, sQpos[r]);
      }
    sRange[0] = q_lo;
    sRange[1] = q_hi;
  }
  for (int p = tid; p < BQ * D; p += WG) {
    const int r = p / D, d = p % D;
    float x = 0.0;
    if (sQvalid[r])
      x = load_elem(elem_addr(A.q, A.q_stride[0], A.q_stride[1], A.q_stride[2], A.q_stride[3], b,
                              sQphys[r], sQhead[r], d), Q_DT) * A.qscale;
    sQ[p] = x;
  }

  // ---- running statistics and accumulators ----
  const int my_row = tid / TPR, my_c0 = tid % TPR;
  float acc[NC];
  for (int c = 0; c < NC; ++c) acc[c] = 0.0;
  const bool load_state = STATE && PHASE != kPhasePartial;
  if (load_state && sQvalid[my_row]) {
    const int64_t idx = state_index(A, b, sQhead[my_row], sQphys[my_row]);
    for (int c = 0; c < NC; ++c) {
      const int col = my_c0 + c * TPR;
      if (col < DV) acc[c] = ld_f32(A.st_acc, idx * DV + col);
    }
  }
  if (tid < BQ) {
    float m = kNegInf, l = 0.0;
    if (load_state && sQvalid[tid]) {
      const int64_t idx = state_index(A, b, sQhead[tid], sQphys[tid]);
      m = ld_f32(A.st_m, idx);
      l = ld_f32(A.st_l, idx);
    }
    sM[tid] = m;
    sL[tid] = l;
  }
  barrier();
  const int64_t q_lo = sRange[0], q_hi = sRange[1];

  // ---- key tiles ----
  const bool affine_k = A.k_pos == 0 && !keys_gathered(A);
  const bool has_groups = A.q_group != 0 && keys_have_groups(A);
  const bool need_meta = !affine_k || keys_have_logw(A) || has_groups;
  int64_t rb[2], re[2];
  const int n_ranges = key_ranges(A, affine_k, q_lo, q_hi, it.kb, it.ke, rb[0], re[0], rb[1], re[1]);
  int64_t t_begin = 0, t_end = kFarHigh;
  if (PHASE == kPhasePartial) split_tiles(n_ranges, rb[0], re[0], rb[1], re[1], BK, it.split, A.n_splits, t_begin, t_end);

  const bool softcap_on = A.softcap > 0.0;
  const float softcap_log2 = A.softcap * kLog2e;
  const int64_t kv_bh = b * A.hkv + hk;  // KV head row of k_rows / key_logw / k_group (key_arrays)
  const uint64_t k_head = A.k + uint64_t(b * A.k_stride[0] + hk * A.k_stride[2]);
  const uint64_t v_head = A.v + uint64_t(b * A.v_stride[0] + hk * A.v_stride[2]);
  const bool has_mask = A.add_mask != 0;
  const bool distance_alibi = !has_mask && A.alibi_slopes != 0;
  const uint64_t mask_b = A.add_mask + uint64_t(b * A.mask_stride[0]);  // heads: stride 0 when broadcast
  int mask_slot = 0;

  int64_t t = 0;  // tile counter over the ranges (for the split share)
  for (int ri = 0; ri < n_ranges; ++ri) {
    const int64_t range_tiles = (re[ri] - rb[ri] + BK - 1) / BK;
    if (t + range_tiles <= t_begin || t >= t_end) {  // no tile of this range is ours
      t += range_tiles;
      continue;
    }
    const int64_t first = max(int64_t(0), t_begin - t), last = min(range_tiles, t_end - t);
    t += range_tiles;
    for (int64_t tt = first; tt < last; ++tt) {
      const int64_t j0 = rb[ri] + tt * BK;
      const int nc = int(min(int64_t(BK), re[ri] - j0));
      int kind;
      if (need_meta) {
        if (tid < BK) {
          const int c = tid;
          if (c < nc) {
            const int64_t j = j0 + c;
            const KeyArrays ka = key_arrays(A, kv_bh, j);
            const int64_t phys = key_row(ka, j);
            sKphys[c] = phys;
            sKpos[c] = A.k_pos != 0 ? ld_i64(A.k_pos, phys) : A.k_pos0 + phys;
            sKlogw[c] = ka.logw != 0 ? ld_f32(ka.logw, ka.i) * kLog2e : 0.0;
            sKgroup[c] = has_groups && ka.group != 0 ? ld_i32(ka.group, ka.i) : -2;
          }
        }
        barrier();
        if (!affine_k) {
          if (tid == 0) {
            int64_t k_lo = kFarHigh, k_hi = kFarLow;
            for (int c = 0; c < nc; ++c) {
              k_lo = min(k_lo, sKpos[c]);
              k_hi = max(k_hi, sKpos[c]);
            }
            sKrange[0] = k_lo;
            sKrange[1] = k_hi;
          }
          barrier();
          kind = classify(A, q_lo, q_hi, sKrange[0], sKrange[1]);
        } else {
          kind = classify(A, q_lo, q_hi, A.k_pos0 + j0, A.k_pos0 + j0 + nc - 1);
        }
      } else {
        kind = classify(A, q_lo, q_hi, A.k_pos0 + j0, A.k_pos0 + j0 + nc - 1);
      }
      if (kind == kSkip) {
        barrier();  // the metadata of this tile is still being read
        continue;
      }
      if (has_mask) {
        // the tile's additive mask, already multiplied (log2e or the ALiBi slope), into sS; each
        // thread later reads back exactly the entries it wrote here (same p → (r, c) mapping)
        bool any = false;
        for (int p = tid; p < BQ * BK; p += WG) {
          const int r = p / BK, c = p % BK;
          float x = kNegInf;
          if (c < nc && sQvalid[r]) {
            const int64_t k_phys = need_meta ? sKphys[c] : j0 + c;
            x = load_elem(mask_b + uint64_t(sQphys[r] * A.mask_stride[1] + int64_t(sQhead[r]) * A.mask_stride[2] +
                                            k_phys * A.mask_stride[3]), MASK_DT);
            if (x != kNegInf) {
              any = true;
              x *= sBiasScale[r];
            }
          }
          sS[r * SS + c] = x;
        }
        if (any) atomicOr(sMaskAny[mask_slot], 1u);
        barrier();
        const bool all_masked = sMaskAny[mask_slot] == 0u;
        // the other flag was last read before the barrier above: reset it for the next tile
        if (tid == 0) sMaskAny[mask_slot ^ 1] = 0u;
        mask_slot ^= 1;
        if (all_masked) {
          barrier();  // the reset above precedes the next tile's atomicOr
          continue;
        }
      }
      // K and V tiles (fp32; rows past the range are zero so that P·V stays finite)
      load_kv_tile(true, K_DT, VEC_K, k_head, A.k_stride[1], A.k_stride[3], D, KS, nc, need_meta, j0);
      load_kv_tile(false, V_DT, VEC_V, v_head, A.v_stride[1], A.v_stride[3], DV, DV, nc, need_meta, j0);
      barrier();
      // S = Q·Kᵀ (log2 units) with softcap, log-weights and masks
      for (int p = tid; p < BQ * BK; p += WG) {
        const int r = p / BK, c = p % BK;
        float s = kNegInf;
        if (c < nc && sQvalid[r]) {
          float dot = 0.0;
          for (int d = 0; d < D; ++d) dot += sQ[r * D + d] * sK[c * KS + d];
          s = softcap_on ? softcap_log2 * tanh(dot / A.softcap) : dot;
          const int64_t kp = need_meta ? sKpos[c] : A.k_pos0 + j0 + c;
          if (need_meta) s += sKlogw[c];
          if (has_mask) {
            s += sS[r * SS + c];
          } else if (distance_alibi) {
            const int64_t qp = sQpos[r];
            s -= sBiasScale[r] * float(qp > kp ? qp - kp : kp - qp);
          }
          if (kind == kPartial && !mask_allows(A, sQpos[r], kp)) s = kNegInf;
          if (has_groups && sQgroup[r] >= 0 && sQgroup[r] == sKgroup[c]) s = kNegInf;
        }
        sS[r * SS + c] = s;
      }
      barrier();
      // online softmax statistics, one thread per row
      if (tid < BQ) {
        const int r = tid;
        const float m_old = sM[r];
        float m_new = m_old;
        for (int c = 0; c < nc; ++c) m_new = max(m_new, sS[r * SS + c]);
        float alpha = 1.0, sum = 0.0;
        if (m_new != kNegInf) {
          alpha = exp2(m_old - m_new);
          for (int c = 0; c < nc; ++c) {
            const float pr = exp2(sS[r * SS + c] - m_new);
            sS[r * SS + c] = pr;
            sum += pr;
          }
        } else {
          for (int c = 0; c < nc; ++c) sS[r * SS + c] = 0.0;
        }
        sM[r] = m_new;
        sL[r] = sL[r] * alpha + sum;
        sAlpha[r] = alpha;
      }
      barrier();
      // acc = α·acc + P·V
      {
        const float alpha = sAlpha[my_row];
        for (int c = 0; c < NC; ++c) acc[c] *= alpha;
        for (int j = 0; j < nc; ++j) {
          const float pr = sS[my_row * SS + j];
          if (pr == 0.0) continue;
          for (int c = 0; c < NC; ++c) {
            const int col = my_c0 + c * TPR;
            if (col < DV) acc[c] += pr * sV[j * DV + col];
          }
        }
      }
      barrier();
    }
  }

  const int PART_STRIDE = DV + 2;  // floats per row in `part`: m, l, acc[DV]
  // ---- write out ----
  if (!sQvalid[my_row]) return;
  const int h = sQhead[my_row];
  const int64_t phys = sQphys[my_row];
  if (PHASE == kPhasePartial) {
    const int64_t at = int64_t((gid * uint64_t(BQ)) + uint64_t(my_row)) * PART_STRIDE;
    for (int c = 0; c < NC; ++c) {
      const int col = my_c0 + c * TPR;
      if (col < DV) st_f32(A.part, at + 2 + col, acc[c]);
    }
    if (my_c0 == 0) {
      st_f32(A.part, at, sM[my_row]);
      st_f32(A.part, at + 1, sL[my_row]);
    }
  } else if (STATE) {
    const int64_t idx = state_index(A, b, h, phys);
    for (int c = 0; c < NC; ++c) {
      const int col = my_c0 + c * TPR;
      if (col < DV) st_f32(A.st_acc, idx * DV + col, acc[c]);
    }
    if (my_c0 == 0) {
      st_f32(A.st_m, idx, sM[my_row]);
      st_f32(A.st_l, idx, sL[my_row]);
    }
  } else {
    float m = sM[my_row], l = sL[my_row], o_scale = 1.0;
    if (A.sinks != 0) {  // the sink joins the denominator (see the header)
      const float sink = ld_f32(A.sinks, h) * kLog2e;
      const float m2 = max(m, sink);
      if (m2 != kNegInf) {
        o_scale = exp2(m - m2);
        l = l * o_scale + exp2(sink - m2);
        m = m2;
      }
    }
    const float inv = l == 0.0 ? 0.0 : o_scale / l;
    for (int c = 0; c < NC; ++c) {
      const int col = my_c0 + c * TPR;
      if (col < DV)
        store_elem(elem_addr(A.o, A.o_stride[0], A.o_stride[1], A.o_stride[2], A.o_stride[3], b, phys, h, col),
                   O_DT, l == 0.0 ? 0.0 : acc[c] * inv);
    }
    if (my_c0 == 0 && A.lse != 0) {
      const float lse = l == 0.0 ? kNegInf : (m + log2(l)) * kLn2;
      F32s(elem_addr(A.lse, A.lse_stride[0], A.lse_stride[1], A.lse_stride[2], A.lse_stride[3], b, phys, h, 0)).v[0] = lse;
    }
  }
}
