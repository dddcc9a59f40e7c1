// Vulkan benchmarks (not a correctness test): run only with LONGATTN_VULKAN_BENCH=1, on the first
// Vulkan device, with every tensor resident in device buffers (longattn_vulkan.h) so that the
// times are the kernels' (each call is recorded, submitted and waited for). Prints one JSON object
// per case: median milliseconds of the timed runs, TFLOP/s of the attention the mask allows
// (4·d per allowed pair and head, d = head_dim = head_dim_v), GB/s of Q, K, V, O moved once, and
// the device's copy bandwidth (vkCmdCopyBuffer, bytes read + written) as the decode ceiling.
// Every case is timed after kWarmupMs of back-to-back calls: NVIDIA's driver keeps an H100's SM
// clock at its idle 345 MHz through short bursts of work and raises it to 1980 MHz only under
// sustained load (a 0.4 ms decode measured cold runs up to 5.7× slower); prefill kernels were also
// seen 4–5× slower through the first second or two of a process at full clock.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
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

constexpr double kWarmupMs = 3000;

// Calls `call` back to back for at least kWarmupMs (and once at least).
template <class F>
void warm_up(F&& call) {
  const double t0 = now_ms();
  do call();
  while (now_ms() - t0 < kWarmupMs);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

std::string json_list(const std::vector<double>& v) {
  std::string out = "[";
  char buf[32];
  for (size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.3f", i ? "," : "", v[i]);
    out += buf;
  }
  return out + "]";
}

bool enabled() {
  const char* e = std::getenv("LONGATTN_VULKAN_BENCH");
  return e && std::string(e) == "1";
}

// A device tensor filled with N(mean, 1) values (uploaded once).
struct DeviceTensor {
  longattn_context* ctx;
  longattn_tensor t{};
  void* ptr = nullptr;
  DeviceTensor(longattn_context* c, longattn_dtype dt, int64_t b, int64_t n, int64_t h, int64_t d, uint64_t seed,
               float mean = 0.0f)
      : ctx(c) {
    longattn_tensor_contiguous(&t, nullptr, dt, b, n, h, d);
    const size_t bytes = size_t(b * n * h * d) * longattn_dtype_size(dt);
    REQUIRE(longattn_vulkan_buffer_create(ctx, bytes, &ptr) == LONGATTN_OK);
    t.data = ptr;
    t.memory = LONGATTN_MEMORY_DEVICE;
    std::vector<uint8_t> host(bytes);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(mean, 1.0f);
    const size_t es = longattn_dtype_size(dt);
    for (size_t i = 0; i < bytes / es; ++i) longattn::store_from_float(host.data() + i * es, dt, nd(rng));
    REQUIRE(longattn_vulkan_buffer_upload(ctx, ptr, host.data(), bytes) == LONGATTN_OK);
  }
  ~DeviceTensor() { longattn_vulkan_buffer_destroy(ctx, ptr); }
  // The tensor as a primitive's view (for calls to the backend's attend directly).
  longattn::View view() const {
    longattn::View x;
    x.data = t.data;
    x.dtype = t.dtype;
    for (int i = 0; i < 4; ++i) {
      x.shape[i] = t.shape[i];
      x.strides[i] = t.strides[i];
    }
    return x;
  }
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

// Whether LONGATTN_VULKAN_BENCH_CASES=a,b names the case.
bool named(const char* name) {
  const char* list = std::getenv("LONGATTN_VULKAN_BENCH_CASES");
  if (!list || !*list) return false;
  const std::string l = std::string(",") + list + ",";
  return l.find(std::string(",") + name + ",") != std::string::npos;
}

// LONGATTN_VULKAN_BENCH_SWEEP_SCALE=s: the primitive-level cases and the decode sweep divide their
// lengths by s (a quick check on slow devices); 1 when unset.
int64_t sweep_scale() {
  const char* e = std::getenv("LONGATTN_VULKAN_BENCH_SWEEP_SCALE");
  return e ? std::max<int64_t>(1, std::atoll(e)) : 1;
}

// LONGATTN_VULKAN_BENCH_CASES=a,b limits the run to the named cases (unset: every regular case).
bool selected(const char* name) {
  const char* list = std::getenv("LONGATTN_VULKAN_BENCH_CASES");
  return !list || !*list || named(name);
}

// The attention of a case (its algorithm, heads, head dim and mask), or FLASH under the same mask
// (the window and globals only where the case is SPARSE).
longattn_attention_desc desc_of(const Shape& s, longattn_algorithm algo) {
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.algorithm = algo;
  d.n_q_heads = s.hq;
  d.n_kv_heads = s.hkv;
  d.head_dim = s.d;
  d.causal = s.causal;
  if (algo == LONGATTN_ALGORITHM_SPARSE) {
    d.window_left = s.window_left;
    d.n_global = s.n_global;
  }
  return d;
}

// HYPER's error against exact attention on the same inputs, the spec's metric B: the mean over
// rows and heads of ‖õ − o‖ / ‖o‖, with o from FLASH under the same mask (f16 outputs of both).
double metric_b(longattn_context* ctx, const Shape& s, const longattn_forward_args& hyper_args, const DeviceTensor& hyper_out) {
  const longattn_attention_desc d = desc_of(s, LONGATTN_ALGORITHM_FLASH);
  longattn_attention* flash = nullptr;
  REQUIRE(longattn_attention_create(ctx, &d, &flash) == LONGATTN_OK);
  DeviceTensor exact(ctx, LONGATTN_DTYPE_F16, 1, s.n_q, s.hq, s.d, 5);
  longattn_forward_args a = hyper_args;
  a.out = &exact.t;
  REQUIRE(longattn_attention_forward(ctx, flash, &a) == LONGATTN_OK);
  REQUIRE(longattn_vulkan_synchronize(ctx) == LONGATTN_OK);
  longattn_attention_destroy(flash);
  const size_t n = size_t(s.n_q) * s.hq * s.d;
  std::vector<uint16_t> approx_h(n), exact_h(n);
  REQUIRE(longattn_vulkan_buffer_download(ctx, approx_h.data(), hyper_out.ptr, n * 2) == LONGATTN_OK);
  REQUIRE(longattn_vulkan_buffer_download(ctx, exact_h.data(), exact.ptr, n * 2) == LONGATTN_OK);
  double sum = 0;
  for (size_t row = 0; row < n / size_t(s.d); ++row) {
    double diff = 0, norm = 0;
    for (size_t c = row * s.d; c < (row + 1) * s.d; ++c) {
      const double x = longattn::f16_to_float(approx_h[c]), y = longattn::f16_to_float(exact_h[c]);
      diff += (x - y) * (x - y);
      norm += y * y;
    }
    sum += std::sqrt(diff / norm);
  }
  return sum / double(n / size_t(s.d));
}

void run(longattn_context* ctx, const Shape& s, const std::string& path_name) {
  const char* path = path_name.c_str();
  if (!selected(s.name)) return;
  const longattn_attention_desc d = desc_of(s, s.algo);
  longattn_attention* attn = nullptr;
  REQUIRE(longattn_attention_create(ctx, &d, &attn) == LONGATTN_OK);
  DeviceTensor q(ctx, LONGATTN_DTYPE_F16, 1, s.n_q, s.hq, s.d, 1), k(ctx, LONGATTN_DTYPE_F16, 1, s.n_k, s.hkv, s.d, 2);
  // V = N(0, 1) + 1, the spec's quality inputs: with zero-mean values the exact output of a long
  // row averages to nearly 0 and the relative error of metric B loses its meaning
  DeviceTensor v(ctx, LONGATTN_DTYPE_F16, 1, s.n_k, s.hkv, s.d, 3, 1.0f), o(ctx, LONGATTN_DTYPE_F16, 1, s.n_q, s.hq, s.d, 4);
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &q.t;
  a.k = &k.t;
  a.v = &v.t;
  a.out = &o.t;
  std::vector<double> times;
  auto& stream = dynamic_cast<longattn::vk::VulkanBackend&>(*ctx->backend).stream();
  std::vector<longattn::vk::CommandStream::ProfileEntry> gpu;  // of the last run (LONGATTN_VULKAN_PROFILE=1)
  std::vector<double> forward_times;  // the forward call alone (recording, submissions it makes)
  auto call = [&] {
    const double t0 = now_ms();
    REQUIRE_MESSAGE(longattn_attention_forward(ctx, attn, &a) == LONGATTN_OK, longattn_context_last_error(ctx));
    forward_times.push_back(now_ms() - t0);
    REQUIRE(longattn_vulkan_synchronize(ctx) == LONGATTN_OK);
  };
  warm_up(call);  // the first call also compiles the pipelines
  stream.take_profile();
  forward_times.clear();
  for (int r = 0; r < s.repeat; ++r) {
    const double t0 = now_ms();
    call();
    times.push_back(now_ms() - t0);
    gpu = stream.take_profile();
  }
  for (const auto& e : gpu)
    std::printf("{\"case\":\"%s\",\"gpu_dispatch\":\"%s\",\"ms\":%.4f,\"note\":\"%s\"}\n", s.name, e.label.c_str(),
                e.ms, e.note.c_str());
  // HYPER: its error against FLASH on the same inputs (after the timed runs)
  const std::string quality =
      s.algo == LONGATTN_ALGORITHM_HYPER ? ",\"metric_b\":" + std::to_string(metric_b(ctx, s, a, o)) : "";
  const double ms = median(times);
  const double flops = allowed_pairs(s) * s.hq * 4.0 * s.d;
  const double bytes = 2.0 * (double(s.n_q) * s.hq * 2 * s.d + double(s.n_k) * s.hkv * 2 * s.d);
  std::printf("{\"case\":\"%s\",\"path\":\"%s\",\"algo\":%d,\"n_q\":%lld,\"n_k\":%lld,\"heads\":\"%d:%d\",\"d\":%d,"
              "\"causal\":%d,\"window_left\":%d,\"n_global\":%d,\"ms\":%.4f,\"tflops\":%.2f,\"gbps\":%.1f,"
              "\"forward_ms\":%.4f,\"runs_ms\":%s%s}\n",
              s.name, path, s.algo, (long long)s.n_q, (long long)s.n_k, s.hq, s.hkv, s.d, s.causal ? 1 : 0,
              s.window_left, s.n_global, ms, flops / (ms * 1e9), bytes / (ms * 1e6), median(forward_times),
              json_list(times).c_str(), quality.c_str());
  std::fflush(stdout);
  longattn_attention_destroy(attn);
}

// A primitive attend call over the first `rows` query and key rows of device tensors (batch 1,
// heads and head dim from the tensors, scale 1/√d, no mask): the cases below add theirs.
longattn::AttendArgs attend_args(const DeviceTensor& q, const DeviceTensor& k, const DeviceTensor& v,
                                 const DeviceTensor& o, const DeviceTensor& lse, int64_t rows) {
  longattn::AttendArgs a;
  a.batch = 1;
  a.n_q = a.n_k = rows;
  a.n_q_heads = int32_t(q.t.shape[2]);
  a.n_kv_heads = int32_t(k.t.shape[2]);
  a.head_dim = a.head_dim_v = int32_t(q.t.shape[3]);
  a.q = q.view();
  a.k = k.view();
  a.v = v.view();
  a.out = o.view();
  a.lse = lse.view();
  a.q.shape[1] = a.k.shape[1] = a.v.shape[1] = a.out.shape[1] = a.lse.shape[1] = rows;
  a.scale = 1.0f / std::sqrt(float(a.head_dim));
  return a;
}

// One primitive attend call timed: warm-up, then 10 calls, each synchronized (wall ms); the GPU
// dispatches of the last call are printed as JSON lines (with LONGATTN_VULKAN_PROFILE=1).
std::vector<double> time_attend(longattn::vk::VulkanBackend& backend, const longattn::AttendArgs& a, const char* name) {
  auto call = [&] {
    backend.attend(a);
    backend.synchronize(nullptr);
  };
  warm_up(call);
  backend.stream().take_profile();
  std::vector<double> times;
  std::vector<longattn::vk::CommandStream::ProfileEntry> gpu;
  for (int r = 0; r < 10; ++r) {
    const double t0 = now_ms();
    call();
    times.push_back(now_ms() - t0);
    gpu = backend.stream().take_profile();
  }
  for (const auto& e : gpu)
    std::printf("{\"case\":\"%s\",\"gpu_dispatch\":\"%s\",\"ms\":%.4f,\"note\":\"%s\"}\n", name, e.label.c_str(), e.ms,
                e.note.c_str());
  return times;
}

// HYPER causal's exact leaves at n = 16384 (b = m = 256, n0 = 4096), through the backend: one attend
// with 4 segments of 4096 rows, causal, fp32 out and LSE (the accumulator HYPER merges into)
// ("hyper_leaves"), and the same attend over the first segment alone ("causal_4096_f32"): at
// FLASH's rate per allowed pair the first takes 4× the second, and a quarter of prefill_causal.
// Median wall time of attend + synchronize, and the GPU time of the last run's dispatches.
// LONGATTN_VULKAN_BENCH_SWEEP_SCALE divides the lengths, as in the decode sweep.
void segmented_causal(longattn_context* ctx) {
  if (!selected("hyper_leaves") && !selected("causal_4096_f32")) return;
  auto& backend = dynamic_cast<longattn::vk::VulkanBackend&>(*ctx->backend);
  const int64_t scale = sweep_scale();
  const int64_t n = 16384 / scale, seg = 4096 / scale;
  const int32_t hq = 32, hkv = 8, d = 128;
  DeviceTensor q(ctx, LONGATTN_DTYPE_F16, 1, n, hq, d, 1), k(ctx, LONGATTN_DTYPE_F16, 1, n, hkv, d, 2);
  DeviceTensor v(ctx, LONGATTN_DTYPE_F16, 1, n, hkv, d, 3), o(ctx, LONGATTN_DTYPE_F32, 1, n, hq, d, 4);
  DeviceTensor lse(ctx, LONGATTN_DTYPE_F32, 1, n, hq, 1, 5);
  for (int segments : {4, 1}) {
    const char* name = segments == 4 ? "hyper_leaves" : "causal_4096_f32";
    if (!selected(name)) continue;
    const int64_t rows = segments * seg;
    std::vector<int64_t> bounds;
    for (int i = 0; i <= segments; ++i) bounds.push_back(i * seg);
    longattn::AttendArgs a = attend_args(q, k, v, o, lse, rows);
    a.mask.causal = true;
    a.n_segments = segments;
    a.q_seg = bounds.data();
    a.k_seg = bounds.data();
    const std::vector<double> times = time_attend(backend, a, name);
    const double ms = median(times);
    const double pairs = double(segments) * double(seg) * double(seg + 1) / 2;
    std::printf("{\"case\":\"%s\",\"segments\":%d,\"rows\":%lld,\"ms\":%.4f,\"tflops\":%.2f,\"runs_ms\":%s}\n", name,
                segments, (long long)rows, ms, pairs * hq * 4.0 * d / (ms * 1e9), json_list(times).c_str());
    std::fflush(stdout);
  }
}

// A device buffer of int32 values (uploaded once).
struct DeviceInts {
  longattn_context* ctx;
  void* ptr = nullptr;
  DeviceInts(longattn_context* c, const std::vector<int32_t>& v) : ctx(c) {
    REQUIRE(longattn_vulkan_buffer_create(ctx, v.size() * sizeof(int32_t), &ptr) == LONGATTN_OK);
    REQUIRE(longattn_vulkan_buffer_upload(ctx, ptr, v.data(), v.size() * sizeof(int32_t)) == LONGATTN_OK);
  }
  ~DeviceInts() { longattn_vulkan_buffer_destroy(ctx, ptr); }
  const int32_t* ints() const { return static_cast<const int32_t*>(ptr); }
};

// HYPER's level-0 block and sample calls alone (n = 8192 rows, 32 / 8 heads, d = 128, fp32 out +
// LSE), and the same work without gathers, to see what each feature of the general variant costs:
//   blocks_plain      32 segments of 256 rows × 256 keys, rows in place (plain variant)
//   blocks_gather_id  the same with q_rows / k_rows = identity (general variant, in-order reads)
//   blocks_gather     the same with random permutations per query / KV head (HYPER's block call)
//   samples           every row against 256 gathered keys with log-weights and exclusion groups
//                     (HYPER's sample call)
// At FLASH's rate per pair each takes n · 256 · 32 · 4 · 128 flops ÷ its TFLOP/s.
void hyper_block_calls(longattn_context* ctx) {
  const char* names[] = {"blocks_plain", "blocks_gather_id", "blocks_gather", "samples"};
  bool any = false;
  for (const char* nm : names) any = any || selected(nm);
  if (!any) return;
  auto& backend = dynamic_cast<longattn::vk::VulkanBackend&>(*ctx->backend);
  // (sweep_scale() divides the row count: a quick check)
  const int64_t scale = sweep_scale();
  // LONGATTN_VULKAN_BENCH_BLOCK=b: keys per row (block length; 256, HYPER's default, unless set):
  // a sweep over b separates each workgroup's fixed cost from its cost per key tile
  const char* block_env = std::getenv("LONGATTN_VULKAN_BENCH_BLOCK");
  const int64_t n = 8192 / scale;
  const int64_t b = block_env ? std::clamp<int64_t>(std::atoll(block_env), 16, n) : std::min<int64_t>(256, n);
  const int64_t nb = n / b;
  const int32_t hq = 32, hkv = 8, d = 128;
  DeviceTensor q(ctx, LONGATTN_DTYPE_F16, 1, n, hq, d, 11), k(ctx, LONGATTN_DTYPE_F16, 1, n, hkv, d, 12);
  DeviceTensor v(ctx, LONGATTN_DTYPE_F16, 1, n, hkv, d, 13), o(ctx, LONGATTN_DTYPE_F32, 1, n, hq, d, 14);
  DeviceTensor lse(ctx, LONGATTN_DTYPE_F32, 1, n, hq, 1, 15);
  std::mt19937 rng(7);
  auto perms = [&](int64_t heads, bool identity) {
    std::vector<int32_t> p(size_t(heads * n));
    for (int64_t h = 0; h < heads; ++h) {
      int32_t* ph = p.data() + h * n;
      for (int64_t i = 0; i < n; ++i) ph[i] = int32_t(i);
      if (!identity) std::shuffle(ph, ph + n, rng);
    }
    return p;
  };
  const DeviceInts qp_id(ctx, perms(hq, true)), kp_id(ctx, perms(hkv, true));
  const DeviceInts qp(ctx, perms(hq, false)), kp(ctx, perms(hkv, false));
  std::vector<int32_t> sample_rows(size_t(hkv * b)), sample_block(size_t(hkv * b)), query_block(size_t(hq * n));
  std::vector<float> logw(size_t(hkv * b), std::log(float(n) / float(b)));
  for (size_t x = 0; x < sample_rows.size(); ++x) {
    sample_rows[x] = int32_t(rng() % uint32_t(n));
    sample_block[x] = sample_rows[x] / int32_t(b);
  }
  for (size_t x = 0; x < query_block.size(); ++x) query_block[x] = int32_t((x % size_t(n)) / size_t(b));
  std::vector<int32_t> logw_bits(logw.size());
  std::memcpy(logw_bits.data(), logw.data(), logw.size() * sizeof(float));
  const DeviceInts s_rows(ctx, sample_rows), s_block(ctx, sample_block), q_block(ctx, query_block);
  const DeviceInts s_logw(ctx, logw_bits);
  std::vector<int64_t> bounds;
  for (int64_t i = 0; i <= nb; ++i) bounds.push_back(i * b);
  for (const char* name : names) {
    if (!selected(name)) continue;
    const std::string nm = name;
    longattn::AttendArgs a = attend_args(q, k, v, o, lse, n);
    if (nm == "samples") {
      a.n_k = b;
      a.q_rows = qp.ints();
      a.k_rows = s_rows.ints();
      a.key_logw = reinterpret_cast<const float*>(s_logw.ints());
      a.q_group = q_block.ints();
      a.k_group = s_block.ints();
    } else {
      a.n_segments = int32_t(nb);
      a.q_seg = bounds.data();
      a.k_seg = bounds.data();
      if (nm == "blocks_gather_id") {
        a.q_rows = qp_id.ints();
        a.k_rows = kp_id.ints();
      } else if (nm == "blocks_gather") {
        a.q_rows = qp.ints();
        a.k_rows = kp.ints();
      }
    }
    const std::vector<double> times = time_attend(backend, a, name);
    const double ms = median(times);
    const double pairs = double(n) * double(b);
    std::printf("{\"case\":\"%s\",\"rows\":%lld,\"keys_per_row\":%lld,\"ms\":%.4f,\"tflops\":%.2f,\"runs_ms\":%s}\n", name,
                (long long)n, (long long)b, ms, pairs * hq * 4.0 * d / (ms * 1e9), json_list(times).c_str());
    std::fflush(stdout);
  }
}

// One decode-kernel choice of the sweep below (0 = the backend's own choice); spin_us < 0 keeps
// the stream's fence polling.
struct DecodeChoice {
  int64_t splits = 0;
  int32_t keys = 0, heads = 0;
  bool prefetch = true, loads_only = false;
  int32_t spin_us = -1;
  int64_t n_k = 131072;
  int32_t hq = 32;
};

// LONGATTN_VULKAN_BENCH_CASES=decode_sweep: the decode shape (f16, 32 / 8 heads, d = 128) under
// several choices of the decode kernel, K/V uploaded once per key count. Prints per choice the
// median wall time of forward + synchronize and, with LONGATTN_VULKAN_PROFILE=1, the median GPU
// time of the kernel and of the combine and the host's submit and wait times.
// Opt-in (not part of the default run); LONGATTN_VULKAN_BENCH_SWEEP_SCALE=s divides every key
// count by s (a quick check on slow devices).
void decode_sweep(longattn_context* ctx) {
  if (!named("decode_sweep")) return;
  const int64_t scale = sweep_scale();
  std::vector<DecodeChoice> choices;
  auto add = [&](DecodeChoice c) { choices.push_back(c); };
  add({});                                 // the backend's choice
  add({0, 0, 0, true, false, 0});          // … with a blocking fence wait
  add({0, 0, 0, true, true});              // the loads alone: the memory system's rate for this pattern
  add({32, 4, 1, false});                  // the previous kernel's choices (4 keys, 1 head, 32 splits)
  for (int32_t k : {1, 2, 4, 5, 6, 8}) add({0, k});           // keys per lane and step, loaded ahead
  for (int32_t k : {2, 4, 8}) add({0, k, 0, false});          // … not loaded ahead
  for (int64_t sp : {132, 264, 396, 792, 1024}) add({sp});    // splits
  for (int32_t h : {1, 2, 4}) add({0, 0, h});                 // KV heads per workgroup
  add({0, 0, 0, true, false, -1, 131072, 64});               // 64 query heads: two head blocks
  add({0, 1, 0, true, false, -1, 131072, 64});
  add({0, 0, 0, true, false, -1, 16384});                    // shorter contexts
  add({0, 0, 0, true, false, -1, 2048});
  add({0, 0, 0, true, false, 0, 2048});
  add({0, 0, 8, true, false, -1, 2048});

  auto& backend = dynamic_cast<longattn::vk::VulkanBackend&>(*ctx->backend);
  const longattn::vk::DecodeTuning saved = backend.decode_tuning();
  const uint32_t saved_spin = backend.stream().spin_us();
  int64_t loaded_n_k = -1;
  std::unique_ptr<DeviceTensor> q, k, v, o;
  for (DecodeChoice c : choices) {
    c.n_k /= scale;
    if (c.n_k != loaded_n_k) {
      k.reset();
      v.reset();
      k = std::make_unique<DeviceTensor>(ctx, LONGATTN_DTYPE_F16, 1, c.n_k, 8, 128, 2);
      v = std::make_unique<DeviceTensor>(ctx, LONGATTN_DTYPE_F16, 1, c.n_k, 8, 128, 3);
      loaded_n_k = c.n_k;
    }
    q = std::make_unique<DeviceTensor>(ctx, LONGATTN_DTYPE_F16, 1, 1, c.hq, 128, 1);
    o = std::make_unique<DeviceTensor>(ctx, LONGATTN_DTYPE_F16, 1, 1, c.hq, 128, 4);
    longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
    d.n_q_heads = c.hq;
    d.n_kv_heads = 8;
    d.head_dim = 128;
    d.causal = 1;
    longattn_attention* attn = nullptr;
    REQUIRE(longattn_attention_create(ctx, &d, &attn) == LONGATTN_OK);
    longattn::vk::DecodeTuning t;
    t.splits = c.splits;
    t.keys = c.keys;
    t.heads = c.heads;
    t.prefetch = c.prefetch;
    t.loads_only = c.loads_only;
    backend.set_decode_tuning(t);
    backend.stream().set_spin_us(c.spin_us < 0 ? saved_spin : uint32_t(c.spin_us));
    longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
    a.q = &q->t;
    a.k = &k->t;
    a.v = &v->t;
    a.out = &o->t;
    std::vector<double> wall;
    std::map<std::string, std::vector<double>> gpu;
    auto call = [&] {
      REQUIRE_MESSAGE(longattn_attention_forward(ctx, attn, &a) == LONGATTN_OK, longattn_context_last_error(ctx));
      REQUIRE(longattn_vulkan_synchronize(ctx) == LONGATTN_OK);
    };
    warm_up(call);  // the first call also compiles the pipelines
    backend.stream().take_profile();
    for (int r = 0; r < 20; ++r) {
      const double t0 = now_ms();
      call();
      wall.push_back(now_ms() - t0);
      for (const auto& e : backend.stream().take_profile()) gpu[e.label].push_back(e.ms);
    }
    longattn_attention_destroy(attn);
    const double ms = median(wall);
    const double bytes = 2.0 * (2.0 * c.hq * 128 + double(c.n_k) * 8 * 2 * 128);
    std::printf("{\"case\":\"decode_sweep\",\"hq\":%d,\"n_k\":%lld,\"splits\":%lld,\"keys\":%d,\"heads\":%d,"
                "\"prefetch\":%d,\"loads_only\":%d,\"spin_us\":%d,\"ms\":%.4f,\"gbps\":%.1f",
                c.hq, (long long)c.n_k, (long long)c.splits, c.keys, c.heads, c.prefetch ? 1 : 0, c.loads_only ? 1 : 0,
                c.spin_us, ms, bytes / (ms * 1e6));
    for (const auto& [label, v] : gpu) std::printf(",\"%s\":%.4f", label.c_str(), median(v));
    if (gpu.count("attend_decode"))
      std::printf(",\"kernel_gbps\":%.1f", bytes / (median(gpu["attend_decode"]) * 1e6));
    std::printf("}\n");
    std::fflush(stdout);
  }
  q.reset();
  k.reset();
  v.reset();
  o.reset();
  backend.set_decode_tuning(saved);
  backend.stream().set_spin_us(saved_spin);
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
    auto call = [&] {
      be->copy(y, x, bytes, nullptr);
      be->synchronize(nullptr);
    };
    warm_up(call);
    dynamic_cast<longattn::vk::VulkanBackend&>(*be).stream().take_profile();
    for (int r = 0; r < 5; ++r) {
      const double t0 = now_ms();
      call();
      times.push_back(now_ms() - t0);
    }
    for (const auto& e : dynamic_cast<longattn::vk::VulkanBackend&>(*be).stream().take_profile())
      std::printf("{\"case\":\"copy\",\"gpu_dispatch\":\"%s\",\"ms\":%.4f}\n", e.label.c_str(), e.ms);
    const double ms = median(times);
    std::printf("{\"case\":\"copy\",\"bytes\":%zu,\"ms\":%.4f,\"gbps\":%.1f}\n", bytes, ms, 2.0 * bytes / (ms * 1e6));
    longattn_vulkan_buffer_destroy(ctx, x);
    longattn_vulkan_buffer_destroy(ctx, y);
  }
  decode_sweep(ctx);
  const int64_t n = 16384;
  run(ctx, {"prefill_causal", LONGATTN_ALGORITHM_FLASH, n, n, 32, 8, 128, true, -1, 0, 3}, path);
  run(ctx, {"prefill_full", LONGATTN_ALGORITHM_FLASH, 4096, 4096, 32, 8, 128, false, -1, 0, 3}, path);
  run(ctx, {"decode", LONGATTN_ALGORITHM_FLASH, 1, 131072, 32, 8, 128, true, -1, 0, 20}, path);
  run(ctx, {"sparse_w4096", LONGATTN_ALGORITHM_SPARSE, n, n, 32, 8, 128, true, 4095, 4, 5}, path);
  run(ctx, {"hyper_causal", LONGATTN_ALGORITHM_HYPER, n, n, 32, 8, 128, true, -1, 0, 10}, path);
  // n = 65536, the length of the CPU's SPARSE / HYPER table (docs/PERFORMANCE.md): run only when
  // named in LONGATTN_VULKAN_BENCH_CASES (FLASH takes ~0.2 – 0.4 s a call there)
  const int64_t n_long = 65536;
  const Shape long_cases[] = {
      {"prefill_causal_65536", LONGATTN_ALGORITHM_FLASH, n_long, n_long, 32, 8, 128, true, -1, 0, 3},
      {"sparse_w4096_65536", LONGATTN_ALGORITHM_SPARSE, n_long, n_long, 32, 8, 128, true, 4095, 4, 5},
      {"hyper_causal_65536", LONGATTN_ALGORITHM_HYPER, n_long, n_long, 32, 8, 128, true, -1, 0, 5},
      {"prefill_full_65536", LONGATTN_ALGORITHM_FLASH, n_long, n_long, 32, 8, 128, false, -1, 0, 3},
      {"hyper_full_65536", LONGATTN_ALGORITHM_HYPER, n_long, n_long, 32, 8, 128, false, -1, 0, 5}};
  for (const Shape& s : long_cases)
    if (named(s.name)) run(ctx, s, path);
  segmented_causal(ctx);
  hyper_block_calls(ctx);
  longattn_context_destroy(ctx);
}

#else

TEST_CASE("vulkan benchmark: backend not compiled in") {}

#endif
