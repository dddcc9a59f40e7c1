// The CUDA ring transports (docs/RING.md, "Transports"). Each rank's device is given per rank;
// the ranks' copy streams come from the RingGroup (cudaStream_t behind void*).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "ring.hpp"
#include "ring_transport.hpp"

namespace longattn::cuda {

// Whether copies from device `from` to device `to` go directly (same device, or peer access).
bool direct_copy_possible(int32_t from, int32_t to);

// Device → pinned host → device through two pinned buffers per pair of ranks, asynchronous on the
// copy streams (ring_transport_staged.cpp). force = false: pairs with a direct path use peer
// copies (Backend::send_to) instead.
std::unique_ptr<RingTransport> make_staged_transport(RingGroup& g, const std::vector<int32_t>& devices, bool force);

// Grouped ncclSend/ncclRecv over a communicator from ncclCommInitAll (ring_transport_nccl.cpp).
std::unique_ptr<RingTransport> make_nccl_transport(RingGroup& g, const std::vector<int32_t>& devices);

}  // namespace longattn::cuda
