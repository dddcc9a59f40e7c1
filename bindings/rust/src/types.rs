//! The C enums as transparent integer newtypes: any value is representable, so a backend or dtype
//! reported by a newer library is never undefined behaviour, and the known values are constants.

use crate::sys;

/// A compute backend (`longattn_backend`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backend(pub i32);

impl Backend {
    /// CUDA if present, else a real Vulkan GPU, else the CPU.
    pub const AUTO: Backend = Backend(sys::LONGATTN_BACKEND_AUTO);
    pub const CPU: Backend = Backend(sys::LONGATTN_BACKEND_CPU);
    pub const CUDA: Backend = Backend(sys::LONGATTN_BACKEND_CUDA);
    pub const VULKAN: Backend = Backend(sys::LONGATTN_BACKEND_VULKAN);

    /// A short lowercase name ("cpu"), or "unknown".
    pub fn name(self) -> &'static str {
        match self {
            Backend::AUTO => "auto",
            Backend::CPU => "cpu",
            Backend::CUDA => "cuda",
            Backend::VULKAN => "vulkan",
            _ => "unknown",
        }
    }
}

/// An element type (`longattn_dtype`). f16 and bf16 data are passed as their `u16` bit patterns;
/// the block formats Q8_0 and Q4_0 (K and V only) as the raw bytes of their blocks (`u8`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DType(pub i32);

impl DType {
    pub const F32: DType = DType(sys::LONGATTN_DTYPE_F32);
    /// IEEE binary16, stored as `u16` bits.
    pub const F16: DType = DType(sys::LONGATTN_DTYPE_F16);
    /// bfloat16, stored as `u16` bits.
    pub const BF16: DType = DType(sys::LONGATTN_DTYPE_BF16);
    /// ggml's Q8_0 blocks of 32 values: fp16 scale d, then 32 int8 q; value = d·q (34 bytes).
    pub const Q8_0: DType = DType(sys::LONGATTN_DTYPE_Q8_0);
    /// ggml's Q4_0 blocks of 32 values: fp16 scale d, then 16 bytes of nibbles; value j < 16 is
    /// d·((low nibble of byte j) − 8), value j + 16 is d·((high nibble of byte j) − 8) (18 bytes).
    pub const Q4_0: DType = DType(sys::LONGATTN_DTYPE_Q4_0);

    /// Bytes per element, or per block of `block_elems()` values for the block formats, as this
    /// crate knows it (`longattn_dtype_size`; 0 for an unknown dtype).
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Q8_0 => 34,
            DType::Q4_0 => 18,
            _ => 0,
        }
    }

    /// Values per block: 32 for Q8_0 / Q4_0, 1 for the float types, 0 for an unknown dtype
    /// (`longattn_dtype_block_elems`).
    pub fn block_elems(self) -> usize {
        match self {
            DType::F32 | DType::F16 | DType::BF16 => 1,
            DType::Q8_0 | DType::Q4_0 => 32,
            _ => 0,
        }
    }

    /// Whether this is one of ggml's block formats (Q8_0, Q4_0).
    pub fn is_block(self) -> bool {
        self.block_elems() > 1
    }
}

/// An attention algorithm (`longattn_algorithm`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Algorithm(pub i32);

impl Algorithm {
    /// Exact attention, tiled online softmax.
    pub const FLASH: Algorithm = Algorithm(sys::LONGATTN_ALGORITHM_FLASH);
    /// Exact attention under a band + global-token mask.
    pub const SPARSE: Algorithm = Algorithm(sys::LONGATTN_ALGORITHM_SPARSE);
    /// HyperAttention: LSH blocks + sampled columns (approximate).
    pub const HYPER: Algorithm = Algorithm(sys::LONGATTN_ALGORITHM_HYPER);
}

/// Which tokens of a sequence each rank of a ring holds (`longattn_ring_layout`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RingLayout(pub i32);

impl RingLayout {
    /// Whole tensors: ZIGZAG for causal attention without a left window, else CONTIGUOUS.
    pub const AUTO: RingLayout = RingLayout(sys::LONGATTN_RING_LAYOUT_AUTO);
    /// Rank r holds tokens `[r·n/N, (r+1)·n/N)`.
    pub const CONTIGUOUS: RingLayout = RingLayout(sys::LONGATTN_RING_LAYOUT_CONTIGUOUS);
    /// 2N chunks `[c·n/(2N), (c+1)·n/(2N))`; rank r holds chunk r, then chunk 2N−1−r (balances
    /// causal work).
    pub const ZIGZAG: RingLayout = RingLayout(sys::LONGATTN_RING_LAYOUT_ZIGZAG);
}

impl Default for RingLayout {
    fn default() -> Self {
        RingLayout::AUTO
    }
}

/// How the ranks of a ring context exchange K/V blocks (`longattn_ring_transport`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RingTransport(pub i32);

impl RingTransport {
    /// CUDA: peer copies where every pair of devices allows them, else pinned-host staging for
    /// the pairs that do not; CPU and Vulkan: their host transport.
    pub const AUTO: RingTransport = RingTransport(sys::LONGATTN_RING_TRANSPORT_AUTO);
    /// CUDA only: copy-engine peer copies (device-to-device between virtual ranks).
    pub const PEER: RingTransport = RingTransport(sys::LONGATTN_RING_TRANSPORT_PEER);
    /// Device → pinned host buffer → peer device (CPU and Vulkan: their host transport).
    pub const HOST_STAGED: RingTransport = RingTransport(sys::LONGATTN_RING_TRANSPORT_HOST_STAGED);
    /// CUDA only: grouped `ncclSend`/`ncclRecv`, NCCL loaded at run time; not with virtual ranks.
    pub const NCCL: RingTransport = RingTransport(sys::LONGATTN_RING_TRANSPORT_NCCL);
}

impl Default for RingTransport {
    fn default() -> Self {
        RingTransport::AUTO
    }
}

/// What each shard's query tensor holds in a sharded forward (`longattn_shard_queries`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardQueries(pub i32);

impl ShardQueries {
    /// Rank r's queries are its own tokens (prefill): the ring runs.
    pub const LOCAL: ShardQueries = ShardQueries(sys::LONGATTN_SHARD_QUERIES_LOCAL);
    /// Every rank holds the same query rows (decode over a sharded KV cache): the partial
    /// results are merged.
    pub const REPLICATED: ShardQueries = ShardQueries(sys::LONGATTN_SHARD_QUERIES_REPLICATED);
}

impl Default for ShardQueries {
    fn default() -> Self {
        ShardQueries::LOCAL
    }
}
