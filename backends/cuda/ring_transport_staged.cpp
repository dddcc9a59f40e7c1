// Ring sends staged through pinned host memory, for device pairs without peer access (and, when
// forced, for every pair: on one GPU this runs the same path between virtual ranks).
//
// A send of n bytes from rank a (device A) to rank b (device B) is cut into chunks of at most
// slot_bytes. Chunk i uses pinned buffer s = i % 2 of the lane a → b:
//   a's copy stream:  [wait drained[s]]  device A → pinned[s]  record filled[s]
//   the lane's stream on B:  wait filled[s]  pinned[s] → device B  record drained[s]
// so the download of chunk i + 1 overlaps the upload of chunk i, and a buffer is refilled only
// after its upload finished (drained). At the end a's copy stream waits for the last drained[s]:
// an event recorded on a's copy stream after the send marks the bytes as arrived at b, as with
// peer copies, so the executor's ordering is unchanged. No host synchronization anywhere.
// The pinned buffers are allocated on the first send of a lane and reused; they grow (up to
// kChunkBytes each) only when a larger send arrives.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "ring_transport_cuda.hpp"

namespace longattn::cuda {
namespace {

constexpr size_t kChunkBytes = size_t(4) << 20;   // per pinned buffer: large enough for full DMA rate
constexpr size_t kMinSlotBytes = size_t(64) << 10;

// One direction between two ranks.
struct Lane {
  int from_dev = 0, to_dev = 0;
  cudaStream_t in = nullptr;             // on to_dev: pinned → device copies
  void* pinned[2] = {nullptr, nullptr};  // cudaHostAlloc(portable), slot_bytes each
  size_t slot_bytes = 0;
  cudaEvent_t filled[2] = {nullptr, nullptr};   // on from_dev: device → pinned[s] done
  cudaEvent_t drained[2] = {nullptr, nullptr};  // on to_dev: pinned[s] → device done
  bool used[2] = {false, false};
  int next = 0;

  Lane(int from, int to) : from_dev(from), to_dev(to) {
    try {
      {
        DeviceGuard guard(from_dev);
        for (cudaEvent_t& e : filled) check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
      }
      DeviceGuard guard(to_dev);
      check(cudaStreamCreateWithFlags(&in, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
      for (cudaEvent_t& e : drained) check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    } catch (...) {
      release();
      throw;
    }
  }
  ~Lane() { release(); }
  Lane(const Lane&) = delete;
  Lane& operator=(const Lane&) = delete;

  // Buffers of at least `bytes` (≤ kChunkBytes). Growing waits for the lane's copies in flight.
  void reserve(size_t bytes) {
    if (slot_bytes >= bytes) return;
    size_t want = kMinSlotBytes;
    while (want < bytes) want *= 2;
    want = std::min(want, kChunkBytes);
    if (in) {
      DeviceGuard guard(to_dev);
      check(cudaStreamSynchronize(in), "cudaStreamSynchronize(staging lane)");
    }
    free_pinned();
    for (void*& p : pinned)
      check(cudaHostAlloc(&p, want, cudaHostAllocPortable),
            ("cudaHostAlloc(" + std::to_string(want) + " bytes of pinned ring staging)").c_str());
    slot_bytes = want;
    used[0] = used[1] = false;
  }

 private:
  void free_pinned() {
    for (void*& p : pinned) {
      if (p) cudaFreeHost(p);
      p = nullptr;
    }
    slot_bytes = 0;
  }
  void release() {  // never throws: also runs from destructors
    int previous = 0;
    const bool have_previous = cudaGetDevice(&previous) == cudaSuccess;
    if (cudaSetDevice(to_dev) == cudaSuccess) {
      if (in) cudaStreamSynchronize(in);
      for (cudaEvent_t& e : drained)
        if (e) cudaEventDestroy(e), e = nullptr;
      if (in) cudaStreamDestroy(in), in = nullptr;
    }
    if (cudaSetDevice(from_dev) == cudaSuccess)
      for (cudaEvent_t& e : filled)
        if (e) cudaEventDestroy(e), e = nullptr;
    free_pinned();
    if (have_previous) cudaSetDevice(previous);
    cudaGetLastError();
  }
};

class StagedTransport final : public RingTransport {
 public:
  StagedTransport(RingGroup& g, const std::vector<int32_t>& devices, bool force)
      : g_(g), devices_(devices), n_(devices.size()), direct_(n_ * n_, false), lanes_(n_ * n_) {
    if (!force)
      for (size_t a = 0; a < n_; ++a)
        for (size_t b = 0; b < n_; ++b) direct_[a * n_ + b] = direct_copy_possible(devices_[a], devices_[b]);
  }

  longattn_ring_transport kind() const override { return LONGATTN_RING_TRANSPORT_HOST_STAGED; }

  void send(int32_t from, int32_t to, void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    RingRank& f = g_.rank(from);
    const size_t pair = size_t(from) * n_ + size_t(to);
    if (direct_[pair]) {  // peer access (AUTO): copy engines, no staging
      f.backend->send_to(*g_.rank(to).backend, dst, src, bytes, f.copy);
      return;
    }
    if (!lanes_[pair]) lanes_[pair] = std::make_unique<Lane>(devices_[size_t(from)], devices_[size_t(to)]);
    Lane& L = *lanes_[pair];
    L.reserve(std::min(bytes, kChunkBytes));
    const auto out = static_cast<cudaStream_t>(f.copy);
    const char* s = static_cast<const char*>(src);
    char* d = static_cast<char*>(dst);
    int last = 0;
    for (size_t off = 0; off < bytes;) {
      const size_t n = std::min(L.slot_bytes, bytes - off);
      const int slot = L.next;
      L.next ^= 1;
      {
        DeviceGuard guard(L.from_dev);
        if (L.used[slot]) check(cudaStreamWaitEvent(out, L.drained[slot], 0), "cudaStreamWaitEvent(staging slot free)");
        check(cudaMemcpyAsync(L.pinned[slot], s + off, n, cudaMemcpyDeviceToHost, out),
              "cudaMemcpyAsync(ring send to pinned host)");
        check(cudaEventRecord(L.filled[slot], out), "cudaEventRecord(staging slot filled)");
      }
      {
        DeviceGuard guard(L.to_dev);
        check(cudaStreamWaitEvent(L.in, L.filled[slot], 0), "cudaStreamWaitEvent(staging slot filled)");
        check(cudaMemcpyAsync(d + off, L.pinned[slot], n, cudaMemcpyHostToDevice, L.in),
              "cudaMemcpyAsync(ring send from pinned host)");
        check(cudaEventRecord(L.drained[slot], L.in), "cudaEventRecord(staging slot drained)");
      }
      L.used[slot] = true;
      last = slot;
      off += n;
    }
    DeviceGuard guard(L.from_dev);
    check(cudaStreamWaitEvent(out, L.drained[last], 0), "cudaStreamWaitEvent(staged send landed)");
  }

 private:
  RingGroup& g_;
  std::vector<int32_t> devices_;
  size_t n_;
  std::vector<bool> direct_;                 // [from * n + to]: peer copies instead of staging
  std::vector<std::unique_ptr<Lane>> lanes_;  // [from * n + to], made on the first staged send
};

}  // namespace

std::unique_ptr<RingTransport> make_staged_transport(RingGroup& g, const std::vector<int32_t>& devices, bool force) {
  return std::make_unique<StagedTransport>(g, devices, force);
}

}  // namespace longattn::cuda
