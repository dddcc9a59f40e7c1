// Shared by the CUDA test files: whether a usable device exists, and the skip every case starts with
// (CUDA builds run in CI on machines without a GPU).
#pragma once

#include "longattn.h"

namespace test {

inline bool cuda_present() { return longattn_backend_available(LONGATTN_BACKEND_CUDA) != 0; }

}  // namespace test

#define SKIP_WITHOUT_CUDA()                                \
  do {                                                     \
    if (!test::cuda_present()) {                           \
      MESSAGE("no usable CUDA device: CUDA case skipped"); \
      return;                                              \
    }                                                      \
  } while (0)
