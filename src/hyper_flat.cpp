// One non-causal HyperAttention node: query rows [q0, q0 + nq) against keys [k0, k0 + nk), every
// pair visible. Per (batch, head), with b = block size, m = samples, nb = ⌈nk / b⌉:
//
//   1. codes   c_i = GrayRank(bits((x_i − centre)·G)) — keys centred, queries not (lsh_codes)
//   2. sort    π_Q, π_K: stable order by (code, index) (counting_sort)
//   3. blocks  sorted query block β = ranks [⌊β·nq/nb⌋, ⌊(β+1)·nq/nb⌋) attends exactly to sorted
//              key block β = ranks [β·b, min((β+1)·b, nk)) (attend with gathers + segments)
//   4. samples s_1..s_m uniform ranks in [0, nk) (multiply-shift of a counter-based RNG keyed by
//              (seed, batch, kv head, level, segment)); query block β drops samples with
//              ⌊s_j / b⌋ = β; each kept sample carries the additive log-weight ln(nk / m)
//              (attend with gathers, key_logw and exclusion groups)
//   5. merge   both partials into the accumulator by LSE (merge)
//
// Backends with shared tail keys (Backend::supports_tail_keys) run 3–5 as one attend call: the
// logical keys are the nk sorted keys (gathered through π_K) followed by the m samples, segment β
// pairs its query block with key block β, and every segment shares the samples (the tail, with
// their own gathers, log-weights ln(nk / m) and exclusion groups): per row, one online softmax
// over the block, then the kept samples (the fused kernel of the spec), and no merge between them.
//
// Codes, sort and samples of keys are per KV head (shared by its query heads, GQA); queries are
// sorted per query head. The estimate of the off-block normaliser Σ_{j∉β} e^{s q·k_j} is
// (nk/m)·Σ_{kept} e^{s q·k_{s_j}}: unbiased, since P(s_j = j') = 1/nk for every rank j'.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "error.hpp"
#include "hyper_context.hpp"
#include "rng.hpp"

namespace longattn {
namespace {

template <class T>
void upload_vector(HyperContext& c, T* dst, const std::vector<T>& src) {
  c.be.upload(dst, src.data(), src.size() * sizeof(T), c.p.stream);
}

template <class T>
std::vector<T> download_vector(HyperContext& c, const T* src, int64_t n) {
  std::vector<T> out(static_cast<size_t>(n));
  c.be.download(out.data(), src, size_t(n) * sizeof(T), c.p.stream);
  return out;
}

std::string geometry(int64_t q0, int64_t nq, int64_t k0, int64_t nk) {
  return "rows [" + std::to_string(q0) + ", " + std::to_string(q0 + nq) + ") × keys [" +
         std::to_string(k0) + ", " + std::to_string(k0 + nk) + ")";
}

// The injected node the planner is at, checked against the geometry it expects.
const HyperNodeChoice& next_injected(HyperContext& c, int64_t q0, int64_t nq, int64_t k0, int64_t nk) {
  HyperChoices& ch = *c.choices;
  const std::string where = geometry(q0, nq, k0, nk);
  if (ch.cursor >= ch.nodes.size())
    throw Error(LONGATTN_ERROR_INVALID_ARGUMENT, "injected HyperAttention choices hold " +
                                                     std::to_string(ch.nodes.size()) +
                                                     " nodes; the planner needs another for " + where);
  const HyperNodeChoice& n = ch.nodes[ch.cursor++];
  const int64_t m = c.samples;
  if (n.q0 != q0 || n.nq != nq || n.k0 != k0 || n.nk != nk ||
      int64_t(n.perm_q.size()) != c.B * c.hq * nq || int64_t(n.perm_k.size()) != c.B * c.hkv * nk ||
      int64_t(n.sample_ranks.size()) != c.B * c.hkv * m)
    throw Error(LONGATTN_ERROR_INVALID_ARGUMENT,
                "injected HyperAttention node #" + std::to_string(ch.cursor - 1) + " (" +
                    geometry(n.q0, n.nq, n.k0, n.nk) + ", " + std::to_string(n.perm_q.size()) +
                    "/" + std::to_string(n.perm_k.size()) + "/" + std::to_string(n.sample_ranks.size()) +
                    " entries) does not match the planner's " + where);
  for (uint32_t s : n.sample_ranks)
    if (int64_t(s) >= nk)
      throw Error(LONGATTN_ERROR_INVALID_ARGUMENT, "injected sample rank " + std::to_string(s) +
                                                       " is not below nk=" + std::to_string(nk));
  return n;
}

// The samples as keys, per (batch, KV head) [B·hkv][m] in backend memory: their key rows
// π_K[rank] (gathered there), log-weights and exclusion groups (their key blocks ⌊rank / b⌋).
struct SampleKeys {
  const int32_t* rows;
  const float* logw;
  const int32_t* group;
};
SampleKeys sample_keys(HyperContext& c, const int32_t* perm_k, const std::vector<uint32_t>& ranks, float logw,
                       int64_t nk) {
  // one upload: [0, S) ranks, [S, 2S) key blocks, [2S, 3S) log-weights (as bits), S = B·hkv·m
  const size_t S = ranks.size();
  std::vector<int32_t> meta(3 * S);
  for (size_t x = 0; x < S; ++x) {
    meta[x] = int32_t(ranks[x]);
    meta[S + x] = int32_t(ranks[x] / uint32_t(c.block));
    std::memcpy(&meta[2 * S + x], &logw, sizeof logw);
  }
  int32_t* meta_dev = c.ws.get<int32_t>(kSlotSampleMeta, 3 * S);
  upload_vector(c, meta_dev, meta);
  int32_t* rows_dev = c.ws.get<int32_t>(kSlotSampleRows, S);
  c.be.gather_i32(rows_dev, perm_k, meta_dev, c.B * c.hkv, nk, c.samples, c.p.stream);
  return {rows_dev, reinterpret_cast<const float*>(meta_dev + 2 * S), meta_dev + S};
}

}  // namespace

void hyper_flat_piece(HyperContext& c, int64_t q0, int64_t nq, int64_t k0, int64_t nk,
                      int32_t level, int32_t segment, RowRange final) {
  if (!c.force_hyper_path && (nk < c.min_len || nk <= c.block)) {
    hyper_exact_piece(c, q0, nq, k0, nk, Mask{}, 0, 0);
    return;
  }
  const bool replay = c.choices && c.choices->mode == HyperChoices::Mode::replay;
  const bool record = c.choices && c.choices->mode == HyperChoices::Mode::record;
  const int64_t B = c.B, hq = c.hq, hkv = c.hkv, b = c.block, m = c.samples;
  const int64_t n_blocks = (nk + b - 1) / b;
  const int64_t n_qrows = B * hq * nq, n_krows = B * hkv * nk, n_samples = B * hkv * m;
  const View q = row_slice(c.p.q, q0, nq), k = row_slice(c.p.k, k0, nk), v = row_slice(c.p.v, k0, nk);
  void* stream = c.p.stream;

  // ---- 1–2: codes and sorted orders (or the injected ones) ----
  // Nothing here waits for the device: π_Q and π_K stay in backend memory (they come back to
  // the host only when choices are recorded).
  // π_Q and π_K (and the codes) share one buffer each, K's segments after Q's, so that one
  // counting sort orders both when they have the same length (every node of a self-attention).
  int32_t* perm_q = c.ws.get<int32_t>(kSlotPerms, size_t(n_qrows + n_krows));
  int32_t* perm_k = perm_q + n_qrows;
  const HyperNodeChoice* injected = nullptr;
  if (replay) {
    injected = &next_injected(c, q0, nq, k0, nk);
    upload_vector(c, perm_q, injected->perm_q);
    upload_vector(c, perm_k, injected->perm_k);
  } else {
    c.prepare_lsh(k0, nk);
    uint16_t* codes_q = c.ws.get<uint16_t>(kSlotCodes, size_t(n_qrows + n_krows));
    uint16_t* codes_k = codes_q + n_qrows;
    c.be.lsh_codes(q, c.G, c.r, nullptr, codes_q, stream);
    c.be.lsh_codes(k, c.G, c.r, c.center, codes_k, stream);
    if (nq == nk) {  // the segments are independent: one sort of B·(hq + hkv) segments
      c.be.counting_sort(codes_q, B * (hq + hkv), nq, c.r, perm_q, stream);
    } else {
      c.be.counting_sort(codes_q, B * hq, nq, c.r, perm_q, stream);
      c.be.counting_sort(codes_k, B * hkv, nk, c.r, perm_k, stream);
    }
    if (record) {
      HyperNodeChoice rec;
      rec.codes_q = download_vector(c, codes_q, n_qrows);
      rec.codes_k = download_vector(c, codes_k, n_krows);
      rec.perm_q = download_vector(c, perm_q, n_qrows);
      rec.perm_k = download_vector(c, perm_k, n_krows);
      c.choices->nodes.push_back(std::move(rec));
    }
  }

  // ---- segments: sorted query block β, key block β ----
  std::vector<int64_t> q_seg(static_cast<size_t>(n_blocks + 1)), k_seg(static_cast<size_t>(n_blocks + 1));
  for (int64_t beta = 0; beta <= n_blocks; ++beta) {
    q_seg[size_t(beta)] = beta * nq / n_blocks;
    k_seg[size_t(beta)] = std::min(beta * b, nk);
  }
  // ---- 4 (ranks): the samples, drawn on the host (they depend on the seed and the node only) ----
  std::vector<uint32_t> ranks(static_cast<size_t>(n_samples));
  if (injected) {
    ranks = injected->sample_ranks;
  } else {
    for (int64_t bb = 0; bb < B; ++bb)
      for (int64_t h = 0; h < hkv; ++h) {
        const RngStream rng(c.cfg.seed, RngPurpose::samples, uint64_t(bb), uint64_t(h), uint64_t(level),
                            uint64_t(segment));
        for (int64_t j = 0; j < m; ++j)
          ranks[size_t((bb * hkv + h) * m + j)] = multiply_shift(rng.u32(uint64_t(j)), uint32_t(nk));
      }
  }
  const float logw = float(std::log(double(nk) / double(m)));
  // block of each sorted query rank, repeated for every (batch, query head): exclusion groups
  int32_t* query_block_dev = c.ws.get<int32_t>(kSlotQueryBlock, size_t(n_qrows));
  c.be.segment_labels(query_block_dev, q_seg.data(), int32_t(n_blocks), B * hq, stream);

  // ---- 3: query block β against key block β in sorted order (segments) ----
  AttendArgs blocks = c.base_args();
  blocks.n_q = nq;
  blocks.n_k = nk;
  blocks.q = q;
  blocks.k = k;
  blocks.v = v;
  blocks.q_rows = perm_q;
  blocks.k_rows = perm_k;
  blocks.n_segments = int32_t(n_blocks);
  blocks.q_seg = q_seg.data();
  blocks.k_seg = k_seg.data();
  const SampleKeys sk = sample_keys(c, perm_k, ranks, logw, nk);
  const bool one_call = c.be.supports_tail_keys();
  blocks.out = c.target_o(q0, nq, one_call ? final : RowRange{});
  blocks.lse = c.target_lse(q0, nq, one_call ? final : RowRange{});
  if (one_call) {
    // ---- 3–5 in one call: the samples join every segment as its shared tail keys ----
    blocks.n_k = nk + m;
    blocks.q_group = query_block_dev;
    blocks.n_tail_keys = m;
    blocks.tail_k_rows = sk.rows;
    blocks.tail_key_logw = sk.logw;
    blocks.tail_k_group = sk.group;
    c.be.attend(blocks);
    c.fold(q0, nq, final);
  } else {
    // ---- 3, then 4 (sampled residual) in a call of its own, each merged in turn ----
    c.be.attend(blocks);
    c.fold(q0, nq);
    AttendArgs residual = blocks;
    residual.n_k = m;
    residual.k_rows = sk.rows;
    residual.key_logw = sk.logw;
    residual.q_group = query_block_dev;
    residual.k_group = sk.group;
    residual.n_segments = 0;
    residual.q_seg = residual.k_seg = nullptr;
    residual.out = c.target_o(q0, nq);
    residual.lse = c.target_lse(q0, nq);
    c.be.attend(residual);
    c.fold(q0, nq, final);
  }

  if (record) {
    HyperNodeChoice& rec = c.choices->nodes.back();
    rec.level = level;
    rec.segment = segment;
    rec.q0 = q0, rec.nq = nq, rec.k0 = k0, rec.nk = nk;
    rec.n_blocks = n_blocks;
    rec.sample_ranks = std::move(ranks);
  }
}

}  // namespace longattn
