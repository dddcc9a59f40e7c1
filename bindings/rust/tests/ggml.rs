//! What ggml-style runtimes pass — an additive mask, ALiBi, attention sinks, Q8_0/Q4_0 K/V read
//! from a cache — on the CPU backend, against the naive float64 reference in tests/common.

mod common;

use common::*;
use longattn::{
    Algorithm, AttentionDesc, Context, DType, ErrorKind, ForwardOptions, Tensor, TensorMut,
};

/// fp32 accumulation against float64 (f32 inputs; quantised K/V are compared with the values
/// their blocks decode to).
const F32_TOLERANCE: f64 = 1e-5;
const LSE_TOLERANCE: f64 = 1e-4;
const TEST_THREADS: u32 = 2;
/// Share of mask entries set to −inf.
const MASKED_SHARE: f32 = 0.15;

/// Random inputs of a problem.
struct Inputs {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl Inputs {
    fn new(p: &Problem, seed: u64) -> Inputs {
        let mut rng = Rng::new(seed);
        Inputs {
            q: rng.vec(Problem::numel(p.q_shape())),
            k: rng.vec(Problem::numel(p.k_shape())),
            v: rng.vec(Problem::numel(p.v_shape())),
        }
    }
}

/// An additive mask of `shape` with values in (−2, 0], about MASKED_SHARE of them −inf, and the
/// whole of query row 0 −inf (a row with nothing allowed).
fn random_mask(shape: [usize; 4], seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut mask: Vec<f32> = (0..Problem::numel(shape))
        .map(|_| {
            let u = rng.uniform();
            if (u + 1.0) / 2.0 < MASKED_SHARE {
                f32::NEG_INFINITY
            } else {
                -(rng.uniform() + 1.0)
            }
        })
        .collect();
    let row = shape[3];
    for b in 0..shape[0] {
        for h in 0..shape[2] {
            let start = ((b * shape[1]) * shape[2] + h) * row;
            for x in &mut mask[start..start + row] {
                *x = f32::NEG_INFINITY;
            }
        }
    }
    mask
}

/// ggml's ALiBi slopes as the header defines them: n = the largest power of two <= n_heads,
/// m0 = 2^(−max_bias/n), m1 = 2^(−max_bias/2n); head h gets m0^(h+1) for h < n, else
/// m1^(2(h−n)+1).
fn alibi_slopes(n_heads: usize, max_bias: f32) -> Vec<f32> {
    let mut n = 1;
    while n * 2 <= n_heads {
        n *= 2;
    }
    let m0 = 2f32.powf(-max_bias / n as f32);
    let m1 = 2f32.powf(-max_bias / 2.0 / n as f32);
    (0..n_heads)
        .map(|h| {
            if h < n {
                m0.powf((h + 1) as f32)
            } else {
                m1.powf((2 * (h - n) + 1) as f32)
            }
        })
        .collect()
}

/// Outputs start poisoned; checks that every element was written and that out and LSE match the
/// reference with the same extras. Returns the relative error of out.
fn check(
    attn: &longattn::Attention<'_>,
    p: &Problem,
    inputs: &Inputs,
    mask: Option<Tensor<'_>>,
    extras: Extras<'_>,
    explicit_slopes: bool,
    what: &str,
) -> f64 {
    let mut out = vec![POISON; Problem::numel(p.o_shape())];
    let mut lse = vec![POISON; Problem::numel(p.lse_shape())];
    attn.forward_with(
        &Tensor::f32(&inputs.q, p.q_shape()).unwrap(),
        &Tensor::f32(&inputs.k, p.k_shape()).unwrap(),
        &Tensor::f32(&inputs.v, p.v_shape()).unwrap(),
        &mut TensorMut::f32(&mut out, p.o_shape()).unwrap(),
        ForwardOptions {
            lse: Some(&mut TensorMut::f32(&mut lse, p.lse_shape()).unwrap()),
            q_pos0: p.q_pos0,
            mask,
            alibi_slopes: if explicit_slopes { extras.slopes } else { None },
            sinks: extras.sinks,
        },
    )
    .unwrap_or_else(|e| panic!("{}: forward failed: {}", what, e));
    assert!(all_written(&out), "{}: output elements not written", what);
    assert!(all_written(&lse), "{}: LSE elements not written", what);
    let (want, want_lse) = reference_with(p, &inputs.q, &inputs.k, &inputs.v, &extras);
    let err = rel_l2(&out, &want);
    let lse_err = lse_max_err(&lse, &want_lse);
    assert!(err < F32_TOLERANCE, "{}: rel err {:e}", what, err);
    assert!(lse_err < LSE_TOLERANCE, "{}: lse err {:e}", what, lse_err);
    eprintln!("{}: rel err {:e}, lse err {:e}", what, err, lse_err);
    err
}

#[test]
fn additive_mask_f32_per_head_and_f16_broadcast() {
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    // f32 mask with its own values for every batch and head, no causal flag
    let p = Problem::new(2, 19, 45, 4, 2, 32);
    let inputs = Inputs::new(&p, 1);
    let shape = [p.batch, p.n_q, p.hq, p.n_k];
    let mask = random_mask(shape, 2);
    let attn = ctx.attention(&desc_for(&p, Algorithm::FLASH)).unwrap();
    check(
        &attn,
        &p,
        &inputs,
        Some(Tensor::f32(&mask, shape).unwrap()),
        Extras {
            mask: Some((&mask, shape)),
            ..Extras::default()
        },
        false,
        "f32 mask [b, n_q, hq, n_k]",
    );

    // f16 mask broadcast over batch and heads, together with the causal flag, FLASH and SPARSE
    let p = Problem {
        causal: true,
        window_left: 11,
        n_global: 2,
        ..Problem::new(2, 33, 33, 4, 1, 16)
    };
    let inputs = Inputs::new(&p, 3);
    let shape = [1, p.n_q, 1, p.n_k];
    let mask_bits: Vec<u16> = random_mask(shape, 4).into_iter().map(f32_to_f16).collect();
    let mask_values: Vec<f32> = mask_bits.iter().map(|&h| f16_to_f32(h)).collect();
    let sparse = ctx.attention(&desc_for(&p, Algorithm::SPARSE)).unwrap();
    let flash_problem = Problem {
        window_left: -1,
        n_global: 0,
        ..p
    };
    let flash = ctx
        .attention(&desc_for(&flash_problem, Algorithm::FLASH))
        .unwrap();
    for (attn, problem, name) in [
        (
            &flash,
            &flash_problem,
            "f16 mask [1, n_q, 1, n_k], causal FLASH",
        ),
        (
            &sparse,
            &p,
            "f16 mask [1, n_q, 1, n_k], causal SPARSE window 11 + 2 globals",
        ),
    ] {
        check(
            attn,
            problem,
            &inputs,
            Some(Tensor::f16(&mask_bits, shape).unwrap()),
            Extras {
                mask: Some((&mask_values, shape)),
                ..Extras::default()
            },
            false,
            name,
        );
    }
}

#[test]
fn alibi_from_max_bias_with_and_without_a_mask() {
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    const MAX_BIAS: f32 = 8.0;
    // 6 heads: not a power of two, so both slope sequences (m0 and m1) are used
    let p = Problem {
        causal: true,
        ..Problem::new(1, 21, 50, 6, 2, 32)
    };
    let slopes = alibi_slopes(p.hq, MAX_BIAS);
    let inputs = Inputs::new(&p, 10);
    let desc = |algorithm, problem: &Problem| AttentionDesc {
        max_bias: MAX_BIAS,
        ..desc_for(problem, algorithm)
    };
    let with_slopes = Extras {
        slopes: Some(&slopes),
        ..Extras::default()
    };
    // without a mask the logit gets −m_h·|qp − kp|
    let attn = ctx.attention(&desc(Algorithm::FLASH, &p)).unwrap();
    check(
        &attn,
        &p,
        &inputs,
        None,
        with_slopes,
        false,
        "ALiBi max_bias 8, causal FLASH",
    );
    let windowed = Problem {
        window_left: 9,
        ..p
    };
    let attn = ctx.attention(&desc(Algorithm::SPARSE, &windowed)).unwrap();
    check(
        &attn,
        &windowed,
        &inputs,
        None,
        with_slopes,
        false,
        "ALiBi max_bias 8, SPARSE window 9",
    );

    // ggml's convention: the runtime writes −|i − j| into the mask (−inf for future keys) and
    // the logit gets m_h·mask; the descriptor is not causal, the mask is
    let open = Problem { causal: false, ..p };
    let shape = [1, p.n_q, 1, p.n_k];
    let q_pos0 = (p.n_k - p.n_q) as i64;
    let mut distance_mask = Vec::with_capacity(Problem::numel(shape));
    for i in 0..p.n_q {
        for j in 0..p.n_k {
            let qp = q_pos0 + i as i64;
            let kp = j as i64;
            distance_mask.push(if kp > qp {
                f32::NEG_INFINITY
            } else {
                -((qp - kp) as f32)
            });
        }
    }
    let mask_bits: Vec<u16> = distance_mask.iter().map(|&x| f32_to_f16(x)).collect();
    let mask_values: Vec<f32> = mask_bits.iter().map(|&h| f16_to_f32(h)).collect();
    let attn = ctx.attention(&desc(Algorithm::FLASH, &open)).unwrap();
    check(
        &attn,
        &open,
        &inputs,
        Some(Tensor::f16(&mask_bits, shape).unwrap()),
        Extras {
            mask: Some((&mask_values, shape)),
            slopes: Some(&slopes),
            sinks: None,
        },
        false,
        "ALiBi max_bias 8 times a distance mask",
    );
}

#[test]
fn explicit_alibi_slopes_override_max_bias() {
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    let p = Problem {
        causal: true,
        ..Problem::new(1, 17, 40, 4, 4, 16)
    };
    let inputs = Inputs::new(&p, 20);
    let mut rng = Rng::new(21);
    let slopes: Vec<f32> = (0..p.hq).map(|_| (rng.uniform() + 1.0) / 2.0).collect();
    let attn = ctx
        .attention(&AttentionDesc {
            max_bias: 8.0,
            ..desc_for(&p, Algorithm::FLASH)
        })
        .unwrap();
    check(
        &attn,
        &p,
        &inputs,
        None,
        Extras {
            slopes: Some(&slopes),
            ..Extras::default()
        },
        true,
        "explicit slopes over max_bias 8",
    );
}

#[test]
fn attention_sinks_alone_and_with_every_other_extra() {
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    let mut rng = Rng::new(30);
    // query 0 sits at position −1: causally it sees no key, so its LSE is the sink and O = 0
    let p = Problem {
        causal: true,
        q_pos0: Some(-1),
        ..Problem::new(2, 9, 30, 4, 2, 32)
    };
    let sinks: Vec<f32> = (0..p.hq).map(|_| 2.0 * rng.uniform() + 1.0).collect();
    let inputs = Inputs::new(&p, 31);
    let attn = ctx.attention(&desc_for(&p, Algorithm::FLASH)).unwrap();
    let with_sinks = Extras {
        sinks: Some(&sinks),
        ..Extras::default()
    };
    check(
        &attn,
        &p,
        &inputs,
        None,
        with_sinks,
        false,
        "sinks, causal FLASH",
    );

    // the same row through the public API: LSE = sink, O = 0
    let mut out = vec![POISON; Problem::numel(p.o_shape())];
    let mut lse = vec![POISON; Problem::numel(p.lse_shape())];
    attn.forward_with(
        &Tensor::f32(&inputs.q, p.q_shape()).unwrap(),
        &Tensor::f32(&inputs.k, p.k_shape()).unwrap(),
        &Tensor::f32(&inputs.v, p.v_shape()).unwrap(),
        &mut TensorMut::f32(&mut out, p.o_shape()).unwrap(),
        ForwardOptions {
            lse: Some(&mut TensorMut::f32(&mut lse, p.lse_shape()).unwrap()),
            q_pos0: p.q_pos0,
            sinks: Some(&sinks),
            ..ForwardOptions::default()
        },
    )
    .unwrap();
    for h in 0..p.hq {
        assert!(
            (lse[h] - sinks[h]).abs() < 1e-6,
            "empty row {}: lse {} sink {}",
            h,
            lse[h],
            sinks[h]
        );
        assert!(out[h * p.dv..(h + 1) * p.dv].iter().all(|&x| x == 0.0));
    }

    // sinks + per-head f32 mask + explicit ALiBi slopes on SPARSE
    let p = Problem {
        causal: true,
        window_left: 7,
        n_global: 1,
        ..Problem::new(1, 26, 26, 4, 2, 32)
    };
    let inputs = Inputs::new(&p, 32);
    let shape = [1, p.n_q, p.hq, p.n_k];
    let mask = random_mask(shape, 33);
    let slopes: Vec<f32> = (0..p.hq).map(|_| (rng.uniform() + 1.0) / 4.0).collect();
    let attn = ctx.attention(&desc_for(&p, Algorithm::SPARSE)).unwrap();
    check(
        &attn,
        &p,
        &inputs,
        Some(Tensor::f32(&mask, shape).unwrap()),
        Extras {
            mask: Some((&mask, shape)),
            slopes: Some(&slopes),
            sinks: Some(&sinks),
        },
        true,
        "sinks + mask + slopes, SPARSE",
    );
}

/// A K or V cache in a block format, laid out [batch][heads][capacity][row + padding] (head-major)
/// or [batch][capacity][heads][row + padding] (token-major), with `strides[3]` = the block size:
/// a view of the first `tokens` tokens of the cache.
struct BlockCache {
    bytes: Vec<u8>,
    /// The values the blocks decode to, contiguous [batch][tokens][heads][dim] for the reference.
    dense: Vec<f32>,
    shape: [usize; 4],
    strides: [usize; 4],
    dtype: DType,
}

impl BlockCache {
    fn new(
        dtype: DType,
        shape: [usize; 4],
        capacity: usize,
        row_padding: usize,
        head_major: bool,
        seed: u64,
    ) -> Self {
        let [batch, tokens, heads, dim] = shape;
        let block_bytes = if dtype == DType::Q8_0 {
            Q8_0_BLOCK_BYTES
        } else {
            Q4_0_BLOCK_BYTES
        };
        let row = dim / QUANT_BLOCK * block_bytes + row_padding;
        const FILL: u8 = 0x5A; // bytes outside the view: never read
        let mut bytes = vec![FILL; batch * heads * capacity * row];
        let mut dense = vec![0f32; batch * tokens * heads * dim];
        let strides = if head_major {
            [heads * capacity * row, row, capacity * row, block_bytes]
        } else {
            [capacity * heads * row, heads * row, row, block_bytes]
        };
        let mut rng = Rng::new(seed);
        for b in 0..batch {
            for t in 0..tokens {
                for h in 0..heads {
                    let values = rng.vec(dim);
                    let at = b * strides[0] + t * strides[1] + h * strides[2];
                    for (blk, chunk) in values.chunks(QUANT_BLOCK).enumerate() {
                        let dst =
                            &mut dense[((b * tokens + t) * heads + h) * dim + blk * QUANT_BLOCK..];
                        let start = at + blk * block_bytes;
                        if dtype == DType::Q8_0 {
                            let (block, decoded) = quantize_q8_0(chunk);
                            bytes[start..start + block_bytes].copy_from_slice(&block);
                            dst[..QUANT_BLOCK].copy_from_slice(&decoded);
                        } else {
                            let (block, decoded) = quantize_q4_0(chunk);
                            bytes[start..start + block_bytes].copy_from_slice(&block);
                            dst[..QUANT_BLOCK].copy_from_slice(&decoded);
                        }
                    }
                }
            }
        }
        BlockCache {
            bytes,
            dense,
            shape,
            strides,
            dtype,
        }
    }

    fn view(&self) -> Tensor<'_> {
        Tensor::new(&self.bytes, self.dtype, self.shape, self.strides).unwrap()
    }
}

#[test]
fn q8_0_and_q4_0_kv_cache_prefill_and_decode() {
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    for dtype in [DType::Q8_0, DType::Q4_0] {
        for (n_q, n_k) in [(40, 40), (1, 150)] {
            let p = Problem {
                causal: true,
                ..Problem::new(2, n_q, n_k, 4, 2, 64)
            };
            let capacity = n_k + 7;
            let k = BlockCache::new(dtype, p.k_shape(), capacity, 6, true, 40 + n_q as u64);
            let v = BlockCache::new(dtype, p.v_shape(), capacity, 0, false, 50 + n_q as u64);
            let q = Rng::new(60).vec(Problem::numel(p.q_shape()));
            let attn = ctx.attention(&desc_for(&p, Algorithm::FLASH)).unwrap();
            let mut out = vec![POISON; Problem::numel(p.o_shape())];
            let mut lse = vec![POISON; Problem::numel(p.lse_shape())];
            attn.forward_with(
                &Tensor::f32(&q, p.q_shape()).unwrap(),
                &k.view(),
                &v.view(),
                &mut TensorMut::f32(&mut out, p.o_shape()).unwrap(),
                ForwardOptions {
                    lse: Some(&mut TensorMut::f32(&mut lse, p.lse_shape()).unwrap()),
                    ..ForwardOptions::default()
                },
            )
            .unwrap();
            assert!(all_written(&out) && all_written(&lse));
            let (want, want_lse) = reference(&p, &q, &k.dense, &v.dense);
            let err = rel_l2(&out, &want);
            let lse_err = lse_max_err(&lse, &want_lse);
            eprintln!(
                "{:?} K/V, n_q {} n_k {}: rel err {:e}, lse err {:e}",
                dtype, n_q, n_k, err, lse_err
            );
            assert!(err < F32_TOLERANCE, "{:?}: rel err {:e}", dtype, err);
            assert!(
                lse_err < LSE_TOLERANCE,
                "{:?}: lse err {:e}",
                dtype,
                lse_err
            );
        }
    }
}

#[test]
fn contiguous_block_views_and_their_checks() {
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    let p = Problem::new(1, 3, 5, 4, 2, 64);
    // contiguous Q8_0: two 34-byte blocks per (token, head) row
    let k = BlockCache::new(DType::Q8_0, p.k_shape(), p.n_k, 0, false, 70);
    let v = BlockCache::new(DType::Q8_0, p.v_shape(), p.n_k, 0, false, 71);
    let k_view = Tensor::q8_0(&k.bytes, p.k_shape()).unwrap();
    assert_eq!(k_view.as_raw().strides, [680, 136, 68, 34]);
    let q = Rng::new(72).vec(Problem::numel(p.q_shape()));
    let mut out = vec![POISON; Problem::numel(p.o_shape())];
    let attn = ctx.attention(&desc_for(&p, Algorithm::FLASH)).unwrap();
    attn.forward(
        &Tensor::f32(&q, p.q_shape()).unwrap(),
        &k_view,
        &Tensor::q8_0(&v.bytes, p.v_shape()).unwrap(),
        &mut TensorMut::f32(&mut out, p.o_shape()).unwrap(),
    )
    .unwrap();
    let (want, _) = reference(&p, &q, &k.dense, &v.dense);
    assert!(rel_l2(&out, &want) < F32_TOLERANCE);

    // bounds are checked per block: one byte short of the last block is refused
    let bytes = vec![0u8; 2 * Q4_0_BLOCK_BYTES * 3];
    assert!(Tensor::q4_0(&bytes, [1, 3, 1, 64]).is_ok());
    let err = Tensor::q4_0(&bytes[..bytes.len() - 1], [1, 3, 1, 64]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShapeMismatch, "{}", err);
    // a strided view whose blocks are 40 bytes apart needs 40 + 18 bytes per two-block row
    assert!(Tensor::new(&bytes[..58], DType::Q4_0, [1, 1, 1, 64], [0, 0, 0, 40]).is_ok());
    assert!(Tensor::new(&bytes[..57], DType::Q4_0, [1, 1, 1, 64], [0, 0, 0, 40]).is_err());
    // head_dim must be whole blocks; block formats are bytes, not f32 or u16
    let err = Tensor::q8_0(&bytes, [1, 1, 1, 40]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{}", err);
    let floats = vec![0f32; 64];
    assert_eq!(
        Tensor::contiguous(&floats, DType::Q8_0, [1, 1, 1, 32])
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        Tensor::contiguous(&bytes, DType::F32, [1, 1, 1, 4])
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    // the library: block formats are for K and V only
    let q_blocks = BlockCache::new(DType::Q8_0, p.q_shape(), p.n_q, 0, false, 73);
    let err = attn
        .forward(
            &Tensor::q8_0(&q_blocks.bytes, p.q_shape()).unwrap(),
            &k_view,
            &Tensor::q8_0(&v.bytes, p.v_shape()).unwrap(),
            &mut TensorMut::f32(&mut out, p.o_shape()).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{}", err);
}

#[test]
fn extras_are_checked() {
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    let p = Problem::new(1, 4, 8, 4, 2, 16);
    let inputs = Inputs::new(&p, 80);
    let attn = ctx.attention(&desc_for(&p, Algorithm::FLASH)).unwrap();
    let mut out = vec![POISON; Problem::numel(p.o_shape())];
    let run = |out: &mut [f32], options: ForwardOptions<'_, '_>| {
        attn.forward_with(
            &Tensor::f32(&inputs.q, p.q_shape()).unwrap(),
            &Tensor::f32(&inputs.k, p.k_shape()).unwrap(),
            &Tensor::f32(&inputs.v, p.v_shape()).unwrap(),
            &mut TensorMut::f32(out, p.o_shape()).unwrap(),
            options,
        )
    };
    // per-head arrays hold exactly n_q_heads values (the library reads that many)
    let three = [0.5f32; 3];
    for options in [
        ForwardOptions {
            sinks: Some(&three),
            ..ForwardOptions::default()
        },
        ForwardOptions {
            alibi_slopes: Some(&three),
            ..ForwardOptions::default()
        },
    ] {
        let err = run(&mut out, options).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ShapeMismatch, "{}", err);
        assert!(err.message().contains("n_q_heads is 4"), "{}", err);
    }
    // a NaN sink and a bf16 mask are refused by the library, with a message
    let nan_sinks = [0.0, f32::NAN, 0.0, 0.0];
    let err = run(
        &mut out,
        ForwardOptions {
            sinks: Some(&nan_sinks),
            ..ForwardOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{}", err);
    assert!(err.message().contains("sinks"), "{}", err);
    let bf16_mask = vec![0u16; p.n_q * p.n_k];
    let err = run(
        &mut out,
        ForwardOptions {
            mask: Some(Tensor::bf16(&bf16_mask, [1, p.n_q, 1, p.n_k]).unwrap()),
            ..ForwardOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{}", err);
    // a mask of the wrong length
    let short_mask = vec![0f32; p.n_q * (p.n_k - 1)];
    let err = run(
        &mut out,
        ForwardOptions {
            mask: Some(Tensor::f32(&short_mask, [1, p.n_q, 1, p.n_k - 1]).unwrap()),
            ..ForwardOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShapeMismatch, "{}", err);
    // and the context still works
    let sinks = [0.25f32; 4];
    run(
        &mut out,
        ForwardOptions {
            sinks: Some(&sinks),
            ..ForwardOptions::default()
        },
    )
    .unwrap();
    assert!(all_written(&out));
}
