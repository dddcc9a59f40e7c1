// SPARSE (band + global tokens) on the CPU backend against the float64 dense reference built from
// the same predicate: windows 0, 1, odd, larger than n and unlimited, one-sided and symmetric;
// n_global 0, 1, 4 and larger than n; causal and not; KV-cache query offsets (also queries before
// the first key and past the last one, which leave rows with nothing allowed); GQA; odd lengths
// and tile boundaries; every dtype and strided views.
#include <string>

#include "backend.hpp"
#include "common.hpp"
#include "problem.hpp"

using namespace test;

namespace {

const longattn_dtype kDtypes[] = {LONGATTN_DTYPE_F32, LONGATTN_DTYPE_F16, LONGATTN_DTYPE_BF16};

struct SparseCase {
  int64_t batch = 1, n_q = 0, n_k = 0;
  int32_t hq = 1, hkv = 1, d = 16, dv = 16;
  bool causal = false;
  int32_t window_left = -1, window_right = -1, n_global = 0;
  longattn_dtype qt = LONGATTN_DTYPE_F32, kvt = LONGATTN_DTYPE_F32, ot = LONGATTN_DTYPE_F32;
  int64_t pad = 0;
  int64_t q_pos0 = LONGATTN_Q_POS_BOTTOM_RIGHT;
};

std::string describe(const SparseCase& c) {
  return "b=" + std::to_string(c.batch) + " nq=" + std::to_string(c.n_q) + " nk=" + std::to_string(c.n_k) +
         " h=" + std::to_string(c.hq) + "/" + std::to_string(c.hkv) + " d=" + std::to_string(c.d) + "/" +
         std::to_string(c.dv) + " causal=" + std::to_string(c.causal) + " window=" +
         std::to_string(c.window_left) + ":" + std::to_string(c.window_right) + " global=" +
         std::to_string(c.n_global) + " dt=" + std::to_string(c.qt) + std::to_string(c.kvt) +
         std::to_string(c.ot) + " pad=" + std::to_string(c.pad) + " pos0=" +
         (c.q_pos0 == LONGATTN_Q_POS_BOTTOM_RIGHT ? std::string("br") : std::to_string(c.q_pos0));
}

longattn_attention_desc desc_of(const SparseCase& c) {
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.algorithm = LONGATTN_ALGORITHM_SPARSE;
  d.n_q_heads = c.hq;
  d.n_kv_heads = c.hkv;
  d.head_dim = c.d;
  d.head_dim_v = c.dv;
  d.causal = c.causal;
  d.window_left = c.window_left;
  d.window_right = c.window_right;
  d.n_global = c.n_global;
  return d;
}

// Runs one case through the public API and checks it against the reference: every element
// written, error within the dtype's tolerance, empty rows exactly O = 0 and LSE = −inf.
void check_case(const SparseCase& c, int threads, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Context ctx(LONGATTN_BACKEND_CPU, threads);
  HostTensor q = random_tensor(rng, c.qt, c.batch, c.n_q, c.hq, c.d, c.pad);
  HostTensor k = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.d, c.pad);
  HostTensor v = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.dv, c.pad);
  HostTensor out(c.ot, c.batch, c.n_q, c.hq, c.dv, c.pad);
  HostTensor lse(LONGATTN_DTYPE_F32, c.batch, c.n_q, c.hq, 1, c.pad);
  const RunResult r = run_and_compare(ctx, desc_of(c), q, k, v, out, &lse, c.q_pos0);
  INFO(describe(c), " threads=", threads);
  REQUIRE_MESSAGE(r.status == LONGATTN_OK, ctx.error());
  CHECK(r.err.nan_count == 0);
  CHECK(r.err.lse_mismatch == 0);
  CHECK(r.err.rel < tolerance(c.ot));
  CHECK(r.err.lse_max_abs < 1e-4);
  int64_t nonzero_empty = 0;
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t i = 0; i < c.n_q; ++i)
      for (int64_t h = 0; h < c.hq; ++h)
        if (std::isinf(lse.get(b, i, h, 0)))
          for (int64_t e = 0; e < c.dv; ++e) nonzero_empty += out.get(b, i, h, e) != 0.0f;
  CHECK(nonzero_empty == 0);
}

SparseCase random_case(std::mt19937_64& rng) {
  auto pick = [&](std::initializer_list<int64_t> xs) { return *(xs.begin() + rng() % xs.size()); };
  SparseCase c;
  c.batch = pick({1, 1, 2});
  c.n_k = pick({1, 7, 63, 64, 65, 130, 257});
  c.n_q = rng() % 2 ? c.n_k : pick({1, 5, 33, 64, 100});
  c.hkv = int32_t(pick({1, 2}));
  c.hq = c.hkv * int32_t(pick({1, 2, 3}));
  c.d = int32_t(pick({8, 16, 33, 64}));
  c.dv = rng() % 4 == 0 ? int32_t(pick({5, 24})) : c.d;
  c.causal = rng() % 2;
  const int64_t n = std::max(c.n_q, c.n_k);
  auto window = [&] { return int32_t(pick({-1, 0, 1, 7, 33, n + 5})); };
  c.window_left = window();
  c.window_right = rng() % 3 == 0 ? c.window_left : window();
  c.n_global = int32_t(pick({0, 0, 1, 4, n + 3}));
  c.qt = kDtypes[rng() % 3];
  c.kvt = kDtypes[rng() % 3];
  c.ot = kDtypes[rng() % 3];
  c.pad = rng() % 4 == 0 ? 2 : 0;
  c.q_pos0 = rng() % 3 == 0 ? int64_t(rng() % (2 * n + 40)) - 20 : LONGATTN_Q_POS_BOTTOM_RIGHT;
  return c;
}

SparseCase square(int64_t n, bool causal, int32_t wl, int32_t wr, int32_t g) {
  SparseCase c;
  c.n_q = c.n_k = n;
  c.causal = causal;
  c.window_left = wl;
  c.window_right = wr;
  c.n_global = g;
  return c;
}

}  // namespace

TEST_CASE("SPARSE: the model mappings of the spec equal the dense reference") {
  // Mistral / llama.cpp SWA (n_swa = 32), StreamingLLM (4 sinks + 31 recent), ModernBERT local
  // (64/64), Longformer (band 16 each side, 5 global prefix tokens).
  const SparseCase cases[] = {square(300, true, 31, -1, 0), square(300, true, 30, -1, 4),
                              square(300, false, 64, 64, 0), square(300, false, 16, 16, 5)};
  uint64_t seed = 1;
  for (const SparseCase& c : cases) check_case(c, 2, seed++);
}

TEST_CASE("SPARSE: edge windows and globals") {
  uint64_t seed = 100;
  for (int64_t n : {1, 2, 63, 64, 65, 129}) {
    for (bool causal : {false, true})
      for (int32_t w : {0, 1, 7, int32_t(n + 5)})
        for (int32_t g : {0, 1, 4, int32_t(n + 3)}) {
          check_case(square(n, causal, w, w, g), 2, seed++);
          check_case(square(n, causal, w, -1, g), 1, seed++);  // one-sided (left only)
          check_case(square(n, causal, -1, w, g), 2, seed++);  // one-sided (right only)
        }
  }
}

TEST_CASE("SPARSE: KV-cache offsets, rows with nothing allowed, GQA") {
  uint64_t seed = 500;
  SparseCase c = square(150, true, 9, -1, 2);
  c.hq = 4;
  c.hkv = 2;
  for (int64_t n_q : {1, 17, 150})
    for (int64_t q_pos0 : {int64_t(LONGATTN_Q_POS_BOTTOM_RIGHT), int64_t(0), int64_t(40), int64_t(-30),
                           int64_t(170), int64_t(400)}) {
      c.n_q = n_q;
      c.q_pos0 = q_pos0;
      c.causal = !c.causal;
      check_case(c, 2, seed++);
    }
}

TEST_CASE("SPARSE: random shapes, dtypes, strides and predicates") {
  std::mt19937_64 rng(20240611);
  for (int i = 0; i < 120; ++i) {
    const SparseCase c = random_case(rng);
    check_case(c, 1 + int(i % 2), 1000 + uint64_t(i));
  }
}

TEST_CASE("SPARSE: the planner's two passes equal one dense masked pass on the backend") {
  // run_sparse (global query rows, then the band) against a single attend over everything.
  std::mt19937_64 rng(7);
  auto backend = longattn::make_cpu_backend(2);
  longattn::Workspace ws(*backend);
  SparseCase c = square(333, false, 20, 3, 6);
  c.hq = 2;
  const longattn::AttentionConfig cfg = config_of(desc_of(c));
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, c.n_q, c.hq, c.d);
  HostTensor k = random_tensor(rng, LONGATTN_DTYPE_F32, 1, c.n_k, c.hkv, c.d);
  HostTensor v = random_tensor(rng, LONGATTN_DTYPE_F32, 1, c.n_k, c.hkv, c.dv);
  HostTensor out(LONGATTN_DTYPE_F32, 1, c.n_q, c.hq, c.dv), out_one(LONGATTN_DTYPE_F32, 1, c.n_q, c.hq, c.dv);
  out.poison();
  out_one.poison();
  longattn::Problem p;
  p.cfg = &cfg;
  p.batch = 1;
  p.n_q = c.n_q;
  p.n_k = c.n_k;
  p.q = q.view();
  p.k = k.view();
  p.v = v.view();
  p.out = out.view();
  p.q_pos0 = 0;
  p.ws = &ws;
  longattn::run_sparse(*backend, p);
  longattn::AttendArgs one = p.attend_args();
  one.out = out_one.view();
  backend->attend(one);
  double max_diff = 0;
  out.each([&](int64_t b, int64_t n, int64_t h, int64_t e) {
    max_diff = std::max(max_diff, double(std::fabs(out.get(b, n, h, e) - out_one.get(b, n, h, e))));
  });
  CHECK(max_diff < 1e-6);
}

TEST_CASE("SPARSE: ggml extras (additive mask, ALiBi, sinks) follow the query rows of each pass") {
  // n_global > 0 splits the rows into two passes; the mask rows must travel with them.
  for (int variant = 0; variant < 3; ++variant) {
    std::mt19937_64 rng(800 + uint64_t(variant));
    SparseCase c = square(140, variant != 1, 11, variant == 1 ? 11 : -1, 5);
    c.hq = 4;
    c.hkv = 2;
    c.n_q = 90;
    HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, c.n_q, c.hq, c.d);
    HostTensor k = random_tensor(rng, LONGATTN_DTYPE_F16, 1, c.n_k, c.hkv, c.d);
    HostTensor v = random_tensor(rng, LONGATTN_DTYPE_F16, 1, c.n_k, c.hkv, c.dv);
    HostTensor mask(LONGATTN_DTYPE_F32, 1, c.n_q, variant == 2 ? c.hq : 1, c.n_k);
    std::uniform_real_distribution<float> u(-2.0f, 0.0f);
    mask.each([&](int64_t b, int64_t n, int64_t h, int64_t e) {
      mask.set(b, n, h, e, rng() % 7 == 0 ? -INFINITY : u(rng));
    });
    std::vector<float> slopes(size_t(c.hq)), sinks(size_t(c.hq));
    for (int h = 0; h < c.hq; ++h) slopes[size_t(h)] = 0.05f * float(h + 1), sinks[size_t(h)] = 0.5f * float(h) - 1.0f;
    HostTensor out(LONGATTN_DTYPE_F32, 1, c.n_q, c.hq, c.dv), lse(LONGATTN_DTYPE_F32, 1, c.n_q, c.hq, 1);
    out.poison();
    lse.poison();
    const int64_t q_pos0 = variant == 0 ? 2 : c.n_k - c.n_q;  // variant 0: global query rows 0..2
    Context ctx(LONGATTN_BACKEND_CPU, 2);
    Attention attn(ctx, desc_of(c));
    REQUIRE(attn.status == LONGATTN_OK);
    longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
    a.q = &q.t;
    a.k = &k.t;
    a.v = &v.t;
    a.out = &out.t;
    a.lse = &lse.t;
    a.q_pos0 = q_pos0;
    a.mask = &mask.t;
    a.alibi_slopes = slopes.data();
    a.sinks = variant == 1 ? nullptr : sinks.data();
    REQUIRE_MESSAGE(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_OK, ctx.error());
    longattn::ReferenceExtras ex;
    ex.mask = mask.view();
    ex.slopes = slopes.data();
    ex.sinks = a.sinks;
    std::vector<double> ref, ref_lse;
    longattn::reference_attention(config_of(desc_of(c)), q.view(), k.view(), v.view(), q_pos0, ref, ref_lse, {}, ex);
    const Errors e = compare(out, ref, &lse, &ref_lse);
    INFO("variant ", variant);
    CHECK(e.nan_count == 0);
    CHECK(e.lse_mismatch == 0);
    CHECK(e.rel < tolerance(LONGATTN_DTYPE_F32));
    CHECK(e.lse_max_abs < 1e-4);
  }
}
