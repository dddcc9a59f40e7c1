// C ABI: merge of two (O, LSE) partials over disjoint key sets.
#include <string>

#include "api_guard.hpp"
#include "staging.hpp"
#include "validate.hpp"

using namespace longattn;

extern "C" {

longattn_status longattn_merge(longattn_context* ctx, const longattn_tensor* o_a, const longattn_tensor* lse_a,
                               const longattn_tensor* o_b, const longattn_tensor* lse_b,
                               const longattn_tensor* o_out, const longattn_tensor* lse_out) {
  if (!ctx) return LONGATTN_ERROR_NULL_POINTER;
  return guarded(ctx, "longattn_merge", [&] {
    const View a = view_from_tensor(o_a, "o_a"), la = view_from_tensor(lse_a, "lse_a");
    const View b = view_from_tensor(o_b, "o_b"), lb = view_from_tensor(lse_b, "lse_b");
    const View o = view_from_tensor(o_out, "o_out"), lo = view_from_tensor(lse_out, "lse_out");
    const int64_t B = a.shape[0], N = a.shape[1], H = a.shape[2], D = a.shape[3];
    expect_shape(b, "o_b", B, N, H, D);
    expect_shape(o, "o_out", B, N, H, D);
    for (const auto& [view, name] : {std::pair{la, "lse_a"}, std::pair{lb, "lse_b"}, std::pair{lo, "lse_out"}}) {
      LONGATTN_RETURN_IF(view.dtype != LONGATTN_DTYPE_F32, LONGATTN_ERROR_INVALID_ARGUMENT,
                         std::string(name) + ".dtype=" + std::to_string(view.dtype) + " must be LONGATTN_DTYPE_F32");
      expect_shape(view, name, B, N, H, 1);
    }
    LONGATTN_RETURN_IF(ctx->kind != LONGATTN_BACKEND_CPU &&
                           (o_a->memory == LONGATTN_MEMORY_HOST) != (o_out->memory == LONGATTN_MEMORY_HOST),
                       LONGATTN_ERROR_UNSUPPORTED, "merge needs all tensors in the same memory kind");
    Backend& be = *ctx->backend;
    const bool stage = ctx->kind != LONGATTN_BACKEND_CPU && o_a->memory == LONGATTN_MEMORY_HOST;
    if (!stage) {
      be.merge(a, la, b, lb, o, lo, nullptr);
      return;
    }
    Workspace& ws = *ctx->ws;
    const View da = stage_in(be, ws, 0, a, true, nullptr), dla = stage_in(be, ws, 1, la, true, nullptr);
    const View db = stage_in(be, ws, 2, b, true, nullptr), dlb = stage_in(be, ws, 3, lb, true, nullptr);
    const View dout = stage_in(be, ws, 4, o, true, nullptr), dlo = stage_in(be, ws, 5, lo, true, nullptr);
    be.merge(da, dla, db, dlb, dout, dlo, nullptr);
    stage_out(be, dout, o, nullptr);
    stage_out(be, dlo, lo, nullptr);
    be.synchronize(nullptr);
  });
}

}  // extern "C"
