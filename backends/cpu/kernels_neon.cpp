// NEON micro-kernels (aarch64; 32 vector registers).
#include "kernels_impl.hpp"
#include "xsimd_ops.hpp"

namespace longattn::cpu {

const CpuKernels& cpu_kernels_neon() {
  return make_table<XsimdOps<xsimd::neon64, 32>>("neon", &to_f32_scalar);
}

}  // namespace longattn::cpu
