package longattn

import (
	"fmt"
	"math"
	"unsafe"
)

// Tensor is a view of a Go slice as a tensor of shape {batch, tokens, heads, head_dim}, with a
// stride per axis counted in elements of the slice (contiguous row-major by default). Build it with
// F32, F16, BF16, Q8_0 or Q4_0 and, for a strided view such as a slice of a KV cache, WithStrides.
// For the block formats the slice is []byte, so strides are in bytes and strides[3] is the byte
// stride between blocks of 32 values (ggml's nb[0], normally the block size): element i of a row
// lives in block i/32. The view is checked against the slice before every call, so the library
// never reaches outside it. The zero Tensor means "none" (e.g. no LSE output).
type Tensor struct {
	dtype   DType
	shape   [4]int
	strides [4]int
	f32     []float32
	u16     []uint16
	u8      []byte
}

// Values per block of the block formats.
const quantBlock = 32

// blockBytes returns the bytes of one block of a block format, 0 for any other dtype.
func blockBytes(dtype DType) int {
	switch dtype {
	case DTypeQ8_0:
		return 34
	case DTypeQ4_0:
		return 18
	}
	return 0
}

// ContiguousStrides returns the row-major element strides of a contiguous tensor of shape.
func ContiguousStrides(shape [4]int) [4]int {
	return [4]int{shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1}
}

// F32 views data as a contiguous float32 tensor of shape.
func F32(data []float32, shape [4]int) Tensor {
	return Tensor{dtype: DTypeF32, shape: shape, strides: ContiguousStrides(shape), f32: data}
}

// F16 views IEEE binary16 bit patterns as a contiguous tensor of shape.
func F16(bits []uint16, shape [4]int) Tensor {
	return Tensor{dtype: DTypeF16, shape: shape, strides: ContiguousStrides(shape), u16: bits}
}

// BF16 views bfloat16 bit patterns as a contiguous tensor of shape.
func BF16(bits []uint16, shape [4]int) Tensor {
	return Tensor{dtype: DTypeBF16, shape: shape, strides: ContiguousStrides(shape), u16: bits}
}

// Q8_0 views the bytes of Q8_0 blocks as a contiguous K or V tensor of shape: head_dim/32 blocks
// of 34 bytes per (token, head) row; head_dim must be a multiple of 32.
func Q8_0(blocks []byte, shape [4]int) Tensor {
	return Tensor{dtype: DTypeQ8_0, shape: shape, strides: contiguousBlockStrides(DTypeQ8_0, shape), u8: blocks}
}

// Q4_0 views the bytes of Q4_0 blocks as a contiguous K or V tensor of shape: head_dim/32 blocks
// of 18 bytes per row.
func Q4_0(blocks []byte, shape [4]int) Tensor {
	return Tensor{dtype: DTypeQ4_0, shape: shape, strides: contiguousBlockStrides(DTypeQ4_0, shape), u8: blocks}
}

// contiguousBlockStrides returns the byte strides of a contiguous block-format tensor.
func contiguousBlockStrides(dtype DType, shape [4]int) [4]int {
	row := shape[3] / quantBlock * blockBytes(dtype)
	return [4]int{shape[1] * shape[2] * row, shape[2] * row, row, blockBytes(dtype)}
}

// WithStrides returns the same view with element strides for {batch, tokens, heads, head_dim}
// (bytes for the block formats, strides[3] between blocks).
func (t Tensor) WithStrides(strides [4]int) Tensor {
	t.strides = strides
	return t
}

// DType returns the element type.
func (t Tensor) DType() DType { return t.dtype }

// Shape returns {batch, tokens, heads, head_dim}.
func (t Tensor) Shape() [4]int { return t.shape }

// Strides returns the element strides.
func (t Tensor) Strides() [4]int { return t.strides }

// IsZero reports whether t is the zero Tensor ("none").
func (t Tensor) IsZero() bool {
	return t.f32 == nil && t.u16 == nil && t.u8 == nil && t.shape == [4]int{}
}

// unitSize returns the bytes of one element of the slice behind t.
func (t Tensor) unitSize() int {
	switch {
	case t.f32 != nil:
		return 4
	case t.u16 != nil:
		return 2
	}
	return 1
}

func (t Tensor) sliceLen() int {
	switch {
	case t.f32 != nil:
		return len(t.f32)
	case t.u16 != nil:
		return len(t.u16)
	}
	return len(t.u8)
}

// checkedView is a validated view: its data pointer, C shape and byte strides, and the byte range
// [begin, end) of memory it spans.
type checkedView struct {
	data       unsafe.Pointer
	dtype      DType
	shape      [4]int64
	strides    [4]int64
	begin, end uintptr
}

var axisNames = [4]string{"batch", "tokens", "heads", "head_dim"}

// check validates t against its slice; name labels the messages ("q", "out").
func (t Tensor) check(name string) (checkedView, error) {
	slices := 0
	for _, present := range []bool{t.f32 != nil, t.u16 != nil, t.u8 != nil} {
		if present {
			slices++
		}
	}
	if slices > 1 {
		return checkedView{}, &Error{Code: StatusInvalidArgument, Message: name + ": more than one slice"}
	}
	switch {
	case t.dtype == DTypeF32 && t.u16 == nil && t.u8 == nil:
	case (t.dtype == DTypeF16 || t.dtype == DTypeBF16) && t.f32 == nil && t.u8 == nil:
	case (t.dtype == DTypeQ8_0 || t.dtype == DTypeQ4_0) && t.f32 == nil && t.u16 == nil:
	default:
		return checkedView{}, &Error{Code: StatusInvalidArgument,
			Message: fmt.Sprintf("%s: dtype %d does not match the slice type", name, t.dtype)}
	}
	unit := t.unitSize()
	// Slice elements one element (or block) covers, and values per block along head_dim.
	footprint, block := 1, 1
	if bytes := blockBytes(t.dtype); bytes > 0 {
		footprint, block = bytes, quantBlock
	}
	var view checkedView
	last := footprint - 1 // index of the last slice element the view reaches
	for axis := 0; axis < 4; axis++ {
		n, s := t.shape[axis], t.strides[axis]
		if n < 1 {
			return checkedView{}, &Error{Code: StatusInvalidArgument,
				Message: fmt.Sprintf("%s.shape[%d] (%s) = %d; every axis needs at least 1", name, axis, axisNames[axis], n)}
		}
		if s < 0 {
			return checkedView{}, &Error{Code: StatusBadStride,
				Message: fmt.Sprintf("%s.strides[%d] = %d is negative", name, axis, s)}
		}
		view.shape[axis] = int64(n)
		if axis == 3 && block > 1 { // the stride steps over blocks
			if n%block != 0 {
				return checkedView{}, &Error{Code: StatusInvalidArgument,
					Message: fmt.Sprintf("%s.shape[3] (head_dim) = %d must be a multiple of %d for dtype %d", name, n, block, t.dtype)}
			}
			n /= block
		}
		if s > 0 && n-1 > (math.MaxInt64/unit-last)/s {
			return checkedView{}, &Error{Code: StatusInvalidArgument,
				Message: fmt.Sprintf("%s: extent of shape %v with strides %v overflows", name, t.shape, t.strides)}
		}
		last += (n - 1) * s
		view.strides[axis] = int64(s) * int64(unit)
	}
	if length := t.sliceLen(); last >= length {
		return checkedView{}, &Error{Code: StatusShapeMismatch,
			Message: fmt.Sprintf("%s: view of shape %v with strides %v reaches element %d, but the slice has %d",
				name, t.shape, t.strides, last, length)}
	}
	switch {
	case t.f32 != nil:
		view.data = unsafe.Pointer(&t.f32[0])
	case t.u16 != nil:
		view.data = unsafe.Pointer(&t.u16[0])
	default:
		view.data = unsafe.Pointer(&t.u8[0])
	}
	view.dtype = t.dtype
	view.begin = uintptr(view.data)
	view.end = view.begin + uintptr((last+1)*unit)
	return view, nil
}

func (a checkedView) overlaps(b checkedView) bool { return a.begin < b.end && b.begin < a.end }

func (a checkedView) same(b checkedView) bool {
	return a.data == b.data && a.dtype == b.dtype && a.shape == b.shape && a.strides == b.strides
}
