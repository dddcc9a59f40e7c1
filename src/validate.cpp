#include "validate.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "error.hpp"
#include "quant.hpp"

namespace longattn {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

bool float_dtype(longattn_dtype t) {
  return t == LONGATTN_DTYPE_F32 || t == LONGATTN_DTYPE_F16 || t == LONGATTN_DTYPE_BF16;
}

// Elements along the head-dim axis as the strides see them (blocks for the block formats).
int64_t axis_elems(const View& v, int ax) {
  return ax == 3 && is_block_dtype(v.dtype) ? v.shape[3] / kQuantBlock : v.shape[ax];
}

}  // namespace

std::vector<float> alibi_slopes(int32_t n_heads, float max_bias) {
  // ggml: n = 2^floor(log2(n_heads)); m0 = 2^(−max_bias/n); m1 = 2^(−max_bias/2/n);
  // slope(h) = m0^(h+1) for h < n, else m1^(2(h−n)+1)
  int32_t n = 1;
  while (n * 2 <= n_heads) n *= 2;
  const float m0 = std::pow(2.0f, -max_bias / float(n));
  const float m1 = std::pow(2.0f, -max_bias / 2.0f / float(n));
  std::vector<float> s(static_cast<size_t>(n_heads));
  for (int32_t h = 0; h < n_heads; ++h)
    s[size_t(h)] = h < n ? std::pow(m0, float(h + 1)) : std::pow(m1, float(2 * (h - n) + 1));
  return s;
}

AttentionConfig config_from_desc(const longattn_attention_desc& d) {
  AttentionConfig c;
  LONGATTN_RETURN_IF(d.algorithm < LONGATTN_ALGORITHM_FLASH || d.algorithm > LONGATTN_ALGORITHM_HYPER,
                     LONGATTN_ERROR_UNKNOWN_ENUM, "desc.algorithm=" + str(d.algorithm) + " is not a known algorithm");
  c.algorithm = d.algorithm;
  LONGATTN_RETURN_IF(d.n_q_heads <= 0, LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.n_q_heads=" + str(d.n_q_heads) + " must be positive");
  LONGATTN_RETURN_IF(d.n_kv_heads < 0, LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.n_kv_heads=" + str(d.n_kv_heads) + " must be positive (0 = n_q_heads)");
  c.n_q_heads = d.n_q_heads;
  c.n_kv_heads = d.n_kv_heads == 0 ? d.n_q_heads : d.n_kv_heads;
  LONGATTN_RETURN_IF(c.n_q_heads % c.n_kv_heads != 0, LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.n_kv_heads=" + str(c.n_kv_heads) + " does not divide n_q_heads=" + str(c.n_q_heads));
  LONGATTN_RETURN_IF(d.head_dim < 1 || d.head_dim > 256, LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.head_dim=" + str(d.head_dim) + " must be in 1..256");
  LONGATTN_RETURN_IF(d.head_dim_v < 0 || d.head_dim_v > 256, LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.head_dim_v=" + str(d.head_dim_v) + " must be in 1..256 (0 = head_dim)");
  c.head_dim = d.head_dim;
  c.head_dim_v = d.head_dim_v == 0 ? d.head_dim : d.head_dim_v;
  LONGATTN_RETURN_IF(!std::isfinite(d.scale), LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.scale=" + std::to_string(d.scale) + " must be finite (0 = 1/sqrt(head_dim))");
  c.scale = d.scale == 0.0f ? 1.0f / std::sqrt(float(c.head_dim)) : d.scale;
  LONGATTN_RETURN_IF(!std::isfinite(d.softcap) || d.softcap < 0, LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.softcap=" + std::to_string(d.softcap) + " must be finite and >= 0");
  c.softcap = d.softcap;
  LONGATTN_RETURN_IF(d.causal != 0 && d.causal != 1, LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.causal=" + str(d.causal) + " must be 0 or 1");
  LONGATTN_RETURN_IF(d.window_left < -1, LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.window_left=" + str(d.window_left) + " must be >= -1 (-1 = unlimited)");
  LONGATTN_RETURN_IF(d.window_right < -1, LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.window_right=" + str(d.window_right) + " must be >= -1 (-1 = unlimited)");
  LONGATTN_RETURN_IF(d.n_global < 0, LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.n_global=" + str(d.n_global) + " must be >= 0");
  c.mask.causal = d.causal != 0;
  LONGATTN_RETURN_IF(d.algorithm == LONGATTN_ALGORITHM_HYPER && (d.window_left != -1 || d.window_right != -1),
                     LONGATTN_ERROR_UNSUPPORTED,
                     "HYPER takes no window (window_left=" + str(d.window_left) + ", window_right=" +
                         str(d.window_right) + "): use SPARSE for a band");
  LONGATTN_RETURN_IF(d.algorithm == LONGATTN_ALGORITHM_HYPER && d.max_bias != 0, LONGATTN_ERROR_UNSUPPORTED,
                     "HYPER takes no ALiBi (max_bias=" + std::to_string(d.max_bias) + ")");
  if (d.algorithm == LONGATTN_ALGORITHM_FLASH) {
    LONGATTN_RETURN_IF(d.window_left != -1 || d.window_right != -1 || d.n_global != 0,
                       LONGATTN_ERROR_INVALID_ARGUMENT,
                       "FLASH takes no window or global tokens (window_left=" + str(d.window_left) +
                           ", window_right=" + str(d.window_right) + ", n_global=" + str(d.n_global) +
                           "): use LONGATTN_ALGORITHM_SPARSE");
  } else {
    c.mask.window_left = d.window_left;
    c.mask.window_right = d.window_right;
    c.mask.n_global = d.n_global;
  }
  LONGATTN_RETURN_IF(d.hyper_block_size < 0, LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.hyper_block_size=" + str(d.hyper_block_size) + " must be >= 0 (0 = 256)");
  LONGATTN_RETURN_IF(d.hyper_sample_size < 0, LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.hyper_sample_size=" + str(d.hyper_sample_size) + " must be >= 0 (0 = 256)");
  LONGATTN_RETURN_IF(d.hyper_lsh_bits < 0 || d.hyper_lsh_bits > 16, LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.hyper_lsh_bits=" + str(d.hyper_lsh_bits) + " must be in 1..16 (0 = 8)");
  LONGATTN_RETURN_IF(d.hyper_min_seq_len < 0, LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.hyper_min_seq_len=" + str(d.hyper_min_seq_len) + " must be >= 0 (0 = 4096)");
  if (d.hyper_block_size) c.hyper_block_size = d.hyper_block_size;
  if (d.hyper_sample_size) c.hyper_sample_size = d.hyper_sample_size;
  if (d.hyper_lsh_bits) c.hyper_lsh_bits = d.hyper_lsh_bits;
  if (d.hyper_min_seq_len) c.hyper_min_seq_len = d.hyper_min_seq_len;
  c.seed = d.seed;
  LONGATTN_RETURN_IF(d.reserved0 != 0, LONGATTN_ERROR_INVALID_ARGUMENT, "desc.reserved0 must be 0");
  LONGATTN_RETURN_IF(!std::isfinite(d.max_bias) || d.max_bias < 0, LONGATTN_ERROR_INVALID_ARGUMENT,
                     "desc.max_bias=" + std::to_string(d.max_bias) + " must be finite and >= 0");
  if (d.max_bias > 0) c.alibi_slopes = alibi_slopes(c.n_q_heads, d.max_bias);
  return c;
}

View view_from_tensor(const longattn_tensor* t, const char* name, bool allow_blocks) {
  LONGATTN_RETURN_IF(t == nullptr, LONGATTN_ERROR_NULL_POINTER, std::string(name) + " is NULL");
  LONGATTN_RETURN_IF(t->data == nullptr, LONGATTN_ERROR_NULL_POINTER, std::string(name) + ".data is NULL");
  LONGATTN_RETURN_IF(!float_dtype(t->dtype) && !is_block_dtype(t->dtype), LONGATTN_ERROR_UNKNOWN_ENUM,
                     std::string(name) + ".dtype=" + str(t->dtype) + " is not a known dtype");
  LONGATTN_RETURN_IF(is_block_dtype(t->dtype) && !allow_blocks, LONGATTN_ERROR_UNSUPPORTED,
                     std::string(name) + ".dtype=" + str(t->dtype) + ": block formats are for K and V only");
  LONGATTN_RETURN_IF(is_block_dtype(t->dtype) && t->shape[3] % kQuantBlock != 0, LONGATTN_ERROR_INVALID_ARGUMENT,
                     std::string(name) + ".shape[3]=" + str(t->shape[3]) + " must be a multiple of 32 for a block format");
  LONGATTN_RETURN_IF(t->memory != LONGATTN_MEMORY_HOST && t->memory != LONGATTN_MEMORY_DEVICE,
                     LONGATTN_ERROR_UNKNOWN_ENUM,
                     std::string(name) + ".memory=" + str(t->memory) + " is not a known memory kind");
  View v;
  v.data = t->data;
  v.dtype = t->dtype;
  constexpr int64_t kMaxExtent = int64_t(1) << 40;
  for (int i = 0; i < 4; ++i) {
    LONGATTN_RETURN_IF(t->shape[i] <= 0 || t->shape[i] > kMaxExtent, LONGATTN_ERROR_INVALID_ARGUMENT,
                       std::string(name) + ".shape[" + str(i) + "]=" + str(t->shape[i]) + " must be positive");
    LONGATTN_RETURN_IF(t->strides[i] < 0 || t->strides[i] > kMaxExtent, LONGATTN_ERROR_BAD_STRIDE,
                       std::string(name) + ".strides[" + str(i) + "]=" + str(t->strides[i]) + " must be non-negative");
    v.shape[i] = t->shape[i];
    v.strides[i] = t->strides[i];
  }
  // Non-overlap: visiting axes of size > 1 by increasing stride, each stride must step over
  // everything the smaller axes span. (Sufficient, and how every strided library checks it.)
  int order[4] = {0, 1, 2, 3};
  std::sort(order, order + 4, [&](int x, int y) { return v.strides[x] < v.strides[y]; });
  int64_t span = int64_t(longattn_dtype_size(v.dtype));
  for (int k = 0; k < 4; ++k) {
    const int ax = order[k];
    const int64_t n = axis_elems(v, ax);
    if (n == 1) continue;
    LONGATTN_RETURN_IF(v.strides[ax] < span, LONGATTN_ERROR_BAD_STRIDE,
                       std::string(name) + ".strides[" + str(ax) + "]=" + str(v.strides[ax]) +
                           " makes elements overlap (needs >= " + str(span) + ")");
    span = v.strides[ax] * (n - 1) + span;
  }
  return v;
}

void expect_shape(const View& v, const char* name, int64_t b, int64_t n, int64_t h, int64_t d,
                  const char* const* axes) {
  const int64_t want[4] = {b, n, h, d};
  static const char* const kDefaultAxes[4] = {"batch", "tokens", "heads", "head_dim"};
  const char* const* axis = axes ? axes : kDefaultAxes;
  for (int i = 0; i < 4; ++i)
    LONGATTN_RETURN_IF(v.shape[i] != want[i], LONGATTN_ERROR_SHAPE_MISMATCH,
                       std::string(name) + ".shape[" + str(i) + "]=" + str(v.shape[i]) + " (" + axis[i] +
                           ") should be " + str(want[i]));
}

void byte_range(const View& v, const char*& lo, const char*& hi) {
  int64_t last = 0;
  for (int i = 0; i < 4; ++i) last += (axis_elems(v, i) - 1) * v.strides[i];
  lo = static_cast<const char*>(v.data);
  hi = lo + last + int64_t(longattn_dtype_size(v.dtype));
}

void expect_disjoint(const View& a, const char* an, const View& b, const char* bn) {
  const char *alo, *ahi, *blo, *bhi;
  byte_range(a, alo, ahi);
  byte_range(b, blo, bhi);
  LONGATTN_RETURN_IF(alo < bhi && blo < ahi, LONGATTN_ERROR_INVALID_ARGUMENT,
                     std::string(an) + " overlaps " + bn + " in memory");
}

}  // namespace longattn
