#version 460
// counting_sort — stable sort of each segment by code:
//   perm[s·n + rank] = i, ordered by (codes[s·n + i], i); n_seg segments of n rows, codes < 2^r.
//
// One workgroup per segment, three phases over a histogram of 2^r bins in global scratch
// (bins[s·2^r + code], coherent, re-zeroed here):
//   1. histogram (atomic adds);  2. exclusive scan (each invocation scans a contiguous run of
//   bins, run totals are scanned in shared memory);  3. scatter in index order, WG rows at a
//   time: a row's destination is bins[code] + (earlier rows of the chunk with the same code);
//   the last row of each code in the chunk then advances bins[code].

#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
const int WG = int(gl_WorkGroupSize.x);

layout(buffer_reference, std430, buffer_reference_align = 4) coherent buffer Bins { uint v[]; };

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Args {
  int64_t n_groups;
  uint64_t codes, perm, bins;
  int64_t n;
  int bits;
};

shared uint sRun[WG];
shared uint sCode[WG];

uint code_at(uint64_t base, int64_t i) { return load_half_bits(base + uint64_t(i) * 2); }

void main() {
  Args A = Args(pc.args);
  const uint64_t seg = linear_group_id();
  if (seg >= uint64_t(A.n_groups)) return;
  const int tid = int(gl_LocalInvocationID.x);
  const uint n_bins = 1u << A.bits;
  const int64_t n = A.n;
  Bins bins = Bins(A.bins + seg * uint64_t(n_bins) * 4);
  const uint64_t codes = A.codes + seg * uint64_t(n) * 2;
  const uint64_t perm = A.perm + seg * uint64_t(n) * 4;

  for (uint k = tid; k < n_bins; k += WG) bins.v[k] = 0;
  memoryBarrierBuffer();
  barrier();
  for (int64_t i = tid; i < n; i += WG) atomicAdd(bins.v[code_at(codes, i)], 1u);
  memoryBarrierBuffer();
  barrier();

  // exclusive scan: invocation tid owns bins [tid·run, (tid + 1)·run)
  const uint run = (n_bins + WG - 1) / WG;
  const uint first = min(uint(tid) * run, n_bins), last = min(first + run, n_bins);
  uint total = 0;
  for (uint k = first; k < last; ++k) total += bins.v[k];
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
    const uint x = bins.v[k];
    bins.v[k] = offset;
    offset += x;
  }
  memoryBarrierBuffer();
  barrier();

  // stable scatter, WG rows at a time
  for (int64_t base = 0; base < n; base += WG) {
    const int64_t i = base + tid;
    const uint code = i < n ? code_at(codes, i) : 0xffffffffu;
    sCode[tid] = code;
    barrier();
    uint before = 0;
    bool last_of_code = true;
    for (int t = 0; t < WG; ++t) {
      if (sCode[t] != code) continue;
      if (t < tid) ++before;
      if (t > tid) last_of_code = false;
    }
    uint start = 0;
    if (i < n) {
      start = bins.v[code];
      st_i32(perm, before + int64_t(start), int(i));
    }
    memoryBarrierBuffer();
    barrier();  // every row of the chunk has read its bin
    if (i < n && last_of_code) bins.v[code] = start + before + 1;
    memoryBarrierBuffer();
    barrier();
  }
}
