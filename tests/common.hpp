// Shared test helpers: random host tensors (any dtype, optional padded strides as in a KV cache),
// poisoning, RAII handles, and comparison against the float64 reference.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "half.hpp"
#include "longattn.h"
#include "reference.hpp"
#include "validate.hpp"

namespace test {

using longattn::AttentionConfig;
using longattn::View;

// A host tensor that owns its bytes. With `pad` > 0 every axis gets extra room, so the view is a
// strided window into a larger buffer (like a KV-cache view); the gaps hold a sentinel pattern.
struct HostTensor {
  std::vector<uint8_t> bytes;
  longattn_tensor t{};

  HostTensor() = default;
  HostTensor(longattn_dtype dtype, int64_t b, int64_t n, int64_t h, int64_t d, int64_t pad = 0) {
    const int64_t es = int64_t(longattn_dtype_size(dtype));
    const int64_t dd = d + pad, hh = h + (pad ? 1 : 0), nn = n + (pad ? 3 : 0);
    bytes.assign(size_t(b * nn * hh * dd * es), 0xA5);
    t.data = bytes.data();
    t.dtype = dtype;
    t.memory = LONGATTN_MEMORY_HOST;
    t.shape[0] = b; t.shape[1] = n; t.shape[2] = h; t.shape[3] = d;
    t.strides[3] = es;
    t.strides[2] = es * dd;
    t.strides[1] = es * dd * hh;
    t.strides[0] = es * dd * hh * nn;
  }
  View view() const {
    View v;
    v.data = t.data;
    v.dtype = t.dtype;
    for (int i = 0; i < 4; ++i) v.shape[i] = t.shape[i], v.strides[i] = t.strides[i];
    return v;
  }
  char* at(int64_t b, int64_t n, int64_t h, int64_t d) const {
    return static_cast<char*>(t.data) + b * t.strides[0] + n * t.strides[1] + h * t.strides[2] + d * t.strides[3];
  }
  float get(int64_t b, int64_t n, int64_t h, int64_t d) const { return longattn::load_as_float(at(b, n, h, d), t.dtype); }
  void set(int64_t b, int64_t n, int64_t h, int64_t d, float x) { longattn::store_from_float(at(b, n, h, d), t.dtype, x); }

  template <class F>
  void each(F&& f) {
    for (int64_t b = 0; b < t.shape[0]; ++b)
      for (int64_t n = 0; n < t.shape[1]; ++n)
        for (int64_t h = 0; h < t.shape[2]; ++h)
          for (int64_t d = 0; d < t.shape[3]; ++d) f(b, n, h, d);
  }
  // N(mean, sd) values (rounded to the dtype).
  void randomize(std::mt19937_64& rng, float sd = 1.0f, float mean = 0.0f) {
    std::normal_distribution<float> dist(mean, sd);
    each([&](int64_t b, int64_t n, int64_t h, int64_t d) { set(b, n, h, d, dist(rng)); });
  }
  // NaN everywhere in the view: any element the library does not write stays NaN.
  void poison() { each([&](int64_t b, int64_t n, int64_t h, int64_t d) { set(b, n, h, d, std::nanf("")); }); }
};

inline HostTensor random_tensor(std::mt19937_64& rng, longattn_dtype dtype, int64_t b, int64_t n, int64_t h,
                                int64_t d, int64_t pad = 0, float sd = 1.0f) {
  HostTensor x(dtype, b, n, h, d, pad);
  x.randomize(rng, sd);
  return x;
}

struct Context {
  longattn_context* ctx = nullptr;
  explicit Context(longattn_backend backend = LONGATTN_BACKEND_CPU, int32_t threads = 0, int32_t device = 0) {
    longattn_context_options o = LONGATTN_CONTEXT_OPTIONS_INIT;
    o.backend = backend;
    o.n_threads = threads;
    o.device_index = device;
    REQUIRE(longattn_context_create(&o, &ctx) == LONGATTN_OK);
  }
  ~Context() { longattn_context_destroy(ctx); }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  const char* error() const { return longattn_context_last_error(ctx); }
};

struct Attention {
  longattn_attention* attn = nullptr;
  longattn_status status = LONGATTN_OK;
  Attention(Context& c, const longattn_attention_desc& d) { status = longattn_attention_create(c.ctx, &d, &attn); }
  ~Attention() { longattn_attention_destroy(attn); }
  Attention(const Attention&) = delete;
  Attention& operator=(const Attention&) = delete;
};

// Relative Frobenius error ‖out − ref‖/‖ref‖ and max |out − ref| over a whole output; also counts
// NaN outputs where the reference is finite.
struct Errors {
  double rel = 0, max_abs = 0, lse_max_abs = 0;
  int64_t nan_count = 0, lse_mismatch = 0;
};

inline Errors compare(const HostTensor& out, const std::vector<double>& ref, const HostTensor* lse = nullptr,
                      const std::vector<double>* ref_lse = nullptr) {
  Errors e;
  const int64_t B = out.t.shape[0], N = out.t.shape[1], H = out.t.shape[2], D = out.t.shape[3];
  double num = 0, den = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t d = 0; d < D; ++d) {
          const double r = ref[size_t(((b * N + n) * H + h) * D + d)];
          const double o = out.get(b, n, h, d);
          if (std::isnan(o)) { ++e.nan_count; continue; }
          num += (o - r) * (o - r);
          den += r * r;
          e.max_abs = std::max(e.max_abs, std::fabs(o - r));
        }
        if (lse && ref_lse) {
          const double r = (*ref_lse)[size_t((b * N + n) * H + h)];
          const double o = lse->get(b, n, h, 0);
          if (std::isinf(r) || std::isinf(o)) {
            if (!(std::isinf(r) && std::isinf(o) && (r < 0) == (o < 0))) ++e.lse_mismatch;
          } else if (std::isnan(o)) {
            ++e.lse_mismatch;
          } else {
            e.lse_max_abs = std::max(e.lse_max_abs, std::fabs(o - r));
          }
        }
      }
  e.rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return e;
}

// Tolerance on ‖out − ref‖/‖ref‖ by output dtype (inputs are exact in their own dtype, so the
// output rounding and fp32 accumulation dominate).
inline double tolerance(longattn_dtype out_dtype) {
  switch (out_dtype) {
    case LONGATTN_DTYPE_F16: return 1e-3;
    case LONGATTN_DTYPE_BF16: return 1e-2;
    default: return 2e-5;
  }
}

inline AttentionConfig config_of(const longattn_attention_desc& d) { return longattn::config_from_desc(d); }

// Runs forward through the public API and compares with the float64 reference.
struct RunResult {
  longattn_status status;
  Errors err;
};

inline RunResult run_and_compare(Context& ctx, const longattn_attention_desc& desc, const HostTensor& q,
                                 const HostTensor& k, const HostTensor& v, HostTensor& out, HostTensor* lse,
                                 int64_t q_pos0 = LONGATTN_Q_POS_BOTTOM_RIGHT) {
  Attention attn(ctx, desc);
  REQUIRE_MESSAGE(attn.status == LONGATTN_OK, ctx.error());
  out.poison();
  if (lse) lse->poison();
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &q.t; a.k = &k.t; a.v = &v.t; a.out = &out.t; a.lse = lse ? &lse->t : nullptr;
  a.q_pos0 = q_pos0;
  RunResult r;
  r.status = longattn_attention_forward(ctx.ctx, attn.attn, &a);
  if (r.status != LONGATTN_OK) return r;
  std::vector<double> ref, ref_lse;
  const int64_t pos0 = q_pos0 == LONGATTN_Q_POS_BOTTOM_RIGHT ? k.t.shape[1] - q.t.shape[1] : q_pos0;
  longattn::reference_attention(config_of(desc), q.view(), k.view(), v.view(), pos0, ref, ref_lse);
  r.err = compare(out, ref, lse, &ref_lse);
  return r;
}

}  // namespace test
