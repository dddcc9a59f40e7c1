// The ggml adapter: the same inputs laid out the ggml way (ne/nb, heads outside tokens, padded
// mask rows, permuted result) and the plain way give bit-identical results.
#include "common.hpp"
#include "ggml_adapter/longattn_ggml.h"
#include "quant.hpp"

using namespace test;

namespace {

// Copies a plain [B][n][H][D] tensor into ggml's contiguous [D, n, H, B] order (heads outside tokens).
std::vector<uint8_t> to_ggml_layout(const HostTensor& t, longattn_ggml_tensor& g, int type) {
  const int64_t B = t.t.shape[0], n = t.t.shape[1], H = t.t.shape[2], D = t.t.shape[3];
  const size_t es = longattn_dtype_size(t.t.dtype);
  std::vector<uint8_t> bytes(size_t(B * n * H * D) * es);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t h = 0; h < H; ++h)
        std::memcpy(&bytes[size_t(((b * H + h) * n + i) * D) * es], t.at(b, i, h, 0), size_t(D) * es);
  g.data = bytes.data();
  g.type = type;
  g.ne[0] = D; g.ne[1] = n; g.ne[2] = H; g.ne[3] = B;
  g.nb[0] = es; g.nb[1] = es * size_t(D); g.nb[2] = es * size_t(D * n); g.nb[3] = es * size_t(D * n * H);
  return bytes;
}

}  // namespace

TEST_CASE("ggml layout through the adapter equals the plain layout, bit for bit") {
  std::mt19937_64 rng(std::random_device{}());
  Context ctx(LONGATTN_BACKEND_CPU, 2);
  const int64_t B = 2, nq = 9, nk = 70, H = 8, Hkv = 2, D = 64, pad = 16;
  for (float max_bias : {0.0f, 8.0f}) {
    HostTensor q = random_tensor(rng, LONGATTN_DTYPE_F32, B, nq, H, D);
    HostTensor k = random_tensor(rng, LONGATTN_DTYPE_F16, B, nk, Hkv, D);
    HostTensor v = random_tensor(rng, LONGATTN_DTYPE_F16, B, nk, Hkv, D);
    // causal mask as a runtime writes it (−|i − j| for ALiBi), rows padded to a multiple of 16
    HostTensor mask(LONGATTN_DTYPE_F16, 1, pad, 1, nk);
    mask.each([&](int64_t, int64_t i, int64_t, int64_t j) {
      const int64_t qp = nk - nq + i;
      mask.set(0, i, 0, j, j > qp ? -std::numeric_limits<float>::infinity() : (max_bias > 0 ? -float(qp - j) : 0.0f));
    });
    const float sinks[H] = {0.1f, -0.3f, 1.0f, 0.0f, 2.0f, -1.0f, 0.5f, 0.25f};
    const float scale = 0.125f, softcap = 20.0f;

    // plain layout through the C API
    HostTensor out_plain(LONGATTN_DTYPE_F32, B, nq, H, D);
    longattn_attention_desc d = LONGATTN_ATTENTION_DESC_INIT;
    d.n_q_heads = H; d.n_kv_heads = Hkv; d.head_dim = D; d.scale = scale; d.softcap = softcap; d.max_bias = max_bias;
    Attention attn(ctx, d);
    REQUIRE(attn.status == LONGATTN_OK);
    longattn_tensor mask_rows = mask.t;
    mask_rows.shape[1] = nq;
    longattn_forward_args a = LONGATTN_FORWARD_ARGS_INIT;
    a.q = &q.t; a.k = &k.t; a.v = &v.t; a.out = &out_plain.t; a.mask = &mask_rows; a.sinks = sinks; a.q_pos0 = 0;
    REQUIRE(longattn_attention_forward(ctx.ctx, attn.attn, &a) == LONGATTN_OK);

    // ggml layout through the adapter
    longattn_ggml_tensor gq, gk, gv, gm, gd;
    auto bq = to_ggml_layout(q, gq, LONGATTN_GGML_TYPE_F32);
    auto bk = to_ggml_layout(k, gk, LONGATTN_GGML_TYPE_F16);
    auto bv = to_ggml_layout(v, gv, LONGATTN_GGML_TYPE_F16);
    gm.data = mask.t.data; gm.type = LONGATTN_GGML_TYPE_F16;
    gm.ne[0] = nk; gm.ne[1] = pad; gm.ne[2] = 1; gm.ne[3] = 1;
    gm.nb[0] = 2; gm.nb[1] = size_t(2 * nk); gm.nb[2] = gm.nb[3] = size_t(2 * nk * pad);
    std::vector<float> dst(size_t(B * nq * H * D), std::nanf(""));
    gd.data = dst.data(); gd.type = LONGATTN_GGML_TYPE_F32;
    gd.ne[0] = D; gd.ne[1] = H; gd.ne[2] = nq; gd.ne[3] = B;
    gd.nb[0] = 4; gd.nb[1] = size_t(4 * D); gd.nb[2] = size_t(4 * D * H); gd.nb[3] = size_t(4 * D * H * nq);
    REQUIRE_MESSAGE(longattn_ggml_flash_attn_ext(ctx.ctx, &gq, &gk, &gv, &gm, scale, max_bias, softcap, sinks, &gd) ==
                        LONGATTN_OK,
                    ctx.error());
    CHECK(std::memcmp(dst.data(), out_plain.bytes.data(), dst.size() * sizeof(float)) == 0);

    // and both agree with the float64 reference
    longattn::ReferenceExtras rex;
    rex.mask = View{};
    HostTensor mview = mask;
    mview.t.shape[1] = nq;
    rex.mask = mview.view();
    const AttentionConfig cfg = config_of(d);
    rex.slopes = cfg.alibi_slopes.empty() ? nullptr : cfg.alibi_slopes.data();
    rex.sinks = sinks;
    std::vector<double> ref, ref_lse;
    longattn::reference_attention(cfg, q.view(), k.view(), v.view(), 0, ref, ref_lse, {}, rex);
    CHECK(compare(out_plain, ref).rel < 2e-5);
  }
}

TEST_CASE("adapter reads a q8_0 cache and reports unknown types") {
  Context ctx(LONGATTN_BACKEND_CPU, 1);
  longattn_ggml_tensor t{};
  t.type = 77;
  CHECK(longattn_ggml_dtype(t.type) == -1);
  CHECK(longattn_ggml_dtype(LONGATTN_GGML_TYPE_Q8_0) == LONGATTN_DTYPE_Q8_0);
  // q8_0 K/V [32, 4, 1, 1] and an f32 query [32, 1, 1, 1]
  std::vector<float> qv(32), kf(4 * 32);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> dist;
  for (float& x : qv) x = dist(rng);
  for (float& x : kf) x = dist(rng);
  std::vector<uint8_t> kq(4 * 34);
  for (int i = 0; i < 4; ++i) longattn::quantize_row(&kf[size_t(i) * 32], LONGATTN_DTYPE_Q8_0, 32, &kq[size_t(i) * 34], 34);
  longattn_ggml_tensor gq{qv.data(), LONGATTN_GGML_TYPE_F32, {32, 1, 1, 1}, {4, 128, 128, 128}};
  longattn_ggml_tensor gk{kq.data(), LONGATTN_GGML_TYPE_Q8_0, {32, 4, 1, 1}, {34, 34, 136, 136}};
  std::vector<float> out(32, std::nanf(""));
  longattn_ggml_tensor gd{out.data(), LONGATTN_GGML_TYPE_F32, {32, 1, 1, 1}, {4, 128, 128, 128}};
  REQUIRE(longattn_ggml_flash_attn_ext(ctx.ctx, &gq, &gk, &gk, nullptr, 0.2f, 0.0f, 0.0f, nullptr, &gd) == LONGATTN_OK);
  // reference by hand on the dequantised keys (V = K here)
  double w[4], sum = 0;
  std::vector<float> kd(4 * 32);
  for (int i = 0; i < 4; ++i) longattn::dequant_row(&kq[size_t(i) * 34], LONGATTN_DTYPE_Q8_0, 32, 34, &kd[size_t(i) * 32]);
  for (int i = 0; i < 4; ++i) {
    double s = 0;
    for (int c = 0; c < 32; ++c) s += double(qv[size_t(c)]) * kd[size_t(i * 32 + c)];
    w[i] = std::exp(0.2 * s);
    sum += w[i];
  }
  for (int c = 0; c < 32; ++c) {
    double o = 0;
    for (int i = 0; i < 4; ++i) o += w[i] / sum * kd[size_t(i * 32 + c)];
    CHECK(out[size_t(c)] == doctest::Approx(o).epsilon(1e-5));
  }
  gq.type = 77;
  CHECK(longattn_ggml_flash_attn_ext(ctx.ctx, &gq, &gk, &gk, nullptr, 0.2f, 0.0f, 0.0f, nullptr, &gd) ==
        LONGATTN_ERROR_UNKNOWN_ENUM);
}
