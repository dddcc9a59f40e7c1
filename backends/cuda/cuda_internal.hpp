// Internals shared by the CUDA backend's translation units: device facts, the backend-owned
// scratch pool, and the primitive implementations the Backend class delegates to.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "backend.hpp"

namespace longattn::cuda {

struct DeviceProps {
  int device = 0;
  int sm_count = 0;
  int max_smem_optin = 0;  // bytes of dynamic shared memory a block may opt in to
  int cc_major = 0, cc_minor = 0;
  std::string name;
};

// Device scratch owned by a backend and reused across calls: a slot grows (cudaFree + cudaMalloc)
// only when a call needs more bytes than any earlier one.
class ScratchPool {
 public:
  ScratchPool() = default;
  ScratchPool(const ScratchPool&) = delete;
  ScratchPool& operator=(const ScratchPool&) = delete;
  ~ScratchPool() { release(); }
  void* get(size_t slot, size_t bytes);
  void release();
  size_t bytes_held() const {
    size_t n = 0;
    for (const Buf& b : bufs_) n += b.bytes;
    return n;
  }

 private:
  struct Buf {
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  std::vector<Buf> bufs_;
};

// Scratch slots used by the primitives.
enum ScratchSlot : size_t {
  kSlotSplitPartials = 0,
  kSlotSortKeysIn,
  kSlotSortKeysOut,
  kSlotSortValuesIn,
  kSlotSortTemp,
};

void attend(const AttendArgs& a, const DeviceProps& dev, ScratchPool& scratch, cudaStream_t stream);

void state_init(RunningState& s, int64_t batch, int32_t heads, int64_t rows, int32_t dv,
                cudaStream_t stream);
void state_finish(const RunningState& s, int64_t batch, int32_t heads, int64_t rows, int32_t dv,
                  const View& out, const View& lse, cudaStream_t stream);
void merge(const View& a, const View& lse_a, const View& b, const View& lse_b, const View& out,
           const View& lse_out, cudaStream_t stream);

void lsh_codes(const View& x, const float* G, int32_t r, const float* center, uint16_t* codes,
               cudaStream_t stream);
void counting_sort(const uint16_t* codes, int64_t n_seg, int64_t n, int32_t r, int32_t* perm,
                   ScratchPool& scratch, cudaStream_t stream);
void gather_i32(int32_t* dst, const int32_t* src, const int32_t* index, int64_t n_seg, int64_t n_src,
                int64_t n_index, cudaStream_t stream);
void segment_labels(int32_t* dst, const int64_t* offsets, int32_t n_seg, int64_t copies,
                    cudaStream_t stream);

}  // namespace longattn::cuda
