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
void reference_attention(const AttentionConfig& cfg, const View& q, const View& k, const View& v,
                         int64_t q_pos0, std::vector<double>& out, std::vector<double>& lse,
                         const std::vector<int64_t>& rows = {});

}  // namespace longattn
