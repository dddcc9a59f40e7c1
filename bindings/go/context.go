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
	backend     Backend
	device      int
	threads     int
	fallback    bool
	ringDevices int
	ringLayout  RingLayout
	ringVirtual bool
	transport   RingTransport
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

// WithRing makes a ring context of n ranks (0, the default, is an ordinary context). CUDA/Vulkan:
// devices device .. device+n-1 (or n virtual ranks on one device with WithRingVirtual); CPU: n
// virtual devices with max(1, threads/n) threads each. The sequence is sharded across the ranks
// and K/V blocks travel around the ring; the result is exact attention whatever n is. Forward
// takes whole tensors and shards them itself; ForwardSharded takes per-rank shards. FLASH and
// SPARSE; masks, ALiBi, sinks and block-format K/V are unsupported on a ring.
func WithRing(n int) Option { return func(c *contextConfig) { c.ringDevices = n } }

// WithRingLayout sets how Forward cuts whole tensors into shards on a ring context (default
// RingLayoutAuto).
func WithRingLayout(layout RingLayout) Option {
	return func(c *contextConfig) { c.ringLayout = layout }
}

// WithRingTransport sets how the ranks of a ring context exchange blocks (default
// RingTransportAuto).
func WithRingTransport(t RingTransport) Option {
	return func(c *contextConfig) { c.transport = t }
}

// WithRingVirtual puts every ring rank on the context's device (virtual ranks on one GPU); the
// CPU's ranks are always virtual.
func WithRingVirtual() Option { return func(c *contextConfig) { c.ringVirtual = true } }

// NewContext creates a context. Release it with Close.
func NewContext(opts ...Option) (*Context, error) {
	cfg := contextConfig{backend: BackendAuto, ringLayout: RingLayoutAuto}
	for _, opt := range opts {
		opt(&cfg)
	}
	const maxInt32 = 1<<31 - 1
	if cfg.device < 0 || cfg.device > maxInt32 || cfg.threads < 0 || cfg.threads > maxInt32 ||
		cfg.ringDevices < 0 || cfg.ringDevices > maxInt32 {
		return nil, &Error{Code: StatusInvalidArgument,
			Message: fmt.Sprintf("device %d / threads %d / ring devices %d out of range", cfg.device, cfg.threads, cfg.ringDevices)}
	}
	options := C.longattn_context_options{
		struct_size:    C.uint32_t(C.sizeof_longattn_context_options),
		backend:        C.longattn_backend(cfg.backend),
		device_index:   C.int32_t(cfg.device),
		n_threads:      C.int32_t(cfg.threads),
		ring_devices:   C.int32_t(cfg.ringDevices),
		ring_layout:    C.longattn_ring_layout(cfg.ringLayout),
		ring_transport: C.int32_t(cfg.transport),
	}
	if cfg.fallback {
		options.flags |= C.LONGATTN_CONTEXT_FALLBACK_CPU
	}
	if cfg.ringVirtual {
		options.flags |= C.LONGATTN_CONTEXT_RING_VIRTUAL
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

// RingTransport returns the transport a ring context uses, auto resolved (RingTransportAuto
// for an ordinary or closed context).
func (c *Context) RingTransport() RingTransport {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return RingTransportAuto
	}
	t := RingTransport(C.longattn_context_ring_transport(c.ptr))
	runtime.KeepAlive(c)
	return t
}

// RingDevices returns the ranks of a ring context (0 for an ordinary or closed context).
func (c *Context) RingDevices() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return 0
	}
	n := int(C.longattn_context_ring_devices(c.ptr))
	runtime.KeepAlive(c)
	return n
}

// RankScratchBytes returns the bytes of scratch memory rank holds on a ring context (0 for a rank
// out of range or a closed context). ScratchBytes reports rank 0.
func (c *Context) RankScratchBytes(rank int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	const maxInt32 = 1<<31 - 1
	if c.ptr == nil || rank < 0 || rank > maxInt32 {
		return 0
	}
	n := int(C.longattn_context_rank_scratch_bytes(c.ptr, C.int32_t(rank)))
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
