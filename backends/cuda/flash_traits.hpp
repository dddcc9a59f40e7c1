// Tile shapes of the tensor-core FLASH kernels, per head dim and variant.
//
//   prefill: kWarpsM warps stacked along the query rows, each owning kBlockM / kWarpsM rows
//            (1 or 2 m16 tiles), every warp sweeping the whole key tile of kBlockN keys.
//   decode:  one m16 row tile (the packed GQA rows of a few queries), kWarpsN warps splitting
//            each key tile; their softmax states are merged at the end (flash-decoding inside
//            the block), and key ranges are split across blocks (split-KV) then combined.
// Shared memory per block: Q kBlockM×d plus kStages stages of K and V kBlockN×d (16-bit
// elements); cp.async keeps kStages − 1 key tiles in flight while one is consumed.
#pragma once

#include <type_traits>

namespace longattn::cuda {

template <int kHeadDim, bool kDecode>
struct FlashTraits;

#define LONGATTN_FLASH_TRAITS(D, DECODE, BM, BN, WM, WN, STAGES, MIN_BLOCKS)              \
  template <>                                                                           \
  struct FlashTraits<D, DECODE> {                                                       \
    static constexpr int kBlockM = BM, kBlockN = BN, kWarpsM = WM, kWarpsN = WN;        \
    static constexpr int kStages = STAGES, kMinBlocksPerSm = MIN_BLOCKS;                \
  };

//                    head dim, decode, BM, BN, warps M, warps N, K/V stages, min blocks/SM
LONGATTN_FLASH_TRAITS(64, false, 128, 64, 4, 1, 3, 2)
LONGATTN_FLASH_TRAITS(80, false, 128, 64, 4, 1, 2, 2)
LONGATTN_FLASH_TRAITS(96, false, 128, 64, 4, 1, 2, 2)
LONGATTN_FLASH_TRAITS(128, false, 128, 64, 4, 1, 2, 2)
LONGATTN_FLASH_TRAITS(256, false, 64, 32, 4, 1, 2, 1)
LONGATTN_FLASH_TRAITS(64, true, 16, 128, 1, 4, 3, 2)
LONGATTN_FLASH_TRAITS(80, true, 16, 64, 1, 4, 3, 2)
LONGATTN_FLASH_TRAITS(96, true, 16, 64, 1, 4, 3, 2)
LONGATTN_FLASH_TRAITS(128, true, 16, 64, 1, 4, 3, 2)
LONGATTN_FLASH_TRAITS(256, true, 16, 32, 1, 2, 2, 2)

// The general variant's prefill tile (gathers, log-weights, groups: HYPER's blocks and sampled
// keys) where it differs from the plain one. Its calls have few key tiles per query tile (256
// keys), so the prologue's gathered Q rows and the epilogue weigh more than the products:
// d = 64 takes blocks of 64 rows (one m16 tile per warp, ~half the registers), three per SM.
template <int kHeadDim>
struct FlashGeneralTraits : FlashTraits<kHeadDim, false> {};
template <>
struct FlashGeneralTraits<64> {
  static constexpr int kBlockM = 64, kBlockN = 64, kWarpsM = 4, kWarpsN = 1;
  static constexpr int kStages = 3, kMinBlocksPerSm = 3;
};

// The traits of a kernel instance.
template <int kHeadDim, bool kDecode, bool kGeneral>
using FlashTraitsOf = std::conditional_t<kGeneral && !kDecode, FlashGeneralTraits<kHeadDim>, FlashTraits<kHeadDim, kDecode>>;
#undef LONGATTN_FLASH_TRAITS

// Hopper kernel (flash_wgmma.cuh): kBlockM / 64 warpgroups of 64 rows, kBlockN keys per tile,
// kStages K/V stages (≥ 3: K of tile t and V of tile t − 1 are read in one step); head dims that are multiples of 64 (128-byte swizzle slices).
template <int kHeadDim>
struct WgmmaTraits;
// kPingPong: the warpgroups take turns issuing their products (one's softmax under the other's).
#define LONGATTN_WGMMA_TRAITS(D, BM, BN, STAGES, PINGPONG)                                \
  template <>                                                                           \
  struct WgmmaTraits<D> {                                                               \
    static constexpr int kBlockM = BM, kBlockN = BN, kStages = STAGES;                  \
    static constexpr bool kPingPong = PINGPONG;                                         \
  };
//                    head dim, BM, BN, K/V stages, ping-pong
LONGATTN_WGMMA_TRAITS(64, 128, 128, 4, true)
LONGATTN_WGMMA_TRAITS(128, 128, 128, 3, true)
#undef LONGATTN_WGMMA_TRAITS
// Q tile + stages of K and V (16-bit), the query positions (i64), 1024 bytes to align the base.
template <int kHeadDim>
constexpr int wgmma_smem_bytes() {
  using T = WgmmaTraits<kHeadDim>;
  return (T::kBlockM + 2 * T::kStages * T::kBlockN) * kHeadDim * 2 + T::kBlockM * 8 + 1024;
}

// Shared-memory row pitch in elements: head dims that are multiples of 64 use an XOR swizzle of
// the 16-byte chunks (no padding); others pad each row by one chunk. Both keep ldmatrix and
// cp.async free of bank conflicts.
constexpr int flash_row_pitch(int head_dim) { return head_dim % 64 == 0 ? head_dim : head_dim + 8; }
// Q tile + `stages` stages of K and V tiles (16-bit elements), then the facts: per row the
// query position (i64), and with the general variant also the query group (i32) per row and, per
// key of every stage, the log-weight bias (f32), position (i64) and group (i32).
// Static shared memory of the kernels beside the dynamic part (tile index / kind per stage).
constexpr int kFlashStaticSmemBytes = 256;
constexpr int flash_tile_bytes(int head_dim, int block_m, int block_n, int stages) {
  return (block_m + 2 * stages * block_n) * flash_row_pitch(head_dim) * 2;
}
constexpr int flash_smem_bytes(int head_dim, int block_m, int block_n, int stages, bool general) {
  return flash_tile_bytes(head_dim, block_m, block_n, stages) + block_m * 8 +
         (general ? block_m * 4 + stages * block_n * (4 + 8 + 4) : 0);
}

// The same numbers at run time (host planning).
struct FlashTile {
  int block_m = 0, block_n = 0, smem_plain = 0, smem_general = 0;  // smem: dynamic + static bytes
};
inline bool flash_head_dim_supported(int d) {
  return d == 64 || d == 80 || d == 96 || d == 128 || d == 256;
}
template <int D, bool DECODE, bool GENERAL = false>
constexpr FlashTile flash_tile_of() {
  using T = FlashTraitsOf<D, DECODE, GENERAL>;
  return {T::kBlockM, T::kBlockN,
          flash_smem_bytes(D, T::kBlockM, T::kBlockN, T::kStages, false) + kFlashStaticSmemBytes,
          flash_smem_bytes(D, T::kBlockM, T::kBlockN, T::kStages, true) + kFlashStaticSmemBytes};
}
// The general variant's prefill tile (its smem_general applies).
inline FlashTile flash_general_tile(int head_dim) {
  switch (head_dim) {
    case 64: return flash_tile_of<64, false, true>();
    case 80: return flash_tile_of<80, false, true>();
    case 96: return flash_tile_of<96, false, true>();
    case 128: return flash_tile_of<128, false, true>();
    case 256: return flash_tile_of<256, false, true>();
    default: return {};
  }
}
inline FlashTile flash_tile(int head_dim, bool decode) {
  switch (head_dim) {
    case 64: return decode ? flash_tile_of<64, true>() : flash_tile_of<64, false>();
    case 80: return decode ? flash_tile_of<80, true>() : flash_tile_of<80, false>();
    case 96: return decode ? flash_tile_of<96, true>() : flash_tile_of<96, false>();
    case 128: return decode ? flash_tile_of<128, true>() : flash_tile_of<128, false>();
    case 256: return decode ? flash_tile_of<256, true>() : flash_tile_of<256, false>();
    default: return {};
  }
}

inline bool flash_wgmma_head_dim(int d) { return d == 64 || d == 128; }
template <int D>
constexpr FlashTile flash_wgmma_tile_of() {
  using T = WgmmaTraits<D>;
  return {T::kBlockM, T::kBlockN, wgmma_smem_bytes<D>() + kFlashStaticSmemBytes, 0};
}
inline FlashTile flash_wgmma_tile(int head_dim) {
  switch (head_dim) {
    case 64: return flash_wgmma_tile_of<64>();
    case 128: return flash_wgmma_tile_of<128>();
    default: return {};
  }
}

}  // namespace longattn::cuda
