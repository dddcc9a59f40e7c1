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

// DType is an element type. F16 and BF16 data are passed as their uint16 bit patterns.
type DType int32

const (
	DTypeF32  DType = C.LONGATTN_DTYPE_F32
	DTypeF16  DType = C.LONGATTN_DTYPE_F16  // IEEE binary16
	DTypeBF16 DType = C.LONGATTN_DTYPE_BF16 // bfloat16
)

// Algorithm selects what attention computes.
type Algorithm int32

const (
	Flash  Algorithm = C.LONGATTN_ALGORITHM_FLASH  // exact attention, tiled online softmax
	Sparse Algorithm = C.LONGATTN_ALGORITHM_SPARSE // exact attention under a band + global-token mask
	Hyper  Algorithm = C.LONGATTN_ALGORITHM_HYPER  // HyperAttention: LSH blocks + sampled columns
)

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
