// Host-side launchers of the attend kernels (one per kernel family), called by the dispatcher.
// Each launches on `stream` and throws Error on a launch failure.
#pragma once

#include <cuda_runtime_api.h>

#include "attend_params.hpp"
#include "extras_params.hpp"

namespace longattn::cuda {

// Generic fp32 kernel: every feature and the extras x, one warp per logical query row of p.seg's
// segments; with p.n_splits > 1 (one segment, no running state) it writes split-KV partials for
// launch_flash_combine instead of out / lse.
void launch_generic_attend(const AttendParams& p, const ExtrasParams& x, cudaStream_t stream);

// Warps of the generic kernel resident per multiprocessor on the current device (split-KV sizing).
int generic_warps_per_sm();

// Tensor-core FLASH kernel variants (flash_kernel.cuh):
//   prefill_plain    FLASH / SPARSE: affine positions, no gathers, log-weights, groups, softcap
//   prefill_general  every AttendArgs feature
//   decode_plain     few packed rows per (batch, KV head): one m16 row tile, key-split warps
//   prefill_wgmma    prefill_plain on Hopper's warpgroup MMA (flash_wgmma.cuh; head dims 64, 128;
//                    built when the architectures include sm_90, see LONGATTN_CUDA_WGMMA)
enum class FlashVariant { prefill_plain, prefill_general, decode_plain, prefill_wgmma };

// Launches the variant for head_dim = head_dim_v = kHeadDim, q/k/v all f16 (bf16 = false) or all
// bf16. p.seg.unit_begin counts query tiles of the variant's kBlockM packed rows; the grid is
// (tiles, batch·hkv, n_splits). Defined in flash_hdim<kHeadDim>.cu.
template <int kHeadDim>
void launch_flash(const AttendParams& p, FlashVariant variant, bool bf16, cudaStream_t stream);

// Resident blocks of the variant per multiprocessor on the current device (for split-KV sizing).
template <int kHeadDim>
int flash_blocks_per_sm(FlashVariant variant, bool bf16);

extern template void launch_flash<64>(const AttendParams&, FlashVariant, bool, cudaStream_t);
extern template void launch_flash<80>(const AttendParams&, FlashVariant, bool, cudaStream_t);
extern template void launch_flash<96>(const AttendParams&, FlashVariant, bool, cudaStream_t);
extern template void launch_flash<128>(const AttendParams&, FlashVariant, bool, cudaStream_t);
extern template void launch_flash<256>(const AttendParams&, FlashVariant, bool, cudaStream_t);
extern template int flash_blocks_per_sm<64>(FlashVariant, bool);
extern template int flash_blocks_per_sm<80>(FlashVariant, bool);
extern template int flash_blocks_per_sm<96>(FlashVariant, bool);
extern template int flash_blocks_per_sm<128>(FlashVariant, bool);
extern template int flash_blocks_per_sm<256>(FlashVariant, bool);

// The Hopper prefill kernel (variant prefill_wgmma), head_dim 64 or 128; defined in
// flash_wgmma_hdim<kHeadDim>.cu, compiled for sm_90a only.
template <int kHeadDim>
void launch_flash_wgmma(const AttendParams& p, bool bf16, cudaStream_t stream);
template <int kHeadDim>
int flash_wgmma_blocks_per_sm(bool bf16);
extern template void launch_flash_wgmma<64>(const AttendParams&, bool, cudaStream_t);
extern template void launch_flash_wgmma<128>(const AttendParams&, bool, cudaStream_t);
extern template int flash_wgmma_blocks_per_sm<64>(bool);
extern template int flash_wgmma_blocks_per_sm<128>(bool);

// Split-KV combine: merges p.n_splits partials (p.part_o, p.part_lse) of the FLASH or the generic
// kernel into out / lse, adding the per-query-head sinks (nullptr: none) to the denominator.
void launch_flash_combine(const AttendParams& p, const float* sinks, cudaStream_t stream);

}  // namespace longattn::cuda
