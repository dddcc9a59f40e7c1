// Ring mode on Vulkan: N virtual ranks on the first Vulkan device (lavapipe in CI), blocks moved
// by the host-staged transport, against the float64 reference and a plain Vulkan context; decode
// over replicated queries (partials merged); the transports Vulkan does not have are refused.
// The Khronos validation layer is on (LONGATTN_VULKAN_VALIDATION=1 unless the environment
// decides) and any message it reports fails the test case.
#include <cstdlib>

#include "backend.hpp"
#include "common.hpp"
#include "ring_test_util.hpp"
#include "vulkan_test_util.hpp"

#if LONGATTN_HAVE_VULKAN


using namespace test;

namespace {

// A Vulkan context on device 0: a ring of `ranks` virtual ranks (0: a plain context).
struct VulkanContext {
  longattn_context* ctx = nullptr;
  longattn_status status = LONGATTN_OK;
  VulkanContext(int32_t ranks, int32_t layout, int32_t transport = LONGATTN_RING_TRANSPORT_AUTO) {
    longattn_context_options o = LONGATTN_CONTEXT_OPTIONS_INIT;
    o.backend = LONGATTN_BACKEND_VULKAN;
    o.device_index = 0;
    o.ring_devices = ranks;
    o.ring_layout = layout;
    o.ring_transport = transport;
    if (ranks > 0) o.flags |= LONGATTN_CONTEXT_RING_VIRTUAL;
    status = longattn_context_create(&o, &ctx);
  }
  ~VulkanContext() { longattn_context_destroy(ctx); }
};

void check_ring(const RingCase& c, int32_t ranks, int32_t layout, uint64_t seed) {
  INFO(describe(c), " ranks=", ranks, " layout=", layout);
  ValidationGuard guard;
  const Inputs in(c, seed);
  VulkanContext ring(ranks, layout);
  REQUIRE_MESSAGE(ring.status == LONGATTN_OK, longattn_last_create_error());
  CHECK(longattn_context_ring_devices(ring.ctx) == ranks);
  CHECK(longattn_context_ring_transport(ring.ctx) == LONGATTN_RING_TRANSPORT_HOST_STAGED);
  const Outputs got = forward(ring.ctx, c, in);
  REQUIRE_MESSAGE(got.status == LONGATTN_OK, got.error);
  check_against_reference(c, in, got, tolerance(c.ot), 1e-4);
  VulkanContext plain(0, LONGATTN_RING_LAYOUT_AUTO);
  REQUIRE(plain.status == LONGATTN_OK);
  const Outputs want = forward(plain.ctx, c, in);
  REQUIRE(want.status == LONGATTN_OK);
  const MaxDiff d = max_diff(got, want);
  CHECK(d.lse_mismatch == 0);
  CHECK(d.lse < 2e-5);
  CHECK(d.o < (c.ot == LONGATTN_DTYPE_F32 ? 2e-5 : 2e-3));
}

}  // namespace

TEST_CASE("vulkan ring: FLASH and SPARSE over virtual ranks equal the reference and a plain context") {
  if (!have_vulkan("Vulkan ring tests")) return;
  uint64_t seed = 7;
  for (int32_t N : {1, 2, 3})
    for (bool causal : {false, true})
      for (int32_t layout : {LONGATTN_RING_LAYOUT_CONTIGUOUS, LONGATTN_RING_LAYOUT_ZIGZAG}) {
        RingCase c;
        c.n_q = c.n_k = 37 + 11 * N;  // not divisible by 2N
        c.causal = causal;
        c.hq = 4;
        c.hkv = seed % 2 ? 1 : 4;  // GQA 4 or none
        c.d = c.dv = 32;
        c.kvt = LONGATTN_DTYPE_F16;
        check_ring(c, N, layout, seed++);
      }
  RingCase s;  // a window and globals: steps the window rules out are skipped
  s.algo = LONGATTN_ALGORITHM_SPARSE;
  s.n_q = s.n_k = 90;
  s.causal = true;
  s.wl = 12;
  s.g = 3;
  s.hq = 4;
  s.hkv = 2;
  check_ring(s, 3, LONGATTN_RING_LAYOUT_ZIGZAG, 99);
}

TEST_CASE("vulkan ring: decode with a few query rows merges the ranks' partials") {
  if (!have_vulkan("Vulkan ring tests")) return;
  RingCase c;
  c.n_q = 2;
  c.n_k = 150;
  c.causal = true;
  c.hq = 8;
  c.hkv = 2;
  c.d = c.dv = 64;
  c.kvt = LONGATTN_DTYPE_BF16;
  c.ot = LONGATTN_DTYPE_F16;
  check_ring(c, 2, LONGATTN_RING_LAYOUT_AUTO, 5);
}

TEST_CASE("vulkan ring: transports Vulkan does not have are refused with a message") {
  if (!have_vulkan("Vulkan ring tests")) return;
  ValidationGuard guard;
  for (int32_t t : {LONGATTN_RING_TRANSPORT_PEER, LONGATTN_RING_TRANSPORT_NCCL}) {
    VulkanContext ring(2, LONGATTN_RING_LAYOUT_AUTO, t);
    CHECK(ring.status == LONGATTN_ERROR_UNSUPPORTED);
    CHECK(ring.ctx == nullptr);
    CHECK(std::string(longattn_last_create_error()).find("ring_transport") != std::string::npos);
  }
  VulkanContext staged(2, LONGATTN_RING_LAYOUT_AUTO, LONGATTN_RING_TRANSPORT_HOST_STAGED);
  CHECK(staged.status == LONGATTN_OK);
}

#else

TEST_CASE("vulkan ring: backend not compiled in") { MESSAGE("LONGATTN_HAVE_VULKAN is off: Vulkan ring tests skipped"); }

#endif
