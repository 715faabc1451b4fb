//! Fault injection: for every kind of failure GitLab (or the network) produces, on the log upload
//! (PATCH) and on the job update (PUT), the stored trace equals everything appended (after
//! masking) byte for byte, the reported checksum matches it, and the job ends as reported.

mod common;

use common::*;
use gitlab_runner_api::ffi::job::*;
use gitlab_runner_api::ffi::runner::*;
use glr_testserver::{Endpoint, Fault, FaultKind, TestServer, DEFAULT_MASKED_VALUE};
use serde_json::json;
use std::ptr;
use std::time::Duration;

/// The faults of the matrix, each for two requests in a row (within the five attempts).
fn faults() -> Vec<(&'static str, FaultKind)> {
    vec![
        ("500", FaultKind::Status { code: 500, retry_after: None }),
        ("502", FaultKind::Status { code: 502, retry_after: None }),
        ("503", FaultKind::Status { code: 503, retry_after: None }),
        ("429 with Retry-After", FaultKind::Status { code: 429, retry_after: Some(1) }),
        ("dropped connection", FaultKind::DropConnection),
        ("answer lost after handling", FaultKind::DropAfterHandling),
        ("delayed answer", FaultKind::Delay(Duration::from_millis(300))),
    ]
}

/// Takes a job, logs (with a secret split across appends), flushes, and finishes it while
/// `fault` hits `endpoint`; returns the server, the job id and the text GitLab must hold.
fn run(endpoint: Endpoint, fault: FaultKind, lose_tail: bool) -> (TestServer, i64, Vec<u8>) {
    let server = server();
    let id = server.queue_job(json!({}));
    let runner = register(&server);
    let job = take_job(&server, runner);
    let secret = DEFAULT_MASKED_VALUE.as_bytes();
    let mut expected = Vec::new();
    for i in 0..50 {
        let line = format!("line {i:02} of the log ✓\n");
        append(job, line.as_bytes());
        expected.extend_from_slice(line.as_bytes());
    }
    append(job, b"secret: ");
    append(job, &secret[..3]);
    append(job, &secret[3..]);
    append(job, b"\n");
    expected.extend_from_slice(b"secret: [MASKED]\n");
    ok(unsafe { glr_job_log_flush(job) });
    if lose_tail {
        // GitLab lost the end of what it had acknowledged; the next PATCH learns it from a 416.
        let stored = server.job(id).unwrap().trace.len();
        server.truncate_trace(id, stored / 2);
    }
    server.inject_fault(Fault { endpoint, count: 2, kind: fault });
    for i in 0..20 {
        let line = format!("after the fault {i:02}\n");
        append(job, line.as_bytes());
        expected.extend_from_slice(line.as_bytes());
    }
    if endpoint == Endpoint::Trace {
        ok(unsafe { glr_job_log_flush(job) });
    }
    ok(unsafe { glr_job_set_success(job, ptr::null()) });
    unsafe {
        glr_job_free(job);
        glr_runner_free(runner);
    }
    (server, id, expected)
}

fn check(server: &TestServer, id: i64, expected: &[u8], what: &str) {
    let rec = server.job(id).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&rec.trace),
        String::from_utf8_lossy(expected),
        "{what}: the stored trace is everything appended, once"
    );
    assert_eq!(rec.checksum_matches, Some(true), "{what}: checksum");
    assert_eq!(rec.reported_bytesize, Some(expected.len() as i64), "{what}: bytesize");
    assert_eq!(rec.state, "success", "{what}");
}

#[test]
fn every_fault_on_the_log_upload_loses_nothing() {
    for (name, fault) in faults() {
        let (server, id, expected) = run(Endpoint::Trace, fault, false);
        check(&server, id, &expected, &format!("PATCH {name}"));
    }
}

#[test]
fn every_fault_on_the_job_update_loses_nothing() {
    for (name, fault) in faults() {
        let (server, id, expected) = run(Endpoint::JobUpdate, fault, false);
        check(&server, id, &expected, &format!("PUT {name}"));
    }
}

#[test]
fn a_server_that_lost_its_tail_gets_it_again() {
    let (server, id, expected) = run(Endpoint::Trace, FaultKind::Delay(Duration::ZERO), true);
    check(&server, id, &expected, "416 after lost tail");
    let (server, id, expected) = run(Endpoint::JobUpdate, FaultKind::Status { code: 503, retry_after: None }, true);
    check(&server, id, &expected, "416 after lost tail, then PUT 503");
}

#[test]
fn a_patch_stored_but_never_answered_is_not_sent_twice() {
    // GitLab stores the PATCH but every answer is lost (five attempts): the flush fails; more
    // text is appended; the next upload learns from a 416 that its earlier bytes did land.
    let server = server();
    let id = server.queue_job(json!({}));
    let runner = register(&server);
    let job = take_job(&server, runner);
    append(job, b"first\n");
    ok(unsafe { glr_job_log_flush(job) });
    server.inject_fault(Fault { endpoint: Endpoint::Trace, count: 1, kind: FaultKind::DropAfterHandling });
    server.inject_fault(Fault { endpoint: Endpoint::Trace, count: 9, kind: FaultKind::DropConnection });
    append(job, b"second\n");
    expect(unsafe { glr_job_log_flush(job) }, gitlab_runner_api::ffi::status::GLR_ERR_NETWORK);
    server.clear_faults();
    append(job, b"third\n");
    ok(unsafe { glr_job_set_success(job, ptr::null()) });
    check(&server, id, b"first\nsecond\nthird\n", "unanswered PATCH");
    unsafe {
        glr_job_free(job);
        glr_runner_free(runner);
    }
}
