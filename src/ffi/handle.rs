//! Opaque handles and out-parameters.
//!
//! A handle is a `Box<T>` given to C as `*mut T` ([`new_handle`]) and taken back only by
//! [`free_handle`]. In between it is only ever borrowed as `&T` ([`handle_ref`]), also for
//! functions whose C signature takes a non-const pointer: mutation goes through locks inside
//! `T`, so two C threads using one handle at once serialise instead of aliasing a `&mut`.
//! Handle types are declared in C style so cbindgen emits them as opaque typedefs:
//! `pub struct glr_job { ... }` (not `#[repr(C)]`) -> `typedef struct glr_job glr_job;`.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::guard::{guard_quiet, null_arg, FfiResult};
use super::handle_errors::{self, HandleErrors};

/// Moves `value` to the heap and returns the handle C will own (never NULL).
pub(crate) fn new_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Borrows the handle `p` (a `*mut T` coerces), or `GLR_ERR_NULL_ARGUMENT` ("`name` is NULL").
///
/// # Safety
/// `p` is NULL or a handle from [`new_handle`] that C has not freed, and stays so for `'a`.
pub(crate) unsafe fn handle_ref<'a, T>(p: *const T, name: &str) -> FfiResult<&'a T> {
    // SAFETY: by the caller's contract a non-NULL `p` points to a live `T`.
    unsafe { p.as_ref() }.ok_or_else(|| null_arg(name))
}

/// Drops the handle `p`; NULL is a no-op. A panic in `T`'s destructor is caught and recorded as
/// the thread's last error (nothing else touches it, so a free between a failing call and
/// glr_last_error_message() keeps the message). The complete body of a `glr_*_free` function.
///
/// # Safety
/// `p` is NULL or a handle from [`new_handle`] that was not freed before; C must not use it
/// after this call (no other thread may be using it either).
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    if p.is_null() {
        return;
    }
    // SAFETY: by the caller's contract `p` came from Box::into_raw and is freed only once.
    let boxed = unsafe { Box::from_raw(p) };
    guard_quiet(move || drop(boxed));
}

/// Counts the calls in progress on a handle, so that its free function can wait for them
/// (after making them end soon) instead of freeing memory another thread is using.
#[derive(Debug, Default)]
pub(crate) struct InUse(AtomicUsize);

/// A handle type whose calls are counted (`glr_job`, `glr_runner`) and whose last failure is
/// kept (see `handle_errors`).
pub(crate) trait Counted {
    fn in_use(&self) -> &InUse;
    fn errors(&self) -> &HandleErrors;
}

/// A borrowed handle, counted as in use until dropped, or, for the first handle a call borrows,
/// until the call's boundary ends (the boundary took the count over: see `handle_errors`).
pub(crate) struct Using<'a, T: Counted> {
    handle: &'a T,
    /// Whether dropping this releases the count (false when the boundary does).
    releases: bool,
}

impl<T: Counted> Drop for Using<'_, T> {
    fn drop(&mut self) {
        if self.releases {
            self.handle.in_use().0.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl<T: Counted> std::ops::Deref for Using<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.handle
    }
}

/// Like [`handle_ref`], but the handle counts as in use until the result is dropped (or, inside a
/// boundary, until the boundary ends, when this is the call's first counted handle).
///
/// # Safety
/// As [`handle_ref`].
pub(crate) unsafe fn handle_use<'a, T: Counted>(p: *const T, name: &str) -> FfiResult<Using<'a, T>> {
    let r = unsafe { handle_ref(p, name) }?;
    r.in_use().0.fetch_add(1, Ordering::SeqCst);
    let releases = !handle_errors::note(&r.in_use().0, r.errors());
    Ok(Using { handle: r, releases })
}

/// Frees a counted handle: `stop` first makes the calls in progress end soon (interrupts their
/// network waits), then this waits until none is left and drops the handle. NULL is a no-op.
///
/// # Safety
/// As [`free_handle`], except that other threads may be *inside* calls on the handle (counted
/// with [`handle_use`]); none may start one once this is called.
pub(crate) unsafe fn free_counted<T: Counted>(p: *mut T, stop: impl FnOnce(&T)) {
    if p.is_null() {
        return;
    }
    // SAFETY: live until freed below, by the caller's contract.
    let handle = unsafe { &*p };
    guard_quiet(|| stop(handle));
    let mut pause = Duration::from_micros(50);
    while handle.in_use().0.load(Ordering::SeqCst) != 0 {
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
    unsafe { free_handle(p) }
}

/// Writes `value` to the out-parameter `out`; NULL is a no-op (check with [`out_arg`] first).
///
/// # Safety
/// `out` is NULL or valid for a write of `T`. The old content is overwritten without being
/// dropped (it is C data, typically an uninitialised pointer).
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { out.write(value) }
    }
}

/// A checked, non-NULL out-parameter, obtained before any work is done and written only on
/// success (C sees `*out` unchanged on failure).
pub(crate) struct Out<'a, T> {
    ptr: *mut T,
    _lifetime: PhantomData<&'a mut T>,
}

/// Checks the out-parameter `out` for NULL (`GLR_ERR_NULL_ARGUMENT`, "`name` is NULL").
/// Call it first, so a NULL `out` fails before anything happens (no request sent, no file written).
///
/// # Safety
/// `out` is NULL or valid for a write of `T` for `'a`.
pub(crate) unsafe fn out_arg<'a, T>(out: *mut T, name: &str) -> FfiResult<Out<'a, T>> {
    if out.is_null() {
        Err(null_arg(name))
    } else {
        Ok(Out { ptr: out, _lifetime: PhantomData })
    }
}

impl<T> Out<'_, T> {
    /// Stores the result. Do this last, once nothing can fail any more: a value written and then
    /// followed by an error would leak (C does not free on failure).
    pub(crate) fn write(self, value: T) {
        // SAFETY: checked non-NULL and writable in out_arg.
        unsafe { write_out(self.ptr, value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::guard::{guard, tests::last_message};
    use crate::ffi::status::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Probe(Arc<AtomicUsize>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn handle_life_cycle() {
        let drops = Arc::new(AtomicUsize::new(0));
        let h = new_handle(Probe(drops.clone()));
        assert!(!h.is_null());
        let r = unsafe { handle_ref(h, "probe") }.unwrap();
        assert!(Arc::ptr_eq(&r.0, &drops));
        unsafe { free_handle(h) };
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        unsafe { free_handle::<Probe>(std::ptr::null_mut()) };
    }

    #[test]
    fn null_handle_is_an_error() {
        let e = unsafe { handle_ref::<u32>(std::ptr::null(), "runner") }.unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (GLR_ERR_NULL_ARGUMENT, "runner is NULL"));
    }

    #[test]
    fn panicking_destructor_is_contained() {
        struct Bad;
        impl Drop for Bad {
            fn drop(&mut self) {
                panic!("drop failed")
            }
        }
        unsafe { free_handle(new_handle(Bad)) };
        assert!(last_message().starts_with("internal panic: drop failed"));
    }

    #[test]
    fn out_is_written_only_on_success() {
        let mut out: *mut u32 = std::ptr::null_mut();
        let st = guard(|| {
            let _out = unsafe { out_arg(&mut out, "out") }?;
            // fails before writing
            Err(null_arg("data"))
        });
        assert_eq!(st, GLR_ERR_NULL_ARGUMENT);
        assert!(out.is_null());

        let st = guard(|| {
            let out = unsafe { out_arg(&mut out, "out") }?;
            out.write(new_handle(7));
            Ok(())
        });
        assert_eq!(st, GLR_OK);
        assert_eq!(unsafe { *out }, 7);
        unsafe { free_handle(out) };

        let st = guard(|| {
            unsafe { out_arg::<*mut u32>(std::ptr::null_mut(), "job_out") }?;
            unreachable!("work must not start with a NULL out");
        });
        assert_eq!(st, GLR_ERR_NULL_ARGUMENT);
        assert_eq!(last_message(), "job_out is NULL");

        unsafe { write_out::<u32>(std::ptr::null_mut(), 1) }; // no-op
    }
}
