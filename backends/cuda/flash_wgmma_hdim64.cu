// Hopper FLASH prefill instances for head dim 64 (f16 and bf16). Compiled for sm_90a only (wgmma).
#include "flash_wgmma.cuh"

namespace longattn::cuda {
template void launch_flash_wgmma<64>(const AttendParams&, bool, cudaStream_t);
template int flash_wgmma_blocks_per_sm<64>(bool);
}  // namespace longattn::cuda
