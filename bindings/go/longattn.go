// Package longattn wraps the longattn C library: long-context attention (exact FLASH, SPARSE
// band + global tokens, HyperAttention) on the CPU, CUDA or Vulkan, for local LLM runtimes.
//
// A Context binds one backend device and its scratch memory; it is released by Close (a finalizer
// only guards against leaks). An Attention is an immutable handle created from a context and runs
// on it. Tensors are views of Go slices with shape {batch, tokens, heads, head_dim}; the library
// reads and writes them only during a call and keeps no pointer to Go memory afterwards.
//
//	ctx, err := longattn.NewContext(longattn.WithBackend(longattn.BackendCPU))
//	if err != nil { ... }
//	defer ctx.Close()
//	attn, err := ctx.NewAttention(longattn.AttentionDesc{NQHeads: 32, NKVHeads: 8, HeadDim: 128, Causal: true})
//	if err != nil { ... }
//	defer attn.Close()
//	err = attn.Forward(
//		longattn.F32(q, [4]int{1, n, 32, 128}),
//		longattn.F32(k, [4]int{1, n, 8, 128}),
//		longattn.F32(v, [4]int{1, n, 8, 128}),
//		longattn.F32(out, [4]int{1, n, 32, 128}))
//
// Building: cgo finds the library through pkg-config. For an installed library nothing is needed;
// for a build tree set PKG_CONFIG_PATH=<build>/pkgconfig (its uninstalled longattn.pc also adds an
// rpath, so programs run without LD_LIBRARY_PATH).
package longattn

/*
#cgo pkg-config: longattn
#include <longattn.h>
*/
import "C"

import "fmt"

// VersionNumber is MAJOR*10000 + MINOR*100 + PATCH of the header this package was built against.
const VersionNumber = C.LONGATTN_VERSION_NUMBER

// Version returns MAJOR*10000 + MINOR*100 + PATCH of the library actually linked.
func Version() int { return int(C.longattn_version()) }

// BuildInfo describes the linked library: version, backends and CPU instruction sets.
func BuildInfo() string { return C.GoString(C.longattn_build_info()) }

// Backend selects where attention runs. Values are those of the C API; unknown values are
// passed through and rejected by the library.
type Backend int32

const (
	BackendAuto   Backend = C.LONGATTN_BACKEND_AUTO // CUDA if present, else a real Vulkan GPU, else CPU
	BackendCPU    Backend = C.LONGATTN_BACKEND_CPU
	BackendCUDA   Backend = C.LONGATTN_BACKEND_CUDA
	BackendVulkan Backend = C.LONGATTN_BACKEND_VULKAN
)

func (b Backend) String() string {
	switch b {
	case BackendAuto:
		return "auto"
	case BackendCPU:
		return "cpu"
	case BackendCUDA:
		return "cuda"
	case BackendVulkan:
		return "vulkan"
	}
	return "unknown"
}

// DType is an element type. F16 and BF16 data are passed as their uint16 bit patterns; the block
// formats Q8_0 and Q4_0 (K and V only) as the bytes of their blocks.
type DType int32

const (
	DTypeF32  DType = C.LONGATTN_DTYPE_F32
	DTypeF16  DType = C.LONGATTN_DTYPE_F16  // IEEE binary16
	DTypeBF16 DType = C.LONGATTN_DTYPE_BF16 // bfloat16
	// DTypeQ8_0 is ggml's Q8_0: blocks of 32 values, 34 bytes = fp16 scale d + 32 int8 q;
	// value = d*q.
	DTypeQ8_0 DType = C.LONGATTN_DTYPE_Q8_0
	// DTypeQ4_0 is ggml's Q4_0: blocks of 32 values, 18 bytes = fp16 scale d + 16 bytes of
	// nibbles; value j < 16 is d*((low nibble of byte j) - 8), value j+16 d*((high nibble) - 8).
	DTypeQ4_0 DType = C.LONGATTN_DTYPE_Q4_0
)

// Size returns the bytes of one element, or of one block of BlockElems values for the block
// formats (Q8_0: 34, Q4_0: 18); 0 for an unknown dtype.
func (d DType) Size() int { return int(C.longattn_dtype_size(C.longattn_dtype(d))) }

// BlockElems returns the values per block: 32 for Q8_0 and Q4_0, 1 for the float types, 0 for an
// unknown dtype.
func (d DType) BlockElems() int { return int(C.longattn_dtype_block_elems(C.longattn_dtype(d))) }

// Algorithm selects what attention computes.
type Algorithm int32

const (
	Flash  Algorithm = C.LONGATTN_ALGORITHM_FLASH  // exact attention, tiled online softmax
	Sparse Algorithm = C.LONGATTN_ALGORITHM_SPARSE // exact attention under a band + global-token mask
	Hyper  Algorithm = C.LONGATTN_ALGORITHM_HYPER  // HyperAttention: LSH blocks + sampled columns
)

// RingTransport says how the ranks of a ring context exchange K/V blocks.
type RingTransport int32

// Ring transports (WithRingTransport).
const (
	// RingTransportAuto: CUDA peer copies where every device pair allows them, else pinned-host
	// staging for the pairs that do not; CPU and Vulkan: their host transport.
	RingTransportAuto RingTransport = C.LONGATTN_RING_TRANSPORT_AUTO
	// RingTransportPeer: CUDA only, copy-engine peer copies.
	RingTransportPeer RingTransport = C.LONGATTN_RING_TRANSPORT_PEER
	// RingTransportHostStaged: device -> pinned host buffer -> peer device.
	RingTransportHostStaged RingTransport = C.LONGATTN_RING_TRANSPORT_HOST_STAGED
	// RingTransportNCCL: CUDA only, grouped ncclSend/ncclRecv (NCCL loaded at run time; not
	// with virtual ranks).
	RingTransportNCCL RingTransport = C.LONGATTN_RING_TRANSPORT_NCCL
)

// RingLayout says which tokens of a sequence each rank of a ring holds.
type RingLayout int32

const (
	// RingLayoutAuto (whole tensors): ZIGZAG for causal attention without a left window, else
	// CONTIGUOUS.
	RingLayoutAuto RingLayout = C.LONGATTN_RING_LAYOUT_AUTO
	// RingLayoutContiguous: rank r holds tokens [r*n/N, (r+1)*n/N).
	RingLayoutContiguous RingLayout = C.LONGATTN_RING_LAYOUT_CONTIGUOUS
	// RingLayoutZigzag: 2N chunks [c*n/(2N), (c+1)*n/(2N)); rank r holds chunk r, then chunk
	// 2N-1-r (balances causal work).
	RingLayoutZigzag RingLayout = C.LONGATTN_RING_LAYOUT_ZIGZAG
)

// ShardQueries says what each shard's query tensor holds in ForwardSharded.
type ShardQueries int32

const (
	// ShardQueriesLocal: rank r's queries are its own tokens (prefill); the ring runs.
	ShardQueriesLocal ShardQueries = C.LONGATTN_SHARD_QUERIES_LOCAL
	// ShardQueriesReplicated: every rank holds the same query rows (decode over a sharded KV
	// cache); the partial results are merged and written to every output.
	ShardQueriesReplicated ShardQueries = C.LONGATTN_SHARD_QUERIES_REPLICATED
)

// Segment is a run of tokens [First, First+Count).
type Segment struct{ First, Count int }

// RingShard returns the tokens rank of nShards holds of an nTokens-token sequence under layout
// (RingLayoutContiguous or RingLayoutZigzag): its two segments, in the order its shard stores them
// (the second has Count 0 for CONTIGUOUS; some ranks get nothing when nTokens is small).
func RingShard(layout RingLayout, nTokens, nShards, rank int) ([2]Segment, error) {
	const maxInt32 = 1<<31 - 1
	var segments [2]Segment
	if nTokens < 0 || nShards < 0 || nShards > maxInt32 || rank < 0 || rank > maxInt32 {
		return segments, &Error{Code: StatusInvalidArgument,
			Message: fmt.Sprintf("RingShard(n_tokens %d, n_shards %d, rank %d) out of range", nTokens, nShards, rank)}
	}
	var first, count [2]C.int64_t
	status := C.longattn_ring_shard(C.longattn_ring_layout(layout), C.int64_t(nTokens), C.int32_t(nShards),
		C.int32_t(rank), &first[0], &count[0])
	if status != C.LONGATTN_OK {
		return segments, &Error{Code: Status(status),
			Message: fmt.Sprintf("RingShard(layout %d, n_tokens %d, n_shards %d, rank %d)", layout, nTokens, nShards, rank)}
	}
	for i := range segments {
		segments[i] = Segment{First: int(first[i]), Count: int(count[i])}
	}
	return segments, nil
}

// BackendAvailable reports whether a backend is compiled in and has a usable device.
func BackendAvailable(b Backend) bool {
	return C.longattn_backend_available(C.longattn_backend(b)) != 0
}

// DeviceCount returns the number of devices of a backend (0 when absent).
func DeviceCount(b Backend) (int, error) {
	var count C.int32_t
	if status := C.longattn_device_count(C.longattn_backend(b), &count); status != C.LONGATTN_OK {
		return 0, &Error{Code: Status(status)}
	}
	return int(count), nil
}

// DeviceName returns the name of device index of a backend.
func DeviceName(b Backend, index int) (string, error) {
	const nameCapacity = 256
	var buf [nameCapacity]C.char
	status := C.longattn_device_name(C.longattn_backend(b), C.int32_t(index), &buf[0], nameCapacity)
	if status != C.LONGATTN_OK {
		return "", &Error{Code: Status(status)}
	}
	return C.GoString(&buf[0]), nil
}
