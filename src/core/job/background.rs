//! What the background uploader does for a job: like the official runner's trace loop, a tick
//! at GitLab's interval uploads what is new, or, when nothing reached GitLab for the keep-alive
//! interval, sends a keep-alive (also for watchers, which never upload log text). And, for
//! `glr_shutdown`, everything pending at once.

use super::shared::{JobMut, JobShared, Patches, Role};
use crate::core::diag;
use crate::core::error::{Error, ErrorKind};
use crate::core::http::Call;
use crate::core::sync::lock;
use crate::core::uploader::Background;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The background uploader sends at most this many 1 MiB patches per job per turn, so one job's
/// backlog does not starve the others.
const PATCHES_PER_TURN: usize = 4;
/// Shortest pause between two background turns of one job.
const MIN_TURN_GAP: Duration = Duration::from_secs(1);
/// Longest pause between two background attempts after failures.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);
/// Retries of a failed commit (one attempt per background turn): the first ones this often,
/// then backing off to at most `MAX_COMMIT_BACKOFF`. GitLab gives a job to another runner when
/// it is not acknowledged within 2 minutes of its pickup, so many tries fit in.
const QUICK_COMMIT_TRIES: u32 = 10;
const QUICK_COMMIT_GAP: Duration = Duration::from_millis(500);
const MAX_COMMIT_BACKOFF: Duration = Duration::from_secs(8);
/// One background turn takes at most this long (each request also has its own timeout).
const TURN_LIMIT: Duration = Duration::from_secs(10 * 60);

impl JobShared {
    /// The bounds of the uploader's work for this job: ended at once when the job is freed, one
    /// attempt per request (the uploader serves every job: a retry waits for the job's next
    /// turn, `failures` and `not_before` space them), none once a hand-over waits.
    fn background_call(&self) -> Call {
        Call::within(TURN_LIMIT)
            .interruptible(&self.closing, "the job was freed")
            .stop_retrying_when(&self.handing_over)
            .one_attempt()
    }

    /// Bytes appended but not yet acknowledged, for an owner.
    fn pending_bytes(&self) -> usize {
        let m = lock(&self.inner);
        if m.role == Role::Owner {
            m.trace.len() - m.trace.acknowledged()
        } else {
            0
        }
    }
}

/// Whether a whole PATCH waits (a full 1 MiB chunk, or one ending where a block of the log
/// ends): it goes up at once rather than at GitLab's interval, so a long log's upload overlaps
/// its writing instead of all of it waiting for the final update. GitLab gets no more requests
/// than at its interval (chunks are the same), only sooner.
fn full_chunk_waiting(m: &JobMut) -> bool {
    m.role == Role::Owner && m.trace.whole_chunk_waiting()
}

/// Whether the job's new text is due at GitLab's interval (the first text at once).
fn interval_due(m: &JobMut, now: Instant) -> bool {
    m.trace.acknowledged() == 0 || m.last_attempt.is_none_or(|t| t + m.update_interval <= now)
}

impl Background for JobShared {
    fn next_due(&self, now: Instant) -> Option<Instant> {
        if self.is_closed() || self.handing_over.load(Ordering::Acquire) || self.check_local().is_err() {
            return None;
        }
        let m = lock(&self.inner);
        if !m.state.is_active() {
            return None;
        }
        if !m.committed {
            // Commit until acknowledged, soon and often (see MAX_COMMIT_BACKOFF).
            let gap = if m.failures < QUICK_COMMIT_TRIES {
                QUICK_COMMIT_GAP
            } else {
                Duration::from_secs(1u64 << (m.failures - QUICK_COMMIT_TRIES).min(6)).min(MAX_COMMIT_BACKOFF)
            };
            let due = m.last_attempt.map_or(now, |t| t + gap);
            return Some(m.not_before.map_or(due, |nb| due.max(nb)));
        }
        let owner = m.role == Role::Owner;
        // New log text goes up at GitLab's update interval; a keep-alive is due once the job was
        // silent for the keep-alive interval, whatever that interval (watchers only ever send
        // keep-alives, and must learn cancels at the pace they asked for).
        let due = if owner && !m.trace.all_acknowledged() {
            if m.trace.acknowledged() == 0 {
                // The job's first text goes up promptly (then at GitLab's interval), whatever
                // the commit or a keep-alive did just before.
                now
            } else {
                m.last_attempt.map_or(now, |t| t + m.update_interval)
            }
        } else {
            m.last_contact + m.keepalive
        };
        // Never two turns within a second (but for whole PATCHes waiting), and back off after
        // failures.
        let gap = if m.failures > 0 {
            Duration::from_secs(1u64 << m.failures.min(6)).min(MAX_RETRY_BACKOFF)
        } else if full_chunk_waiting(&m) && !m.caller_sending {
            return Some(m.not_before.map_or(now, |nb| now.max(nb)));
        } else {
            MIN_TURN_GAP
        };
        let due = m.last_attempt.map_or(due, |t| due.max(t + gap));
        Some(m.not_before.map_or(due, |nb| due.max(nb)))
    }

    fn turn(&self) {
        let Some(_net) = self.try_lock_net() else {
            // A caller is flushing or finishing: it does the work; look again later.
            #[cfg(test)]
            tests::TURNS_WHILE_A_CALLER_SENDS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut m = lock(&self.inner);
            m.last_attempt = Some(Instant::now());
            m.caller_sending = true;
            return;
        };
        let (active, committed, has_data, patches, keepalive_due) = {
            let mut m = lock(&self.inner);
            m.caller_sending = false;
            let now = Instant::now();
            (
                m.state.is_active(),
                m.committed,
                m.role == Role::Owner && !m.trace.all_acknowledged(),
                // Early for whole PATCHes only: the log's unfinished end waits for the interval.
                if interval_due(&m, now) { Patches::AtMost(PATCHES_PER_TURN) } else { Patches::Full(PATCHES_PER_TURN) },
                m.last_contact.elapsed() >= m.keepalive,
            )
        };
        if !active || self.is_closed() {
            return;
        }
        let call = self.background_call();
        let result = if !committed {
            self.commit_locked(&call)
        } else if has_data {
            self.upload(patches, &call)
        } else if keepalive_due {
            self.touch(&call)
        } else {
            lock(&self.inner).last_attempt = Some(Instant::now());
            return;
        };
        let mut m = lock(&self.inner);
        m.last_attempt = Some(Instant::now());
        match result {
            Ok(()) => m.failures = 0,
            Err(e) => {
                m.failures = m.failures.saturating_add(1);
                drop(m);
                if !matches!(e.kind, ErrorKind::JobCanceled | ErrorKind::Interrupted | ErrorKind::NotOwner) {
                    diag::warn(&format!("job {}: background log upload failed (will retry): {e}", self.id()));
                }
            }
        }
    }

    fn drain(&self, deadline: Instant) -> Option<Error> {
        if self.is_closed() || self.check_local().is_err() || !self.state().is_active() || self.pending_bytes() == 0 {
            return None;
        }
        let call = Call::within(deadline.saturating_duration_since(Instant::now()))
            .interruptible(&self.closing, "the job was freed");
        let result = self.lock_net(&call).and_then(|_net| self.upload(Patches::All, &call));
        let left = self.pending_bytes();
        match result {
            Ok(()) if left == 0 => None,
            Ok(()) => Some(Error::new(ErrorKind::Http, format!("job {}: {left} bytes not acknowledged", self.id()))),
            Err(e) => Some(Error::new(e.kind, format!("job {}: {left} bytes not acknowledged ({e})", self.id()))),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::atomic::AtomicUsize;

    /// Background turns that found a caller sending, in all jobs of the process.
    pub(in crate::core::job) static TURNS_WHILE_A_CALLER_SENDS: AtomicUsize = AtomicUsize::new(0);
}
