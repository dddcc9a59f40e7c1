// The one mask predicate (DESIGN.md "Mask semantics"), shared by every algorithm, the float64
// reference and every backend's tile classification.
#pragma once

#include <cstdint>

// Lets CUDA kernels call the same predicate and classification as the host.
#if defined(__CUDACC__)
#define LONGATTN_HOST_DEVICE __host__ __device__
#else
#define LONGATTN_HOST_DEVICE
#endif

namespace longattn {

struct Mask {
  bool causal = false;
  int64_t window_left = -1;   // −1 = unlimited
  int64_t window_right = -1;  // −1 = unlimited
  int64_t n_global = 0;

  // allowed = causal_ok && (band || global)
  LONGATTN_HOST_DEVICE bool allows(int64_t qp, int64_t kp) const {
    if (causal && kp > qp) return false;
    const bool band = (window_left < 0 || qp - kp <= window_left) &&
                      (window_right < 0 || kp - qp <= window_right);
    return band || kp < n_global || qp < n_global;
  }

  LONGATTN_HOST_DEVICE bool is_full() const { return !causal && window_left < 0 && window_right < 0; }
};

// How a (query tile, key tile) pair is treated, from the position ranges the tiles span.
enum class TileKind { skip, full, partial };

// q positions in [q_lo, q_hi], k positions in [k_lo, k_hi] (inclusive; any sets within these
// ranges). The predicate is monotone in qp − kp, so the extreme differences decide.
LONGATTN_HOST_DEVICE inline TileKind classify_tile(const Mask& m, int64_t q_lo, int64_t q_hi, int64_t k_lo,
                              int64_t k_hi) {
  const int64_t dmin = q_lo - k_hi;  // smallest qp − kp in the tile pair
  const int64_t dmax = q_hi - k_lo;  // largest
  // band over the whole tile pair: every / some difference inside [−window_right, window_left]
  const bool band_all = (m.window_left < 0 || dmax <= m.window_left) &&
                        (m.window_right < 0 || -dmin <= m.window_right);
  const bool band_any = (m.window_left < 0 || dmin <= m.window_left) &&
                        (m.window_right < 0 || -dmax <= m.window_right);
  const bool global_all = k_hi < m.n_global || q_hi < m.n_global;
  const bool global_any = k_lo < m.n_global || q_lo < m.n_global;
  const bool causal_all = !m.causal || dmin >= 0;
  const bool causal_any = !m.causal || dmax >= 0;
  if (!causal_any || (!band_any && !global_any)) return TileKind::skip;
  if (causal_all && (band_all || global_all)) return TileKind::full;
  return TileKind::partial;
}

}  // namespace longattn
