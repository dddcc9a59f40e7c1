/*
 * longattn.h — long-context attention for local LLM runtimes. The only public header.
 *
 * Read top to bottom, this header teaches the library:
 *   1. versions, status codes, enums
 *   2. backends and devices
 *   3. contexts (one per thread of work)
 *   4. tensor views (borrowed memory, byte strides)
 *   5. attention descriptors and handles
 *   6. the forward call
 *   7. merging partial results
 *   8. ring mode: one sequence sharded over several devices
 *
 * Quick start (CPU, contiguous f32 tensors, error checks elided):
 *
 *   longattn_context* ctx;
 *   longattn_context_options copt = LONGATTN_CONTEXT_OPTIONS_INIT;
 *   longattn_context_create(&copt, &ctx);
 *
 *   longattn_attention_desc desc = LONGATTN_ATTENTION_DESC_INIT;
 *   desc.n_q_heads = 32; desc.n_kv_heads = 8; desc.head_dim = 128; desc.causal = 1;
 *   longattn_attention* attn;
 *   longattn_attention_create(ctx, &desc, &attn);
 *
 *   longattn_tensor q, k, v, o;
 *   longattn_tensor_contiguous(&q, q_data, LONGATTN_DTYPE_F32, 1, n, 32, 128);
 *   ... k, v (8 heads), o (32 heads) ...
 *   longattn_forward_args args = LONGATTN_FORWARD_ARGS_INIT;
 *   args.q = &q; args.k = &k; args.v = &v; args.out = &o;
 *   longattn_attention_forward(ctx, attn, &args);
 *
 *   longattn_attention_destroy(attn);
 *   longattn_context_destroy(ctx);
 *
 * General rules
 *   - Every fallible function returns longattn_status; LONGATTN_OK is 0. On failure nothing the
 *     caller passed as output is modified, and longattn_context_last_error() says why.
 *   - Nothing aborts, exits or prints. No C++ exception crosses this boundary.
 *   - Structs whose first field is struct_size are extensible: initialise them with their _INIT
 *     macro. The library reads only the bytes struct_size covers and defaults the rest; a larger
 *     struct from a newer header is accepted when its unknown tail is all zero bytes.
 *   - Enum values are fixed forever; new values are only ever appended.
 *   - destroy(NULL) is a no-op for every handle.
 */
#ifndef LONGATTN_H
#define LONGATTN_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(LONGATTN_BUILDING)
#    define LONGATTN_API __declspec(dllexport)
#  else
#    define LONGATTN_API
#  endif
#else
#  define LONGATTN_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * 1. Versions, status codes, enums
 * ------------------------------------------------------------------------------------------- */

#define LONGATTN_VERSION_MAJOR 0
#define LONGATTN_VERSION_MINOR 1
#define LONGATTN_VERSION_PATCH 0
/* MAJOR*10000 + MINOR*100 + PATCH, as a number that compares. */
#define LONGATTN_VERSION_NUMBER \
  (LONGATTN_VERSION_MAJOR * 10000 + LONGATTN_VERSION_MINOR * 100 + LONGATTN_VERSION_PATCH)

/* The version of the library actually linked (compare with LONGATTN_VERSION_NUMBER). */
LONGATTN_API uint32_t longattn_version(void);

/* A static, human-readable string: version, backends and CPU instruction sets compiled in, and the
 * instruction set selected on this machine. Never NULL; valid for the life of the process. */
LONGATTN_API const char* longattn_build_info(void);

typedef int32_t longattn_status;
#define LONGATTN_OK 0
#define LONGATTN_ERROR_INVALID_ARGUMENT 1    /* a value out of range (NaN scale, head_dim 0, ...) */
#define LONGATTN_ERROR_NULL_POINTER 2        /* a required pointer was NULL */
#define LONGATTN_ERROR_SHAPE_MISMATCH 3      /* tensors disagree with the descriptor or each other */
#define LONGATTN_ERROR_BAD_STRIDE 4          /* negative strides, or strides that overlap elements */
#define LONGATTN_ERROR_UNKNOWN_ENUM 5        /* an enum value this library does not know */
#define LONGATTN_ERROR_STRUCT_SIZE 6         /* struct_size too small, or unknown non-zero tail */
#define LONGATTN_ERROR_UNSUPPORTED 7         /* valid request this build/backend cannot do (yet) */
#define LONGATTN_ERROR_BACKEND_UNAVAILABLE 8 /* backend not compiled in, or no device present */
#define LONGATTN_ERROR_OUT_OF_MEMORY 9       /* host or device allocation failed */
#define LONGATTN_ERROR_DEVICE 10             /* the GPU driver/runtime reported an error */
#define LONGATTN_ERROR_INTERNAL 11           /* a bug in longattn; the message says where */

/* A static string naming the status ("LONGATTN_ERROR_SHAPE_MISMATCH: ..."). Any value is accepted;
 * unknown values give "unknown status". Never NULL; valid for the life of the process. */
LONGATTN_API const char* longattn_status_string(longattn_status status);

typedef int32_t longattn_backend;
#define LONGATTN_BACKEND_AUTO 0   /* CUDA if present, else a real Vulkan GPU, else CPU */
#define LONGATTN_BACKEND_CPU 1
#define LONGATTN_BACKEND_CUDA 2
#define LONGATTN_BACKEND_VULKAN 3

typedef int32_t longattn_dtype;
#define LONGATTN_DTYPE_F32 0
#define LONGATTN_DTYPE_F16 1  /* IEEE binary16 */
#define LONGATTN_DTYPE_BF16 2 /* bfloat16 */
/* Block formats of ggml's KV caches, for K and V only (head_dim a multiple of 32). A block holds 32
 * consecutive values of a row: an fp16 scale d, then the quants; value = d * q.
 *   Q8_0: 34 bytes = fp16 d + 32 int8 q
 *   Q4_0: 18 bytes = fp16 d + 16 bytes of nibbles; value j < 16 is (low nibble of byte j) - 8,
 *         value j + 16 is (high nibble of byte j) - 8
 * For these, strides[3] is the byte stride between blocks (ggml's nb[0], normally the block size)
 * and element i of a row lives in block i / 32. */
#define LONGATTN_DTYPE_Q8_0 3
#define LONGATTN_DTYPE_Q4_0 4

typedef int32_t longattn_algorithm;
#define LONGATTN_ALGORITHM_FLASH 0  /* exact attention, tiled online softmax */
#define LONGATTN_ALGORITHM_SPARSE 1 /* exact attention under a band + global-token mask */
#define LONGATTN_ALGORITHM_HYPER 2  /* HyperAttention: LSH blocks + sampled columns (approximate) */

/* Where a tensor's data lives. */
typedef int32_t longattn_memory;
#define LONGATTN_MEMORY_HOST 0   /* ordinary host memory */
#define LONGATTN_MEMORY_DEVICE 1 /* a device pointer of the context's backend (CUDA: from cudaMalloc) */

/* ---------------------------------------------------------------------------------------------
 * 2. Backends and devices
 * ------------------------------------------------------------------------------------------- */

/* 1 when the backend is compiled in and at least one usable device is present, else 0.
 * AUTO and CPU always give 1. Thread safe. */
LONGATTN_API int32_t longattn_backend_available(longattn_backend backend);

/* Number of devices of a backend (CPU: 1; a backend not compiled in or without devices: 0, status
 * OK). For Vulkan this counts every device, CPU-type ones such as lavapipe included. Thread safe. */
LONGATTN_API longattn_status longattn_device_count(longattn_backend backend, int32_t* count);

/* Writes the NUL-terminated name of device `index` into buf (truncated to capacity-1 characters).
 * Returns LONGATTN_ERROR_INVALID_ARGUMENT for an index out of range. Thread safe. */
LONGATTN_API longattn_status longattn_device_name(longattn_backend backend, int32_t index, char* buf,
                                                  size_t capacity);

/* ---------------------------------------------------------------------------------------------
 * 3. Contexts
 *
 * A context binds one backend device, a thread count (CPU) and scratch memory. It is used by one
 * thread at a time; create one per thread that calls longattn concurrently.
 * ------------------------------------------------------------------------------------------- */

typedef struct longattn_context longattn_context;

/* Context flags. */
#define LONGATTN_CONTEXT_FALLBACK_CPU 1u /* an explicit backend that is missing falls back to CPU */

typedef struct longattn_context_options {
  uint32_t struct_size;     /* sizeof(longattn_context_options) */
  longattn_backend backend; /* default AUTO */
  int32_t device_index;     /* device of that backend, default 0 */
  int32_t n_threads;        /* CPU worker threads; 0 = all hardware threads (default) */
  uint32_t flags;           /* LONGATTN_CONTEXT_* bits, default 0 */
  /* Ring mode (section 8): */
  int32_t ring_devices;     /* 0 = one device (default); N >= 1: a ring of N ranks */
  int32_t ring_layout;      /* LONGATTN_RING_LAYOUT_* for whole tensors, default AUTO */
  int32_t ring_transport;   /* LONGATTN_RING_TRANSPORT_*: how ranks exchange blocks, default AUTO */
} longattn_context_options;

#define LONGATTN_CONTEXT_OPTIONS_INIT \
  { (uint32_t)sizeof(longattn_context_options), LONGATTN_BACKEND_AUTO, 0, 0, 0u, 0, 0, 0 }
/* The smallest struct_size accepted (through device_index); later fields take their defaults. */
#define LONGATTN_CONTEXT_OPTIONS_MIN_SIZE offsetof(longattn_context_options, n_threads)

/* Creates a context. options may be NULL (all defaults). On success *out owns a new context that
 * the caller releases with longattn_context_destroy. An explicit backend that is not available
 * returns LONGATTN_ERROR_BACKEND_UNAVAILABLE unless LONGATTN_CONTEXT_FALLBACK_CPU is set.
 * Failure details for a call with no context yet go to longattn_last_create_error(). */
LONGATTN_API longattn_status longattn_context_create(const longattn_context_options* options,
                                                     longattn_context** out);

/* Releases a context and its scratch memory. NULL is a no-op. Every attention handle created from
 * it must be destroyed first. */
LONGATTN_API void longattn_context_destroy(longattn_context* ctx);

/* The backend the context actually runs on (never AUTO). */
LONGATTN_API longattn_backend longattn_context_backend(const longattn_context* ctx);

/* Worker threads the context uses on the CPU backend. */
LONGATTN_API int32_t longattn_context_threads(const longattn_context* ctx);

/* Bytes of scratch memory the context holds between calls (host memory on the CPU backend, device
 * memory on GPU backends). It grows on the first call with a larger shape and is then reused. */
LONGATTN_API size_t longattn_context_scratch_bytes(const longattn_context* ctx);

/* The message of the last failed call on this context ("" when none). The string is owned by the
 * context and valid until the next call that takes this context. NULL ctx gives "". */
LONGATTN_API const char* longattn_context_last_error(const longattn_context* ctx);

/* The message of the last failed longattn_context_create on the calling thread ("" when none).
 * Valid until that thread's next longattn_context_create. */
LONGATTN_API const char* longattn_last_create_error(void);

/* ---------------------------------------------------------------------------------------------
 * 4. Tensor views
 *
 * A tensor is a borrowed view: longattn never frees or keeps `data` after a call returns.
 * shape = {batch, tokens, heads, head_dim}; strides are in BYTES, for each of the four axes, so a
 * view into a larger KV cache (ggml's nb[]) fits directly. Strides must be non-negative and must
 * not make two distinct elements share memory (a stride may be 0 only for an axis of size 1).
 * ------------------------------------------------------------------------------------------- */

typedef struct longattn_tensor {
  void* data;             /* first element; host or device memory as `memory` says */
  longattn_dtype dtype;   /* element type */
  longattn_memory memory; /* LONGATTN_MEMORY_HOST (what _INIT and _contiguous set) or _DEVICE */
  int64_t shape[4];       /* {batch, tokens, heads, head_dim} */
  int64_t strides[4];     /* byte strides for the same axes */
} longattn_tensor;

/* Size in bytes of one element of dtype; for the block formats, of one block of
 * longattn_dtype_block_elems(dtype) values (Q8_0: 34, Q4_0: 18). 0 for an unknown dtype. */
LONGATTN_API size_t longattn_dtype_size(longattn_dtype dtype);

/* Values per block: 32 for Q8_0 / Q4_0, 1 for the float types, 0 for an unknown dtype. */
LONGATTN_API int32_t longattn_dtype_block_elems(longattn_dtype dtype);

/* Fills *t with a contiguous host view of data (row-major [batch][tokens][heads][head_dim]).
 * Returns LONGATTN_ERROR_NULL_POINTER for t == NULL, INVALID_ARGUMENT for a non-positive size and
 * UNKNOWN_ENUM for an unknown dtype (head_dim must be a multiple of 32 for the block formats).
 * data may be NULL (to fill shapes only). */
LONGATTN_API longattn_status longattn_tensor_contiguous(longattn_tensor* t, void* data,
                                                        longattn_dtype dtype, int64_t batch,
                                                        int64_t tokens, int64_t heads,
                                                        int64_t head_dim);

/* ---------------------------------------------------------------------------------------------
 * 5. Attention descriptors and handles
 *
 * Mask semantics (query position qp, key position kp):
 *   causal_ok = !causal || kp <= qp
 *   band      = (window_left  < 0 || qp - kp <= window_left) &&
 *               (window_right < 0 || kp - qp <= window_right)
 *   global    = kp < n_global || qp < n_global
 *   allowed   = causal_ok && (band || global)
 * FLASH uses causal only (windows must be -1 and n_global 0); SPARSE uses the whole predicate.
 * Rows with no allowed key produce O = 0 and LSE = -inf.
 * Mapping: llama.cpp/Mistral n_swa => causal, window_left = n_swa - 1; ModernBERT local =>
 * non-causal, window 64/64; StreamingLLM => causal, window W - 1, n_global = 4.
 * ------------------------------------------------------------------------------------------- */

typedef struct longattn_attention longattn_attention;

typedef struct longattn_attention_desc {
  uint32_t struct_size;         /* sizeof(longattn_attention_desc) */
  longattn_algorithm algorithm; /* default FLASH */
  int32_t n_q_heads;            /* query heads, >= 1 (required) */
  int32_t n_kv_heads;           /* key/value heads, divides n_q_heads; 0 = n_q_heads */
  int32_t head_dim;             /* Q/K head dimension, 1..256 (required) */
  int32_t head_dim_v;           /* V/O head dimension, 1..256; 0 = head_dim */
  float scale;                  /* logit scale; 0 = 1/sqrt(head_dim) */
  float softcap;                /* > 0: logits become softcap*tanh(logit/softcap); 0 = off */
  int32_t causal;               /* 0 or 1 */
  int32_t window_left;          /* SPARSE: keys at most this far behind; -1 = unlimited */
  int32_t window_right;         /* SPARSE: keys at most this far ahead; -1 = unlimited */
  int32_t n_global;             /* SPARSE/HYPER: the first n_global tokens are global; >= 0 */
  /* HyperAttention (see docs/ALGORITHMS.md); 0 selects the default in brackets */
  int32_t hyper_block_size;     /* keys per sorted block [256] */
  int32_t hyper_sample_size;    /* sampled key columns per (batch, kv head) [256] */
  int32_t hyper_lsh_bits;       /* hyperplanes per LSH code, 1..16 [8] */
  int32_t hyper_min_seq_len;    /* exact attention below this length [4096] */
  uint64_t seed;                /* seed of every random choice (HYPER) */
  /* ALiBi as ggml defines it (0 = off): head h gets slope m_h from max_bias (m0 = 2^(-max_bias/n),
   * m1 = 2^(-max_bias/2n), n = the largest power of two <= n_q_heads; m_h = m0^(h+1) for h < n,
   * else m1^(2(h-n)+1)). With an additive mask the logit gets m_h * mask (ggml's convention, where
   * the runtime writes -|i-j| into the mask); without one it gets -m_h * |qp - kp| (the paper's).
   * FLASH and SPARSE. */
  float max_bias;
  uint32_t reserved0;           /* must be 0 (keeps the struct free of padding) */
} longattn_attention_desc;

#define LONGATTN_ATTENTION_DESC_INIT                                                             \
  { (uint32_t)sizeof(longattn_attention_desc), LONGATTN_ALGORITHM_FLASH, 0, 0, 0, 0, 0.0f, 0.0f, \
    0, -1, -1, 0, 0, 0, 0, 0, 0u, 0.0f, 0u }
/* The smallest struct_size accepted (through n_global); the HyperAttention fields then default. */
#define LONGATTN_ATTENTION_DESC_MIN_SIZE offsetof(longattn_attention_desc, hyper_block_size)

/* Validates desc against the context's backend and creates an immutable attention handle. The
 * handle may be used from several threads at once, each with its own context of the same backend.
 * Destroy it before the context it was created from. */
LONGATTN_API longattn_status longattn_attention_create(longattn_context* ctx,
                                                       const longattn_attention_desc* desc,
                                                       longattn_attention** out);

/* Releases the handle. NULL is a no-op. */
LONGATTN_API void longattn_attention_destroy(longattn_attention* attn);

/* ---------------------------------------------------------------------------------------------
 * 6. The forward call
 *
 *   q   [batch, n_q, n_q_heads,  head_dim]     f32 / f16 / bf16
 *   k   [batch, n_k, n_kv_heads, head_dim]     f32 / f16 / bf16 / q8_0 / q4_0 (may differ from q)
 *   v   [batch, n_k, n_kv_heads, head_dim_v]   f32 / f16 / bf16 / q8_0 / q4_0
 *   out [batch, n_q, n_q_heads,  head_dim_v]   f32 / f16 / bf16 (written)
 *   lse [batch, n_q, n_q_heads,  1]            f32, optional (written): natural-log sum of
 *                                              exp(logits) of the row, -inf for an empty row
 * Query i has position q_pos0 + i, key j has position j. The default q_pos0 (bottom-right
 * alignment) is n_k - n_q: the queries are the last n_q tokens of the sequence, as in decode.
 * out must not overlap q, k or v. Inputs with Inf/NaN give NaN in the affected rows only.
 * ------------------------------------------------------------------------------------------- */

#define LONGATTN_Q_POS_BOTTOM_RIGHT INT64_MIN

typedef struct longattn_forward_args {
  uint32_t struct_size;     /* sizeof(longattn_forward_args) */
  uint32_t reserved0;       /* must be 0 */
  const longattn_tensor* q; /* required */
  const longattn_tensor* k; /* required */
  const longattn_tensor* v; /* required */
  const longattn_tensor* out; /* required; the view is read, the memory it points to written */
  const longattn_tensor* lse; /* optional (NULL) */
  int64_t q_pos0;           /* position of query 0; default LONGATTN_Q_POS_BOTTOM_RIGHT */
  void* stream;             /* CUDA: a cudaStream_t to run on (NULL = the context's stream) */
  /* Optional additive mask added to the logits before the softmax (-inf masks), f16 or f32,
   * shape {batch or 1, n_q, 1 or n_q_heads, n_k}: a size-1 axis broadcasts. This is ggml's KQ mask
   * (causality, padding, several sequences in one batch). Key tiles whose mask is all -inf are
   * skipped. Combined with the descriptor's causal flag (both apply). FLASH and SPARSE. */
  const longattn_tensor* mask;
  /* Optional ALiBi slopes, one per query head (host memory, n_q_heads floats); overrides the
   * descriptor's max_bias. */
  const float* alibi_slopes;
  /* Optional attention sinks (gpt-oss): one logit per query head (host memory, n_q_heads floats)
   * added to every row's softmax denominator: o = Σ_j e^{s_j} v_j / (e^{sink_h} + Σ_j e^{s_j}).
   * The LSE includes the sink. A −inf sink adds nothing; NaN or +inf gives
   * LONGATTN_ERROR_INVALID_ARGUMENT. */
  const float* sinks;
} longattn_forward_args;

#define LONGATTN_FORWARD_ARGS_INIT \
  { (uint32_t)sizeof(longattn_forward_args), 0u, NULL, NULL, NULL, NULL, NULL, \
    LONGATTN_Q_POS_BOTTOM_RIGHT, NULL, NULL, NULL, NULL }
/* The smallest struct_size accepted (through out); lse, q_pos0 and stream then default. */
#define LONGATTN_FORWARD_ARGS_MIN_SIZE offsetof(longattn_forward_args, lse)

/* Computes attention. ctx must be of the backend attn was created with. On the CPU backend the
 * call runs on the context's threads and returns when done; it allocates only on the first call
 * with a larger shape (scratch is kept by the context). */
LONGATTN_API longattn_status longattn_attention_forward(longattn_context* ctx,
                                                        const longattn_attention* attn,
                                                        const longattn_forward_args* args);

/* ---------------------------------------------------------------------------------------------
 * 7. Merging partial results
 *
 * Attention over keys K1 ∪ K2 equals the merge of attention over K1 and over K2 (same queries):
 *   L = logaddexp(L1, L2);  O = exp(L1 - L)·O1 + exp(L2 - L)·O2
 * computed in fp32; a row with L1 = L2 = -inf gives O = 0, L = -inf. This is how split-KV decode,
 * block-sparse passes and sharded KV caches combine.
 *   o_a, o_b, o_out      [batch, n_q, heads, head_dim_v]   f32 / f16 / bf16, all the same shape
 *   lse_a, lse_b, lse_out [batch, n_q, heads, 1]           f32
 * o_out/lse_out may be the same views as o_a/lse_a (in-place merge). Host memory on the CPU
 * backend.
 * ------------------------------------------------------------------------------------------- */
LONGATTN_API longattn_status longattn_merge(longattn_context* ctx, const longattn_tensor* o_a,
                                            const longattn_tensor* lse_a,
                                            const longattn_tensor* o_b,
                                            const longattn_tensor* lse_b,
                                            const longattn_tensor* o_out,
                                            const longattn_tensor* lse_out);

/* ---------------------------------------------------------------------------------------------
 * 8. Ring mode: one sequence sharded over several devices
 *
 * A context created with options.ring_devices = N >= 1 drives N ranks of one backend:
 *   CUDA    devices device_index … device_index + N - 1, or N virtual ranks on device_index with
 *           LONGATTN_CONTEXT_RING_VIRTUAL (device-to-device copies on one GPU); blocks move by
 *           peer copies, pinned-host staging or NCCL (options.ring_transport, below);
 *   CPU     N virtual devices: separate buffers, max(1, n_threads / N) threads each, run
 *           concurrently;
 *   Vulkan  devices (or virtual ranks) as for CUDA, with transfers staged through host memory.
 * The sequence is cut into N shards. Each rank keeps its queries; K/V blocks travel around the
 * ring while every rank attends to the block it holds (Ring Attention). The fp32 softmax state
 * is carried across steps, so the result is exact attention with its LSE, whatever N is. Only
 * the n_kv_heads heads travel. With SPARSE, steps a window rules out are skipped together with
 * their transfers (a halo exchange plus the global prefix).
 *
 * longattn_attention_forward on a ring context takes whole host tensors: the library cuts them
 * into shards (options.ring_layout), runs the ring and gathers out and lse. When the queries are
 * few (16 * n_q <= n_k: decode, or a short chunk over a long cache) the K/V shards stay in place
 * instead: every rank attends the queries to its shard and the partial (O, LSE) are merged.
 * longattn_attention_forward_sharded takes shard tensors already resident on each rank.
 *
 * FLASH and SPARSE. HYPER, the additive mask, ALiBi, sinks and Q8_0/Q4_0 K/V return
 * LONGATTN_ERROR_UNSUPPORTED on a ring context. ring_devices = 1 runs the ring schedule on one
 * rank (the same results as a plain context, bit for bit on the CPU).
 * ------------------------------------------------------------------------------------------- */

/* Context flag: all ring ranks on device_index (N virtual ranks on one GPU). No effect on the
 * CPU, whose ranks are always virtual. */
#define LONGATTN_CONTEXT_RING_VIRTUAL 2u

/* How the ranks of a ring context exchange K/V blocks and decode partials
 * (options.ring_transport; a value other than AUTO needs ring_devices >= 1, else
 * LONGATTN_ERROR_INVALID_ARGUMENT). The transport is set up when the context is created and kept
 * for its life. On CUDA every transport runs asynchronously on a copy stream per rank, ordered by
 * events, overlapping the attention of the current step; nothing waits on the host.
 *   AUTO         CUDA: PEER when all ranks are on one device or every pair of the ring's devices
 *                has peer access (cudaDeviceCanAccessPeer), else HOST_STAGED for the pairs that
 *                lack it and peer copies for the others. CPU and Vulkan: HOST_STAGED.
 *   PEER         CUDA only: copy-engine copies, cudaMemcpyPeerAsync after
 *                cudaDeviceEnablePeerAccess (device-to-device copies between virtual ranks);
 *                between devices without peer access the CUDA driver stages the copy itself.
 *   HOST_STAGED  CUDA: every send goes device -> pinned host buffer -> peer device, in chunks
 *                through two pinned buffers per pair of ranks that exchange (up to 4 MiB each,
 *                allocated on the pair's first send and reused; owned by the context). Also
 *                works between virtual ranks on one GPU. CPU and Vulkan: their host transport
 *                (the only one they have).
 *   NCCL         CUDA only: grouped ncclSend/ncclRecv over a communicator from ncclCommInitAll
 *                (one NCCL rank per ring rank, all driven by this process; NCCL's copies use
 *                SMs). NCCL 2.7 or newer is loaded at run time (dlopen of "libnccl.so.2", or the
 *                path in the environment variable LONGATTN_NCCL_LIBRARY); without it context
 *                creation fails with LONGATTN_ERROR_BACKEND_UNAVAILABLE. NCCL refuses two ranks on
 *                one GPU, so NCCL with LONGATTN_CONTEXT_RING_VIRTUAL and ring_devices >= 2 fails
 *                with LONGATTN_ERROR_UNSUPPORTED (the message carries NCCL's).
 * PEER and NCCL on a CPU or Vulkan context give LONGATTN_ERROR_UNSUPPORTED; an unknown value gives
 * LONGATTN_ERROR_UNKNOWN_ENUM. */
typedef int32_t longattn_ring_transport;
#define LONGATTN_RING_TRANSPORT_AUTO 0
#define LONGATTN_RING_TRANSPORT_PEER 1
#define LONGATTN_RING_TRANSPORT_HOST_STAGED 2
#define LONGATTN_RING_TRANSPORT_NCCL 3

/* Which tokens of an n-token sequence rank r of N holds. Integer division throughout, so any n
 * works (shards differ by at most one token per chunk; some are empty when n < N or 2N). */
typedef int32_t longattn_ring_layout;
#define LONGATTN_RING_LAYOUT_AUTO 0       /* whole tensors: ZIGZAG for causal attention without a */
                                          /* left window, else CONTIGUOUS */
#define LONGATTN_RING_LAYOUT_CONTIGUOUS 1 /* rank r holds tokens [r*n/N, (r+1)*n/N) */
#define LONGATTN_RING_LAYOUT_ZIGZAG 2     /* 2N chunks [c*n/(2N), (c+1)*n/(2N)); rank r holds */
                                          /* chunk r, then chunk 2N-1-r (balances causal work) */

/* The tokens rank `rank` holds under `layout` (CONTIGUOUS or ZIGZAG): first[i], count[i] for its
 * two segments, in the order its shard stores them (count[1] = 0 for CONTIGUOUS). Thread safe. */
LONGATTN_API longattn_status longattn_ring_shard(longattn_ring_layout layout, int64_t n_tokens,
                                                 int32_t n_shards, int32_t rank, int64_t first[2],
                                                 int64_t count[2]);

/* Ranks of a ring context (0 for a context created without ring_devices). */
LONGATTN_API int32_t longattn_context_ring_devices(const longattn_context* ctx);

/* The transport a ring context uses (AUTO resolved: PEER, HOST_STAGED or NCCL); AUTO (0) for a
 * context without ring_devices or NULL. */
LONGATTN_API longattn_ring_transport longattn_context_ring_transport(const longattn_context* ctx);

/* Bytes of scratch rank `rank` holds (its own device memory; 0 for a rank out of range). For a
 * ring context, longattn_context_scratch_bytes reports rank 0. */
LONGATTN_API size_t longattn_context_rank_scratch_bytes(const longattn_context* ctx, int32_t rank);

/* What each shard's query tensor holds. */
typedef int32_t longattn_shard_queries;
#define LONGATTN_SHARD_QUERIES_LOCAL 0      /* rank r's queries are its own tokens (prefill): ring */
#define LONGATTN_SHARD_QUERIES_REPLICATED 1 /* every rank holds the same query rows (decode over a */
                                            /* sharded KV cache): partials merged, no ring */

/* Per-rank shard tensors. q, k, v, out and lse point to arrays of n_shards tensors; element r
 * lives on rank r (CPU: host memory; GPU backends: LONGATTN_MEMORY_DEVICE memory of rank r's
 * device). Shapes as in section 6 with n_q / n_k the shard's rows; batch and dtypes agree.
 *   Keys: shard r of k/v holds the tokens `layout` gives it: CONTIGUOUS accepts any lengths
 *   (shard r starts where shard r-1 ends); ZIGZAG needs the lengths longattn_ring_shard gives for
 *   n = the sum of the shards' lengths. K and V must be token-major (a token's heads and dims lie
 *   within strides[1], as in llama.cpp/ggml KV caches).
 *   LOCAL: q[r] and out[r] have the rows and positions of k[r].
 *   REPLICATED: every q[r] holds the same n_q rows at positions q_pos0 …; the merged result is
 *   written to every out[r] (and lse[r]).
 * The call returns when every output is written. It reads the inputs at once: work that produces
 * them must be complete. */
typedef struct longattn_sharded_args {
  uint32_t struct_size;           /* sizeof(longattn_sharded_args) */
  int32_t n_shards;               /* must equal longattn_context_ring_devices(ctx) */
  longattn_ring_layout layout;    /* CONTIGUOUS (default) or ZIGZAG */
  longattn_shard_queries queries; /* default LOCAL */
  const longattn_tensor* q;       /* [n_shards], required */
  const longattn_tensor* k;       /* [n_shards], required */
  const longattn_tensor* v;       /* [n_shards], required */
  const longattn_tensor* out;     /* [n_shards], required */
  const longattn_tensor* lse;     /* [n_shards] or NULL */
  int64_t q_pos0;                 /* REPLICATED: position of query 0; default bottom-right */
                                  /* (LONGATTN_Q_POS_BOTTOM_RIGHT: n - n_q) */
} longattn_sharded_args;

#define LONGATTN_SHARDED_ARGS_INIT                                                            \
  { (uint32_t)sizeof(longattn_sharded_args), 0, LONGATTN_RING_LAYOUT_CONTIGUOUS,              \
    LONGATTN_SHARD_QUERIES_LOCAL, NULL, NULL, NULL, NULL, NULL, LONGATTN_Q_POS_BOTTOM_RIGHT }
/* The smallest struct_size accepted (through lse). */
#define LONGATTN_SHARDED_ARGS_MIN_SIZE offsetof(longattn_sharded_args, q_pos0)

/* Attention over a sequence sharded across the ranks of a ring context (see above). ctx must be
 * a ring context of attn's backend. */
LONGATTN_API longattn_status longattn_attention_forward_sharded(longattn_context* ctx,
                                                                const longattn_attention* attn,
                                                                const longattn_sharded_args* args);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LONGATTN_H */
