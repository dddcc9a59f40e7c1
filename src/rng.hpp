// Counter-based random numbers: every random choice of a randomized algorithm (HyperAttention's
// projections and column samples) is a pure function of (seed, purpose, indices, counter), so any
// backend, thread count or evaluation order makes identical choices. No global generator state.
//
//   stream key  k = mix(… mix(mix(seed ⊕ mix(purpose)) ⊕ (i0 + γ)) ⊕ (i1 + γ) …)
//   value(c)      = mix(k + (c + 1)·γ)     (the c-th output of SplitMix64 started at state k)
//
// mix is the SplitMix64 finaliser (Steele, Lea, Flood, OOPSLA 2014), γ = 0x9E3779B97F4A7C15.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace longattn {

constexpr uint64_t kSplitMixGamma = 0x9E3779B97F4A7C15ull;
constexpr double kTwoPi = 6.283185307179586476925286766559;
constexpr double kTwoPow53Inv = 1.0 / 9007199254740992.0;  // 2^-53

// SplitMix64 finaliser: a bijective avalanche of 64 bits.
inline uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// What a stream is used for; part of its key so that purposes never share values.
enum class RngPurpose : uint64_t {
  projections = 1,  // HyperAttention hyperplanes G (indices: none)
  samples = 2,      // HyperAttention column samples (indices: batch, kv head, level, segment)
};

// One independent stream of 64-bit words, addressed by a counter.
class RngStream {
 public:
  RngStream(uint64_t seed, RngPurpose purpose, uint64_t i0 = 0, uint64_t i1 = 0, uint64_t i2 = 0,
            uint64_t i3 = 0) {
    uint64_t k = splitmix64_mix(seed ^ splitmix64_mix(uint64_t(purpose)));
    for (uint64_t index : {i0, i1, i2, i3}) k = splitmix64_mix(k ^ (index + kSplitMixGamma));
    key_ = k;
  }

  uint64_t u64(uint64_t counter) const { return splitmix64_mix(key_ + (counter + 1) * kSplitMixGamma); }
  // The high 32 bits (the better-mixed half).
  uint32_t u32(uint64_t counter) const { return uint32_t(u64(counter) >> 32); }
  // Uniform in (0, 1] from the top 53 bits: never 0, so log() is finite.
  double uniform_open0(uint64_t counter) const { return double((u64(counter) >> 11) + 1) * kTwoPow53Inv; }
  // Uniform in [0, 1) from the top 53 bits.
  double uniform(uint64_t counter) const { return double(u64(counter) >> 11) * kTwoPow53Inv; }

 private:
  uint64_t key_ = 0;
};

// An index in [0, population) from a uniform 32-bit word: (u · population) >> 32 (Lemire's
// multiply-shift; bias below population / 2^32, no division, identical on every backend).
inline uint32_t multiply_shift(uint32_t u, uint32_t population) {
  return uint32_t((uint64_t(u) * uint64_t(population)) >> 32);
}

// Gaussian hyperplanes G [d][r] (row-major, element e = c·r + t), N(0, 1) entries from the
// Box–Muller transform in float64, rounded to fp32. Pair p = e / 2 uses counters 2p and 2p + 1:
//   ρ = sqrt(−2 ln u1), u1 ∈ (0, 1];  θ = 2π·u2, u2 ∈ [0, 1);  G[2p] = ρ cos θ, G[2p + 1] = ρ sin θ.
// The same G serves every head, level and backend (generated on the host, uploaded as fp32).
inline std::vector<float> gaussian_projections(uint64_t seed, int32_t d, int32_t r) {
  const RngStream rng(seed, RngPurpose::projections);
  const int64_t n = int64_t(d) * r;
  std::vector<float> g(static_cast<size_t>(n));
  for (int64_t p = 0; 2 * p < n; ++p) {
    const double rho = std::sqrt(-2.0 * std::log(rng.uniform_open0(uint64_t(2 * p))));
    const double theta = kTwoPi * rng.uniform(uint64_t(2 * p + 1));
    g[size_t(2 * p)] = float(rho * std::cos(theta));
    if (2 * p + 1 < n) g[size_t(2 * p + 1)] = float(rho * std::sin(theta));
  }
  return g;
}

}  // namespace longattn
