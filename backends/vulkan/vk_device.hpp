// A logical Vulkan device shared by every context on the same physical device: queue, memory,
// the table that maps device addresses back to buffers, and compiled pipelines.
//
// Memory representation. Every tensor address the backend hands out or accepts is a Vulkan
// buffer device address (vkGetBufferDeviceAddress), cast to void*. Core code adds byte offsets to
// it exactly as it would to a CUDA pointer; shaders dereference it through GL_EXT_buffer_reference.
// For transfers (vkCmdCopyBuffer) an address is resolved back to (VkBuffer, offset) through the
// allocation table: the allocation with the largest start address ≤ the address.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "vk_instance.hpp"

namespace longattn::vk {

// A runtime's own device, handed to longattn (see longattn_vulkan.h). Not owned.
struct ExternalDevice {
  PFN_vkGetInstanceProcAddr get_instance_proc_addr = nullptr;
  VkInstance instance = VK_NULL_HANDLE;
  VkPhysicalDevice physical_device = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  uint32_t queue_family = 0;
  uint32_t queue_index = 0;
  bool shader_float16_enabled = false;  // what the runtime enabled at device creation
  bool storage_16bit_enabled = false;
};

// A host-visible, host-coherent, persistently mapped buffer (staging).
struct HostBuffer {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  void* mapped = nullptr;
  VkDeviceSize size = 0;
};

// A device-local buffer owned by longattn (scratch rings of a command stream).
struct DeviceBuffer {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  uint64_t address = 0;
  VkDeviceSize size = 0;
};

struct Resolved {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceSize offset = 0;     // of the address inside buffer
  VkDeviceSize available = 0;  // bytes from the address to the end of the allocation
};

class Device {
 public:
  // The shared device of usable physical device `index` (Instance::devices() order). Throws
  // Error(BACKEND_UNAVAILABLE) for a bad index, Error(DEVICE/OUT_OF_MEMORY) when creation fails.
  static std::shared_ptr<Device> open(int32_t index);
  // Wraps a runtime's device (not destroyed by longattn). Throws like open().
  static std::shared_ptr<Device> adopt(const ExternalDevice& ext);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const DeviceFunctions& fn() const { return fn_; }
  VkDevice handle() const { return device_; }
  const PhysicalDeviceInfo& info() const { return info_; }

  // Submits one command buffer under the queue lock (queues need external synchronization).
  VkResult submit(VkCommandBuffer cmd, VkFence fence);

  // A device lost once stays lost: every later call fails with LONGATTN_ERROR_DEVICE.
  void mark_lost() { lost_.store(true); }
  void throw_if_lost() const;

  // ---- memory ----
  uint64_t alloc(size_t bytes);        // device-local; throws OUT_OF_MEMORY with the size
  void release(uint64_t address);      // an address from alloc() or import(); unknown: no-op
  uint64_t import(VkBuffer buffer, VkDeviceSize offset, VkDeviceSize size);
  bool owns(uint64_t address) const;   // is `address` inside a known allocation?
  Resolved resolve(uint64_t address) const;  // throws INVALID_ARGUMENT for a foreign address

  HostBuffer create_host_buffer(VkDeviceSize bytes, bool readback);
  void destroy_host_buffer(HostBuffer& b);
  DeviceBuffer create_device_buffer(VkDeviceSize bytes);
  void destroy_device_buffer(DeviceBuffer& b);

  // ---- pipelines ----
  // Compute pipeline of an embedded shader with specialization constants 0..n−1 (constant 0 is
  // the workgroup size). Created once per (shader, constants) and kept for the device's life.
  // With LONGATTN_VULKAN_PIPELINE_STATS=1 (and a driver with VK_KHR_pipeline_executable_properties)
  // each new pipeline's statistics — registers per lane, local memory, shared memory, … — are
  // printed to stderr as one JSON line.
  VkPipeline pipeline(const std::string& shader, const std::vector<int32_t>& constants);
  VkPipelineLayout layout() const { return layout_; }

 private:
  Device() = default;
  void init(const GlobalFunctions& g, const InstanceFunctions& ifn, VkInstance instance,
            VkDevice device, bool owned, uint32_t queue_index);
  uint32_t memory_type(uint32_t type_bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags prefer) const;
  VkDeviceMemory allocate(const VkMemoryRequirements& req, VkMemoryPropertyFlags want,
                          VkMemoryPropertyFlags prefer, bool device_address);
  void print_statistics(VkPipeline p, const std::string& shader, const std::vector<int32_t>& constants);

  struct Allocation {
    VkBuffer buffer = VK_NULL_HANDLE;
    VkDeviceMemory memory = VK_NULL_HANDLE;  // null for imported buffers
    VkDeviceSize offset = 0;                 // of the start address inside buffer
    VkDeviceSize size = 0;
    int refs = 1;
  };

  DeviceFunctions fn_;
  VkDevice device_ = VK_NULL_HANDLE;
  bool owned_ = true;
  bool pipeline_statistics_ = false;  // enabled at creation on request (see pipeline())
  PhysicalDeviceInfo info_;
  VkPhysicalDeviceMemoryProperties memory_props_{};
  VkQueue queue_ = VK_NULL_HANDLE;
  std::mutex queue_mutex_;
  std::atomic<bool> lost_{false};

  mutable std::mutex alloc_mutex_;
  std::map<uint64_t, Allocation> allocations_;  // by start address

  std::mutex pipeline_mutex_;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  VkPipelineCache cache_ = VK_NULL_HANDLE;
  std::map<std::string, VkShaderModule> modules_;
  std::map<std::pair<std::string, std::vector<int32_t>>, VkPipeline> pipelines_;
};

// Bytes of push constants every pipeline takes: the address of its argument block.
constexpr uint32_t kPushConstantBytes = 8;

}  // namespace longattn::vk
