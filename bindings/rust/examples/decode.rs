//! Decode against a KV cache: a causal prefill of a prompt, then one query token per step against
//! the growing cache, the way an LLM runtime calls attention.
//!
//! The cache is head-major, `[kv_heads][capacity][head_dim]`, and only its first `len` tokens are
//! filled, so K and V reach the library as strided views `[1, len, kv_heads, head_dim]` — no copy.
//! The last step is also computed as a split-KV decode (two chunks of the cache, merged by their
//! LSE) and both are checked against a plain computation.
//!
//!     cargo run --example decode

use longattn::{AttentionDesc, Context, DType, ForwardOptions, Tensor, TensorMut};

const N_Q_HEADS: usize = 8;
const N_KV_HEADS: usize = 2;
const HEAD_DIM: usize = 64;
const CAPACITY: usize = 256;
const PROMPT_TOKENS: usize = 100;
const DECODE_STEPS: usize = 28;

/// A KV cache laid out [kv_heads][capacity][head_dim], filled token by token.
struct KvCache {
    k: Vec<f32>,
    v: Vec<f32>,
    len: usize,
}

impl KvCache {
    fn new() -> KvCache {
        KvCache {
            k: vec![0.0; N_KV_HEADS * CAPACITY * HEAD_DIM],
            v: vec![0.0; N_KV_HEADS * CAPACITY * HEAD_DIM],
            len: 0,
        }
    }

    /// Appends one token's K and V rows ([kv_heads][head_dim] each).
    fn push(&mut self, k_token: &[f32], v_token: &[f32]) {
        assert!(self.len < CAPACITY, "cache full");
        for h in 0..N_KV_HEADS {
            let dst = (h * CAPACITY + self.len) * HEAD_DIM;
            self.k[dst..dst + HEAD_DIM].copy_from_slice(&k_token[h * HEAD_DIM..][..HEAD_DIM]);
            self.v[dst..dst + HEAD_DIM].copy_from_slice(&v_token[h * HEAD_DIM..][..HEAD_DIM]);
        }
        self.len += 1;
    }

    /// Element strides of a [batch, token, head, dim] view into the head-major cache.
    const STRIDES: [usize; 4] = [
        N_KV_HEADS * CAPACITY * HEAD_DIM,
        HEAD_DIM,
        CAPACITY * HEAD_DIM,
        1,
    ];

    /// Views of tokens [start, end) of the cache.
    fn views(&self, start: usize, end: usize) -> longattn::Result<(Tensor<'_>, Tensor<'_>)> {
        let shape = [1, end - start, N_KV_HEADS, HEAD_DIM];
        let offset = start * HEAD_DIM;
        Ok((
            Tensor::new(&self.k[offset..], DType::F32, shape, Self::STRIDES)?,
            Tensor::new(&self.v[offset..], DType::F32, shape, Self::STRIDES)?,
        ))
    }
}

/// Deterministic pseudo-random activations standing in for a model's projections.
fn activations(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

/// Plain attention of one query token over the cache (the check).
fn naive_decode(q: &[f32], cache: &KvCache) -> Vec<f32> {
    let scale = 1.0 / (HEAD_DIM as f64).sqrt();
    let group = N_Q_HEADS / N_KV_HEADS;
    let mut out = vec![0.0f32; N_Q_HEADS * HEAD_DIM];
    for h in 0..N_Q_HEADS {
        let hk = h / group;
        let row = |t: usize| (hk * CAPACITY + t) * HEAD_DIM;
        let logits: Vec<f64> = (0..cache.len)
            .map(|t| {
                let k = &cache.k[row(t)..][..HEAD_DIM];
                q[h * HEAD_DIM..][..HEAD_DIM]
                    .iter()
                    .zip(k)
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum::<f64>()
                    * scale
            })
            .collect();
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = logits.iter().map(|&l| (l - max).exp()).collect();
        let sum: f64 = weights.iter().sum();
        for c in 0..HEAD_DIM {
            let acc: f64 = (0..cache.len)
                .map(|t| weights[t] * cache.v[row(t) + c] as f64)
                .sum();
            out[h * HEAD_DIM + c] = (acc / sum) as f32;
        }
    }
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("{}", longattn::build_info());
    let ctx = Context::cpu(0)?;
    let attn = ctx.attention(&AttentionDesc {
        causal: true,
        ..AttentionDesc::new(N_Q_HEADS, N_KV_HEADS, HEAD_DIM)
    })?;
    println!(
        "context: backend {} with {} threads",
        ctx.backend().name(),
        ctx.threads()
    );

    let q_row = N_Q_HEADS * HEAD_DIM;
    let kv_row = N_KV_HEADS * HEAD_DIM;
    let mut cache = KvCache::new();

    // Prefill: the whole prompt at once, causal.
    let prompt_q = activations(1, PROMPT_TOKENS * q_row);
    let prompt_k = activations(2, PROMPT_TOKENS * kv_row);
    let prompt_v = activations(3, PROMPT_TOKENS * kv_row);
    for t in 0..PROMPT_TOKENS {
        cache.push(
            &prompt_k[t * kv_row..][..kv_row],
            &prompt_v[t * kv_row..][..kv_row],
        );
    }
    let mut prefill_out = vec![0.0f32; PROMPT_TOKENS * q_row];
    {
        let (k, v) = cache.views(0, cache.len)?;
        attn.forward(
            &Tensor::f32(&prompt_q, [1, PROMPT_TOKENS, N_Q_HEADS, HEAD_DIM])?,
            &k,
            &v,
            &mut TensorMut::f32(&mut prefill_out, [1, PROMPT_TOKENS, N_Q_HEADS, HEAD_DIM])?,
        )?;
    }
    println!("prefill: {} tokens", PROMPT_TOKENS);

    // Decode: one token per step. The query is the newest token (bottom-right alignment puts it
    // at position len - 1, so it sees the whole cache).
    let mut out = vec![0.0f32; q_row];
    let mut q = Vec::new();
    for step in 0..DECODE_STEPS {
        let seed = 100 + step as u64 * 3;
        q = activations(seed, q_row);
        cache.push(
            &activations(seed + 1, kv_row),
            &activations(seed + 2, kv_row),
        );
        let (k, v) = cache.views(0, cache.len)?;
        attn.forward(
            &Tensor::f32(&q, [1, 1, N_Q_HEADS, HEAD_DIM])?,
            &k,
            &v,
            &mut TensorMut::f32(&mut out, [1, 1, N_Q_HEADS, HEAD_DIM])?,
        )?;
        if step % 8 == 0 || step == DECODE_STEPS - 1 {
            println!(
                "step {:2}: cache {:3} tokens, out[0..4] = {:?}",
                step,
                cache.len,
                &out[..4]
            );
        }
    }

    // The last step again, as split-KV decode: two chunks of the cache, merged by their LSE.
    let split = cache.len / 2;
    let q_view = Tensor::f32(&q, [1, 1, N_Q_HEADS, HEAD_DIM])?;
    let o_shape = [1, 1, N_Q_HEADS, HEAD_DIM];
    let lse_shape = [1, 1, N_Q_HEADS, 1];
    let (mut o_a, mut lse_a) = (vec![0.0f32; q_row], vec![0.0f32; N_Q_HEADS]);
    let (mut o_b, mut lse_b) = (vec![0.0f32; q_row], vec![0.0f32; N_Q_HEADS]);
    for ((o, lse), (start, end)) in [(&mut o_a, &mut lse_a), (&mut o_b, &mut lse_b)]
        .into_iter()
        .zip([(0, split), (split, cache.len)])
    {
        let (k, v) = cache.views(start, end)?;
        attn.forward_with(
            &q_view,
            &k,
            &v,
            &mut TensorMut::f32(o, o_shape)?,
            // the query's position is the last token of the whole cache, not of the chunk
            ForwardOptions {
                lse: Some(&mut TensorMut::f32(lse, lse_shape)?),
                q_pos0: Some(cache.len as i64 - 1),
                ..ForwardOptions::default()
            },
        )?;
    }
    ctx.merge_into(
        &mut TensorMut::f32(&mut o_a, o_shape)?,
        &mut TensorMut::f32(&mut lse_a, lse_shape)?,
        &Tensor::f32(&o_b, o_shape)?,
        &Tensor::f32(&lse_b, lse_shape)?,
    )?;

    let want = naive_decode(&q, &cache);
    let direct_err = max_abs_diff(&out, &want);
    let split_err = max_abs_diff(&o_a, &want);
    println!(
        "last step vs plain attention: max |diff| = {:.2e} (direct), {:.2e} (split-KV + merge)",
        direct_err, split_err
    );
    const TOLERANCE: f32 = 1e-4;
    if direct_err > TOLERANCE || split_err > TOLERANCE {
        return Err("decode result differs from plain attention".into());
    }
    println!("ok");
    Ok(())
}
