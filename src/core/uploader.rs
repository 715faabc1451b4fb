//! The background log uploader: one thread for the whole process (not one per job). It sends
//! each job's new log text promptly after the first append, then at the interval GitLab asks
//! for, and keeps silent jobs (and watched ones) alive. It knows nothing of jobs: it schedules
//! [`Background`] work (a job implements it). It holds only weak references, so freeing a job
//! stops its uploads, and the thread ends by itself shortly after the last job is gone.
//!
//! Per process (`process::PerProcess`): a fork()ed child has a registry and a thread of its own,
//! in which the parent's jobs do not appear.

use super::error::{Error, Result};
use super::process::PerProcess;
use super::sync::{lock, wait_timeout};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// How long the thread lingers with no job before it ends.
const LINGER: Duration = Duration::from_secs(2);
/// The longest sleep between two looks (a safety net; wake-ups normally come sooner).
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Work the background thread does now and then for one registered object.
pub trait Background: Send + Sync {
    /// When `turn` should next run (None: nothing to do until woken).
    fn next_due(&self, now: Instant) -> Option<Instant>;
    /// Does what is due. Must not block on a caller for long: try locks, do not wait for them.
    fn turn(&self);
    /// Uploads everything pending before `deadline` (for `shutdown`); None when nothing is
    /// left, else an error saying what is left ("job 42: 1200 bytes not acknowledged (...)").
    fn drain(&self, deadline: Instant) -> Option<Error>;
}

struct Registry {
    jobs: Vec<Weak<dyn Background>>,
    running: bool,
    /// Set by `wake`, cleared by the thread: no wake-up is lost between its look and its sleep.
    kicked: bool,
}

struct Uploader {
    registry: Mutex<Registry>,
    wake: Condvar,
}

fn uploader() -> Option<&'static Uploader> {
    static UPLOADER: PerProcess<Uploader> = PerProcess::new();
    UPLOADER.get(|| Uploader {
        registry: Mutex::new(Registry { jobs: Vec::new(), running: false, kicked: false }),
        wake: Condvar::new(),
    })
}

fn registry(u: &Uploader) -> MutexGuard<'_, Registry> {
    lock(&u.registry)
}

/// Adds a job; starts the thread if it is not running.
pub(crate) fn register(job: Weak<dyn Background>) {
    // Without an uploader (forked too deep), logs still go up on flush and finish.
    let Some(u) = uploader() else { return };
    let mut reg = registry(u);
    reg.jobs.push(job);
    if !reg.running {
        let spawned = std::thread::Builder::new().name("glr-log-uploader".into()).spawn(move || run(u));
        // Without a thread, logs still go up on flush and finish; nothing is lost.
        reg.running = spawned.is_ok();
    }
}

/// A job has new work: look now. Never called with a job's lock held.
pub(crate) fn wake() {
    let Some(u) = uploader() else { return };
    registry(u).kicked = true;
    u.wake.notify_one();
}

/// Uploads what every live job of this process has pending, within `limit`. Ok when GitLab
/// has it all; else an error of the first job's kind (`Timeout` when time ran out) listing
/// what is left of which jobs.
pub fn shutdown(limit: Duration) -> Result<()> {
    let Some(u) = uploader() else { return Ok(()) };
    let deadline = Instant::now().checked_add(limit).unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 40));
    let jobs: Vec<Arc<dyn Background>> = registry(u).jobs.iter().filter_map(Weak::upgrade).collect();
    let left: Vec<Error> = jobs.iter().filter_map(|j| j.drain(deadline)).collect();
    match left.first() {
        None => Ok(()),
        Some(first) => {
            let list: Vec<&str> = left.iter().map(|e| e.message.as_str()).collect();
            Err(Error::new(
                first.kind,
                format!(
                    "{} of {} jobs still have log text GitLab has not acknowledged: {}",
                    left.len(),
                    jobs.len(),
                    list.join("; ")
                ),
            ))
        }
    }
}

fn run(u: &'static Uploader) {
    let mut empty_since: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        let mut next = now + MAX_SLEEP;
        // The registry lock is held only to copy the list: a job's first append (`wake`) and a
        // new job (`register`) take it too, and must not wait while every job is looked at.
        let jobs: Vec<Arc<dyn Background>> = {
            let mut reg = registry(u);
            reg.kicked = false;
            reg.jobs.retain(|w| w.strong_count() > 0);
            if reg.jobs.is_empty() {
                let since = *empty_since.get_or_insert(now);
                if now.duration_since(since) >= LINGER {
                    reg.running = false;
                    return;
                }
            } else {
                empty_since = None;
            }
            reg.jobs.iter().filter_map(Weak::upgrade).collect()
        };
        for job in jobs {
            match job.next_due(now) {
                Some(t) if t <= now => due.push(job),
                Some(t) => next = next.min(t),
                None => {}
            }
        }
        let busy = !due.is_empty();
        for job in due {
            job.turn();
        }
        if !busy {
            let reg = registry(u);
            if !reg.kicked {
                let wait = next.saturating_duration_since(Instant::now());
                let _ = wait_timeout(&u.wake, reg, wait);
            }
        }
    }
}
