// C ABI of include/longattn_vulkan.h: device buffers, import, synchronize, shared devices.
#include "longattn_vulkan.h"

#include <memory>
#include <string>

#include "api_guard.hpp"
#include "extensible.hpp"
#include "vulkan_backend.hpp"

using namespace longattn;

namespace {

constexpr size_t kDeviceDescMinSize = sizeof(longattn_vulkan_device);

vk::VulkanBackend& vulkan_of(longattn_context* ctx) {
  auto* be = dynamic_cast<vk::VulkanBackend*>(ctx->backend.get());
  if (!be)
    throw Error(LONGATTN_ERROR_UNSUPPORTED,
                "the context runs backend " + std::to_string(ctx->kind) + ", not LONGATTN_BACKEND_VULKAN");
  return *be;
}

}  // namespace

extern "C" {

longattn_status longattn_vulkan_buffer_create(longattn_context* ctx, size_t bytes, void** out) {
  if (!ctx) return LONGATTN_ERROR_NULL_POINTER;
  return guarded(ctx, "longattn_vulkan_buffer_create", [&] {
    LONGATTN_RETURN_IF(out == nullptr, LONGATTN_ERROR_NULL_POINTER, "out is NULL");
    LONGATTN_RETURN_IF(bytes == 0, LONGATTN_ERROR_INVALID_ARGUMENT, "bytes=0 must be positive");
    *out = vulkan_of(ctx).alloc(bytes);
  });
}

longattn_status longattn_vulkan_buffer_destroy(longattn_context* ctx, void* ptr) {
  if (!ctx) return LONGATTN_ERROR_NULL_POINTER;
  return guarded(ctx, "longattn_vulkan_buffer_destroy", [&] {
    if (ptr) vulkan_of(ctx).free(ptr);
  });
}

longattn_status longattn_vulkan_buffer_upload(longattn_context* ctx, void* dst, const void* src, size_t bytes) {
  if (!ctx) return LONGATTN_ERROR_NULL_POINTER;
  return guarded(ctx, "longattn_vulkan_buffer_upload", [&] {
    LONGATTN_RETURN_IF(bytes > 0 && (dst == nullptr || src == nullptr), LONGATTN_ERROR_NULL_POINTER,
                       "dst or src is NULL");
    vulkan_of(ctx).upload(dst, src, bytes, nullptr);
  });
}

longattn_status longattn_vulkan_buffer_download(longattn_context* ctx, void* dst, const void* src, size_t bytes) {
  if (!ctx) return LONGATTN_ERROR_NULL_POINTER;
  return guarded(ctx, "longattn_vulkan_buffer_download", [&] {
    LONGATTN_RETURN_IF(bytes > 0 && (dst == nullptr || src == nullptr), LONGATTN_ERROR_NULL_POINTER,
                       "dst or src is NULL");
    vulkan_of(ctx).download(dst, src, bytes, nullptr);
  });
}

longattn_status longattn_vulkan_synchronize(longattn_context* ctx) {
  if (!ctx) return LONGATTN_ERROR_NULL_POINTER;
  return guarded(ctx, "longattn_vulkan_synchronize", [&] { vulkan_of(ctx).synchronize(nullptr); });
}

longattn_status longattn_vulkan_buffer_import(longattn_context* ctx, VkBuffer buffer, VkDeviceSize offset,
                                              VkDeviceSize size, void** out) {
  if (!ctx) return LONGATTN_ERROR_NULL_POINTER;
  return guarded(ctx, "longattn_vulkan_buffer_import", [&] {
    LONGATTN_RETURN_IF(out == nullptr, LONGATTN_ERROR_NULL_POINTER, "out is NULL");
    LONGATTN_RETURN_IF(buffer == VK_NULL_HANDLE, LONGATTN_ERROR_NULL_POINTER, "buffer is VK_NULL_HANDLE");
    LONGATTN_RETURN_IF(size == 0, LONGATTN_ERROR_INVALID_ARGUMENT, "size=0 must be positive");
    *out = reinterpret_cast<void*>(vulkan_of(ctx).import(buffer, offset, size));
  });
}

longattn_status longattn_vulkan_context_create(const longattn_vulkan_device* device, longattn_context** out) {
  set_create_error("");
  longattn_context scratch;  // collects the message; there is no context to report on yet
  const longattn_status st = guarded(&scratch, "longattn_vulkan_context_create", [&] {
    LONGATTN_RETURN_IF(device == nullptr, LONGATTN_ERROR_NULL_POINTER, "device is NULL");
    LONGATTN_RETURN_IF(out == nullptr, LONGATTN_ERROR_NULL_POINTER, "out is NULL");
    const longattn_vulkan_device defaults = LONGATTN_VULKAN_DEVICE_INIT;
    const longattn_vulkan_device d = read_extensible(device, defaults, kDeviceDescMinSize, "device");
    LONGATTN_RETURN_IF((d.flags & ~(LONGATTN_VULKAN_DEVICE_STORAGE_16BIT | LONGATTN_VULKAN_DEVICE_FLOAT16)) != 0,
                       LONGATTN_ERROR_INVALID_ARGUMENT, "device.flags=" + std::to_string(d.flags) + " has unknown bits");
    vk::ExternalDevice ext;
    ext.get_instance_proc_addr = d.get_instance_proc_addr;
    ext.instance = d.instance;
    ext.physical_device = d.physical_device;
    ext.device = d.device;
    ext.queue_family = d.queue_family_index;
    ext.queue_index = d.queue_index;
    ext.storage_16bit_enabled = (d.flags & LONGATTN_VULKAN_DEVICE_STORAGE_16BIT) != 0;
    ext.shader_float16_enabled = (d.flags & LONGATTN_VULKAN_DEVICE_FLOAT16) != 0;
    auto ctx = std::make_unique<longattn_context>();
    ctx->kind = LONGATTN_BACKEND_VULKAN;
    ctx->device_index = -1;  // not one of longattn's enumerated devices
    ctx->n_threads = 1;
    ctx->backend = std::make_unique<vk::VulkanBackend>(vk::Device::adopt(ext));
    ctx->ws = std::make_unique<Workspace>(*ctx->backend);
    *out = ctx.release();
  });
  if (st != LONGATTN_OK) set_create_error(scratch.last_error);
  return st;
}

}  // extern "C"
