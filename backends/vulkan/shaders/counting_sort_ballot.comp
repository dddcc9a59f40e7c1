#version 460
// counting_sort_ballot — the stable sort of counting_sort.comp (perm[s·n + rank] = i, ordered by
// (codes[s·n + i], i)) for devices with subgroup ballots and at most kMaxBins = 2^r bins:
//   1. histogram of the segment in shared memory (shared atomics);  2. exclusive scan of the bins;
//   3. scatter, one chunk of rows at a time: the lanes of a subgroup with the same code are found
//   by r + 1 ballots (one per code bit, one for validity), a row's destination is its bin's start
//   plus the number of earlier lanes with its code; the subgroups take their turns in row order
//   (one barrier each), and the last lane of each code advances its bin.
// counting_sort.comp ranks each chunk by a loop over all its rows per invocation (O(WG) per row);
// here a chunk costs r + 1 ballots and one barrier per subgroup.

#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
const int WG = int(gl_WorkGroupSize.x);
const int kMaxBins = 4096;  // vulkan_backend.cpp: kSortSharedBins

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Args {
  int64_t n_groups;
  uint64_t codes, perm, bins;  // bins: unused here (counting_sort.comp's global histogram)
  int64_t n;
  int bits;
};

shared uint sBin[kMaxBins];
shared uint sRun[WG];

uint code_at(uint64_t base, int64_t i) { return load_half_bits(base + uint64_t(i) * 2); }

void main() {
  Args A = Args(pc.args);
  const uint64_t seg = linear_group_id();
  if (seg >= uint64_t(A.n_groups)) return;
  const int tid = int(gl_LocalInvocationID.x);
  const uint n_bins = 1u << A.bits;
  const int64_t n = A.n;
  const uint64_t codes = A.codes + seg * uint64_t(n) * 2;
  const uint64_t perm = A.perm + seg * uint64_t(n) * 4;

  for (uint k = tid; k < n_bins; k += WG) sBin[k] = 0;
  barrier();
  for (int64_t i = tid; i < n; i += WG) atomicAdd(sBin[code_at(codes, i)], 1u);
  barrier();

  // exclusive scan: invocation tid owns bins [tid·run, (tid + 1)·run)
  const uint run = (n_bins + WG - 1) / WG;
  const uint first = min(uint(tid) * run, n_bins), last = min(first + run, n_bins);
  uint total = 0;
  for (uint k = first; k < last; ++k) total += sBin[k];
  sRun[tid] = total;
  barrier();
  if (tid == 0) {
    uint acc = 0;
    for (int t = 0; t < WG; ++t) {
      const uint x = sRun[t];
      sRun[t] = acc;
      acc += x;
    }
  }
  barrier();
  uint offset = sRun[tid];
  for (uint k = first; k < last; ++k) {
    const uint x = sBin[k];
    sBin[k] = offset;
    offset += x;
  }
  barrier();

  // stable scatter; the rows of a chunk are numbered by (subgroup, lane), which is a bijection
  // whatever the device's mapping of invocations to subgroups
  const uint sg = gl_SubgroupID, n_sg = gl_NumSubgroups;
  const int64_t chunk = int64_t(n_sg * gl_SubgroupSize);
  for (int64_t base = 0; base < n; base += chunk) {
    const int64_t i = base + int64_t(sg * gl_SubgroupSize + gl_SubgroupInvocationID);
    const bool valid = i < n;
    const uint code = valid ? code_at(codes, i) : 0u;
    const uvec4 v = subgroupBallot(valid);
    uvec4 same = valid ? v : ~v;
    for (int t = 0; t < A.bits; ++t) {
      const bool bit = ((code >> t) & 1u) != 0;
      const uvec4 m = subgroupBallot(bit);
      same &= bit ? m : ~m;
    }
    const uint rank = subgroupBallotExclusiveBitCount(same);
    const uint count = subgroupBallotBitCount(same);
    for (uint s = 0; s < n_sg; ++s) {
      if (s == sg) {
        const uint start = valid ? sBin[code] : 0u;
        subgroupMemoryBarrierShared();
        subgroupBarrier();  // every lane has read its bin before the last lane of a code moves it
        if (valid) {
          st_i32(perm, int64_t(start + rank), int(i));
          if (rank + 1 == count) sBin[code] = start + count;
        }
      }
      barrier();
    }
  }
}
