// The Vulkan backend against the CPU backend and the float64 reference: every primitive on random
// shapes, dtypes, strides, GQA, masks, gathers, log-weights, exclusion groups, segments and running
// states; FLASH / SPARSE / HYPER through the public API; the device-buffer API; error statuses.
//
// The decode kernel (shaders/attend_decode.comp) is forced through LONGATTN_VULKAN_DECODE on decode
// shapes, with both of its score reductions (subgroup shuffles, shared memory).
//
// Runs on whatever Vulkan device comes first (a GPU, else a CPU-type device such as lavapipe);
// skips when there is none. The Khronos validation layer is switched on through
// LONGATTN_VULKAN_VALIDATION=1 (set below unless the environment already decides) and every
// warning or error it reports fails the test case that caused it.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <numeric>
#include <set>

#include "backend.hpp"
#include "common.hpp"
#include "error.hpp"
#include "hyper_test_util.hpp"
#include "vulkan_test_util.hpp"
#include "problem.hpp"
#include "workspace.hpp"

#if LONGATTN_HAVE_VULKAN

#include "../backends/vulkan/vk_instance.hpp"
#include "../backends/vulkan/vk_shaders.hpp"
#include "../backends/vulkan/vulkan_backend.hpp"
#include "longattn_vulkan.h"

using namespace test;
using longattn::AttendArgs;
using longattn::Backend;
using longattn::Mask;
using longattn::RunningState;

namespace {

constexpr int32_t kDevice = kVulkanDevice;
const longattn_dtype kDtypes[] = {LONGATTN_DTYPE_F32, LONGATTN_DTYPE_F16, LONGATTN_DTYPE_BF16};


// ---------------------------------------------------------------------------------------------
// attend: one random scenario, run on a backend
// ---------------------------------------------------------------------------------------------

struct AttendCase {
  int64_t batch = 1, n_q = 1, n_k = 1;
  int32_t hq = 1, hkv = 1, d = 8, dv = 8;
  longattn_dtype qt = LONGATTN_DTYPE_F32, kvt = LONGATTN_DTYPE_F32, ot = LONGATTN_DTYPE_F32;
  int64_t pad = 0;
  Mask mask;
  float scale = 0.3f, softcap = 0.0f;
  int64_t q_pos0 = 0, k_pos0 = 0;
  bool explicit_pos = false, gather_q = false, gather_k = false, logw = false, groups = false;
  bool segments = false, want_lse = true, state = false;
  bool tail = false;         // segments share the last keys (needs gather_k)
  bool heads_outer = false;  // K/V laid out [batch, heads, tokens, dim] in memory

  std::string describe() const {
    std::string s = "b=" + std::to_string(batch) + " nq=" + std::to_string(n_q) + " nk=" + std::to_string(n_k) +
                    " h=" + std::to_string(hq) + "/" + std::to_string(hkv) + " d=" + std::to_string(d) + "/" +
                    std::to_string(dv) + " dt=" + std::to_string(qt) + std::to_string(kvt) + std::to_string(ot) +
                    " pad=" + std::to_string(pad) + " causal=" + std::to_string(mask.causal) +
                    " win=" + std::to_string(mask.window_left) + "/" + std::to_string(mask.window_right) +
                    " glob=" + std::to_string(mask.n_global) + " pos0=" + std::to_string(q_pos0) + "/" +
                    std::to_string(k_pos0) + " softcap=" + std::to_string(softcap);
    if (explicit_pos) s += " explicit_pos";
    if (gather_q) s += " gather_q";
    if (gather_k) s += " gather_k";
    if (logw) s += " logw";
    if (groups) s += " groups";
    if (segments) s += " segments";
    if (tail) s += " tail";
    if (!want_lse) s += " no_lse";
    if (state) s += " state";
    if (heads_outer) s += " heads_outer";
    return s;
  }
};

struct AttendData {
  HostTensor q, k, v, out, lse;
  std::vector<int64_t> q_pos, k_pos, q_seg, k_seg;
  int64_t n_tail = 0;
  std::vector<int32_t> q_rows, k_rows, q_group, k_group, tail_rows, tail_group;
  std::vector<float> key_logw, tail_logw;
};

std::vector<int32_t> permutations(std::mt19937_64& rng, int64_t sets, int64_t n) {
  std::vector<int32_t> out;
  for (int64_t s = 0; s < sets; ++s) {
    auto p = std::vector<int32_t>(size_t(n));
    std::iota(p.begin(), p.end(), 0);
    std::shuffle(p.begin(), p.end(), rng);
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

// n_seg + 1 non-decreasing offsets from 0 to n (some segments may be empty).
std::vector<int64_t> cuts(std::mt19937_64& rng, int64_t n, int n_seg) {
  std::vector<int64_t> c(size_t(n_seg) + 1, 0);
  for (int i = 1; i < n_seg; ++i) c[size_t(i)] = int64_t(rng() % uint64_t(n + 1));
  c[size_t(n_seg)] = n;
  std::sort(c.begin(), c.end());
  return c;
}

// The same values with the heads outside the tokens: [batch, heads, tokens, dim] in memory.
HostTensor heads_outside(const HostTensor& x) {
  HostTensor y = x;
  const int64_t es = int64_t(longattn_dtype_size(x.t.dtype));
  const int64_t b = x.t.shape[0], n = x.t.shape[1], h = x.t.shape[2], d = x.t.shape[3];
  y.bytes.assign(size_t(b * h * n * d * es), 0xA5);
  y.t.data = y.bytes.data();
  y.t.strides[3] = es;
  y.t.strides[1] = d * es;
  y.t.strides[2] = n * d * es;
  y.t.strides[0] = h * n * d * es;
  const_cast<HostTensor&>(x).each(
      [&](int64_t i, int64_t j, int64_t k, int64_t e) { y.set(i, j, k, e, x.get(i, j, k, e)); });
  return y;
}

AttendData make_data(const AttendCase& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  AttendData x;
  x.q = random_tensor(rng, c.qt, c.batch, c.n_q, c.hq, c.d, c.pad);
  x.k = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.d, c.pad);
  x.v = random_tensor(rng, c.kvt, c.batch, c.n_k, c.hkv, c.dv, c.pad);
  if (c.heads_outer) {
    x.k = heads_outside(x.k);
    x.v = heads_outside(x.v);
  }
  x.out = HostTensor(c.ot, c.batch, c.n_q, c.hq, c.dv, c.pad);
  x.out.poison();
  x.lse = HostTensor(LONGATTN_DTYPE_F32, c.batch, c.n_q, c.hq, 1, c.pad);
  x.lse.poison();
  if (c.explicit_pos) {
    for (int64_t i = 0; i < c.n_q; ++i) x.q_pos.push_back(int64_t(rng() % uint64_t(3 * c.n_k + 8)) - 4);
    for (int64_t j = 0; j < c.n_k; ++j) x.k_pos.push_back(int64_t(rng() % uint64_t(3 * c.n_k + 8)) - 4);
  }
  if (c.gather_q) x.q_rows = permutations(rng, c.batch * c.hq, c.n_q);
  if (c.gather_k) x.k_rows = permutations(rng, c.batch * c.hkv, c.n_k);
  if (c.logw) {
    std::uniform_real_distribution<float> w(-2.0f, 1.5f);
    for (int64_t j = 0; j < c.batch * c.hkv * c.n_k; ++j)
      x.key_logw.push_back(rng() % 13 == 0 ? -std::numeric_limits<float>::infinity() : w(rng));
  }
  if (c.groups) {
    for (int64_t i = 0; i < c.batch * c.hq * c.n_q; ++i) x.q_group.push_back(int32_t(rng() % 5) - 1);
    for (int64_t j = 0; j < c.batch * c.hkv * c.n_k; ++j) x.k_group.push_back(int32_t(rng() % 4));
  }
  if (c.segments) {
    const int n_seg = 1 + int(rng() % 4);
    x.q_seg = cuts(rng, c.n_q, n_seg);
    if (c.tail) x.n_tail = 1 + int64_t(rng() % uint64_t(c.n_k));
    x.k_seg = cuts(rng, c.n_k - x.n_tail, n_seg);
    if (x.n_tail > 0) {  // each (batch, KV head)'s last n_tail key entries become the tail's own arrays
      const int64_t own = c.n_k - x.n_tail;
      auto split = [&](auto& all, auto& tail) {
        if (all.empty()) return;
        std::remove_reference_t<decltype(all)> mine;
        for (int64_t sgi = 0; sgi < c.batch * c.hkv; ++sgi) {
          const auto first = all.begin() + sgi * c.n_k;
          mine.insert(mine.end(), first, first + own);
          tail.insert(tail.end(), first + own, first + c.n_k);
        }
        all = std::move(mine);
      };
      split(x.k_rows, x.tail_rows);
      split(x.key_logw, x.tail_logw);
      split(x.k_group, x.tail_group);
    }
  }
  return x;
}

// Runs the scenario on `be`; returns the out / lse tensors as the backend left them.
void run_attend(Backend& be, const AttendCase& c, const AttendData& x, HostTensor& out, HostTensor& lse) {
  Mirror m(be);
  AttendArgs a;
  a.batch = c.batch;
  a.n_q = c.n_q;
  a.n_k = c.n_k;
  a.n_q_heads = c.hq;
  a.n_kv_heads = c.hkv;
  a.head_dim = c.d;
  a.head_dim_v = c.dv;
  a.q = m.put(x.q);
  a.k = m.put(x.k);
  a.v = m.put(x.v);
  a.scale = c.scale;
  a.softcap = c.softcap;
  a.mask = c.mask;
  a.q_pos0 = c.q_pos0;
  a.k_pos0 = c.k_pos0;
  a.q_pos = m.put(x.q_pos);
  a.k_pos = m.put(x.k_pos);
  a.q_rows = m.put(x.q_rows);
  a.k_rows = m.put(x.k_rows);
  a.key_logw = m.put(x.key_logw);
  a.q_group = m.put(x.q_group);
  a.k_group = m.put(x.k_group);
  if (c.segments) {
    a.n_segments = int32_t(x.q_seg.size() - 1);
    a.q_seg = x.q_seg.data();
    a.k_seg = x.k_seg.data();
    a.n_tail_keys = x.n_tail;
    a.tail_k_rows = m.put(x.tail_rows);
    a.tail_key_logw = m.put(x.tail_logw);
    a.tail_k_group = m.put(x.tail_group);
  }
  out = x.out;
  lse = x.lse;
  out.t.data = out.bytes.data();
  lse.t.data = lse.bytes.data();
  a.out = m.put(out);
  if (c.want_lse) a.lse = m.put(lse);
  if (!c.state) {
    be.attend(a);
  } else {
    // two calls over the two halves of the keys folded into one running state
    const int64_t rows = c.n_q, n = c.batch * c.hq * rows;
    RunningState s;
    s.m = static_cast<float*>(m.put(std::vector<float>(size_t(n), 7.0f).data(), size_t(n) * 4));
    s.l = static_cast<float*>(m.put(std::vector<float>(size_t(n), 7.0f).data(), size_t(n) * 4));
    s.acc = static_cast<float*>(m.put(std::vector<float>(size_t(n * c.dv), 7.0f).data(), size_t(n * c.dv) * 4));
    be.state_init(s, c.batch, c.hq, rows, c.dv, nullptr);
    AttendArgs part = a;
    part.state = &s;
    const int64_t half = c.n_k / 2;
    part.n_k = half;
    if (half > 0) be.attend(part);
    part.n_k = c.n_k - half;
    part.k.data = static_cast<char*>(a.k.data) + half * a.k.strides[1];
    part.v.data = static_cast<char*>(a.v.data) + half * a.v.strides[1];
    part.k_pos0 = c.k_pos0 + half;
    be.attend(part);
    be.state_finish(s, c.batch, c.hq, rows, c.dv, a.out, a.lse, nullptr);
  }
  m.get(out, a.out);
  if (c.want_lse) m.get(lse, a.lse);
  be.synchronize(nullptr);
}

// ‖a − b‖/‖b‖ over the view, NaNs where b has none, and the largest LSE difference.
struct Diff {
  double rel = 0, lse = 0;
  int64_t nan = 0, lse_bad = 0;
  bool outside_ok = true;  // bytes outside the view untouched
};

bool inside_view(const HostTensor& t, size_t byte) {
  // a byte belongs to an element of the view when its coordinates fit the shape
  const int64_t es = int64_t(longattn_dtype_size(t.t.dtype));
  int64_t off = int64_t(byte);
  const int64_t b = off / t.t.strides[0];
  off %= t.t.strides[0];
  const int64_t n = off / t.t.strides[1];
  off %= t.t.strides[1];
  const int64_t h = off / t.t.strides[2];
  off %= t.t.strides[2];
  const int64_t d = off / es;
  return b < t.t.shape[0] && n < t.t.shape[1] && h < t.t.shape[2] && d < t.t.shape[3];
}

Diff diff(const HostTensor& got, const HostTensor& want, const HostTensor& got_lse, const HostTensor& want_lse,
          const HostTensor& original, bool with_lse) {
  Diff r;
  double num = 0, den = 0;
  const_cast<HostTensor&>(want).each([&](int64_t b, int64_t n, int64_t h, int64_t d) {
    const double w = want.get(b, n, h, d), g = got.get(b, n, h, d);
    if (std::isnan(g) && !std::isnan(w)) ++r.nan;
    if (std::isnan(g) || std::isnan(w)) return;
    num += (g - w) * (g - w);
    den += w * w;
  });
  r.rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  if (with_lse)
    const_cast<HostTensor&>(want_lse).each([&](int64_t b, int64_t n, int64_t h, int64_t) {
      const double w = want_lse.get(b, n, h, 0), g = got_lse.get(b, n, h, 0);
      if (std::isinf(w) || std::isinf(g) || std::isnan(w) || std::isnan(g)) {
        if (!(std::isinf(w) && std::isinf(g) && (w < 0) == (g < 0)) && !(std::isnan(w) && std::isnan(g))) ++r.lse_bad;
      } else {
        r.lse = std::max(r.lse, std::fabs(g - w));
      }
    });
  for (size_t i = 0; i < got.bytes.size(); ++i)
    if (!inside_view(got, i) && got.bytes[i] != original.bytes[i]) r.outside_ok = false;
  return r;
}

// On devices with the cooperative-matrix kernel, f16 inputs are multiplied as f16 (P = softmax
// weights rounded to f16, as in FlashAttention): the f16 accuracy bound applies even to f32 outputs.
bool coopmat_device() {
  longattn::vk::Instance* inst = longattn::vk::Instance::get();
  return inst && !inst->devices().empty() && inst->devices()[kDevice].cooperative_matrix_nv;
}
double precision_floor(longattn_dtype qt, longattn_dtype kvt) {
  return qt == LONGATTN_DTYPE_F16 && kvt == LONGATTN_DTYPE_F16 && coopmat_device() ? 2e-3 : 0.0;
}

double tolerance_vs_cpu(longattn_dtype t) {
  switch (t) {
    case LONGATTN_DTYPE_F16: return 2e-3;   // one f16 rounding apart at most
    case LONGATTN_DTYPE_BF16: return 1.5e-2;
    default: return 1e-5;
  }
}

void check_attend(Backend& vk, Backend& cpu, const AttendCase& c, uint64_t seed) {
  const AttendData x = make_data(c, seed);
  HostTensor out_vk, lse_vk, out_cpu, lse_cpu;
  run_attend(cpu, c, x, out_cpu, lse_cpu);
  run_attend(vk, c, x, out_vk, lse_vk);
  const Diff r = diff(out_vk, out_cpu, lse_vk, lse_cpu, x.out, c.want_lse);
  INFO(c.describe(), " seed=", seed);
  CHECK(r.nan == 0);
  CHECK(r.rel < std::max(tolerance_vs_cpu(c.ot), precision_floor(c.qt, c.kvt)));
  CHECK(r.lse_bad == 0);
  CHECK(r.lse < 1e-4);
  CHECK(r.outside_ok);
}

AttendCase random_attend_case(std::mt19937_64& rng) {
  auto pick = [&](std::initializer_list<int64_t> xs) { return *(xs.begin() + rng() % xs.size()); };
  AttendCase c;
  c.batch = pick({1, 1, 2});
  c.n_q = pick({1, 2, 7, 17, 33, 40});
  c.n_k = pick({1, 5, 16, 31, 47, 70});
  c.hkv = int32_t(pick({1, 2}));
  c.hq = c.hkv * int32_t(pick({1, 2, 3, 4}));
  c.d = int32_t(pick({1, 4, 16, 40, 64, 128, 256}));
  c.dv = rng() % 4 == 0 ? int32_t(pick({3, 16, 72})) : c.d;
  c.qt = kDtypes[rng() % 3];
  c.kvt = kDtypes[rng() % 3];
  c.ot = kDtypes[rng() % 3];
  c.pad = rng() % 3 == 0 ? 1 : 0;
  c.mask.causal = rng() % 2;
  c.mask.window_left = rng() % 3 == 0 ? pick({0, 1, 5, 20}) : -1;
  c.mask.window_right = rng() % 4 == 0 ? pick({0, 3, 9}) : -1;
  c.mask.n_global = rng() % 4 == 0 ? pick({1, 3, 9}) : 0;
  c.scale = 1.0f / std::sqrt(float(c.d));
  c.softcap = rng() % 6 == 0 ? 2.5f : 0.0f;
  c.q_pos0 = rng() % 2 ? c.n_k - c.n_q : int64_t(pick({0, 5, -3, 60}));
  c.k_pos0 = rng() % 4 == 0 ? int64_t(pick({2, -5})) : 0;
  c.explicit_pos = rng() % 5 == 0;
  c.gather_q = rng() % 4 == 0;
  c.gather_k = rng() % 4 == 0;
  c.logw = rng() % 4 == 0;
  c.groups = rng() % 4 == 0;
  c.segments = rng() % 4 == 0;
  c.want_lse = rng() % 5 != 0;
  c.state = rng() % 5 == 0;
  if (c.state) {  // the key halves are contiguous physical ranges: no key gather, affine positions
    c.gather_k = false;
    c.explicit_pos = false;
    c.logw = false;
    c.groups = false;
    c.segments = false;
  }
  c.tail = c.segments && rng() % 2;
  if (c.tail) c.gather_k = true;
  return c;
}

struct Backends {
  std::unique_ptr<Backend> vk, cpu;
  Backends() : vk(longattn::make_vulkan_backend(kDevice)), cpu(longattn::make_cpu_backend(2)) {}
};

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("vulkan: device enumeration") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  const int32_t n = longattn::vulkan_device_count();
  for (int32_t i = 0; i < n; ++i) {
    const auto& info = longattn::vk::Instance::get()->devices()[size_t(i)];
    MESSAGE("subgroup ", info.subgroup_size, ", shared memory ", info.max_shared_memory,
            ", cooperative matrix (NV) ", int(info.cooperative_matrix_nv));
    MESSAGE("Vulkan device ", i, ": ", longattn::vulkan_device_name(i),
            std::string(longattn::vulkan_device_is_gpu(i) ? " (GPU)" : " (not a GPU)"));
    CHECK(!longattn::vulkan_device_name(i).empty());
    if (i > 0 && longattn::vulkan_device_is_gpu(i)) CHECK(longattn::vulkan_device_is_gpu(i - 1));  // GPUs first
  }
  CHECK(longattn::vulkan_device_name(n).empty());
  CHECK(!longattn::vulkan_device_is_gpu(-1));
  MESSAGE("validation layer ", std::string(longattn::vk::validation_active() ? "on" : "not available"));
  int32_t count = -1;
  CHECK(longattn_device_count(LONGATTN_BACKEND_VULKAN, &count) == LONGATTN_OK);
  CHECK(count == n);
}

TEST_CASE("vulkan: cooperative-matrix fragment layout model") {
  // the model fitted to synthetic probe answers: NVIDIA's mma accumulator form (component e of lane
  // l: row l/4 + 8·(e/2 mod 2), column 2·(l mod 4) + e mod 2 + 8·(e/4)) is known; a layout of one
  // row per lane, a product disagreeing with the load, or 4 components per lane are not
  using longattn::vk::fit_coopmat_layout;
  std::vector<float> probe(longattn::vk::kCoopmatLayoutProbeFloats);
  auto fill = [&](auto row_col) {
    for (int l = 0; l < 32; ++l)
      for (int e = 0; e < 8; ++e) {
        const auto [r, c] = row_col(l, e);
        probe[size_t(8 * l + e)] = probe[size_t(256 + 8 * l + e)] = float(16 * r + c);
      }
    probe[512] = 8.0f;
  };
  fill([](int l, int e) { return std::pair<int, int>{l / 4 + 8 * ((e / 2) % 2), 2 * (l % 4) + e % 2 + 8 * (e / 4)}; });
  longattn::vk::CoopmatLayout m = fit_coopmat_layout(probe.data());
  CHECK(m.known);
  CHECK(m.lane_row_shift == 2);
  CHECK(m.lane_col_step == 2);
  CHECK(m.elem_row_hi == 0xcc);
  CHECK(m.elem_cols == 0x98981010u);
  CHECK(m.transposable());  // 4 columns (0, 1, 8, 9 + 2·(l mod 4)) in 2 rows each
  // the same rows with columns 0 … 3 + 4·(l mod 4): it fits, but a transposed tile needs 0, 1, 8, 9
  fill([](int l, int e) { return std::pair<int, int>{l / 4 + 8 * ((e / 2) % 2), 4 * (l % 4) + e % 2 + 2 * (e / 4)}; });
  const longattn::vk::CoopmatLayout narrow = fit_coopmat_layout(probe.data());
  CHECK(narrow.known);
  CHECK(!narrow.transposable());
  fill([](int l, int e) { return std::pair<int, int>{l / 4 + 8 * ((e / 2) % 2), 2 * (l % 4) + e % 2 + 8 * (e / 4)}; });
  probe[256 + 17] += 1.0f;
  CHECK(!fit_coopmat_layout(probe.data()).known);
  probe[256 + 17] -= 1.0f;
  probe[512] = 4.0f;
  CHECK(!fit_coopmat_layout(probe.data()).known);
  fill([](int l, int e) { return std::pair<int, int>{l / 2, 8 * (l % 2) + e}; });
  CHECK(!fit_coopmat_layout(probe.data()).known);

  // the device's own answer, where it has cooperative matrices (NVIDIA's must fit the model: its
  // in-register softmax depends on it)
  if (!have_vulkan()) return;
  ValidationGuard guard;
  auto owned = longattn::make_vulkan_backend(kDevice);
  auto& be = dynamic_cast<longattn::vk::VulkanBackend&>(*owned);
  if (!be.device().info().cooperative_matrix_nv) return;
  const longattn::vk::CoopmatLayout& lay = be.coopmat_layout();
  MESSAGE("cooperative-matrix fragment layout: ", lay.describe());
  if (be.device().info().name.find("NVIDIA") != std::string::npos) {
    CHECK(lay.known);
    CHECK(lay.transposable());  // its default prefill tile is the transposed one
  }
  if (be.device().info().cooperative_matrix_khr) {  // the KHR build's probe runs and fits too
    const longattn::vk::CoopmatLayout& khr = be.coopmat_layout_khr();
    MESSAGE("KHR cooperative-matrix fragment layout: ", khr.describe());
    CHECK(khr.known);
  }
}

TEST_CASE("vulkan: the KHR cooperative-matrix builds are KHR modules") {
  // backends/vulkan/tools/coopmat_khr.cpp rewrote them at build time: no NV cooperative-matrix
  // capability or instruction is left, every matrix type carries a role (left operands, right
  // operands and accumulators all occur), and loads and stores are the KHR ones
  for (const char* name : {"attend_coopmat_khr", "coopmat_layout_khr"}) {
    CAPTURE(name);
    const longattn::vk::EmbeddedShader* sh = longattn::vk::find_shader(name);
    REQUIRE(sh != nullptr);
    REQUIRE(sh->n_words > 5);
    std::map<uint32_t, int> ops;
    bool khr_capability = false, nv_capability = false;
    std::map<uint32_t, uint32_t> constants;  // id → value of 32-bit OpConstant
    std::vector<uint32_t> use_ids;
    for (size_t i = 5; i < sh->n_words;) {
      const uint32_t n = sh->words[i] >> 16, op = sh->words[i] & 0xffffu;
      if (n == 0 || i + n > sh->n_words) FAIL("malformed instruction at word " << i);
      ++ops[op];
      if (op == 17) {  // OpCapability
        khr_capability |= sh->words[i + 1] == 6022;
        nv_capability |= sh->words[i + 1] == 5357;
      }
      if (op == 43 && n == 4) constants[sh->words[i + 2]] = sh->words[i + 3];
      if (op == 4456) use_ids.push_back(sh->words[i + 6]);  // OpTypeCooperativeMatrixKHR's use
      i += n;
    }
    CHECK(khr_capability);
    CHECK(!nv_capability);
    for (uint32_t nv_op = 5358; nv_op <= 5362; ++nv_op) CHECK(ops[nv_op] == 0);
    CHECK(ops[4457] > 0);  // OpCooperativeMatrixLoadKHR
    CHECK(ops[4459] > 0);  // OpCooperativeMatrixMulAddKHR
    std::set<uint32_t> uses;
    for (uint32_t id : use_ids) uses.insert(constants.at(id));
    CHECK(uses == std::set<uint32_t>{0, 1, 2});
  }
}

TEST_CASE("vulkan: memory, transfers and copies") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  auto be = longattn::make_vulkan_backend(kDevice);
  CHECK(be->kind() == LONGATTN_BACKEND_VULKAN);
  std::mt19937_64 rng(7);
  for (size_t bytes : {size_t(1), size_t(6), size_t(1000), size_t(3) << 20, size_t(40) << 20}) {
    std::vector<uint8_t> src(bytes), back(bytes, 0);
    for (auto& b : src) b = uint8_t(rng());
    char* a = static_cast<char*>(be->alloc(bytes + 64));
    char* b = static_cast<char*>(be->alloc(bytes + 64));
    be->upload(a + 4, src.data(), bytes, nullptr);  // an offset inside the allocation
    be->copy(b + 16, a + 4, bytes, nullptr);
    be->download(back.data(), b + 16, bytes, nullptr);
    CHECK_MESSAGE(src == back, "bytes=", bytes);
    be->free(a);
    be->free(b);
  }
  // frees of buffers still used by recorded work are deferred until that work completes
  std::vector<float> ones(1024, 1.0f), got(1024, 0.0f);
  float* x = static_cast<float*>(be->alloc(4096));
  float* y = static_cast<float*>(be->alloc(4096));
  be->upload(x, ones.data(), 4096, nullptr);
  be->copy(y, x, 4096, nullptr);
  be->free(x);
  be->download(got.data(), y, 4096, nullptr);
  CHECK(got == ones);
  be->free(y);
}

TEST_CASE("vulkan: full slots are submitted without waiting, reused in turn, and their frees deferred") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  ScopedEnv profile("LONGATTN_VULKAN_PROFILE", "1");  // the reasons of submissions and waits
  auto owned = longattn::make_vulkan_backend(kDevice);
  auto& be = dynamic_cast<longattn::vk::VulkanBackend&>(*owned);
  auto& stream = be.stream();
  REQUIRE(longattn::vk::CommandStream::kSlots == 3);
  std::mt19937_64 rng(11);
  // 5 uploads of 12 MB through 16 MB of staging per slot: slots 0, 1, 2 fill and are submitted
  // without a wait; the fifth upload waits for slot 0 to come round again
  const size_t bytes = size_t(12) << 20;
  std::vector<std::vector<uint32_t>> data(5, std::vector<uint32_t>(bytes / 4));
  std::vector<void*> bufs;
  for (auto& d : data) {
    for (auto& x : d) x = uint32_t(rng());
    bufs.push_back(be.alloc(bytes));
    be.upload(bufs.back(), d.data(), bytes, nullptr);
  }
  CHECK(stream.in_flight() == 2);
  CHECK(stream.has_pending());
  // a free after a submission without wait is deferred until that submission has completed
  void* z = be.alloc(bytes);
  be.copy(z, bufs[4], bytes, nullptr);
  stream.submit("test");
  CHECK(stream.in_flight() == 3);
  CHECK(!stream.has_pending());
  be.free(bufs[4]);
  std::vector<uint32_t> back(bytes / 4);
  be.download(back.data(), z, bytes, nullptr);
  CHECK(stream.in_flight() == 0);
  CHECK(back == data[4]);
  for (int i = 0; i < 4; ++i) {
    be.download(back.data(), bufs[size_t(i)], bytes, nullptr);
    CHECK_MESSAGE(back == data[size_t(i)], "buffer ", i);
    be.free(bufs[size_t(i)]);
  }
  be.free(z);

  // argument blocks beyond the slot's ring: the ring grows (a block larger than it) or the slot is
  // submitted without waiting (a block that does not fit what is left); segment_labels carries
  // its offsets inside its block
  int32_t* dst[3];
  std::vector<std::vector<int64_t>> offsets;
  for (int32_t n_seg : {150000, 100000, 100000}) {
    std::vector<int64_t> o(size_t(n_seg) + 1, 0);
    for (int32_t s = 0; s < n_seg; ++s) o[size_t(s) + 1] = o[size_t(s)] + int64_t(rng() % 4);  // empty ones too
    dst[offsets.size()] = static_cast<int32_t*>(be.alloc(size_t(o.back()) * 2 * sizeof(int32_t)));
    be.segment_labels(dst[offsets.size()], o.data(), n_seg, 2, nullptr);
    offsets.push_back(std::move(o));
  }
  CHECK(stream.in_flight() == 1);
  for (size_t i = 0; i < 3; ++i) {
    const int32_t n_seg = int32_t(offsets[i].size() - 1);
    const int64_t n = offsets[i].back();
    int32_t* want_dev = static_cast<int32_t*>(be.alloc(size_t(n) * 2 * sizeof(int32_t)));
    be.longattn::Backend::segment_labels(want_dev, offsets[i].data(), n_seg, 2, nullptr);  // on the host
    std::vector<int32_t> got(size_t(n) * 2), want(size_t(n) * 2);
    be.download(got.data(), dst[i], got.size() * sizeof(int32_t), nullptr);
    be.download(want.data(), want_dev, want.size() * sizeof(int32_t), nullptr);
    CHECK_MESSAGE(got == want, "table ", i);
    be.free(dst[i]);
    be.free(want_dev);
  }

  // gather_i32 against the host
  const int64_t n_seg = 3, n_src = 1000, n_index = 517;
  std::vector<int32_t> src(size_t(n_seg * n_src)), index(size_t(n_seg * n_index));
  for (auto& x : src) x = int32_t(rng());
  for (auto& x : index) x = int32_t(rng() % uint64_t(n_src));
  std::vector<int32_t> want(index.size()), got(index.size(), -1);
  for (int64_t s = 0; s < n_seg; ++s)
    for (int64_t j = 0; j < n_index; ++j)
      want[size_t(s * n_index + j)] = src[size_t(s * n_src + index[size_t(s * n_index + j)])];
  {
    Mirror m(be);
    const int32_t* src_dev = m.put(src);
    const int32_t* index_dev = m.put(index);
    int32_t* out_dev = static_cast<int32_t*>(m.put(got.data(), got.size() * sizeof(int32_t)));
    be.gather_i32(out_dev, src_dev, index_dev, n_seg, n_src, n_index, nullptr);
    got = m.get(out_dev, got.size());
  }
  CHECK(got == want);

  // the profile names every submission and wait
  std::map<std::string, int> submits, waits;
  for (const auto& e : stream.take_profile()) {
    if (e.label == "host_submit") ++submits[e.note];
    if (e.label == "host_wait") ++waits[e.note];
  }
  if (be.device().info().timestamp_valid_bits > 0) {
    CHECK(submits["staging full"] == 3);
    CHECK(submits["test"] == 1);
    CHECK(submits["args ring full"] == 1);
    CHECK(waits["slot reuse"] == 2);  // the fifth upload, and the download after the three submissions
    CHECK(waits["download"] >= 1);
  }
}

TEST_CASE("vulkan: errors become statuses") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  auto be = longattn::make_vulkan_backend(kDevice);
  int status = 0;
  try {
    be->alloc(size_t(1) << 52);
  } catch (const longattn::Error& e) {
    status = e.status();
  }
  CHECK(status == LONGATTN_ERROR_OUT_OF_MEMORY);
  status = 0;
  std::vector<uint8_t> host(16);
  try {
    be->upload(reinterpret_cast<void*>(uintptr_t(0x10)), host.data(), 16, nullptr);
  } catch (const longattn::Error& e) {
    status = e.status();
  }
  CHECK(status == LONGATTN_ERROR_INVALID_ARGUMENT);
  status = 0;
  try {
    longattn::make_vulkan_backend(longattn::vulkan_device_count());
  } catch (const longattn::Error& e) {
    status = e.status();
  }
  CHECK(status == LONGATTN_ERROR_BACKEND_UNAVAILABLE);
}

// n attend calls drawn by `draw` from generator seed `seed`, each checked against the CPU backend
// (data seeds first_data_seed, first_data_seed + 1, …).
void check_random_attends(AttendCase (*draw)(std::mt19937_64&), int n, uint64_t seed, uint64_t first_data_seed) {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  Backends b;
  std::mt19937_64 rng(seed);
  for (int i = 0; i < n; ++i) check_attend(*b.vk, *b.cpu, draw(rng), first_data_seed + uint64_t(i));
}

TEST_CASE("vulkan: attend matches the CPU backend (random features)") {
  check_random_attends(random_attend_case, 60, 2024, 1000);
}

// f16 Q/K/V with head dims that are multiples of 16 and several key tiles: on devices with
// cooperative matrices every case is eligible for attend_coopmat.comp (and with
// LONGATTN_VULKAN_COOPMAT=force each one runs it); elsewhere the portable kernel runs them.
AttendCase random_f16_attend_case(std::mt19937_64& rng) {
  auto pick = [&](std::initializer_list<int64_t> xs) { return *(xs.begin() + rng() % xs.size()); };
  AttendCase c = random_attend_case(rng);
  c.qt = c.kvt = LONGATTN_DTYPE_F16;
  c.pad = 0;
  c.d = int32_t(pick({16, 32, 64, 80, 128}));
  c.dv = rng() % 4 == 0 ? int32_t(pick({16, 48})) : c.d;
  c.n_q = pick({1, 9, 16, 33, 64});
  c.n_k = pick({17, 48, 96, 130, 257});
  c.scale = 1.0f / std::sqrt(float(c.d));
  return c;
}

TEST_CASE("vulkan: attend with f16 inputs over several key tiles matches the CPU backend") {
  check_random_attends(random_f16_attend_case, 24, 4242, 5000);
}

TEST_CASE("vulkan: attend edge cases") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  Backends b;
  AttendCase c;
  c.n_q = 9;
  c.n_k = 30;
  c.hq = 4;
  c.hkv = 1;
  c.d = c.dv = 32;
  SUBCASE("every row empty (causal, keys in the future)") {
    c.mask.causal = true;
    c.q_pos0 = -100;
    check_attend(*b.vk, *b.cpu, c, 1);
  }
  SUBCASE("window 0 (each query sees its own position only)") {
    c.mask.causal = true;
    c.mask.window_left = 0;
    c.q_pos0 = c.n_k - c.n_q;
    check_attend(*b.vk, *b.cpu, c, 2);
  }
  SUBCASE("sinks far from the band (StreamingLLM)") {
    c.n_k = 300;
    c.n_q = 20;
    c.mask.causal = true;
    c.mask.window_left = 15;
    c.mask.n_global = 4;
    c.q_pos0 = c.n_k - c.n_q;
    check_attend(*b.vk, *b.cpu, c, 3);
  }
  SUBCASE("global query rows see everything") {
    c.mask.window_left = 2;
    c.mask.window_right = 2;
    c.mask.n_global = 3;
    c.q_pos0 = 0;
    check_attend(*b.vk, *b.cpu, c, 4);
  }
  SUBCASE("gathers with explicit positions and strided bf16") {
    c.gather_q = c.gather_k = c.explicit_pos = true;
    c.mask.causal = true;
    c.qt = c.kvt = c.ot = LONGATTN_DTYPE_BF16;
    c.pad = 1;
    check_attend(*b.vk, *b.cpu, c, 5);
  }
  SUBCASE("head_dim 256, odd dv, f16") {
    c.d = 256;
    c.dv = 7;
    c.qt = c.kvt = c.ot = LONGATTN_DTYPE_F16;
    check_attend(*b.vk, *b.cpu, c, 6);
  }
  SUBCASE("32 query heads on one KV head (more than a workgroup's rows)") {
    c.hq = 32;
    c.n_q = 3;
    c.mask.causal = true;
    check_attend(*b.vk, *b.cpu, c, 7);
  }
  SUBCASE("running state across two key halves") {
    c.state = true;
    c.mask.causal = true;
    c.q_pos0 = c.n_k - c.n_q;
    check_attend(*b.vk, *b.cpu, c, 8);
  }
}

TEST_CASE("vulkan: merge, state_init and state_finish match the CPU") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  Backends bk;
  std::mt19937_64 rng(11);
  for (int it = 0; it < 12; ++it) {
    const int64_t B = 1 + int64_t(rng() % 2), N = 1 + int64_t(rng() % 40), H = 1 + int64_t(rng() % 4);
    // (the first two draws: long rows, several steps of the merge kernel's invocations)
    const int64_t D = it < 2 ? 260 + 4 * it : 1 + int64_t(rng() % 70);
    const longattn_dtype ta = kDtypes[rng() % 3], tb = kDtypes[rng() % 3], to = kDtypes[rng() % 3];
    const int64_t pad = int64_t(rng() % 2);
    const bool in_place = rng() % 3 == 0;
    HostTensor a = random_tensor(rng, ta, B, N, H, D, pad), b = random_tensor(rng, tb, B, N, H, D, pad);
    HostTensor la = random_tensor(rng, LONGATTN_DTYPE_F32, B, N, H, 1, pad, 3.0f);
    HostTensor lb = random_tensor(rng, LONGATTN_DTYPE_F32, B, N, H, 1, pad, 3.0f);
    // some rows empty on one side or both
    la.each([&](int64_t x, int64_t n, int64_t h, int64_t) {
      if (rng() % 5 == 0) la.set(x, n, h, 0, -std::numeric_limits<float>::infinity());
      if (rng() % 5 == 0) lb.set(x, n, h, 0, -std::numeric_limits<float>::infinity());
    });
    HostTensor o(in_place ? ta : to, B, N, H, D, pad), lo(LONGATTN_DTYPE_F32, B, N, H, 1, pad);
    o.poison();
    lo.poison();
    HostTensor results[2][2];
    Backend* bes[2] = {bk.cpu.get(), bk.vk.get()};
    for (int k = 0; k < 2; ++k) {
      Mirror m(*bes[k]);
      View va = m.put(a), vb = m.put(b), vla = m.put(la), vlb = m.put(lb);
      View vo = in_place ? va : m.put(o), vlo = in_place ? vla : m.put(lo);
      bes[k]->merge(va, vla, vb, vlb, vo, vlo, nullptr);
      results[k][0] = in_place ? a : o;
      results[k][1] = in_place ? la : lo;
      results[k][0].t.data = results[k][0].bytes.data();
      results[k][1].t.data = results[k][1].bytes.data();
      m.get(results[k][0], vo);
      m.get(results[k][1], vlo);
    }
    const Diff r = diff(results[1][0], results[0][0], results[1][1], results[0][1], in_place ? a : o, true);
    INFO("merge B=", B, " N=", N, " H=", H, " D=", D, " dt=", ta, tb, to, " in_place=", in_place);
    CHECK(r.nan == 0);
    CHECK(r.rel < tolerance_vs_cpu(results[0][0].t.dtype));
    CHECK(r.lse_bad == 0);
    CHECK(r.lse < 1e-5);
    CHECK(r.outside_ok);
  }
  // state_init then state_finish of an untouched state: out = 0, lse = −inf everywhere
  for (longattn_dtype to : kDtypes) {
    const int64_t B = 2, H = 3, R = 5, DV = 9;
    HostTensor o(to, B, R, H, DV, 1), lo(LONGATTN_DTYPE_F32, B, R, H, 1, 1);
    o.poison();
    lo.poison();
    Mirror m(*bk.vk);
    View vo = m.put(o), vlo = m.put(lo);
    RunningState s;
    s.m = static_cast<float*>(m.put(std::vector<float>(B * H * R, 1.0f)));
    s.l = static_cast<float*>(m.put(std::vector<float>(B * H * R, 1.0f)));
    s.acc = static_cast<float*>(m.put(std::vector<float>(B * H * R * DV, 1.0f)));
    bk.vk->state_init(s, B, int32_t(H), R, int32_t(DV), nullptr);
    bk.vk->state_finish(s, B, int32_t(H), R, int32_t(DV), vo, vlo, nullptr);
    m.get(o, vo);
    m.get(lo, vlo);
    int64_t bad = 0;
    o.each([&](int64_t x, int64_t n, int64_t h, int64_t d) { bad += o.get(x, n, h, d) != 0.0f; });
    lo.each([&](int64_t x, int64_t n, int64_t h, int64_t) { bad += !(std::isinf(lo.get(x, n, h, 0)) && lo.get(x, n, h, 0) < 0); });
    CHECK(bad == 0);
  }
}

TEST_CASE("vulkan: lsh_codes and counting_sort are identical to the CPU") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  Backends bk;
  std::mt19937_64 rng(5);
  for (int it = 0; it < 10; ++it) {
    const int64_t B = 1 + int64_t(rng() % 2), N = 1 + int64_t(rng() % 300), H = 1 + int64_t(rng() % 3);
    // (the first draw: G too large for the shader's shared memory, read from device memory)
    const int64_t D = it == 0 ? 272 : 1 + int64_t(rng() % 96);
    const int32_t r = it == 0 ? 13 : int32_t(1 + rng() % 16);
    const longattn_dtype t = kDtypes[rng() % 3];
    const bool centred = rng() % 2;
    HostTensor x = random_tensor(rng, t, B, N, H, D, int64_t(rng() % 2));
    std::normal_distribution<float> nd;
    std::vector<float> G(size_t(D * r)), center(size_t(B * H * D));
    for (auto& g : G) g = nd(rng);
    for (auto& c : center) c = 0.1f * nd(rng);
    std::vector<uint16_t> codes[2];
    std::vector<int32_t> perms[2];
    Backend* bes[2] = {bk.cpu.get(), bk.vk.get()};
    for (int k = 0; k < 2; ++k) {
      Mirror m(*bes[k]);
      View vx = m.put(x);
      const float* g = m.put(G);
      const float* c = centred ? m.put(center) : nullptr;
      auto* cd = static_cast<uint16_t*>(m.put(std::vector<uint16_t>(size_t(B * H * N), 0xffff).data(), size_t(B * H * N) * 2));
      auto* pm = static_cast<int32_t*>(m.put(std::vector<int32_t>(size_t(B * H * N), -1).data(), size_t(B * H * N) * 4));
      bes[k]->lsh_codes(vx, g, r, c, cd, nullptr);
      bes[k]->counting_sort(cd, B * H, N, r, pm, nullptr);
      codes[k] = m.get(cd, size_t(B * H * N));
      perms[k] = m.get(pm, size_t(B * H * N));
    }
    INFO("B=", B, " N=", N, " H=", H, " D=", D, " r=", r, " dt=", t, " centred=", centred);
    // codes may differ only where a projection is within rounding of 0; count those
    int64_t differ = 0;
    for (size_t i = 0; i < codes[0].size(); ++i) differ += codes[0][i] != codes[1][i];
    CHECK(differ == 0);
    CHECK(perms[0] == perms[1]);
  }
  // counting sort alone on many equal codes, every r; with both kernels where the device has
  // ballots (counting_sort_ballot.comp up to r = 12, else and when forced counting_sort.comp)
  for (int pass = 0; pass < 2; ++pass)
  for (int32_t r : {1, 4, 8, 12, 16}) {
    if (pass == 1) setenv("LONGATTN_VULKAN_SORT", "portable", 1);
    const int64_t n_seg = 3, n = 1000;
    std::vector<uint16_t> codes(size_t(n_seg * n));
    for (auto& c : codes) c = uint16_t(rng() % std::min<uint64_t>(uint64_t(1) << r, 5 + rng() % 40));
    std::vector<int32_t> perms[2];
    Backend* bes[2] = {bk.cpu.get(), bk.vk.get()};
    for (int k = 0; k < 2; ++k) {
      Mirror m(*bes[k]);
      const uint16_t* cd = m.put(codes);
      auto* pm = static_cast<int32_t*>(m.put(std::vector<int32_t>(size_t(n_seg * n), -1).data(), size_t(n_seg * n) * 4));
      bes[k]->counting_sort(cd, n_seg, n, r, pm, nullptr);
      perms[k] = m.get(pm, size_t(n_seg * n));
    }
    unsetenv("LONGATTN_VULKAN_SORT");
    CHECK_MESSAGE(perms[0] == perms[1], "r=", r, " pass=", pass);
  }
}

// ---------------------------------------------------------------------------------------------
// Algorithms through the public API
// ---------------------------------------------------------------------------------------------

namespace {

struct ApiRun {
  HostTensor out, lse;
  longattn_status status = LONGATTN_OK;
  std::string error;
};

ApiRun run_public(longattn_backend backend, int32_t device, const longattn_attention_desc& desc, const HostTensor& q,
                  const HostTensor& k, const HostTensor& v, longattn_dtype ot, int64_t q_pos0, int64_t pad) {
  Context ctx(backend, 2, device);
  Attention attn(ctx, desc);
  ApiRun r;
  r.out = HostTensor(ot, q.t.shape[0], q.t.shape[1], desc.n_q_heads, desc.head_dim_v ? desc.head_dim_v : desc.head_dim, pad);
  r.lse = HostTensor(LONGATTN_DTYPE_F32, q.t.shape[0], q.t.shape[1], desc.n_q_heads, 1, pad);
  r.out.poison();
  r.lse.poison();
  if (attn.status != LONGATTN_OK) {
    r.status = attn.status;
    r.error = ctx.error();
    return r;
  }
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &q.t;
  a.k = &k.t;
  a.v = &v.t;
  a.out = &r.out.t;
  a.lse = &r.lse.t;
  a.q_pos0 = q_pos0;
  r.status = longattn_attention_forward(ctx.ctx, attn.attn, &a);
  r.error = ctx.error();
  return r;
}

void check_algorithm(const longattn_attention_desc& desc, int64_t batch, int64_t n_q, int64_t n_k, longattn_dtype qt,
                     longattn_dtype kvt, longattn_dtype ot, int64_t q_pos0, int64_t pad, uint64_t seed,
                     bool exact = true) {
  std::mt19937_64 rng(seed);
  const int32_t hkv = desc.n_kv_heads ? desc.n_kv_heads : desc.n_q_heads;
  const int32_t dv = desc.head_dim_v ? desc.head_dim_v : desc.head_dim;
  HostTensor q = random_tensor(rng, qt, batch, n_q, desc.n_q_heads, desc.head_dim, pad);
  HostTensor k = random_tensor(rng, kvt, batch, n_k, hkv, desc.head_dim, pad);
  HostTensor v = random_tensor(rng, kvt, batch, n_k, hkv, dv, pad);
  const ApiRun vk = run_public(LONGATTN_BACKEND_VULKAN, kDevice, desc, q, k, v, ot, q_pos0, pad);
  const ApiRun cpu = run_public(LONGATTN_BACKEND_CPU, 0, desc, q, k, v, ot, q_pos0, pad);
  INFO("alg=", desc.algorithm, " b=", batch, " nq=", n_q, " nk=", n_k, " h=", desc.n_q_heads, "/", hkv, " d=",
       desc.head_dim, "/", dv, " causal=", desc.causal, " win=", desc.window_left, "/", desc.window_right,
       " glob=", desc.n_global, " dt=", qt, kvt, ot, " pos0=", q_pos0, " pad=", pad);
  REQUIRE_MESSAGE(vk.status == LONGATTN_OK, vk.error);
  REQUIRE_MESSAGE(cpu.status == LONGATTN_OK, cpu.error);
  HostTensor untouched(ot, batch, n_q, desc.n_q_heads, dv, pad);
  untouched.poison();
  const Diff r = diff(vk.out, cpu.out, vk.lse, cpu.lse, untouched, true);
  CHECK(r.nan == 0);
  CHECK(r.rel < std::max(tolerance_vs_cpu(ot), precision_floor(qt, kvt)));
  CHECK(r.lse_bad == 0);
  CHECK(r.lse < 1e-4);
  CHECK(r.outside_ok);
  if (exact) {  // and against the float64 reference
    std::vector<double> ref, ref_lse;
    const int64_t pos0 = q_pos0 == LONGATTN_Q_POS_BOTTOM_RIGHT ? n_k - n_q : q_pos0;
    longattn::reference_attention(config_of(desc), q.view(), k.view(), v.view(), pos0, ref, ref_lse);
    const Errors e = compare(vk.out, ref, &vk.lse, &ref_lse);
    CHECK(e.nan_count == 0);
    CHECK(e.lse_mismatch == 0);
    CHECK(e.rel < std::max(tolerance(ot), precision_floor(qt, kvt)));
    CHECK(e.lse_max_abs < 1e-4);
  }
}

}  // namespace

TEST_CASE("vulkan: FLASH through the public API") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  std::mt19937_64 rng(99);
  for (int i = 0; i < 10; ++i) {
    longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
    d.n_kv_heads = int32_t(1 + rng() % 2);
    d.n_q_heads = d.n_kv_heads * int32_t(1 + rng() % 4);
    d.head_dim = int32_t(std::vector<int>{8, 32, 64, 128}[rng() % 4]);
    d.head_dim_v = rng() % 4 == 0 ? 24 : 0;
    d.causal = int32_t(rng() % 2);
    d.softcap = rng() % 5 == 0 ? 4.0f : 0.0f;
    const int64_t n_k = 1 + int64_t(rng() % 150);
    const int64_t n_q = rng() % 3 == 0 ? 1 : 1 + int64_t(rng() % 80);  // decode and prefill
    const int64_t pos0 = rng() % 3 == 0 ? int64_t(rng() % 100) : LONGATTN_Q_POS_BOTTOM_RIGHT;
    check_algorithm(d, 1 + int64_t(rng() % 2), n_q, n_k, kDtypes[rng() % 3], kDtypes[rng() % 3], kDtypes[rng() % 3],
                    pos0, int64_t(rng() % 2), 500 + uint64_t(i));
  }
  SUBCASE("long decode (split over the keys)") {
    longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
    d.n_q_heads = 8;
    d.n_kv_heads = 2;
    d.head_dim = 64;
    d.causal = 1;
    check_algorithm(d, 1, 1, 3000, LONGATTN_DTYPE_F16, LONGATTN_DTYPE_F16, LONGATTN_DTYPE_F32,
                    LONGATTN_Q_POS_BOTTOM_RIGHT, 0, 77);
  }
}

TEST_CASE("vulkan: SPARSE through the public API") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  std::mt19937_64 rng(123);
  for (int i = 0; i < 10; ++i) {
    longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
    d.algorithm = LONGATTN_ALGORITHM_SPARSE;
    d.n_kv_heads = int32_t(1 + rng() % 2);
    d.n_q_heads = d.n_kv_heads * int32_t(1 + rng() % 3);
    d.head_dim = int32_t(std::vector<int>{16, 64}[rng() % 2]);
    d.causal = int32_t(rng() % 2);
    d.window_left = int32_t(std::vector<int>{0, 1, 7, 40, 500}[rng() % 5]);
    d.window_right = d.causal ? -1 : int32_t(std::vector<int>{-1, 0, 5, 30}[rng() % 4]);
    d.n_global = int32_t(std::vector<int>{0, 0, 1, 4, 200}[rng() % 5]);
    const int64_t n_k = 1 + int64_t(rng() % 200);
    const int64_t n_q = rng() % 2 ? n_k : 1 + int64_t(rng() % uint64_t(n_k));
    check_algorithm(d, 1, n_q, n_k, kDtypes[rng() % 3], kDtypes[rng() % 3], kDtypes[rng() % 3],
                    LONGATTN_Q_POS_BOTTOM_RIGHT, int64_t(rng() % 2), 700 + uint64_t(i));
  }
}

// ---------------------------------------------------------------------------------------------
// The decode kernel, forced (LONGATTN_VULKAN_DECODE=force / force_shared)
// ---------------------------------------------------------------------------------------------

namespace {

// A decode-shaped scenario: few query rows per KV head, keys not a multiple of any tile.
AttendCase random_decode_case(std::mt19937_64& rng) {
  auto pick = [&](std::initializer_list<int64_t> xs) { return *(xs.begin() + rng() % xs.size()); };
  AttendCase c;
  c.batch = pick({1, 1, 2});
  c.n_q = 1 + int64_t(rng() % 4);
  c.n_k = pick({37, 333, 517, 700});
  c.hkv = int32_t(pick({1, 2}));
  c.hq = c.hkv * int32_t(pick({1, 4, 8}));
  c.d = c.dv = int32_t(pick({64, 128}));
  c.qt = kDtypes[rng() % 3];
  c.kvt = kDtypes[rng() % 3];
  c.ot = kDtypes[rng() % 3];
  c.mask.causal = rng() % 4 != 0;
  c.mask.window_left = rng() % 3 == 0 ? pick({0, 20, 150}) : -1;
  c.mask.n_global = c.mask.window_left >= 0 && rng() % 2 ? 4 : 0;
  c.scale = 1.0f / std::sqrt(float(c.d));
  c.softcap = rng() % 6 == 0 ? 3.0f : 0.0f;
  c.q_pos0 = rng() % 4 != 0 ? c.n_k - c.n_q : int64_t(pick({0, 100}));
  c.k_pos0 = rng() % 5 == 0 ? 3 : 0;
  c.gather_q = rng() % 6 == 0;
  c.segments = rng() % 8 == 0;
  c.state = rng() % 6 == 0;
  return c;
}

// check_attend on a backend with the decode kernel forced, and whether the kernel ran.
void check_decode(Backend& vk, Backend& cpu, const AttendCase& c, uint64_t seed, bool expect_kernel) {
  auto& backend = dynamic_cast<longattn::vk::VulkanBackend&>(vk);
  const int64_t before = backend.decode_dispatches();
  check_attend(vk, cpu, c, seed);
  INFO(c.describe(), " seed=", seed);
  CHECK((backend.decode_dispatches() > before) == expect_kernel);
}

}  // namespace

// The benchmark's decode shape scaled down: one f16 query row per query head, head dim 128, causal
// (bottom-right) over n_k keys.
AttendCase decode_bench_case(int64_t n_k, int32_t hq, int32_t hkv) {
  AttendCase c;
  c.n_q = 1;
  c.n_k = n_k;
  c.hq = hq;
  c.hkv = hkv;
  c.d = c.dv = 128;
  c.qt = c.kvt = c.ot = LONGATTN_DTYPE_F16;
  c.mask.causal = true;
  c.q_pos0 = c.n_k - c.n_q;
  c.scale = 1.0f / std::sqrt(128.0f);
  return c;
}

TEST_CASE("vulkan: decode kernel matches the CPU backend (forced)") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  for (const char* mode : {"force", "force_shared"}) {
    INFO("LONGATTN_VULKAN_DECODE=", mode);
    ScopedEnv env("LONGATTN_VULKAN_DECODE", mode);
    Backends b;
    std::mt19937_64 rng(31337);
    for (int i = 0; i < 14; ++i) check_decode(*b.vk, *b.cpu, random_decode_case(rng), 3000 + uint64_t(i), true);

    const AttendCase c = decode_bench_case(1000, 8, 2);
    check_decode(*b.vk, *b.cpu, c, 1, true);
    AttendCase odd = c;
    odd.d = odd.dv = 72;  // 9 vectors of 16 bytes per row: the portable kernel runs
    check_decode(*b.vk, *b.cpu, odd, 2, false);
    AttendCase padded = c;
    padded.pad = 1;  // rows not 16-byte aligned: the portable kernel runs
    check_decode(*b.vk, *b.cpu, padded, 3, false);
    AttendCase logw = c;
    logw.logw = true;  // log-weights are the portable kernel's
    check_decode(*b.vk, *b.cpu, logw, 4, false);
    AttendCase empty = c;
    empty.q_pos0 = -50;  // causal, every key in the future: out = 0, lse = −inf
    check_decode(*b.vk, *b.cpu, empty, 5, true);
  }
}

TEST_CASE("vulkan: decode kernel over KV heads per workgroup, layouts, many splits (forced)") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  const AttendCase base = decode_bench_case(1500, 32, 8);  // 8 KV heads side by side in each token
  std::vector<AttendCase> cases;
  cases.push_back(base);
  AttendCase mha = base;  // one query row per KV head, f32 K/V, a band with global tokens
  mha.hq = mha.hkv = 16;
  mha.d = mha.dv = 64;
  mha.kvt = LONGATTN_DTYPE_F32;
  mha.ot = LONGATTN_DTYPE_BF16;
  mha.mask.window_left = 300;
  mha.mask.n_global = 4;
  cases.push_back(mha);
  AttendCase six = base;  // 6 KV heads (2 per workgroup), bf16, 3 query rows in segments, gathered
  six.hq = 12;
  six.hkv = 6;
  six.n_q = 3;
  six.q_pos0 = six.n_k - six.n_q;
  six.qt = six.kvt = LONGATTN_DTYPE_BF16;
  six.ot = LONGATTN_DTYPE_F32;
  six.gather_q = true;
  six.segments = true;
  six.softcap = 3.0f;
  cases.push_back(six);
  AttendCase outer = base;  // heads outside the tokens: one KV head per workgroup
  outer.heads_outer = true;
  outer.batch = 2;
  cases.push_back(outer);
  AttendCase state = base;  // two calls folded into a running state
  state.state = true;
  state.n_k = 700;
  state.q_pos0 = state.n_k - 1;
  cases.push_back(state);

  struct Setting {
    const char *mode, *splits, *keys, *prefetch, *heads;
  };
  // automatic choices; KV heads per workgroup fixed (one cluster per head where 8 clusters take 8
  // heads); more splits than key steps (empty splits); other keys per lane; no loads ahead
  for (const Setting& s : {Setting{"force", "0", "0", "1", "0"}, Setting{"force_shared", "0", "4", "1", "8"},
                           Setting{"force", "0", "5", "1", "8"}, Setting{"force", "300", "1", "1", "16"},
                           Setting{"force_shared", "300", "8", "0", "2"}}) {
    INFO("LONGATTN_VULKAN_DECODE=", std::string(s.mode), " splits=", std::string(s.splits), " keys=",
         std::string(s.keys), " prefetch=", std::string(s.prefetch), " heads=", std::string(s.heads));
    ScopedEnv env_mode("LONGATTN_VULKAN_DECODE", s.mode), env_splits("LONGATTN_VULKAN_DECODE_SPLITS", s.splits);
    ScopedEnv env_keys("LONGATTN_VULKAN_DECODE_KEYS", s.keys);
    ScopedEnv env_prefetch("LONGATTN_VULKAN_DECODE_PREFETCH", s.prefetch);
    ScopedEnv env_heads("LONGATTN_VULKAN_DECODE_HEADS", s.heads);
    Backends b;
    for (size_t i = 0; i < cases.size(); ++i) check_decode(*b.vk, *b.cpu, cases[i], 7000 + uint64_t(i), true);
  }
}

TEST_CASE("vulkan: decode kernel through the public API matches the reference (forced)") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  ScopedEnv env("LONGATTN_VULKAN_DECODE", "force");
  std::mt19937_64 rng(4242);
  for (int i = 0; i < 8; ++i) {
    longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
    d.n_kv_heads = int32_t(1 + rng() % 2);
    d.n_q_heads = d.n_kv_heads * int32_t(std::vector<int>{1, 4, 8}[rng() % 3]);
    d.head_dim = int32_t(std::vector<int>{64, 128}[rng() % 2]);
    d.causal = 1;
    if (i % 3 == 2) {
      d.algorithm = LONGATTN_ALGORITHM_SPARSE;
      d.window_left = int32_t(std::vector<int>{30, 200}[rng() % 2]);
      d.n_global = int32_t(rng() % 2 ? 4 : 0);
    }
    const int64_t n_q = 1 + int64_t(rng() % 4), n_k = 200 + int64_t(rng() % 500);
    check_algorithm(d, 1, n_q, n_k, kDtypes[rng() % 3], kDtypes[rng() % 3], kDtypes[rng() % 3],
                    LONGATTN_Q_POS_BOTTOM_RIGHT, 0, 900 + uint64_t(i));
  }
}

TEST_CASE("vulkan: HYPER through the public API matches the CPU") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  using hyper_test::HyperCase;
  std::vector<HyperCase> cases;
  {
    HyperCase c;  // non-causal, several blocks, samples
    c.n_q = 300;
    c.n_k = 320;
    c.hq = 4;
    c.hkv = 2;
    c.block = 64;
    c.samples = 48;
    c.bits = 5;
    c.min_len = 64;
    c.seed = 3;
    cases.push_back(c);
    c.causal = true;  // the causal recursion
    c.n_q = c.n_k = 400;
    c.n_global = 4;
    c.seed = 4;
    cases.push_back(c);
    c.causal = false;  // exact below min_seq_len
    c.min_len = 4096;
    c.seed = 5;
    cases.push_back(c);
    c.causal = true;  // f16 out: folds into fp32 scratch, rows merged into out at their last fold
    c.n_global = 0;
    c.min_len = 64;
    c.ot = LONGATTN_DTYPE_F16;
    c.seed = 6;
    cases.push_back(c);
  }
  for (const HyperCase& c : cases) {
    const hyper_test::Inputs in = hyper_test::random_inputs(c, c.seed * 31);
    const longattn_attention_desc d = hyper_test::desc_of(c);
    const ApiRun vk = run_public(LONGATTN_BACKEND_VULKAN, kDevice, d, in.q, in.k, in.v, c.ot, c.q_pos0, 0);
    const ApiRun cpu = run_public(LONGATTN_BACKEND_CPU, 0, d, in.q, in.k, in.v, c.ot, c.q_pos0, 0);
    INFO(c.describe());
    REQUIRE_MESSAGE(vk.status == LONGATTN_OK, vk.error);
    REQUIRE_MESSAGE(cpu.status == LONGATTN_OK, cpu.error);
    HostTensor untouched(c.ot, c.batch, c.n_q, c.hq, c.dv);
    untouched.poison();
    const Diff r = diff(vk.out, cpu.out, vk.lse, cpu.lse, untouched, true);
    CHECK(r.nan == 0);
    CHECK(r.rel < (c.ot == LONGATTN_DTYPE_F32 ? 1e-5 : 2e-3));  // 16-bit out: rounding of each side
    CHECK(r.lse_bad == 0);
    CHECK(r.lse < 1e-4);
  }
}

TEST_CASE("vulkan: HYPER with injected choices matches the CPU numerics") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  hyper_test::HyperCase c;
  c.n_q = c.n_k = 256;
  c.hq = 2;
  c.hkv = 1;
  c.causal = true;
  c.block = 32;
  c.samples = 32;
  c.bits = 4;
  c.min_len = 64;
  c.seed = 9;
  const hyper_test::Inputs in = hyper_test::random_inputs(c, 4242);
  longattn::HyperChoices rec;
  rec.mode = longattn::HyperChoices::Mode::record;
  rec.force_hyper_path = true;
  const hyper_test::Output cpu = hyper_test::run_direct(c, in, &rec);
  REQUIRE(!rec.nodes.empty());

  // replay the CPU's codes, orders and samples on the Vulkan backend through the planner
  longattn::HyperChoices replay = rec;
  replay.mode = longattn::HyperChoices::Mode::replay;
  replay.cursor = 0;
  auto be = longattn::make_vulkan_backend(kDevice);
  hyper_test::Output vk = hyper_test::make_output(c);
  {
    longattn::Workspace ws(*be);
    Mirror m(*be);
    const longattn::AttentionConfig cfg = config_of(hyper_test::desc_of(c));
    longattn::Problem p;
    p.cfg = &cfg;
    p.batch = c.batch;
    p.n_q = c.n_q;
    p.n_k = c.n_k;
    p.q = m.put(in.q);
    p.k = m.put(in.k);
    p.v = m.put(in.v);
    p.out = m.put(vk.out);
    p.lse = m.put(vk.lse);
    p.q_pos0 = c.pos0();
    p.ws = &ws;
    be->synchronize(nullptr);
    longattn::run_hyper_with_choices(*be, p, &replay);
    // the whole call is recorded without a submission: the host never waited inside it
    auto& stream = dynamic_cast<longattn::vk::VulkanBackend&>(*be).stream();
    CHECK(stream.in_flight() == 0);
    CHECK(stream.has_pending());
    m.get(vk.out, p.out);
    m.get(vk.lse, p.lse);
  }
  HostTensor untouched(c.ot, c.batch, c.n_q, c.hq, c.dv);
  untouched.poison();
  const Diff r = diff(vk.out, cpu.out, vk.lse, cpu.lse, untouched, true);
  CHECK(r.nan == 0);
  CHECK(r.rel < 1e-5);
  CHECK(r.lse_bad == 0);
  CHECK(r.lse < 1e-4);
}

// ---------------------------------------------------------------------------------------------
// Device-buffer API
// ---------------------------------------------------------------------------------------------

TEST_CASE("vulkan: device buffers through the public API (KV cache stays on the device)") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  Context ctx(LONGATTN_BACKEND_VULKAN, 1, kDevice);
  REQUIRE(longattn_context_backend(ctx.ctx) == LONGATTN_BACKEND_VULKAN);
  std::mt19937_64 rng(31);
  const int64_t n_k = 96, n_q = 5;
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.n_q_heads = 4;
  d.n_kv_heads = 2;
  d.head_dim = 32;
  d.causal = 1;
  Attention attn(ctx, d);
  REQUIRE(attn.status == LONGATTN_OK);
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F16, 1, n_q, 4, 32);
  HostTensor k = random_tensor(rng, LONGATTN_DTYPE_F16, 1, n_k, 2, 32);
  HostTensor v = random_tensor(rng, LONGATTN_DTYPE_F16, 1, n_k, 2, 32);
  HostTensor out(LONGATTN_DTYPE_F32, 1, n_q, 4, 32);

  // one device buffer holds the whole "cache"; K and V are views at offsets inside it
  void* cache = nullptr;
  const size_t kb = k.bytes.size(), vb = v.bytes.size();
  REQUIRE(longattn_vulkan_buffer_create(ctx.ctx, kb + vb + 256, &cache) == LONGATTN_OK);
  REQUIRE(longattn_vulkan_buffer_upload(ctx.ctx, cache, k.bytes.data(), kb) == LONGATTN_OK);
  char* v_dev = static_cast<char*>(cache) + kb + 256;
  REQUIRE(longattn_vulkan_buffer_upload(ctx.ctx, v_dev, v.bytes.data(), vb) == LONGATTN_OK);
  void* out_dev = nullptr;
  REQUIRE(longattn_vulkan_buffer_create(ctx.ctx, out.bytes.size(), &out_dev) == LONGATTN_OK);

  longattn_tensor kd = k.t, vd = v.t, od = out.t;
  kd.data = cache;
  kd.memory = LONGATTN_MEMORY_DEVICE;
  vd.data = v_dev;
  vd.memory = LONGATTN_MEMORY_DEVICE;
  od.data = out_dev;
  od.memory = LONGATTN_MEMORY_DEVICE;
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  a.q = &q.t;  // host query, device cache, device output
  a.k = &kd;
  a.v = &vd;
  a.out = &od;
  REQUIRE_MESSAGE(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_OK, ctx.error());
  REQUIRE(longattn_vulkan_synchronize(ctx.ctx) == LONGATTN_OK);
  out.poison();
  REQUIRE(longattn_vulkan_buffer_download(ctx.ctx, out.bytes.data(), out_dev, out.bytes.size()) == LONGATTN_OK);
  std::vector<double> ref, ref_lse;
  longattn::reference_attention(config_of(d), q.view(), k.view(), v.view(), n_k - n_q, ref, ref_lse);
  const Errors e = compare(out, ref);
  CHECK(e.nan_count == 0);
  CHECK(e.rel < std::max(tolerance(LONGATTN_DTYPE_F32), precision_floor(LONGATTN_DTYPE_F16, LONGATTN_DTYPE_F16)));

  // errors: a foreign pointer, a zero size, a non-Vulkan context
  CHECK(longattn_vulkan_buffer_upload(ctx.ctx, reinterpret_cast<void*>(uintptr_t(64)), k.bytes.data(), 4) ==
        LONGATTN_ERROR_INVALID_ARGUMENT);
  void* none = nullptr;
  CHECK(longattn_vulkan_buffer_create(ctx.ctx, 0, &none) == LONGATTN_ERROR_INVALID_ARGUMENT);
  Context cpu(LONGATTN_BACKEND_CPU, 1);
  CHECK(longattn_vulkan_buffer_create(cpu.ctx, 16, &none) == LONGATTN_ERROR_UNSUPPORTED);
  CHECK(longattn_vulkan_buffer_destroy(ctx.ctx, nullptr) == LONGATTN_OK);
  CHECK(longattn_vulkan_buffer_destroy(ctx.ctx, cache) == LONGATTN_OK);
  CHECK(longattn_vulkan_buffer_destroy(ctx.ctx, out_dev) == LONGATTN_OK);
}

// A runtime that owns its VkDevice and buffers (ggml-vulkan style) hands them to longattn.
TEST_CASE("vulkan: runtime-owned device and imported buffers") {
  if (!have_vulkan()) return;
  ValidationGuard guard;
  namespace vk = longattn::vk;
  vk::Instance* inst = vk::Instance::get();
  REQUIRE(inst != nullptr);
  const vk::PhysicalDeviceInfo& pd = inst->devices()[kDevice];
  const vk::InstanceFunctions& ifn = inst->fn();

  // the runtime's device: Vulkan 1.2 with bufferDeviceAddress and shaderInt64
  const float priority = 1.0f;
  VkDeviceQueueCreateInfo qi{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  qi.queueFamilyIndex = pd.compute_queue_family;
  qi.queueCount = 1;
  qi.pQueuePriorities = &priority;
  VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  f12.bufferDeviceAddress = VK_TRUE;
  VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  f2.pNext = &f12;
  f2.features.shaderInt64 = VK_TRUE;
  VkDeviceCreateInfo di{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  di.pNext = &f2;
  di.queueCreateInfoCount = 1;
  di.pQueueCreateInfos = &qi;
  VkDevice device = VK_NULL_HANDLE;
  REQUIRE(ifn.vkCreateDevice(pd.handle, &di, nullptr, &device) == VK_SUCCESS);
  vk::DeviceFunctions fn;
  REQUIRE(vk::load_device(ifn, device, fn));

  // one host-visible buffer of the runtime holds K, V and the output at offsets
  std::mt19937_64 rng(77);
  const int64_t n_k = 40, n_q = 3;
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, n_q, 2, 16);
  HostTensor k = random_tensor(rng, LONGATTN_DTYPE_BF16, 1, n_k, 1, 16);
  HostTensor v = random_tensor(rng, LONGATTN_DTYPE_BF16, 1, n_k, 1, 16);
  HostTensor out(LONGATTN_DTYPE_F16, 1, n_q, 2, 16);
  const VkDeviceSize k_off = 512, v_off = k_off + 4096, o_off = v_off + 4096, size = o_off + 4096;
  VkBufferCreateInfo bi{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bi.size = size;
  bi.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
             VK_BUFFER_USAGE_TRANSFER_DST_BIT | VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT;
  VkBuffer buffer = VK_NULL_HANDLE;
  REQUIRE(fn.vkCreateBuffer(device, &bi, nullptr, &buffer) == VK_SUCCESS);
  VkMemoryRequirements req{};
  fn.vkGetBufferMemoryRequirements(device, buffer, &req);
  VkPhysicalDeviceMemoryProperties mp{};
  ifn.vkGetPhysicalDeviceMemoryProperties(pd.handle, &mp);
  const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  uint32_t type = UINT32_MAX;
  for (uint32_t i = 0; i < mp.memoryTypeCount && type == UINT32_MAX; ++i)
    if ((req.memoryTypeBits & (1u << i)) && (mp.memoryTypes[i].propertyFlags & want) == want) type = i;
  REQUIRE(type != UINT32_MAX);
  VkMemoryAllocateFlagsInfo af{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO};
  af.flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT;
  VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  ai.pNext = &af;
  ai.allocationSize = req.size;
  ai.memoryTypeIndex = type;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  REQUIRE(fn.vkAllocateMemory(device, &ai, nullptr, &memory) == VK_SUCCESS);
  REQUIRE(fn.vkBindBufferMemory(device, buffer, memory, 0) == VK_SUCCESS);
  void* mapped = nullptr;
  REQUIRE(fn.vkMapMemory(device, memory, 0, VK_WHOLE_SIZE, 0, &mapped) == VK_SUCCESS);
  auto* bytes = static_cast<uint8_t*>(mapped);
  std::memcpy(bytes + k_off, k.bytes.data(), k.bytes.size());
  std::memcpy(bytes + v_off, v.bytes.data(), v.bytes.size());
  std::memset(bytes + o_off, 0xff, out.bytes.size());

  {
    longattn_vulkan_device dev = LONGATTN_VULKAN_DEVICE_INIT;
    dev.get_instance_proc_addr = inst->global().vkGetInstanceProcAddr;
    dev.instance = inst->handle();
    dev.physical_device = pd.handle;
    dev.device = device;
    dev.queue_family_index = pd.compute_queue_family;
    longattn_context* ctx = nullptr;
    REQUIRE(longattn_vulkan_context_create(&dev, &ctx) == LONGATTN_OK);
    CHECK(longattn_context_backend(ctx) == LONGATTN_BACKEND_VULKAN);
    void *kd = nullptr, *vd = nullptr, *od = nullptr;
    REQUIRE(longattn_vulkan_buffer_import(ctx, buffer, k_off, 4096, &kd) == LONGATTN_OK);
    REQUIRE(longattn_vulkan_buffer_import(ctx, buffer, v_off, 4096, &vd) == LONGATTN_OK);
    REQUIRE(longattn_vulkan_buffer_import(ctx, buffer, o_off, 4096, &od) == LONGATTN_OK);
    CHECK(static_cast<char*>(vd) - static_cast<char*>(kd) == int64_t(v_off - k_off));

    longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
    d.n_q_heads = 2;
    d.n_kv_heads = 1;
    d.head_dim = 16;
    d.causal = 1;
    longattn_attention* attn = nullptr;
    REQUIRE(longattn_attention_create(ctx, &d, &attn) == LONGATTN_OK);
    longattn_tensor kt = k.t, vt = v.t, ot = out.t;
    kt.data = kd;
    vt.data = vd;
    ot.data = od;
    kt.memory = vt.memory = ot.memory = LONGATTN_MEMORY_DEVICE;
    longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
    a.q = &q.t;
    a.k = &kt;
    a.v = &vt;
    a.out = &ot;
    REQUIRE_MESSAGE(longattn_attention_forward(ctx, attn, &a) == LONGATTN_OK, longattn_context_last_error(ctx));
    REQUIRE(longattn_vulkan_synchronize(ctx) == LONGATTN_OK);
    std::memcpy(out.bytes.data(), bytes + o_off, out.bytes.size());  // the runtime reads its own memory
    std::vector<double> ref, ref_lse;
    longattn::reference_attention(config_of(d), q.view(), k.view(), v.view(), n_k - n_q, ref, ref_lse);
    const Errors e = compare(out, ref);
    CHECK(e.nan_count == 0);
    CHECK(e.rel < tolerance(LONGATTN_DTYPE_F16));
    CHECK(longattn_vulkan_buffer_destroy(ctx, kd) == LONGATTN_OK);
    CHECK(longattn_vulkan_buffer_destroy(ctx, vd) == LONGATTN_OK);
    CHECK(longattn_vulkan_buffer_destroy(ctx, od) == LONGATTN_OK);
    longattn_attention_destroy(attn);
    longattn_context_destroy(ctx);
  }
  fn.vkDestroyBuffer(device, buffer, nullptr);  // the runtime still owns them
  fn.vkFreeMemory(device, memory, nullptr);
  fn.vkDestroyDevice(device, nullptr);
}

TEST_CASE("vulkan: a failed runtime-device context reports why through longattn_last_create_error") {
  longattn_context* ctx = nullptr;
  CHECK(longattn_vulkan_context_create(nullptr, &ctx) == LONGATTN_ERROR_NULL_POINTER);
  CHECK(ctx == nullptr);
  CHECK(std::string(longattn_last_create_error()).find("device is NULL") != std::string::npos);
  longattn_vulkan_device dev = LONGATTN_VULKAN_DEVICE_INIT;
  dev.flags = 0x80u;  // an unknown bit
  CHECK(longattn_vulkan_context_create(&dev, &ctx) == LONGATTN_ERROR_INVALID_ARGUMENT);
  CHECK(std::string(longattn_last_create_error()).find("device.flags=128") != std::string::npos);
}

#else  // LONGATTN_HAVE_VULKAN

TEST_CASE("vulkan: backend not compiled in") {
  int32_t count = -1;
  CHECK(longattn_device_count(LONGATTN_BACKEND_VULKAN, &count) == LONGATTN_OK);
  CHECK(count == 0);
}

#endif  // LONGATTN_HAVE_VULKAN
