// C ABI: version, build information, status strings, dtype sizes, backend and device queries.
#include <cstring>
#include <string>

#include "api_guard.hpp"
#include "backend.hpp"
#include "quant.hpp"

using namespace longattn;

extern "C" {

uint32_t longattn_version(void) { return LONGATTN_VERSION_NUMBER; }

const char* longattn_build_info(void) {
  static const std::string info = [] {
    std::string s = "longattn " + std::to_string(LONGATTN_VERSION_MAJOR) + "." +
                    std::to_string(LONGATTN_VERSION_MINOR) + "." + std::to_string(LONGATTN_VERSION_PATCH);
    s += "; backends: cpu";
#if LONGATTN_HAVE_CUDA
    s += ",cuda";
#endif
#if LONGATTN_HAVE_VULKAN
    s += ",vulkan";
#endif
    s += "; cpu isa compiled: ";
    s += cpu_isas_compiled();
    s += "; cpu isa selected: ";
    s += cpu_isa_selected();
#if LONGATTN_HAVE_OPENMP
    s += "; openmp";
#endif
    return s;
  }();
  return info.c_str();
}

const char* longattn_status_string(longattn_status status) {
  switch (status) {
    case LONGATTN_OK: return "LONGATTN_OK: success";
    case LONGATTN_ERROR_INVALID_ARGUMENT: return "LONGATTN_ERROR_INVALID_ARGUMENT: a value is out of range";
    case LONGATTN_ERROR_NULL_POINTER: return "LONGATTN_ERROR_NULL_POINTER: a required pointer is NULL";
    case LONGATTN_ERROR_SHAPE_MISMATCH: return "LONGATTN_ERROR_SHAPE_MISMATCH: tensor shapes disagree";
    case LONGATTN_ERROR_BAD_STRIDE: return "LONGATTN_ERROR_BAD_STRIDE: negative or overlapping strides";
    case LONGATTN_ERROR_UNKNOWN_ENUM: return "LONGATTN_ERROR_UNKNOWN_ENUM: unknown enum value";
    case LONGATTN_ERROR_STRUCT_SIZE: return "LONGATTN_ERROR_STRUCT_SIZE: struct_size not accepted";
    case LONGATTN_ERROR_UNSUPPORTED: return "LONGATTN_ERROR_UNSUPPORTED: not supported by this build or backend";
    case LONGATTN_ERROR_BACKEND_UNAVAILABLE: return "LONGATTN_ERROR_BACKEND_UNAVAILABLE: backend or device not available";
    case LONGATTN_ERROR_OUT_OF_MEMORY: return "LONGATTN_ERROR_OUT_OF_MEMORY: allocation failed";
    case LONGATTN_ERROR_DEVICE: return "LONGATTN_ERROR_DEVICE: the device reported an error";
    case LONGATTN_ERROR_INTERNAL: return "LONGATTN_ERROR_INTERNAL: internal error";
    default: return "unknown status";
  }
}

size_t longattn_dtype_size(longattn_dtype dtype) {
  switch (dtype) {
    case LONGATTN_DTYPE_F32: return 4;
    case LONGATTN_DTYPE_F16:
    case LONGATTN_DTYPE_BF16: return 2;
    case LONGATTN_DTYPE_Q8_0: return kQ8_0BlockBytes;
    case LONGATTN_DTYPE_Q4_0: return kQ4_0BlockBytes;
    default: return 0;
  }
}

int32_t longattn_dtype_block_elems(longattn_dtype dtype) {
  if (is_block_dtype(dtype)) return kQuantBlock;
  return longattn_dtype_size(dtype) ? 1 : 0;
}

longattn_status longattn_tensor_contiguous(longattn_tensor* t, void* data, longattn_dtype dtype,
                                           int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim) {
  if (!t) return LONGATTN_ERROR_NULL_POINTER;
  const size_t es = longattn_dtype_size(dtype);
  if (es == 0) return LONGATTN_ERROR_UNKNOWN_ENUM;
  if (batch <= 0 || tokens <= 0 || heads <= 0 || head_dim <= 0) return LONGATTN_ERROR_INVALID_ARGUMENT;
  const int64_t per_block = longattn_dtype_block_elems(dtype);
  if (head_dim % per_block != 0) return LONGATTN_ERROR_INVALID_ARGUMENT;
  t->data = data;
  t->dtype = dtype;
  t->memory = LONGATTN_MEMORY_HOST;
  t->shape[0] = batch;
  t->shape[1] = tokens;
  t->shape[2] = heads;
  t->shape[3] = head_dim;
  t->strides[3] = int64_t(es);
  t->strides[2] = t->strides[3] * (head_dim / per_block);
  t->strides[1] = t->strides[2] * heads;
  t->strides[0] = t->strides[1] * tokens;
  return LONGATTN_OK;
}


}  // extern "C"

namespace {

int32_t device_count(longattn_backend backend) {
  try {
    switch (backend) {
      case LONGATTN_BACKEND_AUTO:
      case LONGATTN_BACKEND_CPU: return 1;
#if LONGATTN_HAVE_CUDA
      case LONGATTN_BACKEND_CUDA: return cuda_device_count();
#endif
#if LONGATTN_HAVE_VULKAN
      case LONGATTN_BACKEND_VULKAN: return vulkan_device_count();
#endif
      default: return 0;
    }
  } catch (...) {
    return 0;
  }
}

}  // namespace

extern "C" {

int32_t longattn_backend_available(longattn_backend backend) { return device_count(backend) > 0 ? 1 : 0; }

longattn_status longattn_device_count(longattn_backend backend, int32_t* count) {
  if (!count) return LONGATTN_ERROR_NULL_POINTER;
  if (backend < LONGATTN_BACKEND_AUTO || backend > LONGATTN_BACKEND_VULKAN) return LONGATTN_ERROR_UNKNOWN_ENUM;
  *count = device_count(backend);
  return LONGATTN_OK;
}

longattn_status longattn_device_name(longattn_backend backend, int32_t index, char* buf, size_t capacity) {
  if (!buf) return LONGATTN_ERROR_NULL_POINTER;
  if (backend < LONGATTN_BACKEND_AUTO || backend > LONGATTN_BACKEND_VULKAN) return LONGATTN_ERROR_UNKNOWN_ENUM;
  if (capacity == 0) return LONGATTN_ERROR_INVALID_ARGUMENT;
  if (index < 0 || index >= device_count(backend)) return LONGATTN_ERROR_INVALID_ARGUMENT;
  std::string name;
  try {
    switch (backend) {
#if LONGATTN_HAVE_CUDA
      case LONGATTN_BACKEND_CUDA: name = cuda_device_name(index); break;
#endif
#if LONGATTN_HAVE_VULKAN
      case LONGATTN_BACKEND_VULKAN: name = vulkan_device_name(index); break;
#endif
      default: name = std::string("CPU (") + cpu_isa_selected() + ")"; break;
    }
  } catch (...) {
    return LONGATTN_ERROR_DEVICE;
  }
  const size_t n = name.size() < capacity - 1 ? name.size() : capacity - 1;
  std::memcpy(buf, name.data(), n);
  buf[n] = '\0';
  return LONGATTN_OK;
}

}  // extern "C"
