// CPU implementation of the `attend` primitive (see src/backend.hpp for its contract).
#pragma once

#include <vector>

#include "backend.hpp"
#include "cpu_kernels.hpp"

namespace longattn::cpu {

// Scratch owned by the backend between calls: it grows on the first call with a larger shape and is
// reused afterwards, so a forward call allocates nothing once the shapes have been seen.
struct AttendPool {
  size_t l1_bytes = 32 * 1024, l2_bytes = 512 * 1024;    // data cache sizes, set by the backend
  std::vector<float> floats;                              // per-thread tiles and split partials
  std::vector<int64_t> seg_q, seg_k;                      // segment offsets
  std::vector<int64_t> tile_seg, tile_q0, tile_q1;        // query tiles
  size_t bytes() const {
    return floats.capacity() * sizeof(float) +
           (seg_q.capacity() + seg_k.capacity() + tile_seg.capacity() + tile_q0.capacity() + tile_q1.capacity()) *
               sizeof(int64_t);
  }
};

// Runs one attend call on n_threads threads with the given micro-kernels.
void attend(const AttendArgs& a, const CpuKernels& kernels, int n_threads, AttendPool& pool);

}  // namespace longattn::cpu
