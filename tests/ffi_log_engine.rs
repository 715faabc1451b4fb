//! The log engine through the C API: background upload without flushing, appends that never wait
//! for the network, many threads on one job, masking, the size limit, and cancellation learned
//! in the background (state getter and callback).

mod common;

use common::*;
use gitlab_runner_api::ffi::job::*;
use gitlab_runner_api::ffi::runner::*;
use gitlab_runner_api::ffi::status::*;
use glr_testserver::{Endpoint, Fault, FaultKind, TestServer, DEFAULT_MASKED_VALUE};
use serde_json::json;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

/// Raw pointers crossing threads in tests (the C API allows concurrent use).
#[derive(Clone, Copy)]
struct Shared(*mut glr_job);
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

fn setup(overrides: serde_json::Value) -> (TestServer, *mut glr_runner, *mut glr_job, i64) {
    let server = server();
    let id = server.queue_job(overrides);
    let runner = register(&server);
    let job = take_job(&server, runner);
    (server, runner, job, id)
}

fn teardown(runner: *mut glr_runner, job: *mut glr_job) {
    unsafe {
        glr_job_free(job);
        glr_runner_free(runner);
    }
}

#[test]
fn appended_text_reaches_gitlab_without_any_flush() {
    let (server, runner, job, id) = setup(json!({}));
    append(job, b"line one\n");
    let rec = server.wait_for_job(id, Duration::from_secs(10), |j| j.trace == b"line one\n");
    assert!(rec.is_some(), "the background uploader sent the first append on its own");
    append(job, b"line two\n");
    let rec = server.wait_for_job(id, Duration::from_secs(10), |j| j.trace == b"line one\nline two\n");
    assert!(rec.is_some(), "and the next one at GitLab's interval");
    teardown(runner, job);
}

/// Pending injected faults, read over the control interface (a fault is taken when its request
/// arrives, so an empty list means the faulty request is in flight or done).
fn pending_faults(server: &TestServer) -> usize {
    let body = reqwest::blocking::get(format!("{}/__control/faults", server.url())).unwrap().text().unwrap();
    serde_json::from_str::<serde_json::Value>(&body).unwrap().as_array().map_or(0, Vec::len)
}

#[test]
fn appending_does_not_wait_for_a_slow_gitlab() {
    let (server, runner, job, id) = setup(json!({}));
    server.inject_fault(Fault { endpoint: Endpoint::Trace, count: 1, kind: FaultKind::Delay(Duration::from_secs(4)) });
    append(job, b"slow\n");
    // The background uploader sends it at once; GitLab holds that PATCH for 4 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while pending_faults(&server) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(pending_faults(&server), 0, "the delayed PATCH is in flight");
    for i in 0..200 {
        append(job, format!("appended while GitLab is slow {i}\n").as_bytes());
    }
    assert!(server.job(id).unwrap().trace.is_empty(), "200 appends returned while the upload was still held by GitLab");
    ok(unsafe { glr_job_log_flush(job) });
    ok(unsafe { glr_job_set_success(job, ptr::null()) });
    let trace = String::from_utf8(server.job(id).unwrap().trace).unwrap();
    assert!(trace.starts_with("slow\n") && trace.ends_with("appended while GitLab is slow 199\n"));
    assert_eq!(trace.lines().count(), 201);
    teardown(runner, job);
}

#[test]
fn many_threads_appending_and_flushing_keep_every_line_exactly_once() {
    let (server, runner, job, id) = setup(json!({}));
    server.inject_fault(Fault {
        endpoint: Endpoint::Trace,
        count: 3,
        kind: FaultKind::Status { code: 502, retry_after: None },
    });
    server.inject_fault(Fault { endpoint: Endpoint::Trace, count: 1, kind: FaultKind::DropAfterHandling });
    let shared = Shared(job);
    let threads: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                let job = { shared }.0;
                for i in 0..100 {
                    append(job, format!("thread {t:02} line {i:03}\n").as_bytes());
                    if i % 25 == 0 {
                        ok(unsafe { glr_job_log_flush(job) });
                    }
                    assert!(unsafe { glr_job_id(job) } > 0);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    ok(unsafe { glr_job_set_success(job, ptr::null()) });
    let rec = server.job(id).unwrap();
    let trace = String::from_utf8(rec.trace).unwrap();
    let lines: Vec<&str> = trace.lines().collect();
    assert_eq!(lines.len(), 1600);
    for t in 0..16 {
        let mine: Vec<&&str> = lines.iter().filter(|l| l.starts_with(&format!("thread {t:02} "))).collect();
        let expected: Vec<String> = (0..100).map(|i| format!("thread {t:02} line {i:03}")).collect();
        assert_eq!(
            mine.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            expected,
            "each thread's lines once, in order"
        );
    }
    assert_eq!(rec.checksum_matches, Some(true));
    teardown(runner, job);
}

#[test]
fn secrets_are_masked_even_when_split_across_appends() {
    let (server, runner, job, id) = setup(json!({"features": {"token_mask_prefixes": ["mytok_"]}}));
    let secret = DEFAULT_MASKED_VALUE.as_bytes();
    append(job, b"password: ");
    for b in secret {
        append(job, std::slice::from_ref(b));
    }
    append(job, b"\ntoken glpat-abcdef123 and mytok_zzz9 url https://x/?private_token=qq&a=1\n");
    append(job, b"end with secret ");
    append(job, &secret[..5]);
    append(job, &secret[5..]);
    ok(unsafe { glr_job_set_success(job, ptr::null()) });
    let trace = String::from_utf8(server.job(id).unwrap().trace).unwrap();
    assert_eq!(
        trace,
        "password: [MASKED]\ntoken glpat-[MASKED] and mytok_[MASKED] url https://x/?private_token=[MASKED]&a=1\nend with secret [MASKED]"
    );
    teardown(runner, job);
}

/// Dumps `job` (flushed first, as a process handing its job over would, so no upload of this
/// handle is still in flight) and frees it: the next "process" loads the dump.
fn hand_over(job: *mut glr_job) -> *mut glr_job {
    ok(unsafe { glr_job_log_flush(job) });
    let mut s = ptr::null_mut();
    ok(unsafe { glr_job_dumps(job, &mut s) });
    let dumped = owned(s);
    unsafe { glr_job_free(job) };
    let mut next = ptr::null_mut();
    ok(unsafe { glr_job_loads(c(&dumped).as_ptr(), &mut next) });
    next
}

#[test]
fn masking_state_survives_dump_and_load() {
    let (server, runner, job, id) = setup(json!({}));
    append(job, b"a glpat-abc");
    let other = hand_over(job);
    append(other, b"def rest\n");
    let secret = DEFAULT_MASKED_VALUE.as_bytes();
    append(other, &secret[..4]);
    let third = hand_over(other);
    append(third, &secret[4..]);
    ok(unsafe { glr_job_set_success(third, ptr::null()) });
    assert_eq!(server.job(id).unwrap().trace, b"a glpat-[MASKED] rest\n[MASKED]");
    teardown(runner, third);
}

#[test]
fn the_log_limit_cuts_like_the_official_runner() {
    let (server, runner, job, id) = setup(json!({}));
    ok(unsafe { glr_job_set_log_limit(job, 2048) });
    append(job, &[b'a'; 2000]);
    append(job, "€".repeat(100).as_bytes());
    append(job, b"dropped");
    ok(unsafe { glr_job_set_success(job, ptr::null()) });
    let rec = server.job(id).unwrap();
    let trace = String::from_utf8(rec.trace).expect("cut on a character boundary");
    assert!(trace.ends_with("\n\x1b[33;1mJob's log exceeded limit of 2048 bytes.\nJob execution will continue but no more output will be collected.\x1b[0;m\n"), "{trace:?}");
    assert!(!trace.contains("dropped"));
    assert!(trace.find('\n').unwrap() <= 2048);
    assert_eq!(rec.checksum_matches, Some(true));
    expect(unsafe { glr_job_set_log_limit(ptr::null_mut(), 10) }, GLR_ERR_NULL_ARGUMENT);
    teardown(runner, job);
}

struct Seen {
    state: AtomicI32,
    calls: AtomicI32,
    on_event_thread: AtomicBool,
}

unsafe extern "C" fn on_cancel(userdata: *mut c_void, job: *mut glr_job, state: i32) {
    let seen = unsafe { &*(userdata as *const Seen) };
    assert!(unsafe { glr_job_id(job) } > 0, "the job handle is usable inside the callback");
    seen.state.store(state, Ordering::SeqCst);
    seen.calls.fetch_add(1, Ordering::SeqCst);
    let name = std::thread::current().name().map(str::to_string);
    seen.on_event_thread.store(name.as_deref() == Some("glr-events"), Ordering::SeqCst);
}

#[test]
fn cancellation_is_learned_in_the_background_with_a_callback() {
    let (server, runner, job, id) = setup(json!({}));
    let seen =
        Box::new(Seen { state: AtomicI32::new(-1), calls: AtomicI32::new(0), on_event_thread: AtomicBool::new(false) });
    let user = &*seen as *const Seen as *mut c_void;
    ok(unsafe { glr_job_set_cancel_callback(job, Some(on_cancel), user) });
    server.cancel_job(id, true);
    append(job, b"still working\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.calls.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(seen.state.load(Ordering::SeqCst), GLR_JOB_CANCELING);
    assert!(
        seen.on_event_thread.load(Ordering::SeqCst),
        "learned in the background (no call of ours) and delivered on the library's event thread"
    );
    assert_eq!(unsafe { glr_job_state(job) }, GLR_JOB_CANCELING);
    append(job, b"after_script output\n");
    ok(unsafe { glr_job_set_failed(job, GLR_FAILURE_SCRIPT, ptr::null()) });
    assert_eq!(server.job(id).unwrap().trace, b"still working\nafter_script output\n");

    // A hard cancel: CANCELED, and appends are refused from then on.
    let id2 = server.queue_job(json!({}));
    let job2 = take_job(&server, runner);
    assert_eq!(unsafe { glr_job_id(job2) }, id2);
    let seen2 =
        Box::new(Seen { state: AtomicI32::new(-1), calls: AtomicI32::new(0), on_event_thread: AtomicBool::new(false) });
    ok(unsafe { glr_job_set_cancel_callback(job2, Some(on_cancel), &*seen2 as *const Seen as *mut c_void) });
    server.cancel_job(id2, false);
    append(job2, b"x\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // The callback runs on the event thread after the state changed: wait for the callback.
    while seen2.calls.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(unsafe { glr_job_state(job2) }, GLR_JOB_CANCELED);
    assert_eq!(seen2.state.load(Ordering::SeqCst), GLR_JOB_CANCELED);
    assert_eq!(seen2.calls.load(Ordering::SeqCst), 1);
    expect(unsafe { glr_job_log_append(job2, c("y").as_ptr(), 1) }, GLR_ERR_JOB_CANCELED);
    ok(unsafe { glr_job_set_cancel_callback(job2, None, ptr::null_mut()) });
    expect(unsafe { glr_job_set_cancel_callback(ptr::null_mut(), None, ptr::null_mut()) }, GLR_ERR_NULL_ARGUMENT);
    unsafe { glr_job_free(job2) };
    teardown(runner, job);
    drop((seen, seen2));
}

#[test]
fn freeing_a_job_with_unsent_text_neither_hangs_nor_crashes() {
    let (server, runner, job, _id) = setup(json!({}));
    server.inject_fault(Fault {
        endpoint: Endpoint::Trace,
        count: 2,
        kind: FaultKind::Delay(Duration::from_millis(500)),
    });
    for i in 0..100 {
        append(job, format!("line {i}\n").as_bytes());
    }
    teardown(runner, job);
    // Another job afterwards still works: the uploader is healthy.
    let (server2, runner2, job2, id2) = setup(json!({}));
    append(job2, b"fine\n");
    assert!(server2.wait_for_job(id2, Duration::from_secs(10), |j| j.trace == b"fine\n").is_some());
    teardown(runner2, job2);
    drop(server);
}

#[test]
fn whole_patches_of_a_long_log_go_up_while_it_is_written_and_its_end_at_the_interval() {
    let (server, runner, job, id) = setup(json!({}));
    // GitLab asks for one upload every 10 minutes: only whole PATCHes may go up before then.
    server.set_config(|c| c.trace_update_interval = 600);
    append(job, b"first\n");
    assert!(server.wait_for_job(id, Duration::from_secs(10), |j| j.trace == b"first\n").is_some());
    // The uploader has just sent "first" and sleeps: until the interval, and at most a second
    // (its safety net). Only being told that whole PATCHes wait makes it send them sooner.
    let uploaded_first = std::time::Instant::now();
    let mib = 1024 * 1024;
    let line: Vec<u8> = (0..999).map(|i| b'a' + (i % 26) as u8).chain(*b"\n").collect();
    let mut expected = b"first\n".to_vec();
    while expected.len() < 3 * mib + mib / 2 {
        append(job, &line);
        expected.extend_from_slice(&line);
    }
    // The 1 MiB blocks are sent as they fill; the last, unfinished one waits.
    let rec = server.wait_for_job(id, Duration::from_secs(20), |j| j.trace.len() >= 3 * mib);
    let stored = rec.expect("whole PATCHes went up before the interval, without a flush").trace;
    let took = uploaded_first.elapsed();
    assert!(took < Duration::from_millis(900), "the whole PATCHes waited for the uploader's next look ({took:?})");
    assert_eq!(stored, expected[..stored.len()], "in order, each byte once");
    std::thread::sleep(Duration::from_millis(1500));
    let stored = server.job(id).unwrap().trace;
    assert!(stored.len() < expected.len(), "the log's unfinished end waits for GitLab's interval");
    unsafe { ok(glr_job_set_success(job, ptr::null())) };
    let rec = server.job(id).unwrap();
    assert_eq!((rec.state.as_str(), rec.trace == expected), ("success", true));
    assert_eq!(rec.checksum_matches, Some(true));
    teardown(runner, job);
}
