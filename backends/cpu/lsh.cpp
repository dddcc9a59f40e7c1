// LSH codes and counting sort (see Backend::lsh_codes / counting_sort for the contract).
#include <vector>

#include "cpu_lsh.hpp"
#include "gray_rank.hpp"
#include "half.hpp"

namespace longattn::cpu {

// codes[(b·H + h)·n + i]: bit t = [(x_i − c_bh)·G[:, t] > 0] (fp32), then the Gray rank.
void lsh_codes(const View& x, const float* G, int32_t r, const float* center, uint16_t* codes,
               int n_threads) {
  const int64_t B = x.shape[0], n = x.shape[1], H = x.shape[2], d = x.shape[3];
  const int64_t total = B * H * n;
  (void)n_threads;
#if LONGATTN_HAVE_OPENMP
#pragma omp parallel for schedule(static) num_threads(n_threads)
#endif
  for (int64_t e = 0; e < total; ++e) {
    const int64_t i = e % n, h = (e / n) % H, b = e / (n * H);
    const float* c = center ? center + (b * H + h) * d : nullptr;
    float dots[16] = {0};
    for (int64_t k = 0; k < d; ++k) {
      const float v = load_as_float(x.at<char>(b, i, h, k), x.dtype) - (c ? c[k] : 0.0f);
      for (int32_t t = 0; t < r; ++t) dots[t] += v * G[k * r + t];
    }
    uint32_t bits = 0;
    for (int32_t t = 0; t < r; ++t) bits |= uint32_t(dots[t] > 0.0f) << t;
    codes[e] = uint16_t(gray_rank(bits));
  }
}

// Stable counting sort of each segment: histogram, exclusive scan, scatter in index order.
void counting_sort(const uint16_t* codes, int64_t n_seg, int64_t n, int32_t r, int32_t* perm,
                   int n_threads) {
  const size_t buckets = size_t(1) << r;
  (void)n_threads;
#if LONGATTN_HAVE_OPENMP
#pragma omp parallel for schedule(static) num_threads(n_threads)
#endif
  for (int64_t s = 0; s < n_seg; ++s) {
    std::vector<int64_t> start(buckets + 1, 0);
    const uint16_t* c = codes + s * n;
    for (int64_t i = 0; i < n; ++i) ++start[size_t(c[i]) + 1];
    for (size_t k = 0; k < buckets; ++k) start[k + 1] += start[k];
    int32_t* p = perm + s * n;
    for (int64_t i = 0; i < n; ++i) p[start[c[i]]++] = int32_t(i);
  }
}

}  // namespace longattn::cpu
