// The primitive interface every backend implements (see DESIGN.md, "The one idea").
//
// Algorithms (flash, sparse, hyper, ring) are written once in src/ as schedules of these calls;
// a backend never sees which algorithm it serves. All pointers here are in the backend's memory
// space (host for CPU, device for CUDA/Vulkan) unless a comment says otherwise. Core code has
// validated every argument before a primitive is called: primitives assume valid input and report
// only runtime failures (out of memory, device errors) by throwing longattn::Error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "longattn.h"
#include "mask.hpp"

namespace longattn {

// A strided 4-D view {batch, tokens, heads, dim} with byte strides, in backend memory.
struct View {
  void* data = nullptr;
  longattn_dtype dtype = LONGATTN_DTYPE_F32;
  int64_t shape[4] = {0, 0, 0, 0};
  int64_t strides[4] = {0, 0, 0, 0};  // bytes

  template <class T>
  T* at(int64_t b, int64_t t, int64_t h, int64_t d = 0) const {
    return reinterpret_cast<T*>(static_cast<char*>(data) + b * strides[0] + t * strides[1] +
                                h * strides[2] + d * strides[3]);
  }
};

// fp32 running softmax state of a set of query rows, carried between attend calls (ring steps):
//   m   [batch][heads][rows]        running max of the logits, in log2 units (scaled logit·log2e)
//   l   [batch][heads][rows]        running sum of exp2(logit·log2e − m)
//   acc [batch][heads][rows][dv]    running Σ exp2(logit·log2e − m)·v  (not yet divided by l)
// A fresh state is m = −inf, l = 0, acc = 0 (see Backend::state_init).
struct RunningState {
  float* m = nullptr;
  float* l = nullptr;
  float* acc = nullptr;
};

// One `attend` call: for every batch b and query head h (KV head h / (hq / hkv)), the logical
// query rows i ∈ [0, n_q) attend to the logical key rows j ∈ [0, n_k):
//
//   logit(i, j) = softcap(scale · q_i · k_j) + key_logw[j]     (key_logw optional, natural log)
//   allowed(i, j) = mask.allows(qpos(i), kpos(j))
//                   && segment(i) pairs with j (when segments are given: j in the segment's
//                      key range or among the shared tail keys)
//                   && !(q_group[i] >= 0 && q_group[i] == k_group[j]) (when groups are given)
//   o_i = Σ_j softmax_j(logit) v_j over allowed j;  lse_i = log Σ_j exp(logit) over allowed j
//
// Row gathers: logical query row i reads physical row q_rows[i] of q and writes physical row
// q_rows[i] of out / lse / state; logical key j reads physical row k_rows[j] of k and v.
// Positions follow physical rows: qpos(i) = q_pos ? q_pos[phys] : q_pos0 + phys, same for keys.
struct AttendArgs {
  int64_t batch = 0, n_q = 0, n_k = 0;  // logical row counts
  int32_t n_q_heads = 0, n_kv_heads = 0, head_dim = 0, head_dim_v = 0;
  View q, k, v;  // physical tensors; q has n_q_heads, k and v have n_kv_heads

  float scale = 1.0f;    // logit scale
  float softcap = 0.0f;  // 0 = off
  Mask mask;             // causal, windows, n_global on positions

  int64_t q_pos0 = 0, k_pos0 = 0;     // position of physical row 0
  const int64_t* q_pos = nullptr;     // optional [phys q row] explicit positions (host memory on
  const int64_t* k_pos = nullptr;     //   CPU, device memory on GPUs); shared by batch and heads

  // Optional row gathers. Indexed [(b * heads + h) * rows + i]: per (batch, head) permutations,
  // q_rows per query head, k_rows per KV head. Entries are physical row indices.
  const int32_t* q_rows = nullptr;
  const int32_t* k_rows = nullptr;

  // Optional additive natural-log weight per logical key column, [(b * hkv + h) * n_k + j].
  const float* key_logw = nullptr;
  // Optional exclusion groups: q_group [(b * hq + h) * n_q + i], k_group [(b * hkv + h) * n_k + j].
  const int32_t* q_group = nullptr;
  const int32_t* k_group = nullptr;

  // Optional segments (block-diagonal structure), shared by all (batch, head): n_segments + 1
  // offsets each; logical query rows [q_seg[s], q_seg[s+1]) attend only to logical keys
  // [k_seg[s], k_seg[s+1]). Host memory on every backend.
  int32_t n_segments = 0;
  const int64_t* q_seg = nullptr;
  const int64_t* k_seg = nullptr;
  // Optional keys shared by every segment (backends that report supports_tail_keys(); needs
  // segments, tail_k_rows, and k_rows unless every key is a tail key): logical keys [n_own, n_k),
  // n_own = n_k − n_tail_keys, pair with every segment besides its own keys, which lie below
  // n_own. The tail is a key set of its own: its gathers, log-weights and groups are indexed
  // [(b * hkv + h) * n_tail_keys + (j − n_own)], while k_rows, key_logw and k_group then describe
  // the own keys only, [(b * hkv + h) * n_own + j]. HyperAttention's blocks and samples in one
  // call: segment β = sorted block β (k_rows = π_K), the tail = the samples with their
  // log-weights and groups.
  int64_t n_tail_keys = 0;
  const int32_t* tail_k_rows = nullptr;
  const float* tail_key_logw = nullptr;
  const int32_t* tail_k_group = nullptr;

  // ggml-style extras (backends that report supports_extras()):
  //   add_mask      optional additive mask {batch|1, phys q rows, 1|hq, phys k rows}, f16/f32; −inf
  //                 masks; key tiles whose mask is all −inf are skipped
  //   alibi_slopes  optional per-query-head slope m_h: the logit gets m_h·mask when add_mask is
  //                 set, else −m_h·|qpos − kpos|
  //   sinks         optional per-query-head logit added to every row's softmax denominator
  //                 (applied when out/lse are written, not to a running state)
  // K and V may also be in the block formats Q8_0 / Q4_0 (strides[3] = bytes between blocks).
  View add_mask;
  const float* alibi_slopes = nullptr;
  const float* sinks = nullptr;

  // Output: either (out, lse) or a running state.
  View out;                    // [batch, n_q phys, hq, dv], any float dtype; unused with state
  View lse;                    // optional (data == nullptr: not wanted), f32 [batch, n_q, hq, 1]
  RunningState* state = nullptr;  // when set: fold this call into the state, write no out/lse

  // Backend-specific stream (CUDA cudaStream_t), or nullptr.
  void* stream = nullptr;
};

// The shared tail keys a call has: n_tail_keys, which count only with segments.
inline int64_t shared_tail_keys(const AttendArgs& a) { return a.n_segments > 0 ? a.n_tail_keys : 0; }

// The set of primitives. One instance per context.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual longattn_backend kind() const = 0;
  virtual std::string device_name() const = 0;

  // ---- memory (backend memory space) ----
  virtual void* alloc(size_t bytes) = 0;  // throws Error(OUT_OF_MEMORY) on failure
  virtual void free(void* p) = 0;
  // upload: src_host may be reused as soon as the call returns (the copy is ordered on stream).
  // download: returns when the bytes are in dst_host.
  virtual void upload(void* dst, const void* src_host, size_t bytes, void* stream) = 0;
  virtual void download(void* dst_host, const void* src, size_t bytes, void* stream) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes, void* stream) = 0;
  virtual void synchronize(void* stream) = 0;
  // Whether attend implements the ggml-style extras (mask, ALiBi, sinks, Q8_0/Q4_0 K/V).
  virtual bool supports_extras() const { return false; }
  // Whether attend implements AttendArgs::n_tail_keys.
  virtual bool supports_tail_keys() const { return false; }
  // Bytes of scratch the backend itself holds between calls (kernel pools, not the workspace).
  virtual size_t scratch_bytes() const { return 0; }

  // ---- attention ----
  virtual void attend(const AttendArgs& a) = 0;

  // Sets a running state of rows × dv per (batch, head) to m = −inf, l = 0, acc = 0.
  virtual void state_init(RunningState& s, int64_t batch, int32_t heads, int64_t rows,
                          int32_t dv, void* stream) = 0;
  // out = acc / l, lse = (m + log2(l)) · ln 2 (−inf and out = 0 when l = 0).
  virtual void state_finish(const RunningState& s, int64_t batch, int32_t heads, int64_t rows,
                            int32_t dv, const View& out, const View& lse, void* stream) = 0;

  // (out, lse_out) = merge((a, lse_a), (b, lse_b)), fp32 math, −inf safe; out may alias a.
  // All O views share shape {batch, rows, heads, dv}; LSE views are f32 {batch, rows, heads, 1}.
  virtual void merge(const View& a, const View& lse_a, const View& b, const View& lse_b,
                     const View& out, const View& lse_out, void* stream) = 0;

  // ---- LSH (HyperAttention) ----
  // codes[(b * heads + h) * n + i] = Gray rank of the r sign bits of (x_i − center_bh) · G[:, t],
  // t = 0..r−1, bit t set when the dot product is > 0. G is [d][r] fp32 row-major (backend
  // memory); center is [batch][heads][d] fp32 or nullptr (no centring). fp32 dot products.
  virtual void lsh_codes(const View& x, const float* G, int32_t r, const float* center,
                         uint16_t* codes, void* stream) = 0;
  // Stable counting sort per (batch·head) segment: perm[s * n + rank] = index, ordered by
  // (codes[s * n + index], index). n_seg segments of n rows, codes < 2^r.
  virtual void counting_sort(const uint16_t* codes, int64_t n_seg, int64_t n, int32_t r,
                             int32_t* perm, void* stream) = 0;

  // ---- index bookkeeping (keeps data-dependent indices in backend memory) ----
  // Segmented gather: dst[s * n_index + j] = src[s * n_src + index[s * n_index + j]] for every
  // segment s ∈ [0, n_seg), j ∈ [0, n_index); index entries lie in [0, n_src). All pointers in
  // backend memory. The default (src/backend_index.cpp) goes through host memory.
  virtual void gather_i32(int32_t* dst, const int32_t* src, const int32_t* index, int64_t n_seg,
                          int64_t n_src, int64_t n_index, void* stream);
  // Segment labels, repeated: with n = offsets[n_seg], for every copy c ∈ [0, copies) and row
  // i ∈ [0, n), dst[c * n + i] = s where offsets[s] ≤ i < offsets[s + 1]. offsets: n_seg + 1
  // non-decreasing values from 0, host memory; dst in backend memory. The default computes on
  // the host and uploads.
  virtual void segment_labels(int32_t* dst, const int64_t* offsets, int32_t n_seg, int64_t copies,
                              void* stream);

  // ---- transport between the ranks of a ring context (docs/RING.md) ----
  // The defaults suit a backend whose calls are complete when they return (CPU): streams are
  // nullptr, events need no recording, and send_to stages through host memory.
  // An asynchronous backend (CUDA) returns real streams/events: stream_wait_event makes later
  // work on `stream` wait for the event's last record, which may come from a peer backend's
  // stream (cudaStreamWaitEvent works across devices). The destroy calls accept nullptr.
  virtual void* stream_create() { return nullptr; }
  virtual void stream_destroy(void* stream) { (void)stream; }
  virtual void* event_create() { return nullptr; }
  virtual void event_destroy(void* event) { (void)event; }
  virtual void event_record(void* event, void* stream) { (void)event, (void)stream; }
  virtual void stream_wait_event(void* stream, void* event) { (void)stream, (void)event; }
  // Copies `bytes` from src (this backend's memory) to dst_on_peer (peer's memory), ordered on
  // this backend's `stream`. peer may be this very backend (virtual ranks on one device). CUDA:
  // cudaMemcpyPeerAsync on the copy stream. Default (src/ring_transport.cpp): download to host,
  // upload to the peer, complete on return.
  virtual void send_to(Backend& peer, void* dst_on_peer, const void* src, size_t bytes, void* stream);
};

// Creates the backend for (kind, device). Throws Error(BACKEND_UNAVAILABLE) when absent.
std::unique_ptr<Backend> make_cpu_backend(int32_t n_threads);  // n_threads <= 0: all cores
const char* cpu_isa_selected();   // micro-kernel set this CPU runs ("avx512", "avx2", ...)
const char* cpu_isas_compiled();  // comma-separated sets compiled in
#if LONGATTN_HAVE_CUDA
std::unique_ptr<Backend> make_cuda_backend(int32_t device);
int32_t cuda_device_count();
std::string cuda_device_name(int32_t device);
#endif
#if LONGATTN_HAVE_VULKAN
std::unique_ptr<Backend> make_vulkan_backend(int32_t device);
int32_t vulkan_device_count();
std::string vulkan_device_name(int32_t device);
bool vulkan_device_is_gpu(int32_t device);
#endif

}  // namespace longattn
