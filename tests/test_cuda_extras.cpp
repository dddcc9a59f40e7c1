// CUDA backend, ggml-style extras: the additive mask (f16/f32; broadcast, per head, per batch;
// random −inf holes, fully masked rows, causal, packed documents), ALiBi with and without a mask,
// attention sinks (rows with nothing but the sink included), Q8_0 / Q4_0 K/V read from strided
// caches, each alone and combined, with GQA and LSE output, in prefill and in decode (n_q = 1
// over enough keys to take the split-KV path). Checked against the float64 reference and against
// the CPU backend through the public API; the running state through the primitives (sinks never
// enter a state). Every case skips (passes with a message) when no CUDA device is present.
#include <algorithm>
#include <memory>

#include "backend.hpp"
#include "common.hpp"
#include "ggml_test_util.hpp"
#include "quant.hpp"

using namespace test;

#if LONGATTN_HAVE_CUDA

#include <cuda_runtime_api.h>

#include "cuda_test_util.hpp"

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr double kLseTol = 2e-4;

// A K or V tensor of any dtype (float or block format) as a window into a larger cache: `pad`
// extra units (elements, or blocks for the block formats) after each head row, one spare head per
// token and three spare tokens per sequence, all holding a sentinel. Values are N(0, 1), rounded
// to the dtype (quantised the way ggml does for the block formats).
struct CacheTensor {
  std::vector<uint8_t> bytes;
  longattn_tensor t{};

  CacheTensor(std::mt19937_64& rng, longattn_dtype dtype, int64_t b, int64_t n, int64_t h, int64_t d, int64_t pad) {
    const bool blocks = longattn::is_block_dtype(dtype);
    const int64_t unit = int64_t(longattn_dtype_size(dtype));  // bytes per element or per block
    const int64_t units = blocks ? d / longattn::kQuantBlock : d;
    t.dtype = dtype;
    t.memory = LONGATTN_MEMORY_HOST;
    t.shape[0] = b; t.shape[1] = n; t.shape[2] = h; t.shape[3] = d;
    t.strides[3] = unit;
    t.strides[2] = unit * (units + pad);
    t.strides[1] = t.strides[2] * (h + 1);
    t.strides[0] = t.strides[1] * (n + 3);
    bytes.assign(size_t(t.strides[0] * b), 0x5A);
    t.data = bytes.data();
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(d));
    for (int64_t bb = 0; bb < b; ++bb)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t hh = 0; hh < h; ++hh) {
          for (float& f : x) f = dist(rng);
          uint8_t* row = bytes.data() + bb * t.strides[0] + i * t.strides[1] + hh * t.strides[2];
          if (blocks) {
            longattn::quantize_row(x.data(), dtype, d, row, unit);
          } else {
            for (int64_t c = 0; c < d; ++c)
              longattn::store_from_float(reinterpret_cast<char*>(row + c * unit), dtype, x[size_t(c)]);
          }
        }
  }
  View view() const { return view_of(t); }
};

// Additive masks: random −inf holes (and every 7th row fully masked), causal, several documents
// packed into one sequence (causal inside each document), or ggml's ALiBi mask −|qp − kp| with
// −inf for the future. Shape {mb, nq, mh, nk}; query i sits at position pos0 + i.
enum class MaskKind { random, causal, docs, alibi };

HostTensor make_mask(std::mt19937_64& rng, MaskKind kind, longattn_dtype dtype, int64_t mb, int64_t nq, int64_t mh,
                     int64_t nk, int64_t pos0) {
  HostTensor m(dtype, mb, nq, mh, nk);
  const int64_t doc = 37;
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  m.each([&](int64_t b, int64_t i, int64_t h, int64_t j) {
    const int64_t qp = pos0 + i;
    float value = 0.0f;
    switch (kind) {
      case MaskKind::random:
        value = (i % 7 == 3 || rng() % 4 == 0) ? kNegInf : u(rng);
        break;
      case MaskKind::causal: value = j > qp ? kNegInf : 0.0f; break;
      case MaskKind::docs: value = (j > qp || j / doc != qp / doc) ? kNegInf : 0.0f; break;
      case MaskKind::alibi: value = j > qp ? kNegInf : -float(qp - j); break;
    }
    m.set(b, i, h, j, value);
  });
  return m;
}

struct Outputs {
  HostTensor out, lse;
};

// One forward call through the public API on host tensors (lse wanted unless with_lse is false).
Outputs forward(Context& ctx, const longattn_attention_desc& desc, const HostTensor& q, const CacheTensor& k,
                const CacheTensor& v, const Extras& ex, longattn_dtype out_dtype, int64_t q_pos0, bool with_lse = true) {
  Attention attn(ctx, desc);
  REQUIRE_MESSAGE(attn.status == LONGATTN_OK, ctx.error());
  const int64_t B = q.t.shape[0], nq = q.t.shape[1];
  const int32_t hq = desc.n_q_heads, dv = desc.head_dim_v ? desc.head_dim_v : desc.head_dim;
  Outputs o{HostTensor(out_dtype, B, nq, hq, dv, 1), HostTensor(LONGATTN_DTYPE_F32, B, nq, hq, 1)};
  o.out.poison();
  o.lse.poison();
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &q.t; a.k = &k.t; a.v = &v.t; a.out = &o.out.t; a.lse = with_lse ? &o.lse.t : nullptr;
  a.q_pos0 = q_pos0;
  a.mask = ex.mask ? &ex.mask->t : nullptr;
  a.alibi_slopes = ex.slopes;
  a.sinks = ex.sinks;
  REQUIRE_MESSAGE(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_OK, ctx.error());
  return o;
}

struct Reference {
  std::vector<double> out, lse;
};

Reference reference(const longattn_attention_desc& desc, const HostTensor& q, const CacheTensor& k,
                    const CacheTensor& v, const Extras& ex, int64_t q_pos0) {
  const AttentionConfig cfg = config_of(desc);
  longattn::ReferenceExtras rex;
  if (ex.mask) rex.mask = ex.mask->view();
  rex.slopes = ex.slopes ? ex.slopes : (cfg.alibi_slopes.empty() ? nullptr : cfg.alibi_slopes.data());
  rex.sinks = ex.sinks;
  const int64_t pos0 = q_pos0 == LONGATTN_Q_POS_BOTTOM_RIGHT ? k.t.shape[1] - q.t.shape[1] : q_pos0;
  Reference r;
  longattn::reference_attention(cfg, q.view(), k.view(), v.view(), pos0, r.out, r.lse, {}, rex);
  return r;
}

// Checks the CUDA result of one case against the float64 reference, and that rows the reference
// leaves empty (LSE = −inf) are exactly zero.
void check_case(Context& ctx, const longattn_attention_desc& desc, const HostTensor& q, const CacheTensor& k,
                const CacheTensor& v, const Extras& ex, longattn_dtype out_dtype,
                int64_t q_pos0 = LONGATTN_Q_POS_BOTTOM_RIGHT, bool with_lse = true) {
  const Outputs o = forward(ctx, desc, q, k, v, ex, out_dtype, q_pos0, with_lse);
  const Reference r = reference(desc, q, k, v, ex, q_pos0);
  const Errors e = compare(o.out, r.out, with_lse ? &o.lse : nullptr, with_lse ? &r.lse : nullptr);
  CHECK(e.nan_count == 0);
  CHECK(e.lse_mismatch == 0);
  CHECK(e.rel < tolerance(out_dtype));
  CHECK(e.lse_max_abs < kLseTol);
  const int64_t B = q.t.shape[0], nq = q.t.shape[1], hq = desc.n_q_heads, dv = o.out.t.shape[3];
  int64_t empty_rows = 0, nonzero_in_empty = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t h = 0; h < hq; ++h) {
        if (r.lse[size_t((b * nq + i) * hq + h)] != -std::numeric_limits<double>::infinity()) continue;
        ++empty_rows;
        for (int64_t c = 0; c < dv; ++c) nonzero_in_empty += o.out.get(b, i, h, c) != 0.0f;
      }
  CHECK(nonzero_in_empty == 0);
  MESSAGE("rel=", e.rel, " lse_max_abs=", e.lse_max_abs, " empty rows=", empty_rows);
}

uint64_t fresh_seed() { return (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}(); }

std::vector<float> random_values(std::mt19937_64& rng, int64_t n, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& f : x) f = u(rng);
  return x;
}

}  // namespace

TEST_CASE("cuda extras: additive masks (holes, empty rows, causal, packed documents; f16/f32; broadcast, per head/batch)") {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  INFO("seed ", seed);
  std::mt19937_64 rng(seed);
  Context ctx(LONGATTN_BACKEND_CUDA);
  const int64_t B = 2;
  const int32_t hq = 4, hkv = 2, d = 64;
  for (MaskKind kind : {MaskKind::random, MaskKind::causal, MaskKind::docs})
    for (longattn_dtype mdt : {LONGATTN_DTYPE_F16, LONGATTN_DTYPE_F32})
      for (int layout = 0; layout < 3; ++layout) {  // {1, 1}, {1, hq}, {B, hq} for {batch, heads}
        for (int64_t nq : {int64_t(1), int64_t(70)}) {
          const int64_t nk = nq == 1 ? 3000 : 150;  // n_q = 1 over 3000 keys: split-KV
          const int64_t mb = layout == 2 ? B : 1, mh = layout == 0 ? 1 : hq;
          INFO("mask kind ", int(kind), " dtype ", mdt, " layout ", layout, " nq ", nq);
          const longattn_dtype qt = layout == 1 ? LONGATTN_DTYPE_F16 : LONGATTN_DTYPE_F32;
          HostTensor q = random_tensor(rng, qt, B, nq, hq, d);
          CacheTensor k(rng, LONGATTN_DTYPE_F16, B, nk, hkv, d, 8), v(rng, LONGATTN_DTYPE_F16, B, nk, hkv, d, 0);
          HostTensor mask = make_mask(rng, kind, mdt, mb, nq, mh, nk, nk - nq);
          Extras ex;
          ex.mask = &mask;
          check_case(ctx, desc_of(hq, hkv, d, kind == MaskKind::random && nq > 1), q, k, v, ex, LONGATTN_DTYPE_F32);
        }
      }
}

TEST_CASE("cuda extras: ALiBi from max_bias and from explicit slopes, with and without a mask") {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  INFO("seed ", seed);
  std::mt19937_64 rng(seed);
  Context ctx(LONGATTN_BACKEND_CUDA);
  const float slopes[6] = {0.5f, 0.25f, 0.125f, 1.0f, 0.0f, 0.03125f};
  for (int64_t nq : {int64_t(1), int64_t(130)}) {
    const int64_t nk = nq == 1 ? 2500 : 130;
    HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, nq, 6, 16);
    CacheTensor k(rng, LONGATTN_DTYPE_F32, 1, nk, 3, 16, 3), v(rng, LONGATTN_DTYPE_F32, 1, nk, 3, 16, 0);
    HostTensor mask = make_mask(rng, MaskKind::alibi, LONGATTN_DTYPE_F16, 1, nq, 1, nk, nk - nq);
    for (bool with_mask : {false, true})
      for (bool explicit_slopes : {false, true}) {
        INFO("nq ", nq, " mask ", with_mask, " explicit slopes ", explicit_slopes);
        longattn_attention_desc desc = desc_of(6, 3, 16, true);
        if (!explicit_slopes) desc.max_bias = 8.0f;
        Extras ex;
        if (with_mask) ex.mask = &mask;
        if (explicit_slopes) ex.slopes = slopes;
        check_case(ctx, desc, q, k, v, ex, LONGATTN_DTYPE_F32);
      }
  }
}

TEST_CASE("cuda extras: sinks, including rows with nothing else allowed, prefill and split decode") {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  INFO("seed ", seed);
  std::mt19937_64 rng(seed);
  Context ctx(LONGATTN_BACKEND_CUDA);
  const float sinks[4] = {0.5f, -1.0f, 3.0f, kNegInf};  // −inf: a sink that adds nothing
  for (int64_t nq : {int64_t(1), int64_t(40)})
    for (bool with_lse : {true, false}) {
      const int64_t nk = nq == 1 ? 4096 : 90;
      INFO("nq ", nq, " lse ", with_lse);
      for (longattn_dtype t : {LONGATTN_DTYPE_BF16, LONGATTN_DTYPE_F32}) {
        HostTensor q = random_tensor(rng, t, 1, nq, 4, 64);
        CacheTensor k(rng, t, 1, nk, 1, 64, 0), v(rng, t, 1, nk, 1, 64, 0);
        Extras ex;
        ex.sinks = sinks;
        // q_pos0 = −3 under causal: the first three rows see no key at all, only the sink
        const int64_t pos0 = nq == 1 ? LONGATTN_Q_POS_BOTTOM_RIGHT : -3;
        check_case(ctx, desc_of(4, 1, 64, true), q, k, v, ex, LONGATTN_DTYPE_F32, pos0, with_lse);
        if (nq > 1) {
          const Outputs o = forward(ctx, desc_of(4, 1, 64, true), q, k, v, ex, LONGATTN_DTYPE_F32, pos0);
          CHECK(o.lse.get(0, 0, 2, 0) == doctest::Approx(3.0).epsilon(1e-5));  // only the sink: LSE = sink
          CHECK(o.out.get(0, 0, 2, 5) == 0.0f);
          CHECK(o.lse.get(0, 0, 3, 0) == kNegInf);  // no key and a −inf sink: empty
          CHECK(o.out.get(0, 0, 3, 0) == 0.0f);
        }
      }
    }
  // a fully masked row (additive mask) with a sink, decode over the split path
  const int64_t nk = 3000;
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 1, 4, 64);
  CacheTensor k(rng, LONGATTN_DTYPE_F16, 1, nk, 2, 64, 0), v(rng, LONGATTN_DTYPE_F16, 1, nk, 2, 64, 0);
  HostTensor mask(LONGATTN_DTYPE_F16, 1, 1, 4, nk);
  mask.each([&](int64_t, int64_t, int64_t h, int64_t j) { mask.set(0, 0, h, j, h == 2 || j % 5 == 0 ? kNegInf : 0.0f); });
  Extras ex;
  ex.sinks = sinks;
  ex.mask = &mask;
  check_case(ctx, desc_of(4, 2, 64, false), q, k, v, ex, LONGATTN_DTYPE_F32);
  const Outputs o = forward(ctx, desc_of(4, 2, 64, false), q, k, v, ex, LONGATTN_DTYPE_F32, LONGATTN_Q_POS_BOTTOM_RIGHT);
  CHECK(o.lse.get(0, 0, 2, 0) == doctest::Approx(3.0).epsilon(1e-5));
  CHECK(o.out.get(0, 0, 2, 7) == 0.0f);
}

TEST_CASE("cuda extras: Q8_0 and Q4_0 K/V from strided caches, prefill and split decode, GQA") {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  INFO("seed ", seed);
  std::mt19937_64 rng(seed);
  Context ctx(LONGATTN_BACKEND_CUDA);
  const std::pair<longattn_dtype, longattn_dtype> kv_types[] = {
      {LONGATTN_DTYPE_Q8_0, LONGATTN_DTYPE_Q8_0}, {LONGATTN_DTYPE_Q4_0, LONGATTN_DTYPE_Q4_0},
      {LONGATTN_DTYPE_Q8_0, LONGATTN_DTYPE_F16}, {LONGATTN_DTYPE_F16, LONGATTN_DTYPE_Q4_0}};
  for (const auto& [kt, vt] : kv_types)
    for (int64_t nq : {int64_t(1), int64_t(4), int64_t(77)})
      for (int32_t d : {64, 128}) {
        const int64_t nk = nq < 8 ? 3000 : 200;
        INFO("k ", kt, " v ", vt, " nq ", nq, " d ", d);
        HostTensor q = random_tensor(rng, nq == 4 ? LONGATTN_DTYPE_F16 : LONGATTN_DTYPE_F32, 2, nq, 8, d);
        CacheTensor k(rng, kt, 2, nk, 2, d, 1), v(rng, vt, 2, nk, 2, d, 2);
        check_case(ctx, desc_of(8, 2, d, true), q, k, v, {}, d == 64 ? LONGATTN_DTYPE_F16 : LONGATTN_DTYPE_F32);
      }
}

TEST_CASE("cuda extras: mask + ALiBi + sinks + block K/V together, FLASH and SPARSE, prefill and decode") {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  INFO("seed ", seed);
  std::mt19937_64 rng(seed);
  Context ctx(LONGATTN_BACKEND_CUDA);
  const int32_t hq = 8, hkv = 2, d = 128;
  const std::vector<float> slopes = random_values(rng, hq, 0.0f, 0.2f);
  const std::vector<float> sinks = random_values(rng, hq, -2.0f, 4.0f);
  for (longattn_algorithm algo : {LONGATTN_ALGORITHM_FLASH, LONGATTN_ALGORITHM_SPARSE})
    for (int64_t nq : {int64_t(1), int64_t(3), int64_t(96)}) {
      const int64_t nk = nq < 8 ? 5000 : 300, B = nq == 1 ? 1 : 2;
      INFO("algorithm ", algo, " nq ", nq);
      HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F16, B, nq, hq, d);
      CacheTensor k(rng, LONGATTN_DTYPE_Q8_0, B, nk, hkv, d, 1), v(rng, LONGATTN_DTYPE_Q4_0, B, nk, hkv, d, 0);
      HostTensor mask = make_mask(rng, nq == 96 ? MaskKind::docs : MaskKind::random, LONGATTN_DTYPE_F16, B, nq, hq,
                                  nk, nk - nq);
      longattn_attention_desc desc = desc_of(hq, hkv, d, true);
      desc.algorithm = algo;
      if (algo == LONGATTN_ALGORITHM_SPARSE) {
        desc.window_left = 700;
        desc.n_global = 4;
      }
      Extras ex;
      ex.mask = &mask;
      ex.slopes = slopes.data();
      ex.sinks = sinks.data();
      check_case(ctx, desc, q, k, v, ex, LONGATTN_DTYPE_F32);
      ex.mask = nullptr;  // ALiBi on positions, sinks, block K/V
      check_case(ctx, desc, q, k, v, ex, LONGATTN_DTYPE_BF16);
    }
}

TEST_CASE("cuda extras: CUDA against the CPU backend through the public API") {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  INFO("seed ", seed);
  std::mt19937_64 rng(seed);
  Context gpu(LONGATTN_BACKEND_CUDA), cpu(LONGATTN_BACKEND_CPU, 2);
  const longattn_dtype kv_types[] = {LONGATTN_DTYPE_F16, LONGATTN_DTYPE_BF16, LONGATTN_DTYPE_F32,
                                     LONGATTN_DTYPE_Q8_0, LONGATTN_DTYPE_Q4_0};
  for (int it = 0; it < 12; ++it) {
    const int64_t nq = std::initializer_list<int64_t>{1, 2, 33, 100}.begin()[rng() % 4];
    const int64_t nk = nq <= 2 ? 1000 + int64_t(rng() % 3000) : 64 + int64_t(rng() % 300);
    const int32_t hkv = int32_t(1 + rng() % 2), hq = hkv * int32_t(1 + rng() % 4);
    const int32_t d = rng() % 2 ? 64 : 96;
    const longattn_dtype kt = kv_types[rng() % 5], vt = kv_types[rng() % 5];
    const bool use_mask = rng() % 3 != 0, use_slopes = rng() % 2, use_sinks = rng() % 2;
    const int64_t mb = rng() % 2 ? 1 : 2, mh = rng() % 2 ? 1 : hq;
    INFO("it ", it, " nq ", nq, " nk ", nk, " h ", hq, "/", hkv, " d ", d, " k ", kt, " v ", vt, " mask ", use_mask,
         " alibi ", use_slopes, " sinks ", use_sinks);
    HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 2, nq, hq, d);
    CacheTensor k(rng, kt, 2, nk, hkv, d, 1), v(rng, vt, 2, nk, hkv, d, 0);
    HostTensor mask = make_mask(rng, MaskKind::random, LONGATTN_DTYPE_F16, mb, nq, mh, nk, nk - nq);
    const std::vector<float> slopes = random_values(rng, hq, 0.0f, 0.1f), sinks = random_values(rng, hq, -1.0f, 2.0f);
    Extras ex;
    if (use_mask) ex.mask = &mask;
    if (use_slopes) ex.slopes = slopes.data();
    if (use_sinks) ex.sinks = sinks.data();
    const longattn_attention_desc desc = desc_of(hq, hkv, d, rng() % 2);
    const Outputs g = forward(gpu, desc, q, k, v, ex, LONGATTN_DTYPE_F32, LONGATTN_Q_POS_BOTTOM_RIGHT);
    Outputs c = forward(cpu, desc, q, k, v, ex, LONGATTN_DTYPE_F32, LONGATTN_Q_POS_BOTTOM_RIGHT);
    std::vector<double> c_out, c_lse;
    c.out.each([&](int64_t b, int64_t i, int64_t h, int64_t x) { c_out.push_back(c.out.get(b, i, h, x)); });
    c.lse.each([&](int64_t b, int64_t i, int64_t h, int64_t x) { c_lse.push_back(c.lse.get(b, i, h, x)); });
    const Errors e = compare(g.out, c_out, &g.lse, &c_lse);
    CHECK(e.nan_count == 0);
    CHECK(e.lse_mismatch == 0);
    CHECK(e.rel < 4e-5);
    CHECK(e.lse_max_abs < kLseTol);
    // both against the reference too, so that a disagreement names the backend at fault
    const Reference r = reference(desc, q, k, v, ex, LONGATTN_Q_POS_BOTTOM_RIGHT);
    const Errors eg = compare(g.out, r.out, &g.lse, &r.lse), ec = compare(c.out, r.out, &c.lse, &r.lse);
    CHECK_MESSAGE(eg.rel < tolerance(LONGATTN_DTYPE_F32), "CUDA against the reference");
    CHECK_MESSAGE(eg.lse_max_abs < kLseTol, "CUDA against the reference");
    CHECK_MESSAGE(ec.rel < tolerance(LONGATTN_DTYPE_F32), "CPU against the reference");
    CHECK_MESSAGE(ec.lse_max_abs < kLseTol, "CPU against the reference");
  }
}

namespace {

// Backend memory holding a copy of host bytes (or uninitialised), freed with the backend.
struct DeviceBytes {
  longattn::Backend* be;
  void* ptr;
  DeviceBytes(longattn::Backend& b, size_t n) : be(&b), ptr(b.alloc(n)) {}
  DeviceBytes(longattn::Backend& b, const void* host, size_t n) : DeviceBytes(b, n) { be->upload(ptr, host, n, nullptr); }
  ~DeviceBytes() { be->free(ptr); }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
};

View on_device(const View& host, const DeviceBytes& mem) {
  View v = host;
  v.data = mem.ptr;
  return v;
}

}  // namespace

TEST_CASE("cuda extras: device tensors, the mask in device memory") {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  INFO("seed ", seed);
  std::mt19937_64 rng(seed);
  auto be = longattn::make_cuda_backend(0);
  Context ctx(LONGATTN_BACKEND_CUDA);
  const int64_t nq = 50, nk = 700;
  const int32_t hq = 4, hkv = 4, d = 64;
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F16, 1, nq, hq, d);
  CacheTensor k(rng, LONGATTN_DTYPE_Q4_0, 1, nk, hkv, d, 1), v(rng, LONGATTN_DTYPE_Q8_0, 1, nk, hkv, d, 1);
  HostTensor mask = make_mask(rng, MaskKind::random, LONGATTN_DTYPE_F32, 1, nq, hq, nk, nk - nq);
  HostTensor out(LONGATTN_DTYPE_F32, 1, nq, hq, d), lse(LONGATTN_DTYPE_F32, 1, nq, hq, 1);
  out.poison();
  lse.poison();
  DeviceBytes dq(*be, q.bytes.data(), q.bytes.size()), dk(*be, k.bytes.data(), k.bytes.size());
  DeviceBytes dv(*be, v.bytes.data(), v.bytes.size()), dm(*be, mask.bytes.data(), mask.bytes.size());
  DeviceBytes dout(*be, out.bytes.data(), out.bytes.size()), dlse(*be, lse.bytes.data(), lse.bytes.size());
  auto device_tensor = [](longattn_tensor t, const DeviceBytes& mem) {
    t.data = mem.ptr;
    t.memory = LONGATTN_MEMORY_DEVICE;
    return t;
  };
  const longattn_tensor tq = device_tensor(q.t, dq), tk = device_tensor(k.t, dk), tv = device_tensor(v.t, dv);
  const longattn_tensor tm = device_tensor(mask.t, dm), to = device_tensor(out.t, dout), tl = device_tensor(lse.t, dlse);
  const std::vector<float> sinks = random_values(rng, hq, -1.0f, 1.0f);
  longattn_attention_desc desc = desc_of(hq, hkv, d, true);
  desc.max_bias = 4.0f;
  Attention attn(ctx, desc);
  REQUIRE(attn.status == LONGATTN_OK);
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &tq; a.k = &tk; a.v = &tv; a.out = &to; a.lse = &tl; a.mask = &tm; a.sinks = sinks.data();
  REQUIRE_MESSAGE(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_OK, ctx.error());
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);  // the context's stream, not the helper backend's
  be->download(out.bytes.data(), dout.ptr, out.bytes.size(), nullptr);
  be->download(lse.bytes.data(), dlse.ptr, lse.bytes.size(), nullptr);
  Extras ex;
  ex.mask = &mask;
  ex.sinks = sinks.data();
  const Reference r = reference(desc, q, k, v, ex, LONGATTN_Q_POS_BOTTOM_RIGHT);
  const Errors e = compare(out, r.out, &lse, &r.lse);
  CHECK(e.nan_count == 0);
  CHECK(e.lse_mismatch == 0);
  CHECK(e.rel < tolerance(LONGATTN_DTYPE_F32));
  CHECK(e.lse_max_abs < kLseTol);
}

TEST_CASE("cuda extras: a running state gets the mask, ALiBi and block K/V but never the sinks") {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = fresh_seed();
  INFO("seed ", seed);
  std::mt19937_64 rng(seed);
  auto gpu = longattn::make_cuda_backend(0);
  auto cpu = longattn::make_cpu_backend(2);
  const int64_t nq = 20, nk = 400, half = 192;  // two attend calls: keys [0, 192), [192, 400)
  const int32_t hq = 4, hkv = 2, d = 64;
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, nq, hq, d);
  CacheTensor k(rng, LONGATTN_DTYPE_Q8_0, 1, nk, hkv, d, 0), v(rng, LONGATTN_DTYPE_Q4_0, 1, nk, hkv, d, 0);
  HostTensor mask = make_mask(rng, MaskKind::random, LONGATTN_DTYPE_F16, 1, nq, 1, nk, nk - nq);
  const std::vector<float> slopes = random_values(rng, hq, 0.0f, 0.5f), sinks = random_values(rng, hq, 0.0f, 3.0f);

  // out/lse of the two-call state on one backend (host views for the CPU, device for CUDA)
  auto run = [&](longattn::Backend& be, bool device) {
    const size_t rows = size_t(hq * nq);
    Outputs o{HostTensor(LONGATTN_DTYPE_F32, 1, nq, hq, d), HostTensor(LONGATTN_DTYPE_F32, 1, nq, hq, 1)};
    o.out.poison();
    o.lse.poison();
    std::vector<std::unique_ptr<DeviceBytes>> keep;
    auto place = [&](const void* host, size_t n) -> void* {
      if (!device) return const_cast<void*>(host);
      keep.push_back(std::make_unique<DeviceBytes>(be, host, n));
      return keep.back()->ptr;
    };
    std::vector<float> m(rows), l(rows), acc(rows * size_t(d));
    longattn::RunningState st;
    st.m = static_cast<float*>(place(m.data(), m.size() * 4));
    st.l = static_cast<float*>(place(l.data(), l.size() * 4));
    st.acc = static_cast<float*>(place(acc.data(), acc.size() * 4));
    be.state_init(st, 1, hq, nq, d, nullptr);
    View qv = q.view(), kv = k.view(), vv = v.view(), mv = mask.view();
    qv.data = place(q.bytes.data(), q.bytes.size());
    kv.data = place(k.bytes.data(), k.bytes.size());
    vv.data = place(v.bytes.data(), v.bytes.size());
    mv.data = place(mask.bytes.data(), mask.bytes.size());
    const float* dslopes = static_cast<const float*>(place(slopes.data(), slopes.size() * 4));
    const float* dsinks = static_cast<const float*>(place(sinks.data(), sinks.size() * 4));
    for (int part = 0; part < 2; ++part) {
      const int64_t j0 = part == 0 ? 0 : half, j1 = part == 0 ? half : nk;
      longattn::AttendArgs a;
      a.batch = 1, a.n_q = nq, a.n_k = j1 - j0;
      a.n_q_heads = hq, a.n_kv_heads = hkv, a.head_dim = d, a.head_dim_v = d;
      a.scale = 1.0f / std::sqrt(float(d));
      a.mask.causal = true;
      a.q_pos0 = nk - nq;
      a.k_pos0 = j0;
      a.q = qv;
      a.k = kv, a.v = vv;
      a.k.data = static_cast<char*>(kv.data) + j0 * kv.strides[1], a.k.shape[1] = j1 - j0;
      a.v.data = static_cast<char*>(vv.data) + j0 * vv.strides[1], a.v.shape[1] = j1 - j0;
      a.add_mask = mv;
      a.add_mask.data = static_cast<char*>(mv.data) + j0 * mv.strides[3], a.add_mask.shape[3] = j1 - j0;
      a.alibi_slopes = dslopes;
      a.sinks = dsinks;  // given, and ignored: the call writes a running state
      a.state = &st;
      be.attend(a);
    }
    View ov = o.out.view(), lv = o.lse.view();
    ov.data = place(o.out.bytes.data(), o.out.bytes.size());
    lv.data = place(o.lse.bytes.data(), o.lse.bytes.size());
    be.state_finish(st, 1, hq, nq, d, ov, lv, nullptr);
    be.synchronize(nullptr);
    if (device) {
      be.download(o.out.bytes.data(), ov.data, o.out.bytes.size(), nullptr);
      be.download(o.lse.bytes.data(), lv.data, o.lse.bytes.size(), nullptr);
    }
    return o;
  };
  const Outputs g = run(*gpu, true), c = run(*cpu, false);
  Extras ex;  // the reference without sinks
  ex.mask = &mask;
  ex.slopes = slopes.data();
  const Reference r = reference(desc_of(hq, hkv, d, true), q, k, v, ex, LONGATTN_Q_POS_BOTTOM_RIGHT);
  for (const Outputs* o : {&g, &c}) {
    const Errors e = compare(o->out, r.out, &o->lse, &r.lse);
    CHECK(e.nan_count == 0);
    CHECK(e.lse_mismatch == 0);
    CHECK(e.rel < 4e-5);
    CHECK(e.lse_max_abs < kLseTol);
  }
}

#else  // !LONGATTN_HAVE_CUDA

TEST_CASE("cuda extras: backend not compiled in") {
  CHECK(longattn_backend_available(LONGATTN_BACKEND_CUDA) == 0);
  MESSAGE("library built without the CUDA backend: CUDA extras cases skipped");
}

#endif
