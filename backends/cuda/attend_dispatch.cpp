// CUDA `attend`: picks the kernel (tensor-core FLASH or generic fp32), fills the launch
// parameters, splits segment tables that exceed one launch, and decides split-KV (many blocks
// over the keys of few query tiles, then a combine kernel). Calls with ggml-style extras (an
// additive mask, ALiBi, sinks, Q8_0 / Q4_0 K/V) always take the generic kernel.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "attend_launch.hpp"
#include "cuda_check.hpp"
#include "cuda_internal.hpp"
#include "flash_traits.hpp"
#include "quant.hpp"

namespace longattn::cuda {
namespace {

constexpr float kLog2eHost = 1.4426950408889634f;
constexpr int kMaxSplits = 256;
constexpr int kMinTilesPerSplit = 4;
constexpr int64_t kGenericMinKeysPerSplit = 256;  // generic split-KV: keys each split walks at least

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// A 16-bit view the FLASH kernels can read with 16-byte cp.async: contiguous dim axis and
// 16-byte aligned rows.
bool flash_input_ok(const View& v, longattn_dtype dtype) {
  return v.dtype == dtype && v.strides[3] == 2 && aligned16(v.data) && v.strides[0] % 16 == 0 &&
         v.strides[1] % 16 == 0 && v.strides[2] % 16 == 0;
}

// The output view the FLASH epilogue writes in pairs of elements.
bool flash_output_ok(const View& v) {
  const int64_t es = int64_t(longattn_dtype_size(v.dtype));
  const int64_t align = 2 * es;
  return v.strides[3] == es && reinterpret_cast<uintptr_t>(v.data) % uintptr_t(align) == 0 &&
         v.strides[0] % align == 0 && v.strides[1] % align == 0 && v.strides[2] % align == 0;
}

void copy_strides(int64_t (&dst)[4], const View& v) {
  for (int x = 0; x < 4; ++x) dst[x] = v.strides[x];
}

AttendParams base_params(const AttendArgs& a) {
  AttendParams p;
  p.q = static_cast<const char*>(a.q.data);
  p.k = static_cast<const char*>(a.k.data);
  p.v = static_cast<const char*>(a.v.data);
  p.out = static_cast<char*>(a.out.data);
  p.lse = a.state ? nullptr : static_cast<char*>(a.lse.data);
  copy_strides(p.q_stride, a.q);
  copy_strides(p.k_stride, a.k);
  copy_strides(p.v_stride, a.v);
  copy_strides(p.o_stride, a.out);
  copy_strides(p.lse_stride, a.lse);
  p.q_dtype = a.q.dtype;
  p.k_dtype = a.k.dtype;
  p.v_dtype = a.v.dtype;
  p.o_dtype = a.out.dtype;
  p.batch = int32_t(a.batch);
  p.hq = a.n_q_heads;
  p.hkv = a.n_kv_heads;
  p.group = a.n_q_heads / a.n_kv_heads;
  p.d = a.head_dim;
  p.dv = a.head_dim_v;
  p.n_q = a.n_q;
  p.n_k = a.n_k;
  p.scale_log2 = a.scale * kLog2eHost;
  p.softcap_in = a.softcap > 0.0f ? a.scale / a.softcap : 0.0f;
  p.softcap_log2 = a.softcap * kLog2eHost;
  p.mask = a.mask;
  p.mask_full = a.mask.is_full();
  p.affine = !a.q_rows && !a.k_rows && !a.q_pos && !a.k_pos;
  p.q_pos0 = a.q_pos0;
  p.k_pos0 = a.k_pos0;
  p.q_pos = a.q_pos;
  p.k_pos = a.k_pos;
  p.q_rows = a.q_rows;
  p.k_rows = a.k_rows;
  p.key_logw = a.key_logw;
  p.q_group = a.q_group;
  p.k_group = a.k_group;
  p.st_m = a.state ? a.state->m : nullptr;
  p.st_l = a.state ? a.state->l : nullptr;
  p.st_acc = a.state ? a.state->acc : nullptr;
  p.part_o = nullptr;
  p.part_lse = nullptr;
  p.n_splits = 1;
  p.packed_rows = a.n_q * p.group;
  return p;
}

// Whether this build holds the Hopper kernel and the current device runs it (compute capability
// 9.0 exactly: sm_90a code runs nowhere else). LONGATTN_CUDA_WGMMA=0 in the environment turns it
// off (the mma.sync kernel then serves every prefill).
bool wgmma_usable(const DeviceProps& dev, int head_dim) {
#if defined(LONGATTN_CUDA_WGMMA)
  static const bool enabled = [] {
    const char* e = std::getenv("LONGATTN_CUDA_WGMMA");
    return !(e && std::string(e) == "0");
  }();
  return enabled && dev.cc_major == 9 && dev.cc_minor == 0 && flash_wgmma_head_dim(head_dim);
#else
  (void)dev, (void)head_dim;
  return false;
#endif
}

void launch_flash_dim(const AttendParams& p, FlashVariant variant, bool bf16, cudaStream_t stream) {
#if defined(LONGATTN_CUDA_WGMMA)
  if (variant == FlashVariant::prefill_wgmma) {
    if (p.d == 64) return launch_flash_wgmma<64>(p, bf16, stream);
    if (p.d == 128) return launch_flash_wgmma<128>(p, bf16, stream);
  }
#endif
  switch (p.d) {
    case 64: launch_flash<64>(p, variant, bf16, stream); break;
    case 80: launch_flash<80>(p, variant, bf16, stream); break;
    case 96: launch_flash<96>(p, variant, bf16, stream); break;
    case 128: launch_flash<128>(p, variant, bf16, stream); break;
    case 256: launch_flash<256>(p, variant, bf16, stream); break;
    default:
      throw Error(LONGATTN_ERROR_INTERNAL, "launch_flash_dim: no FLASH instance for head_dim " + std::to_string(p.d));
  }
}

// The extras of a call in kernel form: device pointers, the additive mask's broadcast axes as
// stride 0.
ExtrasParams extras_params(const AttendArgs& a) {
  ExtrasParams x;
  if (a.add_mask.data) {
    const View& mk = a.add_mask;
    x.mask = static_cast<const char*>(mk.data);
    x.mask_dtype = mk.dtype;
    x.mask_stride[0] = mk.shape[0] == 1 ? 0 : mk.strides[0];
    x.mask_stride[1] = mk.strides[1];
    x.mask_stride[2] = mk.shape[2] == 1 ? 0 : mk.strides[2];
    x.mask_stride[3] = mk.strides[3];
  }
  x.alibi_slopes = a.alibi_slopes;
  x.sinks = a.sinks;
  return x;
}

int flash_blocks_per_sm_dim(int head_dim, FlashVariant variant, bool bf16) {
#if defined(LONGATTN_CUDA_WGMMA)
  if (variant == FlashVariant::prefill_wgmma) {
    if (head_dim == 64) return flash_wgmma_blocks_per_sm<64>(bf16);
    if (head_dim == 128) return flash_wgmma_blocks_per_sm<128>(bf16);
  }
#endif
  switch (head_dim) {
    case 64: return flash_blocks_per_sm<64>(variant, bf16);
    case 80: return flash_blocks_per_sm<80>(variant, bf16);
    case 96: return flash_blocks_per_sm<96>(variant, bf16);
    case 128: return flash_blocks_per_sm<128>(variant, bf16);
    case 256: return flash_blocks_per_sm<256>(variant, bf16);
    default: return 1;
  }
}

}  // namespace

void attend(const AttendArgs& a, const DeviceProps& dev, ScratchPool& scratch, cudaStream_t stream) {
  if (a.batch == 0 || a.n_q == 0 || a.n_q_heads == 0) return;
  if (shared_tail_keys(a) > 0)  // supports_tail_keys() is false: the planner makes two calls instead
    throw Error(LONGATTN_ERROR_INTERNAL, "CUDA: attend does not take shared tail keys");
  AttendParams p = base_params(a);
  const ExtrasParams extras = extras_params(a);
  const bool has_extras = extras.any() || is_block_dtype(a.k.dtype) || is_block_dtype(a.v.dtype);

  // segments (host memory): n + 1 offsets each
  std::vector<int64_t> q_seg, k_seg;
  if (a.n_segments > 0) {
    q_seg.assign(a.q_seg, a.q_seg + a.n_segments + 1);
    k_seg.assign(a.k_seg, a.k_seg + a.n_segments + 1);
  } else {
    q_seg = {0, a.n_q};
    k_seg = {0, a.n_k};
  }
  const int n_seg = int(q_seg.size()) - 1;
  int64_t max_seg_rows = 0;
  for (int s = 0; s < n_seg; ++s) max_seg_rows = std::max(max_seg_rows, q_seg[s + 1] - q_seg[s]);

  // kernel choice: a FLASH variant when the inputs suit the tensor cores and its tiles fit the
  // device's shared memory, else the generic kernel
  const longattn_dtype dt = a.q.dtype;
  const bool half_inputs = dt == LONGATTN_DTYPE_F16 || dt == LONGATTN_DTYPE_BF16;
  constexpr int64_t kMaxGridY = 65535;  // the FLASH grid's y axis is batch · hkv
  const bool indices_32bit = a.n_k < (int64_t(1) << 31) && a.n_q * p.group < (int64_t(1) << 31) &&
                             a.batch * a.n_kv_heads <= kMaxGridY;
  const bool flash_ok = !has_extras && half_inputs && a.head_dim == a.head_dim_v &&
                        flash_head_dim_supported(a.head_dim) && flash_input_ok(a.q, dt) && flash_input_ok(a.k, dt) &&
                        flash_input_ok(a.v, dt) &&
                        (a.state || flash_output_ok(a.out)) && indices_32bit;
  const bool general = !p.affine || a.key_logw || (a.q_group && a.k_group) || a.softcap > 0.0f ||
                       !(a.scale > 0.0f);
  bool flash = false;
  FlashVariant variant = FlashVariant::prefill_plain;
  FlashTile tile;
  if (flash_ok) {
    const FlashTile decode_tile = flash_tile(a.head_dim, true);
    const FlashTile prefill_tile = flash_tile(a.head_dim, false);
    if (!general && max_seg_rows * p.group <= decode_tile.block_m && decode_tile.smem_plain <= dev.max_smem_optin) {
      flash = true, variant = FlashVariant::decode_plain, tile = decode_tile;
    } else if (!general && wgmma_usable(dev, a.head_dim) &&
               flash_wgmma_tile(a.head_dim).smem_plain <= dev.max_smem_optin) {
      flash = true, variant = FlashVariant::prefill_wgmma, tile = flash_wgmma_tile(a.head_dim);
    } else if (!general && prefill_tile.smem_plain <= dev.max_smem_optin) {
      flash = true, variant = FlashVariant::prefill_plain, tile = prefill_tile;
    } else if (general && flash_general_tile(a.head_dim).smem_general <= dev.max_smem_optin) {
      flash = true, variant = FlashVariant::prefill_general, tile = flash_general_tile(a.head_dim);
    }
  }

  // split-KV: few query tiles over many keys (decode, short chunks against a long cache). The
  // splits fill exactly one wave of resident blocks, so no multiprocessor idles in a tail.
  const bool one_whole_segment = n_seg == 1 && q_seg[0] == 0 && q_seg[1] == a.n_q;
  if (flash && one_whole_segment && !a.state) {
    const int64_t tiles = (max_seg_rows * p.group + tile.block_m - 1) / tile.block_m;
    const int64_t blocks = tiles * a.batch * a.n_kv_heads;
    const int64_t key_tiles = (a.n_k + tile.block_n - 1) / tile.block_n;
    if (blocks < dev.sm_count && key_tiles >= 2 * kMinTilesPerSplit) {
      const int64_t wave = int64_t(dev.sm_count) * flash_blocks_per_sm_dim(a.head_dim, variant, dt == LONGATTN_DTYPE_BF16);
      int64_t splits = std::max<int64_t>(wave / blocks, 1);
      splits = std::min<int64_t>({splits, key_tiles / kMinTilesPerSplit, kMaxSplits});
      p.n_splits = int32_t(std::max<int64_t>(splits, 1));
    }
  }
  // generic split-KV: fewer row warps than fill the device, each over many keys; the splits fill
  // about one wave of resident warps
  if (!flash && one_whole_segment && !a.state && indices_32bit) {
    const int64_t warps = a.n_q * a.batch * a.n_q_heads;
    const int64_t wave = int64_t(dev.sm_count) * generic_warps_per_sm();
    if (2 * warps <= wave && a.n_k >= 2 * kGenericMinKeysPerSplit) {
      const int64_t splits = std::min<int64_t>({wave / warps, a.n_k / kGenericMinKeysPerSplit, kMaxSplits});
      p.n_splits = int32_t(std::max<int64_t>(splits, 1));
    }
  }
  if (p.n_splits > 1) {
    const size_t rows = size_t(p.n_splits) * size_t(a.batch) * size_t(a.n_kv_heads) * size_t(p.packed_rows);
    float* buf = static_cast<float*>(scratch.get(kSlotSplitPartials, rows * size_t(a.head_dim_v + 1) * sizeof(float)));
    p.part_lse = buf;
    p.part_o = buf + rows;
  }

  // one launch per chunk of at most SegmentTable::kMax segments
  for (int s0 = 0; s0 < n_seg; s0 += SegmentTable::kMax) {
    const int n = std::min(SegmentTable::kMax, n_seg - s0);
    p.seg.n = n;
    int32_t units = 0;
    for (int s = 0; s <= n; ++s) {
      p.seg.q_begin[s] = q_seg[size_t(s0 + s)];
      p.seg.k_begin[s] = k_seg[size_t(s0 + s)];
      p.seg.unit_begin[s] = units;
      if (s < n && flash) {
        const int64_t rows = (q_seg[size_t(s0 + s + 1)] - q_seg[size_t(s0 + s)]) * p.group;
        units += int32_t((rows + tile.block_m - 1) / tile.block_m);
      }
    }
    if (flash)
      launch_flash_dim(p, variant, dt == LONGATTN_DTYPE_BF16, stream);
    else
      launch_generic_attend(p, extras, stream);
  }
  if (p.n_splits > 1) launch_flash_combine(p, extras.sinks, stream);
}

}  // namespace longattn::cuda
