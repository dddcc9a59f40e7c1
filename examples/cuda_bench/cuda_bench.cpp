// cuda_bench: times longattn's CUDA backend through the public API on device tensors, and the
// device-to-device copy bandwidth of the same GPU, for docs/PERFORMANCE_CUDA.md.
//
//   cuda_bench [--quick] [--reps N] [--only NAME[,NAME…]]
//     NAME: overhead prefill128 prefill64 decode sparse hyper (hyper-causal, hyper-noncausal)
//   cuda_bench --only ring [--ring-tokens N]   (ring mode only; not part of the default run)
//   cuda_bench --only ring-gpus [--ring-tokens N]   (ring mode over this machine's GPUs)
//
// Each case: Q, K ~ N(0,1) and V ~ N(1,1) in bf16 (never zeros), one warm-up call, then `reps` calls each timed
// with CUDA events on the call's stream; the median is reported. FLOPs count 4·n_q·n_k·d·hq for
// full attention (halved for causal), whatever work the algorithm actually skips, so SPARSE and
// HYPER report "equivalent" TFLOP/s; their speed-up over causal FLASH is printed separately.
// Output: one line per case, "name  shape  ms  TFLOP/s  GB/s", then the ratios.
//
// `--only ring`: ring mode with N = 1, 2, 4 virtual ranks on this GPU (per-rank zigzag shard
// tensors in device memory, longattn_attention_forward_sharded) against single-device causal
// FLASH on the same tokens (32/8 heads, d = 128, bf16). Both are timed on the wall clock around
// the whole call after a device synchronize (the sharded call returns when its outputs are
// written), median of 5 after one warm-up; the gathered ring output is compared with FLASH.
// Transports: AUTO (device-to-device copies between virtual ranks) for N = 1, 2, 4; pinned-host
// staging forced (LONGATTN_RING_TRANSPORT_HOST_STAGED) for N = 2, 4; NCCL for N = 1 when NCCL
// loads (one GPU allows one NCCL rank).
// `--only ring-gpus`: the same over real GPUs — N = 2 and (with 4 GPUs) 4 ranks on devices
// 0 … N − 1, each rank's shards allocated on its own GPU, transports AUTO (peer copies), PEER,
// HOST_STAGED and NCCL — against single-device FLASH on device 0.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "longattn.h"

namespace {

#define CHECK_CUDA(x)                                                                   \
  do {                                                                                  \
    cudaError_t e_ = (x);                                                               \
    if (e_ != cudaSuccess) {                                                            \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(2);                                                                     \
    }                                                                                   \
  } while (0)

#define CHECK_LA(ctx, x)                                                                          \
  do {                                                                                            \
    longattn_status s_ = (x);                                                                     \
    if (s_ != LONGATTN_OK) {                                                                      \
      std::fprintf(stderr, "%s:%d %s: %s (%s)\n", __FILE__, __LINE__, #x, longattn_status_string(s_), \
                   longattn_context_last_error(ctx));                                             \
      std::exit(3);                                                                               \
    }                                                                                             \
  } while (0)

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float from_bf16(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

struct DeviceTensor {
  void* ptr = nullptr;
  longattn_tensor t{};
  DeviceTensor(int64_t b, int64_t n, int64_t h, int64_t d, longattn_dtype dtype = LONGATTN_DTYPE_BF16) {
    longattn_tensor_contiguous(&t, nullptr, dtype, b, n, h, d);
    const size_t bytes = size_t(b * n * h * d) * longattn_dtype_size(dtype);
    CHECK_CUDA(cudaMalloc(&ptr, bytes));
    t.data = ptr;
    t.memory = LONGATTN_MEMORY_DEVICE;
  }
  ~DeviceTensor() { cudaFree(ptr); }
  size_t elems() const { return size_t(t.shape[0] * t.shape[1] * t.shape[2] * t.shape[3]); }
  void fill_random(uint64_t seed, float mean = 0.0f) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(mean, 1.0f);
    std::vector<uint16_t> h(elems());
    for (auto& x : h) x = to_bf16(nd(rng));
    CHECK_CUDA(cudaMemcpy(ptr, h.data(), h.size() * 2, cudaMemcpyHostToDevice));
  }
  std::vector<float> download_bf16() const {
    std::vector<uint16_t> h(elems());
    CHECK_CUDA(cudaMemcpy(h.data(), ptr, h.size() * 2, cudaMemcpyDeviceToHost));
    std::vector<float> f(h.size());
    for (size_t i = 0; i < h.size(); ++i) f[i] = from_bf16(h[i]);
    return f;
  }
};

struct Shape {
  int64_t n_q, n_k;
  int32_t hq, hkv, d;
};

struct Timing {
  double ms = 0, tflops = 0, gbs = 0;
  double host_ms = 0;  // median wall time until the call returned (enqueue and host work)
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double wall_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Times `reps` forward calls of desc on the shape (after one warm-up), returns the median.
Timing time_forward(longattn_context* ctx, const longattn_attention_desc& desc, const Shape& s, int reps,
                    cudaStream_t stream, DeviceTensor* out_keep = nullptr) {
  DeviceTensor q(1, s.n_q, s.hq, s.d), k(1, s.n_k, s.hkv, s.d), v(1, s.n_k, s.hkv, s.d);
  DeviceTensor out_local(1, s.n_q, s.hq, s.d);
  DeviceTensor& out = out_keep ? *out_keep : out_local;
  q.fill_random(1), k.fill_random(2), v.fill_random(3, 1.0f);  // V = N(0,1) + 1
  longattn_attention* attn = nullptr;
  CHECK_LA(ctx, longattn_attention_create(ctx, &desc, &attn));
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &q.t, a.k = &k.t, a.v = &v.t, a.out = &out.t, a.stream = stream;
  CHECK_LA(ctx, longattn_attention_forward(ctx, attn, &a));  // warm-up: scratch, module load
  CHECK_CUDA(cudaStreamSynchronize(stream));
  cudaEvent_t e0, e1;
  CHECK_CUDA(cudaEventCreate(&e0));
  CHECK_CUDA(cudaEventCreate(&e1));
  std::vector<double> ms, host_ms;
  for (int r = 0; r < reps; ++r) {
    CHECK_CUDA(cudaEventRecord(e0, stream));
    const double h0 = wall_ms();
    CHECK_LA(ctx, longattn_attention_forward(ctx, attn, &a));
    host_ms.push_back(wall_ms() - h0);
    CHECK_CUDA(cudaEventRecord(e1, stream));
    CHECK_CUDA(cudaEventSynchronize(e1));
    float t = 0;
    CHECK_CUDA(cudaEventElapsedTime(&t, e0, e1));
    ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  longattn_attention_destroy(attn);
  Timing tm;
  tm.ms = median(ms);
  tm.host_ms = median(host_ms);
  const double pairs = desc.causal ? double(s.n_q) * s.n_k / 2 : double(s.n_q) * s.n_k;
  tm.tflops = 4.0 * pairs * s.d * s.hq / (tm.ms * 1e-3) / 1e12;
  const double bytes = 2.0 * (double(s.n_q) * s.hq * s.d * 2 + double(s.n_k) * s.hkv * s.d * 2);
  tm.gbs = bytes / (tm.ms * 1e-3) / 1e9;
  return tm;
}

double copy_bandwidth_gbs(cudaStream_t stream) {
  const size_t bytes = size_t(1) << 31;  // 2 GiB, far beyond L2
  void *a = nullptr, *b = nullptr;
  CHECK_CUDA(cudaMalloc(&a, bytes));
  CHECK_CUDA(cudaMalloc(&b, bytes));
  CHECK_CUDA(cudaMemsetAsync(a, 1, bytes, stream));
  CHECK_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream));
  cudaEvent_t e0, e1;
  CHECK_CUDA(cudaEventCreate(&e0));
  CHECK_CUDA(cudaEventCreate(&e1));
  std::vector<double> ms;
  for (int r = 0; r < 10; ++r) {
    CHECK_CUDA(cudaEventRecord(e0, stream));
    CHECK_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream));
    CHECK_CUDA(cudaEventRecord(e1, stream));
    CHECK_CUDA(cudaEventSynchronize(e1));
    float t = 0;
    CHECK_CUDA(cudaEventElapsedTime(&t, e0, e1));
    ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(bytes) / (median(ms) * 1e-3) / 1e9;  // read + write
}

longattn_attention_desc flash_desc(const Shape& s, bool causal) {
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.n_q_heads = s.hq, d.n_kv_heads = s.hkv, d.head_dim = s.d, d.causal = causal;
  return d;
}

void print(const char* name, const Shape& s, bool causal, const Timing& t) {
  std::printf("%-28s n_q=%-7lld n_k=%-7lld h=%d/%d d=%-3d %-10s %10.3f ms %8.1f TFLOP/s %8.1f GB/s\n", name,
              (long long)s.n_q, (long long)s.n_k, s.hq, s.hkv, s.d, causal ? "causal" : "non-causal", t.ms,
              t.tflops, t.gbs);
  std::fflush(stdout);
}

// Mean over rows of ‖a_i − b_i‖ / ‖b_i‖ (metric B of specs/hyperattention.md, vs exact FLASH).
double mean_row_error(const std::vector<float>& a, const std::vector<float>& b, int64_t d) {
  double sum = 0;
  const size_t rows = a.size() / size_t(d);
  for (size_t r = 0; r < rows; ++r) {
    double num = 0, den = 0;
    for (int64_t c = 0; c < d; ++c) {
      const double x = a[r * size_t(d) + size_t(c)], y = b[r * size_t(d) + size_t(c)];
      num += (x - y) * (x - y);
      den += y * y;
    }
    sum += den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  }
  return sum / double(rows);
}


// Relative Frobenius difference ‖a − b‖/‖b‖ and the largest |a − b|.
void compare(const std::vector<float>& a, const std::vector<float>& b, double& rel, double& max_abs) {
  double num = 0, den = 0;
  max_abs = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
    max_abs = std::max(max_abs, std::fabs(d));
  }
  rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Ring mode on one GPU: N virtual ranks against single-device FLASH (see the header comment).
void bench_ring(int64_t n, cudaStream_t stream, bool real_gpus) {
  constexpr int kReps = 5;
  constexpr int32_t kHq = 32, kHkv = 8, kD = 128;
  const Shape s{n, n, kHq, kHkv, kD};
  const longattn_attention_desc desc = flash_desc(s, true);
  DeviceTensor q(1, n, kHq, kD), k(1, n, kHkv, kD), v(1, n, kHkv, kD), out(1, n, kHq, kD);
  q.fill_random(1), k.fill_random(2), v.fill_random(3, 1.0f);
  auto tflops = [&](double ms) { return 4.0 * double(n) * double(n) / 2 * kD * kHq / (ms * 1e-3) / 1e12; };

  double single_ms = 0;
  {
    longattn_context* ctx = nullptr;
    longattn_context_options o = LONGATTN_CONTEXT_OPTIONS_INIT;
    o.backend = LONGATTN_BACKEND_CUDA;
    CHECK_LA(ctx, longattn_context_create(&o, &ctx));
    longattn_attention* attn = nullptr;
    CHECK_LA(ctx, longattn_attention_create(ctx, &desc, &attn));
    longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
    a.q = &q.t, a.k = &k.t, a.v = &v.t, a.out = &out.t, a.stream = stream;
    std::vector<double> ms;
    for (int r = 0; r <= kReps; ++r) {
      CHECK_CUDA(cudaDeviceSynchronize());
      const double t0 = wall_ms();
      CHECK_LA(ctx, longattn_attention_forward(ctx, attn, &a));
      CHECK_CUDA(cudaStreamSynchronize(stream));
      if (r > 0) ms.push_back(wall_ms() - t0);  // the first call is the warm-up
    }
    single_ms = median(ms);
    std::printf("%-40s n=%-7lld h=%d/%d d=%d causal %10.3f ms %8.1f TFLOP/s  scratch %.1f MiB\n",
                "single-device flash (device)", (long long)n, kHq, kHkv, kD, single_ms, tflops(single_ms),
                double(longattn_context_scratch_bytes(ctx)) / (1 << 20));
    longattn_attention_destroy(attn);
    longattn_context_destroy(ctx);
  }
  const std::vector<float> want = out.download_bf16();
  const size_t row_bytes = size_t(kHq) * kD * 2, kv_row_bytes = size_t(kHkv) * kD * 2;

  std::vector<std::pair<int32_t, longattn_ring_transport>> runs = {
      {1, LONGATTN_RING_TRANSPORT_AUTO},        {2, LONGATTN_RING_TRANSPORT_AUTO},
      {4, LONGATTN_RING_TRANSPORT_AUTO},        {2, LONGATTN_RING_TRANSPORT_HOST_STAGED},
      {4, LONGATTN_RING_TRANSPORT_HOST_STAGED}, {1, LONGATTN_RING_TRANSPORT_NCCL}};
  if (real_gpus) {
    int gpus = 0;
    CHECK_CUDA(cudaGetDeviceCount(&gpus));
    runs.clear();
    for (int32_t N : {2, 4})
      if (N <= gpus)
        for (longattn_ring_transport t : {LONGATTN_RING_TRANSPORT_AUTO, LONGATTN_RING_TRANSPORT_PEER,
                                          LONGATTN_RING_TRANSPORT_HOST_STAGED, LONGATTN_RING_TRANSPORT_NCCL})
          runs.push_back({N, t});
  }
  for (const auto& [N, transport] : runs) {
    longattn_context* ctx = nullptr;
    longattn_context_options o = LONGATTN_CONTEXT_OPTIONS_INIT;
    o.backend = LONGATTN_BACKEND_CUDA;
    o.ring_devices = N;
    o.ring_transport = transport;
    if (!real_gpus) o.flags |= LONGATTN_CONTEXT_RING_VIRTUAL;
    if (transport == LONGATTN_RING_TRANSPORT_NCCL && longattn_context_create(&o, &ctx) != LONGATTN_OK) {
      std::printf("ring with the NCCL transport skipped: %s\n", longattn_last_create_error());
      continue;
    }
    if (!ctx) CHECK_LA(ctx, longattn_context_create(&o, &ctx));
    const char* tname = transport == LONGATTN_RING_TRANSPORT_HOST_STAGED ? "host-staged"
                        : transport == LONGATTN_RING_TRANSPORT_NCCL      ? "nccl"
                        : transport == LONGATTN_RING_TRANSPORT_PEER      ? "peer"
                                                                         : "d2d";
    longattn_attention* attn = nullptr;
    CHECK_LA(ctx, longattn_attention_create(ctx, &desc, &attn));
    // every rank's zigzag shard, cut out of the whole tensors (one copy per segment)
    std::vector<std::vector<std::pair<int64_t, int64_t>>> segs(static_cast<size_t>(N));
    std::vector<std::unique_ptr<DeviceTensor>> sq, sk, sv, so;
    std::vector<longattn_tensor> tq, tk, tv, to;
    for (int32_t r = 0; r < N; ++r) {
      int64_t first[2], count[2];
      CHECK_LA(ctx, longattn_ring_shard(LONGATTN_RING_LAYOUT_ZIGZAG, n, N, r, first, count));
      const int64_t rows = count[0] + count[1];
      if (real_gpus) CHECK_CUDA(cudaSetDevice(r));  // the rank's shards live on its GPU
      sq.push_back(std::make_unique<DeviceTensor>(1, rows, kHq, kD));
      sk.push_back(std::make_unique<DeviceTensor>(1, rows, kHkv, kD));
      sv.push_back(std::make_unique<DeviceTensor>(1, rows, kHkv, kD));
      so.push_back(std::make_unique<DeviceTensor>(1, rows, kHq, kD));
      int64_t row = 0;
      for (int i = 0; i < 2; ++i) {
        if (count[i] == 0) continue;
        segs[size_t(r)].push_back({first[i], count[i]});
        auto cut = [&](DeviceTensor& dst, const DeviceTensor& src, size_t rb) {
          CHECK_CUDA(cudaMemcpy(static_cast<char*>(dst.ptr) + size_t(row) * rb,
                                static_cast<const char*>(src.ptr) + size_t(first[i]) * rb, size_t(count[i]) * rb,
                                cudaMemcpyDefault));
        };
        cut(*sq.back(), q, row_bytes);
        cut(*sk.back(), k, kv_row_bytes);
        cut(*sv.back(), v, kv_row_bytes);
        row += count[i];
      }
      tq.push_back(sq.back()->t), tk.push_back(sk.back()->t), tv.push_back(sv.back()->t), to.push_back(so.back()->t);
    }
    if (real_gpus) CHECK_CUDA(cudaSetDevice(0));
    CHECK_CUDA(cudaDeviceSynchronize());
    longattn_sharded_args a = LONGATTN_SHARDED_ARGS_INIT;
    a.n_shards = N;
    a.layout = LONGATTN_RING_LAYOUT_ZIGZAG;
    a.queries = LONGATTN_SHARD_QUERIES_LOCAL;
    a.q = tq.data(), a.k = tk.data(), a.v = tv.data(), a.out = to.data();
    auto sync_all = [&] {
      for (int32_t r = 0; r < (real_gpus ? N : 1); ++r) {
        CHECK_CUDA(cudaSetDevice(r));
        CHECK_CUDA(cudaDeviceSynchronize());
      }
      CHECK_CUDA(cudaSetDevice(0));
    };
    std::vector<double> ms;
    for (int r = 0; r <= kReps; ++r) {
      sync_all();
      const double t0 = wall_ms();
      CHECK_LA(ctx, longattn_attention_forward_sharded(ctx, attn, &a));
      if (r > 0) ms.push_back(wall_ms() - t0);
    }
    const double t = median(ms);
    size_t rank_scratch = 0;
    for (int32_t r = 0; r < N; ++r) rank_scratch = std::max(rank_scratch, longattn_context_rank_scratch_bytes(ctx, r));
    // gather the shards back into sequence order and compare with single-device FLASH
    for (int32_t r = 0; r < N; ++r) {
      int64_t row = 0;
      for (auto [f, c] : segs[size_t(r)]) {
        CHECK_CUDA(cudaMemcpy(static_cast<char*>(out.ptr) + size_t(f) * row_bytes,
                              static_cast<const char*>(so[size_t(r)]->ptr) + size_t(row) * row_bytes,
                              size_t(c) * row_bytes, cudaMemcpyDefault));
        row += c;
      }
    }
    double rel = 0, max_abs = 0;
    compare(out.download_bf16(), want, rel, max_abs);
    char name[80];
    std::snprintf(name, sizeof name, "ring %d %s zigzag %s", N, real_gpus ? "GPUs" : "virtual ranks", tname);
    std::printf("%-40s n=%-7lld h=%d/%d d=%d causal %10.3f ms %8.1f TFLOP/s  %.3fx single  rank scratch %.1f MiB"
                "  vs flash: rel %.2e max %.2e\n",
                name, (long long)n, kHq, kHkv, kD, t, tflops(t), t / single_ms, double(rank_scratch) / (1 << 20), rel,
                max_abs);
    std::fflush(stdout);
    longattn_attention_destroy(attn);
    longattn_context_destroy(ctx);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string only;
  int64_t ring_tokens = 65536;
  int reps_override = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    if (!std::strcmp(argv[i], "--ring-tokens") && i + 1 < argc) ring_tokens = std::atoll(argv[++i]);
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps_override = std::atoi(argv[++i]);
  }
  if (!longattn_backend_available(LONGATTN_BACKEND_CUDA)) {
    std::printf("no CUDA device\n");
    return 0;
  }
  char name[256];
  longattn_device_name(LONGATTN_BACKEND_CUDA, 0, name, sizeof name);
  std::printf("device: %s\n", name);
  longattn_context* ctx = nullptr;
  longattn_context_options o = LONGATTN_CONTEXT_OPTIONS_INIT;
  o.backend = LONGATTN_BACKEND_CUDA;
  CHECK_LA(ctx, longattn_context_create(&o, &ctx));
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const int reps = reps_override > 0 ? reps_override : quick ? 3 : 10;
  const int64_t long_n = quick ? 32768 : 131072;
  auto want = [&](const char* n) {  // --only takes one name or a comma-separated list
    if (only.empty()) return true;
    const std::string list = "," + only + ",";
    return list.find("," + std::string(n) + ",") != std::string::npos;
  };
  std::map<std::string, double> ms;

  if (only == "ring" || only == "ring-gpus") {
    bench_ring(ring_tokens, stream, only == "ring-gpus");
    cudaStreamDestroy(stream);
    longattn_context_destroy(ctx);
    return 0;
  }
  const double copy_gbs = copy_bandwidth_gbs(stream);
  std::printf("device-to-device copy: %.1f GB/s (read + write)\n", copy_gbs);

  if (want("overhead")) {  // fixed cost of one call: validation, planning, launches
    const Shape s{1, 256, 8, 8, 128};
    const Timing t = time_forward(ctx, flash_desc(s, true), s, reps * 5, stream);
    print("call overhead (tiny decode)", s, true, t);
  }
  if (want("prefill128")) {
    const Shape s{16384, 16384, 32, 8, 128};
    for (bool causal : {false, true}) {
      const Timing t = time_forward(ctx, flash_desc(s, causal), s, reps, stream);
      print("flash prefill bf16", s, causal, t);
    }
  }
  if (want("prefill64")) {
    const Shape s{long_n, long_n, 12, 12, 64};
    for (bool causal : {false, true}) {
      const Timing t = time_forward(ctx, flash_desc(s, causal), s, quick ? 2 : 3, stream);
      print("flash prefill bf16", s, causal, t);
      ms[causal ? "flash64_causal" : "flash64"] = t.ms;
    }
  }
  if (want("decode")) {
    const Shape s{1, 131072, 32, 8, 128};
    const Timing t = time_forward(ctx, flash_desc(s, true), s, reps * 3, stream);
    print("flash decode bf16", s, true, t);
    std::printf("  decode bandwidth / copy bandwidth = %.2f\n", t.gbs / copy_gbs);
  }
  if (want("sparse")) {
    const Shape s{long_n, long_n, 12, 12, 64};
    longattn_attention_desc d = flash_desc(s, true);
    d.algorithm = LONGATTN_ALGORITHM_SPARSE;
    d.window_left = 4095;
    const Timing t = time_forward(ctx, d, s, reps, stream);
    print("sparse window 4096 bf16", s, true, t);
    ms["sparse"] = t.ms;
  }
  if (want("hyper") || want("hyper-causal") || want("hyper-noncausal")) {
    const Shape s{long_n, long_n, 12, 12, 64};
    for (bool causal : {true, false}) {
      if (!want("hyper") && !want(causal ? "hyper-causal" : "hyper-noncausal")) continue;
      longattn_attention_desc d = flash_desc(s, causal);
      d.algorithm = LONGATTN_ALGORITHM_HYPER;
      d.hyper_block_size = 256, d.hyper_sample_size = 256, d.hyper_min_seq_len = 4096, d.seed = 7;
      DeviceTensor out_h(1, s.n_q, s.hq, s.d), out_f(1, s.n_q, s.hq, s.d);
      const Timing t = time_forward(ctx, d, s, reps_override > 0 ? reps : quick ? 2 : 5, stream, &out_h);
      print("hyper b=m=256 n0=4096 bf16", s, causal, t);
      std::printf("  hyper host time until the call returned: %.3f ms\n", t.host_ms);
      ms[causal ? "hyper_causal" : "hyper"] = t.ms;
      time_forward(ctx, flash_desc(s, causal), s, 1, stream, &out_f);
      std::printf("  hyper mean row error vs flash (metric B, V = N(1,1)): %.4f\n",
                  mean_row_error(out_h.download_bf16(), out_f.download_bf16(), s.d));
    }
  }
  if (ms.count("flash64_causal")) {
    const double base = ms["flash64_causal"];
    if (ms.count("sparse")) std::printf("sparse speed-up over causal flash: %.1fx\n", base / ms["sparse"]);
    if (ms.count("hyper_causal")) std::printf("hyper causal speed-up over causal flash: %.1fx\n", base / ms["hyper_causal"]);
  }
  if (ms.count("flash64") && ms.count("hyper"))
    std::printf("hyper non-causal speed-up over non-causal flash: %.1fx\n", ms["flash64"] / ms["hyper"]);
  cudaStreamDestroy(stream);
  longattn_context_destroy(ctx);
  return 0;
}
