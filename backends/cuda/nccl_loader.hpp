// NCCL loaded at run time (dlopen), so the library has no link-time NCCL dependency: only the few
// entry points the ring transport uses, declared here with NCCL's C ABI (its enums are ints).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

namespace longattn::cuda {

struct NcclComm;  // NCCL's opaque ncclComm
using NcclCommHandle = NcclComm*;

// Values of NCCL's enums (nccl.h), fixed by its ABI.
constexpr int kNcclSuccess = 0;       // ncclSuccess
constexpr int kNcclInvalidUsage = 5;  // ncclInvalidUsage
constexpr int kNcclUint8 = 1;         // ncclUint8

struct NcclApi {
  int (*GetVersion)(int* version) = nullptr;
  int (*CommInitAll)(NcclCommHandle* comms, int ndev, const int* devlist) = nullptr;
  int (*CommDestroy)(NcclCommHandle comm) = nullptr;
  int (*GroupStart)() = nullptr;
  int (*GroupEnd)() = nullptr;
  int (*Send)(const void* buf, size_t count, int datatype, int peer, NcclCommHandle comm,
              cudaStream_t stream) = nullptr;
  int (*Recv)(void* buf, size_t count, int datatype, int peer, NcclCommHandle comm,
              cudaStream_t stream) = nullptr;
  const char* (*GetErrorString)(int result) = nullptr;
  const char* (*GetLastError)(NcclCommHandle comm) = nullptr;  // NCCL >= 2.13; may stay null
  int version = 0;   // NCCL_VERSION_CODE of the loaded library (e.g. 22809 for 2.28.9)
  std::string path;  // what was passed to dlopen
};

// The NCCL library: LONGATTN_NCCL_LIBRARY when set, else "libnccl.so.2". Loaded on the first
// successful call and kept for the life of the process; a failed load is retried on the next
// call. Throws Error(BACKEND_UNAVAILABLE) saying what was tried and why it failed. Thread safe.
const NcclApi& nccl();

// "<what>: <NCCL error string> (<NCCL's last error message>)" for a failed NCCL call.
std::string nccl_error(const NcclApi& api, const char* what, int result, NcclCommHandle comm = nullptr);

}  // namespace longattn::cuda
