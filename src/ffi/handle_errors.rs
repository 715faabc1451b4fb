//! The last failure on each handle, whichever thread made the call: for runtimes that move a
//! caller between OS threads (Go's goroutines, Node's thread pool) and so cannot read the
//! thread's last error reliably.
//!
//! Each boundary (`guard`) opens a frame: one thread-local cell, the enclosing frame's value kept
//! on the boundary's stack (nested calls, e.g. from a callback, get frames of their own). The
//! first counted handle the call borrows (`handle::handle_use`) is named in the frame, and the
//! frame takes over that borrow's in-use count: the boundary, on leaving, writes a failure to the
//! handle's slot and only then releases the count. So the handle cannot be freed (its free waits
//! for the count) before the message is written, without any reference counting or allocation
//! per call; a successful call touches nothing but the cell.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A handle's last failure message (None until a call on it failed).
#[derive(Debug, Default)]
pub(crate) struct HandleErrors(Mutex<Option<String>>);

impl HandleErrors {
    /// The message of the last failed call on the handle ("" if none failed yet).
    pub(crate) fn last(&self) -> String {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone().unwrap_or_default()
    }

    // Out of line: failures are rare, and the success path of every call inlines `leave`.
    #[cold]
    #[inline(never)]
    fn record(&self, message: &str) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message.to_string());
    }
}

/// The frame of the innermost boundary on this thread.
#[derive(Clone, Copy)]
enum Frame {
    /// No boundary is running: a borrow releases its own count.
    Outside,
    /// A boundary is running and has not borrowed a counted handle yet.
    Open,
    /// The handle the call borrowed first: its in-use count (taken over from the borrow) and
    /// its error slot. Both stay valid until the count is released in `leave`.
    Holding(*const AtomicUsize, *const HandleErrors),
}

thread_local! {
    // No destructor, so the cell is there for the whole life of the thread (also while other
    // thread-locals are torn down): `with` cannot fail, and a count taken over in `note` is
    // always released in `leave`.
    static FRAME: Cell<Frame> = const { Cell::new(Frame::Outside) };
}

/// The enclosing frame, restored by `leave`.
#[must_use]
pub(crate) struct Enclosing(Frame);

/// A call starts.
pub(crate) fn enter() -> Enclosing {
    Enclosing(FRAME.with(|f| f.replace(Frame::Open)))
}

/// The call borrowed this handle, whose in-use count (`in_use`) it has just raised. Returns
/// true when the frame took the count over (the first counted handle of a call: its failure is
/// the handle's; a job function that also reads a runner records on the job): the borrow must
/// then not release it itself. False outside any boundary or for a later handle.
pub(crate) fn note(in_use: &AtomicUsize, errors: &HandleErrors) -> bool {
    FRAME.with(|f| match f.get() {
        Frame::Open => {
            f.set(Frame::Holding(in_use, errors));
            true
        }
        Frame::Outside | Frame::Holding(..) => false,
    })
}

/// The call ends; `failure` is its message when it failed. Records it on the handle the frame
/// holds, then releases that handle's count.
#[inline]
pub(crate) fn leave(enclosing: Enclosing, failure: Option<&str>) {
    if let Frame::Holding(in_use, errors) = FRAME.with(|f| f.replace(enclosing.0)) {
        // SAFETY: the count taken over in `note` is still raised, so the handle (which owns
        // both) has not been freed: its free waits until the count is released, just below,
        // and nothing touches the handle after that.
        unsafe {
            if let Some(message) = failure {
                (*errors).record(message);
            }
            (*in_use).fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_handle_of_a_frame_is_held_until_leave() {
        let (count, errors) = (AtomicUsize::new(0), HandleErrors::default());
        let (other_count, other_errors) = (AtomicUsize::new(0), HandleErrors::default());
        assert!(!note(&count, &errors), "outside any frame a borrow keeps its own count");

        let outer = enter();
        count.fetch_add(1, Ordering::SeqCst);
        assert!(note(&count, &errors));
        other_count.fetch_add(1, Ordering::SeqCst);
        assert!(!note(&other_count, &other_errors), "the first handle wins");
        other_count.fetch_sub(1, Ordering::SeqCst);

        // A nested call (a callback calling in) has a frame of its own and restores ours.
        let inner = enter();
        other_count.fetch_add(1, Ordering::SeqCst);
        assert!(note(&other_count, &other_errors));
        leave(inner, Some("inner failed"));
        assert_eq!(other_count.load(Ordering::SeqCst), 0);
        assert_eq!(other_errors.last(), "inner failed");

        assert_eq!(count.load(Ordering::SeqCst), 1, "held until the outer call leaves");
        leave(outer, Some("outer failed"));
        assert_eq!(count.load(Ordering::SeqCst), 0);
        assert_eq!(errors.last(), "outer failed");
        assert_eq!(other_errors.last(), "inner failed");

        // A success leaves the last failure in place.
        let frame = enter();
        count.fetch_add(1, Ordering::SeqCst);
        assert!(note(&count, &errors));
        leave(frame, None);
        assert_eq!(count.load(Ordering::SeqCst), 0);
        assert_eq!(errors.last(), "outer failed");
        assert!(!note(&count, &errors), "back outside");
    }
}
