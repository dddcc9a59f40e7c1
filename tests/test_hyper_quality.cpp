// HYPER quality regression: the table of specs/hyperattention.md ("Quality regression"), with
// ×1.5 of the table's values as thresholds.
//
//   d = 64, s = 1/8, V = N(0, 1) + 1, b = m = 256, r = 7, mean over algorithm seeds 1, 2, 3
//   B = mean over rows of ‖õ_i − o_i‖ / ‖o_i‖,  C = mean |L̃_i − L_i|  (float64 reference)
//   gauss       Q, K i.i.d. N(0, 1)
//   cluster_16  16 random unit directions; every row x = R·centre + 0.3·noise, noise ~ N(0, I)
//   planted_16  K ~ N(0, I); q_i = 16·unit(k_π(i)) + 0.5·noise, π a random permutation
//
// The spec does not fix the cluster radius R. R = 6 is used: at R = 8 = √d the non-causal
// columns land within 10 % of the table but the causal C comes out ~1.35× the table's 0.05.
// The metrics are means over 1024 random rows (the reference costs O(rows·n·d) per family).
// Also checks that the LSH blocks capture clearly more than the random share b/n of the softmax
// mass on cluster_16. Runs in about 10 s on two cores (Release); tagged test-suite "slow".
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>

#include "hyper_test_util.hpp"

using namespace hyper_test;

namespace {

enum class Family { gauss, cluster_16, planted_16 };
constexpr float kClusterRadius = 6.0f;
constexpr float kClusterNoise = 0.3f;
constexpr float kPlantedNorm = 16.0f;
constexpr float kPlantedNoise = 0.5f;
constexpr int kClusters = 16;
constexpr int64_t kCheckedRows = 1024;
constexpr double kSlack = 1.5;

struct Column {
  int64_t n;
  bool causal;
  int32_t min_len;
};
const Column kColumns[] = {{4096, false, 4096}, {8192, false, 4096}, {4096, true, 1024}};

// The spec's table: {B, C} per family (rows) and column.
const double kTable[3][3][2] = {
    {{0.088, 0.06}, {0.098, 0.06}, {0.047, 0.03}},  // gauss
    {{0.189, 0.17}, {0.221, 0.19}, {0.068, 0.05}},  // cluster_16
    {{0.231, 1.80}, {0.298, 2.02}, {0.104, 0.54}},  // planted_16
};

std::vector<float> unit(std::vector<float> x) {
  double norm = 0;
  for (float v : x) norm += double(v) * v;
  for (float& v : x) v = float(v / std::sqrt(norm));
  return x;
}

Inputs family_inputs(const HyperCase& c, Family f, uint64_t seed) {
  Inputs in = random_inputs(c, seed, 1.0f);  // gauss Q, K; V = N(0, 1) + 1
  std::mt19937_64 rng(seed * 31 + 7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t d = c.d;
  if (f == Family::cluster_16) {
    std::vector<std::vector<float>> centres(kClusters, std::vector<float>(static_cast<size_t>(d)));
    for (auto& centre : centres) {
      for (float& x : centre) x = nd(rng);
      centre = unit(centre);
    }
    for (HostTensor* t : {&in.q, &in.k})
      for (int64_t i = 0; i < t->t.shape[1]; ++i) {
        const auto& centre = centres[rng() % kClusters];
        for (int64_t e = 0; e < d; ++e) t->set(0, i, 0, e, kClusterRadius * centre[size_t(e)] + kClusterNoise * nd(rng));
      }
  } else if (f == Family::planted_16) {
    std::vector<int64_t> pi(static_cast<size_t>(c.n_k));
    std::iota(pi.begin(), pi.end(), 0);
    std::shuffle(pi.begin(), pi.end(), rng);
    for (int64_t i = 0; i < c.n_q; ++i) {
      std::vector<float> key(static_cast<size_t>(d));
      for (int64_t e = 0; e < d; ++e) key[size_t(e)] = in.k.get(0, pi[size_t(i)], 0, e);
      key = unit(key);
      for (int64_t e = 0; e < d; ++e) in.q.set(0, i, 0, e, kPlantedNorm * key[size_t(e)] + kPlantedNoise * nd(rng));
    }
  }
  return in;
}

std::vector<int64_t> distinct_rows(int64_t n, int64_t count, uint64_t seed) {
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(rows.begin(), rows.end(), rng);
  rows.resize(size_t(std::min(n, count)));
  std::sort(rows.begin(), rows.end());
  return rows;
}

HyperCase table_case(const Column& col) {
  HyperCase c;
  c.n_q = c.n_k = col.n;
  c.d = c.dv = 64;
  c.scale = 0.125f;
  c.block = 256;
  c.samples = 256;
  c.bits = 7;
  c.min_len = col.min_len;
  c.causal = col.causal;
  return c;
}

void check_cell(Family f, int col_index, const char* name) {
  const Column& col = kColumns[col_index];
  HyperCase c = table_case(col);
  const Inputs in = family_inputs(c, f, 11);
  const std::vector<int64_t> rows = distinct_rows(c.n_q, kCheckedRows, 5);
  const longattn::AttentionConfig cfg = test::config_of(desc_of(c));
  std::vector<double> ref_o, ref_l;
  longattn::reference_attention(cfg, in.q.view(), in.k.view(), in.v.view(), c.pos0(), ref_o, ref_l, rows);
  double B = 0, C = 0;
  for (uint64_t seed : {1, 2, 3}) {
    c.seed = seed;
    const Output o = run_direct(c, in, nullptr);
    longattn::HyperQuality qa;
    longattn::hyper_output_errors(cfg, o.out.view(), o.lse.view(), rows, ref_o, ref_l, qa);
    REQUIRE(qa.entries == int64_t(rows.size()));
    B += qa.rel_err / 3;
    C += qa.lse_err / 3;
  }
  const double* spec = kTable[int(f)][col_index];
  const std::string line = std::string(name) + " n=" + std::to_string(col.n) +
                           (col.causal ? " causal" : " non-causal") + ": B = " + std::to_string(B) + " (table " +
                           std::to_string(spec[0]) + "), C = " + std::to_string(C) + " (table " +
                           std::to_string(spec[1]) + ")";
  MESSAGE(line);
  CHECK(B < kSlack * spec[0]);
  CHECK(C < kSlack * spec[1]);
}

}  // namespace

TEST_SUITE("slow") {
  TEST_CASE("HYPER quality table: gauss") {
    for (int col = 0; col < 3; ++col) check_cell(Family::gauss, col, "gauss");
  }

  TEST_CASE("HYPER quality table: cluster_16") {
    for (int col = 0; col < 3; ++col) check_cell(Family::cluster_16, col, "cluster_16");
  }

  TEST_CASE("HYPER quality table: planted_16") {
    for (int col = 0; col < 3; ++col) check_cell(Family::planted_16, col, "planted_16");
  }

  TEST_CASE("HYPER captured block mass beats the random baseline on cluster_16") {
    HyperCase c = table_case(kColumns[0]);
    const Inputs in = family_inputs(c, Family::cluster_16, 11);
    longattn::HyperChoices choices;
    const Output o = run_direct(c, in, &choices);
    const longattn::HyperQuality qa = quality(c, in, o, &choices, distinct_rows(c.n_q, 256, 6));
    const std::string line = "cluster_16 captured block mass " + std::to_string(qa.block_mass) + " (random " +
                           std::to_string(qa.random_block_mass) + ")";
  MESSAGE(line);
    CHECK(qa.block_entries == 256);
    CHECK(qa.block_mass > 2.5 * qa.random_block_mass);
  }
}
