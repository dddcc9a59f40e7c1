// Gray ranks: the rank of a word in the reflected Gray sequence (prefix XOR of its bits), so that
// codes of consecutive ranks differ in exactly one bit and sorting by rank walks the hypercube.
#pragma once

#include <cstdint>

namespace longattn {

// rank(g) = g ^ g>>1 ^ g>>2 ^ …  (inverse of gray(i) = i ^ i>>1)
inline uint32_t gray_rank(uint32_t g) {
  for (uint32_t shift = 1; shift < 32; shift <<= 1) g ^= g >> shift;
  return g;
}

inline uint32_t gray_code(uint32_t rank) { return rank ^ (rank >> 1); }

}  // namespace longattn
