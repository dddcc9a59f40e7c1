// Float64 dense reference (see reference.hpp). Deliberately plain: two passes per row (max, then
// sum), no tiling, every logit computed.
#include "reference.hpp"

#include <cmath>
#include <limits>

#include "half.hpp"

namespace longattn {

void reference_attention(const AttentionConfig& cfg, const View& q, const View& k, const View& v,
                         int64_t q_pos0, std::vector<double>& out, std::vector<double>& lse,
                         const std::vector<int64_t>& rows) {
  const int64_t batch = q.shape[0], n_q = q.shape[1], n_k = k.shape[1];
  const int64_t hq = cfg.n_q_heads, group = cfg.n_q_heads / cfg.n_kv_heads;
  const int64_t d = cfg.head_dim, dv = cfg.head_dim_v;
  std::vector<int64_t> row_list = rows;
  if (row_list.empty())
    for (int64_t i = 0; i < n_q; ++i) row_list.push_back(i);
  const int64_t R = int64_t(row_list.size());
  out.assign(size_t(batch * R * hq * dv), 0.0);
  lse.assign(size_t(batch * R * hq), -std::numeric_limits<double>::infinity());

  std::vector<double> qrow(static_cast<size_t>(d)), logits(static_cast<size_t>(n_k));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t r = 0; r < R; ++r) {
      const int64_t i = row_list[size_t(r)];
      const int64_t qp = q_pos0 + i;
      for (int64_t h = 0; h < hq; ++h) {
        const int64_t hk = h / group;
        for (int64_t c = 0; c < d; ++c)
          qrow[size_t(c)] = load_as_float(q.at<char>(b, i, h, c), q.dtype);
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < n_k; ++j) {
          if (!cfg.mask.allows(qp, j)) {
            logits[size_t(j)] = -std::numeric_limits<double>::infinity();
            continue;
          }
          double s = 0;
          for (int64_t c = 0; c < d; ++c)
            s += qrow[size_t(c)] * double(load_as_float(k.at<char>(b, j, hk, c), k.dtype));
          s *= double(cfg.scale);
          if (cfg.softcap > 0) s = double(cfg.softcap) * std::tanh(s / double(cfg.softcap));
          logits[size_t(j)] = s;
          if (std::isnan(s) || s > mx) mx = std::isnan(mx) ? mx : s;
        }
        double* o = &out[size_t(((b * R + r) * hq + h) * dv)];
        if (mx == -std::numeric_limits<double>::infinity()) continue;  // empty row: O = 0
        double sum = 0;
        for (int64_t j = 0; j < n_k; ++j) {
          if (logits[size_t(j)] == -std::numeric_limits<double>::infinity()) continue;
          const double p = std::exp(logits[size_t(j)] - mx);
          sum += p;
          for (int64_t c = 0; c < dv; ++c)
            o[c] += p * double(load_as_float(v.at<char>(b, j, hk, c), v.dtype));
        }
        for (int64_t c = 0; c < dv; ++c) o[c] /= sum;
        lse[size_t((b * R + r) * hq + h)] = mx + std::log(sum);
      }
    }
}

}  // namespace longattn
