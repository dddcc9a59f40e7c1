// The C ABI edge: versions, statuses, contexts, extensible structs, and every kind of bad input
// returning its specific status, naming the field, and leaving the output untouched.
#include <cstring>
#include <functional>

#include "common.hpp"

using namespace test;

TEST_CASE("version, build info and status strings") {
  CHECK(longattn_version() == LONGATTN_VERSION_NUMBER);
  CHECK(std::string(longattn_build_info()).find("cpu") != std::string::npos);
  for (longattn_status s = LONGATTN_OK; s <= LONGATTN_ERROR_INTERNAL; ++s)
    CHECK(std::string(longattn_status_string(s)).rfind("LONGATTN_", 0) == 0);
  CHECK(std::string(longattn_status_string(12345)) == "unknown status");
  CHECK(longattn_dtype_size(LONGATTN_DTYPE_F32) == 4);
  CHECK(longattn_dtype_size(LONGATTN_DTYPE_BF16) == 2);
  CHECK(longattn_dtype_size(77) == 0);
}

TEST_CASE("backends, devices and context creation") {
  CHECK(longattn_backend_available(LONGATTN_BACKEND_CPU) == 1);
  CHECK(longattn_backend_available(LONGATTN_BACKEND_AUTO) == 1);
  int32_t n = -1;
  CHECK(longattn_device_count(LONGATTN_BACKEND_CPU, &n) == LONGATTN_OK);
  CHECK(n == 1);
  CHECK(longattn_device_count(LONGATTN_BACKEND_CPU, nullptr) == LONGATTN_ERROR_NULL_POINTER);
  CHECK(longattn_device_count(99, &n) == LONGATTN_ERROR_UNKNOWN_ENUM);
  char name[8];
  CHECK(longattn_device_name(LONGATTN_BACKEND_CPU, 0, name, sizeof name) == LONGATTN_OK);
  CHECK(std::strlen(name) <= 7);
  CHECK(longattn_device_name(LONGATTN_BACKEND_CPU, 1, name, sizeof name) == LONGATTN_ERROR_INVALID_ARGUMENT);

  longattn_context* ctx = nullptr;
  REQUIRE(longattn_context_create(nullptr, &ctx) == LONGATTN_OK);  // defaults: AUTO
  CHECK(longattn_context_backend(ctx) != LONGATTN_BACKEND_AUTO);
  CHECK(std::string(longattn_context_last_error(ctx)).empty());
  longattn_context_destroy(ctx);
  longattn_context_destroy(nullptr);
  longattn_attention_destroy(nullptr);
  CHECK(longattn_context_create(nullptr, nullptr) == LONGATTN_ERROR_NULL_POINTER);

  longattn_context_options o = LONGATTN_CONTEXT_OPTIONS_INIT;
  o.backend = 42;
  CHECK(longattn_context_create(&o, &ctx) == LONGATTN_ERROR_UNKNOWN_ENUM);
  CHECK(std::string(longattn_last_create_error()).find("options.backend=42") != std::string::npos);
  o = LONGATTN_CONTEXT_OPTIONS_INIT;
  o.n_threads = -3;
  CHECK(longattn_context_create(&o, &ctx) == LONGATTN_ERROR_INVALID_ARGUMENT);

  // An explicit backend without a device: unavailable, unless the CPU fallback is asked for.
  for (longattn_backend b : {LONGATTN_BACKEND_CUDA, LONGATTN_BACKEND_VULKAN}) {
    o = LONGATTN_CONTEXT_OPTIONS_INIT;
    o.backend = b;
    o.device_index = 1000;
    CHECK(longattn_context_create(&o, &ctx) == LONGATTN_ERROR_BACKEND_UNAVAILABLE);
    o.flags = LONGATTN_CONTEXT_FALLBACK_CPU;
    REQUIRE(longattn_context_create(&o, &ctx) == LONGATTN_OK);
    CHECK(longattn_context_backend(ctx) == LONGATTN_BACKEND_CPU);
    longattn_context_destroy(ctx);
  }
}

TEST_CASE("extensible structs: smaller gets defaults, larger needs a zero tail") {
  Context ctx(LONGATTN_BACKEND_CPU, 1);
  // a "newer" caller: our struct followed by unknown fields
  struct Bigger {
    longattn_attention_desc d;
    uint64_t future;
  } big;
  std::memset(&big, 0, sizeof big);
  big.d = LONGATTN_ATTENTION_DESC_INIT;
  big.d.struct_size = sizeof(Bigger);
  big.d.n_q_heads = 2;
  big.d.head_dim = 8;
  longattn_attention* attn = nullptr;
  CHECK(longattn_attention_create(ctx.ctx, &big.d, &attn) == LONGATTN_OK);
  longattn_attention_destroy(attn);
  attn = nullptr;
  big.future = 1;
  CHECK(longattn_attention_create(ctx.ctx, &big.d, &attn) == LONGATTN_ERROR_STRUCT_SIZE);
  CHECK(attn == nullptr);
  CHECK(std::string(ctx.error()).find("struct_size") != std::string::npos);

  // an "older" caller: only up to n_global; garbage after it must be ignored (defaults used)
  longattn_attention_desc old = LONGATTN_ATTENTION_DESC_INIT;
  old.struct_size = uint32_t(LONGATTN_ATTENTION_DESC_MIN_SIZE);
  old.n_q_heads = 2;
  old.head_dim = 8;
  old.hyper_lsh_bits = 999;  // beyond struct_size: not read
  CHECK(longattn_attention_create(ctx.ctx, &old, &attn) == LONGATTN_OK);
  longattn_attention_destroy(attn);
  old.struct_size = uint32_t(LONGATTN_ATTENTION_DESC_MIN_SIZE - 4);
  CHECK(longattn_attention_create(ctx.ctx, &old, &attn) == LONGATTN_ERROR_STRUCT_SIZE);

  longattn_context_options o = LONGATTN_CONTEXT_OPTIONS_INIT;
  o.struct_size = uint32_t(LONGATTN_CONTEXT_OPTIONS_MIN_SIZE);
  o.backend = LONGATTN_BACKEND_CPU;
  o.n_threads = -7;  // beyond struct_size: default used
  longattn_context* c2 = nullptr;
  CHECK(longattn_context_create(&o, &c2) == LONGATTN_OK);
  longattn_context_destroy(c2);
  o.struct_size = 4;
  CHECK(longattn_context_create(&o, &c2) == LONGATTN_ERROR_STRUCT_SIZE);
}

TEST_CASE("bad descriptors are refused with a message naming the field") {
  Context ctx(LONGATTN_BACKEND_CPU, 1);
  struct Bad {
    std::function<void(longattn_attention_desc&)> edit;
    longattn_status status;
    const char* field;
  };
  const Bad bads[] = {
      {[](auto& d) { d.n_q_heads = 0; }, LONGATTN_ERROR_INVALID_ARGUMENT, "n_q_heads"},
      {[](auto& d) { d.n_kv_heads = 3; }, LONGATTN_ERROR_INVALID_ARGUMENT, "n_kv_heads=3"},
      {[](auto& d) { d.head_dim = 0; }, LONGATTN_ERROR_INVALID_ARGUMENT, "head_dim=0"},
      {[](auto& d) { d.head_dim = 257; }, LONGATTN_ERROR_INVALID_ARGUMENT, "head_dim=257"},
      {[](auto& d) { d.head_dim_v = -1; }, LONGATTN_ERROR_INVALID_ARGUMENT, "head_dim_v"},
      {[](auto& d) { d.scale = std::nanf(""); }, LONGATTN_ERROR_INVALID_ARGUMENT, "scale"},
      {[](auto& d) { d.softcap = -1; }, LONGATTN_ERROR_INVALID_ARGUMENT, "softcap"},
      {[](auto& d) { d.causal = 2; }, LONGATTN_ERROR_INVALID_ARGUMENT, "causal=2"},
      {[](auto& d) { d.algorithm = 9; }, LONGATTN_ERROR_UNKNOWN_ENUM, "algorithm=9"},
      {[](auto& d) { d.window_left = 5; }, LONGATTN_ERROR_INVALID_ARGUMENT, "window_left=5"},
      {[](auto& d) { d.hyper_lsh_bits = 17; }, LONGATTN_ERROR_INVALID_ARGUMENT, "hyper_lsh_bits=17"},
  };
  for (const Bad& b : bads) {
    longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
    d.n_q_heads = 4;
    d.n_kv_heads = 2;
    d.head_dim = 16;
    b.edit(d);
    longattn_attention* attn = nullptr;
    CHECK(longattn_attention_create(ctx.ctx, &d, &attn) == b.status);
    CHECK(attn == nullptr);
    CHECK_MESSAGE(std::string(ctx.error()).find(b.field) != std::string::npos, ctx.error());
  }
  longattn_attention* attn = nullptr;
  CHECK(longattn_attention_create(ctx.ctx, nullptr, &attn) == LONGATTN_ERROR_NULL_POINTER);
  CHECK(longattn_attention_create(nullptr, nullptr, &attn) == LONGATTN_ERROR_NULL_POINTER);
}

TEST_CASE("bad tensors are refused and the output is left untouched") {
  std::mt19937_64 rng(std::random_device{}());
  Context ctx(LONGATTN_BACKEND_CPU, 1);
  longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
  d.n_q_heads = 4; d.n_kv_heads = 2; d.head_dim = 16; d.causal = 1;
  Attention attn(ctx, d);
  REQUIRE(attn.status == LONGATTN_OK);
  HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 10, 4, 16);
  HostTensor k = random_tensor(rng, LONGATTN_DTYPE_F16, 1, 12, 2, 16);
  HostTensor v = random_tensor(rng, LONGATTN_DTYPE_F16, 1, 12, 2, 16);
  HostTensor out = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 10, 4, 16);
  HostTensor lse = random_tensor(rng, LONGATTN_DTYPE_F32, 1, 10, 4, 1);
  const std::vector<uint8_t> out_before = out.bytes, lse_before = lse.bytes;

  struct Bad {
    const char* what;
    std::function<void(longattn_forward_args&, longattn_tensor& q, longattn_tensor& k, longattn_tensor& v,
                       longattn_tensor& o, longattn_tensor& l)>
        edit;
    longattn_status status;
    const char* field;
  };
  const Bad bads[] = {
      {"null q", [](auto& a, auto&, auto&, auto&, auto&, auto&) { a.q = nullptr; }, LONGATTN_ERROR_NULL_POINTER, "q is NULL"},
      {"null data", [](auto&, auto&, auto& k, auto&, auto&, auto&) { k.data = nullptr; }, LONGATTN_ERROR_NULL_POINTER, "k.data"},
      {"dtype", [](auto&, auto& q, auto&, auto&, auto&, auto&) { q.dtype = 7; }, LONGATTN_ERROR_UNKNOWN_ENUM, "q.dtype=7"},
      {"memory", [](auto&, auto&, auto&, auto& v, auto&, auto&) { v.memory = 5; }, LONGATTN_ERROR_UNKNOWN_ENUM, "v.memory=5"},
      {"zero size", [](auto&, auto& q, auto&, auto&, auto&, auto&) { q.shape[1] = 0; }, LONGATTN_ERROR_INVALID_ARGUMENT, "q.shape[1]=0"},
      {"heads", [](auto&, auto&, auto& k, auto&, auto&, auto&) { k.shape[2] = 1; }, LONGATTN_ERROR_SHAPE_MISMATCH, "k.shape[2]=1"},
      {"head dim", [](auto&, auto&, auto&, auto& v, auto&, auto&) { v.shape[3] = 8; }, LONGATTN_ERROR_SHAPE_MISMATCH, "v.shape[3]=8"},
      {"kv tokens", [](auto&, auto&, auto&, auto& v, auto&, auto&) { v.shape[1] = 11; }, LONGATTN_ERROR_SHAPE_MISMATCH, "v.shape[1]=11"},
      {"batch", [](auto&, auto&, auto&, auto&, auto& o, auto&) { o.shape[0] = 2; }, LONGATTN_ERROR_SHAPE_MISMATCH, "out.shape[0]=2"},
      {"negative stride", [](auto&, auto& q, auto&, auto&, auto&, auto&) { q.strides[1] = -64; }, LONGATTN_ERROR_BAD_STRIDE, "q.strides[1]=-64"},
      {"overlap", [](auto&, auto&, auto& k, auto&, auto&, auto&) { k.strides[2] = 0; }, LONGATTN_ERROR_BAD_STRIDE, "k.strides[2]=0"},
      {"lse dtype", [](auto&, auto&, auto&, auto&, auto&, auto& l) { l.dtype = LONGATTN_DTYPE_F16; }, LONGATTN_ERROR_INVALID_ARGUMENT, "lse.dtype"},
      {"lse shape", [](auto&, auto&, auto&, auto&, auto&, auto& l) { l.shape[1] = 3; }, LONGATTN_ERROR_SHAPE_MISMATCH, "lse.shape[1]=3"},
      {"reserved", [](auto& a, auto&, auto&, auto&, auto&, auto&) { a.reserved0 = 1; }, LONGATTN_ERROR_INVALID_ARGUMENT, "reserved0"},
      {"struct size", [](auto& a, auto&, auto&, auto&, auto&, auto&) { a.struct_size = 8; }, LONGATTN_ERROR_STRUCT_SIZE, "struct_size=8"},
  };
  for (const Bad& b : bads) {
    longattn_tensor tq = q.t, tk = k.t, tv = v.t, to = out.t, tl = lse.t;
    longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
    a.q = &tq; a.k = &tk; a.v = &tv; a.out = &to; a.lse = &tl;
    b.edit(a, tq, tk, tv, to, tl);
    INFO(std::string(b.what));
    CHECK(longattn_attention_forward(ctx.ctx, attn.attn, &a) == b.status);
    CHECK_MESSAGE(std::string(ctx.error()).find(b.field) != std::string::npos, ctx.error());
    CHECK(out.bytes == out_before);
    CHECK(lse.bytes == lse_before);
  }
  // out aliasing an input
  longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
  longattn_tensor alias = q.t;
  a.q = &q.t; a.k = &k.t; a.v = &v.t; a.out = &alias;
  CHECK(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_ERROR_INVALID_ARGUMENT);
  CHECK(std::string(ctx.error()).find("overlaps") != std::string::npos);
  CHECK(longattn_attention_forward(ctx.ctx, attn.attn, nullptr) == LONGATTN_ERROR_NULL_POINTER);
  CHECK(longattn_attention_forward(ctx.ctx, nullptr, &a) == LONGATTN_ERROR_NULL_POINTER);
  CHECK(longattn_attention_forward(nullptr, attn.attn, &a) == LONGATTN_ERROR_NULL_POINTER);

  // bad merge inputs
  CHECK(longattn_merge(ctx.ctx, &out.t, &q.t, &out.t, &lse.t, &out.t, &lse.t) == LONGATTN_ERROR_SHAPE_MISMATCH);
  CHECK(out.bytes == out_before);
  CHECK(longattn_merge(ctx.ctx, &out.t, nullptr, &out.t, &lse.t, &out.t, &lse.t) == LONGATTN_ERROR_NULL_POINTER);
  CHECK(out.bytes == out_before);

  // and a good call still works afterwards
  a.out = &out.t;
  a.lse = &lse.t;
  CHECK(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_OK);
  CHECK(out.bytes != out_before);
}

TEST_CASE("tensor_contiguous fills strides") {
  longattn_tensor t;
  float buf[2 * 3 * 4 * 5];
  REQUIRE(longattn_tensor_contiguous(&t, buf, LONGATTN_DTYPE_F32, 2, 3, 4, 5) == LONGATTN_OK);
  CHECK(t.strides[3] == 4);
  CHECK(t.strides[2] == 20);
  CHECK(t.strides[1] == 80);
  CHECK(t.strides[0] == 240);
  CHECK(longattn_tensor_contiguous(&t, buf, 9, 1, 1, 1, 1) == LONGATTN_ERROR_UNKNOWN_ENUM);
  CHECK(longattn_tensor_contiguous(&t, buf, LONGATTN_DTYPE_F32, 1, 0, 1, 1) == LONGATTN_ERROR_INVALID_ARGUMENT);
  CHECK(longattn_tensor_contiguous(nullptr, buf, LONGATTN_DTYPE_F32, 1, 1, 1, 1) == LONGATTN_ERROR_NULL_POINTER);
}
