package glr

// #include <gitlab_runner_api.h>
import "C"

import (
	"errors"
	"runtime"
	"unsafe"
)

// Status is a gitlab_runner_api status code (GLR_OK 0, errors negative). Every non-zero Status
// is also an error, so the constants below are the sentinels to compare with errors.Is:
//
//	if errors.Is(err, glr.ErrJobCanceled) { ... }
type Status int32

// The library's statuses (never renumbered; the library may add codes, which Status.Error
// names "unknown status").
const (
	OK                 Status = C.GLR_OK
	ErrNullArgument    Status = C.GLR_ERR_NULL_ARGUMENT
	ErrInvalidArgument Status = C.GLR_ERR_INVALID_ARGUMENT
	ErrInvalidUTF8     Status = C.GLR_ERR_INVALID_UTF8
	ErrAuth            Status = C.GLR_ERR_AUTH         // GitLab rejected the runner or registration token
	ErrJobCanceled     Status = C.GLR_ERR_JOB_CANCELED // GitLab stopped the job
	ErrAlreadyFinished Status = C.GLR_ERR_ALREADY_FINISHED
	ErrNetwork         Status = C.GLR_ERR_NETWORK
	ErrHTTP            Status = C.GLR_ERR_HTTP
	ErrParse           Status = C.GLR_ERR_PARSE
	ErrIO              Status = C.GLR_ERR_IO
	ErrNotFound        Status = C.GLR_ERR_NOT_FOUND
	ErrNotOwner        Status = C.GLR_ERR_NOT_OWNER   // this handle does not write the job's log
	ErrTimeout         Status = C.GLR_ERR_TIMEOUT     // the call's own bound (SetCallTimeout) ran out
	ErrInterrupted     Status = C.GLR_ERR_INTERRUPTED // ended from elsewhere: a cancelled context, Close
	ErrPanic           Status = C.GLR_ERR_PANIC       // an internal error of the library: please report it
)

// Error is the library's short description of the status, e.g. "operation timed out".
func (s Status) Error() string {
	return "gitlab_runner_api: " + C.GoString(C.glr_status_str(C.glr_status(s)))
}

// ErrClosed is returned by calls on a Runner or Job after Close.
var ErrClosed = errors.New("gitlab_runner_api: the handle is closed")

// Error is a failed call: its status and the library's message (which never contains a token).
type Error struct {
	Status  Status
	Message string
	// cause is what made the binding end the call (a context's error), for errors.Is and
	// errors.Unwrap; nil when the library failed by itself.
	cause error
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Status.Error()
	}
	return "gitlab_runner_api: " + e.Message
}

// Is makes errors.Is(err, glr.ErrTimeout) (any Status) true for an *Error of that status.
func (e *Error) Is(target error) bool {
	s, ok := target.(Status)
	return ok && s == e.Status
}

// Unwrap returns the context error that ended a RequestJob (context.Canceled,
// context.DeadlineExceeded), or nil.
func (e *Error) Unwrap() error { return e.cause }

// lastErrorFunc copies a handle's last message snprintf-style, like glr_job_last_error_message.
type lastErrorFunc func(buf *C.char, n C.size_t) C.size_t

// readMessage reads a snprintf-style message whole, growing the buffer when it was cut.
func readMessage(read lastErrorFunc) string {
	buf := make([]byte, 512)
	for attempt := 0; ; attempt++ {
		n := int(read((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf))))
		if n < len(buf) || attempt == 2 {
			if n >= len(buf) {
				n = len(buf) - 1 // changed meanwhile and longer still: keep what fits
			}
			return string(buf[:n])
		}
		buf = make([]byte, n+1)
	}
}

// threadLastError is glr_last_error_message: only meaningful on the OS thread that made the
// failing call, with nothing else run on it in between (see withThreadError).
func threadLastError() string {
	return readMessage(func(buf *C.char, n C.size_t) C.size_t { return C.glr_last_error_message(buf, n) })
}

// withThreadError runs call, a C call on no handle, with the goroutine locked to its OS thread,
// and on failure reads the thread's message on that same thread before unlocking, so no other
// goroutine's call can come in between.
func withThreadError(call func() C.glr_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := call()
	if st == C.GLR_OK {
		return nil
	}
	return &Error{Status: Status(st), Message: threadLastError()}
}

// invalid is the error of an argument the binding refuses before calling the library.
func invalid(message string) error {
	return &Error{Status: ErrInvalidArgument, Message: message}
}
