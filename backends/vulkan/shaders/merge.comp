#version 460
// merge — (out, lse_out) = merge((a, lse_a), (b, lse_b)), fp32, −inf safe.
//
// o_a, o_b, out: [batch, rows, heads, D] (strided, dtypes A_DT, B_DT, O_DT); lse_*: f32
// [batch, rows, heads, 1] (strided). Per row:
//   L = logaddexp(la, lb) = mx + log(exp(la − mx) + exp(lb − mx)),  mx = max(la, lb)
//   out = wa·a + wb·b,  wa = exp(la − L), wb = exp(lb − L)   (a side with weight 0 is not read)
// Both −inf ⇒ out = 0, L = −inf; a NaN LSE gives NaN. out / lse_out may alias a / lse_a: every
// row is read before its LSE is written (barrier), and each element is read and written by the
// same invocation.
//
// Workgroup: WG / TPR rows, TPR invocations per row striding over the D columns: 4 adjacent
// columns per step (16-byte f32 / 8-byte f16 and bf16 loads and stores, so a 16-bit output needs no
// atomics) where every view's row is contiguous and aligned to 4 elements, else one column.

#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int TPR = 16;  // invocations per row
layout(constant_id = 2) const int A_DT = 0;
layout(constant_id = 3) const int B_DT = 0;
layout(constant_id = 4) const int O_DT = 0;

const int WG = int(gl_WorkGroupSize.x);
const int ROWS = WG / TPR;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Args {
  int64_t n_groups;
  uint64_t a, lse_a, b, lse_b, o, lse_o;
  int64_t a_stride[4], lse_a_stride[4], b_stride[4], lse_b_stride[4], o_stride[4], lse_o_stride[4];
  int64_t batch, rows, heads, dim;
};

layout(buffer_reference, std430, buffer_reference_align = 16) buffer F32x4s { vec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) buffer U32x2s { uvec2 v[]; };

// Four consecutive elements at a byte address aligned to four elements.
vec4 load4(uint64_t at, int dt) {
  if (dt == kDtypeF32) return F32x4s(at).v[0];
  const uvec2 w = U32x2s(at).v[0];
  if (dt == kDtypeF16) return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
  return vec4(bf16_bits_to_float(w.x & 0xffffu), bf16_bits_to_float(w.x >> 16), bf16_bits_to_float(w.y & 0xffffu),
              bf16_bits_to_float(w.y >> 16));
}

uint pack2(int dt, float x0, float x1) {
  return dt == kDtypeF16 ? float_to_f16_bits(x0) | (float_to_f16_bits(x1) << 16)
                         : float_to_bf16_bits(x0) | (float_to_bf16_bits(x1) << 16);
}

void store4(uint64_t at, int dt, vec4 x) {
  if (dt == kDtypeF32) {
    F32x4s(at).v[0] = x;
  } else {
    U32x2s(at).v[0] = uvec2(pack2(dt, x.x, x.y), pack2(dt, x.z, x.w));
  }
}

// The row at `at` (dtype dt, element stride s3) can be read 4 elements at a time.
bool row_vec4(uint64_t at, int64_t s3, int dt) {
  const int64_t es = dt == kDtypeF32 ? 4 : 2;
  return s3 == es && (at & uint64_t(4 * es - 1)) == 0;
}

float lse_at(uint64_t base, int64_t s0, int64_t s1, int64_t s2, int64_t bb, int64_t i, int64_t h) {
  return F32s(base + uint64_t(bb * s0 + i * s1 + h * s2)).v[0];
}

void main() {
  Args A = Args(pc.args);
  const uint64_t grp = linear_group_id();
  if (grp >= uint64_t(A.n_groups)) return;
  const int tid = int(gl_LocalInvocationID.x);
  const int64_t row = int64_t(grp) * ROWS + tid / TPR;
  const int t = tid % TPR;
  const int64_t total = A.batch * A.rows * A.heads;
  const bool valid = row < total;
  int64_t h = 0, i = 0, bb = 0;
  float L = kNegInf;
  if (valid) {
    h = row % A.heads;
    i = (row / A.heads) % A.rows;
    bb = row / (A.heads * A.rows);
    const float la = lse_at(A.lse_a, A.lse_a_stride[0], A.lse_a_stride[1], A.lse_a_stride[2], bb, i, h);
    const float lb = lse_at(A.lse_b, A.lse_b_stride[0], A.lse_b_stride[1], A.lse_b_stride[2], bb, i, h);
    const float mx = max(la, lb);
    float wa = 0.0, wb = 0.0;
    if (isnan(la) || isnan(lb)) {
      wa = wb = L = uintBitsToFloat(0x7fc00000u);
    } else if (mx != kNegInf) {
      const float ea = exp(la - mx), eb = exp(lb - mx);
      const float sum = ea + eb;
      L = mx + log(sum);
      wa = ea / sum;
      wb = eb / sum;
    }
    const uint64_t ra = elem_addr(A.a, A.a_stride[0], A.a_stride[1], A.a_stride[2], A.a_stride[3], bb, i, h, 0);
    const uint64_t rb = elem_addr(A.b, A.b_stride[0], A.b_stride[1], A.b_stride[2], A.b_stride[3], bb, i, h, 0);
    const uint64_t ro = elem_addr(A.o, A.o_stride[0], A.o_stride[1], A.o_stride[2], A.o_stride[3], bb, i, h, 0);
    const bool vec = A.dim % 4 == 0 && row_vec4(ra, A.a_stride[3], A_DT) && row_vec4(rb, A.b_stride[3], B_DT) &&
                     row_vec4(ro, A.o_stride[3], O_DT);
    if (vec) {
      for (int64_t c = 4 * t; c < A.dim; c += 4 * TPR) {
        const vec4 va = wa == 0.0 ? vec4(0.0) : wa * load4(ra + uint64_t(c * A.a_stride[3]), A_DT);
        const vec4 vb = wb == 0.0 ? vec4(0.0) : wb * load4(rb + uint64_t(c * A.b_stride[3]), B_DT);
        store4(ro + uint64_t(c * A.o_stride[3]), O_DT, va + vb);
      }
    } else {
      for (int64_t c = t; c < A.dim; c += TPR) {
        const float va = wa == 0.0 ? 0.0 : wa * load_elem(ra + uint64_t(c * A.a_stride[3]), A_DT);
        const float vb = wb == 0.0 ? 0.0 : wb * load_elem(rb + uint64_t(c * A.b_stride[3]), B_DT);
        store_elem(ro + uint64_t(c * A.o_stride[3]), O_DT, va + vb);
      }
    }
  }
  barrier();  // every invocation of the row has read lse_a / lse_b
  if (valid && t == 0)
    F32s(A.lse_o + uint64_t(bb * A.lse_o_stride[0] + i * A.lse_o_stride[1] + h * A.lse_o_stride[2])).v[0] = L;
}
