// Vulkan benchmarks (not a correctness test): run only with LONGATTN_VULKAN_BENCH=1, on the first
// Vulkan device, with every tensor resident in device buffers (longattn_vulkan.h) so that the
// times are the kernels' (each call is recorded, submitted and waited for). Prints one JSON object
// per case: median milliseconds of the timed runs, TFLOP/s of the attention the mask allows
// (4·d per allowed pair and head, d = head_dim = head_dim_v), GB/s of Q, K, V, O moved once, and
// the device's copy bandwidth (vkCmdCopyBuffer, bytes read + written) as the decode ceiling.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "common.hpp"
#include "handles.hpp"

#if LONGATTN_HAVE_VULKAN

#include "../backends/vulkan/vk_instance.hpp"
#include "../backends/vulkan/vulkan_backend.hpp"
#include "longattn_vulkan.h"

namespace {

double now_ms() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

bool enabled() {
  const char* e = std::getenv("LONGATTN_VULKAN_BENCH");
  return e && std::string(e) == "1";
}

// A device tensor filled with N(0, 1) values (uploaded once).
struct DeviceTensor {
  longattn_context* ctx;
  longattn_tensor t{};
  void* ptr = nullptr;
  DeviceTensor(longattn_context* c, longattn_dtype dt, int64_t b, int64_t n, int64_t h, int64_t d, uint64_t seed)
      : ctx(c) {
    longattn_tensor_contiguous(&t, nullptr, dt, b, n, h, d);
    const size_t bytes = size_t(b * n * h * d) * longattn_dtype_size(dt);
    REQUIRE(longattn_vulkan_buffer_create(ctx, bytes, &ptr) == LONGATTN_OK);
    t.data = ptr;
    t.memory = LONGATTN_MEMORY_DEVICE;
    std::vector<uint8_t> host(bytes);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd;
    const size_t es = longattn_dtype_size(dt);
    for (size_t i = 0; i < bytes / es; ++i) longattn::store_from_float(host.data() + i * es, dt, nd(rng));
    REQUIRE(longattn_vulkan_buffer_upload(ctx, ptr, host.data(), bytes) == LONGATTN_OK);
  }
  ~DeviceTensor() { longattn_vulkan_buffer_destroy(ctx, ptr); }
};

struct Shape {
  const char* name;
  longattn_algorithm algo;
  int64_t n_q, n_k;
  int32_t hq, hkv, d;
  bool causal;
  int32_t window_left = -1, n_global = 0;
  int repeat = 5;
};

// Allowed (query, key) pairs of the mask for queries at positions n_k − n_q … n_k − 1.
double allowed_pairs(const Shape& s) {
  double pairs = 0;
  const int64_t pos0 = s.n_k - s.n_q;
  for (int64_t i = 0; i < s.n_q; ++i) {
    const int64_t qp = pos0 + i;
    int64_t hi = s.causal ? std::min(qp, s.n_k - 1) : s.n_k - 1;
    int64_t lo = s.window_left >= 0 ? std::max<int64_t>(0, qp - s.window_left) : 0;
    double n = double(std::max<int64_t>(0, hi - lo + 1));
    if (s.n_global > 0 && lo > 0) n += double(std::min<int64_t>(s.n_global, lo));
    pairs += n;
  }
  return pairs;
}

// LONGATTN_VULKAN_BENCH_CASES=a,b limits the run to the named cases.
bool selected(const char* name) {
  const char* list = std::getenv("LONGATTN_VULKAN_BENCH_CASES");
  if (!list || !*list) return true;
  const std::string l = std::string(",") + list + ",";
  return l.find(std::string(",") + name + ",") != std::string::npos;
}

void run(longattn_context* ctx, const Shape& s, const std::string& path_name) {
  const char* path = path_name.c_str();
  if (!selected(s.name)) return;
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.algorithm = s.algo;
  d.n_q_heads = s.hq;
  d.n_kv_heads = s.hkv;
  d.head_dim = s.d;
  d.causal = s.causal;
  if (s.algo == LONGATTN_ALGORITHM_SPARSE) {
    d.window_left = s.window_left;
    d.n_global = s.n_global;
  }
  longattn_attention* attn = nullptr;
  REQUIRE(longattn_attention_create(ctx, &d, &attn) == LONGATTN_OK);
  DeviceTensor q(ctx, LONGATTN_DTYPE_F16, 1, s.n_q, s.hq, s.d, 1), k(ctx, LONGATTN_DTYPE_F16, 1, s.n_k, s.hkv, s.d, 2);
  DeviceTensor v(ctx, LONGATTN_DTYPE_F16, 1, s.n_k, s.hkv, s.d, 3), o(ctx, LONGATTN_DTYPE_F16, 1, s.n_q, s.hq, s.d, 4);
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &q.t;
  a.k = &k.t;
  a.v = &v.t;
  a.out = &o.t;
  std::vector<double> times;
  auto& stream = dynamic_cast<longattn::vk::VulkanBackend&>(*ctx->backend).stream();
  std::vector<longattn::vk::CommandStream::ProfileEntry> gpu;  // of the last run (LONGATTN_VULKAN_PROFILE=1)
  for (int r = 0; r < 1 + s.repeat; ++r) {
    const double t0 = now_ms();
    REQUIRE_MESSAGE(longattn_attention_forward(ctx, attn, &a) == LONGATTN_OK, longattn_context_last_error(ctx));
    REQUIRE(longattn_vulkan_synchronize(ctx) == LONGATTN_OK);
    if (r > 0) times.push_back(now_ms() - t0);  // the first run compiles pipelines
    gpu = stream.take_profile();
  }
  for (const auto& e : gpu)
    std::printf("{\"case\":\"%s\",\"gpu_dispatch\":\"%s\",\"ms\":%.4f}\n", s.name, e.label.c_str(), e.ms);
  const double ms = median(times);
  const double flops = allowed_pairs(s) * s.hq * 4.0 * s.d;
  const double bytes = 2.0 * (double(s.n_q) * s.hq * 2 * s.d + double(s.n_k) * s.hkv * 2 * s.d);
  std::printf("{\"case\":\"%s\",\"path\":\"%s\",\"algo\":%d,\"n_q\":%lld,\"n_k\":%lld,\"heads\":\"%d:%d\",\"d\":%d,"
              "\"causal\":%d,\"window_left\":%d,\"n_global\":%d,\"ms\":%.4f,\"tflops\":%.2f,\"gbps\":%.1f}\n",
              s.name, path, s.algo, (long long)s.n_q, (long long)s.n_k, s.hq, s.hkv, s.d, s.causal ? 1 : 0,
              s.window_left, s.n_global, ms, flops / (ms * 1e9), bytes / (ms * 1e6));
  std::fflush(stdout);
  longattn_attention_destroy(attn);
}

}  // namespace

TEST_CASE("vulkan benchmark (LONGATTN_VULKAN_BENCH=1)") {
  if (!enabled()) return;
  longattn_context_options o = LONGATTN_CONTEXT_OPTIONS_INIT;
  o.backend = LONGATTN_BACKEND_VULKAN;
  longattn_context* ctx = nullptr;
  REQUIRE(longattn_context_create(&o, &ctx) == LONGATTN_OK);
  char name[256] = {0};
  longattn_device_name(LONGATTN_BACKEND_VULKAN, 0, name, sizeof name);
  const char* mode = std::getenv("LONGATTN_VULKAN_COOPMAT");
  std::string path = mode && std::string(mode) == "0" ? "portable" : "auto";
  // the decode kernel's switches (LONGATTN_VULKAN_DECODE=0 leaves decode to the portable kernel)
  if (const char* dec = std::getenv("LONGATTN_VULKAN_DECODE")) path += std::string(",decode=") + dec;
  if (const char* sp = std::getenv("LONGATTN_VULKAN_DECODE_SPLITS")) path += std::string(",splits=") + sp;
  const auto& info = longattn::vk::Instance::get()->devices()[0];
  std::printf("{\"device\":\"%s\",\"path\":\"%s\",\"cooperative_matrix_nv\":%d,\"subgroup\":%u,"
              "\"subgroup_shuffle\":%d,\"shared\":%u}\n",
              name, path.c_str(), info.cooperative_matrix_nv ? 1 : 0, info.subgroup_size, info.subgroup_shuffle ? 1 : 0,
              info.max_shared_memory);

  // copy bandwidth ceiling: 1 GiB device-to-device, bytes read + written
  {
    const size_t bytes = size_t(1) << 30;
    void *x = nullptr, *y = nullptr;
    REQUIRE(longattn_vulkan_buffer_create(ctx, bytes, &x) == LONGATTN_OK);
    REQUIRE(longattn_vulkan_buffer_create(ctx, bytes, &y) == LONGATTN_OK);
    std::vector<double> times;
    auto* be = ctx->backend.get();
    for (int r = 0; r < 6; ++r) {
      const double t0 = now_ms();
      be->copy(y, x, bytes, nullptr);
      be->synchronize(nullptr);
      if (r > 0) times.push_back(now_ms() - t0);
    }
    for (const auto& e : dynamic_cast<longattn::vk::VulkanBackend&>(*be).stream().take_profile())
      std::printf("{\"case\":\"copy\",\"gpu_dispatch\":\"%s\",\"ms\":%.4f}\n", e.label.c_str(), e.ms);
    const double ms = median(times);
    std::printf("{\"case\":\"copy\",\"bytes\":%zu,\"ms\":%.4f,\"gbps\":%.1f}\n", bytes, ms, 2.0 * bytes / (ms * 1e6));
    longattn_vulkan_buffer_destroy(ctx, x);
    longattn_vulkan_buffer_destroy(ctx, y);
  }
  const int64_t n = 16384;
  run(ctx, {"prefill_causal", LONGATTN_ALGORITHM_FLASH, n, n, 32, 8, 128, true, -1, 0, 3}, path);
  run(ctx, {"prefill_full", LONGATTN_ALGORITHM_FLASH, 4096, 4096, 32, 8, 128, false, -1, 0, 3}, path);
  run(ctx, {"decode", LONGATTN_ALGORITHM_FLASH, 1, 131072, 32, 8, 128, true, -1, 0, 20}, path);
  run(ctx, {"sparse_w4096", LONGATTN_ALGORITHM_SPARSE, n, n, 32, 8, 128, true, 4095, 4, 3}, path);
  run(ctx, {"hyper_causal", LONGATTN_ALGORITHM_HYPER, n, n, 32, 8, 128, true, -1, 0, 3}, path);
  longattn_context_destroy(ctx);
}

#else

TEST_CASE("vulkan benchmark: backend not compiled in") {}

#endif
