#version 460
// state_finish — turns a running state into (out, lse):
//   out[b, i, h, c] = acc[idx·DV + c] / l[idx],  lse[b, i, h] = (m[idx] + log2 l[idx])·ln 2
// with idx = (b·heads + h)·rows + i; l = 0 gives out = 0 and lse = −inf. out is strided with
// dtype O_DT; lse (optional, address 0 = not wanted) is f32 and strided.
// One invocation per output element; column 0 also writes the LSE.

#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int O_DT = 0;

const int WG = int(gl_WorkGroupSize.x);

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Args {
  int64_t n_groups;
  uint64_t m, l, acc, o, lse;
  int64_t o_stride[4], lse_stride[4];
  int64_t batch, heads, rows, dv;
};

void main() {
  Args A = Args(pc.args);
  const uint64_t grp = linear_group_id();
  if (grp >= uint64_t(A.n_groups)) return;
  const int64_t e = int64_t(grp) * WG + int64_t(gl_LocalInvocationID.x);
  if (e >= A.batch * A.heads * A.rows * A.dv) return;
  const int64_t c = e % A.dv;
  const int64_t idx = e / A.dv;
  const int64_t i = idx % A.rows;
  const int64_t h = (idx / A.rows) % A.heads;
  const int64_t b = idx / (A.rows * A.heads);
  const float l = ld_f32(A.l, idx);
  const bool empty = l == 0.0;
  const float value = empty ? 0.0 : ld_f32(A.acc, e) * (1.0 / l);
  store_elem(elem_addr(A.o, A.o_stride[0], A.o_stride[1], A.o_stride[2], A.o_stride[3], b, i, h, c), O_DT, value);
  if (c == 0 && A.lse != 0) {
    const float lse = empty ? kNegInf : (ld_f32(A.m, idx) + log2(l)) * kLn2;
    F32s(elem_addr(A.lse, A.lse_stride[0], A.lse_stride[1], A.lse_stride[2], A.lse_stride[3], b, i, h, 0)).v[0] = lse;
  }
}
