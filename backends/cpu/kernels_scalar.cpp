// Scalar micro-kernels: the portable fallback, also forced in tests so the path cannot rot.
#include <cmath>

#include "kernels_impl.hpp"

namespace longattn::cpu {
namespace {

struct ScalarOps {
  using V = float;
  static constexpr int W = 1;
  static constexpr int kRegs = 16;
  static V zero() { return 0.0f; }
  static V set1(float x) { return x; }
  static V load(const float* p) { return *p; }
  static V load(const F16* p) { return to_float(*p); }
  static V load(const BF16* p) { return to_float(*p); }
  template <class B>
  static V load_block(const B& b, int i) { return row_value(&b, i); }
  template <class B>
  static V block_ints(const B& b, int i) { return block_int_value(&b, i); }
  static void store(float* p, V v) { *p = v; }
  static void pin(V&) {}
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V fma(V a, V b, V c) { return std::fma(a, b, c); }
  static V max(V a, V b) { return a > b ? a : b; }  // keeps b when a is NaN, like maxps
  static V hsum_lanes(const V* a) { return a[0]; }
  static V exp2(V x) { return std::exp2(x); }
  static V tanh(V x) { return std::tanh(x); }
  static V select_neginf(V x, V r) { return x == -std::numeric_limits<float>::infinity() ? r : x; }
};

}  // namespace

const CpuKernels& cpu_kernels_scalar() { return make_table<ScalarOps>("scalar", &to_f32_scalar); }

}  // namespace longattn::cpu
