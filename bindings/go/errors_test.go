package longattn

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestViewsAreCheckedBeforeTheCall(t *testing.T) {
	ctx := newCPUContext(t, 1)
	attn, err := ctx.NewAttention(AttentionDesc{NQHeads: 4, NKVHeads: 2, HeadDim: 16})
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	q, k, v, out := make([]float32, n*4*16), make([]float32, n*2*16), make([]float32, n*2*16), make([]float32, n*4*16)
	qs, kvs := [4]int{1, n, 4, 16}, [4]int{1, n, 2, 16}
	cases := []struct {
		name       string
		q, k, v, o Tensor
		want       error
	}{
		{"slice shorter than the view", F32(q[:len(q)-1], qs), F32(k, kvs), F32(v, kvs), F32(out, qs), ErrShapeMismatch},
		{"strided view one past the end", F32(q, qs), F32(k, kvs).WithStrides([4]int{0, 2 * 16, 16, 2}), F32(v, kvs), F32(out, qs), ErrShapeMismatch},
		{"zero-sized axis", F32(q, [4]int{1, 0, 4, 16}), F32(k, kvs), F32(v, kvs), F32(out, qs), ErrInvalidArgument},
		{"negative stride", F32(q, qs), F32(k, kvs).WithStrides([4]int{0, -32, 16, 1}), F32(v, kvs), F32(out, qs), ErrBadStride},
		{"zero Tensor", Tensor{}, F32(k, kvs), F32(v, kvs), F32(out, qs), ErrInvalidArgument},
		{"output overlaps an input", F32(q, qs), F32(k, kvs), F32(v, kvs), F32(q, qs), ErrInvalidArgument},
		{"huge strides overflow", F32(q, qs), F32(k, kvs).WithStrides([4]int{0, math.MaxInt64 / 2, 16, 1}), F32(v, kvs), F32(out, qs), ErrInvalidArgument},
		// checked by the library
		{"q heads disagree with the descriptor", F32(q, [4]int{1, n, 2, 32}), F32(k, kvs), F32(v, kvs), F32(out, qs), ErrShapeMismatch},
		{"k and v token counts differ", F32(q, qs), F32(k, kvs), F32(v[:(n-1)*32], [4]int{1, n - 1, 2, 16}), F32(out, qs), ErrShapeMismatch},
		{"output head_dim wrong", F32(q, qs), F32(k, kvs), F32(v, kvs), F32(out, [4]int{1, n, 8, 8}), ErrShapeMismatch},
		{"zero stride makes tokens alias", F32(q, qs), F32(k, kvs).WithStrides([4]int{0, 0, 16, 1}), F32(v, kvs), F32(out, qs), ErrBadStride},
	}
	for _, c := range cases {
		err := attn.Forward(c.q, c.k, c.v, c.o)
		var typed *Error
		if !errors.As(err, &typed) || !errors.Is(err, c.want) {
			t.Fatalf("%s: got %v, want code %v", c.name, err, c.want.(*Error).Code)
		}
		if typed.Message == "" {
			t.Fatalf("%s: empty message", c.name)
		}
		t.Logf("%s: %v", c.name, err)
	}
	// the context still works after the failures
	if err := attn.Forward(F32(q, qs), F32(k, kvs), F32(v, kvs), F32(out, qs)); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidDescriptorsAreRejected(t *testing.T) {
	ctx := newCPUContext(t, 1)
	cases := []struct {
		name string
		desc AttentionDesc
		want error
	}{
		{"head_dim 0", AttentionDesc{NQHeads: 4, NKVHeads: 2}, ErrInvalidArgument},
		{"n_kv_heads does not divide n_q_heads", AttentionDesc{NQHeads: 4, NKVHeads: 3, HeadDim: 16}, ErrInvalidArgument},
		{"NaN scale", AttentionDesc{NQHeads: 4, HeadDim: 16, Scale: float32(math.NaN())}, ErrInvalidArgument},
		{"unknown algorithm", AttentionDesc{Algorithm: 99, NQHeads: 4, HeadDim: 16}, ErrUnknownEnum},
		{"FLASH with a window", AttentionDesc{NQHeads: 4, HeadDim: 16, Window: &Window{Left: 4, Right: Unlimited}}, ErrInvalidArgument},
		{"field beyond int32", AttentionDesc{NQHeads: 1 << 40, HeadDim: 16}, ErrInvalidArgument},
	}
	for _, c := range cases {
		attn, err := ctx.NewAttention(c.desc)
		if err == nil {
			attn.Close()
			t.Fatalf("%s: accepted", c.name)
		}
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: got %v, want code %v", c.name, err, c.want.(*Error).Code)
		}
		t.Logf("%s: %v", c.name, err)
	}
}

func TestUnknownBackendIsAnError(t *testing.T) {
	ctx, err := NewContext(WithBackend(77))
	if err == nil {
		ctx.Close()
		t.Fatal("backend 77 accepted")
	}
	var typed *Error
	if !errors.As(err, &typed) || typed.Code != StatusUnknownEnum || typed.Message == "" {
		t.Fatalf("got %#v", err)
	}
	if !strings.Contains(err.Error(), "UNKNOWN_ENUM") {
		t.Fatalf("message %q does not name the status", err.Error())
	}
}

func TestCloseIsIdempotentAndUseAfterCloseIsAnError(t *testing.T) {
	ctx, err := NewContext(WithBackend(BackendCPU), WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	attn, err := ctx.NewAttention(AttentionDesc{NQHeads: 1, HeadDim: 4})
	if err != nil {
		t.Fatal(err)
	}
	other, err := ctx.NewAttention(AttentionDesc{NQHeads: 1, HeadDim: 4})
	if err != nil {
		t.Fatal(err)
	}
	buf := []float32{1, 2, 3, 4}
	out := make([]float32, 4)
	shape := [4]int{1, 1, 1, 4}
	if err := attn.Forward(F32(buf, shape), F32(buf, shape), F32(buf, shape), F32(out, shape)); err != nil {
		t.Fatal(err)
	}
	attn.Close()
	attn.Close()
	if err := attn.Forward(F32(buf, shape), F32(buf, shape), F32(buf, shape), F32(out, shape)); !errors.Is(err, ErrNullPointer) {
		t.Fatalf("forward on a closed attention: %v", err)
	}
	// closing the context releases the attention still open on it; closing that afterwards is a no-op
	ctx.Close()
	ctx.Close()
	other.Close()
	if _, err := ctx.NewAttention(AttentionDesc{NQHeads: 1, HeadDim: 4}); !errors.Is(err, ErrNullPointer) {
		t.Fatalf("NewAttention on a closed context: %v", err)
	}
}

// Every function the header exports is reachable from this package.
func TestEveryHeaderFunctionIsWrapped(t *testing.T) {
	header, err := os.ReadFile(filepath.Join("..", "..", "include", "longattn.h"))
	if err != nil {
		t.Skipf("no header next to the package: %v", err)
	}
	var sources strings.Builder
	files, _ := filepath.Glob("*.go")
	for _, name := range files {
		if !strings.HasSuffix(name, "_test.go") {
			text, _ := os.ReadFile(name)
			sources.Write(text)
		}
	}
	declaration := regexp.MustCompile(`LONGATTN_API[^(]*?\b(longattn_\w+)\s*\(`)
	matches := declaration.FindAllStringSubmatch(string(header), -1)
	if len(matches) < 10 {
		t.Fatalf("parsed only %d declarations", len(matches))
	}
	// A function a Go program has no use for: the helper that fills a contiguous C tensor view
	// (F32, F16, BF16, Q8_0 and Q4_0 do that).
	notWrapped := map[string]bool{"longattn_tensor_contiguous": true}
	for _, m := range matches {
		name := m[1]
		// called as C.name(...) from Go, or from the C shims in calls.go
		if !notWrapped[name] && !strings.Contains(sources.String(), name+"(") {
			t.Errorf("%s is declared in longattn.h but not called by the package", name)
		}
	}
}
