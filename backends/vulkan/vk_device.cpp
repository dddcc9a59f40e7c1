// Shared logical devices: creation with the features longattn uses, memory, address table,
// pipelines.
#include "vk_device.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "error.hpp"
#include "vk_shaders.hpp"

namespace longattn::vk {
namespace {

constexpr VkBufferUsageFlags kTensorUsage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                            VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                            VK_BUFFER_USAGE_TRANSFER_DST_BIT |
                                            VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT;
// Allocations are rounded up so that 16-bit elements can be read as whole 32-bit words and
// vector loads never cross the end of a buffer.
constexpr VkDeviceSize kAllocationGranule = 256;

std::mutex g_shared_mutex;
std::map<int32_t, std::weak_ptr<Device>> g_shared_devices;

VkDeviceSize round_up(VkDeviceSize x, VkDeviceSize m) { return (x + m - 1) / m * m; }

bool statistics_requested() {
  const char* e = std::getenv("LONGATTN_VULKAN_PIPELINE_STATS");
  return e && std::strcmp(e, "0") != 0;
}

}  // namespace

std::shared_ptr<Device> Device::open(int32_t index) {
  Instance* inst = Instance::get();
  if (!inst) throw Error(LONGATTN_ERROR_BACKEND_UNAVAILABLE, "Vulkan: no Vulkan 1.2 loader found");
  const auto& devs = inst->devices();
  if (index < 0 || size_t(index) >= devs.size())
    throw Error(LONGATTN_ERROR_BACKEND_UNAVAILABLE,
                "Vulkan: device index " + std::to_string(index) + " out of range (" +
                    std::to_string(devs.size()) + " usable devices)");
  std::lock_guard<std::mutex> lock(g_shared_mutex);
  if (auto existing = g_shared_devices[index].lock()) return existing;

  const PhysicalDeviceInfo& pd = devs[size_t(index)];
  const float priority = 1.0f;
  VkDeviceQueueCreateInfo queue_info{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  queue_info.queueFamilyIndex = pd.compute_queue_family;
  queue_info.queueCount = 1;
  queue_info.pQueuePriorities = &priority;

  VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
  VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  VkPhysicalDeviceCooperativeMatrixFeaturesNV coopmat{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
  VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  f2.pNext = &f11;
  f11.pNext = &f12;
  f2.features.shaderInt64 = VK_TRUE;
  f12.bufferDeviceAddress = VK_TRUE;
  f11.storageBuffer16BitAccess = pd.storage_16bit ? VK_TRUE : VK_FALSE;
  f12.shaderFloat16 = pd.shader_float16 ? VK_TRUE : VK_FALSE;
  std::vector<const char*> extensions;
  if (pd.cooperative_matrix_nv) {
    f12.vulkanMemoryModel = VK_TRUE;
    f12.pNext = &coopmat;
    coopmat.cooperativeMatrix = VK_TRUE;
    extensions.push_back(VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
  }
  VkPhysicalDeviceCooperativeMatrixFeaturesKHR coopmat_khr{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR};
  if (pd.cooperative_matrix_khr) {
    coopmat_khr.cooperativeMatrix = VK_TRUE;
    coopmat_khr.pNext = f12.pNext;
    f12.pNext = &coopmat_khr;
    extensions.push_back(VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME);
  }
  VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR executable_props{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR};
  const bool statistics = pd.pipeline_statistics && statistics_requested();
  if (statistics) {
    executable_props.pipelineExecutableInfo = VK_TRUE;
    executable_props.pNext = f12.pNext;
    f12.pNext = &executable_props;
    extensions.push_back(VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
  }

  VkDeviceCreateInfo info{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  info.pNext = &f2;
  info.queueCreateInfoCount = 1;
  info.pQueueCreateInfos = &queue_info;
  info.enabledExtensionCount = uint32_t(extensions.size());
  info.ppEnabledExtensionNames = extensions.data();
  VkDevice device = VK_NULL_HANDLE;
  check(inst->fn().vkCreateDevice(pd.handle, &info, nullptr, &device), "vkCreateDevice");

  std::shared_ptr<Device> dev(new Device());
  dev->info_ = pd;
  dev->init(inst->global(), inst->fn(), inst->handle(), device, true, 0);
  dev->pipeline_statistics_ = statistics && dev->fn_.vkGetPipelineExecutablePropertiesKHR &&
                              dev->fn_.vkGetPipelineExecutableStatisticsKHR;
  g_shared_devices[index] = dev;
  return dev;
}

std::shared_ptr<Device> Device::adopt(const ExternalDevice& ext) {
  if (!ext.get_instance_proc_addr || !ext.instance || !ext.physical_device || !ext.device)
    throw Error(LONGATTN_ERROR_NULL_POINTER, "Vulkan: external device description has a null handle");
  GlobalFunctions g;
  if (!load_global(ext.get_instance_proc_addr, g))
    throw Error(LONGATTN_ERROR_BACKEND_UNAVAILABLE, "Vulkan: the given vkGetInstanceProcAddr lacks Vulkan 1.1 entry points");
  InstanceFunctions ifn;
  if (!load_instance(g, ext.instance, ifn))
    throw Error(LONGATTN_ERROR_BACKEND_UNAVAILABLE, "Vulkan: instance functions missing (Vulkan 1.2 instance required)");
  std::shared_ptr<Device> dev(new Device());
  std::string why;
  if (!query_physical_device(ifn, ext.physical_device, dev->info_, why))
    throw Error(LONGATTN_ERROR_UNSUPPORTED, "Vulkan: " + why);
  dev->info_.compute_queue_family = ext.queue_family;
  dev->info_.timestamp_valid_bits = 0;  // the family's timestamp support is not re-queried: no profiling
  // Only what the runtime enabled may be used.
  dev->info_.storage_16bit = dev->info_.storage_16bit && ext.storage_16bit_enabled;
  dev->info_.shader_float16 = dev->info_.shader_float16 && ext.shader_float16_enabled;
  dev->info_.cooperative_matrix_nv = false;
  dev->info_.cooperative_matrix_khr = false;
  dev->init(g, ifn, ext.instance, ext.device, false, ext.queue_index);
  return dev;
}

void Device::init(const GlobalFunctions&, const InstanceFunctions& ifn, VkInstance, VkDevice device,
                  bool owned, uint32_t queue_index) {
  device_ = device;
  owned_ = owned;
  if (!load_device(ifn, device, fn_)) {
    if (owned_ && fn_.vkDestroyDevice) fn_.vkDestroyDevice(device_, nullptr);
    device_ = VK_NULL_HANDLE;
    throw Error(LONGATTN_ERROR_BACKEND_UNAVAILABLE, "Vulkan: device functions missing");
  }
  ifn.vkGetPhysicalDeviceMemoryProperties(info_.handle, &memory_props_);
  fn_.vkGetDeviceQueue(device_, info_.compute_queue_family, queue_index, &queue_);

  VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, kPushConstantBytes};
  VkPipelineLayoutCreateInfo li{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  li.pushConstantRangeCount = 1;
  li.pPushConstantRanges = &range;
  check(fn_.vkCreatePipelineLayout(device_, &li, nullptr, &layout_), "vkCreatePipelineLayout");
  VkPipelineCacheCreateInfo ci{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
  check(fn_.vkCreatePipelineCache(device_, &ci, nullptr, &cache_), "vkCreatePipelineCache");
}

Device::~Device() {
  if (!device_) return;
  if (owned_ && !lost_.load()) fn_.vkDeviceWaitIdle(device_);  // a runtime's device may be busy with its work
  for (auto& [key, p] : pipelines_) fn_.vkDestroyPipeline(device_, p, nullptr);
  for (auto& [name, m] : modules_) fn_.vkDestroyShaderModule(device_, m, nullptr);
  if (cache_) fn_.vkDestroyPipelineCache(device_, cache_, nullptr);
  if (layout_) fn_.vkDestroyPipelineLayout(device_, layout_, nullptr);
  for (auto& [addr, a] : allocations_) {
    if (a.memory) {
      fn_.vkDestroyBuffer(device_, a.buffer, nullptr);
      fn_.vkFreeMemory(device_, a.memory, nullptr);
    }
  }
  if (owned_) fn_.vkDestroyDevice(device_, nullptr);
}

VkResult Device::submit(VkCommandBuffer cmd, VkFence fence) {
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &cmd;
  std::lock_guard<std::mutex> lock(queue_mutex_);
  return fn_.vkQueueSubmit(queue_, 1, &si, fence);
}

void Device::throw_if_lost() const {
  if (lost_.load())
    throw Error(LONGATTN_ERROR_DEVICE, "Vulkan: the device " + info_.name +
                                           " was lost earlier (VK_ERROR_DEVICE_LOST); create a new context");
}

uint32_t Device::memory_type(uint32_t bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags prefer) const {
  for (int pass = 0; pass < 2; ++pass) {
    const VkMemoryPropertyFlags need = pass == 0 ? (want | prefer) : want;
    for (uint32_t i = 0; i < memory_props_.memoryTypeCount; ++i)
      if ((bits & (1u << i)) && (memory_props_.memoryTypes[i].propertyFlags & need) == need) return i;
  }
  return UINT32_MAX;
}

VkDeviceMemory Device::allocate(const VkMemoryRequirements& req, VkMemoryPropertyFlags want,
                                VkMemoryPropertyFlags prefer, bool device_address) {
  const uint32_t type = memory_type(req.memoryTypeBits, want, prefer);
  if (type == UINT32_MAX)
    throw Error(LONGATTN_ERROR_OUT_OF_MEMORY, "Vulkan: no memory type with the required properties on " + info_.name);
  VkMemoryAllocateFlagsInfo flags{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO};
  flags.flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT;
  VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  ai.pNext = device_address ? &flags : nullptr;
  ai.allocationSize = req.size;
  ai.memoryTypeIndex = type;
  VkDeviceMemory mem = VK_NULL_HANDLE;
  const VkResult r = fn_.vkAllocateMemory(device_, &ai, nullptr, &mem);
  if (r != VK_SUCCESS) {
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
      throw Error(LONGATTN_ERROR_OUT_OF_MEMORY, "Vulkan: allocation of " + std::to_string(req.size) +
                                                    " bytes on " + info_.name + " failed (" + result_name(r) + ")");
    check(r, "vkAllocateMemory");
  }
  return mem;
}

uint64_t Device::alloc(size_t bytes) {
  throw_if_lost();
  VkBufferCreateInfo bi{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bi.size = round_up(std::max<VkDeviceSize>(bytes, 1), kAllocationGranule);
  bi.usage = kTensorUsage;
  bi.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  VkBuffer buf = VK_NULL_HANDLE;
  VkResult r = fn_.vkCreateBuffer(device_, &bi, nullptr, &buf);
  if (r != VK_SUCCESS) {
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
      throw Error(LONGATTN_ERROR_OUT_OF_MEMORY, "Vulkan: buffer of " + std::to_string(bytes) + " bytes: " + result_name(r));
    check(r, "vkCreateBuffer");
  }
  VkMemoryRequirements req{};
  fn_.vkGetBufferMemoryRequirements(device_, buf, &req);
  VkDeviceMemory mem = VK_NULL_HANDLE;
  try {
    mem = allocate(req, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0, true);
    check(fn_.vkBindBufferMemory(device_, buf, mem, 0), "vkBindBufferMemory");
  } catch (...) {
    fn_.vkDestroyBuffer(device_, buf, nullptr);
    if (mem) fn_.vkFreeMemory(device_, mem, nullptr);
    throw;
  }
  VkBufferDeviceAddressInfo ai{VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO};
  ai.buffer = buf;
  const uint64_t address = fn_.vkGetBufferDeviceAddress(device_, &ai);
  std::lock_guard<std::mutex> lock(alloc_mutex_);
  Allocation a;
  a.buffer = buf;
  a.memory = mem;
  a.size = bi.size;
  allocations_[address] = a;
  return address;
}

uint64_t Device::import(VkBuffer buffer, VkDeviceSize offset, VkDeviceSize size) {
  throw_if_lost();
  VkBufferDeviceAddressInfo ai{VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO};
  ai.buffer = buffer;
  const uint64_t base = fn_.vkGetBufferDeviceAddress(device_, &ai);
  if (base == 0)
    throw Error(LONGATTN_ERROR_INVALID_ARGUMENT,
                "Vulkan: imported buffer has no device address (create it with "
                "VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT)");
  const uint64_t address = base + offset;
  std::lock_guard<std::mutex> lock(alloc_mutex_);
  auto it = allocations_.find(address);
  if (it != allocations_.end()) {
    if (it->second.buffer != buffer || it->second.memory)
      throw Error(LONGATTN_ERROR_INVALID_ARGUMENT, "Vulkan: imported range starts at an address already in use");
    it->second.size = std::max(it->second.size, size);
    ++it->second.refs;
    return address;
  }
  Allocation a;
  a.buffer = buffer;
  a.offset = offset;
  a.size = size;
  allocations_[address] = a;
  return address;
}

void Device::release(uint64_t address) {
  Allocation a;
  {
    std::lock_guard<std::mutex> lock(alloc_mutex_);
    auto it = allocations_.find(address);
    if (it == allocations_.end()) return;
    if (--it->second.refs > 0) return;
    a = it->second;
    allocations_.erase(it);
  }
  if (a.memory) {
    fn_.vkDestroyBuffer(device_, a.buffer, nullptr);
    fn_.vkFreeMemory(device_, a.memory, nullptr);
  }
}

bool Device::owns(uint64_t address) const {
  std::lock_guard<std::mutex> lock(alloc_mutex_);
  auto it = allocations_.upper_bound(address);
  if (it == allocations_.begin()) return false;
  --it;
  return address < it->first + it->second.size;
}

Resolved Device::resolve(uint64_t address) const {
  std::lock_guard<std::mutex> lock(alloc_mutex_);
  auto it = allocations_.upper_bound(address);
  if (it != allocations_.begin()) {
    --it;
    const VkDeviceSize delta = address - it->first;
    if (delta < it->second.size) return {it->second.buffer, it->second.offset + delta, it->second.size - delta};
  }
  throw Error(LONGATTN_ERROR_INVALID_ARGUMENT,
              "Vulkan: address 0x" + [&] {
                char buf[32];
                std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(address));
                return std::string(buf);
              }() + " is not inside a buffer of this device (use longattn_vulkan_buffer_create/import)");
}

HostBuffer Device::create_host_buffer(VkDeviceSize bytes, bool readback) {
  HostBuffer h;
  VkBufferCreateInfo bi{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bi.size = round_up(std::max<VkDeviceSize>(bytes, 1), kAllocationGranule);
  bi.usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  check(fn_.vkCreateBuffer(device_, &bi, nullptr, &h.buffer), "vkCreateBuffer(staging)");
  VkMemoryRequirements req{};
  fn_.vkGetBufferMemoryRequirements(device_, h.buffer, &req);
  try {
    // coherent memory is required (no flush/invalidate calls); cached is faster to read back
    h.memory = allocate(req, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                        readback ? VK_MEMORY_PROPERTY_HOST_CACHED_BIT : 0, false);
    check(fn_.vkBindBufferMemory(device_, h.buffer, h.memory, 0), "vkBindBufferMemory(staging)");
    check(fn_.vkMapMemory(device_, h.memory, 0, VK_WHOLE_SIZE, 0, &h.mapped), "vkMapMemory");
  } catch (...) {
    destroy_host_buffer(h);
    throw;
  }
  h.size = bi.size;
  return h;
}

void Device::destroy_host_buffer(HostBuffer& h) {
  if (h.buffer) fn_.vkDestroyBuffer(device_, h.buffer, nullptr);
  if (h.memory) fn_.vkFreeMemory(device_, h.memory, nullptr);  // unmaps implicitly
  h = HostBuffer{};
}

DeviceBuffer Device::create_device_buffer(VkDeviceSize bytes) {
  DeviceBuffer d;
  VkBufferCreateInfo bi{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bi.size = round_up(std::max<VkDeviceSize>(bytes, 1), kAllocationGranule);
  bi.usage = kTensorUsage;
  check(fn_.vkCreateBuffer(device_, &bi, nullptr, &d.buffer), "vkCreateBuffer(scratch)");
  VkMemoryRequirements req{};
  fn_.vkGetBufferMemoryRequirements(device_, d.buffer, &req);
  try {
    d.memory = allocate(req, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0, true);
    check(fn_.vkBindBufferMemory(device_, d.buffer, d.memory, 0), "vkBindBufferMemory(scratch)");
  } catch (...) {
    destroy_device_buffer(d);
    throw;
  }
  VkBufferDeviceAddressInfo ai{VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO};
  ai.buffer = d.buffer;
  d.address = fn_.vkGetBufferDeviceAddress(device_, &ai);
  d.size = bi.size;
  return d;
}

void Device::destroy_device_buffer(DeviceBuffer& d) {
  if (d.buffer) fn_.vkDestroyBuffer(device_, d.buffer, nullptr);
  if (d.memory) fn_.vkFreeMemory(device_, d.memory, nullptr);
  d = DeviceBuffer{};
}

VkPipeline Device::pipeline(const std::string& shader, const std::vector<int32_t>& constants) {
  std::lock_guard<std::mutex> lock(pipeline_mutex_);
  auto key = std::make_pair(shader, constants);
  auto it = pipelines_.find(key);
  if (it != pipelines_.end()) return it->second;

  VkShaderModule module = VK_NULL_HANDLE;
  auto mit = modules_.find(shader);
  if (mit != modules_.end()) {
    module = mit->second;
  } else {
    const EmbeddedShader* s = find_shader(shader.c_str());
    if (!s) throw Error(LONGATTN_ERROR_INTERNAL, "Vulkan: no embedded shader named " + shader);
    VkShaderModuleCreateInfo mi{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
    mi.codeSize = s->n_words * sizeof(uint32_t);
    mi.pCode = s->words;
    check(fn_.vkCreateShaderModule(device_, &mi, nullptr, &module), "vkCreateShaderModule");
    modules_[shader] = module;
  }

  std::vector<VkSpecializationMapEntry> entries(constants.size());
  for (size_t i = 0; i < constants.size(); ++i)
    entries[i] = {uint32_t(i), uint32_t(i * sizeof(int32_t)), sizeof(int32_t)};
  VkSpecializationInfo spec{};
  spec.mapEntryCount = uint32_t(entries.size());
  spec.pMapEntries = entries.data();
  spec.dataSize = constants.size() * sizeof(int32_t);
  spec.pData = constants.data();

  VkComputePipelineCreateInfo pi{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  pi.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
  pi.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  pi.stage.module = module;
  pi.stage.pName = "main";
  pi.stage.pSpecializationInfo = &spec;
  pi.layout = layout_;
  if (pipeline_statistics_) pi.flags |= VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR;
  VkPipeline p = VK_NULL_HANDLE;
  check(fn_.vkCreateComputePipelines(device_, cache_, 1, &pi, nullptr, &p), "vkCreateComputePipelines");
  pipelines_[key] = p;
  if (pipeline_statistics_) print_statistics(p, shader, constants);
  return p;
}

void Device::print_statistics(VkPipeline p, const std::string& shader, const std::vector<int32_t>& constants) {
  VkPipelineInfoKHR pinfo{VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR};
  pinfo.pipeline = p;
  uint32_t n_exec = 0;
  if (fn_.vkGetPipelineExecutablePropertiesKHR(device_, &pinfo, &n_exec, nullptr) != VK_SUCCESS) return;
  for (uint32_t e = 0; e < n_exec; ++e) {
    VkPipelineExecutableInfoKHR xi{VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR};
    xi.pipeline = p;
    xi.executableIndex = e;
    uint32_t n = 0;
    if (fn_.vkGetPipelineExecutableStatisticsKHR(device_, &xi, &n, nullptr) != VK_SUCCESS) continue;
    std::vector<VkPipelineExecutableStatisticKHR> stats(n, {VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR});
    if (fn_.vkGetPipelineExecutableStatisticsKHR(device_, &xi, &n, stats.data()) != VK_SUCCESS) continue;
    std::string line = "{\"pipeline_stats\":\"" + shader + "\",\"constants\":[";
    for (size_t i = 0; i < constants.size(); ++i) line += (i ? "," : "") + std::to_string(constants[i]);
    line += "]";
    for (const auto& st : stats) {
      line += std::string(",\"") + st.name + "\":";
      switch (st.format) {
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR: line += st.value.b32 ? "true" : "false"; break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: line += std::to_string(st.value.i64); break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR: line += std::to_string(st.value.u64); break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_FLOAT64_KHR: line += std::to_string(st.value.f64); break;
        default: line += "null";
      }
    }
    std::fprintf(stderr, "%s}\n", line.c_str());
  }
}

}  // namespace longattn::vk
