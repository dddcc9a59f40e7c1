// C ABI: attention handles and the forward call (validate → stage → plan → primitives).
#include <cmath>
#include <limits>
#include <string>

#include "api_guard.hpp"
#include "extensible.hpp"
#include "quant.hpp"
#include "staging.hpp"
#include "validate.hpp"

using namespace longattn;

namespace {

void run_algorithm(Backend& backend, const Problem& p) {
  switch (p.cfg->algorithm) {
    case LONGATTN_ALGORITHM_SPARSE: run_sparse(backend, p); break;
    case LONGATTN_ALGORITHM_HYPER: run_hyper(backend, p); break;
    default: run_flash(backend, p); break;
  }
}

}  // namespace

extern "C" {

longattn_status longattn_attention_create(longattn_context* ctx, const longattn_attention_desc* desc,
                                          longattn_attention** out) {
  if (!ctx) return LONGATTN_ERROR_NULL_POINTER;
  return guarded(ctx, "longattn_attention_create", [&] {
    LONGATTN_RETURN_IF(desc == nullptr, LONGATTN_ERROR_NULL_POINTER, "desc is NULL");
    LONGATTN_RETURN_IF(out == nullptr, LONGATTN_ERROR_NULL_POINTER, "out is NULL");
    const longattn_attention_desc defaults = LONGATTN_ATTENTION_DESC_INIT;
    const longattn_attention_desc d = read_extensible(desc, defaults, LONGATTN_ATTENTION_DESC_MIN_SIZE, "desc");
    const AttentionConfig cfg = config_from_desc(d);
    auto attn = std::make_unique<longattn_attention>();
    attn->backend = ctx->kind;
    attn->cfg = cfg;
    *out = attn.release();
  });
}

void longattn_attention_destroy(longattn_attention* attn) { delete attn; }

longattn_status longattn_attention_forward(longattn_context* ctx, const longattn_attention* attn,
                                           const longattn_forward_args* args) {
  if (!ctx) return LONGATTN_ERROR_NULL_POINTER;
  return guarded(ctx, "longattn_attention_forward", [&] {
    LONGATTN_RETURN_IF(attn == nullptr, LONGATTN_ERROR_NULL_POINTER, "attn is NULL");
    LONGATTN_RETURN_IF(args == nullptr, LONGATTN_ERROR_NULL_POINTER, "args is NULL");
    LONGATTN_RETURN_IF(attn->backend != ctx->kind, LONGATTN_ERROR_INVALID_ARGUMENT,
                       "attn was created for backend " + std::to_string(attn->backend) +
                           " but ctx runs backend " + std::to_string(ctx->kind));
    const longattn_forward_args defaults = LONGATTN_FORWARD_ARGS_INIT;
    const longattn_forward_args a = read_extensible(args, defaults, LONGATTN_FORWARD_ARGS_MIN_SIZE, "args");
    LONGATTN_RETURN_IF(a.reserved0 != 0, LONGATTN_ERROR_INVALID_ARGUMENT, "args.reserved0 must be 0");
    const AttentionConfig& cfg = attn->cfg;
    const View q = view_from_tensor(a.q, "q");
    const View k = view_from_tensor(a.k, "k", true);
    const View v = view_from_tensor(a.v, "v", true);
    const View o = view_from_tensor(a.out, "out");
    const int64_t B = q.shape[0], nq = q.shape[1], nk = k.shape[1];
    expect_shape(q, "q", B, nq, cfg.n_q_heads, cfg.head_dim);
    expect_shape(k, "k", B, nk, cfg.n_kv_heads, cfg.head_dim);
    expect_shape(v, "v", B, nk, cfg.n_kv_heads, cfg.head_dim_v);
    expect_shape(o, "out", B, nq, cfg.n_q_heads, cfg.head_dim_v);
    View lse;
    if (a.lse) {
      lse = view_from_tensor(a.lse, "lse");
      LONGATTN_RETURN_IF(lse.dtype != LONGATTN_DTYPE_F32, LONGATTN_ERROR_INVALID_ARGUMENT,
                         "lse.dtype=" + std::to_string(lse.dtype) + " must be LONGATTN_DTYPE_F32");
      expect_shape(lse, "lse", B, nq, cfg.n_q_heads, 1);
      expect_disjoint(lse, "lse", o, "out");
    }
    for (const auto& [view, name] : {std::pair{q, "q"}, std::pair{k, "k"}, std::pair{v, "v"}}) {
      expect_disjoint(o, "out", view, name);
      if (a.lse) expect_disjoint(lse, "lse", view, name);
    }
    View mask;
    if (a.mask) {
      mask = view_from_tensor(a.mask, "mask");
      LONGATTN_RETURN_IF(mask.dtype == LONGATTN_DTYPE_BF16, LONGATTN_ERROR_INVALID_ARGUMENT,
                         "mask.dtype must be LONGATTN_DTYPE_F16 or LONGATTN_DTYPE_F32");
      static const char* const kMaskAxes[4] = {"batch", "query tokens", "heads", "key tokens"};
      expect_shape(mask, "mask", mask.shape[0] == 1 ? 1 : B, nq, mask.shape[2] == 1 ? 1 : cfg.n_q_heads, nk, kMaskAxes);
      expect_disjoint(o, "out", mask, "mask");
    }
    const float* slopes = a.alibi_slopes ? a.alibi_slopes
                                         : (cfg.alibi_slopes.empty() ? nullptr : cfg.alibi_slopes.data());
    const bool extras = a.mask || slopes || a.sinks || is_block_dtype(k.dtype) || is_block_dtype(v.dtype);
    LONGATTN_RETURN_IF(extras && cfg.algorithm == LONGATTN_ALGORITHM_HYPER, LONGATTN_ERROR_UNSUPPORTED,
                       "HYPER takes no mask, ALiBi, sinks or block-format K/V");
    LONGATTN_RETURN_IF(extras && !ctx->backend->supports_extras(), LONGATTN_ERROR_UNSUPPORTED,
                       "mask, ALiBi, sinks and block-format K/V are not supported on the " +
                           ctx->backend->device_name() + " backend yet");
    if (a.sinks)
      for (int32_t h = 0; h < cfg.n_q_heads; ++h)
        LONGATTN_RETURN_IF(std::isnan(a.sinks[h]) || a.sinks[h] == std::numeric_limits<float>::infinity(),
                           LONGATTN_ERROR_INVALID_ARGUMENT,
                           "args.sinks[" + std::to_string(h) + "] is " + (std::isnan(a.sinks[h]) ? "NaN" : "+inf") +
                               " (a sink is a logit: finite, or −inf for none)");
    if (a.alibi_slopes)
      for (int32_t h = 0; h < cfg.n_q_heads; ++h)
        LONGATTN_RETURN_IF(!std::isfinite(a.alibi_slopes[h]), LONGATTN_ERROR_INVALID_ARGUMENT,
                           "args.alibi_slopes[" + std::to_string(h) + "] is not finite");
    constexpr int64_t kPosLimit = int64_t(1) << 60;
    const int64_t q_pos0 = a.q_pos0 == LONGATTN_Q_POS_BOTTOM_RIGHT ? nk - nq : a.q_pos0;
    LONGATTN_RETURN_IF(q_pos0 <= -kPosLimit || q_pos0 >= kPosLimit, LONGATTN_ERROR_INVALID_ARGUMENT,
                       "args.q_pos0=" + std::to_string(a.q_pos0) + " is out of range");
    if (ctx->ring) return ring_forward_whole(*ctx, cfg, a, q, k, v, o, lse, q_pos0);  // src/ring_api.cpp

    Backend& be = *ctx->backend;
    const bool stage = ctx->kind != LONGATTN_BACKEND_CPU;
    auto is_host = [](const longattn_tensor* t) { return t->memory == LONGATTN_MEMORY_HOST; };
    Problem p;
    p.cfg = &cfg;
    p.batch = B;
    p.n_q = nq;
    p.n_k = nk;
    p.q_pos0 = q_pos0;
    p.stream = a.stream;
    p.ws = ctx->ws.get();
    p.q = stage && is_host(a.q) ? stage_in(be, *p.ws, 0, q, true, a.stream) : q;
    p.k = stage && is_host(a.k) ? stage_in(be, *p.ws, 1, k, true, a.stream) : k;
    p.v = stage && is_host(a.v) ? stage_in(be, *p.ws, 2, v, true, a.stream) : v;
    p.out = stage && is_host(a.out) ? stage_in(be, *p.ws, 3, o, true, a.stream) : o;
    if (a.lse) p.lse = stage && is_host(a.lse) ? stage_in(be, *p.ws, 4, lse, true, a.stream) : lse;
    if (a.mask) p.mask = stage && is_host(a.mask) ? stage_in(be, *p.ws, 5, mask, true, a.stream) : mask;
    p.alibi_slopes = stage && slopes ? stage_floats(be, *p.ws, 6, slopes, cfg.n_q_heads, a.stream) : slopes;
    p.sinks = stage && a.sinks ? stage_floats(be, *p.ws, 7, a.sinks, cfg.n_q_heads, a.stream) : a.sinks;
    run_algorithm(be, p);
    if (stage && is_host(a.out)) stage_out(be, p.out, o, a.stream);
    if (stage && a.lse && is_host(a.lse)) stage_out(be, p.lse, lse, a.stream);
    if (stage && (is_host(a.out) || (a.lse && is_host(a.lse)))) be.synchronize(a.stream);
  });
}

}  // extern "C"
