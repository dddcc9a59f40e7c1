// The CUDA backend: device discovery, memory and transfers, and the Backend object that routes
// each primitive to its kernels. Every call makes the backend's device current for its duration
// and restores the caller's device afterwards (runtimes often drive several GPUs from one
// thread). A null stream means the backend's own stream, which is ordered with the legacy
// default stream so that the caller's earlier cudaMemcpy calls are visible.
#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <vector>

#include "backend.hpp"
#include "cuda_check.hpp"
#include "cuda_internal.hpp"

namespace longattn {
namespace cuda {

void* ScratchPool::get(size_t slot, size_t bytes) {
  if (slot >= bufs_.size()) bufs_.resize(slot + 1);
  Buf& b = bufs_[slot];
  if (b.bytes < bytes) {
    if (b.ptr) cudaFree(b.ptr);  // implicitly waits for work that may still use it
    b.ptr = nullptr;
    b.bytes = 0;
    check(cudaMalloc(&b.ptr, bytes), ("cudaMalloc(" + std::to_string(bytes) + " bytes of scratch)").c_str());
    b.bytes = bytes;
  }
  return b.ptr;
}

void ScratchPool::release() {
  for (Buf& b : bufs_)
    if (b.ptr) cudaFree(b.ptr);
  bufs_.clear();
}

namespace {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int32_t device) {
    const int count = cuda_device_count();
    if (device < 0 || device >= count)
      throw Error(LONGATTN_ERROR_BACKEND_UNAVAILABLE,
                  "CUDA device " + std::to_string(device) + " not present (" + std::to_string(count) + " found)");
    dev_.device = device;
    DeviceGuard guard(device);
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    dev_.name = prop.name;
    dev_.sm_count = prop.multiProcessorCount;
    dev_.cc_major = prop.major;
    dev_.cc_minor = prop.minor;
    dev_.max_smem_optin = int(prop.sharedMemPerBlockOptin);
    if (prop.major < 8)
      throw Error(LONGATTN_ERROR_BACKEND_UNAVAILABLE,
                  "CUDA device " + std::to_string(device) + " (" + dev_.name + ") has compute capability " +
                      std::to_string(prop.major) + "." + std::to_string(prop.minor) + "; 8.0 or newer is required");
    check(cudaStreamCreate(&stream_), "cudaStreamCreate");
  }

  ~CudaBackend() override {
    int previous = 0;
    const bool have_previous = cudaGetDevice(&previous) == cudaSuccess;
    cudaSetDevice(dev_.device);
    scratch_.release();
    if (stream_) {
      cudaStreamSynchronize(stream_);
      cudaStreamDestroy(stream_);
    }
    if (have_previous) cudaSetDevice(previous);
  }

  longattn_backend kind() const override { return LONGATTN_BACKEND_CUDA; }
  std::string device_name() const override { return dev_.name; }

  void* alloc(size_t bytes) override {
    DeviceGuard guard(dev_.device);
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes == 0 ? 1 : bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();  // allocation failures are not sticky; clear the error state
      throw Error(status_of(e), "CUDA cudaMalloc(" + std::to_string(bytes) + " bytes) on device " +
                                    std::to_string(dev_.device) + ": " + cudaGetErrorString(e));
    }
    return p;
  }
  void free(void* p) override {
    if (!p) return;
    DeviceGuard guard(dev_.device);
    cudaFree(p);
  }
  void upload(void* dst, const void* src_host, size_t bytes, void* stream) override {
    if (bytes == 0) return;
    DeviceGuard guard(dev_.device);
    check(cudaMemcpyAsync(dst, src_host, bytes, cudaMemcpyHostToDevice, pick(stream)), "cudaMemcpyAsync(host to device)");
  }
  void download(void* dst_host, const void* src, size_t bytes, void* stream) override {
    if (bytes == 0) return;
    DeviceGuard guard(dev_.device);
    check(cudaMemcpyAsync(dst_host, src, bytes, cudaMemcpyDeviceToHost, pick(stream)), "cudaMemcpyAsync(device to host)");
    check(cudaStreamSynchronize(pick(stream)), "cudaStreamSynchronize after download");
  }
  void copy(void* dst, const void* src, size_t bytes, void* stream) override {
    if (bytes == 0) return;
    DeviceGuard guard(dev_.device);
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, pick(stream)), "cudaMemcpyAsync(device to device)");
  }
  void synchronize(void* stream) override {
    DeviceGuard guard(dev_.device);
    check(cudaStreamSynchronize(pick(stream)), "cudaStreamSynchronize");
  }

  // Additive mask, ALiBi, sinks and Q8_0 / Q4_0 K/V: the generic kernel (attend_generic.cu).
  bool supports_extras() const override { return true; }
  size_t scratch_bytes() const override { return scratch_.bytes_held(); }

  // ---- ring transport: real streams and events; peer copies through cudaMemcpyPeerAsync ----
  void* stream_create() override {
    DeviceGuard guard(dev_.device);
    cudaStream_t s = nullptr;
    check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    return s;
  }
  void stream_destroy(void* stream) override {
    if (!stream) return;
    DeviceGuard guard(dev_.device);
    cudaStreamDestroy(static_cast<cudaStream_t>(stream));
  }
  void* event_create() override {
    DeviceGuard guard(dev_.device);
    cudaEvent_t e = nullptr;
    check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    return e;
  }
  void event_destroy(void* event) override {
    if (!event) return;
    DeviceGuard guard(dev_.device);
    cudaEventDestroy(static_cast<cudaEvent_t>(event));
  }
  void event_record(void* event, void* stream) override {
    DeviceGuard guard(dev_.device);
    check(cudaEventRecord(static_cast<cudaEvent_t>(event), pick(stream)), "cudaEventRecord");
  }
  void stream_wait_event(void* stream, void* event) override {
    DeviceGuard guard(dev_.device);
    check(cudaStreamWaitEvent(pick(stream), static_cast<cudaEvent_t>(event), 0), "cudaStreamWaitEvent");
  }
  void send_to(Backend& peer, void* dst_on_peer, const void* src, size_t bytes, void* stream) override {
    auto* cuda_peer = dynamic_cast<CudaBackend*>(&peer);
    if (!cuda_peer) {  // another kind of backend: stage through host memory
      Backend::send_to(peer, dst_on_peer, src, bytes, stream);
      return;
    }
    if (bytes == 0) return;
    DeviceGuard guard(dev_.device);
    const int to = cuda_peer->dev_.device;
    if (to == dev_.device) {
      check(cudaMemcpyAsync(dst_on_peer, src, bytes, cudaMemcpyDeviceToDevice, pick(stream)),
            "cudaMemcpyAsync(ring send on one device)");
      return;
    }
    enable_peer_access(to);
    check(cudaMemcpyPeerAsync(dst_on_peer, to, src, dev_.device, bytes, pick(stream)),
          ("cudaMemcpyPeerAsync(device " + std::to_string(dev_.device) + " to " + std::to_string(to) + ")").c_str());
  }

  void attend(const AttendArgs& a) override {
    DeviceGuard guard(dev_.device);
    cuda::attend(a, dev_, scratch_, pick(a.stream));
  }
  void state_init(RunningState& s, int64_t batch, int32_t heads, int64_t rows, int32_t dv,
                  void* stream) override {
    DeviceGuard guard(dev_.device);
    cuda::state_init(s, batch, heads, rows, dv, pick(stream));
  }
  void state_finish(const RunningState& s, int64_t batch, int32_t heads, int64_t rows, int32_t dv,
                    const View& out, const View& lse, void* stream) override {
    DeviceGuard guard(dev_.device);
    cuda::state_finish(s, batch, heads, rows, dv, out, lse, pick(stream));
  }
  void merge(const View& a, const View& lse_a, const View& b, const View& lse_b, const View& out,
             const View& lse_out, void* stream) override {
    DeviceGuard guard(dev_.device);
    cuda::merge(a, lse_a, b, lse_b, out, lse_out, pick(stream));
  }
  void lsh_codes(const View& x, const float* G, int32_t r, const float* center, uint16_t* codes,
                 void* stream) override {
    DeviceGuard guard(dev_.device);
    cuda::lsh_codes(x, G, r, center, codes, pick(stream));
  }
  void counting_sort(const uint16_t* codes, int64_t n_seg, int64_t n, int32_t r, int32_t* perm,
                     void* stream) override {
    DeviceGuard guard(dev_.device);
    cuda::counting_sort(codes, n_seg, n, r, perm, scratch_, pick(stream));
  }
  void gather_i32(int32_t* dst, const int32_t* src, const int32_t* index, int64_t n_seg, int64_t n_src,
                  int64_t n_index, void* stream) override {
    DeviceGuard guard(dev_.device);
    cuda::gather_i32(dst, src, index, n_seg, n_src, n_index, pick(stream));
  }
  void segment_labels(int32_t* dst, const int64_t* offsets, int32_t n_seg, int64_t copies,
                      void* stream) override {
    DeviceGuard guard(dev_.device);
    cuda::segment_labels(dst, offsets, n_seg, copies, pick(stream));
  }

 private:
  cudaStream_t pick(void* stream) const { return stream ? static_cast<cudaStream_t>(stream) : stream_; }

  // Direct NVLink/PCIe copies to `peer` when the devices allow it (once per peer; a device pair
  // without P2P still works: cudaMemcpyPeerAsync then stages through the host).
  void enable_peer_access(int peer) {
    if (peer < 0 || peer >= int(peer_checked_.size())) return;
    if (peer_checked_[size_t(peer)]) return;
    peer_checked_[size_t(peer)] = true;
    int can = 0;
    if (cudaDeviceCanAccessPeer(&can, dev_.device, peer) == cudaSuccess && can) {
      const cudaError_t e = cudaDeviceEnablePeerAccess(peer, 0);
      if (e != cudaSuccess) cudaGetLastError();  // already enabled, or not possible: not an error here
    }
  }

  DeviceProps dev_;
  cudaStream_t stream_ = nullptr;
  ScratchPool scratch_;
  std::vector<bool> peer_checked_ = std::vector<bool>(64, false);
};

}  // namespace
}  // namespace cuda

int32_t cuda_device_count() {
  int count = 0;
  // No driver, no device or a driver too old for this runtime: report none, never fail.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

std::string cuda_device_name(int32_t device) {
  if (device < 0 || device >= cuda_device_count()) return "";
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return prop.name;
}

std::unique_ptr<Backend> make_cuda_backend(int32_t device) {
  return std::make_unique<cuda::CudaBackend>(device);
}

}  // namespace longattn
