package longattn

/*
#include <longattn.h>
*/
import "C"

// Status is a longattn_status code.
type Status int32

const (
	StatusOK                 Status = C.LONGATTN_OK
	StatusInvalidArgument    Status = C.LONGATTN_ERROR_INVALID_ARGUMENT
	StatusNullPointer        Status = C.LONGATTN_ERROR_NULL_POINTER
	StatusShapeMismatch      Status = C.LONGATTN_ERROR_SHAPE_MISMATCH
	StatusBadStride          Status = C.LONGATTN_ERROR_BAD_STRIDE
	StatusUnknownEnum        Status = C.LONGATTN_ERROR_UNKNOWN_ENUM
	StatusStructSize         Status = C.LONGATTN_ERROR_STRUCT_SIZE
	StatusUnsupported        Status = C.LONGATTN_ERROR_UNSUPPORTED
	StatusBackendUnavailable Status = C.LONGATTN_ERROR_BACKEND_UNAVAILABLE
	StatusOutOfMemory        Status = C.LONGATTN_ERROR_OUT_OF_MEMORY
	StatusDevice             Status = C.LONGATTN_ERROR_DEVICE
	StatusInternal           Status = C.LONGATTN_ERROR_INTERNAL
)

// String returns the library's name for the status ("unknown status" for an unknown one).
func (s Status) String() string { return C.GoString(C.longattn_status_string(C.longattn_status(s))) }

// Error is every error this package returns: the status code and the library's message (or this
// package's, for checks done before calling the library).
type Error struct {
	Code    Status
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "longattn: " + e.Code.String()
	}
	return "longattn: " + e.Code.String() + ": " + e.Message
}

// Is makes errors.Is(err, longattn.ErrShapeMismatch) match any *Error with that code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// Targets for errors.Is, one per status.
var (
	ErrInvalidArgument    = &Error{Code: StatusInvalidArgument}
	ErrNullPointer        = &Error{Code: StatusNullPointer}
	ErrShapeMismatch      = &Error{Code: StatusShapeMismatch}
	ErrBadStride          = &Error{Code: StatusBadStride}
	ErrUnknownEnum        = &Error{Code: StatusUnknownEnum}
	ErrStructSize         = &Error{Code: StatusStructSize}
	ErrUnsupported        = &Error{Code: StatusUnsupported}
	ErrBackendUnavailable = &Error{Code: StatusBackendUnavailable}
	ErrOutOfMemory        = &Error{Code: StatusOutOfMemory}
	ErrDevice             = &Error{Code: StatusDevice}
	ErrInternal           = &Error{Code: StatusInternal}
)

// errClosed is returned for a call on a closed Context or Attention.
func errClosed(what string) error {
	return &Error{Code: StatusNullPointer, Message: what + " is closed"}
}
