// CPU implementation of the `attend` primitive (see src/backend.hpp for its contract).
#pragma once

#include <vector>

#include "backend.hpp"
#include "cpu_kernels.hpp"

namespace longattn::cpu {

// Runs one attend call on n_threads threads with the given micro-kernels. `pool` is scratch owned
// by the backend; it grows on the first call with a larger shape and is reused afterwards.
void attend(const AttendArgs& a, const CpuKernels& kernels, int n_threads, std::vector<float>& pool);

}  // namespace longattn::cpu
