// The ring executor: runs a RingPlan on the ranks of a ring context.
//
// Per rank: the running state (m, l, acc) of its query rows, two receive buffers for K and two
// for V (double buffering: the block of step t lands in buffer t % 2), a compute and a copy
// stream. Program order is step-major; cross-rank order comes from events:
//   compute of step t ≥ 1 on rank r      waits  forwarded[t−1] of rank r−1   (RAW: block arrived)
//   forward send of step t on rank r     waits  forwarded[t−1] of rank r−1   (its source arrived)
//                                        and    attended/forwarded[t−1] of rank r+1 (WAR: the
//                                               destination buffer (t+1) % 2 was read at step t−1)
// A transport whose sends land on the receiver (NCCL) completes each exchange on both copy
// streams, so every wait becomes local: the receive of step t on rank r waits for r's own
// attended[t−1] (WAR), and r's compute of step t + 1 waits for r's own forwarded[t].
// Synchronous backends (CPU) need none of it: each call is complete when it returns, so running
// the ranks of one step concurrently and the steps in order is already race-free.
#include "ring.hpp"

#include <algorithm>
#include <exception>
#include <thread>

#include "error.hpp"

namespace longattn {

// ---- RingGroup -------------------------------------------------------------------------------

RingGroup::RingGroup(Backend& backend0, Workspace& ws0, int32_t n, const RankBackendFactory& make,
                     const RingTransportFactory& make_transport, int32_t layout, bool host_parallel)
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
      rk.ready = rk.backend->event_create();
    }
    transport_ = make_transport(*this);
  } catch (...) {
    transport_.reset();
    release_streams();
    throw;
  }
}

RingGroup::~RingGroup() {
  transport_.reset();  // NCCL communicators, pinned buffers and their streams first
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
      rk.backend->event_destroy(rk.ready);
      rk.backend->stream_destroy(rk.compute);
      rk.backend->stream_destroy(rk.copy);
    } catch (...) {
    }
    rk.compute = rk.copy = nullptr;
    rk.attended[0] = rk.attended[1] = rk.forwarded[0] = rk.forwarded[1] = rk.ready = nullptr;
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
void send_rows(RingTransport& tr, int32_t from, int32_t to, const View& held, const View& own, void* dst,
               const std::vector<RowRange>& rows, int64_t batch) {
  const int64_t row_bytes = token_row_bytes(held);
  const int64_t dst_batch_stride = own.shape[1] * own.strides[1];
  for (const RowRange& rr : rows)
    for (int64_t b = 0; b < batch; ++b) {
      const char* src = static_cast<const char*>(held.data) + b * held.strides[0] + rr.row0 * held.strides[1];
      char* d = static_cast<char*>(dst) + b * dst_batch_stride + rr.row0 * own.strides[1];
      tr.send(from, to, d, src, size_t((rr.len - 1) * held.strides[1] + row_bytes));
    }
}

// begin_exchange … end_exchange; end_exchange also runs when a send throws (an NCCL group must
// not stay open), but then its own error is dropped in favour of the first one.
class Exchange {
 public:
  explicit Exchange(RingTransport& t) : t_(t) { t_.begin_exchange(); }
  ~Exchange() {
    if (open_) try {
        t_.end_exchange();
      } catch (...) {
      }
  }
  void end() {
    open_ = false;
    t_.end_exchange();
  }
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

 private:
  RingTransport& t_;
  bool open_ = true;
};

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

  RingTransport& tr = g.transport();
  const bool on_receiver = tr.lands_on_receiver();
  auto sends = [&](int32_t t, int32_t r) { return t < plan.n_steps && !plan.steps[size_t(t)][size_t(r)].send.empty(); };

  // ---- fresh states; the copy streams start after what the compute streams hold (uploads) ----
  g.for_each_rank([&](int32_t r) {
    RingRank& R = g.rank(r);
    R.backend->event_record(R.ready, R.compute);
    R.backend->stream_wait_event(R.copy, R.ready);
    for (const QueryPiece& p : plan.pieces[size_t(r)]) {
      RunningState st = piece_state(run[size_t(r)].state, B, H, dv, p);
      R.backend->state_init(st, B, H, p.len, dv, R.compute);
    }
  });

  // ---- the ring steps ----
  auto held = [&](int32_t t, int32_t r, View& K, View& V) {
    const RankTensors& own = job.t[size_t(plan.steps[size_t(t)][size_t(r)].block)];
    K = t == 0 ? job.t[size_t(r)].k : received_view(own.k, run[size_t(r)].recv_k[t % 2]);
    V = t == 0 ? job.t[size_t(r)].v : received_view(own.v, run[size_t(r)].recv_v[t % 2]);
  };
  // the event that says the block rank r holds at step t has arrived
  auto arrived = [&](int32_t t, int32_t r) {
    return on_receiver ? g.rank(r).forwarded[(t - 1) % 2] : g.rank(prev(r)).forwarded[(t - 1) % 2];
  };
  for (int32_t t = 0; t < plan.n_steps; ++t) {
    // every rank's forward send of step t: one exchange
    {
      Exchange ex(tr);
      g.for_each_rank([&](int32_t r) {
        if (!sends(t, r)) return;
        RingRank& R = g.rank(r);
        const int32_t p = next(r);
        RingRank& P = g.rank(p);
        if (on_receiver) {
          // rank r + 1 writes its buffer (t+1) % 2, which its attends read at step t − 1; its
          // own forward send of step t − 1 read it too, earlier on the same copy stream
          if (t > 1) P.backend->stream_wait_event(P.copy, P.attended[(t - 1) % 2]);
        } else {
          if (t > 0) R.backend->stream_wait_event(R.copy, arrived(t, r));
          if (t > 1) {  // the destination buffer held the block of step t − 1 at rank r + 1
            R.backend->stream_wait_event(R.copy, P.attended[(t - 1) % 2]);
            R.backend->stream_wait_event(R.copy, P.forwarded[(t - 1) % 2]);
          }
        }
        const RankTensors& own = job.t[size_t(plan.steps[size_t(t)][size_t(r)].block)];
        View K, V;
        held(t, r, K, V);
        const int slot = (t + 1) % 2;
        send_rows(tr, r, p, K, own.k, run[size_t(p)].recv_k[slot], plan.steps[size_t(t)][size_t(r)].send, B);
        send_rows(tr, r, p, V, own.v, run[size_t(p)].recv_v[slot], plan.steps[size_t(t)][size_t(r)].send, B);
      });
      ex.end();
    }
    for (int32_t r = 0; r < N; ++r)
      if (sends(t, r) || (on_receiver && sends(t, prev(r)))) {
        RingRank& R = g.rank(r);
        R.backend->event_record(R.forwarded[t % 2], R.copy);
      }
    // every rank's attends of step t
    g.for_each_rank([&](int32_t r) {
      RingRank& R = g.rank(r);
      const RankStep& rs = plan.steps[size_t(t)][size_t(r)];
      const RankTensors& mine = job.t[size_t(r)];
      if (rs.attends.empty()) return;
      View K, V;
      held(t, r, K, V);
      if (t > 0) R.backend->stream_wait_event(R.compute, arrived(t, r));
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
    if (rows > 0) {
      Exchange ex(tr);
      g.for_each_rank([&](int32_t r) {
        RingRank& R = g.rank(r);
        R.backend->stream_wait_event(R.copy, R.attended[0]);
        for (int32_t d : job.merged_to) {
          if (d == r) continue;
          const RankRun& dr = run[size_t(d)];
          tr.send(r, d, static_cast<char*>(dr.gather_o.data) + size_t(r) * o_bytes, run[size_t(r)].partial_o.data,
                  o_bytes);
          tr.send(r, d, static_cast<char*>(dr.gather_l.data) + size_t(r) * l_bytes, run[size_t(r)].partial_l.data,
                  l_bytes);
        }
      });
      ex.end();
      for (int32_t r = 0; r < N; ++r) g.rank(r).backend->event_record(g.rank(r).forwarded[0], g.rank(r).copy);
    }
    // merge in rank order 0, 1, …, N−1 (the same fp32 arithmetic on every destination rank)
    g.for_each_rank([&](int32_t d) {
      bool wanted = false;
      for (int32_t x : job.merged_to) wanted = wanted || x == d;
      if (!wanted || rows == 0) return;
      RingRank& D = g.rank(d);
      Workspace& ws = *D.ws;
      const RankRun& dr = run[size_t(d)];
      const RankTensors& mine = job.t[size_t(d)];
      if (on_receiver) {
        D.backend->stream_wait_event(D.compute, D.forwarded[0]);
      } else {
        for (int32_t r = 0; r < N; ++r)
          if (r != d) D.backend->stream_wait_event(D.compute, g.rank(r).forwarded[0]);
      }
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
