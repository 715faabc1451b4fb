//! Fault injection per endpoint and count.

use crate::common::*;
use glr_testserver::{Endpoint, Fault, FaultKind};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[test]
fn status_fault_with_retry_after_for_n_requests() {
    let s = server();
    let token = s.create_runner_token();
    s.inject_fault(Fault {
        endpoint: Endpoint::Verify,
        count: 2,
        kind: FaultKind::Status { code: 503, retry_after: Some(7) },
    });
    for _ in 0..2 {
        let r = post(&s, "/api/v4/runners/verify", json!({ "token": token }));
        assert_eq!(r.status(), 503);
        assert_eq!(header(&r, "retry-after").as_deref(), Some("7"));
        assert_eq!(json_body(r)["message"], "503 Service Unavailable");
    }
    assert_eq!(post(&s, "/api/v4/runners/verify", json!({ "token": token })).status(), 200);
    // The faulted requests were not handled: no manager heartbeat came from them... but the
    // third did create one.
    assert_eq!(s.runners()[0].managers.len(), 1);
    let statuses: Vec<u16> = s.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 200]);
}

#[test]
fn faults_only_hit_their_endpoint_and_any_hits_all() {
    let s = server();
    let token = s.create_runner_token();
    s.inject_fault(Fault {
        endpoint: Endpoint::JobRequest,
        count: 1,
        kind: FaultKind::Status { code: 500, retry_after: None },
    });
    assert_eq!(post(&s, "/api/v4/runners/verify", json!({ "token": token })).status(), 200);
    assert_eq!(request_job(&s, &token, json!({})).0, 500);
    assert_eq!(request_job(&s, &token, json!({})).0, 204);
    s.inject_fault(Fault {
        endpoint: Endpoint::Any,
        count: 2,
        kind: FaultKind::Status { code: 429, retry_after: Some(1) },
    });
    assert_eq!(post(&s, "/api/v4/runners/verify", json!({ "token": token })).status(), 429);
    // The control interface is never faulted.
    assert_eq!(client().get(format!("{}/__control/info", s.url())).send().unwrap().status(), 200);
    assert_eq!(request_job(&s, &token, json!({})).0, 429);
    assert_eq!(request_job(&s, &token, json!({})).0, 204);
}

#[test]
fn body_fault_sends_the_given_body() {
    let s = server();
    let token = s.create_runner_token();
    s.inject_fault(Fault {
        endpoint: Endpoint::Register,
        count: 1,
        kind: FaultKind::Body { code: 201, body: "{\"id\":".into() },
    });
    s.inject_fault(Fault {
        endpoint: Endpoint::Verify,
        count: 1,
        kind: FaultKind::Body { code: 200, body: "{\"id\":1}".into() },
    });
    let r = post(&s, "/api/v4/runners", json!({ "token": s.registration_token() }));
    assert_eq!(r.status(), 201);
    assert!(header(&r, "content-type").unwrap().starts_with("text/plain"));
    assert_eq!(r.text().unwrap(), "{\"id\":");
    assert!(s.runners().iter().all(|r| r.created_via != "registration_token"), "not handled");
    let r = post(&s, "/api/v4/runners/verify", json!({ "token": token }));
    assert_eq!(header(&r, "content-type").as_deref(), Some("application/json"));
}

#[test]
fn delay_then_normal_handling() {
    let s = server();
    let (id, token) = running_job(&s);
    s.inject_fault(Fault { endpoint: Endpoint::Trace, count: 1, kind: FaultKind::Delay(Duration::from_millis(300)) });
    let t = Instant::now();
    assert_eq!(patch_trace(&s, id, &token, Some("0-1"), b"ab").status(), 202);
    assert!(t.elapsed() >= Duration::from_millis(280));
    assert_eq!(s.job(id).unwrap().trace, b"ab");
}

#[test]
fn dropped_connection_is_not_handled() {
    let s = server();
    let (id, token) = running_job(&s);
    s.inject_fault(Fault { endpoint: Endpoint::Trace, count: 1, kind: FaultKind::DropConnection });
    let r = client()
        .patch(format!("{}/api/v4/jobs/{id}/trace", s.url()))
        .header("JOB-TOKEN", &token)
        .header("Content-Range", "0-1")
        .body("ab")
        .send();
    assert!(r.is_err(), "the client sees a connection error: {r:?}");
    assert!(s.job(id).unwrap().trace.is_empty());
    assert_eq!(s.requests().last().unwrap().status, 0);
    assert_eq!(patch_trace(&s, id, &token, Some("0-1"), b"ab").status(), 202);
}

#[test]
fn drop_after_handling_applies_the_update() {
    let s = server();
    let (id, token) = running_job(&s);
    s.inject_fault(Fault { endpoint: Endpoint::JobUpdate, count: 1, kind: FaultKind::DropAfterHandling });
    let r = with_json(
        client().put(format!("{}/api/v4/jobs/{id}", s.url())),
        &json!({ "token": token, "state": "success" }),
    )
    .send();
    assert!(r.is_err());
    assert_eq!(s.job(id).unwrap().state, "success", "GitLab applied it, the answer was lost");
    // The retry learns it from a 403 with Job-Status: success.
    let r = update(&s, id, &token, json!({ "state": "success" }));
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "job-status").as_deref(), Some("success"));
}

#[test]
fn truncated_body_still_assigns_the_job() {
    let s = server();
    let token = s.create_runner_token();
    let id = s.queue_job(json!({}));
    s.inject_fault(Fault { endpoint: Endpoint::JobRequest, count: 1, kind: FaultKind::TruncatedBody });
    let r = post(&s, "/api/v4/jobs/request", json!({ "token": token }));
    assert_eq!(r.status(), 201);
    let len: usize = header(&r, "content-length").unwrap().parse().unwrap();
    let text = r.text().unwrap();
    assert_eq!(text.len(), len);
    assert!(serde_json::from_str::<Value>(&text).is_err(), "cut JSON");
    assert_eq!(s.job(id).unwrap().state, "running");
    assert_eq!(request_job(&s, &token, json!({})).0, 204);
}
