// Run-time choice of the micro-kernel table (xsimd's CPU detection, plus CPUID for AVX512-BF16,
// which xsimd 8.1 does not know), with an override for tests and benchmarks:
// LONGATTN_CPU_ISA=avx512bf16|avx512|avx2|neon|scalar (avx512bf16 automatic on AMD only, see below).
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

#include <xsimd/xsimd.hpp>

#include "backend.hpp"
#include "cpu_kernels.hpp"

namespace longattn {
const char* cpu_isa_selected() { return cpu::cpu_kernels_best().isa; }
const char* cpu_isas_compiled() { return cpu::cpu_isas_compiled(); }
}  // namespace longattn

namespace longattn::cpu {

#if defined(__x86_64__) || defined(_M_X64)
namespace {
// AVX512-BF16: CPUID leaf 7, sub-leaf 1 (present when sub-leaf 0's EAX >= 1), EAX bit 5. The OS
// saving the AVX-512 registers is part of xsimd's avx512bw check, which the caller makes too.
bool cpu_has_avx512bf16() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || eax < 1) return false;
  __cpuid_count(7, 1, eax, ebx, ecx, edx);
  return (eax >> 5) & 1u;
}

// CPUID leaf 0's vendor string is "AuthenticAMD" (EBX, EDX, ECX spell it in that order).
bool cpu_is_amd() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return false;
  char vendor[13] = {};
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  return std::strcmp(vendor, "AuthenticAMD") == 0;
}
}  // namespace
#endif

const char* cpu_isas_compiled() {
#if defined(__x86_64__) || defined(_M_X64)
  return "avx512bf16,avx512,avx2,scalar";
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
  const bool avx512 = have.avx512bw && have.avx512dq;
  if (std::strcmp(name, "avx512bf16") == 0 && avx512 && cpu_has_avx512bf16()) return &cpu_kernels_avx512bf16();
  if (std::strcmp(name, "avx512") == 0 && avx512) return &cpu_kernels_avx512();
  if (std::strcmp(name, "avx2") == 0 && have.fma3_avx2) return &cpu_kernels_avx2();
#endif
#if defined(__aarch64__)
  if (std::strcmp(name, "neon") == 0) return &cpu_kernels_neon();
#endif
  return nullptr;
}

// avx512bf16 differs from avx512 only for bf16 Q/K/V, and is chosen automatically on AMD CPUs
// only. On Zen 4 VDPBF16PS retires at VFMADD231PS's rate, i.e. twice the flops, and bf16 prefill
// runs 1.7 × f32; on Intel Sapphire Rapids it retires at a quarter of the rate (half the flops),
// so there the avx512 kernels, which widen bf16 to fp32 with a shift, are faster
// (docs/PERFORMANCE.md has both measurements).
const CpuKernels& cpu_kernels_best() {
  if (const char* env = std::getenv("LONGATTN_CPU_ISA"))
    if (const CpuKernels* k = cpu_kernels_by_name(env)) return *k;
#if defined(__x86_64__) || defined(_M_X64)
  if (cpu_is_amd())
    if (const CpuKernels* k = cpu_kernels_by_name("avx512bf16")) return *k;
#endif
  for (const char* name : {"avx512", "avx2", "neon"})
    if (const CpuKernels* k = cpu_kernels_by_name(name)) return *k;
  return cpu_kernels_scalar();
}

}  // namespace longattn::cpu
