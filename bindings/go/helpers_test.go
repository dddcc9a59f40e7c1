package longattn

import (
	"math"
)

// rng is SplitMix64: small, seeded, reproducible.
type rng struct{ state uint64 }

func (r *rng) next() uint64 {
	r.state += 0x9E3779B97F4A7C15
	z := r.state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// uniform returns a value in [-1, 1).
func (r *rng) uniform() float32 {
	const mantissaBits = 24
	return 2*float32(r.next()>>(64-mantissaBits))/float32(1<<mantissaBits) - 1
}

func (r *rng) vec(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = r.uniform()
	}
	return out
}

// ---- half-precision conversions (round to nearest even) ----

func f32ToBF16(x float32) uint16 {
	bits := math.Float32bits(x)
	if x != x {
		return uint16(bits>>16) | 0x40
	}
	rounding := uint32(0x7FFF) + ((bits >> 16) & 1)
	return uint16((bits + rounding) >> 16)
}

func bf16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

func f32ToF16(x float32) uint16 {
	const maxExp, minNormalExp = 15, -14
	bits := math.Float32bits(x)
	sign := uint16((bits >> 16) & 0x8000)
	exp := int((bits>>23)&0xFF) - 127
	mant := bits & 0x7FFFFF
	if exp == 128 {
		if mant != 0 {
			return sign | 0x7E00
		}
		return sign | 0x7C00
	}
	if exp > maxExp {
		return sign | 0x7C00
	}
	if exp >= minNormalExp {
		h := uint32(exp+15)<<10 | mant>>13
		rest := mant & 0x1FFF
		if rest > 0x1000 || (rest == 0x1000 && h&1 == 1) {
			h++ // a carry into the exponent is the correct rounding
		}
		return sign | uint16(h)
	}
	full := mant | 0x800000
	shift := uint(minNormalExp-exp) + 13
	if shift > 24 {
		return sign
	}
	h := full >> shift
	rest := full & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rest > half || (rest == half && h&1 == 1) {
		h++
	}
	return sign | uint16(h)
}

func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1F
	mant := uint32(h & 0x3FF)
	switch {
	case exp == 0:
		value := float32(mant) * float32(math.Pow(2, -24))
		if sign != 0 {
			return -value
		}
		return value
	case exp == 0x1F:
		return math.Float32frombits(sign | 0x7F800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// ---- reference attention ----

// problem is one attention problem in the library's terms (contiguous [b][t][h][d] inputs).
type problem struct {
	batch, nQ, nK, hq, hkv, d, dv int
	scale, softcap                float32
	causal                        bool
	windowLeft, windowRight       int // -1 = unlimited
	nGlobal                       int
	qPos0                         *int64 // nil = bottom-right
}

func newProblem(batch, nQ, nK, hq, hkv, d int) problem {
	return problem{batch: batch, nQ: nQ, nK: nK, hq: hq, hkv: hkv, d: d, dv: d, windowLeft: -1, windowRight: -1}
}

func (p problem) qShape() [4]int   { return [4]int{p.batch, p.nQ, p.hq, p.d} }
func (p problem) kShape() [4]int   { return [4]int{p.batch, p.nK, p.hkv, p.d} }
func (p problem) vShape() [4]int   { return [4]int{p.batch, p.nK, p.hkv, p.dv} }
func (p problem) oShape() [4]int   { return [4]int{p.batch, p.nQ, p.hq, p.dv} }
func (p problem) lseShape() [4]int { return [4]int{p.batch, p.nQ, p.hq, 1} }

func numel(shape [4]int) int { return shape[0] * shape[1] * shape[2] * shape[3] }

func (p problem) desc(algorithm Algorithm) AttentionDesc {
	d := AttentionDesc{Algorithm: algorithm, NQHeads: p.hq, NKVHeads: p.hkv, HeadDim: p.d, HeadDimV: p.dv,
		Scale: p.scale, Softcap: p.softcap, Causal: p.causal, NGlobal: p.nGlobal}
	if p.windowLeft >= 0 || p.windowRight >= 0 {
		d.Window = &Window{Left: p.windowLeft, Right: p.windowRight}
	}
	return d
}

func (p problem) allows(qp, kp int64) bool {
	causalOK := !p.causal || kp <= qp
	band := (p.windowLeft < 0 || qp-kp <= int64(p.windowLeft)) && (p.windowRight < 0 || kp-qp <= int64(p.windowRight))
	global := kp < int64(p.nGlobal) || qp < int64(p.nGlobal)
	return causalOK && (band || global)
}

// extras are the optional parts of a forward call in the reference's terms.
type extras struct {
	mask      []float32 // contiguous values (f16 masks widened), shape maskShape
	maskShape [4]int    // {batch or 1, nQ, 1 or hq, nK}
	slopes    []float32 // ALiBi slope per query head
	sinks     []float32 // sink logit per query head
}

// reference is naive float64 attention: out [b][nQ][hq][dv] and lse [b][nQ][hq].
func reference(p problem, q, k, v []float32) (out, lse []float64) {
	return referenceWith(p, q, k, v, extras{})
}

// referenceWith is reference with ggml's extras, as the header defines them: the logit of key j is
// softcap(scale*q.k_j) + bias, bias = mask (slope*mask with ALiBi) or, with ALiBi and no mask,
// -slope*|qp-kp|; a -Inf mask value removes the key. A sink adds e^sink to the denominator (and
// so to the LSE) without a value.
func referenceWith(p problem, q, k, v []float32, ex extras) (out, lse []float64) {
	scale := float64(p.scale)
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(p.d))
	}
	group := p.hq / p.hkv
	qPos0 := int64(p.nK - p.nQ)
	if p.qPos0 != nil {
		qPos0 = *p.qPos0
	}
	out = make([]float64, p.batch*p.nQ*p.hq*p.dv)
	lse = make([]float64, p.batch*p.nQ*p.hq)
	logits := make([]float64, p.nK)
	for b := 0; b < p.batch; b++ {
		for i := 0; i < p.nQ; i++ {
			qp := qPos0 + int64(i)
			for h := 0; h < p.hq; h++ {
				hk := h / group
				row := (b*p.nQ+i)*p.hq + h
				lse[row] = math.Inf(-1)
				qRow := q[row*p.d : (row+1)*p.d]
				maxLogit := math.Inf(-1)
				for j := 0; j < p.nK; j++ {
					logits[j] = math.Inf(-1)
					if !p.allows(qp, int64(j)) {
						continue
					}
					bias := 0.0
					if ex.mask != nil {
						s := ex.maskShape
						mb, mh := b, h
						if s[0] == 1 {
							mb = 0
						}
						if s[2] == 1 {
							mh = 0
						}
						m := float64(ex.mask[((mb*s[1]+i)*s[2]+mh)*s[3]+j])
						if math.IsInf(m, -1) {
							continue
						}
						bias = m
						if ex.slopes != nil {
							bias = float64(ex.slopes[h]) * m
						}
					} else if ex.slopes != nil {
						bias = -float64(ex.slopes[h]) * math.Abs(float64(qp-int64(j)))
					}
					kRow := k[((b*p.nK+j)*p.hkv+hk)*p.d:][:p.d]
					dot := 0.0
					for c := range qRow {
						dot += float64(qRow[c]) * float64(kRow[c])
					}
					s := dot * scale
					if p.softcap > 0 {
						s = float64(p.softcap) * math.Tanh(s/float64(p.softcap))
					}
					logits[j] = s + bias
					maxLogit = math.Max(maxLogit, logits[j])
				}
				sink := math.Inf(-1)
				if ex.sinks != nil {
					sink = float64(ex.sinks[h])
				}
				maxLogit = math.Max(maxLogit, sink)
				if math.IsInf(maxLogit, -1) {
					continue // empty row: O = 0, LSE = -inf
				}
				o := out[row*p.dv : (row+1)*p.dv]
				sum := math.Exp(sink - maxLogit) // 0 without a sink
				for j := 0; j < p.nK; j++ {
					if math.IsInf(logits[j], -1) {
						continue
					}
					w := math.Exp(logits[j] - maxLogit)
					sum += w
					vRow := v[((b*p.nK+j)*p.hkv+hk)*p.dv:][:p.dv]
					for c := range o {
						o[c] += w * float64(vRow[c])
					}
				}
				for c := range o {
					o[c] /= sum
				}
				lse[row] = maxLogit + math.Log(sum)
			}
		}
	}
	return out, lse
}

// ---- ggml block formats, written from the header's definition ----

const (
	q8_0BlockBytes = 34
	q4_0BlockBytes = 18
	q8_0Max        = 127
	q4_0Offset     = 8
)

// quantizeQ8_0 writes 32 values as one Q8_0 block into dst (fp16 scale d = max|x|/127, then
// round(x/d) as int8) and returns the values the block decodes to (d*q with the stored d).
func quantizeQ8_0(x []float32, dst []byte) []float32 {
	amax := float32(0)
	for _, v := range x {
		amax = float32(math.Max(float64(amax), math.Abs(float64(v))))
	}
	dBits := f32ToF16(amax / q8_0Max)
	d := f16ToF32(dBits)
	dst[0], dst[1] = byte(dBits), byte(dBits>>8)
	decoded := make([]float32, quantBlock)
	for i, v := range x {
		q := 0
		if d != 0 {
			q = int(math.Max(-q8_0Max, math.Min(q8_0Max, math.Round(float64(v/d)))))
		}
		dst[2+i] = byte(int8(q))
		decoded[i] = d * float32(q)
	}
	return decoded
}

// quantizeQ4_0 writes 32 values as one Q4_0 block into dst (fp16 scale d = the value of largest
// magnitude / -8, nibbles round(x/d)+8 clamped to 0..15, byte j = value j | value j+16 << 4) and
// returns the values the block decodes to, d*(nibble-8).
func quantizeQ4_0(x []float32, dst []byte) []float32 {
	extreme := float32(0)
	for _, v := range x {
		if math.Abs(float64(v)) > math.Abs(float64(extreme)) {
			extreme = v
		}
	}
	dBits := f32ToF16(extreme / -q4_0Offset)
	d := f16ToF32(dBits)
	dst[0], dst[1] = byte(dBits), byte(dBits>>8)
	decoded := make([]float32, quantBlock)
	nibbles := make([]byte, quantBlock)
	for i, v := range x {
		q := q4_0Offset
		if d != 0 {
			q = int(math.Max(0, math.Min(15, math.Round(float64(v/d))+q4_0Offset)))
		}
		nibbles[i] = byte(q)
		decoded[i] = d * float32(q-q4_0Offset)
	}
	for j := 0; j < quantBlock/2; j++ {
		dst[2+j] = nibbles[j] | nibbles[j+quantBlock/2]<<4
	}
	return decoded
}

// relL2 is ‖got − want‖₂ / ‖want‖₂ (NaN anywhere gives NaN).
func relL2(got []float32, want []float64) float64 {
	diff, norm := 0.0, 0.0
	for i := range got {
		e := float64(got[i]) - want[i]
		diff += e * e
		norm += want[i] * want[i]
	}
	return math.Sqrt(diff / math.Max(norm, math.SmallestNonzeroFloat64))
}

// lseMaxErr is the largest |got − want|; -Inf must match -Inf exactly.
func lseMaxErr(got []float32, want []float64) float64 {
	worst := 0.0
	for i := range got {
		if math.IsInf(want[i], -1) {
			if !math.IsInf(float64(got[i]), -1) {
				return math.Inf(1)
			}
			continue
		}
		e := math.Abs(float64(got[i]) - want[i])
		if math.IsNaN(e) {
			return math.NaN()
		}
		worst = math.Max(worst, e)
	}
	return worst
}

// poisoned returns n NaNs: outputs start poisoned so an element the library did not write shows.
func poisoned(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(math.NaN())
	}
	return out
}

func allWritten(values []float32) bool {
	for _, x := range values {
		if x != x {
			return false
		}
	}
	return true
}

func widen(bits []uint16, convert func(uint16) float32) []float32 {
	out := make([]float32, len(bits))
	for i, h := range bits {
		out[i] = convert(h)
	}
	return out
}

func narrow(values []float32, convert func(float32) uint16) []uint16 {
	out := make([]uint16, len(values))
	for i, x := range values {
		out[i] = convert(x)
	}
	return out
}
