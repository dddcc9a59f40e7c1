// FLASH kernel instances for head dim 64 (f16 and bf16; plain and general prefill, decode). One head dim
// per translation unit so the instances compile in parallel.
#include "flash_kernel.cuh"

namespace longattn::cuda {
template void launch_flash<64>(const AttendParams&, FlashVariant, bool, cudaStream_t);
template int flash_blocks_per_sm<64>(FlashVariant, bool);
}  // namespace longattn::cuda
