#include "ring_plan.hpp"

#include <algorithm>

namespace longattn {
namespace {

// Key rows of `block` that the query pieces need, as attend items (ordered by piece, then rows).
std::vector<AttendItem> needed_items(const Mask& mask, const std::vector<QueryPiece>& pieces,
                                     const Segments& block) {
  std::vector<AttendItem> items;
  for (size_t p = 0; p < pieces.size(); ++p) {
    const Interval q{pieces[p].pos0, pieces[p].pos0 + pieces[p].len};
    for (const Segment& g : block) {
      Interval need[2];
      const int n = needed_keys(mask, q, {g.pos0, g.pos0 + g.len}, need);
      for (int i = 0; i < n; ++i)
        items.push_back({int32_t(p), g.row0 + (need[i].lo - g.pos0), need[i].hi - need[i].lo, need[i].lo});
    }
  }
  return items;
}

// Sorted, merged union of row ranges.
std::vector<RowRange> union_of(std::vector<RowRange> r) {
  std::sort(r.begin(), r.end(), [](const RowRange& a, const RowRange& b) { return a.row0 < b.row0; });
  std::vector<RowRange> out;
  for (const RowRange& x : r) {
    if (x.len <= 0) continue;
    if (!out.empty() && x.row0 <= out.back().row0 + out.back().len) {
      const int64_t end = std::max(out.back().row0 + out.back().len, x.row0 + x.len);
      out.back().len = end - out.back().row0;
    } else {
      out.push_back(x);
    }
  }
  return out;
}

}  // namespace

int64_t RingPlan::attend_count() const {
  int64_t n = 0;
  for (const auto& step : steps)
    for (const RankStep& rs : step) n += int64_t(rs.attends.size());
  return n;
}

int64_t RingPlan::rows_sent() const {
  int64_t n = 0;
  for (const auto& step : steps)
    for (const RankStep& rs : step)
      for (const RowRange& r : rs.send) n += r.len;
  return n;
}

RingPlan plan_ring(const Mask& mask, const std::vector<Segments>& q_shards, const std::vector<Segments>& kv_shards,
                   bool ring) {
  RingPlan plan;
  const int32_t N = int32_t(q_shards.size());
  plan.n_ranks = N;
  plan.blocks = kv_shards;
  plan.pieces.resize(size_t(N));
  for (int32_t r = 0; r < N; ++r)
    for (const Segment& g : split_at_globals(q_shards[size_t(r)], mask.n_global))
      plan.pieces[size_t(r)].push_back({g.row0, g.pos0, g.len});

  // need[t][r]: what rank r attends to at step t, i.e. of block (r − t) mod N
  const int32_t max_steps = ring ? N : 1;
  using Items = std::vector<AttendItem>;
  std::vector<std::vector<Items>> need(static_cast<size_t>(max_steps), std::vector<Items>(static_cast<size_t>(N)));
  int32_t last_step = 0;
  for (int32_t t = 0; t < max_steps; ++t)
    for (int32_t r = 0; r < N; ++r) {
      const int32_t s = ((r - t) % N + N) % N;
      need[size_t(t)][size_t(r)] = needed_items(mask, plan.pieces[size_t(r)], kv_shards[size_t(s)]);
      if (!need[size_t(t)][size_t(r)].empty()) last_step = std::max(last_step, t);
    }
  plan.n_steps = last_step + 1;
  plan.steps.assign(size_t(plan.n_steps), std::vector<RankStep>(size_t(N)));
  for (int32_t t = 0; t < plan.n_steps; ++t)
    for (int32_t r = 0; r < N; ++r) {
      RankStep& rs = plan.steps[size_t(t)][size_t(r)];
      rs.block = ((r - t) % N + N) % N;
      rs.attends = need[size_t(t)][size_t(r)];
    }
  // Sends, from the last step backwards: what rank r forwards at step t is what rank r + 1 needs
  // at step t + 1 plus what rank r + 1 itself forwards then.
  for (int32_t t = plan.n_steps - 2; t >= 0; --t)
    for (int32_t r = 0; r < N; ++r) {
      const RankStep& next = plan.steps[size_t(t) + 1][size_t((r + 1) % N)];
      std::vector<RowRange> rows = next.send;
      for (const AttendItem& it : next.attends) rows.push_back({it.k_row0, it.k_len});
      plan.steps[size_t(t)][size_t(r)].send = union_of(rows);
    }
  return plan;
}

}  // namespace longattn
