// SPARSE planner: exact attention under the whole mask predicate (specs/sparse.md)
//
//   allowed(qp, kp) = (!causal || kp ≤ qp) && (band(qp − kp) || kp < n_global || qp < n_global)
//
// Query i sits at position q_pos0 + i, so the global query rows (qp < n_global) are a prefix
// of the rows. Two `attend` calls, each with the full predicate:
//   1. global query rows [0, n_gq): every key (under causal), a dense pass of n_gq × n_k;
//   2. the other rows: the backend visits only key tiles inside the band ∪ the global keys
//      (tile classification skip / full / partial on positions), O(n·(w + g)) work.
// Both write straight into out/lse; rows with no allowed key get O = 0, LSE = −inf. The ggml-style
// extras pass through: the additive mask is sliced with the query rows, ALiBi follows positions
// and the per-head sinks act once per row.
#include <algorithm>

#include "problem.hpp"

namespace longattn {

namespace {

View rows_of(View v, int64_t r0, int64_t n) {
  v.data = static_cast<char*>(v.data) + r0 * v.strides[1];
  v.shape[1] = n;
  return v;
}

// attend over query rows [r0, r0 + n) of the problem, every key.
void attend_rows(Backend& backend, const Problem& p, int64_t r0, int64_t n) {
  AttendArgs a = p.attend_args();
  a.n_q = n;
  a.q = rows_of(p.q, r0, n);
  a.out = rows_of(p.out, r0, n);
  if (p.lse.data) a.lse = rows_of(p.lse, r0, n);
  if (p.mask.data) a.add_mask = rows_of(p.mask, r0, n);  // ggml-style additive mask, per query row
  a.q_pos0 = p.q_pos0 + r0;
  backend.attend(a);
}

}  // namespace

void run_sparse(Backend& backend, const Problem& p) {
  const int64_t global_rows = std::clamp<int64_t>(p.cfg->mask.n_global - p.q_pos0, 0, p.n_q);
  if (global_rows > 0) attend_rows(backend, p, 0, global_rows);
  if (global_rows < p.n_q) attend_rows(backend, p, global_rows, p.n_q - global_rows);
}

}  // namespace longattn
