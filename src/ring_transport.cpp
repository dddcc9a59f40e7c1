// The default ring transport: a send between two backends staged through host memory. Correct
// for every backend (it only uses download/upload/synchronize); a backend with a direct path
// (CUDA peer copies, or one memcpy between CPU ranks) overrides Backend::send_to.
#include <memory>
#include <new>

#include "backend.hpp"
#include "error.hpp"

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

}  // namespace longattn
