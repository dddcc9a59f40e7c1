//! Tensor views over Rust slices, checked before they reach C.
//!
//! A view is `shape = [batch, tokens, heads, head_dim]` plus a stride per axis counted in
//! ELEMENTS of the slice (the C side wants bytes; the conversion happens here). For ggml's block
//! formats (Q8_0, Q4_0) the slice is `&[u8]`, so strides are in bytes, and `strides[3]` is the
//! byte stride between blocks of 32 values (ggml's `nb[0]`, normally the block size): element i
//! of a row lives in block i / 32. Building a view proves that every element (or whole block) it
//! addresses lies inside the slice, so the library can never read or write outside the memory the
//! borrow covers. Whether the views agree with each other and with the attention descriptor is
//! checked by the library, which returns an `Err` when they do not.

use std::marker::PhantomData;
use std::os::raw::c_void;

use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::types::DType;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u16 {}
    impl Sealed for u8 {}
}

/// Element types a slice may hold: `f32` for F32, `u16` bit patterns for F16 and BF16, `u8`
/// bytes for the block formats Q8_0 and Q4_0.
pub trait Element: Copy + sealed::Sealed {
    /// Whether a slice of `Self` can hold elements of `dtype`.
    fn holds(dtype: DType) -> bool;
}

impl Element for f32 {
    fn holds(dtype: DType) -> bool {
        dtype == DType::F32
    }
}

impl Element for u16 {
    fn holds(dtype: DType) -> bool {
        dtype == DType::F16 || dtype == DType::BF16
    }
}

impl Element for u8 {
    fn holds(dtype: DType) -> bool {
        dtype == DType::Q8_0 || dtype == DType::Q4_0
    }
}

/// Row-major element strides of a contiguous `[batch][tokens][heads][head_dim]` tensor.
pub fn contiguous_strides(shape: [usize; 4]) -> [usize; 4] {
    [
        shape[1] * shape[2] * shape[3],
        shape[2] * shape[3],
        shape[3],
        1,
    ]
}

/// Strides of a contiguous tensor of `dtype`, in units of the slice that holds it: elements for
/// the float types (as [`contiguous_strides`]), bytes for the block formats (`strides[3]` = the
/// block size, a row of `head_dim / 32` blocks after another).
pub fn contiguous_strides_for(dtype: DType, shape: [usize; 4]) -> [usize; 4] {
    if !dtype.is_block() {
        return contiguous_strides(shape);
    }
    let block_bytes = dtype.size();
    let row = shape[3] / dtype.block_elems() * block_bytes;
    [shape[1] * shape[2] * row, shape[2] * row, row, block_bytes]
}

const AXIS_NAMES: [&str; 4] = ["batch", "tokens", "heads", "head_dim"];

/// Checks a view against a slice of `len` elements of `T` and fills the C struct (data NULL).
fn describe<T: Element>(
    len: usize,
    dtype: DType,
    shape: [usize; 4],
    strides: [usize; 4],
) -> Result<sys::longattn_tensor> {
    let unit = std::mem::size_of::<T>();
    let block_elems = dtype.block_elems();
    if !T::holds(dtype) || block_elems == 0 || dtype.size() % unit != 0 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "dtype {} cannot be viewed through a slice of {}",
                dtype.0,
                std::any::type_name::<T>()
            ),
        ));
    }
    // Slice elements one element (or block) of the tensor covers: 1, or the block size in bytes.
    let footprint = dtype.size() / unit;
    let overflow = || Error::new(ErrorKind::InvalidArgument, "tensor extent overflows");
    let mut last_index: usize = footprint - 1;
    let mut raw_shape = [0i64; 4];
    let mut raw_strides = [0i64; 4];
    for axis in 0..4 {
        if shape[axis] == 0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "shape[{}] ({}) is 0; every axis needs at least 1",
                    axis, AXIS_NAMES[axis]
                ),
            ));
        }
        // Positions the stride steps over: blocks along head_dim for the block formats.
        let positions = if axis == 3 {
            if shape[3] % block_elems != 0 {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "shape[3] (head_dim) = {} must be a multiple of {} for dtype {}",
                        shape[3], block_elems, dtype.0
                    ),
                ));
            }
            shape[3] / block_elems
        } else {
            shape[axis]
        };
        let reach = (positions - 1)
            .checked_mul(strides[axis])
            .ok_or_else(overflow)?;
        last_index = last_index.checked_add(reach).ok_or_else(overflow)?;
        raw_shape[axis] = i64::try_from(shape[axis]).map_err(|_| overflow())?;
        let stride_bytes = strides[axis].checked_mul(unit).ok_or_else(overflow)?;
        raw_strides[axis] = i64::try_from(stride_bytes).map_err(|_| overflow())?;
    }
    if last_index >= len {
        return Err(Error::new(
            ErrorKind::ShapeMismatch,
            format!(
                "view of shape {:?} with strides {:?} reaches element {}, but the slice has {}",
                shape, strides, last_index, len
            ),
        ));
    }
    Ok(sys::longattn_tensor {
        data: std::ptr::null_mut(),
        dtype: dtype.0,
        memory: sys::LONGATTN_MEMORY_HOST,
        shape: raw_shape,
        strides: raw_strides,
    })
}

/// A read-only view of host memory (q, k, v, a mask, or an input of a merge).
///
/// `#[repr(transparent)]` over the C struct, so a slice of views is an array of
/// `longattn_tensor`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy)]
pub struct Tensor<'a> {
    raw: sys::longattn_tensor,
    _data: PhantomData<&'a [u8]>,
}

// Safety: a Tensor is a shared borrow of plain numbers (f32/u16/u8); sharing or sending it is as sound
// as sharing or sending the `&[T]` it was made from.
unsafe impl Send for Tensor<'_> {}
// Safety: as above; the library only reads through it.
unsafe impl Sync for Tensor<'_> {}

impl<'a> Tensor<'a> {
    /// A strided view; `strides` are in elements of `data` (bytes for the block formats, with
    /// `strides[3]` the bytes between blocks of 32 values).
    pub fn new<T: Element>(
        data: &'a [T],
        dtype: DType,
        shape: [usize; 4],
        strides: [usize; 4],
    ) -> Result<Tensor<'a>> {
        let mut raw = describe::<T>(data.len(), dtype, shape, strides)?;
        raw.data = data.as_ptr() as *mut c_void;
        Ok(Tensor {
            raw,
            _data: PhantomData,
        })
    }

    /// A contiguous row-major view of the whole shape.
    pub fn contiguous<T: Element>(data: &'a [T], dtype: DType, shape: [usize; 4]) -> Result<Self> {
        Tensor::new(data, dtype, shape, contiguous_strides_for(dtype, shape))
    }

    /// A contiguous f32 view.
    pub fn f32(data: &'a [f32], shape: [usize; 4]) -> Result<Self> {
        Tensor::contiguous(data, DType::F32, shape)
    }

    /// A contiguous f16 view (`u16` bit patterns).
    pub fn f16(data: &'a [u16], shape: [usize; 4]) -> Result<Self> {
        Tensor::contiguous(data, DType::F16, shape)
    }

    /// A contiguous bf16 view (`u16` bit patterns).
    pub fn bf16(data: &'a [u16], shape: [usize; 4]) -> Result<Self> {
        Tensor::contiguous(data, DType::BF16, shape)
    }

    /// A contiguous Q8_0 view of K or V: `data` holds `head_dim / 32` blocks of 34 bytes per row
    /// (head_dim a multiple of 32). For a strided cache use [`Tensor::new`] with byte strides.
    pub fn q8_0(data: &'a [u8], shape: [usize; 4]) -> Result<Self> {
        Tensor::contiguous(data, DType::Q8_0, shape)
    }

    /// A contiguous Q4_0 view of K or V: `head_dim / 32` blocks of 18 bytes per row.
    pub fn q4_0(data: &'a [u8], shape: [usize; 4]) -> Result<Self> {
        Tensor::contiguous(data, DType::Q4_0, shape)
    }

    /// Wraps a raw view, e.g. of device memory.
    ///
    /// # Safety
    /// Every element the view addresses must be readable memory of the kind `raw.memory` says,
    /// valid for `'a`, and not written by anyone else while the view is in use, on any thread the
    /// view is sent or shared to.
    pub unsafe fn from_raw(raw: sys::longattn_tensor) -> Tensor<'a> {
        Tensor {
            raw,
            _data: PhantomData,
        }
    }

    pub fn dtype(&self) -> DType {
        DType(self.raw.dtype)
    }

    /// `[batch, tokens, heads, head_dim]`.
    pub fn shape(&self) -> [usize; 4] {
        self.raw.shape.map(|n| n as usize)
    }

    /// The C struct handed to the library.
    pub fn as_raw(&self) -> &sys::longattn_tensor {
        &self.raw
    }
}

/// A writable view of host memory (the output and LSE of a forward call or a merge).
///
/// `#[repr(transparent)]` over the C struct, so a slice of views is an array of
/// `longattn_tensor`.
#[repr(transparent)]
#[derive(Debug)]
pub struct TensorMut<'a> {
    raw: sys::longattn_tensor,
    _data: PhantomData<&'a mut [u8]>,
}

// Safety: a TensorMut is an exclusive borrow of plain numbers; sending it to another thread is as
// sound as sending the `&mut [T]` it was made from.
unsafe impl Send for TensorMut<'_> {}

impl<'a> TensorMut<'a> {
    /// A strided view; `strides` are in elements of `data`.
    pub fn new<T: Element>(
        data: &'a mut [T],
        dtype: DType,
        shape: [usize; 4],
        strides: [usize; 4],
    ) -> Result<TensorMut<'a>> {
        let mut raw = describe::<T>(data.len(), dtype, shape, strides)?;
        raw.data = data.as_mut_ptr() as *mut c_void;
        Ok(TensorMut {
            raw,
            _data: PhantomData,
        })
    }

    /// A contiguous row-major view of the whole shape.
    pub fn contiguous<T: Element>(
        data: &'a mut [T],
        dtype: DType,
        shape: [usize; 4],
    ) -> Result<Self> {
        TensorMut::new(data, dtype, shape, contiguous_strides_for(dtype, shape))
    }

    /// A contiguous f32 view.
    pub fn f32(data: &'a mut [f32], shape: [usize; 4]) -> Result<Self> {
        TensorMut::contiguous(data, DType::F32, shape)
    }

    /// A contiguous f16 view (`u16` bit patterns).
    pub fn f16(data: &'a mut [u16], shape: [usize; 4]) -> Result<Self> {
        TensorMut::contiguous(data, DType::F16, shape)
    }

    /// A contiguous bf16 view (`u16` bit patterns).
    pub fn bf16(data: &'a mut [u16], shape: [usize; 4]) -> Result<Self> {
        TensorMut::contiguous(data, DType::BF16, shape)
    }

    /// Wraps a raw view, e.g. of device memory.
    ///
    /// # Safety
    /// Every element the view addresses must be writable memory of the kind `raw.memory` says,
    /// valid for `'a`, and not accessed by anyone else (no other view may overlap it) while the
    /// view is in use, on any thread the view is sent to.
    pub unsafe fn from_raw(raw: sys::longattn_tensor) -> TensorMut<'a> {
        TensorMut {
            raw,
            _data: PhantomData,
        }
    }

    pub fn dtype(&self) -> DType {
        DType(self.raw.dtype)
    }

    /// `[batch, tokens, heads, head_dim]`.
    pub fn shape(&self) -> [usize; 4] {
        self.raw.shape.map(|n| n as usize)
    }

    /// The C struct handed to the library.
    pub fn as_raw(&self) -> &sys::longattn_tensor {
        &self.raw
    }
}
