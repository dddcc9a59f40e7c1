// Ring mode, part 3: the ranks of a ring context and the executor that runs a RingPlan on them
// through the backend primitives only (attend with an fp32 running state, state_init/finish,
// merge, send_to, streams and events). See docs/RING.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "backend.hpp"
#include "problem.hpp"
#include "ring_plan.hpp"
#include "ring_transport.hpp"
#include "workspace.hpp"

struct longattn_context;

namespace longattn {

constexpr int32_t kMaxRingDevices = 64;

// Workspace slots of a rank used by ring mode (below kStagingSlot0, above the algorithms' own).
namespace ring_slot {
constexpr size_t kQ = 32, kK = 33, kV = 34, kOut = 35, kLse = 36;  // shards of whole host tensors
constexpr size_t kStateM = 37, kStateL = 38, kStateAcc = 39;
constexpr size_t kRecvK0 = 40, kRecvV0 = 42;                      // two receive buffers each
constexpr size_t kPartialO = 44, kPartialL = 45;                  // decode partials
constexpr size_t kGatherO = 46, kGatherL = 47, kMergeO = 48, kMergeL = 49, kLseSink = 50;
}  // namespace ring_slot

// One rank: its backend and scratch, a compute and a copy stream, and the events that order
// them across ranks. Events are indexed by step parity (double buffering).
struct RingRank {
  Backend* backend = nullptr;
  Workspace* ws = nullptr;
  void* compute = nullptr;
  void* copy = nullptr;
  void* attended[2] = {nullptr, nullptr};   // the rank's attend calls of step t are done
  void* forwarded[2] = {nullptr, nullptr};  // its exchange of step t is done: the block it sent is at
                                            // rank + 1 (or, when the transport lands on the
                                            // receiver, the block it received is here)
  void* ready = nullptr;                    // the work queued on compute before a run is done
};

// Creates the backend of rank r (ranks 1 … N−1; rank 0 is the context's own backend).
using RankBackendFactory = std::function<std::unique_ptr<Backend>(int32_t rank)>;
// Creates the transport once every rank has its streams and events.
using RingTransportFactory = std::function<std::unique_ptr<RingTransport>(RingGroup& g)>;

class RingGroup {
 public:
  // rank 0 uses the context's backend and workspace; ranks 1 … n−1 are made by `make`.
  RingGroup(Backend& backend0, Workspace& ws0, int32_t n, const RankBackendFactory& make,
            const RingTransportFactory& make_transport, int32_t layout, bool host_parallel);
  ~RingGroup();
  RingGroup(const RingGroup&) = delete;
  RingGroup& operator=(const RingGroup&) = delete;

  int32_t size() const { return int32_t(ranks_.size()); }
  RingRank& rank(int32_t r) { return ranks_[size_t(r)]; }
  int32_t layout() const { return layout_; }  // LONGATTN_RING_LAYOUT_* from the context options
  RingTransport& transport() { return *transport_; }

  // Runs f(rank) for every rank: in rank order on this thread, or on one host thread per rank
  // when the backend's calls are synchronous (CPU virtual devices work concurrently).
  void for_each_rank(const std::function<void(int32_t)>& f);

 private:
  void release_streams();  // destroys every rank's streams and events (nullptr ones included)

  std::vector<std::unique_ptr<Backend>> owned_backends_;
  std::vector<std::unique_ptr<Workspace>> owned_ws_;
  std::vector<RingRank> ranks_;
  std::unique_ptr<RingTransport> transport_;  // destroyed before the streams and backends
  int32_t layout_;
  bool host_parallel_;
};

// CPU worker threads of each rank: the context's threads shared out (at least 1 each).
inline int32_t ring_rank_threads(int32_t n_threads, int32_t ring_devices) {
  return ring_devices > 1 ? (n_threads / ring_devices > 0 ? n_threads / ring_devices : 1) : n_threads;
}

// The tensors of one rank, in that rank's memory. K and V are token-major: the bytes of one
// token row (all heads and dims) lie within strides[1], so a run of rows is one byte range.
struct RankTensors {
  View q, k, v, out, lse;  // lse.data may be null
};

struct RingJob {
  const AttentionConfig* cfg = nullptr;
  int64_t batch = 0;
  RingPlan plan;
  std::vector<RankTensors> t;  // [rank]
  // Decode: every rank holds the same query rows; the partials are merged and written to the
  // out/lse of the ranks listed here (the others' out/lse are not touched).
  bool merge = false;
  std::vector<int32_t> merged_to;
};

void run_ring(RingGroup& g, const RingJob& job);

// Rows [r0, r0 + n) of a view.
View view_rows(View v, int64_t r0, int64_t n);

// Bytes from the start of a token row to the end of its last element.
int64_t token_row_bytes(const View& v);

// Ring mode behind longattn_attention_forward (whole host tensors; src/ring_api.cpp): validated
// views, cut into shards, run, gathered.
void ring_forward_whole(longattn_context& ctx, const AttentionConfig& cfg, const longattn_forward_args& args,
                        const View& q, const View& k, const View& v, const View& out, const View& lse,
                        int64_t q_pos0);

}  // namespace longattn
