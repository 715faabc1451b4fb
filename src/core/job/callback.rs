//! The cancel callback of one job: delivered on the event thread with no lock held, and
//! replaced (or removed, when the job is freed) only once no delivery of the old one is
//! running, so the C side may free the callback's userdata right after.

use crate::core::events;
use crate::core::model::JobState;
use crate::core::sync::{lock, wait};
use std::sync::{Arc, Condvar, Mutex};

/// Called when GitLab cancels the job (with the new state: canceling or canceled).
pub type CancelCallback = Box<dyn Fn(JobState) + Send + Sync>;

#[derive(Default)]
struct Slot {
    callback: Option<Arc<CancelCallback>>,
    /// A delivery is running on the event thread.
    running: bool,
}

#[derive(Default)]
pub(super) struct CallbackSlot {
    slot: Mutex<Slot>,
    idle: Condvar,
}

impl CallbackSlot {
    /// Installs `callback` (None removes it). Returns once no delivery of the previous one is
    /// running, unless called on the event thread (from a callback: it would wait for itself).
    pub(super) fn replace(&self, callback: Option<CancelCallback>) {
        let mut slot = lock(&self.slot);
        let old = std::mem::replace(&mut slot.callback, callback.map(Arc::new));
        if !events::on_event_thread() {
            while slot.running {
                slot = wait(&self.idle, slot);
            }
        }
        drop(slot);
        // The old callback (and what it captured) goes away here, with no lock held.
        drop(old);
    }

    /// Calls the installed callback with `state` (on the event thread; see `post`).
    fn deliver(&self, state: JobState) {
        let callback = {
            let mut slot = lock(&self.slot);
            let Some(cb) = slot.callback.clone() else { return };
            slot.running = true;
            cb
        };
        // Reset even if the callback panics (the event thread contains the panic).
        struct Done<'a>(&'a CallbackSlot);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                lock(&self.0.slot).running = false;
                self.0.idle.notify_all();
            }
        }
        let _done = Done(self);
        callback(state);
    }
}

/// Queues the delivery of `state` to the callback installed when it runs. The slot is reached
/// through `owner`, which keeps it alive (a job freed meanwhile has no callback any more).
pub(super) fn post<T: Send + Sync + 'static>(
    owner: std::sync::Weak<T>,
    slot: fn(&T) -> &CallbackSlot,
    state: JobState,
) {
    events::post(move || {
        if let Some(owner) = owner.upgrade() {
            slot(&owner).deliver(state);
        }
    });
}
