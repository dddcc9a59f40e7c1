//! Test helpers: a seeded RNG, f16/bf16 conversions, a naive float64 attention reference with the
//! library's mask semantics, and error norms.

#![allow(dead_code)]

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

/// Naive float64 attention: returns (out [b][n_q][hq][dv], lse [b][n_q][hq]).
pub fn reference(p: &Problem, q: &[f32], k: &[f32], v: &[f32]) -> (Vec<f64>, Vec<f64>) {
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
                let mut max = f64::NEG_INFINITY;
                for j in 0..p.n_k {
                    logits[j] = f64::NEG_INFINITY;
                    if !p.allows(qp, j as i64) {
                        continue;
                    }
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
                    logits[j] = s;
                    max = max.max(s);
                }
                if max == f64::NEG_INFINITY {
                    continue; // empty row: O = 0, LSE = -inf
                }
                let o = &mut out[((b * p.n_q + i) * p.hq + h) * p.dv..][..p.dv];
                let mut sum = 0.0;
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
