// C ABI of ring mode: whole host tensors on a ring context (cut into shards, run, gathered),
// per-rank shard tensors (longattn_attention_forward_sharded), and the ring queries.
#include <cstring>
#include <string>
#include <vector>

#include "api_guard.hpp"
#include "extensible.hpp"
#include "ring.hpp"
#include "validate.hpp"

using namespace longattn;

namespace longattn {
namespace {

// Queries count as few when 16·n_q <= n_k: moving the K/V shards around the ring would then cost
// more than merging per-rank partials of the queries (decode, or a short chunk over a long cache).
constexpr int64_t kFewQueriesRatio = 16;

std::string str(int64_t x) { return std::to_string(x); }

bool is_float_dtype(longattn_dtype t) {
  return t == LONGATTN_DTYPE_F32 || t == LONGATTN_DTYPE_F16 || t == LONGATTN_DTYPE_BF16;
}

// What ring mode does not do (yet); the same checks for both entry points.
void reject_unsupported(const AttentionConfig& cfg, const View& k, const View& v) {
  LONGATTN_RETURN_IF(cfg.algorithm == LONGATTN_ALGORITHM_HYPER, LONGATTN_ERROR_UNSUPPORTED,
                     "HYPER is not available in ring mode (its sorted blocks and samples span the whole "
                     "sequence); use FLASH or SPARSE, or a context without ring_devices");
  LONGATTN_RETURN_IF(!cfg.alibi_slopes.empty(), LONGATTN_ERROR_UNSUPPORTED,
                     "ALiBi (desc.max_bias) is not supported in ring mode yet");
  LONGATTN_RETURN_IF(!is_float_dtype(k.dtype) || !is_float_dtype(v.dtype), LONGATTN_ERROR_UNSUPPORTED,
                     "block-format K/V (k.dtype=" + str(k.dtype) + ", v.dtype=" + str(v.dtype) +
                         ") are not supported in ring mode yet");
}

RingLayout resolve_layout(int32_t option, const AttentionConfig& cfg) {
  if (option == LONGATTN_RING_LAYOUT_ZIGZAG) return RingLayout::zigzag;
  if (option == LONGATTN_RING_LAYOUT_CONTIGUOUS) return RingLayout::contiguous;
  // AUTO: zigzag balances causal work; a left window makes the contiguous halo exchange cheaper
  return cfg.mask.causal && cfg.mask.window_left < 0 ? RingLayout::zigzag : RingLayout::contiguous;
}

// A contiguous view {batch, rows, heads, dim} of dtype at data.
View compact_view(void* data, longattn_dtype dtype, int64_t batch, int64_t rows, int64_t heads, int64_t dim) {
  View v;
  v.data = data;
  v.dtype = dtype;
  const int64_t es = int64_t(longattn_dtype_size(dtype));
  v.shape[0] = batch; v.shape[1] = rows; v.shape[2] = heads; v.shape[3] = dim;
  v.strides[3] = es;
  v.strides[2] = es * dim;
  v.strides[1] = es * dim * heads;
  v.strides[0] = es * dim * heads * rows;
  return v;
}

size_t view_bytes(const View& v) {
  return size_t(v.shape[0] * v.shape[1] * v.shape[2] * v.shape[3]) * longattn_dtype_size(v.dtype);
}

// Host to host: rows [src_row, src_row + n) of src into rows [dst_row, …) of dst (same dtype,
// batch, heads and dims; any strides).
void copy_rows(const View& src, int64_t src_row, const View& dst, int64_t dst_row, int64_t n) {
  const size_t es = longattn_dtype_size(src.dtype);
  const int64_t D = src.shape[3];
  const bool dense_dims = src.strides[3] == int64_t(es) && dst.strides[3] == int64_t(es);
  for (int64_t b = 0; b < src.shape[0]; ++b)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t h = 0; h < src.shape[2]; ++h) {
        if (dense_dims) {
          std::memcpy(dst.at<char>(b, dst_row + i, h), src.at<char>(b, src_row + i, h), size_t(D) * es);
          continue;
        }
        for (int64_t d = 0; d < D; ++d) std::memcpy(dst.at<char>(b, dst_row + i, h, d), src.at<char>(b, src_row + i, h, d), es);
      }
}

// Whether a run of token rows of one batch of `v` is one byte range laid out as in a compact
// shard (dense heads and dims, no gap between rows): then segments move with one copy each.
bool dense_rows(const View& v) {
  const int64_t es = int64_t(longattn_dtype_size(v.dtype));
  return v.strides[3] == es && v.strides[2] == es * v.shape[3] && v.strides[1] == es * v.shape[3] * v.shape[2];
}

// A rank's copy of the segments of a whole host tensor, in its memory (workspace slot). Dense
// tensors go straight from the caller's memory, one upload per batch and segment queued on the
// rank's compute stream without waiting (the executor orders the copy streams after it);
// others are packed into `host` first, which is reused for the next rank once the upload has
// completed.
View upload_shard(RingRank& R, size_t slot, const View& whole, const Segments& segs, int64_t rows,
                  std::vector<char>& host) {
  View dev = compact_view(nullptr, whole.dtype, whole.shape[0], rows, whole.shape[2], whole.shape[3]);
  if (rows == 0) return dev;
  const size_t bytes = view_bytes(dev);
  dev.data = R.ws->get(slot, bytes);
  if (dense_rows(whole)) {
    for (int64_t b = 0; b < whole.shape[0]; ++b)
      for (const Segment& g : segs)
        R.backend->upload(static_cast<char*>(dev.data) + b * dev.strides[0] + g.row0 * dev.strides[1],
                          static_cast<const char*>(whole.data) + b * whole.strides[0] + g.src0 * whole.strides[1],
                          size_t(g.len * dev.strides[1]), R.compute);
    return dev;
  }
  host.resize(bytes);
  const View staged = compact_view(host.data(), whole.dtype, whole.shape[0], rows, whole.shape[2], whole.shape[3]);
  for (const Segment& g : segs) copy_rows(whole, g.src0, staged, g.row0, g.len);
  R.backend->upload(dev.data, host.data(), bytes, R.compute);
  R.backend->synchronize(R.compute);
  return dev;
}

// A rank's output shard back into the whole host tensor (straight into it when dense).
void download_shard(RingRank& R, const View& dev, const View& whole, const Segments& segs, std::vector<char>& host) {
  if (dev.shape[1] == 0 || !dev.data) return;
  if (dense_rows(whole)) {
    for (int64_t b = 0; b < whole.shape[0]; ++b)
      for (const Segment& g : segs)
        R.backend->download(static_cast<char*>(whole.data) + b * whole.strides[0] + g.src0 * whole.strides[1],
                            static_cast<const char*>(dev.data) + b * dev.strides[0] + g.row0 * dev.strides[1],
                            size_t(g.len * dev.strides[1]), R.compute);
    R.backend->synchronize(R.compute);
    return;
  }
  const size_t bytes = view_bytes(dev);
  host.resize(bytes);
  R.backend->download(host.data(), dev.data, bytes, R.compute);
  R.backend->synchronize(R.compute);
  View staged = dev;
  staged.data = host.data();
  for (const Segment& g : segs) copy_rows(staged, g.row0, whole, g.src0, g.len);
}

View output_shard(RingRank& R, size_t slot, longattn_dtype dtype, int64_t batch, int64_t rows, int64_t heads,
                  int64_t dim) {
  View v = compact_view(nullptr, dtype, batch, rows, heads, dim);
  if (rows > 0) v.data = R.ws->get(slot, view_bytes(v));
  return v;
}

// K/V views whose token rows are each one byte range (see RankTensors).
void expect_token_major(const View& v, const std::string& name) {
  LONGATTN_RETURN_IF(v.shape[1] > 1 && token_row_bytes(v) > v.strides[1], LONGATTN_ERROR_BAD_STRIDE,
                     name + ".strides[1]=" + str(v.strides[1]) + " is smaller than one token's heads and dims (" +
                         str(token_row_bytes(v)) + " bytes): ring mode sends K/V token rows as byte ranges");
}

}  // namespace

void ring_forward_whole(longattn_context& ctx, const AttentionConfig& cfg, const longattn_forward_args& args,
                        const View& q, const View& k, const View& v, const View& out, const View& lse,
                        int64_t q_pos0) {
  reject_unsupported(cfg, k, v);
  LONGATTN_RETURN_IF(args.mask || args.alibi_slopes || args.sinks, LONGATTN_ERROR_UNSUPPORTED,
                     "the additive mask, ALiBi slopes and sinks are not supported in ring mode yet");
  if (ctx.kind != LONGATTN_BACKEND_CPU)
    for (const longattn_tensor* t : {args.q, args.k, args.v, args.out, args.lse})
      LONGATTN_RETURN_IF(t && t->memory != LONGATTN_MEMORY_HOST, LONGATTN_ERROR_UNSUPPORTED,
                         "longattn_attention_forward on a ring context takes host tensors; pass device-resident "
                         "shards to longattn_attention_forward_sharded");
  RingGroup& g = *ctx.ring;
  const int32_t N = g.size();
  const int64_t B = q.shape[0], nq = q.shape[1], nk = k.shape[1];
  const bool few_queries = kFewQueriesRatio * nq <= nk;
  const RingLayout layout = few_queries ? RingLayout::contiguous : resolve_layout(g.layout(), cfg);

  std::vector<Segments> q_shards(static_cast<size_t>(N)), kv_shards(static_cast<size_t>(N));
  for (int32_t r = 0; r < N; ++r) {
    kv_shards[size_t(r)] = shard_segments(layout, nk, N, r, 0);
    q_shards[size_t(r)] = few_queries ? shard_segments(RingLayout::contiguous, nq, 1, 0, q_pos0)
                                      : shard_segments(layout, nq, N, r, q_pos0);
  }
  RingJob job;
  job.cfg = &cfg;
  job.batch = B;
  job.plan = plan_ring(cfg.mask, q_shards, kv_shards, !few_queries);
  job.merge = few_queries;
  job.merged_to = {0};
  job.t.resize(size_t(N));
  std::vector<char> host;
  for (int32_t r = 0; r < N; ++r) {
    RingRank& R = g.rank(r);
    RankTensors& t = job.t[size_t(r)];
    const int64_t q_rows = shard_rows(q_shards[size_t(r)]), k_rows = shard_rows(kv_shards[size_t(r)]);
    t.q = upload_shard(R, ring_slot::kQ, q, q_shards[size_t(r)], q_rows, host);
    t.k = upload_shard(R, ring_slot::kK, k, kv_shards[size_t(r)], k_rows, host);
    t.v = upload_shard(R, ring_slot::kV, v, kv_shards[size_t(r)], k_rows, host);
    if (few_queries && r > 0) continue;  // only rank 0 receives the merged result
    t.out = output_shard(R, ring_slot::kOut, out.dtype, B, q_rows, cfg.n_q_heads, cfg.head_dim_v);
    if (lse.data) t.lse = output_shard(R, ring_slot::kLse, LONGATTN_DTYPE_F32, B, q_rows, cfg.n_q_heads, 1);
  }
  run_ring(g, job);
  for (int32_t r = 0; r < (few_queries ? 1 : N); ++r) {
    download_shard(g.rank(r), job.t[size_t(r)].out, out, q_shards[size_t(r)], host);
    if (lse.data) download_shard(g.rank(r), job.t[size_t(r)].lse, lse, q_shards[size_t(r)], host);
  }
}

}  // namespace longattn

extern "C" {

longattn_status longattn_ring_shard(longattn_ring_layout layout, int64_t n_tokens, int32_t n_shards, int32_t rank,
                                    int64_t first[2], int64_t count[2]) {
  if (!first || !count) return LONGATTN_ERROR_NULL_POINTER;
  if (layout != LONGATTN_RING_LAYOUT_CONTIGUOUS && layout != LONGATTN_RING_LAYOUT_ZIGZAG)
    return LONGATTN_ERROR_UNKNOWN_ENUM;
  if (n_tokens < 0 || n_shards < 1 || rank < 0 || rank >= n_shards) return LONGATTN_ERROR_INVALID_ARGUMENT;
  const RingLayout l = layout == LONGATTN_RING_LAYOUT_ZIGZAG ? RingLayout::zigzag : RingLayout::contiguous;
  // segments as stored, empty chunks included (shard_segments drops them)
  const int64_t chunks = l == RingLayout::zigzag ? 2 * int64_t(n_shards) : n_shards;
  const int64_t c[2] = {rank, chunks - 1 - rank};
  for (int i = 0; i < 2; ++i) {
    const bool used = i == 0 || l == RingLayout::zigzag;
    const int64_t b = n_tokens * c[i] / chunks, e = n_tokens * (c[i] + 1) / chunks;
    first[i] = used ? b : 0;
    count[i] = used ? e - b : 0;
  }
  return LONGATTN_OK;
}

int32_t longattn_context_ring_devices(const longattn_context* ctx) {
  return ctx && ctx->ring ? ctx->ring->size() : 0;
}

longattn_ring_transport longattn_context_ring_transport(const longattn_context* ctx) {
  return ctx && ctx->ring ? ctx->ring->transport().kind() : LONGATTN_RING_TRANSPORT_AUTO;
}

size_t longattn_context_rank_scratch_bytes(const longattn_context* ctx, int32_t rank) {
  if (!ctx) return 0;
  if (!ctx->ring) return rank == 0 ? longattn_context_scratch_bytes(ctx) : 0;
  if (rank < 0 || rank >= ctx->ring->size()) return 0;
  longattn::RingRank& R = ctx->ring->rank(rank);
  return R.ws->bytes_held() + R.backend->scratch_bytes();
}

longattn_status longattn_attention_forward_sharded(longattn_context* ctx, const longattn_attention* attn,
                                                   const longattn_sharded_args* args) {
  if (!ctx) return LONGATTN_ERROR_NULL_POINTER;
  return guarded(ctx, "longattn_attention_forward_sharded", [&] {
    LONGATTN_RETURN_IF(attn == nullptr, LONGATTN_ERROR_NULL_POINTER, "attn is NULL");
    LONGATTN_RETURN_IF(args == nullptr, LONGATTN_ERROR_NULL_POINTER, "args is NULL");
    LONGATTN_RETURN_IF(!ctx->ring, LONGATTN_ERROR_INVALID_ARGUMENT,
                       "ctx is not a ring context (create it with options.ring_devices >= 1)");
    LONGATTN_RETURN_IF(attn->backend != ctx->kind, LONGATTN_ERROR_INVALID_ARGUMENT,
                       "attn was created for backend " + str(attn->backend) + " but ctx runs backend " + str(ctx->kind));
    const longattn_sharded_args defaults = LONGATTN_SHARDED_ARGS_INIT;
    const longattn_sharded_args a = read_extensible(args, defaults, LONGATTN_SHARDED_ARGS_MIN_SIZE, "args");
    RingGroup& g = *ctx->ring;
    const int32_t N = g.size();
    LONGATTN_RETURN_IF(a.n_shards != N, LONGATTN_ERROR_INVALID_ARGUMENT,
                       "args.n_shards=" + str(a.n_shards) + " but the context has " + str(N) + " ranks");
    LONGATTN_RETURN_IF(a.layout != LONGATTN_RING_LAYOUT_CONTIGUOUS && a.layout != LONGATTN_RING_LAYOUT_ZIGZAG,
                       LONGATTN_ERROR_UNKNOWN_ENUM,
                       "args.layout=" + str(a.layout) + " must be LONGATTN_RING_LAYOUT_CONTIGUOUS or _ZIGZAG");
    LONGATTN_RETURN_IF(a.queries != LONGATTN_SHARD_QUERIES_LOCAL && a.queries != LONGATTN_SHARD_QUERIES_REPLICATED,
                       LONGATTN_ERROR_UNKNOWN_ENUM, "args.queries=" + str(a.queries) + " is not a known value");
    for (const auto& [arr, name] : {std::pair{a.q, "q"}, std::pair{a.k, "k"}, std::pair{a.v, "v"}, std::pair{a.out, "out"}})
      LONGATTN_RETURN_IF(arr == nullptr, LONGATTN_ERROR_NULL_POINTER, std::string("args.") + name + " is NULL");
    const AttentionConfig& cfg = attn->cfg;
    const bool replicated = a.queries == LONGATTN_SHARD_QUERIES_REPLICATED;

    RingJob job;
    job.cfg = &cfg;
    job.t.resize(size_t(N));
    std::vector<int64_t> k_len(static_cast<size_t>(N));
    int64_t B = 0, n_total = 0, n_q_rep = 0;
    for (int32_t r = 0; r < N; ++r) {
      const std::string at = "[" + str(r) + "]";
      auto name = [&](const char* x) { return std::string(x) + at; };
      const View q = view_from_tensor(&a.q[r], name("q").c_str());
      const View k = view_from_tensor(&a.k[r], name("k").c_str(), true);
      const View v = view_from_tensor(&a.v[r], name("v").c_str(), true);
      const View o = view_from_tensor(&a.out[r], name("out").c_str());
      if (r == 0) {
        B = q.shape[0];
        n_q_rep = q.shape[1];
      }
      reject_unsupported(cfg, k, v);
      const int64_t nk = k.shape[1], nq = replicated ? n_q_rep : nk;
      expect_shape(q, name("q").c_str(), B, nq, cfg.n_q_heads, cfg.head_dim);
      expect_shape(k, name("k").c_str(), B, nk, cfg.n_kv_heads, cfg.head_dim);
      expect_shape(v, name("v").c_str(), B, nk, cfg.n_kv_heads, cfg.head_dim_v);
      expect_shape(o, name("out").c_str(), B, nq, cfg.n_q_heads, cfg.head_dim_v);
      expect_token_major(k, name("k"));
      expect_token_major(v, name("v"));
      for (const auto& [view, nm] : {std::pair{q, "q"}, std::pair{k, "k"}, std::pair{v, "v"}})
        expect_disjoint(o, name("out").c_str(), view, name(nm).c_str());
      View lse;
      if (a.lse) {
        lse = view_from_tensor(&a.lse[r], name("lse").c_str());
        LONGATTN_RETURN_IF(lse.dtype != LONGATTN_DTYPE_F32, LONGATTN_ERROR_INVALID_ARGUMENT,
                           name("lse") + ".dtype=" + str(lse.dtype) + " must be LONGATTN_DTYPE_F32");
        expect_shape(lse, name("lse").c_str(), B, nq, cfg.n_q_heads, 1);
        expect_disjoint(lse, name("lse").c_str(), o, name("out").c_str());
      }
      if (ctx->kind != LONGATTN_BACKEND_CPU)
        for (const longattn_tensor* t : {&a.q[r], &a.k[r], &a.v[r], &a.out[r], a.lse ? &a.lse[r] : nullptr})
          LONGATTN_RETURN_IF(t && t->memory != LONGATTN_MEMORY_DEVICE, LONGATTN_ERROR_UNSUPPORTED,
                             "shard tensors" + at + " must be LONGATTN_MEMORY_DEVICE memory of rank " + str(r) +
                                 "; host tensors go to longattn_attention_forward");
      job.t[size_t(r)] = RankTensors{q, k, v, o, lse};
      k_len[size_t(r)] = nk;
      n_total += nk;
    }
    job.batch = B;

    // positions of every shard's keys (and local queries)
    std::vector<Segments> kv_shards(static_cast<size_t>(N)), q_shards(static_cast<size_t>(N));
    const RingLayout layout = a.layout == LONGATTN_RING_LAYOUT_ZIGZAG ? RingLayout::zigzag : RingLayout::contiguous;
    int64_t start = 0;
    for (int32_t r = 0; r < N; ++r) {
      if (layout == RingLayout::contiguous) {
        if (k_len[size_t(r)] > 0) kv_shards[size_t(r)] = {Segment{0, start, start, k_len[size_t(r)]}};
        start += k_len[size_t(r)];
      } else {
        kv_shards[size_t(r)] = shard_segments(layout, n_total, N, r, 0);
        const int64_t want = shard_rows(kv_shards[size_t(r)]);
        LONGATTN_RETURN_IF(want != k_len[size_t(r)], LONGATTN_ERROR_SHAPE_MISMATCH,
                           "k[" + str(r) + "].shape[1]=" + str(k_len[size_t(r)]) + " but the zigzag layout of " +
                               str(n_total) + " tokens over " + str(N) + " shards gives rank " + str(r) + " " +
                               str(want) + " tokens (see longattn_ring_shard)");
      }
    }
    constexpr int64_t kPosLimit = int64_t(1) << 60;
    const int64_t q_pos0 = a.q_pos0 == LONGATTN_Q_POS_BOTTOM_RIGHT ? n_total - n_q_rep : a.q_pos0;
    LONGATTN_RETURN_IF(q_pos0 <= -kPosLimit || q_pos0 >= kPosLimit, LONGATTN_ERROR_INVALID_ARGUMENT,
                       "args.q_pos0=" + str(a.q_pos0) + " is out of range");
    for (int32_t r = 0; r < N; ++r)
      q_shards[size_t(r)] = replicated ? shard_segments(RingLayout::contiguous, n_q_rep, 1, 0, q_pos0) : kv_shards[size_t(r)];
    if (!replicated)  // queries sit where the shard's keys sit: rows of q follow the key segments
      for (int32_t r = 0; r < N; ++r)
        for (Segment& s : q_shards[size_t(r)]) s.src0 = s.row0;
    job.plan = plan_ring(cfg.mask, q_shards, kv_shards, !replicated);
    job.merge = replicated;
    for (int32_t r = 0; r < N; ++r) job.merged_to.push_back(r);
    run_ring(g, job);
  });
}

}  // extern "C"
