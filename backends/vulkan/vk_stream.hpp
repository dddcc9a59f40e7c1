// One context's command recording: command buffers that collect dispatches and copies, submitted
// to the queue in turn, the host waiting only when it needs results.
//
// Ordering: commands run in recording order; a full compute/transfer memory barrier separates
// every command from the previous one (also the first command of a command buffer from the work
// submitted before it), so a primitive always sees the results of the ones recorded before it.
// Host data is copied into staging memory when a primitive is called (the caller's buffer may be
// reused at once); results reach the host only through download(), which waits.
//
// Slots: kSlots command buffers in rotation, each with its fence, its region of the argument ring,
// its upload staging buffer, its timestamp queries and its deferred frees. When the slot being
// recorded runs out of argument ring or staging space, it is submitted without waiting and
// recording goes on in the next slot; the host waits for a slot only when it comes round again
// while still in flight, or when the caller needs results (download, flush). So the device is
// never left idle by a wait that only makes room.
//
// Argument blocks (shapes, strides, addresses of one dispatch) are written into the slot's
// device-local ring with vkCmdUpdateBuffer, i.e. they travel inside the command buffer; each
// shader receives the address of its block as its only push constant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "vk_device.hpp"

namespace longattn::vk {

class CommandStream {
 public:
  static constexpr size_t kSlots = 3;

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
  void download(void* host, uint64_t src, size_t bytes);  // waits

  // Submits everything recorded and waits for every submission; then frees what release_after()
  // collected. `reason` names the flush in profiles. Each wait polls the fence for up to
  // spin_us() microseconds before it blocks in the driver (a blocked wait wakes up late on some
  // systems): 1000 on GPUs, 0 on CPU devices, or the environment's LONGATTN_VULKAN_SPIN_US when
  // the stream is created.
  void flush(const char* reason = "synchronize");
  // Submits everything recorded without waiting for it (recording goes on in the next slot).
  void submit(const char* reason);
  uint32_t spin_us() const { return spin_us_; }
  void set_spin_us(uint32_t us) { spin_us_ = us; }
  bool has_pending() const { return recording_; }
  // Submissions not yet known to be complete.
  size_t in_flight() const { return pending_.size(); }

  // Releases a device allocation once the work recorded or submitted so far has completed.
  void release_after(uint64_t address);

  // GPU time of each dispatch and copy, when profiling is on (environment
  // LONGATTN_VULKAN_PROFILE=1 when the stream is created, and a device with timestamps): the
  // entries of every submission completed since the last call, in recording order, each
  // submission's followed by the host's time in vkQueueSubmit ("host_submit", with the reason
  // of the submission as its note) and by the host's waits for it ("host_wait", with the reason
  // of the wait as its note). For benchmarks.
  struct ProfileEntry {
    std::string label;
    double ms;
    std::string note;
  };
  std::vector<ProfileEntry> take_profile();

 private:
  struct Slot {
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    bool submitted = false;             // in flight: submitted, its fence not yet waited for
    DeviceBuffer args;                  // argument ring
    VkDeviceSize args_used = 0;
    HostBuffer staging;                 // upload staging (created at the first upload)
    VkDeviceSize staging_used = 0;
    std::vector<uint64_t> releases;     // freed when the slot's work has completed
    uint32_t queries_used = 0;          // of its 2·kProfiledCommands timestamps
    std::vector<std::string> labels;    // of its profiled commands
    std::string reason;                 // of its submission
    double submit_ms = 0.0;
  };

  Slot& slot() { return slots_[cur_]; }
  void begin();  // makes slot() recordable: waits for it if it is still in flight
  void barrier();
  void end_and_submit(const char* reason);
  void wait_oldest(const char* reason);  // waits for the oldest submission, then retires it
  // Frees the slot's releases and makes it recordable again; `completed`: its profile is read.
  void retire(Slot& s, bool completed);
  // After a failed submission or wait: every slot starts over (on VK_ERROR_DEVICE_LOST the device
  // is marked lost and nothing is freed), then throws the status of r.
  [[noreturn]] void fail(VkResult r, const char* what);
  void stamp_begin(const char* label);  // timestamps around one command (profiling)
  void stamp_end();
  void read_profile(Slot& s);
  uint32_t query_base() const;

  std::shared_ptr<Device> device_;
  VkCommandPool pool_ = VK_NULL_HANDLE;
  Slot slots_[kSlots];
  size_t cur_ = 0;             // the slot being recorded, or the next to record
  std::deque<size_t> pending_; // submitted slots, oldest first
  bool recording_ = false;     // slot() is begun and holds commands not yet submitted
  bool need_barrier_ = false;  // a command was recorded since the last barrier

  HostBuffer download_staging_;
  uint32_t spin_us_ = 0;

  VkQueryPool queries_ = VK_NULL_HANDLE;  // 2 timestamps per profiled command, per slot
  std::vector<ProfileEntry> profile_;
};

}  // namespace longattn::vk
