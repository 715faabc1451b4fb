//! Issue 13, findings 3, 4 and 6, against the bundled test server (and a server that never
//! answers):
//!
//! - callbacks never run with a library lock held: a cancel callback may flush, fail or
//!   un-register on its own job; a log callback blocked on something the caller holds does not
//!   block the caller; a slow cancel callback delays no other job's upload;
//! - a cancel first seen in the answer to the final update reaches the cancel callback, once;
//! - every call is bounded: a job's and a runner's call timeout against a silent server, the
//!   documented default, glr_runner_interrupt() and glr_runner_free() ending a long poll.
//!
//! Whatever could deadlock runs under a hard time limit (`common::deadline::within`): a
//! deadlock fails its test instead of hanging the run.

mod common;

use common::build::header_dir;
use common::callbacks::{CancelHook, Gate};
use common::deadline::{within, Shared};
use common::silent::{job_moved, runner_moved, SilentServer};
use common::trace::trace;
use common::*;
use gitlab_runner_api::ffi::diagnostics::glr_set_log_callback;
use gitlab_runner_api::ffi::job::*;
use gitlab_runner_api::ffi::runner::*;
use gitlab_runner_api::ffi::status::*;
use glr_testserver::{Config, TestServer};
use serde_json::json;
use std::ffi::{c_char, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// No test here may take longer, whatever deadlocks.
const TEST_LIMIT: Duration = Duration::from_secs(60);
/// How long a cancel may take to be learned and delivered (a background upload at GitLab's
/// interval of 1 s, then the event thread).
const DELIVERY: Duration = Duration::from_secs(15);

/// The log callback is process-wide: the tests that install one, or use
/// `glr_set_log_callback(NULL, NULL)` as a sync point, take this.
static LOG_CALLBACK: Mutex<()> = Mutex::new(());

/// Returns once every callback posted so far has run (glr_set_log_callback's documented
/// barrier), within a time limit.
fn sync_callbacks() {
    let _lock = LOG_CALLBACK.lock().unwrap_or_else(PoisonError::into_inner);
    within(Duration::from_secs(20), "glr_set_log_callback(NULL, NULL) as a sync point", || unsafe {
        glr_set_log_callback(None, ptr::null_mut())
    });
}

/// Waits until `done` holds, at most `limit`; whether it did.
fn wait_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// What a cancel callback saw: the state it was called with, the status of what it did
/// (GLR_OK when it did nothing) and that status's message.
type Calls = Arc<Mutex<Vec<(i32, glr_status, String)>>>;

fn calls_of(calls: &Calls) -> Vec<(i32, glr_status, String)> {
    calls.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// A job GitLab cancels gracefully (state canceling at the server); the library learns it from
/// the answer to the background upload of a line appended after the cancel.
fn cancel_gracefully_and_let_the_background_notice(t: &Taken) {
    t.server.cancel_job(t.id, true);
    assert_eq!(t.server.job(t.id).unwrap().state, "canceling", "the runner advertises cancel_gracefully");
    append(t.job, b"still running after the cancel\n");
}

// ---- finding 3: callbacks that call back into the library ------------------------------------

#[test]
fn a_cancel_callback_may_flush_its_own_job() {
    within(TEST_LIMIT, "the test", || {
        let t = taken(json!({}));
        let calls: Calls = Arc::default();
        let seen = calls.clone();
        let hook = CancelHook::install(t.job, move |job, state| {
            let text = b"appended and flushed by the cancel callback\n";
            ok(unsafe { glr_job_log_append(job.0, text.as_ptr().cast(), text.len()) });
            let st = unsafe { glr_job_log_flush(job.0) };
            seen.lock().unwrap().push((state, st, last_error()));
        });
        cancel_gracefully_and_let_the_background_notice(&t);
        assert!(wait_until(DELIVERY, || !calls_of(&calls).is_empty()), "the cancel callback did not return");
        assert_eq!(calls_of(&calls)[0].0, GLR_JOB_CANCELING);
        assert_eq!(calls_of(&calls)[0].1, GLR_OK, "flush inside the callback: {:?}", calls_of(&calls));
        // The flush returned OK: GitLab has acknowledged the callback's text.
        let text = trace(&t.server.job(t.id).unwrap());
        assert!(text.contains("appended and flushed by the cancel callback\n"), "{text}");
        drop(hook);
    });
}

#[test]
fn a_cancel_callback_may_remove_itself() {
    within(TEST_LIMIT, "the test", || {
        let t = taken(json!({}));
        let calls: Calls = Arc::default();
        let seen = calls.clone();
        let hook = CancelHook::install(t.job, move |job, state| {
            let st = unsafe { glr_job_set_cancel_callback(job.0, None, ptr::null_mut()) };
            seen.lock().unwrap().push((state, st, last_error()));
        });
        cancel_gracefully_and_let_the_background_notice(&t);
        assert!(wait_until(DELIVERY, || !calls_of(&calls).is_empty()), "the cancel callback did not return");
        // Now a hard cancel, learned by glr_job_auth: a change the removed callback must miss.
        t.server.cancel_job(t.id, false);
        expect(unsafe { glr_job_auth(t.job) }, GLR_ERR_JOB_CANCELED);
        assert_eq!(unsafe { glr_job_state(t.job) }, GLR_JOB_CANCELED);
        sync_callbacks();
        assert_eq!(
            calls_of(&calls).iter().map(|(s, st, _)| (*s, *st)).collect::<Vec<_>>(),
            [(GLR_JOB_CANCELING, GLR_OK)],
            "called once, and not after it removed itself"
        );
        assert_eq!(t.server.job(t.id).unwrap().state, "canceled");
        drop(hook);
    });
}

#[test]
fn a_cancel_callback_may_fail_its_own_job() {
    within(TEST_LIMIT, "the test", || {
        let t = taken(json!({}));
        let calls: Calls = Arc::default();
        let seen = calls.clone();
        let hook = CancelHook::install(t.job, move |job, state| {
            let st = if state == GLR_JOB_CANCELING {
                let text = b"after_script of the canceled job\n";
                ok(unsafe { glr_job_log_append(job.0, text.as_ptr().cast(), text.len()) });
                ok(unsafe { glr_job_set_exit_code(job.0, 130) });
                unsafe { glr_job_set_failed(job.0, GLR_FAILURE_SCRIPT, ptr::null()) }
            } else {
                GLR_OK
            };
            seen.lock().unwrap().push((state, st, last_error()));
        });
        cancel_gracefully_and_let_the_background_notice(&t);
        assert!(wait_until(DELIVERY, || !calls_of(&calls).is_empty()), "the cancel callback did not return");
        sync_callbacks();
        let calls = calls_of(&calls);
        assert_eq!(calls[0].0, GLR_JOB_CANCELING);
        assert_eq!(calls[0].1, GLR_OK, "glr_job_set_failed inside the callback: {calls:?}");
        // GitLab turns a canceling job that reports its end into canceled, and says so in the
        // answer: that change reaches the callback too, once.
        assert_eq!(calls.iter().map(|c| c.0).collect::<Vec<_>>(), [GLR_JOB_CANCELING, GLR_JOB_CANCELED], "{calls:?}");
        let record = t.server.job(t.id).unwrap();
        assert_eq!(record.state, "canceled");
        assert_eq!(record.reported_failure_reason.as_deref(), Some("script_failure"));
        assert_eq!(record.checksum_matches, Some(true), "the final update carried the whole log");
        assert!(trace(&record).ends_with("after_script of the canceled job\n"), "{}", trace(&record));
        drop(hook);
    });
}

/// What the log callback of the next test does: it waits at `gate` (closed by the main thread
/// while it calls the library) and collects the lines.
struct BlockingLog {
    gate: Gate,
    entered: AtomicBool,
    lines: Mutex<Vec<String>>,
}

unsafe extern "C" fn blocking_log(userdata: *mut c_void, _level: i32, message: *const c_char) {
    let log = unsafe { &*(userdata as *const BlockingLog) };
    log.entered.store(true, Ordering::SeqCst);
    // Long enough for any test to fail first; never forever (the test run must end).
    log.gate.pass(Duration::from_secs(120));
    let line = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
    log.lines.lock().unwrap_or_else(PoisonError::into_inner).push(line);
}

#[test]
fn a_log_callback_waiting_for_the_caller_does_not_block_set_success() {
    within(TEST_LIMIT, "the test", || {
        let _lock = LOG_CALLBACK.lock().unwrap_or_else(PoisonError::into_inner);
        let t = taken(json!({}));
        append(t.job, b"a line\n");
        let log: &'static BlockingLog = Box::leak(Box::new(BlockingLog {
            gate: Gate::new(),
            entered: AtomicBool::new(false),
            lines: Mutex::default(),
        }));
        unsafe { glr_set_log_callback(Some(blocking_log), log as *const BlockingLog as *mut c_void) };
        // The main thread "holds the lock" the callback needs while it finishes the job, which
        // logs ("job N: reported success").
        log.gate.close();
        let job = Shared(t.job);
        let st = within(
            Duration::from_secs(20),
            "glr_job_set_success while the log callback waits for us",
            move || unsafe { glr_job_set_success(job.get(), ptr::null()) },
        );
        ok(st);
        assert!(
            wait_until(Duration::from_secs(10), || log.entered.load(Ordering::SeqCst)),
            "the log callback was not called while the gate was closed"
        );
        assert!(log.lines.lock().unwrap().is_empty(), "the callback waits at the gate");
        log.gate.open();
        within(Duration::from_secs(20), "glr_set_log_callback(NULL) after the gate opened", || unsafe {
            glr_set_log_callback(None, ptr::null_mut())
        });
        let lines = log.lines.lock().unwrap().clone();
        let reported = format!("job {}: reported success", t.id);
        assert!(lines.iter().any(|l| l.contains(&reported)), "{reported:?} not among the lines: {lines:?}");
        assert_eq!(t.server.job(t.id).unwrap().state, "success");
    });
}

#[test]
fn a_slow_cancel_callback_delays_no_other_job_s_upload() {
    within(TEST_LIMIT, "the test", || {
        let server = server();
        let (slow_id, other_id) = (server.queue_job(json!({})), server.queue_job(json!({})));
        let runner = register(&server);
        let slow = take_job(&server, runner);
        let other = take_job(&server, runner);
        assert_eq!((unsafe { glr_job_id(slow) }, unsafe { glr_job_id(other) }), (slow_id, other_id));
        append(other, b"first line of the other job\n");
        ok(unsafe { glr_job_log_flush(other) }); // idle: the next line is sent at once

        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let hook = CancelHook::install(slow, move |_, _| {
            s.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(5));
        });
        server.cancel_job(slow_id, true);
        append(slow, b"the background learns the cancel from this line's upload\n");
        assert!(wait_until(DELIVERY, || started.load(Ordering::SeqCst)), "the cancel callback was not called");

        let appended = Instant::now();
        append(other, b"second line of the other job\n");
        let stored = server
            .wait_for_job(other_id, Duration::from_secs(10), |j| trace(j).contains("second line of the other job\n"));
        let took = appended.elapsed();
        assert!(stored.is_some(), "the other job's line never reached the server");
        eprintln!("the other job's line reached the server {took:?} after it was appended");
        assert!(took < Duration::from_secs(3), "the other job's line took {took:?} (the callback sleeps 5 s)");

        drop(hook); // waits for the sleeping callback
        unsafe {
            glr_job_free(slow);
            glr_job_free(other);
            glr_runner_free(runner);
        }
    });
}

// ---- finding 4: the final update reveals the cancel -------------------------------------------

/// The job's log is all acknowledged and no keep-alive is due, GitLab cancels it, then the job
/// is finished: the final PUT is the first request to see the cancel. Returns the finishing
/// call's status and the states the cancel callback was called with.
fn finish_after_an_unseen_cancel(graceful: bool, finish: fn(*mut glr_job) -> glr_status) -> (glr_status, Vec<i32>) {
    let t = taken(json!({}));
    ok(unsafe { glr_job_set_keepalive_interval(t.job, 2700) });
    append(t.job, b"all of it acknowledged before the cancel\n");
    ok(unsafe { glr_job_log_flush(t.job) });
    let calls: Calls = Arc::default();
    let seen = calls.clone();
    let hook = CancelHook::install(t.job, move |_, state| seen.lock().unwrap().push((state, GLR_OK, String::new())));

    t.server.clear_requests();
    t.server.cancel_job(t.id, graceful);
    let st = finish(t.job);
    let message = last_error();
    sync_callbacks();

    let job_path = format!("/api/v4/jobs/{}", t.id);
    let after: Vec<_> = t.server.requests().into_iter().filter(|r| r.path.starts_with(&job_path)).collect();
    let first = after.first().expect("a request after the cancel");
    assert_eq!((first.method.as_str(), first.path.split('?').next().unwrap()), ("PUT", job_path.as_str()));
    assert_eq!(after.len(), 1, "only the final update saw the cancel: {after:?}");
    assert_eq!(unsafe { glr_job_state(t.job) }, GLR_JOB_CANCELED, "{message}");
    assert_eq!(t.server.job(t.id).unwrap().state, "canceled");
    drop(hook);
    (st, calls_of(&calls).into_iter().map(|c| c.0).collect())
}

#[test]
fn a_graceful_cancel_revealed_by_the_final_update_reaches_the_callback_once() {
    within(TEST_LIMIT, "the test", || {
        // GitLab applies the final state to a canceling job as canceled and answers 200 with
        // Job-Status: canceled.
        let (st, calls) = finish_after_an_unseen_cancel(true, |job| unsafe { glr_job_set_success(job, ptr::null()) });
        assert_eq!(st, GLR_OK, "GitLab accepted the final update");
        assert_eq!(calls, [GLR_JOB_CANCELED]);
    });
}

#[test]
fn a_hard_cancel_revealed_by_the_final_update_reaches_the_callback_once() {
    within(TEST_LIMIT, "the test", || {
        // GitLab answers the final update of a canceled job 403 with Job-Status: canceled.
        let (st, calls) = finish_after_an_unseen_cancel(false, |job| unsafe {
            glr_job_set_failed(job, GLR_FAILURE_SCRIPT, ptr::null())
        });
        assert_eq!(st, GLR_ERR_JOB_CANCELED);
        assert_eq!(calls, [GLR_JOB_CANCELED]);
    });
}

// ---- finding 6: bounded calls -------------------------------------------------------------

/// A job taken from the test server, then moved to a server that never answers, with its call
/// timeout set to `ms` and a line pending.
fn silent_job(silent: &SilentServer, ms: i64) -> Taken {
    let mut t = taken(json!({}));
    let moved = job_moved(t.job, &t.server.url(), silent.url());
    unsafe { glr_job_free(t.job) };
    t.job = moved;
    ok(unsafe { glr_job_set_call_timeout(t.job, ms) });
    append(t.job, b"a line the silent server never acknowledges\n");
    t
}

/// Runs `f` on the job and checks it ends with GLR_ERR_TIMEOUT at the 3 s bound (not before,
/// and not much later), with a message that names the bound.
fn ends_at_three_seconds(what: &'static str, f: fn(*mut glr_job) -> glr_status) {
    within(TEST_LIMIT, what, move || {
        let silent = SilentServer::start();
        let t = silent_job(&silent, 3000);
        let started = Instant::now();
        let st = f(t.job);
        let (message, took) = (last_error(), started.elapsed());
        eprintln!("{what} against a silent server: {st} ({message}) after {took:?}");
        assert_eq!(st, GLR_ERR_TIMEOUT, "{what}: {message}");
        assert!(took >= Duration::from_millis(2900), "{what} ended before its bound: {took:?}");
        assert!(took < Duration::from_millis(4500), "{what} ended {took:?} after it started (bound 3 s)");
        assert!(message.contains("time limit of 3 s"), "the message names the bound: {message}");
        // Freeing it ends the background's request that is still waiting.
        let freeing = Instant::now();
        drop(t);
        assert!(freeing.elapsed() < Duration::from_secs(2), "glr_job_free took {:?}", freeing.elapsed());
    });
}

#[test]
fn flush_against_a_silent_server_ends_at_the_call_timeout() {
    ends_at_three_seconds("glr_job_log_flush", |job| unsafe { glr_job_log_flush(job) });
}

#[test]
fn set_success_against_a_silent_server_ends_at_the_call_timeout() {
    ends_at_three_seconds("glr_job_set_success", |job| unsafe { glr_job_set_success(job, ptr::null()) });
}

/// The doc comment above `name`'s declaration in the header.
fn header_doc(name: &str) -> String {
    let path = header_dir().join("gitlab_runner_api.h");
    let header = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let at = header.find(&format!("\nglr_status {name}(")).unwrap_or_else(|| panic!("{name} is not declared"));
    let start = header[..at].rfind("/**").expect("a doc comment");
    header[start..at].to_string()
}

#[test]
fn call_timeouts_default_to_five_minutes_as_documented() {
    for name in ["glr_job_set_call_timeout", "glr_runner_set_call_timeout"] {
        let doc = header_doc(name);
        assert!(doc.contains("0 restores the default") && doc.contains("5 minutes"), "{name}:\n{doc}");
        assert!(doc.contains("GLR_ERR_TIMEOUT"), "{name}:\n{doc}");
    }
    for name in ["glr_job_log_flush", "glr_job_set_success", "glr_runner_request_job"] {
        assert!(header_doc(name).contains("call timeout"), "{name} says it is bounded");
    }
    let t = taken(json!({}));
    expect(unsafe { glr_job_set_call_timeout(t.job, -1) }, GLR_ERR_INVALID_ARGUMENT);
    expect(unsafe { glr_runner_set_call_timeout(t.runner, -1) }, GLR_ERR_INVALID_ARGUMENT);
    ok(unsafe { glr_job_set_call_timeout(t.job, 0) });
    ok(unsafe { glr_runner_set_call_timeout(t.runner, 0) });
    // With the default back, the job works normally.
    append(t.job, b"done\n");
    ok(unsafe { glr_job_set_success(t.job, ptr::null()) });
    assert_eq!(t.server.job(t.id).unwrap().state, "success");
}

#[test]
fn the_runner_s_call_timeout_bounds_request_job_against_a_silent_server() {
    within(TEST_LIMIT, "the test", || {
        let server = server();
        let registered = register(&server);
        let silent = SilentServer::start();
        let runner = Shared(runner_moved(registered, &server.url(), silent.url()));
        unsafe { glr_runner_free(registered) };
        ok(unsafe { glr_runner_set_call_timeout(runner.0, 1500) });
        let (st, message, took) = within(Duration::from_secs(30), "glr_runner_request_job", move || {
            let started = Instant::now();
            let mut job = ptr::null_mut();
            let st = unsafe { glr_runner_request_job(runner.get(), &mut job) };
            assert!(job.is_null());
            (st, last_error(), started.elapsed())
        });
        eprintln!("glr_runner_request_job against a silent server: {st} ({message}) after {took:?}");
        assert_eq!(st, GLR_ERR_TIMEOUT, "{message}");
        assert!(took >= Duration::from_millis(1400) && took < Duration::from_secs(3), "{took:?}");
        assert!(message.contains("time limit of 1.5 s"), "the message names the bound: {message}");
        unsafe { glr_runner_free(runner.0) };
    });
}

/// A server whose long poll holds a job request 30 s.
fn long_polling_server() -> TestServer {
    TestServer::start_with(Config { long_poll_timeout: Duration::from_secs(30), ..Config::default() })
}

/// Starts a thread that asks for a job twice: the first request (without `last_update`) is
/// answered at once, the second is held in the long poll. The thread sets `polling` just
/// before the second and returns its status, message, and when it returned.
fn poll_in_the_background(
    runner: Shared<glr_runner>,
    polling: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(glr_status, String, Instant)> {
    std::thread::spawn(move || {
        let runner = runner.get();
        let mut job = ptr::null_mut();
        ok(unsafe { glr_runner_request_job(runner, &mut job) });
        assert!(job.is_null(), "no job is queued");
        polling.store(true, Ordering::SeqCst);
        let st = unsafe { glr_runner_request_job(runner, &mut job) };
        assert!(job.is_null());
        (st, last_error(), Instant::now())
    })
}

#[test]
fn interrupt_ends_a_long_poll_and_later_requests_work() {
    within(TEST_LIMIT, "the test", || {
        let server = long_polling_server();
        let runner = Shared(register(&server));
        let polling = Arc::new(AtomicBool::new(false));
        let poller = poll_in_the_background(runner, polling.clone());
        assert!(wait_until(Duration::from_secs(10), || polling.load(Ordering::SeqCst)));
        std::thread::sleep(Duration::from_millis(300));
        let interrupted = Instant::now();
        ok(unsafe { glr_runner_interrupt(runner.0) });
        let (st, message, returned) = within(Duration::from_secs(10), "the interrupted request_job", move || {
            poller.join().expect("the polling thread")
        });
        let took = returned.saturating_duration_since(interrupted);
        eprintln!("request_job returned {st} ({message}) {took:?} after glr_runner_interrupt");
        assert_eq!(st, GLR_ERR_INTERRUPTED, "{message}");
        assert!(took < Duration::from_secs(1), "request_job returned {took:?} after the interrupt");

        // Later calls are not affected: a long poll runs to its end, then a job is received.
        server.set_config(|c| c.long_poll_timeout = Duration::from_millis(500));
        let mut job = ptr::null_mut();
        ok(unsafe { glr_runner_request_job(runner.0, &mut job) });
        assert!(job.is_null(), "no job queued yet");
        let id = server.queue_job(json!({}));
        let job = take_job(&server, runner.0);
        assert_eq!(unsafe { glr_job_id(job) }, id);
        unsafe {
            glr_job_free(job);
            glr_runner_free(runner.0);
        }
    });
}

#[test]
fn freeing_a_runner_during_request_job_ends_that_call() {
    within(TEST_LIMIT, "the test", || {
        let server = long_polling_server();
        let runner = Shared(register(&server));
        let polling = Arc::new(AtomicBool::new(false));
        let poller = poll_in_the_background(runner, polling.clone());
        assert!(wait_until(Duration::from_secs(10), || polling.load(Ordering::SeqCst)));
        std::thread::sleep(Duration::from_millis(300));
        let freed = Instant::now();
        within(Duration::from_secs(10), "glr_runner_free during a long poll", move || unsafe {
            glr_runner_free(runner.get())
        });
        let free_took = freed.elapsed();
        let (st, message, returned) =
            within(Duration::from_secs(10), "request_job on the freed runner", move || poller.join().expect("poller"));
        let took = returned.saturating_duration_since(freed);
        eprintln!("glr_runner_free returned after {free_took:?}; request_job {st} ({message}) after {took:?}");
        assert_eq!(st, GLR_ERR_INTERRUPTED, "{message}");
        assert!(took < Duration::from_secs(1) && free_took < Duration::from_secs(1), "{took:?}, {free_took:?}");
    });
}
