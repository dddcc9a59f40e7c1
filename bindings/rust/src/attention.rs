//! `AttentionDesc` and `Attention<'ctx>`: an immutable attention handle borrowing its context.

use std::ptr::NonNull;

use crate::context::Context;
use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::tensor::{Tensor, TensorMut};
use crate::types::Algorithm;

/// What attention to compute. Start from `AttentionDesc::new` and override fields:
///
/// ```no_run
/// # use longattn::{AttentionDesc, Algorithm};
/// // Mistral-style sliding window of 4096 tokens.
/// let desc = AttentionDesc {
///     algorithm: Algorithm::SPARSE,
///     causal: true,
///     window_left: Some(4095),
///     ..AttentionDesc::new(32, 8, 128)
/// };
/// ```
///
/// Mask (query position qp, key position kp): a key is allowed when
/// `(!causal || kp <= qp) && (in band || kp < n_global || qp < n_global)`, with the band given by
/// `window_left` / `window_right` (`None` = unlimited). FLASH uses `causal` only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionDesc {
    pub algorithm: Algorithm,
    /// Query heads (required, >= 1).
    pub n_q_heads: usize,
    /// Key/value heads; divides `n_q_heads`; 0 = `n_q_heads`.
    pub n_kv_heads: usize,
    /// Q/K head dimension, 1..=256 (required).
    pub head_dim: usize,
    /// V/O head dimension; 0 = `head_dim`.
    pub head_dim_v: usize,
    /// Logit scale; 0 = 1/sqrt(head_dim).
    pub scale: f32,
    /// > 0: logits become softcap·tanh(logit/softcap); 0 = off.
    pub softcap: f32,
    pub causal: bool,
    /// SPARSE: keys at most this far behind the query; `None` = unlimited.
    pub window_left: Option<usize>,
    /// SPARSE: keys at most this far ahead of the query; `None` = unlimited.
    pub window_right: Option<usize>,
    /// SPARSE/HYPER: the first `n_global` tokens are global.
    pub n_global: usize,
    /// HYPER: keys per sorted block; 0 = library default.
    pub hyper_block_size: usize,
    /// HYPER: sampled key columns per (batch, kv head); 0 = library default.
    pub hyper_sample_size: usize,
    /// HYPER: hyperplanes per LSH code (1..=16); 0 = library default.
    pub hyper_lsh_bits: usize,
    /// HYPER: exact attention below this sequence length; 0 = library default.
    pub hyper_min_seq_len: usize,
    /// Seed of every random choice (HYPER).
    pub seed: u64,
}

impl AttentionDesc {
    /// FLASH, non-causal, every other field at the library default.
    pub fn new(n_q_heads: usize, n_kv_heads: usize, head_dim: usize) -> AttentionDesc {
        AttentionDesc {
            algorithm: Algorithm::FLASH,
            n_q_heads,
            n_kv_heads,
            head_dim,
            head_dim_v: 0,
            scale: 0.0,
            softcap: 0.0,
            causal: false,
            window_left: None,
            window_right: None,
            n_global: 0,
            hyper_block_size: 0,
            hyper_sample_size: 0,
            hyper_lsh_bits: 0,
            hyper_min_seq_len: 0,
            seed: 0,
        }
    }

    /// The C descriptor (`LONGATTN_ATTENTION_DESC_INIT` with these fields).
    pub fn to_raw(&self) -> Result<sys::longattn_attention_desc> {
        fn field(value: usize, name: &str) -> Result<i32> {
            i32::try_from(value).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("{} = {} is too large", name, value),
                )
            })
        }
        fn window(value: Option<usize>, name: &str) -> Result<i32> {
            match value {
                None => Ok(-1),
                Some(w) => field(w, name),
            }
        }
        Ok(sys::longattn_attention_desc {
            algorithm: self.algorithm.0,
            n_q_heads: field(self.n_q_heads, "n_q_heads")?,
            n_kv_heads: field(self.n_kv_heads, "n_kv_heads")?,
            head_dim: field(self.head_dim, "head_dim")?,
            head_dim_v: field(self.head_dim_v, "head_dim_v")?,
            scale: self.scale,
            softcap: self.softcap,
            causal: i32::from(self.causal),
            window_left: window(self.window_left, "window_left")?,
            window_right: window(self.window_right, "window_right")?,
            n_global: field(self.n_global, "n_global")?,
            hyper_block_size: field(self.hyper_block_size, "hyper_block_size")?,
            hyper_sample_size: field(self.hyper_sample_size, "hyper_sample_size")?,
            hyper_lsh_bits: field(self.hyper_lsh_bits, "hyper_lsh_bits")?,
            hyper_min_seq_len: field(self.hyper_min_seq_len, "hyper_min_seq_len")?,
            seed: self.seed,
            ..sys::longattn_attention_desc::default()
        })
    }
}

/// Optional parts of a forward call.
#[derive(Debug, Default)]
pub struct ForwardOptions<'l, 'd> {
    /// Receives the natural-log sum of exp(logits) per row: f32 `[batch, n_q, n_q_heads, 1]`,
    /// -inf for a row with no allowed key.
    pub lse: Option<&'l mut TensorMut<'d>>,
    /// Position of query 0; `None` = bottom-right alignment (`n_k - n_q`, as in decode).
    pub q_pos0: Option<i64>,
}

/// An immutable attention handle. It borrows its context, runs on it, and is dropped before it.
#[derive(Debug)]
pub struct Attention<'ctx> {
    raw: NonNull<sys::longattn_attention>,
    ctx: &'ctx Context,
    desc: AttentionDesc,
}

impl<'ctx> Attention<'ctx> {
    pub(crate) fn new(ctx: &'ctx Context, desc: &AttentionDesc) -> Result<Attention<'ctx>> {
        let raw_desc = desc.to_raw()?;
        let mut out: *mut sys::longattn_attention = std::ptr::null_mut();
        // Safety: ctx is a live context; raw_desc and out are live locals for the whole call.
        let status = unsafe { sys::longattn_attention_create(ctx.as_ptr(), &raw_desc, &mut out) };
        ctx.check(status)?;
        match NonNull::new(out) {
            Some(raw) => Ok(Attention {
                raw,
                ctx,
                desc: *desc,
            }),
            None => Err(Error::new(
                ErrorKind::Internal,
                "attention_create returned OK and NULL",
            )),
        }
    }

    /// The descriptor this handle was created from.
    pub fn desc(&self) -> &AttentionDesc {
        &self.desc
    }

    /// The context this handle runs on.
    pub fn context(&self) -> &'ctx Context {
        self.ctx
    }

    /// Computes attention into `out`:
    /// q `[batch, n_q, n_q_heads, head_dim]`, k `[batch, n_k, n_kv_heads, head_dim]`,
    /// v `[batch, n_k, n_kv_heads, head_dim_v]`, out `[batch, n_q, n_q_heads, head_dim_v]`.
    /// Query i sits at position `n_k - n_q + i` (bottom-right alignment).
    pub fn forward(
        &self,
        q: &Tensor<'_>,
        k: &Tensor<'_>,
        v: &Tensor<'_>,
        out: &mut TensorMut<'_>,
    ) -> Result<()> {
        self.forward_with(q, k, v, out, ForwardOptions::default())
    }

    /// `forward` with an LSE output and/or an explicit position of query 0.
    pub fn forward_with(
        &self,
        q: &Tensor<'_>,
        k: &Tensor<'_>,
        v: &Tensor<'_>,
        out: &mut TensorMut<'_>,
        options: ForwardOptions<'_, '_>,
    ) -> Result<()> {
        let args = sys::longattn_forward_args {
            q: q.as_raw(),
            k: k.as_raw(),
            v: v.as_raw(),
            out: out.as_raw(),
            lse: match &options.lse {
                Some(lse) => lse.as_raw(),
                None => std::ptr::null(),
            },
            q_pos0: options.q_pos0.unwrap_or(sys::LONGATTN_Q_POS_BOTTOM_RIGHT),
            ..sys::longattn_forward_args::default()
        };
        // Safety: the context and handle are live (self borrows the context); every view lies
        // inside a live borrow (checked when the view was built); out and lse are exclusive
        // borrows, so they overlap neither each other nor any input; the library keeps no pointer
        // after it returns.
        let status =
            unsafe { sys::longattn_attention_forward(self.ctx.as_ptr(), self.raw.as_ptr(), &args) };
        self.ctx.check(status)
    }

    /// The raw handle, for calls this crate does not wrap. It stays owned by `self`.
    pub fn as_ptr(&self) -> *mut sys::longattn_attention {
        self.raw.as_ptr()
    }
}

impl Drop for Attention<'_> {
    fn drop(&mut self) {
        // Safety: self.raw came from longattn_attention_create and is destroyed exactly once, while
        // the context it was created from is still alive (it is borrowed for 'ctx).
        unsafe { sys::longattn_attention_destroy(self.raw.as_ptr()) }
    }
}
