// Read-order probe behind docs/PERFORMANCE.md (CPU decode): how fast one thread reads a KV-cache
// layout (tokens of `heads` rows of 256 bytes side by side, i.e. f16 rows of head_dim 128) in
// address order against head by head over a tile of tokens, as the decode kernels walk it.
//   g++ -O2 -mavx512f scripts/probes/read_order.cpp -o /tmp/read_order && /tmp/read_order
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {
constexpr size_t kRow = 256;  // bytes of one head's row

// order 0: token by token, each token's heads in address order; 1: head by head over a tile of
// `tile` tokens; 2: as 1, each row's lines also prefetched `pf` tokens ahead; 3: as 1, each row
// read also prefetches (prefetcht1, into L2) one row's worth of the next tile, in address order,
// as the decode kernels do. Returns GB/s.
double read_gbps(const std::vector<char>& buf, size_t heads, int order, size_t tile, size_t pf) {
  const size_t tok = heads * kRow, ntok = (buf.size() - (pf + 1) * tok) / tok / tile * tile;
  double best = 1e30;
  float sink = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    __m512 acc = _mm512_setzero_ps();
    const char* sweep = buf.data() + tile * tok;  // order 3: the next tile, in address order
    auto row = [&](size_t t, size_t h) {
      const char* p = buf.data() + t * tok + h * kRow;
      if (order == 2)
        for (size_t l = 0; l < kRow; l += 64) _mm_prefetch(p + pf * tok + l, _MM_HINT_T0);
      if (order == 3) {
        for (size_t l = 0; l < kRow; l += 64) _mm_prefetch(sweep + l, _MM_HINT_T1);
        sweep += kRow;
      }
      for (size_t l = 0; l < kRow; l += 64) acc = _mm512_add_ps(acc, _mm512_loadu_ps(reinterpret_cast<const float*>(p + l)));
    };
    for (size_t t0k = 0; t0k < ntok; t0k += tile)
      if (order == 0) {
        for (size_t t = t0k; t < t0k + tile; ++t)
          for (size_t h = 0; h < heads; ++h) row(t, h);
      } else {
        for (size_t h = 0; h < heads; ++h)
          for (size_t t = t0k; t < t0k + tile; ++t) row(t, h);
      }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, acc);
    sink += lanes[0];
    best = std::min(best, s);
  }
  if (sink < 0) std::printf("%f\n", double(sink));  // keeps the reads
  return double(ntok * tok) / best / 1e9;
}
}  // namespace

int main() {
  std::vector<char> buf(size_t(256) << 20);
  std::memset(buf.data(), 1, buf.size());
  const size_t heads = 8;
  std::printf("one thread, %zu heads × %zu B rows, 256 MiB:\n", heads, kRow);
  std::printf("  token by token, heads in address order: %.1f GB/s\n", read_gbps(buf, heads, 0, 128, 0));
  for (size_t tile : {2, 16, 128})
    std::printf("  head by head over %3zu-token tiles:        %.1f GB/s\n", tile, read_gbps(buf, heads, 1, tile, 0));
  for (size_t pf : {16, 48})
    std::printf("  head by head over 128-token tiles, prefetch %2zu tokens ahead: %.1f GB/s\n", pf,
                read_gbps(buf, heads, 2, 128, pf));
  for (size_t tile : {16, 32, 64})
    std::printf("  head by head over %2zu-token tiles, next tile prefetched in address order: %.1f GB/s\n", tile,
                read_gbps(buf, heads, 3, tile, tile));
}
