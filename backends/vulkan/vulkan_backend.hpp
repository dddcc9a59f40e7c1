// The Vulkan implementation of the primitive interface (src/backend.hpp).
//
// Pointers in this backend's memory space are buffer device addresses (see vk_device.hpp): alloc()
// returns one, cast to void*, and core code may add byte offsets to it. Work is recorded into the
// context's command stream and submitted when the host needs a result (download, synchronize);
// see README.md for the synchronization contract.
#pragma once

#include <memory>
#include <string>

#include "backend.hpp"
#include "vk_device.hpp"
#include "vk_coopmat_layout.hpp"
#include "vk_stream.hpp"

namespace longattn::vk {

// Use of the cooperative-matrix attend kernel (environment LONGATTN_VULKAN_COOPMAT, read when the
// backend is created: "0" = off, "force" = whenever the call is eligible, else automatic). A
// switch for tests and benchmarks; results agree within the f16 tolerance either way.
enum class CoopmatMode { off, automatic, force };

// Use of the decode kernel (environment LONGATTN_VULKAN_DECODE, read when the backend is created:
// "0" = off, "force" = whenever the call is eligible, "force_shared" = likewise with the score
// reduction through shared memory even where subgroup shuffles exist, else automatic: calls with
// few query rows per KV head). Switches for tests and benchmarks; results agree within the
// tolerances either way.
enum class DecodeMode { off, automatic, force, force_shared };

// The decode kernel's choices, fixed for tests and benchmarks; 0 = chosen for the device and the
// call. Read from the environment when the backend is created: LONGATTN_VULKAN_DECODE_SPLITS (key
// splits per work item; more splits than key steps leave some empty), LONGATTN_VULKAN_DECODE_KEYS
// (keys per lane and step), LONGATTN_VULKAN_DECODE_HEADS (at most this many KV heads per
// workgroup), LONGATTN_VULKAN_DECODE_PREFETCH (0: no loads ahead of the arithmetic).
struct DecodeTuning {
  int64_t splits = 0;
  int32_t keys = 0;
  int32_t heads = 0;
  bool prefetch = true;
  bool loads_only = false;  // measurement only: the kernel's loads without its arithmetic (wrong output)
};

class VulkanBackend final : public Backend {
 public:
  explicit VulkanBackend(std::shared_ptr<Device> device);
  ~VulkanBackend() override;

  longattn_backend kind() const override { return LONGATTN_BACKEND_VULKAN; }
  std::string device_name() const override { return device_->info().name; }

  void* alloc(size_t bytes) override;
  void free(void* p) override;
  void upload(void* dst, const void* src_host, size_t bytes, void* stream) override;
  void download(void* dst_host, const void* src, size_t bytes, void* stream) override;
  void copy(void* dst, const void* src, size_t bytes, void* stream) override;
  void synchronize(void* stream) override;
  size_t scratch_bytes() const override { return scratch_bytes_; }
  // Additive mask, ALiBi, sinks and Q8_0/Q4_0 K/V, in the portable attend kernel.
  bool supports_extras() const override { return true; }
  bool supports_tail_keys() const override { return true; }

  void attend(const AttendArgs& a) override;
  void state_init(RunningState& s, int64_t batch, int32_t heads, int64_t rows, int32_t dv,
                  void* stream) override;
  void state_finish(const RunningState& s, int64_t batch, int32_t heads, int64_t rows, int32_t dv,
                    const View& out, const View& lse, void* stream) override;
  void merge(const View& a, const View& lse_a, const View& b, const View& lse_b, const View& out,
             const View& lse_out, void* stream) override;
  void lsh_codes(const View& x, const float* G, int32_t r, const float* center, uint16_t* codes,
                 void* stream) override;
  void counting_sort(const uint16_t* codes, int64_t n_seg, int64_t n, int32_t r, int32_t* perm,
                     void* stream) override;
  // In device memory (shaders/index_ops.comp): HYPER's sample rows and query block labels never
  // travel through the host, so a HYPER call needs no wait before its end.
  void gather_i32(int32_t* dst, const int32_t* src, const int32_t* index, int64_t n_seg, int64_t n_src,
                  int64_t n_index, void* stream) override;
  void segment_labels(int32_t* dst, const int64_t* offsets, int32_t n_seg, int64_t copies,
                      void* stream) override;

  Device& device() { return *device_; }
  CoopmatMode coopmat_mode() const { return coopmat_mode_; }
  DecodeMode decode_mode() const { return decode_mode_; }
  const DecodeTuning& decode_tuning() const { return decode_tuning_; }
  void set_decode_tuning(const DecodeTuning& t) { decode_tuning_ = t; }  // benchmarks
  // Dispatches of the decode kernel recorded so far (tests check that it ran).
  int64_t decode_dispatches() const { return decode_dispatches_; }
  void count_decode_dispatch() { ++decode_dispatches_; }
  CommandStream& stream() { return stream_; }
  // The device's cooperative-matrix fragment layout, probed on first use (one small dispatch and a
  // wait); unknown where the device has no cooperative matrices or its layout does not fit the
  // model of vk_coopmat_layout.hpp.
  const CoopmatLayout& coopmat_layout();
  // The same for the KHR form of the matrices (attend_coopmat_khr); known = false where the device
  // has no VK_KHR_cooperative_matrix.
  const CoopmatLayout& coopmat_layout_khr();

  // Backend-internal scratch of at least `bytes` (contents undefined), valid until the next call.
  uint64_t scratch(size_t bytes);

  // Imports a runtime's buffer range (longattn_vulkan_buffer_import).
  uint64_t import(VkBuffer buffer, VkDeviceSize offset, VkDeviceSize size) {
    return device_->import(buffer, offset, size);
  }

 private:
  std::shared_ptr<Device> device_;
  CommandStream stream_;
  CoopmatMode coopmat_mode_ = CoopmatMode::automatic;
  DecodeMode decode_mode_ = DecodeMode::automatic;
  DecodeTuning decode_tuning_;
  int64_t decode_dispatches_ = 0;
  uint64_t scratch_ = 0;
  size_t scratch_bytes_ = 0;
  bool coopmat_layout_probed_ = false, coopmat_layout_khr_probed_ = false;
  CoopmatLayout coopmat_layout_, coopmat_layout_khr_;
  CoopmatLayout probe_coopmat_layout(const char* shader);
};

// attend, in vulkan_attend.cpp.
void record_attend(VulkanBackend& backend, const AttendArgs& a);

inline uint64_t addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

}  // namespace longattn::vk
