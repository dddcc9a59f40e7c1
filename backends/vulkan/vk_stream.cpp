// Command recording, staging transfers, submissions and waits of one context.
#include "vk_stream.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "error.hpp"

namespace longattn::vk {
namespace {

constexpr VkDeviceSize kStagingBytes = VkDeviceSize(16) << 20;  // per slot (uploads); downloads: one
constexpr VkDeviceSize kArgsRingBytes = VkDeviceSize(1) << 20;  // per slot (grows for larger blocks)
constexpr VkDeviceSize kArgsAlignment = 64;
constexpr VkDeviceSize kUpdateBufferMax = 65536;  // vkCmdUpdateBuffer limit per call
constexpr uint32_t kProfiledCommands = 1024;       // per command buffer; later commands go unprofiled
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
    VkCommandBuffer cmds[kSlots] = {};
    VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = pool_;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = uint32_t(kSlots);
    check(fn.vkAllocateCommandBuffers(device_->handle(), &ai, cmds), "vkAllocateCommandBuffers");
    for (size_t i = 0; i < kSlots; ++i) {
      Slot& s = slots_[i];
      s.cmd = cmds[i];
      VkFenceCreateInfo fi{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
      check(fn.vkCreateFence(device_->handle(), &fi, nullptr, &s.fence), "vkCreateFence");
      s.args = device_->create_device_buffer(kArgsRingBytes);
    }
    spin_us_ = device_->info().is_gpu() ? kSpinUsGpu : 0;
    if (const char* spin = std::getenv("LONGATTN_VULKAN_SPIN_US")) spin_us_ = uint32_t(std::max(0, std::atoi(spin)));
    const char* profile = std::getenv("LONGATTN_VULKAN_PROFILE");
    if (profile && std::strcmp(profile, "1") == 0 && device_->info().timestamp_valid_bits > 0) {
      VkQueryPoolCreateInfo qi{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
      qi.queryType = VK_QUERY_TYPE_TIMESTAMP;
      qi.queryCount = uint32_t(2 * kProfiledCommands * kSlots);
      check(fn.vkCreateQueryPool(device_->handle(), &qi, nullptr, &queries_), "vkCreateQueryPool");
    }
  } catch (...) {
    for (Slot& s : slots_) {
      if (s.fence) fn.vkDestroyFence(device_->handle(), s.fence, nullptr);
      device_->destroy_device_buffer(s.args);
    }
    fn.vkDestroyCommandPool(device_->handle(), pool_, nullptr);
    throw;
  }
}

CommandStream::~CommandStream() {
  try {
    flush("destroy");
  } catch (...) {
    // destruction cannot report; a lost device is already marked
  }
  const auto& fn = device_->fn();
  for (Slot& s : slots_) {
    for (uint64_t a : s.releases) device_->release(a);
    device_->destroy_host_buffer(s.staging);
    device_->destroy_device_buffer(s.args);
    fn.vkDestroyFence(device_->handle(), s.fence, nullptr);
  }
  device_->destroy_host_buffer(download_staging_);
  if (queries_) fn.vkDestroyQueryPool(device_->handle(), queries_, nullptr);
  fn.vkDestroyCommandPool(device_->handle(), pool_, nullptr);  // frees the command buffers
}

uint32_t CommandStream::query_base() const { return uint32_t(cur_) * 2 * kProfiledCommands; }

void CommandStream::begin() {
  device_->throw_if_lost();
  if (recording_) return;
  while (slot().submitted) wait_oldest("slot reuse");  // round robin: the slot is the oldest
  Slot& s = slot();
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(device_->fn().vkBeginCommandBuffer(s.cmd, &bi), "vkBeginCommandBuffer");
  recording_ = true;
  // the first command is ordered after everything submitted earlier (possibly still running)
  need_barrier_ = true;
  if (queries_) device_->fn().vkCmdResetQueryPool(s.cmd, queries_, query_base(), 2 * kProfiledCommands);
  s.queries_used = 0;
  s.labels.clear();
}

void CommandStream::stamp_begin(const char* label) {
  Slot& s = slot();
  if (!queries_ || s.queries_used + 2 > 2 * kProfiledCommands) return;
  s.labels.emplace_back(label);
  device_->fn().vkCmdWriteTimestamp(s.cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_,
                                    query_base() + s.queries_used++);
}

void CommandStream::stamp_end() {
  Slot& s = slot();
  if (!queries_ || s.queries_used % 2 == 0) return;
  device_->fn().vkCmdWriteTimestamp(s.cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_,
                                    query_base() + s.queries_used++);
}

void CommandStream::read_profile(Slot& s) {
  if (!queries_ || s.queries_used == 0) return;
  const uint32_t base = uint32_t(&s - slots_) * 2 * kProfiledCommands;
  std::vector<uint64_t> ticks(s.queries_used);
  const VkResult r = device_->fn().vkGetQueryPoolResults(device_->handle(), queries_, base, s.queries_used,
                                                          ticks.size() * sizeof(uint64_t), ticks.data(),
                                                          sizeof(uint64_t), VK_QUERY_RESULT_64_BIT);
  if (r == VK_SUCCESS) {
    const uint32_t bits = device_->info().timestamp_valid_bits;
    const uint64_t mask = bits >= 64 ? ~uint64_t(0) : (uint64_t(1) << bits) - 1;
    const double ns_per_tick = device_->info().timestamp_period_ns;
    for (size_t i = 0; i + 1 < ticks.size(); i += 2)
      profile_.push_back({s.labels[i / 2], double((ticks[i + 1] - ticks[i]) & mask) * ns_per_tick * 1e-6, ""});
  }
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
  device_->fn().vkCmdPipelineBarrier(slot().cmd, stages, stages, 0, 1, &mb, 0, nullptr, 0, nullptr);
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
  begin();
  if (slot().args_used + need > slot().args.size) {
    // the slot's ring is full: submit it (no wait) and go on in the next slot
    if (slot().args_used > 0) {
      end_and_submit("args ring full");
      begin();
    }
    Slot& s = slot();
    if (need > s.args.size) {  // nothing recorded in this slot uses its ring yet
      DeviceBuffer larger = device_->create_device_buffer(std::max(need, 2 * s.args.size));
      device_->destroy_device_buffer(s.args);
      s.args = larger;
    }
  }
  Slot& s = slot();
  const auto& fn = device_->fn();
  const VkDeviceSize offset = s.args_used;
  s.args_used += need;
  // The block goes to a ring region no command of this slot has used since the slot's last
  // submission completed, so it needs no barrier before the update; the barrier after it also
  // orders the previous command.
  const auto* src = static_cast<const uint8_t*>(args);
  for (VkDeviceSize done = 0; done < size; done += kUpdateBufferMax) {
    const VkDeviceSize chunk = std::min(kUpdateBufferMax, size - done);
    if (done + chunk <= bytes) {
      fn.vkCmdUpdateBuffer(s.cmd, s.args.buffer, offset + done, chunk, src + done);
    } else {  // last chunk of a block whose size is not a multiple of 4: pad with zeros
      std::vector<uint8_t> padded(size_t(chunk), 0);
      std::memcpy(padded.data(), src + done, size_t(bytes - done));
      fn.vkCmdUpdateBuffer(s.cmd, s.args.buffer, offset + done, chunk, padded.data());
    }
  }
  need_barrier_ = true;
  barrier();
  const uint64_t address = s.args.address + offset;
  fn.vkCmdBindPipeline(s.cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
  fn.vkCmdPushConstants(s.cmd, device_->layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0, kPushConstantBytes, &address);
  stamp_begin(label);
  fn.vkCmdDispatch(s.cmd, uint32_t(gx), uint32_t(gy), 1);
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
  device_->fn().vkCmdCopyBuffer(slot().cmd, s.buffer, d.buffer, 1, &region);
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
  device_->fn().vkCmdFillBuffer(slot().cmd, d.buffer, d.offset, bytes, value);
  need_barrier_ = true;
}

void CommandStream::upload(uint64_t dst, const void* host, size_t bytes) {
  if (bytes == 0) return;
  const Resolved d = device_->resolve(dst);
  if (bytes > d.available)
    throw Error(LONGATTN_ERROR_INVALID_ARGUMENT,
                "Vulkan: upload of " + std::to_string(bytes) + " bytes runs past the end of the buffer");
  const auto* src = static_cast<const uint8_t*>(host);
  size_t done = 0;
  while (done < bytes) {
    begin();  // the slot's staging is free once it records (its last submission has completed)
    Slot& s = slot();
    if (!s.staging.buffer) s.staging = device_->create_host_buffer(kStagingBytes, false);
    if (s.staging_used >= s.staging.size) {  // full: submit (no wait), go on in the next slot
      end_and_submit("staging full");
      continue;
    }
    const size_t chunk = size_t(std::min<VkDeviceSize>(bytes - done, s.staging.size - s.staging_used));
    std::memcpy(static_cast<uint8_t*>(s.staging.mapped) + s.staging_used, src + done, chunk);
    barrier();
    VkBufferCopy region{s.staging_used, d.offset + done, chunk};
    device_->fn().vkCmdCopyBuffer(s.cmd, s.staging.buffer, d.buffer, 1, &region);
    need_barrier_ = true;
    s.staging_used = round_up(s.staging_used + chunk, 16);
    done += chunk;
  }
}

void CommandStream::download(void* host, uint64_t src, size_t bytes) {
  if (bytes == 0) {
    flush("download");
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
    // the download staging is only ever used by the submission waited for just below
    const size_t chunk = size_t(std::min<VkDeviceSize>(bytes - done, download_staging_.size));
    begin();
    barrier();
    VkBufferCopy region{s.offset + done, 0, chunk};
    device_->fn().vkCmdCopyBuffer(slot().cmd, s.buffer, download_staging_.buffer, 1, &region);
    need_barrier_ = true;
    flush("download");
    std::memcpy(dst + done, download_staging_.mapped, chunk);
    done += chunk;
  }
}

void CommandStream::release_after(uint64_t address) {
  if (recording_)
    slot().releases.push_back(address);
  else if (!pending_.empty())
    slots_[pending_.back()].releases.push_back(address);  // completes after every earlier one
  else
    device_->release(address);
}

void CommandStream::submit(const char* reason) {
  if (recording_) end_and_submit(reason);
}

void CommandStream::flush(const char* reason) {
  if (recording_) end_and_submit(reason);
  while (!pending_.empty()) wait_oldest(reason);
}

void CommandStream::end_and_submit(const char* reason) {
  Slot& s = slot();
  const auto& fn = device_->fn();
  // make every write visible to the host (downloads read the staging buffer after the wait)
  VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
  fn.vkCmdPipelineBarrier(s.cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                          VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr, 0, nullptr);
  recording_ = false;
  VkResult r = fn.vkEndCommandBuffer(s.cmd);
  const Clock::time_point t0 = Clock::now();
  if (r == VK_SUCCESS) r = device_->submit(s.cmd, s.fence);
  const Clock::time_point t1 = Clock::now();
  if (r != VK_SUCCESS) fail(r, "vkEndCommandBuffer/vkQueueSubmit");
  s.submitted = true;
  s.reason = reason;
  s.submit_ms = ms_between(t0, t1);
  pending_.push_back(cur_);
  cur_ = (cur_ + 1) % kSlots;
}

void CommandStream::wait_oldest(const char* reason) {
  Slot& s = slots_[pending_.front()];
  const auto& fn = device_->fn();
  const Clock::time_point t0 = Clock::now();
  VkResult r = VK_NOT_READY;
  if (spin_us_ > 0) {
    const Clock::time_point until = t0 + std::chrono::microseconds(spin_us_);
    do {
      r = fn.vkGetFenceStatus(device_->handle(), s.fence);
    } while (r == VK_NOT_READY && Clock::now() < until);
  }
  if (r == VK_NOT_READY) r = fn.vkWaitForFences(device_->handle(), 1, &s.fence, VK_TRUE, UINT64_MAX);
  const Clock::time_point t1 = Clock::now();
  if (r != VK_SUCCESS) fail(r, "vkWaitForFences");
  pending_.pop_front();
  retire(s, true);
  if (queries_) profile_.push_back({"host_wait", ms_between(t0, t1), reason});
}

void CommandStream::retire(Slot& s, bool completed) {
  const auto& fn = device_->fn();
  if (completed && queries_) {
    read_profile(s);
    profile_.push_back({"host_submit", s.submit_ms, s.reason});
  }
  s.queries_used = 0;
  s.labels.clear();
  for (uint64_t a : s.releases) device_->release(a);
  s.releases.clear();
  fn.vkResetFences(device_->handle(), 1, &s.fence);
  fn.vkResetCommandBuffer(s.cmd, 0);
  s.submitted = false;
  s.args_used = 0;
  s.staging_used = 0;
}

void CommandStream::fail(VkResult r, const char* what) {
  const auto& fn = device_->fn();
  recording_ = false;
  if (r == VK_ERROR_DEVICE_LOST) {
    device_->mark_lost();
    // nothing may be freed safely while the device is in doubt; every slot starts over
    for (Slot& s : slots_) {
      s.releases.clear();
      retire(s, false);
    }
  } else {
    // the failed command buffer's work is dropped; the rest completes, then every slot starts over
    fn.vkDeviceWaitIdle(device_->handle());
    for (Slot& s : slots_) retire(s, false);
  }
  pending_.clear();
  check(r, what);
  throw Error(LONGATTN_ERROR_INTERNAL, std::string("Vulkan: ") + what + " failed");  // not reached
}

}  // namespace longattn::vk
