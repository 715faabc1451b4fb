//! GitLab's job clocks, shortened: stale running jobs, the touch threshold, the two-phase ack
//! window and its retries.

use crate::common::*;
use glr_testserver::{Config, TestServer};
use serde_json::json;
use std::time::{Duration, Instant};

pub fn clocked(f: impl FnOnce(&mut Config)) -> TestServer {
    let mut cfg = Config { long_poll_timeout: Duration::from_millis(300), ..Config::default() };
    f(&mut cfg);
    TestServer::start_with(cfg)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Call `f` every 300 ms for `total`.
fn every_300ms_for(total: Duration, mut f: impl FnMut()) {
    let end = Instant::now() + total;
    while Instant::now() < end {
        f();
        std::thread::sleep(ms(300));
    }
}

#[test]
fn clocks_default_to_gitlabs() {
    let c = Config::default();
    assert_eq!(c.stale_job_timeout, Duration::from_secs(3600));
    assert_eq!(c.touch_threshold, Duration::from_secs(15 * 60));
    assert_eq!(c.ack_window, Duration::from_secs(120));
    assert_eq!(c.job_token_leeway, Duration::from_secs(300));
    assert_eq!(c.job_token_min_lifetime, Duration::from_secs(60));
    assert_eq!(c.runner_token_lifetime, None);
}

#[test]
fn a_running_job_without_updates_is_dropped_as_stuck() {
    let s = clocked(|c| c.stale_job_timeout = ms(1500));
    let (id, token) = running_job(&s);
    std::thread::sleep(ms(800));
    assert_eq!(s.job(id).unwrap().state, "running", "not before the timeout");
    let j = s.wait_for_job(id, Duration::from_secs(3), |j| j.state != "running").unwrap();
    assert_eq!(j.state, "failed");
    assert_eq!(j.failure_reason.as_deref(), Some("stuck_or_timeout_failure"));
    let r = update(&s, id, &token, json!({ "state": "running" }));
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "job-status").as_deref(), Some("failed"));
}

#[test]
fn running_updates_keep_a_job_alive_once_past_the_touch_threshold() {
    let s = clocked(|c| {
        c.stale_job_timeout = ms(2000);
        c.touch_threshold = ms(1000);
    });
    let (id, token) = running_job(&s);
    every_300ms_for(Duration::from_secs(4), || {
        assert_eq!(update(&s, id, &token, json!({ "state": "running" })).status(), 200);
    });
    let j = s.job(id).unwrap();
    assert_eq!(j.state, "running", "{:?}", j.failure_reason);
    assert!(j.seconds_since_update < 1.5, "touched about once a second: {}", j.seconds_since_update);
}

#[test]
fn updates_within_the_touch_threshold_refresh_nothing() {
    // A threshold longer than the timeout: frequent updates never move the last update.
    let s = clocked(|c| {
        c.stale_job_timeout = ms(1500);
        c.touch_threshold = Duration::from_secs(10);
    });
    let (id, token) = running_job(&s);
    let mut answers = Vec::new();
    every_300ms_for(Duration::from_secs(3), || {
        answers.push(update(&s, id, &token, json!({ "state": "running" })).status().as_u16());
    });
    let j = s.job(id).unwrap();
    assert_eq!(j.state, "failed");
    assert_eq!(j.failure_reason.as_deref(), Some("stuck_or_timeout_failure"));
    assert_eq!(answers.first(), Some(&200));
    assert_eq!(answers.last(), Some(&403), "{answers:?}");
}

#[test]
fn appended_trace_refreshes_a_job_but_a_416_does_not() {
    let s = clocked(|c| {
        c.stale_job_timeout = ms(1500);
        c.touch_threshold = Duration::ZERO;
    });
    let (appending, a_token) = running_job(&s);
    let (mismatching, m_token) = running_job(&s);
    let mut offset = 0usize;
    every_300ms_for(Duration::from_secs(3), || {
        let range = format!("{offset}-{}", offset + 1);
        if patch_trace(&s, appending, &a_token, Some(&range), b"ab").status() == 202 {
            offset += 2;
        }
        let _ = patch_trace(&s, mismatching, &m_token, Some("5-6"), b"ab");
    });
    assert_eq!(s.job(appending).unwrap().state, "running");
    assert!(offset >= 10, "the appends were accepted: {offset}");
    let m = s.job(mismatching).unwrap();
    assert_eq!((m.state.as_str(), m.failure_reason.as_deref()), ("failed", Some("stuck_or_timeout_failure")));
    assert!(m.trace.is_empty());
}

fn two_phase_runner(s: &TestServer) -> (String, serde_json::Value) {
    (s.create_runner_token(), json!({ "info": info(&["two_phase_job_commit"]) }))
}

#[test]
fn an_unacknowledged_job_is_failed_and_retried_as_a_new_job() {
    let s = clocked(|c| c.ack_window = ms(1000));
    let (runner, two_phase) = two_phase_runner(&s);
    let id = s.queue_job(json!({ "job_info": { "name": "retry-me" } }));
    let (st, p, _) = request_job(&s, &runner, two_phase.clone());
    assert_eq!((st, p["id"].as_i64()), (201, Some(id)));
    let old_token = p["token"].as_str().unwrap().to_string();
    std::thread::sleep(ms(600));
    assert_eq!(s.job(id).unwrap().state, "pending", "still waiting inside the window");
    let old = s.wait_for_job(id, Duration::from_secs(3), |j| j.state != "pending").unwrap();
    assert_eq!(old.state, "failed");
    assert_eq!(old.failure_reason.as_deref(), Some("runner_provisioning_timeout"));
    let new_id = old.retried_as.expect("retried");
    assert_ne!(new_id, id);
    let new = s.job(new_id).unwrap();
    assert_eq!((new.state.as_str(), new.retry_of, new.retries), ("pending", Some(id), 1));
    assert_ne!(new.token, old_token);

    let (st, p, _) = request_job(&s, &runner, two_phase);
    assert_eq!((st, p["id"].as_i64()), (201, Some(new_id)), "the retry is queued again");
    assert_eq!(p["job_info"]["name"], "retry-me");
    assert_eq!(p["token"].as_str(), Some(new.token.as_str()));
    assert_eq!(p["job_info"]["id"], new_id);
    let r = update(&s, id, &old_token, json!({ "state": "running" }));
    assert_eq!(r.status(), 403, "the old job is over");
    assert_eq!(header(&r, "job-status").as_deref(), Some("failed"));
    let new_token = p["token"].as_str().unwrap();
    assert_eq!(update(&s, new_id, new_token, json!({ "state": "running" })).status(), 200);
}

#[test]
fn pending_keep_alives_restart_the_ack_wait() {
    let s = clocked(|c| c.ack_window = ms(1000));
    let (runner, two_phase) = two_phase_runner(&s);
    let id = s.queue_job(json!({}));
    let (_, p, _) = request_job(&s, &runner, two_phase);
    let token = p["token"].as_str().unwrap().to_string();
    every_300ms_for(Duration::from_millis(2500), || {
        assert_eq!(update(&s, id, &token, json!({ "state": "pending" })).status(), 200);
    });
    let j = s.job(id).unwrap();
    assert_eq!((j.state.as_str(), j.retried_as), ("pending", None));
    assert_eq!(update(&s, id, &token, json!({ "state": "running" })).status(), 200);
    assert_eq!(s.job(id).unwrap().state, "running");
}

#[test]
fn ack_timeouts_are_retried_twice_then_the_job_stays_failed() {
    let s = clocked(|c| c.ack_window = ms(300));
    let (runner, two_phase) = two_phase_runner(&s);
    let mut id = s.queue_job(json!({}));
    for attempt in 0..3 {
        let (st, p, _) = request_job(&s, &runner, two_phase.clone());
        assert_eq!((st, p["id"].as_i64()), (201, Some(id)), "attempt {attempt}");
        let j = s.wait_for_job(id, Duration::from_secs(3), |j| j.state == "failed").unwrap();
        assert_eq!(j.retries, attempt);
        match j.retried_as {
            Some(next) => id = next,
            None => assert_eq!(attempt, 2, "GitLab retries runner_provisioning_timeout twice"),
        }
    }
    assert_eq!(request_job(&s, &runner, two_phase).0, 204, "nothing left in the queue");
}
