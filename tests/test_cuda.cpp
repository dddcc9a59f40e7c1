// CUDA backend: public API (host and device tensors) against the float64 reference and the CPU
// backend; every attend feature, merge, the running state, LSH codes and the counting sort through
// make_cuda_backend against make_cpu_backend; HYPER with injected choices against the CPU.
// Every case skips (passes with a message) when no CUDA device is present.
#include <algorithm>
#include <memory>
#include <numeric>

#include "backend.hpp"
#include "common.hpp"
#include "hyper_choices.hpp"
#include "workspace.hpp"

using namespace test;

#if LONGATTN_HAVE_CUDA

#include <cuda_runtime_api.h>

#include "cuda_test_util.hpp"

namespace {

const longattn_dtype kDtypes[] = {LONGATTN_DTYPE_F32, LONGATTN_DTYPE_F16, LONGATTN_DTYPE_BF16};

// The loosest precision among the tensors decides the tolerance (the tensor-core path rounds P
// to the input precision, as FlashAttention does).
double tol_of(std::initializer_list<longattn_dtype> ts) {
  double t = tolerance(LONGATTN_DTYPE_F32);
  for (longattn_dtype x : ts) t = std::max(t, tolerance(x));
  return t;
}

// ---------------------------------------------------------------------------------------------
// Public API: random FLASH cases on host tensors
// ---------------------------------------------------------------------------------------------

struct ApiCase {
  int64_t batch, n_q, n_k;
  int32_t hq, hkv, d;
  bool causal;
  longattn_dtype qt, kvt, ot;
  int64_t pad;
  int64_t q_pos0;
  float softcap;
};

std::string describe(const ApiCase& c) {
  return "b=" + std::to_string(c.batch) + " nq=" + std::to_string(c.n_q) + " nk=" + std::to_string(c.n_k) +
         " h=" + std::to_string(c.hq) + "/" + std::to_string(c.hkv) + " d=" + std::to_string(c.d) +
         " causal=" + std::to_string(c.causal) + " dt=" + std::to_string(c.qt) + std::to_string(c.kvt) +
         std::to_string(c.ot) + " pad=" + std::to_string(c.pad) + " pos0=" +
         (c.q_pos0 == LONGATTN_Q_POS_BOTTOM_RIGHT ? std::string("br") : std::to_string(c.q_pos0)) +
         " softcap=" + std::to_string(c.softcap);
}

longattn_attention_desc desc_of(const ApiCase& c) {
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.n_q_heads = c.hq;
  d.n_kv_heads = c.hkv;
  d.head_dim = c.d;
  d.causal = c.causal;
  d.softcap = c.softcap;
  return d;
}

void check_api_case(Context& ctx, const ApiCase& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  HostTensor q = random_tensor(rng, c.qt, c.batch, c.n_q, c.hq, c.d, c.pad);
  HostTensor k = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.d, c.pad);
  HostTensor v = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.d, c.pad);
  HostTensor out(c.ot, c.batch, c.n_q, c.hq, c.d, c.pad);
  HostTensor lse(LONGATTN_DTYPE_F32, c.batch, c.n_q, c.hq, 1, c.pad);
  const RunResult r = run_and_compare(ctx, desc_of(c), q, k, v, out, &lse, c.q_pos0);
  INFO(describe(c), " seed=", seed);
  REQUIRE_MESSAGE(r.status == LONGATTN_OK, ctx.error());
  CHECK(r.err.nan_count == 0);
  CHECK(r.err.lse_mismatch == 0);
  CHECK(r.err.rel < tol_of({c.qt, c.kvt, c.ot}));
  CHECK(r.err.lse_max_abs < 1e-3);
}

ApiCase random_api_case(std::mt19937_64& rng) {
  auto pick = [&](std::initializer_list<int64_t> xs) { return *(xs.begin() + rng() % xs.size()); };
  ApiCase c;
  c.batch = pick({1, 1, 2});
  c.n_q = pick({1, 2, 5, 17, 64, 130, 257});
  c.n_k = pick({1, 3, 63, 64, 129, 300, 1000});
  c.hkv = int32_t(pick({1, 2, 3}));
  c.hq = c.hkv * int32_t(pick({1, 2, 4, 5}));
  c.d = int32_t(pick({3, 16, 40, 64, 64, 80, 96, 128, 128, 256}));
  // half the cases on the tensor-core path: q, k, v all f16 or all bf16
  if (rng() % 2) {
    c.qt = c.kvt = rng() % 2 ? LONGATTN_DTYPE_BF16 : LONGATTN_DTYPE_F16;
  } else {
    c.qt = kDtypes[rng() % 3];
    c.kvt = kDtypes[rng() % 3];
  }
  c.ot = kDtypes[rng() % 3];
  c.causal = rng() % 2;
  c.pad = rng() % 3 == 0 ? 8 : 0;  // keeps rows 16-byte aligned for 16-bit tensors
  if (rng() % 5 == 0) c.pad = 1;   // unaligned rows: the generic kernel
  c.q_pos0 = rng() % 4 == 0 ? int64_t(rng() % 1200) - 100 : LONGATTN_Q_POS_BOTTOM_RIGHT;
  c.softcap = rng() % 6 == 0 ? 3.0f : 0.0f;
  return c;
}

// ---------------------------------------------------------------------------------------------
// Device memory through the backend itself
// ---------------------------------------------------------------------------------------------

struct DeviceBuffer {
  longattn::Backend* be = nullptr;
  void* ptr = nullptr;
  size_t bytes = 0;
  DeviceBuffer() = default;
  DeviceBuffer(longattn::Backend& b, size_t n) : be(&b), ptr(b.alloc(n)), bytes(n) {}
  DeviceBuffer(longattn::Backend& b, const void* host, size_t n) : DeviceBuffer(b, n) {
    be->upload(ptr, host, n, nullptr);
  }
  template <class T>
  DeviceBuffer(longattn::Backend& b, const std::vector<T>& host)
      : DeviceBuffer(b, host.data(), host.size() * sizeof(T)) {}
  ~DeviceBuffer() {
    if (be) be->free(ptr);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : be(o.be), ptr(o.ptr), bytes(o.bytes) { o.be = nullptr; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(be, o.be), std::swap(ptr, o.ptr), std::swap(bytes, o.bytes);
    return *this;
  }
  template <class T>
  std::vector<T> download(size_t count) const {
    std::vector<T> h(count);
    be->download(h.data(), ptr, count * sizeof(T), nullptr);
    return h;
  }
  template <class T>
  T* as() const { return static_cast<T*>(ptr); }
};

// A host tensor mirrored on the device with the same strides (the whole padded buffer travels).
struct Mirror {
  DeviceBuffer buf;
  View dev;
  Mirror(longattn::Backend& b, const HostTensor& h) : buf(b, h.bytes.data(), h.bytes.size()) {
    dev = h.view();
    dev.data = buf.ptr;
  }
  void to_host(HostTensor& h) const { buf.be->download(h.bytes.data(), buf.ptr, h.bytes.size(), nullptr); }
  longattn_tensor tensor(const HostTensor& h) const {
    longattn_tensor t = h.t;
    t.data = buf.ptr;
    t.memory = LONGATTN_MEMORY_DEVICE;
    return t;
  }
};

// ---------------------------------------------------------------------------------------------
// Direct primitive cases: CUDA attend against CPU attend on identical arguments
// ---------------------------------------------------------------------------------------------

struct PrimCase {
  int64_t batch = 1, n_q = 1, n_k = 1;
  int32_t hq = 1, hkv = 1, d = 16, dv = 16;
  longattn_dtype qt = LONGATTN_DTYPE_F32, kvt = LONGATTN_DTYPE_F32, ot = LONGATTN_DTYPE_F32;
  longattn::Mask mask;
  int64_t q_pos0 = 0, k_pos0 = 0;
  bool explicit_pos = false, gathers = false, logw = false, groups = false;
  int64_t group_rows = 0;  // > 0: query i is in group ⌊i / group_rows⌋ (HYPER's query blocks)
  int32_t n_segments = 0;
  float softcap = 0.0f;
};

std::string describe(const PrimCase& c) {
  return "b=" + std::to_string(c.batch) + " nq=" + std::to_string(c.n_q) + " nk=" + std::to_string(c.n_k) +
         " h=" + std::to_string(c.hq) + "/" + std::to_string(c.hkv) + " d=" + std::to_string(c.d) + "/" +
         std::to_string(c.dv) + " dt=" + std::to_string(c.qt) + std::to_string(c.kvt) + std::to_string(c.ot) +
         " causal=" + std::to_string(c.mask.causal) + " wl=" + std::to_string(c.mask.window_left) +
         " wr=" + std::to_string(c.mask.window_right) + " g=" + std::to_string(c.mask.n_global) +
         " pos0=" + std::to_string(c.q_pos0) + "/" + std::to_string(c.k_pos0) + " pos=" +
         std::to_string(c.explicit_pos) + " gather=" + std::to_string(c.gathers) + " logw=" +
         std::to_string(c.logw) + " groups=" + std::to_string(c.groups) + "/" + std::to_string(c.group_rows) + " segs=" +
         std::to_string(c.n_segments) + " softcap=" + std::to_string(c.softcap);
}

// Host-side inputs of one primitive case.
struct PrimInputs {
  HostTensor q, k, v;
  std::vector<int64_t> q_pos, k_pos, q_seg, k_seg;
  std::vector<int32_t> q_rows, k_rows, q_group, k_group;
  std::vector<float> key_logw;
};

std::vector<int64_t> random_offsets(std::mt19937_64& rng, int32_t n_seg, int64_t total) {
  std::vector<int64_t> o(size_t(n_seg) + 1, 0);
  for (int32_t s = 1; s < n_seg; ++s) o[size_t(s)] = int64_t(rng() % uint64_t(total + 1));
  o[size_t(n_seg)] = total;
  std::sort(o.begin(), o.end());
  return o;
}

PrimInputs make_inputs(const PrimCase& c, std::mt19937_64& rng) {
  PrimInputs in;
  in.q = random_tensor(rng, c.qt, c.batch, c.n_q, c.hq, c.d);
  in.k = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.d);
  in.v = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.dv);
  if (c.explicit_pos) {
    // increasing positions with gaps (a KV cache with holes); queries interleave with keys
    int64_t p = c.k_pos0;
    for (int64_t j = 0; j < c.n_k; ++j) in.k_pos.push_back(p += 1 + int64_t(rng() % 3));
    p = c.q_pos0;
    for (int64_t i = 0; i < c.n_q; ++i) in.q_pos.push_back(p += 1 + int64_t(rng() % 4));
  }
  if (c.gathers) {
    for (int64_t bh = 0; bh < c.batch * c.hq; ++bh) {
      std::vector<int32_t> perm(size_t(c.n_q));
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng);
      in.q_rows.insert(in.q_rows.end(), perm.begin(), perm.end());
    }
    for (int64_t bh = 0; bh < c.batch * c.hkv; ++bh) {
      std::vector<int32_t> perm(size_t(c.n_k));
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng);
      in.k_rows.insert(in.k_rows.end(), perm.begin(), perm.end());
    }
  }
  if (c.logw) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int64_t x = 0; x < c.batch * c.hkv * c.n_k; ++x) in.key_logw.push_back(nd(rng));
  }
  if (c.groups && c.group_rows > 0) {  // contiguous query blocks, keys in random blocks
    const int64_t n_blocks = (c.n_q + c.group_rows - 1) / c.group_rows;
    for (int64_t x = 0; x < c.batch * c.hq * c.n_q; ++x) in.q_group.push_back(int32_t((x % c.n_q) / c.group_rows));
    for (int64_t x = 0; x < c.batch * c.hkv * c.n_k; ++x) in.k_group.push_back(int32_t(rng() % n_blocks));
  } else if (c.groups) {
    for (int64_t x = 0; x < c.batch * c.hq * c.n_q; ++x) in.q_group.push_back(int32_t(rng() % 5) - 1);
    for (int64_t x = 0; x < c.batch * c.hkv * c.n_k; ++x) in.k_group.push_back(int32_t(rng() % 4));
  }
  if (c.n_segments > 0) {
    in.q_seg = random_offsets(rng, c.n_segments, c.n_q);
    in.k_seg = random_offsets(rng, c.n_segments, c.n_k);
  }
  return in;
}

// Arrays of one backend's memory space for the optional AttendArgs fields.
struct PrimArrays {
  std::vector<DeviceBuffer> keep;
  const int64_t* q_pos = nullptr;
  const int64_t* k_pos = nullptr;
  const int32_t* q_rows = nullptr;
  const int32_t* k_rows = nullptr;
  const int32_t* q_group = nullptr;
  const int32_t* k_group = nullptr;
  const float* key_logw = nullptr;
};

template <class T>
const T* place(longattn::Backend& be, bool device, const std::vector<T>& host, PrimArrays& arr) {
  if (host.empty()) return nullptr;
  if (!device) return host.data();
  arr.keep.emplace_back(be, host);
  return arr.keep.back().as<T>();
}

PrimArrays place_all(longattn::Backend& be, bool device, const PrimInputs& in) {
  PrimArrays a;
  a.q_pos = place(be, device, in.q_pos, a);
  a.k_pos = place(be, device, in.k_pos, a);
  a.q_rows = place(be, device, in.q_rows, a);
  a.k_rows = place(be, device, in.k_rows, a);
  a.q_group = place(be, device, in.q_group, a);
  a.k_group = place(be, device, in.k_group, a);
  a.key_logw = place(be, device, in.key_logw, a);
  return a;
}

longattn::AttendArgs base_args(const PrimCase& c, const PrimInputs& in, const PrimArrays& arr) {
  longattn::AttendArgs a;
  a.batch = c.batch;
  a.n_q = c.n_q;
  a.n_k = c.n_k;
  a.n_q_heads = c.hq;
  a.n_kv_heads = c.hkv;
  a.head_dim = c.d;
  a.head_dim_v = c.dv;
  a.scale = 1.0f / std::sqrt(float(c.d));
  a.softcap = c.softcap;
  a.mask = c.mask;
  a.q_pos0 = c.q_pos0;
  a.k_pos0 = c.k_pos0;
  a.q_pos = arr.q_pos;
  a.k_pos = arr.k_pos;
  a.q_rows = arr.q_rows;
  a.k_rows = arr.k_rows;
  a.key_logw = arr.key_logw;
  a.q_group = arr.q_group;
  a.k_group = arr.k_group;
  a.n_segments = c.n_segments;
  a.q_seg = in.q_seg.empty() ? nullptr : in.q_seg.data();
  a.k_seg = in.k_seg.empty() ? nullptr : in.k_seg.data();
  return a;
}

struct PrimResult {
  HostTensor out, lse;
};

// Runs the case through `be` (device memory when `device`), out + lse mode.
PrimResult run_prim(longattn::Backend& be, bool device, const PrimCase& c, const PrimInputs& in) {
  PrimArrays arr = place_all(be, device, in);
  longattn::AttendArgs a = base_args(c, in, arr);
  PrimResult r{HostTensor(c.ot, c.batch, c.n_q, c.hq, c.dv), HostTensor(LONGATTN_DTYPE_F32, c.batch, c.n_q, c.hq, 1)};
  r.out.poison();
  r.lse.poison();
  if (!device) {
    a.q = in.q.view(), a.k = in.k.view(), a.v = in.v.view(), a.out = r.out.view(), a.lse = r.lse.view();
    be.attend(a);
    return r;
  }
  Mirror q(be, in.q), k(be, in.k), v(be, in.v), o(be, r.out), l(be, r.lse);
  a.q = q.dev, a.k = k.dev, a.v = v.dev, a.out = o.dev, a.lse = l.dev;
  be.attend(a);
  be.synchronize(nullptr);
  o.to_host(r.out);
  l.to_host(r.lse);
  return r;
}

// Same, through the running state: state_init, one attend per key half (k/v views of the halves,
// positions shifted), state_finish. Requires no gathers, segments or explicit key positions.
PrimResult run_prim_state(longattn::Backend& be, bool device, const PrimCase& c, const PrimInputs& in) {
  PrimArrays arr = place_all(be, device, in);
  PrimResult r{HostTensor(c.ot, c.batch, c.n_q, c.hq, c.dv), HostTensor(LONGATTN_DTYPE_F32, c.batch, c.n_q, c.hq, 1)};
  r.out.poison();
  r.lse.poison();
  const size_t rows = size_t(c.batch * c.hq * c.n_q);
  std::vector<float> hm(rows), hl(rows), hacc(rows * size_t(c.dv));
  std::unique_ptr<DeviceBuffer> dm, dl, dacc;
  longattn::RunningState st;
  if (device) {
    dm = std::make_unique<DeviceBuffer>(be, rows * 4);
    dl = std::make_unique<DeviceBuffer>(be, rows * 4);
    dacc = std::make_unique<DeviceBuffer>(be, rows * size_t(c.dv) * 4);
    st.m = dm->as<float>(), st.l = dl->as<float>(), st.acc = dacc->as<float>();
  } else {
    st.m = hm.data(), st.l = hl.data(), st.acc = hacc.data();
  }
  std::unique_ptr<Mirror> q, k, v, o, l;
  View qv = in.q.view(), kv = in.k.view(), vv = in.v.view(), ov = r.out.view(), lv = r.lse.view();
  if (device) {
    q = std::make_unique<Mirror>(be, in.q), k = std::make_unique<Mirror>(be, in.k);
    v = std::make_unique<Mirror>(be, in.v), o = std::make_unique<Mirror>(be, r.out);
    l = std::make_unique<Mirror>(be, r.lse);
    qv = q->dev, kv = k->dev, vv = v->dev, ov = o->dev, lv = l->dev;
  }
  be.state_init(st, c.batch, c.hq, c.n_q, c.dv, nullptr);
  const int64_t half = c.n_k / 2;
  for (int part = 0; part < 2; ++part) {
    const int64_t j0 = part == 0 ? 0 : half, nk = part == 0 ? half : c.n_k - half;
    if (nk == 0) continue;
    longattn::AttendArgs a = base_args(c, in, arr);
    a.n_k = nk;
    a.k_pos0 = c.k_pos0 + j0;
    a.q = qv;
    a.k = kv, a.v = vv;
    a.k.data = static_cast<char*>(kv.data) + j0 * kv.strides[1];
    a.v.data = static_cast<char*>(vv.data) + j0 * vv.strides[1];
    a.k.shape[1] = a.v.shape[1] = nk;
    a.state = &st;
    be.attend(a);
  }
  be.state_finish(st, c.batch, c.hq, c.n_q, c.dv, ov, lv, nullptr);
  if (device) {
    be.synchronize(nullptr);
    o->to_host(r.out);
    l->to_host(r.lse);
  }
  return r;
}

// ‖a − b‖/‖b‖ over the outputs; LSE both −inf or within lse_tol; counts NaNs in a.
void expect_close(const PrimResult& a, const PrimResult& b, double tol, double lse_tol = 1e-3) {
  double num = 0, den = 0, lse_err = 0;
  int64_t nan = 0, lse_bad = 0;
  const auto& t = a.out.t;
  for (int64_t bi = 0; bi < t.shape[0]; ++bi)
    for (int64_t i = 0; i < t.shape[1]; ++i)
      for (int64_t h = 0; h < t.shape[2]; ++h) {
        for (int64_t c = 0; c < t.shape[3]; ++c) {
          const double x = a.out.get(bi, i, h, c), y = b.out.get(bi, i, h, c);
          if (std::isnan(x)) { ++nan; continue; }
          num += (x - y) * (x - y);
          den += y * y;
        }
        const double la = a.lse.get(bi, i, h, 0), lb = b.lse.get(bi, i, h, 0);
        if (std::isinf(la) || std::isinf(lb) || std::isnan(la)) {
          if (!(std::isinf(la) && std::isinf(lb) && la < 0 && lb < 0)) ++lse_bad;
        } else {
          lse_err = std::max(lse_err, std::fabs(la - lb));
        }
      }
  const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  CHECK(nan == 0);
  CHECK(lse_bad == 0);
  CHECK(rel < tol);
  CHECK(lse_err < lse_tol);
}

PrimCase random_prim_case(std::mt19937_64& rng) {
  auto pick = [&](std::initializer_list<int64_t> xs) { return *(xs.begin() + rng() % xs.size()); };
  PrimCase c;
  c.batch = pick({1, 2});
  c.n_q = pick({1, 3, 16, 70, 200});
  c.n_k = pick({1, 5, 64, 100, 333});
  c.hkv = int32_t(pick({1, 2}));
  c.hq = c.hkv * int32_t(pick({1, 3, 4}));
  if (rng() % 2) {  // tensor-core path
    c.d = c.dv = int32_t(pick({64, 80, 96, 128, 256}));
    c.qt = c.kvt = rng() % 2 ? LONGATTN_DTYPE_BF16 : LONGATTN_DTYPE_F16;
  } else {
    c.d = int32_t(pick({8, 32, 64}));
    c.dv = rng() % 3 == 0 ? int32_t(pick({4, 48})) : c.d;
    c.qt = kDtypes[rng() % 3];
    c.kvt = kDtypes[rng() % 3];
  }
  c.ot = kDtypes[rng() % 3];
  c.mask.causal = rng() % 2;
  c.mask.window_left = rng() % 2 ? -1 : pick({0, 1, 7, 40, 500});
  c.mask.window_right = rng() % 3 ? -1 : pick({0, 3, 50});
  c.mask.n_global = rng() % 3 ? 0 : pick({1, 4, 30});
  c.k_pos0 = rng() % 3 == 0 ? pick({-10, 7, 100}) : 0;
  c.q_pos0 = c.k_pos0 + std::max<int64_t>(0, c.n_k - c.n_q) + (rng() % 3 == 0 ? pick({-20, 5}) : 0);
  c.explicit_pos = rng() % 4 == 0;
  c.gathers = rng() % 3 == 0;
  c.logw = rng() % 3 == 0;
  c.groups = rng() % 4 == 0;
  c.n_segments = rng() % 4 == 0 ? int32_t(pick({1, 2, 5})) : 0;
  c.softcap = rng() % 6 == 0 ? 2.5f : 0.0f;
  return c;
}

void check_prim_case(longattn::Backend& gpu, longattn::Backend& cpu, const PrimCase& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const PrimInputs in = make_inputs(c, rng);
  INFO(describe(c), " seed=", seed);
  const PrimResult want = run_prim(cpu, false, c, in);
  const PrimResult got = run_prim(gpu, true, c, in);
  expect_close(got, want, tol_of({c.qt, c.kvt, c.ot}));
}

}  // namespace

TEST_CASE("cuda: device discovery never fails") {
  int32_t n = -1;
  REQUIRE(longattn_device_count(LONGATTN_BACKEND_CUDA, &n) == LONGATTN_OK);
  CHECK(n >= 0);
  CHECK(longattn::cuda_device_count() == n);
  if (n == 0) {
    MESSAGE("no CUDA device: only discovery checked");
    CHECK(longattn_backend_available(LONGATTN_BACKEND_CUDA) == 0);
    return;
  }
  CHECK(!longattn::cuda_device_name(0).empty());
  auto be = longattn::make_cuda_backend(0);
  CHECK(be->kind() == LONGATTN_BACKEND_CUDA);
  CHECK_THROWS(longattn::make_cuda_backend(n));
}

TEST_CASE("cuda: FLASH random cases on host tensors against the float64 reference") {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = std::random_device{}();
  INFO("seed=", seed);
  std::mt19937_64 rng(seed);
  Context ctx(LONGATTN_BACKEND_CUDA);
  for (int i = 0; i < 60; ++i) check_api_case(ctx, random_api_case(rng), rng());
}

TEST_CASE("cuda: tensor-core head dims, causal and not, GQA packing, decode split-KV") {
  SKIP_WITHOUT_CUDA();
  std::mt19937_64 rng(std::random_device{}());
  Context ctx(LONGATTN_BACKEND_CUDA);
  for (int32_t d : {64, 80, 96, 128, 256})
    for (longattn_dtype t : {LONGATTN_DTYPE_BF16, LONGATTN_DTYPE_F16})
      for (bool causal : {false, true}) {
        check_api_case(ctx, ApiCase{1, 300, 300, 8, 2, d, causal, t, t, t, 0, LONGATTN_Q_POS_BOTTOM_RIGHT, 0.0f}, rng());
        // decode and a short chunk against a long cache: few query tiles, split keys
        check_api_case(ctx, ApiCase{2, 1, 5000, 8, 2, d, causal, t, t, LONGATTN_DTYPE_F32, 8, LONGATTN_Q_POS_BOTTOM_RIGHT, 0.0f}, rng());
        check_api_case(ctx, ApiCase{1, 3, 3000, 4, 4, d, causal, t, t, t, 0, LONGATTN_Q_POS_BOTTOM_RIGHT, 0.0f}, rng());
      }
}

TEST_CASE("cuda: same outputs as the CPU backend through the public API") {
  SKIP_WITHOUT_CUDA();
  std::mt19937_64 rng(std::random_device{}());
  Context gpu(LONGATTN_BACKEND_CUDA), cpu(LONGATTN_BACKEND_CPU, 2);
  for (int i = 0; i < 12; ++i) {
    ApiCase c = random_api_case(rng);
    INFO(describe(c));
    HostTensor q = random_tensor(rng, c.qt, c.batch, c.n_q, c.hq, c.d, c.pad);
    HostTensor k = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.d, c.pad);
    HostTensor v = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.d, c.pad);
    PrimResult r[2] = {{HostTensor(c.ot, c.batch, c.n_q, c.hq, c.d, c.pad), HostTensor(LONGATTN_DTYPE_F32, c.batch, c.n_q, c.hq, 1, c.pad)},
                       {HostTensor(c.ot, c.batch, c.n_q, c.hq, c.d, c.pad), HostTensor(LONGATTN_DTYPE_F32, c.batch, c.n_q, c.hq, 1, c.pad)}};
    Context* ctxs[2] = {&gpu, &cpu};
    for (int x = 0; x < 2; ++x) {
      Attention attn(*ctxs[x], desc_of(c));
      REQUIRE(attn.status == LONGATTN_OK);
      r[x].out.poison();
      r[x].lse.poison();
      longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
      a.q = &q.t, a.k = &k.t, a.v = &v.t, a.out = &r[x].out.t, a.lse = &r[x].lse.t, a.q_pos0 = c.q_pos0;
      REQUIRE_MESSAGE(longattn_attention_forward(ctxs[x]->ctx, attn.attn, &a) == LONGATTN_OK, ctxs[x]->error());
    }
    expect_close(r[0], r[1], tol_of({c.qt, c.kvt, c.ot}));
  }
}

TEST_CASE("cuda: device tensors (LONGATTN_MEMORY_DEVICE), strided views") {
  SKIP_WITHOUT_CUDA();
  std::mt19937_64 rng(std::random_device{}());
  auto be = longattn::make_cuda_backend(0);
  Context ctx(LONGATTN_BACKEND_CUDA);
  for (int i = 0; i < 10; ++i) {
    ApiCase c = random_api_case(rng);
    if (i % 2 == 0) c.qt = c.kvt = LONGATTN_DTYPE_BF16, c.d = 128;
    INFO(describe(c));
    HostTensor q = random_tensor(rng, c.qt, c.batch, c.n_q, c.hq, c.d, c.pad);
    HostTensor k = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.d, c.pad);
    HostTensor v = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.d, c.pad);
    HostTensor out(c.ot, c.batch, c.n_q, c.hq, c.d, c.pad), lse(LONGATTN_DTYPE_F32, c.batch, c.n_q, c.hq, 1, c.pad);
    out.poison();
    lse.poison();
    const std::vector<uint8_t> out_before = out.bytes;
    Mirror dq(*be, q), dk(*be, k), dv(*be, v), dout(*be, out), dlse(*be, lse);
    const longattn_tensor tq = dq.tensor(q), tk = dk.tensor(k), tv = dv.tensor(v), to = dout.tensor(out),
                          tl = dlse.tensor(lse);
    Attention attn(ctx, desc_of(c));
    REQUIRE(attn.status == LONGATTN_OK);
    longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
    a.q = &tq, a.k = &tk, a.v = &tv, a.out = &to, a.lse = &tl, a.q_pos0 = c.q_pos0;
    REQUIRE_MESSAGE(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_OK, ctx.error());
    // the call ran on the context's stream, asynchronously: wait for it before reading back
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    dout.to_host(out);
    dlse.to_host(lse);
    std::vector<double> ref, ref_lse;
    const int64_t pos0 = c.q_pos0 == LONGATTN_Q_POS_BOTTOM_RIGHT ? c.n_k - c.n_q : c.q_pos0;
    longattn::reference_attention(config_of(desc_of(c)), q.view(), k.view(), v.view(), pos0, ref, ref_lse);
    const Errors e = compare(out, ref, &lse, &ref_lse);
    CHECK(e.nan_count == 0);
    CHECK(e.lse_mismatch == 0);
    CHECK(e.rel < tol_of({c.qt, c.kvt, c.ot}));
    // the bytes of the strided output buffer outside the view are untouched
    std::vector<bool> in_view(out.bytes.size(), false);
    const size_t es = longattn_dtype_size(c.ot);
    out.each([&](int64_t b, int64_t n, int64_t h, int64_t x) {
      const size_t off = size_t(out.at(b, n, h, x) - reinterpret_cast<char*>(out.bytes.data()));
      for (size_t y = 0; y < es; ++y) in_view[off + y] = true;
    });
    size_t gap_changed = 0;
    for (size_t x = 0; x < out.bytes.size(); ++x)
      if (!in_view[x] && out.bytes[x] != out_before[x]) ++gap_changed;
    CHECK(gap_changed == 0);
  }
}

TEST_CASE("cuda: SPARSE masks through the public API") {
  SKIP_WITHOUT_CUDA();
  std::mt19937_64 rng(std::random_device{}());
  Context ctx(LONGATTN_BACKEND_CUDA);
  struct M { int causal, wl, wr, g; };
  for (M m : {M{1, 63, -1, 0}, M{1, 100, -1, 4}, M{0, 64, 64, 0}, M{0, 10, 30, 17}, M{1, 0, -1, 1}, M{0, 2000, 2000, 0}})
    for (longattn_dtype t : {LONGATTN_DTYPE_BF16, LONGATTN_DTYPE_F32}) {
      longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
      d.algorithm = LONGATTN_ALGORITHM_SPARSE;
      d.n_q_heads = 4, d.n_kv_heads = 2, d.head_dim = 64;
      d.causal = m.causal, d.window_left = m.wl, d.window_right = m.wr, d.n_global = m.g;
      HostTensor q = random_tensor(rng, t, 1, 700, 4, 64), k = random_tensor(rng, t, 1, 700, 2, 64),
                 v = random_tensor(rng, t, 1, 700, 2, 64);
      HostTensor out(t, 1, 700, 4, 64), lse(LONGATTN_DTYPE_F32, 1, 700, 4, 1);
      const RunResult r = run_and_compare(ctx, d, q, k, v, out, &lse);
      INFO("causal=", m.causal, " wl=", m.wl, " wr=", m.wr, " g=", m.g, " dt=", t);
      REQUIRE_MESSAGE(r.status == LONGATTN_OK, ctx.error());
      CHECK(r.err.nan_count == 0);
      CHECK(r.err.lse_mismatch == 0);
      CHECK(r.err.rel < tolerance(t));
    }
}

TEST_CASE("cuda: attend features against the CPU backend (gathers, log-weights, groups, segments, masks)") {
  SKIP_WITHOUT_CUDA();
  const uint64_t seed = std::random_device{}();
  INFO("seed=", seed);
  std::mt19937_64 rng(seed);
  auto gpu = longattn::make_cuda_backend(0);
  auto cpu = longattn::make_cpu_backend(2);
  for (int i = 0; i < 80; ++i) check_prim_case(*gpu, *cpu, random_prim_case(rng), rng());
  // every feature at once on the tensor-core path, with many segments (several launches)
  PrimCase c;
  c.batch = 2, c.n_q = 400, c.n_k = 900, c.hq = 8, c.hkv = 2, c.d = c.dv = 64;
  c.qt = c.kvt = LONGATTN_DTYPE_BF16, c.ot = LONGATTN_DTYPE_F32;
  c.gathers = c.logw = c.groups = true;
  c.n_segments = 70;
  check_prim_case(*gpu, *cpu, c, rng());
  // groups in contiguous query blocks, as HYPER's sampled keys use them: blocks of 256 rows
  // (every tile inside one block: the groups fold into the key bias) and of 100 rows (tiles
  // straddle blocks: per-(row, key) comparisons), no GQA and GQA
  c.n_segments = 0, c.n_q = 1024, c.n_k = 300;
  for (int64_t rows : {256, 100})
    for (int32_t hkv : {8, 2}) {
      c.group_rows = rows, c.hkv = hkv;
      check_prim_case(*gpu, *cpu, c, rng());
    }
  c.group_rows = 0, c.hkv = 2, c.n_q = 400, c.n_k = 900;
  c.gathers = false, c.logw = false, c.groups = false, c.explicit_pos = true;
  c.mask.causal = true, c.mask.window_left = 100, c.mask.n_global = 3;
  check_prim_case(*gpu, *cpu, c, rng());
}

TEST_CASE("cuda: running state folded over two key halves equals one call, and matches the CPU") {
  SKIP_WITHOUT_CUDA();
  std::mt19937_64 rng(std::random_device{}());
  auto gpu = longattn::make_cuda_backend(0);
  auto cpu = longattn::make_cpu_backend(2);
  for (int i = 0; i < 16; ++i) {
    PrimCase c = random_prim_case(rng);
    // per-key arrays are indexed by the call's keys, so the halves use none of them
    c.explicit_pos = false, c.n_segments = 0, c.gathers = false, c.logw = false, c.groups = false;
    std::mt19937_64 r2(rng());
    const PrimInputs in = make_inputs(c, r2);
    INFO(describe(c));
    const PrimResult one = run_prim(*gpu, true, c, in);
    const PrimResult folded = run_prim_state(*gpu, true, c, in);
    const PrimResult cpu_folded = run_prim_state(*cpu, false, c, in);
    expect_close(folded, one, tol_of({c.qt, c.kvt, c.ot}));
    expect_close(folded, cpu_folded, tol_of({c.qt, c.kvt, c.ot}));
  }
}

TEST_CASE("cuda: merge equals the CPU merge, in place too, with empty rows") {
  SKIP_WITHOUT_CUDA();
  std::mt19937_64 rng(std::random_device{}());
  auto gpu = longattn::make_cuda_backend(0);
  auto cpu = longattn::make_cpu_backend(1);
  for (int64_t D : {72, 64})  // 64 with f32: the 16-byte path (one thread per 4 columns)
  for (longattn_dtype t : kDtypes) {
    const int64_t B = 2, N = 37, H = 3;
    HostTensor a = random_tensor(rng, t, B, N, H, D), b = random_tensor(rng, t, B, N, H, D);
    HostTensor la = random_tensor(rng, LONGATTN_DTYPE_F32, B, N, H, 1, 0, 3.0f);
    HostTensor lb = random_tensor(rng, LONGATTN_DTYPE_F32, B, N, H, 1, 0, 3.0f);
    for (int64_t n = 0; n < N; n += 5) la.set(0, n, 1, 0, -INFINITY);
    for (int64_t n = 0; n < N; n += 10) lb.set(0, n, 1, 0, -INFINITY);  // n % 10 == 0: both empty
    PrimResult want{HostTensor(t, B, N, H, D), HostTensor(LONGATTN_DTYPE_F32, B, N, H, 1)};
    cpu->merge(a.view(), la.view(), b.view(), lb.view(), want.out.view(), want.lse.view(), nullptr);
    // in place on the GPU: out = a, lse_out = la
    Mirror da(*gpu, a), db(*gpu, b), dla(*gpu, la), dlb(*gpu, lb);
    gpu->merge(da.dev, dla.dev, db.dev, dlb.dev, da.dev, dla.dev, nullptr);
    PrimResult got{HostTensor(t, B, N, H, D), HostTensor(LONGATTN_DTYPE_F32, B, N, H, 1)};
    gpu->synchronize(nullptr);
    da.to_host(got.out);
    dla.to_host(got.lse);
    INFO("dtype=", t, " D=", D);
    expect_close(got, want, tolerance(t), 1e-5);
    for (int64_t n = 0; n < N; n += 10) {
      CHECK(std::isinf(got.lse.get(0, n, 1, 0)));
      CHECK(got.out.get(0, n, 1, 5) == 0.0f);
    }
    if (t == LONGATTN_DTYPE_F32) {  // f32 partials into a bf16 output (the last merge of HYPER)
      PrimResult want16{HostTensor(LONGATTN_DTYPE_BF16, B, N, H, D), HostTensor(LONGATTN_DTYPE_F32, B, N, H, 1)};
      cpu->merge(a.view(), la.view(), b.view(), lb.view(), want16.out.view(), want16.lse.view(), nullptr);
      PrimResult got16{HostTensor(LONGATTN_DTYPE_BF16, B, N, H, D), HostTensor(LONGATTN_DTYPE_F32, B, N, H, 1)};
      got16.out.poison();
      got16.lse.poison();
      Mirror ea(*gpu, a), ela(*gpu, la), eo(*gpu, got16.out), el(*gpu, got16.lse);
      gpu->merge(ea.dev, ela.dev, db.dev, dlb.dev, eo.dev, el.dev, nullptr);
      gpu->synchronize(nullptr);
      eo.to_host(got16.out);
      el.to_host(got16.lse);
      expect_close(got16, want16, tolerance(LONGATTN_DTYPE_BF16), 1e-5);
    }
  }
}

TEST_CASE("cuda: LSH codes and the stable counting sort equal the CPU backend") {
  SKIP_WITHOUT_CUDA();
  std::mt19937_64 rng(std::random_device{}());
  auto gpu = longattn::make_cuda_backend(0);
  auto cpu = longattn::make_cpu_backend(2);
  for (int32_t r : {1, 5, 8, 12, 16}) {
    const int64_t B = 2, N = 3001, H = 3, D = r == 1 ? 40 : r == 5 ? 80 : 64;  // ragged last dim chunk too
    const longattn_dtype t = kDtypes[size_t(r) % 3];
    HostTensor x = random_tensor(rng, t, B, N, H, D);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> G(size_t(D * r)), center(size_t(B * H * D));
    for (float& g : G) g = nd(rng);
    for (float& c : center) c = 0.1f * nd(rng);
    const size_t n_codes = size_t(B * H * N);
    std::vector<uint16_t> want(n_codes);
    cpu->lsh_codes(x.view(), G.data(), r, center.data(), want.data(), nullptr);
    Mirror dx(*gpu, x);
    DeviceBuffer dG(*gpu, G), dc(*gpu, center), dcodes(*gpu, n_codes * 2);
    gpu->lsh_codes(dx.dev, dG.as<float>(), r, dc.as<float>(), dcodes.as<uint16_t>(), nullptr);
    const std::vector<uint16_t> got = dcodes.download<uint16_t>(n_codes);
    size_t diff = 0;
    for (size_t e = 0; e < n_codes; ++e) diff += got[e] != want[e];
    INFO("r=", r);
    CHECK(diff == 0);
    for (uint16_t c : got) REQUIRE(c < (1u << r));

    // sort the codes (few distinct values: many ties, so stability matters)
    std::vector<int32_t> perm_want(n_codes);
    cpu->counting_sort(want.data(), B * H, N, r, perm_want.data(), nullptr);
    DeviceBuffer dperm(*gpu, n_codes * 4);
    gpu->counting_sort(dcodes.as<uint16_t>(), B * H, N, r, dperm.as<int32_t>(), nullptr);
    CHECK(dperm.download<int32_t>(n_codes) == perm_want);
  }
  // many segments and random 16-bit codes
  const int64_t n_seg = 700, n = 97;
  std::vector<uint16_t> codes(size_t(n_seg * n));
  for (uint16_t& c : codes) c = uint16_t(rng() % 65536);
  std::vector<int32_t> want(codes.size());
  cpu->counting_sort(codes.data(), n_seg, n, 16, want.data(), nullptr);
  DeviceBuffer dcodes(*gpu, codes), dperm(*gpu, codes.size() * 4);
  gpu->counting_sort(dcodes.as<uint16_t>(), n_seg, n, 16, dperm.as<int32_t>(), nullptr);
  CHECK(dperm.download<int32_t>(codes.size()) == want);
}

TEST_CASE("cuda: segmented gathers and segment labels equal the CPU backend") {
  SKIP_WITHOUT_CUDA();
  std::mt19937_64 rng(std::random_device{}());
  auto gpu = longattn::make_cuda_backend(0);
  auto cpu = longattn::make_cpu_backend(2);
  const int64_t n_seg = 24, n_src = 5003, n_index = 256;
  std::vector<int32_t> src(size_t(n_seg * n_src)), index(size_t(n_seg * n_index));
  for (int32_t& x : src) x = int32_t(rng() % 1000000);
  for (int32_t& x : index) x = int32_t(rng() % uint64_t(n_src));
  std::vector<int32_t> want(index.size());
  cpu->gather_i32(want.data(), src.data(), index.data(), n_seg, n_src, n_index, nullptr);
  DeviceBuffer dsrc(*gpu, src), dindex(*gpu, index), ddst(*gpu, index.size() * 4);
  gpu->gather_i32(ddst.as<int32_t>(), dsrc.as<int32_t>(), dindex.as<int32_t>(), n_seg, n_src, n_index, nullptr);
  CHECK(ddst.download<int32_t>(index.size()) == want);

  // more segments than one launch takes, uneven and empty ones, several copies
  std::vector<int64_t> offsets{0};
  for (int s = 0; s < 1300; ++s) offsets.push_back(offsets.back() + int64_t(rng() % 5 == 0 ? 0 : rng() % 700));
  const int32_t segs = int32_t(offsets.size() - 1);
  const int64_t n = offsets.back(), copies = 3;
  std::vector<int32_t> labels(size_t(n * copies));
  cpu->segment_labels(labels.data(), offsets.data(), segs, copies, nullptr);
  DeviceBuffer dlabels(*gpu, labels.size() * 4);
  gpu->segment_labels(dlabels.as<int32_t>(), offsets.data(), segs, copies, nullptr);
  CHECK(dlabels.download<int32_t>(labels.size()) == labels);
}

namespace {

// HYPER (self-attention over n tokens) through run_hyper_with_choices on `be`: host views, or
// device copies when `on_device`; the output lands in `res` (poisoned first).
void run_hyper_on(longattn::Backend& be, bool on_device, const AttentionConfig& cfg, int64_t batch, int64_t n,
                  const HostTensor& q, const HostTensor& k, const HostTensor& v, PrimResult& res,
                  longattn::HyperChoices& choices) {
  res.out.poison();
  res.lse.poison();
  longattn::Workspace ws(be);
  longattn::Problem p;
  p.cfg = &cfg;
  p.batch = batch, p.n_q = n, p.n_k = n, p.q_pos0 = 0, p.ws = &ws;
  std::unique_ptr<Mirror> mq, mk, mv, mo, ml;
  if (!on_device) {
    p.q = q.view(), p.k = k.view(), p.v = v.view(), p.out = res.out.view(), p.lse = res.lse.view();
  } else {
    mq = std::make_unique<Mirror>(be, q), mk = std::make_unique<Mirror>(be, k);
    mv = std::make_unique<Mirror>(be, v), mo = std::make_unique<Mirror>(be, res.out);
    ml = std::make_unique<Mirror>(be, res.lse);
    p.q = mq->dev, p.k = mk->dev, p.v = mv->dev, p.out = mo->dev, p.lse = ml->dev;
  }
  longattn::run_hyper_with_choices(be, p, &choices);
  if (on_device) {
    be.synchronize(nullptr);
    mo->to_host(res.out);
    ml->to_host(res.lse);
  }
}

}  // namespace

// HYPER with small blocks and samples on 4 query / 2 KV heads of dim 64, so that 1500 tokens
// recurse several levels.
AttentionConfig hyper_test_config(bool causal, uint64_t seed) {
  longattn_attention_desc desc = LONGATTN_ATTENTION_DESC_INIT;
  desc.algorithm = LONGATTN_ALGORITHM_HYPER;
  desc.n_q_heads = 4, desc.n_kv_heads = 2, desc.head_dim = 64, desc.causal = causal;
  desc.hyper_block_size = 64, desc.hyper_sample_size = 64, desc.hyper_lsh_bits = 6;
  desc.hyper_min_seq_len = 256;
  desc.seed = seed;
  return config_of(desc);
}

TEST_CASE("cuda: HYPER with the CPU's choices injected matches the CPU numerics") {
  SKIP_WITHOUT_CUDA();
  std::mt19937_64 rng(std::random_device{}());
  auto gpu = longattn::make_cuda_backend(0);
  auto cpu = longattn::make_cpu_backend(2);
  for (bool causal : {false, true})
    for (longattn_dtype t : {LONGATTN_DTYPE_BF16, LONGATTN_DTYPE_F32}) {
      const AttentionConfig cfg = hyper_test_config(causal, rng());
      const int64_t n = 1500;
      HostTensor q = random_tensor(rng, t, 1, n, 4, 64), k = random_tensor(rng, t, 1, n, 2, 64),
                 v = random_tensor(rng, t, 1, n, 2, 64);
      PrimResult res[2] = {{HostTensor(t, 1, n, 4, 64), HostTensor(LONGATTN_DTYPE_F32, 1, n, 4, 1)},
                           {HostTensor(t, 1, n, 4, 64), HostTensor(LONGATTN_DTYPE_F32, 1, n, 4, 1)}};
      longattn::HyperChoices choices;
      choices.force_hyper_path = true;
      for (int x = 0; x < 2; ++x) {  // 0: CPU records, 1: CUDA replays
        choices.mode = x == 0 ? longattn::HyperChoices::Mode::record : longattn::HyperChoices::Mode::replay;
        run_hyper_on(x == 0 ? *cpu : *gpu, x == 1, cfg, 1, n, q, k, v, res[x], choices);
      }
      INFO("causal=", causal, " dtype=", t, " nodes=", choices.nodes.size());
      CHECK(!choices.nodes.empty());
      expect_close(res[1], res[0], tol_of({t}));
    }
}

TEST_CASE("cuda: HYPER choosing on the device matches the CPU replaying the same choices") {
  SKIP_WITHOUT_CUDA();
  std::mt19937_64 rng(std::random_device{}());
  auto gpu = longattn::make_cuda_backend(0);
  auto cpu = longattn::make_cpu_backend(2);
  for (bool causal : {false, true}) {
    const AttentionConfig cfg = hyper_test_config(causal, rng());
    const longattn_dtype t = LONGATTN_DTYPE_BF16;
    const int64_t B = 2, n = 1500;
    HostTensor q = random_tensor(rng, t, B, n, 4, 64), k = random_tensor(rng, t, B, n, 2, 64),
               v = random_tensor(rng, t, B, n, 2, 64);
    PrimResult res[2] = {{HostTensor(t, B, n, 4, 64), HostTensor(LONGATTN_DTYPE_F32, B, n, 4, 1)},
                         {HostTensor(t, B, n, 4, 64), HostTensor(LONGATTN_DTYPE_F32, B, n, 4, 1)}};
    longattn::HyperChoices cpu_own, gpu_own;  // what each backend chooses by itself
    cpu_own.force_hyper_path = gpu_own.force_hyper_path = true;
    {
      HostTensor o(t, B, n, 4, 64), l(LONGATTN_DTYPE_F32, B, n, 4, 1);
      longattn::Workspace ws(*cpu);
      longattn::Problem p;
      p.cfg = &cfg;
      p.batch = B, p.n_q = n, p.n_k = n, p.q_pos0 = 0, p.ws = &ws;
      p.q = q.view(), p.k = k.view(), p.v = v.view(), p.out = o.view(), p.lse = l.view();
      longattn::run_hyper_with_choices(*cpu, p, &cpu_own);
    }
    for (int x = 0; x < 2; ++x) {  // 0: CUDA chooses (recording), 1: CPU replays those choices
      gpu_own.mode = x == 0 ? longattn::HyperChoices::Mode::record : longattn::HyperChoices::Mode::replay;
      run_hyper_on(x == 0 ? *gpu : *cpu, x == 0, cfg, B, n, q, k, v, res[x], gpu_own);
    }
    INFO("causal=", causal, " nodes=", gpu_own.nodes.size());
    REQUIRE(gpu_own.nodes.size() == cpu_own.nodes.size());
    // the samples are drawn from the seed alone: identical on both backends
    size_t code_diff = 0;
    for (size_t i = 0; i < gpu_own.nodes.size(); ++i) {
      CHECK(gpu_own.nodes[i].sample_ranks == cpu_own.nodes[i].sample_ranks);
      for (size_t e = 0; e < gpu_own.nodes[i].codes_k.size(); ++e)
        code_diff += gpu_own.nodes[i].codes_k[e] != cpu_own.nodes[i].codes_k[e];
    }
    CHECK(code_diff <= 2);  // a key within rounding of a hyperplane may flip
    expect_close(res[0], res[1], tol_of({t}));
  }
}

#else  // !LONGATTN_HAVE_CUDA

TEST_CASE("cuda: backend not compiled in") {
  CHECK(longattn_backend_available(LONGATTN_BACKEND_CUDA) == 0);
  MESSAGE("library built without the CUDA backend: CUDA cases skipped");
}

#endif
