// What ggml-style runtimes pass: an additive mask, ALiBi, attention sinks, Q8_0/Q4_0 K/V read from
// the cache, and outputs written through permuted byte strides — each against the float64
// reference on the CPU backend.
#include <limits>

#include "common.hpp"
#include "ggml_test_util.hpp"
#include "quant.hpp"

using namespace test;

namespace {

// A K/V tensor in a block format, built by quantising random values; `pad_blocks` leaves room
// between heads (a view into a larger cache).
Errors run_extras(Context& ctx, const longattn_attention_desc& desc, const HostTensor& q, const longattn_tensor& k,
                  const View& kv, const longattn_tensor& v, const View& vv, HostTensor& out, HostTensor& lse,
                  const Extras& ex, int64_t q_pos0 = LONGATTN_Q_POS_BOTTOM_RIGHT) {
  Attention attn(ctx, desc);
  REQUIRE_MESSAGE(attn.status == LONGATTN_OK, ctx.error());
  out.poison();
  lse.poison();
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &q.t; a.k = &k; a.v = &v; a.out = &out.t; a.lse = &lse.t; a.q_pos0 = q_pos0;
  a.mask = ex.mask ? &ex.mask->t : nullptr;
  a.alibi_slopes = ex.slopes;
  a.sinks = ex.sinks;
  REQUIRE_MESSAGE(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_OK, ctx.error());
  const AttentionConfig cfg = config_of(desc);
  longattn::ReferenceExtras rex;
  if (ex.mask) rex.mask = ex.mask->view();
  rex.slopes = ex.slopes ? ex.slopes : (cfg.alibi_slopes.empty() ? nullptr : cfg.alibi_slopes.data());
  rex.sinks = ex.sinks;
  std::vector<double> ref, ref_lse;
  const int64_t pos0 = q_pos0 == LONGATTN_Q_POS_BOTTOM_RIGHT ? k.shape[1] - q.t.shape[1] : q_pos0;
  longattn::reference_attention(cfg, q.view(), kv, vv, pos0, ref, ref_lse, {}, rex);
  return compare(out, ref, &lse, &ref_lse);
}

// Masks: random −inf holes, causal, or several documents packed into one sequence.
enum class MaskKind { random, causal, docs };

HostTensor make_mask(std::mt19937_64& rng, MaskKind kind, longattn_dtype dtype, int64_t b, int64_t nq, int64_t h,
                     int64_t nk) {
  HostTensor m(dtype, b, nq, h, nk);
  const int64_t pos0 = nk - nq, doc = 37;
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  m.each([&](int64_t bb, int64_t i, int64_t hh, int64_t j) {
    const int64_t qp = pos0 + i;
    bool masked = false;
    switch (kind) {
      case MaskKind::random: masked = rng() % 4 == 0; break;
      case MaskKind::causal: masked = j > qp; break;
      case MaskKind::docs: masked = j > qp || j / doc != qp / doc; break;
    }
    (void)bb; (void)hh;
    m.set(bb, i, hh, j, masked ? -std::numeric_limits<float>::infinity() : (kind == MaskKind::random ? u(rng) : 0.0f));
  });
  return m;
}

}  // namespace

TEST_CASE("additive masks: random holes, causal, packed documents; f16/f32; broadcast or per head") {
  std::mt19937_64 rng(std::random_device{}());
  Context ctx(LONGATTN_BACKEND_CPU, 2);
  for (MaskKind kind : {MaskKind::random, MaskKind::causal, MaskKind::docs})
    for (longattn_dtype mdt : {LONGATTN_DTYPE_F16, LONGATTN_DTYPE_F32})
      for (int64_t mh : {1, 4}) {
        const int64_t nq = kind == MaskKind::random ? 70 : 150, nk = 150;
        INFO("mask kind ", int(kind), " dtype ", mdt, " heads ", mh);
        HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 2, nq, 4, 32);
        HostTensor k = random_tensor(rng, LONGATTN_DTYPE_F16, 2, nk, 2, 32);
        HostTensor v = random_tensor(rng, LONGATTN_DTYPE_F16, 2, nk, 2, 32);
        HostTensor mask = make_mask(rng, kind, mdt, 1, nq, mh, nk);
        HostTensor out(LONGATTN_DTYPE_F32, 2, nq, 4, 32), lse(LONGATTN_DTYPE_F32, 2, nq, 4, 1);
        Extras ex;
        ex.mask = &mask;
        const Errors e = run_extras(ctx, desc_of(4, 2, 32, false), q, k.t, k.view(), v.t, v.view(), out, lse, ex);
        CHECK(e.nan_count == 0);
        CHECK(e.lse_mismatch == 0);
        CHECK(e.rel < 2e-5);
        CHECK(e.lse_max_abs < 1e-4);
      }
}

TEST_CASE("ALiBi from max_bias and from explicit slopes, with and without a mask") {
  std::mt19937_64 rng(std::random_device{}());
  Context ctx(LONGATTN_BACKEND_CPU, 2);
  const int64_t n = 130;
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, n, 6, 16);
  HostTensor k = random_tensor(rng, LONGATTN_DTYPE_F32, 1, n, 3, 16);
  HostTensor v = random_tensor(rng, LONGATTN_DTYPE_F32, 1, n, 3, 16);
  HostTensor out(LONGATTN_DTYPE_F32, 1, n, 6, 16), lse(LONGATTN_DTYPE_F32, 1, n, 6, 1);
  // ggml: the runtime writes −|i − j| (and −inf for the future) into the mask; slope · mask
  HostTensor mask(LONGATTN_DTYPE_F16, 1, n, 1, n);
  mask.each([&](int64_t, int64_t i, int64_t, int64_t j) {
    mask.set(0, i, 0, j, j > i ? -std::numeric_limits<float>::infinity() : -float(i - j));
  });
  longattn_attention_desc d = desc_of(6, 3, 16, true);
  d.max_bias = 8.0f;
  CHECK(config_of(d).alibi_slopes.size() == 6);
  CHECK(config_of(d).alibi_slopes[0] == doctest::Approx(std::pow(2.0, -8.0 / 4)));  // n = 4 heads: m0 = 2^-2
  CHECK(config_of(d).alibi_slopes[4] == doctest::Approx(std::pow(2.0, -1.0)));       // m1^1, m1 = 2^-1
  for (bool with_mask : {false, true}) {
    Extras ex;
    if (with_mask) ex.mask = &mask;
    Errors e = run_extras(ctx, d, q, k.t, k.view(), v.t, v.view(), out, lse, ex);
    CHECK(e.rel < 2e-5);
    CHECK(e.lse_mismatch == 0);
    const float slopes[6] = {0.5f, 0.25f, 0.125f, 1.0f, 0.0f, 2.0f};
    ex.slopes = slopes;
    e = run_extras(ctx, desc_of(6, 3, 16, true), q, k.t, k.view(), v.t, v.view(), out, lse, ex);
    CHECK(e.rel < 2e-5);
    CHECK(e.lse_mismatch == 0);
  }
}

TEST_CASE("attention sinks, including rows with nothing else allowed") {
  std::mt19937_64 rng(std::random_device{}());
  Context ctx(LONGATTN_BACKEND_CPU, 2);
  // head 3's sink is −inf: no term at all (its otherwise empty rows: O = 0, LSE = −inf)
  const float sinks[4] = {0.5f, -1.0f, 3.0f, -std::numeric_limits<float>::infinity()};
  for (int64_t nq : {1, 40}) {
    const int64_t nk = nq == 1 ? 2000 : 90;  // nq = 1 runs the split-key decode path
    HostTensor q = random_tensor(rng, LONGATTN_DTYPE_BF16, 1, nq, 4, 64);
    HostTensor k = random_tensor(rng, LONGATTN_DTYPE_BF16, 1, nk, 1, 64);
    HostTensor v = random_tensor(rng, LONGATTN_DTYPE_BF16, 1, nk, 1, 64);
    HostTensor out(LONGATTN_DTYPE_F32, 1, nq, 4, 64), lse(LONGATTN_DTYPE_F32, 1, nq, 4, 1);
    Extras ex;
    ex.sinks = sinks;
    // q_pos0 = −3: the first rows see no key at all (causal), only the sink
    Errors e = run_extras(ctx, desc_of(4, 1, 64, true), q, k.t, k.view(), v.t, v.view(), out, lse, ex,
                          nq == 1 ? LONGATTN_Q_POS_BOTTOM_RIGHT : -3);
    CHECK(e.nan_count == 0);
    CHECK(e.lse_mismatch == 0);
    CHECK(e.rel < 2e-5);
    CHECK(e.lse_max_abs < 1e-4);
    if (nq > 1) {
      CHECK(lse.get(0, 0, 2, 0) == doctest::Approx(3.0));  // LSE of an otherwise empty row = the sink
      CHECK(out.get(0, 0, 2, 5) == 0.0f);
      CHECK(lse.get(0, 0, 3, 0) == -std::numeric_limits<float>::infinity());
      CHECK(out.get(0, 0, 3, 5) == 0.0f);
    }
  }
}

TEST_CASE("Q8_0 and Q4_0 K/V read from a strided cache, prefill and decode") {
  std::mt19937_64 rng(std::random_device{}());
  Context ctx(LONGATTN_BACKEND_CPU, 2);
  for (longattn_dtype kt : {LONGATTN_DTYPE_Q8_0, LONGATTN_DTYPE_Q4_0})
    for (int64_t nq : {1, 4, 77}) {
      const int64_t nk = nq < 8 ? 3000 : 200;
      INFO("dtype ", kt, " nq ", nq);
      HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 2, nq, 8, 64);
      BlockTensor k(rng, kt, 2, nk, 2, 64, 1), v(rng, kt, 2, nk, 2, 64, 0);
      HostTensor out(LONGATTN_DTYPE_F16, 2, nq, 8, 64), lse(LONGATTN_DTYPE_F32, 2, nq, 8, 1);
      const Errors e = run_extras(ctx, desc_of(8, 2, 64, true), q, k.t, k.view(), v.t, v.view(), out, lse, {});
      CHECK(e.nan_count == 0);
      CHECK(e.rel < tolerance(LONGATTN_DTYPE_F16));
      CHECK(e.lse_max_abs < 1e-4);
    }
  // block formats are for K and V only, and need whole blocks
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 4, 2, 32);
  BlockTensor k(rng, LONGATTN_DTYPE_Q8_0, 1, 8, 2, 32), v(rng, LONGATTN_DTYPE_Q8_0, 1, 8, 2, 32);
  HostTensor out(LONGATTN_DTYPE_F32, 1, 4, 2, 32);
  Attention attn(ctx, desc_of(2, 2, 32, false));
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  longattn_tensor bad_q = k.t;
  bad_q.shape[1] = 4;
  a.q = &bad_q; a.k = &k.t; a.v = &v.t; a.out = &out.t;
  CHECK(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_ERROR_UNSUPPORTED);
  longattn_tensor t;
  CHECK(longattn_tensor_contiguous(&t, nullptr, LONGATTN_DTYPE_Q4_0, 1, 1, 1, 40) == LONGATTN_ERROR_INVALID_ARGUMENT);
  REQUIRE(longattn_tensor_contiguous(&t, nullptr, LONGATTN_DTYPE_Q4_0, 1, 1, 2, 64) == LONGATTN_OK);
  CHECK(t.strides[3] == 18);
  CHECK(t.strides[2] == 36);
}

TEST_CASE("output written through permuted byte strides (ggml's [d, heads, tokens] result)") {
  std::mt19937_64 rng(std::random_device{}());
  Context ctx(LONGATTN_BACKEND_CPU, 2);
  const int64_t nq = 33, nk = 60, hq = 4, d = 16;
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, nq, hq, d);
  HostTensor k = random_tensor(rng, LONGATTN_DTYPE_F16, 1, nk, 2, d);
  HostTensor v = random_tensor(rng, LONGATTN_DTYPE_F16, 1, nk, 2, d);
  // storage [tokens][heads][d] is contiguous already; use [heads][tokens][d] to force a permutation
  std::vector<float> store(size_t(hq * nq * d), std::nanf(""));
  longattn_tensor out;
  longattn_tensor_contiguous(&out, store.data(), LONGATTN_DTYPE_F32, 1, nq, hq, d);
  out.strides[1] = d * 4;
  out.strides[2] = nq * d * 4;
  Attention attn(ctx, desc_of(4, 2, 16, true));
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &q.t; a.k = &k.t; a.v = &v.t; a.out = &out;
  REQUIRE(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_OK);
  std::vector<double> ref, ref_lse;
  longattn::reference_attention(config_of(desc_of(4, 2, 16, true)), q.view(), k.view(), v.view(), nk - nq, ref, ref_lse);
  double worst = 0;
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t h = 0; h < hq; ++h)
      for (int64_t c = 0; c < d; ++c)
        worst = std::max(worst, std::fabs(store[size_t((h * nq + i) * d + c)] - ref[size_t((i * hq + h) * d + c)]));
  CHECK(worst < 1e-5);
}

TEST_CASE("bad extras are refused") {
  std::mt19937_64 rng(std::random_device{}());
  Context ctx(LONGATTN_BACKEND_CPU, 1);
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 5, 2, 8);
  HostTensor k = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 9, 2, 8);
  HostTensor v = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 9, 2, 8);
  HostTensor out = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 5, 2, 8);
  const std::vector<uint8_t> before = out.bytes;
  Attention attn(ctx, desc_of(2, 2, 8, false));
  HostTensor wrong_mask(LONGATTN_DTYPE_F16, 1, 5, 1, 8);
  HostTensor bf16_mask(LONGATTN_DTYPE_BF16, 1, 5, 1, 9);
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &q.t; a.k = &k.t; a.v = &v.t; a.out = &out.t;
  a.mask = &wrong_mask.t;
  CHECK(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_ERROR_SHAPE_MISMATCH);
  CHECK(std::string(ctx.error()).find("mask.shape[3]=8 (key tokens) should be 9") != std::string::npos);
  a.mask = &bf16_mask.t;
  CHECK(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_ERROR_INVALID_ARGUMENT);
  a.mask = nullptr;
  const float nan_sinks[2] = {0.0f, std::nanf("")};
  a.sinks = nan_sinks;
  CHECK(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_ERROR_INVALID_ARGUMENT);
  const float inf_sinks[2] = {std::numeric_limits<float>::infinity(), 0.0f};
  a.sinks = inf_sinks;
  CHECK(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_ERROR_INVALID_ARGUMENT);
  CHECK(std::string(ctx.error()).find("args.sinks[0] is +inf") != std::string::npos);
  CHECK(out.bytes == before);
  longattn_attention_desc d = desc_of(2, 2, 8, false);
  d.max_bias = -1.0f;
  longattn_attention* bad = nullptr;
  CHECK(longattn_attention_create(ctx.ctx, &d, &bad) == LONGATTN_ERROR_INVALID_ARGUMENT);
}
