// Turns CUDA runtime results into longattn::Error: a failed call never aborts, it throws an error
// whose message names the call and carries the CUDA error string. Also the scope guard that makes
// a device current.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "error.hpp"

namespace longattn::cuda {

inline longattn_status status_of(cudaError_t e) {
  return e == cudaErrorMemoryAllocation ? LONGATTN_ERROR_OUT_OF_MEMORY : LONGATTN_ERROR_DEVICE;
}

// Throws Error(DEVICE or OUT_OF_MEMORY, "<what>: <cuda error name>: <cuda error string>").
inline void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  throw Error(status_of(e), std::string("CUDA ") + what + ": " + cudaGetErrorName(e) + ": " +
                                cudaGetErrorString(e));
}

// After a kernel launch: reports a bad launch configuration or an earlier asynchronous fault.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// Makes `device` current for a scope, restoring the previous device at its end.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), ("cudaSetDevice(" + std::to_string(device) + ")").c_str());
  }
  ~DeviceGuard() {
    int now = previous_;
    if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace longattn::cuda
