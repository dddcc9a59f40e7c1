package longattn

// The calls that take tensors. Go's cgo rules forbid handing C Go memory that holds Go pointers (a
// longattn_tensor pointing at a Go slice, forward args pointing at tensors, an array of data
// pointers), so the data pointers travel as plain arguments and the small C shims below build the
// longattn_tensor, longattn_forward_args and longattn_sharded_args structs on the C stack for the
// duration of the call. Nothing keeps a pointer to Go memory after the call returns.

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

// views: q, k, v, out, lse, mask (lse and mask read only when their data is not NULL); slopes and
// sinks hold n_q_heads floats or are NULL.
static longattn_status longattn_go_forward(longattn_context* ctx, const longattn_attention* attn,
		void* q_data, void* k_data, void* v_data, void* out_data, void* lse_data, void* mask_data,
		const float* slopes, const float* sinks, const longattn_go_view* views, int64_t q_pos0) {
	longattn_tensor q, k, v, out, lse, mask;
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
	if (mask_data != NULL) {
		longattn_go_tensor(&mask, mask_data, &views[5]);
		args.mask = &mask;
	}
	args.alibi_slopes = slopes;
	args.sinks = sinks;
	args.q_pos0 = q_pos0;
	return longattn_attention_forward(ctx, attn, &args);
}

// The most shards ForwardSharded takes: each shard's five data pointers are separate arguments.
#define LONGATTN_GO_MAX_SHARDS 8
#define LONGATTN_GO_SHARD_PARAMS(x) void* x##0, void* x##1, void* x##2, void* x##3, \
	void* x##4, void* x##5, void* x##6, void* x##7
#define LONGATTN_GO_SHARD_ARRAY(x) { x##0, x##1, x##2, x##3, x##4, x##5, x##6, x##7 }

// views: [5][n]: q, k, v, out, lse of every shard (lse read only when has_lse).
static longattn_status longattn_go_forward_sharded(longattn_context* ctx,
		const longattn_attention* attn, int32_t n, int32_t layout, int32_t queries, int64_t q_pos0,
		int has_lse, const longattn_go_view* views, LONGATTN_GO_SHARD_PARAMS(q),
		LONGATTN_GO_SHARD_PARAMS(k), LONGATTN_GO_SHARD_PARAMS(v), LONGATTN_GO_SHARD_PARAMS(o),
		LONGATTN_GO_SHARD_PARAMS(l)) {
	void* data[5][LONGATTN_GO_MAX_SHARDS] = {LONGATTN_GO_SHARD_ARRAY(q), LONGATTN_GO_SHARD_ARRAY(k),
		LONGATTN_GO_SHARD_ARRAY(v), LONGATTN_GO_SHARD_ARRAY(o), LONGATTN_GO_SHARD_ARRAY(l)};
	longattn_tensor t[5][LONGATTN_GO_MAX_SHARDS];
	for (int kind = 0; kind < 5; ++kind)
		for (int r = 0; r < n && r < LONGATTN_GO_MAX_SHARDS; ++r)
			longattn_go_tensor(&t[kind][r], data[kind][r], &views[kind * n + r]);
	longattn_sharded_args args = LONGATTN_SHARDED_ARGS_INIT;
	args.n_shards = n;
	args.layout = layout;
	args.queries = queries;
	args.q = t[0];
	args.k = t[1];
	args.v = t[2];
	args.out = t[3];
	args.lse = has_lse ? t[4] : NULL;
	args.q_pos0 = q_pos0;
	return longattn_attention_forward_sharded(ctx, attn, &args);
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
	lse    Tensor
	qPos0  int64
	mask   Tensor
	slopes []float32
	sinks  []float32
}

// WithLSE asks for the natural-log sum of exp(logits) of every row, written into lse: float32
// {batch, n_q, n_q_heads, 1}; -Inf for a row with no allowed key (the sink included, if any).
func WithLSE(lse Tensor) ForwardOption { return func(c *forwardConfig) { c.lse = lse } }

// WithQPos0 sets the position of query 0 (default QPosBottomRight).
func WithQPos0(pos int64) ForwardOption { return func(c *forwardConfig) { c.qPos0 = pos } }

// WithMask adds an additive mask to the logits before the softmax (-Inf masks): F16 or F32, shape
// {batch or 1, n_q, 1 or n_q_heads, n_k}, a size-1 axis broadcasting. This is ggml's KQ mask
// (causality, padding, several sequences in one batch); it applies together with the descriptor's
// Causal flag. FLASH and SPARSE.
func WithMask(mask Tensor) ForwardOption { return func(c *forwardConfig) { c.mask = mask } }

// WithALiBiSlopes sets one ALiBi slope per query head (len = NQHeads), overriding the descriptor's
// MaxBias: with a mask the logit gets slope*mask, without one -slope*|qp-kp|.
func WithALiBiSlopes(slopes []float32) ForwardOption {
	return func(c *forwardConfig) { c.slopes = slopes }
}

// WithSinks adds attention sinks (gpt-oss): one logit per query head (len = NQHeads) added to
// every row's softmax denominator, o = sum_j e^{s_j} v_j / (e^{sink_h} + sum_j e^{s_j}).
func WithSinks(sinks []float32) ForwardOption { return func(c *forwardConfig) { c.sinks = sinks } }

// perHead returns a pointer to values, which must hold exactly nHeads floats (the library reads
// that many), or nil for no values.
func perHead(values []float32, nHeads int, name string) (*C.float, error) {
	if values == nil {
		return nil, nil
	}
	if len(values) != nHeads {
		return nil, &Error{Code: StatusShapeMismatch,
			Message: fmt.Sprintf("%s has %d values; NQHeads is %d", name, len(values), nHeads)}
	}
	return (*C.float)(unsafe.Pointer(&values[0])), nil
}

// Forward computes attention into out:
//
//	q   {batch, n_q, n_q_heads,  head_dim}     F32 / F16 / BF16
//	k   {batch, n_k, n_kv_heads, head_dim}     F32 / F16 / BF16 / Q8_0 / Q4_0
//	v   {batch, n_k, n_kv_heads, head_dim_v}   F32 / F16 / BF16 / Q8_0 / Q4_0
//	out {batch, n_q, n_q_heads,  head_dim_v}   written; must not overlap any input
//
// Query i has position q_pos0 + i and key j position j. Forward runs on the attention's context;
// calls on one context are serialized. On a ring context it takes whole tensors and shards them.
func (a *Attention) Forward(q, k, v, out Tensor, opts ...ForwardOption) error {
	cfg := forwardConfig{qPos0: QPosBottomRight}
	for _, opt := range opts {
		opt(&cfg)
	}
	names := [6]string{"q", "k", "v", "out", "lse", "mask"}
	tensors := [6]Tensor{q, k, v, out, cfg.lse, cfg.mask}
	var present [6]bool
	var checked [6]checkedView
	var views [6]C.longattn_go_view
	for i := range tensors {
		present[i] = i < 4 || !tensors[i].IsZero()
		if !present[i] {
			continue
		}
		view, err := tensors[i].check(names[i])
		if err != nil {
			return err
		}
		checked[i] = view
		views[i] = goView(view)
	}
	// outputs (out, lse) overlap neither the inputs nor each other
	for _, o := range []int{3, 4} {
		for i := range tensors {
			if i != o && present[o] && present[i] && checked[o].overlaps(checked[i]) {
				return &Error{Code: StatusInvalidArgument,
					Message: fmt.Sprintf("%s overlaps %s in memory", names[o], names[i])}
			}
		}
	}
	slopes, err := perHead(cfg.slopes, a.desc.NQHeads, "ALiBi slopes")
	if err != nil {
		return err
	}
	sinks, err := perHead(cfg.sinks, a.desc.NQHeads, "sinks")
	if err != nil {
		return err
	}

	ctx := a.ctx
	ctx.mu.Lock()
	defer ctx.mu.Unlock()
	if ctx.ptr == nil || a.ptr == nil {
		return errClosed("attention")
	}
	// checked[i].data is nil for an absent lse or mask
	status := C.longattn_go_forward(ctx.ptr, a.ptr, checked[0].data, checked[1].data, checked[2].data,
		checked[3].data, checked[4].data, checked[5].data, slopes, sinks, &views[0], C.int64_t(cfg.qPos0))
	err = ctx.errorFor(status)
	runtime.KeepAlive(a)
	runtime.KeepAlive(ctx)
	runtime.KeepAlive(cfg.slopes)
	runtime.KeepAlive(cfg.sinks)
	return err
}

// MaxShards is the most shards ForwardSharded takes.
const MaxShards = C.LONGATTN_GO_MAX_SHARDS

// ShardedOption adds an optional part to a ForwardSharded call.
type ShardedOption func(*shardedConfig)

type shardedConfig struct {
	layout  RingLayout
	queries ShardQueries
	lse     []Tensor
	qPos0   int64
}

// WithShardLayout says which tokens each rank's K/V shard holds: RingLayoutContiguous (the
// default; any lengths, shard r starting where shard r-1 ends) or RingLayoutZigzag (the lengths
// RingShard gives).
func WithShardLayout(layout RingLayout) ShardedOption {
	return func(c *shardedConfig) { c.layout = layout }
}

// WithShardQueries says what the query shards hold (default ShardQueriesLocal).
func WithShardQueries(queries ShardQueries) ShardedOption {
	return func(c *shardedConfig) { c.queries = queries }
}

// WithShardLSE asks for the LSE of every rank's rows: one float32 {batch, n_q, n_q_heads, 1}
// tensor per shard.
func WithShardLSE(lse []Tensor) ShardedOption { return func(c *shardedConfig) { c.lse = lse } }

// WithShardQPos0 sets the position of query 0 for replicated queries (default QPosBottomRight:
// n - n_q, n the total keys).
func WithShardQPos0(pos int64) ShardedOption { return func(c *shardedConfig) { c.qPos0 = pos } }

// ForwardSharded computes attention over a sequence sharded across the ranks of a ring context
// (WithRing): q, k, v and out hold one tensor per rank (as many as the context's ranks, at most
// MaxShards); element r is rank r's shard. K and V must be token-major (a token's heads and dims
// within strides[1]). Local queries: q[r] and out[r] have the rows and positions of k[r].
// Replicated queries: every q[r] holds the same rows, and the merged result is written to every
// out[r]. The Go binding passes host memory, so this serves CPU rings.
func (a *Attention) ForwardSharded(q, k, v, out []Tensor, opts ...ShardedOption) error {
	cfg := shardedConfig{layout: RingLayoutContiguous, queries: ShardQueriesLocal, qPos0: QPosBottomRight}
	for _, opt := range opts {
		opt(&cfg)
	}
	n := len(q)
	if len(k) != n || len(v) != n || len(out) != n || (cfg.lse != nil && len(cfg.lse) != n) {
		return &Error{Code: StatusShapeMismatch,
			Message: fmt.Sprintf("shard counts differ: q %d, k %d, v %d, out %d, lse %d", n, len(k), len(v), len(out), len(cfg.lse))}
	}
	if n > MaxShards {
		return &Error{Code: StatusUnsupported,
			Message: fmt.Sprintf("%d shards; the Go binding takes at most %d", n, MaxShards)}
	}
	kinds := [5][]Tensor{q, k, v, out, cfg.lse}
	names := [5]string{"q", "k", "v", "out", "lse"}
	var data [5][MaxShards]unsafe.Pointer
	var checked [5][MaxShards]checkedView
	views := make([]C.longattn_go_view, 5*n+1) // +1: never empty
	for kind, tensors := range kinds {
		for r, t := range tensors {
			view, err := t.check(fmt.Sprintf("%s[%d]", names[kind], r))
			if err != nil {
				return err
			}
			checked[kind][r] = view
			data[kind][r] = view.data
			views[kind*n+r] = goView(view)
		}
	}
	// every output overlaps no input and no other output
	for _, o := range []int{3, 4} {
		for ro := 0; ro < len(kinds[o]); ro++ {
			for kind := range kinds {
				for r := 0; r < len(kinds[kind]); r++ {
					if (kind != o || r != ro) && checked[o][ro].overlaps(checked[kind][r]) {
						return &Error{Code: StatusInvalidArgument,
							Message: fmt.Sprintf("%s[%d] overlaps %s[%d] in memory", names[o], ro, names[kind], r)}
					}
				}
			}
		}
	}
	hasLSE := C.int(0)
	if cfg.lse != nil {
		hasLSE = 1
	}

	ctx := a.ctx
	ctx.mu.Lock()
	defer ctx.mu.Unlock()
	if ctx.ptr == nil || a.ptr == nil {
		return errClosed("attention")
	}
	d := &data
	status := C.longattn_go_forward_sharded(ctx.ptr, a.ptr, C.int32_t(n), C.int32_t(cfg.layout),
		C.int32_t(cfg.queries), C.int64_t(cfg.qPos0), hasLSE, &views[0],
		d[0][0], d[0][1], d[0][2], d[0][3], d[0][4], d[0][5], d[0][6], d[0][7],
		d[1][0], d[1][1], d[1][2], d[1][3], d[1][4], d[1][5], d[1][6], d[1][7],
		d[2][0], d[2][1], d[2][2], d[2][3], d[2][4], d[2][5], d[2][6], d[2][7],
		d[3][0], d[3][1], d[3][2], d[3][3], d[3][4], d[3][5], d[3][6], d[3][7],
		d[4][0], d[4][1], d[4][2], d[4][3], d[4][4], d[4][5], d[4][6], d[4][7])
	err := ctx.errorFor(status)
	runtime.KeepAlive(a)
	runtime.KeepAlive(ctx)
	runtime.KeepAlive(kinds)
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
