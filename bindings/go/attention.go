package longattn

/*
#include <longattn.h>
*/
import "C"

import (
	"fmt"
	"runtime"
)

// Unlimited is the Window side that does not limit how far a key may be from its query.
const Unlimited = -1

// Window is the local band of SPARSE attention: a key at position kp is in the band of query
// position qp when qp-kp <= Left and kp-qp <= Right (a side equal to Unlimited does not limit).
type Window struct {
	Left, Right int
}

// AttentionDesc says what attention to compute. Zero fields take the library defaults, so the
// zero value plus NQHeads and HeadDim is exact, non-causal FLASH attention.
//
// Mask (query position qp, key position kp): a key is allowed when
// (!Causal || kp <= qp) && (in Window || kp < NGlobal || qp < NGlobal). FLASH uses Causal only.
// Mapping: Mistral / llama.cpp n_swa => Causal, Window{Left: n_swa - 1, Right: Unlimited};
// StreamingLLM => Causal, Window{Left: W - 1, Right: Unlimited}, NGlobal: 4.
type AttentionDesc struct {
	Algorithm Algorithm
	NQHeads   int     // query heads (required)
	NKVHeads  int     // key/value heads, divides NQHeads; 0 = NQHeads
	HeadDim   int     // Q/K head dimension, 1..256 (required)
	HeadDimV  int     // V/O head dimension; 0 = HeadDim
	Scale     float32 // logit scale; 0 = 1/sqrt(HeadDim)
	Softcap   float32 // > 0: logits become Softcap*tanh(logit/Softcap)
	Causal    bool
	Window    *Window // SPARSE band; nil = unlimited on both sides
	NGlobal   int     // SPARSE/HYPER: the first NGlobal tokens are global

	// HyperAttention parameters; 0 selects the library default.
	HyperBlockSize  int // keys per sorted block
	HyperSampleSize int // sampled key columns per (batch, kv head)
	HyperLSHBits    int // hyperplanes per LSH code, 1..16
	HyperMinSeqLen  int // exact attention below this length
	Seed            uint64

	// MaxBias turns on ALiBi as ggml defines it (0 = off): head h gets the slope m_h
	// (m0 = 2^(-MaxBias/n), m1 = 2^(-MaxBias/2n), n = the largest power of two <= NQHeads;
	// m_h = m0^(h+1) for h < n, else m1^(2(h-n)+1)). With a mask the logit gets m_h*mask (the
	// runtime writes -|i-j| into the mask); without one it gets -m_h*|qp-kp|. FLASH and SPARSE.
	// WithALiBiSlopes overrides it per call.
	MaxBias float32
}

// int32Field is one integer field of the C descriptor, checked for range on the way.
type int32Field struct {
	name  string
	value int
	dst   *C.int32_t
}

func (d *AttentionDesc) toC() (C.longattn_attention_desc, error) {
	var out C.longattn_attention_desc
	window := Window{Left: Unlimited, Right: Unlimited}
	if d.Window != nil {
		window = *d.Window
	}
	fields := []int32Field{
		{"NQHeads", d.NQHeads, &out.n_q_heads},
		{"NKVHeads", d.NKVHeads, &out.n_kv_heads},
		{"HeadDim", d.HeadDim, &out.head_dim},
		{"HeadDimV", d.HeadDimV, &out.head_dim_v},
		{"Window.Left", window.Left, &out.window_left},
		{"Window.Right", window.Right, &out.window_right},
		{"NGlobal", d.NGlobal, &out.n_global},
		{"HyperBlockSize", d.HyperBlockSize, &out.hyper_block_size},
		{"HyperSampleSize", d.HyperSampleSize, &out.hyper_sample_size},
		{"HyperLSHBits", d.HyperLSHBits, &out.hyper_lsh_bits},
		{"HyperMinSeqLen", d.HyperMinSeqLen, &out.hyper_min_seq_len},
	}
	const minInt32, maxInt32 = -1 << 31, 1<<31 - 1
	for _, f := range fields {
		if f.value < minInt32 || f.value > maxInt32 {
			return out, &Error{Code: StatusInvalidArgument,
				Message: fmt.Sprintf("%s = %d is out of range", f.name, f.value)}
		}
		*f.dst = C.int32_t(f.value)
	}
	out.struct_size = C.uint32_t(C.sizeof_longattn_attention_desc)
	out.algorithm = C.longattn_algorithm(d.Algorithm)
	out.scale = C.float(d.Scale)
	out.softcap = C.float(d.Softcap)
	if d.Causal {
		out.causal = 1
	}
	out.seed = C.uint64_t(d.Seed)
	out.max_bias = C.float(d.MaxBias)
	return out, nil
}

// Attention is an immutable attention handle that runs on the context it was created from.
// Close releases it; closing its context releases it too.
type Attention struct {
	ctx  *Context
	ptr  *C.longattn_attention // guarded by ctx.mu
	desc AttentionDesc
}

// NewAttention validates desc for the context's backend and creates a handle.
func (c *Context) NewAttention(desc AttentionDesc) (*Attention, error) {
	cdesc, err := desc.toC()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return nil, errClosed("context")
	}
	var ptr *C.longattn_attention
	status := C.longattn_attention_create(c.ptr, &cdesc, &ptr)
	if err := c.errorFor(status); err != nil {
		return nil, err
	}
	runtime.KeepAlive(c)
	c.attns[ptr] = struct{}{}
	if desc.Window != nil {
		w := *desc.Window
		desc.Window = &w // the handle keeps its own copy
	}
	a := &Attention{ctx: c, ptr: ptr, desc: desc}
	runtime.SetFinalizer(a, (*Attention).Close) // a leak guard only; Close is the way to release
	return a, nil
}

// Desc returns the descriptor the handle was created from.
func (a *Attention) Desc() AttentionDesc { return a.desc }

// Context returns the context the handle runs on.
func (a *Attention) Context() *Context { return a.ctx }

// Close releases the handle. It is idempotent and always returns nil.
func (a *Attention) Close() error {
	c := a.ctx
	c.mu.Lock()
	defer c.mu.Unlock()
	if a.ptr == nil {
		return nil
	}
	if _, live := c.attns[a.ptr]; live { // else the context was closed and destroyed it already
		C.longattn_attention_destroy(a.ptr)
		delete(c.attns, a.ptr)
	}
	a.ptr = nil
	runtime.SetFinalizer(a, nil)
	runtime.KeepAlive(c)
	return nil
}
