/*
 * longattn_vulkan.h — Vulkan interop for longattn: device buffers, buffer import, shared devices.
 *
 * Optional: only programs that hand Vulkan memory to longattn need this header (and the Vulkan
 * headers it includes). Everything here requires a context whose backend is
 * LONGATTN_BACKEND_VULKAN; other contexts get LONGATTN_ERROR_UNSUPPORTED.
 *
 * Device pointers. On the Vulkan backend a "device pointer" (longattn_tensor.data with
 * memory = LONGATTN_MEMORY_DEVICE) is a Vulkan buffer device address cast to void*. Pointers come
 * from longattn_vulkan_buffer_create() or longattn_vulkan_buffer_import(); adding a byte offset
 * inside the buffer gives a valid pointer too (views into a KV cache). Never dereference one on
 * the host.
 *
 * Synchronization contract.
 *   - longattn records its GPU work on its own command buffers and submits them to the queue of
 *     the context's device. Every call that reads results on the host (download, a forward or
 *     merge with host outputs) waits for that work before it returns.
 *   - longattn_vulkan_synchronize(ctx) submits whatever is still recorded and waits for it: after
 *     it returns, every device buffer written by earlier calls on ctx holds its result. Call it
 *     before another queue, another API or another context reads those buffers.
 *   - Before a call reads a buffer that something other than this context wrote (a runtime's own
 *     command buffers, an upload by another context), that write must have completed (e.g. the
 *     runtime waited for its fence). longattn never waits on the runtime's semaphores.
 *   - A runtime that shares its VkDevice (longattn_vulkan_context_create) must not use the same
 *     VkQueue from another thread while a longattn call runs (Vulkan requires external
 *     synchronization of queues); longattn locks the queue only against its own contexts.
 *   - Contexts are used by one thread at a time (as everywhere in longattn).
 */
#ifndef LONGATTN_VULKAN_H
#define LONGATTN_VULKAN_H

#include <vulkan/vulkan_core.h>

#include "longattn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Library-owned device buffers (keep a KV cache on the GPU between calls)
 * ------------------------------------------------------------------------------------------- */

/* Allocates `bytes` (> 0) of device-local memory on ctx's device; *out receives its device
 * pointer. The buffer belongs to the device and may be used by every context on the same device;
 * release it with longattn_vulkan_buffer_destroy before the last such context is destroyed. */
LONGATTN_API longattn_status longattn_vulkan_buffer_create(longattn_context* ctx, size_t bytes,
                                                           void** out);

/* Releases a buffer from longattn_vulkan_buffer_create (its start pointer), or forgets an import
 * (the runtime's VkBuffer is not destroyed). Work already recorded that uses it completes first.
 * NULL is a no-op. */
LONGATTN_API longattn_status longattn_vulkan_buffer_destroy(longattn_context* ctx, void* ptr);

/* Copies `bytes` of host memory to the device pointer dst. src may be reused as soon as the call
 * returns; the copy is ordered before every later call on ctx. */
LONGATTN_API longattn_status longattn_vulkan_buffer_upload(longattn_context* ctx, void* dst,
                                                           const void* src, size_t bytes);

/* Copies `bytes` from the device pointer src to host memory dst, after all work recorded on ctx
 * so far; returns when the bytes are in dst. */
LONGATTN_API longattn_status longattn_vulkan_buffer_download(longattn_context* ctx, void* dst,
                                                             const void* src, size_t bytes);

/* Submits all work recorded on ctx and waits for it (see the synchronization contract). */
LONGATTN_API longattn_status longattn_vulkan_synchronize(longattn_context* ctx);

/* ---------------------------------------------------------------------------------------------
 * Runtime-owned devices and buffers (ggml-vulkan style)
 * ------------------------------------------------------------------------------------------- */

/* Features the runtime enabled on its VkDevice that longattn may use. */
#define LONGATTN_VULKAN_DEVICE_STORAGE_16BIT 1u  /* storageBuffer16BitAccess */
#define LONGATTN_VULKAN_DEVICE_FLOAT16 2u        /* shaderFloat16 */

typedef struct longattn_vulkan_device {
  uint32_t struct_size;                          /* sizeof(longattn_vulkan_device) */
  PFN_vkGetInstanceProcAddr get_instance_proc_addr; /* the runtime's loader entry point */
  VkInstance instance;                           /* created with apiVersion >= 1.2 */
  VkPhysicalDevice physical_device;
  VkDevice device;      /* created with bufferDeviceAddress and shaderInt64 enabled */
  uint32_t queue_family_index; /* a family with VK_QUEUE_COMPUTE_BIT */
  uint32_t queue_index;
  uint32_t flags;       /* LONGATTN_VULKAN_DEVICE_* bits */
} longattn_vulkan_device;

#define LONGATTN_VULKAN_DEVICE_INIT \
  { (uint32_t)sizeof(longattn_vulkan_device), NULL, VK_NULL_HANDLE, VK_NULL_HANDLE, VK_NULL_HANDLE, 0u, 0u, 0u }

/* Creates a Vulkan context on a device the runtime owns, so that the runtime's buffers can be
 * imported. The handles must outlive the context; longattn never destroys them. */
LONGATTN_API longattn_status longattn_vulkan_context_create(const longattn_vulkan_device* device,
                                                            longattn_context** out);

/* Makes [offset, offset + size) of a runtime VkBuffer usable as device memory: *out receives the
 * device pointer of `offset`. The buffer must belong to ctx's VkDevice (a context from
 * longattn_vulkan_context_create) and have been created with
 * VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT (memory allocated with
 * VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT), plus TRANSFER_SRC/DST for uploads and downloads. The
 * runtime keeps ownership; call longattn_vulkan_buffer_destroy when longattn should forget it. */
LONGATTN_API longattn_status longattn_vulkan_buffer_import(longattn_context* ctx, VkBuffer buffer,
                                                           VkDeviceSize offset, VkDeviceSize size,
                                                           void** out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LONGATTN_VULKAN_H */
