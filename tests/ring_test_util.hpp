// Shared by the ring-mode tests (CPU virtual devices and CUDA virtual ranks): a case description,
// its descriptor, seeded inputs, and one forward call with poisoned outputs.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

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

// Key rows [first, first + count) of each of N ranks under `layout`; contiguous shards get
// deliberately uneven lengths (base + step·r, the last rank the rest).
using RankRows = std::vector<std::vector<std::pair<int64_t, int64_t>>>;
inline RankRows rank_rows(int32_t layout, int64_t n_k, int32_t N, int64_t base, int64_t step) {
  RankRows rows(static_cast<size_t>(N));
  int64_t start = 0;
  for (int32_t r = 0; r < N; ++r) {
    if (layout == LONGATTN_RING_LAYOUT_CONTIGUOUS) {
      const int64_t len = r == N - 1 ? n_k - start : std::min<int64_t>(n_k - start, base + step * r);
      rows[size_t(r)].push_back({start, len});
      start += len;
    } else {
      int64_t f[2], n[2];
      REQUIRE(longattn_ring_shard(layout, n_k, N, r, f, n) == LONGATTN_OK);
      for (int i = 0; i < 2; ++i)
        if (n[i] > 0) rows[size_t(r)].push_back({f[i], n[i]});
    }
  }
  return rows;
}

// The host tensors of a sharded call (batch 1): each rank's K/V rows and its query rows (all of
// them when the queries are replicated), out and lse poisoned.
struct ShardTensors {
  std::vector<HostTensor> q, k, v, out, lse;
  ShardTensors(const RingCase& c, const Inputs& in, const RankRows& ranks, bool replicated) {
    for (const auto& segs : ranks) {
      int64_t rows = 0;
      for (auto [f, n] : segs) rows += n;
      REQUIRE(rows > 0);  // tensors have positive shapes
      const int64_t qrows = replicated ? c.n_q : rows;
      q.emplace_back(c.qt, 1, qrows, c.hq, c.d);
      k.emplace_back(c.kvt, 1, rows, c.hkv, c.d);
      v.emplace_back(c.kvt, 1, rows, c.hkv, c.dv);
      out.emplace_back(c.ot, 1, qrows, c.hq, c.dv);
      lse.emplace_back(LONGATTN_DTYPE_F32, 1, qrows, c.hq, 1);
      int64_t row = 0;
      for (auto [f, n] : segs)
        for (int64_t i = 0; i < n; ++i, ++row) {
          for (int64_t h = 0; h < c.hkv; ++h)
            for (int64_t e = 0; e < c.d; ++e) {
              k.back().set(0, row, h, e, in.k.get(0, f + i, h, e));
              v.back().set(0, row, h, e, in.v.get(0, f + i, h, e));
            }
          if (!replicated)
            for (int64_t h = 0; h < c.hq; ++h)
              for (int64_t e = 0; e < c.d; ++e) q.back().set(0, row, h, e, in.q.get(0, f + i, h, e));
        }
      if (replicated)
        q.back().each([&](int64_t b, int64_t i, int64_t h, int64_t e) { q.back().set(b, i, h, e, in.q.get(b, i, h, e)); });
      out.back().poison();
      lse.back().poison();
    }
  }
};

// The shards' out and lse against the float64 reference of the whole sequence: NaNs and LSE
// −inf mismatches (`bad`), ‖O − ref‖/‖ref‖ over every shard, the largest finite |LSE − ref|.
struct ShardErrors {
  int64_t bad = 0;
  double rel = 0, lse = 0;
};
inline ShardErrors shard_errors(const RingCase& c, const Inputs& in, const ShardTensors& s, const RankRows& ranks,
                                bool replicated) {
  std::vector<double> ref, ref_lse;
  longattn::reference_attention(config_of(desc_of(c)), in.q.view(), in.k.view(), in.v.view(), c.n_k - c.n_q, ref,
                                ref_lse);
  ShardErrors err;
  double num = 0, den = 0;
  for (size_t r = 0; r < ranks.size(); ++r) {
    std::vector<int64_t> rows;  // whole-sequence query row of each shard row
    if (replicated) {
      for (int64_t i = 0; i < c.n_q; ++i) rows.push_back(i);
    } else {
      for (auto [f, n] : ranks[r])
        for (int64_t i = 0; i < n; ++i) rows.push_back(f + i);
    }
    for (size_t i = 0; i < rows.size(); ++i)
      for (int64_t h = 0; h < c.hq; ++h) {
        for (int64_t e = 0; e < c.dv; ++e) {
          const double x = s.out[r].get(0, int64_t(i), h, e);
          const double y = ref[size_t((rows[i] * c.hq + h) * c.dv + e)];
          err.bad += std::isnan(x);
          num += (x - y) * (x - y);
          den += y * y;
        }
        const double l = s.lse[r].get(0, int64_t(i), h, 0), rl = ref_lse[size_t(rows[i] * c.hq + h)];
        if (std::isinf(rl)) err.bad += !(std::isinf(l) && l < 0);
        else err.lse = std::max(err.lse, std::fabs(l - rl));
      }
  }
  err.rel = std::sqrt(num / den);
  return err;
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
