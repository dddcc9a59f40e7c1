package longattn

// What ggml-style runtimes pass — an additive mask, ALiBi, attention sinks, Q8_0/Q4_0 K/V read
// from a cache — on the CPU backend, against the naive float64 reference in helpers_test.go.

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// maskedShare is the share of random mask entries set to -Inf.
const maskedShare = 0.15

// randomMask returns a mask of shape with values in (-2, 0], about maskedShare of them -Inf, and
// the whole of query row 0 -Inf (a row with nothing allowed).
func randomMask(shape [4]int, seed uint64) []float32 {
	r := rng{seed}
	mask := make([]float32, numel(shape))
	for i := range mask {
		if (r.uniform()+1)/2 < maskedShare {
			mask[i] = float32(math.Inf(-1))
		} else {
			mask[i] = -(r.uniform() + 1)
		}
	}
	for b := 0; b < shape[0]; b++ {
		for h := 0; h < shape[2]; h++ {
			row := mask[((b*shape[1])*shape[2]+h)*shape[3]:][:shape[3]]
			for j := range row {
				row[j] = float32(math.Inf(-1))
			}
		}
	}
	return mask
}

// alibiSlopes are ggml's slopes as the header defines them: n = the largest power of two <=
// nHeads, m0 = 2^(-maxBias/n), m1 = 2^(-maxBias/2n); head h gets m0^(h+1) for h < n, else
// m1^(2(h-n)+1).
func alibiSlopes(nHeads int, maxBias float32) []float32 {
	n := 1
	for n*2 <= nHeads {
		n *= 2
	}
	m0 := math.Pow(2, float64(-maxBias/float32(n)))
	m1 := math.Pow(2, float64(-maxBias/2/float32(n)))
	slopes := make([]float32, nHeads)
	for h := range slopes {
		if h < n {
			slopes[h] = float32(math.Pow(m0, float64(h+1)))
		} else {
			slopes[h] = float32(math.Pow(m1, float64(2*(h-n)+1)))
		}
	}
	return slopes
}

type inputs struct{ q, k, v []float32 }

func newInputs(p problem, seed uint64) inputs {
	r := rng{seed}
	return inputs{r.vec(numel(p.qShape())), r.vec(numel(p.kShape())), r.vec(numel(p.vShape()))}
}

// checkExtras runs p with opts (an LSE output is added) and compares out and LSE with the
// reference under ex; every output element must be written.
func checkExtras(t *testing.T, attn *Attention, p problem, in inputs, ex extras, what string, opts ...ForwardOption) {
	t.Helper()
	out, lse := poisoned(numel(p.oShape())), poisoned(numel(p.lseShape()))
	opts = append(opts, WithLSE(F32(lse, p.lseShape())))
	if p.qPos0 != nil {
		opts = append(opts, WithQPos0(*p.qPos0))
	}
	if err := attn.Forward(F32(in.q, p.qShape()), F32(in.k, p.kShape()), F32(in.v, p.vShape()), F32(out, p.oShape()), opts...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !allWritten(out) || !allWritten(lse) {
		t.Fatalf("%s: output elements not written", what)
	}
	want, wantLSE := referenceWith(p, in.q, in.k, in.v, ex)
	e, el := relL2(out, want), lseMaxErr(lse, wantLSE)
	if !(e < f32Tolerance && el < lseTolerance) {
		t.Fatalf("%s: rel err %g, lse err %g", what, e, el)
	}
	t.Logf("%s: rel err %.3g, lse err %.3g", what, e, el)
}

func TestAdditiveMask(t *testing.T) {
	ctx := newCPUContext(t, testThreads)
	// f32 mask with its own values for every batch and head, no causal flag
	p := newProblem(2, 19, 45, 4, 2, 32)
	shape := [4]int{p.batch, p.nQ, p.hq, p.nK}
	mask := randomMask(shape, 2)
	checkExtras(t, newAttentionOrSkip(t, ctx, p.desc(Flash)), p, newInputs(p, 1),
		extras{mask: mask, maskShape: shape}, "f32 mask {b, nQ, hq, nK}", WithMask(F32(mask, shape)))

	// f16 mask broadcast over batch and heads, with the causal flag, FLASH and SPARSE
	p = newProblem(2, 33, 33, 4, 1, 16)
	p.causal = true
	shape = [4]int{1, p.nQ, 1, p.nK}
	bits := narrow(randomMask(shape, 4), f32ToF16)
	ex := extras{mask: widen(bits, f16ToF32), maskShape: shape}
	in := newInputs(p, 3)
	checkExtras(t, newAttentionOrSkip(t, ctx, p.desc(Flash)), p, in, ex, "f16 mask {1, nQ, 1, nK}, causal FLASH",
		WithMask(F16(bits, shape)))
	p.windowLeft, p.nGlobal = 11, 2
	checkExtras(t, newAttentionOrSkip(t, ctx, p.desc(Sparse)), p, in, ex, "f16 mask, SPARSE window 11 + 2 globals",
		WithMask(F16(bits, shape)))
}

func TestALiBi(t *testing.T) {
	ctx := newCPUContext(t, testThreads)
	const maxBias = 8
	// 6 heads: not a power of two, so both slope sequences are used
	p := newProblem(1, 21, 50, 6, 2, 32)
	p.causal = true
	slopes := alibiSlopes(p.hq, maxBias)
	in := newInputs(p, 10)
	withBias := func(p problem, algorithm Algorithm) AttentionDesc {
		d := p.desc(algorithm)
		d.MaxBias = maxBias
		return d
	}
	// without a mask the logit gets -m_h*|qp-kp|
	checkExtras(t, newAttentionOrSkip(t, ctx, withBias(p, Flash)), p, in, extras{slopes: slopes}, "max_bias 8, causal FLASH")
	windowed := p
	windowed.windowLeft = 9
	checkExtras(t, newAttentionOrSkip(t, ctx, withBias(windowed, Sparse)), windowed, in, extras{slopes: slopes},
		"max_bias 8, SPARSE window 9")

	// ggml's convention: the mask holds -|i-j| (-Inf for future keys), the logit gets m_h*mask
	open := p
	open.causal = false
	shape := [4]int{1, p.nQ, 1, p.nK}
	distance := make([]float32, 0, numel(shape))
	qPos0 := p.nK - p.nQ
	for i := 0; i < p.nQ; i++ {
		for j := 0; j < p.nK; j++ {
			if j > qPos0+i {
				distance = append(distance, float32(math.Inf(-1)))
			} else {
				distance = append(distance, -float32(qPos0+i-j))
			}
		}
	}
	bits := narrow(distance, f32ToF16)
	checkExtras(t, newAttentionOrSkip(t, ctx, withBias(open, Flash)), open, in,
		extras{mask: widen(bits, f16ToF32), maskShape: shape, slopes: slopes}, "max_bias 8 times a distance mask",
		WithMask(F16(bits, shape)))

	// explicit slopes override max_bias
	r := rng{11}
	explicit := make([]float32, p.hq)
	for h := range explicit {
		explicit[h] = (r.uniform() + 1) / 2
	}
	checkExtras(t, newAttentionOrSkip(t, ctx, withBias(p, Flash)), p, in, extras{slopes: explicit},
		"explicit slopes over max_bias 8", WithALiBiSlopes(explicit))
}

func TestAttentionSinks(t *testing.T) {
	ctx := newCPUContext(t, testThreads)
	r := rng{30}
	// query 0 sits at position -1: causally it sees no key, so its LSE is the sink and O = 0
	p := newProblem(2, 9, 30, 4, 2, 32)
	before := int64(-1)
	p.causal, p.qPos0 = true, &before
	sinks := make([]float32, p.hq)
	for h := range sinks {
		sinks[h] = 2*r.uniform() + 1
	}
	in := newInputs(p, 31)
	attn := newAttentionOrSkip(t, ctx, p.desc(Flash))
	checkExtras(t, attn, p, in, extras{sinks: sinks}, "sinks, causal FLASH", WithSinks(sinks))
	out, lse := poisoned(numel(p.oShape())), poisoned(numel(p.lseShape()))
	if err := attn.Forward(F32(in.q, p.qShape()), F32(in.k, p.kShape()), F32(in.v, p.vShape()), F32(out, p.oShape()),
		WithLSE(F32(lse, p.lseShape())), WithQPos0(before), WithSinks(sinks)); err != nil {
		t.Fatal(err)
	}
	for h := 0; h < p.hq; h++ {
		if math.Abs(float64(lse[h]-sinks[h])) > 1e-6 {
			t.Fatalf("empty row, head %d: lse %g, sink %g", h, lse[h], sinks[h])
		}
		for _, x := range out[h*p.dv : (h+1)*p.dv] {
			if x != 0 {
				t.Fatalf("empty row, head %d: out %g", h, x)
			}
		}
	}

	// sinks + per-head f32 mask + explicit slopes on SPARSE
	p = newProblem(1, 26, 26, 4, 2, 32)
	p.causal, p.windowLeft, p.nGlobal = true, 7, 1
	shape := [4]int{1, p.nQ, p.hq, p.nK}
	mask := randomMask(shape, 33)
	slopes := make([]float32, p.hq)
	for h := range slopes {
		slopes[h] = (r.uniform() + 1) / 4
	}
	checkExtras(t, newAttentionOrSkip(t, ctx, p.desc(Sparse)), p, newInputs(p, 32),
		extras{mask: mask, maskShape: shape, slopes: slopes, sinks: sinks}, "sinks + mask + slopes, SPARSE",
		WithMask(F32(mask, shape)), WithALiBiSlopes(slopes), WithSinks(sinks))
}

// blockCache is a K or V cache in a block format laid out {batch}{heads}{capacity}{row + padding}
// (head-major) or {batch}{capacity}{heads}{row + padding}, viewed over its first tokens.
type blockCache struct {
	bytes   []byte
	dense   []float32 // the decoded values, contiguous {batch, tokens, heads, dim}
	shape   [4]int
	strides [4]int // bytes
	dtype   DType
}

func newBlockCache(dtype DType, shape [4]int, capacity, rowPadding int, headMajor bool, seed uint64) blockCache {
	batch, tokens, heads, dim := shape[0], shape[1], shape[2], shape[3]
	bb := q8_0BlockBytes
	quantize := quantizeQ8_0
	if dtype == DTypeQ4_0 {
		bb, quantize = q4_0BlockBytes, quantizeQ4_0
	}
	row := dim/quantBlock*bb + rowPadding
	c := blockCache{bytes: make([]byte, batch*heads*capacity*row), dense: make([]float32, numel(shape)), shape: shape, dtype: dtype}
	for i := range c.bytes {
		c.bytes[i] = 0x5A // outside the view: never read
	}
	if headMajor {
		c.strides = [4]int{heads * capacity * row, row, capacity * row, bb}
	} else {
		c.strides = [4]int{capacity * heads * row, heads * row, row, bb}
	}
	r := rng{seed}
	for b := 0; b < batch; b++ {
		for tok := 0; tok < tokens; tok++ {
			for h := 0; h < heads; h++ {
				values := r.vec(dim)
				at := b*c.strides[0] + tok*c.strides[1] + h*c.strides[2]
				for blk := 0; blk < dim/quantBlock; blk++ {
					decoded := quantize(values[blk*quantBlock:][:quantBlock], c.bytes[at+blk*bb:][:bb])
					copy(c.dense[((b*tokens+tok)*heads+h)*dim+blk*quantBlock:], decoded)
				}
			}
		}
	}
	return c
}

func (c blockCache) view() Tensor {
	if c.dtype == DTypeQ8_0 {
		return Q8_0(c.bytes, c.shape).WithStrides(c.strides)
	}
	return Q4_0(c.bytes, c.shape).WithStrides(c.strides)
}

func TestQuantizedKVCache(t *testing.T) {
	ctx := newCPUContext(t, testThreads)
	for _, dtype := range []DType{DTypeQ8_0, DTypeQ4_0} {
		for _, sizes := range [][2]int{{40, 40}, {1, 150}} { // prefill, decode
			p := newProblem(2, sizes[0], sizes[1], 4, 2, 64)
			p.causal = true
			capacity := p.nK + 7
			k := newBlockCache(dtype, p.kShape(), capacity, 6, true, uint64(40+p.nQ))
			v := newBlockCache(dtype, p.vShape(), capacity, 0, false, uint64(50+p.nQ))
			q := (&rng{60}).vec(numel(p.qShape()))
			attn := newAttentionOrSkip(t, ctx, p.desc(Flash))
			out, lse := poisoned(numel(p.oShape())), poisoned(numel(p.lseShape()))
			if err := attn.Forward(F32(q, p.qShape()), k.view(), v.view(), F32(out, p.oShape()), WithLSE(F32(lse, p.lseShape()))); err != nil {
				t.Fatal(err)
			}
			if !allWritten(out) || !allWritten(lse) {
				t.Fatal("output elements not written")
			}
			want, wantLSE := reference(p, q, k.dense, v.dense)
			e, el := relL2(out, want), lseMaxErr(lse, wantLSE)
			if !(e < f32Tolerance && el < lseTolerance) {
				t.Fatalf("dtype %d nQ %d nK %d: rel err %g, lse err %g", dtype, p.nQ, p.nK, e, el)
			}
			t.Logf("dtype %d nQ %d nK %d: rel err %.3g, lse err %.3g", dtype, p.nQ, p.nK, e, el)
		}
	}

	// contiguous views: Q8_0/Q4_0 lay out head_dim/32 blocks per row
	if DTypeQ8_0.Size() != q8_0BlockBytes || DTypeQ4_0.Size() != q4_0BlockBytes || DTypeQ8_0.BlockElems() != quantBlock ||
		DTypeF16.Size() != 2 || DTypeF32.BlockElems() != 1 || DType(42).Size() != 0 {
		t.Fatal("dtype sizes disagree with the library")
	}
	p := newProblem(1, 3, 5, 4, 2, 64)
	k := newBlockCache(DTypeQ8_0, p.kShape(), p.nK, 0, false, 70)
	v := newBlockCache(DTypeQ8_0, p.vShape(), p.nK, 0, false, 71)
	if got := Q8_0(k.bytes, p.kShape()).Strides(); got != k.strides || got != [4]int{680, 136, 68, 34} {
		t.Fatalf("contiguous Q8_0 strides %v", got)
	}
	q := (&rng{72}).vec(numel(p.qShape()))
	out := poisoned(numel(p.oShape()))
	attn := newAttentionOrSkip(t, ctx, p.desc(Flash))
	if err := attn.Forward(F32(q, p.qShape()), Q8_0(k.bytes, p.kShape()), Q8_0(v.bytes, p.vShape()), F32(out, p.oShape())); err != nil {
		t.Fatal(err)
	}
	want, _ := reference(p, q, k.dense, v.dense)
	if e := relL2(out, want); !(e < f32Tolerance) {
		t.Fatalf("contiguous Q8_0: rel err %g", e)
	}
}

func TestExtrasAreChecked(t *testing.T) {
	ctx := newCPUContext(t, 1)
	p := newProblem(1, 4, 8, 4, 2, 32)
	in := newInputs(p, 80)
	attn := newAttentionOrSkip(t, ctx, p.desc(Flash))
	out := poisoned(numel(p.oShape()))
	kBlocks := make([]byte, p.nK*p.hkv*q4_0BlockBytes)
	three := []float32{0.5, 0.5, 0.5}
	nanSinks := []float32{0, float32(math.NaN()), 0, 0}
	maskShape := [4]int{1, p.nQ, 1, p.nK}
	cases := []struct {
		name    string
		k       Tensor
		opts    []ForwardOption
		want    error
		message string
	}{
		{"sinks of the wrong length", F32(in.k, p.kShape()), []ForwardOption{WithSinks(three)}, ErrShapeMismatch, "NQHeads is 4"},
		{"slopes of the wrong length", F32(in.k, p.kShape()), []ForwardOption{WithALiBiSlopes(three)}, ErrShapeMismatch, "NQHeads is 4"},
		{"a NaN sink", F32(in.k, p.kShape()), []ForwardOption{WithSinks(nanSinks)}, ErrInvalidArgument, "sinks"},
		{"a bf16 mask", F32(in.k, p.kShape()), []ForwardOption{WithMask(BF16(make([]uint16, numel(maskShape)), maskShape))}, ErrInvalidArgument, "mask"},
		{"a mask short of one key", F32(in.k, p.kShape()), []ForwardOption{WithMask(F32(make([]float32, p.nQ*(p.nK-1)), [4]int{1, p.nQ, 1, p.nK - 1}))}, ErrShapeMismatch, "mask"},
		{"a Q4_0 view one byte short", Q4_0(kBlocks[:len(kBlocks)-1], p.kShape()), nil, ErrShapeMismatch, "slice has"},
		{"a Q4_0 head_dim of 40", Q4_0(kBlocks, [4]int{1, 4, 2, 40}), nil, ErrInvalidArgument, "multiple of 32"},
		{"block bytes viewed as F32", Tensor{dtype: DTypeF32, shape: p.kShape(), strides: ContiguousStrides(p.kShape()), u8: kBlocks}, nil, ErrInvalidArgument, "slice type"},
	}
	for _, c := range cases {
		err := attn.Forward(F32(in.q, p.qShape()), c.k, F32(in.v, p.vShape()), F32(out, p.oShape()), c.opts...)
		var typed *Error
		if !errors.As(err, &typed) || !errors.Is(err, c.want) || !strings.Contains(typed.Message, c.message) {
			t.Fatalf("%s: got %v, want %v with %q", c.name, err, c.want, c.message)
		}
		t.Logf("%s: %v", c.name, err)
	}
	// a Q4_0 block view whose blocks are 40 bytes apart needs 40 + 18 bytes per two-block row
	view := func(n int) error {
		_, err := Q4_0(kBlocks[:n], [4]int{1, 1, 1, 64}).WithStrides([4]int{0, 0, 0, 40}).check("k")
		return err
	}
	if view(58) != nil || view(57) == nil {
		t.Fatal("block-aware bounds check is off by one")
	}
	// block formats are for K and V only (the library)
	qBlocks := make([]byte, p.nQ*p.hq*q8_0BlockBytes)
	err := attn.Forward(Q8_0(qBlocks, p.qShape()), F32(in.k, p.kShape()), F32(in.v, p.vShape()), F32(out, p.oShape()))
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Q8_0 queries: %v", err)
	}
	// the context still works
	sinks := []float32{0.25, 0.25, 0.25, 0.25}
	if err := attn.Forward(F32(in.q, p.qShape()), F32(in.k, p.kShape()), F32(in.v, p.vShape()), F32(out, p.oShape()), WithSinks(sinks)); err != nil {
		t.Fatal(fmt.Errorf("after the failures: %w", err))
	}
}
