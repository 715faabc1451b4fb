//! Soak: one process runs many jobs through the test server — request, log, finish, free — and
//! its memory after the first 500 jobs stays flat; its file descriptors and threads come back to
//! what they were once the library was warmed up (the HTTP client, its runtime thread and its
//! pooled connection are process-wide and made once; the log uploader thread ends by itself
//! when no job is left).
//!
//! The jobs run in a child process (this test binary, re-run with GLR_SOAK_CHILD set), so that
//! only the library is measured: the test server, with everything it stores, stays in the
//! parent. `cargo test` runs 1,000 jobs; `.ci/run` runs 5,000 (`GLR_SOAK_JOBS=5000`).
//! The figures (RSS every 500 jobs, fds, threads, time) are printed and go to RELIABILITY.md.

mod common;

use common::*;
use gitlab_runner_api::ffi::job::*;
use gitlab_runner_api::ffi::runner::*;
use glr_testserver::{Config, TestServer};
use serde_json::json;
use std::ffi::c_char;
use std::process::{Command, Stdio};
use std::ptr;
use std::time::{Duration, Instant};

const DEFAULT_JOBS: usize = 1000;
const STEP: usize = 500;
/// Allowed RSS growth from job 500 to the end (allocator noise, not a leak: a leak of even 200
/// bytes per job is 900 KB over 4,500 jobs, and real leaks (a job, a payload) are kilobytes).
const MAX_GROWTH_KB: i64 = 1024;

fn jobs() -> usize {
    std::env::var("GLR_SOAK_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_JOBS)
}

fn rss_kb() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// CPU seconds (user + system) this process used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn thread_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

/// Waits until the log uploader thread has ended (it lingers 2 s after the last job is freed).
fn wait_for_uploader_to_end() -> Duration {
    let started = Instant::now();
    while thread_names().iter().any(|n| n == "glr-log-uploade") {
        assert!(started.elapsed() < Duration::from_secs(10), "the uploader thread did not end: {:?}", thread_names());
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

fn run_one(runner: *mut glr_runner, i: usize) {
    let mut job = ptr::null_mut();
    for _ in 0..50 {
        ok(unsafe { glr_runner_request_job(runner, &mut job) });
        if !job.is_null() {
            break;
        }
    }
    assert!(!job.is_null(), "job {i}: none received");
    for line in [format!("soak job {i}\n"), "some output ✓\n".to_string(), format!("done {i}\n")] {
        ok(unsafe { glr_job_log_append(job, line.as_ptr().cast::<c_char>(), line.len()) });
    }
    if i.is_multiple_of(2) {
        ok(unsafe { glr_job_set_success(job, ptr::null()) });
    } else {
        ok(unsafe { glr_job_set_exit_code(job, 1) });
        ok(unsafe { glr_job_set_failed(job, GLR_FAILURE_SCRIPT, ptr::null()) });
    }
    unsafe { glr_job_free(job) };
}

/// The child: runs the jobs against GLR_SOAK_URL and prints one line of figures per step.
fn child() {
    let url = std::env::var("GLR_SOAK_URL").unwrap();
    let token = std::env::var("GLR_SOAK_TOKEN").unwrap();
    let n = jobs();
    let mut runner = ptr::null_mut();
    ok(unsafe { glr_runner_register(c(&url).as_ptr(), c(&token).as_ptr(), ptr::null(), &mut runner) });
    let started = Instant::now();
    // Warm-up: the first jobs initialise the process-wide parts (the HTTP runtime, and the
    // connection pool, which keeps one connection for the caller and one for the uploader once
    // both have sent at the same moment).
    const WARM_UP: usize = 10;
    for i in 0..WARM_UP {
        run_one(runner, i);
    }
    wait_for_uploader_to_end();
    let (fds0, threads0, rss0) = (fds(), thread_names(), rss_kb());
    // (A newline first: libtest's "test ... " line is still open.)
    println!("\nSOAK start jobs={WARM_UP} rss_kb={rss0} fds={fds0} threads={}", threads0.len());
    let mut at_500 = None;
    for i in WARM_UP..n {
        run_one(runner, i);
        let done = i + 1;
        if done % STEP == 0 {
            let rss = rss_kb();
            at_500.get_or_insert(rss);
            println!(
                "SOAK step jobs={done} rss_kb={rss} fds={} threads={} seconds={:.1} cpu_seconds={:.1}",
                fds(),
                thread_names().len(),
                started.elapsed().as_secs_f64(),
                cpu_seconds()
            );
        }
    }
    unsafe { glr_runner_free(runner) };
    let linger = wait_for_uploader_to_end();
    let (fds1, threads1, rss1) = (fds(), thread_names(), rss_kb());
    println!(
        "SOAK end jobs={n} rss_kb={rss1} fds={fds1} threads={} seconds={:.1} uploader_ended_after_ms={}",
        threads1.len(),
        started.elapsed().as_secs_f64(),
        linger.as_millis()
    );
    assert_eq!(fds1, fds0, "file descriptors: {fds0} after warm-up, {fds1} at the end");
    assert_eq!(threads1, threads0, "threads after warm-up vs at the end");
    if let Some(base) = at_500 {
        let growth = rss1 - base;
        assert!(
            growth <= MAX_GROWTH_KB,
            "RSS grew by {growth} kB between job {STEP} and job {n} (limit {MAX_GROWTH_KB} kB)"
        );
    }
}

#[test]
fn soak_jobs_memory_fds_and_threads_stay_flat() {
    if std::env::var_os("GLR_SOAK_CHILD").is_some() {
        child();
        return;
    }
    let n = jobs();
    let server = TestServer::start_with(Config {
        long_poll_timeout: Duration::from_millis(100),
        trace_update_interval: 1,
        ..Config::default()
    });
    // Jobs are queued as the child takes them (at most 20 waiting), as a busy GitLab would hand
    // them out: the test server's cost per request grows with its queue, the library's must not.
    let ids: Vec<i64> = (0..n.min(20)).map(|_| server.queue_job(json!({}))).collect();
    let ids = std::sync::Mutex::new(ids);
    let child_done = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            while !child_done.load(std::sync::atomic::Ordering::SeqCst) {
                let queued = ids.lock().unwrap().len();
                let oldest_waiting = ids.lock().unwrap()[queued.saturating_sub(20)];
                if queued < n && server.job(oldest_waiting).is_some_and(|j| j.state != "pending") {
                    let id = server.queue_job(json!({}));
                    ids.lock().unwrap().push(id);
                } else {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "soak_jobs_memory_fds_and_threads_stay_flat", "--nocapture", "--test-threads=1"])
            .env("GLR_SOAK_CHILD", "1")
            .env("GLR_SOAK_URL", server.url())
            .env("GLR_SOAK_TOKEN", server.registration_token())
            .env("GLR_SOAK_JOBS", n.to_string())
            .env_remove("GLR_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        child_done.store(true, std::sync::atomic::Ordering::SeqCst);
        out
    });
    let ids: std::collections::BTreeSet<i64> = ids.into_inner().unwrap().into_iter().collect();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let figures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("SOAK")).collect();
    eprintln!("{}", figures.join("\n"));
    assert!(
        out.status.success(),
        "the soak child failed after {:?}:\n{stdout}\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every job reached the server finished, with its log.
    let finished = server
        .jobs()
        .into_iter()
        .filter(|j| ids.contains(&j.id) && (j.state == "success" || j.state == "failed") && !j.trace.is_empty())
        .count();
    assert_eq!(finished, n, "jobs finished on the server");
}
