package glr

// #include <gitlab_runner_api.h>
import "C"

import "time"

// ABIVersion is the ABI of the header this package was built with; LibraryABIVersion must equal
// it (the SONAME, libgitlab_runner_api.so.<ABI>, makes the loader pick a matching library).
const ABIVersion = C.GLR_ABI_VERSION

// Version is the loaded library's version, e.g. "0.1.0".
func Version() string { return C.GoString(C.glr_version()) }

// LibraryABIVersion is the loaded library's ABI version.
func LibraryABIVersion() int { return int(C.glr_abi_version()) }

// Shutdown uploads the pending log text of every live job of the process within timeout (0:
// one minute) and returns nil when GitLab has acknowledged all of it. Call it before the
// process exits: text GitLab has not acknowledged then is lost. Jobs are not finished by it,
// and the library stays usable.
func Shutdown(timeout time.Duration) error {
	if timeout < 0 {
		return invalid("Shutdown: negative timeout")
	}
	return withThreadError(func() C.glr_status { return C.glr_shutdown(C.int64_t(timeout / time.Millisecond)) })
}
