// Vulkan entry points, loaded at run time.
//
// The library never links libvulkan: the first Vulkan use dlopen()s "libvulkan.so.1" (or takes a
// vkGetInstanceProcAddr from a runtime that shares its device) and fills these tables. A machine
// without a Vulkan loader simply has no Vulkan devices.
#pragma once

#define VK_NO_PROTOTYPES 1
#include <vulkan/vulkan.h>

#include "vk_khr_coopmat.hpp"

namespace longattn::vk {

// Functions callable without an instance.
#define LONGATTN_VK_GLOBAL_FUNCTIONS(X)   \
  X(vkCreateInstance)                     \
  X(vkEnumerateInstanceVersion)           \
  X(vkEnumerateInstanceLayerProperties)   \
  X(vkEnumerateInstanceExtensionProperties)

// Functions of an instance (and of its physical devices). Optional ones may stay null.
#define LONGATTN_VK_INSTANCE_FUNCTIONS(X)      \
  X(vkDestroyInstance)                         \
  X(vkEnumeratePhysicalDevices)                \
  X(vkGetPhysicalDeviceProperties)             \
  X(vkGetPhysicalDeviceProperties2)            \
  X(vkGetPhysicalDeviceFeatures2)              \
  X(vkGetPhysicalDeviceMemoryProperties)       \
  X(vkGetPhysicalDeviceQueueFamilyProperties)  \
  X(vkEnumerateDeviceExtensionProperties)      \
  X(vkCreateDevice)                            \
  X(vkGetDeviceProcAddr)
#define LONGATTN_VK_INSTANCE_OPTIONAL_FUNCTIONS(X) \
  X(vkCreateDebugUtilsMessengerEXT)                \
  X(vkDestroyDebugUtilsMessengerEXT)               \
  X(vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)     \
  X(vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)

// Functions of a logical device (the optional ones may stay null).
#define LONGATTN_VK_DEVICE_OPTIONAL_FUNCTIONS(X) \
  X(vkGetPipelineExecutablePropertiesKHR)       \
  X(vkGetPipelineExecutableStatisticsKHR)
#define LONGATTN_VK_DEVICE_FUNCTIONS(X) \
  X(vkDestroyDevice)                    \
  X(vkGetDeviceQueue)                   \
  X(vkQueueSubmit)                      \
  X(vkDeviceWaitIdle)                   \
  X(vkCreateBuffer)                     \
  X(vkDestroyBuffer)                    \
  X(vkGetBufferMemoryRequirements)      \
  X(vkAllocateMemory)                   \
  X(vkFreeMemory)                       \
  X(vkBindBufferMemory)                 \
  X(vkMapMemory)                        \
  X(vkUnmapMemory)                      \
  X(vkGetBufferDeviceAddress)           \
  X(vkCreateShaderModule)               \
  X(vkDestroyShaderModule)              \
  X(vkCreatePipelineLayout)             \
  X(vkDestroyPipelineLayout)            \
  X(vkCreateComputePipelines)           \
  X(vkDestroyPipeline)                  \
  X(vkCreatePipelineCache)              \
  X(vkDestroyPipelineCache)             \
  X(vkCreateCommandPool)                \
  X(vkDestroyCommandPool)               \
  X(vkAllocateCommandBuffers)           \
  X(vkFreeCommandBuffers)               \
  X(vkBeginCommandBuffer)               \
  X(vkEndCommandBuffer)                 \
  X(vkResetCommandBuffer)               \
  X(vkCmdBindPipeline)                  \
  X(vkCmdPushConstants)                 \
  X(vkCmdDispatch)                      \
  X(vkCmdPipelineBarrier)               \
  X(vkCmdCopyBuffer)                    \
  X(vkCmdUpdateBuffer)                  \
  X(vkCmdFillBuffer)                    \
  X(vkCreateFence)                      \
  X(vkDestroyFence)                     \
  X(vkWaitForFences)                    \
  X(vkGetFenceStatus)                   \
  X(vkResetFences)                      \
  X(vkCreateQueryPool)                  \
  X(vkDestroyQueryPool)                 \
  X(vkCmdResetQueryPool)                \
  X(vkCmdWriteTimestamp)                \
  X(vkGetQueryPoolResults)

#define LONGATTN_VK_DECLARE(name) PFN_##name name = nullptr;

struct GlobalFunctions {
  PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr = nullptr;
  LONGATTN_VK_GLOBAL_FUNCTIONS(LONGATTN_VK_DECLARE)
};

struct InstanceFunctions {
  LONGATTN_VK_INSTANCE_FUNCTIONS(LONGATTN_VK_DECLARE)
  LONGATTN_VK_INSTANCE_OPTIONAL_FUNCTIONS(LONGATTN_VK_DECLARE)
};

struct DeviceFunctions {
  LONGATTN_VK_DEVICE_FUNCTIONS(LONGATTN_VK_DECLARE)
  LONGATTN_VK_DEVICE_OPTIONAL_FUNCTIONS(LONGATTN_VK_DECLARE)
};

#undef LONGATTN_VK_DECLARE

// Loads libvulkan once per process. Returns null when no loader is installed (never throws).
const GlobalFunctions* system_loader();

// Fills the tables from an entry point. Return false when a required function is missing.
bool load_global(PFN_vkGetInstanceProcAddr gipa, GlobalFunctions& out);
bool load_instance(const GlobalFunctions& g, VkInstance instance, InstanceFunctions& out);
bool load_device(const InstanceFunctions& i, VkDevice device, DeviceFunctions& out);

// "VK_ERROR_DEVICE_LOST" etc.
const char* result_name(VkResult r);

// Throws longattn::Error for a failed call: out-of-memory results become OUT_OF_MEMORY, anything
// else DEVICE; the message names the call and the result.
void check(VkResult r, const char* call);

}  // namespace longattn::vk
