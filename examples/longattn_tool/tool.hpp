// The `longattn` command-line tool: demo, bench, ceiling. Shared declarations.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "longattn.h"

namespace tool {

// A host tensor with its own storage (contiguous).
struct Buffer {
  std::vector<uint8_t> bytes;
  longattn_tensor t{};
  Buffer() = default;
  Buffer(longattn_dtype dtype, int64_t b, int64_t n, int64_t h, int64_t d);
};

// Fills with N(mean, 1) values from a seeded generator (never zeros), in parallel.
void fill_random(Buffer& buf, uint64_t seed, float mean = 0.0f);

longattn_dtype parse_dtype(const std::string& s);
const char* dtype_name(longattn_dtype t);
const char* backend_name(longattn_backend b);
const char* algo_name(longattn_algorithm a);

// Number of (query, key) pairs the mask allows, summed over query rows (per batch and head).
double allowed_pairs(const longattn_attention_desc& d, int64_t n_q, int64_t n_k, int64_t q_pos0);

// ‖out − ref‖/‖ref‖ and max |out − ref| on `rows` sampled query rows against the float64
// reference (exact attention with the same mask).
struct CheckResult {
  double rel_err = 0, max_abs_err = 0, lse_mean_abs_err = 0;
  bool has_lse = false;
};
CheckResult check_rows(const longattn_attention_desc& d, const Buffer& q, const Buffer& k, const Buffer& v,
                       const Buffer& out, const Buffer* lse, int64_t q_pos0, int64_t rows, uint64_t seed,
                       const Buffer* mask = nullptr, const float* sinks = nullptr);

// HYPER quality on sampled rows (specs/hyperattention.md): mean relative row error (B), mean LSE
// error (C), and the share of exact softmax mass its LSH blocks captured against the random baseline.
struct HyperCheck {
  double row_err, lse_err, block_mass, random_block_mass;
};
HyperCheck hyper_check(const longattn_attention_desc& desc, const Buffer& q, const Buffer& k, const Buffer& v,
                       int64_t q_pos0, int64_t rows, uint64_t seed, int threads);

double now_ms();
double cpu_ms();  // CPU time of the whole process (all threads)
double median(std::vector<double> xs);

int cmd_bench(int argc, char** argv);
int cmd_demo(int argc, char** argv);
int cmd_ceiling(int argc, char** argv);

// Yardsticks measured now on this machine (CPU).
double measure_sgemm_gflops(int threads);
double measure_read_gbps(int threads);
double measure_copy_gbps(int threads);

}  // namespace tool
