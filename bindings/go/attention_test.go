package longattn

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
)

const (
	f32Tolerance  = 1e-5
	f16Tolerance  = 1e-3
	bf16Tolerance = 1e-2
	lseTolerance  = 1e-4
	testThreads   = 2
)

func newCPUContext(t testing.TB, threads int) *Context {
	t.Helper()
	ctx, err := NewContext(WithBackend(BackendCPU), WithThreads(threads))
	if err != nil {
		t.Fatalf("NewContext: %v", err)
	}
	t.Cleanup(func() { ctx.Close() })
	return ctx
}

// newAttentionOrSkip creates the handle, skipping the test when this build does not implement the
// algorithm yet.
func newAttentionOrSkip(t *testing.T, ctx *Context, desc AttentionDesc) *Attention {
	t.Helper()
	attn, err := ctx.NewAttention(desc)
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("algorithm %d: %v", desc.Algorithm, err)
	}
	if err != nil {
		t.Fatalf("NewAttention(%+v): %v", desc, err)
	}
	t.Cleanup(func() { attn.Close() })
	return attn
}

// runF32 runs p on fresh random f32 inputs and compares out and LSE with the reference; it returns
// the relative error of out. Safe to call from any goroutine.
func runF32(attn *Attention, p problem, seed uint64) (float64, error) {
	r := rng{seed}
	q, k, v := r.vec(numel(p.qShape())), r.vec(numel(p.kShape())), r.vec(numel(p.vShape()))
	out, lse := poisoned(numel(p.oShape())), poisoned(numel(p.lseShape()))
	opts := []ForwardOption{WithLSE(F32(lse, p.lseShape()))}
	if p.qPos0 != nil {
		opts = append(opts, WithQPos0(*p.qPos0))
	}
	err := attn.Forward(F32(q, p.qShape()), F32(k, p.kShape()), F32(v, p.vShape()), F32(out, p.oShape()), opts...)
	if err != nil {
		return 0, fmt.Errorf("forward %+v: %w", p, err)
	}
	if !allWritten(out) || !allWritten(lse) {
		return 0, fmt.Errorf("%+v: some output elements were not written", p)
	}
	want, wantLSE := reference(p, q, k, v)
	e := relL2(out, want)
	if !(e < f32Tolerance) {
		return e, fmt.Errorf("%+v: rel err %g", p, e)
	}
	if el := lseMaxErr(lse, wantLSE); !(el < lseTolerance) {
		return e, fmt.Errorf("%+v: lse err %g", p, el)
	}
	return e, nil
}

// checkF32 is runF32 that fails the test (call it from the test goroutine only).
func checkF32(t testing.TB, attn *Attention, p problem, seed uint64) float64 {
	t.Helper()
	e, err := runF32(attn, p, seed)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestLibraryIdentifiesItself(t *testing.T) {
	if Version()/10000 != VersionNumber/10000 {
		t.Fatalf("linked major version %d, header %d", Version(), VersionNumber)
	}
	if BuildInfo() == "" || !BackendAvailable(BackendCPU) {
		t.Fatal("no build info or no CPU backend")
	}
	if n, err := DeviceCount(BackendCPU); err != nil || n != 1 {
		t.Fatalf("DeviceCount(CPU) = %d, %v", n, err)
	}
	ctx := newCPUContext(t, testThreads)
	if ctx.Backend() != BackendCPU || ctx.Threads() != testThreads {
		t.Fatalf("backend %v threads %d", ctx.Backend(), ctx.Threads())
	}
}

func TestFlashF32MatchesReference(t *testing.T) {
	ctx := newCPUContext(t, testThreads)
	qPos10, qPosBefore := int64(10), int64(-20)
	cases := []problem{
		func() problem { p := newProblem(2, 37, 37, 4, 2, 32); p.causal = true; return p }(),
		newProblem(1, 5, 70, 4, 1, 64),
		func() problem {
			p := newProblem(1, 20, 33, 2, 2, 16)
			p.dv, p.scale, p.softcap, p.causal = 24, 0.3, 5, true
			return p
		}(),
		func() problem { p := newProblem(1, 8, 40, 2, 1, 32); p.causal, p.qPos0 = true, &qPos10; return p }(),
		func() problem { p := newProblem(1, 4, 16, 1, 1, 8); p.causal, p.qPos0 = true, &qPosBefore; return p }(),
	}
	for i, p := range cases {
		attn, err := ctx.NewAttention(p.desc(Flash))
		if err != nil {
			t.Fatal(err)
		}
		e := checkF32(t, attn, p, uint64(100+i))
		t.Logf("flash f32 nQ=%d nK=%d hq=%d hkv=%d d=%d dv=%d: rel err %.3g", p.nQ, p.nK, p.hq, p.hkv, p.d, p.dv, e)
		attn.Close()
	}
}

func TestFlashHalfMatchesReference(t *testing.T) {
	kinds := []struct {
		name      string
		dtype     DType
		view      func([]uint16, [4]int) Tensor
		toHalf    func(float32) uint16
		fromHalf  func(uint16) float32
		tolerance float64
	}{
		{"f16", DTypeF16, F16, f32ToF16, f16ToF32, f16Tolerance},
		{"bf16", DTypeBF16, BF16, f32ToBF16, bf16ToF32, bf16Tolerance},
	}
	for _, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			ctx := newCPUContext(t, testThreads)
			p := newProblem(1, 29, 45, 4, 2, 64)
			p.causal = true
			attn := newAttentionOrSkip(t, ctx, p.desc(Flash))
			r := rng{uint64(7 + kind.dtype)}
			q := narrow(r.vec(numel(p.qShape())), kind.toHalf)
			k := narrow(r.vec(numel(p.kShape())), kind.toHalf)
			v := narrow(r.vec(numel(p.vShape())), kind.toHalf)
			want, _ := reference(p, widen(q, kind.fromHalf), widen(k, kind.fromHalf), widen(v, kind.fromHalf))

			out32 := poisoned(numel(p.oShape()))
			if err := attn.Forward(kind.view(q, p.qShape()), kind.view(k, p.kShape()), kind.view(v, p.vShape()), F32(out32, p.oShape())); err != nil {
				t.Fatal(err)
			}
			out16 := narrow(poisoned(numel(p.oShape())), kind.toHalf)
			if err := attn.Forward(kind.view(q, p.qShape()), kind.view(k, p.kShape()), kind.view(v, p.vShape()), kind.view(out16, p.oShape())); err != nil {
				t.Fatal(err)
			}
			for name, out := range map[string][]float32{"f32 out": out32, "half out": widen(out16, kind.fromHalf)} {
				if !allWritten(out) {
					t.Fatalf("%s: elements not written", name)
				}
				e := relL2(out, want)
				if !(e < kind.tolerance) {
					t.Fatalf("%s: rel err %g", name, e)
				}
				t.Logf("%s: rel err %.3g", name, e)
			}
		})
	}
}

// K/V as strided views into a head-major cache [heads][capacity][dim] of which only the first n_k
// tokens are filled.
func TestStridedKVCacheView(t *testing.T) {
	ctx := newCPUContext(t, testThreads)
	p := newProblem(1, 3, 50, 4, 2, 32)
	p.causal = true
	const capacity = 96
	attn := newAttentionOrSkip(t, ctx, p.desc(Flash))
	r := rng{11}
	q := r.vec(numel(p.qShape()))
	kCache, vCache := r.vec(p.hkv*capacity*p.d), r.vec(p.hkv*capacity*p.d)
	strides := [4]int{p.hkv * capacity * p.d, p.d, capacity * p.d, 1}
	gather := func(cache []float32) []float32 {
		var dense []float32
		for tok := 0; tok < p.nK; tok++ {
			for h := 0; h < p.hkv; h++ {
				dense = append(dense, cache[(h*capacity+tok)*p.d:][:p.d]...)
			}
		}
		return dense
	}
	out := poisoned(numel(p.oShape()))
	err := attn.Forward(F32(q, p.qShape()), F32(kCache, p.kShape()).WithStrides(strides),
		F32(vCache, p.vShape()).WithStrides(strides), F32(out, p.oShape()))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := reference(p, q, gather(kCache), gather(vCache))
	if e := relL2(out, want); !(e < f32Tolerance) {
		t.Fatalf("rel err %g", e)
	}
}

// Decoding token by token against a growing cache gives the rows of one causal prefill.
func TestDecodeStepsMatchCausalPrefill(t *testing.T) {
	ctx := newCPUContext(t, testThreads)
	const n, hq, hkv, d = 24, 4, 2, 32
	p := newProblem(1, n, n, hq, hkv, d)
	p.causal = true
	attn := newAttentionOrSkip(t, ctx, p.desc(Flash))
	r := rng{13}
	q, k, v := r.vec(n*hq*d), r.vec(n*hkv*d), r.vec(n*hkv*d)
	prefill := poisoned(n * hq * d)
	if err := attn.Forward(F32(q, p.qShape()), F32(k, p.kShape()), F32(v, p.vShape()), F32(prefill, p.oShape())); err != nil {
		t.Fatal(err)
	}
	for tok := 1; tok <= n; tok++ {
		step := poisoned(hq * d)
		err := attn.Forward(F32(q[(tok-1)*hq*d:tok*hq*d], [4]int{1, 1, hq, d}),
			F32(k[:tok*hkv*d], [4]int{1, tok, hkv, d}), F32(v[:tok*hkv*d], [4]int{1, tok, hkv, d}),
			F32(step, [4]int{1, 1, hq, d}))
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float64, hq*d)
		for i, x := range prefill[(tok-1)*hq*d : tok*hq*d] {
			want[i] = float64(x)
		}
		if e := relL2(step, want); !(e < f32Tolerance) {
			t.Fatalf("step %d: rel err %g", tok, e)
		}
	}
}

// Attention over all keys equals the merge of attention over two halves.
func TestMergeOfTwoKeyHalvesEqualsFull(t *testing.T) {
	ctx := newCPUContext(t, testThreads)
	p := newProblem(1, 6, 40, 2, 2, 16)
	half := p.nK / 2
	attn := newAttentionOrSkip(t, ctx, p.desc(Flash))
	r := rng{17}
	q, k, v := r.vec(numel(p.qShape())), r.vec(numel(p.kShape())), r.vec(numel(p.vShape()))
	kvShape := [4]int{1, half, p.hkv, p.d}
	row := p.hkv * p.d
	part := func(start, end int) ([]float32, []float32) {
		o, l := poisoned(numel(p.oShape())), poisoned(numel(p.lseShape()))
		err := attn.Forward(F32(q, p.qShape()), F32(k[start*row:end*row], kvShape), F32(v[start*row:end*row], kvShape),
			F32(o, p.oShape()), WithLSE(F32(l, p.lseShape())))
		if err != nil {
			t.Fatal(err)
		}
		return o, l
	}
	oA, lA := part(0, half)
	oB, lB := part(half, p.nK)
	want, wantLSE := reference(p, q, k, v)

	o, l := poisoned(len(oA)), poisoned(len(lA))
	if err := ctx.Merge(F32(oA, p.oShape()), F32(lA, p.lseShape()), F32(oB, p.oShape()), F32(lB, p.lseShape()),
		F32(o, p.oShape()), F32(l, p.lseShape())); err != nil {
		t.Fatal(err)
	}
	if e, el := relL2(o, want), lseMaxErr(l, wantLSE); !(e < f32Tolerance && el < lseTolerance) {
		t.Fatalf("merge: rel err %g, lse err %g", e, el)
	}
	// in place: the accumulator is both input a and the output
	if err := ctx.Merge(F32(oA, p.oShape()), F32(lA, p.lseShape()), F32(oB, p.oShape()), F32(lB, p.lseShape()),
		F32(oA, p.oShape()), F32(lA, p.lseShape())); err != nil {
		t.Fatal(err)
	}
	if e := relL2(oA, want); !(e < f32Tolerance) {
		t.Fatalf("in-place merge: rel err %g", e)
	}
}

func TestSparseMatchesMaskedReference(t *testing.T) {
	ctx := newCPUContext(t, testThreads)
	swa := newProblem(1, 48, 48, 4, 2, 32) // Mistral-style window plus StreamingLLM sinks
	swa.causal, swa.windowLeft, swa.nGlobal = true, 7, 2
	band := newProblem(2, 40, 40, 2, 1, 16) // ModernBERT-style local band with a global prefix
	band.windowLeft, band.windowRight, band.nGlobal = 5, 5, 3
	decode := newProblem(1, 1, 64, 2, 2, 32)
	decode.causal, decode.windowLeft = true, 9
	for i, p := range []problem{swa, band, decode} {
		attn := newAttentionOrSkip(t, ctx, p.desc(Sparse))
		e := checkF32(t, attn, p, uint64(200+i))
		t.Logf("sparse window %d/%d globals %d: rel err %.3g", p.windowLeft, p.windowRight, p.nGlobal, e)
	}
}

// Below HyperMinSeqLen HyperAttention is exact attention.
func TestHyperIsExactBelowMinSeqLen(t *testing.T) {
	ctx := newCPUContext(t, testThreads)
	for i, causal := range []bool{false, true} {
		p := newProblem(1, 64, 64, 2, 1, 32)
		p.causal = causal
		desc := p.desc(Hyper)
		desc.HyperMinSeqLen, desc.Seed = 1024, 5
		attn := newAttentionOrSkip(t, ctx, desc)
		checkF32(t, attn, p, uint64(300+i))
	}
}

// In its approximate regime HyperAttention is a function of its seed: the same seed gives the same
// bits, another seed other samples; every output is written and finite.
func TestHyperApproximateRegimeIsSeeded(t *testing.T) {
	ctx := newCPUContext(t, testThreads)
	p := newProblem(1, 512, 512, 2, 1, 32)
	desc := func(seed uint64) AttentionDesc {
		d := p.desc(Hyper)
		d.HyperBlockSize, d.HyperSampleSize, d.HyperMinSeqLen, d.Seed = 64, 64, 128, seed
		return d
	}
	attnA := newAttentionOrSkip(t, ctx, desc(1))
	attnB := newAttentionOrSkip(t, ctx, desc(2))
	r := rng{600}
	q, k, v := r.vec(numel(p.qShape())), r.vec(numel(p.kShape())), r.vec(numel(p.vShape()))
	run := func(attn *Attention) []uint32 {
		out := poisoned(numel(p.oShape()))
		if err := attn.Forward(F32(q, p.qShape()), F32(k, p.kShape()), F32(v, p.vShape()), F32(out, p.oShape())); err != nil {
			t.Fatal(err)
		}
		bits := make([]uint32, len(out))
		for i, x := range out {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("out[%d] = %v: unwritten or non-finite", i, x)
			}
			bits[i] = math.Float32bits(x)
		}
		return bits
	}
	first, again, other := run(attnA), run(attnA), run(attnB)
	if !reflect.DeepEqual(first, again) {
		t.Fatal("same seed, different output")
	}
	if reflect.DeepEqual(first, other) {
		t.Fatal("different seeds, identical output")
	}
}
