package longattn

/*
#include <longattn.h>
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// openContexts counts contexts created and not yet released (observed by the leak-guard test).
var openContexts int64

// Context binds one backend device, a thread count (CPU) and scratch memory. Its methods may be
// called from any goroutine; calls on one context are serialized, so run one context per goroutine
// that computes attention concurrently. Close releases it (and every Attention created from it).
type Context struct {
	mu  sync.Mutex
	ptr *C.longattn_context
	// Live attention handles created from this context, destroyed before it. Only C pointers are
	// kept here, so no reference cycle keeps a Context from being finalized.
	attns map[*C.longattn_attention]struct{}
}

type contextConfig struct {
	backend  Backend
	device   int
	threads  int
	fallback bool
}

// Option configures NewContext.
type Option func(*contextConfig)

// WithBackend selects the backend (default BackendAuto).
func WithBackend(b Backend) Option { return func(c *contextConfig) { c.backend = b } }

// WithDevice selects the device index of the backend (default 0).
func WithDevice(index int) Option { return func(c *contextConfig) { c.device = index } }

// WithThreads sets the CPU worker threads (default 0: all hardware threads).
func WithThreads(n int) Option { return func(c *contextConfig) { c.threads = n } }

// WithCPUFallback makes an explicitly chosen backend that is missing fall back to the CPU.
func WithCPUFallback() Option { return func(c *contextConfig) { c.fallback = true } }

// NewContext creates a context. Release it with Close.
func NewContext(opts ...Option) (*Context, error) {
	cfg := contextConfig{backend: BackendAuto}
	for _, opt := range opts {
		opt(&cfg)
	}
	const maxInt32 = 1<<31 - 1
	if cfg.device < 0 || cfg.device > maxInt32 || cfg.threads < 0 || cfg.threads > maxInt32 {
		return nil, &Error{Code: StatusInvalidArgument,
			Message: fmt.Sprintf("device %d / threads %d out of range", cfg.device, cfg.threads)}
	}
	options := C.longattn_context_options{
		struct_size:  C.uint32_t(C.sizeof_longattn_context_options),
		backend:      C.longattn_backend(cfg.backend),
		device_index: C.int32_t(cfg.device),
		n_threads:    C.int32_t(cfg.threads),
	}
	if cfg.fallback {
		options.flags = C.LONGATTN_CONTEXT_FALLBACK_CPU
	}
	var ptr *C.longattn_context
	// The create error message is per OS thread: stay on this thread until it is read.
	runtime.LockOSThread()
	status := C.longattn_context_create(&options, &ptr)
	var message string
	if status != C.LONGATTN_OK {
		message = C.GoString(C.longattn_last_create_error())
	}
	runtime.UnlockOSThread()
	if status != C.LONGATTN_OK {
		return nil, &Error{Code: Status(status), Message: message}
	}
	atomic.AddInt64(&openContexts, 1)
	c := &Context{ptr: ptr, attns: make(map[*C.longattn_attention]struct{})}
	runtime.SetFinalizer(c, (*Context).Close) // a leak guard only; Close is the way to release
	return c, nil
}

// Close releases the context and every Attention still open on it. It is idempotent and always
// returns nil.
func (c *Context) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return nil
	}
	for attn := range c.attns {
		C.longattn_attention_destroy(attn)
	}
	c.attns = nil
	C.longattn_context_destroy(c.ptr)
	c.ptr = nil
	atomic.AddInt64(&openContexts, -1)
	runtime.SetFinalizer(c, nil)
	return nil
}

// Backend returns the backend the context runs on (never BackendAuto); BackendAuto once closed.
func (c *Context) Backend() Backend {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return BackendAuto
	}
	b := Backend(C.longattn_context_backend(c.ptr))
	runtime.KeepAlive(c)
	return b
}

// Threads returns the worker threads the context uses on the CPU backend (0 once closed).
func (c *Context) Threads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return 0
	}
	n := int(C.longattn_context_threads(c.ptr))
	runtime.KeepAlive(c)
	return n
}

// ScratchBytes returns the bytes of scratch memory the context holds between calls (host memory on
// the CPU backend, device memory on GPU backends); 0 once closed.
func (c *Context) ScratchBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return 0
	}
	n := int(C.longattn_context_scratch_bytes(c.ptr))
	runtime.KeepAlive(c)
	return n
}

// errorFor turns the status of a call on c into an error carrying the context's message. The
// caller holds c.mu, so the message belongs to that call.
func (c *Context) errorFor(status C.longattn_status) error {
	if status == C.LONGATTN_OK {
		return nil
	}
	return &Error{Code: Status(status), Message: C.GoString(C.longattn_context_last_error(c.ptr))}
}
