//! Test helpers: a seeded RNG, f16/bf16 conversions, a naive float64 attention reference with the
//! library's mask semantics, and error norms.

#![allow(dead_code)]

use longattn::{Algorithm, Attention, AttentionDesc, ForwardOptions, Tensor, TensorMut};

/// SplitMix64: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        const MANTISSA_BITS: u32 = 24;
        let unit =
            (self.next_u64() >> (64 - MANTISSA_BITS)) as f32 / (1u32 << MANTISSA_BITS) as f32;
        2.0 * unit - 1.0
    }

    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform()).collect()
    }
}

// ---- half-precision conversions (round to nearest even) ---------------------------------------

pub fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) as u16) | 0x40;
    }
    let rounding = 0x7FFF + ((bits >> 16) & 1);
    ((bits.wrapping_add(rounding)) >> 16) as u16
}

pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

pub fn f32_to_f16(x: f32) -> u16 {
    const F16_MAX_EXP: i32 = 15;
    const F16_MIN_NORMAL_EXP: i32 = -14;
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xFF) as i32 - 127;
    let mant = bits & 0x7F_FFFF;
    if exp == 128 {
        return sign | 0x7C00 | if mant != 0 { 0x200 } else { 0 };
    }
    if exp > F16_MAX_EXP {
        return sign | 0x7C00;
    }
    if exp >= F16_MIN_NORMAL_EXP {
        // normal: keep 10 mantissa bits, round half to even on the 13 dropped
        let mut h = (((exp + 15) as u32) << 10) | (mant >> 13);
        let rest = mant & 0x1FFF;
        if rest > 0x1000 || (rest == 0x1000 && (h & 1) == 1) {
            h += 1; // may carry into the exponent, which is the correct rounding
        }
        return sign | h as u16;
    }
    // subnormal (or zero): value = m * 2^-24
    let full = mant | 0x80_0000; // 24-bit significand of 1.mant
    let shift = (F16_MIN_NORMAL_EXP - exp) as u32 + 13;
    if shift > 24 {
        return sign;
    }
    let mut h = full >> shift;
    let rest = full & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    if rest > half || (rest == half && (h & 1) == 1) {
        h += 1;
    }
    sign | h as u16
}

pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1F) as u32;
    let mant = (h & 0x3FF) as u32;
    let bits = if exp == 0 {
        if mant == 0 {
            sign
        } else {
            // subnormal: mant * 2^-24
            let value = mant as f32 * (2.0f32).powi(-24);
            return if sign != 0 { -value } else { value };
        }
    } else if exp == 0x1F {
        sign | 0x7F80_0000 | (mant << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (mant << 13)
    };
    f32::from_bits(bits)
}

// ---- reference attention ---------------------------------------------------------------------

/// One attention problem in the library's terms (contiguous [b][t][h][d] inputs).
#[derive(Clone, Copy, Debug)]
pub struct Problem {
    pub batch: usize,
    pub n_q: usize,
    pub n_k: usize,
    pub hq: usize,
    pub hkv: usize,
    pub d: usize,
    pub dv: usize,
    /// 0 = 1/sqrt(d)
    pub scale: f32,
    pub softcap: f32,
    pub causal: bool,
    pub window_left: i64,
    pub window_right: i64,
    pub n_global: i64,
    /// None = bottom-right (n_k - n_q)
    pub q_pos0: Option<i64>,
}

impl Problem {
    pub fn new(batch: usize, n_q: usize, n_k: usize, hq: usize, hkv: usize, d: usize) -> Problem {
        Problem {
            batch,
            n_q,
            n_k,
            hq,
            hkv,
            d,
            dv: d,
            scale: 0.0,
            softcap: 0.0,
            causal: false,
            window_left: -1,
            window_right: -1,
            n_global: 0,
            q_pos0: None,
        }
    }
    pub fn q_shape(&self) -> [usize; 4] {
        [self.batch, self.n_q, self.hq, self.d]
    }
    pub fn k_shape(&self) -> [usize; 4] {
        [self.batch, self.n_k, self.hkv, self.d]
    }
    pub fn v_shape(&self) -> [usize; 4] {
        [self.batch, self.n_k, self.hkv, self.dv]
    }
    pub fn o_shape(&self) -> [usize; 4] {
        [self.batch, self.n_q, self.hq, self.dv]
    }
    pub fn lse_shape(&self) -> [usize; 4] {
        [self.batch, self.n_q, self.hq, 1]
    }
    pub fn numel(shape: [usize; 4]) -> usize {
        shape.iter().product()
    }

    fn allows(&self, qp: i64, kp: i64) -> bool {
        let causal_ok = !self.causal || kp <= qp;
        let band = (self.window_left < 0 || qp - kp <= self.window_left)
            && (self.window_right < 0 || kp - qp <= self.window_right);
        let global = kp < self.n_global || qp < self.n_global;
        causal_ok && (band || global)
    }
}

/// The descriptor of a problem (the extras stay at their defaults).
pub fn desc_for(p: &Problem, algorithm: Algorithm) -> AttentionDesc {
    let window = |w: i64| if w < 0 { None } else { Some(w as usize) };
    AttentionDesc {
        algorithm,
        head_dim_v: p.dv,
        scale: p.scale,
        softcap: p.softcap,
        causal: p.causal,
        window_left: window(p.window_left),
        window_right: window(p.window_right),
        n_global: p.n_global as usize,
        ..AttentionDesc::new(p.hq, p.hkv, p.d)
    }
}

/// Optional parts of a forward call, in the reference's terms (see `longattn_forward_args`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Extras<'a> {
    /// Additive mask values (f16 masks already widened), contiguous, with their shape
    /// `[batch or 1, n_q, 1 or hq, n_k]`.
    pub mask: Option<(&'a [f32], [usize; 4])>,
    /// ALiBi slope per query head.
    pub slopes: Option<&'a [f32]>,
    /// Sink logit per query head.
    pub sinks: Option<&'a [f32]>,
}

/// Naive float64 attention: returns (out [b][n_q][hq][dv], lse [b][n_q][hq]).
pub fn reference(p: &Problem, q: &[f32], k: &[f32], v: &[f32]) -> (Vec<f64>, Vec<f64>) {
    reference_with(p, q, k, v, &Extras::default())
}

/// Naive float64 attention with ggml's extras, as the header defines them: the logit of key j is
/// softcap(scale·q·k_j) + bias, where bias = mask (slope·mask with ALiBi) or, with ALiBi and no
/// mask, −slope·|qp − kp|; a −inf mask value removes the key. A sink adds e^{sink} to the
/// denominator (and so to the LSE) without a value.
pub fn reference_with(
    p: &Problem,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    ex: &Extras<'_>,
) -> (Vec<f64>, Vec<f64>) {
    let scale = if p.scale > 0.0 {
        p.scale as f64
    } else {
        1.0 / (p.d as f64).sqrt()
    };
    let group = p.hq / p.hkv;
    let q_pos0 = p.q_pos0.unwrap_or(p.n_k as i64 - p.n_q as i64);
    let mut out = vec![0.0f64; p.batch * p.n_q * p.hq * p.dv];
    let mut lse = vec![f64::NEG_INFINITY; p.batch * p.n_q * p.hq];
    let mut logits = vec![f64::NEG_INFINITY; p.n_k];
    for b in 0..p.batch {
        for i in 0..p.n_q {
            let qp = q_pos0 + i as i64;
            for h in 0..p.hq {
                let hk = h / group;
                let q_row = &q[((b * p.n_q + i) * p.hq + h) * p.d..][..p.d];
                let slope = ex.slopes.map(|s| s[h] as f64);
                let mut max = f64::NEG_INFINITY;
                for j in 0..p.n_k {
                    logits[j] = f64::NEG_INFINITY;
                    if !p.allows(qp, j as i64) {
                        continue;
                    }
                    let bias = match ex.mask {
                        Some((mask, shape)) => {
                            let mb = if shape[0] == 1 { 0 } else { b };
                            let mh = if shape[2] == 1 { 0 } else { h };
                            let m =
                                mask[((mb * shape[1] + i) * shape[2] + mh) * shape[3] + j] as f64;
                            if m == f64::NEG_INFINITY {
                                continue;
                            }
                            slope.map_or(m, |s| s * m)
                        }
                        None => slope.map_or(0.0, |s| -s * (qp - j as i64).abs() as f64),
                    };
                    let k_row = &k[((b * p.n_k + j) * p.hkv + hk) * p.d..][..p.d];
                    let dot: f64 = q_row
                        .iter()
                        .zip(k_row)
                        .map(|(&a, &c)| a as f64 * c as f64)
                        .sum();
                    let mut s = dot * scale;
                    if p.softcap > 0.0 {
                        s = p.softcap as f64 * (s / p.softcap as f64).tanh();
                    }
                    s += bias;
                    logits[j] = s;
                    max = max.max(s);
                }
                let sink = ex.sinks.map_or(f64::NEG_INFINITY, |s| s[h] as f64);
                let max = max.max(sink);
                if max == f64::NEG_INFINITY {
                    continue; // empty row: O = 0, LSE = -inf
                }
                let o = &mut out[((b * p.n_q + i) * p.hq + h) * p.dv..][..p.dv];
                let mut sum = (sink - max).exp(); // 0 without a sink
                for j in 0..p.n_k {
                    if logits[j] == f64::NEG_INFINITY {
                        continue;
                    }
                    let w = (logits[j] - max).exp();
                    sum += w;
                    let v_row = &v[((b * p.n_k + j) * p.hkv + hk) * p.dv..][..p.dv];
                    for (oc, &vc) in o.iter_mut().zip(v_row) {
                        *oc += w * vc as f64;
                    }
                }
                for oc in o.iter_mut() {
                    *oc /= sum;
                }
                lse[(b * p.n_q + i) * p.hq + h] = max + sum.ln();
            }
        }
    }
    (out, lse)
}

// ---- ggml block formats, written from the header's definition --------------------------------

/// Values per block of Q8_0 and Q4_0.
pub const QUANT_BLOCK: usize = 32;
pub const Q8_0_BLOCK_BYTES: usize = 34;
pub const Q4_0_BLOCK_BYTES: usize = 18;
const Q8_0_MAX: f32 = 127.0;
const Q4_0_OFFSET: i32 = 8;
const Q4_0_MAX_NIBBLE: i32 = 15;

/// Quantises 32 values into one Q8_0 block: fp16 scale d = max|x| / 127, then round(x / d) as
/// int8. Returns the block and the values it decodes to (d·q, with d the stored fp16 scale).
pub fn quantize_q8_0(x: &[f32]) -> ([u8; Q8_0_BLOCK_BYTES], [f32; QUANT_BLOCK]) {
    assert_eq!(x.len(), QUANT_BLOCK);
    let amax = x.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    let d_bits = f32_to_f16(amax / Q8_0_MAX);
    let d = f16_to_f32(d_bits);
    let mut block = [0u8; Q8_0_BLOCK_BYTES];
    block[..2].copy_from_slice(&d_bits.to_le_bytes());
    let mut decoded = [0f32; QUANT_BLOCK];
    for i in 0..QUANT_BLOCK {
        let q = if d == 0.0 {
            0
        } else {
            (x[i] / d).round().clamp(-Q8_0_MAX, Q8_0_MAX) as i8
        };
        block[2 + i] = q as u8;
        decoded[i] = d * q as f32;
    }
    (block, decoded)
}

/// Quantises 32 values into one Q4_0 block: fp16 scale d = (the value of largest magnitude) / −8,
/// nibbles round(x / d) + 8 clamped to 0..=15; byte j holds value j (low nibble) and value j + 16
/// (high nibble). Returns the block and the values it decodes to, d·(nibble − 8).
pub fn quantize_q4_0(x: &[f32]) -> ([u8; Q4_0_BLOCK_BYTES], [f32; QUANT_BLOCK]) {
    assert_eq!(x.len(), QUANT_BLOCK);
    let extreme = x
        .iter()
        .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
    let d_bits = f32_to_f16(extreme / -(Q4_0_OFFSET as f32));
    let d = f16_to_f32(d_bits);
    let mut block = [0u8; Q4_0_BLOCK_BYTES];
    block[..2].copy_from_slice(&d_bits.to_le_bytes());
    let mut nibbles = [0u8; QUANT_BLOCK];
    let mut decoded = [0f32; QUANT_BLOCK];
    for i in 0..QUANT_BLOCK {
        let q = if d == 0.0 {
            Q4_0_OFFSET
        } else {
            ((x[i] / d).round() as i32 + Q4_0_OFFSET).clamp(0, Q4_0_MAX_NIBBLE)
        };
        nibbles[i] = q as u8;
        decoded[i] = d * (q - Q4_0_OFFSET) as f32;
    }
    for j in 0..QUANT_BLOCK / 2 {
        block[2 + j] = nibbles[j] | (nibbles[j + QUANT_BLOCK / 2] << 4);
    }
    (block, decoded)
}

/// ‖got − want‖₂ / ‖want‖₂ (NaN anywhere gives NaN).
pub fn rel_l2(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let mut diff = 0.0;
    let mut norm = 0.0;
    for (&g, &w) in got.iter().zip(want) {
        diff += (g as f64 - w) * (g as f64 - w);
        norm += w * w;
    }
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}

/// Largest |got − want| over the LSE rows; -inf must match -inf exactly.
pub fn lse_max_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let mut worst = 0.0f64;
    for (&g, &w) in got.iter().zip(want) {
        if w == f64::NEG_INFINITY {
            if g != f32::NEG_INFINITY {
                return f64::INFINITY;
            }
            continue;
        }
        let err = (g as f64 - w).abs();
        if err.is_nan() {
            return f64::NAN;
        }
        worst = worst.max(err);
    }
    worst
}

/// A value no correct kernel writes: outputs are filled with it first, so an element the library
/// forgot to write shows up.
pub const POISON: f32 = f32::NAN;

pub fn all_written(values: &[f32]) -> bool {
    values.iter().all(|x| !x.is_nan())
}

/// Tolerances of f32 results against the float64 reference: relative L2 error of out, largest
/// |LSE − reference|.
pub const F32_TOLERANCE: f64 = 1e-5;
pub const LSE_TOLERANCE: f64 = 1e-4;

/// Runs p with f32 inputs drawn from `seed` (out and LSE poisoned first), checks that every element
/// was written and that both match the float64 reference; returns out, LSE and out's relative error.
pub fn run_checked(attn: &Attention<'_>, p: &Problem, seed: u64) -> (Vec<f32>, Vec<f32>, f64) {
    let mut rng = Rng::new(seed);
    let q = rng.vec(Problem::numel(p.q_shape()));
    let k = rng.vec(Problem::numel(p.k_shape()));
    let v = rng.vec(Problem::numel(p.v_shape()));
    let mut out = vec![POISON; Problem::numel(p.o_shape())];
    let mut lse = vec![POISON; Problem::numel(p.lse_shape())];
    attn.forward_with(
        &Tensor::f32(&q, p.q_shape()).unwrap(),
        &Tensor::f32(&k, p.k_shape()).unwrap(),
        &Tensor::f32(&v, p.v_shape()).unwrap(),
        &mut TensorMut::f32(&mut out, p.o_shape()).unwrap(),
        ForwardOptions {
            lse: Some(&mut TensorMut::f32(&mut lse, p.lse_shape()).unwrap()),
            q_pos0: p.q_pos0,
            ..ForwardOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("forward {:?}: {}", p, e));
    assert!(
        all_written(&out),
        "some output elements were not written: {:?}",
        p
    );
    assert!(
        all_written(&lse),
        "some LSE elements were not written: {:?}",
        p
    );
    let (want, want_lse) = reference(p, &q, &k, &v);
    let err = rel_l2(&out, &want);
    let lse_err = lse_max_err(&lse, &want_lse);
    assert!(err < F32_TOLERANCE, "rel err {:e} for {:?}", err, p);
    assert!(lse_err < LSE_TOLERANCE, "lse err {:e} for {:?}", lse_err, p);
    (out, lse, err)
}
