// Ring sends through NCCL: one communicator rank per ring rank (ncclCommInitAll over the ring's
// devices, one process driving them all), and per exchange one NCCL group holding every rank's
// ncclSend and the matching ncclRecv, each on its rank's copy stream. A receive completes on the
// receiver's copy stream (lands_on_receiver), which the executor orders its compute after.
// NCCL is loaded at run time (nccl_loader.hpp).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "nccl_loader.hpp"
#include "ring_transport_cuda.hpp"

namespace longattn::cuda {
namespace {

std::string device_list(const std::vector<int32_t>& devices) {
  std::string s = "{";
  for (size_t i = 0; i < devices.size(); ++i) s += (i ? ", " : "") + std::to_string(devices[i]);
  return s + "}";
}

class NcclTransport final : public RingTransport {
 public:
  NcclTransport(RingGroup& g, const std::vector<int32_t>& devices) : g_(g), api_(nccl()) {
    comms_.assign(devices.size(), nullptr);
    int previous = 0;
    check(cudaGetDevice(&previous), "cudaGetDevice");
    const int r = api_.CommInitAll(comms_.data(), int(devices.size()), devices.data());
    cudaSetDevice(previous);  // NCCL may leave another device current
    if (r != kNcclSuccess) {
      comms_.clear();  // not valid after a failed ncclCommInitAll
      std::vector<int32_t> sorted = devices;
      std::sort(sorted.begin(), sorted.end());
      const bool shared = std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end();
      const std::string what = "ncclCommInitAll over CUDA devices " + device_list(devices) + " (" + api_.path +
                               ", NCCL " + std::to_string(api_.version) + ")";
      if (shared)
        throw Error(LONGATTN_ERROR_UNSUPPORTED,
                    "NCCL transport: " + nccl_error(api_, what.c_str(), r) +
                        ". NCCL runs one rank per GPU: virtual ranks (LONGATTN_CONTEXT_RING_VIRTUAL) need "
                        "LONGATTN_RING_TRANSPORT_PEER or _HOST_STAGED");
      throw Error(LONGATTN_ERROR_DEVICE, "NCCL transport: " + nccl_error(api_, what.c_str(), r));
    }
  }

  ~NcclTransport() override {
    int previous = 0;
    const bool have_previous = cudaGetDevice(&previous) == cudaSuccess;
    for (NcclCommHandle c : comms_)
      if (c) api_.CommDestroy(c);
    if (have_previous) cudaSetDevice(previous);
  }
  NcclTransport(const NcclTransport&) = delete;
  NcclTransport& operator=(const NcclTransport&) = delete;

  longattn_ring_transport kind() const override { return LONGATTN_RING_TRANSPORT_NCCL; }
  bool lands_on_receiver() const override { return true; }

  void begin_exchange() override { ok(api_.GroupStart(), "ncclGroupStart", nullptr); }
  void end_exchange() override {
    int previous = 0;
    check(cudaGetDevice(&previous), "cudaGetDevice");
    const int r = api_.GroupEnd();
    cudaSetDevice(previous);  // NCCL may leave another device current
    ok(r, "ncclGroupEnd", nullptr);
  }

  void send(int32_t from, int32_t to, void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    NcclCommHandle cf = comms_[size_t(from)], ct = comms_[size_t(to)];
    ok(api_.Send(src, bytes, kNcclUint8, to, cf, static_cast<cudaStream_t>(g_.rank(from).copy)), "ncclSend", cf);
    ok(api_.Recv(dst, bytes, kNcclUint8, from, ct, static_cast<cudaStream_t>(g_.rank(to).copy)), "ncclRecv", ct);
  }

 private:
  void ok(int result, const char* what, NcclCommHandle comm) const {
    if (result != kNcclSuccess) throw Error(LONGATTN_ERROR_DEVICE, "NCCL transport: " + nccl_error(api_, what, result, comm));
  }

  RingGroup& g_;
  const NcclApi& api_;
  std::vector<NcclCommHandle> comms_;  // comms_[r]: NCCL rank r on the device of ring rank r
};

}  // namespace

std::unique_ptr<RingTransport> make_nccl_transport(RingGroup& g, const std::vector<int32_t>& devices) {
  return std::make_unique<NcclTransport>(g, devices);
}

}  // namespace longattn::cuda
