//! Issue 16: the tail of the append latency: p99.9 in steady state on one job, and the worst
//! append while the process holds 1,000 live jobs (the background uploader walking them meanwhile).

use super::{arg_str, arg_u, Result};
use crate::capi::{Job, Runner};
use crate::content;
use crate::proc::{thread_events, FreshPage};
use crate::stats::percentiles_ns;
use serde_json::{json, Value};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The busy loop timed between the appends of `append_max_jobs` (about an append's median there).
const NOOP: Duration = Duration::from_micros(1);
/// The longest busy loop of `append_max_jobs`'s second probe, which lasts as long as the append
/// before it: above this an append was stalled, not working, and the loop need not copy that.
const MATCHED_CAP: Duration = Duration::from_micros(20);
/// The page size whose pages `append_max_jobs` touches one byte of (4 KiB: the smallest).
const PAGE: usize = 4096;
/// The target for the worst append (issue 16): how many appends and loops took longer.
const OVER_NS: u64 = 100_000;

/// One of `append_max_jobs`'s probes of the machine: the times of one thing done after each
/// append, all of them and those during which the thread went through nothing (a page fault
/// allowed where the thing is one).
#[derive(Default)]
struct Probe {
    all: Vec<u64>,
    clean: Vec<u64>,
}

impl Probe {
    fn time(&mut self, faults: bool, f: impl FnOnce()) {
        let before = thread_events();
        let t = Instant::now();
        f();
        let ns = t.elapsed().as_nanos() as u64;
        let after = thread_events();
        self.all.push(ns);
        let scheduled = after.preempted == before.preempted && after.waited == before.waited;
        if (faults && scheduled) || after == before {
            self.clean.push(ns);
        }
    }

    /// `extra` with how many there were, the worst, the same of the clean ones, and how many
    /// took longer than the target.
    fn report(&self, mut extra: Value) -> Value {
        let max = |v: &[u64]| v.iter().copied().max().unwrap_or(0);
        let over = self.all.iter().filter(|&&ns| ns > OVER_NS).count();
        let figures = json!({
            "n": self.all.len(), "max_ns": max(&self.all), "clean_n": self.clean.len(),
            "clean_max_ns": max(&self.clean), "over_100us": over,
        });
        if let (Some(e), Value::Object(f)) = (extra.as_object_mut(), figures) {
            e.extend(f);
        }
        extra
    }
}

fn timed_append(job: &Job, line: &[u8], samples: &mut Vec<u64>) -> Result<()> {
    let t = Instant::now();
    let st = job.append_raw(line);
    samples.push(t.elapsed().as_nanos() as u64);
    if st != 0 {
        return Err(format!("append: status {st}"));
    }
    Ok(())
}

/// `runs` jobs, one after the other (a separate server process, no delay): `warm` untimed
/// appends of 100-byte lines (the log's first pages), then `n` appends each timed alone,
/// back to back as in section 2; percentiles per run.
pub fn append_p999(a: &Value) -> Result<Value> {
    let (url, reg) = (arg_str(a, "url")?, arg_str(a, "reg")?);
    let (runs, warm, n) = (arg_u(a, "runs")?, arg_u(a, "warm")?, arg_u(a, "n")?);
    let lines: Vec<Vec<u8>> = (0..warm + n).map(|i| content::line(i, 100)).collect();
    let runner = Runner::register(&url, &reg)?;
    let mut out = Vec::new();
    for _ in 0..runs {
        let job = runner.take_job()?;
        for l in &lines[..warm] {
            job.append(l)?;
        }
        let mut samples = Vec::with_capacity(n);
        for l in &lines[warm..] {
            timed_append(&job, l, &mut samples)?;
        }
        job.set_success()?;
        let p = percentiles_ns(&mut samples, &[50.0, 99.0, 99.9, 100.0]);
        out.push(json!({"job": job.id(), "p50_ns": p[0], "p99_ns": p[1], "p999_ns": p[2], "max_ns": p[3]}));
    }
    Ok(json!({"runs": out, "log_bytes": (warm + n) * 100}))
}

/// A thread asleep on a condition variable, as the library's uploader sleeps between turns: what
/// waking it costs the thread that wakes it (the flag set under the lock, then the notify: the
/// system call, which on a virtual machine also interrupts the other virtual CPU), timed as an
/// append is timed. The first append of a job's new text wakes the uploader so.
struct Sleeper {
    woken: Arc<(Mutex<Option<bool>>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sleeper {
    fn new() -> Sleeper {
        let woken = Arc::new((Mutex::new(Some(false)), Condvar::new()));
        let theirs = woken.clone();
        let thread = std::thread::spawn(move || {
            let (flag, cv) = &*theirs;
            let mut f = flag.lock().unwrap();
            // Some(true): woken; None: told to end.
            while let Some(woken) = *f {
                if woken {
                    *f = Some(false);
                }
                f = cv.wait(f).unwrap();
            }
        });
        Sleeper { woken, thread: Some(thread) }
    }

    /// Wakes the thread (asleep since its last wake-up); the waker's time.
    fn wake(&self) -> u64 {
        let (flag, cv) = &*self.woken;
        let t = Instant::now();
        *flag.lock().unwrap() = Some(true);
        cv.notify_one();
        t.elapsed().as_nanos() as u64
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        *self.woken.0.lock().unwrap() = None;
        self.woken.1.notify_one();
        let _ = self.thread.take().map(std::thread::JoinHandle::join);
    }
}

/// One process takes `jobs` jobs (a separate server process) and gives each a first 100-byte
/// line (untimed: a job's first append registers it with the uploader); then `rounds` rounds of
/// one timed append to every job, with `pause_ms` between rounds so that the run spans several
/// turns of the background uploader. The worst append over the run, and percentiles.
pub fn append_max_jobs(a: &Value) -> Result<Value> {
    let (url, reg) = (arg_str(a, "url")?, arg_str(a, "reg")?);
    let (n, rounds, pause_ms) = (arg_u(a, "jobs")?, arg_u(a, "rounds")?, arg_u(a, "pause_ms")?);
    let runner = Runner::register(&url, &reg)?;
    let first = content::line(0, 100);
    let mut jobs = Vec::with_capacity(n);
    for _ in 0..n {
        let job = runner.take_job()?;
        job.append(&first)?;
        jobs.push(job);
    }
    let lines: Vec<Vec<u8>> = (1..=rounds).map(|i| content::line(i, 100)).collect();
    let mut samples = Vec::with_capacity(n * rounds);
    // Each append's sample also goes into one of these by what its thread went through
    // meanwhile (getrusage around it, outside the timed part): nothing, a page fault (major
    // ones apart: a page read back from its file), a wait
    // (a lock), or losing its core to another thread (on 2 cores the uploader, the HTTP thread
    // and the server share them with the caller), which no code of the append can avoid.
    let (mut clean, mut faulted, mut waited, mut preempted) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut major_faulted = Vec::new();
    let (mut noop, mut matched, mut touch, mut fault) =
        (Probe::default(), Probe::default(), Probe::default(), Probe::default());
    let mut pages = vec![1u8; n * PAGE];
    let (sleeper, mut wakes) = (Sleeper::new(), Vec::new());
    // Where in its round each append over the target came (0: the round's first, after the pause).
    let mut over_at = Vec::new();
    let t = Instant::now();
    for l in &lines {
        for (at, job) in jobs.iter().enumerate() {
            let before = thread_events();
            timed_append(job, l, &mut samples)?;
            let after = thread_events();
            let ns = *samples.last().expect("one sample per append");
            if ns > OVER_NS {
                over_at.push(at);
            }
            let class = if after.preempted != before.preempted {
                &mut preempted
            } else if after.waited != before.waited {
                &mut waited
            } else if after.major_faults != before.major_faults {
                &mut major_faulted
            } else if after.minor_faults != before.minor_faults {
                &mut faulted
            } else {
                &mut clean
            };
            class.push(ns);
            // The machine's own floor, measured the same way in the same moments: a busy loop
            // of about an append's time, which calls nothing and touches no memory.
            noop.time(false, || {
                let t = Instant::now();
                while t.elapsed() < NOOP {}
            });
            // The same loop, as long as the append just timed (up to MATCHED_CAP): exposed to the
            // machine's stalls for as long as that append was, doing none of its work.
            let want = Duration::from_nanos(ns).min(MATCHED_CAP);
            matched.time(false, || {
                let t = Instant::now();
                while t.elapsed() < want {}
            });
            // And memory as an append touches it: one byte of a page of this job's own (mapped
            // before the run), last touched a round ago, as the job's memory was.
            let byte = &mut pages[at * PAGE];
            touch.time(false, || *byte = std::hint::black_box(byte.wrapping_add(1)));
            // And a page fault, as an append takes that grows a short log into fresh memory: the
            // first write to a page just mapped (mapped and unmapped outside the timed part).
            let mut page = FreshPage::map().ok_or("mmap of one page failed")?;
            fault.time(true, || page.write());
            drop(page);
        }
        // Halfway through the pause (the sleeper, the uploader and the caller all asleep), one
        // wake-up of a sleeping thread: the machine's cost of what a round's first append does.
        let half = Duration::from_millis(pause_ms as u64) / 2;
        std::thread::sleep(half);
        wakes.push(sleeper.wake());
        std::thread::sleep(half);
    }
    let window = t.elapsed().as_secs_f64();
    let max = |v: &[u64]| v.iter().copied().max().unwrap_or(0);
    let classes = json!({
        "clean": {"n": clean.len(), "max_ns": max(&clean)},
        "faulted": {"n": faulted.len(), "max_ns": max(&faulted)},
        "major_faulted": {"n": major_faulted.len(), "max_ns": max(&major_faulted)},
        "waited": {"n": waited.len(), "max_ns": max(&waited)},
        "preempted": {"n": preempted.len(), "max_ns": max(&preempted)},
    });
    // How often each took longer than the target: rare stalls of the machine hit either.
    let over = |v: &[u64]| v.iter().filter(|&&ns| ns > OVER_NS).count();
    let noop = noop.report(json!({"loop_ns": NOOP.as_nanos() as u64}));
    let matched = matched.report(json!({"cap_ns": MATCHED_CAP.as_nanos() as u64}));
    let (touch, fault) = (touch.report(json!({})), fault.report(json!({})));
    std::hint::black_box(&pages);
    let wake = json!({"n": wakes.len(), "max_ns": max(&wakes), "over_100us": over(&wakes)});
    drop(sleeper);
    let appends_over = over(&samples);
    for job in &jobs {
        job.set_success()?;
    }
    let ids: Vec<i64> = jobs.iter().map(Job::id).collect();
    let p = percentiles_ns(&mut samples, &[50.0, 99.0, 99.9, 100.0]);
    Ok(json!({
        "jobs": ids, "appends": samples.len(), "window_secs": window,
        "p50_ns": p[0], "p99_ns": p[1], "p999_ns": p[2], "max_ns": p[3], "by_event": classes, "noop": noop, "matched": matched, "over_100us": appends_over, "over_at": over_at, "wake": wake, "touch": touch, "fault": fault,
    }))
}
