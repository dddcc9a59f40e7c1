// Kernel launches with programmatic dependent launch (PDL) on compute capability 9.0 and above.
//
// A kernel launched by `launch` may be scheduled while the kernel before it on the stream is
// still running: its blocks become resident and wait in `pdl_begin()` until the previous grid
// has completed and its writes are visible. This hides the launch latency between dependent
// kernels, which adds up over the hundreds of small kernels of a HYPER call.
//
// Contract: every kernel launched through `launch` calls pdl_begin() as its first statement,
// before it reads or writes global memory. pdl_begin() also lets the next kernel's blocks be
// scheduled (they in turn wait for this grid to complete), so the ordering of a stream is kept
// transitively. On older devices, in code compiled for them, or with LONGATTN_CUDA_PDL=0 the
// launches are ordinary.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "cuda_check.hpp"

namespace longattn::cuda {

__device__ __forceinline__ void pdl_begin() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Whether launches on the current device use PDL (compute capability ≥ 9.0, not turned off).
bool pdl_enabled();

// kernel<<<grid, block, smem, stream>>>(args...) with PDL where enabled; launch errors throw.
template <class... Params, class... Args>
void launch(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
            cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_enabled() ? 1 : 0;
  check(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...), name);
}

}  // namespace longattn::cuda
