//! The background log uploader: one thread for the whole process (not one per job). It sends
//! each job's new log text promptly after the first append, then at the interval GitLab asks
//! for, and keeps silent jobs alive. It knows nothing of jobs: it schedules [`Background`] work
//! (a job implements it). It holds only weak references, so freeing a job stops its uploads,
//! and the thread ends by itself shortly after the last job is gone.

use super::sync::{lock, wait_timeout};
use std::sync::{Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Work the background thread does now and then for one registered object.
pub trait Background: Send + Sync {
    /// When `turn` should next run (None: nothing to do until woken).
    fn next_due(&self, now: Instant) -> Option<Instant>;
    /// Does what is due. Must not block on a caller for long: try locks, do not wait for them.
    fn turn(&self);
}

/// How long the thread lingers with no job before it ends.
const LINGER: Duration = Duration::from_secs(2);
/// The longest sleep between two looks (a safety net; wake-ups normally come sooner).
const MAX_SLEEP: Duration = Duration::from_secs(1);

struct Registry {
    jobs: Vec<Weak<dyn Background>>,
    running: bool,
    /// Set by `wake`, cleared by the thread: no wake-up is lost between its look and its sleep.
    kicked: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { jobs: Vec::new(), running: false, kicked: false });
static WAKE: Condvar = Condvar::new();

fn registry() -> MutexGuard<'static, Registry> {
    lock(&REGISTRY)
}

/// Adds a job; starts the thread if it is not running.
pub(crate) fn register(job: Weak<dyn Background>) {
    let mut reg = registry();
    reg.jobs.push(job);
    if !reg.running {
        let spawned = std::thread::Builder::new().name("glr-log-uploader".into()).spawn(run);
        // Without a thread, logs still go up on flush and finish; nothing is lost.
        reg.running = spawned.is_ok();
    }
}

/// A job has new log text: look now. Never called with a job's lock held.
pub(crate) fn wake() {
    registry().kicked = true;
    WAKE.notify_one();
}

fn run() {
    let mut empty_since: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        let mut next = now + MAX_SLEEP;
        {
            let mut reg = registry();
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
            for job in reg.jobs.iter().filter_map(Weak::upgrade) {
                match job.next_due(now) {
                    Some(t) if t <= now => due.push(job),
                    Some(t) => next = next.min(t),
                    None => {}
                }
            }
        }
        let busy = !due.is_empty();
        for job in due {
            job.turn();
        }
        if !busy {
            let reg = registry();
            if !reg.kicked {
                let wait = next.saturating_duration_since(Instant::now());
                let _ = wait_timeout(&WAKE, reg, wait);
            }
        }
    }
}
