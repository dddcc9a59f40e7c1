// The default ring transport: a send between two backends staged through host memory. Correct
// for every backend (it only uses download/upload/synchronize); a backend with a direct path
// (CUDA peer copies, or one memcpy between CPU ranks) overrides Backend::send_to. Also the
// transport choice of a new ring context.
#include "ring_transport.hpp"

#include <memory>
#include <new>
#include <string>

#include "backend.hpp"
#include "error.hpp"
#include "ring.hpp"

namespace longattn {

void Backend::send_to(Backend& peer, void* dst_on_peer, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return;
  std::unique_ptr<char[]> host(new (std::nothrow) char[bytes]);
  if (!host)
    throw Error(LONGATTN_ERROR_OUT_OF_MEMORY, "ring transport: host staging of " + std::to_string(bytes) +
                                                  " bytes failed");
  download(host.get(), src, bytes, stream);
  synchronize(stream);
  peer.upload(dst_on_peer, host.get(), bytes, nullptr);
  peer.synchronize(nullptr);
}

namespace {

class BackendTransport final : public RingTransport {
 public:
  BackendTransport(RingGroup& g, longattn_ring_transport kind) : g_(g), kind_(kind) {}
  longattn_ring_transport kind() const override { return kind_; }
  void send(int32_t from, int32_t to, void* dst, const void* src, size_t bytes) override {
    RingRank& f = g_.rank(from);
    f.backend->send_to(*g_.rank(to).backend, dst, src, bytes, f.copy);
  }

 private:
  RingGroup& g_;
  longattn_ring_transport kind_;
};

const char* transport_name(longattn_ring_transport t) {
  switch (t) {
    case LONGATTN_RING_TRANSPORT_PEER: return "PEER";
    case LONGATTN_RING_TRANSPORT_HOST_STAGED: return "HOST_STAGED";
    case LONGATTN_RING_TRANSPORT_NCCL: return "NCCL";
    default: return "AUTO";
  }
}

}  // namespace

std::unique_ptr<RingTransport> make_backend_transport(RingGroup& g, longattn_ring_transport kind) {
  return std::make_unique<BackendTransport>(g, kind);
}

std::unique_ptr<RingTransport> make_ring_transport(RingGroup& g, longattn_backend backend,
                                                   longattn_ring_transport requested,
                                                   const std::vector<int32_t>& devices) {
#if LONGATTN_HAVE_CUDA
  if (backend == LONGATTN_BACKEND_CUDA) return make_cuda_ring_transport(g, requested, devices);
#else
  (void)devices;
#endif
  // CPU and Vulkan ranks exchange through host memory (Backend::send_to and its CPU override)
  LONGATTN_RETURN_IF(requested == LONGATTN_RING_TRANSPORT_PEER || requested == LONGATTN_RING_TRANSPORT_NCCL,
                     LONGATTN_ERROR_UNSUPPORTED,
                     std::string("options.ring_transport=LONGATTN_RING_TRANSPORT_") + transport_name(requested) +
                         " needs the CUDA backend; this ring runs on backend " + std::to_string(backend) +
                         ", whose ranks exchange through host memory (AUTO or HOST_STAGED)");
  return make_backend_transport(g, LONGATTN_RING_TRANSPORT_HOST_STAGED);
}

}  // namespace longattn
