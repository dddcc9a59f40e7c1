package longattn

// The two calls that take tensors. Go's cgo rules forbid handing C a Go struct that holds Go
// pointers (a longattn_tensor pointing at a Go slice, or forward args pointing at tensors), so the
// data pointers travel as plain arguments and the small C shims below build the longattn_tensor
// and longattn_forward_args structs on the C stack for the duration of the call. Nothing keeps a
// pointer to Go memory after the call returns.

/*
#include <longattn.h>

typedef struct {
	int32_t dtype;
	int64_t shape[4];
	int64_t strides[4]; // bytes
} longattn_go_view;

static void longattn_go_tensor(longattn_tensor* t, void* data, const longattn_go_view* v) {
	t->data = data;
	t->dtype = v->dtype;
	t->memory = LONGATTN_MEMORY_HOST;
	for (int axis = 0; axis < 4; ++axis) {
		t->shape[axis] = v->shape[axis];
		t->strides[axis] = v->strides[axis];
	}
}

// views: q, k, v, out, lse (lse read only when lse_data is not NULL).
static longattn_status longattn_go_forward(longattn_context* ctx, const longattn_attention* attn,
		void* q_data, void* k_data, void* v_data, void* out_data, void* lse_data,
		const longattn_go_view* views, int64_t q_pos0) {
	longattn_tensor q, k, v, out, lse;
	longattn_go_tensor(&q, q_data, &views[0]);
	longattn_go_tensor(&k, k_data, &views[1]);
	longattn_go_tensor(&v, v_data, &views[2]);
	longattn_go_tensor(&out, out_data, &views[3]);
	longattn_forward_args args = LONGATTN_FORWARD_ARGS_INIT;
	args.q = &q;
	args.k = &k;
	args.v = &v;
	args.out = &out;
	if (lse_data != NULL) {
		longattn_go_tensor(&lse, lse_data, &views[4]);
		args.lse = &lse;
	}
	args.q_pos0 = q_pos0;
	return longattn_attention_forward(ctx, attn, &args);
}

// views: o_a, lse_a, o_b, lse_b, o_out, lse_out.
static longattn_status longattn_go_merge(longattn_context* ctx, void* o_a, void* lse_a, void* o_b,
		void* lse_b, void* o_out, void* lse_out, const longattn_go_view* views) {
	longattn_tensor t[6];
	void* data[6] = {o_a, lse_a, o_b, lse_b, o_out, lse_out};
	for (int i = 0; i < 6; ++i) longattn_go_tensor(&t[i], data[i], &views[i]);
	return longattn_merge(ctx, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5]);
}
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"unsafe"
)

// QPosBottomRight places query 0 at position n_k - n_q (the default: the queries are the last
// tokens of the sequence, as in decode).
const QPosBottomRight int64 = math.MinInt64

func goView(v checkedView) C.longattn_go_view {
	var out C.longattn_go_view
	out.dtype = C.int32_t(v.dtype)
	for axis := 0; axis < 4; axis++ {
		out.shape[axis] = C.int64_t(v.shape[axis])
		out.strides[axis] = C.int64_t(v.strides[axis])
	}
	return out
}

// ForwardOption adds an optional part to a Forward call.
type ForwardOption func(*forwardConfig)

type forwardConfig struct {
	lse   Tensor
	qPos0 int64
}

// WithLSE asks for the natural-log sum of exp(logits) of every row, written into lse: float32
// {batch, n_q, n_q_heads, 1}; -Inf for a row with no allowed key.
func WithLSE(lse Tensor) ForwardOption { return func(c *forwardConfig) { c.lse = lse } }

// WithQPos0 sets the position of query 0 (default QPosBottomRight).
func WithQPos0(pos int64) ForwardOption { return func(c *forwardConfig) { c.qPos0 = pos } }

// Forward computes attention into out:
//
//	q   {batch, n_q, n_q_heads,  head_dim}     F32 / F16 / BF16
//	k   {batch, n_k, n_kv_heads, head_dim}
//	v   {batch, n_k, n_kv_heads, head_dim_v}   same dtype as k
//	out {batch, n_q, n_q_heads,  head_dim_v}   written; must not overlap any input
//
// Query i has position q_pos0 + i and key j position j. Forward runs on the attention's context;
// calls on one context are serialized.
func (a *Attention) Forward(q, k, v, out Tensor, opts ...ForwardOption) error {
	cfg := forwardConfig{qPos0: QPosBottomRight}
	for _, opt := range opts {
		opt(&cfg)
	}
	names := [5]string{"q", "k", "v", "out", "lse"}
	tensors := [5]Tensor{q, k, v, out, cfg.lse}
	count := 4
	if !cfg.lse.IsZero() {
		count = 5
	}
	var checked [5]checkedView
	var views [5]C.longattn_go_view
	for i := 0; i < count; i++ {
		view, err := tensors[i].check(names[i])
		if err != nil {
			return err
		}
		checked[i] = view
		views[i] = goView(view)
	}
	// outputs overlap neither the inputs nor each other
	for o := 3; o < count; o++ {
		for i := 0; i < o; i++ {
			if checked[o].overlaps(checked[i]) {
				return &Error{Code: StatusInvalidArgument,
					Message: fmt.Sprintf("%s overlaps %s in memory", names[o], names[i])}
			}
		}
	}
	var lseData unsafe.Pointer
	if count == 5 {
		lseData = checked[4].data
	}

	ctx := a.ctx
	ctx.mu.Lock()
	defer ctx.mu.Unlock()
	if ctx.ptr == nil || a.ptr == nil {
		return errClosed("attention")
	}
	status := C.longattn_go_forward(ctx.ptr, a.ptr, checked[0].data, checked[1].data, checked[2].data,
		checked[3].data, lseData, &views[0], C.int64_t(cfg.qPos0))
	err := ctx.errorFor(status)
	runtime.KeepAlive(a)
	runtime.KeepAlive(ctx)
	return err
}

// Merge combines two partial attention results over disjoint key sets of the same queries:
// L = logaddexp(La, Lb); O = exp(La-L)·Oa + exp(Lb-L)·Ob, in fp32. o* are
// {batch, n_q, heads, head_dim_v}; lse* are float32 {batch, n_q, heads, 1}. oOut/lseOut may be
// exactly the views oA/lseA (an in-place merge) but must not otherwise overlap an input.
func (c *Context) Merge(oA, lseA, oB, lseB, oOut, lseOut Tensor) error {
	names := [6]string{"o_a", "lse_a", "o_b", "lse_b", "o_out", "lse_out"}
	tensors := [6]Tensor{oA, lseA, oB, lseB, oOut, lseOut}
	var checked [6]checkedView
	var views [6]C.longattn_go_view
	for i := range tensors {
		view, err := tensors[i].check(names[i])
		if err != nil {
			return err
		}
		checked[i] = view
		views[i] = goView(view)
	}
	for o := 4; o < 6; o++ {
		for i := 0; i < o; i++ {
			inPlace := i == o-4 && checked[o].same(checked[i]) // o_out == o_a, lse_out == lse_a
			if !inPlace && checked[o].overlaps(checked[i]) {
				return &Error{Code: StatusInvalidArgument,
					Message: fmt.Sprintf("%s overlaps %s in memory", names[o], names[i])}
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return errClosed("context")
	}
	status := C.longattn_go_merge(c.ptr, checked[0].data, checked[1].data, checked[2].data,
		checked[3].data, checked[4].data, checked[5].data, &views[0])
	err := c.errorFor(status)
	runtime.KeepAlive(c)
	return err
}
