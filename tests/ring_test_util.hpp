// Shared by the ring-mode tests (CPU virtual devices and CUDA virtual ranks): a case description,
// its descriptor, seeded inputs, and one forward call with poisoned outputs.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>

#include "common.hpp"

namespace test {

struct RingCase {
  int64_t batch = 1, n_q = 0, n_k = 0;
  int32_t hq = 8, hkv = 8, d = 16, dv = 16;
  bool causal = false;
  longattn_algorithm algo = LONGATTN_ALGORITHM_FLASH;
  int32_t wl = -1, wr = -1, g = 0;
  longattn_dtype qt = LONGATTN_DTYPE_F32, kvt = LONGATTN_DTYPE_F32, ot = LONGATTN_DTYPE_F32;
  int64_t pad = 0;
  int64_t q_pos0 = LONGATTN_Q_POS_BOTTOM_RIGHT;
};

inline std::string describe(const RingCase& c) {
  return "b=" + std::to_string(c.batch) + " nq=" + std::to_string(c.n_q) + " nk=" + std::to_string(c.n_k) +
         " h=" + std::to_string(c.hq) + "/" + std::to_string(c.hkv) + " d=" + std::to_string(c.d) +
         " causal=" + std::to_string(c.causal) + " algo=" + std::to_string(c.algo) +
         " window=" + std::to_string(c.wl) + ":" + std::to_string(c.wr) + " global=" + std::to_string(c.g) +
         " dt=" + std::to_string(c.qt) + std::to_string(c.kvt) + std::to_string(c.ot) +
         " pad=" + std::to_string(c.pad) + " pos0=" +
         (c.q_pos0 == LONGATTN_Q_POS_BOTTOM_RIGHT ? std::string("br") : std::to_string(c.q_pos0));
}

inline longattn_attention_desc desc_of(const RingCase& c) {
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.algorithm = c.algo;
  d.n_q_heads = c.hq;
  d.n_kv_heads = c.hkv;
  d.head_dim = c.d;
  d.head_dim_v = c.dv;
  d.causal = c.causal;
  d.window_left = c.wl;
  d.window_right = c.wr;
  d.n_global = c.g;
  return d;
}

struct Inputs {
  HostTensor q, k, v;
  Inputs(const RingCase& c, uint64_t seed) {
    std::mt19937_64 rng(seed);
    q = random_tensor(rng, c.qt, c.batch, c.n_q, c.hq, c.d, c.pad);
    k = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.d, c.pad);
    v = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.dv, c.pad);
  }
};

struct Outputs {
  HostTensor out, lse;
  longattn_status status = LONGATTN_OK;
  std::string error;
};

// One forward call on host tensors; out and lse are poisoned first (NaN stays where nothing wrote).
inline Outputs forward(longattn_context* ctx, const RingCase& c, const Inputs& in) {
  Outputs r;
  r.out = HostTensor(c.ot, c.batch, c.n_q, c.hq, c.dv, c.pad);
  r.lse = HostTensor(LONGATTN_DTYPE_F32, c.batch, c.n_q, c.hq, 1, c.pad);
  r.out.poison();
  r.lse.poison();
  const longattn_attention_desc d = desc_of(c);
  longattn_attention* attn = nullptr;
  REQUIRE_MESSAGE(longattn_attention_create(ctx, &d, &attn) == LONGATTN_OK, longattn_context_last_error(ctx));
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &in.q.t; a.k = &in.k.t; a.v = &in.v.t; a.out = &r.out.t; a.lse = &r.lse.t;
  a.q_pos0 = c.q_pos0;
  r.status = longattn_attention_forward(ctx, attn, &a);
  r.error = longattn_context_last_error(ctx);
  longattn_attention_destroy(attn);
  return r;
}

// The ring result against the float64 reference: no NaN, LSE −inf exactly where the reference
// has it, ‖O − ref‖/‖ref‖ < tol, |LSE − ref| < lse_tol.
inline void check_against_reference(const RingCase& c, const Inputs& in, const Outputs& got, double tol,
                                    double lse_tol) {
  std::vector<double> ref, ref_lse;
  const int64_t pos0 = c.q_pos0 == LONGATTN_Q_POS_BOTTOM_RIGHT ? c.n_k - c.n_q : c.q_pos0;
  longattn::reference_attention(config_of(desc_of(c)), in.q.view(), in.k.view(), in.v.view(), pos0, ref, ref_lse);
  const Errors e = compare(got.out, ref, &got.lse, &ref_lse);
  CHECK(e.nan_count == 0);
  CHECK(e.lse_mismatch == 0);
  CHECK(e.rel < tol);
  CHECK(e.lse_max_abs < lse_tol);
}

// Largest |a − b| over O, and over finite LSE (both must be −inf together).
struct MaxDiff {
  double o = 0, lse = 0;
  int64_t lse_mismatch = 0;
};
// LSE of a against b: the largest difference where both are finite, and the count of entries
// where either is infinite or NaN and the two differ.
inline void compare_lse(const Outputs& a, const Outputs& b, double& max_abs, int64_t& mismatches) {
  HostTensor& al = const_cast<HostTensor&>(a.lse);
  al.each([&](int64_t bb, int64_t n, int64_t h, int64_t) {
    const float x = a.lse.get(bb, n, h, 0), y = b.lse.get(bb, n, h, 0);
    if (std::isinf(x) || std::isinf(y) || std::isnan(x) || std::isnan(y)) {
      mismatches += !(x == y);
    } else {
      max_abs = std::max(max_abs, double(std::fabs(x - y)));
    }
  });
}
inline MaxDiff max_diff(const Outputs& a, const Outputs& b) {
  MaxDiff d;
  HostTensor& ao = const_cast<HostTensor&>(a.out);
  ao.each([&](int64_t bb, int64_t n, int64_t h, int64_t e) {
    d.o = std::max(d.o, double(std::fabs(a.out.get(bb, n, h, e) - b.out.get(bb, n, h, e))));
    if (std::isnan(a.out.get(bb, n, h, e)) != std::isnan(b.out.get(bb, n, h, e))) d.o = INFINITY;
  });
  compare_lse(a, b, d.lse, d.lse_mismatch);
  return d;
}

}  // namespace test
