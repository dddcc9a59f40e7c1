// HYPER planner: HyperAttention (arXiv 2310.05869) as a schedule of backend primitives.
// See docs/ALGORITHMS.md and specs/hyperattention.md. This file holds the gates and the
// decomposition of a call into pieces; hyper_flat.cpp computes one non-causal node (LSH blocks +
// sampled columns) and hyper_causal.cpp the causal recursion.
//
// Decomposition (g' = sinks actually present, P = q_pos0):
//   non-causal:  exact(all rows, keys [0, g'))  ⊕  flat(all rows, keys [g', n_k))
//   causal:      exact(all rows, keys [0, g'), causal)      sinks
//                ⊕ flat(all rows, keys [g', P))             past keys of a chunk (KV cache)
//                ⊕ causal(rows at positions [s0, P + n_q))  the chunk's own square, s0 = max(P, g')
// ⊕ is the backend's LSE merge into one fp32 accumulator, always in this order.
#include <algorithm>
#include <cmath>
#include <string>

#include "error.hpp"
#include "hyper_context.hpp"
#include "rng.hpp"

namespace longattn {

HyperContext::HyperContext(Backend& backend, const Problem& problem, HyperChoices* ch)
    : be(backend), p(problem), cfg(*problem.cfg), ws(*problem.ws), choices(ch),
      force_hyper_path(ch && ch->force_hyper_path) {
  B = p.batch;
  n_q = p.n_q;
  n_k = p.n_k;
  hq = cfg.n_q_heads;
  hkv = cfg.n_kv_heads;
  d = cfg.head_dim;
  dv = cfg.head_dim_v;
  r = cfg.hyper_lsh_bits;
  block = cfg.hyper_block_size;
  samples = cfg.hyper_sample_size;
  min_len = cfg.hyper_min_seq_len;

  // The accumulator is the caller's output when that is fp32 already; otherwise fp32 scratch
  // that the last step converts into out.
  if (p.out.dtype == LONGATTN_DTYPE_F32) {
    acc_o = p.out;
  } else {
    acc_o = contiguous_f32(ws.get(kSlotAccO, size_t(B * n_q * hq * dv) * 4), B, n_q, hq, dv);
  }
  if (p.lse.data) {
    acc_lse = p.lse;
  } else {
    acc_lse = contiguous_f32(ws.get(kSlotAccLse, size_t(B * n_q * hq) * 4), B, n_q, hq, 1);
  }
  part_o = contiguous_f32(ws.get(kSlotPartO, size_t(B * n_q * hq * dv) * 4), B, n_q, hq, dv);
  part_lse = contiguous_f32(ws.get(kSlotPartLse, size_t(B * n_q * hq) * 4), B, n_q, hq, 1);
}

AttendArgs HyperContext::base_args() const {
  AttendArgs a = p.attend_args();
  a.mask = Mask{};
  a.q_pos0 = 0;
  a.k_pos0 = 0;
  a.out = View{};
  a.lse = View{};
  return a;
}

namespace {
// The piece covers every row of the call and all of them are final.
bool only_piece(const HyperContext& c, int64_t r0, int64_t n, RowRange final) {
  return !c.acc_started && r0 == 0 && n == c.n_q && final.r0 == 0 && final.n == c.n_q;
}
}  // namespace

View HyperContext::target_o(int64_t r0, int64_t n, RowRange final) const {
  if (!acc_started && (r0 != 0 || n != n_q))
    throw Error(LONGATTN_ERROR_INTERNAL, "HYPER planner: the first piece covers rows [" +
                                             std::to_string(r0) + ", " + std::to_string(r0 + n) +
                                             ") instead of all " + std::to_string(n_q));
  if (only_piece(*this, r0, n, final)) return p.out;  // no accumulator, no conversion after it
  return row_slice(acc_started ? part_o : acc_o, r0, n);
}

View HyperContext::target_lse(int64_t r0, int64_t n, RowRange final) const {
  if (only_piece(*this, r0, n, final)) return p.lse;  // data == nullptr when the caller wants none
  return row_slice(acc_started ? part_lse : acc_lse, r0, n);
}

void HyperContext::fold(int64_t r0, int64_t n, RowRange final) {
  if (!acc_started) {
    if (only_piece(*this, r0, n, final)) out_final.push_back(final);  // target_o gave the caller's out
    acc_started = true;
    return;
  }
  // acc = merge(acc, partial) over rows [a, a + m), into the caller's out when `to_out`
  auto merge_rows = [&](int64_t a, int64_t m, bool to_out) {
    if (m <= 0) return;
    const View ao = row_slice(acc_o, a, m), al = row_slice(acc_lse, a, m);
    be.merge(ao, al, row_slice(part_o, a, m), row_slice(part_lse, a, m), to_out ? row_slice(p.out, a, m) : ao, al,
             p.stream);
  };
  if (final.n <= 0 || acc_o.data == p.out.data) {  // (an fp32 out is the accumulator itself)
    merge_rows(r0, n, false);
    return;
  }
  merge_rows(r0, final.r0 - r0, false);
  merge_rows(final.r0, final.n, true);
  merge_rows(final.r0 + final.n, r0 + n - (final.r0 + final.n), false);
  out_final.push_back(final);
}

void HyperContext::prepare_lsh(int64_t k0, int64_t nk) {
  if (!G) {
    const std::vector<float> g = gaussian_projections(cfg.seed, d, r);
    float* g_dev = ws.get<float>(kSlotProjections, g.size());
    be.upload(g_dev, g.data(), g.size() * sizeof(float), p.stream);
    G = g_dev;
  }

  // Key centring: centre_bh = mean of the node's keys. Computed with `attend` itself: a scale of
  // 1e-30 makes every weight exp(1e-30·q·k − max) round to exactly 1 in fp32 (for |q·k| < 1e22),
  // so the softmax is uniform and O = (1/nk)·Σ_j k_j when V = K. (Not 0: a positive scale keeps
  // the call on the backends' fastest kernels, which fold the scale into the exponent.)
  // One query row per (batch, KV head) (any row: its values are multiplied by ~0).
  float* center_dev = ws.get<float>(kSlotCenter, size_t(B * hkv * d));
  AttendArgs a = base_args();
  a.n_q = 1;
  a.n_k = nk;
  a.n_q_heads = hkv;
  a.n_kv_heads = hkv;
  a.head_dim_v = d;
  a.q = row_slice(p.k, k0, 1);
  a.k = row_slice(p.k, k0, nk);
  a.v = a.k;
  a.scale = 1e-30f;
  a.softcap = 0.0f;
  a.out = contiguous_f32(center_dev, B, 1, hkv, d);  // = [b][hkv][d]
  be.attend(a);
  center = center_dev;
}

void hyper_exact_piece(HyperContext& c, int64_t q0, int64_t nq, int64_t k0, int64_t nk,
                       const Mask& mask, int64_t q_pos0, int64_t k_pos0,
                       const std::vector<int64_t>* segments) {
  AttendArgs a = c.base_args();
  a.n_q = nq;
  a.n_k = nk;
  a.q = row_slice(c.p.q, q0, nq);
  a.k = row_slice(c.p.k, k0, nk);
  a.v = row_slice(c.p.v, k0, nk);
  a.mask = mask;
  a.q_pos0 = q_pos0;
  a.k_pos0 = k_pos0;
  if (segments) {
    a.n_segments = int32_t(segments->size() - 1);
    a.q_seg = segments->data();
    a.k_seg = segments->data();
  }
  a.out = c.target_o(q0, nq);
  a.lse = c.target_lse(q0, nq);
  c.be.attend(a);
  c.fold(q0, nq);
}

namespace {

// Exact attention for the whole call (FLASH with the causal mask only: without windows the
// n_global sinks do not change which keys are allowed).
void run_exact(Backend& backend, const Problem& p) {
  AttentionConfig exact = *p.cfg;
  exact.algorithm = LONGATTN_ALGORITHM_FLASH;
  exact.mask = Mask{};
  exact.mask.causal = p.cfg->mask.causal;
  Problem q = p;
  q.cfg = &exact;
  run_flash(backend, q);
}

// The accumulator is scratch (out is f16/bf16): out = merge(acc, (·, −inf)), a pure conversion,
// over the rows no fold has written into out already.
void write_output(HyperContext& c) {
  if (c.acc_o.data == c.p.out.data) return;
  std::vector<RowRange> done = c.out_final;
  std::sort(done.begin(), done.end(), [](const RowRange& x, const RowRange& y) { return x.r0 < y.r0; });
  std::vector<RowRange> gaps;
  int64_t at = 0;
  for (const RowRange& d : done) {
    if (d.r0 > at) gaps.push_back({at, d.r0 - at});
    at = std::max(at, d.r0 + d.n);
  }
  if (at < c.n_q) gaps.push_back({at, c.n_q - at});
  if (gaps.empty()) return;
  // The −inf column is filled in backend memory by state_init (m = −inf; l and a one-column
  // acc land in the partial buffers, free by now).
  float* neg_inf = c.ws.get<float>(kSlotNegInfLse, size_t(c.B * c.n_q * c.hq));
  RunningState fill{neg_inf, static_cast<float*>(c.part_lse.data), static_cast<float*>(c.part_o.data)};
  c.be.state_init(fill, c.B, c.hq, c.n_q, 1, c.p.stream);
  const View empty_lse = contiguous_f32(neg_inf, c.B, c.n_q, c.hq, 1);
  for (const RowRange& g : gaps) {
    const View ao = row_slice(c.acc_o, g.r0, g.n), al = row_slice(c.acc_lse, g.r0, g.n);
    c.be.merge(ao, al, ao, row_slice(empty_lse, g.r0, g.n), row_slice(c.p.out, g.r0, g.n), al, c.p.stream);
  }
}

}  // namespace

int64_t hyper_leaf_size(const HyperContext& c) {
  // A causal node of at most 2·block rows is exact anyway (its off-diagonal part has ≤ block
  // keys: one block), so it is solved directly as a leaf.
  return c.force_hyper_path ? c.min_len : std::max(c.min_len, 2 * c.block);
}

void run_hyper_with_choices(Backend& backend, const Problem& p, HyperChoices* choices) {
  const AttentionConfig& cfg = *p.cfg;
  const Mask& mask = cfg.mask;
  if (mask.window_left != -1 || mask.window_right != -1)
    throw Error(LONGATTN_ERROR_UNSUPPORTED,
                "HYPER takes no sliding window (window_left=" + std::to_string(mask.window_left) +
                    ", window_right=" + std::to_string(mask.window_right) + "); use SPARSE");
  constexpr int64_t kMaxRows = int64_t(1) << 31;  // permutations and sample ranks are 32-bit
  if (p.n_k >= kMaxRows || p.n_q >= kMaxRows)
    throw Error(LONGATTN_ERROR_UNSUPPORTED, "HYPER handles at most 2^31 - 1 tokens (n_q=" +
                                                std::to_string(p.n_q) + ", n_k=" + std::to_string(p.n_k) + ")");
  if (p.mask.data || p.alibi_slopes || p.sinks)
    throw Error(LONGATTN_ERROR_UNSUPPORTED, "HYPER takes no additive mask, ALiBi or sinks");
  if (choices) {
    choices->cursor = 0;
    if (choices->mode == HyperChoices::Mode::record) choices->nodes.clear();
  }
  const bool force = choices && choices->force_hyper_path;

  // Decode: HyperAttention reads every key anyway, so exact split-KV attention is as fast.
  if (p.n_q == 1) return run_exact(backend, p);

  if (!mask.causal) {
    const int64_t sinks = std::min<int64_t>(mask.n_global, p.n_k);
    const int64_t population = p.n_k - sinks;
    if (!force && (population < cfg.hyper_min_seq_len || population <= cfg.hyper_block_size))
      return run_exact(backend, p);
    HyperContext c(backend, p, choices);
    if (sinks > 0) hyper_exact_piece(c, 0, p.n_q, 0, sinks, Mask{}, 0, 0);
    if (population > 0) hyper_flat_piece(c, 0, p.n_q, sinks, population, kHyperFlatLevel, 0, RowRange{0, p.n_q});
    write_output(c);
    return;
  }

  // Causal: the queries are the tokens at positions [P, P + n_q) of a sequence whose keys
  // [0, n_k) are cached. Other alignments (queries before the first key or past the last one)
  // are rare enough to be solved exactly.
  const int64_t P = p.q_pos0, end = p.q_pos0 + p.n_q;
  if (P < 0 || end > p.n_k) return run_exact(backend, p);
  const int64_t sinks = std::min<int64_t>(mask.n_global, end);
  const int64_t square0 = std::max(P, sinks);  // first position of the causal square
  const int64_t square = end - square0;
  const int64_t past = P - sinks;  // fully visible non-sink keys (chunked prefill)
  const bool past_exact =
      past <= 0 || (!force && (past < cfg.hyper_min_seq_len || past <= cfg.hyper_block_size));
  const bool square_exact =
      square <= std::max<int64_t>(cfg.hyper_min_seq_len, 2 * int64_t(cfg.hyper_block_size));
  if (!force && past_exact && square_exact) return run_exact(backend, p);

  HyperContext c(backend, p, choices);
  Mask causal;
  causal.causal = true;
  if (sinks > 0) hyper_exact_piece(c, 0, p.n_q, 0, sinks, causal, P, 0);
  if (past > 0) hyper_flat_piece(c, 0, p.n_q, sinks, past, kHyperFlatLevel, 0);
  if (square > 0) hyper_causal_piece(c, square0 - P, square0, square);
  write_output(c);
}

void run_hyper(Backend& backend, const Problem& p) { run_hyper_with_choices(backend, p, nullptr); }

}  // namespace longattn
