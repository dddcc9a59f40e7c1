// State shared by the pieces of the HyperAttention planner (hyper.cpp: gates and decomposition,
// hyper_flat.cpp: one non-causal node, hyper_causal.cpp: the causal recursion).
//
// Every piece produces a partial result (O, LSE) for a contiguous range of query rows and folds
// it into one fp32 accumulator over all query rows with the backend's `merge`, in a fixed order.
#pragma once

#include <cstdint>
#include <vector>

#include "hyper_choices.hpp"
#include "problem.hpp"

namespace longattn {

// Workspace slots of the HYPER planner (staging owns kStagingSlot0 and above).
enum HyperSlot : size_t {
  kSlotAccO = 0,     // fp32 [B, n_q, hq, dv] accumulator (unless out itself is fp32)
  kSlotAccLse,       // fp32 [B, n_q, hq, 1]  accumulator LSE (unless the caller wants lse)
  kSlotPartO,        // fp32 [B, n_q, hq, dv] one partial result
  kSlotPartLse,      // fp32 [B, n_q, hq, 1]
  kSlotNegInfLse,    // fp32 [B, n_q, hq, 1]  all −inf: turns the final merge into a conversion
  kSlotProjections,  // fp32 [d][r]
  kSlotCenter,       // fp32 [B][hkv][d] key means
  kSlotCodes,        // u16 [B·hq·nq + B·hkv·nk]: Q's codes, then K's
  kSlotPerms,        // i32 [B·hq·nq + B·hkv·nk]: π_Q, then π_K
  kSlotQueryBlock,   // i32 [B·hq·nq]  block of each sorted query (exclusion groups)
  kSlotSampleRows,   // i32 [B·hkv·m]  key row of each sample
  kSlotSampleMeta,   // i32 [3·B·hkv·m] sample ranks, key blocks, log-weights (f32 bits)
};

// Returns rows [r0, r0 + n) of a {batch, tokens, heads, dim} view.
inline View row_slice(View v, int64_t r0, int64_t n) {
  v.data = static_cast<char*>(v.data) + r0 * v.strides[1];
  v.shape[1] = n;
  return v;
}

// A contiguous fp32 view {batch, rows, heads, dim} over backend memory.
inline View contiguous_f32(void* data, int64_t batch, int64_t rows, int64_t heads, int64_t dim) {
  View v;
  v.data = data;
  v.dtype = LONGATTN_DTYPE_F32;
  v.shape[0] = batch, v.shape[1] = rows, v.shape[2] = heads, v.shape[3] = dim;
  v.strides[3] = 4;
  v.strides[2] = 4 * dim;
  v.strides[1] = 4 * dim * heads;
  v.strides[0] = 4 * dim * heads * rows;
  return v;
}

// Query rows [r0, r0 + n) of a call.
struct RowRange {
  int64_t r0 = 0, n = 0;
};

struct HyperContext {
  Backend& be;
  const Problem& p;
  const AttentionConfig& cfg;
  Workspace& ws;
  HyperChoices* choices;  // may be null
  bool force_hyper_path;  // test knob (see HyperChoices)

  int64_t B, n_q, n_k;
  int32_t hq, hkv, d, dv, r;
  int64_t block, samples, min_len;

  View acc_o, acc_lse;    // fp32 accumulator over all query rows
  View part_o, part_lse;  // fp32 partial of the same shape
  bool acc_started = false;
  // Rows whose final result a fold wrote into the caller's out already (see fold): the
  // conversion at the end (write_output) leaves them out.
  std::vector<RowRange> out_final;

  const float* G = nullptr;       // projections (backend memory), uploaded once per call
  const float* center = nullptr;  // key means of the current node (backend memory)

  HyperContext(Backend& backend, const Problem& problem, HyperChoices* ch);

  // An attend call over the whole problem, mask cleared, writing nothing yet: pieces narrow it.
  AttendArgs base_args() const;

  // Where a piece covering query rows [r0, r0 + n) writes: the accumulator itself for the very
  // first piece (it must cover every row), else the partial buffer. `final`: the piece's rows that
  // no later piece touches (all of them for the last piece); a first piece that is final
  // everywhere (a non-causal call of one node) writes the caller's out and lse.
  View target_o(int64_t r0, int64_t n, RowRange final = {}) const;
  View target_lse(int64_t r0, int64_t n, RowRange final = {}) const;
  // After the piece ran: acc[r0, r0 + n) = merge(acc, partial) (no-op for the first piece). Rows
  // in `final` are merged straight into the caller's out when the accumulator is scratch (out
  // f16 / bf16), which saves their share of the conversion pass at the end.
  void fold(int64_t r0, int64_t n, RowRange final = {});

  // Uploads the projections (once per call) and computes the centre of the node's keys
  // [k0, k0 + nk) (per node: each non-causal sub-problem centres its own keys).
  void prepare_lsh(int64_t k0, int64_t nk);
};

// Exact attention of query rows [q0, q0 + nq) against keys [k0, k0 + nk) under `mask`, with
// positions q_pos0 + (row − q0) and k_pos0 + (key − k0); optional block-diagonal segments
// (offsets relative to the ranges, host memory). Folds into the accumulator.
void hyper_exact_piece(HyperContext& c, int64_t q0, int64_t nq, int64_t k0, int64_t nk,
                       const Mask& mask, int64_t q_pos0, int64_t k_pos0,
                       const std::vector<int64_t>* segments = nullptr);

// Non-causal HyperAttention of query rows [q0, q0 + nq) against keys [k0, k0 + nk), every pair
// visible (hyper_flat.cpp). Exact when nk < min_seq_len or nk ≤ block (unless forced).
void hyper_flat_piece(HyperContext& c, int64_t q0, int64_t nq, int64_t k0, int64_t nk,
                      int32_t level, int32_t segment, RowRange final = {});

// Causal HyperAttention of the square whose query row q0 + i sits at the position of key
// k0 + i, i ∈ [0, n) (hyper_causal.cpp).
void hyper_causal_piece(HyperContext& c, int64_t q0, int64_t k0, int64_t n);

// Largest causal square solved exactly at the leaves of the recursion.
int64_t hyper_leaf_size(const HyperContext& c);

}  // namespace longattn
