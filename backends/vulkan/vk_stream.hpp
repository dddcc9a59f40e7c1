// One context's command recording: a command buffer that collects dispatches and copies until
// the host needs a result, then is submitted and waited for (flush).
//
// Ordering: commands run in recording order; a full compute/transfer memory barrier separates
// every command from the previous one, so a primitive always sees the results of the ones recorded
// before it. Host data is copied into staging memory when a primitive is called (the caller's
// buffer may be reused at once); results reach the host only through download(), which flushes.
//
// Argument blocks (shapes, strides, addresses of one dispatch) are written into a device-local
// ring with vkCmdUpdateBuffer, i.e. they travel inside the command buffer; each shader receives
// the address of its block as its only push constant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vk_device.hpp"

namespace longattn::vk {

class CommandStream {
 public:
  explicit CommandStream(std::shared_ptr<Device> device);
  ~CommandStream();
  CommandStream(const CommandStream&) = delete;
  CommandStream& operator=(const CommandStream&) = delete;

  Device& device() { return *device_; }

  // Records `groups` workgroups of `pipeline` (a 1-D range, laid out over x and y as the device
  // limits require; shaders linearise gl_WorkGroupID and skip ids ≥ groups). `args` is copied
  // into the command buffer; its first 8 bytes must hold the group count. `label` names the
  // dispatch in profiles.
  void dispatch(VkPipeline pipeline, const void* args, size_t bytes, uint64_t groups, const char* label);

  void copy(uint64_t dst, uint64_t src, size_t bytes);
  void fill(uint64_t dst, size_t bytes, uint32_t value);  // bytes a multiple of 4
  void upload(uint64_t dst, const void* host, size_t bytes);
  void download(void* host, uint64_t src, size_t bytes);  // flushes

  // Submits everything recorded and waits for it; then frees what release_after() collected.
  // The wait polls the fence for up to spin_us() microseconds before it blocks in the driver (a
  // blocked wait wakes up late on some systems): 1000 on GPUs, 0 on CPU devices, or the
  // environment's LONGATTN_VULKAN_SPIN_US when the stream is created.
  void flush();
  uint32_t spin_us() const { return spin_us_; }
  void set_spin_us(uint32_t us) { spin_us_ = us; }
  bool has_pending() const { return recording_; }

  // Releases a device allocation once the work recorded so far has completed.
  void release_after(uint64_t address);

  // GPU time of each dispatch and copy, when profiling is on (environment
  // LONGATTN_VULKAN_PROFILE=1 when the stream is created, and a device with timestamps): the
  // entries of every flush since the last call, in recording order, each flush's followed by
  // the host's time in vkQueueSubmit ("host_submit") and in the wait ("host_wait"). For benchmarks.
  struct ProfileEntry {
    std::string label;
    double ms;
  };
  std::vector<ProfileEntry> take_profile();

 private:
  void begin();
  void barrier();
  VkResult wait();  // for the submitted fence
  void reset_after_wait();
  void stamp_begin(const char* label);  // timestamps around one command (profiling)
  void stamp_end();
  void read_profile();

  std::shared_ptr<Device> device_;
  VkCommandPool pool_ = VK_NULL_HANDLE;
  VkCommandBuffer cmd_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  bool recording_ = false;     // cmd_ is begun and holds commands not yet submitted
  bool need_barrier_ = false;  // a command was recorded since the last barrier

  HostBuffer upload_staging_, download_staging_;
  VkDeviceSize upload_used_ = 0;
  DeviceBuffer args_ring_;
  VkDeviceSize args_used_ = 0;
  std::vector<uint64_t> releases_;

  uint32_t spin_us_ = 0;

  VkQueryPool queries_ = VK_NULL_HANDLE;  // 2 timestamps per profiled command
  uint32_t queries_used_ = 0;
  std::vector<std::string> labels_;       // of the commands recorded since the last flush
  std::vector<ProfileEntry> profile_;
};

}  // namespace longattn::vk
