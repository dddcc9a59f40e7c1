// Process-wide Vulkan instance, device enumeration and the optional validation messenger.
#include "vk_instance.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>

namespace longattn::vk {
namespace {

constexpr const char* kValidationLayer = "VK_LAYER_KHRONOS_validation";
constexpr size_t kKeptMessages = 16;

std::atomic<int64_t> g_message_count{0};
std::atomic<bool> g_validation_active{false};
std::mutex g_message_mutex;
std::deque<std::string> g_messages;

VKAPI_ATTR VkBool32 VKAPI_CALL on_validation_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                     VkDebugUtilsMessageTypeFlagsEXT,
                                                     const VkDebugUtilsMessengerCallbackDataEXT* data,
                                                     void*) {
  if (severity < VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) return VK_FALSE;
  g_message_count.fetch_add(1);
  std::lock_guard<std::mutex> lock(g_message_mutex);
  g_messages.emplace_back(data && data->pMessage ? data->pMessage : "(no message)");
  if (g_messages.size() > kKeptMessages) g_messages.pop_front();
  return VK_FALSE;
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

int type_rank(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 4;
    default: return 3;
  }
}

bool has_extension(const std::vector<VkExtensionProperties>& exts, const char* name) {
  for (const auto& e : exts)
    if (std::strcmp(e.extensionName, name) == 0) return true;
  return false;
}

}  // namespace

Instance* Instance::get() {
  static Instance* instance = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    auto* candidate = new Instance();
    if (candidate->create()) {
      candidate->enumerate();
      instance = candidate;
    } else {
      delete candidate;
    }
  });
  return instance;
}

bool Instance::create() {
  const GlobalFunctions* g = system_loader();
  if (!g) return false;
  global_ = *g;
  uint32_t loader_version = 0;
  if (global_.vkEnumerateInstanceVersion(&loader_version) != VK_SUCCESS ||
      loader_version < VK_API_VERSION_1_2)
    return false;

  std::vector<const char*> layers, extensions;
  bool want_validation = env_flag("LONGATTN_VULKAN_VALIDATION");
  if (want_validation) {
    uint32_t n = 0;
    global_.vkEnumerateInstanceLayerProperties(&n, nullptr);
    std::vector<VkLayerProperties> props(n);
    global_.vkEnumerateInstanceLayerProperties(&n, props.data());
    bool found = false;
    for (const auto& p : props) found = found || std::strcmp(p.layerName, kValidationLayer) == 0;
    uint32_t ne = 0;
    global_.vkEnumerateInstanceExtensionProperties(nullptr, &ne, nullptr);
    std::vector<VkExtensionProperties> exts(ne);
    global_.vkEnumerateInstanceExtensionProperties(nullptr, &ne, exts.data());
    want_validation = found && has_extension(exts, VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
    if (want_validation) {
      layers.push_back(kValidationLayer);
      extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
    }
  }

  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pEngineName = "longattn";
  app.apiVersion = VK_API_VERSION_1_2;

  VkDebugUtilsMessengerCreateInfoEXT messenger_info{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
  messenger_info.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                                   VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
  messenger_info.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
  messenger_info.pfnUserCallback = on_validation_message;

  VkInstanceCreateInfo info{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  info.pApplicationInfo = &app;
  info.enabledLayerCount = uint32_t(layers.size());
  info.ppEnabledLayerNames = layers.data();
  info.enabledExtensionCount = uint32_t(extensions.size());
  info.ppEnabledExtensionNames = extensions.data();
  // synchronization validation too: it checks the barriers between copies and dispatches
  const VkValidationFeatureEnableEXT enables[] = {VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
  VkValidationFeaturesEXT features{VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
  features.enabledValidationFeatureCount = 1;
  features.pEnabledValidationFeatures = enables;
  if (want_validation) {
    info.pNext = &features;
    features.pNext = &messenger_info;  // the messenger also covers instance creation itself
  }
  if (global_.vkCreateInstance(&info, nullptr, &instance_) != VK_SUCCESS) return false;
  if (!load_instance(global_, instance_, fn_)) return false;
  if (want_validation && fn_.vkCreateDebugUtilsMessengerEXT) {
    if (fn_.vkCreateDebugUtilsMessengerEXT(instance_, &messenger_info, nullptr, &messenger_) != VK_SUCCESS)
      messenger_ = VK_NULL_HANDLE;
  }
  g_validation_active.store(messenger_ != VK_NULL_HANDLE);
  return true;
}

void Instance::enumerate() {
  uint32_t n = 0;
  if (fn_.vkEnumeratePhysicalDevices(instance_, &n, nullptr) != VK_SUCCESS || n == 0) return;
  std::vector<VkPhysicalDevice> pds(n);
  if (fn_.vkEnumeratePhysicalDevices(instance_, &n, pds.data()) != VK_SUCCESS) return;
  pds.resize(n);
  for (VkPhysicalDevice pd : pds) {
    PhysicalDeviceInfo info;
    std::string why;
    if (query_physical_device(fn_, pd, info, why)) devices_.push_back(info);
  }
  std::stable_sort(devices_.begin(), devices_.end(), [](const auto& a, const auto& b) {
    return type_rank(a.type) < type_rank(b.type);
  });
}

bool query_physical_device(const InstanceFunctions& fn, VkPhysicalDevice pd, PhysicalDeviceInfo& out,
                           std::string& why) {
  VkPhysicalDeviceProperties props{};
  fn.vkGetPhysicalDeviceProperties(pd, &props);
  out.handle = pd;
  out.name = props.deviceName;
  out.type = props.deviceType;
  out.api_version = props.apiVersion;
  if (props.apiVersion < VK_API_VERSION_1_2) {
    why = out.name + " supports only Vulkan " + std::to_string(VK_API_VERSION_MAJOR(props.apiVersion)) +
          "." + std::to_string(VK_API_VERSION_MINOR(props.apiVersion)) + " (1.2 required)";
    return false;
  }
  out.max_shared_memory = props.limits.maxComputeSharedMemorySize;
  out.max_workgroup_invocations = props.limits.maxComputeWorkGroupInvocations;
  for (int i = 0; i < 3; ++i) out.max_workgroup_count[i] = props.limits.maxComputeWorkGroupCount[i];
  out.timestamp_period_ns = props.limits.timestampPeriod;

  uint32_t ne = 0;
  fn.vkEnumerateDeviceExtensionProperties(pd, nullptr, &ne, nullptr);
  std::vector<VkExtensionProperties> exts(ne);
  fn.vkEnumerateDeviceExtensionProperties(pd, nullptr, &ne, exts.data());
  exts.resize(ne);
  const bool has_subgroup_control =
      props.apiVersion >= VK_API_VERSION_1_3 || has_extension(exts, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
  const bool has_coopmat_nv = has_extension(exts, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
  const bool has_coopmat_khr = has_extension(exts, VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME);
  const bool has_executable_props = has_extension(exts, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);

  // properties: subgroup size
  VkPhysicalDeviceSubgroupProperties subgroup{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
  VkPhysicalDeviceProperties2 props2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  props2.pNext = &subgroup;
  fn.vkGetPhysicalDeviceProperties2(pd, &props2);
  out.subgroup_size = subgroup.subgroupSize;

  // features
  VkPhysicalDeviceSubgroupSizeControlFeaturesEXT size_control{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT};
  VkPhysicalDeviceCooperativeMatrixFeaturesNV coopmat{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
  VkPhysicalDeviceCooperativeMatrixFeaturesKHR coopmat_khr{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR};
  VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR executable_props{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR};
  VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
  VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  f2.pNext = &f11;
  f11.pNext = &f12;
  void** tail = &f12.pNext;
  if (has_subgroup_control) { *tail = &size_control; tail = &size_control.pNext; }
  if (has_coopmat_nv) { *tail = &coopmat; tail = &coopmat.pNext; }
  if (has_coopmat_khr) { *tail = &coopmat_khr; tail = &coopmat_khr.pNext; }
  if (has_executable_props) { *tail = &executable_props; tail = &executable_props.pNext; }
  fn.vkGetPhysicalDeviceFeatures2(pd, &f2);
  out.pipeline_statistics = has_executable_props && executable_props.pipelineExecutableInfo;

  if (!f12.bufferDeviceAddress) { why = out.name + " lacks bufferDeviceAddress"; return false; }
  if (!f2.features.shaderInt64) { why = out.name + " lacks shaderInt64"; return false; }
  out.storage_16bit = f11.storageBuffer16BitAccess == VK_TRUE;
  out.shader_float16 = f12.shaderFloat16 == VK_TRUE;
  out.vulkan_memory_model = f12.vulkanMemoryModel == VK_TRUE;
  out.subgroup_size_control = has_subgroup_control && size_control.subgroupSizeControl &&
                              size_control.computeFullSubgroups;

  out.subgroup_shuffle =
      (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
      (subgroup.supportedOperations & (VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT)) ==
          (VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
  out.subgroup_ballot =
      (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
      (subgroup.supportedOperations & (VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_BALLOT_BIT)) ==
          (VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_BALLOT_BIT);
  const VkSubgroupFeatureFlags subgroup_ops =
      VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_VOTE_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT;
  const bool subgroup_ok = (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                           (subgroup.supportedOperations & subgroup_ops) == subgroup_ops;
  if (has_coopmat_nv && coopmat.cooperativeMatrix && out.shader_float16 && out.vulkan_memory_model &&
      subgroup_ok && out.subgroup_size == 32 && fn.vkGetPhysicalDeviceCooperativeMatrixPropertiesNV) {
    uint32_t nm = 0;
    fn.vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(pd, &nm, nullptr);
    std::vector<VkCooperativeMatrixPropertiesNV> shapes(nm, {VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV});
    fn.vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(pd, &nm, shapes.data());
    for (const auto& s : shapes) {
      if (s.MSize == 16 && s.NSize == 16 && s.KSize == 16 && s.AType == VK_COMPONENT_TYPE_FLOAT16_NV &&
          s.BType == VK_COMPONENT_TYPE_FLOAT16_NV && s.CType == VK_COMPONENT_TYPE_FLOAT32_NV &&
          s.DType == VK_COMPONENT_TYPE_FLOAT32_NV && s.scope == VK_SCOPE_SUBGROUP_NV)
        out.cooperative_matrix_nv = true;
    }
  }
  // the KHR form of the same matrices (used by attend_coopmat_khr, next to the NV path)
  if (out.cooperative_matrix_nv && has_coopmat_khr && coopmat_khr.cooperativeMatrix &&
      fn.vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR) {
    uint32_t nm = 0;
    fn.vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR(pd, &nm, nullptr);
    VkCooperativeMatrixPropertiesKHR blank{};
    blank.sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR;
    std::vector<VkCooperativeMatrixPropertiesKHR> shapes(nm, blank);
    fn.vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR(pd, &nm, shapes.data());
    for (const auto& s : shapes) {
      if (s.MSize == 16 && s.NSize == 16 && s.KSize == 16 && s.AType == VK_COMPONENT_TYPE_FLOAT16_KHR &&
          s.BType == VK_COMPONENT_TYPE_FLOAT16_KHR && s.CType == VK_COMPONENT_TYPE_FLOAT32_KHR &&
          s.ResultType == VK_COMPONENT_TYPE_FLOAT32_KHR && s.scope == VK_SCOPE_SUBGROUP_KHR)
        out.cooperative_matrix_khr = true;
    }
  }

  uint32_t nq = 0;
  fn.vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, nullptr);
  std::vector<VkQueueFamilyProperties> queues(nq);
  fn.vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, queues.data());
  // prefer a family with compute and graphics (the main queue, fastest on most drivers)
  int best = -1;
  for (uint32_t i = 0; i < nq; ++i) {
    if (!(queues[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || queues[i].queueCount == 0) continue;
    if (best < 0 || (queues[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) {
      if (best < 0 || !(queues[size_t(best)].queueFlags & VK_QUEUE_GRAPHICS_BIT)) best = int(i);
    }
  }
  if (best < 0) { why = out.name + " has no compute queue"; return false; }
  out.compute_queue_family = uint32_t(best);
  out.timestamp_valid_bits = queues[size_t(best)].timestampValidBits;
  return true;
}

int64_t validation_message_count() { return g_message_count.load(); }

std::vector<std::string> validation_messages() {
  std::lock_guard<std::mutex> lock(g_message_mutex);
  return {g_messages.begin(), g_messages.end()};
}

bool validation_active() { return g_validation_active.load(); }

}  // namespace longattn::vk
