// Default index bookkeeping of a backend (Backend::gather_i32, Backend::segment_labels): correct
// for every backend through download/upload only. Backends with their own kernels (CPU, CUDA)
// override both, so that these indices never travel through host memory.
#include <algorithm>
#include <vector>

#include "backend.hpp"

namespace longattn {

void Backend::gather_i32(int32_t* dst, const int32_t* src, const int32_t* index, int64_t n_seg,
                         int64_t n_src, int64_t n_index, void* stream) {
  if (n_seg == 0 || n_index == 0) return;
  std::vector<int32_t> h_src(size_t(n_seg * n_src)), h_index(size_t(n_seg * n_index));
  download(h_src.data(), src, h_src.size() * sizeof(int32_t), stream);
  download(h_index.data(), index, h_index.size() * sizeof(int32_t), stream);
  synchronize(stream);
  std::vector<int32_t> h_dst(h_index.size());
  for (int64_t s = 0; s < n_seg; ++s)
    for (int64_t j = 0; j < n_index; ++j)
      h_dst[size_t(s * n_index + j)] = h_src[size_t(s * n_src + h_index[size_t(s * n_index + j)])];
  upload(dst, h_dst.data(), h_dst.size() * sizeof(int32_t), stream);
}

void Backend::segment_labels(int32_t* dst, const int64_t* offsets, int32_t n_seg, int64_t copies,
                             void* stream) {
  const int64_t n = offsets[n_seg];
  if (n == 0 || copies == 0) return;
  std::vector<int32_t> labels(size_t(n * copies));
  for (int32_t s = 0; s < n_seg; ++s)
    for (int64_t i = offsets[s]; i < offsets[s + 1]; ++i) labels[size_t(i)] = s;
  for (int64_t c = 1; c < copies; ++c)
    std::copy(labels.begin(), labels.begin() + n, labels.begin() + c * n);
  upload(dst, labels.data(), labels.size() * sizeof(int32_t), stream);
}

}  // namespace longattn
