// A forward call allocates no heap memory once its shapes have been seen (scratch is kept by the
// context), for prefill, decode (split keys) and masked calls. Counted by replacing operator new.
#include <atomic>
#include <cstdlib>
#include <new>

#include "common.hpp"

namespace {
std::atomic<long> g_news{0};
}

void* operator new(size_t n) {
  ++g_news;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

using namespace test;

TEST_CASE("no heap allocation in forward calls after the first") {
  std::mt19937_64 rng(std::random_device{}());
  Context ctx(LONGATTN_BACKEND_CPU, 2);
  for (int64_t nq : {1, 200}) {
    const int64_t nk = nq == 1 ? 4000 : 300;
    longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
    d.n_q_heads = 8; d.n_kv_heads = 2; d.head_dim = 64; d.causal = 1;
    Attention attn(ctx, d);
    HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, nq, 8, 64);
    HostTensor k = random_tensor(rng, LONGATTN_DTYPE_F16, 1, nk, 2, 64);
    HostTensor v = random_tensor(rng, LONGATTN_DTYPE_F16, 1, nk, 2, 64);
    HostTensor out(LONGATTN_DTYPE_F32, 1, nq, 8, 64), lse(LONGATTN_DTYPE_F32, 1, nq, 8, 1);
    HostTensor mask(LONGATTN_DTYPE_F16, 1, nq, 1, nk);
    mask.randomize(rng);
    const float sinks[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
    a.q = &q.t; a.k = &k.t; a.v = &v.t; a.out = &out.t; a.lse = &lse.t; a.mask = &mask.t; a.sinks = sinks;
    REQUIRE(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_OK);  // first: may allocate
    longattn_status st[4];
    const long before = g_news.load();
    for (int r = 0; r < 3; ++r) st[r] = longattn_attention_forward(ctx.ctx, attn.attn, &a);
    a.mask = nullptr;
    st[3] = longattn_attention_forward(ctx.ctx, attn.attn, &a);
    const long allocations = g_news.load() - before;  // read before any test macro allocates
    for (longattn_status s : st) REQUIRE(s == LONGATTN_OK);
    INFO("n_q=", nq);
    CHECK(allocations == 0);
    CHECK(longattn_context_scratch_bytes(ctx.ctx) > 0);
  }
}
