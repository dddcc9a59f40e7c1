// Ring mode on CPU virtual devices: the layouts, the key ranges a query piece needs, a
// step-by-step replay of the schedule (every allowed (query, key) pair attended exactly once,
// every block read only after it arrived and before it is overwritten), and the public API
// against the float64 reference and against single-device FLASH/SPARSE: N ∈ {1, 2, 3, 4, 8},
// contiguous and zigzag, causal or not, GQA 1/4/8, lengths not divisible by 2N and shorter than
// N, windows + globals, decode (merged partials), whole host tensors and per-rank shards.
#include <algorithm>
#include <map>
#include <tuple>

#include "common.hpp"
#include "ring_test_util.hpp"
#include "ring.hpp"
#include "ring_layout.hpp"
#include "ring_plan.hpp"

using namespace test;
using longattn::Interval;
using longattn::Mask;
using longattn::RingLayout;
using longattn::RingPlan;
using longattn::Segments;

namespace {

const int32_t kRanks[] = {1, 2, 3, 4, 8};

// ---- host-side helpers -------------------------------------------------------------------------

Mask make_mask(bool causal, int64_t wl, int64_t wr, int64_t g) {
  Mask m;
  m.causal = causal;
  m.window_left = wl;
  m.window_right = wr;
  m.n_global = g;
  return m;
}

std::vector<Segments> shards_of(RingLayout l, int64_t n, int32_t N, int64_t base) {
  std::vector<Segments> s;
  for (int32_t r = 0; r < N; ++r) s.push_back(longattn::shard_segments(l, n, N, r, base));
  return s;
}

// Replays a plan the way the executor runs it and checks it. Each rank has two receive slots;
// a slot holds, per block row, the (block, step) it was written for. Returns the number of
// (piece row, key) pairs attended.
int64_t replay(const RingPlan& plan, const Mask& m, bool ring) {
  const int32_t N = plan.n_ranks;
  // slot[r][i][row] = (block, step the data is meant for) or (-1, -1)
  std::vector<std::vector<std::map<int64_t, std::pair<int32_t, int32_t>>>> slot(
      static_cast<size_t>(N), std::vector<std::map<int64_t, std::pair<int32_t, int32_t>>>(2));
  std::map<std::tuple<int32_t, int64_t, int64_t>, int> seen;  // (rank, query pos, key pos) → times
  for (int32_t t = 0; t < plan.n_steps; ++t) {
    // every read of this step, checked against the data present before the step's writes
    for (int32_t r = 0; r < N; ++r) {
      const longattn::RankStep& rs = plan.steps[size_t(t)][size_t(r)];
      REQUIRE(rs.block == ((r - t) % N + N) % N);
      const Segments& blk = plan.blocks[size_t(rs.block)];
      auto present = [&](int64_t row) {
        if (t == 0) return row >= 0 && row < longattn::shard_rows(blk);
        auto it = slot[size_t(r)][size_t(t % 2)].find(row);
        return it != slot[size_t(r)][size_t(t % 2)].end() && it->second == std::make_pair(rs.block, t);
      };
      for (const longattn::AttendItem& it : rs.attends) {
        const longattn::QueryPiece& p = plan.pieces[size_t(r)][size_t(it.piece)];
        for (int64_t j = it.k_row0; j < it.k_row0 + it.k_len; ++j) {
          REQUIRE(present(j));
          // the key's position from the block's segments
          int64_t kp = -1;
          for (const longattn::Segment& g : blk)
            if (j >= g.row0 && j < g.row0 + g.len) kp = g.pos0 + (j - g.row0);
          REQUIRE(kp == it.k_pos0 + (j - it.k_row0));
          for (int64_t i = 0; i < p.len; ++i) ++seen[{r, p.pos0 + i, kp}];
        }
      }
      for (const longattn::RowRange& rr : rs.send)
        for (int64_t j = rr.row0; j < rr.row0 + rr.len; ++j) REQUIRE(present(j));
      if (!ring) REQUIRE(rs.send.empty());
    }
    // the step's sends land in the next rank's other slot
    for (int32_t r = 0; r < N; ++r) {
      const longattn::RankStep& rs = plan.steps[size_t(t)][size_t(r)];
      REQUIRE((rs.send.empty() || t + 1 < plan.n_steps));
      for (const longattn::RowRange& rr : rs.send)
        for (int64_t j = rr.row0; j < rr.row0 + rr.len; ++j)
          slot[size_t((r + 1) % N)][size_t((t + 1) % 2)][j] = {rs.block, t + 1};
    }
  }
  // every allowed pair exactly once (no key folded twice into a running state), nothing else
  int64_t pairs = 0;
  for (const auto& entry : seen) {
    REQUIRE(entry.second == 1);
    ++pairs;
  }
  for (int32_t r = 0; r < N; ++r)
    for (const longattn::QueryPiece& p : plan.pieces[size_t(r)])
      for (int64_t i = 0; i < p.len; ++i)
        for (int32_t s = 0; s < (ring ? N : 1); ++s) {
          const int32_t b = ring ? s : r;
          for (const longattn::Segment& g : plan.blocks[size_t(b)])
            for (int64_t kp = g.pos0; kp < g.pos0 + g.len; ++kp)
              if (m.allows(p.pos0 + i, kp)) REQUIRE(seen.count({r, p.pos0 + i, kp}) == 1);
        }
  return pairs;
}

// ---- API helpers --------------------------------------------------------------------------------

struct RingContext {
  longattn_context* ctx = nullptr;
  RingContext(int32_t ranks, int32_t layout, int32_t threads = 2) {
    longattn_context_options o = LONGATTN_CONTEXT_OPTIONS_INIT;
    o.backend = LONGATTN_BACKEND_CPU;
    o.n_threads = threads;
    o.ring_devices = ranks;
    o.ring_layout = layout;
    REQUIRE_MESSAGE(longattn_context_create(&o, &ctx) == LONGATTN_OK, longattn_last_create_error());
  }
  ~RingContext() { longattn_context_destroy(ctx); }
  RingContext(const RingContext&) = delete;
  RingContext& operator=(const RingContext&) = delete;
};

using Case = RingCase;


// Ring result against the float64 reference and against the plain single-device context.
void check_ring(const Case& c, int32_t ranks, int32_t layout, uint64_t seed) {
  INFO(describe(c), " ranks=", ranks, " layout=", layout);
  const Inputs in(c, seed);
  RingContext ring(ranks, layout);
  const Outputs got = forward(ring.ctx, c, in);
  REQUIRE_MESSAGE(got.status == LONGATTN_OK, got.error);
  check_against_reference(c, in, got, tolerance(c.ot), 1e-4);
  Context plain(LONGATTN_BACKEND_CPU, 2);
  const Outputs want = forward(plain.ctx, c, in);
  REQUIRE(want.status == LONGATTN_OK);
  const MaxDiff d = max_diff(got, want);
  CHECK(d.lse_mismatch == 0);
  CHECK(d.lse < 2e-5);
  CHECK(d.o < (c.ot == LONGATTN_DTYPE_F32 ? 2e-5 : c.ot == LONGATTN_DTYPE_F16 ? 2e-3 : 2e-2));
}

}  // namespace

// ---- layouts and needed keys --------------------------------------------------------------------

TEST_CASE("ring: every layout covers each token exactly once, as longattn_ring_shard says") {
  for (int32_t N : kRanks)
    for (int64_t n : {0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 37, 100, 129})
      for (RingLayout l : {RingLayout::contiguous, RingLayout::zigzag}) {
        INFO("N=", N, " n=", n, " zigzag=", l == RingLayout::zigzag);
        std::vector<int> hits(size_t(n), 0);
        int64_t rows_max = 0, rows_min = n;
        for (int32_t r = 0; r < N; ++r) {
          const Segments s = longattn::shard_segments(l, n, N, r, 1000);
          CHECK(s.size() <= 2);
          int64_t row = 0;
          for (const longattn::Segment& g : s) {
            CHECK(g.len > 0);
            CHECK(g.row0 == row);
            CHECK(g.pos0 == 1000 + g.src0);
            row += g.len;
            for (int64_t i = 0; i < g.len; ++i) ++hits[size_t(g.src0 + i)];
          }
          rows_max = std::max(rows_max, row);
          rows_min = std::min(rows_min, row);
          // the public helper stores the same tokens in the same order
          int64_t first[2], count[2];
          REQUIRE(longattn_ring_shard(l == RingLayout::zigzag ? LONGATTN_RING_LAYOUT_ZIGZAG : LONGATTN_RING_LAYOUT_CONTIGUOUS,
                                      n, N, r, first, count) == LONGATTN_OK);
          std::vector<int64_t> api_rows, seg_rows;
          for (int i = 0; i < 2; ++i)
            for (int64_t j = 0; j < count[i]; ++j) api_rows.push_back(first[i] + j);
          for (const longattn::Segment& g : s)
            for (int64_t j = 0; j < g.len; ++j) seg_rows.push_back(g.src0 + j);
          CHECK(api_rows == seg_rows);
        }
        for (int h : hits) CHECK(h == 1);
        CHECK(rows_max - rows_min <= (l == RingLayout::zigzag ? 2 : 1));  // balanced
      }
  int64_t f[2], c[2];
  CHECK(longattn_ring_shard(LONGATTN_RING_LAYOUT_AUTO, 10, 2, 0, f, c) == LONGATTN_ERROR_UNKNOWN_ENUM);
  CHECK(longattn_ring_shard(LONGATTN_RING_LAYOUT_ZIGZAG, 10, 2, 2, f, c) == LONGATTN_ERROR_INVALID_ARGUMENT);
  CHECK(longattn_ring_shard(LONGATTN_RING_LAYOUT_ZIGZAG, 10, 2, 0, nullptr, c) == LONGATTN_ERROR_NULL_POINTER);
}

TEST_CASE("ring: needed_keys holds every allowed key and each interval is reachable") {
  std::mt19937_64 rng(42);
  for (int it = 0; it < 4000; ++it) {
    auto small = [&](int64_t lo, int64_t hi) { return lo + int64_t(rng() % uint64_t(hi - lo + 1)); };
    const Mask m = make_mask(rng() % 2, small(-1, 12), small(-1, 12), rng() % 3 ? 0 : small(1, 8));
    Interval q{small(0, 40), 0}, k{small(0, 40), 0};
    q.hi = q.lo + small(1, 12);
    k.hi = k.lo + small(1, 12);
    if (m.n_global > 0 && q.lo < m.n_global && q.hi > m.n_global) q.hi = m.n_global;  // a piece is one kind
    Interval out[2];
    const int n = longattn::needed_keys(m, q, k, out);
    INFO("causal=", m.causal, " w=", m.window_left, ":", m.window_right, " g=", m.n_global, " q=[", q.lo, ",",
         q.hi, ") k=[", k.lo, ",", k.hi, ")");
    REQUIRE(n <= 2);
    if (n == 2) CHECK(out[0].hi < out[1].lo);
    for (int64_t kp = k.lo; kp < k.hi; ++kp) {
      bool allowed = false;
      for (int64_t qp = q.lo; qp < q.hi; ++qp) allowed = allowed || m.allows(qp, kp);
      bool inside = false;
      for (int i = 0; i < n; ++i) inside = inside || (kp >= out[i].lo && kp < out[i].hi);
      if (allowed) CHECK(inside);
    }
    for (int i = 0; i < n; ++i) {  // both ends of every interval are allowed for some query
      CHECK(out[i].lo >= k.lo);
      CHECK(out[i].hi <= k.hi);
      for (int64_t kp : {out[i].lo, out[i].hi - 1}) {
        bool allowed = false;
        for (int64_t qp = q.lo; qp < q.hi; ++qp) allowed = allowed || m.allows(qp, kp);
        CHECK(allowed);
      }
    }
  }
}

// ---- the schedule, step by step ----------------------------------------------------------------

TEST_CASE("ring: step-by-step replay of the schedule") {
  struct MaskCase {
    bool causal;
    int64_t wl, wr, g;
  };
  const MaskCase masks[] = {{false, -1, -1, 0}, {true, -1, -1, 0}, {true, 5, -1, 0}, {true, 9, -1, 3},
                            {false, 4, 4, 0},   {false, 6, 2, 2},  {true, 0, -1, 1}, {false, -1, 3, 0}};
  for (int32_t N : kRanks)
    for (int64_t n : {1, 3, 7, 20, 37, 64})
      for (RingLayout l : {RingLayout::contiguous, RingLayout::zigzag})
        for (const MaskCase& mc : masks) {
          const Mask m = make_mask(mc.causal, mc.wl, mc.wr, mc.g);
          INFO("N=", N, " n=", n, " zigzag=", l == RingLayout::zigzag, " causal=", mc.causal, " w=", mc.wl, ":",
               mc.wr, " g=", mc.g);
          const auto kv = shards_of(l, n, N, 0);
          const RingPlan plan = longattn::plan_ring(m, kv, kv, true);
          CHECK(plan.n_steps >= 1);
          CHECK(plan.n_steps <= N);
          replay(plan, m, true);
          // decode: the same queries on every rank, no ring
          std::vector<Segments> rep(size_t(N), longattn::shard_segments(RingLayout::contiguous, 3, 1, 0, n - 3));
          const RingPlan dec = longattn::plan_ring(m, rep, shards_of(RingLayout::contiguous, n, N, 0), false);
          CHECK(dec.n_steps == 1);
          replay(dec, m, false);
        }
}

TEST_CASE("ring: a sliding window shrinks the ring to a halo exchange") {
  // contiguous, causal, window 15 < 64 tokens per rank: one extra step, 15 rows forwarded per rank
  const int32_t N = 8;
  const auto kv = shards_of(RingLayout::contiguous, 512, N, 0);
  const RingPlan swa = longattn::plan_ring(make_mask(true, 15, -1, 0), kv, kv, true);
  CHECK(swa.n_steps == 2);
  CHECK(swa.rows_sent() == 15 * (N - 1));
  // with 4 global sinks as well, the 4 first rows of rank 0 travel all the way
  const RingPlan sinks = longattn::plan_ring(make_mask(true, 15, -1, 4), kv, kv, true);
  CHECK(sinks.n_steps == N);
  CHECK(sinks.rows_sent() == (15 + 4) * (N - 1));
  // full causal zigzag (2N chunks of 32): every block makes the whole trip except the last chunk
  // of the sequence (rank 0's second), which no other rank needs
  const auto zz = shards_of(RingLayout::zigzag, 512, N, 0);
  const RingPlan causal = longattn::plan_ring(make_mask(true, -1, -1, 0), zz, zz, true);
  CHECK(causal.n_steps == N);
  CHECK(causal.rows_sent() == (512 - 32) * (N - 1));
  // … and balances the work: after the diagonal step every rank attends 2 chunks × 2 half-chunks
  for (int32_t t = 1; t < N; ++t)
    for (int32_t r = 0; r < N; ++r) {
      int64_t pairs = 0;
      for (const longattn::AttendItem& it : causal.steps[size_t(t)][size_t(r)].attends)
        pairs += it.k_len * causal.pieces[size_t(r)][size_t(it.piece)].len;
      CHECK(pairs == 2 * 32 * 32);
    }
}

// ---- the public API on CPU virtual devices ------------------------------------------------------

TEST_CASE("ring: FLASH over N virtual devices equals the reference and single-device FLASH") {
  uint64_t seed = 1;
  const std::pair<int32_t, int32_t> heads[] = {{8, 8}, {8, 2}, {8, 1}};  // GQA 1, 4, 8
  for (int32_t N : kRanks)
    for (int64_t n : {5, 37, 100})  // shorter than N (N = 8), not divisible by 2N
      for (bool causal : {false, true})
        for (int32_t layout : {LONGATTN_RING_LAYOUT_CONTIGUOUS, LONGATTN_RING_LAYOUT_ZIGZAG}) {
          Case c;
          c.n_q = c.n_k = n;
          c.causal = causal;
          c.hq = heads[seed % 3].first;
          c.hkv = heads[seed % 3].second;
          check_ring(c, N, layout, seed++);
        }
}

TEST_CASE("ring: SPARSE windows and globals, GQA, dtypes, strides, batches") {
  uint64_t seed = 100;
  struct W {
    bool causal;
    int32_t wl, wr, g;
  };
  const W windows[] = {{true, 15, -1, 0}, {true, 10, -1, 4}, {false, 8, 8, 0}, {false, 6, 3, 5}, {true, 0, -1, 1}};
  for (int32_t N : {2, 3, 4, 8})
    for (const W& w : windows)
      for (int32_t layout : {LONGATTN_RING_LAYOUT_CONTIGUOUS, LONGATTN_RING_LAYOUT_ZIGZAG}) {
        Case c;
        c.algo = LONGATTN_ALGORITHM_SPARSE;
        c.n_q = c.n_k = 67 + int64_t(seed % 5) * 13;
        c.causal = w.causal;
        c.wl = w.wl;
        c.wr = w.wr;
        c.g = w.g;
        c.hq = 4;
        c.hkv = seed % 2 ? 1 : 4;
        c.batch = seed % 3 == 0 ? 2 : 1;
        c.pad = seed % 4 == 0 ? 2 : 0;
        if (seed % 5 == 1) c.qt = c.kvt = c.ot = LONGATTN_DTYPE_BF16;
        if (seed % 5 == 3) c.kvt = c.ot = LONGATTN_DTYPE_F16;
        check_ring(c, N, layout, seed++);
      }
}

TEST_CASE("ring: queries other than the keys (offsets, rows with nothing allowed)") {
  uint64_t seed = 300;
  for (int32_t N : {3, 4})
    for (int64_t q_pos0 : {int64_t(LONGATTN_Q_POS_BOTTOM_RIGHT), int64_t(0), int64_t(-20), int64_t(150)}) {
      Case c;
      c.n_q = 40;
      c.n_k = 90;
      c.causal = true;
      c.q_pos0 = q_pos0;
      c.hq = 4;
      c.hkv = 1;
      check_ring(c, N, LONGATTN_RING_LAYOUT_AUTO, seed++);
      c.algo = LONGATTN_ALGORITHM_SPARSE;
      c.wl = 12;
      c.g = 3;
      check_ring(c, N, LONGATTN_RING_LAYOUT_AUTO, seed++);
    }
}

TEST_CASE("ring: decode merges per-rank partials") {
  uint64_t seed = 400;
  for (int32_t N : kRanks)
    for (int64_t n_q : {1, 4}) {
      Case c;
      c.n_q = n_q;
      c.n_k = 150 + int64_t(N);
      c.causal = true;
      c.hq = 8;
      c.hkv = 2;
      check_ring(c, N, LONGATTN_RING_LAYOUT_AUTO, seed++);
      c.algo = LONGATTN_ALGORITHM_SPARSE;
      c.wl = 40;
      c.g = 4;
      c.ot = LONGATTN_DTYPE_BF16;
      check_ring(c, N, LONGATTN_RING_LAYOUT_AUTO, seed++);
    }
}

TEST_CASE("ring: random shapes, masks, layouts, dtypes and strides") {
  std::mt19937_64 rng(777);
  auto pick = [&](std::initializer_list<int64_t> xs) { return *(xs.begin() + rng() % xs.size()); };
  const longattn_dtype dtypes[] = {LONGATTN_DTYPE_F32, LONGATTN_DTYPE_F16, LONGATTN_DTYPE_BF16};
  for (int i = 0; i < 100; ++i) {
    Case c;
    const int32_t N = int32_t(pick({1, 2, 3, 4, 8}));
    const int32_t layout = int32_t(rng() % 3);  // AUTO, CONTIGUOUS, ZIGZAG
    c.batch = pick({1, 1, 2});
    c.n_k = pick({1, 2, 9, 31, 64, 65, 97});
    c.n_q = rng() % 3 ? c.n_k : pick({1, 5, 40, 97});
    c.hkv = int32_t(pick({1, 2}));
    c.hq = c.hkv * int32_t(pick({1, 2, 4}));
    c.d = int32_t(pick({8, 16, 24}));
    c.dv = rng() % 3 ? c.d : int32_t(pick({8, 20}));
    c.causal = rng() % 2;
    if (rng() % 2) {
      c.algo = LONGATTN_ALGORITHM_SPARSE;
      c.wl = int32_t(pick({-1, 0, 3, 17}));
      c.wr = int32_t(pick({-1, 0, 5}));
      c.g = int32_t(pick({0, 0, 1, 4}));
    }
    c.qt = dtypes[rng() % 3];
    c.kvt = dtypes[rng() % 3];
    c.ot = dtypes[rng() % 3];
    c.pad = rng() % 4 == 0 ? 2 : 0;
    if (rng() % 4 == 0) c.q_pos0 = int64_t(rng() % 120) - 10;
    check_ring(c, N, layout, 2000 + uint64_t(i));
  }
}

TEST_CASE("ring: one rank equals the plain path bit for bit") {
  uint64_t seed = 500;
  std::vector<Case> cases;
  for (bool causal : {false, true}) {
    Case c;
    c.n_q = c.n_k = 133;
    c.causal = causal;
    c.hq = 8;
    c.hkv = 2;
    cases.push_back(c);
    c.algo = LONGATTN_ALGORITHM_SPARSE;
    c.wl = 17;
    c.wr = causal ? -1 : 5;
    c.g = 3;
    cases.push_back(c);
    c.ot = LONGATTN_DTYPE_BF16;
    c.n_q = 2;  // decode
    cases.push_back(c);
  }
  for (const Case& c : cases)
    for (int32_t layout : {LONGATTN_RING_LAYOUT_CONTIGUOUS, LONGATTN_RING_LAYOUT_ZIGZAG}) {
      INFO(describe(c), " layout=", layout);
      const Inputs in(c, seed++);
      RingContext ring(1, layout, 2);
      Context plain(LONGATTN_BACKEND_CPU, 2);
      const Outputs a = forward(ring.ctx, c, in), b = forward(plain.ctx, c, in);
      REQUIRE_MESSAGE(a.status == LONGATTN_OK, a.error);
      REQUIRE(b.status == LONGATTN_OK);
      CHECK(a.out.bytes == b.out.bytes);
      CHECK(a.lse.bytes == b.lse.bytes);
    }
}

TEST_CASE("ring: per-rank shard tensors (local queries and replicated decode)") {
  uint64_t seed = 600;
  for (int32_t N : {1, 3, 4})
    for (int32_t layout : {LONGATTN_RING_LAYOUT_CONTIGUOUS, LONGATTN_RING_LAYOUT_ZIGZAG})
      for (bool replicated : {false, true}) {
        Case c;
        c.n_k = 77;
        c.n_q = replicated ? 3 : c.n_k;
        c.causal = true;
        c.hq = 4;
        c.hkv = 2;
        c.algo = seed % 2 ? LONGATTN_ALGORITHM_SPARSE : LONGATTN_ALGORITHM_FLASH;
        if (c.algo == LONGATTN_ALGORITHM_SPARSE) c.wl = 9, c.g = 2;
        INFO(describe(c), " N=", N, " layout=", layout, " replicated=", replicated);
        const Inputs in(c, seed++);
        const RankRows ranks = rank_rows(layout, c.n_k, N, 5, 11);  // contiguous: uneven lengths
        const ShardTensors s(c, in, ranks, replicated);
        std::vector<longattn_tensor> tq, tk, tv, to, tl;
        for (int32_t r = 0; r < N; ++r) {
          tq.push_back(s.q[size_t(r)].t);
          tk.push_back(s.k[size_t(r)].t);
          tv.push_back(s.v[size_t(r)].t);
          to.push_back(s.out[size_t(r)].t);
          tl.push_back(s.lse[size_t(r)].t);
        }
        RingContext ring(N, LONGATTN_RING_LAYOUT_AUTO);
        const longattn_attention_desc d = desc_of(c);
        longattn_attention* attn = nullptr;
        REQUIRE(longattn_attention_create(ring.ctx, &d, &attn) == LONGATTN_OK);
        longattn_sharded_args a = LONGATTN_SHARDED_ARGS_INIT;
        a.n_shards = N;
        a.layout = layout;
        a.queries = replicated ? LONGATTN_SHARD_QUERIES_REPLICATED : LONGATTN_SHARD_QUERIES_LOCAL;
        a.q = tq.data(); a.k = tk.data(); a.v = tv.data(); a.out = to.data(); a.lse = tl.data();
        const longattn_status st = longattn_attention_forward_sharded(ring.ctx, attn, &a);
        REQUIRE_MESSAGE(st == LONGATTN_OK, longattn_context_last_error(ring.ctx));
        longattn_attention_destroy(attn);
        const ShardErrors e = shard_errors(c, in, s, ranks, replicated);
        CHECK(e.bad == 0);
        CHECK(e.rel < 2e-5);
        CHECK(e.lse < 1e-4);
      }
}

TEST_CASE("ring: options, errors and per-rank memory") {
  longattn_context* ctx = nullptr;
  longattn_context_options o = LONGATTN_CONTEXT_OPTIONS_INIT;
  o.backend = LONGATTN_BACKEND_CPU;
  o.ring_devices = -1;
  CHECK(longattn_context_create(&o, &ctx) == LONGATTN_ERROR_INVALID_ARGUMENT);
  o.ring_devices = 2;
  o.ring_layout = 7;
  CHECK(longattn_context_create(&o, &ctx) == LONGATTN_ERROR_UNKNOWN_ENUM);
  // an old caller's struct (through flags) gets a plain context
  o = LONGATTN_CONTEXT_OPTIONS_INIT;
  o.backend = LONGATTN_BACKEND_CPU;
  o.struct_size = uint32_t(offsetof(longattn_context_options, ring_devices));
  o.ring_devices = 4;  // not covered by struct_size: ignored
  REQUIRE(longattn_context_create(&o, &ctx) == LONGATTN_OK);
  CHECK(longattn_context_ring_devices(ctx) == 0);
  longattn_sharded_args sa = LONGATTN_SHARDED_ARGS_INIT;
  Case c;
  c.n_q = c.n_k = 16;
  longattn_attention_desc d = desc_of(c);
  longattn_attention* attn = nullptr;
  REQUIRE(longattn_attention_create(ctx, &d, &attn) == LONGATTN_OK);
  CHECK(longattn_attention_forward_sharded(ctx, attn, &sa) == LONGATTN_ERROR_INVALID_ARGUMENT);
  longattn_attention_destroy(attn);
  longattn_context_destroy(ctx);

  RingContext ring(4, LONGATTN_RING_LAYOUT_ZIGZAG);
  CHECK(longattn_context_ring_devices(ring.ctx) == 4);
  // HYPER is not a ring algorithm
  d.algorithm = LONGATTN_ALGORITHM_HYPER;
  if (longattn_attention_create(ring.ctx, &d, &attn) == LONGATTN_OK) {
    const Inputs in(c, 1);
    HostTensor out(LONGATTN_DTYPE_F32, 1, 16, c.hq, c.dv);
    longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
    a.q = &in.q.t; a.k = &in.k.t; a.v = &in.v.t; a.out = &out.t;
    CHECK(longattn_attention_forward(ring.ctx, attn, &a) == LONGATTN_ERROR_UNSUPPORTED);
    CHECK(std::string(longattn_context_last_error(ring.ctx)).find("HYPER") != std::string::npos);
    longattn_attention_destroy(attn);
  }
  // wrong shard lengths for the zigzag layout, wrong shard count
  d.algorithm = LONGATTN_ALGORITHM_FLASH;
  REQUIRE(longattn_attention_create(ring.ctx, &d, &attn) == LONGATTN_OK);
  std::vector<HostTensor> t;
  for (int i = 0; i < 4; ++i) t.emplace_back(LONGATTN_DTYPE_F32, 1, 4, 8, 16);
  std::vector<HostTensor> o4;
  for (int i = 0; i < 4; ++i) o4.emplace_back(LONGATTN_DTYPE_F32, 1, 4, 8, 16);
  std::vector<longattn_tensor> tt, to;
  for (int i = 0; i < 4; ++i) tt.push_back(t[size_t(i)].t), to.push_back(o4[size_t(i)].t);
  sa.n_shards = 4;
  sa.layout = LONGATTN_RING_LAYOUT_ZIGZAG;
  sa.q = sa.k = sa.v = tt.data();
  sa.out = to.data();
  // 16 tokens, zigzag over 4: 2 + 2 = 4 tokens each, so this is fine …
  CHECK(longattn_attention_forward_sharded(ring.ctx, attn, &sa) == LONGATTN_OK);
  // … but 6 on rank 0 is not (18 tokens give rank 0 chunks [0, 2) and [15, 18): 5 tokens)
  HostTensor six(LONGATTN_DTYPE_F32, 1, 6, 8, 16), six_o(LONGATTN_DTYPE_F32, 1, 6, 8, 16);
  tt[0] = six.t;
  to[0] = six_o.t;
  CHECK(longattn_attention_forward_sharded(ring.ctx, attn, &sa) == LONGATTN_ERROR_SHAPE_MISMATCH);
  sa.n_shards = 3;
  CHECK(longattn_attention_forward_sharded(ring.ctx, attn, &sa) == LONGATTN_ERROR_INVALID_ARGUMENT);
  longattn_attention_destroy(attn);

  // per-rank scratch is O(tokens per rank): 4 ranks hold well under half of what one rank needs
  Case big;
  big.n_q = big.n_k = 2048;
  big.causal = true;
  big.hq = 4;
  big.hkv = 1;
  const Inputs in(big, 9);
  RingContext one(1, LONGATTN_RING_LAYOUT_ZIGZAG), four(4, LONGATTN_RING_LAYOUT_ZIGZAG);
  REQUIRE(forward(one.ctx, big, in).status == LONGATTN_OK);
  REQUIRE(forward(four.ctx, big, in).status == LONGATTN_OK);
  const size_t b1 = longattn_context_rank_scratch_bytes(one.ctx, 0);
  size_t b4 = 0;
  for (int32_t r = 0; r < 4; ++r) b4 = std::max(b4, longattn_context_rank_scratch_bytes(four.ctx, r));
  INFO("one rank: ", b1, " bytes; largest of four ranks: ", b4, " bytes");
  CHECK(b4 > 0);
  CHECK(double(b4) < 0.5 * double(b1));
  CHECK(longattn_context_rank_scratch_bytes(four.ctx, 4) == 0);
}

TEST_CASE("ring: transport selection on the CPU (host memory only; bad values refused with a message)") {
  longattn_context* ctx = nullptr;
  longattn_context_options o = LONGATTN_CONTEXT_OPTIONS_INIT;
  o.backend = LONGATTN_BACKEND_CPU;
  o.n_threads = 2;
  REQUIRE(longattn_context_create(&o, &ctx) == LONGATTN_OK);
  CHECK(longattn_context_ring_transport(ctx) == LONGATTN_RING_TRANSPORT_AUTO);  // no ring
  longattn_context_destroy(ctx);
  CHECK(longattn_context_ring_transport(nullptr) == LONGATTN_RING_TRANSPORT_AUTO);

  o.ring_devices = 2;
  for (int32_t t : {LONGATTN_RING_TRANSPORT_AUTO, LONGATTN_RING_TRANSPORT_HOST_STAGED}) {
    o.ring_transport = t;
    REQUIRE(longattn_context_create(&o, &ctx) == LONGATTN_OK);
    CHECK(longattn_context_ring_transport(ctx) == LONGATTN_RING_TRANSPORT_HOST_STAGED);
    longattn_context_destroy(ctx);
  }
  for (int32_t t : {LONGATTN_RING_TRANSPORT_PEER, LONGATTN_RING_TRANSPORT_NCCL}) {
    o.ring_transport = t;
    ctx = nullptr;
    CHECK(longattn_context_create(&o, &ctx) == LONGATTN_ERROR_UNSUPPORTED);
    CHECK(ctx == nullptr);
    CHECK(std::string(longattn_last_create_error()).find("needs the CUDA backend") != std::string::npos);
  }
  o.ring_transport = 4;
  CHECK(longattn_context_create(&o, &ctx) == LONGATTN_ERROR_UNKNOWN_ENUM);
  CHECK(std::string(longattn_last_create_error()).find("ring_transport=4") != std::string::npos);
  o.ring_transport = -3;
  CHECK(longattn_context_create(&o, &ctx) == LONGATTN_ERROR_UNKNOWN_ENUM);
  o.ring_devices = 0;  // a transport without a ring
  o.ring_transport = LONGATTN_RING_TRANSPORT_HOST_STAGED;
  CHECK(longattn_context_create(&o, &ctx) == LONGATTN_ERROR_INVALID_ARGUMENT);
  CHECK(std::string(longattn_last_create_error()).find("ring_devices") != std::string::npos);
  // an older caller's struct (through ring_layout): the transport field is not read
  o.ring_devices = 3;
  o.ring_transport = LONGATTN_RING_TRANSPORT_NCCL;
  o.struct_size = uint32_t(offsetof(longattn_context_options, ring_transport));
  REQUIRE(longattn_context_create(&o, &ctx) == LONGATTN_OK);
  CHECK(longattn_context_ring_transport(ctx) == LONGATTN_RING_TRANSPORT_HOST_STAGED);
  CHECK(longattn_context_ring_devices(ctx) == 3);
  longattn_context_destroy(ctx);
}
