#version 460
// index_ops — the index bookkeeping of src/backend.hpp in device memory, one invocation per
// output element e ∈ [0, total):
//   MODE 0, gather_i32:     dst[e] = src[s·n_src + index[e]],  s = e / n_index (segmented gather)
//   MODE 1, segment_labels: dst[e] = s with offsets[s] ≤ e mod n < offsets[s + 1], n = offsets[n_seg]
// int32 dst, src, index; the offsets (n_seg + 1 non-decreasing int64 values from 0) follow the
// argument block at table_offset bytes.

#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int MODE = 0;

const int WG = int(gl_WorkGroupSize.x);

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Args {
  int64_t n_groups;
  uint64_t dst, src, index;
  int64_t total;     // output elements
  int64_t n_src;     // MODE 0: source entries per segment
  int64_t n_index;   // MODE 0: indices per segment; MODE 1: n = offsets[n_seg]
  int64_t n_seg;     // MODE 1: segments of the offsets table
  int64_t table_offset;
};

void main() {
  Args A = Args(pc.args);
  const uint64_t grp = linear_group_id();
  if (grp >= uint64_t(A.n_groups)) return;
  const int64_t e = int64_t(grp) * WG + int64_t(gl_LocalInvocationID.x);
  if (e >= A.total) return;
  if (MODE == 0) {
    const int64_t s = e / A.n_index;
    st_i32(A.dst, e, ld_i32(A.src, s * A.n_src + int64_t(ld_i32(A.index, e))));
  } else {
    const uint64_t offsets = pc.args + uint64_t(A.table_offset);
    const int64_t i = e % A.n_index;
    int64_t lo = 0, hi = A.n_seg - 1;  // the last s with offsets[s] ≤ i (empty segments skipped)
    while (lo < hi) {
      const int64_t mid = (lo + hi + 1) / 2;
      if (ld_i64(offsets, mid) <= i) lo = mid; else hi = mid - 1;
    }
    st_i32(A.dst, e, int(lo));
  }
}
