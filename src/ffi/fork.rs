//! fork(): a handler tells the core it is in a child, which then builds its own connections and
//! background threads and treats the parent's jobs as the parent's (see `core::process`). A
//! leaf, so the panic boundary can register it without depending on anything else.

use crate::core::process;
use std::sync::Once;

/// Runs in a fork()ed child before fork() returns there: async-signal-safe (one atomic add).
extern "C" fn in_forked_child() {
    process::after_fork_in_child();
}

/// Registers the fork handler once per process image (called on entry to every function, so
/// it is in place before the library starts any thread).
pub(crate) fn watch_fork() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only does an atomic add; the return value (ENOMEM)
        // leaves fork() as it was, which loses nothing in processes that do not fork.
        unsafe {
            libc::pthread_atfork(None, None, Some(in_forked_child));
        }
    });
}
