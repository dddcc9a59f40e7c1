#version 460
// attend_coopmat — attend with VK_NV_cooperative_matrix tensor-core tiles (f16 q/k/v, fp32
// accumulation), for devices with 16×16×16 f16→f32 subgroup matrices and 32-lane subgroups.
//
// Same contract, argument block and work items as attend.comp (see there and src/backend.hpp),
// with one query head per item (hg = 1) and BQ = 16·NW consecutive logical query rows: subgroup w
// owns rows 16w … 16w + 15. Shapes: q [batch, n_q, hq, D] f16, k [batch, ·, hkv, D] f16,
// v [batch, ·, hkv, DV] f16 (K/V rows contiguous and 16-byte aligned), D and DV multiples of 16.
//
// Per key tile of BK keys (K and V staged in shared memory as f16):
//   S = Q·Kᵀ                      (16×16×16 matrix products, fp32 accumulators)
//   s = S·scale·log2e (softcap, key_logw, mask, groups applied per element, one lane pair a row)
//   lazy rescale: the row reference m_ref moves only when the tile max exceeds it by more than
//   kTau (so P ≤ 2^kTau fits f16); then O_row ·= 2^(m_ref − m_new) through shared memory
//   P = exp2(s − m_ref) in f16;  l = α·l + rowsum P;  O += P·V  (matrix products)
// and at the end out = O / l, lse = (m_ref + log2 l)·ln 2, or (m_ref, l, O) into the state.
// No split-KV here: the host uses this kernel when the call has enough work items.

#extension GL_GOOGLE_include_directive : require
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

const int kLanes = 32;                          // subgroup size (checked by the host)
const int kFrag = 16;                           // matrix fragment edge
const int WG = int(gl_WorkGroupSize.x);
const int NW = WG / kLanes;                     // subgroups; each owns kFrag query rows
const int BQ = NW * kFrag;
const int HALF = BK / 2;                        // columns of a row handled by one lane
const int SSW = BK;                             // row stride of a subgroup's fp32 scratch
const int KV_HALVES = BQ * D > BK * (D + DV) ? BQ * D : BK * (D + DV);  // K | V, or Q staging
const float kTau = 8.0;                         // lazy-rescale threshold (log2 units)

#define HMAT fcoopmatNV<16, gl_ScopeSubgroup, kFrag, kFrag>
#define FMAT fcoopmatNV<32, gl_ScopeSubgroup, kFrag, kFrag>

layout(buffer_reference, std430, buffer_reference_align = 16) buffer U32x4s { uvec4 v[]; };

shared float16_t sKV[KV_HALVES];     // K tile [BK][D] then V tile [BK][DV]; Q [BQ][D] at start
shared float sS[NW * kFrag * SSW];   // per subgroup: S tile [16][BK], or a 16×16 O fragment
shared float16_t sP[NW * kFrag * BK];  // per subgroup: P tile [16][BK]
shared float sAlpha[BQ], sRowM[BQ], sRowL[BQ];
shared int64_t sQpos[BQ], sQphys[BQ];
shared int sQgroup[BQ];
shared bool sQvalid[BQ];
shared int64_t sKpos[BK], sKphys[BK];
shared float sKlogw[BK];
shared int sKgroup[BK];
shared int64_t sRange[2];
shared int64_t sKrange[2];

void sync_subgroup() {
  subgroupMemoryBarrierShared();
  subgroupBarrier();
}

// Eight f16 values (16 bytes) into sKV[at …].
void put8(uvec4 w, int at) {
  for (int e = 0; e < 4; ++e) {
    const f16vec2 x = unpackFloat2x16(w[e]);
    sKV[at + 2 * e] = x.x;
    sKV[at + 2 * e + 1] = x.y;
  }
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
  const int h = hk * A.group + it.hb;  // hg = 1

  // ---- query rows ----
  if (tid < BQ) {
    const int64_t i = it.q0 + tid;
    const bool valid = i < it.q1;
    sQvalid[tid] = valid;
    if (valid) {
      const int64_t phys = A.q_rows != 0 ? int64_t(ld_i32(A.q_rows, (b * A.hq + h) * A.n_q + i)) : i;
      sQphys[tid] = phys;
      sQpos[tid] = A.q_pos != 0 ? ld_i64(A.q_pos, phys) : A.q_pos0 + phys;
      sQgroup[tid] = A.q_group != 0 ? ld_i32(A.q_group, (b * A.hq + h) * A.n_q + i) : -1;
    }
  }
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
      x = load_elem(elem_addr(A.q, A.q_stride[0], A.q_stride[1], A.q_stride[2], A.q_stride[3], b, sQphys[r], h, d),
                    kDtypeF16);
    sKV[p] = float16_t(x);
  }
  barrier();
  HMAT qf[D / kFrag];
  for (int kk = 0; kk < D / kFrag; ++kk) coopMatLoadNV(qf[kk], sKV, uint((w * kFrag) * D + kk * kFrag), uint(D), false);

  // ---- row statistics (lane pair per row) and output accumulators ----
  const int rr = lane >> 1, hh = lane & 1;
  const int my_row = w * kFrag + rr;
  const bool row_valid = sQvalid[my_row];
  float m_ref = kNegInf, l = 0.0;
  FMAT of[DV / kFrag];
  for (int c = 0; c < DV / kFrag; ++c) of[c] = FMAT(0.0);
  const int scratch = w * kFrag * SSW;
  if (STATE) {
    if (row_valid) {
      const int64_t idx = state_index(A, b, h, sQphys[my_row]);
      m_ref = ld_f32(A.st_m, idx);
      l = ld_f32(A.st_l, idx);
    }
    for (int c = 0; c < DV / kFrag; ++c) {
      for (int e = lane * 8; e < lane * 8 + 8; ++e) {
        const int row = e / kFrag, col = e % kFrag;
        const int r = w * kFrag + row;
        float x = 0.0;
        if (sQvalid[r]) x = ld_f32(A.st_acc, state_index(A, b, h, sQphys[r]) * DV + c * kFrag + col);
        sS[scratch + row * SSW + col] = x;
      }
      sync_subgroup();
      coopMatLoadNV(of[c], sS, uint(scratch), uint(SSW), false);
      sync_subgroup();
    }
  }
  barrier();  // Q fragments are loaded: sKV may take K and V
  const int64_t q_lo = sRange[0], q_hi = sRange[1];

  // ---- key tiles ----
  const bool affine_k = A.k_pos == 0 && A.k_rows == 0;
  const bool has_groups = A.q_group != 0 && A.k_group != 0;
  const bool need_meta = !affine_k || A.key_logw != 0 || has_groups;
  int64_t rb[2], re[2];
  const int n_ranges = key_ranges(A, affine_k, q_lo, q_hi, it.kb, it.ke, rb[0], re[0], rb[1], re[1]);
  const bool softcap_on = A.softcap > 0.0;
  const float softcap_log2 = A.softcap * kLog2e;
  const int64_t kv_row0 = (b * A.hkv + hk) * A.n_k;
  const uint64_t k_head = A.k + uint64_t(b * A.k_stride[0] + hk * A.k_stride[2]);
  const uint64_t v_head = A.v + uint64_t(b * A.v_stride[0] + hk * A.v_stride[2]);
  const int64_t my_qpos = row_valid ? sQpos[my_row] : 0;
  const int my_qgroup = row_valid ? sQgroup[my_row] : -1;

  for (int ri = 0; ri < n_ranges; ++ri) {
    for (int64_t j0 = rb[ri]; j0 < re[ri]; j0 += BK) {
      const int nc = int(min(int64_t(BK), re[ri] - j0));
      int kind;
      if (need_meta) {
        if (tid < BK && tid < nc) {
          const int64_t j = j0 + tid;
          const int64_t phys = A.k_rows != 0 ? int64_t(ld_i32(A.k_rows, kv_row0 + j)) : j;
          sKphys[tid] = phys;
          sKpos[tid] = A.k_pos != 0 ? ld_i64(A.k_pos, phys) : A.k_pos0 + phys;
          sKlogw[tid] = A.key_logw != 0 ? ld_f32(A.key_logw, kv_row0 + j) * kLog2e : 0.0;
          sKgroup[tid] = has_groups ? ld_i32(A.k_group, kv_row0 + j) : -2;
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
        barrier();
        continue;
      }
      // K and V tiles, 16 bytes per load; rows past the range are zero
      const int ku = D / 8, vu = DV / 8;
      for (int p = tid; p < BK * ku; p += WG) {
        const int c = p / ku, u = p % ku;
        uvec4 x = uvec4(0);
        if (c < nc) {
          const int64_t phys = need_meta ? sKphys[c] : j0 + c;
          x = U32x4s(k_head + uint64_t(phys * A.k_stride[1]) + uint64_t(u) * 16).v[0];
        }
        put8(x, c * D + u * 8);
      }
      for (int p = tid; p < BK * vu; p += WG) {
        const int c = p / vu, u = p % vu;
        uvec4 x = uvec4(0);
        if (c < nc) {
          const int64_t phys = need_meta ? sKphys[c] : j0 + c;
          x = U32x4s(v_head + uint64_t(phys * A.v_stride[1]) + uint64_t(u) * 16).v[0];
        }
        put8(x, BK * D + c * DV + u * 8);
      }
      barrier();

      // S = Q·Kᵀ for this subgroup's 16 rows
      for (int j = 0; j < BK / kFrag; ++j) {
        FMAT s = FMAT(0.0);
        for (int kk = 0; kk < D / kFrag; ++kk) {
          HMAT kt;
          coopMatLoadNV(kt, sKV, uint((j * kFrag) * D + kk * kFrag), uint(D), true);  // Kᵀ block
          s = coopMatMulAddNV(qf[kk], kt, s);
        }
        coopMatStoreNV(s, sS, uint(scratch + j * kFrag), uint(SSW), false);
      }
      sync_subgroup();

      // scores of this lane's half row, the row max, the lazy reference
      float sv[HALF];
      float mx = kNegInf;
      for (int e = 0; e < HALF; ++e) {
        const int c = hh * HALF + e;
        float s = kNegInf;
        if (row_valid && c < nc) {
          const float dot = sS[scratch + rr * SSW + c] * A.qscale;
          s = softcap_on ? softcap_log2 * tanh(dot / A.softcap) : dot;
          if (need_meta) {
            s += sKlogw[c];
            if (kind == kPartial && !mask_allows(A, my_qpos, sKpos[c])) s = kNegInf;
            if (has_groups && my_qgroup >= 0 && my_qgroup == sKgroup[c]) s = kNegInf;
          } else if (kind == kPartial && !mask_allows(A, my_qpos, A.k_pos0 + j0 + c)) {
            s = kNegInf;
          }
        }
        sv[e] = s;
        mx = max(mx, s);
      }
      mx = max(mx, subgroupShuffleXor(mx, 1));
      const bool move = mx > m_ref + kTau;  // also true for the first finite max (m_ref = −inf)
      const float m_new = move ? mx : m_ref;
      const float alpha = move ? exp2(m_ref - m_new) : 1.0;
      float sum = 0.0;
      for (int e = 0; e < HALF; ++e) {
        const float pr = m_new == kNegInf ? 0.0 : exp2(sv[e] - m_new);
        sum += pr;
        sP[(w * kFrag + rr) * BK + hh * HALF + e] = float16_t(pr);
      }
      sum += subgroupShuffleXor(sum, 1);
      const bool rescale = move && m_ref != kNegInf;  // O holds something to scale
      l = l * alpha + sum;
      m_ref = m_new;
      if (subgroupAny(rescale)) {
        if (hh == 0) sAlpha[my_row] = alpha;
        sync_subgroup();
        for (int c = 0; c < DV / kFrag; ++c) {
          coopMatStoreNV(of[c], sS, uint(scratch), uint(SSW), false);
          sync_subgroup();
          for (int e = lane * 8; e < lane * 8 + 8; ++e) {
            const int row = e / kFrag, col = e % kFrag;
            sS[scratch + row * SSW + col] *= sAlpha[w * kFrag + row];
          }
          sync_subgroup();
          coopMatLoadNV(of[c], sS, uint(scratch), uint(SSW), false);
          sync_subgroup();
        }
      }
      sync_subgroup();

      // O += P·V
      HMAT pf[BK / kFrag];
      for (int j = 0; j < BK / kFrag; ++j)
        coopMatLoadNV(pf[j], sP, uint((w * kFrag) * BK + j * kFrag), uint(BK), false);
      for (int c = 0; c < DV / kFrag; ++c) {
        for (int j = 0; j < BK / kFrag; ++j) {
          HMAT vf;
          coopMatLoadNV(vf, sKV, uint(BK * D + (j * kFrag) * DV + c * kFrag), uint(DV), false);
          of[c] = coopMatMulAddNV(pf[j], vf, of[c]);
        }
      }
      barrier();  // the next tile overwrites sKV
    }
  }

  // ---- write out: O fragments through the subgroup's scratch, one element per lane at a time ----
  if (hh == 0) {
    sRowM[my_row] = m_ref;
    sRowL[my_row] = l;
  }
  sync_subgroup();
  for (int c = 0; c < DV / kFrag; ++c) {
    coopMatStoreNV(of[c], sS, uint(scratch), uint(SSW), false);
    sync_subgroup();
    for (int e = lane * 8; e < lane * 8 + 8; ++e) {
      const int row = e / kFrag, col = e % kFrag;
      const int r = w * kFrag + row;
      if (!sQvalid[r]) continue;
      const float x = sS[scratch + row * SSW + col];
      const int64_t phys = sQphys[r];
      if (STATE) {
        st_f32(A.st_acc, state_index(A, b, h, phys) * DV + c * kFrag + col, x);
      } else {
        const float rl = sRowL[r];
        store_elem(elem_addr(A.o, A.o_stride[0], A.o_stride[1], A.o_stride[2], A.o_stride[3], b, phys, h,
                             c * kFrag + col),
                   O_DT, rl == 0.0 ? 0.0 : x * (1.0 / rl));
      }
    }
    sync_subgroup();
  }
  if (hh == 0 && row_valid) {
    const int64_t phys = sQphys[my_row];
    if (STATE) {
      const int64_t idx = state_index(A, b, h, phys);
      st_f32(A.st_m, idx, m_ref);
      st_f32(A.st_l, idx, l);
    } else if (A.lse != 0) {
      const float lse = l == 0.0 ? kNegInf : (m_ref + log2(l)) * kLn2;
      F32s(elem_addr(A.lse, A.lse_stride[0], A.lse_stride[1], A.lse_stride[2], A.lse_stride[3], b, phys, h, 0)).v[0] = lse;
    }
  }
}
