// Ring mode on the CUDA backend with N virtual ranks on device 0 (LONGATTN_CONTEXT_RING_VIRTUAL):
// every rank has its own compute and copy stream, sends are device-to-device copies on the copy
// stream, and cross-rank order comes from events, exactly as on several GPUs. Checked against the
// float64 reference and against the single-device CUDA context: N ∈ {1, 2, 4}, contiguous and
// zigzag, causal or not, GQA, bf16/f16 (tensor cores) and f32/mixed (generic kernel), lengths not
// divisible by 2N and shorter than N, SPARSE windows + globals, decode (merged partials), per-rank
// shard tensors in device memory, and repeated calls on larger shapes that must agree bit for bit
// (a missing wait between streams shows up as a changed or NaN result).
// The transports (LONGATTN_RING_TRANSPORT_*): the cases above run with AUTO (peer copies:
// device-to-device on one GPU); pinned-host staging is forced on the same virtual ranks and must
// give the same results; NCCL runs what one GPU allows (a 1-rank communicator, a self exchange
// through ncclSend/ncclRecv) and reports what it says about two ranks on one GPU.
// With two or more GPUs the first case runs the same checks over real GPUs (rings of devices
// 0 … N − 1) with every transport (AUTO, PEER, HOST_STAGED and, where it loads, NCCL).
// Every case skips (passes with a message) when no CUDA device is present.
#include <algorithm>
#include <cstdlib>
#include <memory>

#include "common.hpp"
#include "ring_test_util.hpp"

using namespace test;

#if LONGATTN_HAVE_CUDA

#include <cuda_runtime_api.h>

#include "cuda_test_util.hpp"
#include "handles.hpp"

namespace {

const int32_t kRanks[] = {1, 2, 4};
constexpr double kLseTolerance = 1e-3;

// The loosest precision among the tensors decides the tolerance (the tensor-core path rounds P
// to 16 bits, as FlashAttention does).
double tol_of(std::initializer_list<longattn_dtype> ts) {
  double t = tolerance(LONGATTN_DTYPE_F32);
  for (longattn_dtype x : ts) t = std::max(t, tolerance(x));
  return t;
}

// Options of a CUDA context on device 0: plain (ranks = 0) or a ring of `ranks` virtual ranks
// (or, with `gpus`, of devices 0 … ranks − 1).
longattn_context_options cuda_options(int32_t ranks, int32_t layout, int32_t transport, bool gpus = false) {
  longattn_context_options o = LONGATTN_CONTEXT_OPTIONS_INIT;
  o.backend = LONGATTN_BACKEND_CUDA;
  o.device_index = 0;
  if (ranks > 0) {
    o.ring_devices = ranks;
    o.ring_layout = layout;
    o.ring_transport = transport;
    if (!gpus) o.flags |= LONGATTN_CONTEXT_RING_VIRTUAL;
  }
  return o;
}

struct CudaContext {
  longattn_context* ctx = nullptr;
  explicit CudaContext(int32_t ranks = 0, int32_t layout = LONGATTN_RING_LAYOUT_AUTO,
                       int32_t transport = LONGATTN_RING_TRANSPORT_AUTO, bool gpus = false) {
    const longattn_context_options o = cuda_options(ranks, layout, transport, gpus);
    REQUIRE_MESSAGE(longattn_context_create(&o, &ctx) == LONGATTN_OK, longattn_last_create_error());
    if (ranks > 0 && transport != LONGATTN_RING_TRANSPORT_AUTO) CHECK(longattn_context_ring_transport(ctx) == transport);
  }
  ~CudaContext() { longattn_context_destroy(ctx); }
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;
};

// Tensor-core shapes and dtypes by default.
struct Case : RingCase {
  Case() {
    hkv = 2;
    d = dv = 64;
    qt = kvt = ot = LONGATTN_DTYPE_BF16;
  }
};

// ‖a − b‖/‖b‖ over O, NaN where the other is not, and the largest LSE difference.
struct Diff {
  double rel = 0, lse = 0;
  int64_t nan_mismatch = 0, lse_mismatch = 0;
};
Diff diff(const Outputs& a, const Outputs& b) {
  Diff d;
  double num = 0, den = 0;
  HostTensor& ao = const_cast<HostTensor&>(a.out);
  ao.each([&](int64_t bb, int64_t n, int64_t h, int64_t e) {
    const double x = a.out.get(bb, n, h, e), y = b.out.get(bb, n, h, e);
    if (std::isnan(x) || std::isnan(y)) {
      d.nan_mismatch += 1;
      return;
    }
    num += (x - y) * (x - y);
    den += y * y;
  });
  d.rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  compare_lse(a, b, d.lse, d.lse_mismatch);
  return d;
}

// The ring result against the float64 reference and against the plain CUDA context.
void check_ring(const Case& c, int32_t ranks, int32_t layout, uint64_t seed,
                int32_t transport = LONGATTN_RING_TRANSPORT_AUTO, bool gpus = false) {
  INFO(describe(c), " ranks=", ranks, " layout=", layout, " seed=", seed, " transport=", transport, " gpus=", gpus);
  const Inputs in(c, seed);
  const double tol = tol_of({c.qt, c.kvt, c.ot});
  CudaContext ring(ranks, layout, transport, gpus);
  const Outputs got = forward(ring.ctx, c, in);
  REQUIRE_MESSAGE(got.status == LONGATTN_OK, got.error);
  check_against_reference(c, in, got, tol, kLseTolerance);
  CudaContext plain;
  const Outputs want = forward(plain.ctx, c, in);
  REQUIRE_MESSAGE(want.status == LONGATTN_OK, want.error);
  const Diff d = diff(got, want);
  CHECK(d.nan_mismatch == 0);
  CHECK(d.lse_mismatch == 0);
  CHECK(d.rel < 2 * tol);
  CHECK(d.lse < kLseTolerance);
}

// Device memory for one tensor (cudaMalloc on device 0).
struct DeviceTensor {
  void* ptr = nullptr;
  size_t bytes = 0;
  longattn_tensor t{};
  explicit DeviceTensor(const HostTensor& h) : bytes(h.bytes.size()) {
    REQUIRE(cudaMalloc(&ptr, bytes) == cudaSuccess);
    REQUIRE(cudaMemcpy(ptr, h.bytes.data(), bytes, cudaMemcpyHostToDevice) == cudaSuccess);
    t = h.t;
    t.data = static_cast<char*>(ptr) + (static_cast<const char*>(h.t.data) - reinterpret_cast<const char*>(h.bytes.data()));
    t.memory = LONGATTN_MEMORY_DEVICE;
  }
  ~DeviceTensor() { cudaFree(ptr); }
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;
  void to_host(HostTensor& h) const {
    REQUIRE(cudaMemcpy(h.bytes.data(), ptr, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
  }
};

}  // namespace

// ---- NCCL missing (first in the file: once a case has loaded NCCL it stays loaded) ----------------

TEST_CASE("cuda ring: NCCL transport without NCCL fails cleanly") {
  SKIP_WITHOUT_CUDA();
  const char* old = std::getenv("LONGATTN_NCCL_LIBRARY");
  const std::string saved = old ? old : "";
  const std::string bogus = "/nonexistent/libnccl.so.2";
  setenv("LONGATTN_NCCL_LIBRARY", bogus.c_str(), 1);
  longattn_context* ctx = nullptr;
  const longattn_context_options o = cuda_options(1, LONGATTN_RING_LAYOUT_AUTO, LONGATTN_RING_TRANSPORT_NCCL);
  const longattn_status st = longattn_context_create(&o, &ctx);
  const std::string msg = longattn_last_create_error();
  if (old) setenv("LONGATTN_NCCL_LIBRARY", saved.c_str(), 1);
  else unsetenv("LONGATTN_NCCL_LIBRARY");
  if (st == LONGATTN_OK) {
    MESSAGE("NCCL was already loaded in this process: the missing-library path is not reachable here");
    longattn_context_destroy(ctx);
    return;
  }
  INFO(msg);
  CHECK(st == LONGATTN_ERROR_BACKEND_UNAVAILABLE);
  CHECK(ctx == nullptr);
  CHECK(msg.find(bogus) != std::string::npos);
  CHECK(msg.find("LONGATTN_NCCL_LIBRARY") != std::string::npos);
}

// ---- whole host tensors ------------------------------------------------------------------------

TEST_CASE("cuda ring: FLASH and SPARSE over real GPUs, every transport (skips with one GPU)") {
  SKIP_WITHOUT_CUDA();
  int gpus = 0;
  if (cudaGetDeviceCount(&gpus) != cudaSuccess) gpus = 0;
  if (gpus < 2) {
    MESSAGE("one GPU: rings over real GPUs not tested here (virtual ranks below)");
    return;
  }
  uint64_t seed = 900;
  for (int32_t N : {2, 4}) {
    if (N > gpus) continue;
    for (int32_t transport : {LONGATTN_RING_TRANSPORT_AUTO, LONGATTN_RING_TRANSPORT_PEER,
                              LONGATTN_RING_TRANSPORT_HOST_STAGED, LONGATTN_RING_TRANSPORT_NCCL}) {
      if (transport == LONGATTN_RING_TRANSPORT_NCCL) {  // only where NCCL loads
        longattn_context* probe = nullptr;
        const longattn_context_options o = cuda_options(N, LONGATTN_RING_LAYOUT_AUTO, transport, true);
        if (longattn_context_create(&o, &probe) != LONGATTN_OK) {
          MESSAGE("NCCL transport not tested: ", longattn_last_create_error());
          continue;
        }
        longattn_context_destroy(probe);
      }
      for (bool causal : {false, true})
        for (int32_t layout : {LONGATTN_RING_LAYOUT_CONTIGUOUS, LONGATTN_RING_LAYOUT_ZIGZAG}) {
          Case c;
          c.n_q = c.n_k = 301;  // not divisible by 2N
          c.causal = causal;
          c.hq = 8;
          c.hkv = seed % 2 ? 2 : 8;
          c.d = c.dv = seed % 2 ? 128 : 64;
          c.qt = c.kvt = c.ot = seed % 2 ? LONGATTN_DTYPE_BF16 : LONGATTN_DTYPE_F16;
          check_ring(c, N, layout, seed++, transport, true);
        }
      Case w;  // SPARSE: a window and global tokens (halo exchange and the global prefix)
      w.n_q = w.n_k = 257;
      w.causal = true;
      w.algo = LONGATTN_ALGORITHM_SPARSE;
      w.wl = 40;
      w.g = 3;
      check_ring(w, N, LONGATTN_RING_LAYOUT_AUTO, seed++, transport, true);
    }
  }
}

TEST_CASE("cuda ring: FLASH over N virtual ranks equals the reference and single-device CUDA") {
  SKIP_WITHOUT_CUDA();
  uint64_t seed = 1;
  const std::pair<int32_t, int32_t> heads[] = {{8, 2}, {8, 8}, {8, 1}};  // GQA 4, 1, 8
  for (int32_t N : kRanks)
    for (int64_t n : {37, 301})  // not divisible by 2N
      for (bool causal : {false, true})
        for (int32_t layout : {LONGATTN_RING_LAYOUT_CONTIGUOUS, LONGATTN_RING_LAYOUT_ZIGZAG}) {
          Case c;
          c.n_q = c.n_k = n;
          c.causal = causal;
          c.hq = heads[seed % 3].first;
          c.hkv = heads[seed % 3].second;
          c.d = c.dv = seed % 2 ? 128 : 64;
          c.qt = c.kvt = c.ot = seed % 2 ? LONGATTN_DTYPE_BF16 : LONGATTN_DTYPE_F16;
          if (seed % 7 == 3) c.ot = LONGATTN_DTYPE_F32;
          check_ring(c, N, layout, seed++);
        }
  // generic kernel: f32 and mixed inputs, a head dim the tensor cores do not take
  for (int32_t N : {2, 4})
    for (int32_t layout : {LONGATTN_RING_LAYOUT_CONTIGUOUS, LONGATTN_RING_LAYOUT_ZIGZAG}) {
      Case c;
      c.n_q = c.n_k = 83;
      c.causal = true;
      c.d = c.dv = 40;
      c.qt = LONGATTN_DTYPE_F32;
      c.kvt = seed % 2 ? LONGATTN_DTYPE_BF16 : LONGATTN_DTYPE_F32;
      c.ot = LONGATTN_DTYPE_F32;
      check_ring(c, N, layout, seed++);
    }
  // fewer tokens than ranks (some shards empty), batches, padded host strides
  for (int32_t layout : {LONGATTN_RING_LAYOUT_CONTIGUOUS, LONGATTN_RING_LAYOUT_ZIGZAG}) {
    Case c;
    c.n_q = c.n_k = 3;
    c.causal = true;
    check_ring(c, 4, layout, seed++);
    c.n_q = c.n_k = 130;
    c.batch = 2;
    c.pad = 8;
    c.qt = c.kvt = c.ot = LONGATTN_DTYPE_F16;
    check_ring(c, 4, layout, seed++);
  }
}

TEST_CASE("cuda ring: SPARSE windows and globals (halo exchange, global prefix)") {
  SKIP_WITHOUT_CUDA();
  uint64_t seed = 100;
  struct W {
    bool causal;
    int32_t wl, wr, g;
  };
  const W windows[] = {{true, 15, -1, 0}, {true, 40, -1, 4}, {false, 8, 8, 0}, {false, 6, 30, 5}, {true, 0, -1, 1}};
  for (int32_t N : {2, 4})
    for (const W& w : windows)
      for (int32_t layout : {LONGATTN_RING_LAYOUT_CONTIGUOUS, LONGATTN_RING_LAYOUT_ZIGZAG}) {
        Case c;
        c.algo = LONGATTN_ALGORITHM_SPARSE;
        c.n_q = c.n_k = 203 + int64_t(seed % 5) * 13;
        c.causal = w.causal;
        c.wl = w.wl;
        c.wr = w.wr;
        c.g = w.g;
        c.hq = 8;
        c.hkv = seed % 2 ? 1 : 2;
        c.batch = seed % 3 == 0 ? 2 : 1;
        c.qt = c.kvt = c.ot = seed % 2 ? LONGATTN_DTYPE_BF16 : LONGATTN_DTYPE_F16;
        check_ring(c, N, layout, seed++);
      }
}

TEST_CASE("cuda ring: queries other than the keys (offsets, rows with nothing allowed)") {
  SKIP_WITHOUT_CUDA();
  uint64_t seed = 300;
  for (int32_t N : {2, 4})
    for (int64_t q_pos0 : {int64_t(LONGATTN_Q_POS_BOTTOM_RIGHT), int64_t(0), int64_t(-20), int64_t(300)}) {
      Case c;
      c.n_q = 100;
      c.n_k = 230;
      c.causal = true;
      c.q_pos0 = q_pos0;
      check_ring(c, N, LONGATTN_RING_LAYOUT_AUTO, seed++);
      c.algo = LONGATTN_ALGORITHM_SPARSE;
      c.wl = 12;
      c.g = 3;
      check_ring(c, N, LONGATTN_RING_LAYOUT_AUTO, seed++);
    }
}

TEST_CASE("cuda ring: decode merges per-rank partials") {
  SKIP_WITHOUT_CUDA();
  uint64_t seed = 400;
  for (int32_t N : kRanks)
    for (int64_t n_q : {1, 4}) {
      Case c;
      c.n_q = n_q;
      c.n_k = 1000 + int64_t(N);
      c.causal = true;
      c.hq = 32;
      c.hkv = 8;
      c.d = c.dv = 128;
      check_ring(c, N, LONGATTN_RING_LAYOUT_AUTO, seed++);
      c.algo = LONGATTN_ALGORITHM_SPARSE;
      c.wl = 300;
      c.g = 4;
      c.qt = c.kvt = LONGATTN_DTYPE_F16;
      c.ot = LONGATTN_DTYPE_F32;
      check_ring(c, N, LONGATTN_RING_LAYOUT_AUTO, seed++);
    }
}

// ---- per-rank shard tensors in device memory -----------------------------------------------------

namespace {

// Shard tensors of N ranks in device memory (cudaMalloc on device 0), LOCAL and REPLICATED,
// against the float64 reference.
void check_sharded(std::initializer_list<int32_t> ranks, int32_t transport) {
  uint64_t seed = 600;
  for (int32_t N : ranks)
    for (int32_t layout : {LONGATTN_RING_LAYOUT_CONTIGUOUS, LONGATTN_RING_LAYOUT_ZIGZAG})
      for (bool replicated : {false, true}) {
        Case c;
        c.n_k = 517;
        c.n_q = replicated ? 3 : c.n_k;
        c.causal = true;
        c.hq = 8;
        c.hkv = 2;
        c.algo = seed % 2 ? LONGATTN_ALGORITHM_SPARSE : LONGATTN_ALGORITHM_FLASH;
        if (c.algo == LONGATTN_ALGORITHM_SPARSE) c.wl = 90, c.g = 2;
        INFO(describe(c), " N=", N, " layout=", layout, " replicated=", replicated);
        const Inputs in(c, seed++);
        const RankRows ranks = rank_rows(layout, c.n_k, N, 50, 71);  // contiguous: uneven lengths
        ShardTensors s(c, in, ranks, replicated);
        std::vector<std::unique_ptr<DeviceTensor>> dq, dk, dv, dout, dlse;
        std::vector<longattn_tensor> tq, tk, tv, to, tl;
        for (int32_t r = 0; r < N; ++r) {
          dq.push_back(std::make_unique<DeviceTensor>(s.q[size_t(r)]));
          dk.push_back(std::make_unique<DeviceTensor>(s.k[size_t(r)]));
          dv.push_back(std::make_unique<DeviceTensor>(s.v[size_t(r)]));
          dout.push_back(std::make_unique<DeviceTensor>(s.out[size_t(r)]));
          dlse.push_back(std::make_unique<DeviceTensor>(s.lse[size_t(r)]));
          tq.push_back(dq.back()->t);
          tk.push_back(dk.back()->t);
          tv.push_back(dv.back()->t);
          to.push_back(dout.back()->t);
          tl.push_back(dlse.back()->t);
        }
        CudaContext ring(N, LONGATTN_RING_LAYOUT_AUTO, transport);
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
        // host shard tensors are refused on a GPU ring
        std::vector<longattn_tensor> host_q;
        for (const HostTensor& h : s.q) host_q.push_back(h.t);
        a.q = host_q.data();
        CHECK(longattn_attention_forward_sharded(ring.ctx, attn, &a) == LONGATTN_ERROR_UNSUPPORTED);
        longattn_attention_destroy(attn);
        for (int32_t r = 0; r < N; ++r) {
          dout[size_t(r)]->to_host(s.out[size_t(r)]);
          dlse[size_t(r)]->to_host(s.lse[size_t(r)]);
        }
        const ShardErrors e = shard_errors(c, in, s, ranks, replicated);
        CHECK(e.bad == 0);
        CHECK(e.rel < tol_of({c.qt, c.kvt, c.ot}));
        CHECK(e.lse < kLseTolerance);
      }
}

}  // namespace

TEST_CASE("cuda ring: per-rank shard tensors in device memory (local queries and replicated decode)") {
  SKIP_WITHOUT_CUDA();
  check_sharded({1, 2, 4}, LONGATTN_RING_TRANSPORT_AUTO);
}

// ---- larger shapes: copies overlapping compute, repeated calls ---------------------------------

namespace {

struct Big {
  Case c;
  int32_t ranks, layout;
};

// Large shapes against the single-device context, then 3 more calls that must repeat bit for bit.
void check_big(const std::vector<Big>& cases, int32_t transport) {
  uint64_t seed = 700;
  for (const Big& b : cases) {
    INFO(describe(b.c), " ranks=", b.ranks, " layout=", b.layout, " transport=", transport);
    const Inputs in(b.c, seed++);
    CudaContext ring(b.ranks, b.layout, transport), plain;
    const Outputs first = forward(ring.ctx, b.c, in);
    REQUIRE_MESSAGE(first.status == LONGATTN_OK, first.error);
    const Outputs want = forward(plain.ctx, b.c, in);
    REQUIRE_MESSAGE(want.status == LONGATTN_OK, want.error);
    const Diff d = diff(first, want);
    CHECK(d.nan_mismatch == 0);
    CHECK(d.lse_mismatch == 0);
    CHECK(d.rel < 2 * tol_of({b.c.qt, b.c.kvt, b.c.ot}));
    CHECK(d.lse < kLseTolerance);
    for (int rep = 0; rep < 3; ++rep) {
      const Outputs again = forward(ring.ctx, b.c, in);
      REQUIRE_MESSAGE(again.status == LONGATTN_OK, again.error);
      CHECK(again.out.bytes == first.out.bytes);
      CHECK(again.lse.bytes == first.lse.bytes);
    }
  }
}

}  // namespace

TEST_CASE("cuda ring: larger shapes agree with single-device CUDA and repeat bit for bit") {
  SKIP_WITHOUT_CUDA();
  std::vector<Big> cases;
  {
    Case c;  // causal zigzag: every block travels the whole ring
    c.n_q = c.n_k = 8191;
    c.causal = true;
    c.hq = 16;
    c.hkv = 4;
    c.d = c.dv = 128;
    cases.push_back({c, 4, LONGATTN_RING_LAYOUT_ZIGZAG});
    c.causal = false;  // full attention, contiguous
    c.n_q = c.n_k = 6000;
    c.qt = c.kvt = c.ot = LONGATTN_DTYPE_F16;
    cases.push_back({c, 2, LONGATTN_RING_LAYOUT_CONTIGUOUS});
    c = Case{};  // sliding window + sinks: halo exchange plus the global prefix
    c.algo = LONGATTN_ALGORITHM_SPARSE;
    c.n_q = c.n_k = 12000;
    c.causal = true;
    c.wl = 1000;
    c.g = 16;
    c.hq = 16;
    c.hkv = 4;
    c.d = c.dv = 128;
    cases.push_back({c, 4, LONGATTN_RING_LAYOUT_CONTIGUOUS});
    c = Case{};  // decode over a long sharded cache
    c.n_q = 4;
    c.n_k = 65536 + 3;
    c.causal = true;
    c.hq = 32;
    c.hkv = 8;
    c.d = c.dv = 128;
    cases.push_back({c, 4, LONGATTN_RING_LAYOUT_AUTO});
  }
  check_big(cases, LONGATTN_RING_TRANSPORT_AUTO);
}

TEST_CASE("cuda ring: per-rank device memory is O(tokens per rank); HYPER and device tensors refused") {
  SKIP_WITHOUT_CUDA();
  Case big;
  big.n_q = big.n_k = 4096;
  big.causal = true;
  const Inputs in(big, 9);
  CudaContext one(1, LONGATTN_RING_LAYOUT_ZIGZAG), four(4, LONGATTN_RING_LAYOUT_ZIGZAG);
  CHECK(longattn_context_ring_devices(four.ctx) == 4);
  REQUIRE(forward(one.ctx, big, in).status == LONGATTN_OK);
  REQUIRE(forward(four.ctx, big, in).status == LONGATTN_OK);
  const size_t b1 = longattn_context_rank_scratch_bytes(one.ctx, 0);
  size_t b4 = 0;
  for (int32_t r = 0; r < 4; ++r) b4 = std::max(b4, longattn_context_rank_scratch_bytes(four.ctx, r));
  INFO("one rank: ", b1, " bytes; largest of four ranks: ", b4, " bytes");
  CHECK(b4 > 0);
  CHECK(double(b4) < 0.5 * double(b1));

  Case c;
  c.n_q = c.n_k = 64;
  longattn_attention_desc d = desc_of(c);
  d.algorithm = LONGATTN_ALGORITHM_HYPER;
  longattn_attention* attn = nullptr;
  const Inputs small(c, 10);
  HostTensor out(c.ot, 1, c.n_q, c.hq, c.dv);
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &small.q.t; a.k = &small.k.t; a.v = &small.v.t; a.out = &out.t;
  if (longattn_attention_create(four.ctx, &d, &attn) == LONGATTN_OK) {
    CHECK(longattn_attention_forward(four.ctx, attn, &a) == LONGATTN_ERROR_UNSUPPORTED);
    CHECK(std::string(longattn_context_last_error(four.ctx)).find("HYPER") != std::string::npos);
    longattn_attention_destroy(attn);
  }
  // whole-tensor calls on a GPU ring take host tensors only
  d.algorithm = LONGATTN_ALGORITHM_FLASH;
  REQUIRE(longattn_attention_create(four.ctx, &d, &attn) == LONGATTN_OK);
  DeviceTensor dq(small.q);
  a.q = &dq.t;
  CHECK(longattn_attention_forward(four.ctx, attn, &a) == LONGATTN_ERROR_UNSUPPORTED);
  longattn_attention_destroy(attn);
}

// A handful of small cases touching every kernel and transfer the ring uses, for
// compute-sanitizer (memcheck, racecheck), which slows kernels down 10–1000×; the last two go
// through the pinned-host staging transport.
TEST_CASE("cuda ring: small mixed set (sanitizer runs)") {
  SKIP_WITHOUT_CUDA();
  uint64_t seed = 900;
  Case c;
  c.n_q = c.n_k = 150;
  c.causal = true;
  check_ring(c, 4, LONGATTN_RING_LAYOUT_ZIGZAG, seed++);  // tensor cores, d = 64, state carried
  c.d = c.dv = 128;
  c.causal = false;
  c.qt = c.kvt = c.ot = LONGATTN_DTYPE_F16;
  check_ring(c, 2, LONGATTN_RING_LAYOUT_CONTIGUOUS, seed++);  // d = 128
  c = Case{};
  c.n_q = c.n_k = 70;
  c.d = c.dv = 24;
  c.qt = LONGATTN_DTYPE_F32;
  c.ot = LONGATTN_DTYPE_F32;
  c.causal = true;
  check_ring(c, 4, LONGATTN_RING_LAYOUT_ZIGZAG, seed++);  // generic kernel
  c = Case{};
  c.algo = LONGATTN_ALGORITHM_SPARSE;
  c.n_q = c.n_k = 180;
  c.causal = true;
  c.wl = 20;
  c.g = 3;
  check_ring(c, 4, LONGATTN_RING_LAYOUT_CONTIGUOUS, seed++);  // halo + globals
  c = Case{};
  c.n_q = 2;
  c.n_k = 400;
  c.causal = true;
  check_ring(c, 4, LONGATTN_RING_LAYOUT_AUTO, seed++);  // decode: partials gathered and merged
  // the same through the pinned-host staging transport
  check_ring(c, 4, LONGATTN_RING_LAYOUT_AUTO, seed++, LONGATTN_RING_TRANSPORT_HOST_STAGED);
  c.n_q = c.n_k = 150;
  check_ring(c, 4, LONGATTN_RING_LAYOUT_ZIGZAG, seed++, LONGATTN_RING_TRANSPORT_HOST_STAGED);
}

// ---- transports --------------------------------------------------------------------------------

TEST_CASE("cuda ring: transport selection (AUTO resolved, bad values refused with a message)") {
  SKIP_WITHOUT_CUDA();
  {
    CudaContext plain;
    CHECK(longattn_context_ring_transport(plain.ctx) == LONGATTN_RING_TRANSPORT_AUTO);
    CudaContext ring(2);  // virtual ranks on one device: device-to-device copies
    CHECK(longattn_context_ring_transport(ring.ctx) == LONGATTN_RING_TRANSPORT_PEER);
    CudaContext staged(3, LONGATTN_RING_LAYOUT_AUTO, LONGATTN_RING_TRANSPORT_HOST_STAGED);
    CudaContext peer(3, LONGATTN_RING_LAYOUT_AUTO, LONGATTN_RING_TRANSPORT_PEER);
  }
  longattn_context* ctx = nullptr;
  longattn_context_options o = cuda_options(2, LONGATTN_RING_LAYOUT_AUTO, 4);
  CHECK(longattn_context_create(&o, &ctx) == LONGATTN_ERROR_UNKNOWN_ENUM);
  CHECK(std::string(longattn_last_create_error()).find("ring_transport=4") != std::string::npos);
  o.ring_transport = -1;
  CHECK(longattn_context_create(&o, &ctx) == LONGATTN_ERROR_UNKNOWN_ENUM);
  o = cuda_options(0, LONGATTN_RING_LAYOUT_AUTO, LONGATTN_RING_TRANSPORT_AUTO);
  o.ring_transport = LONGATTN_RING_TRANSPORT_HOST_STAGED;  // without ring_devices
  CHECK(longattn_context_create(&o, &ctx) == LONGATTN_ERROR_INVALID_ARGUMENT);
  CHECK(std::string(longattn_last_create_error()).find("ring_devices") != std::string::npos);
  CHECK(ctx == nullptr);
  // an older caller's struct (through ring_layout) gets AUTO whatever lies beyond it
  o = cuda_options(2, LONGATTN_RING_LAYOUT_AUTO, 99);
  o.struct_size = uint32_t(offsetof(longattn_context_options, ring_transport));
  REQUIRE(longattn_context_create(&o, &ctx) == LONGATTN_OK);
  CHECK(longattn_context_ring_transport(ctx) == LONGATTN_RING_TRANSPORT_PEER);
  longattn_context_destroy(ctx);
}

TEST_CASE("cuda ring: pinned-host staging transport (forced on virtual ranks)") {
  SKIP_WITHOUT_CUDA();
  const int32_t T = LONGATTN_RING_TRANSPORT_HOST_STAGED;
  uint64_t seed = 1000;
  for (int32_t N : {2, 4})
    for (int64_t n : {37, 301})
      for (bool causal : {false, true})
        for (int32_t layout : {LONGATTN_RING_LAYOUT_CONTIGUOUS, LONGATTN_RING_LAYOUT_ZIGZAG}) {
          Case c;
          c.n_q = c.n_k = n;
          c.causal = causal;
          c.hkv = seed % 3 == 0 ? 1 : 2;
          c.d = c.dv = seed % 2 ? 128 : 64;
          c.qt = c.kvt = c.ot = seed % 2 ? LONGATTN_DTYPE_BF16 : LONGATTN_DTYPE_F16;
          check_ring(c, N, layout, seed++, T);
        }
  {
    Case c;  // generic kernel, f32, batch 2 with padded strides
    c.n_q = c.n_k = 83;
    c.batch = 2;
    c.pad = 8;
    c.causal = true;
    c.d = c.dv = 40;
    c.qt = c.kvt = c.ot = LONGATTN_DTYPE_F32;
    check_ring(c, 3, LONGATTN_RING_LAYOUT_ZIGZAG, seed++, T);
    c = Case{};  // SPARSE: halo exchange and global prefix
    c.algo = LONGATTN_ALGORITHM_SPARSE;
    c.n_q = c.n_k = 230;
    c.causal = true;
    c.wl = 30;
    c.g = 4;
    check_ring(c, 4, LONGATTN_RING_LAYOUT_CONTIGUOUS, seed++, T);
    c.causal = false;
    c.wl = c.wr = 10;
    check_ring(c, 4, LONGATTN_RING_LAYOUT_ZIGZAG, seed++, T);
    c = Case{};  // queries at an offset; decode (partials gathered through the staging lanes)
    c.n_q = 100;
    c.n_k = 230;
    c.causal = true;
    c.q_pos0 = -20;
    check_ring(c, 2, LONGATTN_RING_LAYOUT_AUTO, seed++, T);
    c.n_q = 3;
    c.n_k = 1003;
    c.q_pos0 = LONGATTN_Q_POS_BOTTOM_RIGHT;
    c.hq = 32;
    c.hkv = 8;
    c.d = c.dv = 128;
    check_ring(c, 4, LONGATTN_RING_LAYOUT_AUTO, seed++, T);
  }
  check_sharded({2, 4}, T);
  // sends larger than one pinned buffer (4 MiB): 16384 tokens x 8 KV heads x 128 dims bf16 over
  // 2 ranks is 16 MiB per K block, 4 chunks alternating between the two buffers
  std::vector<Big> cases;
  Case c;
  c.n_q = c.n_k = 16385;
  c.causal = true;
  c.hq = 16;
  c.hkv = 8;
  c.d = c.dv = 128;
  cases.push_back({c, 2, LONGATTN_RING_LAYOUT_ZIGZAG});
  c.n_q = c.n_k = 8191;
  c.hkv = 4;
  cases.push_back({c, 4, LONGATTN_RING_LAYOUT_ZIGZAG});
  c.n_q = 4;
  c.n_k = 65536 + 3;
  c.hq = 32;
  c.hkv = 8;
  cases.push_back({c, 4, LONGATTN_RING_LAYOUT_AUTO});
  check_big(cases, T);
}

// NCCL allows one rank per GPU, so one GPU runs a 1-rank communicator: context, ring schedule and
// teardown through the NCCL transport, and ncclSend/ncclRecv in one group as a self exchange.
TEST_CASE("cuda ring: NCCL transport on one GPU (1-rank communicator, self exchange)") {
  SKIP_WITHOUT_CUDA();
  const int32_t T = LONGATTN_RING_TRANSPORT_NCCL;
  longattn_context* ctx = nullptr;
  const longattn_context_options o = cuda_options(1, LONGATTN_RING_LAYOUT_AUTO, T);
  const longattn_status st = longattn_context_create(&o, &ctx);
  if (st == LONGATTN_ERROR_BACKEND_UNAVAILABLE) {
    const std::string msg = longattn_last_create_error();
    MESSAGE("NCCL not available: ", msg);
    CHECK(msg.find("NCCL") != std::string::npos);
    return;
  }
  REQUIRE_MESSAGE(st == LONGATTN_OK, longattn_last_create_error());
  CHECK(longattn_context_ring_transport(ctx) == T);
  {  // the transport's send/recv pair: rank 0 to itself, two ranges in one exchange
    longattn::RingGroup& g = *ctx->ring;
    const size_t bytes = (size_t(3) << 20) + 7;
    std::vector<unsigned char> host(bytes), back(bytes);
    for (size_t i = 0; i < bytes; ++i) host[i] = static_cast<unsigned char>((i * 2654435761u) >> 13);
    void *src = nullptr, *dst = nullptr;
    REQUIRE(cudaMalloc(&src, bytes) == cudaSuccess);
    REQUIRE(cudaMalloc(&dst, bytes) == cudaSuccess);
    REQUIRE(cudaMemcpy(src, host.data(), bytes, cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemset(dst, 0xff, bytes) == cudaSuccess);
    const size_t half = bytes / 2;
    bool ok = true;
    try {
      g.transport().begin_exchange();
      g.transport().send(0, 0, dst, src, half);
      g.transport().send(0, 0, static_cast<char*>(dst) + half, static_cast<char*>(src) + half, bytes - half);
      g.transport().end_exchange();
    } catch (const std::exception& e) {
      ok = false;
      FAIL_CHECK("NCCL self exchange failed: ", e.what());
    }
    if (ok) {
      REQUIRE(cudaStreamSynchronize(static_cast<cudaStream_t>(g.rank(0).copy)) == cudaSuccess);
      REQUIRE(cudaMemcpy(back.data(), dst, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
      CHECK(back == host);
    }
    cudaFree(src);
    cudaFree(dst);
  }
  longattn_context_destroy(ctx);
  uint64_t seed = 1200;
  for (int32_t layout : {LONGATTN_RING_LAYOUT_CONTIGUOUS, LONGATTN_RING_LAYOUT_ZIGZAG}) {
    Case c;
    c.n_q = c.n_k = 301;
    c.causal = true;
    check_ring(c, 1, layout, seed++, T);
    c.algo = LONGATTN_ALGORITHM_SPARSE;
    c.wl = 20;
    c.g = 2;
    check_ring(c, 1, layout, seed++, T);
  }
  check_sharded({1}, T);
}

// What NCCL says to two or four ranks on one GPU: a clear UNSUPPORTED carrying NCCL's message
// (its duplicate-GPU check), or, should a NCCL version accept it, correct results.
TEST_CASE("cuda ring: NCCL with virtual ranks on one GPU") {
  SKIP_WITHOUT_CUDA();
  uint64_t seed = 1300;
  for (int32_t N : {2, 4}) {
    longattn_context* ctx = nullptr;
    const longattn_context_options o = cuda_options(N, LONGATTN_RING_LAYOUT_AUTO, LONGATTN_RING_TRANSPORT_NCCL);
    const longattn_status st = longattn_context_create(&o, &ctx);
    const std::string msg = longattn_last_create_error();
    if (st == LONGATTN_ERROR_BACKEND_UNAVAILABLE && msg.find("cannot load") != std::string::npos) {
      MESSAGE("NCCL not available: ", msg);
      return;
    }
    if (st == LONGATTN_OK) {
      MESSAGE("NCCL accepted ", N, " ranks on one GPU");
      longattn_context_destroy(ctx);
      Case c;
      c.n_q = c.n_k = 301;
      c.causal = true;
      check_ring(c, N, LONGATTN_RING_LAYOUT_ZIGZAG, seed++, LONGATTN_RING_TRANSPORT_NCCL);
      continue;
    }
    MESSAGE("NCCL with ", N, " virtual ranks: status ", st, ": ", msg);
    CHECK(st == LONGATTN_ERROR_UNSUPPORTED);
    CHECK(ctx == nullptr);
    CHECK(msg.find("NCCL") != std::string::npos);
    CHECK(msg.find("LONGATTN_RING_TRANSPORT_PEER") != std::string::npos);
  }
}

#else  // !LONGATTN_HAVE_CUDA

TEST_CASE("cuda ring: backend not compiled in") {
  CHECK(longattn_backend_available(LONGATTN_BACKEND_CUDA) == 0);
  MESSAGE("library built without the CUDA backend: CUDA ring cases skipped");
}

#endif
