// Ring mode, part 4: how the ranks of a ring context move bytes to each other. The executor
// (src/ring.cpp) brackets the sends of one exchange (every rank's forward send of a ring step, or
// the decode gather) with begin_exchange/end_exchange and orders everything else with the
// ranks' events; a transport only moves bytes. See docs/RING.md, "Transports".
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "longattn.h"

namespace longattn {

class RingGroup;

class RingTransport {
 public:
  virtual ~RingTransport() = default;
  // LONGATTN_RING_TRANSPORT_PEER, _HOST_STAGED or _NCCL (never AUTO).
  virtual longattn_ring_transport kind() const = 0;

  // Where a send completes. false: on the sender's copy stream (an event recorded there after
  // the send marks the bytes as arrived: copies pushed by the sender). true: on the receiver's
  // copy stream (NCCL: the receiver's half of the exchange writes the buffer), so the receiver
  // orders its own work after it and guards its receive buffers itself.
  virtual bool lands_on_receiver() const { return false; }

  // Bracket one exchange. Sends between them may be deferred until end_exchange (NCCL groups);
  // events recorded on copy streams must come after end_exchange.
  virtual void begin_exchange() {}
  virtual void end_exchange() {}

  // Copies `bytes` from src (memory of rank `from`) to dst (memory of rank `to`), after the work
  // already queued on from's copy stream (and on to's, when lands_on_receiver()). from == to is
  // allowed. Called from the thread that began the exchange, or, for synchronous (CPU) ranks,
  // from one host thread per sending rank at once.
  virtual void send(int32_t from, int32_t to, void* dst, const void* src, size_t bytes) = 0;
};

// Backend::send_to on the sender's copy stream (CUDA: peer / device-to-device copies; CPU and
// Vulkan: staged through host memory). `kind` is what longattn_context_ring_transport reports.
std::unique_ptr<RingTransport> make_backend_transport(RingGroup& g, longattn_ring_transport kind);

// The transport a new ring context asks for: options.ring_transport for ranks on `devices`
// (one entry per rank) of backend `backend`. Throws Error(UNSUPPORTED) for a transport the
// backend does not have, Error(BACKEND_UNAVAILABLE) when NCCL cannot be loaded.
std::unique_ptr<RingTransport> make_ring_transport(RingGroup& g, longattn_backend backend,
                                                   longattn_ring_transport requested,
                                                   const std::vector<int32_t>& devices);

#if LONGATTN_HAVE_CUDA
// backends/cuda/ring_transport.cpp
std::unique_ptr<RingTransport> make_cuda_ring_transport(RingGroup& g, longattn_ring_transport requested,
                                                        const std::vector<int32_t>& devices);
#endif

}  // namespace longattn
