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

/// An element type (`longattn_dtype`). f16 and bf16 data are passed as their `u16` bit patterns.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DType(pub i32);

impl DType {
    pub const F32: DType = DType(sys::LONGATTN_DTYPE_F32);
    /// IEEE binary16, stored as `u16` bits.
    pub const F16: DType = DType(sys::LONGATTN_DTYPE_F16);
    /// bfloat16, stored as `u16` bits.
    pub const BF16: DType = DType(sys::LONGATTN_DTYPE_BF16);

    /// Bytes per element as this crate knows it (0 for an unknown dtype).
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            _ => 0,
        }
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
