// Kernel parameters of one `attend` launch (generic and FLASH kernels), passed by value.
//
// Index conventions (see AttendArgs in src/backend.hpp):
//   logical query row i of (batch b, query head h) reads physical row q_rows[(b·hq + h)·n_q + i]
//   (or i); logical key j of (b, KV head hk) reads physical row k_rows[(b·hkv + hk)·n_k + j] (or j);
//   positions follow physical rows; the running state is indexed [(b·hq + h)·n_q + physical row].
// The segment table holds the segments of this launch only (a call with more segments than
// SegmentTable::kMax is split into several launches).
#pragma once

#include <cstdint>

#include "mask.hpp"

namespace longattn::cuda {

struct SegmentTable {
  static constexpr int kMax = 256;  // ~5 KB of kernel parameters (sm_70+ / CUDA ≥ 12.1 allow 32 KB)
  int32_t n = 1;                 // segments in this launch
  int64_t q_begin[kMax + 1];     // logical query rows of segment s: [q_begin[s], q_begin[s+1])
  int64_t k_begin[kMax + 1];     // logical keys of segment s:       [k_begin[s], k_begin[s+1])
  int32_t unit_begin[kMax + 1];  // first work unit (query tile or row block) of segment s
};

struct AttendParams {
  // tensors: byte strides of the batch, token and head axes, then of the dim axis
  const char* q = nullptr;
  const char* k = nullptr;
  const char* v = nullptr;
  char* out = nullptr;
  char* lse = nullptr;  // f32, nullptr when not wanted
  int64_t q_stride[4], k_stride[4], v_stride[4], o_stride[4], lse_stride[4];
  int32_t q_dtype, k_dtype, v_dtype, o_dtype;

  int32_t batch, hq, hkv, group;  // group = hq / hkv query heads per KV head
  int32_t d, dv;
  int64_t n_q, n_k;  // logical rows

  // logit in log2 units: s = scale_log2 · q·k (no softcap), or
  //                      s = softcap_log2 · tanh(softcap_in · q·k) (softcap_in = scale / softcap)
  float scale_log2;
  float softcap_in;  // 0 = no softcap
  float softcap_log2;

  Mask mask;
  bool mask_full;  // mask.is_full(): no positional test at all
  bool affine;     // positions are q_pos0 + i and k_pos0 + j (no gathers, no explicit positions)
  int64_t q_pos0, k_pos0;
  const int64_t* q_pos;
  const int64_t* k_pos;
  const int32_t* q_rows;
  const int32_t* k_rows;
  const float* key_logw;  // natural log, per logical key
  const int32_t* q_group;
  const int32_t* k_group;

  // running state (fp32, log2 units) or nullptr
  float* st_m;
  float* st_l;
  float* st_acc;

  // split-KV partials: part_o [split][b][hkv][packed row][dv] (normalised), part_lse same without
  // dv (log2 units); used when n_splits > 1
  float* part_o;
  float* part_lse;
  int32_t n_splits;
  int64_t packed_rows;  // n_q · group: packed rows per (b, hkv) for the partial layout

  SegmentTable seg;
};

}  // namespace longattn::cuda
