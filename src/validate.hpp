// Validation at the ABI edge: every check that turns bad input into a specific status and a
// message naming the field and its value. Core code after this point assumes valid input.
#pragma once

#include <vector>

#include "backend.hpp"
#include "problem.hpp"

namespace longattn {

// ALiBi slopes of n_heads heads from ggml's max_bias.
std::vector<float> alibi_slopes(int32_t n_heads, float max_bias);

// Checks desc and applies defaults (0 → default). Throws Error on bad input.
AttentionConfig config_from_desc(const longattn_attention_desc& desc);

// Checks one tensor view on its own (non-null data, known dtype, positive shape, non-negative,
// non-overlapping strides, known memory kind) and returns it as a View.
// Block formats (Q8_0, Q4_0) are accepted only when allow_blocks is set (K and V).
View view_from_tensor(const longattn_tensor* t, const char* name, bool allow_blocks = false);

// Checks that shape equals {b, n, h, d}; the message names the axis (axes: 4 names, or the
// default {batch, tokens, heads, head_dim}).
void expect_shape(const View& v, const char* name, int64_t b, int64_t n, int64_t h, int64_t d,
                  const char* const* axes = nullptr);

// Throws when the byte ranges of the two views intersect.
void expect_disjoint(const View& a, const char* an, const View& b, const char* bn);

// First and one-past-last byte a view touches.
void byte_range(const View& v, const char*& lo, const char*& hi);

}  // namespace longattn
