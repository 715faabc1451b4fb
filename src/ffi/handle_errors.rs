//! The last failure on each handle, whichever thread made the call: for runtimes that move a
//! caller between OS threads (Go's goroutines, Node's thread pool) and so cannot read the
//! thread's last error reliably.
//!
//! Each boundary (`guard`) opens a frame on a thread-local stack; the first counted handle the
//! call borrows (`handle::handle_use`) names the frame's slot; on failure the boundary writes the
//! message there too. The slot is shared (`Arc`), so writing it after the handle's counter
//! dropped (and a free on another thread proceeded) touches no freed memory.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

/// A handle's last failure message (None until a call on it failed).
#[derive(Debug, Default, Clone)]
pub(crate) struct HandleErrors(Arc<Mutex<Option<String>>>);

impl HandleErrors {
    /// The message of the last failed call on the handle ("" if none failed yet).
    pub(crate) fn last(&self) -> String {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone().unwrap_or_default()
    }

    fn record(&self, message: &str) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message.to_string());
    }
}

thread_local! {
    static FRAMES: RefCell<Vec<Option<HandleErrors>>> = const { RefCell::new(Vec::new()) };
}

/// A call starts (nested calls, e.g. from a test, get frames of their own).
pub(crate) fn enter() {
    let _ = FRAMES.try_with(|f| f.borrow_mut().push(None));
}

/// The call borrowed this handle: its failure, if any, is the handle's too (the first one wins:
/// a job function that also reads an artifact list records on the job).
pub(crate) fn note(handle: &HandleErrors) {
    let _ = FRAMES.try_with(|f| {
        if let Some(top @ None) = f.borrow_mut().last_mut() {
            *top = Some(handle.clone());
        }
    });
}

/// The call ends; `failure` is its message when it failed.
pub(crate) fn leave(failure: Option<&str>) {
    let frame = FRAMES.try_with(|f| f.borrow_mut().pop()).ok().flatten().flatten();
    if let (Some(handle), Some(message)) = (frame, failure) {
        handle.record(message);
    }
}
