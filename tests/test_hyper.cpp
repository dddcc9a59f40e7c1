// HYPER (HyperAttention) on the CPU backend: the cases where it must be exact (one block, below
// min_seq_len, causal recursion with exact off-diagonal parts, decode), the LSH building blocks
// (Gray order, codes, stable sort, RNG), determinism, recorded / injected choices, and the
// statistics of the sampled part (unbiased normaliser, error ∝ 1/√m, attention sinks).
// The quality table of the spec lives in test_hyper_quality.cpp.
#include <algorithm>
#include <bitset>
#include <cmath>
#include <numeric>

#include "error.hpp"
#include "gray_rank.hpp"
#include "hyper_test_util.hpp"
#include "rng.hpp"

using namespace hyper_test;
using longattn::HyperChoices;

namespace {

constexpr double kExactTol = 2e-5;  // f32 output against the float64 reference

void check_exact(const HyperCase& c, const Inputs& in, const Output& o) {
  const test::Errors e = reference_errors(c, in, o);
  INFO(c.describe());
  CHECK(e.nan_count == 0);
  CHECK(e.lse_mismatch == 0);
  CHECK(e.rel < kExactTol);
  CHECK(e.lse_max_abs < 1e-4);
}

double mean_rel_err(const HyperCase& c, const Inputs& in, const Output& o, const std::vector<int64_t>& rows) {
  return quality(c, in, o, nullptr, rows).rel_err;
}

}  // namespace

TEST_CASE("HYPER: one block covering all keys equals FLASH") {
  for (bool causal : {false, true}) {
    HyperCase c;
    c.n_q = c.n_k = 600;
    c.hq = 4;
    c.hkv = 2;
    c.causal = causal;
    c.block = 1024;
    c.min_len = 128;
    const Inputs in = random_inputs(c, 11);
    const Output hyper = run_api(c, in);
    const Output flash = run_api(c, in, LONGATTN_ALGORITHM_FLASH);
    REQUIRE_MESSAGE(hyper.status == LONGATTN_OK, hyper.error);
    REQUIRE(flash.status == LONGATTN_OK);
    CHECK(same_bits(hyper.out, flash.out));
    CHECK(same_bits(hyper.lse, flash.lse));
  }
  // The LSH path itself (codes, sorted gathers, samples all excluded) with one block: exact.
  for (int32_t sinks : {0, 3}) {
    HyperCase c;
    c.batch = 2;
    c.n_q = 300;
    c.n_k = 500;
    c.hq = 4;
    c.hkv = 2;
    c.n_global = sinks;
    c.block = 512;
    HyperChoices ch;
    ch.force_hyper_path = true;
    const Inputs in = random_inputs(c, 12);
    const Output o = run_direct(c, in, &ch);
    CHECK(ch.nodes.size() == 1);
    check_exact(c, in, o);
  }
}

TEST_CASE("HYPER: below min_seq_len it is FLASH, bit for bit") {
  for (bool causal : {false, true}) {
    HyperCase c;
    c.n_q = c.n_k = 1000;
    c.hq = 4;
    c.hkv = 1;
    c.causal = causal;
    c.min_len = 4096;
    c.qt = c.kvt = LONGATTN_DTYPE_F16;
    const Inputs in = random_inputs(c, 21);
    const Output hyper = run_api(c, in);
    const Output flash = run_api(c, in, LONGATTN_ALGORITHM_FLASH);
    REQUIRE_MESSAGE(hyper.status == LONGATTN_OK, hyper.error);
    CHECK(same_bits(hyper.out, flash.out));
    CHECK(same_bits(hyper.lse, flash.lse));
  }
}

TEST_CASE("HYPER: decode (one query row) is exact split-KV FLASH") {
  for (bool causal : {false, true}) {
    HyperCase c;
    c.n_q = 1;
    c.n_k = 5000;
    c.hq = 8;
    c.hkv = 2;
    c.causal = causal;
    const Inputs in = random_inputs(c, 31);
    const Output hyper = run_api(c, in);
    const Output flash = run_api(c, in, LONGATTN_ALGORITHM_FLASH);
    REQUIRE_MESSAGE(hyper.status == LONGATTN_OK, hyper.error);
    CHECK(same_bits(hyper.out, flash.out));
  }
}

TEST_CASE("HYPER: causal recursion with exact off-diagonal parts equals causal FLASH") {
  // block ≥ n: every off-diagonal node is one block (its samples all excluded), so the
  // recursion, the sinks and the past keys of a chunk must reproduce exact causal attention.
  struct Geometry {
    int64_t n_q, n_k, q_pos0;
    int32_t sinks;
  };
  const Geometry geometries[] = {
      {777, 777, LONGATTN_Q_POS_BOTTOM_RIGHT, 0},  // square, odd length
      {777, 777, LONGATTN_Q_POS_BOTTOM_RIGHT, 5},  // with sinks
      {500, 900, LONGATTN_Q_POS_BOTTOM_RIGHT, 0},  // chunked prefill against a KV cache
      {500, 900, LONGATTN_Q_POS_BOTTOM_RIGHT, 4},
      {500, 520, LONGATTN_Q_POS_BOTTOM_RIGHT, 50},  // sinks reaching into the chunk
      {300, 900, 100, 2},                           // chunk in the middle of the cache
  };
  for (const Geometry& g : geometries) {
    HyperCase c;
    c.batch = 2;
    c.n_q = g.n_q;
    c.n_k = g.n_k;
    c.q_pos0 = g.q_pos0;
    c.hq = 4;
    c.hkv = 2;
    c.causal = true;
    c.n_global = g.sinks;
    c.block = 4096;
    c.min_len = 64;
    HyperChoices ch;
    ch.force_hyper_path = true;
    const Inputs in = random_inputs(c, 41);
    const Output o = run_direct(c, in, &ch);
    INFO(c.describe());
    CHECK(ch.nodes.size() >= 7);  // the recursion really ran several levels
    check_exact(c, in, o);
  }
}

TEST_CASE("HYPER: merging attention over two key sets equals attention over their union") {
  std::mt19937_64 rng(5);
  auto backend = longattn::make_cpu_backend(2);
  const int64_t n_q = 70, n_k = 200, split = 83;
  const int32_t h = 2, d = 16;
  HostTensor q = test::random_tensor(rng, LONGATTN_DTYPE_F32, 1, n_q, h, d);
  HostTensor k = test::random_tensor(rng, LONGATTN_DTYPE_F32, 1, n_k, h, d);
  HostTensor v = test::random_tensor(rng, LONGATTN_DTYPE_F32, 1, n_k, h, d);
  HostTensor o1(LONGATTN_DTYPE_F32, 1, n_q, h, d), o2(LONGATTN_DTYPE_F32, 1, n_q, h, d), o(LONGATTN_DTYPE_F32, 1, n_q, h, d);
  HostTensor l1(LONGATTN_DTYPE_F32, 1, n_q, h, 1), l2(LONGATTN_DTYPE_F32, 1, n_q, h, 1), l(LONGATTN_DTYPE_F32, 1, n_q, h, 1);
  auto attend = [&](int64_t k0, int64_t nk, HostTensor& out, HostTensor& lse) {
    longattn::AttendArgs a;
    a.batch = 1;
    a.n_q = n_q;
    a.n_k = nk;
    a.n_q_heads = a.n_kv_heads = h;
    a.head_dim = a.head_dim_v = d;
    a.q = q.view();
    a.k = k.view();
    a.v = v.view();
    a.k.data = k.at(0, k0, 0, 0);
    a.v.data = v.at(0, k0, 0, 0);
    a.k.shape[1] = a.v.shape[1] = nk;
    a.scale = 0.25f;
    a.out = out.view();
    a.lse = lse.view();
    backend->attend(a);
  };
  attend(0, split, o1, l1);
  attend(split, n_k - split, o2, l2);
  attend(0, n_k, o, l);
  backend->merge(o1.view(), l1.view(), o2.view(), l2.view(), o1.view(), l1.view(), nullptr);
  double max_o = 0, max_l = 0;
  o.each([&](int64_t b, int64_t n, int64_t hh, int64_t e) {
    max_o = std::max(max_o, double(std::fabs(o.get(b, n, hh, e) - o1.get(b, n, hh, e))));
  });
  l.each([&](int64_t b, int64_t n, int64_t hh, int64_t e) {
    max_l = std::max(max_l, double(std::fabs(l.get(b, n, hh, e) - l1.get(b, n, hh, e))));
  });
  CHECK(max_o < 1e-5);
  CHECK(max_l < 1e-5);
}

TEST_CASE("HYPER: attend with segments and shared tail keys equals attention over own keys + tail") {
  // The primitive behind HYPER's fused block + sample call: gathered keys, segments (some empty),
  // the last n_tail logical keys shared by every segment with gathers, log-weights (some −inf)
  // and exclusion groups of their own, GQA, a causal mask on explicit positions; checked row by
  // row in float64.
  std::mt19937_64 rng(77);
  auto backend = longattn::make_cpu_backend(2);
  for (int round = 0; round < 6; ++round) {
    const int64_t B = 1 + round % 2, n_q = 20 + 13 * round, n_k = 30 + 17 * round, n_tail = round == 5 ? n_k : 1 + round * 4;
    const int32_t hkv = 2, hq = round % 2 ? 4 : 2, d = round % 3 ? 16 : 40;
    const bool causal = round % 3 == 1;
    HostTensor q = test::random_tensor(rng, LONGATTN_DTYPE_F32, B, n_q, hq, d);
    HostTensor k = test::random_tensor(rng, LONGATTN_DTYPE_F16, B, n_k, hkv, d);
    HostTensor v = test::random_tensor(rng, LONGATTN_DTYPE_F32, B, n_k, hkv, d);
    HostTensor o(LONGATTN_DTYPE_F32, B, n_q, hq, d), l(LONGATTN_DTYPE_F32, B, n_q, hq, 1);
    o.poison();
    l.poison();
    const int n_seg = 1 + round % 4;
    std::vector<int64_t> q_seg(size_t(n_seg) + 1, 0), k_seg(size_t(n_seg) + 1, 0);
    for (int s = 1; s < n_seg; ++s) {
      q_seg[size_t(s)] = int64_t(rng() % uint64_t(n_q + 1));
      k_seg[size_t(s)] = int64_t(rng() % uint64_t(n_k - n_tail + 1));
    }
    q_seg[size_t(n_seg)] = n_q;
    k_seg[size_t(n_seg)] = n_k - n_tail;
    std::sort(q_seg.begin(), q_seg.end());
    std::sort(k_seg.begin(), k_seg.end());
    std::vector<int32_t> q_rows, k_rows, q_group, k_group, t_rows, t_group;
    std::vector<float> logw, t_logw;
    std::vector<int64_t> q_pos, k_pos;
    for (int64_t s = 0; s < B * hq; ++s) {
      std::vector<int32_t> p(static_cast<size_t>(n_q));
      std::iota(p.begin(), p.end(), 0);
      std::shuffle(p.begin(), p.end(), rng);
      q_rows.insert(q_rows.end(), p.begin(), p.end());
      for (int64_t i = 0; i < n_q; ++i) q_group.push_back(int32_t(rng() % 4) - 1);
    }
    // own keys: a permutation's first n_own entries; the tail: any rows, repeats allowed (samples)
    const int64_t n_own = n_k - n_tail;
    auto random_logw = [&] {
      return rng() % 11 == 0 ? -std::numeric_limits<float>::infinity() : float(rng() % 100) / 40.0f - 1.0f;
    };
    for (int64_t s = 0; s < B * hkv; ++s) {
      std::vector<int32_t> p(static_cast<size_t>(n_k));
      std::iota(p.begin(), p.end(), 0);
      std::shuffle(p.begin(), p.end(), rng);
      k_rows.insert(k_rows.end(), p.begin(), p.begin() + n_own);
      for (int64_t j = 0; j < n_own; ++j) k_group.push_back(int32_t(rng() % 3)), logw.push_back(random_logw());
      for (int64_t j = 0; j < n_tail; ++j) {
        t_rows.push_back(int32_t(rng() % uint64_t(n_k)));
        t_group.push_back(int32_t(rng() % 3));
        t_logw.push_back(random_logw());
      }
    }
    for (int64_t i = 0; i < n_q; ++i) q_pos.push_back(int64_t(rng() % uint64_t(n_k)));
    for (int64_t j = 0; j < n_k; ++j) k_pos.push_back(int64_t(rng() % uint64_t(n_k)));

    longattn::AttendArgs a;
    a.batch = B;
    a.n_q = n_q;
    a.n_k = n_k;
    a.n_q_heads = hq;
    a.n_kv_heads = hkv;
    a.head_dim = a.head_dim_v = d;
    a.q = q.view();
    a.k = k.view();
    a.v = v.view();
    a.scale = 0.3f;
    a.mask.causal = causal;
    if (causal) a.q_pos = q_pos.data(), a.k_pos = k_pos.data();
    a.q_rows = q_rows.data();
    a.k_rows = k_rows.data();
    a.key_logw = logw.data();
    a.q_group = q_group.data();
    a.k_group = k_group.data();
    a.n_segments = n_seg;
    a.q_seg = q_seg.data();
    a.k_seg = k_seg.data();
    a.n_tail_keys = n_tail;
    a.tail_k_rows = t_rows.data();
    a.tail_key_logw = t_logw.data();
    a.tail_k_group = t_group.data();
    if (round == 3) a.key_logw = nullptr, a.k_group = nullptr;  // the tail's own arrays only
    a.out = o.view();
    a.lse = l.view();
    REQUIRE(backend->supports_tail_keys());
    backend->attend(a);

    int64_t checked = 0, empty = 0;
    double worst = 0, worst_lse = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int32_t h = 0; h < hq; ++h) {
        const int32_t hk = h / (hq / hkv);
        for (int64_t i = 0; i < n_q; ++i) {
          int64_t s = 0;
          while (q_seg[size_t(s) + 1] <= i) ++s;
          const int64_t phys = q_rows[size_t((b * hq + h) * n_q + i)];
          const int32_t qg = q_group[size_t((b * hq + h) * n_q + i)];
          std::vector<int64_t> keys;
          for (int64_t j = k_seg[size_t(s)]; j < k_seg[size_t(s) + 1]; ++j) keys.push_back(j);
          for (int64_t j = n_k - n_tail; j < n_k; ++j) keys.push_back(j);
          double mx = -INFINITY;
          std::vector<std::pair<int64_t, double>> terms;  // (physical key row, logit)
          for (int64_t j : keys) {
            const bool own = j < n_own;
            const size_t kj = own ? size_t((b * hkv + hk) * n_own + j) : size_t((b * hkv + hk) * n_tail + j - n_own);
            const int64_t kp = own ? k_rows[kj] : t_rows[kj];
            const int32_t kg = own ? (a.k_group ? k_group[kj] : -1) : t_group[kj];
            const double lw = own ? (a.key_logw ? logw[kj] : 0.0) : t_logw[kj];
            if (qg >= 0 && qg == kg) continue;
            if (causal && k_pos[size_t(kp)] > q_pos[size_t(phys)]) continue;
            if (std::isinf(lw)) continue;
            double dot = 0;
            for (int32_t e = 0; e < d; ++e) dot += double(q.get(b, phys, h, e)) * k.get(b, kp, hk, e);
            terms.push_back({kp, 0.3 * dot + lw});
            mx = std::max(mx, terms.back().second);
          }
          const double lse_got = l.get(b, phys, h, 0);
          if (terms.empty()) {
            CHECK(std::isinf(lse_got));
            ++empty;
            continue;
          }
          double sum = 0;
          std::vector<double> acc(size_t(d), 0.0);
          for (const auto& [kp, logit] : terms) {
            const double w = std::exp(logit - mx);
            sum += w;
            for (int32_t e = 0; e < d; ++e) acc[size_t(e)] += w * v.get(b, kp, hk, e);
          }
          for (int32_t e = 0; e < d; ++e)
            worst = std::max(worst, std::fabs(o.get(b, phys, h, e) - acc[size_t(e)] / sum));
          worst_lse = std::max(worst_lse, std::fabs(lse_got - (mx + std::log(sum))));
          ++checked;
        }
      }
    INFO("round ", round, " segments ", n_seg, " tail ", n_tail);
    CHECK(checked + empty == B * hq * n_q);
    CHECK(checked > B * hq * n_q / 2);
    CHECK(worst < 2e-5);
    CHECK(worst_lse < 2e-5);
  }
}

namespace {
// The CPU backend without shared tail keys: the planner then makes the two calls per node that
// backends without them (CUDA) make.
using longattn::View;
class CpuWithoutTailKeys final : public longattn::Backend {
 public:
  CpuWithoutTailKeys() : cpu_(longattn::make_cpu_backend(2)) {}
  longattn_backend kind() const override { return cpu_->kind(); }
  std::string device_name() const override { return cpu_->device_name(); }
  void* alloc(size_t bytes) override { return cpu_->alloc(bytes); }
  void free(void* p) override { cpu_->free(p); }
  void upload(void* d, const void* s, size_t n, void* st) override { cpu_->upload(d, s, n, st); }
  void download(void* d, const void* s, size_t n, void* st) override { cpu_->download(d, s, n, st); }
  void copy(void* d, const void* s, size_t n, void* st) override { cpu_->copy(d, s, n, st); }
  void synchronize(void* st) override { cpu_->synchronize(st); }
  bool supports_tail_keys() const override { return false; }
  void attend(const longattn::AttendArgs& a) override {
    REQUIRE(a.n_tail_keys == 0);
    cpu_->attend(a);
  }
  void state_init(longattn::RunningState& s, int64_t b, int32_t h, int64_t r, int32_t dv, void* st) override {
    cpu_->state_init(s, b, h, r, dv, st);
  }
  void state_finish(const longattn::RunningState& s, int64_t b, int32_t h, int64_t r, int32_t dv, const View& o,
                    const View& l, void* st) override {
    cpu_->state_finish(s, b, h, r, dv, o, l, st);
  }
  void merge(const View& a, const View& la, const View& b, const View& lb, const View& o, const View& lo,
             void* st) override {
    cpu_->merge(a, la, b, lb, o, lo, st);
  }
  void lsh_codes(const View& x, const float* G, int32_t r, const float* c, uint16_t* codes, void* st) override {
    cpu_->lsh_codes(x, G, r, c, codes, st);
  }
  void counting_sort(const uint16_t* codes, int64_t n_seg, int64_t n, int32_t r, int32_t* perm, void* st) override {
    cpu_->counting_sort(codes, n_seg, n, r, perm, st);
  }

 private:
  std::unique_ptr<longattn::Backend> cpu_;
};
}  // namespace

TEST_CASE("HYPER: the fused block + sample call equals blocks and samples merged (two calls)") {
  for (bool causal : {false, true}) {
    HyperCase c;
    c.batch = 2;
    c.n_q = c.n_k = 1300;
    c.hq = 4;
    c.hkv = 2;
    c.causal = causal;
    c.block = 64;
    c.samples = 48;
    c.min_len = 256;
    const Inputs in = random_inputs(c, 41 + causal);
    Output o[2];
    HyperChoices ch;
    ch.force_hyper_path = true;
    for (int x = 0; x < 2; ++x) {  // 0: the CPU backend (fused), 1: without tail keys, replaying
      ch.mode = x == 0 ? HyperChoices::Mode::record : HyperChoices::Mode::replay;
      std::unique_ptr<longattn::Backend> be =
          x == 0 ? longattn::make_cpu_backend(2) : std::unique_ptr<longattn::Backend>(new CpuWithoutTailKeys);
      o[x] = run_on(*be, c, in, &ch);
    }
    INFO("causal=", causal, " nodes=", ch.nodes.size());
    CHECK(ch.nodes.size() >= (causal ? 3u : 1u));
    double worst = 0, worst_lse = 0, scale = 0;
    o[0].out.each([&](int64_t b, int64_t n, int64_t h, int64_t e) {
      worst = std::max(worst, double(std::fabs(o[0].out.get(b, n, h, e) - o[1].out.get(b, n, h, e))));
      scale = std::max(scale, double(std::fabs(o[0].out.get(b, n, h, e))));
    });
    o[0].lse.each([&](int64_t b, int64_t n, int64_t h, int64_t) {
      worst_lse = std::max(worst_lse, double(std::fabs(o[0].lse.get(b, n, h, 0) - o[1].lse.get(b, n, h, 0))));
    });
    CHECK(scale > 0.01);
    CHECK(worst < 1e-5 * std::max(1.0, scale));
    CHECK(worst_lse < 1e-5);
  }
}

TEST_CASE("HYPER: Gray ranks walk the hypercube one bit at a time (r = 1..16)") {
  for (uint32_t r = 1; r <= 16; ++r) {
    int64_t bad = 0;
    for (uint32_t rank = 0; rank + 1 < (1u << r); ++rank) {
      const uint32_t a = longattn::gray_code(rank), b = longattn::gray_code(rank + 1);
      bad += std::bitset<32>(a ^ b).count() != 1;
      bad += longattn::gray_rank(a) != rank;
      bad += a >= (1u << r);
    }
    INFO("r=", r);
    CHECK(bad == 0);
  }
}

TEST_CASE("HYPER: lsh_codes = Gray rank of the sign bits of centred projections") {
  std::mt19937_64 rng(61);
  auto backend = longattn::make_cpu_backend(2);
  const int64_t B = 2, n = 300, H = 2, d = 24;
  HostTensor x = test::random_tensor(rng, LONGATTN_DTYPE_F16, B, n, H, d);
  std::vector<float> center(size_t(B * H * d));
  for (float& cc : center) cc = std::normal_distribution<float>(0.0f, 0.5f)(rng);
  for (int32_t r : {1, 5, 8, 16}) {
    const std::vector<float> G = longattn::gaussian_projections(uint64_t(r) * 7, int32_t(d), r);
    std::vector<uint16_t> codes(size_t(B * H * n));
    backend->lsh_codes(x.view(), G.data(), r, center.data(), codes.data(), nullptr);
    int64_t checked = 0, bad = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < n; ++i) {
          uint32_t bits = 0;
          bool near_zero = false;
          double xnorm = 0;
          for (int64_t c = 0; c < d; ++c) {
            const double y = double(x.get(b, i, h, c)) - center[size_t((b * H + h) * d + c)];
            xnorm += y * y;
          }
          for (int32_t t = 0; t < r; ++t) {
            double dot = 0, gnorm = 0;
            for (int64_t c = 0; c < d; ++c) {
              dot += (double(x.get(b, i, h, c)) - center[size_t((b * H + h) * d + c)]) * G[size_t(c * r + t)];
              gnorm += double(G[size_t(c * r + t)]) * G[size_t(c * r + t)];
            }
            near_zero |= std::fabs(dot) < 1e-3 * std::sqrt(xnorm * gnorm);
            bits |= uint32_t(dot > 0) << t;
          }
          if (near_zero) continue;  // within rounding of a hyperplane: either side is right
          ++checked;
          bad += codes[size_t((b * H + h) * n + i)] != longattn::gray_rank(bits);
        }
    INFO("r=", r);
    CHECK(checked > B * H * n * 9 / 10);
    CHECK(bad == 0);
  }
}

TEST_CASE("HYPER: counting_sort is the stable order by (code, index)") {
  std::mt19937_64 rng(71);
  auto backend = longattn::make_cpu_backend(2);
  for (int32_t r : {1, 7, 16}) {
    const int64_t n_seg = 3, n = 1000;
    std::vector<uint16_t> codes(size_t(n_seg * n));
    for (uint16_t& c : codes) c = uint16_t(rng() % (uint64_t(1) << r));
    std::vector<int32_t> perm(codes.size(), -1);
    backend->counting_sort(codes.data(), n_seg, n, r, perm.data(), nullptr);
    for (int64_t s = 0; s < n_seg; ++s) {
      std::vector<int32_t> expect(static_cast<size_t>(n));
      std::iota(expect.begin(), expect.end(), 0);
      std::stable_sort(expect.begin(), expect.end(),
                       [&](int32_t a, int32_t b) { return codes[size_t(s * n + a)] < codes[size_t(s * n + b)]; });
      INFO("r=", r, " segment=", s);
      CHECK(std::equal(expect.begin(), expect.end(), perm.begin() + s * n));
    }
  }
}

TEST_CASE("HYPER: segmented gathers and segment labels (CPU and the default through host memory)") {
  std::mt19937_64 rng(73);
  auto backend = longattn::make_cpu_backend(2);
  longattn::Backend& be = *backend;
  const int64_t n_seg = 5, n_src = 301, n_index = 37;
  std::vector<int32_t> src(size_t(n_seg * n_src)), index(size_t(n_seg * n_index));
  for (int32_t& x : src) x = int32_t(rng() % 100000);
  for (int32_t& x : index) x = int32_t(rng() % uint64_t(n_src));
  std::vector<int32_t> got(index.size(), -1), got_default(index.size(), -1);
  be.gather_i32(got.data(), src.data(), index.data(), n_seg, n_src, n_index, nullptr);
  be.Backend::gather_i32(got_default.data(), src.data(), index.data(), n_seg, n_src, n_index, nullptr);
  for (int64_t s = 0; s < n_seg; ++s)
    for (int64_t j = 0; j < n_index; ++j) {
      const size_t x = size_t(s * n_index + j);
      CHECK(got[x] == src[size_t(s * n_src + index[x])]);
    }
  CHECK(got_default == got);

  // uneven segments, an empty one among them, three copies
  const std::vector<int64_t> offsets = {0, 3, 3, 10, 11, 40};
  const int32_t segs = int32_t(offsets.size() - 1);
  const int64_t n = offsets.back(), copies = 3;
  std::vector<int32_t> labels(size_t(n * copies), -1), labels_default(labels.size(), -1);
  be.segment_labels(labels.data(), offsets.data(), segs, copies, nullptr);
  be.Backend::segment_labels(labels_default.data(), offsets.data(), segs, copies, nullptr);
  for (int64_t c = 0; c < copies; ++c)
    for (int32_t s = 0; s < segs; ++s)
      for (int64_t i = offsets[size_t(s)]; i < offsets[size_t(s) + 1]; ++i) CHECK(labels[size_t(c * n + i)] == s);
  CHECK(labels_default == labels);
}

TEST_CASE("HYPER: counter-based RNG, Box–Muller projections, multiply-shift samples") {
  // Pure functions of (seed, indices, counter).
  const longattn::RngStream a(42, longattn::RngPurpose::samples, 1, 2, 3, 4);
  const longattn::RngStream b(42, longattn::RngPurpose::samples, 1, 2, 3, 4);
  const longattn::RngStream c(42, longattn::RngPurpose::samples, 1, 2, 3, 5);
  const longattn::RngStream e(43, longattn::RngPurpose::samples, 1, 2, 3, 4);
  int64_t same_c = 0, same_e = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    REQUIRE(a.u64(i) == b.u64(i));
    same_c += a.u64(i) == c.u64(i);
    same_e += a.u64(i) == e.u64(i);
  }
  CHECK(same_c == 0);
  CHECK(same_e == 0);

  // N(0, 1) projections: moments of 2^16 values, and reproducible.
  const std::vector<float> g = longattn::gaussian_projections(7, 256, 256);
  CHECK(g == longattn::gaussian_projections(7, 256, 256));
  CHECK(g != longattn::gaussian_projections(8, 256, 256));
  double s1 = 0, s2 = 0, s4 = 0;
  for (float x : g) s1 += x, s2 += double(x) * x, s4 += double(x) * x * x * x;
  const double n = double(g.size());
  CHECK(std::fabs(s1 / n) < 4.0 / std::sqrt(n));
  CHECK(std::fabs(s2 / n - 1.0) < 4.0 * std::sqrt(2.0 / n));
  CHECK(std::fabs(s4 / n - 3.0) < 0.15);

  // multiply-shift: in range, and uniform (χ² over 37 cells, 370 000 draws).
  const uint32_t population = 37;
  std::vector<int64_t> hist(population, 0);
  for (uint64_t i = 0; i < 370000; ++i) {
    const uint32_t x = longattn::multiply_shift(a.u32(i), population);
    REQUIRE(x < population);
    ++hist[x];
  }
  double chi2 = 0;
  for (int64_t h : hist) chi2 += double(h - 10000) * double(h - 10000) / 10000.0;
  CHECK(chi2 < 80.0);  // 36 degrees of freedom: P(χ² > 80) < 1e-4
  CHECK(longattn::multiply_shift(0xffffffffu, 1000) == 999);
  CHECK(longattn::multiply_shift(0, 1000) == 0);
}

TEST_CASE("HYPER: same seed gives the same output on every thread count; another seed differs") {
  for (bool causal : {false, true}) {
    HyperCase c;
    c.n_q = c.n_k = 2048;
    c.hq = 4;
    c.hkv = 2;
    c.causal = causal;
    c.block = 128;
    c.samples = 64;
    c.min_len = 256;
    c.n_global = 2;
    const Inputs in = random_inputs(c, 81);
    const Output o1 = run_api(c, in, LONGATTN_ALGORITHM_HYPER, 1);
    REQUIRE_MESSAGE(o1.status == LONGATTN_OK, o1.error);
    for (int threads : {2, 3}) {
      const Output o = run_api(c, in, LONGATTN_ALGORITHM_HYPER, threads);
      INFO("causal=", causal, " threads=", threads);
      CHECK(same_bits(o1.out, o.out));
      CHECK(same_bits(o1.lse, o.lse));
    }
    HyperCase c2 = c;
    c2.seed = 2;
    const Output o2 = run_api(c2, in);
    CHECK(!same_bits(o1.out, o2.out));

    HyperChoices r1, r2;
    run_direct(c, in, &r1);
    run_direct(c2, in, &r2);
    REQUIRE(r1.nodes.size() == r2.nodes.size());
    REQUIRE(!r1.nodes.empty());
    CHECK(r1.nodes[0].sample_ranks != r2.nodes[0].sample_ranks);
  }
}

// Few work items per attend call (one batch, one head, mid-sized causal nodes) make the CPU
// backend split key ranges by thread count (flash-decoding), which changes the summation order.
// Until that split depends on the shape only, thread-count invariance holds only for calls with
// enough work items (the case above); this case documents the gap.
TEST_CASE("HYPER: same output on 1 and 8 threads when calls have few work items") {
  HyperCase c;
  c.n_q = c.n_k = 3000;
  c.causal = true;
  c.block = 128;
  c.samples = 64;
  c.min_len = 256;
  const Inputs in = random_inputs(c, 85);
  const Output a = run_api(c, in, LONGATTN_ALGORITHM_HYPER, 1);
  const Output b = run_api(c, in, LONGATTN_ALGORITHM_HYPER, 8);
  REQUIRE(a.status == LONGATTN_OK);
  CHECK(same_bits(a.out, b.out));
}

TEST_CASE("HYPER: recorded choices replay bit for bit") {
  HyperCase c;
  c.batch = 2;
  c.n_q = c.n_k = 1500;
  c.hq = 4;
  c.hkv = 2;
  c.causal = true;
  c.block = 100;
  c.samples = 50;
  c.min_len = 200;
  c.n_global = 3;
  const Inputs in = random_inputs(c, 91);
  HyperChoices rec;
  const Output recorded = run_direct(c, in, &rec);
  REQUIRE(rec.nodes.size() >= 3);
  const longattn::HyperNodeChoice& n0 = rec.nodes[0];
  // GQA: keys hashed, sorted and sampled once per KV head; queries per query head.
  CHECK(int64_t(n0.perm_k.size()) == c.batch * c.hkv * n0.nk);
  CHECK(int64_t(n0.codes_k.size()) == c.batch * c.hkv * n0.nk);
  CHECK(int64_t(n0.sample_ranks.size()) == c.batch * c.hkv * c.samples);
  CHECK(int64_t(n0.perm_q.size()) == c.batch * c.hq * n0.nq);
  CHECK(n0.n_blocks == (n0.nk + c.block - 1) / c.block);

  // Replay: identical output, whatever the seed says.
  HyperChoices replay = rec;
  replay.mode = HyperChoices::Mode::replay;
  const Output replayed = run_direct(c, in, &replay);
  CHECK(same_bits(recorded.out, replayed.out));
  CHECK(same_bits(recorded.lse, replayed.lse));
  CHECK(replay.cursor == rec.nodes.size());
  HyperCase other_seed = c;
  other_seed.seed = 99;
  const Output replayed2 = run_direct(other_seed, in, &replay);
  CHECK(same_bits(recorded.out, replayed2.out));

  // Choices that do not fit the planner's nodes are refused with a message.
  HyperChoices bad = rec;
  bad.mode = HyperChoices::Mode::replay;
  bad.nodes.pop_back();
  CHECK_THROWS_AS(run_direct(c, in, &bad), longattn::Error);
  bad = rec;
  bad.mode = HyperChoices::Mode::replay;
  bad.nodes[0].sample_ranks[0] = uint32_t(bad.nodes[0].nk);
  CHECK_THROWS_AS(run_direct(c, in, &bad), longattn::Error);
}

TEST_CASE("HYPER: injected choices drive the numeric part exactly as the algorithm says") {
  // Identity orders and fixed samples, checked row by row against a float64 host evaluation of
  //   sinks (exact) + own block (exact) + samples outside the block with weight nk/m.
  HyperCase c;
  c.batch = 2;
  c.n_q = 700;
  c.n_k = 1100;
  c.hq = 4;
  c.hkv = 2;
  c.n_global = 3;
  c.block = 100;
  c.samples = 50;
  c.min_len = 200;
  c.qt = LONGATTN_DTYPE_BF16;
  c.kvt = LONGATTN_DTYPE_F16;
  const Inputs in = random_inputs(c, 95);
  HyperChoices ch;
  run_direct(c, in, &ch);
  REQUIRE(ch.nodes.size() == 1);
  longattn::HyperNodeChoice& node = ch.nodes[0];
  REQUIRE(node.k0 == 3);
  REQUIRE(node.nk == c.n_k - 3);
  for (size_t x = 0; x < node.perm_q.size(); ++x) node.perm_q[x] = int32_t(x % size_t(node.nq));
  for (size_t x = 0; x < node.perm_k.size(); ++x) node.perm_k[x] = int32_t(x % size_t(node.nk));
  for (size_t x = 0; x < node.sample_ranks.size(); ++x) node.sample_ranks[x] = uint32_t((x * 37 + 5) % size_t(node.nk));
  ch.mode = HyperChoices::Mode::replay;
  const Output o = run_direct(c, in, &ch);

  const double scale = 1.0 / std::sqrt(double(c.d));
  const int64_t nb = node.n_blocks, nq = node.nq, nk = node.nk;
  int64_t checked = 0;
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t i : {int64_t(0), int64_t(123), int64_t(450), int64_t(699)})
      for (int64_t h = 0; h < c.hq; ++h) {
        const int64_t hk = h / (c.hq / c.hkv);
        int64_t beta = 0;
        while (beta + 1 < nb && (beta + 1) * nq / nb <= i) ++beta;
        std::vector<std::pair<int64_t, double>> terms;  // (key row, log-weight)
        for (int64_t j = 0; j < 3; ++j) terms.push_back({j, 0.0});
        for (int64_t rk = beta * c.block; rk < std::min((beta + 1) * c.block, nk); ++rk) terms.push_back({3 + rk, 0.0});
        for (int64_t s = 0; s < c.samples; ++s) {
          const int64_t rk = node.sample_ranks[size_t((b * c.hkv + hk) * c.samples + s)];
          if (rk / c.block != beta) terms.push_back({3 + rk, std::log(double(nk) / double(c.samples))});
        }
        std::vector<double> logits;
        double mx = -1e300;
        for (const auto& [j, lw] : terms) {
          double dot = 0;
          for (int64_t e = 0; e < c.d; ++e) dot += double(in.q.get(b, i, h, e)) * in.k.get(b, j, hk, e);
          logits.push_back(dot * scale + lw);
          mx = std::max(mx, logits.back());
        }
        double sum = 0;
        std::vector<double> acc(size_t(c.dv), 0.0);
        for (size_t t = 0; t < terms.size(); ++t) {
          const double p = std::exp(logits[t] - mx);
          sum += p;
          for (int64_t e = 0; e < c.dv; ++e) acc[size_t(e)] += p * in.v.get(b, terms[t].first, hk, e);
        }
        double num = 0, den = 0;
        for (int64_t e = 0; e < c.dv; ++e) {
          const double expect = acc[size_t(e)] / sum;
          num += (o.out.get(b, i, h, e) - expect) * (o.out.get(b, i, h, e) - expect);
          den += expect * expect;
        }
        INFO("b=", b, " row=", i, " head=", h);
        CHECK(std::sqrt(num / den) < 1e-5);
        CHECK(std::fabs(double(o.lse.get(b, i, h, 0)) - (mx + std::log(sum))) < 1e-4);
        ++checked;
      }
  CHECK(checked == c.batch * 4 * c.hq);
}

TEST_CASE("HYPER: the sampled normaliser is unbiased (many seeds)") {
  // D̃_i = exp(L̃_i) = D_block + (nk/m)·Σ_kept e^{s q·k}: E[D̃_i / D_i] = 1 for every row.
  HyperCase c;
  c.n_q = 256;
  c.n_k = 2048;
  c.d = c.dv = 16;
  c.block = 128;
  c.samples = 64;
  c.bits = 4;
  c.min_len = 512;
  const Inputs in = random_inputs(c, 101);
  std::vector<double> ref_o, ref_l;
  longattn::reference_attention(test::config_of(desc_of(c)), in.q.view(), in.k.view(), in.v.view(), c.pos0(),
                                ref_o, ref_l);
  const int n_seeds = 200, n_rows_tracked = 8;
  std::vector<double> per_seed;  // mean over rows of D̃/D
  std::vector<std::vector<double>> per_row(n_rows_tracked);
  for (int s = 0; s < n_seeds; ++s) {
    c.seed = 1000 + uint64_t(s);
    const Output o = run_direct(c, in, nullptr, 1);
    double mean = 0;
    for (int64_t i = 0; i < c.n_q; ++i) {
      const double ratio = std::exp(double(o.lse.get(0, i, 0, 0)) - ref_l[size_t(i)]);
      mean += ratio;
      if (i < n_rows_tracked) per_row[size_t(i)].push_back(ratio);
    }
    per_seed.push_back(mean / double(c.n_q));
  }
  auto mean_se = [](const std::vector<double>& x) {
    const double n = double(x.size());
    const double m = std::accumulate(x.begin(), x.end(), 0.0) / n;
    double var = 0;
    for (double y : x) var += (y - m) * (y - m);
    return std::pair<double, double>{m, std::sqrt(var / (n - 1) / n)};
  };
  const auto [m_all, se_all] = mean_se(per_seed);
  INFO("mean ratio over rows and seeds = ", m_all, " ± ", se_all);
  CHECK(se_all > 0);
  CHECK(std::fabs(m_all - 1.0) < 4 * se_all);
  for (int i = 0; i < n_rows_tracked; ++i) {
    const auto [m, se] = mean_se(per_row[size_t(i)]);
    INFO("row ", i, ": ", m, " ± ", se);
    CHECK(std::fabs(m - 1.0) < 4 * se);
  }
}

TEST_CASE("HYPER: the residual error falls roughly as 1/sqrt(m)") {
  HyperCase c;
  c.n_q = 512;
  c.n_k = 4096;
  c.d = c.dv = 32;
  c.block = 256;
  c.bits = 8;
  c.min_len = 1024;
  const Inputs in = random_inputs(c, 111, 1.0f);  // logits s·q·k ~ N(0, 1): bounded; V = N(0, 1) + 1
  const std::vector<int64_t> rows = row_subset(c.n_q, 256, 5);
  std::vector<double> err;
  for (int32_t m : {64, 256, 1024}) {
    c.samples = m;
    double e = 0;
    for (uint64_t seed : {1, 2, 3, 4}) {
      c.seed = seed;
      e += mean_rel_err(c, in, run_direct(c, in, nullptr), rows) / 4;
    }
    err.push_back(e);
  }
  INFO("errors at m = 64, 256, 1024: ", err[0], " ", err[1], " ", err[2]);
  // 4× the samples ⇒ half the error (ideal ratio 2)
  CHECK(err[0] / err[1] > 1.6);
  CHECK(err[0] / err[1] < 2.5);
  CHECK(err[1] / err[2] > 1.6);
  CHECK(err[1] / err[2] < 2.5);
}

TEST_CASE("HYPER: n_global sinks are attended exactly") {
  // Every query puts most of its mass on the first 4 keys (attention sinks). Uniform samples
  // rarely hit them; with n_global = 4 they are exact and the error collapses.
  for (bool causal : {false, true}) {
    HyperCase c;
    c.n_q = c.n_k = 2048;
    c.hq = 2;
    c.hkv = 1;
    c.causal = causal;
    c.block = 128;
    c.samples = 64;
    c.min_len = 256;
    Inputs in = random_inputs(c, 121, 1.0f);
    std::mt19937_64 rng(3);
    std::vector<float> dir(size_t(c.d));
    for (float& x : dir) x = std::normal_distribution<float>(0.0f, 1.0f)(rng);
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t e = 0; e < c.d; ++e) in.k.set(0, j, 0, e, 2.0f * dir[size_t(e)]);
    for (int64_t i = 0; i < c.n_q; ++i)
      for (int64_t h = 0; h < c.hq; ++h)
        for (int64_t e = 0; e < c.d; ++e) in.q.set(0, i, h, e, in.q.get(0, i, h, e) * 0.5f + 0.5f * dir[size_t(e)]);
    const std::vector<int64_t> rows = row_subset(c.n_q, 256, 6);
    c.n_global = 0;
    const double without = mean_rel_err(c, in, run_direct(c, in, nullptr), rows);
    c.n_global = 4;
    const double with = mean_rel_err(c, in, run_direct(c, in, nullptr), rows);
    INFO("causal=", causal, " error without sinks ", without, ", with ", with);
    CHECK(with < 0.5 * without);
  }
}

TEST_CASE("HYPER: f16 output and a missing lse give the same result up to rounding") {
  // With an f16 out the pieces fold into fp32 scratch; rows whose last fold is known are merged
  // straight into out, the rest converted at the end. Checked row by row against the fp32 out
  // (which is the accumulator itself): every row must be there, each with its last fold.
  //   0: causal square (8 leaves, 7 nodes; leaf 0 converted at the end)
  //   1: non-causal, one node (writes out and lse itself)
  //   2: a chunk after cached keys, with sinks (sinks and past pieces, then the square)
  for (int layout = 0; layout < 3; ++layout) {
    INFO("layout=", layout);
    HyperCase c;
    c.n_q = c.n_k = 2000;
    c.hq = 2;
    c.causal = layout != 1;
    c.block = 128;
    c.min_len = 256;
    if (layout == 2) {
      c.n_k = 2900;
      c.n_global = 5;
    }
    const Inputs in = random_inputs(c, 131 + uint64_t(layout));
    const Output f32 = run_api(c, in);
    REQUIRE_MESSAGE(f32.status == LONGATTN_OK, f32.error);
    const Output no_lse = run_api(c, in, LONGATTN_ALGORITHM_HYPER, 2, false);
    CHECK(same_bits(f32.out, no_lse.out));
    HyperCase h = c;
    h.ot = LONGATTN_DTYPE_F16;
    const Output f16 = run_api(h, in);
    REQUIRE(f16.status == LONGATTN_OK);
    double worst = 0;
    int64_t nan = 0;
    for (int64_t b = 0; b < c.batch; ++b)
      for (int64_t n = 0; n < c.n_q; ++n)
        for (int64_t hh = 0; hh < c.hq; ++hh) {
          double num = 0, den = 0;
          for (int64_t e = 0; e < c.dv; ++e) {
            const double x = f32.out.get(b, n, hh, e), y = f16.out.get(b, n, hh, e);
            nan += std::isnan(y);
            num += (x - y) * (x - y);
            den += x * x;
          }
          worst = std::max(worst, std::sqrt(num / den));
        }
    CHECK(nan == 0);
    CHECK(worst < 1e-3);  // f16 rounding: ≤ 2^-11 per element
    CHECK(same_bits(f32.lse, f16.lse));
  }
}

TEST_CASE("HYPER: sliding windows are refused") {
  HyperCase c;
  c.n_q = c.n_k = 64;
  const Inputs in = random_inputs(c, 141);
  test::Context ctx(LONGATTN_BACKEND_CPU, 1);
  longattn_attention_desc d = desc_of(c);
  d.window_left = 16;
  test::Attention attn(ctx, d);
  longattn_status st = attn.status;
  if (st == LONGATTN_OK) {
    Output o = make_output(c);
    longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
    a.q = &in.q.t;
    a.k = &in.k.t;
    a.v = &in.v.t;
    a.out = &o.out.t;
    st = longattn_attention_forward(ctx.ctx, attn.attn, &a);
  }
  CHECK(st != LONGATTN_OK);
  CHECK(std::string(ctx.error()).find("window") != std::string::npos);
}

TEST_CASE("HYPER: LSH blocks capture far more than random mass on clustered keys") {
  HyperCase c;
  c.n_q = c.n_k = 2048;
  c.d = c.dv = 64;
  c.block = 128;
  c.samples = 64;
  c.bits = 7;
  c.min_len = 512;
  c.scale = 0.125f;
  Inputs in = random_inputs(c, 151);
  // 16 unit directions; rows = 8·centre + 0.3·noise
  std::mt19937_64 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<std::vector<float>> centres(16, std::vector<float>(size_t(c.d)));
  for (auto& ctr : centres) {
    double norm = 0;
    for (float& x : ctr) x = nd(rng), norm += double(x) * x;
    for (float& x : ctr) x = float(x / std::sqrt(norm));
  }
  for (HostTensor* t : {&in.q, &in.k})
    for (int64_t i = 0; i < c.n_k; ++i) {
      const auto& ctr = centres[rng() % 16];
      for (int64_t e = 0; e < c.d; ++e) t->set(0, i, 0, e, 8.0f * ctr[size_t(e)] + 0.3f * nd(rng));
    }
  HyperChoices ch;
  const Output o = run_direct(c, in, &ch);
  const longattn::HyperQuality qa = quality(c, in, o, &ch, row_subset(c.n_q, 128, 7));
  INFO("block mass ", qa.block_mass, " random ", qa.random_block_mass);
  CHECK(qa.block_entries == 128);
  CHECK(qa.random_block_mass == doctest::Approx(128.0 / 2048.0));
  CHECK(qa.block_mass > 3 * qa.random_block_mass);
}
