/* Smallest real use of the installed library: one decode step, checked by hand. */
#include <longattn.h>
#include <math.h>
#include <stdio.h>

int main(void) {
  float q[4] = {1, 0, 0, 0}, k[2 * 4] = {1, 0, 0, 0, 0, 1, 0, 0}, v[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8}, o[4];
  longattn_context* ctx = NULL;
  longattn_attention* attn = NULL;
  longattn_context_options copt = LONGATTN_CONTEXT_OPTIONS_INIT;
  copt.backend = LONGATTN_BACKEND_CPU;
  if (longattn_context_create(&copt, &ctx) != LONGATTN_OK) return 1;
  longattn_attention_desc desc = LONGATTN_ATTENTION_DESC_INIT;
  desc.n_q_heads = 1;
  desc.head_dim = 4;
  desc.scale = 1.0f;
  if (longattn_attention_create(ctx, &desc, &attn) != LONGATTN_OK) return 2;
  longattn_tensor tq, tk, tv, to;
  longattn_tensor_contiguous(&tq, q, LONGATTN_DTYPE_F32, 1, 1, 1, 4);
  longattn_tensor_contiguous(&tk, k, LONGATTN_DTYPE_F32, 1, 2, 1, 4);
  longattn_tensor_contiguous(&tv, v, LONGATTN_DTYPE_F32, 1, 2, 1, 4);
  longattn_tensor_contiguous(&to, o, LONGATTN_DTYPE_F32, 1, 1, 1, 4);
  longattn_forward_args args = LONGATTN_FORWARD_ARGS_INIT;
  args.q = &tq; args.k = &tk; args.v = &tv; args.out = &to;
  if (longattn_attention_forward(ctx, attn, &args) != LONGATTN_OK) return 3;
  /* weights e/(e+1) and 1/(e+1) */
  const double w = exp(1.0) / (exp(1.0) + 1.0);
  for (int c = 0; c < 4; ++c) {
    const double want = w * v[c] + (1 - w) * v[4 + c];
    if (fabs(o[c] - want) > 1e-5) { printf("o[%d]=%f want %f\n", c, o[c], want); return 4; }
  }
  longattn_attention_destroy(attn);
  longattn_context_destroy(ctx);
  printf("consumer ok: %s\n", longattn_build_info());
  return 0;
}
