//! `Context`: one backend device, its threads and scratch memory; used by one thread at a time.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::attention::{Attention, AttentionDesc};
use crate::error::{string_from_c, Error, ErrorKind, Result};
use crate::sys;
use crate::tensor::{Tensor, TensorMut};
use crate::types::{Backend, RingLayout, RingTransport};

/// How to create a context. `Default` is `LONGATTN_CONTEXT_OPTIONS_INIT` (AUTO backend, device 0,
/// all hardware threads, no ring).
///
/// Ring mode: `ring_devices = N` drives N ranks of one backend (CUDA/Vulkan: devices
/// `device_index ..= device_index + N − 1`, or N virtual ranks on one device with `ring_virtual`;
/// CPU: N virtual devices, `max(1, n_threads / N)` threads each). The sequence is sharded across
/// the ranks and K/V blocks travel around the ring; the result is exact attention whatever N is.
///
/// ```no_run
/// # use longattn::{Context, ContextOptions};
/// // four virtual ranks on the CPU, two threads each
/// let ring = Context::new(&ContextOptions { ring_devices: 4, ..ContextOptions::cpu(8) })?;
/// # Ok::<(), longattn::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextOptions {
    /// Which backend; `Backend::AUTO` picks the best one present.
    pub backend: Backend,
    /// Device of that backend.
    pub device_index: u32,
    /// CPU worker threads; 0 = all hardware threads.
    pub n_threads: u32,
    /// An explicit backend that is missing falls back to the CPU instead of failing.
    pub fallback_cpu: bool,
    /// 0 = one device; N >= 1: a ring of N ranks.
    pub ring_devices: u32,
    /// How whole tensors passed to `Attention::forward` are cut into shards.
    pub ring_layout: RingLayout,
    /// How the ranks exchange blocks (CPU and Vulkan: AUTO or HOST_STAGED).
    pub ring_transport: RingTransport,
    /// All ring ranks on `device_index` (virtual ranks on one GPU); no effect on the CPU, whose
    /// ranks are always virtual.
    pub ring_virtual: bool,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions {
            backend: Backend::AUTO,
            device_index: 0,
            n_threads: 0,
            fallback_cpu: false,
            ring_devices: 0,
            ring_layout: RingLayout::AUTO,
            ring_transport: RingTransport::AUTO,
            ring_virtual: false,
        }
    }
}

impl ContextOptions {
    /// The CPU backend with `n_threads` workers (0 = all hardware threads).
    pub fn cpu(n_threads: u32) -> Self {
        ContextOptions {
            backend: Backend::CPU,
            n_threads,
            ..ContextOptions::default()
        }
    }

    fn to_raw(self) -> Result<sys::longattn_context_options> {
        let to_i32 = |value: u32, what: &str| {
            i32::try_from(value).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("{} = {} is too large", what, value),
                )
            })
        };
        let mut flags = 0;
        if self.fallback_cpu {
            flags |= sys::LONGATTN_CONTEXT_FALLBACK_CPU;
        }
        if self.ring_virtual {
            flags |= sys::LONGATTN_CONTEXT_RING_VIRTUAL;
        }
        Ok(sys::longattn_context_options {
            backend: self.backend.0,
            device_index: to_i32(self.device_index, "device_index")?,
            n_threads: to_i32(self.n_threads, "n_threads")?,
            flags,
            ring_devices: to_i32(self.ring_devices, "ring_devices")?,
            ring_layout: self.ring_layout.0,
            ring_transport: self.ring_transport.0,
            ..sys::longattn_context_options::default()
        })
    }
}

/// A longattn context. Dropping it releases the context; attention handles borrow it, so they are
/// always dropped first.
///
/// A context may move to another thread (`Send`) but is used by one thread at a time (not `Sync`);
/// create one context per thread that runs attention concurrently.
#[derive(Debug)]
pub struct Context {
    raw: NonNull<sys::longattn_context>,
    /// Makes the type `!Sync`: the library allows one thread at a time per context.
    _not_sync: PhantomData<Cell<()>>,
}

// Safety: the C API lets a context be used from any thread as long as calls do not overlap; `!Sync`
// keeps them from overlapping, so moving the owner to another thread is sound.
unsafe impl Send for Context {}

impl Context {
    /// Creates a context.
    pub fn new(options: &ContextOptions) -> Result<Context> {
        let raw_options = options.to_raw()?;
        let mut out: *mut sys::longattn_context = std::ptr::null_mut();
        // Safety: both pointers refer to live locals of the right types for the whole call.
        let status = unsafe { sys::longattn_context_create(&raw_options, &mut out) };
        if status != sys::LONGATTN_OK {
            // The create error is per OS thread; nothing in between ran on this thread.
            // Safety: longattn_last_create_error returns a NUL-terminated string valid until this
            // thread's next context_create; it is copied at once.
            let message = unsafe { string_from_c(sys::longattn_last_create_error()) };
            return Err(Error::new(ErrorKind::from_status(status), message));
        }
        match NonNull::new(out) {
            Some(raw) => Ok(Context {
                raw,
                _not_sync: PhantomData,
            }),
            None => Err(Error::new(
                ErrorKind::Internal,
                "context_create returned OK and NULL",
            )),
        }
    }

    /// A CPU context with `n_threads` workers (0 = all hardware threads).
    pub fn cpu(n_threads: u32) -> Result<Context> {
        Context::new(&ContextOptions::cpu(n_threads))
    }

    /// The backend the context runs on (never AUTO).
    pub fn backend(&self) -> Backend {
        // Safety: self.raw is a live context owned by self.
        Backend(unsafe { sys::longattn_context_backend(self.raw.as_ptr()) })
    }

    /// Worker threads used on the CPU backend.
    pub fn threads(&self) -> usize {
        // Safety: self.raw is a live context owned by self.
        let n = unsafe { sys::longattn_context_threads(self.raw.as_ptr()) };
        n.max(0) as usize
    }

    /// Bytes of scratch memory the context holds between calls (host memory on the CPU backend,
    /// device memory on GPU backends); it grows on the first call with a larger shape.
    pub fn scratch_bytes(&self) -> usize {
        // Safety: self.raw is a live context owned by self.
        unsafe { sys::longattn_context_scratch_bytes(self.raw.as_ptr()) }
    }

    /// Ranks of a ring context (0 for a context created without `ring_devices`).
    pub fn ring_devices(&self) -> usize {
        // Safety: self.raw is a live context owned by self.
        let n = unsafe { sys::longattn_context_ring_devices(self.raw.as_ptr()) };
        n.max(0) as usize
    }

    /// The transport a ring context uses, AUTO resolved (AUTO for a context without a ring).
    pub fn ring_transport(&self) -> RingTransport {
        // Safety: self.raw is a live context owned by self.
        RingTransport(unsafe { sys::longattn_context_ring_transport(self.raw.as_ptr()) })
    }

    /// Bytes of scratch memory rank `rank` of a ring context holds (0 for a rank out of range).
    /// `scratch_bytes` reports rank 0.
    pub fn rank_scratch_bytes(&self, rank: usize) -> usize {
        let rank = match i32::try_from(rank) {
            Ok(rank) => rank,
            Err(_) => return 0,
        };
        // Safety: self.raw is a live context owned by self; any rank value is accepted.
        unsafe { sys::longattn_context_rank_scratch_bytes(self.raw.as_ptr(), rank) }
    }

    /// Creates an attention handle that borrows this context.
    pub fn attention(&self, desc: &AttentionDesc) -> Result<Attention<'_>> {
        Attention::new(self, desc)
    }

    /// Merges two partial attention results over disjoint key sets of the same queries:
    /// `L = logaddexp(L1, L2); O = exp(L1 - L)·O1 + exp(L2 - L)·O2`, in fp32.
    /// o_* are `[batch, n_q, heads, head_dim_v]`, lse_* are f32 `[batch, n_q, heads, 1]`.
    pub fn merge(
        &self,
        o_a: &Tensor<'_>,
        lse_a: &Tensor<'_>,
        o_b: &Tensor<'_>,
        lse_b: &Tensor<'_>,
        o_out: &mut TensorMut<'_>,
        lse_out: &mut TensorMut<'_>,
    ) -> Result<()> {
        // Safety: every tensor view was checked to lie inside its live borrow; the outputs are
        // exclusive borrows, so they overlap no input; the library keeps no pointer after return.
        let status = unsafe {
            sys::longattn_merge(
                self.raw.as_ptr(),
                o_a.as_raw(),
                lse_a.as_raw(),
                o_b.as_raw(),
                lse_b.as_raw(),
                o_out.as_raw(),
                lse_out.as_raw(),
            )
        };
        self.check(status)
    }

    /// Merges the partial result (`o_b`, `lse_b`) into the accumulator (`o_acc`, `lse_acc`) in
    /// place, as split-KV decode does with each chunk of the cache.
    pub fn merge_into(
        &self,
        o_acc: &mut TensorMut<'_>,
        lse_acc: &mut TensorMut<'_>,
        o_b: &Tensor<'_>,
        lse_b: &Tensor<'_>,
    ) -> Result<()> {
        // Safety: as in merge; the header allows o_out/lse_out to be the same views as o_a/lse_a,
        // which are exclusive borrows here, so nothing else reads them during the call.
        let status = unsafe {
            sys::longattn_merge(
                self.raw.as_ptr(),
                o_acc.as_raw(),
                lse_acc.as_raw(),
                o_b.as_raw(),
                lse_b.as_raw(),
                o_acc.as_raw(),
                lse_acc.as_raw(),
            )
        };
        self.check(status)
    }

    /// The raw handle, for calls this crate does not wrap. It stays owned by `self`.
    pub fn as_ptr(&self) -> *mut sys::longattn_context {
        self.raw.as_ptr()
    }

    /// Turns a status of a call on this context into a `Result`, with the context's message.
    pub(crate) fn check(&self, status: sys::longattn_status) -> Result<()> {
        if status == sys::LONGATTN_OK {
            return Ok(());
        }
        // Safety: the message is owned by the live context and valid until its next call; it is
        // copied before anything else touches the context.
        let message = unsafe { string_from_c(sys::longattn_context_last_error(self.raw.as_ptr())) };
        Err(Error::new(ErrorKind::from_status(status), message))
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // Safety: self.raw came from longattn_context_create and is destroyed exactly once; every
        // Attention borrowing this context has already been dropped (the borrow checker ensures it).
        unsafe { sys::longattn_context_destroy(self.raw.as_ptr()) }
    }
}
