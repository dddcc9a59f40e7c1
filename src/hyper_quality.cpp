// HyperAttention quality metrics (see hyper_quality.hpp). Plain float64 loops: a measuring tool,
// not a kernel.
#include "hyper_quality.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "half.hpp"
#include "reference.hpp"

namespace longattn {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

double logit(const AttentionConfig& cfg, const std::vector<double>& qrow, const View& k, int64_t b,
             int64_t j, int64_t hk) {
  double s = 0;
  for (int64_t c = 0; c < cfg.head_dim; ++c)
    s += qrow[size_t(c)] * double(load_as_float(k.at<char>(b, j, hk, c), k.dtype));
  s *= double(cfg.scale);
  if (cfg.softcap > 0) s = double(cfg.softcap) * std::tanh(s / double(cfg.softcap));
  return s;
}

// Share of row (b, i, h)'s softmax mass over the node's keys that falls inside its block.
void add_block_mass(const AttentionConfig& cfg, const View& q, const View& k, const HyperNodeChoice& node,
                    const std::vector<int32_t>& inverse_q, int64_t b, int64_t i, int64_t h,
                    HyperQuality& qa) {
  const int64_t hq = cfg.n_q_heads, hkv = cfg.n_kv_heads, hk = h / (hq / hkv);
  const int64_t nq = node.nq, nk = node.nk, nb = node.n_blocks, bs = cfg.hyper_block_size;
  const int64_t rank = inverse_q[size_t((b * hq + h) * nq + (i - node.q0))];
  int64_t beta = 0;
  while (beta + 1 < nb && (beta + 1) * nq / nb <= rank) ++beta;
  const int64_t k_lo = beta * bs, k_hi = std::min((beta + 1) * bs, nk);

  std::vector<double> qrow(static_cast<size_t>(cfg.head_dim));
  for (int64_t c = 0; c < cfg.head_dim; ++c) qrow[size_t(c)] = load_as_float(q.at<char>(b, i, h, c), q.dtype);
  std::vector<double> s(static_cast<size_t>(nk));
  double mx = kNegInf;
  for (int64_t j = 0; j < nk; ++j) {
    s[size_t(j)] = logit(cfg, qrow, k, b, node.k0 + j, hk);
    mx = std::max(mx, s[size_t(j)]);
  }
  double total = 0, inside = 0;
  for (int64_t j = 0; j < nk; ++j) total += std::exp(s[size_t(j)] - mx);
  const int32_t* perm = node.perm_k.data() + (b * hkv + hk) * nk;
  for (int64_t rk = k_lo; rk < k_hi; ++rk) inside += std::exp(s[size_t(perm[rk])] - mx);
  qa.block_mass += inside / total;
  qa.random_block_mass += double(k_hi - k_lo) / double(nk);
  ++qa.block_entries;
}

}  // namespace

void hyper_output_errors(const AttentionConfig& cfg, const View& out, const View& lse,
                         const std::vector<int64_t>& rows, const std::vector<double>& ref_out,
                         const std::vector<double>& ref_lse, HyperQuality& qa) {
  const int64_t B = out.shape[0], R = int64_t(rows.size()), hq = cfg.n_q_heads, dv = cfg.head_dim_v;
  qa.rel_err = qa.lse_err = 0;
  qa.entries = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t h = 0; h < hq; ++h) {
        const size_t x = size_t((b * R + r) * hq + h);
        if (ref_lse[x] == kNegInf) continue;
        const int64_t i = rows[size_t(r)];
        double diff = 0, norm = 0;
        for (int64_t c = 0; c < dv; ++c) {
          const double o = ref_out[x * size_t(dv) + size_t(c)];
          const double e = double(load_as_float(out.at<char>(b, i, h, c), out.dtype)) - o;
          diff += e * e;
          norm += o * o;
        }
        if (norm > 0) qa.rel_err += std::sqrt(diff / norm);
        qa.lse_err += std::fabs(double(*lse.at<float>(b, i, h)) - ref_lse[x]);
        ++qa.entries;
      }
  if (qa.entries > 0) {
    qa.rel_err /= double(qa.entries);
    qa.lse_err /= double(qa.entries);
  }
}

HyperQuality measure_hyper_quality(const AttentionConfig& cfg, const View& q, const View& k,
                                   const View& v, int64_t q_pos0, const View& out, const View& lse,
                                   const HyperChoices* choices, const std::vector<int64_t>& rows) {
  const int64_t B = q.shape[0], n_q = q.shape[1], hq = cfg.n_q_heads;
  std::vector<int64_t> row_list = rows;
  if (row_list.empty())
    for (int64_t i = 0; i < n_q; ++i) row_list.push_back(i);
  std::vector<double> ref_o, ref_l;
  reference_attention(cfg, q, k, v, q_pos0, ref_o, ref_l, row_list);

  HyperQuality qa;
  hyper_output_errors(cfg, out, lse, row_list, ref_o, ref_l, qa);

  if (choices) {
    for (const HyperNodeChoice& node : choices->nodes) {
      // rank of every query row of the node, per (batch, head)
      std::vector<int32_t> inverse_q(node.perm_q.size());
      for (int64_t bh = 0; bh < B * hq; ++bh)
        for (int64_t rk = 0; rk < node.nq; ++rk)
          inverse_q[size_t(bh * node.nq + node.perm_q[size_t(bh * node.nq + rk)])] = int32_t(rk);
      for (int64_t i : row_list) {
        if (i < node.q0 || i >= node.q0 + node.nq) continue;
        for (int64_t b = 0; b < B; ++b)
          for (int64_t h = 0; h < hq; ++h) add_block_mass(cfg, q, k, node, inverse_q, b, i, h, qa);
      }
    }
    if (qa.block_entries > 0) {
      qa.block_mass /= double(qa.block_entries);
      qa.random_block_mass /= double(qa.block_entries);
    }
  }
  return qa;
}

}  // namespace longattn
