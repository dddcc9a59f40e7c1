// Validation at the ABI edge: every check that turns bad input into a specific status and a
// message naming the field and its value. Core code after this point assumes valid input.
#pragma once

#include "backend.hpp"
#include "problem.hpp"

namespace longattn {

// Checks desc and applies defaults (0 → default). Throws Error on bad input.
AttentionConfig config_from_desc(const longattn_attention_desc& desc);

// Checks one tensor view on its own (non-null data, known dtype, positive shape, non-negative,
// non-overlapping strides, known memory kind) and returns it as a View.
View view_from_tensor(const longattn_tensor* t, const char* name);

// Checks that shape equals {b, n, h, d}; `what` explains the expectation in the message.
void expect_shape(const View& v, const char* name, int64_t b, int64_t n, int64_t h, int64_t d);

// Throws when the byte ranges of the two views intersect.
void expect_disjoint(const View& a, const char* an, const View& b, const char* bn);

// First and one-past-last byte a view touches.
void byte_range(const View& v, const char*& lo, const char*& hi);

}  // namespace longattn
