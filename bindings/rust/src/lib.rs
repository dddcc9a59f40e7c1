//! Safe Rust bindings to longattn: long-context attention (exact FLASH, SPARSE band + global
//! tokens, HyperAttention) on the CPU, CUDA or Vulkan, through the library's C ABI.
//!
//! ```no_run
//! use longattn::{AttentionDesc, Context, Tensor, TensorMut};
//!
//! # fn main() -> Result<(), longattn::Error> {
//! let (n, heads, kv_heads, dim) = (128, 8, 2, 64);
//! let q = vec![0.1f32; n * heads * dim];
//! let k = vec![0.2f32; n * kv_heads * dim];
//! let v = vec![0.3f32; n * kv_heads * dim];
//! let mut out = vec![0f32; n * heads * dim];
//!
//! let ctx = Context::cpu(0)?;
//! let attn = ctx.attention(&AttentionDesc { causal: true, ..AttentionDesc::new(heads, kv_heads, dim) })?;
//! attn.forward(
//!     &Tensor::f32(&q, [1, n, heads, dim])?,
//!     &Tensor::f32(&k, [1, n, kv_heads, dim])?,
//!     &Tensor::f32(&v, [1, n, kv_heads, dim])?,
//!     &mut TensorMut::f32(&mut out, [1, n, heads, dim])?,
//! )?;
//! # Ok(())
//! # }
//! ```
//!
//! Beyond plain attention: ggml-style extras in [`ForwardOptions`] (an additive f16/f32 mask,
//! ALiBi slopes, attention sinks), ALiBi from `AttentionDesc::max_bias`, Q8_0/Q4_0 K/V caches
//! viewed from `&[u8]` ([`Tensor::q8_0`], [`Tensor::new`] with byte strides), and ring contexts
//! ([`ContextOptions::ring_devices`], [`Attention::forward_sharded`], [`ring_shard`]).
//!
//! Layers: [`sys`] holds the raw C declarations; the crate root is the safe API. Handles free
//! themselves on `Drop`; an [`Attention`] borrows its [`Context`]; every fallible call returns
//! [`Result`] with the status kind and the library's message.

pub mod sys;

mod attention;
mod context;
mod error;
mod tensor;
mod types;

pub use attention::{Attention, AttentionDesc, ForwardOptions, ShardedOptions};
pub use context::{Context, ContextOptions};
pub use error::{status_string, Error, ErrorKind, Result};
pub use tensor::{contiguous_strides, contiguous_strides_for, Element, Tensor, TensorMut};
pub use types::{Algorithm, Backend, DType, RingLayout, RingTransport, ShardQueries};

use error::string_from_c;

/// The version of the linked library, `MAJOR*10000 + MINOR*100 + PATCH`.
pub fn version() -> u32 {
    // Safety: no arguments, no preconditions.
    unsafe { sys::longattn_version() }
}

/// Version, backends and CPU instruction sets of the linked library.
pub fn build_info() -> String {
    // Safety: returns a static NUL-terminated string, never NULL.
    unsafe { string_from_c(sys::longattn_build_info()) }
}

/// Whether a backend is compiled in and has a usable device (AUTO and CPU: always).
pub fn backend_available(backend: Backend) -> bool {
    // Safety: accepts any value; thread safe.
    unsafe { sys::longattn_backend_available(backend.0) != 0 }
}

/// Number of devices of a backend (0 when not compiled in or none present).
pub fn device_count(backend: Backend) -> Result<usize> {
    let mut count: i32 = 0;
    // Safety: count is a live local for the whole call; thread safe.
    let status = unsafe { sys::longattn_device_count(backend.0, &mut count) };
    if status != sys::LONGATTN_OK {
        return Err(Error::new(ErrorKind::from_status(status), String::new()));
    }
    Ok(count.max(0) as usize)
}

/// The name of device `index` of a backend.
pub fn device_name(backend: Backend, index: usize) -> Result<String> {
    const NAME_CAPACITY: usize = 256;
    let index = i32::try_from(index).map_err(|_| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("device index {}", index),
        )
    })?;
    let mut buf = [0u8; NAME_CAPACITY];
    // Safety: buf is a live local of NAME_CAPACITY bytes; the library writes at most capacity
    // bytes including the terminating NUL.
    let status =
        unsafe { sys::longattn_device_name(backend.0, index, buf.as_mut_ptr().cast(), buf.len()) };
    if status != sys::LONGATTN_OK {
        return Err(Error::new(ErrorKind::from_status(status), String::new()));
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// The tokens rank `rank` of `n_shards` holds of an `n_tokens`-token sequence under `layout`
/// (CONTIGUOUS or ZIGZAG): its two segments, in the order its shard stores them (the second is
/// empty for CONTIGUOUS; some ranks get nothing when `n_tokens` is small).
pub fn ring_shard(
    layout: RingLayout,
    n_tokens: usize,
    n_shards: usize,
    rank: usize,
) -> Result<[std::ops::Range<usize>; 2]> {
    let describe = || {
        format!(
            "ring_shard(layout {}, n_tokens {}, n_shards {}, rank {})",
            layout.0, n_tokens, n_shards, rank
        )
    };
    let too_large = || Error::new(ErrorKind::InvalidArgument, describe());
    let n_tokens_c = i64::try_from(n_tokens).map_err(|_| too_large())?;
    let n_shards_c = i32::try_from(n_shards).map_err(|_| too_large())?;
    let rank_c = i32::try_from(rank).map_err(|_| too_large())?;
    let mut first = [0i64; 2];
    let mut count = [0i64; 2];
    // Safety: first and count are live local arrays of two values each, as the call writes.
    let status = unsafe {
        sys::longattn_ring_shard(
            layout.0,
            n_tokens_c,
            n_shards_c,
            rank_c,
            first.as_mut_ptr(),
            count.as_mut_ptr(),
        )
    };
    if status != sys::LONGATTN_OK {
        return Err(Error::new(ErrorKind::from_status(status), describe()));
    }
    let segment = |i: usize| {
        let start = first[i].max(0) as usize;
        start..start + count[i].max(0) as usize
    };
    Ok([segment(0), segment(1)])
}
