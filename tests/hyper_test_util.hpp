// Helpers shared by the HYPER tests: cases, inputs, runs through the public API and directly
// through the planner (with recorded / injected choices), bitwise comparison.
#pragma once

#include <cstring>
#include <memory>
#include <random>
#include <string>

#include "backend.hpp"
#include "common.hpp"
#include "hyper_choices.hpp"
#include "hyper_quality.hpp"
#include "problem.hpp"
#include "workspace.hpp"

namespace hyper_test {

using test::HostTensor;

struct HyperCase {
  int64_t batch = 1, n_q = 0, n_k = 0;
  int32_t hq = 1, hkv = 1, d = 32, dv = 32;
  bool causal = false;
  int32_t n_global = 0;
  int32_t block = 64, samples = 64, bits = 6, min_len = 128;
  uint64_t seed = 1;
  float scale = 0.0f;  // 0 = 1/sqrt(d)
  int64_t q_pos0 = LONGATTN_Q_POS_BOTTOM_RIGHT;
  longattn_dtype qt = LONGATTN_DTYPE_F32, kvt = LONGATTN_DTYPE_F32, ot = LONGATTN_DTYPE_F32;

  int64_t pos0() const { return q_pos0 == LONGATTN_Q_POS_BOTTOM_RIGHT ? n_k - n_q : q_pos0; }
  std::string describe() const {
    return "b=" + std::to_string(batch) + " nq=" + std::to_string(n_q) + " nk=" + std::to_string(n_k) +
           " h=" + std::to_string(hq) + "/" + std::to_string(hkv) + " d=" + std::to_string(d) +
           " causal=" + std::to_string(causal) + " global=" + std::to_string(n_global) +
           " block=" + std::to_string(block) + " m=" + std::to_string(samples) + " r=" + std::to_string(bits) +
           " n0=" + std::to_string(min_len) + " seed=" + std::to_string(seed) + " pos0=" + std::to_string(pos0());
  }
};

inline longattn_attention_desc desc_of(const HyperCase& c, longattn_algorithm alg = LONGATTN_ALGORITHM_HYPER) {
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.algorithm = alg;
  d.n_q_heads = c.hq;
  d.n_kv_heads = c.hkv;
  d.head_dim = c.d;
  d.head_dim_v = c.dv;
  d.scale = c.scale;
  d.causal = c.causal;
  if (alg != LONGATTN_ALGORITHM_FLASH) d.n_global = c.n_global;
  d.hyper_block_size = c.block;
  d.hyper_sample_size = c.samples;
  d.hyper_lsh_bits = c.bits;
  d.hyper_min_seq_len = c.min_len;
  d.seed = c.seed;
  return d;
}

struct Inputs {
  HostTensor q, k, v;
};

inline Inputs random_inputs(const HyperCase& c, uint64_t seed, float v_mean = 0.0f) {
  std::mt19937_64 rng(seed);
  Inputs in;
  in.q = test::random_tensor(rng, c.qt, c.batch, c.n_q, c.hq, c.d);
  in.k = test::random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.d);
  in.v = HostTensor(c.kvt, c.batch, c.n_k, c.hkv, c.dv);
  in.v.randomize(rng, 1.0f, v_mean);
  return in;
}

struct Output {
  HostTensor out, lse;
  longattn_status status = LONGATTN_OK;
  std::string error;
};

inline Output make_output(const HyperCase& c) {
  Output o;
  o.out = HostTensor(c.ot, c.batch, c.n_q, c.hq, c.dv);
  o.lse = HostTensor(LONGATTN_DTYPE_F32, c.batch, c.n_q, c.hq, 1);
  o.out.poison();
  o.lse.poison();
  return o;
}

// Through the public API on a CPU context with `threads` threads.
inline Output run_api(const HyperCase& c, const Inputs& in, longattn_algorithm alg = LONGATTN_ALGORITHM_HYPER,
                      int threads = 2, bool want_lse = true) {
  test::Context ctx(LONGATTN_BACKEND_CPU, threads);
  test::Attention attn(ctx, desc_of(c, alg));
  Output o = make_output(c);
  if (attn.status != LONGATTN_OK) {
    o.status = attn.status;
    o.error = ctx.error();
    return o;
  }
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &in.q.t;
  a.k = &in.k.t;
  a.v = &in.v.t;
  a.out = &o.out.t;
  a.lse = want_lse ? &o.lse.t : nullptr;
  a.q_pos0 = c.q_pos0;
  o.status = longattn_attention_forward(ctx.ctx, attn.attn, &a);
  o.error = ctx.error();
  return o;
}

// Directly through the planner on `backend`, with recorded / injected choices.
inline Output run_on(longattn::Backend& backend, const HyperCase& c, const Inputs& in,
                     longattn::HyperChoices* choices) {
  longattn::Workspace ws(backend);
  const longattn::AttentionConfig cfg = test::config_of(desc_of(c));
  Output o = make_output(c);
  longattn::Problem p;
  p.cfg = &cfg;
  p.batch = c.batch;
  p.n_q = c.n_q;
  p.n_k = c.n_k;
  p.q = in.q.view();
  p.k = in.k.view();
  p.v = in.v.view();
  p.out = o.out.view();
  p.lse = o.lse.view();
  p.q_pos0 = c.pos0();
  p.ws = &ws;
  longattn::run_hyper_with_choices(backend, p, choices);
  return o;
}

// The same on a CPU backend of `threads` threads.
inline Output run_direct(const HyperCase& c, const Inputs& in, longattn::HyperChoices* choices, int threads = 2) {
  auto backend = longattn::make_cpu_backend(threads);
  return run_on(*backend, c, in, choices);
}

// True when both tensors hold the same bytes element by element.
inline bool same_bits(const HostTensor& a, const HostTensor& b) {
  const size_t es = longattn_dtype_size(a.t.dtype);
  bool same = a.t.dtype == b.t.dtype;
  const_cast<HostTensor&>(a).each([&](int64_t bb, int64_t n, int64_t h, int64_t d) {
    if (same && std::memcmp(a.at(bb, n, h, d), b.at(bb, n, h, d), es) != 0) same = false;
  });
  return same;
}

// Errors against the float64 reference (all rows).
inline test::Errors reference_errors(const HyperCase& c, const Inputs& in, const Output& o) {
  std::vector<double> ref, ref_lse;
  longattn::reference_attention(test::config_of(desc_of(c)), in.q.view(), in.k.view(), in.v.view(), c.pos0(),
                                ref, ref_lse);
  return test::compare(o.out, ref, &o.lse, &ref_lse);
}

// Quality metrics B, C (and block mass with choices) on a subset of rows.
inline longattn::HyperQuality quality(const HyperCase& c, const Inputs& in, const Output& o,
                                      const longattn::HyperChoices* choices, const std::vector<int64_t>& rows) {
  return longattn::measure_hyper_quality(test::config_of(desc_of(c)), in.q.view(), in.k.view(), in.v.view(),
                                         c.pos0(), o.out.view(), o.lse.view(), choices, rows);
}

inline std::vector<int64_t> row_subset(int64_t n, int64_t count, uint64_t seed) {
  std::vector<int64_t> rows;
  if (count >= n) {
    for (int64_t i = 0; i < n; ++i) rows.push_back(i);
    return rows;
  }
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < count; ++i) rows.push_back(int64_t(rng() % uint64_t(n)));
  return rows;
}

}  // namespace hyper_test
