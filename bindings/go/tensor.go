package longattn

import (
	"fmt"
	"math"
	"unsafe"
)

// Tensor is a view of a Go slice as a tensor of shape {batch, tokens, heads, head_dim}, with a
// stride per axis counted in elements of the slice (contiguous row-major by default). Build it with
// F32, F16 or BF16 and, for a strided view such as a slice of a KV cache, WithStrides. The view is
// checked against the slice before every call, so the library never reaches outside it. The zero
// Tensor means "none" (e.g. no LSE output).
type Tensor struct {
	dtype   DType
	shape   [4]int
	strides [4]int
	f32     []float32
	u16     []uint16
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

// WithStrides returns the same view with element strides for {batch, tokens, heads, head_dim}.
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
func (t Tensor) IsZero() bool { return t.f32 == nil && t.u16 == nil && t.shape == [4]int{} }

func (t Tensor) elemSize() int {
	if t.dtype == DTypeF32 {
		return 4
	}
	return 2
}

func (t Tensor) sliceLen() int {
	if t.f32 != nil {
		return len(t.f32)
	}
	return len(t.u16)
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
	switch {
	case t.dtype == DTypeF32 && t.u16 == nil:
	case (t.dtype == DTypeF16 || t.dtype == DTypeBF16) && t.f32 == nil:
	default:
		return checkedView{}, &Error{Code: StatusInvalidArgument,
			Message: fmt.Sprintf("%s: dtype %d does not match the slice type", name, t.dtype)}
	}
	var view checkedView
	last := 0 // index of the last element the view reaches
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
		if s > 0 && n-1 > (math.MaxInt64/t.elemSize()-last)/s {
			return checkedView{}, &Error{Code: StatusInvalidArgument,
				Message: fmt.Sprintf("%s: extent of shape %v with strides %v overflows", name, t.shape, t.strides)}
		}
		last += (n - 1) * s
		view.shape[axis] = int64(n)
		view.strides[axis] = int64(s) * int64(t.elemSize())
	}
	if length := t.sliceLen(); last >= length {
		return checkedView{}, &Error{Code: StatusShapeMismatch,
			Message: fmt.Sprintf("%s: view of shape %v with strides %v reaches element %d, but the slice has %d",
				name, t.shape, t.strides, last, length)}
	}
	if t.f32 != nil {
		view.data = unsafe.Pointer(&t.f32[0])
	} else {
		view.data = unsafe.Pointer(&t.u16[0])
	}
	view.dtype = t.dtype
	view.begin = uintptr(view.data)
	view.end = view.begin + uintptr((last+1)*t.elemSize())
	return view, nil
}

func (a checkedView) overlaps(b checkedView) bool { return a.begin < b.end && b.begin < a.end }

func (a checkedView) same(b checkedView) bool {
	return a.data == b.data && a.dtype == b.dtype && a.shape == b.shape && a.strides == b.strides
}
