// Host tensors on a device backend: copy the bytes a view spans into backend scratch, hand the
// algorithms a device view with the same strides, and copy results back afterwards.
#pragma once

#include "backend.hpp"
#include "workspace.hpp"

namespace longattn {

// Workspace slots at and above this number belong to staging; algorithms use the ones below.
constexpr size_t kStagingSlot0 = 64;

// Returns a view of `host` in backend memory (uploaded when upload is true: inputs, and outputs
// whose strides leave gaps that must survive the round trip).
View stage_in(Backend& backend, Workspace& ws, size_t slot, const View& host, bool upload, void* stream);

// A copy of n host floats in backend memory.
const float* stage_floats(Backend& backend, Workspace& ws, size_t slot, const float* host, int64_t n, void* stream);

// Copies the bytes `dev` spans back over the host view's bytes.
void stage_out(Backend& backend, const View& dev, const View& host, void* stream);

}  // namespace longattn
