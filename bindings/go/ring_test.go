package longattn

// Ring mode on the CPU's virtual devices: whole tensors through a ring context equal the plain
// context (bit for bit with one rank), per-rank shards through ForwardSharded equal the float64
// reference, and the shard layouts cover every token once.

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
)

func newRingContext(t testing.TB, ranks int, layout RingLayout) *Context {
	t.Helper()
	ctx, err := NewContext(WithBackend(BackendCPU), WithThreads(testThreads), WithRing(ranks), WithRingLayout(layout))
	if err != nil {
		t.Fatalf("ring of %d ranks: %v", ranks, err)
	}
	t.Cleanup(func() { ctx.Close() })
	if ctx.RingDevices() != ranks {
		t.Fatalf("RingDevices() = %d, want %d", ctx.RingDevices(), ranks)
	}
	return ctx
}

// runOutputs runs p on the inputs of seed and returns out and LSE, checked against the reference.
func runOutputs(t *testing.T, attn *Attention, p problem, seed uint64) ([]float32, []float32) {
	t.Helper()
	in := newInputs(p, seed)
	out, lse := poisoned(numel(p.oShape())), poisoned(numel(p.lseShape()))
	if err := attn.Forward(F32(in.q, p.qShape()), F32(in.k, p.kShape()), F32(in.v, p.vShape()), F32(out, p.oShape()),
		WithLSE(F32(lse, p.lseShape()))); err != nil {
		t.Fatalf("%+v: %v", p, err)
	}
	if !allWritten(out) || !allWritten(lse) {
		t.Fatalf("%+v: output elements not written", p)
	}
	want, wantLSE := reference(p, in.q, in.k, in.v)
	if e, el := relL2(out, want), lseMaxErr(lse, wantLSE); !(e < f32Tolerance && el < lseTolerance) {
		t.Fatalf("%+v: rel err %g, lse err %g", p, e, el)
	}
	return out, lse
}

func TestRingEqualsPlainContext(t *testing.T) {
	plain := newCPUContext(t, testThreads)
	if plain.RingDevices() != 0 {
		t.Fatal("a plain context reports ring ranks")
	}
	prefill := newProblem(1, 37, 37, 4, 2, 32) // causal: AUTO picks ZIGZAG
	prefill.causal = true
	open := newProblem(2, 29, 29, 2, 1, 16)
	window := newProblem(1, 45, 45, 4, 2, 32)
	window.causal, window.windowLeft, window.nGlobal = true, 6, 2
	decode := newProblem(1, 2, 80, 4, 1, 32) // few queries: K/V shards stay, partials merged
	decode.causal = true
	cases := []struct {
		p         problem
		algorithm Algorithm
	}{{prefill, Flash}, {open, Flash}, {window, Sparse}, {decode, Flash}}
	for i, c := range cases {
		seed := uint64(100 + i)
		wantOut, wantLSE := runOutputs(t, newAttentionOrSkip(t, plain, c.p.desc(c.algorithm)), c.p, seed)
		for ranks := 1; ranks <= 4; ranks++ {
			for _, layout := range []RingLayout{RingLayoutAuto, RingLayoutContiguous, RingLayoutZigzag} {
				ring := newRingContext(t, ranks, layout)
				out, lse := runOutputs(t, newAttentionOrSkip(t, ring, c.p.desc(c.algorithm)), c.p, seed)
				if ranks == 1 { // one rank runs the ring schedule with the plain path's arithmetic
					if !reflect.DeepEqual(out, wantOut) || !reflect.DeepEqual(lse, wantLSE) {
						t.Fatalf("case %d, 1 rank, layout %d: not bit for bit the plain result", i, layout)
					}
				} else {
					worst := 0.0
					for j := range out {
						worst = math.Max(worst, math.Abs(float64(out[j]-wantOut[j])))
					}
					if !(worst < 1e-5) {
						t.Fatalf("case %d, %d ranks, layout %d: max |ring - plain| %g", i, ranks, layout, worst)
					}
				}
				for rank := 0; rank < ranks; rank++ {
					if ring.RankScratchBytes(rank) <= 0 {
						t.Fatalf("rank %d holds no scratch", rank)
					}
				}
				if ring.RankScratchBytes(ranks) != 0 || ring.RankScratchBytes(-1) != 0 {
					t.Fatal("a rank out of range reports scratch")
				}
				ring.Close()
			}
		}
	}
}

func TestRingShardCoversEveryTokenOnce(t *testing.T) {
	for _, n := range []int{1, 5, 37, 100} {
		for ranks := 1; ranks <= 4; ranks++ {
			for _, layout := range []RingLayout{RingLayoutContiguous, RingLayoutZigzag} {
				seen := make([]int, n)
				for rank := 0; rank < ranks; rank++ {
					segments, err := RingShard(layout, n, ranks, rank)
					if err != nil {
						t.Fatal(err)
					}
					if layout == RingLayoutContiguous && segments[1].Count != 0 {
						t.Fatalf("contiguous shard with a second segment: %+v", segments)
					}
					for _, s := range segments {
						for tok := s.First; tok < s.First+s.Count; tok++ {
							seen[tok]++
						}
					}
				}
				for tok, c := range seen {
					if c != 1 {
						t.Fatalf("n %d ranks %d layout %d: token %d held %d times", n, ranks, layout, tok, c)
					}
				}
			}
		}
	}
	if s, err := RingShard(RingLayoutZigzag, 8, 2, 0); err != nil || s != [2]Segment{{0, 2}, {6, 2}} {
		t.Fatalf("zigzag rank 0 of 2 over 8 tokens: %+v, %v", s, err)
	}
	if _, err := RingShard(RingLayoutContiguous, 8, 2, 2); err == nil {
		t.Fatal("rank 2 of 2 accepted")
	}
}

// gatherRows returns the token rows of segments of a contiguous {1, n, heads, dim} tensor.
func gatherRows(data []float32, heads, dim int, segments []Segment) []float32 {
	row := heads * dim
	var out []float32
	for _, s := range segments {
		out = append(out, data[s.First*row:(s.First+s.Count)*row]...)
	}
	return out
}

func TestForwardShardedLocalAndReplicated(t *testing.T) {
	const n = 53
	for ranks := 2; ranks <= 4; ranks++ {
		ring := newRingContext(t, ranks, RingLayoutAuto)
		for _, layout := range []RingLayout{RingLayoutContiguous, RingLayoutZigzag} {
			for _, replicated := range []bool{false, true} {
				name := fmt.Sprintf("%d ranks, layout %d, replicated %v", ranks, layout, replicated)
				p := newProblem(1, n, n, 4, 2, 32)
				if replicated {
					p.nQ = 3
				}
				p.causal = true
				attn := newAttentionOrSkip(t, ring, p.desc(Flash))
				in := newInputs(p, uint64(300+10*ranks))
				var q, k, v, out, lse []Tensor
				var outs, lses [][]float32
				var rowsOf [][]int // whole-sequence query row of each shard row
				for r := 0; r < ranks; r++ {
					two, err := RingShard(layout, n, ranks, r)
					if err != nil {
						t.Fatal(err)
					}
					var segments []Segment
					var keyRows []int
					for _, s := range two {
						if s.Count > 0 {
							segments = append(segments, s)
							for i := 0; i < s.Count; i++ {
								keyRows = append(keyRows, s.First+i)
							}
						}
					}
					k = append(k, F32(gatherRows(in.k, p.hkv, p.d, segments), [4]int{1, len(keyRows), p.hkv, p.d}))
					v = append(v, F32(gatherRows(in.v, p.hkv, p.dv, segments), [4]int{1, len(keyRows), p.hkv, p.dv}))
					rows, qShard := []int{0, 1, 2}, in.q
					if !replicated {
						rows, qShard = keyRows, gatherRows(in.q, p.hq, p.d, segments)
					}
					rowsOf = append(rowsOf, rows)
					q = append(q, F32(qShard, [4]int{1, len(rows), p.hq, p.d}))
					outs = append(outs, poisoned(len(rows)*p.hq*p.dv))
					lses = append(lses, poisoned(len(rows)*p.hq))
					out = append(out, F32(outs[r], [4]int{1, len(rows), p.hq, p.dv}))
					lse = append(lse, F32(lses[r], [4]int{1, len(rows), p.hq, 1}))
				}
				queries := ShardQueriesLocal
				if replicated {
					queries = ShardQueriesReplicated
				}
				if err := attn.ForwardSharded(q, k, v, out, WithShardLayout(layout), WithShardQueries(queries), WithShardLSE(lse)); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				want, wantLSE := reference(p, in.q, in.k, in.v)
				for r := 0; r < ranks; r++ {
					var wantOut, wantL []float64
					for _, i := range rowsOf[r] {
						wantOut = append(wantOut, want[i*p.hq*p.dv:(i+1)*p.hq*p.dv]...)
						wantL = append(wantL, wantLSE[i*p.hq:(i+1)*p.hq]...)
					}
					if !allWritten(outs[r]) || !allWritten(lses[r]) {
						t.Fatalf("%s, rank %d: output elements not written", name, r)
					}
					if e, el := relL2(outs[r], wantOut), lseMaxErr(lses[r], wantL); !(e < f32Tolerance && el < lseTolerance) {
						t.Fatalf("%s, rank %d: rel err %g, lse err %g", name, r, e, el)
					}
				}
				attn.Close()
			}
		}
	}
}

func TestRingRefusals(t *testing.T) {
	ring := newRingContext(t, 2, RingLayoutAuto)
	p := newProblem(1, 8, 8, 2, 2, 32)
	attn := newAttentionOrSkip(t, ring, p.desc(Flash))
	in := newInputs(p, 400)
	out := poisoned(numel(p.oShape()))
	maskShape := [4]int{1, p.nQ, 1, p.nK}
	// an additive mask is not supported on a ring
	err := attn.Forward(F32(in.q, p.qShape()), F32(in.k, p.kShape()), F32(in.v, p.vShape()), F32(out, p.oShape()),
		WithMask(F32(make([]float32, numel(maskShape)), maskShape)))
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("mask on a ring: %v", err)
	}
	q, k, v, o := F32(in.q, p.qShape()), F32(in.k, p.kShape()), F32(in.v, p.vShape()), F32(out, p.oShape())
	// shard lists of different lengths, a shard count other than the ring's, too many shards
	if err := attn.ForwardSharded([]Tensor{q, q}, []Tensor{k, k}, []Tensor{v}, []Tensor{o}); !errors.Is(err, ErrShapeMismatch) {
		t.Fatalf("uneven shard lists: %v", err)
	}
	if err := attn.ForwardSharded([]Tensor{q}, []Tensor{k}, []Tensor{v}, []Tensor{o}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("one shard on a ring of two: %v", err)
	}
	many := make([]Tensor, MaxShards+1)
	if err := attn.ForwardSharded(many, many, many, many); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("%d shards: %v", len(many), err)
	}
	// two outputs sharing memory
	half := p.oShape()
	half[1] /= 2
	o1, o2 := F32(out, half), F32(out[1:], half)
	if err := attn.ForwardSharded([]Tensor{q, q}, []Tensor{k, k}, []Tensor{v, v}, []Tensor{o1, o2}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("overlapping outputs: %v", err)
	}
	// a plain context has no ranks; an unknown layout and a negative ring are refused
	plain := newCPUContext(t, 1)
	plainAttn := newAttentionOrSkip(t, plain, p.desc(Flash))
	if err := plainAttn.ForwardSharded([]Tensor{q}, []Tensor{k}, []Tensor{v}, []Tensor{o}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("sharded call on a plain context: %v", err)
	}
	if _, err := NewContext(WithBackend(BackendCPU), WithRing(2), WithRingLayout(7)); !errors.Is(err, ErrUnknownEnum) {
		t.Fatalf("unknown ring layout: %v", err)
	}
	if _, err := NewContext(WithBackend(BackendCPU), WithRing(-1)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("negative ring: %v", err)
	}
}

func TestRingTransportChoice(t *testing.T) {
	ring := newRingContext(t, 2, RingLayoutAuto)
	if got := ring.RingTransport(); got != RingTransportHostStaged {
		t.Fatalf("CPU ring transport %d, want host staged", got)
	}
	if got := newCPUContext(t, 1).RingTransport(); got != RingTransportAuto {
		t.Fatalf("plain context transport %d, want auto", got)
	}
	staged, err := NewContext(WithBackend(BackendCPU), WithRing(2), WithRingTransport(RingTransportHostStaged))
	if err != nil {
		t.Fatalf("host-staged CPU ring: %v", err)
	}
	defer staged.Close()
	for _, c := range []struct {
		ring      int
		transport RingTransport
		want      error
	}{
		{2, RingTransportPeer, ErrUnsupported},
		{2, RingTransportNCCL, ErrUnsupported},
		{0, RingTransportHostStaged, ErrInvalidArgument},
		{2, RingTransport(9), ErrUnknownEnum},
	} {
		if _, err := NewContext(WithBackend(BackendCPU), WithRing(c.ring), WithRingTransport(c.transport)); !errors.Is(err, c.want) {
			t.Fatalf("ring %d transport %d: %v, want %v", c.ring, c.transport, err, c.want)
		}
	}
}
