// Ring mode, part 2: the schedule as plain data (which rank attends to which key rows at which
// step, and which rows travel), built on the host from the shards' positions and the mask. The
// executor (ring.cpp) turns it into backend calls; tests replay it step by step.
//
// Ring: at step t rank r holds the K/V block of rank (r − t) mod N (its own at t = 0) and, while
// it attends its queries to it, forwards the rows later holders still need to rank r + 1. A block
// row travels only as far as the last rank that needs it, so with a sliding window the ring
// shrinks to a halo exchange plus the global prefix, and steps nobody needs are not run at all.
// Decode (replicated queries): one step, every rank attends to its own block only.
#pragma once

#include <cstdint>
#include <vector>

#include "mask.hpp"
#include "ring_layout.hpp"

namespace longattn {

// Query rows [row0, row0 + len) of a rank's shard at positions pos0 …; each piece has its own
// running state (see RunningState) at row offset row0.
struct QueryPiece {
  int64_t row0 = 0, pos0 = 0, len = 0;
};

// One attend call: query piece `piece` against key rows [k_row0, k_row0 + k_len) of the block
// held at that step, whose positions start at k_pos0.
struct AttendItem {
  int32_t piece = 0;
  int64_t k_row0 = 0, k_len = 0, k_pos0 = 0;
};

struct RowRange {
  int64_t row0 = 0, len = 0;
};

// What one rank does in one step.
struct RankStep {
  int32_t block = 0;                // rank whose K/V block it holds
  std::vector<AttendItem> attends;  // empty: nothing of this block is needed here
  std::vector<RowRange> send;       // rows of the block forwarded to rank + 1 for the next step
};

struct RingPlan {
  int32_t n_ranks = 0;
  int32_t n_steps = 0;                          // steps actually run (≤ n_ranks)
  std::vector<std::vector<QueryPiece>> pieces;  // [rank]
  std::vector<Segments> blocks;                 // [rank] the K/V rows each rank owns
  std::vector<std::vector<RankStep>> steps;     // [step][rank]

  // Totals over the whole plan (tests, docs): attend calls, and K/V rows forwarded.
  int64_t attend_count() const;
  int64_t rows_sent() const;
};

// Builds the schedule. q_shards[r] / kv_shards[r]: the query and key segments rank r holds.
// ring = false (decode): one step, each rank attends only to its own block.
RingPlan plan_ring(const Mask& mask, const std::vector<Segments>& q_shards,
                   const std::vector<Segments>& kv_shards, bool ring);

}  // namespace longattn
