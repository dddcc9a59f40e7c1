#include "ring_layout.hpp"

#include <algorithm>
#include <limits>

namespace longattn {
namespace {

constexpr int64_t kNoLimitLow = std::numeric_limits<int64_t>::min() / 4;
constexpr int64_t kNoLimitHigh = std::numeric_limits<int64_t>::max() / 4;

void push_segment(Segments& s, int64_t src0, int64_t len, int64_t base) {
  if (len <= 0) return;
  if (!s.empty() && s.back().src0 + s.back().len == src0) {  // continues the previous segment
    s.back().len += len;
    return;
  }
  Segment g;
  g.row0 = shard_rows(s);
  g.src0 = src0;
  g.pos0 = base + src0;
  g.len = len;
  s.push_back(g);
}

}  // namespace

Segments shard_segments(RingLayout layout, int64_t n, int32_t n_ranks, int32_t rank, int64_t base) {
  Segments s;
  if (layout == RingLayout::contiguous) {
    const int64_t b = n * rank / n_ranks, e = n * (rank + 1) / n_ranks;
    push_segment(s, b, e - b, base);
    return s;
  }
  const int64_t chunks = 2 * int64_t(n_ranks);
  auto chunk_begin = [&](int64_t c) { return n * c / chunks; };
  const int64_t first = rank, second = chunks - 1 - rank;
  push_segment(s, chunk_begin(first), chunk_begin(first + 1) - chunk_begin(first), base);
  push_segment(s, chunk_begin(second), chunk_begin(second + 1) - chunk_begin(second), base);
  return s;
}

int64_t shard_rows(const Segments& s) {
  int64_t n = 0;
  for (const Segment& g : s) n += g.len;
  return n;
}

Segments split_at_globals(const Segments& s, int64_t n_global) {
  Segments out;
  for (const Segment& g : s) {
    const int64_t cut = std::clamp<int64_t>(n_global - g.pos0, 0, g.len);  // rows before the cut are global
    if (cut > 0 && cut < g.len) {
      out.push_back({g.row0, g.src0, g.pos0, cut});
      out.push_back({g.row0 + cut, g.src0 + cut, g.pos0 + cut, g.len - cut});
    } else {
      out.push_back(g);
    }
  }
  return out;
}

int needed_keys(const Mask& m, Interval q, Interval keys, Interval out[2]) {
  if (q.empty() || keys.empty()) return 0;
  const int64_t q_first = q.lo, q_last = q.hi - 1;
  // causal: keys at positions <= the last query
  const int64_t causal_end = m.causal ? q_last + 1 : kNoLimitHigh;
  Interval cand[2];
  int n = 0;
  if (q_last < m.n_global) {
    // global query rows see every key (under causality)
    cand[n++] = {kNoLimitLow, causal_end};
  } else {
    // band: q − kp <= window_left and kp − q <= window_right for some q in the piece
    const int64_t band_lo = m.window_left >= 0 ? q_first - m.window_left : kNoLimitLow;
    const int64_t band_hi = m.window_right >= 0 ? q_last + m.window_right + 1 : kNoLimitHigh;
    if (m.n_global > 0) cand[n++] = {kNoLimitLow, std::min(m.n_global, causal_end)};
    cand[n++] = {band_lo, std::min(band_hi, causal_end)};
  }
  int count = 0;
  for (int i = 0; i < n; ++i) {
    const Interval c{std::max(cand[i].lo, keys.lo), std::min(cand[i].hi, keys.hi)};
    if (c.empty()) continue;
    if (count > 0 && c.lo <= out[count - 1].hi) {  // overlapping or adjacent: one interval
      out[count - 1].lo = std::min(out[count - 1].lo, c.lo);
      out[count - 1].hi = std::max(out[count - 1].hi, c.hi);
    } else {
      out[count++] = c;
    }
  }
  if (count == 2 && out[1].lo < out[0].lo) std::swap(out[0], out[1]);
  return count;
}

}  // namespace longattn
