// A validated forward call in core terms: what every algorithm planner receives.
#pragma once

#include <cstdint>
#include <vector>

#include "backend.hpp"
#include "workspace.hpp"

namespace longattn {

// The descriptor after defaults are applied (0 → default) and validation passed.
struct AttentionConfig {
  longattn_algorithm algorithm = LONGATTN_ALGORITHM_FLASH;
  int32_t n_q_heads = 0, n_kv_heads = 0, head_dim = 0, head_dim_v = 0;
  float scale = 0.0f, softcap = 0.0f;
  Mask mask;  // FLASH: causal only
  int32_t hyper_block_size = 256, hyper_sample_size = 256, hyper_lsh_bits = 8;
  int32_t hyper_min_seq_len = 4096;
  uint64_t seed = 0;
  std::vector<float> alibi_slopes;  // per query head, from max_bias (empty: no ALiBi)
};

struct Problem {
  const AttentionConfig* cfg = nullptr;
  int64_t batch = 0, n_q = 0, n_k = 0;
  View q, k, v, out, lse;  // in the backend's memory; lse.data may be null
  int64_t q_pos0 = 0;      // resolved (never the bottom-right sentinel)
  // ggml-style extras (backend memory; null/empty when absent), see AttendArgs
  View mask;
  const float* alibi_slopes = nullptr;
  const float* sinks = nullptr;
  void* stream = nullptr;
  Workspace* ws = nullptr;

  // An AttendArgs for the whole problem: every query row against every key, the config's mask,
  // writing out/lse. Planners start from this and narrow it.
  AttendArgs attend_args() const {
    AttendArgs a;
    a.batch = batch; a.n_q = n_q; a.n_k = n_k;
    a.n_q_heads = cfg->n_q_heads; a.n_kv_heads = cfg->n_kv_heads;
    a.head_dim = cfg->head_dim; a.head_dim_v = cfg->head_dim_v;
    a.q = q; a.k = k; a.v = v;
    a.scale = cfg->scale; a.softcap = cfg->softcap; a.mask = cfg->mask;
    a.q_pos0 = q_pos0; a.k_pos0 = 0;
    a.out = out; a.lse = lse; a.stream = stream;
    a.add_mask = mask; a.alibi_slopes = alibi_slopes; a.sinks = sinks;
    return a;
  }
};

// Algorithm planners: schedules of backend primitives (src/flash.cpp, sparse.cpp, hyper.cpp).
void run_flash(Backend& backend, const Problem& p);
void run_sparse(Backend& backend, const Problem& p);
void run_hyper(Backend& backend, const Problem& p);

}  // namespace longattn
