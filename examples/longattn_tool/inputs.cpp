// Random inputs, names, the exact-pair count and the sampled check against the float64 reference.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <time.h>

#include "half.hpp"
#include "quant.hpp"
#include "hyper_quality.hpp"
#include "reference.hpp"
#include "workspace.hpp"
#include "tool.hpp"
#include "validate.hpp"

namespace tool {

Buffer::Buffer(longattn_dtype dtype, int64_t b, int64_t n, int64_t h, int64_t d) {
  bytes.resize(size_t(b * n * h * (d / longattn_dtype_block_elems(dtype))) * longattn_dtype_size(dtype));
  longattn_tensor_contiguous(&t, bytes.data(), dtype, b, n, h, d);
}

void fill_random(Buffer& buf, uint64_t seed, float mean) {
  if (longattn::is_block_dtype(buf.t.dtype)) {  // quantise random rows, as a runtime's cache holds them
    const int64_t d = buf.t.shape[3], rows = buf.t.shape[0] * buf.t.shape[1] * buf.t.shape[2];
    const size_t row_bytes = size_t(d / longattn::kQuantBlock) * longattn_dtype_size(buf.t.dtype);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + uint64_t(r));
      std::normal_distribution<float> dist(mean, 1.0f);
      std::vector<float> x(static_cast<size_t>(d));
      for (float& f : x) f = dist(rng);
      longattn::quantize_row(x.data(), buf.t.dtype, d, buf.bytes.data() + size_t(r) * row_bytes,
                             int64_t(longattn_dtype_size(buf.t.dtype)));
    }
    return;
  }
  const int64_t n = int64_t(buf.bytes.size() / longattn_dtype_size(buf.t.dtype));
  const int64_t chunk = 1 << 16;
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < n; c0 += chunk) {
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + uint64_t(c0));
    std::normal_distribution<float> dist(mean, 1.0f);
    for (int64_t i = c0; i < std::min(n, c0 + chunk); ++i)
      longattn::store_from_float(buf.bytes.data() + size_t(i) * longattn_dtype_size(buf.t.dtype), buf.t.dtype, dist(rng));
  }
}

longattn_dtype parse_dtype(const std::string& s) {
  if (s == "f32") return LONGATTN_DTYPE_F32;
  if (s == "f16") return LONGATTN_DTYPE_F16;
  if (s == "bf16") return LONGATTN_DTYPE_BF16;
  if (s == "q8_0") return LONGATTN_DTYPE_Q8_0;
  if (s == "q4_0") return LONGATTN_DTYPE_Q4_0;
  throw std::invalid_argument("unknown dtype '" + s + "' (f32|f16|bf16|q8_0|q4_0)");
}
const char* dtype_name(longattn_dtype t) {
  switch (t) {
    case LONGATTN_DTYPE_F16: return "f16";
    case LONGATTN_DTYPE_BF16: return "bf16";
    case LONGATTN_DTYPE_Q8_0: return "q8_0";
    case LONGATTN_DTYPE_Q4_0: return "q4_0";
    default: return "f32";
  }
}
const char* backend_name(longattn_backend b) {
  switch (b) {
    case LONGATTN_BACKEND_CPU: return "cpu";
    case LONGATTN_BACKEND_CUDA: return "cuda";
    case LONGATTN_BACKEND_VULKAN: return "vulkan";
    default: return "auto";
  }
}
const char* algo_name(longattn_algorithm a) {
  switch (a) {
    case LONGATTN_ALGORITHM_SPARSE: return "sparse";
    case LONGATTN_ALGORITHM_HYPER: return "hyper";
    default: return "flash";
  }
}

double allowed_pairs(const longattn_attention_desc& d, int64_t n_q, int64_t n_k, int64_t q_pos0) {
  const bool sparse = d.algorithm != LONGATTN_ALGORITHM_FLASH;
  const int64_t wl = sparse ? d.window_left : -1, wr = sparse ? d.window_right : -1;
  const int64_t g = sparse ? d.n_global : 0;
  double total = 0;
  for (int64_t i = 0; i < n_q; ++i) {
    const int64_t qp = q_pos0 + i;
    int64_t hi = d.causal ? std::min(n_k - 1, qp) : n_k - 1;  // key positions [0, hi]
    if (hi < 0) continue;
    if (qp < g) {
      total += double(hi + 1);
      continue;
    }
    const int64_t b_lo = std::max<int64_t>(0, wl < 0 ? 0 : qp - wl);
    const int64_t b_hi = std::min(hi, wr < 0 ? hi : qp + wr);
    const int64_t band = std::max<int64_t>(0, b_hi - b_lo + 1);
    const int64_t glob = std::min(g, hi + 1);  // global keys [0, glob)
    const int64_t overlap = std::max<int64_t>(0, std::min(glob - 1, b_hi) - b_lo + 1);
    total += double(band + glob - (band > 0 ? overlap : 0));
  }
  return total;
}

CheckResult check_rows(const longattn_attention_desc& desc, const Buffer& q, const Buffer& k, const Buffer& v,
                       const Buffer& out, const Buffer* lse, int64_t q_pos0, int64_t rows, uint64_t seed,
                       const Buffer* mask, const float* sinks) {
  const longattn::AttentionConfig cfg = longattn::config_from_desc(desc);
  auto view = [](const Buffer& b) {
    longattn::View v;
    v.data = b.t.data;
    v.dtype = b.t.dtype;
    for (int i = 0; i < 4; ++i) v.shape[i] = b.t.shape[i], v.strides[i] = b.t.strides[i];
    return v;
  };
  const int64_t n_q = q.t.shape[1];
  std::vector<int64_t> sample;
  if (rows >= n_q) {
    for (int64_t i = 0; i < n_q; ++i) sample.push_back(i);
  } else {
    std::mt19937_64 rng(seed);
    for (int64_t i = 0; i < rows; ++i) sample.push_back(int64_t(rng() % uint64_t(n_q)));
    sample.push_back(n_q - 1);
  }
  std::vector<double> ref, ref_lse;
  longattn::ReferenceExtras ex;
  if (mask) ex.mask = view(*mask);
  ex.slopes = cfg.alibi_slopes.empty() ? nullptr : cfg.alibi_slopes.data();
  ex.sinks = sinks;
  longattn::reference_attention(cfg, view(q), view(k), view(v), q_pos0, ref, ref_lse, sample, ex);
  const longattn::View o = view(out);
  const int64_t B = q.t.shape[0], H = cfg.n_q_heads, D = cfg.head_dim_v, R = int64_t(sample.size());
  CheckResult r;
  double num = 0, den = 0, lse_err = 0;
  int64_t lse_n = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < R; ++s)
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t c = 0; c < D; ++c) {
          const double x = longattn::load_as_float(o.at<char>(b, sample[size_t(s)], h, c), o.dtype);
          const double y = ref[size_t(((b * R + s) * H + h) * D + c)];
          num += (x - y) * (x - y);
          den += y * y;
          r.max_abs_err = std::max(r.max_abs_err, std::isnan(x) ? INFINITY : std::fabs(x - y));
        }
        if (lse) {
          const double x = *reinterpret_cast<const float*>(lse->bytes.data() +
                                                           size_t(((b * q.t.shape[1] + sample[size_t(s)]) * H + h) * 4));
          const double y = ref_lse[size_t((b * R + s) * H + h)];
          if (std::isfinite(y)) lse_err += std::fabs(x - y), ++lse_n;
        }
      }
  r.rel_err = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  if (lse && lse_n) r.lse_mean_abs_err = lse_err / double(lse_n), r.has_lse = true;
  return r;
}

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

double cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
}

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  return xs.empty() ? 0 : xs[xs.size() / 2];
}

}  // namespace tool

namespace tool {

HyperCheck hyper_check(const longattn_attention_desc& desc, const Buffer& q, const Buffer& k, const Buffer& v,
                       int64_t q_pos0, int64_t rows, uint64_t seed, int threads) {
  // Re-run the call on the CPU backend with its random choices recorded, then measure against
  // exact attention on sampled rows (metrics B, C and the captured block mass of the spec).
  const longattn::AttentionConfig cfg = longattn::config_from_desc(desc);
  auto view = [](const Buffer& b) {
    longattn::View v;
    v.data = b.t.data;
    v.dtype = b.t.dtype;
    for (int i = 0; i < 4; ++i) v.shape[i] = b.t.shape[i], v.strides[i] = b.t.strides[i];
    return v;
  };
  Buffer out(LONGATTN_DTYPE_F32, q.t.shape[0], q.t.shape[1], cfg.n_q_heads, cfg.head_dim_v);
  Buffer lse(LONGATTN_DTYPE_F32, q.t.shape[0], q.t.shape[1], cfg.n_q_heads, 1);
  auto backend = longattn::make_cpu_backend(threads);
  longattn::Workspace ws(*backend);
  longattn::Problem p;
  p.cfg = &cfg;
  p.batch = q.t.shape[0];
  p.n_q = q.t.shape[1];
  p.n_k = k.t.shape[1];
  p.q = view(q); p.k = view(k); p.v = view(v); p.out = view(out); p.lse = view(lse);
  p.q_pos0 = q_pos0;
  p.ws = &ws;
  longattn::HyperChoices choices;
  choices.mode = longattn::HyperChoices::Mode::record;
  longattn::run_hyper_with_choices(*backend, p, &choices);
  std::vector<int64_t> sample;
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < std::min(rows, p.n_q); ++i) sample.push_back(int64_t(rng() % uint64_t(p.n_q)));
  const longattn::HyperQuality hq =
      longattn::measure_hyper_quality(cfg, p.q, p.k, p.v, q_pos0, p.out, p.lse, &choices, sample);
  return {hq.rel_err, hq.lse_err, hq.block_mass, hq.random_block_mass};
}

}  // namespace tool
