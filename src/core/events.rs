//! The event thread: every user callback (log lines, cancel notifications) runs here, one at a
//! time, in the order the events happened, and never with a library lock held. So a callback
//! may call back into the library (flush, finish, replace callbacks...), a slow callback delays
//! only other callbacks (never an upload), and the thread that noticed an event (the background
//! uploader, a caller inside a request) never waits for user code.
//!
//! One thread per process (`process::PerProcess`: a fork()ed child starts its own), started on
//! the first event and ended after a while without any.

use super::process::PerProcess;
use super::sync::{lock, wait_timeout};
use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Log lines waiting beyond this many are dropped (counted, and reported once the queue
/// drains): a callback slower than the library's logging must not make its memory grow without
/// bound. Other events are never dropped.
const MAX_QUEUED_LOG_LINES: usize = 10_000;
/// How long the thread waits for new events before it ends.
const LINGER: Duration = Duration::from_secs(5);

type Task = Box<dyn FnOnce() + Send>;

struct Queue {
    tasks: VecDeque<(Task, bool)>,
    queued_log_lines: usize,
    dropped_log_lines: u64,
    /// Tasks taken by the thread so far (the barrier waits for its own to be reached).
    done: u64,
    posted: u64,
    running: bool,
}

struct Dispatcher {
    queue: Mutex<Queue>,
    /// Signalled when a task is posted (to the thread) and when one is done (to barriers).
    changed: Condvar,
}

fn dispatcher() -> Option<&'static Dispatcher> {
    static DISPATCHER: PerProcess<Dispatcher> = PerProcess::new();
    DISPATCHER.get(|| Dispatcher {
        queue: Mutex::new(Queue {
            tasks: VecDeque::new(),
            queued_log_lines: 0,
            dropped_log_lines: 0,
            done: 0,
            posted: 0,
            running: false,
        }),
        changed: Condvar::new(),
    })
}

thread_local! {
    static ON_EVENT_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is the event thread (a callback is running on it).
pub fn on_event_thread() -> bool {
    ON_EVENT_THREAD.try_with(Cell::get).unwrap_or(false)
}

/// Queues `task` to run on the event thread. Never dropped.
pub fn post(task: impl FnOnce() + Send + 'static) {
    enqueue(Box::new(task), false);
}

/// Queues a log line's delivery; dropped (and counted) when too many are waiting.
pub fn post_log_line(task: impl FnOnce() + Send + 'static) {
    enqueue(Box::new(task), true);
}

/// A function that reports dropped log lines, set by `diag` (which owns the sink): the event
/// thread calls it with the count once the queue has room again.
static DROP_REPORTER: Mutex<Option<fn(u64)>> = Mutex::new(None);

pub fn set_drop_reporter(report: fn(u64)) {
    *lock(&DROP_REPORTER) = Some(report);
}

fn enqueue(task: Task, is_log_line: bool) {
    let Some(d) = dispatcher() else {
        // Forked too deep to have a thread of our own: run it here (no lock is held by us).
        run(task);
        return;
    };
    let mut q = lock(&d.queue);
    if is_log_line {
        if q.queued_log_lines >= MAX_QUEUED_LOG_LINES {
            q.dropped_log_lines += 1;
            return;
        }
        q.queued_log_lines += 1;
    }
    q.tasks.push_back((task, is_log_line));
    q.posted += 1;
    if !q.running {
        let spawned = std::thread::Builder::new().name("glr-events".into()).spawn(move || event_loop(d));
        match spawned {
            Ok(_) => q.running = true,
            Err(_) => {
                // No thread to be had: run what is queued here, after releasing the queue.
                let tasks: Vec<_> = q.tasks.drain(..).collect();
                q.done += tasks.len() as u64;
                q.queued_log_lines = 0;
                drop(q);
                for (t, _) in tasks {
                    run(t);
                }
                return;
            }
        }
    }
    drop(q);
    d.changed.notify_all();
}

fn run(task: Task) {
    // A panicking callback must not take the event thread (and every later event) with it.
    let _ = catch_unwind(AssertUnwindSafe(task));
}

fn event_loop(d: &'static Dispatcher) {
    let _ = ON_EVENT_THREAD.try_with(|f| f.set(true));
    let mut q = lock(&d.queue);
    loop {
        if let Some((task, is_log_line)) = q.tasks.pop_front() {
            if is_log_line {
                q.queued_log_lines -= 1;
            }
            let dropped = if q.tasks.is_empty() { std::mem::take(&mut q.dropped_log_lines) } else { 0 };
            drop(q);
            run(task);
            if dropped > 0 {
                let reporter = *lock(&DROP_REPORTER);
                if let Some(report) = reporter {
                    run(Box::new(move || report(dropped)));
                }
            }
            q = lock(&d.queue);
            q.done += 1;
            d.changed.notify_all();
            continue;
        }
        let (guard, timeout) = wait_timeout(&d.changed, q, LINGER);
        q = guard;
        if timeout.timed_out() && q.tasks.is_empty() {
            q.running = false;
            return;
        }
    }
}

/// Waits until everything posted before this call has run (its callbacks returned). Returns at
/// once on the event thread itself (a callback waiting for itself would never return).
pub fn barrier() {
    if on_event_thread() {
        return;
    }
    let Some(d) = dispatcher() else { return };
    let mut q = lock(&d.queue);
    let target = q.posted;
    while q.done < target {
        q = wait_timeout(&d.changed, q, Duration::from_millis(100)).0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn tasks_run_in_order_off_the_caller_s_thread() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let caller = std::thread::current().id();
        for i in 0..20 {
            let seen = seen.clone();
            post(move || {
                assert!(on_event_thread());
                seen.lock().unwrap().push((i, std::thread::current().id() != caller));
            });
        }
        barrier();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(), (0..20).collect::<Vec<_>>());
        assert!(seen.iter().all(|(_, elsewhere)| *elsewhere));
        assert!(!on_event_thread());
    }

    #[test]
    fn a_task_may_post_and_wait_without_deadlock_and_a_panic_is_contained() {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        post(move || {
            let c2 = c.clone();
            post(move || {
                c2.fetch_add(1, Ordering::SeqCst);
            });
            barrier(); // returns at once on the event thread
            c.fetch_add(1, Ordering::SeqCst);
        });
        post(|| panic!("a callback's bug"));
        barrier();
        barrier();
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }
}
