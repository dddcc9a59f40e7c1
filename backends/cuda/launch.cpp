// When kernel launches use programmatic dependent launch (see launch.cuh).
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "cuda_check.hpp"

namespace longattn::cuda {

bool pdl_enabled() {
  static const bool allowed = [] {
    const char* e = std::getenv("LONGATTN_CUDA_PDL");
    return !(e && std::string(e) == "0");
  }();
  if (!allowed) return false;
  static std::atomic<int> cached[kCachedDevices] = {};  // 1: no, 2: yes
  return once_per_device(cached, [] {
           int device = 0, major = 0;
           check(cudaGetDevice(&device), "cudaGetDevice");
           check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device),
                 "cudaDeviceGetAttribute(compute capability)");
           return major >= 9 ? 2 : 1;
         }) == 2;
}

}  // namespace longattn::cuda
