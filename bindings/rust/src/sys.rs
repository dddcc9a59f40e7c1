//! Raw declarations of `include/longattn.h`, written by hand (no bindgen).
//!
//! Everything here mirrors the C header one to one: same names, same integer types, same struct
//! layouts. C enums stay integer constants (`i32`), so a value this crate does not know — from a
//! newer library, say — is just a number and never undefined behaviour.
//!
//! Use the safe API at the crate root unless you need something it does not offer.

#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_void};

// ---- 1. versions, status codes, enums -------------------------------------------------------

pub const LONGATTN_VERSION_MAJOR: u32 = 0;
pub const LONGATTN_VERSION_MINOR: u32 = 1;
pub const LONGATTN_VERSION_PATCH: u32 = 0;
/// `MAJOR*10000 + MINOR*100 + PATCH` of the header these declarations were written from.
pub const LONGATTN_VERSION_NUMBER: u32 =
    LONGATTN_VERSION_MAJOR * 10000 + LONGATTN_VERSION_MINOR * 100 + LONGATTN_VERSION_PATCH;

pub type longattn_status = i32;
pub const LONGATTN_OK: longattn_status = 0;
pub const LONGATTN_ERROR_INVALID_ARGUMENT: longattn_status = 1;
pub const LONGATTN_ERROR_NULL_POINTER: longattn_status = 2;
pub const LONGATTN_ERROR_SHAPE_MISMATCH: longattn_status = 3;
pub const LONGATTN_ERROR_BAD_STRIDE: longattn_status = 4;
pub const LONGATTN_ERROR_UNKNOWN_ENUM: longattn_status = 5;
pub const LONGATTN_ERROR_STRUCT_SIZE: longattn_status = 6;
pub const LONGATTN_ERROR_UNSUPPORTED: longattn_status = 7;
pub const LONGATTN_ERROR_BACKEND_UNAVAILABLE: longattn_status = 8;
pub const LONGATTN_ERROR_OUT_OF_MEMORY: longattn_status = 9;
pub const LONGATTN_ERROR_DEVICE: longattn_status = 10;
pub const LONGATTN_ERROR_INTERNAL: longattn_status = 11;

pub type longattn_backend = i32;
pub const LONGATTN_BACKEND_AUTO: longattn_backend = 0;
pub const LONGATTN_BACKEND_CPU: longattn_backend = 1;
pub const LONGATTN_BACKEND_CUDA: longattn_backend = 2;
pub const LONGATTN_BACKEND_VULKAN: longattn_backend = 3;

pub type longattn_dtype = i32;
pub const LONGATTN_DTYPE_F32: longattn_dtype = 0;
pub const LONGATTN_DTYPE_F16: longattn_dtype = 1;
pub const LONGATTN_DTYPE_BF16: longattn_dtype = 2;
/// ggml's Q8_0 block (K and V only): 34 bytes = fp16 scale d + 32 int8 q; value = d * q.
pub const LONGATTN_DTYPE_Q8_0: longattn_dtype = 3;
/// ggml's Q4_0 block (K and V only): 18 bytes = fp16 scale d + 16 bytes of nibbles; value j < 16
/// is (low nibble of byte j) - 8, value j + 16 is (high nibble of byte j) - 8, times d.
pub const LONGATTN_DTYPE_Q4_0: longattn_dtype = 4;

pub type longattn_algorithm = i32;
pub const LONGATTN_ALGORITHM_FLASH: longattn_algorithm = 0;
pub const LONGATTN_ALGORITHM_SPARSE: longattn_algorithm = 1;
pub const LONGATTN_ALGORITHM_HYPER: longattn_algorithm = 2;

pub type longattn_memory = i32;
pub const LONGATTN_MEMORY_HOST: longattn_memory = 0;
pub const LONGATTN_MEMORY_DEVICE: longattn_memory = 1;

// ---- 3. contexts ----------------------------------------------------------------------------

/// Opaque context handle.
#[repr(C)]
pub struct longattn_context {
    _opaque: [u8; 0],
}

pub const LONGATTN_CONTEXT_FALLBACK_CPU: u32 = 1;
/// Ring mode: all ranks on `device_index` (virtual ranks on one GPU; no effect on the CPU).
pub const LONGATTN_CONTEXT_RING_VIRTUAL: u32 = 2;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct longattn_context_options {
    pub struct_size: u32,
    pub backend: longattn_backend,
    pub device_index: i32,
    pub n_threads: i32,
    pub flags: u32,
    /// 0 = one device; N >= 1: a ring of N ranks (section 8).
    pub ring_devices: i32,
    /// `LONGATTN_RING_LAYOUT_*` for whole tensors.
    pub ring_layout: longattn_ring_layout,
    /// `LONGATTN_RING_TRANSPORT_*`: how the ranks exchange blocks.
    pub ring_transport: longattn_ring_transport,
}

/// `LONGATTN_CONTEXT_OPTIONS_MIN_SIZE`: the smallest `struct_size` accepted (through device_index).
pub const LONGATTN_CONTEXT_OPTIONS_MIN_SIZE: u32 = 12;

impl Default for longattn_context_options {
    /// `LONGATTN_CONTEXT_OPTIONS_INIT`.
    fn default() -> Self {
        Self {
            struct_size: std::mem::size_of::<Self>() as u32,
            backend: LONGATTN_BACKEND_AUTO,
            device_index: 0,
            n_threads: 0,
            flags: 0,
            ring_devices: 0,
            ring_layout: LONGATTN_RING_LAYOUT_AUTO,
            ring_transport: LONGATTN_RING_TRANSPORT_AUTO,
        }
    }
}

// ---- 4. tensor views ------------------------------------------------------------------------

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct longattn_tensor {
    pub data: *mut c_void,
    pub dtype: longattn_dtype,
    pub memory: longattn_memory,
    /// `{batch, tokens, heads, head_dim}`
    pub shape: [i64; 4],
    /// Byte strides for the same axes.
    pub strides: [i64; 4],
}

// ---- 5. attention descriptors and handles ---------------------------------------------------

/// Opaque attention handle.
#[repr(C)]
pub struct longattn_attention {
    _opaque: [u8; 0],
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct longattn_attention_desc {
    pub struct_size: u32,
    pub algorithm: longattn_algorithm,
    pub n_q_heads: i32,
    pub n_kv_heads: i32,
    pub head_dim: i32,
    pub head_dim_v: i32,
    pub scale: f32,
    pub softcap: f32,
    pub causal: i32,
    pub window_left: i32,
    pub window_right: i32,
    pub n_global: i32,
    pub hyper_block_size: i32,
    pub hyper_sample_size: i32,
    pub hyper_lsh_bits: i32,
    pub hyper_min_seq_len: i32,
    pub seed: u64,
    /// ALiBi as ggml defines it (0 = off).
    pub max_bias: f32,
    /// Must be 0 (the C struct names it so that it has no padding).
    pub reserved0: u32,
}

/// `LONGATTN_ATTENTION_DESC_MIN_SIZE`: the smallest `struct_size` accepted (through n_global).
pub const LONGATTN_ATTENTION_DESC_MIN_SIZE: u32 = 48;

impl Default for longattn_attention_desc {
    /// `LONGATTN_ATTENTION_DESC_INIT`.
    fn default() -> Self {
        Self {
            struct_size: std::mem::size_of::<Self>() as u32,
            algorithm: LONGATTN_ALGORITHM_FLASH,
            n_q_heads: 0,
            n_kv_heads: 0,
            head_dim: 0,
            head_dim_v: 0,
            scale: 0.0,
            softcap: 0.0,
            causal: 0,
            window_left: -1,
            window_right: -1,
            n_global: 0,
            hyper_block_size: 0,
            hyper_sample_size: 0,
            hyper_lsh_bits: 0,
            hyper_min_seq_len: 0,
            seed: 0,
            max_bias: 0.0,
            reserved0: 0,
        }
    }
}

// ---- 6. the forward call --------------------------------------------------------------------

/// `LONGATTN_Q_POS_BOTTOM_RIGHT`: query 0 sits at position `n_k - n_q`.
pub const LONGATTN_Q_POS_BOTTOM_RIGHT: i64 = i64::MIN;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct longattn_forward_args {
    pub struct_size: u32,
    pub reserved0: u32,
    pub q: *const longattn_tensor,
    pub k: *const longattn_tensor,
    pub v: *const longattn_tensor,
    pub out: *const longattn_tensor,
    pub lse: *const longattn_tensor,
    pub q_pos0: i64,
    pub stream: *mut c_void,
    /// Optional additive mask, f16 or f32, `{batch or 1, n_q, 1 or n_q_heads, n_k}`.
    pub mask: *const longattn_tensor,
    /// Optional ALiBi slopes, `n_q_heads` floats in host memory; override `max_bias`.
    pub alibi_slopes: *const f32,
    /// Optional attention sinks, one logit per query head (`n_q_heads` floats, host memory).
    pub sinks: *const f32,
}

/// `LONGATTN_FORWARD_ARGS_MIN_SIZE`: the smallest `struct_size` accepted (through out).
pub const LONGATTN_FORWARD_ARGS_MIN_SIZE: u32 = 40;

impl Default for longattn_forward_args {
    /// `LONGATTN_FORWARD_ARGS_INIT`.
    fn default() -> Self {
        Self {
            struct_size: std::mem::size_of::<Self>() as u32,
            reserved0: 0,
            q: std::ptr::null(),
            k: std::ptr::null(),
            v: std::ptr::null(),
            out: std::ptr::null(),
            lse: std::ptr::null(),
            q_pos0: LONGATTN_Q_POS_BOTTOM_RIGHT,
            stream: std::ptr::null_mut(),
            mask: std::ptr::null(),
            alibi_slopes: std::ptr::null(),
            sinks: std::ptr::null(),
        }
    }
}

// ---- 8. ring mode ---------------------------------------------------------------------------

pub type longattn_ring_layout = i32;
/// Whole tensors: ZIGZAG for causal attention without a left window, else CONTIGUOUS.
pub const LONGATTN_RING_LAYOUT_AUTO: longattn_ring_layout = 0;
/// Rank r holds tokens `[r*n/N, (r+1)*n/N)`.
pub const LONGATTN_RING_LAYOUT_CONTIGUOUS: longattn_ring_layout = 1;
/// 2N chunks `[c*n/(2N), (c+1)*n/(2N))`; rank r holds chunk r, then chunk 2N-1-r.
pub const LONGATTN_RING_LAYOUT_ZIGZAG: longattn_ring_layout = 2;

pub type longattn_ring_transport = i32;
/// CUDA: peer copies where possible, else pinned-host staging; CPU and Vulkan: host staging.
pub const LONGATTN_RING_TRANSPORT_AUTO: longattn_ring_transport = 0;
/// CUDA only: copy-engine peer copies.
pub const LONGATTN_RING_TRANSPORT_PEER: longattn_ring_transport = 1;
/// Device -> pinned host buffer -> peer device (CPU and Vulkan: their host transport).
pub const LONGATTN_RING_TRANSPORT_HOST_STAGED: longattn_ring_transport = 2;
/// CUDA only: grouped ncclSend/ncclRecv (NCCL loaded at run time).
pub const LONGATTN_RING_TRANSPORT_NCCL: longattn_ring_transport = 3;

pub type longattn_shard_queries = i32;
/// Rank r's queries are its own tokens (prefill): ring.
pub const LONGATTN_SHARD_QUERIES_LOCAL: longattn_shard_queries = 0;
/// Every rank holds the same query rows (decode over a sharded KV cache): partials merged.
pub const LONGATTN_SHARD_QUERIES_REPLICATED: longattn_shard_queries = 1;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct longattn_sharded_args {
    pub struct_size: u32,
    /// Must equal `longattn_context_ring_devices(ctx)`.
    pub n_shards: i32,
    /// CONTIGUOUS (default) or ZIGZAG.
    pub layout: longattn_ring_layout,
    pub queries: longattn_shard_queries,
    /// Arrays of `n_shards` tensors; element r lives on rank r.
    pub q: *const longattn_tensor,
    pub k: *const longattn_tensor,
    pub v: *const longattn_tensor,
    pub out: *const longattn_tensor,
    /// `[n_shards]` or NULL.
    pub lse: *const longattn_tensor,
    /// REPLICATED: position of query 0; default bottom-right.
    pub q_pos0: i64,
}

/// `LONGATTN_SHARDED_ARGS_MIN_SIZE`: the smallest `struct_size` accepted (through lse).
pub const LONGATTN_SHARDED_ARGS_MIN_SIZE: u32 = 56;

impl Default for longattn_sharded_args {
    /// `LONGATTN_SHARDED_ARGS_INIT`.
    fn default() -> Self {
        Self {
            struct_size: std::mem::size_of::<Self>() as u32,
            n_shards: 0,
            layout: LONGATTN_RING_LAYOUT_CONTIGUOUS,
            queries: LONGATTN_SHARD_QUERIES_LOCAL,
            q: std::ptr::null(),
            k: std::ptr::null(),
            v: std::ptr::null(),
            out: std::ptr::null(),
            lse: std::ptr::null(),
            q_pos0: LONGATTN_Q_POS_BOTTOM_RIGHT,
        }
    }
}

// ---- layout checks --------------------------------------------------------------------------
// The C sizes on every LP64 target (x86_64, aarch64 Linux/macOS). tests/layout.rs additionally
// compiles a C probe against the header and compares every size and field offset.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(std::mem::size_of::<longattn_context_options>() == 32);
    assert!(std::mem::align_of::<longattn_context_options>() == 4);
    assert!(std::mem::size_of::<longattn_tensor>() == 80);
    assert!(std::mem::align_of::<longattn_tensor>() == 8);
    assert!(std::mem::size_of::<longattn_attention_desc>() == 80);
    assert!(std::mem::align_of::<longattn_attention_desc>() == 8);
    assert!(std::mem::size_of::<longattn_forward_args>() == 88);
    assert!(std::mem::align_of::<longattn_forward_args>() == 8);
    assert!(std::mem::size_of::<longattn_sharded_args>() == 64);
    assert!(std::mem::align_of::<longattn_sharded_args>() == 8);
};

// ---- functions ------------------------------------------------------------------------------

extern "C" {
    // 1. versions and status strings
    pub fn longattn_version() -> u32;
    pub fn longattn_build_info() -> *const c_char;
    pub fn longattn_status_string(status: longattn_status) -> *const c_char;

    // 2. backends and devices
    pub fn longattn_backend_available(backend: longattn_backend) -> i32;
    pub fn longattn_device_count(backend: longattn_backend, count: *mut i32) -> longattn_status;
    pub fn longattn_device_name(
        backend: longattn_backend,
        index: i32,
        buf: *mut c_char,
        capacity: usize,
    ) -> longattn_status;

    // 3. contexts
    pub fn longattn_context_create(
        options: *const longattn_context_options,
        out: *mut *mut longattn_context,
    ) -> longattn_status;
    pub fn longattn_context_destroy(ctx: *mut longattn_context);
    pub fn longattn_context_backend(ctx: *const longattn_context) -> longattn_backend;
    pub fn longattn_context_threads(ctx: *const longattn_context) -> i32;
    pub fn longattn_context_scratch_bytes(ctx: *const longattn_context) -> usize;
    pub fn longattn_context_last_error(ctx: *const longattn_context) -> *const c_char;
    pub fn longattn_last_create_error() -> *const c_char;

    // 4. tensor views
    pub fn longattn_dtype_size(dtype: longattn_dtype) -> usize;
    pub fn longattn_dtype_block_elems(dtype: longattn_dtype) -> i32;
    pub fn longattn_tensor_contiguous(
        t: *mut longattn_tensor,
        data: *mut c_void,
        dtype: longattn_dtype,
        batch: i64,
        tokens: i64,
        heads: i64,
        head_dim: i64,
    ) -> longattn_status;

    // 5. attention handles
    pub fn longattn_attention_create(
        ctx: *mut longattn_context,
        desc: *const longattn_attention_desc,
        out: *mut *mut longattn_attention,
    ) -> longattn_status;
    pub fn longattn_attention_destroy(attn: *mut longattn_attention);

    // 6. forward
    pub fn longattn_attention_forward(
        ctx: *mut longattn_context,
        attn: *const longattn_attention,
        args: *const longattn_forward_args,
    ) -> longattn_status;

    // 7. merge
    pub fn longattn_merge(
        ctx: *mut longattn_context,
        o_a: *const longattn_tensor,
        lse_a: *const longattn_tensor,
        o_b: *const longattn_tensor,
        lse_b: *const longattn_tensor,
        o_out: *const longattn_tensor,
        lse_out: *const longattn_tensor,
    ) -> longattn_status;

    // 8. ring mode
    pub fn longattn_ring_shard(
        layout: longattn_ring_layout,
        n_tokens: i64,
        n_shards: i32,
        rank: i32,
        first: *mut i64,
        count: *mut i64,
    ) -> longattn_status;
    pub fn longattn_context_ring_devices(ctx: *const longattn_context) -> i32;
    pub fn longattn_context_ring_transport(ctx: *const longattn_context)
        -> longattn_ring_transport;
    pub fn longattn_context_rank_scratch_bytes(ctx: *const longattn_context, rank: i32) -> usize;
    pub fn longattn_attention_forward_sharded(
        ctx: *mut longattn_context,
        attn: *const longattn_attention,
        args: *const longattn_sharded_args,
    ) -> longattn_status;
}
