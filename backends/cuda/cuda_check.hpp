// Turns CUDA runtime results into longattn::Error: a failed call never aborts, it throws an error
// whose message names the call and carries the CUDA error string. Also the scope guard that makes
// a device current.
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
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

// A per-device fact that costs a driver query (occupancy, a kernel attribute): asked once per
// device on first use, then read from `cache` (0 = not yet known; devices past the cache's
// size are asked every time).
constexpr int kCachedDevices = 64;
template <class F>
int once_per_device(std::atomic<int> (&cache)[kCachedDevices], F&& ask) {
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  if (device < kCachedDevices && cache[device] > 0) return cache[device];
  const int value = ask();
  if (device < kCachedDevices) cache[device] = value;
  return value;
}

}  // namespace longattn::cuda
