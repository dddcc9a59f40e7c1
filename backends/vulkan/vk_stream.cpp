// Command recording, staging transfers and flushes of one context.
#include "vk_stream.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "error.hpp"

namespace longattn::vk {
namespace {

constexpr VkDeviceSize kStagingBytes = VkDeviceSize(16) << 20;  // per direction
constexpr VkDeviceSize kArgsRingBytes = VkDeviceSize(1) << 20;
constexpr VkDeviceSize kArgsAlignment = 64;
constexpr VkDeviceSize kUpdateBufferMax = 65536;  // vkCmdUpdateBuffer limit per call
constexpr uint32_t kProfiledCommands = 1024;       // per flush; later commands go unprofiled
// Fence polling before a blocking wait, on GPUs (a CPU device needs the cores it would spin on).
// H100, NVIDIA driver: polling returned 15–100 µs earlier than a blocked wait.
constexpr uint32_t kSpinUsGpu = 1000;

VkDeviceSize round_up(VkDeviceSize x, VkDeviceSize m) { return (x + m - 1) / m * m; }

using Clock = std::chrono::steady_clock;
double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

CommandStream::CommandStream(std::shared_ptr<Device> device) : device_(std::move(device)) {
  const auto& fn = device_->fn();
  VkCommandPoolCreateInfo pi{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pi.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pi.queueFamilyIndex = device_->info().compute_queue_family;
  check(fn.vkCreateCommandPool(device_->handle(), &pi, nullptr, &pool_), "vkCreateCommandPool");
  try {
    VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = pool_;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    check(fn.vkAllocateCommandBuffers(device_->handle(), &ai, &cmd_), "vkAllocateCommandBuffers");
    VkFenceCreateInfo fi{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    check(fn.vkCreateFence(device_->handle(), &fi, nullptr, &fence_), "vkCreateFence");
    args_ring_ = device_->create_device_buffer(kArgsRingBytes);
    spin_us_ = device_->info().is_gpu() ? kSpinUsGpu : 0;
    if (const char* spin = std::getenv("LONGATTN_VULKAN_SPIN_US")) spin_us_ = uint32_t(std::max(0, std::atoi(spin)));
    const char* profile = std::getenv("LONGATTN_VULKAN_PROFILE");
    if (profile && std::strcmp(profile, "1") == 0 && device_->info().timestamp_valid_bits > 0) {
      VkQueryPoolCreateInfo qi{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
      qi.queryType = VK_QUERY_TYPE_TIMESTAMP;
      qi.queryCount = 2 * kProfiledCommands;
      check(fn.vkCreateQueryPool(device_->handle(), &qi, nullptr, &queries_), "vkCreateQueryPool");
    }
  } catch (...) {
    if (fence_) fn.vkDestroyFence(device_->handle(), fence_, nullptr);
    fn.vkDestroyCommandPool(device_->handle(), pool_, nullptr);
    throw;
  }
}

CommandStream::~CommandStream() {
  try {
    if (recording_) flush();
  } catch (...) {
    // destruction cannot report; a lost device is already marked
  }
  const auto& fn = device_->fn();
  for (uint64_t a : releases_) device_->release(a);
  device_->destroy_host_buffer(upload_staging_);
  device_->destroy_host_buffer(download_staging_);
  device_->destroy_device_buffer(args_ring_);
  if (queries_) fn.vkDestroyQueryPool(device_->handle(), queries_, nullptr);
  fn.vkDestroyFence(device_->handle(), fence_, nullptr);
  fn.vkDestroyCommandPool(device_->handle(), pool_, nullptr);  // frees cmd_
}

void CommandStream::begin() {
  device_->throw_if_lost();
  if (recording_) return;
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(device_->fn().vkBeginCommandBuffer(cmd_, &bi), "vkBeginCommandBuffer");
  recording_ = true;
  need_barrier_ = false;
  if (queries_) device_->fn().vkCmdResetQueryPool(cmd_, queries_, 0, 2 * kProfiledCommands);
  queries_used_ = 0;
  labels_.clear();
}

void CommandStream::stamp_begin(const char* label) {
  if (!queries_ || queries_used_ + 2 > 2 * kProfiledCommands) return;
  labels_.emplace_back(label);
  device_->fn().vkCmdWriteTimestamp(cmd_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_, queries_used_++);
}

void CommandStream::stamp_end() {
  if (!queries_ || queries_used_ % 2 == 0) return;
  device_->fn().vkCmdWriteTimestamp(cmd_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_, queries_used_++);
}

void CommandStream::read_profile() {
  if (!queries_ || queries_used_ == 0) return;
  std::vector<uint64_t> ticks(queries_used_);
  const VkResult r = device_->fn().vkGetQueryPoolResults(device_->handle(), queries_, 0, queries_used_,
                                                          ticks.size() * sizeof(uint64_t), ticks.data(),
                                                          sizeof(uint64_t), VK_QUERY_RESULT_64_BIT);
  if (r == VK_SUCCESS) {
    const uint32_t bits = device_->info().timestamp_valid_bits;
    const uint64_t mask = bits >= 64 ? ~uint64_t(0) : (uint64_t(1) << bits) - 1;
    const double ns_per_tick = device_->info().timestamp_period_ns;
    for (size_t i = 0; i + 1 < ticks.size(); i += 2)
      profile_.push_back({labels_[i / 2], double((ticks[i + 1] - ticks[i]) & mask) * ns_per_tick * 1e-6});
  }
  queries_used_ = 0;
  labels_.clear();
}

std::vector<CommandStream::ProfileEntry> CommandStream::take_profile() {
  std::vector<ProfileEntry> out;
  out.swap(profile_);
  return out;
}

void CommandStream::barrier() {
  if (!need_barrier_) return;
  VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                     VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  const VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  device_->fn().vkCmdPipelineBarrier(cmd_, stages, stages, 0, 1, &mb, 0, nullptr, 0, nullptr);
  need_barrier_ = false;
}

void CommandStream::dispatch(VkPipeline pipeline, const void* args, size_t bytes, uint64_t groups,
                             const char* label) {
  if (groups == 0) return;
  const PhysicalDeviceInfo& info = device_->info();
  const uint64_t gx = std::min<uint64_t>(groups, info.max_workgroup_count[0]);
  const uint64_t gy = (groups + gx - 1) / gx;
  if (gy > info.max_workgroup_count[1])
    throw Error(LONGATTN_ERROR_UNSUPPORTED, "Vulkan: " + std::to_string(groups) +
                                                " workgroups exceed the device's dispatch limits");
  const VkDeviceSize size = round_up(bytes, 4);
  const VkDeviceSize need = round_up(size, kArgsAlignment);
  if (args_used_ + need > args_ring_.size) {
    flush();
    if (need > args_ring_.size) {
      device_->destroy_device_buffer(args_ring_);
      args_ring_ = device_->create_device_buffer(std::max(need, 2 * args_ring_.size));
    }
  }
  begin();
  const auto& fn = device_->fn();
  const VkDeviceSize offset = args_used_;
  args_used_ += need;
  // The block goes to a ring region no recorded command has used since the last flush, so it
  // needs no barrier before the update; the barrier after it also orders the previous command.
  const auto* src = static_cast<const uint8_t*>(args);
  for (VkDeviceSize done = 0; done < size; done += kUpdateBufferMax) {
    const VkDeviceSize chunk = std::min(kUpdateBufferMax, size - done);
    if (done + chunk <= bytes) {
      fn.vkCmdUpdateBuffer(cmd_, args_ring_.buffer, offset + done, chunk, src + done);
    } else {  // last chunk of a block whose size is not a multiple of 4: pad with zeros
      std::vector<uint8_t> padded(size_t(chunk), 0);
      std::memcpy(padded.data(), src + done, size_t(bytes - done));
      fn.vkCmdUpdateBuffer(cmd_, args_ring_.buffer, offset + done, chunk, padded.data());
    }
  }
  need_barrier_ = true;
  barrier();
  const uint64_t address = args_ring_.address + offset;
  fn.vkCmdBindPipeline(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
  fn.vkCmdPushConstants(cmd_, device_->layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0, kPushConstantBytes, &address);
  stamp_begin(label);
  fn.vkCmdDispatch(cmd_, uint32_t(gx), uint32_t(gy), 1);
  stamp_end();
  need_barrier_ = true;
}

void CommandStream::copy(uint64_t dst, uint64_t src, size_t bytes) {
  if (bytes == 0) return;
  const Resolved d = device_->resolve(dst), s = device_->resolve(src);
  if (bytes > d.available || bytes > s.available)
    throw Error(LONGATTN_ERROR_INVALID_ARGUMENT,
                "Vulkan: copy of " + std::to_string(bytes) + " bytes runs past the end of a buffer");
  begin();
  barrier();
  VkBufferCopy region{s.offset, d.offset, bytes};
  stamp_begin("copy");
  device_->fn().vkCmdCopyBuffer(cmd_, s.buffer, d.buffer, 1, &region);
  stamp_end();
  need_barrier_ = true;
}

void CommandStream::fill(uint64_t dst, size_t bytes, uint32_t value) {
  if (bytes == 0) return;
  const Resolved d = device_->resolve(dst);
  if (bytes > d.available || bytes % 4 != 0 || d.offset % 4 != 0)
    throw Error(LONGATTN_ERROR_INTERNAL, "Vulkan: fill of " + std::to_string(bytes) + " bytes is misaligned or too long");
  begin();
  barrier();
  device_->fn().vkCmdFillBuffer(cmd_, d.buffer, d.offset, bytes, value);
  need_barrier_ = true;
}

void CommandStream::upload(uint64_t dst, const void* host, size_t bytes) {
  if (bytes == 0) return;
  const Resolved d = device_->resolve(dst);
  if (bytes > d.available)
    throw Error(LONGATTN_ERROR_INVALID_ARGUMENT,
                "Vulkan: upload of " + std::to_string(bytes) + " bytes runs past the end of the buffer");
  if (!upload_staging_.buffer) upload_staging_ = device_->create_host_buffer(kStagingBytes, false);
  const auto* src = static_cast<const uint8_t*>(host);
  size_t done = 0;
  while (done < bytes) {
    if (upload_used_ >= upload_staging_.size) flush();
    const size_t chunk = size_t(std::min<VkDeviceSize>(bytes - done, upload_staging_.size - upload_used_));
    std::memcpy(static_cast<uint8_t*>(upload_staging_.mapped) + upload_used_, src + done, chunk);
    begin();
    barrier();
    VkBufferCopy region{upload_used_, d.offset + done, chunk};
    device_->fn().vkCmdCopyBuffer(cmd_, upload_staging_.buffer, d.buffer, 1, &region);
    need_barrier_ = true;
    upload_used_ = round_up(upload_used_ + chunk, 16);
    done += chunk;
  }
}

void CommandStream::download(void* host, uint64_t src, size_t bytes) {
  if (bytes == 0) {
    flush();
    return;
  }
  const Resolved s = device_->resolve(src);
  if (bytes > s.available)
    throw Error(LONGATTN_ERROR_INVALID_ARGUMENT,
                "Vulkan: download of " + std::to_string(bytes) + " bytes runs past the end of the buffer");
  if (!download_staging_.buffer) download_staging_ = device_->create_host_buffer(kStagingBytes, true);
  auto* dst = static_cast<uint8_t*>(host);
  size_t done = 0;
  while (done < bytes) {
    const size_t chunk = size_t(std::min<VkDeviceSize>(bytes - done, download_staging_.size));
    begin();
    barrier();
    VkBufferCopy region{s.offset + done, 0, chunk};
    device_->fn().vkCmdCopyBuffer(cmd_, s.buffer, download_staging_.buffer, 1, &region);
    need_barrier_ = true;
    flush();
    std::memcpy(dst + done, download_staging_.mapped, chunk);
    done += chunk;
  }
}

void CommandStream::release_after(uint64_t address) {
  if (recording_)
    releases_.push_back(address);
  else
    device_->release(address);
}

void CommandStream::flush() {
  if (!recording_) {
    reset_after_wait();
    return;
  }
  const auto& fn = device_->fn();
  // make every write visible to the host (downloads read the staging buffer after the wait)
  VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
  fn.vkCmdPipelineBarrier(cmd_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                          VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr, 0, nullptr);
  recording_ = false;
  VkResult r = fn.vkEndCommandBuffer(cmd_);
  const Clock::time_point t0 = Clock::now();
  if (r == VK_SUCCESS) r = device_->submit(cmd_, fence_);
  const Clock::time_point t1 = Clock::now();
  if (r == VK_SUCCESS) r = wait();
  const Clock::time_point t2 = Clock::now();
  if (r == VK_ERROR_DEVICE_LOST) device_->mark_lost();
  // Whatever happened, the command buffer starts over; on failure the recorded work is dropped.
  fn.vkResetFences(device_->handle(), 1, &fence_);
  fn.vkResetCommandBuffer(cmd_, 0);
  if (r == VK_SUCCESS && queries_) {
    read_profile();
    profile_.push_back({"host_submit", ms_between(t0, t1)});
    profile_.push_back({"host_wait", ms_between(t1, t2)});
  }
  if (r != VK_SUCCESS) {
    queries_used_ = 0;
    labels_.clear();
    if (r == VK_ERROR_DEVICE_LOST) {
      releases_.clear();  // nothing may be freed safely while the device is in doubt
    } else {
      fn.vkDeviceWaitIdle(device_->handle());
      reset_after_wait();
    }
    upload_used_ = 0;
    args_used_ = 0;
    check(r, "vkQueueSubmit/vkWaitForFences");
  }
  reset_after_wait();
}

VkResult CommandStream::wait() {
  const auto& fn = device_->fn();
  if (spin_us_ > 0) {
    const Clock::time_point until = Clock::now() + std::chrono::microseconds(spin_us_);
    for (;;) {
      const VkResult r = fn.vkGetFenceStatus(device_->handle(), fence_);
      if (r != VK_NOT_READY) return r;
      if (Clock::now() >= until) break;
    }
  }
  return fn.vkWaitForFences(device_->handle(), 1, &fence_, VK_TRUE, UINT64_MAX);
}

void CommandStream::reset_after_wait() {
  for (uint64_t a : releases_) device_->release(a);
  releases_.clear();
  upload_used_ = 0;
  args_used_ = 0;
}

}  // namespace longattn::vk
