// Vector operations the micro-kernels need, over xsimd::batch<float, Arch> (xsimd 8.1).
#pragma once

#include <xsimd/xsimd.hpp>

namespace longattn::cpu {

template <class Arch, int Regs>
struct XsimdOps {
  using V = xsimd::batch<float, Arch>;
  static constexpr int W = int(V::size);
  static constexpr int kRegs = Regs;  // architectural vector registers
  static V zero() { return V(0.0f); }
  static V set1(float x) { return V(x); }
  static V load(const float* p) { return V::load_unaligned(p); }
  static void store(float* p, V v) { v.store_unaligned(p); }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V fma(V a, V b, V c) { return xsimd::fma(a, b, c); }
  static V max(V a, V b) { return xsimd::max(a, b); }
  static float hsum(V a) { return xsimd::hadd(a); }  // xsimd 8.1's name for the horizontal sum
  static V exp2(V x) { return xsimd::exp2(x); }
  static V tanh(V x) { return xsimd::tanh(x); }
  // x where x != −inf, else r
  static V select_neginf(V x, V r) {
    return xsimd::select(x == V(-std::numeric_limits<float>::infinity()), r, x);
  }
};

}  // namespace longattn::cpu
