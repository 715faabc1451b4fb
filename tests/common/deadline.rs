//! Hard time limits for code that might deadlock: it runs on a thread of its own, and when it
//! does not return in time the test fails (the stuck thread is left behind) instead of hanging
//! the whole test run.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// Runs `f` on a new thread and returns its result; fails the test when it takes longer than
/// `limit` ("`what` did not return ..."). A panic in `f` is passed on as it is.
#[track_caller]
pub fn within<T: Send + 'static>(limit: Duration, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("within: {what}"))
        .spawn(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        })
        .expect("spawn a thread");
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => resume_unwind(panic),
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not return within {limit:?} (a deadlock?)"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what}: its thread ended without a result"),
    }
}

/// A raw pointer that may cross to the thread of [`within`] (the handles it points to are
/// thread-safe by the library's contract).
#[derive(Debug)]
pub struct Shared<T>(pub *mut T);

// Not derived: a derive would require `T: Copy`, and the pointer is copyable whatever `T` is.
impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Shared<T> {}

impl<T> Shared<T> {
    /// The pointer (a closure that calls this captures the whole `Shared`, which may cross
    /// threads, where one that names `.0` would capture the bare pointer, which may not).
    pub fn get(self) -> *mut T {
        self.0
    }
}

// SAFETY: the library's handles may be used from any thread (header, "Threads").
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}
