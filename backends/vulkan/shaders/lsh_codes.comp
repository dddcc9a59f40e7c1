#version 460
// lsh_codes — r-bit sign codes of projected rows, as Gray ranks.
//
// x: [batch, n, heads, D] strided, dtype X_DT; G: [D][r] f32 row-major; center: [batch][heads][D]
// f32 or address 0; codes: u16 [(b·heads + h)·n + i]. For each row:
//   dot_t = Σ_k (x_k − center_k)·G[k][t]   (fp32, k in order, no fused multiply-add, as the CPU)
//   bits  = Σ_t [dot_t > 0]·2^t;   code = gray_rank(bits) = bits ^ bits>>1 ^ bits>>2 ^ …
// One invocation per row.

#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int X_DT = 0;

const int WG = int(gl_WorkGroupSize.x);
const int kMaxBits = 16;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Args {
  int64_t n_groups;
  uint64_t x, g, center, codes;
  int64_t x_stride[4];
  int64_t batch, n, heads, dim;
  int bits;
};

void store_u16(uint64_t addr, uint h) {
  U32s word = U32s(addr & ~uint64_t(3));
  if ((addr & uint64_t(2)) != 0) {
    atomicAnd(word.v[0], 0x0000ffffu);
    atomicOr(word.v[0], h << 16);
  } else {
    atomicAnd(word.v[0], 0xffff0000u);
    atomicOr(word.v[0], h);
  }
}

void main() {
  Args A = Args(pc.args);
  const uint64_t grp = linear_group_id();
  if (grp >= uint64_t(A.n_groups)) return;
  const int64_t e = int64_t(grp) * WG + int64_t(gl_LocalInvocationID.x);
  if (e >= A.batch * A.heads * A.n) return;
  const int64_t i = e % A.n;
  const int64_t h = (e / A.n) % A.heads;
  const int64_t b = e / (A.n * A.heads);
  const int r = A.bits;
  precise float dots[kMaxBits];
  for (int t = 0; t < kMaxBits; ++t) dots[t] = 0.0;
  const uint64_t row = elem_addr(A.x, A.x_stride[0], A.x_stride[1], A.x_stride[2], A.x_stride[3], b, i, h, 0);
  for (int64_t k = 0; k < A.dim; ++k) {
    precise float v = load_elem(row + uint64_t(k * A.x_stride[3]), X_DT);
    if (A.center != 0) v = v - ld_f32(A.center, (b * A.heads + h) * A.dim + k);
    for (int t = 0; t < r; ++t) dots[t] = dots[t] + v * ld_f32(A.g, k * r + t);
  }
  uint code = 0;
  for (int t = 0; t < r; ++t) code |= (dots[t] > 0.0 ? 1u : 0u) << t;
  for (int shift = 1; shift < 32; shift <<= 1) code ^= code >> shift;
  store_u16(A.codes + uint64_t(e) * 2, code & 0xffffu);
}
