// Ring mode, part 1: which tokens each rank holds, and which keys a set of queries can need.
//
// A shard is the rows a rank holds of a sequence, as 0–2 position segments: rows
// [row0, row0 + len) of the shard hold positions [pos0, pos0 + len). Contiguous layout: rank r of
// N holds tokens [r·n/N, (r+1)·n/N). Zigzag layout (causal balance): the sequence is cut into 2N
// chunks [c·n/2N, (c+1)·n/2N) and rank r holds chunks r and 2N−1−r, in that order (one segment
// when they touch: rank N−1). Integer division throughout, so lengths not divisible by N (or 2N),
// and shorter than N, simply give shards that differ by one token or are empty.
#pragma once

#include <cstdint>
#include <vector>

#include "mask.hpp"

namespace longattn {

enum class RingLayout { contiguous, zigzag };

struct Segment {
  int64_t row0 = 0;  // first row of the segment within the shard
  int64_t src0 = 0;  // first row of the segment within the whole sequence tensor
  int64_t pos0 = 0;  // position of its first row
  int64_t len = 0;   // rows
};
using Segments = std::vector<Segment>;  // at most two, rows consecutive, no empty segment

// Positions [lo, hi) (half-open).
struct Interval {
  int64_t lo = 0, hi = 0;
  bool empty() const { return hi <= lo; }
};

// The shard of rank r among n_ranks over rows [0, n) of a sequence whose row i is at position
// base + i.
Segments shard_segments(RingLayout layout, int64_t n, int32_t n_ranks, int32_t rank, int64_t base);

// Rows of a shard (sum of its segment lengths).
int64_t shard_rows(const Segments& s);

// Splits the segments where positions cross n_global, so that every query piece is either all
// global rows (position < n_global) or none: the two kinds need different key ranges.
Segments split_at_globals(const Segments& s, int64_t n_global);

// Key positions within `keys` that query positions `q` (a piece from split_at_globals) may attend
// to under mask m: at most two sorted, disjoint, non-adjacent intervals (the global prefix and the
// band, each cut by causality). A superset of the allowed keys that is exact at interval level:
// every key outside the result is masked for every query in q. Returns the interval count.
int needed_keys(const Mask& m, Interval q, Interval keys, Interval out[2]);

}  // namespace longattn
