// The random and data-dependent choices of one HyperAttention forward call (LSH codes, sorted
// orders, column samples), recorded or injected. Tests and the tool use this to compare backends
// bit for bit on the numeric part, to measure LSH quality (captured block mass), and to drive
// the algorithm with hand-made choices. Not part of the public C ABI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "problem.hpp"

namespace longattn {

// One non-causal HyperAttention node: query rows [q0, q0 + nq) of the problem (physical rows of
// q) against keys [k0, k0 + nk) (physical rows of k/v), every pair visible. Nodes are numbered
// in the (deterministic) order the planner visits them.
struct HyperNodeChoice {
  int32_t level = 0;    // recursion depth (0 = root), or kHyperFlatLevel for the flat/past part
  int32_t segment = 0;  // index of the node within its level
  int64_t q0 = 0, nq = 0, k0 = 0, nk = 0;
  int64_t n_blocks = 0;  // ⌈nk / block_size⌉
  // Per (batch, head) segments of the node's rows, exactly as the primitives use them:
  std::vector<uint16_t> codes_q;  // [(b·hq + h)·nq + i]   Gray-ranked codes (record only)
  std::vector<uint16_t> codes_k;  // [(b·hkv + h)·nk + j]  (record only)
  std::vector<int32_t> perm_q;    // [(b·hq + h)·nq + rank] = row within the node, by (code, index)
  std::vector<int32_t> perm_k;    // [(b·hkv + h)·nk + rank]
  std::vector<uint32_t> sample_ranks;  // [(b·hkv + h)·m + j] sampled ranks in the sorted key order
};

// Level number of the non-causal part (non-causal calls, and the past keys of a causal chunk).
constexpr int32_t kHyperFlatLevel = 0xffff;

struct HyperChoices {
  enum class Mode {
    record,  // compute the choices as usual and append them to `nodes` (downloads codes/perms)
    replay,  // use `nodes` in order instead of computing codes, sorts and samples
  };
  Mode mode = Mode::record;
  std::vector<HyperNodeChoice> nodes;
  // Test knob: turn off the exact shortcuts (n_k < min_seq_len, a single block, causal leaves of
  // up to 2·block_size rows, whole-call FLASH fallbacks) so that every node runs the LSH path.
  bool force_hyper_path = false;
  size_t cursor = 0;  // replay position (reset by the planner at the start of a call)
};

// run_hyper with its choices recorded or injected (choices may be null: same as run_hyper).
void run_hyper_with_choices(Backend& backend, const Problem& p, HyperChoices* choices);

}  // namespace longattn
