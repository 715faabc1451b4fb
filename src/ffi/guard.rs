//! The panic boundary and the thread-local last error.
//!
//! Every exported function body runs inside [`guard`] (status-returning functions) or
//! [`guard_value`]/[`guard_result`] (getters). They clear this thread's last error on entry,
//! run the body under `catch_unwind`, and record a failure (status + message) on the way out.
//! Destructors use `handle::free_handle`/`glr_string_free`, which leave the slot alone unless a
//! panic is caught (so `free` between a failure and reading its message does not lose it).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::ffi::c_char;
use std::fmt;
use std::panic::{self, catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use super::handle_errors;
use super::status::*;
use super::text::{copy_to_buffer, without_nul};
use crate::core::{diag, error::Error};

/// A failure on its way to C: the status to return and the message for glr_last_error_message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FfiError {
    pub status: glr_status,
    pub message: String,
}

pub(crate) type FfiResult<T> = Result<T, FfiError>;

impl FfiError {
    pub(crate) fn new(status: glr_status, message: impl Into<String>) -> Self {
        FfiError { status, message: message.into() }
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        FfiError { status: status_of(e.kind), message: e.message }
    }
}

impl fmt::Display for FfiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `GLR_ERR_NULL_ARGUMENT` with the message "`name` is NULL".
pub(crate) fn null_arg(name: &str) -> FfiError {
    FfiError::new(GLR_ERR_NULL_ARGUMENT, format!("{name} is NULL"))
}

/// `GLR_ERR_INVALID_ARGUMENT` with the message "`name`: `why`".
pub(crate) fn invalid_arg(name: &str, why: impl fmt::Display) -> FfiError {
    FfiError::new(GLR_ERR_INVALID_ARGUMENT, format!("{name}: {why}"))
}

thread_local! {
    /// The status of this thread's last failure, GLR_OK when the last call that clears it
    /// succeeded. Kept apart from the message so that clearing, on entry to every call, is one
    /// store (no destructor, no borrow); the message is only read while this is not GLR_OK.
    static LAST_STATUS: Cell<glr_status> = const { Cell::new(GLR_OK) };
    /// The message of that failure, NUL bytes replaced, so C sees the whole message. May hold an
    /// older failure's text while LAST_STATUS is GLR_OK (it is overwritten by the next failure).
    static LAST_MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
    /// How many guards are active on this thread (the panic hook stays quiet inside them).
    static GUARD_DEPTH: Cell<usize> = const { Cell::new(0) };
    /// Where the last panic caught by a guard happened, set by the panic hook.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

// LAST_STATUS has no destructor, so it is there for the thread's whole life. The others use
// `try_with`: during thread teardown they may already be gone; losing the message then is better
// than a panic (which would abort, as it cannot unwind out of an extern "C" fn).
fn clear_last_error() {
    LAST_STATUS.with(|s| s.set(GLR_OK));
}

fn set_last_error(e: FfiError) -> glr_status {
    let status = e.status;
    let message = match without_nul(&e.message) {
        Cow::Borrowed(_) => e.message,
        Cow::Owned(replaced) => replaced,
    };
    // Without its message slot (thread teardown) the failure is not recorded at all, as before
    // the two were split: a status with no message would read as a failure with an empty text.
    if LAST_MESSAGE.try_with(|slot| *slot.borrow_mut() = message).is_ok() {
        LAST_STATUS.with(|s| s.set(status));
    }
    status
}

/// This thread's last failure message, "" when the last call that clears it succeeded.
fn with_last_message<R>(f: impl FnOnce(&str) -> R) -> Option<R> {
    if LAST_STATUS.with(Cell::get) == GLR_OK {
        return Some(f(""));
    }
    LAST_MESSAGE.try_with(|slot| f(slot.borrow().as_str())).ok()
}

/// Runs `f` inside a frame of `handle_errors` (see there): its failure is also recorded on the
/// handle it borrowed.
fn in_frame<T>(f: impl FnOnce() -> FfiResult<T>) -> FfiResult<T> {
    let enclosing = handle_errors::enter();
    let result = catch_panic(f).and_then(|r| r);
    handle_errors::leave(enclosing, result.as_ref().err().map(|e| e.message.as_str()));
    result
}

/// Installs, once, a panic hook that stays silent for panics inside a guard (the library never
/// prints; the guard reports them) and records their location. Panics elsewhere go to the hook
/// that was installed before.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    if HOOK.is_completed() || std::thread::panicking() {
        return; // take_hook must not be called while panicking
    }
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if GUARD_DEPTH.try_with(Cell::get).unwrap_or(0) > 0 {
                let location = info.location().map(|l| l.to_string());
                let _ = PANIC_LOCATION.try_with(|slot| *slot.borrow_mut() = location);
            } else {
                previous(info)
            }
        }));
    });
}

/// Runs `f`, turning a panic into `GLR_ERR_PANIC` with "internal panic: <payload> (<location>)",
/// also sent to the diagnostics sink at error level. Does not touch the last-error slot.
pub(crate) fn catch_panic<T>(f: impl FnOnce() -> T) -> FfiResult<T> {
    install_panic_hook();
    super::fork::watch_fork();
    let _ = GUARD_DEPTH.try_with(|d| d.set(d.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    let _ = GUARD_DEPTH.try_with(|d| d.set(d.get() - 1));
    result.map_err(|payload| {
        let what = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_owned()
        };
        let location = PANIC_LOCATION.try_with(|slot| slot.borrow_mut().take()).ok().flatten();
        let message = match location {
            Some(at) => format!("internal panic: {what} ({at})"),
            None => format!("internal panic: {what}"),
        };
        // Reported before the slot is set, so a log callback that calls into the library
        // (and so clears the slot) cannot erase the message.
        diag::error(&message);
        FfiError::new(GLR_ERR_PANIC, message)
    })
}

/// The boundary of a status-returning function: clears the last error, runs `f`, and returns
/// `GLR_OK`, or the error's status (recording its message), or `GLR_ERR_PANIC` on a panic.
///
/// ```ignore
/// #[no_mangle]
/// pub unsafe extern "C" fn glr_job_loads(data: *const c_char, out: *mut *mut glr_job) -> glr_status {
///     guard(|| {
///         let out = unsafe { out_arg(out, "out") }?;
///         let data = unsafe { str_arg(data, "data") }?;
///         out.write(new_handle(glr_job::new(core::job::Job::loads(data)?)));
///         Ok(())
///     })
/// }
/// ```
pub(crate) fn guard(f: impl FnOnce() -> FfiResult<()>) -> glr_status {
    clear_last_error();
    match in_frame(f) {
        Ok(()) => GLR_OK,
        Err(e) => set_last_error(e),
    }
}

/// The boundary of a getter or void function that cannot fail except by panicking: clears the
/// last error, returns `f()`, or `default` (recording `GLR_ERR_PANIC`) on a panic.
pub(crate) fn guard_value<T>(default: T, f: impl FnOnce() -> T) -> T {
    clear_last_error();
    match in_frame(|| Ok(f())) {
        Ok(v) => v,
        Err(e) => {
            set_last_error(e);
            default
        }
    }
}

/// The boundary of a getter that can fail (NULL handle, index out of range...): clears the
/// last error, returns the value of `f`, or `default` with the error recorded, so that C can
/// tell "NULL because unset" (glr_last_error_code() == GLR_OK) from a failure.
pub(crate) fn guard_result<T>(default: T, f: impl FnOnce() -> FfiResult<T>) -> T {
    clear_last_error();
    match in_frame(f) {
        Ok(v) => v,
        Err(e) => {
            set_last_error(e);
            default
        }
    }
}

/// Records a caught panic without clearing the slot first (for destructors).
pub(crate) fn guard_quiet(f: impl FnOnce()) {
    if let Err(e) = catch_panic(f) {
        set_last_error(e);
    }
}

/// Copies the message of the last failure on the calling thread into `buf`, snprintf-style.
///
/// Writes at most `buflen` bytes including a terminating NUL (always NUL-terminated when
/// `buflen > 0`; truncated at a UTF-8 character boundary if needed) and returns the full length
/// of the message in bytes, without the NUL, so `return value >= buflen` means truncated.
/// `buf` may be NULL when `buflen` is 0, to ask for the length. Writes an empty string and
/// returns 0 when the last call succeeded.
///
/// The slot is per thread: call this on the thread that made the failing call, before any other
/// library call on that thread (each call clears it on entry; this one, glr_last_error_code(),
/// glr_status_str(), glr_version(), glr_abi_version() and the free functions do not).
/// Runtimes that move code between OS threads (Go) should read glr_job_last_error_message() /
/// glr_runner_last_error_message() instead, which keep the last failure per handle.
/// Messages never contain tokens.
///
/// @param buf    Caller-owned buffer of at least `buflen` bytes, or NULL if `buflen` is 0.
/// @param buflen Size of `buf` in bytes.
/// @return       Length of the whole message in bytes, excluding the NUL.
#[no_mangle]
pub unsafe extern "C" fn glr_last_error_message(buf: *mut c_char, buflen: usize) -> usize {
    // SAFETY: `buf` as the caller promised.
    with_last_message(|message| unsafe { copy_to_buffer(message, buf, buflen) }).unwrap_or(0)
}

/// The status of the last failure on the calling thread, or #GLR_OK if the last call that
/// clears the slot succeeded (same per-thread rules as glr_last_error_message()). Useful after
/// getters, whose return value cannot always tell a failure (NULL argument, panic) from a valid
/// "unset" result. Does not clear the slot.
#[no_mangle]
pub extern "C" fn glr_last_error_code() -> glr_status {
    LAST_STATUS.with(Cell::get)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::error::ErrorKind;

    /// The last error message of this thread, read through the C function.
    pub(crate) fn last_message() -> String {
        // SAFETY: NULL with length 0 is allowed; then a buffer of the announced size + 1.
        let len = unsafe { glr_last_error_message(std::ptr::null_mut(), 0) };
        let mut buf = vec![0u8; len + 1];
        let n = unsafe { glr_last_error_message(buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(n, len);
        assert_eq!(buf[len], 0);
        String::from_utf8(buf[..len].to_vec()).unwrap()
    }

    #[test]
    fn ok_clears_a_previous_error() {
        assert_eq!(guard(|| Err(null_arg("job"))), GLR_ERR_NULL_ARGUMENT);
        assert_eq!(glr_last_error_code(), GLR_ERR_NULL_ARGUMENT);
        assert_eq!(last_message(), "job is NULL");
        // reading does not clear
        assert_eq!(last_message(), "job is NULL");
        assert_eq!(guard(|| Ok(())), GLR_OK);
        assert_eq!(glr_last_error_code(), GLR_OK);
        assert_eq!(last_message(), "");
    }

    #[test]
    fn core_errors_map_to_their_status() {
        let st = guard(|| Err(Error::new(ErrorKind::Http, "PATCH /x: 500 after 5 attempts").into()));
        assert_eq!(st, GLR_ERR_HTTP);
        assert_eq!(last_message(), "PATCH /x: 500 after 5 attempts");
        let st = guard(|| {
            Err(Error::parse("bad").context("glr_job_loads"))?;
            Ok(())
        });
        assert_eq!(st, GLR_ERR_PARSE);
        assert_eq!(last_message(), "glr_job_loads: bad");
        assert_eq!(guard(|| Err(invalid_arg("reason", "unknown value 7"))), GLR_ERR_INVALID_ARGUMENT);
        assert_eq!(last_message(), "reason: unknown value 7");
    }

    #[test]
    fn panic_becomes_status_and_message() {
        assert_eq!(guard(|| panic!("boom {}", 42)), GLR_ERR_PANIC);
        assert_eq!(glr_last_error_code(), GLR_ERR_PANIC);
        let msg = last_message();
        assert!(msg.starts_with("internal panic: boom 42 ("), "{msg}");
        assert!(msg.contains("guard.rs:"), "location missing: {msg}");

        assert_eq!(guard(|| std::panic::panic_any(7u8)), GLR_ERR_PANIC);
        assert!(last_message().starts_with("internal panic: non-string panic payload"));
        // the guard still works afterwards
        assert_eq!(guard(|| Ok(())), GLR_OK);
    }

    #[test]
    fn panic_is_reported_to_diagnostics() {
        use crate::core::diag::{self, tests::SINK_TEST_LOCK};
        use std::sync::{Arc, Mutex, PoisonError};
        let _lock = SINK_TEST_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        diag::set_sink(Some(Box::new(move |level, msg| {
            if msg.contains("reported-8c1f") {
                s.lock().unwrap().push((level, msg.to_owned()))
            }
        })));
        let st = guard(|| panic!("reported-8c1f"));
        diag::set_sink(None);
        assert_eq!(st, GLR_ERR_PANIC);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, diag::Level::Error);
        assert!(seen[0].1.starts_with("internal panic: reported-8c1f ("));
    }

    #[test]
    fn guard_value_and_result() {
        assert_eq!(guard_value(-1i64, || 5), 5);
        assert_eq!(glr_last_error_code(), GLR_OK);
        assert_eq!(guard_value(-1i64, || panic!("getter")), -1);
        assert_eq!(glr_last_error_code(), GLR_ERR_PANIC);
        assert_eq!(guard_value(-1i64, || 6), 6);
        assert_eq!(glr_last_error_code(), GLR_OK);

        assert_eq!(guard_result(0usize, || Err(null_arg("runner"))), 0);
        assert_eq!(glr_last_error_code(), GLR_ERR_NULL_ARGUMENT);
        assert_eq!(guard_result(0usize, || Ok(3)), 3);
        assert_eq!(glr_last_error_code(), GLR_OK);
    }

    #[test]
    fn guard_quiet_keeps_the_previous_error() {
        assert_eq!(guard(|| Err(null_arg("x"))), GLR_ERR_NULL_ARGUMENT);
        guard_quiet(|| {});
        assert_eq!(last_message(), "x is NULL");
        guard_quiet(|| panic!("in drop"));
        assert_eq!(glr_last_error_code(), GLR_ERR_PANIC);
    }

    #[test]
    fn nested_guards() {
        let st = guard(|| {
            assert_eq!(guard(|| panic!("inner")), GLR_ERR_PANIC);
            Ok(())
        });
        assert_eq!(st, GLR_OK);
        assert_eq!(guard(|| Ok(())), GLR_OK);
        // a panic outside any guard still reaches the previous hook (the test harness prints it)
        assert!(std::panic::catch_unwind(|| panic!("outside")).is_err());
    }

    #[test]
    fn message_buffer_truncation() {
        guard(|| Err(FfiError::new(GLR_ERR_IO, "héllo"))); // 6 bytes: h, é (2), l, l, o
        let mut buf = [0x55u8; 16];
        let p = buf.as_mut_ptr().cast::<c_char>();
        unsafe {
            // length query without a buffer, and NULL with a non-zero length is ignored
            assert_eq!(glr_last_error_message(std::ptr::null_mut(), 0), 6);
            assert_eq!(glr_last_error_message(std::ptr::null_mut(), 10), 6);
            // buflen 0: nothing written
            assert_eq!(glr_last_error_message(p, 0), 6);
            assert_eq!(buf[0], 0x55);
            // buflen 1: only the NUL
            assert_eq!(glr_last_error_message(p, 1), 6);
            assert_eq!(buf[..2], [0, 0x55]);
            // buflen 3 would cut "é" in half: back off to "h"
            assert_eq!(glr_last_error_message(p, 3), 6);
            assert_eq!(buf[..3], [b'h', 0, 0x55]);
            // exact fit: 6 bytes + NUL, nothing written past buflen
            buf = [0x55u8; 16];
            assert_eq!(glr_last_error_message(p, 7), 6);
            assert_eq!(&buf[..8], "héllo\0\x55".as_bytes());
            // one short: truncated to 5 bytes
            assert_eq!(glr_last_error_message(p, 6), 6);
            assert_eq!(&buf[..6], "héll\0".as_bytes());
        }
    }

    #[test]
    fn interior_nul_in_message_is_replaced() {
        guard(|| Err(FfiError::new(GLR_ERR_IO, "a\0b")));
        assert_eq!(last_message(), "a\u{FFFD}b");
    }

    #[test]
    fn last_error_is_per_thread() {
        guard(|| Err(null_arg("here")));
        std::thread::spawn(|| {
            assert_eq!(glr_last_error_code(), GLR_OK);
            guard(|| Err(null_arg("there")));
        })
        .join()
        .unwrap();
        assert_eq!(last_message(), "here is NULL");
    }
}
