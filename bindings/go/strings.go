package glr

// #include <stdlib.h>
// #include <gitlab_runner_api.h>
import "C"

import (
	"strings"
	"unsafe"
)

// cString copies s into C memory for a call (freed by the caller with freeCString). A NUL
// byte would silently cut the string in C, so it is refused; name says which argument.
func cString(name, s string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, invalid(name + " contains a NUL byte")
	}
	return C.CString(s), nil
}

// cStringOrNull is cString, with "" passed as NULL (the C functions' "unset" or "default").
func cStringOrNull(name, s string) (*C.char, error) {
	if s == "" {
		return nil, nil
	}
	return cString(name, s)
}

// freeCString frees what cString allocated (our malloc, so C.free; NULL is fine).
func freeCString(p *C.char) {
	C.free(unsafe.Pointer(p))
}

// takeString copies a string the library handed over through a char** out-parameter and
// releases it with glr_string_free (never C.free: the library's allocator is not malloc).
func takeString(p *C.char) string {
	if p == nil {
		return ""
	}
	s := C.GoString(p)
	C.glr_string_free(p)
	return s
}

// takeBytes is takeString for a string of known length (the log, which may hold NULs).
func takeBytes(p *C.char, n C.size_t) []byte {
	if p == nil {
		return nil
	}
	b := C.GoBytes(unsafe.Pointer(p), C.int(n))
	C.glr_string_free(p)
	return b
}

// borrowed copies a const char* getter result (owned by the handle; never freed here). NULL,
// what GitLab did not send, becomes "".
func borrowed(p *C.char) string {
	if p == nil {
		return ""
	}
	return C.GoString(p)
}
