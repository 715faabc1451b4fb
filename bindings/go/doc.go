// Package glr is the Go binding of gitlab_runner_api, the C library for writing your own GitLab
// CI runners: register a runner, take jobs, stream their logs, report success or failure,
// persist runners and jobs so that another process can finish a job later. It uses cgo and the
// standard library only.
//
//	import glr "gitlab_runner_api/bindings/go"
//
// # Building and linking
//
// The package includes <gitlab_runner_api.h> (from this checkout's include/ unless CGO_CFLAGS
// names another directory first) and links with -lgitlab_runner_api. Point cgo at the library
// with the usual environment variables, e.g. for a checkout built with cargo build --release:
//
//	export CGO_LDFLAGS="-L$PWD/target/release -Wl,-rpath,$PWD/target/release"
//
// or, for an installed library, CGO_CFLAGS="$(pkg-config --cflags gitlab_runner_api)" and
// CGO_LDFLAGS="$(pkg-config --libs gitlab_runner_api)". The library's SONAME is
// libgitlab_runner_api.so.1: the directory of the rpath must hold that name (scripts/install.sh
// makes it; a cargo build directory only has libgitlab_runner_api.so, so link it there).
//
// # Handles: Close must be called
//
// A Runner and a Job own a C handle. Call Close when done: it frees the handle (for a job: after
// it, nothing more of the job reaches GitLab from this handle, and log text GitLab has not
// acknowledged is dropped, so finish, Flush or hand the job over first). A finalizer frees a
// handle that became unreachable without Close, as a safety net only: when it runs is up to the
// garbage collector, and a job collected that way loses its unsent log. Close waits for calls
// in progress on other goroutines to return (each network call is bounded by the handle's
// SetCallTimeout; a Runner's are interrupted at once) and makes later calls return ErrClosed.
//
// # Goroutines and errors
//
// Every method may be called from any goroutine, also on the same handle at once. A failing
// call returns an *Error carrying the library's status and message. The message is read from
// the handle itself (glr_job_last_error_message, glr_runner_last_error_message), never from the
// C library's thread-local slot, which another goroutine scheduled on the same OS thread may
// have overwritten; functions without a handle (Register, FromToken, the Load functions...)
// read the thread-local slot with the goroutine locked to its OS thread for the call and the
// read. When two goroutines fail on the same handle at the same moment, each may read the
// other's message (the status is always the call's own). Compare with errors.Is against the
// status values (ErrTimeout, ErrNotOwner, ErrJobCanceled, ...).
//
// # No callbacks
//
// The C library can call back on a thread of its own; this package never asks it to. Cancels
// arrive on Job.Canceled, a channel fed from the job's event descriptor through Go's netpoller;
// diagnostics on SetLogWriter's writer, through a pipe read by a goroutine; a long poll ends
// when its context is cancelled (glr_runner_interrupt).
//
// Before the process exits, call Shutdown: log text is uploaded in the background, and what
// GitLab has not acknowledged when the process exits is lost.
package glr
