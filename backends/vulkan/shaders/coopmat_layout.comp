#version 460
// coopmat_layout — which element of a 16×16 fp32 cooperative matrix each lane holds.
//
// VK_NV_cooperative_matrix leaves the mapping of a matrix's elements to the lanes' components
// implementation-defined. attend_coopmat.comp's in-register softmax needs it (row maxima and sums
// over the lanes that share a row), so the host runs this once per context and fits its model to
// the answer (vulkan_attend.cpp, probe_coopmat_layout), falling back to the softmax through shared
// memory when the device's layout does not fit.
//
// One subgroup of 32 lanes. Matrix M holds M[r][c] = 16·r + c. Written to dst (fp32):
//   dst[0 .. 255]    component i of lane l at 8·l + i, for M loaded from shared memory
//   dst[256 .. 511]  the same for I·M computed by a matrix product (accumulator layout)
//   dst[512]         the number of components per lane (length())
//   dst[513 .. 768]  component i of lane l at 513 + 8·l + i, for M (f16) as a left operand
// Components past 8 are not written (the host then rejects the layout). Built twice, as for
// attend_coopmat.comp: with COOPMAT_KHR the right operand has KB_MARK columns and the module
// becomes SPV_KHR_cooperative_matrix, so that the layouts of KHR's roles are the ones probed.

#extension GL_GOOGLE_include_directive : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#include "common.glsl"

layout(local_size_x = 32) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Args {
  int64_t n_groups;
  uint64_t dst;
};

layout(constant_id = 17) const int KB_MARK = 16;  // (COOPMAT_KHR: marks the right operand)

shared float sf[256];      // M, fp32
shared float16_t sh[256];  // M, f16 (values ≤ 255 are exact)
shared float16_t si[256];  // the identity, f16

void main() {
  Args A = Args(pc.args);
  const int lane = int(gl_LocalInvocationID.x);
  for (int e = lane; e < 256; e += 32) {
    sf[e] = float(e);
    sh[e] = float16_t(e);
    si[e] = float16_t(e / 16 == e % 16 ? 1.0 : 0.0);
  }
  barrier();
  fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> m;
  coopMatLoadNV(m, sf, 0, 16, false);
  fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> a, ma;
#ifdef COOPMAT_KHR
  fcoopmatNV<16, gl_ScopeSubgroup, 16, KB_MARK> b;
#else
  fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> b;
#endif
  coopMatLoadNV(a, si, 0, 16, false);
  coopMatLoadNV(b, sh, 0, 16, false);
  coopMatLoadNV(ma, sh, 0, 16, false);
  fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> p = coopMatMulAddNV(a, b, fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0));
  const int n = m.length();
  for (int i = 0; i < min(n, 8); ++i) {
    st_f32(A.dst, 8 * lane + i, m[i]);
    st_f32(A.dst, 256 + 8 * lane + i, p[i]);
    st_f32(A.dst, 513 + 8 * lane + i, float(ma[i]));
  }
  if (lane == 0) st_f32(A.dst, 512, float(n));
}
