// Scratch memory in a backend's memory space, owned by a context and reused across calls:
// a forward call allocates only when it needs a larger buffer than any earlier call did.
#pragma once

#include <cstddef>
#include <vector>

#include "backend.hpp"

namespace longattn {

class Workspace {
 public:
  explicit Workspace(Backend& backend) : backend_(backend) {}
  ~Workspace() { release(); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  // Buffer number `slot` with at least `bytes` bytes (contents undefined). Slots are chosen by the
  // caller (an algorithm numbers its buffers 0, 1, 2 …); a pointer stays valid until the same slot
  // is asked for with more bytes, or the workspace is released.
  void* get(size_t slot, size_t bytes) {
    if (slot >= bufs_.size()) bufs_.resize(slot + 1);
    Buf& b = bufs_[slot];
    if (b.bytes < bytes) {
      if (b.ptr) backend_.free(b.ptr);
      b.ptr = nullptr;
      b.bytes = 0;
      b.ptr = backend_.alloc(bytes);
      b.bytes = bytes;
    }
    return b.ptr;
  }
  template <class T>
  T* get(size_t slot, size_t count) { return static_cast<T*>(get(slot, count * sizeof(T))); }

  size_t bytes_held() const {
    size_t n = 0;
    for (const Buf& b : bufs_) n += b.bytes;
    return n;
  }
  void release() {
    for (Buf& b : bufs_)
      if (b.ptr) backend_.free(b.ptr);
    bufs_.clear();
  }

 private:
  struct Buf {
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  Backend& backend_;
  std::vector<Buf> bufs_;
};

}  // namespace longattn
