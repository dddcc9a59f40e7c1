// Hopper FLASH prefill instances for head dim 128 (f16 and bf16). Compiled for sm_90a only (wgmma).
#include "flash_wgmma.cuh"

namespace longattn::cuda {
template void launch_flash_wgmma<128>(const AttendParams&, bool, cudaStream_t);
template int flash_wgmma_blocks_per_sm<128>(bool);
}  // namespace longattn::cuda
