// Run-time choice of the micro-kernel table (xsimd's CPU detection), with an override for tests
// and benchmarks: LONGATTN_CPU_ISA=avx512|avx2|neon|scalar.
#include <cstdlib>
#include <cstring>

#include <xsimd/xsimd.hpp>

#include "backend.hpp"
#include "cpu_kernels.hpp"

namespace longattn {
const char* cpu_isa_selected() { return cpu::cpu_kernels_best().isa; }
const char* cpu_isas_compiled() { return cpu::cpu_isas_compiled(); }
}  // namespace longattn

namespace longattn::cpu {

const char* cpu_isas_compiled() {
#if defined(__x86_64__) || defined(_M_X64)
  return "avx512,avx2,scalar";
#elif defined(__aarch64__)
  return "neon,scalar";
#else
  return "scalar";
#endif
}

const CpuKernels* cpu_kernels_by_name(const char* name) {
  const auto have = xsimd::available_architectures();
  (void)have;
  if (std::strcmp(name, "scalar") == 0) return &cpu_kernels_scalar();
#if defined(__x86_64__) || defined(_M_X64)
  if (std::strcmp(name, "avx512") == 0 && have.avx512bw && have.avx512dq)
    return &cpu_kernels_avx512();
  if (std::strcmp(name, "avx2") == 0 && have.fma3_avx2) return &cpu_kernels_avx2();
#endif
#if defined(__aarch64__)
  if (std::strcmp(name, "neon") == 0) return &cpu_kernels_neon();
#endif
  return nullptr;
}

const CpuKernels& cpu_kernels_best() {
  if (const char* env = std::getenv("LONGATTN_CPU_ISA"))
    if (const CpuKernels* k = cpu_kernels_by_name(env)) return *k;
  for (const char* name : {"avx512", "avx2", "neon"})
    if (const CpuKernels* k = cpu_kernels_by_name(name)) return *k;
  return cpu_kernels_scalar();
}

}  // namespace longattn::cpu
