//! Real attention on the CPU backend against the naive float64 reference in tests/common.

mod common;

use common::*;
use longattn::{
    Algorithm, Attention, AttentionDesc, Context, DType, ErrorKind, ForwardOptions, Tensor,
    TensorMut,
};

const F16_TOLERANCE: f64 = 1e-3;
const BF16_TOLERANCE: f64 = 1e-2;
const TEST_THREADS: u32 = 2;

/// Creates the handle, or None (with a note) when this build does not implement the algorithm yet.
fn create_or_skip<'c>(ctx: &'c Context, desc: &AttentionDesc, what: &str) -> Option<Attention<'c>> {
    match ctx.attention(desc) {
        Ok(attn) => Some(attn),
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            eprintln!("skipping {}: {}", what, e);
            None
        }
        Err(e) => panic!("{}: attention_create failed: {}", what, e),
    }
}

#[test]
fn library_identifies_itself() {
    assert_eq!(
        longattn::version() / 10000,
        longattn::sys::LONGATTN_VERSION_MAJOR
    );
    assert!(!longattn::build_info().is_empty());
    assert!(longattn::backend_available(longattn::Backend::CPU));
    assert_eq!(longattn::device_count(longattn::Backend::CPU).unwrap(), 1);
    assert!(
        longattn::status_string(longattn::sys::LONGATTN_ERROR_SHAPE_MISMATCH)
            .contains("SHAPE_MISMATCH")
    );
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    assert_eq!(ctx.backend(), longattn::Backend::CPU);
    assert_eq!(ctx.threads(), TEST_THREADS as usize);
    // scratch is kept between calls and only grows
    let before = ctx.scratch_bytes();
    let p = Problem::new(1, 64, 300, 4, 2, 64);
    let attn = ctx.attention(&desc_for(&p, Algorithm::FLASH)).unwrap();
    run_checked(&attn, &p, 1);
    assert!(ctx.scratch_bytes() >= before);
}

#[test]
fn flash_f32_matches_reference() {
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    let mut cases = Vec::new();
    // causal self-attention with GQA, odd length
    cases.push(Problem {
        causal: true,
        ..Problem::new(2, 37, 37, 4, 2, 32)
    });
    // a short query block at the end of a longer sequence, non-causal, MQA
    cases.push(Problem::new(1, 5, 70, 4, 1, 64));
    // head_dim_v != head_dim, explicit scale, softcap
    cases.push(Problem {
        dv: 24,
        scale: 0.3,
        softcap: 5.0,
        causal: true,
        ..Problem::new(1, 20, 33, 2, 2, 16)
    });
    // explicit q_pos0 (queries in the middle of the sequence; trailing keys masked by causality)
    cases.push(Problem {
        causal: true,
        q_pos0: Some(10),
        ..Problem::new(1, 8, 40, 2, 1, 32)
    });
    // q_pos0 before any key: every row empty (O = 0, LSE = -inf)
    cases.push(Problem {
        causal: true,
        q_pos0: Some(-20),
        ..Problem::new(1, 4, 16, 1, 1, 8)
    });
    for (index, p) in cases.iter().enumerate() {
        let attn = ctx.attention(&desc_for(p, Algorithm::FLASH)).unwrap();
        let (_, _, err) = run_checked(&attn, p, 100 + index as u64);
        eprintln!(
            "flash f32 {:?}: rel err {:e}",
            (p.n_q, p.n_k, p.hq, p.hkv, p.d, p.dv),
            err
        );
    }
}

/// Half-precision inputs (f16 or bf16) with the output in f32 and in the same half type.
fn run_half(dtype: DType, to_half: fn(f32) -> u16, from_half: fn(u16) -> f32, tolerance: f64) {
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    let p = Problem {
        causal: true,
        ..Problem::new(1, 29, 45, 4, 2, 64)
    };
    let attn = ctx.attention(&desc_for(&p, Algorithm::FLASH)).unwrap();
    let mut rng = Rng::new(7 + dtype.0 as u64);
    let halve = |x: Vec<f32>| -> Vec<u16> { x.into_iter().map(to_half).collect() };
    let q = halve(rng.vec(Problem::numel(p.q_shape())));
    let k = halve(rng.vec(Problem::numel(p.k_shape())));
    let v = halve(rng.vec(Problem::numel(p.v_shape())));
    let widen = |x: &[u16]| -> Vec<f32> { x.iter().map(|&h| from_half(h)).collect() };
    let (want, _) = reference(&p, &widen(&q), &widen(&k), &widen(&v));

    let q_view = Tensor::contiguous(&q, dtype, p.q_shape()).unwrap();
    let k_view = Tensor::contiguous(&k, dtype, p.k_shape()).unwrap();
    let v_view = Tensor::contiguous(&v, dtype, p.v_shape()).unwrap();

    let mut out32 = vec![POISON; Problem::numel(p.o_shape())];
    attn.forward(
        &q_view,
        &k_view,
        &v_view,
        &mut TensorMut::f32(&mut out32, p.o_shape()).unwrap(),
    )
    .unwrap();
    assert!(all_written(&out32));
    let err32 = rel_l2(&out32, &want);
    assert!(
        err32 < tolerance,
        "{:?} in, f32 out: rel err {:e}",
        dtype,
        err32
    );

    let mut out16 = vec![to_half(POISON); Problem::numel(p.o_shape())];
    attn.forward(
        &q_view,
        &k_view,
        &v_view,
        &mut TensorMut::contiguous(&mut out16, dtype, p.o_shape()).unwrap(),
    )
    .unwrap();
    let out16 = widen(&out16);
    assert!(all_written(&out16));
    let err16 = rel_l2(&out16, &want);
    assert!(
        err16 < tolerance,
        "{:?} in and out: rel err {:e}",
        dtype,
        err16
    );
    eprintln!(
        "{:?}: rel err f32 out {:e}, half out {:e}",
        dtype, err32, err16
    );
}

#[test]
fn flash_f16_matches_reference() {
    run_half(DType::F16, f32_to_f16, f16_to_f32, F16_TOLERANCE);
}

#[test]
fn flash_bf16_matches_reference() {
    run_half(DType::BF16, f32_to_bf16, bf16_to_f32, BF16_TOLERANCE);
}

/// K/V as a strided view into a head-major cache [heads][capacity][dim] of which only the first
/// n_k tokens are filled (the layout of many KV caches).
#[test]
fn strided_kv_cache_view() {
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    let p = Problem {
        causal: true,
        ..Problem::new(1, 3, 50, 4, 2, 32)
    };
    let capacity = 96;
    let attn = ctx.attention(&desc_for(&p, Algorithm::FLASH)).unwrap();
    let mut rng = Rng::new(11);
    let q = rng.vec(Problem::numel(p.q_shape()));
    let k_cache = rng.vec(p.hkv * capacity * p.d);
    let v_cache = rng.vec(p.hkv * capacity * p.d);
    let strides = [p.hkv * capacity * p.d, p.d, capacity * p.d, 1]; // batch, token, head, dim
                                                                    // the same keys, contiguous [1][n_k][hkv][d], for the reference
    let gather = |cache: &[f32]| -> Vec<f32> {
        let mut dense = Vec::with_capacity(p.n_k * p.hkv * p.d);
        for t in 0..p.n_k {
            for h in 0..p.hkv {
                dense.extend_from_slice(&cache[(h * capacity + t) * p.d..][..p.d]);
            }
        }
        dense
    };
    let mut out = vec![POISON; Problem::numel(p.o_shape())];
    attn.forward(
        &Tensor::f32(&q, p.q_shape()).unwrap(),
        &Tensor::new(&k_cache, DType::F32, p.k_shape(), strides).unwrap(),
        &Tensor::new(&v_cache, DType::F32, p.v_shape(), strides).unwrap(),
        &mut TensorMut::f32(&mut out, p.o_shape()).unwrap(),
    )
    .unwrap();
    let (want, _) = reference(&p, &q, &gather(&k_cache), &gather(&v_cache));
    let err = rel_l2(&out, &want);
    assert!(err < F32_TOLERANCE, "strided cache: rel err {:e}", err);
}

/// Decoding token by token against a growing cache gives the rows of one causal prefill.
#[test]
fn decode_steps_match_causal_prefill() {
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    let (n, hq, hkv, d) = (24, 4, 2, 32);
    let p = Problem {
        causal: true,
        ..Problem::new(1, n, n, hq, hkv, d)
    };
    let attn = ctx.attention(&desc_for(&p, Algorithm::FLASH)).unwrap();
    let mut rng = Rng::new(13);
    let q = rng.vec(n * hq * d);
    let k = rng.vec(n * hkv * d);
    let v = rng.vec(n * hkv * d);
    let mut prefill = vec![POISON; n * hq * d];
    attn.forward(
        &Tensor::f32(&q, p.q_shape()).unwrap(),
        &Tensor::f32(&k, p.k_shape()).unwrap(),
        &Tensor::f32(&v, p.v_shape()).unwrap(),
        &mut TensorMut::f32(&mut prefill, p.o_shape()).unwrap(),
    )
    .unwrap();
    for t in 1..=n {
        let mut step = vec![POISON; hq * d];
        attn.forward(
            &Tensor::f32(&q[(t - 1) * hq * d..t * hq * d], [1, 1, hq, d]).unwrap(),
            &Tensor::f32(&k[..t * hkv * d], [1, t, hkv, d]).unwrap(),
            &Tensor::f32(&v[..t * hkv * d], [1, t, hkv, d]).unwrap(),
            &mut TensorMut::f32(&mut step, [1, 1, hq, d]).unwrap(),
        )
        .unwrap();
        let row = &prefill[(t - 1) * hq * d..t * hq * d];
        let want: Vec<f64> = row.iter().map(|&x| x as f64).collect();
        let err = rel_l2(&step, &want);
        assert!(err < F32_TOLERANCE, "decode step {}: rel err {:e}", t, err);
    }
}

/// Attention over keys [0, n_k) equals the merge of attention over two halves.
#[test]
fn merge_of_two_key_halves_equals_full() {
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    let p = Problem::new(1, 6, 40, 2, 2, 16);
    let half = p.n_k / 2;
    let attn = ctx.attention(&desc_for(&p, Algorithm::FLASH)).unwrap();
    let mut rng = Rng::new(17);
    let q = rng.vec(Problem::numel(p.q_shape()));
    let k = rng.vec(Problem::numel(p.k_shape()));
    let v = rng.vec(Problem::numel(p.v_shape()));
    let kv_shape = [1, half, p.hkv, p.d];
    let part = |range: std::ops::Range<usize>| -> (Vec<f32>, Vec<f32>) {
        let row = p.hkv * p.d;
        let mut o = vec![POISON; Problem::numel(p.o_shape())];
        let mut l = vec![POISON; Problem::numel(p.lse_shape())];
        attn.forward_with(
            &Tensor::f32(&q, p.q_shape()).unwrap(),
            &Tensor::f32(&k[range.start * row..range.end * row], kv_shape).unwrap(),
            &Tensor::f32(&v[range.start * row..range.end * row], kv_shape).unwrap(),
            &mut TensorMut::f32(&mut o, p.o_shape()).unwrap(),
            ForwardOptions {
                lse: Some(&mut TensorMut::f32(&mut l, p.lse_shape()).unwrap()),
                q_pos0: None,
                ..ForwardOptions::default()
            },
        )
        .unwrap();
        (o, l)
    };
    let (o_a, l_a) = part(0..half);
    let (o_b, l_b) = part(half..p.n_k);
    let (want, want_lse) = reference(&p, &q, &k, &v);

    let mut o = vec![POISON; o_a.len()];
    let mut l = vec![POISON; l_a.len()];
    ctx.merge(
        &Tensor::f32(&o_a, p.o_shape()).unwrap(),
        &Tensor::f32(&l_a, p.lse_shape()).unwrap(),
        &Tensor::f32(&o_b, p.o_shape()).unwrap(),
        &Tensor::f32(&l_b, p.lse_shape()).unwrap(),
        &mut TensorMut::f32(&mut o, p.o_shape()).unwrap(),
        &mut TensorMut::f32(&mut l, p.lse_shape()).unwrap(),
    )
    .unwrap();
    assert!(rel_l2(&o, &want) < F32_TOLERANCE);
    assert!(lse_max_err(&l, &want_lse) < LSE_TOLERANCE);

    let (mut o_acc, mut l_acc) = (o_a.clone(), l_a.clone());
    ctx.merge_into(
        &mut TensorMut::f32(&mut o_acc, p.o_shape()).unwrap(),
        &mut TensorMut::f32(&mut l_acc, p.lse_shape()).unwrap(),
        &Tensor::f32(&o_b, p.o_shape()).unwrap(),
        &Tensor::f32(&l_b, p.lse_shape()).unwrap(),
    )
    .unwrap();
    assert!(rel_l2(&o_acc, &want) < F32_TOLERANCE);
}

#[test]
fn sparse_matches_masked_reference() {
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    let cases = [
        // Mistral-style sliding window plus StreamingLLM sinks
        Problem {
            causal: true,
            window_left: 7,
            n_global: 2,
            ..Problem::new(1, 48, 48, 4, 2, 32)
        },
        // ModernBERT-style symmetric local band, non-causal, with a global prefix
        Problem {
            window_left: 5,
            window_right: 5,
            n_global: 3,
            ..Problem::new(2, 40, 40, 2, 1, 16)
        },
        // decode-shaped: one query, window only
        Problem {
            causal: true,
            window_left: 9,
            ..Problem::new(1, 1, 64, 2, 2, 32)
        },
    ];
    for (index, p) in cases.iter().enumerate() {
        let attn = match create_or_skip(&ctx, &desc_for(p, Algorithm::SPARSE), "SPARSE") {
            Some(attn) => attn,
            None => return,
        };
        let (_, _, err) = run_checked(&attn, p, 200 + index as u64);
        eprintln!(
            "sparse {:?}: rel err {:e}",
            (p.window_left, p.window_right, p.n_global),
            err
        );
    }
}

/// Below hyper_min_seq_len HyperAttention is exact attention.
#[test]
fn hyper_is_exact_below_min_seq_len() {
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    for (index, causal) in [false, true].into_iter().enumerate() {
        let p = Problem {
            causal,
            ..Problem::new(1, 64, 64, 2, 1, 32)
        };
        let desc = AttentionDesc {
            hyper_min_seq_len: 1024,
            seed: 5,
            ..desc_for(&p, Algorithm::HYPER)
        };
        let attn = match create_or_skip(&ctx, &desc, "HYPER") {
            Some(attn) => attn,
            None => return,
        };
        run_checked(&attn, &p, 300 + index as u64);
    }
}

/// Several threads, each with its own context (Context is Send).
#[test]
fn one_context_per_thread() {
    const THREADS: usize = 4;
    let handles: Vec<_> = (0..THREADS)
        .map(|index| {
            std::thread::spawn(move || {
                let ctx = Context::cpu(1).unwrap();
                let p = Problem {
                    causal: true,
                    ..Problem::new(1, 17 + index, 17 + index, 2, 1, 16)
                };
                let attn = ctx.attention(&desc_for(&p, Algorithm::FLASH)).unwrap();
                for round in 0..3 {
                    run_checked(&attn, &p, 400 + (index * 10 + round) as u64);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

/// A context may move to another thread; tensors may be shared.
#[test]
fn handle_types_are_send_where_the_c_api_allows() {
    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}
    assert_send::<Context>();
    assert_send::<Tensor<'static>>();
    assert_sync::<Tensor<'static>>();
    assert_send::<TensorMut<'static>>();
    let ctx = Context::cpu(1).unwrap();
    let moved = std::thread::spawn(move || {
        let p = Problem::new(1, 4, 9, 1, 1, 8);
        let attn = ctx.attention(&desc_for(&p, Algorithm::FLASH)).unwrap();
        run_checked(&attn, &p, 500);
        drop(attn);
        ctx
    })
    .join()
    .unwrap();
    assert_eq!(moved.backend(), longattn::Backend::CPU);
}

/// In its approximate regime HyperAttention is a function of its seed: the same seed gives the
/// same bits, another seed other samples; every output is written and finite.
#[test]
fn hyper_approximate_regime_is_seeded() {
    let ctx = Context::cpu(TEST_THREADS).unwrap();
    let p = Problem::new(1, 512, 512, 2, 1, 32);
    let desc = |seed: u64| AttentionDesc {
        hyper_block_size: 64,
        hyper_sample_size: 64,
        hyper_min_seq_len: 128,
        seed,
        ..desc_for(&p, Algorithm::HYPER)
    };
    let attn_a = match create_or_skip(&ctx, &desc(1), "HYPER") {
        Some(attn) => attn,
        None => return,
    };
    let attn_b = ctx.attention(&desc(2)).unwrap();
    let mut rng = Rng::new(600);
    let q = rng.vec(Problem::numel(p.q_shape()));
    let k = rng.vec(Problem::numel(p.k_shape()));
    let v = rng.vec(Problem::numel(p.v_shape()));
    let run = |attn: &Attention<'_>| -> Vec<f32> {
        let mut out = vec![POISON; Problem::numel(p.o_shape())];
        attn.forward(
            &Tensor::f32(&q, p.q_shape()).unwrap(),
            &Tensor::f32(&k, p.k_shape()).unwrap(),
            &Tensor::f32(&v, p.v_shape()).unwrap(),
            &mut TensorMut::f32(&mut out, p.o_shape()).unwrap(),
        )
        .unwrap();
        assert!(
            out.iter().all(|x| x.is_finite()),
            "unwritten or non-finite output"
        );
        out
    };
    let (first, again, other) = (run(&attn_a), run(&attn_a), run(&attn_b));
    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&first), bits(&again), "same seed, different output");
    assert_ne!(
        bits(&first),
        bits(&other),
        "different seeds, identical output"
    );
}
