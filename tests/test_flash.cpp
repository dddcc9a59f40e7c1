// FLASH on the CPU backend against the float64 reference: random shapes, dtypes, GQA, strides,
// positions, every compiled micro-kernel set, thread counts 1 and 2, and the edge cases.
#include <cstdlib>

#include "backend.hpp"
#include "common.hpp"

using namespace test;

namespace {

const longattn_dtype kDtypes[] = {LONGATTN_DTYPE_F32, LONGATTN_DTYPE_F16, LONGATTN_DTYPE_BF16};

struct Case {
  int64_t batch, n_q, n_k;
  int32_t hq, hkv, d, dv;
  bool causal;
  longattn_dtype qt, kvt, ot;
  int64_t pad;        // strided views
  int64_t q_pos0;     // LONGATTN_Q_POS_BOTTOM_RIGHT or explicit
  float softcap;
};

std::string describe(const Case& c) {
  return "b=" + std::to_string(c.batch) + " nq=" + std::to_string(c.n_q) + " nk=" + std::to_string(c.n_k) +
         " h=" + std::to_string(c.hq) + "/" + std::to_string(c.hkv) + " d=" + std::to_string(c.d) + "/" +
         std::to_string(c.dv) + " causal=" + std::to_string(c.causal) + " dt=" + std::to_string(c.qt) +
         std::to_string(c.kvt) + std::to_string(c.ot) + " pad=" + std::to_string(c.pad) +
         " pos0=" + (c.q_pos0 == LONGATTN_Q_POS_BOTTOM_RIGHT ? std::string("br") : std::to_string(c.q_pos0)) +
         " softcap=" + std::to_string(c.softcap);
}

void check_case(const Case& c, int threads, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Context ctx(LONGATTN_BACKEND_CPU, threads);
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.n_q_heads = c.hq;
  d.n_kv_heads = c.hkv;
  d.head_dim = c.d;
  d.head_dim_v = c.dv;
  d.causal = c.causal;
  d.softcap = c.softcap;
  HostTensor q = random_tensor(rng, c.qt, c.batch, c.n_q, c.hq, c.d, c.pad);
  HostTensor k = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.d, c.pad);
  HostTensor v = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.dv, c.pad);
  HostTensor out(c.ot, c.batch, c.n_q, c.hq, c.dv, c.pad);
  HostTensor lse(LONGATTN_DTYPE_F32, c.batch, c.n_q, c.hq, 1, c.pad);
  const RunResult r = run_and_compare(ctx, d, q, k, v, out, &lse, c.q_pos0);
  INFO(describe(c), " threads=", threads, " isa=", longattn_build_info());
  REQUIRE_MESSAGE(r.status == LONGATTN_OK, ctx.error());
  CHECK(r.err.nan_count == 0);
  CHECK(r.err.lse_mismatch == 0);
  CHECK(r.err.rel < tolerance(c.ot));
  CHECK(r.err.lse_max_abs < 1e-4);
}

Case random_case(std::mt19937_64& rng) {
  auto pick = [&](std::initializer_list<int64_t> xs) { return *(xs.begin() + rng() % xs.size()); };
  Case c;
  c.batch = pick({1, 1, 2});
  c.n_q = pick({1, 2, 5, 17, 64, 65, 130});
  c.n_k = pick({1, 3, 16, 63, 64, 129, 200});
  c.hkv = int32_t(pick({1, 2, 3}));
  c.hq = c.hkv * int32_t(pick({1, 2, 4, 5}));
  c.d = int32_t(pick({1, 3, 8, 16, 64, 80, 128}));
  c.dv = rng() % 4 == 0 ? int32_t(pick({5, 16, 96})) : c.d;
  c.causal = rng() % 2;
  c.qt = kDtypes[rng() % 3];
  c.kvt = kDtypes[rng() % 3];
  c.ot = kDtypes[rng() % 3];
  c.pad = rng() % 3 == 0 ? 2 : 0;
  c.q_pos0 = rng() % 4 == 0 ? int64_t(rng() % 300) - 50 : LONGATTN_Q_POS_BOTTOM_RIGHT;
  c.softcap = rng() % 6 == 0 ? 3.0f : 0.0f;
  return c;
}

// bf16 Q, K and V (any output) in shapes that take the many-row kernels, which the avx512bf16 set
// runs with bf16 dot products: even and odd head dims, value dims that are not a multiple of the
// vector width, odd key counts (a tile with half a pair), strided views (read through conversions).
Case bf16_case(std::mt19937_64& rng) {
  auto pick = [&](std::initializer_list<int64_t> xs) { return *(xs.begin() + rng() % xs.size()); };
  Case c = random_case(rng);
  c.n_q = pick({17, 64, 130, 200});
  c.n_k = pick({1, 63, 64, 129, 300});
  c.d = int32_t(pick({3, 16, 64, 80, 128}));
  c.dv = rng() % 3 == 0 ? int32_t(pick({5, 48, 96})) : c.d;
  c.qt = c.kvt = LONGATTN_DTYPE_BF16;
  c.ot = rng() % 2 ? LONGATTN_DTYPE_BF16 : kDtypes[rng() % 3];
  c.pad = rng() % 4 == 0 ? 2 : 0;
  return c;
}

// Runs `body` with the micro-kernel set `isa` forced (new contexts pick it up), if this build and
// this CPU have it.
template <class F>
void with_isa(const char* isa, F body) {
  if (!longattn::cpu_isas_compiled() || std::string(longattn::cpu_isas_compiled()).find(isa) == std::string::npos)
    return;
  setenv("LONGATTN_CPU_ISA", isa, 1);
  if (std::string(longattn::cpu_isa_selected()) != isa) {  // not supported by this CPU
    MESSAGE("skipping micro-kernel set ", std::string(isa), ": not supported by this CPU");
    unsetenv("LONGATTN_CPU_ISA");
    return;
  }
  body();
  unsetenv("LONGATTN_CPU_ISA");
}

void sweep(const char* isa, int n_cases, uint64_t seed, Case (*make)(std::mt19937_64&) = random_case) {
  with_isa(isa, [&] {
    std::mt19937_64 rng(seed);
    for (int i = 0; i < n_cases; ++i) check_case(make(rng), 1 + i % 2, rng());
  });
}

}  // namespace

TEST_CASE("random shapes against the float64 reference, every micro-kernel set") {
  const uint64_t seed = std::random_device{}();
  INFO("seed=", seed);
  for (const char* isa : {"avx512bf16", "avx512", "avx2", "neon", "scalar"}) {
    INFO("isa=", std::string(isa));
    sweep(isa, 40, seed);
  }
}

TEST_CASE("bf16 Q/K/V, many rows, every micro-kernel set") {
  const uint64_t seed = std::random_device{}();
  INFO("seed=", seed);
  for (const char* isa : {"avx512bf16", "avx512", "avx2", "neon", "scalar"}) {
    INFO("isa=", std::string(isa));
    sweep(isa, 30, seed, bf16_case);
  }
}

TEST_CASE("head dims on the fast paths and odd ones") {
  std::mt19937_64 rng(std::random_device{}());
  for (int32_t d : {1, 3, 64, 80, 96, 112, 128, 256}) {
    Case c{1, 33, 150, 8, 2, d, d, true, LONGATTN_DTYPE_F32, LONGATTN_DTYPE_F16, LONGATTN_DTYPE_F32, 0,
           LONGATTN_Q_POS_BOTTOM_RIGHT, 0.0f};
    check_case(c, 2, rng());
  }
}

TEST_CASE("f32 K/V rows 2 KiB apart or a multiple (many-row kernels copy their tiles)") {
  std::mt19937_64 rng(std::random_device{}());
  // rows 2048 B (4 × 128, 8 × 64 floats) and 4096 B (8 × 128) apart; 1024 B (2 × 128) stays in place
  for (int32_t hkv : {2, 4, 8})
    for (int32_t d : {64, 128})
      for (bool causal : {true, false}) {
        Case c{1, 70, 150, 2 * hkv, hkv, d, d, causal, LONGATTN_DTYPE_F32, LONGATTN_DTYPE_F32, LONGATTN_DTYPE_F32, 0,
               LONGATTN_Q_POS_BOTTOM_RIGHT, 0.0f};
        check_case(c, 1 + int(rng() % 2), rng());
      }
}

TEST_CASE("decode: one query row against a long KV cache (split keys), and a speculative batch") {
  std::mt19937_64 rng(std::random_device{}());
  for (int64_t nq : {1, 4}) {
    Case c{2, nq, 3000, 8, 2, 64, 64, true, LONGATTN_DTYPE_F32, LONGATTN_DTYPE_F16, LONGATTN_DTYPE_F32, 1,
           LONGATTN_Q_POS_BOTTOM_RIGHT, 0.0f};
    check_case(c, 2, rng());
    check_case(c, 1, rng());
  }
  // 8 KV heads of f16 rows of 128, as in a model's cache: every KV head in one unit, key tiles
  // sized so the tile read and the next (prefetched) fit L2, a partial last tile
  for (int64_t nq : {1, 2}) {
    Case c{1, nq, 1000, 32, 8, 128, 128, true, LONGATTN_DTYPE_F32, LONGATTN_DTYPE_F16, LONGATTN_DTYPE_F32, 1,
           LONGATTN_Q_POS_BOTTOM_RIGHT, 0.0f};
    check_case(c, 2, rng());
  }
}

TEST_CASE("decode with 1 to 8 query rows per KV head, every micro-kernel set") {
  // Few rows take the dot kernels, whose Sᵀ has a power of two of lanes per key (idle lanes for
  // 3, 5, 6, 7 rows) and packs several keys per vector; key counts leave a partial last vector.
  std::mt19937_64 rng(std::random_device{}());
  for (const char* isa : {"avx512bf16", "avx512", "avx2", "neon", "scalar"}) {
    INFO("isa=", std::string(isa));
    with_isa(isa, [&] {
      for (int32_t group : {1, 2, 3, 4, 5, 6, 7, 8})
        for (longattn_dtype kvt : {LONGATTN_DTYPE_F32, LONGATTN_DTYPE_F16}) {
          const int64_t n_k = int64_t(rng() % 700) + 1;
          Case c{1, 1, n_k, 2 * group, 2, 128, 128, true, LONGATTN_DTYPE_F32, kvt, LONGATTN_DTYPE_F32, 0,
                 LONGATTN_Q_POS_BOTTOM_RIGHT, rng() % 3 == 0 ? 5.0f : 0.0f};
          check_case(c, 1 + int(rng() % 2), rng());
        }
    });
  }
}

TEST_CASE("fully masked rows give O = 0 and LSE = -inf, never NaN") {
  std::mt19937_64 rng(std::random_device{}());
  Context ctx(LONGATTN_BACKEND_CPU, 2);
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.n_q_heads = 2; d.head_dim = 16; d.causal = 1;
  // queries at positions −5 … −1: every key (positions ≥ 0) lies in their future
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 8, 2, 16);
  HostTensor k = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 20, 2, 16);
  HostTensor v = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 20, 2, 16);
  HostTensor out(LONGATTN_DTYPE_F32, 1, 8, 2, 16), lse(LONGATTN_DTYPE_F32, 1, 8, 2, 1);
  const RunResult r = run_and_compare(ctx, d, q, k, v, out, &lse, -5);
  REQUIRE(r.status == LONGATTN_OK);
  CHECK(r.err.nan_count == 0);
  CHECK(r.err.lse_mismatch == 0);
  CHECK(r.err.rel < 1e-5);
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t h = 0; h < 2; ++h) {
      CHECK(std::isinf(lse.get(0, i, h, 0)));
      for (int64_t c = 0; c < 16; ++c) CHECK(out.get(0, i, h, c) == 0.0f);
    }
}

TEST_CASE("logits of magnitude 1e4 do not overflow") {
  std::mt19937_64 rng(std::random_device{}());
  Context ctx(LONGATTN_BACKEND_CPU, 2);
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.n_q_heads = 4; d.n_kv_heads = 2; d.head_dim = 32; d.scale = 1.0f;
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 40, 4, 32, 0, 18.0f);  // |q·k| ~ 1e4
  HostTensor k = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 90, 2, 32, 0, 18.0f);
  HostTensor v = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 90, 2, 32);
  HostTensor out(LONGATTN_DTYPE_F32, 1, 40, 4, 32), lse(LONGATTN_DTYPE_F32, 1, 40, 4, 1);
  const RunResult r = run_and_compare(ctx, d, q, k, v, out, &lse);
  REQUIRE(r.status == LONGATTN_OK);
  CHECK(r.err.nan_count == 0);
  CHECK(r.err.rel < 1e-4);  // the softmax is nearly one-hot: fp32 rounding of 1e4-size logits
}

TEST_CASE("Inf/NaN inputs give NaN in the affected rows only") {
  std::mt19937_64 rng(std::random_device{}());
  Context ctx(LONGATTN_BACKEND_CPU, 1);
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.n_q_heads = 1; d.head_dim = 8;
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 6, 1, 8);
  HostTensor k = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 10, 1, 8);
  HostTensor v = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 10, 1, 8);
  q.set(0, 2, 0, 3, std::nanf(""));
  q.set(0, 4, 0, 1, std::numeric_limits<float>::infinity());
  HostTensor out(LONGATTN_DTYPE_F32, 1, 6, 1, 8);
  Attention attn(ctx, d);
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &q.t; a.k = &k.t; a.v = &v.t; a.out = &out.t;
  REQUIRE(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_OK);
  for (int64_t i = 0; i < 6; ++i) {
    const bool affected = i == 2 || i == 4;
    bool any_nan = false;
    for (int64_t c = 0; c < 8; ++c) any_nan |= std::isnan(out.get(0, i, 0, c));
    CHECK_MESSAGE(any_nan == affected, "row ", i);
  }
}

TEST_CASE("attention over K1 ∪ K2 equals the merge of the two partials") {
  std::mt19937_64 rng(std::random_device{}());
  Context ctx(LONGATTN_BACKEND_CPU, 2);
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.n_q_heads = 4; d.n_kv_heads = 1; d.head_dim = 24;
  const int64_t nq = 7, n1 = 50, n2 = 33;
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 2, nq, 4, 24);
  HostTensor k = random_tensor(rng, LONGATTN_DTYPE_F32, 2, n1 + n2, 1, 24);
  HostTensor v = random_tensor(rng, LONGATTN_DTYPE_F32, 2, n1 + n2, 1, 24);
  // K1, K2 as views into the same buffers
  longattn_tensor k1 = k.t, v1 = v.t, k2 = k.t, v2 = v.t;
  k1.shape[1] = v1.shape[1] = n1;
  k2.shape[1] = v2.shape[1] = n2;
  k2.data = k.at(0, n1, 0, 0);
  v2.data = v.at(0, n1, 0, 0);
  HostTensor o1(LONGATTN_DTYPE_F32, 2, nq, 4, 24), o2(LONGATTN_DTYPE_F32, 2, nq, 4, 24);
  HostTensor l1(LONGATTN_DTYPE_F32, 2, nq, 4, 1), l2(LONGATTN_DTYPE_F32, 2, nq, 4, 1);
  Attention attn(ctx, d);
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &q.t; a.k = &k1; a.v = &v1; a.out = &o1.t; a.lse = &l1.t; a.q_pos0 = 0;
  REQUIRE(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_OK);
  a.k = &k2; a.v = &v2; a.out = &o2.t; a.lse = &l2.t;
  REQUIRE(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_OK);
  // in place into (o1, l1)
  REQUIRE(longattn_merge(ctx.ctx, &o1.t, &l1.t, &o2.t, &l2.t, &o1.t, &l1.t) == LONGATTN_OK);
  std::vector<double> ref, ref_lse;
  longattn::reference_attention(config_of(d), q.view(), k.view(), v.view(), 0, ref, ref_lse);
  const Errors e = compare(o1, ref, &l1, &ref_lse);
  CHECK(e.rel < 1e-5);
  CHECK(e.lse_max_abs < 1e-5);
  CHECK(e.lse_mismatch == 0);
}

TEST_CASE("merge with -inf partials is NaN-free") {
  Context ctx(LONGATTN_BACKEND_CPU, 1);
  HostTensor oa(LONGATTN_DTYPE_F32, 1, 3, 1, 4), ob(LONGATTN_DTYPE_F32, 1, 3, 1, 4);
  HostTensor la(LONGATTN_DTYPE_F32, 1, 3, 1, 1), lb(LONGATTN_DTYPE_F32, 1, 3, 1, 1);
  HostTensor oo(LONGATTN_DTYPE_F32, 1, 3, 1, 4), lo(LONGATTN_DTYPE_F32, 1, 3, 1, 1);
  const float inf = std::numeric_limits<float>::infinity();
  const float lsa[3] = {-inf, 0.5f, -inf}, lsb[3] = {-inf, -inf, 1.5f};
  for (int64_t i = 0; i < 3; ++i) {
    la.set(0, i, 0, 0, lsa[i]);
    lb.set(0, i, 0, 0, lsb[i]);
    for (int64_t c = 0; c < 4; ++c) oa.set(0, i, 0, c, float(c + 1)), ob.set(0, i, 0, c, float(-c));
  }
  REQUIRE(longattn_merge(ctx.ctx, &oa.t, &la.t, &ob.t, &lb.t, &oo.t, &lo.t) == LONGATTN_OK);
  CHECK(std::isinf(lo.get(0, 0, 0, 0)));
  CHECK(lo.get(0, 1, 0, 0) == doctest::Approx(0.5));
  CHECK(lo.get(0, 2, 0, 0) == doctest::Approx(1.5));
  for (int64_t c = 0; c < 4; ++c) {
    CHECK(oo.get(0, 0, 0, c) == 0.0f);
    CHECK(oo.get(0, 1, 0, c) == doctest::Approx(c + 1));
    CHECK(oo.get(0, 2, 0, c) == doctest::Approx(-c));
  }
}

TEST_CASE("same inputs give the same bits on 1, 2 and 3 threads (prefill and split-key decode)") {
  std::mt19937_64 rng(std::random_device{}());
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.n_q_heads = 8; d.n_kv_heads = 2; d.head_dim = 64; d.causal = 1;
  for (int64_t nq : {1, 100}) {
    const int64_t nk = nq == 1 ? 5000 : 300;
    HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, nq, 8, 64);
    HostTensor k = random_tensor(rng, LONGATTN_DTYPE_F16, 1, nk, 2, 64);
    HostTensor v = random_tensor(rng, LONGATTN_DTYPE_F16, 1, nk, 2, 64);
    std::vector<HostTensor> outs;
    for (int threads : {1, 2, 3}) {
      outs.emplace_back(LONGATTN_DTYPE_F32, 1, nq, 8, 64);
      Context ctx(LONGATTN_BACKEND_CPU, threads);
      Attention attn(ctx, d);
      longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
      a.q = &q.t; a.k = &k.t; a.v = &v.t; a.out = &outs.back().t;
      REQUIRE(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_OK);
    }
    CHECK(std::memcmp(outs[0].bytes.data(), outs[1].bytes.data(), outs[0].bytes.size()) == 0);
    CHECK(std::memcmp(outs[0].bytes.data(), outs[2].bytes.data(), outs[0].bytes.size()) == 0);
  }
}

TEST_CASE("MQA with more query heads than a work item's row budget") {
  std::mt19937_64 rng(std::random_device{}());
  Case c{1, 3, 150, 160, 1, 8, 8, true, LONGATTN_DTYPE_F32, LONGATTN_DTYPE_F16, LONGATTN_DTYPE_F32, 0,
         LONGATTN_Q_POS_BOTTOM_RIGHT, 0.0f};
  check_case(c, 2, rng());
  c.n_q = 1;
  c.n_k = 3000;  // decode: split keys
  check_case(c, 2, rng());
}
