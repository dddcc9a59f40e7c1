#version 460
// lsh_codes — r-bit sign codes of projected rows, as Gray ranks.
//
// x: [batch, n, heads, D] strided, dtype X_DT; G: [D][r] f32 row-major; center: [batch][heads][D]
// f32 or address 0; codes: u16 [(b·heads + h)·n + i]. For each row:
//   dot_t = Σ_k (x_k − center_k)·G[k][t]   (fp32, k in order, no fused multiply-add, as the CPU)
//   bits  = Σ_t [dot_t > 0]·2^t;   code = gray_rank(bits) = bits ^ bits>>1 ^ bits>>2 ^ …
// One invocation per row; r is a specialization constant (BITS), so that each element costs r
// products and sums, not 16 predicated ones. G is staged in shared memory when it fits, as
// groups of 4 columns (vec4, zero past r) read with one 16-byte load each; rows that are contiguous
// and 16-byte aligned are read in 16-byte vectors. The sums run in the same order either way.

#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int X_DT = 0;
layout(constant_id = 2) const int BITS = 1;  // r (one pipeline per r; Args.bits holds it too)

const int WG = int(gl_WorkGroupSize.x);
const int kSharedG = 4096;  // floats of G staged in shared memory (D·4·⌈r/4⌉ up to 4096)
const int NG = (BITS + 3) / 4;  // groups of 4 columns of G

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Args {
  int64_t n_groups;
  uint64_t x, g, center, codes;
  int64_t x_stride[4];
  int64_t batch, n, heads, dim;
  int bits;
};
layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer U32x4s { uvec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer F32x4s { vec4 v[]; };

shared vec4 sG[kSharedG / 4];  // sG[k·NG + j] = G[k][4j … 4j + 3], zero past r

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

// dots[t] += v·G[k][t] for t < r, each product and sum rounded on its own (no fused multiply-add)
void add_term(inout vec4 dots[NG], float v, int64_t k, bool g_shared, uint64_t g) {
  [[unroll]] for (int j = 0; j < NG; ++j) {
    vec4 gv;
    if (g_shared) {
      gv = sG[int(k) * NG + j];
    } else {
      [[unroll]] for (int e = 0; e < 4; ++e) gv[e] = 4 * j + e < BITS ? ld_f32(g, k * BITS + 4 * j + e) : 0.0;
    }
    precise vec4 p = v * gv;
    precise vec4 sum = dots[j] + p;
    dots[j] = sum;
  }
}

void main() {
  Args A = Args(pc.args);
  const bool g_shared = A.dim * NG * 4 <= kSharedG;
  if (g_shared)
    for (int p = int(gl_LocalInvocationID.x); p < int(A.dim) * NG * 4; p += WG) {
      const int k = p / (NG * 4), t = p % (NG * 4);
      sG[p / 4][p % 4] = t < BITS ? ld_f32(A.g, int64_t(k) * BITS + t) : 0.0;
    }
  barrier();
  const uint64_t grp = linear_group_id();
  if (grp >= uint64_t(A.n_groups)) return;
  const int64_t e = int64_t(grp) * WG + int64_t(gl_LocalInvocationID.x);
  if (e >= A.batch * A.heads * A.n) return;
  const int64_t i = e % A.n;
  const int64_t h = (e / A.n) % A.heads;
  const int64_t b = e / (A.n * A.heads);
  vec4 dots[NG];
  [[unroll]] for (int j = 0; j < NG; ++j) dots[j] = vec4(0.0);
  const uint64_t row = elem_addr(A.x, A.x_stride[0], A.x_stride[1], A.x_stride[2], A.x_stride[3], b, i, h, 0);
  const uint64_t crow = A.center != 0 ? A.center + uint64_t((b * A.heads + h) * A.dim) * 4 : uint64_t(0);
  const int64_t es = X_DT == kDtypeF32 ? 4 : 2;
  const int per = X_DT == kDtypeF32 ? 4 : 8;  // elements per 16-byte vector
  const bool vec = A.x_stride[3] == es && (row & uint64_t(15)) == 0 && (crow & uint64_t(15)) == 0 && A.dim % per == 0;
  if (vec) {
    for (int64_t k0 = 0; k0 < A.dim; k0 += per) {
      const uvec4 w = U32x4s(row + uint64_t(k0 * es)).v[0];
      vec4 c0 = vec4(0.0), c1 = vec4(0.0);
      if (crow != 0) {
        c0 = F32x4s(crow + uint64_t(k0) * 4).v[0];
        if (per == 8) c1 = F32x4s(crow + uint64_t(k0) * 4 + 16).v[0];
      }
      [[unroll]] for (int u = 0; u < per; ++u) {
        float x;
        if (X_DT == kDtypeF32) {
          x = uintBitsToFloat(w[u]);
        } else {
          const uint hb = (w[u / 2] >> (16 * (u % 2))) & 0xffffu;
          x = X_DT == kDtypeF16 ? f16_bits_to_float(hb) : bf16_bits_to_float(hb);
        }
        precise float v = x - (u < 4 ? c0[u] : c1[u - 4]);  // x − 0 = x exactly without centring
        add_term(dots, v, k0 + u, g_shared, A.g);
      }
    }
  } else {
    for (int64_t k = 0; k < A.dim; ++k) {
      precise float v = load_elem(row + uint64_t(k * A.x_stride[3]), X_DT);
      if (crow != 0) v = v - ld_f32(crow, k);
      add_term(dots, v, k, g_shared, A.g);
    }
  }
  uint code = 0;
  [[unroll]] for (int t = 0; t < BITS; ++t) code |= (dots[t / 4][t % 4] > 0.0 ? 1u : 0u) << t;
  for (int shift = 1; shift < 32; shift <<= 1) code ^= code >> shift;
  store_u16(A.codes + uint64_t(e) * 2, code & 0xffffu);
}
