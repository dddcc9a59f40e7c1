// The ggml-style extras on the Vulkan backend — additive masks, ALiBi, attention sinks, Q8_0/Q4_0
// K/V — against the float64 reference and the CPU backend, through the public API and through the
// attend primitive (running states, gathered keys).
//
// Runs on the first Vulkan device (lavapipe in CI) with the Khronos validation layer switched on
// (LONGATTN_VULKAN_VALIDATION=1 unless the environment already decides); every message it reports
// fails the test case. Skips when there is no Vulkan device.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <numeric>

#include "backend.hpp"
#include "common.hpp"
#include "ggml_test_util.hpp"
#include "quant.hpp"
#include "vulkan_test_util.hpp"

#if LONGATTN_HAVE_VULKAN

#include "../backends/vulkan/vk_instance.hpp"

using namespace test;
using longattn::AttendArgs;
using longattn::Backend;
using longattn::RunningState;

namespace {

constexpr int32_t kDevice = kVulkanDevice;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------------------------------------
// inputs
// ---------------------------------------------------------------------------------------------

// K or V: a float HostTensor or a block-format cache built by quantising random values, with
// `pad_blocks` unused blocks after every head's row (a view into a larger cache).
struct KvTensor {
  HostTensor f;                        // float dtypes
  std::unique_ptr<BlockTensor> blocks;  // block dtypes
  longattn_tensor t{};

  KvTensor(std::mt19937_64& rng, longattn_dtype dtype, int64_t b, int64_t n, int64_t h, int64_t d,
           int64_t pad_blocks = 0) {
    if (longattn::is_block_dtype(dtype)) {
      blocks = std::make_unique<BlockTensor>(rng, dtype, b, n, h, d, pad_blocks);
      t = blocks->t;
    } else {
      f = random_tensor(rng, dtype, b, n, h, d, pad_blocks);
      t = f.t;
    }
  }
  View view() const { return view_of(t); }
  size_t bytes() const { return blocks ? blocks->bytes.size() : f.bytes.size(); }
};

// Additive masks: random values with −inf holes, causal (−inf above the diagonal), several
// documents packed into one sequence, or random holes plus whole rows of −inf.
enum class MaskKind { random, causal, docs, empty_rows };

HostTensor make_mask(std::mt19937_64& rng, MaskKind kind, longattn_dtype dtype, int64_t b, int64_t nq, int64_t h,
                     int64_t nk) {
  HostTensor m(dtype, b, nq, h, nk);
  const int64_t pos0 = nk - nq, doc = 29;
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<bool> empty_row(size_t(nq), false);
  for (int64_t i = 0; i < nq; ++i) empty_row[size_t(i)] = kind == MaskKind::empty_rows && i % 5 == 1;
  m.each([&](int64_t bb, int64_t i, int64_t hh, int64_t j) {
    const int64_t qp = pos0 + i;
    bool masked = false;
    switch (kind) {
      case MaskKind::random: masked = rng() % 4 == 0; break;
      case MaskKind::causal: masked = j > qp; break;
      case MaskKind::docs: masked = j > qp || j / doc != qp / doc; break;
      case MaskKind::empty_rows: masked = empty_row[size_t(i)] || rng() % 3 == 0; break;
    }
    const bool random_values = kind == MaskKind::random || kind == MaskKind::empty_rows;
    m.set(bb, i, hh, j, masked ? kNegInf : (random_values ? u(rng) : 0.0f));
  });
  return m;
}

std::vector<float> random_floats(std::mt19937_64& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> x(n);
  for (float& f : x) f = u(rng);
  return x;
}

// ---------------------------------------------------------------------------------------------
// through the public API: Vulkan vs the float64 reference and vs the CPU backend
// ---------------------------------------------------------------------------------------------

struct Contexts {
  Context vk{LONGATTN_BACKEND_VULKAN, 1, kDevice};
  Context cpu{LONGATTN_BACKEND_CPU, 2};
};

void forward(Context& ctx, const longattn_attention_desc& desc, const HostTensor& q, const KvTensor& k,
             const KvTensor& v, HostTensor& out, HostTensor& lse, const Extras& ex, int64_t q_pos0) {
  Attention attn(ctx, desc);
  REQUIRE_MESSAGE(attn.status == LONGATTN_OK, ctx.error());
  out.poison();
  lse.poison();
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &q.t; a.k = &k.t; a.v = &v.t; a.out = &out.t; a.lse = &lse.t; a.q_pos0 = q_pos0;
  a.mask = ex.mask ? &ex.mask->t : nullptr;
  a.alibi_slopes = ex.slopes;
  a.sinks = ex.sinks;
  REQUIRE_MESSAGE(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_OK, ctx.error());
}

// Largest relative output difference and LSE difference between two runs; −inf must agree.
struct RunDiff {
  double rel = 0, lse = 0;
  int64_t lse_bad = 0;
};

RunDiff run_diff(const HostTensor& a, const HostTensor& b, const HostTensor& lse_a, const HostTensor& lse_b) {
  RunDiff r;
  double num = 0, den = 0;
  const_cast<HostTensor&>(a).each([&](int64_t bb, int64_t n, int64_t h, int64_t d) {
    const double x = a.get(bb, n, h, d), y = b.get(bb, n, h, d);
    num += (x - y) * (x - y);
    den += y * y;
  });
  r.rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  const_cast<HostTensor&>(lse_a).each([&](int64_t bb, int64_t n, int64_t h, int64_t) {
    const double x = lse_a.get(bb, n, h, 0), y = lse_b.get(bb, n, h, 0);
    if (std::isinf(x) || std::isinf(y) || std::isnan(x) || std::isnan(y)) {
      if (!(std::isinf(x) && std::isinf(y) && (x < 0) == (y < 0))) ++r.lse_bad;
    } else {
      r.lse = std::max(r.lse, std::fabs(x - y));
    }
  });
  return r;
}

// Runs one call on Vulkan and on the CPU and checks both against the reference; returns the Vulkan
// output and LSE.
void check_extras(Contexts& c, const longattn_attention_desc& desc, const HostTensor& q, const KvTensor& k,
                  const KvTensor& v, longattn_dtype out_dtype, const Extras& ex,
                  int64_t q_pos0 = LONGATTN_Q_POS_BOTTOM_RIGHT, HostTensor* out_keep = nullptr,
                  HostTensor* lse_keep = nullptr) {
  const int64_t B = q.t.shape[0], nq = q.t.shape[1], hq = desc.n_q_heads;
  const int64_t dv = desc.head_dim_v > 0 ? desc.head_dim_v : desc.head_dim;
  HostTensor out(out_dtype, B, nq, hq, dv), lse(LONGATTN_DTYPE_F32, B, nq, hq, 1);
  HostTensor out_cpu(out_dtype, B, nq, hq, dv), lse_cpu(LONGATTN_DTYPE_F32, B, nq, hq, 1);
  forward(c.vk, desc, q, k, v, out, lse, ex, q_pos0);
  forward(c.cpu, desc, q, k, v, out_cpu, lse_cpu, ex, q_pos0);

  const AttentionConfig cfg = config_of(desc);
  longattn::ReferenceExtras rex;
  if (ex.mask) rex.mask = ex.mask->view();
  rex.slopes = ex.slopes ? ex.slopes : (cfg.alibi_slopes.empty() ? nullptr : cfg.alibi_slopes.data());
  rex.sinks = ex.sinks;
  std::vector<double> ref, ref_lse;
  const int64_t pos0 = q_pos0 == LONGATTN_Q_POS_BOTTOM_RIGHT ? k.t.shape[1] - nq : q_pos0;
  longattn::reference_attention(cfg, q.view(), k.view(), v.view(), pos0, ref, ref_lse, {}, rex);

  const Errors e = compare(out, ref, &lse, &ref_lse);
  CHECK(e.nan_count == 0);
  CHECK(e.lse_mismatch == 0);
  CHECK(e.rel < tolerance(out_dtype));
  CHECK(e.lse_max_abs < 1e-4);
  const RunDiff d = run_diff(out, out_cpu, lse, lse_cpu);
  CHECK(d.rel < (out_dtype == LONGATTN_DTYPE_F32 ? 1e-5 : 2e-3));
  CHECK(d.lse_bad == 0);
  CHECK(d.lse < 1e-4);
  // a copied HostTensor's view must point at its own bytes
  if (out_keep) *out_keep = out, out_keep->t.data = out_keep->bytes.data();
  if (lse_keep) *lse_keep = lse, lse_keep->t.data = lse_keep->bytes.data();
}

// ---------------------------------------------------------------------------------------------
// through the attend primitive
// ---------------------------------------------------------------------------------------------


// One primitive-level scenario: q [1, nq, hq, d], K/V of `kv_dtype`, an additive mask per head,
// ALiBi slopes and sinks, optionally gathered keys, optionally folded into a running state over
// two halves of the keys and finished with state_finish.
struct PrimitiveCase {
  int64_t nq = 9, nk = 70;
  int32_t hq = 4, hkv = 2, d = 32;
  longattn_dtype kv_dtype = LONGATTN_DTYPE_F16;
  bool gather_k = false, state = false;
};

struct PrimitiveData {
  HostTensor q, mask, out, lse;
  std::unique_ptr<KvTensor> k, v;
  std::vector<int32_t> k_rows;
  std::vector<float> slopes, sinks;
};

PrimitiveData make_primitive_data(const PrimitiveCase& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  PrimitiveData x;
  x.q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, c.nq, c.hq, c.d);
  x.k = std::make_unique<KvTensor>(rng, c.kv_dtype, 1, c.nk, c.hkv, c.d, 1);
  x.v = std::make_unique<KvTensor>(rng, c.kv_dtype, 1, c.nk, c.hkv, c.d);
  x.mask = make_mask(rng, MaskKind::empty_rows, LONGATTN_DTYPE_F16, 1, c.nq, c.hq, c.nk);
  x.out = HostTensor(LONGATTN_DTYPE_F32, 1, c.nq, c.hq, c.d);
  x.lse = HostTensor(LONGATTN_DTYPE_F32, 1, c.nq, c.hq, 1);
  x.out.poison();
  x.lse.poison();
  if (c.gather_k)
    for (int64_t h = 0; h < c.hkv; ++h) {
      std::vector<int32_t> p(size_t(c.nk));
      std::iota(p.begin(), p.end(), 0);
      std::shuffle(p.begin(), p.end(), rng);
      x.k_rows.insert(x.k_rows.end(), p.begin(), p.end());
    }
  x.slopes = random_floats(rng, size_t(c.hq), 0.0f, 1.0f);
  x.sinks = random_floats(rng, size_t(c.hq), -1.0f, 2.0f);
  return x;
}

// Runs the scenario on `be`; out / lse come back in host tensors.
void run_primitive(Backend& be, const PrimitiveCase& c, const PrimitiveData& x, HostTensor& out, HostTensor& lse) {
  Mirror m(be);
  AttendArgs a;
  a.batch = 1;
  a.n_q = c.nq;
  a.n_k = c.nk;
  a.n_q_heads = c.hq;
  a.n_kv_heads = c.hkv;
  a.head_dim = a.head_dim_v = c.d;
  a.q = m.put(x.q.view(), x.q.bytes.size());
  a.k = m.put(x.k->view(), x.k->bytes());
  a.v = m.put(x.v->view(), x.v->bytes());
  a.scale = 1.0f / std::sqrt(float(c.d));
  a.q_pos0 = c.nk - c.nq;
  a.k_rows = m.put(x.k_rows);
  a.add_mask = m.put(x.mask.view(), x.mask.bytes.size());
  a.alibi_slopes = m.put(x.slopes);
  a.sinks = m.put(x.sinks);
  out = x.out;
  lse = x.lse;
  out.t.data = out.bytes.data();
  lse.t.data = lse.bytes.data();
  a.out = m.put(out.view(), out.bytes.size());
  a.lse = m.put(lse.view(), lse.bytes.size());
  if (!c.state) {
    be.attend(a);
  } else {
    // the state never carries the sink: two halves folded, then state_finish (which has none)
    const size_t n = size_t(c.hq * c.nq);
    RunningState s;
    s.m = static_cast<float*>(m.put(std::vector<float>(n, 7.0f)));
    s.l = static_cast<float*>(m.put(std::vector<float>(n, 7.0f)));
    s.acc = static_cast<float*>(m.put(std::vector<float>(n * size_t(c.d), 7.0f)));
    be.state_init(s, 1, c.hq, c.nq, c.d, nullptr);
    AttendArgs part = a;
    part.state = &s;
    const int64_t half = c.nk / 2;
    part.n_k = half;
    be.attend(part);
    part.n_k = c.nk - half;
    part.k.data = static_cast<char*>(a.k.data) + half * a.k.strides[1];
    part.v.data = static_cast<char*>(a.v.data) + half * a.v.strides[1];
    part.add_mask.data = static_cast<char*>(a.add_mask.data) + half * a.add_mask.strides[3];
    part.k_pos0 = half;
    be.attend(part);
    be.state_finish(s, 1, c.hq, c.nq, c.d, a.out, a.lse, nullptr);
  }
  be.download(out.bytes.data(), a.out.data, out.bytes.size(), nullptr);
  be.download(lse.bytes.data(), a.lse.data, lse.bytes.size(), nullptr);
  be.synchronize(nullptr);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("vulkan extras: the backend reports them") {
  if (!have_vulkan("Vulkan extras tests")) return;
  ValidationGuard guard;
  CHECK(longattn::make_vulkan_backend(kDevice)->supports_extras());
}

TEST_CASE("vulkan extras: additive masks (f16/f32, broadcast or per head, holes, causal, documents)") {
  if (!have_vulkan("Vulkan extras tests")) return;
  ValidationGuard guard;
  Contexts c;
  std::mt19937_64 rng(std::random_device{}());
  const int64_t nq = 40, nk = 100;
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 2, nq, 4, 32);
  KvTensor k(rng, LONGATTN_DTYPE_F16, 2, nk, 2, 32), v(rng, LONGATTN_DTYPE_F16, 2, nk, 2, 32);
  for (MaskKind kind : {MaskKind::random, MaskKind::causal, MaskKind::docs, MaskKind::empty_rows})
    for (longattn_dtype mdt : {LONGATTN_DTYPE_F16, LONGATTN_DTYPE_F32})
      for (int64_t mh : {1, 4}) {
        const int64_t mb = mh == 4 ? 2 : 1;  // per-batch masks with per-head ones
        INFO("mask kind ", int(kind), " dtype ", mdt, " heads ", mh, " batch ", mb);
        HostTensor mask = make_mask(rng, kind, mdt, mb, nq, mh, nk);
        Extras ex;
        ex.mask = &mask;
        // the positional causal flag on top of a document mask: both apply
        check_extras(c, desc_of(4, 2, 32, kind == MaskKind::docs), q, k, v, LONGATTN_DTYPE_F32, ex);
      }
  {  // a fully masked row gives O = 0 and LSE = −inf
    HostTensor mask = make_mask(rng, MaskKind::empty_rows, LONGATTN_DTYPE_F16, 1, nq, 1, nk);
    Extras ex;
    ex.mask = &mask;
    HostTensor out, lse;
    check_extras(c, desc_of(4, 2, 32, false), q, k, v, LONGATTN_DTYPE_F32, ex, LONGATTN_Q_POS_BOTTOM_RIGHT, &out,
                 &lse);
    CHECK(lse.get(1, 1, 3, 0) == kNegInf);  // row 1 is all −inf (make_mask)
    CHECK(out.get(1, 1, 3, 7) == 0.0f);
  }
}

TEST_CASE("vulkan extras: ALiBi from slopes and max_bias, with and without a mask, FLASH and SPARSE") {
  if (!have_vulkan("Vulkan extras tests")) return;
  ValidationGuard guard;
  Contexts c;
  std::mt19937_64 rng(std::random_device{}());
  const int64_t n = 90;
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, n, 4, 32);
  KvTensor k(rng, LONGATTN_DTYPE_F16, 1, n, 2, 32), v(rng, LONGATTN_DTYPE_F16, 1, n, 2, 32);
  // ggml: the runtime writes −|i − j| (and −inf for the future) into the mask; slope · mask
  HostTensor mask(LONGATTN_DTYPE_F16, 1, n, 1, n);
  mask.each([&](int64_t, int64_t i, int64_t, int64_t j) { mask.set(0, i, 0, j, j > i ? kNegInf : -float(i - j)); });
  const float slopes[4] = {0.5f, 0.125f, 0.0f, 2.0f};
  for (bool with_mask : {false, true}) {
    INFO("mask ", with_mask);
    Extras ex;
    if (with_mask) ex.mask = &mask;
    longattn_attention_desc from_bias = desc_of(4, 2, 32, true);
    from_bias.max_bias = 8.0f;
    check_extras(c, from_bias, q, k, v, LONGATTN_DTYPE_F32, ex);
    ex.slopes = slopes;
    check_extras(c, desc_of(4, 2, 32, !with_mask), q, k, v, LONGATTN_DTYPE_F32, ex);
    // SPARSE: the mask is sliced with the global / band row passes, ALiBi follows positions
    longattn_attention_desc sparse = desc_of(4, 2, 32, true);
    sparse.algorithm = LONGATTN_ALGORITHM_SPARSE;
    sparse.window_left = 20;
    sparse.n_global = 3;
    check_extras(c, sparse, q, k, v, LONGATTN_DTYPE_F32, ex);
  }
}

TEST_CASE("vulkan extras: attention sinks, prefill and split decode, rows with only the sink") {
  if (!have_vulkan("Vulkan extras tests")) return;
  ValidationGuard guard;
  Contexts c;
  std::mt19937_64 rng(std::random_device{}());
  const float sinks[4] = {0.5f, -1.0f, 3.0f, 0.0f};
  for (int64_t nq : {1, 40}) {
    const int64_t nk = nq == 1 ? 700 : 90;  // nq = 1: few work items, the keys are split
    INFO("nq ", nq);
    HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, nq, 4, 32);
    KvTensor k(rng, LONGATTN_DTYPE_F16, 1, nk, 2, 32), v(rng, LONGATTN_DTYPE_F16, 1, nk, 2, 32);
    Extras ex;
    ex.sinks = sinks;
    // q_pos0 = −3: the first rows see no key at all (causal), only the sink
    HostTensor out, lse;
    check_extras(c, desc_of(4, 2, 32, true), q, k, v, LONGATTN_DTYPE_F32, ex,
                 nq == 1 ? LONGATTN_Q_POS_BOTTOM_RIGHT : -3, &out, &lse);
    if (nq > 1) {
      CHECK(lse.get(0, 0, 2, 0) == doctest::Approx(3.0));  // LSE of an otherwise empty row = the sink
      CHECK(out.get(0, 0, 2, 5) == 0.0f);
    }
    // with a mask whose empty rows leave only the sink
    HostTensor mask = make_mask(rng, MaskKind::empty_rows, LONGATTN_DTYPE_F32, 1, nq, 4, nk);
    ex.mask = &mask;
    check_extras(c, desc_of(4, 2, 32, false), q, k, v, LONGATTN_DTYPE_F32, ex, LONGATTN_Q_POS_BOTTOM_RIGHT, &out,
                 &lse);
    if (nq > 1) CHECK(lse.get(0, 1, 1, 0) == doctest::Approx(-1.0));
  }
  // decode with more key splits than key steps: empty splits and the sink meet in the combine
  ScopedEnv many_splits("LONGATTN_VULKAN_DECODE_SPLITS", "300");
  Contexts split_c;
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F16, 1, 1, 4, 64);
  KvTensor k(rng, LONGATTN_DTYPE_BF16, 1, 500, 2, 64), v(rng, LONGATTN_DTYPE_BF16, 1, 500, 2, 64);
  Extras ex;
  ex.sinks = sinks;
  check_extras(split_c, desc_of(4, 2, 64, true), q, k, v, LONGATTN_DTYPE_F16, ex);
}

TEST_CASE("vulkan extras: Q8_0 / Q4_0 K/V from a strided cache, prefill and split decode") {
  if (!have_vulkan("Vulkan extras tests")) return;
  ValidationGuard guard;
  Contexts c;
  std::mt19937_64 rng(std::random_device{}());
  for (longattn_dtype kt : {LONGATTN_DTYPE_Q8_0, LONGATTN_DTYPE_Q4_0})
    for (int64_t nq : {1, 37}) {
      const int64_t nk = nq == 1 ? 700 : 130;
      INFO("dtype ", kt, " nq ", nq);
      HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 2, nq, 4, 64);
      KvTensor k(rng, kt, 2, nk, 2, 64, 1), v(rng, kt, 2, nk, 2, 64, 0);
      check_extras(c, desc_of(4, 2, 64, true), q, k, v, LONGATTN_DTYPE_F32, {});
    }
  {  // mixed K/V dtypes: block-format K with f16 V, f32 K with block-format V, f32 K with f16 V
    const int64_t nq = 12, nk = 100;
    HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, nq, 4, 32);
    KvTensor kq(rng, LONGATTN_DTYPE_Q8_0, 1, nk, 2, 32), vf(rng, LONGATTN_DTYPE_F16, 1, nk, 2, 32);
    KvTensor kf(rng, LONGATTN_DTYPE_F32, 1, nk, 2, 32), vq(rng, LONGATTN_DTYPE_Q4_0, 1, nk, 2, 32);
    check_extras(c, desc_of(4, 2, 32, true), q, kq, vf, LONGATTN_DTYPE_F32, {});
    check_extras(c, desc_of(4, 2, 32, false), q, kf, vq, LONGATTN_DTYPE_F32, {});
    check_extras(c, desc_of(4, 2, 32, true), q, kf, vf, LONGATTN_DTYPE_F32, {});  // f32 K, f16 V
  }
}

TEST_CASE("vulkan extras: everything at once (quantised cache, per-head mask, ALiBi, sinks, softcap, GQA)") {
  if (!have_vulkan("Vulkan extras tests")) return;
  ValidationGuard guard;
  Contexts c;
  std::mt19937_64 rng(std::random_device{}());
  const std::vector<float> slopes = random_floats(rng, 4, 0.0f, 0.5f);
  const std::vector<float> sinks = random_floats(rng, 4, -2.0f, 2.0f);
  for (int64_t nq : {1, 33}) {
    const int64_t nk = nq == 1 ? 600 : 120;
    INFO("nq ", nq);
    HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 2, nq, 4, 32);
    KvTensor k(rng, LONGATTN_DTYPE_Q4_0, 2, nk, 2, 32, 2), v(rng, LONGATTN_DTYPE_Q8_0, 2, nk, 2, 32, 1);
    HostTensor mask = make_mask(rng, MaskKind::docs, LONGATTN_DTYPE_F16, 2, nq, 4, nk);
    Extras ex;
    ex.mask = &mask;
    ex.slopes = slopes.data();
    ex.sinks = sinks.data();
    longattn_attention_desc d = desc_of(4, 2, 32, true);
    d.softcap = 20.0f;
    check_extras(c, d, q, k, v, LONGATTN_DTYPE_F32, ex);
  }
}

TEST_CASE("vulkan extras: the attend primitive matches the CPU (running state, gathered keys)") {
  if (!have_vulkan("Vulkan extras tests")) return;
  ValidationGuard guard;
  auto vk = longattn::make_vulkan_backend(kDevice);
  auto cpu = longattn::make_cpu_backend(2);
  uint64_t seed = std::random_device{}();
  for (longattn_dtype kv : {LONGATTN_DTYPE_F16, LONGATTN_DTYPE_Q8_0})
    for (bool gather_k : {false, true})
      for (bool state : {false, true}) {
        if (gather_k && state) continue;  // the state halves split physical rows
        PrimitiveCase pc;
        pc.kv_dtype = kv;
        pc.gather_k = gather_k;
        pc.state = state;
        INFO("kv ", kv, " gather_k ", gather_k, " state ", state, " seed ", seed);
        const PrimitiveData x = make_primitive_data(pc, seed++);
        HostTensor out_vk, lse_vk, out_cpu, lse_cpu;
        run_primitive(*cpu, pc, x, out_cpu, lse_cpu);
        run_primitive(*vk, pc, x, out_vk, lse_vk);
        const RunDiff d = run_diff(out_vk, out_cpu, lse_vk, lse_cpu);
        CHECK(d.rel < 1e-5);
        CHECK(d.lse_bad == 0);
        CHECK(d.lse < 1e-4);
        if (state) {  // without the sink a fully masked row (row 1) is empty
          CHECK(lse_vk.get(0, 1, 0, 0) == kNegInf);
        } else {      // with it, its LSE is the sink
          CHECK(lse_vk.get(0, 1, 0, 0) == doctest::Approx(x.sinks[0]).epsilon(1e-5));
        }
      }
}

#else

TEST_CASE("vulkan extras: backend not compiled in") { MESSAGE("LONGATTN_HAVE_VULKAN is off: Vulkan extras tests skipped"); }

#endif
