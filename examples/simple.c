/* The README's example: causal GQA attention over a 4096-token context on the best backend. */
#include <longattn.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  enum { N = 4096, HQ = 32, HKV = 8, D = 128 };
  float* q = malloc(sizeof(float) * N * HQ * D);
  float* k = malloc(sizeof(float) * N * HKV * D);
  float* v = malloc(sizeof(float) * N * HKV * D);
  float* o = malloc(sizeof(float) * N * HQ * D);
  for (long i = 0; i < (long)N * HQ * D; ++i) q[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
  for (long i = 0; i < (long)N * HKV * D; ++i) k[i] = v[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;

  longattn_context* ctx;
  if (longattn_context_create(NULL, &ctx) != LONGATTN_OK) return 1; /* AUTO: CUDA, Vulkan or CPU */
  longattn_attention_desc desc = LONGATTN_ATTENTION_DESC_INIT;
  desc.n_q_heads = HQ; desc.n_kv_heads = HKV; desc.head_dim = D; desc.causal = 1;
  longattn_attention* attn;
  if (longattn_attention_create(ctx, &desc, &attn) != LONGATTN_OK) return 1;

  longattn_tensor tq, tk, tv, to;
  longattn_tensor_contiguous(&tq, q, LONGATTN_DTYPE_F32, 1, N, HQ, D);
  longattn_tensor_contiguous(&tk, k, LONGATTN_DTYPE_F32, 1, N, HKV, D);
  longattn_tensor_contiguous(&tv, v, LONGATTN_DTYPE_F32, 1, N, HKV, D);
  longattn_tensor_contiguous(&to, o, LONGATTN_DTYPE_F32, 1, N, HQ, D);
  longattn_forward_args args = LONGATTN_FORWARD_ARGS_INIT;
  args.q = &tq; args.k = &tk; args.v = &tv; args.out = &to;
  if (longattn_attention_forward(ctx, attn, &args) != LONGATTN_OK) {
    fprintf(stderr, "%s\n", longattn_context_last_error(ctx));
    return 1;
  }
  printf("o[0] = %f, o[last] = %f\n", o[0], o[(long)N * HQ * D - 1]);

  longattn_attention_destroy(attn);
  longattn_context_destroy(ctx);
  free(q); free(k); free(v); free(o);
  return 0;
}
