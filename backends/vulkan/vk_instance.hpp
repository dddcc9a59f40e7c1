// The process-wide Vulkan instance and the list of usable physical devices.
//
// Created on first use, never destroyed (a runtime may create and destroy contexts many times).
// A device is usable when it offers Vulkan ≥ 1.2, bufferDeviceAddress, shaderInt64 and a compute
// queue. The list is ordered discrete GPUs, integrated GPUs, virtual GPUs, others, then CPU-type
// devices (lavapipe, SwiftShader), so index 0 is the best GPU when there is one.
//
// Validation: with LONGATTN_VULKAN_VALIDATION=1 in the environment at first use, the Khronos
// validation layer is enabled (when installed) with a debug messenger that counts every warning
// and error it reports; tests read the count. Nothing is printed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vk_loader.hpp"

namespace longattn::vk {

// What longattn needs to know about a physical device, queried once.
struct PhysicalDeviceInfo {
  VkPhysicalDevice handle = VK_NULL_HANDLE;
  std::string name;
  VkPhysicalDeviceType type = VK_PHYSICAL_DEVICE_TYPE_OTHER;
  uint32_t api_version = 0;
  uint32_t compute_queue_family = 0;
  uint32_t subgroup_size = 0;            // default subgroup size of compute shaders
  uint32_t max_shared_memory = 0;        // maxComputeSharedMemorySize, bytes
  uint32_t max_workgroup_invocations = 0;
  uint32_t max_workgroup_count[3] = {0, 0, 0};
  float timestamp_period_ns = 0.0f;      // nanoseconds per timestamp tick
  uint32_t timestamp_valid_bits = 0;     // of the compute queue family; 0 = no timestamps
  bool storage_16bit = false;            // storageBuffer16BitAccess
  bool shader_float16 = false;           // shaderFloat16
  bool subgroup_size_control = false;    // and computeFullSubgroups
  bool subgroup_shuffle = false;         // basic + shuffle subgroup operations in compute shaders
  bool subgroup_ballot = false;          // basic + ballot subgroup operations in compute shaders
  bool vulkan_memory_model = false;      // vulkanMemoryModel (the cooperative-matrix shader uses it)
  bool cooperative_matrix_nv = false;    // VK_NV_cooperative_matrix with f16×f16→f32 16×16×16 (subgroup
                                         // 32), shaderFloat16 and vulkanMemoryModel
  bool cooperative_matrix_khr = false;   // the same through VK_KHR_cooperative_matrix (matrices with roles)
  bool pipeline_statistics = false;      // VK_KHR_pipeline_executable_properties (registers per lane, …)
  bool is_gpu() const {
    return type == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU ||
           type == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ||
           type == VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU;
  }
};

class Instance {
 public:
  // The instance, or null when there is no loader or instance creation failed (never throws).
  static Instance* get();

  const GlobalFunctions& global() const { return global_; }
  const InstanceFunctions& fn() const { return fn_; }
  VkInstance handle() const { return instance_; }
  const std::vector<PhysicalDeviceInfo>& devices() const { return devices_; }

  bool validation_enabled() const { return messenger_ != VK_NULL_HANDLE; }

 private:
  Instance() = default;
  bool create();
  void enumerate();

  GlobalFunctions global_;
  InstanceFunctions fn_;
  VkInstance instance_ = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger_ = VK_NULL_HANDLE;
  std::vector<PhysicalDeviceInfo> devices_;
};

// Queries a physical device (also used for devices a runtime hands over). Returns false, with
// `why` set, when it lacks something longattn requires.
bool query_physical_device(const InstanceFunctions& fn, VkPhysicalDevice pd, PhysicalDeviceInfo& out,
                           std::string& why);

// Validation messages (warnings and errors) seen since the process started, and the last few of
// them (for test diagnostics). Zero when validation is off.
int64_t validation_message_count();
std::vector<std::string> validation_messages();
bool validation_active();

}  // namespace longattn::vk
