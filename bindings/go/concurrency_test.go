package longattn

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Many goroutines, each with its own context and attention, computing at the same time.
func TestManyGoroutinesOneContextEach(t *testing.T) {
	const goroutines, rounds = 8, 4
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ctx, err := NewContext(WithBackend(BackendCPU), WithThreads(1))
			if err != nil {
				errs <- err
				return
			}
			defer ctx.Close()
			p := newProblem(1, 17+g, 17+g, 2, 1, 16)
			p.causal = true
			attn, err := ctx.NewAttention(p.desc(Flash))
			if err != nil {
				errs <- err
				return
			}
			defer attn.Close()
			for round := 0; round < rounds; round++ {
				runtime.Gosched() // encourage goroutines to migrate between OS threads
				if _, err := runF32(attn, p, uint64(400+g*10+round)); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Goroutines sharing one context are serialized by it and still get correct results.
func TestGoroutinesSharingOneContext(t *testing.T) {
	ctx := newCPUContext(t, 1)
	p := newProblem(1, 9, 21, 2, 2, 8)
	attn, err := ctx.NewAttention(p.desc(Flash))
	if err != nil {
		t.Fatal(err)
	}
	defer attn.Close()
	const goroutines = 6
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			if _, err := runF32(attn, p, uint64(500+g)); err != nil {
				errs <- err
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Contexts and attentions dropped without Close are released by the finalizer leak guard.
func TestFinalizerReleasesForgottenHandles(t *testing.T) {
	const forgotten = 16
	before := atomic.LoadInt64(&openContexts)
	for i := 0; i < forgotten; i++ {
		ctx, err := NewContext(WithBackend(BackendCPU), WithThreads(1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ctx.NewAttention(AttentionDesc{NQHeads: 2, HeadDim: 8}); err != nil {
			t.Fatal(err)
		}
	}
	if open := atomic.LoadInt64(&openContexts); open != before+forgotten {
		t.Fatalf("%d contexts open, want %d", open, before+forgotten)
	}
	// an attention's finalizer runs first (it references its context), the context's in a later
	// cycle; give the finalizer goroutine a few cycles
	const maxCycles = 50
	for i := 0; i < maxCycles && atomic.LoadInt64(&openContexts) > before; i++ {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if open := atomic.LoadInt64(&openContexts); open > before {
		t.Fatalf("%d forgotten contexts were never finalized", open-before)
	}
}
