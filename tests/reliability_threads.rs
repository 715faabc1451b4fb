//! 32 threads share one runner and one job: they append lines, read properties, flush, dump
//! (to strings and files), check the runner and declare features, while the test server injects
//! faults (5xx, 429, dropped connections, answers lost after the PATCH was stored, delays). No
//! call may panic or fail with anything but a network/HTTP error, and after the job is finished
//! the trace GitLab stored holds every appended line exactly once, with a matching checksum.
//!
//! ThreadSanitizer for Rust needs a nightly compiler, which CI does not have: see RELIABILITY.md
//! for what covers data races instead.

mod common;

use common::*;
use gitlab_runner_api::ffi::job::*;
use gitlab_runner_api::ffi::runner::*;
use gitlab_runner_api::ffi::status::*;
use gitlab_runner_api::ffi::strings::glr_string_free;
use glr_testserver::{Endpoint, Fault, FaultKind};
use serde_json::json;
use std::collections::BTreeMap;
use std::ffi::{c_char, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const THREADS: usize = 32;
const LINES_PER_THREAD: usize = 150;
const FAULTS: usize = 60;

/// Handles shared by the threads (the C API promises they may be used concurrently).
#[derive(Clone, Copy)]
struct Shared {
    runner: usize,
    job: usize,
}

impl Shared {
    fn runner(self) -> *mut glr_runner {
        self.runner as *mut glr_runner
    }
    fn job(self) -> *mut glr_job {
        self.job as *mut glr_job
    }
}

/// A status a call may return while the server misbehaves.
fn tolerated(st: glr_status) -> bool {
    matches!(st, GLR_OK | GLR_ERR_NETWORK | GLR_ERR_HTTP)
}

fn worker(t: usize, h: Shared, dir: &std::path::Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |what: &str, st: glr_status| {
        if !tolerated(st) {
            problems.push(format!("thread {t}: {what} -> {st} ({})", last_error()));
        }
    };
    let dump_path = CString::new(dir.join(format!("job-{t}.json")).to_str().unwrap()).unwrap();
    for k in 0..LINES_PER_THREAD {
        let line = format!("thread {t:02} line {k:03} ✓\n");
        check("append", unsafe { glr_job_log_append(h.job(), line.as_ptr().cast::<c_char>(), line.len()) });
        match k % 10 {
            0 if k % 30 == 0 => check("flush", unsafe { glr_job_log_flush(h.job()) }),
            1 => {
                let mut s = ptr::null_mut();
                check("glr_job_dumps", unsafe { glr_job_dumps(h.job(), &mut s) });
                unsafe { glr_string_free(s) };
            }
            2 => check("glr_job_dump", unsafe { glr_job_dump(h.job(), dump_path.as_ptr()) }),
            3 => unsafe {
                // Properties: borrowed strings cached per handle, read by many threads at once.
                assert!(glr_job_id(h.job()) > 0);
                assert!(!glr_job_token(h.job()).is_null());
                assert!(!glr_job_name(h.job()).is_null());
                let n = glr_job_variable_count(h.job());
                for i in 0..n {
                    assert!(!glr_job_variable_key(h.job(), i).is_null());
                }
                assert!(!glr_job_variable(h.job(), c"CI_JOB_ID".as_ptr()).is_null());
                assert!(glr_job_state(h.job()) == GLR_JOB_RUNNING);
                assert!(!glr_runner_token(h.runner()).is_null());
                assert!(!glr_runner_api_url(h.runner()).is_null());
            },
            4 => {
                let (mut s, mut len) = (ptr::null_mut(), 0usize);
                check("glr_job_log", unsafe { glr_job_log(h.job(), &mut s, &mut len) });
                unsafe { glr_string_free(s) };
            }
            5 => {
                let mut s = ptr::null_mut();
                check("glr_runner_dumps", unsafe { glr_runner_dumps(h.runner(), &mut s) });
                unsafe { glr_string_free(s) };
                let feature = if t.is_multiple_of(2) { c"image" } else { c"services" };
                check("set_feature", unsafe { glr_runner_set_feature(h.runner(), feature.as_ptr(), (k % 2) as i32) });
            }
            6 if t.is_multiple_of(8) => check("check_auth", unsafe { glr_runner_check_auth(h.runner()) }),
            7 if t % 8 == 1 => check("auth", unsafe { glr_job_auth(h.job()) }),
            _ => {}
        }
    }
    problems
}

#[test]
fn thirty_two_threads_share_a_runner_and_a_job_under_faults() {
    let server = server();
    let id = server.queue_job(json!({}));
    let runner = register(&server);
    let job = take_job(&server, runner);
    let dir = std::env::temp_dir().join(format!("glr-threads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let h = Shared { runner: runner as usize, job: job as usize };
    let done = AtomicBool::new(false);
    let started = Instant::now();

    let problems: Vec<String> = std::thread::scope(|s| {
        // The fault injector: a few faults at a time on the log upload and the job update.
        let server = &server;
        let done = &done;
        s.spawn(move || {
            let kinds = [
                FaultKind::Status { code: 500, retry_after: None },
                FaultKind::Status { code: 503, retry_after: None },
                FaultKind::Status { code: 429, retry_after: Some(0) },
                FaultKind::DropConnection,
                FaultKind::DropAfterHandling,
                FaultKind::Delay(Duration::from_millis(150)),
                FaultKind::TruncatedBody,
            ];
            // One fault every 100 ms, 60 at most: enough to hit every kind of request many
            // times, few enough that the retries (with their backoff) do not dominate the run.
            for i in 0..FAULTS {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let endpoint = if i % 3 == 2 { Endpoint::JobUpdate } else { Endpoint::Trace };
                server.inject_fault(Fault { endpoint, count: 1, kind: kinds[i % kinds.len()].clone() });
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let dir = &dir;
                s.spawn(move || worker(t, h, dir))
            })
            .collect();
        let problems = workers.into_iter().flat_map(|w| w.join().expect("a worker panicked")).collect();
        done.store(true, Ordering::SeqCst);
        problems
    });
    server.clear_faults();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    ok(unsafe { glr_job_set_success(job, ptr::null()) });
    let took = started.elapsed();

    let rec = server.job(id).unwrap();
    assert_eq!(rec.state, "success");
    assert_eq!(rec.checksum_matches, Some(true), "the final checksum matches the stored trace");
    let text = String::from_utf8(rec.trace.clone()).expect("the trace is UTF-8");
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for line in text.lines() {
        *seen.entry(line).or_default() += 1;
    }
    let mut wrong = Vec::new();
    for t in 0..THREADS {
        for k in 0..LINES_PER_THREAD {
            let line = format!("thread {t:02} line {k:03} ✓");
            match seen.remove(line.as_str()) {
                Some(1) => {}
                n => wrong.push(format!("{line:?} stored {} times", n.unwrap_or(0))),
            }
        }
    }
    assert!(wrong.is_empty(), "{} lines wrong, e.g. {:?}", wrong.len(), &wrong[..wrong.len().min(10)]);
    assert!(seen.is_empty(), "lines nobody appended: {:?}", seen.keys().take(10).collect::<Vec<_>>());
    // Each thread's lines are in its own order.
    for t in 0..THREADS {
        let prefix = format!("thread {t:02} line ");
        let order: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "thread {t}'s lines out of order");
    }
    let patches = rec.trace_patches;
    eprintln!(
        "{THREADS} threads x {LINES_PER_THREAD} lines: {} bytes in {patches} PATCHes, {} updates, {took:.1?}",
        rec.trace.len(),
        rec.updates
    );
    // The last dump of each thread loads.
    for t in 0..THREADS {
        let mut j = ptr::null_mut();
        let path = CString::new(dir.join(format!("job-{t}.json")).to_str().unwrap()).unwrap();
        ok(unsafe { glr_job_load(path.as_ptr(), &mut j) });
        unsafe { glr_job_free(j) };
    }
    unsafe {
        glr_job_free(job);
        glr_runner_free(runner);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
