//! `AttentionDesc` and `Attention<'ctx>`: an immutable attention handle borrowing its context.

use std::ptr::NonNull;

use crate::context::Context;
use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::tensor::{Tensor, TensorMut};
use crate::types::{Algorithm, RingLayout, ShardQueries};

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
    /// ALiBi as ggml defines it; 0 = off. Head h gets the slope m_h from `max_bias`
    /// (m0 = 2^(−max_bias/n), m1 = 2^(−max_bias/2n), n = the largest power of two <= n_q_heads;
    /// m_h = m0^(h+1) for h < n, else m1^(2(h−n)+1)). With a mask the logit gets m_h·mask (the
    /// runtime writes −|i−j| into the mask); without one it gets −m_h·|qp − kp|. FLASH and
    /// SPARSE. [`ForwardOptions::alibi_slopes`] overrides it per call.
    pub max_bias: f32,
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
            max_bias: 0.0,
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
            max_bias: self.max_bias,
            ..sys::longattn_attention_desc::default()
        })
    }
}

/// Optional parts of a forward call. Start from `ForwardOptions::default()` and set what you
/// need:
///
/// ```no_run
/// # use longattn::{ForwardOptions, Tensor, TensorMut};
/// # fn f(mask: &[u16], sinks: &[f32], lse: &mut [f32]) -> longattn::Result<()> {
/// let (n_q, n_k, heads) = (4, 100, 8);
/// let mut lse_view = TensorMut::f32(lse, [1, n_q, heads, 1])?;
/// let options = ForwardOptions {
///     lse: Some(&mut lse_view),
///     mask: Some(Tensor::f16(mask, [1, n_q, 1, n_k])?), // ggml's KQ mask, broadcast over heads
///     sinks: Some(sinks),                                 // one logit per query head
///     ..ForwardOptions::default()
/// };
/// # let _ = options; Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct ForwardOptions<'l, 'd> {
    /// Receives the natural-log sum of exp(logits) per row: f32 `[batch, n_q, n_q_heads, 1]`,
    /// -inf for a row with no allowed key (the sink included, when there is one).
    pub lse: Option<&'l mut TensorMut<'d>>,
    /// Position of query 0; `None` = bottom-right alignment (`n_k - n_q`, as in decode).
    pub q_pos0: Option<i64>,
    /// An additive mask added to the logits before the softmax (−inf masks), f16 (`u16` bits) or
    /// f32, shape `[batch or 1, n_q, 1 or n_q_heads, n_k]`: a size-1 axis broadcasts. This is
    /// ggml's KQ mask (causality, padding, several sequences in one batch); it applies together
    /// with the descriptor's causal flag. FLASH and SPARSE.
    pub mask: Option<Tensor<'d>>,
    /// ALiBi slopes, one per query head (`n_q_heads` values); overrides the descriptor's
    /// `max_bias`. With a mask the logit gets slope·mask, without one −slope·|qp − kp|.
    pub alibi_slopes: Option<&'l [f32]>,
    /// Attention sinks (gpt-oss), one logit per query head (`n_q_heads` values), added to every
    /// row's softmax denominator: o = Σ_j e^{s_j} v_j / (e^{sink_h} + Σ_j e^{s_j}).
    pub sinks: Option<&'l [f32]>,
}

/// Optional parts of a sharded forward call ([`Attention::forward_sharded`]).
#[derive(Debug)]
pub struct ShardedOptions<'l, 'd> {
    /// Which tokens each rank's K/V shard holds: CONTIGUOUS (the default; any lengths, shard r
    /// starting where shard r−1 ends) or ZIGZAG (the lengths [`ring_shard`](crate::ring_shard)
    /// gives).
    pub layout: RingLayout,
    /// LOCAL (default): rank r's queries are its own tokens. REPLICATED: every rank holds the
    /// same query rows, and the merged result is written to every output.
    pub queries: ShardQueries,
    /// One f32 `[batch, n_q, n_q_heads, 1]` LSE output per rank, or `None`.
    pub lse: Option<&'l mut [TensorMut<'d>]>,
    /// REPLICATED: position of query 0; `None` = bottom-right (`n - n_q`, n the total keys).
    pub q_pos0: Option<i64>,
}

impl Default for ShardedOptions<'_, '_> {
    fn default() -> Self {
        ShardedOptions {
            layout: RingLayout::CONTIGUOUS,
            queries: ShardQueries::LOCAL,
            lse: None,
            q_pos0: None,
        }
    }
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

    /// `forward` with the optional parts: an LSE output, the position of query 0, an additive
    /// mask, ALiBi slopes, attention sinks.
    pub fn forward_with(
        &self,
        q: &Tensor<'_>,
        k: &Tensor<'_>,
        v: &Tensor<'_>,
        out: &mut TensorMut<'_>,
        options: ForwardOptions<'_, '_>,
    ) -> Result<()> {
        self.check_per_head(options.alibi_slopes, "alibi_slopes")?;
        self.check_per_head(options.sinks, "sinks")?;
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
            mask: match &options.mask {
                Some(mask) => mask.as_raw(),
                None => std::ptr::null(),
            },
            alibi_slopes: options
                .alibi_slopes
                .map_or(std::ptr::null(), |s| s.as_ptr()),
            sinks: options.sinks.map_or(std::ptr::null(), |s| s.as_ptr()),
            ..sys::longattn_forward_args::default()
        };
        // Safety: the context and handle are live (self borrows the context); every view lies
        // inside a live borrow (checked when the view was built); the slopes and sinks slices hold
        // n_q_heads values (checked above), which is all the library reads; out and lse are
        // exclusive borrows, so they overlap neither each other nor any input; the library keeps
        // no pointer after it returns.
        let status =
            unsafe { sys::longattn_attention_forward(self.ctx.as_ptr(), self.raw.as_ptr(), &args) };
        self.ctx.check(status)
    }

    /// Attention over a sequence sharded across the ranks of a ring context
    /// (`ContextOptions::ring_devices`). `q`, `k`, `v` and `out` hold one tensor per rank (all
    /// the same length, the context's number of ranks); element r lives on rank r (host memory on
    /// the CPU). K and V must be token-major (a token's heads and dims within `strides[1]`).
    /// LOCAL queries: `q[r]` and `out[r]` have the rows and positions of `k[r]`. REPLICATED:
    /// every `q[r]` holds the same rows, and the merged result is written to every `out[r]`.
    /// FLASH and SPARSE; no mask, ALiBi, sinks or block formats on a ring.
    pub fn forward_sharded(
        &self,
        q: &[Tensor<'_>],
        k: &[Tensor<'_>],
        v: &[Tensor<'_>],
        out: &mut [TensorMut<'_>],
        options: ShardedOptions<'_, '_>,
    ) -> Result<()> {
        let n_shards = q.len();
        let lse_len = options.lse.as_ref().map(|l| l.len());
        if k.len() != n_shards
            || v.len() != n_shards
            || out.len() != n_shards
            || matches!(lse_len, Some(n) if n != n_shards)
        {
            return Err(Error::new(
                ErrorKind::ShapeMismatch,
                format!(
                    "shard counts differ: q {}, k {}, v {}, out {}, lse {:?}",
                    n_shards,
                    k.len(),
                    v.len(),
                    out.len(),
                    lse_len
                ),
            ));
        }
        let n_shards_c = i32::try_from(n_shards).map_err(|_| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("{} shards is too many", n_shards),
            )
        })?;
        // Tensor and TensorMut are #[repr(transparent)] over longattn_tensor, so each slice is an
        // array of n_shards C tensors.
        let args = sys::longattn_sharded_args {
            n_shards: n_shards_c,
            layout: options.layout.0,
            queries: options.queries.0,
            q: q.as_ptr().cast(),
            k: k.as_ptr().cast(),
            v: v.as_ptr().cast(),
            out: out.as_ptr().cast(),
            lse: match &options.lse {
                Some(lse) => lse.as_ptr().cast(),
                None => std::ptr::null(),
            },
            q_pos0: options.q_pos0.unwrap_or(sys::LONGATTN_Q_POS_BOTTOM_RIGHT),
            ..sys::longattn_sharded_args::default()
        };
        // Safety: the context and handle are live; each array holds n_shards views (checked
        // above), each inside a live borrow; the outputs are exclusive borrows, so no output
        // overlaps another output or an input; the library returns when every output is written
        // and keeps no pointer afterwards.
        let status = unsafe {
            sys::longattn_attention_forward_sharded(self.ctx.as_ptr(), self.raw.as_ptr(), &args)
        };
        self.ctx.check(status)
    }

    /// A per-head array (ALiBi slopes, sinks) must hold exactly `n_q_heads` values: the library
    /// reads that many.
    fn check_per_head(&self, values: Option<&[f32]>, name: &str) -> Result<()> {
        match values {
            Some(values) if values.len() != self.desc.n_q_heads => Err(Error::new(
                ErrorKind::ShapeMismatch,
                format!(
                    "{} has {} values; n_q_heads is {}",
                    name,
                    values.len(),
                    self.desc.n_q_heads
                ),
            )),
            _ => Ok(()),
        }
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
