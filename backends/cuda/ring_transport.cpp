// Which CUDA ring transport a context gets (longattn.h, LONGATTN_RING_TRANSPORT_*).
#include <cuda_runtime_api.h>

#include "cuda_check.hpp"
#include "ring_transport_cuda.hpp"

namespace longattn {

namespace cuda {

bool direct_copy_possible(int32_t from, int32_t to) {
  if (from == to) return true;
  int can = 0;
  if (cudaDeviceCanAccessPeer(&can, from, to) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return can != 0;
}

}  // namespace cuda

std::unique_ptr<RingTransport> make_cuda_ring_transport(RingGroup& g, longattn_ring_transport requested,
                                                        const std::vector<int32_t>& devices) {
  switch (requested) {
    case LONGATTN_RING_TRANSPORT_PEER: return make_backend_transport(g, LONGATTN_RING_TRANSPORT_PEER);
    case LONGATTN_RING_TRANSPORT_HOST_STAGED: return cuda::make_staged_transport(g, devices, true);
    case LONGATTN_RING_TRANSPORT_NCCL: return cuda::make_nccl_transport(g, devices);
    default: break;
  }
  // AUTO: peer copies when every pair of ranks can copy directly (decode gathers reach any rank)
  bool direct = true;
  for (int32_t a : devices)
    for (int32_t b : devices) direct = direct && cuda::direct_copy_possible(a, b);
  if (direct) return make_backend_transport(g, LONGATTN_RING_TRANSPORT_PEER);
  return cuda::make_staged_transport(g, devices, false);
}

}  // namespace longattn
