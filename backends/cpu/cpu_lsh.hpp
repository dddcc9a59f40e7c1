// CPU LSH primitives for HyperAttention: Gray-ranked sign codes and the stable counting sort.
#pragma once

#include <cstdint>

#include "backend.hpp"

namespace longattn::cpu {

void lsh_codes(const View& x, const float* G, int32_t r, const float* center, uint16_t* codes,
               int n_threads);
void counting_sort(const uint16_t* codes, int64_t n_seg, int64_t n, int32_t r, int32_t* perm,
                   int n_threads);

}  // namespace longattn::cpu
