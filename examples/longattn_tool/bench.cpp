// `longattn bench`: times attention on random inputs and prints one line (or JSON object) per case.
// Lists separated by commas (e.g. --q-tokens 4096,16384) run every combination.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tool.hpp"

namespace tool {
namespace {

struct Options {
  std::string backend = "cpu";
  std::vector<std::string> algos = {"flash"};
  std::vector<std::string> dtypes = {"f32"};
  std::vector<std::string> kv_dtypes;  // default: same as dtype
  int64_t batch = 1;
  std::vector<int64_t> q_tokens = {4096};
  std::vector<int64_t> kv_tokens;  // default: same as q tokens
  int32_t hq = 32, hkv = 8;
  std::vector<int64_t> head_dims = {128};
  int32_t head_dim_v = 0;
  bool causal = false;
  int32_t window_left = -1, window_right = -1, n_global = 0;
  std::vector<int64_t> threads = {0};
  int repeat = 5, warmup = 1;
  bool check = false, json = false;
  int64_t check_rows = 64;
  int32_t hyper_block = 0, hyper_samples = 0, hyper_bits = 0, hyper_min_len = 0;
  uint64_t seed = 1;
  float v_mean = 0.0f;  // V ~ N(v_mean, 1) (Q and K ~ N(0, 1))
  int32_t device = 0;
  float alibi = 0.0f;         // --alibi MAX_BIAS
  bool sinks = false;         // --sinks
  std::string mask;           // --mask random|causal|docs ("" = none)
  int32_t ring_devices = 0;   // --ring-devices N (0 = one device, no ring)
  bool ring_virtual = false;  // --ring-virtual: N virtual ranks on --device
  std::string ring_layout = "auto";  // --ring-layout contiguous|zigzag|auto
  std::string ring_transport = "auto";  // --ring-transport auto|peer|host|nccl
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}
std::vector<int64_t> split_ints(const std::string& s) {
  std::vector<int64_t> out;
  for (const std::string& x : split(s)) out.push_back(std::stoll(x));
  return out;
}

void print_help() {
  std::printf(
      "usage: longattn bench [options]\n"
      "  --backend cpu|cuda|vulkan|auto   --device I\n"
      "  --algo flash|sparse|hyper[,…]    --dtype f32|f16|bf16[,…]   --kv-dtype f32|f16|bf16[,…]\n"
      "  --batch B  --q-tokens N[,…]  --kv-tokens N[,…]  --heads HQ:HKV  --head-dim D[,…]  --head-dim-v D\n"
      "  --causal  --window L:R  --global G  --threads T[,…]  --repeat R  --warmup W\n"
      "  --hyper-block B --hyper-samples M --hyper-bits R --hyper-min-len N0 --seed S\n"
      "  --kv-dtype q8_0|q4_0 (ggml block formats)  --alibi MAX_BIAS  --sinks  --mask random|causal|docs\n"
      "  --ring-devices N [--ring-virtual] [--ring-layout contiguous|zigzag|auto]  (ring mode: N virtual\n"
      "    CPU devices, CUDA devices device…device+N-1, or N virtual ranks on one GPU)\n"
      "    [--ring-transport auto|peer|host|nccl]  (peer copies, pinned-host staging, NCCL)\n"
      "  --check [--check-rows N]  --v-mean M (V ~ N(M, 1); 1 gives HYPER's errors the spec's meaning)  --json\n"
      "Each case: median time of R runs after W warm-ups; gflops counts the exact attention FLOPs\n"
      "the mask allows (4·d per allowed pair and head), gbps the bytes of Q, K, V, O moved once.\n");
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") { print_help(); std::exit(0); }
    else if (a == "--backend") o.backend = next();
    else if (a == "--device") o.device = std::stoi(next());
    else if (a == "--ring-devices") o.ring_devices = std::stoi(next());
    else if (a == "--ring-virtual") o.ring_virtual = true;
    else if (a == "--ring-layout") {
      o.ring_layout = next();
      if (o.ring_layout != "contiguous" && o.ring_layout != "zigzag" && o.ring_layout != "auto")
        throw std::invalid_argument("--ring-layout takes contiguous, zigzag or auto");
    }
    else if (a == "--ring-transport") {
      o.ring_transport = next();
      if (o.ring_transport != "auto" && o.ring_transport != "peer" && o.ring_transport != "host" &&
          o.ring_transport != "nccl")
        throw std::invalid_argument("--ring-transport takes auto, peer, host or nccl");
    }
    else if (a == "--algo") o.algos = split(next());
    else if (a == "--dtype") o.dtypes = split(next());
    else if (a == "--kv-dtype") o.kv_dtypes = split(next());
    else if (a == "--batch") o.batch = std::stoll(next());
    else if (a == "--q-tokens") o.q_tokens = split_ints(next());
    else if (a == "--kv-tokens") o.kv_tokens = split_ints(next());
    else if (a == "--heads") {
      const std::string h = next();
      const size_t c = h.find(':');
      o.hq = std::stoi(h.substr(0, c));
      o.hkv = c == std::string::npos ? o.hq : std::stoi(h.substr(c + 1));
    } else if (a == "--head-dim") o.head_dims = split_ints(next());
    else if (a == "--head-dim-v") o.head_dim_v = std::stoi(next());
    else if (a == "--causal") o.causal = true;
    else if (a == "--window") {
      const std::string w = next();
      const size_t c = w.find(':');
      if (c == std::string::npos) throw std::invalid_argument("--window takes L:R (-1 = unlimited)");
      o.window_left = std::stoi(w.substr(0, c));
      o.window_right = std::stoi(w.substr(c + 1));
    } else if (a == "--global") o.n_global = std::stoi(next());
    else if (a == "--threads") o.threads = split_ints(next());
    else if (a == "--repeat") o.repeat = std::max(1, std::stoi(next()));
    else if (a == "--warmup") o.warmup = std::max(0, std::stoi(next()));
    else if (a == "--check") o.check = true;
    else if (a == "--check-rows") o.check_rows = std::stoll(next());
    else if (a == "--json") o.json = true;
    else if (a == "--hyper-block") o.hyper_block = std::stoi(next());
    else if (a == "--hyper-samples") o.hyper_samples = std::stoi(next());
    else if (a == "--hyper-bits") o.hyper_bits = std::stoi(next());
    else if (a == "--hyper-min-len") o.hyper_min_len = std::stoi(next());
    else if (a == "--seed") o.seed = std::stoull(next());
    else if (a == "--v-mean") o.v_mean = std::stof(next());
    else if (a == "--alibi") o.alibi = std::stof(next());
    else if (a == "--sinks") o.sinks = true;
    else if (a == "--mask") {
      o.mask = next();
      if (o.mask != "random" && o.mask != "causal" && o.mask != "docs")
        throw std::invalid_argument("--mask takes random|causal|docs");
    }
    else throw std::invalid_argument("unknown option " + a + " (see --help)");
  }
  return o;
}

longattn_backend parse_backend(const std::string& s) {
  if (s == "cpu") return LONGATTN_BACKEND_CPU;
  if (s == "cuda") return LONGATTN_BACKEND_CUDA;
  if (s == "vulkan") return LONGATTN_BACKEND_VULKAN;
  if (s == "auto") return LONGATTN_BACKEND_AUTO;
  throw std::invalid_argument("unknown backend '" + s + "'");
}
longattn_algorithm parse_algo(const std::string& s) {
  if (s == "flash") return LONGATTN_ALGORITHM_FLASH;
  if (s == "sparse") return LONGATTN_ALGORITHM_SPARSE;
  if (s == "hyper") return LONGATTN_ALGORITHM_HYPER;
  throw std::invalid_argument("unknown algorithm '" + s + "'");
}

// An additive f16 mask {1, n_q, 1, n_k} as a runtime builds it: random −inf holes (and random
// biases), causal, or documents of 1024 tokens packed in one sequence (causal within each).
Buffer make_mask(const std::string& kind, int64_t nq, int64_t nk, int64_t q_pos0, uint64_t seed) {
  Buffer m(LONGATTN_DTYPE_F16, 1, nq, 1, nk);
  constexpr int64_t kDoc = 1024;
  const uint16_t neg_inf = 0xFC00;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < nq; ++i) {
    std::mt19937_64 rng(seed + uint64_t(i));
    uint16_t* row = reinterpret_cast<uint16_t*>(m.bytes.data()) + i * nk;
    const int64_t qp = q_pos0 + i;
    for (int64_t j = 0; j < nk; ++j) {
      bool masked = false;
      if (kind == "random") masked = rng() % 8 == 0;
      else if (kind == "causal") masked = j > qp;
      else masked = j > qp || j / kDoc != qp / kDoc;
      row[j] = masked ? neg_inf : 0;
    }
  }
  return m;
}

// (query, key) pairs the mask (and the descriptor's causal flag) leave allowed, per batch and head.
double mask_pairs(const Buffer& m, const longattn_attention_desc& d, int64_t q_pos0) {
  const int64_t nq = m.t.shape[1], nk = m.t.shape[3];
  double n = 0;
  for (int64_t i = 0; i < nq; ++i) {
    const uint16_t* row = reinterpret_cast<const uint16_t*>(m.bytes.data()) + i * nk;
    for (int64_t j = 0; j < nk; ++j) n += row[j] != 0xFC00 && (!d.causal || j <= q_pos0 + i);
  }
  return n;
}

// The layout a ring run uses (the library's rule, longattn.h section 8): "none" without a ring,
// "decode" when the queries are few (16·n_q <= n_k: partials merged, no ring).
const char* ring_layout_used(const Options& o, const longattn_attention_desc& d, int64_t n_q, int64_t n_k) {
  if (o.ring_devices == 0) return "none";
  if (16 * n_q <= n_k) return "decode";
  if (o.ring_layout != "auto") return o.ring_layout.c_str();
  return d.causal && d.window_left < 0 ? "zigzag" : "contiguous";
}

const char* ring_transport_name(longattn_ring_transport t) {
  switch (t) {
    case LONGATTN_RING_TRANSPORT_PEER: return "peer";
    case LONGATTN_RING_TRANSPORT_HOST_STAGED: return "host";
    case LONGATTN_RING_TRANSPORT_NCCL: return "nccl";
    default: return "none";
  }
}

struct Case {
  longattn_algorithm algo;
  longattn_dtype dtype, kv_dtype;
  int64_t n_q, n_k, d, threads;
};

int run_case(const Options& o, const Case& c) {
  longattn_context_options co = LONGATTN_CONTEXT_OPTIONS_INIT;
  co.backend = parse_backend(o.backend);
  co.device_index = o.device;
  co.n_threads = int32_t(c.threads);
  co.ring_devices = o.ring_devices;
  co.ring_layout = o.ring_layout == "zigzag"       ? LONGATTN_RING_LAYOUT_ZIGZAG
                   : o.ring_layout == "contiguous" ? LONGATTN_RING_LAYOUT_CONTIGUOUS
                                                   : LONGATTN_RING_LAYOUT_AUTO;
  co.ring_transport = o.ring_transport == "peer"   ? LONGATTN_RING_TRANSPORT_PEER
                      : o.ring_transport == "host" ? LONGATTN_RING_TRANSPORT_HOST_STAGED
                      : o.ring_transport == "nccl" ? LONGATTN_RING_TRANSPORT_NCCL
                                                   : LONGATTN_RING_TRANSPORT_AUTO;
  if (o.ring_virtual) co.flags |= LONGATTN_CONTEXT_RING_VIRTUAL;
  longattn_context* ctx = nullptr;
  if (longattn_context_create(&co, &ctx) != LONGATTN_OK) {
    std::fprintf(stderr, "context: %s\n", longattn_last_create_error());
    return 1;
  }
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.algorithm = c.algo;
  d.n_q_heads = o.hq;
  d.n_kv_heads = o.hkv;
  d.head_dim = int32_t(c.d);
  d.head_dim_v = o.head_dim_v;
  d.causal = o.causal;
  if (c.algo != LONGATTN_ALGORITHM_FLASH) {
    d.window_left = o.window_left;
    d.window_right = o.window_right;
    d.n_global = o.n_global;
  }
  d.hyper_block_size = o.hyper_block;
  d.hyper_sample_size = o.hyper_samples;
  d.hyper_lsh_bits = o.hyper_bits;
  d.hyper_min_seq_len = o.hyper_min_len;
  d.seed = o.seed;
  d.max_bias = o.alibi;
  longattn_attention* attn = nullptr;
  if (longattn_attention_create(ctx, &d, &attn) != LONGATTN_OK) {
    std::fprintf(stderr, "attention: %s\n", longattn_context_last_error(ctx));
    longattn_context_destroy(ctx);
    return 1;
  }
  const int64_t dv = o.head_dim_v ? o.head_dim_v : c.d;
  const uint64_t case_seed = o.seed * 1000003u + uint64_t(c.n_q * 31 + c.n_k * 17 + c.d);
  Buffer q(c.dtype, o.batch, c.n_q, o.hq, c.d), k(c.kv_dtype, o.batch, c.n_k, o.hkv, c.d);
  Buffer v(c.kv_dtype, o.batch, c.n_k, o.hkv, dv), out(c.dtype, o.batch, c.n_q, o.hq, dv);
  Buffer lse(LONGATTN_DTYPE_F32, o.batch, c.n_q, o.hq, 1);
  fill_random(q, case_seed);
  fill_random(k, case_seed + 1);
  fill_random(v, case_seed + 2, o.v_mean);
  const int64_t q_pos0 = c.n_k - c.n_q;
  Buffer mask;
  if (!o.mask.empty()) mask = make_mask(o.mask, c.n_q, c.n_k, q_pos0, case_seed + 4);
  std::vector<float> sinks;
  for (int32_t h = 0; o.sinks && h < o.hq; ++h) sinks.push_back(0.5f * float(h % 5) - 1.0f);
  longattn_forward_args args = LONGATTN_FORWARD_ARGS_INIT;
  args.q = &q.t;
  args.k = &k.t;
  args.v = &v.t;
  args.out = &out.t;
  args.lse = &lse.t;
  args.mask = o.mask.empty() ? nullptr : &mask.t;
  args.sinks = o.sinks ? sinks.data() : nullptr;
  std::vector<double> times, cpu_times;
  for (int r = 0; r < o.warmup + o.repeat; ++r) {
    const double c0 = cpu_ms();
    const double t0 = now_ms();
    if (longattn_attention_forward(ctx, attn, &args) != LONGATTN_OK) {
      std::fprintf(stderr, "forward: %s\n", longattn_context_last_error(ctx));
      return 1;
    }
    const double t1 = now_ms();
    if (r >= o.warmup) times.push_back(t1 - t0), cpu_times.push_back(cpu_ms() - c0);
  }
  const double ms = median(times);
  // CPU time of the process per call, summed over threads: on a busy machine, wall time includes
  // time other programs held the cores; cpu_ms / threads is what the call itself needed.
  const double cpu = median(cpu_times);
  const double pairs = (o.mask.empty() ? allowed_pairs(d, c.n_q, c.n_k, q_pos0) : mask_pairs(mask, d, q_pos0)) *
                       double(o.batch) * double(o.hq);
  const double flops = pairs * 2.0 * double(c.d + dv);
  const double kv_elem = double(longattn_dtype_size(c.kv_dtype)) / longattn_dtype_block_elems(c.kv_dtype);
  const double bytes = double(o.batch) * (double(c.n_q) * o.hq * (c.d + dv) * longattn_dtype_size(c.dtype) +
                                          double(c.n_k) * o.hkv * (c.d + dv) * kv_elem);
  const double gflops = flops / (ms * 1e6), gbps = bytes / (ms * 1e6);
  const int32_t threads_used = longattn_context_threads(ctx);
  const size_t scratch = longattn_context_scratch_bytes(ctx);
  size_t rank_scratch = 0;  // ring mode: the largest scratch any rank holds (O(tokens per rank))
  for (int32_t r = 0; r < longattn_context_ring_devices(ctx); ++r)
    rank_scratch = std::max(rank_scratch, longattn_context_rank_scratch_bytes(ctx, r));
  const char* ring_layout = ring_layout_used(o, d, c.n_q, c.n_k);
  CheckResult chk;
  if (o.check)
    chk = check_rows(d, q, k, v, out, &lse, q_pos0, o.check_rows, case_seed + 3, o.mask.empty() ? nullptr : &mask,
                     o.sinks ? sinks.data() : nullptr);
  const char* be = backend_name(longattn_context_backend(ctx));
  if (o.json) {
    std::printf(
        "{\"backend\":\"%s\",\"algo\":\"%s\",\"dtype\":\"%s\",\"kv_dtype\":\"%s\",\"batch\":%lld,\"n_q\":%lld,"
        "\"n_k\":%lld,\"heads_q\":%d,\"heads_kv\":%d,\"head_dim\":%lld,\"head_dim_v\":%lld,\"causal\":%s,"
        "\"window_left\":%d,\"window_right\":%d,\"n_global\":%d,\"threads\":%d,\"ms\":%.4f,\"gflops\":%.2f,"
        "\"gbps\":%.2f,\"cpu_ms\":%.4f,\"scratch_bytes\":%zu",
        be, algo_name(c.algo), dtype_name(c.dtype), dtype_name(c.kv_dtype), (long long)o.batch,
        (long long)c.n_q, (long long)c.n_k, o.hq, o.hkv, (long long)c.d, (long long)dv, o.causal ? "true" : "false",
        d.window_left, d.window_right, d.n_global, threads_used, ms, gflops, gbps, cpu, scratch);
    if (longattn_context_backend(ctx) == LONGATTN_BACKEND_CPU) {  // e.g. "CPU (avx512bf16)": the kernel set used
      char dev[128] = "";
      if (longattn_device_name(LONGATTN_BACKEND_CPU, 0, dev, sizeof dev) == LONGATTN_OK) std::printf(",\"device\":\"%s\"", dev);
    }
    std::printf(",\"ring_devices\":%d,\"ring_layout\":\"%s\"", o.ring_devices, ring_layout);
    if (o.ring_devices > 0)
      std::printf(",\"ring_virtual\":%s,\"ring_transport\":\"%s\",\"ring_rank_scratch_bytes\":%zu",
                  o.ring_virtual ? "true" : "false", ring_transport_name(longattn_context_ring_transport(ctx)),
                  rank_scratch);
    if (!o.mask.empty()) std::printf(",\"mask\":\"%s\"", o.mask.c_str());
    if (o.alibi > 0) std::printf(",\"alibi\":%g", double(o.alibi));
    if (o.sinks) std::printf(",\"sinks\":true");
    if (c.algo == LONGATTN_ALGORITHM_HYPER)
      std::printf(",\"hyper_block\":%d,\"hyper_samples\":%d,\"hyper_bits\":%d,\"hyper_min_len\":%d,\"seed\":%llu",
                  o.hyper_block, o.hyper_samples, o.hyper_bits, o.hyper_min_len, (unsigned long long)o.seed);
    if (o.v_mean != 0.0f) std::printf(",\"v_mean\":%g", double(o.v_mean));
    if (o.check) {
      std::printf(",\"rel_err\":%.3e,\"max_abs_err\":%.3e", chk.rel_err, chk.max_abs_err);
      if (chk.has_lse) std::printf(",\"lse_mean_abs_err\":%.3e", chk.lse_mean_abs_err);
      if (c.algo == LONGATTN_ALGORITHM_HYPER) {
        const HyperCheck h = hyper_check(d, q, k, v, q_pos0, o.check_rows, case_seed + 5, threads_used);
        std::printf(",\"hyper_row_err\":%.4f,\"hyper_lse_err\":%.4f,\"block_mass\":%.4f,\"random_block_mass\":%.4f",
                    h.row_err, h.lse_err, h.block_mass, h.random_block_mass);
      }
    }
    std::printf("}\n");
  } else {
    std::printf("%-6s %-6s %-4s/%-4s b=%lld nq=%-7lld nk=%-7lld h=%d:%d d=%-3lld %s thr=%d  %9.3f ms %8.1f GFLOP/s %7.1f GB/s",
                be, algo_name(c.algo), dtype_name(c.dtype), dtype_name(c.kv_dtype), (long long)o.batch,
                (long long)c.n_q, (long long)c.n_k, o.hq, o.hkv, (long long)c.d, o.causal ? "causal" : "full  ",
                threads_used, ms, gflops, gbps);
    std::printf("  (cpu %.1f ms)", cpu);
    if (o.ring_devices > 0) std::printf("  ring=%d %s", o.ring_devices, ring_layout);
    if (o.check) std::printf("  rel_err %.2e max_abs %.2e", chk.rel_err, chk.max_abs_err);
    std::printf("\n");
  }
  std::fflush(stdout);
  longattn_attention_destroy(attn);
  longattn_context_destroy(ctx);
  return 0;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "longattn bench: %s\n", e.what());
    return 2;
  }
  int rc = 0;
  for (const std::string& algo : o.algos)
    for (const std::string& dt : o.dtypes)
      for (const std::string& kvs : (o.kv_dtypes.empty() ? std::vector<std::string>{dt} : o.kv_dtypes))
        for (int64_t nq : o.q_tokens)
          for (int64_t nk : (o.kv_tokens.empty() ? std::vector<int64_t>{nq} : o.kv_tokens))
            for (int64_t d : o.head_dims)
              for (int64_t t : o.threads) {
                try {
                  rc |= run_case(o, Case{parse_algo(algo), parse_dtype(dt), parse_dtype(kvs), nq, nk, d, t});
                } catch (const std::exception& e) {
                  std::fprintf(stderr, "longattn bench: %s\n", e.what());
                  return 2;
                }
              }
  return rc;
}

}  // namespace tool
