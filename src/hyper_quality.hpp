// Quality of a HyperAttention result against exact attention (float64 reference), for the tool's
// --check and for the tests' quality table (specs/hyperattention.md, "Quality regression").
#pragma once

#include <cstdint>
#include <vector>

#include "hyper_choices.hpp"
#include "problem.hpp"

namespace longattn {

struct HyperQuality {
  // Means over checked (batch, row, head) entries with a non-empty exact row:
  double rel_err = 0;  // metric B: ‖õ_i − o_i‖ / ‖o_i‖ (entries with o_i = 0 are skipped)
  double lse_err = 0;  // metric C: |L̃_i − L_i|
  int64_t entries = 0;
  // Share of a row's exact softmax mass (over the node's keys) inside its LSH block, averaged
  // over every (checked row, head, hashed node) triple; the random baseline is the mean of
  // (block keys / node keys) over the same triples. 0 / 0 with 0 block_entries when no node was
  // hashed (the call was exact).
  double block_mass = 0;
  double random_block_mass = 0;
  int64_t block_entries = 0;
};

// Host views only. cfg, q, k, v, q_pos0: the call that produced out (any float dtype) and lse
// (f32 [B, n_q, hq, 1]). rows: query rows to check (empty: all; checking costs O(rows·n_k·d) in
// float64 per head). choices: the recorded choices of that call (Mode::record), or null to skip
// the block mass.
// Metrics B and C of (out, lse) on `rows` against a reference that reference_attention computed
// for the same rows (lets a caller reuse one reference for several seeds). Fills rel_err,
// lse_err and entries of q.
void hyper_output_errors(const AttentionConfig& cfg, const View& out, const View& lse,
                         const std::vector<int64_t>& rows, const std::vector<double>& ref_out,
                         const std::vector<double>& ref_lse, HyperQuality& q);

HyperQuality measure_hyper_quality(const AttentionConfig& cfg, const View& q, const View& k,
                                   const View& v, int64_t q_pos0, const View& out, const View& lse,
                                   const HyperChoices* choices, const std::vector<int64_t>& rows = {});

}  // namespace longattn
