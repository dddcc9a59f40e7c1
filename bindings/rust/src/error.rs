//! Errors: the status kind of a failed call plus the library's message.

use std::ffi::CStr;
use std::fmt;
use std::os::raw::c_char;

use crate::sys;

/// What kind of failure a call reported (the C `longattn_status`, minus `LONGATTN_OK`).
///
/// New kinds may be added; a status this crate does not know arrives as `Unknown(code)`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A value out of range (NaN scale, head_dim 0, ...).
    InvalidArgument,
    /// A required pointer was NULL.
    NullPointer,
    /// Tensors disagree with the descriptor, with each other, or with the slice behind them.
    ShapeMismatch,
    /// Negative strides, or strides that overlap elements.
    BadStride,
    /// An enum value the library does not know.
    UnknownEnum,
    /// A struct_size the library does not accept.
    StructSize,
    /// A valid request this build or backend cannot do.
    Unsupported,
    /// The backend is not compiled in, or no device is present.
    BackendUnavailable,
    /// A host or device allocation failed.
    OutOfMemory,
    /// The GPU driver or runtime reported an error.
    Device,
    /// A bug in longattn; the message says where.
    Internal,
    /// A status code this crate does not know.
    Unknown(i32),
}

impl ErrorKind {
    /// The kind of a non-OK status code.
    pub fn from_status(status: sys::longattn_status) -> ErrorKind {
        match status {
            sys::LONGATTN_ERROR_INVALID_ARGUMENT => ErrorKind::InvalidArgument,
            sys::LONGATTN_ERROR_NULL_POINTER => ErrorKind::NullPointer,
            sys::LONGATTN_ERROR_SHAPE_MISMATCH => ErrorKind::ShapeMismatch,
            sys::LONGATTN_ERROR_BAD_STRIDE => ErrorKind::BadStride,
            sys::LONGATTN_ERROR_UNKNOWN_ENUM => ErrorKind::UnknownEnum,
            sys::LONGATTN_ERROR_STRUCT_SIZE => ErrorKind::StructSize,
            sys::LONGATTN_ERROR_UNSUPPORTED => ErrorKind::Unsupported,
            sys::LONGATTN_ERROR_BACKEND_UNAVAILABLE => ErrorKind::BackendUnavailable,
            sys::LONGATTN_ERROR_OUT_OF_MEMORY => ErrorKind::OutOfMemory,
            sys::LONGATTN_ERROR_DEVICE => ErrorKind::Device,
            sys::LONGATTN_ERROR_INTERNAL => ErrorKind::Internal,
            other => ErrorKind::Unknown(other),
        }
    }

    /// The C status code of this kind.
    pub fn status(self) -> sys::longattn_status {
        match self {
            ErrorKind::InvalidArgument => sys::LONGATTN_ERROR_INVALID_ARGUMENT,
            ErrorKind::NullPointer => sys::LONGATTN_ERROR_NULL_POINTER,
            ErrorKind::ShapeMismatch => sys::LONGATTN_ERROR_SHAPE_MISMATCH,
            ErrorKind::BadStride => sys::LONGATTN_ERROR_BAD_STRIDE,
            ErrorKind::UnknownEnum => sys::LONGATTN_ERROR_UNKNOWN_ENUM,
            ErrorKind::StructSize => sys::LONGATTN_ERROR_STRUCT_SIZE,
            ErrorKind::Unsupported => sys::LONGATTN_ERROR_UNSUPPORTED,
            ErrorKind::BackendUnavailable => sys::LONGATTN_ERROR_BACKEND_UNAVAILABLE,
            ErrorKind::OutOfMemory => sys::LONGATTN_ERROR_OUT_OF_MEMORY,
            ErrorKind::Device => sys::LONGATTN_ERROR_DEVICE,
            ErrorKind::Internal => sys::LONGATTN_ERROR_INTERNAL,
            ErrorKind::Unknown(code) => code,
        }
    }
}

/// A failed call: its kind and the message the library (or this crate's own checks) gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The C status code (never `LONGATTN_OK`).
    pub fn status(&self) -> sys::longattn_status {
        self.kind.status()
    }

    /// The detailed message (`"desc.n_kv_heads=3 does not divide n_q_heads=4"`); may be empty.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = status_string(self.status());
        if self.message.is_empty() {
            f.write_str(&name)
        } else {
            write!(f, "{}: {}", name, self.message)
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for `Result<T, longattn::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// The library's static name for a status code ("unknown status" for an unknown one).
pub fn status_string(status: sys::longattn_status) -> String {
    // Safety: longattn_status_string accepts any value and returns a static NUL-terminated string
    // (never NULL) that lives for the whole process.
    unsafe { string_from_c(sys::longattn_status_string(status)) }
}

/// Copies a NUL-terminated C string into an owned `String` (lossy UTF-8; NULL gives "").
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid for this call.
#[allow(unused_unsafe)] // the inner block is required by newer editions, redundant for older rustc
pub(crate) unsafe fn string_from_c(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // Safety: the caller guarantees a valid NUL-terminated string.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}
