#version 460
// attend_combine — finishes split-KV attention: merges the key splits of every query row (and a
// running state), applies the sink, writes out / lse or the state. Runs after attend_decode.comp
// or attend.comp's PHASE 1, with the same argument block (n_groups = work items · BQ).
//
// part: [item][split][row][2 + DV] floats = (m_s, l_s, acc_s[DV]) of split s (log2 units, acc not
// normalised; m_s = −inf, l_s = 0, acc_s = 0 where the split allowed no key). Per row:
//   M = max(m_state, max_s m_s);  w_s = 2^(m_s − M)  (0 where m_s = −inf)
//   L = l_state·w_state + Σ_s l_s·w_s;  ACC = acc_state·w_state + Σ_s acc_s·w_s
// then as attend.comp: out = ACC / L, lse = (M + log2 L)·ln 2 (out = 0, lse = −inf when L = 0),
// with a sink logit σ_h joining the denominator (see attend.comp), or (M, L, ACC) written back to
// the running state.
//
// One workgroup = one query row (work item id · BQ + row; rows the item does not have return at
// once) × one chunk of CT·NC columns (STATE: one chunk of every column, since the state's m and l
// are read by every column before they are written). Its WG = CT·SP threads: thread (sp, ct) takes
// columns ct + CT·x (x < NC) of the chunk and splits sp, sp + SP, …, four at a time, so that many
// independent loads are in flight; the SP partial sums of a column are added through shared
// memory.

#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"
#include "attend_common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int BQ = 4;           // rows per work item, as the split kernel
layout(constant_id = 2) const int DV = 128;         // v/out head dim
layout(constant_id = 3) const int O_DT = 0;         // longattn_dtype of out
layout(constant_id = 4) const bool STATE = false;   // fold into the running state instead of out/lse
layout(constant_id = 5) const int CT = 16;          // column lanes
layout(constant_id = 6) const int NC = 1;           // columns per thread (CT·NC per chunk)

const int WG = int(gl_WorkGroupSize.x);
const int SP = WG / CT;                             // split lanes
const int CHUNK = CT * NC;                          // columns per workgroup
const int N_CHUNKS = (DV + CHUNK - 1) / CHUNK;
const int UNROLL = 4;                               // splits per lane and round
const int PART_STRIDE = DV + 2;                     // floats per row in `part`: m, l, acc[DV]

shared float sRed[WG];                              // maximum over the splits, then L per split lane
shared float sAcc[SP * CHUNK];                      // per split lane: its sums of the chunk's columns

void main() {
  Args A = Args(pc.args);
  const uint64_t gid = linear_group_id();
  if (gid >= uint64_t(A.n_groups)) return;
  const int tid = int(gl_LocalInvocationID.x);
  const int ct = tid % CT, sp = tid / CT;

  // ---- the row and chunk: work item, query head, physical row ----
  const int chunk = int(gid % uint64_t(N_CHUNKS));
  const uint64_t row_id = gid / uint64_t(N_CHUNKS);
  const int r = int(row_id % uint64_t(BQ));
  const uint64_t item = row_id / uint64_t(BQ);
  const Item it = decode_item(A, item, false);
  const int g = r / A.tr;
  const int64_t i = it.q0 + r % A.tr;
  if (g >= A.hg || i >= it.q1) return;  // uniform over the workgroup
  const int64_t b = it.b;
  const int h = it.hk * A.group + it.hb * A.hg + g;
  const int64_t phys = A.q_rows != 0 ? int64_t(ld_i32(A.q_rows, (b * A.hq + h) * A.n_q + i)) : i;
  const int n_splits = A.n_splits;
  const int64_t row0 = int64_t(item * uint64_t(n_splits)) * BQ + r;  // part row of split 0 (+ s·BQ)
  const int col0 = chunk * CHUNK + ct;                                // column of x = 0 (+ CT·x)

  // ---- M over the splits and the state ----
  float m_state = kNegInf, l_state = 0.0;
  int64_t st = 0;
  if (STATE) {
    st = state_index(A, b, h, phys);
    m_state = ld_f32(A.st_m, st);
    l_state = ld_f32(A.st_l, st);
  }
  float mx = m_state;
  for (int s = tid; s < n_splits; s += WG) mx = max(mx, ld_f32(A.part, (row0 + int64_t(s) * BQ) * PART_STRIDE));
  sRed[tid] = mx;
  barrier();
  for (int w = WG / 2; w > 0; w /= 2) {
    if (tid < w) sRed[tid] = max(sRed[tid], sRed[tid + w]);
    barrier();
  }
  const float M = sRed[0];
  barrier();  // sRed is reused below

  // ---- weighted sums: split lane sp over splits sp, sp + SP, …, UNROLL splits per round ----
  float acc[NC];
  [[unroll]] for (int x = 0; x < NC; ++x) acc[x] = 0.0;
  float lsum = 0.0;
  if (M != kNegInf) {
    int s = sp;
    for (; s + (UNROLL - 1) * SP < n_splits; s += UNROLL * SP) {
      float ms[UNROLL], ls[UNROLL], as[UNROLL * NC];
      [[unroll]] for (int u = 0; u < UNROLL; ++u) {
        const int64_t at = (row0 + int64_t(s + u * SP) * BQ) * PART_STRIDE;
        ms[u] = ld_f32(A.part, at);
        ls[u] = ld_f32(A.part, at + 1);
        [[unroll]] for (int x = 0; x < NC; ++x) {
          const int col = col0 + CT * x;
          as[u * NC + x] = col < DV ? ld_f32(A.part, at + 2 + col) : 0.0;
        }
      }
      [[unroll]] for (int u = 0; u < UNROLL; ++u) {
        const float w = ms[u] == kNegInf ? 0.0 : exp2(ms[u] - M);
        lsum += w * ls[u];
        [[unroll]] for (int x = 0; x < NC; ++x) acc[x] += w * as[u * NC + x];
      }
    }
    for (; s < n_splits; s += SP) {
      const int64_t at = (row0 + int64_t(s) * BQ) * PART_STRIDE;
      const float ms = ld_f32(A.part, at);
      const float w = ms == kNegInf ? 0.0 : exp2(ms - M);
      lsum += w * ld_f32(A.part, at + 1);
      [[unroll]] for (int x = 0; x < NC; ++x) {
        const int col = col0 + CT * x;
        if (col < DV) acc[x] += w * ld_f32(A.part, at + 2 + col);
      }
    }
  }
  [[unroll]] for (int x = 0; x < NC; ++x) sAcc[sp * CHUNK + x * CT + ct] = acc[x];
  if (ct == 0) sRed[sp] = lsum;
  barrier();
  if (sp != 0) return;  // split lane 0 finishes the row

  float L = 0.0;
  for (int y = 0; y < SP; ++y) L += sRed[y];
  [[unroll]] for (int x = 0; x < NC; ++x) {
    float sum = 0.0;
    for (int y = 0; y < SP; ++y) sum += sAcc[y * CHUNK + x * CT + ct];
    acc[x] = sum;
  }
  // the state's share
  const float w_state = m_state == kNegInf ? 0.0 : exp2(m_state - M);
  if (STATE && M != kNegInf) {
    L += l_state * w_state;
    [[unroll]] for (int x = 0; x < NC; ++x) {
      const int col = col0 + CT * x;
      if (col < DV) acc[x] += w_state * ld_f32(A.st_acc, st * DV + col);
    }
  }

  // ---- write out ----
  if (STATE) {
    [[unroll]] for (int x = 0; x < NC; ++x) {
      const int col = col0 + CT * x;
      if (col < DV) st_f32(A.st_acc, st * DV + col, acc[x]);
    }
    if (ct == 0) {
      st_f32(A.st_m, st, M);
      st_f32(A.st_l, st, L);
    }
    return;
  }
  float m = M, o_scale = 1.0;
  if (A.sinks != 0) {  // the sink joins the denominator (see attend.comp)
    const float sink = ld_f32(A.sinks, h) * kLog2e;
    const float m2 = max(m, sink);
    if (m2 != kNegInf) {
      o_scale = exp2(m - m2);
      L = L * o_scale + exp2(sink - m2);
      m = m2;
    }
  }
  const float inv = L == 0.0 ? 0.0 : o_scale / L;
  [[unroll]] for (int x = 0; x < NC; ++x) {
    const int col = col0 + CT * x;
    if (col < DV)
      store_elem(elem_addr(A.o, A.o_stride[0], A.o_stride[1], A.o_stride[2], A.o_stride[3], b, phys, h, col), O_DT,
                 L == 0.0 ? 0.0 : acc[x] * inv);
  }
  if (ct == 0 && chunk == 0 && A.lse != 0) {
    const float lse = L == 0.0 ? kNegInf : (m + log2(L)) * kLn2;
    F32s(elem_addr(A.lse, A.lse_stride[0], A.lse_stride[1], A.lse_stride[2], A.lse_stride[3], b, phys, h, 0)).v[0] = lse;
  }
}
