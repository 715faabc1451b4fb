//! What belongs to one process: after `fork()`, a child has copies of the parent's memory but
//! none of its threads. The library's process-wide machinery (the HTTP runtime and its pooled
//! connections, the background uploader, the event thread) must then be built afresh in the
//! child, and the parent's copies never touched again: their locks may have been held by a
//! thread that does not exist in the child, and their connections are the parent's.
//!
//! A fork handler (registered by the ffi layer with `pthread_atfork`) bumps the generation in
//! the child; each [`PerProcess`] value is kept per generation, so the child builds its own on
//! first use. Nothing here takes a lock that a parent's thread could have held.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// How many fork()s deep (without exec) one lineage of processes may go.
pub const MAX_GENERATIONS: usize = 64;

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// This process's generation: 0 in the process that loaded the library, parent + 1 in a child.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Called in the child right after fork() (async-signal-safe: one atomic add).
pub fn after_fork_in_child() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// A process-wide value built on first use in each process of a fork lineage.
pub struct PerProcess<T> {
    slots: [OnceLock<T>; MAX_GENERATIONS],
}

impl<T> PerProcess<T> {
    pub const fn new() -> Self {
        PerProcess { slots: [const { OnceLock::new() }; MAX_GENERATIONS] }
    }

    /// This process's value, built by `init` on first use; None when forked deeper than
    /// [`MAX_GENERATIONS`].
    pub fn get(&self, init: impl FnOnce() -> T) -> Option<&T> {
        self.get_in(generation(), init)
    }

    fn get_in(&self, generation: u64, init: impl FnOnce() -> T) -> Option<&T> {
        let slot = self.slots.get(usize::try_from(generation).ok()?)?;
        Some(slot.get_or_init(init))
    }
}

impl<T> Default for PerProcess<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_generation_builds_its_own_value() {
        // (Not through after_fork_in_child: that would turn the other tests' jobs into a
        // parent's jobs mid-test.)
        let values: PerProcess<u64> = PerProcess::new();
        assert_eq!(values.get_in(0, || 100), Some(&100));
        assert_eq!(values.get_in(0, || 0), Some(&100), "built once");
        assert_eq!(values.get_in(1, || 7), Some(&7), "a child builds its own");
        assert_eq!(values.get_in(0, || 0), Some(&100), "the parent's stays");
        assert_eq!(values.get_in(MAX_GENERATIONS as u64, || 1), None);
    }
}
