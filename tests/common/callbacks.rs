//! Rust closures as the library's C callbacks (cancel callback), and a gate a callback can be
//! made to wait at.

use super::deadline::Shared;
use super::ffi::ok;
use gitlab_runner_api::ffi::job::{glr_job, glr_job_set_cancel_callback};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

type CancelFn = dyn Fn(Shared<glr_job>, i32) + Send + Sync;

/// A closure installed as a job's cancel callback. Dropping it removes the callback (which
/// waits for a call in progress), so drop it before the job is freed.
pub struct CancelHook {
    job: Shared<glr_job>,
    // Boxed twice: the inner box is a fat pointer, the outer one gives it a stable thin address
    // for `userdata`.
    _closure: Box<Box<CancelFn>>,
}

unsafe extern "C" fn cancel_trampoline(userdata: *mut c_void, job: *mut glr_job, state: i32) {
    let f = unsafe { &*(userdata as *const Box<CancelFn>) };
    // Nothing may unwind into the library: a failed assertion inside is reported and swallowed
    // (the tests check what the closure recorded).
    if catch_unwind(AssertUnwindSafe(|| f(Shared(job), state))).is_err() {
        eprintln!("a cancel callback panicked");
    }
}

impl CancelHook {
    /// Installs `f` as `job`'s cancel callback.
    pub fn install(job: *mut glr_job, f: impl Fn(Shared<glr_job>, i32) + Send + Sync + 'static) -> CancelHook {
        let closure: Box<Box<CancelFn>> = Box::new(Box::new(f));
        let userdata = &*closure as *const Box<CancelFn> as *mut c_void;
        ok(unsafe { glr_job_set_cancel_callback(job, Some(cancel_trampoline), userdata) });
        CancelHook { job: Shared(job), _closure: closure }
    }
}

impl Drop for CancelHook {
    fn drop(&mut self) {
        // Returns once a call in progress returned: the closure can go after this.
        unsafe { glr_job_set_cancel_callback(self.job.0, None, ptr::null_mut()) };
    }
}

/// A gate that is closed or open; [`Gate::pass`] waits while it is closed. Like a mutex held
/// by whoever closed it, but a thread that closed it and then waits at it does not panic: it
/// just waits (until a time limit elsewhere fails the test).
pub struct Gate {
    closed: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    pub const fn new() -> Gate {
        Gate { closed: Mutex::new(false), changed: Condvar::new() }
    }

    pub fn close(&self) {
        *self.closed.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }

    pub fn open(&self) {
        *self.closed.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.changed.notify_all();
    }

    /// Waits until the gate is open, at most `limit`; false when it stayed closed.
    pub fn pass(&self, limit: Duration) -> bool {
        let closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        let (closed, _) =
            self.changed.wait_timeout_while(closed, limit, |closed| *closed).unwrap_or_else(PoisonError::into_inner);
        !*closed
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}
