// Kernel parameters of the ggml-style extras of one `attend` launch (see AttendArgs::add_mask,
// alibi_slopes and sinks in src/backend.hpp), passed by value next to AttendParams. Only the
// generic kernel and the split-KV combine read them; every pointer is device memory.
#pragma once

#include <cstdint>

namespace longattn::cuda {

struct ExtrasParams {
  // Additive mask (natural-log units, f16 or f32) of physical query row qr and physical key row
  // kr: mask + b·mask_stride[0] + qr·mask_stride[1] + h·mask_stride[2] + kr·mask_stride[3] bytes.
  // A broadcast axis (size 1: batch or heads) has stride 0. nullptr: no mask.
  const char* mask = nullptr;
  int64_t mask_stride[4] = {0, 0, 0, 0};
  int32_t mask_dtype = 0;
  const float* alibi_slopes = nullptr;  // [hq] or nullptr
  const float* sinks = nullptr;         // [hq] natural-log logits or nullptr

  bool any() const { return mask || alibi_slopes || sinks; }
};

}  // namespace longattn::cuda
