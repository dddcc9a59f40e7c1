// The objects behind the opaque C handles.
#pragma once

#include <memory>
#include <string>

#include "backend.hpp"
#include "problem.hpp"
#include "ring.hpp"
#include "workspace.hpp"

struct longattn_context {
  longattn_backend kind = LONGATTN_BACKEND_CPU;
  int32_t device_index = 0;
  int32_t n_threads = 1;
  std::unique_ptr<longattn::Backend> backend;
  std::unique_ptr<longattn::Workspace> ws;  // scratch in the backend's memory
  std::unique_ptr<longattn::RingGroup> ring;  // ring mode: ranks 0 … N−1 (rank 0 = backend, ws); else null
  std::string last_error;
};

namespace longattn {
// The message longattn_last_create_error() returns on this thread: every entry point that creates
// a context clears it first and stores the scratch context's message when creation fails.
void set_create_error(const std::string& message);
}  // namespace longattn

struct longattn_attention {
  longattn_backend backend = LONGATTN_BACKEND_CPU;
  longattn::AttentionConfig cfg;
};
