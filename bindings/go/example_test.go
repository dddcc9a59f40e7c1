package longattn_test

import (
	"fmt"
	"log"
	"math"

	"longattn"
)

// The smallest complete use: causal self-attention with grouped-query heads on the CPU.
func Example() {
	const n, heads, kvHeads, dim = 64, 8, 2, 32
	q := make([]float32, n*heads*dim)
	k := make([]float32, n*kvHeads*dim)
	v := make([]float32, n*kvHeads*dim)
	for i := range q {
		q[i] = float32(math.Sin(float64(i)))
	}
	for i := range k {
		k[i], v[i] = float32(math.Cos(float64(i))), float32(i%7)/7
	}
	out := make([]float32, n*heads*dim)

	ctx, err := longattn.NewContext(longattn.WithBackend(longattn.BackendCPU))
	if err != nil {
		log.Fatal(err)
	}
	defer ctx.Close()
	attn, err := ctx.NewAttention(longattn.AttentionDesc{NQHeads: heads, NKVHeads: kvHeads, HeadDim: dim, Causal: true})
	if err != nil {
		log.Fatal(err)
	}
	defer attn.Close()
	err = attn.Forward(
		longattn.F32(q, [4]int{1, n, heads, dim}),
		longattn.F32(k, [4]int{1, n, kvHeads, dim}),
		longattn.F32(v, [4]int{1, n, kvHeads, dim}),
		longattn.F32(out, [4]int{1, n, heads, dim}))
	if err != nil {
		log.Fatal(err)
	}
	// the first query sees only the first key, so its output is that key's value row
	fmt.Println(out[0] == v[0], out[1] == v[1])
	// Output: true true
}

// Decode against a KV cache: a causal prefill of the prompt, then one query token per step. The
// cache is head-major, [kvHeads][capacity][dim], and only its first n tokens are filled, so K and V
// are strided views of it. The last step is repeated as split-KV decode (two chunks merged by
// their LSE) and both are checked against plain attention.
func Example_decode() {
	const heads, kvHeads, dim, capacity = 8, 2, 64, 256
	const promptTokens, steps = 100, 28
	kCache := make([]float32, kvHeads*capacity*dim)
	vCache := make([]float32, kvHeads*capacity*dim)
	length := 0
	state := uint64(1)
	activations := func(n int) []float32 { // stand-in for a model's projections
		out := make([]float32, n)
		for i := range out {
			state ^= state << 13
			state ^= state >> 7
			state ^= state << 17
			out[i] = float32(state>>40)/(1<<24)*2 - 1
		}
		return out
	}
	push := func() { // append one token's K and V
		k, v := activations(kvHeads*dim), activations(kvHeads*dim)
		for h := 0; h < kvHeads; h++ {
			copy(kCache[(h*capacity+length)*dim:][:dim], k[h*dim:])
			copy(vCache[(h*capacity+length)*dim:][:dim], v[h*dim:])
		}
		length++
	}
	strides := [4]int{kvHeads * capacity * dim, dim, capacity * dim, 1}
	cacheViews := func(start, end int) (longattn.Tensor, longattn.Tensor) {
		shape := [4]int{1, end - start, kvHeads, dim}
		return longattn.F32(kCache[start*dim:], shape).WithStrides(strides),
			longattn.F32(vCache[start*dim:], shape).WithStrides(strides)
	}

	ctx, err := longattn.NewContext(longattn.WithBackend(longattn.BackendCPU))
	if err != nil {
		log.Fatal(err)
	}
	defer ctx.Close()
	attn, err := ctx.NewAttention(longattn.AttentionDesc{NQHeads: heads, NKVHeads: kvHeads, HeadDim: dim, Causal: true})
	if err != nil {
		log.Fatal(err)
	}
	defer attn.Close()

	// prefill
	promptQ := activations(promptTokens * heads * dim)
	for i := 0; i < promptTokens; i++ {
		push()
	}
	prefillOut := make([]float32, promptTokens*heads*dim)
	k, v := cacheViews(0, length)
	if err := attn.Forward(longattn.F32(promptQ, [4]int{1, promptTokens, heads, dim}), k, v,
		longattn.F32(prefillOut, [4]int{1, promptTokens, heads, dim})); err != nil {
		log.Fatal(err)
	}

	// decode: the newest token attends to the whole cache (bottom-right alignment)
	qShape := [4]int{1, 1, heads, dim}
	q, out := []float32(nil), make([]float32, heads*dim)
	for step := 0; step < steps; step++ {
		q = activations(heads * dim)
		push()
		k, v := cacheViews(0, length)
		if err := attn.Forward(longattn.F32(q, qShape), k, v, longattn.F32(out, qShape)); err != nil {
			log.Fatal(err)
		}
	}

	// the last step as split-KV decode: two chunks of the cache, merged by their LSE
	lseShape := [4]int{1, 1, heads, 1}
	oA, lseA := make([]float32, heads*dim), make([]float32, heads)
	oB, lseB := make([]float32, heads*dim), make([]float32, heads)
	split := length / 2
	for _, chunk := range []struct {
		o, lse     []float32
		start, end int
	}{{oA, lseA, 0, split}, {oB, lseB, split, length}} {
		k, v := cacheViews(chunk.start, chunk.end)
		// the query's position is the last token of the whole cache, not of the chunk
		if err := attn.Forward(longattn.F32(q, qShape), k, v, longattn.F32(chunk.o, qShape),
			longattn.WithLSE(longattn.F32(chunk.lse, lseShape)), longattn.WithQPos0(int64(length-1))); err != nil {
			log.Fatal(err)
		}
	}
	if err := ctx.Merge(longattn.F32(oA, qShape), longattn.F32(lseA, lseShape), longattn.F32(oB, qShape),
		longattn.F32(lseB, lseShape), longattn.F32(oA, qShape), longattn.F32(lseA, lseShape)); err != nil {
		log.Fatal(err)
	}

	// plain attention of the last query over the cache
	worstDirect, worstSplit := 0.0, 0.0
	for h := 0; h < heads; h++ {
		hk := h / (heads / kvHeads)
		logits := make([]float64, length)
		maxLogit := math.Inf(-1)
		for t := range logits {
			for c := 0; c < dim; c++ {
				logits[t] += float64(q[h*dim+c]) * float64(kCache[(hk*capacity+t)*dim+c])
			}
			logits[t] /= math.Sqrt(dim)
			maxLogit = math.Max(maxLogit, logits[t])
		}
		sum := 0.0
		for t := range logits {
			logits[t] = math.Exp(logits[t] - maxLogit)
			sum += logits[t]
		}
		for c := 0; c < dim; c++ {
			want := 0.0
			for t := range logits {
				want += logits[t] / sum * float64(vCache[(hk*capacity+t)*dim+c])
			}
			worstDirect = math.Max(worstDirect, math.Abs(float64(out[h*dim+c])-want))
			worstSplit = math.Max(worstSplit, math.Abs(float64(oA[h*dim+c])-want))
		}
	}
	const tolerance = 1e-4
	fmt.Printf("prefill %d tokens, decoded %d, cache %d tokens\n", promptTokens, steps, length)
	fmt.Println("direct matches plain attention:", worstDirect < tolerance)
	fmt.Println("split-KV + merge matches plain attention:", worstSplit < tolerance)
	// Output:
	// prefill 100 tokens, decoded 28, cache 128 tokens
	// direct matches plain attention: true
	// split-KV + merge matches plain attention: true
}
