//! Ring mode on the CPU's virtual devices: whole tensors through a ring context equal the plain
//! context (bit for bit with one rank), per-rank shard tensors through `forward_sharded` equal the
//! float64 reference, and the shard layouts cover every token once.

mod common;

use std::ops::Range;

use common::*;
use longattn::{
    ring_shard, Algorithm, Context, ContextOptions, ErrorKind, ForwardOptions, RingLayout,
    RingTransport, ShardQueries, ShardedOptions, Tensor, TensorMut,
};

/// Threads of every context here; a ring of N ranks gives each max(1, THREADS / N).
const THREADS: u32 = 2;

fn ring_context(ranks: u32, layout: RingLayout) -> Context {
    let ctx = Context::new(&ContextOptions {
        ring_devices: ranks,
        ring_layout: layout,
        ..ContextOptions::cpu(THREADS)
    })
    .unwrap_or_else(|e| panic!("ring of {} ranks: {}", ranks, e));
    assert_eq!(ctx.ring_devices(), ranks as usize);
    ctx
}

/// Largest |a − b| over two outputs of the same problem.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| if x == y { 0.0 } else { (x - y).abs() })
        .fold(0.0, f32::max)
}

#[test]
fn whole_tensors_on_a_ring_equal_the_plain_context() {
    let plain = Context::cpu(THREADS).unwrap();
    assert_eq!(plain.ring_devices(), 0);
    let cases = [
        // causal prefill (AUTO picks ZIGZAG), GQA, a length no layout divides evenly
        (
            Algorithm::FLASH,
            Problem {
                causal: true,
                ..Problem::new(1, 37, 37, 4, 2, 32)
            },
        ),
        // non-causal, batch 2
        (Algorithm::FLASH, Problem::new(2, 29, 29, 2, 1, 16)),
        // sliding window + global tokens (steps the window rules out are skipped)
        (
            Algorithm::SPARSE,
            Problem {
                causal: true,
                window_left: 6,
                n_global: 2,
                ..Problem::new(1, 45, 45, 4, 2, 32)
            },
        ),
        // decode over a long cache: the K/V shards stay in place and the partials are merged
        (
            Algorithm::FLASH,
            Problem {
                causal: true,
                ..Problem::new(1, 2, 80, 4, 1, 32)
            },
        ),
    ];
    for (index, (algorithm, p)) in cases.iter().enumerate() {
        let seed = 100 + index as u64;
        let desc = desc_for(p, *algorithm);
        let plain_attn = plain.attention(&desc).unwrap();
        let (want_out, want_lse, _) = run_checked(&plain_attn, p, seed);
        for ranks in [1u32, 2, 3, 4] {
            for layout in [RingLayout::AUTO, RingLayout::CONTIGUOUS, RingLayout::ZIGZAG] {
                let ring = ring_context(ranks, layout);
                let attn = ring.attention(&desc).unwrap();
                let (out, lse, _) = run_checked(&attn, p, seed);
                if ranks == 1 {
                    // one rank runs the ring schedule with the plain path's arithmetic
                    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&out),
                        bits(&want_out),
                        "1 rank, {:?}: out differs",
                        layout
                    );
                    assert_eq!(
                        bits(&lse),
                        bits(&want_lse),
                        "1 rank, {:?}: lse differs",
                        layout
                    );
                } else {
                    let diff = max_diff(&out, &want_out);
                    assert!(
                        diff < 1e-5,
                        "{} ranks, {:?}, {:?}: max |ring − plain| {:e}",
                        ranks,
                        layout,
                        p,
                        diff
                    );
                }
                // every rank allocated its own scratch; a rank out of range has none
                for rank in 0..ranks as usize {
                    assert!(
                        ring.rank_scratch_bytes(rank) > 0,
                        "rank {} has no scratch",
                        rank
                    );
                }
                assert_eq!(ring.rank_scratch_bytes(ranks as usize), 0);
            }
        }
    }
}

#[test]
fn ring_shards_cover_every_token_once() {
    for n in [1usize, 5, 37, 100] {
        for ranks in [1usize, 2, 3, 4] {
            for layout in [RingLayout::CONTIGUOUS, RingLayout::ZIGZAG] {
                let mut seen = vec![0u32; n];
                for rank in 0..ranks {
                    let segments = ring_shard(layout, n, ranks, rank).unwrap();
                    if layout == RingLayout::CONTIGUOUS {
                        assert!(segments[1].is_empty());
                    }
                    for segment in segments.iter() {
                        for t in segment.clone() {
                            seen[t] += 1;
                        }
                    }
                }
                assert!(
                    seen.iter().all(|&c| c == 1),
                    "n {} ranks {} {:?}: {:?}",
                    n,
                    ranks,
                    layout,
                    seen
                );
            }
        }
    }
    assert_eq!(
        ring_shard(RingLayout::ZIGZAG, 8, 2, 0).unwrap(),
        [0..2, 6..8]
    );
    assert!(ring_shard(RingLayout::CONTIGUOUS, 8, 2, 2).is_err());
}

#[test]
fn ring_transport_choice() {
    let ring = ring_context(2, RingLayout::AUTO);
    assert_eq!(ring.ring_transport(), RingTransport::HOST_STAGED); // AUTO resolved on the CPU
    let plain = Context::new(&ContextOptions::cpu(THREADS)).unwrap();
    assert_eq!(plain.ring_transport(), RingTransport::AUTO);
    let with = |ring_devices: u32, transport: RingTransport| {
        Context::new(&ContextOptions {
            ring_devices,
            ring_transport: transport,
            ..ContextOptions::cpu(THREADS)
        })
    };
    let staged = with(2, RingTransport::HOST_STAGED).unwrap();
    assert_eq!(staged.ring_transport(), RingTransport::HOST_STAGED);
    // the CPU has no peer copies and no NCCL; a transport without a ring; an unknown value
    assert_eq!(
        with(2, RingTransport::PEER).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    assert_eq!(
        with(2, RingTransport::NCCL).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    assert_eq!(
        with(0, RingTransport::HOST_STAGED).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        with(2, RingTransport(9)).unwrap_err().kind(),
        ErrorKind::UnknownEnum
    );
}

/// Rows `segments` of a contiguous `[1][n][heads][dim]` tensor, one after another.
fn gather(data: &[f32], heads: usize, dim: usize, segments: &[Range<usize>]) -> Vec<f32> {
    let row = heads * dim;
    let mut out = Vec::new();
    for segment in segments {
        out.extend_from_slice(&data[segment.start * row..segment.end * row]);
    }
    out
}

#[test]
fn sharded_forward_local_queries_and_replicated_decode() {
    let n = 53;
    for ranks in [2usize, 3, 4] {
        let ring = ring_context(ranks as u32, RingLayout::AUTO);
        for layout in [RingLayout::CONTIGUOUS, RingLayout::ZIGZAG] {
            for replicated in [false, true] {
                let p = Problem {
                    causal: true,
                    ..Problem::new(1, if replicated { 3 } else { n }, n, 4, 2, 32)
                };
                let attn = ring.attention(&desc_for(&p, Algorithm::FLASH)).unwrap();
                let mut rng = Rng::new(300 + ranks as u64 * 10 + replicated as u64);
                let q = rng.vec(Problem::numel(p.q_shape()));
                let k = rng.vec(Problem::numel(p.k_shape()));
                let v = rng.vec(Problem::numel(p.v_shape()));
                // each rank's tokens and the shard tensors holding them
                let segments: Vec<Vec<Range<usize>>> = (0..ranks)
                    .map(|r| {
                        ring_shard(layout, n, ranks, r)
                            .unwrap()
                            .iter()
                            .filter(|s| !s.is_empty())
                            .cloned()
                            .collect()
                    })
                    .collect();
                let rows: Vec<usize> = segments
                    .iter()
                    .map(|s| s.iter().map(|r| r.len()).sum())
                    .collect();
                let k_shards: Vec<Vec<f32>> =
                    segments.iter().map(|s| gather(&k, p.hkv, p.d, s)).collect();
                let v_shards: Vec<Vec<f32>> = segments
                    .iter()
                    .map(|s| gather(&v, p.hkv, p.dv, s))
                    .collect();
                let q_shards: Vec<Vec<f32>> = segments
                    .iter()
                    .map(|s| {
                        if replicated {
                            q.clone()
                        } else {
                            gather(&q, p.hq, p.d, s)
                        }
                    })
                    .collect();
                let q_rows = |r: usize| if replicated { p.n_q } else { rows[r] };
                let mut out_shards: Vec<Vec<f32>> = (0..ranks)
                    .map(|r| vec![POISON; q_rows(r) * p.hq * p.dv])
                    .collect();
                let mut lse_shards: Vec<Vec<f32>> =
                    (0..ranks).map(|r| vec![POISON; q_rows(r) * p.hq]).collect();
                {
                    let q_views: Vec<Tensor<'_>> = (0..ranks)
                        .map(|r| Tensor::f32(&q_shards[r], [1, q_rows(r), p.hq, p.d]).unwrap())
                        .collect();
                    let k_views: Vec<Tensor<'_>> = (0..ranks)
                        .map(|r| Tensor::f32(&k_shards[r], [1, rows[r], p.hkv, p.d]).unwrap())
                        .collect();
                    let v_views: Vec<Tensor<'_>> = (0..ranks)
                        .map(|r| Tensor::f32(&v_shards[r], [1, rows[r], p.hkv, p.dv]).unwrap())
                        .collect();
                    let mut out_views: Vec<TensorMut<'_>> = out_shards
                        .iter_mut()
                        .enumerate()
                        .map(|(r, o)| TensorMut::f32(o, [1, q_rows(r), p.hq, p.dv]).unwrap())
                        .collect();
                    let mut lse_views: Vec<TensorMut<'_>> = lse_shards
                        .iter_mut()
                        .enumerate()
                        .map(|(r, l)| TensorMut::f32(l, [1, q_rows(r), p.hq, 1]).unwrap())
                        .collect();
                    attn.forward_sharded(
                        &q_views,
                        &k_views,
                        &v_views,
                        &mut out_views,
                        ShardedOptions {
                            layout,
                            queries: if replicated {
                                ShardQueries::REPLICATED
                            } else {
                                ShardQueries::LOCAL
                            },
                            lse: Some(&mut lse_views),
                            q_pos0: None,
                        },
                    )
                    .unwrap_or_else(|e| {
                        panic!(
                            "{} ranks {:?} replicated {}: {}",
                            ranks, layout, replicated, e
                        )
                    });
                }
                let (want, want_lse) = reference(&p, &q, &k, &v);
                for r in 0..ranks {
                    // the whole-sequence query rows shard r holds
                    let global_rows: Vec<usize> = if replicated {
                        (0..p.n_q).collect()
                    } else {
                        segments[r].iter().flat_map(|s| s.clone()).collect()
                    };
                    let want_out: Vec<f64> = global_rows
                        .iter()
                        .flat_map(|&i| want[i * p.hq * p.dv..(i + 1) * p.hq * p.dv].to_vec())
                        .collect();
                    let want_l: Vec<f64> = global_rows
                        .iter()
                        .flat_map(|&i| want_lse[i * p.hq..(i + 1) * p.hq].to_vec())
                        .collect();
                    assert!(all_written(&out_shards[r]) && all_written(&lse_shards[r]));
                    let err = rel_l2(&out_shards[r], &want_out);
                    let lse_err = lse_max_err(&lse_shards[r], &want_l);
                    assert!(
                        err < F32_TOLERANCE && lse_err < LSE_TOLERANCE,
                        "{} ranks {:?} replicated {} rank {}: rel err {:e}, lse err {:e}",
                        ranks,
                        layout,
                        replicated,
                        r,
                        err,
                        lse_err
                    );
                }
            }
        }
    }
}

#[test]
fn ring_contexts_refuse_what_they_cannot_do() {
    let ring = ring_context(2, RingLayout::AUTO);
    let p = Problem::new(1, 8, 8, 2, 2, 32);
    let attn = ring.attention(&desc_for(&p, Algorithm::FLASH)).unwrap();
    let mut rng = Rng::new(400);
    let q = rng.vec(Problem::numel(p.q_shape()));
    let mut out = vec![POISON; Problem::numel(p.o_shape())];
    // an additive mask is not supported on a ring
    let mask = vec![0f32; p.n_q * p.n_k];
    let err = attn
        .forward_with(
            &Tensor::f32(&q, p.q_shape()).unwrap(),
            &Tensor::f32(&q, p.k_shape()).unwrap(),
            &Tensor::f32(&q, p.v_shape()).unwrap(),
            &mut TensorMut::f32(&mut out, p.o_shape()).unwrap(),
            ForwardOptions {
                mask: Some(Tensor::f32(&mask, [1, p.n_q, 1, p.n_k]).unwrap()),
                ..ForwardOptions::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{}", err);
    // shard arrays of different lengths are refused before the call
    let view = Tensor::f32(&q, p.q_shape()).unwrap();
    let mut outs = vec![TensorMut::f32(&mut out, p.o_shape()).unwrap()];
    let err = attn
        .forward_sharded(
            &[view, view],
            &[view, view],
            &[view],
            &mut outs,
            ShardedOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShapeMismatch, "{}", err);
    // a shard count other than the ring's is refused by the library
    let err = attn
        .forward_sharded(
            &[view],
            &[view],
            &[view],
            &mut outs,
            ShardedOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{}", err);
    assert!(err.message().contains("n_shards=1"), "{}", err);
    // a plain context has no ranks for a sharded call
    let plain = Context::cpu(1).unwrap();
    let plain_attn = plain.attention(&desc_for(&p, Algorithm::FLASH)).unwrap();
    let err = plain_attn
        .forward_sharded(
            &[view],
            &[view],
            &[view],
            &mut outs,
            ShardedOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{}", err);
    // an unknown layout is refused by the library
    let err = Context::new(&ContextOptions {
        ring_devices: 2,
        ring_layout: RingLayout(7),
        ..ContextOptions::cpu(1)
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownEnum, "{}", err);
}
