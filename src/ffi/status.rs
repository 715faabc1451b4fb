//! `glr_status`: the result of every fallible function, and its static descriptions.

use std::ffi::{c_char, CStr};

use crate::core::error::ErrorKind;

/// The result of every function that can fail: #GLR_OK (0) on success, a negative `GLR_ERR_*`
/// value on failure. Test failure with `status < 0` or `status != GLR_OK`. The values are part
/// of the ABI and are never renumbered; new codes may be added, so treat unknown negative
/// values as generic failures. The details of a failure are in glr_last_error_message().
pub type glr_status = i32;

/// Success.
pub const GLR_OK: glr_status = 0;
/// A pointer argument that must not be NULL was NULL (the message names the argument).
pub const GLR_ERR_NULL_ARGUMENT: glr_status = -1;
/// An argument has a value the function does not accept (unknown enum value, bad option...).
pub const GLR_ERR_INVALID_ARGUMENT: glr_status = -2;
/// A string argument is not valid UTF-8.
pub const GLR_ERR_INVALID_UTF8: glr_status = -3;
/// GitLab rejected the runner token or the registration token.
pub const GLR_ERR_AUTH: glr_status = -4;
/// GitLab stopped the job (canceled or failed on the server, or 403 on a job endpoint). A graceful
/// cancel request is a job state (#GLR_JOB_CANCELING), not this error.
pub const GLR_ERR_JOB_CANCELED: glr_status = -5;
/// The job was already reported as finished (set_success/set_failed called before).
pub const GLR_ERR_ALREADY_FINISHED: glr_status = -6;
/// Connection, TLS or timeout failure, after the retries that were safe to make.
pub const GLR_ERR_NETWORK: glr_status = -7;
/// GitLab answered with an unexpected HTTP status, after retries.
pub const GLR_ERR_HTTP: glr_status = -8;
/// Bad JSON from GitLab, or malformed/unsupported persisted data given to a load function.
pub const GLR_ERR_PARSE: glr_status = -9;
/// A local file could not be read or written.
pub const GLR_ERR_IO: glr_status = -10;
/// The thing asked for does not exist (no such credential, artifact, index...).
pub const GLR_ERR_NOT_FOUND: glr_status = -11;
/// This handle no longer writes the job's log: it handed the job over (glr_job_hand_over_dump()),
/// is a watcher (glr_job_watch_load()), or is a fork()ed child's copy of its parent's job.
pub const GLR_ERR_NOT_OWNER: glr_status = -12;
/// The call's own time bound ran out (glr_runner_set_call_timeout(), glr_job_set_call_timeout()).
pub const GLR_ERR_TIMEOUT: glr_status = -13;
/// Another thread ended the call: glr_runner_interrupt(), or the handle was freed meanwhile.
pub const GLR_ERR_INTERRUPTED: glr_status = -14;
/// An internal error (a Rust panic) was caught at the API boundary. The host process is not
/// affected, but the handle involved may be unusable; please report the message as a bug.
pub const GLR_ERR_PANIC: glr_status = -99;

/// The status a core error kind maps to. Exhaustive on purpose: a new kind must pick a status.
pub(crate) fn status_of(kind: ErrorKind) -> glr_status {
    match kind {
        ErrorKind::InvalidArgument => GLR_ERR_INVALID_ARGUMENT,
        ErrorKind::Auth => GLR_ERR_AUTH,
        ErrorKind::JobCanceled => GLR_ERR_JOB_CANCELED,
        ErrorKind::AlreadyFinished => GLR_ERR_ALREADY_FINISHED,
        ErrorKind::Network => GLR_ERR_NETWORK,
        ErrorKind::Http => GLR_ERR_HTTP,
        ErrorKind::Parse => GLR_ERR_PARSE,
        ErrorKind::Io => GLR_ERR_IO,
        ErrorKind::NotFound => GLR_ERR_NOT_FOUND,
        ErrorKind::NotOwner => GLR_ERR_NOT_OWNER,
        ErrorKind::Timeout => GLR_ERR_TIMEOUT,
        ErrorKind::Interrupted => GLR_ERR_INTERRUPTED,
    }
}

fn status_text(status: glr_status) -> &'static CStr {
    match status {
        GLR_OK => c"success",
        GLR_ERR_NULL_ARGUMENT => c"a required pointer argument was NULL",
        GLR_ERR_INVALID_ARGUMENT => c"invalid argument",
        GLR_ERR_INVALID_UTF8 => c"a string argument is not valid UTF-8",
        GLR_ERR_AUTH => c"authentication failed: GitLab rejected the token",
        GLR_ERR_JOB_CANCELED => c"the job was canceled by GitLab",
        GLR_ERR_ALREADY_FINISHED => c"the job has already finished",
        GLR_ERR_NETWORK => c"network error (connection, TLS or timeout)",
        GLR_ERR_HTTP => c"unexpected HTTP status from GitLab",
        GLR_ERR_PARSE => c"malformed data (from GitLab or persisted)",
        GLR_ERR_IO => c"local file I/O error",
        GLR_ERR_NOT_FOUND => c"not found",
        GLR_ERR_NOT_OWNER => c"this handle does not write the job's log (handed over, a watcher, or a fork()ed copy)",
        GLR_ERR_TIMEOUT => c"the call's time limit ran out",
        GLR_ERR_INTERRUPTED => c"the call was interrupted by another thread",
        GLR_ERR_PANIC => c"internal error (panic) in gitlab_runner_api",
        _ => c"unknown status",
    }
}

/// A short static English description of a status code, e.g. "network error (connection, TLS or
/// timeout)". Any value is accepted: unknown values give "unknown status".
///
/// Returns a NUL-terminated string with static lifetime; never NULL; do not free it.
/// Thread-safe; does not touch the thread's last error.
#[no_mangle]
pub extern "C" fn glr_status_str(status: glr_status) -> *const c_char {
    status_text(status).as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [(glr_status, &str); 16] = [
        (GLR_OK, "success"),
        (GLR_ERR_NULL_ARGUMENT, "a required pointer argument was NULL"),
        (GLR_ERR_INVALID_ARGUMENT, "invalid argument"),
        (GLR_ERR_INVALID_UTF8, "a string argument is not valid UTF-8"),
        (GLR_ERR_AUTH, "authentication failed: GitLab rejected the token"),
        (GLR_ERR_JOB_CANCELED, "the job was canceled by GitLab"),
        (GLR_ERR_ALREADY_FINISHED, "the job has already finished"),
        (GLR_ERR_NETWORK, "network error (connection, TLS or timeout)"),
        (GLR_ERR_HTTP, "unexpected HTTP status from GitLab"),
        (GLR_ERR_PARSE, "malformed data (from GitLab or persisted)"),
        (GLR_ERR_IO, "local file I/O error"),
        (GLR_ERR_NOT_FOUND, "not found"),
        (GLR_ERR_NOT_OWNER, "this handle does not write the job's log (handed over, a watcher, or a fork()ed copy)"),
        (GLR_ERR_TIMEOUT, "the call's time limit ran out"),
        (GLR_ERR_INTERRUPTED, "the call was interrupted by another thread"),
        (GLR_ERR_PANIC, "internal error (panic) in gitlab_runner_api"),
    ];

    fn text(status: glr_status) -> &'static str {
        let p = glr_status_str(status);
        assert!(!p.is_null());
        // SAFETY: glr_status_str returns pointers to static NUL-terminated literals.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap()
    }

    #[test]
    fn codes_are_the_contract() {
        let codes: Vec<_> = ALL.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, [0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13, -14, -99]);
    }

    #[test]
    fn every_code_has_its_text() {
        for (code, expected) in ALL {
            assert_eq!(text(code), expected, "status {code}");
        }
    }

    #[test]
    fn unknown_codes_are_not_null() {
        for code in [1, -15, -98, -100, i32::MIN, i32::MAX] {
            assert_eq!(text(code), "unknown status");
        }
    }

    #[test]
    fn every_error_kind_maps_to_a_distinct_error_status() {
        let kinds = [
            ErrorKind::InvalidArgument,
            ErrorKind::Auth,
            ErrorKind::JobCanceled,
            ErrorKind::AlreadyFinished,
            ErrorKind::Network,
            ErrorKind::Http,
            ErrorKind::Parse,
            ErrorKind::Io,
            ErrorKind::NotFound,
            ErrorKind::NotOwner,
            ErrorKind::Timeout,
            ErrorKind::Interrupted,
        ];
        let mut statuses: Vec<_> = kinds.iter().map(|k| status_of(*k)).collect();
        assert!(statuses.iter().all(|s| *s < 0 && text(*s) != "unknown status"));
        statuses.sort();
        statuses.dedup();
        assert_eq!(statuses.len(), kinds.len());
    }
}
