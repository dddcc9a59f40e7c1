// The CPU backend: host memory, the tiled attend driver, state/merge helpers, LSH and sorting.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <thread>

#include <unistd.h>

#include "attend.hpp"
#include "backend.hpp"
#include "cpu_lsh.hpp"
#include "error.hpp"
#include "half.hpp"

namespace longattn {
namespace {

constexpr float kLn2 = 0.6931471805599453f;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int32_t n_threads) : n_threads_(n_threads), kernels_(&cpu::cpu_kernels_best()) {
    // tile sizes follow the data caches of this machine (sysconf; defaults when it does not say)
    const long l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (l1 > 0) pool_.l1_bytes = size_t(l1);
    if (l2 > 0) pool_.l2_bytes = size_t(l2);
  }

  longattn_backend kind() const override { return LONGATTN_BACKEND_CPU; }
  std::string device_name() const override { return std::string("CPU (") + kernels_->isa + ")"; }

  void* alloc(size_t bytes) override {
    void* p = std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64);
    if (!p) throw Error(LONGATTN_ERROR_OUT_OF_MEMORY, "host allocation of " + std::to_string(bytes) + " bytes failed");
    return p;
  }
  void free(void* p) override { std::free(p); }
  void upload(void* dst, const void* src, size_t bytes, void*) override { std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes, void*) override { std::memcpy(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes, void*) override { std::memmove(dst, src, bytes); }
  void synchronize(void*) override {}
  bool supports_extras() const override { return true; }
  bool supports_tail_keys() const override { return true; }
  // Ring transport between CPU ranks: both sides are host memory, one copy.
  void send_to(Backend& peer, void* dst_on_peer, const void* src, size_t bytes, void*) override {
    if (peer.kind() != LONGATTN_BACKEND_CPU) return Backend::send_to(peer, dst_on_peer, src, bytes, nullptr);
    std::memcpy(dst_on_peer, src, bytes);
  }
  size_t scratch_bytes() const override { return pool_.bytes(); }

  void attend(const AttendArgs& a) override { cpu::attend(a, *kernels_, n_threads_, pool_); }

  void state_init(RunningState& s, int64_t batch, int32_t heads, int64_t rows, int32_t dv, void*) override {
    const size_t n = size_t(batch) * size_t(heads) * size_t(rows);
    std::fill(s.m, s.m + n, kNegInf);
    std::fill(s.l, s.l + n, 0.0f);
    std::fill(s.acc, s.acc + n * size_t(dv), 0.0f);
  }

  void state_finish(const RunningState& s, int64_t batch, int32_t heads, int64_t rows, int32_t dv,
                    const View& out, const View& lse, void*) override {
    for (int64_t b = 0; b < batch; ++b)
      for (int32_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < rows; ++i) {
          const size_t idx = size_t((b * heads + h) * rows + i);
          const float l = s.l[idx];
          const bool empty = l == 0.0f;
          const float inv = empty ? 0.0f : 1.0f / l;
          for (int32_t c = 0; c < dv; ++c)
            store_from_float(out.at<char>(b, i, h, c), out.dtype, empty ? 0.0f : s.acc[idx * size_t(dv) + size_t(c)] * inv);
          if (lse.data) *lse.at<float>(b, i, h) = empty ? kNegInf : (s.m[idx] + std::log2(l)) * kLn2;
        }
  }

  void merge(const View& a, const View& lse_a, const View& b, const View& lse_b, const View& out,
             const View& lse_out, void*) override {
    const int64_t B = a.shape[0], N = a.shape[1], H = a.shape[2], D = a.shape[3];
    const int64_t total = B * N * H;
#if LONGATTN_HAVE_OPENMP
#pragma omp parallel for schedule(static) num_threads(n_threads_) if (total * D > 65536)
#endif
    for (int64_t x = 0; x < total; ++x) {
      const int64_t h = x % H, i = (x / H) % N, bb = x / (H * N);
      const float la = *lse_a.at<float>(bb, i, h), lb = *lse_b.at<float>(bb, i, h);
      // L = logaddexp(la, lb); weights exp(la − L), exp(lb − L); −inf on both sides ⇒ O = 0
      const float mx = std::max(la, lb);
      float wa = 0.0f, wb = 0.0f, L = kNegInf;
      if (std::isnan(la) || std::isnan(lb)) {
        wa = wb = L = std::numeric_limits<float>::quiet_NaN();
      } else if (mx != kNegInf) {
        const float ea = std::exp(la - mx), eb = std::exp(lb - mx);
        const float sum = ea + eb;
        L = mx + std::log(sum);
        wa = ea / sum;
        wb = eb / sum;
      }
      for (int64_t c = 0; c < D; ++c) {
        const float va = wa == 0.0f ? 0.0f : wa * load_as_float(a.at<char>(bb, i, h, c), a.dtype);
        const float vb = wb == 0.0f ? 0.0f : wb * load_as_float(b.at<char>(bb, i, h, c), b.dtype);
        store_from_float(out.at<char>(bb, i, h, c), out.dtype, va + vb);
      }
      *lse_out.at<float>(bb, i, h) = L;
    }
  }

  void lsh_codes(const View& x, const float* G, int32_t r, const float* center, uint16_t* codes,
                 void*) override {
    cpu::lsh_codes(x, G, r, center, codes, n_threads_);
  }
  void counting_sort(const uint16_t* codes, int64_t n_seg, int64_t n, int32_t r, int32_t* perm,
                     void*) override {
    cpu::counting_sort(codes, n_seg, n, r, perm, n_threads_);
  }
  void gather_i32(int32_t* dst, const int32_t* src, const int32_t* index, int64_t n_seg, int64_t n_src,
                  int64_t n_index, void*) override {
    for (int64_t s = 0; s < n_seg; ++s)
      for (int64_t j = 0; j < n_index; ++j) dst[s * n_index + j] = src[s * n_src + index[s * n_index + j]];
  }
  void segment_labels(int32_t* dst, const int64_t* offsets, int32_t n_seg, int64_t copies, void*) override {
    const int64_t n = offsets[n_seg];
    for (int32_t s = 0; s < n_seg; ++s) std::fill(dst + offsets[s], dst + offsets[s + 1], s);
    for (int64_t c = 1; c < copies; ++c) std::copy(dst, dst + n, dst + c * n);
  }

 private:
  int32_t n_threads_;
  const cpu::CpuKernels* kernels_;
  cpu::AttendPool pool_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int32_t n_threads) {
  if (n_threads <= 0) n_threads = int32_t(std::max(1u, std::thread::hardware_concurrency()));
  return std::make_unique<CpuBackend>(n_threads);
}

}  // namespace longattn
