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
use super::timers::{HasSlot, Slot, Timers};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// How long the thread, woken by a job's ask, waits for more asks before it looks.
const GATHER: Duration = Duration::from_millis(1);
/// How long the thread lingers with no job before it ends.
const LINGER: Duration = Duration::from_secs(2);
/// The longest time between two looks at every job (a safety net: jobs ask for a look, and the
/// timer heap knows when each is due).
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
    jobs: Vec<Arc<Entry>>,
    /// Jobs that asked for a look ([`Registration::wake`]) since the thread last took them.
    woken: Vec<Arc<Entry>>,
    running: bool,
    /// The thread waits on the condition variable: only then does a job's ask wake it (a
    /// system call, and on a busy machine the woken thread may take the asking one's core).
    sleeping: bool,
    /// Set by `wake`, cleared by the thread: look at every job. No wake-up is lost between the
    /// thread's look and its sleep.
    kicked: bool,
}

/// One registered job, as the thread sees it.
struct Entry {
    job: Weak<dyn Background>,
    /// In `Registry::woken` (or about to be looked at): a job asking again adds nothing.
    asked: AtomicBool,
    /// When the job is next due, as the thread last learned it (only the thread touches it).
    slot: Slot,
}

impl HasSlot for Entry {
    fn slot(&self) -> &Slot {
        &self.slot
    }
}

/// A job's place with the thread, kept by the job: how it asks for a look at itself alone.
pub(crate) struct Registration(Arc<Entry>);

struct Uploader {
    registry: Mutex<Registry>,
    wake: Condvar,
}

fn uploader() -> Option<&'static Uploader> {
    static UPLOADER: PerProcess<Uploader> = PerProcess::new();
    UPLOADER.get(|| Uploader {
        registry: Mutex::new(Registry {
            jobs: Vec::new(),
            woken: Vec::new(),
            running: false,
            sleeping: false,
            kicked: false,
        }),
        wake: Condvar::new(),
    })
}

fn registry(u: &Uploader) -> MutexGuard<'_, Registry> {
    lock(&u.registry)
}

/// Adds a job; starts the thread if it is not running.
pub(crate) fn register(job: Weak<dyn Background>) -> Registration {
    let entry = Arc::new(Entry { job, asked: AtomicBool::new(false), slot: Slot::default() });
    // Without an uploader (forked too deep), logs still go up on flush and finish.
    let Some(u) = uploader() else { return Registration(entry) };
    let mut reg = registry(u);
    reg.jobs.push(entry.clone());
    if !reg.running {
        let spawned = std::thread::Builder::new().name("glr-log-uploader".into()).spawn(move || run(u));
        // Without a thread, logs still go up on flush and finish; nothing is lost.
        reg.running = spawned.is_ok();
    }
    // Not kicked: the thread learns a new job's time at its next look at every job (within
    // MAX_SLEEP) or when the job asks; taking 1,000 jobs must not make 1,000 looks at them all.
    drop(reg);
    Registration(entry)
}

impl Registration {
    /// This job has new work: the thread looks at it (at it alone) soon. A job that asked and
    /// was not looked at yet asks for nothing more, so a caller's appends make no system call
    /// and take no lock of the thread's until then. Never called with the job's lock held.
    pub(crate) fn wake(&self) {
        if self.0.asked.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(u) = uploader() else { return };
        let mut reg = registry(u);
        reg.woken.push(self.0.clone());
        let sleeping = reg.sleeping;
        drop(reg);
        if sleeping {
            u.wake.notify_one();
        }
    }
}

/// Look at every job now (for changes that are not one job's, or whose job is not at hand).
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
    let jobs: Vec<Arc<dyn Background>> = registry(u).jobs.iter().filter_map(|e| e.job.upgrade()).collect();
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

/// The thread: looks at the jobs that asked, the jobs whose time came (a timer heap, so that
/// 1,000 jobs cost a look each when due, not 1,000 looks each time one is), and every job when
/// kicked and at least every [`MAX_SLEEP`] (a safety net for a time that moved earlier without
/// the job asking); runs the turns due; sleeps until the next time.
fn run(u: &'static Uploader) {
    let mut timers: Timers<Entry> = Timers::new();
    let mut empty_since: Option<Instant> = None;
    let mut look_at_all = Instant::now();
    // Jobs that just had a turn: looked at again at once (their times changed).
    let mut turned: Vec<Arc<Entry>> = Vec::new();
    loop {
        let now = Instant::now();
        let mut looks = std::mem::take(&mut turned);
        let mut looked_at_all = false;
        {
            let mut reg = registry(u);
            looks.append(&mut reg.woken);
            if reg.kicked || now >= look_at_all {
                reg.kicked = false;
                reg.jobs.retain(|e| e.job.strong_count() > 0);
                if reg.jobs.is_empty() {
                    let since = *empty_since.get_or_insert(now);
                    if now.duration_since(since) >= LINGER {
                        reg.running = false;
                        return;
                    }
                } else {
                    empty_since = None;
                }
                // The lock is held only to copy the list: a job's first append and a new job
                // take it too, and must not wait while every job is looked at.
                looks.extend(reg.jobs.iter().cloned());
                look_at_all = now + MAX_SLEEP;
                looked_at_all = true;
            }
        }
        if looked_at_all {
            // A freed job's entry may be in the heap for a time far ahead: it must not hold the
            // job's memory until then (nor may entries left behind pile up).
            timers.retain(|e| e.job.strong_count() > 0);
        }
        looks.extend(timers.take_due(now));
        // A job both woken and due is looked at once.
        looks.sort_unstable_by_key(|e| Arc::as_ptr(e) as *const () as usize);
        looks.dedup_by(|a, b| Arc::ptr_eq(a, b));
        let mut due = Vec::new();
        for entry in looks {
            // Cleared before the look, which sees everything the job had when it asked: a job
            // asking after this asks again.
            entry.asked.store(false, Ordering::SeqCst);
            let Some(job) = entry.job.upgrade() else {
                timers.set(&entry, None);
                continue;
            };
            match job.next_due(now) {
                Some(t) if t <= now => {
                    timers.set(&entry, None);
                    due.push((entry, job));
                }
                t => timers.set(&entry, t),
            }
        }
        for (entry, job) in due {
            job.turn();
            turned.push(entry);
        }
        if turned.is_empty() {
            let mut reg = registry(u);
            if !reg.kicked && reg.woken.is_empty() {
                let until = timers.next().map_or(look_at_all, |t| t.min(look_at_all));
                reg.sleeping = true;
                let (mut reg, _) = wait_timeout(&u.wake, reg, until.saturating_duration_since(Instant::now()));
                reg.sleeping = false;
                let asked = !reg.woken.is_empty() && !reg.kicked;
                drop(reg);
                if asked {
                    #[cfg(test)]
                    tests::WAKE_UPS_BY_ASKS.fetch_add(1, Ordering::SeqCst);
                    // Woken by an ask: the asks of the next moment (a caller giving many jobs
                    // their first text) are taken with it, in one wake-up instead of one each.
                    std::thread::sleep(GATHER);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Never due; counts the thread's looks at it.
    struct Counted(AtomicUsize);

    impl Background for Counted {
        fn next_due(&self, now: Instant) -> Option<Instant> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Some(now + Duration::from_secs(3600))
        }
        fn turn(&self) {}
        fn drain(&self, _: Instant) -> Option<Error> {
            None
        }
    }

    fn looks(c: &Counted) -> usize {
        c.0.load(Ordering::SeqCst)
    }

    /// How often the thread was woken by asks (counted in `run`).
    pub(super) static WAKE_UPS_BY_ASKS: AtomicUsize = AtomicUsize::new(0);

    fn counted_jobs(n: usize) -> (Vec<Arc<Counted>>, Vec<Registration>) {
        let jobs: Vec<Arc<Counted>> = (0..n).map(|_| Arc::new(Counted(AtomicUsize::new(0)))).collect();
        let registrations = jobs
            .iter()
            .map(|c| {
                let c: Arc<dyn Background> = c.clone();
                register(Arc::downgrade(&c))
            })
            .collect();
        (jobs, registrations)
    }

    #[test]
    fn asks_in_quick_succession_wake_the_thread_a_few_times_not_once_each() {
        let (jobs, registrations) = counted_jobs(300);
        let u = uploader().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !registry(u).sleeping {
            assert!(Instant::now() < deadline, "the thread never slept");
            std::thread::sleep(Duration::from_millis(1));
        }
        let before: Vec<usize> = jobs.iter().map(|c| looks(c)).collect();
        let wake_ups = WAKE_UPS_BY_ASKS.load(Ordering::SeqCst);
        // As a caller giving many jobs their first text: an ask every 20 us, for 6 ms.
        for r in &registrations {
            r.wake();
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(20) {}
        }
        for (c, b) in jobs.iter().zip(&before) {
            while looks(c) == *b {
                assert!(Instant::now() < deadline, "a job that asked was not looked at");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // (Other tests' appends may wake it too meanwhile: a bound, not an exact count.)
        let woken = WAKE_UPS_BY_ASKS.load(Ordering::SeqCst) - wake_ups;
        assert!(woken < 40, "300 asks over 6 ms woke the thread {woken} times");
        drop(registrations);
    }

    #[test]
    fn a_job_that_asks_is_looked_at_alone() {
        let (others, registrations) = counted_jobs(2000);
        let (asking, mut asking_registration) = counted_jobs(1);
        let (asking, registration) = (&asking[0], asking_registration.pop().expect("one registration"));
        let before: Vec<usize> = others.iter().map(|c| looks(c)).collect();
        let asks = 200;
        let deadline = Instant::now() + Duration::from_secs(20);
        for _ in 0..asks {
            let seen = looks(asking);
            registration.wake();
            while looks(asking) == seen {
                assert!(Instant::now() < deadline, "a job that asked was not looked at");
                std::thread::yield_now();
            }
        }
        // Every job is looked at besides when kicked (other tests do) and once a second: far
        // fewer times than the job that asked, which a look at every job per ask would not be.
        let most = others.iter().zip(&before).map(|(c, b)| looks(c) - b).max().unwrap();
        assert!(most < asks / 4, "the other jobs were looked at up to {most} times for {asks} asks");
        drop(registrations);
    }
}
