//! Wrong inputs give `Err` with a kind and a message — never a crash — and the context keeps
//! working afterwards.

use longattn::{
    Algorithm, AttentionDesc, Backend, Context, ContextOptions, DType, ErrorKind, Tensor, TensorMut,
};

const N: usize = 8;
const HQ: usize = 4;
const HKV: usize = 2;
const D: usize = 16;

fn data(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 37 % 101) as f32 / 101.0) - 0.5)
        .collect()
}

#[test]
fn view_larger_than_slice_is_rejected_in_rust() {
    let short = data(N * HQ * D - 1);
    let err = Tensor::f32(&short, [1, N, HQ, D]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShapeMismatch);
    assert!(err.message().contains("slice has"), "{}", err);

    // a strided view whose last element falls one past the end: 9 * 10 + 10 = 100
    let buf = data(100);
    let err = Tensor::new(&buf, DType::F32, [1, 10, 1, 11], [0, 10, 0, 1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShapeMismatch);
    assert!(Tensor::new(&buf, DType::F32, [1, 10, 1, 10], [0, 10, 0, 1]).is_ok());
}

#[test]
fn zero_sized_axis_and_dtype_mismatch_are_rejected_in_rust() {
    let buf = data(64);
    let err = Tensor::f32(&buf, [1, 0, 4, 16]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    // f16 data cannot be viewed through an f32 slice, nor f32 through u16
    assert_eq!(
        Tensor::contiguous(&buf, DType::F16, [1, 1, 4, 16])
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    let halves = vec![0u16; 64];
    assert_eq!(
        Tensor::contiguous(&halves, DType::F32, [1, 1, 2, 16])
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        Tensor::contiguous(&halves, DType(42), [1, 1, 2, 16])
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    // extents that overflow usize
    assert!(Tensor::new(&buf, DType::F32, [2, 1, 1, 1], [usize::MAX, 1, 1, 1]).is_err());
}

#[test]
fn mismatched_shapes_are_rejected_by_the_library() {
    let ctx = Context::cpu(1).unwrap();
    let attn = ctx.attention(&AttentionDesc::new(HQ, HKV, D)).unwrap();
    let q = data(N * HQ * D);
    let k = data(N * HKV * D);
    let v = data(N * HKV * D);
    let mut out = vec![0f32; N * HQ * D];
    let shape_q = [1, N, HQ, D];
    let shape_kv = [1, N, HKV, D];

    // q viewed with the kv head count: disagrees with the descriptor's n_q_heads
    let err = attn
        .forward(
            &Tensor::f32(&q, [1, N, HKV, D]).unwrap(),
            &Tensor::f32(&k, shape_kv).unwrap(),
            &Tensor::f32(&v, shape_kv).unwrap(),
            &mut TensorMut::f32(&mut out, shape_q).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShapeMismatch, "{}", err);
    assert!(!err.message().is_empty());
    eprintln!("wrong q heads: {}", err);

    // k and v with different token counts
    let err = attn
        .forward(
            &Tensor::f32(&q, shape_q).unwrap(),
            &Tensor::f32(&k, shape_kv).unwrap(),
            &Tensor::f32(&v[..(N - 1) * HKV * D], [1, N - 1, HKV, D]).unwrap(),
            &mut TensorMut::f32(&mut out, shape_q).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShapeMismatch, "{}", err);

    // an output viewed with the wrong head_dim
    let err = attn
        .forward(
            &Tensor::f32(&q, shape_q).unwrap(),
            &Tensor::f32(&k, shape_kv).unwrap(),
            &Tensor::f32(&v, shape_kv).unwrap(),
            &mut TensorMut::f32(&mut out, [1, N, HQ * 2, D / 2]).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShapeMismatch, "{}", err);

    // a zero stride on an axis longer than 1 makes k's tokens share memory
    let err = attn
        .forward(
            &Tensor::f32(&q, shape_q).unwrap(),
            &Tensor::new(&k, DType::F32, shape_kv, [0, 0, D, 1]).unwrap(),
            &Tensor::f32(&v, shape_kv).unwrap(),
            &mut TensorMut::f32(&mut out, shape_q).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadStride, "{}", err);

    // the context still works after the failures
    attn.forward(
        &Tensor::f32(&q, shape_q).unwrap(),
        &Tensor::f32(&k, shape_kv).unwrap(),
        &Tensor::f32(&v, shape_kv).unwrap(),
        &mut TensorMut::f32(&mut out, shape_q).unwrap(),
    )
    .unwrap();
    assert!(out.iter().all(|x| x.is_finite()));
}

#[test]
fn invalid_descriptors_are_rejected() {
    let ctx = Context::cpu(1).unwrap();
    let bad = [
        (
            "head_dim 0",
            AttentionDesc::new(4, 2, 0),
            ErrorKind::InvalidArgument,
        ),
        (
            "n_kv_heads does not divide n_q_heads",
            AttentionDesc::new(4, 3, 16),
            ErrorKind::InvalidArgument,
        ),
        (
            "NaN scale",
            AttentionDesc {
                scale: f32::NAN,
                ..AttentionDesc::new(4, 2, 16)
            },
            ErrorKind::InvalidArgument,
        ),
        (
            "unknown algorithm",
            AttentionDesc {
                algorithm: Algorithm(99),
                ..AttentionDesc::new(4, 2, 16)
            },
            ErrorKind::UnknownEnum,
        ),
    ];
    for (what, desc, kind) in bad {
        let err = ctx.attention(&desc).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), kind, "{}: {}", what, err);
        assert!(!err.message().is_empty(), "{}: empty message", what);
        eprintln!("{}: {}", what, err);
    }
    // FLASH ignores no mask field silently: a window is an error
    let err = ctx
        .attention(&AttentionDesc {
            window_left: Some(4),
            ..AttentionDesc::new(4, 2, 16)
        })
        .map(|_| ())
        .unwrap_err();
    eprintln!("FLASH with a window: {}", err);
}

#[test]
fn unknown_backend_is_an_error_not_ub() {
    let err = Context::new(&ContextOptions {
        backend: Backend(77),
        ..ContextOptions::default()
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownEnum, "{}", err);
    assert!(!err.message().is_empty());
    // a status this crate does not know keeps its code
    assert_eq!(ErrorKind::from_status(1234), ErrorKind::Unknown(1234));
    assert_eq!(ErrorKind::Unknown(1234).status(), 1234);
}
