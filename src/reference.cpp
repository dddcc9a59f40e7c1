// Float64 dense reference (see reference.hpp). Deliberately plain: two passes per row (max, then
// sum), no tiling, every logit computed.
#include "reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "quant.hpp"

namespace longattn {

void reference_attention(const AttentionConfig& cfg, const View& q, const View& k, const View& v,
                         int64_t q_pos0, std::vector<double>& out, std::vector<double>& lse,
                         const std::vector<int64_t>& rows, const ReferenceExtras& ex) {
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  const int64_t batch = q.shape[0], n_q = q.shape[1], n_k = k.shape[1];
  const int64_t hq = cfg.n_q_heads, group = cfg.n_q_heads / cfg.n_kv_heads;
  const int64_t d = cfg.head_dim, dv = cfg.head_dim_v;
  std::vector<int64_t> row_list = rows;
  if (row_list.empty())
    for (int64_t i = 0; i < n_q; ++i) row_list.push_back(i);
  const int64_t R = int64_t(row_list.size());
  out.assign(size_t(batch * R * hq * dv), 0.0);
  lse.assign(size_t(batch * R * hq), kNegInf);

  std::vector<double> qrow(static_cast<size_t>(d)), logits(static_cast<size_t>(n_k));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t r = 0; r < R; ++r) {
      const int64_t i = row_list[size_t(r)];
      const int64_t qp = q_pos0 + i;
      for (int64_t h = 0; h < hq; ++h) {
        const int64_t hk = h / group;
        for (int64_t c = 0; c < d; ++c) qrow[size_t(c)] = load_element(q, b, i, h, c);
        double mx = kNegInf;
        for (int64_t j = 0; j < n_k; ++j) {
          double& s = logits[size_t(j)];
          s = kNegInf;
          if (!cfg.mask.allows(qp, j)) continue;
          double bias = 0;
          if (ex.mask.data) {
            const double mv = load_element(ex.mask, ex.mask.shape[0] == 1 ? 0 : b, i, ex.mask.shape[2] == 1 ? 0 : h, j);
            if (mv == kNegInf) continue;
            bias = ex.slopes ? double(ex.slopes[h]) * mv : mv;
          } else if (ex.slopes) {
            bias = -double(ex.slopes[h]) * double(qp > j ? qp - j : j - qp);
          }
          double dot = 0;
          for (int64_t c = 0; c < d; ++c) dot += qrow[size_t(c)] * double(load_element(k, b, j, hk, c));
          dot *= double(cfg.scale);
          if (cfg.softcap > 0) dot = double(cfg.softcap) * std::tanh(dot / double(cfg.softcap));
          s = dot + bias;
          if (std::isnan(s) || s > mx) mx = std::isnan(mx) ? mx : s;
        }
        // a sink is one more term of the denominator, with no value
        const double sink = ex.sinks ? double(ex.sinks[h]) : kNegInf;
        const double ref = std::isnan(mx) ? mx : std::max(mx, sink);
        double* o = &out[size_t(((b * R + r) * hq + h) * dv)];
        if (ref == kNegInf) continue;  // empty row: O = 0, LSE = −inf
        double sum = ex.sinks ? std::exp(sink - ref) : 0.0;
        for (int64_t j = 0; j < n_k; ++j) {
          if (logits[size_t(j)] == kNegInf) continue;
          const double p = std::exp(logits[size_t(j)] - ref);
          sum += p;
          for (int64_t c = 0; c < dv; ++c) o[c] += p * double(load_element(v, b, j, hk, c));
        }
        for (int64_t c = 0; c < dv; ++c) o[c] /= sum;
        lse[size_t((b * R + r) * hq + h)] = ref + std::log(sum);
      }
    }
}

}  // namespace longattn
