// Float64 dense reference attention: the oracle every backend and algorithm is tested against.
// Same mask predicate and semantics as the library (positions, GQA, softcap, empty rows).
#pragma once

#include <cstdint>
#include <vector>

#include "problem.hpp"

namespace longattn {

// Host views. Computes, for each batch b, query row i in `rows` (all rows when rows is empty) and
// query head h:
//   out[((b * R + r) * hq + h) * dv + c]  (R = number of rows computed, r its index in `rows`)
//   lse[(b * R + r) * hq + h]             natural log; −inf for a row with no allowed key
// Rows with no allowed key get out = 0. The mask is cfg.mask; positions qpos = q_pos0 + i, kpos = j.
//
// Extras (ggml semantics, see longattn_forward_args): an additive mask {batch|1, n_q, 1|hq, n_k},
// per-head ALiBi slopes (m_h·mask with a mask, −m_h·|qp − kp| without), per-head sinks.
struct ReferenceExtras {
  View mask;                     // mask.data == nullptr: none
  const float* slopes = nullptr;
  const float* sinks = nullptr;
};

void reference_attention(const AttentionConfig& cfg, const View& q, const View& k, const View& v,
                         int64_t q_pos0, std::vector<double>& out, std::vector<double>& lse,
                         const std::vector<int64_t>& rows = {}, const ReferenceExtras& extras = {});

}  // namespace longattn
