// The ring executor: runs a RingPlan on the ranks of a ring context.
//
// Per rank: the running state (m, l, acc) of its query rows, two receive buffers for K and two
// for V (double buffering: the block of step t lands in buffer t % 2), a compute and a copy
// stream. Program order is step-major; cross-rank order comes from events:
//   compute of step t ≥ 1 on rank r      waits  forwarded[t−1] of rank r−1   (RAW: block arrived)
//   forward send of step t on rank r     waits  forwarded[t−1] of rank r−1   (its source arrived)
//                                        and    attended/forwarded[t−1] of rank r+1 (WAR: the
//                                               destination buffer (t+1) % 2 was read at step t−1)
// Synchronous backends (CPU) need none of it: each call is complete when it returns, so running
// the ranks of one step concurrently and the steps in order is already race-free.
#include "ring.hpp"

#include <algorithm>
#include <exception>
#include <thread>

#include "error.hpp"

namespace longattn {

// ---- RingGroup -------------------------------------------------------------------------------

RingGroup::RingGroup(Backend& backend0, Workspace& ws0, int32_t n, const RankBackendFactory& make, int32_t layout,
                     bool host_parallel)
    : layout_(layout), host_parallel_(host_parallel) {
  ranks_.resize(size_t(n));
  ranks_[0].backend = &backend0;
  ranks_[0].ws = &ws0;
  for (int32_t r = 1; r < n; ++r) {
    owned_backends_.push_back(make(r));
    owned_ws_.push_back(std::make_unique<Workspace>(*owned_backends_.back()));
    ranks_[size_t(r)].backend = owned_backends_.back().get();
    ranks_[size_t(r)].ws = owned_ws_.back().get();
  }
  try {
    for (RingRank& rk : ranks_) {
      rk.compute = rk.backend->stream_create();
      rk.copy = rk.backend->stream_create();
      for (int i = 0; i < 2; ++i) {
        rk.attended[i] = rk.backend->event_create();
        rk.forwarded[i] = rk.backend->event_create();
      }
    }
  } catch (...) {
    release_streams();
    throw;
  }
}

RingGroup::~RingGroup() {
  release_streams();
  owned_ws_.clear();  // before the backends their buffers belong to
  owned_backends_.clear();
}

void RingGroup::release_streams() {
  for (RingRank& rk : ranks_) {
    try {
      for (int i = 0; i < 2; ++i) {
        rk.backend->event_destroy(rk.attended[i]);
        rk.backend->event_destroy(rk.forwarded[i]);
      }
      rk.backend->stream_destroy(rk.compute);
      rk.backend->stream_destroy(rk.copy);
    } catch (...) {
    }
    rk.compute = rk.copy = nullptr;
    rk.attended[0] = rk.attended[1] = rk.forwarded[0] = rk.forwarded[1] = nullptr;
  }
}

void RingGroup::for_each_rank(const std::function<void(int32_t)>& f) {
  const int32_t n = size();
  if (!host_parallel_ || n == 1) {
    for (int32_t r = 0; r < n; ++r) f(r);
    return;
  }
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  auto guarded = [&](int32_t r) {
    try {
      f(r);
    } catch (...) {
      errors[size_t(r)] = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(size_t(n - 1));
  int32_t started = 1;
  try {
    for (; started < n; ++started) threads.emplace_back(guarded, started);
  } catch (...) {  // no more threads: the remaining ranks run here
  }
  guarded(0);
  for (int32_t r = started; r < n; ++r) guarded(r);
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

// ---- helpers ---------------------------------------------------------------------------------

View view_rows(View v, int64_t r0, int64_t n) {
  v.data = static_cast<char*>(v.data) + r0 * v.strides[1];
  v.shape[1] = n;
  return v;
}

int64_t token_row_bytes(const View& v) {
  return (v.shape[2] - 1) * v.strides[2] + (v.shape[3] - 1) * v.strides[3] + int64_t(longattn_dtype_size(v.dtype));
}

namespace {

// A contiguous f32 view {batch, rows, heads, dim}.
View f32_view(float* data, int64_t batch, int64_t rows, int64_t heads, int64_t dim) {
  View v;
  v.data = data;
  v.dtype = LONGATTN_DTYPE_F32;
  v.shape[0] = batch; v.shape[1] = rows; v.shape[2] = heads; v.shape[3] = dim;
  v.strides[3] = 4;
  v.strides[2] = 4 * dim;
  v.strides[1] = 4 * dim * heads;
  v.strides[0] = 4 * dim * heads * rows;
  return v;
}

// How block s is laid out in a receive buffer: the owner's row, head and dim strides, batches
// packed one after the other.
View received_view(const View& own, void* buffer) {
  View v = own;
  v.data = buffer;
  v.strides[0] = v.shape[1] * v.strides[1];
  return v;
}

int64_t received_bytes(const View& own, int64_t batch) { return batch * own.shape[1] * own.strides[1]; }

// Everything one rank needs during a run.
struct RankRun {
  RunningState state;   // [batch][heads][rows] (+ [dv] for acc); piece p starts at row0
  void* recv_k[2] = {nullptr, nullptr};
  void* recv_v[2] = {nullptr, nullptr};
  View partial_o, partial_l;  // decode: this rank's finished partial
  View gather_o, gather_l;    // decode, ranks in merged_to: every rank's partial [rank][…]
};

RunningState piece_state(const RunningState& s, int64_t batch, int32_t heads, int32_t dv, const QueryPiece& p) {
  const size_t off = size_t(batch) * size_t(heads) * size_t(p.row0);
  return RunningState{s.m + off, s.l + off, s.acc + off * size_t(dv)};
}

// Forwards rows of a held block (one byte range per batch and row run) into the next rank's
// receive buffer.
void send_rows(RingRank& from, RingRank& to, const View& held, const View& own, void* dst,
               const std::vector<RowRange>& rows, int64_t batch) {
  const int64_t row_bytes = token_row_bytes(held);
  const int64_t dst_batch_stride = own.shape[1] * own.strides[1];
  for (const RowRange& rr : rows)
    for (int64_t b = 0; b < batch; ++b) {
      const char* src = static_cast<const char*>(held.data) + b * held.strides[0] + rr.row0 * held.strides[1];
      char* d = static_cast<char*>(dst) + b * dst_batch_stride + rr.row0 * own.strides[1];
      from.backend->send_to(*to.backend, d, src, size_t((rr.len - 1) * held.strides[1] + row_bytes), from.copy);
    }
}

}  // namespace

// ---- the run ---------------------------------------------------------------------------------

void run_ring(RingGroup& g, const RingJob& job) {
  const AttentionConfig& cfg = *job.cfg;
  const RingPlan& plan = job.plan;
  const int32_t N = g.size();
  const int64_t B = job.batch;
  const int32_t H = cfg.n_q_heads, dv = cfg.head_dim_v;
  auto prev = [&](int32_t r) { return (r + N - 1) % N; };
  auto next = [&](int32_t r) { return (r + 1) % N; };

  // ---- buffers (allocation happens in rank order on this thread) ----
  size_t recv_k_bytes = 0, recv_v_bytes = 0;
  for (int32_t s = 0; s < N; ++s) {
    recv_k_bytes = std::max(recv_k_bytes, size_t(received_bytes(job.t[size_t(s)].k, B)));
    recv_v_bytes = std::max(recv_v_bytes, size_t(received_bytes(job.t[size_t(s)].v, B)));
  }
  std::vector<bool> receives(size_t(N), false);
  for (int32_t t = 0; t + 1 < plan.n_steps; ++t)
    for (int32_t r = 0; r < N; ++r)
      if (!plan.steps[size_t(t)][size_t(r)].send.empty()) receives[size_t(next(r))] = true;
  std::vector<bool> gathers(size_t(N), false);
  if (job.merge && N > 1)
    for (int32_t d : job.merged_to) gathers[size_t(d)] = true;

  std::vector<RankRun> run(static_cast<size_t>(N));
  for (int32_t r = 0; r < N; ++r) {
    Workspace& ws = *g.rank(r).ws;
    RankRun& rr = run[size_t(r)];
    const int64_t rows = job.t[size_t(r)].q.shape[1];
    const size_t n_rows = size_t(B) * size_t(H) * size_t(rows);
    if (n_rows > 0) {
      rr.state.m = ws.get<float>(ring_slot::kStateM, n_rows);
      rr.state.l = ws.get<float>(ring_slot::kStateL, n_rows);
      rr.state.acc = ws.get<float>(ring_slot::kStateAcc, n_rows * size_t(dv));
    }
    if (receives[size_t(r)])
      for (int i = 0; i < 2; ++i) {
        rr.recv_k[i] = ws.get(ring_slot::kRecvK0 + size_t(i), recv_k_bytes);
        rr.recv_v[i] = ws.get(ring_slot::kRecvV0 + size_t(i), recv_v_bytes);
      }
    if (job.merge && N > 1 && n_rows > 0) {
      rr.partial_o = f32_view(ws.get<float>(ring_slot::kPartialO, n_rows * size_t(dv)), B, rows, H, dv);
      rr.partial_l = f32_view(ws.get<float>(ring_slot::kPartialL, n_rows), B, rows, H, 1);
      if (gathers[size_t(r)]) {
        rr.gather_o = f32_view(ws.get<float>(ring_slot::kGatherO, size_t(N) * n_rows * size_t(dv)), B * N, rows, H, dv);
        rr.gather_l = f32_view(ws.get<float>(ring_slot::kGatherL, size_t(N) * n_rows), B * N, rows, H, 1);
      }
    }
  }

  // ---- fresh states ----
  g.for_each_rank([&](int32_t r) {
    RingRank& R = g.rank(r);
    for (const QueryPiece& p : plan.pieces[size_t(r)]) {
      RunningState st = piece_state(run[size_t(r)].state, B, H, dv, p);
      R.backend->state_init(st, B, H, p.len, dv, R.compute);
    }
  });

  // ---- the ring steps ----
  for (int32_t t = 0; t < plan.n_steps; ++t) {
    g.for_each_rank([&](int32_t r) {
      RingRank& R = g.rank(r);
      const RankStep& rs = plan.steps[size_t(t)][size_t(r)];
      const RankTensors& own = job.t[size_t(rs.block)];
      const RankTensors& mine = job.t[size_t(r)];
      const View K = t == 0 ? mine.k : received_view(own.k, run[size_t(r)].recv_k[t % 2]);
      const View V = t == 0 ? mine.v : received_view(own.v, run[size_t(r)].recv_v[t % 2]);
      void* arrived = t > 0 ? g.rank(prev(r)).forwarded[(t - 1) % 2] : nullptr;
      if (!rs.send.empty()) {
        RingRank& P = g.rank(next(r));
        if (t > 0) R.backend->stream_wait_event(R.copy, arrived);
        if (t > 1) {  // the destination buffer held the block of step t − 1 at rank r + 1
          R.backend->stream_wait_event(R.copy, P.attended[(t - 1) % 2]);
          R.backend->stream_wait_event(R.copy, P.forwarded[(t - 1) % 2]);
        }
        const int slot = (t + 1) % 2;
        send_rows(R, P, K, own.k, run[size_t(next(r))].recv_k[slot], rs.send, B);
        send_rows(R, P, V, own.v, run[size_t(next(r))].recv_v[slot], rs.send, B);
        R.backend->event_record(R.forwarded[t % 2], R.copy);
      }
      if (rs.attends.empty()) return;
      if (t > 0) R.backend->stream_wait_event(R.compute, arrived);
      for (const AttendItem& it : rs.attends) {
        const QueryPiece& p = plan.pieces[size_t(r)][size_t(it.piece)];
        RunningState st = piece_state(run[size_t(r)].state, B, H, dv, p);
        AttendArgs a;
        a.batch = B;
        a.n_q = p.len;
        a.n_k = it.k_len;
        a.n_q_heads = H;
        a.n_kv_heads = cfg.n_kv_heads;
        a.head_dim = cfg.head_dim;
        a.head_dim_v = dv;
        a.q = view_rows(mine.q, p.row0, p.len);
        a.k = view_rows(K, it.k_row0, it.k_len);
        a.v = view_rows(V, it.k_row0, it.k_len);
        a.scale = cfg.scale;
        a.softcap = cfg.softcap;
        a.mask = cfg.mask;
        a.q_pos0 = p.pos0;
        a.k_pos0 = it.k_pos0;
        a.state = &st;
        a.stream = R.compute;
        R.backend->attend(a);
      }
      R.backend->event_record(R.attended[t % 2], R.compute);
    });
  }

  // ---- results ----
  const bool merging = job.merge && N > 1;
  g.for_each_rank([&](int32_t r) {
    RingRank& R = g.rank(r);
    const RankRun& rr = run[size_t(r)];
    const RankTensors& mine = job.t[size_t(r)];
    for (const QueryPiece& p : plan.pieces[size_t(r)]) {
      const RunningState st = piece_state(rr.state, B, H, dv, p);
      if (merging) {
        R.backend->state_finish(st, B, H, p.len, dv, view_rows(rr.partial_o, p.row0, p.len),
                                view_rows(rr.partial_l, p.row0, p.len), R.compute);
      } else {
        const View lse = mine.lse.data ? view_rows(mine.lse, p.row0, p.len) : View{};
        R.backend->state_finish(st, B, H, p.len, dv, view_rows(mine.out, p.row0, p.len), lse, R.compute);
      }
    }
    if (merging) R.backend->event_record(R.attended[0], R.compute);
  });

  if (merging) {
    const int64_t rows = job.t[0].q.shape[1];
    const size_t o_bytes = size_t(B * rows * H * dv) * sizeof(float), l_bytes = size_t(B * rows * H) * sizeof(float);
    // every rank's partial to the ranks that want the result (gather slot = sending rank)
    g.for_each_rank([&](int32_t r) {
      RingRank& R = g.rank(r);
      if (rows == 0) return;
      R.backend->stream_wait_event(R.copy, R.attended[0]);
      for (int32_t d : job.merged_to) {
        if (d == r) continue;
        RingRank& D = g.rank(d);
        const RankRun& dr = run[size_t(d)];
        R.backend->send_to(*D.backend, static_cast<char*>(dr.gather_o.data) + size_t(r) * o_bytes,
                           run[size_t(r)].partial_o.data, o_bytes, R.copy);
        R.backend->send_to(*D.backend, static_cast<char*>(dr.gather_l.data) + size_t(r) * l_bytes,
                           run[size_t(r)].partial_l.data, l_bytes, R.copy);
      }
      R.backend->event_record(R.forwarded[0], R.copy);
    });
    // merge in rank order 0, 1, …, N−1 (the same fp32 arithmetic on every destination rank)
    g.for_each_rank([&](int32_t d) {
      bool wanted = false;
      for (int32_t x : job.merged_to) wanted = wanted || x == d;
      if (!wanted || rows == 0) return;
      RingRank& D = g.rank(d);
      Workspace& ws = *D.ws;
      const RankRun& dr = run[size_t(d)];
      const RankTensors& mine = job.t[size_t(d)];
      for (int32_t r = 0; r < N; ++r)
        if (r != d) D.backend->stream_wait_event(D.compute, g.rank(r).forwarded[0]);
      auto partial = [&](int32_t r, View& o, View& l) {
        if (r == d) {
          o = dr.partial_o;
          l = dr.partial_l;
        } else {
          o = f32_view(static_cast<float*>(dr.gather_o.data) + size_t(r) * o_bytes / sizeof(float), B, rows, H, dv);
          l = f32_view(static_cast<float*>(dr.gather_l.data) + size_t(r) * l_bytes / sizeof(float), B, rows, H, 1);
        }
      };
      const View acc_o = f32_view(ws.get<float>(ring_slot::kMergeO, o_bytes / sizeof(float)), B, rows, H, dv);
      const View acc_l = f32_view(ws.get<float>(ring_slot::kMergeL, l_bytes / sizeof(float)), B, rows, H, 1);
      const View out_l = mine.lse.data ? mine.lse
                                       : f32_view(ws.get<float>(ring_slot::kLseSink, l_bytes / sizeof(float)), B, rows, H, 1);
      View cur_o, cur_l;
      partial(0, cur_o, cur_l);
      for (int32_t r = 1; r < N; ++r) {
        View po, pl;
        partial(r, po, pl);
        const bool last = r == N - 1;
        D.backend->merge(cur_o, cur_l, po, pl, last ? mine.out : acc_o, last ? out_l : acc_l, D.compute);
        cur_o = acc_o;
        cur_l = acc_l;
      }
    });
  }

  for (int32_t r = 0; r < N; ++r) {
    g.rank(r).backend->synchronize(g.rank(r).compute);
    g.rank(r).backend->synchronize(g.rank(r).copy);
  }
}

}  // namespace longattn
