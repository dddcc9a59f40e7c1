/*
 * longattn_ggml.h — header-only adapter from ggml's flash-attention op to longattn.
 *
 * A ggml-style runtime calls
 *     ggml_flash_attn_ext(q, k, v, mask, scale, max_bias, logit_softcap)  (+ sinks for gpt-oss)
 * with tensors described by ne[4] (elements, innermost first) and nb[4] (byte strides). This adapter
 * takes the same description and runs the op through longattn, reading K/V (f16, bf16, f32, q8_0,
 * q4_0) straight from the runtime's cache and writing the result through its strides:
 *
 *   q    ne = [D,  n_q,  H,    B]       f32 / f16 / bf16
 *   k    ne = [D,  n_kv, H_kv, B]       f16 / bf16 / f32 / q8_0 / q4_0 (nb[0] = block size)
 *   v    ne = [Dv, n_kv, H_kv, B]       same types as k
 *   mask ne = [n_kv, n_q_pad >= n_q, 1 | H, 1 | B]   f16 / f32, additive, -inf masks (may be NULL)
 *   dst  ne = [Dv, H, n_q, B]           f32 / f16 / bf16 (ggml's permuted result)
 *
 * Causality, padding and several sequences per batch live in the mask, as in ggml; ALiBi scales the
 * mask by each head's slope (ggml's convention). Usage:
 *
 *   longattn_ggml_tensor q = { q_data, LONGATTN_GGML_TYPE_F32, {D, n, H, 1}, {4, 4*D, 4*D*n, 4*D*n*H} };
 *   ... k, v, mask, dst ...
 *   longattn_status st = longattn_ggml_flash_attn_ext(ctx, &q, &k, &v, &mask, scale, 0.0f, 0.0f, NULL, &dst);
 */
#ifndef LONGATTN_GGML_H
#define LONGATTN_GGML_H

#include <longattn.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ggml's type ids for the types longattn reads. */
enum {
  LONGATTN_GGML_TYPE_F32 = 0,
  LONGATTN_GGML_TYPE_F16 = 1,
  LONGATTN_GGML_TYPE_Q4_0 = 2,
  LONGATTN_GGML_TYPE_Q8_0 = 8,
  LONGATTN_GGML_TYPE_BF16 = 30
};

typedef struct longattn_ggml_tensor {
  void* data;
  int type;          /* LONGATTN_GGML_TYPE_* */
  int64_t ne[4];     /* elements per axis, innermost first */
  size_t nb[4];      /* byte strides per axis */
} longattn_ggml_tensor;

/* ggml type id → longattn dtype (-1 for a type longattn does not read). */
static inline longattn_dtype longattn_ggml_dtype(int type) {
  switch (type) {
    case LONGATTN_GGML_TYPE_F32: return LONGATTN_DTYPE_F32;
    case LONGATTN_GGML_TYPE_F16: return LONGATTN_DTYPE_F16;
    case LONGATTN_GGML_TYPE_BF16: return LONGATTN_DTYPE_BF16;
    case LONGATTN_GGML_TYPE_Q8_0: return LONGATTN_DTYPE_Q8_0;
    case LONGATTN_GGML_TYPE_Q4_0: return LONGATTN_DTYPE_Q4_0;
    default: return -1;
  }
}

/* A longattn view {batch, tokens, heads, dim} of a ggml tensor whose axes (innermost first) are
 * dim = axis 0, tokens = axis `tok`, heads = axis `head`, batch = axis 3. */
static inline longattn_tensor longattn_ggml_view(const longattn_ggml_tensor* t, int tok, int head) {
  longattn_tensor v;
  v.data = t->data;
  v.dtype = longattn_ggml_dtype(t->type);
  v.memory = LONGATTN_MEMORY_HOST;
  v.shape[0] = t->ne[3]; v.strides[0] = (int64_t)t->nb[3];
  v.shape[1] = t->ne[tok]; v.strides[1] = (int64_t)t->nb[tok];
  v.shape[2] = t->ne[head]; v.strides[2] = (int64_t)t->nb[head];
  v.shape[3] = t->ne[0]; v.strides[3] = (int64_t)t->nb[0];
  return v;
}

/* Runs ggml_flash_attn_ext's math: dst = softmax(scale·q·kᵀ (softcapped) + slope·mask + sinks)·v.
 * Returns longattn's status; ctx's last error explains a failure. Creates a short-lived attention
 * handle per call (cheap: it only holds the validated descriptor). */
static inline longattn_status longattn_ggml_flash_attn_ext(longattn_context* ctx, const longattn_ggml_tensor* q,
                                                           const longattn_ggml_tensor* k, const longattn_ggml_tensor* v,
                                                           const longattn_ggml_tensor* mask, float scale,
                                                           float max_bias, float logit_softcap, const float* sinks,
                                                           const longattn_ggml_tensor* dst) {
  longattn_attention_desc desc = LONGATTN_ATTENTION_DESC_INIT;
  desc.n_q_heads = (int32_t)q->ne[2];
  desc.n_kv_heads = (int32_t)k->ne[2];
  desc.head_dim = (int32_t)q->ne[0];
  desc.head_dim_v = (int32_t)v->ne[0];
  desc.scale = scale;
  desc.softcap = logit_softcap;
  desc.max_bias = max_bias;
  longattn_attention* attn = NULL;
  longattn_status st = longattn_attention_create(ctx, &desc, &attn);
  if (st != LONGATTN_OK) return st;

  const longattn_tensor tq = longattn_ggml_view(q, 1, 2);
  const longattn_tensor tk = longattn_ggml_view(k, 1, 2);
  const longattn_tensor tv = longattn_ggml_view(v, 1, 2);
  const longattn_tensor to = longattn_ggml_view(dst, 2, 1); /* dst is [Dv, H, n_q, B] */
  longattn_tensor tm;
  longattn_forward_args args = LONGATTN_FORWARD_ARGS_INIT;
  if (mask) {
    tm = longattn_ggml_view(mask, 1, 2);
    tm.shape[1] = q->ne[1]; /* ggml pads the mask's rows; the first n_q are used */
    tm.shape[3] = mask->ne[0];
    args.mask = &tm;
  }
  args.q = &tq; args.k = &tk; args.v = &tv; args.out = &to;
  args.sinks = sinks;
  args.q_pos0 = 0; /* positions only matter through the mask here */
  st = longattn_attention_forward(ctx, attn, &args);
  longattn_attention_destroy(attn);
  return st;
}

#ifdef __cplusplus
}
#endif

#endif /* LONGATTN_GGML_H */
