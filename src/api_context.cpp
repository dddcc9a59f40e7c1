// C ABI: contexts (backend choice, fallback, threads, last error).
#include <string>
#include <thread>
#include <vector>

#include "api_guard.hpp"
#include "extensible.hpp"

using namespace longattn;

namespace {

thread_local std::string t_create_error;

std::unique_ptr<Backend> make_backend(longattn_backend kind, int32_t device, int32_t n_threads) {
  switch (kind) {
    case LONGATTN_BACKEND_CPU: return make_cpu_backend(n_threads);
#if LONGATTN_HAVE_CUDA
    case LONGATTN_BACKEND_CUDA: return make_cuda_backend(device);
#endif
#if LONGATTN_HAVE_VULKAN
    case LONGATTN_BACKEND_VULKAN: return make_vulkan_backend(device);
#endif
    default:
      (void)device;
      throw Error(LONGATTN_ERROR_BACKEND_UNAVAILABLE,
                  std::string("backend ") + std::to_string(kind) + " is not compiled into this library");
  }
}

int32_t count_devices(longattn_backend kind) {
  int32_t n = 0;
  longattn_device_count(kind, &n);
  return n;
}

// AUTO: CUDA, then a real (non-CPU) Vulkan GPU, then the CPU.
longattn_backend pick_auto() {
  if (count_devices(LONGATTN_BACKEND_CUDA) > 0) return LONGATTN_BACKEND_CUDA;
#if LONGATTN_HAVE_VULKAN
  try {
    const int32_t n = vulkan_device_count();
    for (int32_t i = 0; i < n; ++i)
      if (vulkan_device_is_gpu(i)) return LONGATTN_BACKEND_VULKAN;
  } catch (...) {
  }
#endif
  return LONGATTN_BACKEND_CPU;
}

int32_t first_vulkan_gpu() {
#if LONGATTN_HAVE_VULKAN
  try {
    const int32_t n = vulkan_device_count();
    for (int32_t i = 0; i < n; ++i)
      if (vulkan_device_is_gpu(i)) return i;
  } catch (...) {
  }
#endif
  return 0;
}

}  // namespace

namespace longattn {
void set_create_error(const std::string& message) { t_create_error = message; }
}  // namespace longattn

extern "C" {

longattn_status longattn_context_create(const longattn_context_options* options, longattn_context** out) {
  t_create_error.clear();
  longattn_context scratch;  // collects the error message until the context exists
  const longattn_status st = guarded(&scratch, "longattn_context_create", [&] {
    LONGATTN_RETURN_IF(out == nullptr, LONGATTN_ERROR_NULL_POINTER, "out is NULL");
    const longattn_context_options defaults = LONGATTN_CONTEXT_OPTIONS_INIT;
    const longattn_context_options o =
        options ? read_extensible(options, defaults, LONGATTN_CONTEXT_OPTIONS_MIN_SIZE, "options") : defaults;
    LONGATTN_RETURN_IF(o.backend < LONGATTN_BACKEND_AUTO || o.backend > LONGATTN_BACKEND_VULKAN,
                       LONGATTN_ERROR_UNKNOWN_ENUM, "options.backend=" + std::to_string(o.backend) + " is not a known backend");
    LONGATTN_RETURN_IF(o.device_index < 0, LONGATTN_ERROR_INVALID_ARGUMENT,
                       "options.device_index=" + std::to_string(o.device_index) + " must be >= 0");
    LONGATTN_RETURN_IF(o.n_threads < 0, LONGATTN_ERROR_INVALID_ARGUMENT,
                       "options.n_threads=" + std::to_string(o.n_threads) + " must be >= 0 (0 = all cores)");
    LONGATTN_RETURN_IF((o.flags & ~(LONGATTN_CONTEXT_FALLBACK_CPU | LONGATTN_CONTEXT_RING_VIRTUAL)) != 0,
                       LONGATTN_ERROR_INVALID_ARGUMENT, "options.flags=" + std::to_string(o.flags) + " has unknown bits");
    LONGATTN_RETURN_IF(o.ring_devices < 0 || o.ring_devices > kMaxRingDevices, LONGATTN_ERROR_INVALID_ARGUMENT,
                       "options.ring_devices=" + std::to_string(o.ring_devices) + " must be in 0.." +
                           std::to_string(kMaxRingDevices) + " (0 = no ring)");
    LONGATTN_RETURN_IF(o.ring_layout < LONGATTN_RING_LAYOUT_AUTO || o.ring_layout > LONGATTN_RING_LAYOUT_ZIGZAG,
                       LONGATTN_ERROR_UNKNOWN_ENUM,
                       "options.ring_layout=" + std::to_string(o.ring_layout) + " is not a known ring layout");
    LONGATTN_RETURN_IF(o.ring_transport < LONGATTN_RING_TRANSPORT_AUTO || o.ring_transport > LONGATTN_RING_TRANSPORT_NCCL,
                       LONGATTN_ERROR_UNKNOWN_ENUM,
                       "options.ring_transport=" + std::to_string(o.ring_transport) +
                           " is not a known ring transport (LONGATTN_RING_TRANSPORT_AUTO, _PEER, _HOST_STAGED, _NCCL)");
    LONGATTN_RETURN_IF(o.ring_transport != LONGATTN_RING_TRANSPORT_AUTO && o.ring_devices == 0,
                       LONGATTN_ERROR_INVALID_ARGUMENT,
                       "options.ring_transport=" + std::to_string(o.ring_transport) +
                           " applies to ring contexts only; set options.ring_devices >= 1 too");
    // devices a ring spans: device_index … device_index + N − 1, or one with virtual ranks
    const int32_t span =
        o.ring_devices > 1 && !(o.flags & LONGATTN_CONTEXT_RING_VIRTUAL) ? o.ring_devices : 1;
    longattn_backend kind = o.backend;
    int32_t device = o.device_index;
    if (kind == LONGATTN_BACKEND_AUTO) {
      kind = pick_auto();
      if (kind == LONGATTN_BACKEND_VULKAN && o.device_index == 0) device = first_vulkan_gpu();
      if (kind == LONGATTN_BACKEND_CPU) device = 0;
      if (span > 1 && kind != LONGATTN_BACKEND_CPU && device + span > count_devices(kind)) kind = LONGATTN_BACKEND_CPU, device = 0;
    } else if (kind != LONGATTN_BACKEND_CPU && device + span > count_devices(kind)) {
      if (o.flags & LONGATTN_CONTEXT_FALLBACK_CPU) {
        kind = LONGATTN_BACKEND_CPU;
        device = 0;
      } else {
        throw Error(LONGATTN_ERROR_BACKEND_UNAVAILABLE,
                    "backend " + std::to_string(o.backend) + " device " + std::to_string(device + span - 1) +
                        " is not available (" + std::to_string(count_devices(kind)) +
                        " devices); set LONGATTN_CONTEXT_FALLBACK_CPU to fall back to the CPU" +
                        (span > 1 ? " or LONGATTN_CONTEXT_RING_VIRTUAL for virtual ranks on one device" : ""));
      }
    }
    auto ctx = std::make_unique<longattn_context>();
    ctx->kind = kind;
    ctx->device_index = device;
    ctx->n_threads = o.n_threads > 0 ? o.n_threads : int32_t(std::max(1u, std::thread::hardware_concurrency()));
    const int32_t rank_threads = ring_rank_threads(ctx->n_threads, o.ring_devices);
    try {
      ctx->backend = make_backend(kind, device, rank_threads);
    } catch (const Error& e) {
      if (!(o.flags & LONGATTN_CONTEXT_FALLBACK_CPU) || kind == LONGATTN_BACKEND_CPU) throw;
      ctx->kind = LONGATTN_BACKEND_CPU;
      ctx->device_index = 0;
      ctx->backend = make_backend(LONGATTN_BACKEND_CPU, 0, rank_threads);
    }
    ctx->ws = std::make_unique<Workspace>(*ctx->backend);
    if (o.ring_devices > 0) {  // ring mode: ranks 1 … N−1 beside the context's own backend (rank 0)
      const bool virtual_ranks = ctx->kind == LONGATTN_BACKEND_CPU || (o.flags & LONGATTN_CONTEXT_RING_VIRTUAL);
      const longattn_context& c = *ctx;
      std::vector<int32_t> devices;  // the device of every rank
      for (int32_t r = 0; r < o.ring_devices; ++r) devices.push_back(virtual_ranks ? c.device_index : c.device_index + r);
      ctx->ring = std::make_unique<RingGroup>(
          *ctx->backend, *ctx->ws, o.ring_devices,
          [&](int32_t r) { return make_backend(c.kind, devices[size_t(r)], rank_threads); },
          [&](RingGroup& g) { return make_ring_transport(g, c.kind, o.ring_transport, devices); }, o.ring_layout,
          ctx->kind == LONGATTN_BACKEND_CPU);
    }
    *out = ctx.release();
  });
  if (st != LONGATTN_OK) t_create_error = scratch.last_error;
  return st;
}

void longattn_context_destroy(longattn_context* ctx) {
  if (!ctx) return;
  try {
    ctx->ring.reset();
    ctx->ws.reset();
    ctx->backend.reset();
  } catch (...) {
  }
  delete ctx;
}

longattn_backend longattn_context_backend(const longattn_context* ctx) {
  return ctx ? ctx->kind : LONGATTN_BACKEND_AUTO;
}

int32_t longattn_context_threads(const longattn_context* ctx) { return ctx ? ctx->n_threads : 0; }

size_t longattn_context_scratch_bytes(const longattn_context* ctx) {
  if (!ctx) return 0;
  return (ctx->ws ? ctx->ws->bytes_held() : 0) + (ctx->backend ? ctx->backend->scratch_bytes() : 0);
}

const char* longattn_context_last_error(const longattn_context* ctx) {
  return ctx ? ctx->last_error.c_str() : "";
}

const char* longattn_last_create_error(void) { return t_create_error.c_str(); }

}  // extern "C"
