// `longattn ceiling`: the machine's yardsticks, measured now, so attention speed is reported as a
// ratio to what this machine can do: OpenBLAS sgemm GFLOP/s and memory read / copy GB/s.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tool.hpp"

#if LONGATTN_HAVE_OPENBLAS
#include <cblas.h>
extern "C" void openblas_set_num_threads(int);
#endif

namespace tool {

double measure_sgemm_gflops(int threads) {
#if LONGATTN_HAVE_OPENBLAS
  openblas_set_num_threads(threads);
  const int n = 2048;
  std::vector<float> a(size_t(n) * n), b(size_t(n) * n), c(size_t(n) * n);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(i % 97) * 0.01f, b[i] = float(i % 89) * 0.01f;
  std::vector<double> ts;
  for (int r = 0; r < 5; ++r) {
    const double t0 = now_ms();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    ts.push_back(now_ms() - t0);
  }
  return 2.0 * double(n) * n * n / (median(ts) * 1e6);
#else
  (void)threads;
  return 0.0;
#endif
}

namespace {
// Runs body(t, begin, end) over [0, n) on `threads` threads; returns the median wall ms of 5 runs.
template <class F>
double timed_parallel(int threads, size_t n, F body) {
  std::vector<double> ts;
  for (int r = 0; r < 6; ++r) {
    const double t0 = now_ms();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] { body(t, n * size_t(t) / size_t(threads), n * size_t(t + 1) / size_t(threads)); });
    for (auto& th : pool) th.join();
    if (r > 0) ts.push_back(now_ms() - t0);
  }
  return median(ts);
}
}  // namespace

double measure_read_gbps(int threads) {
  const size_t n = size_t(1) << 27;  // 512 MiB of floats
  std::vector<float> a(n, 1.0f);
  std::vector<double> sums(size_t(threads), 0.0);
  const double ms = timed_parallel(threads, n, [&](int t, size_t b, size_t e) {
    float acc[16] = {0};
    for (size_t i = b; i + 16 <= e; i += 16)
      for (int k = 0; k < 16; ++k) acc[k] += a[i + size_t(k)];
    double s = 0;
    for (float x : acc) s += x;
    sums[size_t(t)] = s;
  });
  double total = 0;
  for (double s : sums) total += s;
  if (total < 0) std::printf("%f", total);  // keeps the reads alive
  return double(n) * 4 / (ms * 1e6);
}

double measure_copy_gbps(int threads) {
  const size_t n = size_t(1) << 26;  // 256 MiB each way
  std::vector<float> a(n, 1.0f), b(n, 0.0f);
  const double ms = timed_parallel(threads, n, [&](int, size_t bb, size_t e) {
    std::memcpy(b.data() + bb, a.data() + bb, (e - bb) * sizeof(float));
  });
  return 2.0 * double(n) * 4 / (ms * 1e6);  // bytes read + written
}

int cmd_ceiling(int argc, char** argv) {
  int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::max(1, std::atoi(argv[++i]));
    else if (a == "--json") json = true;
    else {
      std::fprintf(stderr, "usage: longattn ceiling [--threads T] [--json]\n");
      return 2;
    }
  }
  const double sgemm = measure_sgemm_gflops(threads);
  const double read = measure_read_gbps(threads);
  const double copy = measure_copy_gbps(threads);
  if (json)
    std::printf("{\"threads\":%d,\"sgemm_gflops\":%.2f,\"read_gbps\":%.2f,\"copy_gbps\":%.2f}\n", threads, sgemm, read, copy);
  else
    std::printf("threads %d: sgemm %.1f GFLOP/s (OpenBLAS, n=2048), read %.1f GB/s, copy %.1f GB/s (read+write)\n",
                threads, sgemm, read, copy);
  return 0;
}

}  // namespace tool
