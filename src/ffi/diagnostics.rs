//! The diagnostics callback: the C face of `core::diag`.

use std::ffi::{c_char, c_void};

use super::guard::{guard, guard_value, invalid_arg};
use super::status::glr_status;
use super::text::c_string;
use crate::core::diag::{self, Level};

/// Log level of an error: something failed (or an internal panic was caught).
pub const GLR_LOG_ERROR: i32 = 1;
/// Log level of a warning: something unexpected that the library worked around (retry, resync).
pub const GLR_LOG_WARN: i32 = 2;
/// Log level of information: notable steps (requests, jobs received and finished).
pub const GLR_LOG_INFO: i32 = 3;
/// Log level of debugging detail.
pub const GLR_LOG_DEBUG: i32 = 4;

const _: () = {
    assert!(GLR_LOG_ERROR == Level::Error as i32);
    assert!(GLR_LOG_WARN == Level::Warn as i32);
    assert!(GLR_LOG_INFO == Level::Info as i32);
    assert!(GLR_LOG_DEBUG == Level::Debug as i32);
};

/// Receives the library's diagnostics: `userdata` as given to glr_set_log_callback(), a
/// `GLR_LOG_*` level (smaller is more severe), and one line of text without a trailing newline
/// (NUL-terminated UTF-8, borrowed: valid only during the call; copy it to keep it).
pub type glr_log_callback = Option<unsafe extern "C" fn(userdata: *mut c_void, level: i32, message: *const c_char)>;

/// Installs the process-wide diagnostics callback, replacing the previous one; a NULL
/// `callback` turns diagnostics off. The library never prints by itself: without a callback,
/// lines go to stderr only if the environment variable `GLR_LOG` is `error`, `warn`, `info` or
/// `debug` (read once), and are dropped otherwise. With a callback, every level is passed; filter
/// in the callback.
///
/// The callback runs on the library's event thread (`glr-events`), never on the thread that
/// logged and never with a library lock held: lines are delivered one at a time, in the order
/// they were logged, also the debug-level lines of retries made by the background uploader. A
/// slow callback delays other callbacks (the cancel callbacks run on the same thread), never an
/// upload; when more than 10,000 lines wait, further ones are dropped and counted (a warning
/// says how many). It may call any library function. It must not unwind (no C++ exception or
/// longjmp may leave it; catch everything inside). Runtimes that cannot take calls on a thread
/// they did not create (Ruby, Perl, LuaJIT, a busy Node.js event loop) should set `GLR_LOG`
/// instead.
///
/// This function returns once every line logged before it was delivered to the previous
/// callback and that callback is not running any more, so its `userdata` may be freed right
/// after (except when called from a callback: then it returns at once).
///
/// @param callback The function to call, or NULL to turn the callback off.
/// @param userdata Passed unchanged to every call of `callback`; may be NULL. Not freed by the library.
#[no_mangle]
pub unsafe extern "C" fn glr_set_log_callback(callback: glr_log_callback, userdata: *mut c_void) {
    // Stored as an integer: the pointer is the caller's, and the caller promised thread-safety.
    let userdata = userdata as usize;
    guard_value((), || {
        diag::set_sink(callback.map(|cb| -> diag::Sink {
            Box::new(move |level: Level, message: &str| {
                let message = c_string(message);
                // SAFETY: the caller of glr_set_log_callback promised a callable, thread-safe,
                // non-unwinding function and a `userdata` it accepts.
                unsafe { cb(userdata as *mut c_void, level as i32, message.as_ptr()) }
            })
        }))
    })
}

/// Sends the library's diagnostics at `level` (a GLR_LOG_* value) and more severe to the file
/// descriptor `fd` as lines `gitlab_runner_api: <level>: <message>` ending in a newline (at most 4000 bytes, so
/// each goes into a pipe whole), or with `fd` -1 stops. For runtimes that cannot take callbacks
/// on a library thread: give it a pipe and read lines from your event loop. It never blocks the
/// library: a line the descriptor cannot take at once (a full pipe, a reader gone) is dropped,
/// and no SIGPIPE is raised. The descriptor stays yours (the library never closes it); once this
/// function returns, no line goes to a previous descriptor any more (a write in progress on
/// another thread has ended), so it may be closed. It works beside a log callback, and
/// `GLR_LOG`'s stderr lines stop while it is set.
///
/// Errors: GLR_ERR_INVALID_ARGUMENT (`fd` below -1, or an unknown `level`; `level` is ignored
/// when `fd` is -1).
#[no_mangle]
pub extern "C" fn glr_set_log_fd(fd: i32, level: i32) -> glr_status {
    guard(|| {
        if fd == -1 {
            diag::set_log_fd(None, Level::Error);
            return Ok(());
        }
        let level = match level {
            GLR_LOG_ERROR => Level::Error,
            GLR_LOG_WARN => Level::Warn,
            GLR_LOG_INFO => Level::Info,
            GLR_LOG_DEBUG => Level::Debug,
            other => return Err(invalid_arg("level", format!("{other} is not a GLR_LOG_* value"))),
        };
        match fd {
            fd if fd >= 0 => diag::set_log_fd(Some(fd), level),
            fd => return Err(invalid_arg("fd", format!("{fd} is not a descriptor (-1 turns this off)"))),
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diag::tests::SINK_TEST_LOCK;
    use std::ffi::CStr;
    use std::sync::{Mutex, PoisonError};

    unsafe extern "C" fn collect(userdata: *mut c_void, level: i32, message: *const c_char) {
        let seen = unsafe { &*(userdata as *const Mutex<Vec<(i32, String)>>) };
        let text = unsafe { CStr::from_ptr(message) }.to_str().unwrap();
        // other tests may log meanwhile: keep only this test's lines
        if let Some(text) = text.strip_prefix("cb:") {
            seen.lock().unwrap().push((level, text.to_owned()));
        }
    }

    #[test]
    fn callback_receives_levels_and_text() {
        let _lock = SINK_TEST_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let seen: Mutex<Vec<(i32, String)>> = Mutex::new(Vec::new());
        unsafe { glr_set_log_callback(Some(collect), &seen as *const _ as *mut c_void) };
        diag::debug("cb:d1");
        diag::error("cb:e\0x");
        std::thread::scope(|s| {
            s.spawn(|| diag::warn("cb:from another thread"));
        });
        unsafe { glr_set_log_callback(None, std::ptr::null_mut()) };
        diag::info("cb:not delivered");
        let seen = seen.into_inner().unwrap();
        assert_eq!(
            seen,
            vec![
                (GLR_LOG_DEBUG, "d1".to_owned()),
                (GLR_LOG_ERROR, "e\u{FFFD}x".to_owned()),
                (GLR_LOG_WARN, "from another thread".to_owned()),
            ]
        );
    }
}
