//! The library as a whole in a process: leaving it without losing log text.

use super::guard::guard;
use super::job::call_timeout;
use super::status::glr_status;
use crate::core::uploader;
use std::time::Duration;

/// glr_shutdown()'s bound when given 0.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// Uploads the pending log text of every live job of this process (each job that owns its
/// log), within `timeout_milliseconds` (0: one minute), and returns #GLR_OK when GitLab has
/// acknowledged all of it. Call it before the process exits: the background uploader sends
/// text promptly, but whatever is not acknowledged when the process exits (returning from
/// main, exit(), a signal) is lost. The library stays usable afterwards; jobs are not
/// finished by it (their state at GitLab stays "running").
///
/// Errors: GLR_ERR_TIMEOUT (time ran out), or the error of the first job that could not upload
/// (GLR_ERR_NETWORK, GLR_ERR_HTTP, GLR_ERR_JOB_CANCELED...); the message says how many bytes of
/// which jobs are left. GLR_ERR_INVALID_ARGUMENT for a negative timeout.
#[no_mangle]
pub extern "C" fn glr_shutdown(timeout_milliseconds: i64) -> glr_status {
    guard(|| Ok(uploader::shutdown(call_timeout(timeout_milliseconds, DEFAULT_SHUTDOWN_TIMEOUT)?)?))
}
