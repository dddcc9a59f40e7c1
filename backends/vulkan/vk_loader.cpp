// Run-time loading of the Vulkan loader library and of instance/device entry points.
#include "vk_loader.hpp"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "error.hpp"

namespace longattn::vk {

const GlobalFunctions* system_loader() {
  static GlobalFunctions fns;
  static bool ok = false;
  static std::once_flag once;
  std::call_once(once, [] {
    // The soname first (what a runtime package installs), then the development symlink.
    void* lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libvulkan.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;
    auto gipa = reinterpret_cast<PFN_vkGetInstanceProcAddr>(dlsym(lib, "vkGetInstanceProcAddr"));
    if (!gipa) return;  // the library stays loaded: unloading a Vulkan loader is not worth the risk
    ok = load_global(gipa, fns);
  });
  return ok ? &fns : nullptr;
}

bool load_global(PFN_vkGetInstanceProcAddr gipa, GlobalFunctions& out) {
  out.vkGetInstanceProcAddr = gipa;
#define LOAD(name) out.name = reinterpret_cast<PFN_##name>(gipa(VK_NULL_HANDLE, #name));
  LONGATTN_VK_GLOBAL_FUNCTIONS(LOAD)
#undef LOAD
  // vkEnumerateInstanceVersion is absent from Vulkan 1.0 loaders: those are too old anyway.
  return out.vkCreateInstance && out.vkEnumerateInstanceVersion &&
         out.vkEnumerateInstanceLayerProperties && out.vkEnumerateInstanceExtensionProperties;
}

bool load_instance(const GlobalFunctions& g, VkInstance instance, InstanceFunctions& out) {
  bool ok = true;
#define LOAD(name)                                                                       \
  out.name = reinterpret_cast<PFN_##name>(g.vkGetInstanceProcAddr(instance, #name)); \
  ok = ok && out.name != nullptr;
  LONGATTN_VK_INSTANCE_FUNCTIONS(LOAD)
#undef LOAD
#define LOAD_OPTIONAL(name) \
  out.name = reinterpret_cast<PFN_##name>(g.vkGetInstanceProcAddr(instance, #name));
  LONGATTN_VK_INSTANCE_OPTIONAL_FUNCTIONS(LOAD_OPTIONAL)
#undef LOAD_OPTIONAL
  return ok;
}

bool load_device(const InstanceFunctions& i, VkDevice device, DeviceFunctions& out) {
  bool ok = true;
#define LOAD(name)                                                                  \
  out.name = reinterpret_cast<PFN_##name>(i.vkGetDeviceProcAddr(device, #name)); \
  ok = ok && out.name != nullptr;
  LONGATTN_VK_DEVICE_FUNCTIONS(LOAD)
#undef LOAD
#define LOAD_OPTIONAL(name) out.name = reinterpret_cast<PFN_##name>(i.vkGetDeviceProcAddr(device, #name));
  LONGATTN_VK_DEVICE_OPTIONAL_FUNCTIONS(LOAD_OPTIONAL)
#undef LOAD_OPTIONAL
  return ok;
}

const char* result_name(VkResult r) {
  switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    case VK_ERROR_INVALID_EXTERNAL_HANDLE: return "VK_ERROR_INVALID_EXTERNAL_HANDLE";
    case VK_ERROR_FRAGMENTATION: return "VK_ERROR_FRAGMENTATION";
    case VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS: return "VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS";
    default: return "VK_ERROR_UNKNOWN";
  }
}

void check(VkResult r, const char* call) {
  if (r == VK_SUCCESS) return;
  const std::string msg = std::string("Vulkan: ") + call + " failed with " + result_name(r) +
                          " (" + std::to_string(int(r)) + ")";
  if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ||
      r == VK_ERROR_OUT_OF_POOL_MEMORY || r == VK_ERROR_FRAGMENTATION)
    throw Error(LONGATTN_ERROR_OUT_OF_MEMORY, msg);
  throw Error(LONGATTN_ERROR_DEVICE, msg);
}

}  // namespace longattn::vk
