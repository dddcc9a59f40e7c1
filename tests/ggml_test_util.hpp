// Shared by the tests of the ggml-style extras (CPU, CUDA, Vulkan): the view of a raw tensor,
// a Q8_0/Q4_0 cache built by quantising N(0, 1) values, the extras of one call and a descriptor.
#pragma once

#include <random>
#include <vector>

#include "common.hpp"
#include "quant.hpp"

namespace test {

inline View view_of(const longattn_tensor& t) {
  View v;
  v.data = t.data;
  v.dtype = t.dtype;
  for (int i = 0; i < 4; ++i) v.shape[i] = t.shape[i], v.strides[i] = t.strides[i];
  return v;
}

// A Q8_0/Q4_0 K or V cache {b, n, h, d}, `pad_blocks` unused blocks (sentinel bytes) after every
// head's row (a view into a larger cache); values N(0, 1) quantised the way ggml does.
struct BlockTensor {
  std::vector<uint8_t> bytes;
  longattn_tensor t{};
  BlockTensor(std::mt19937_64& rng, longattn_dtype dtype, int64_t b, int64_t n, int64_t h, int64_t d,
              int64_t pad_blocks = 0) {
    const int64_t bb = int64_t(longattn_dtype_size(dtype)), nblk = d / longattn::kQuantBlock;
    const int64_t row = (nblk + pad_blocks) * bb;
    bytes.assign(size_t(b * n * h * row), 0x5A);
    t.data = bytes.data();
    t.dtype = dtype;
    t.memory = LONGATTN_MEMORY_HOST;
    t.shape[0] = b; t.shape[1] = n; t.shape[2] = h; t.shape[3] = d;
    t.strides[3] = bb;
    t.strides[2] = row;
    t.strides[1] = row * h;
    t.strides[0] = row * h * n;
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(d));
    for (int64_t i = 0; i < b * n * h; ++i) {
      for (float& f : x) f = dist(rng);
      longattn::quantize_row(x.data(), dtype, d, bytes.data() + size_t(i * row), bb);
    }
  }
  BlockTensor(const BlockTensor&) = delete;
  BlockTensor& operator=(const BlockTensor&) = delete;
  View view() const { return view_of(t); }
};

// The extras of one call (all optional): additive mask, ALiBi slopes, sinks.
struct Extras {
  const HostTensor* mask = nullptr;
  const float* slopes = nullptr;
  const float* sinks = nullptr;
};

inline longattn_attention_desc desc_of(int32_t hq, int32_t hkv, int32_t d, bool causal) {
  longattn_attention_desc desc = LONGATTN_ATTENTION_DESC_INIT;
  desc.n_q_heads = hq;
  desc.n_kv_heads = hkv;
  desc.head_dim = d;
  desc.causal = causal;
  return desc;
}

}  // namespace test
