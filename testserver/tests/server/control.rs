//! The `/__control/` HTTP interface and the request log.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn get(s: &glr_testserver::TestServer, path: &str) -> Value {
    let r = client().get(format!("{}{path}", s.url())).send().unwrap();
    assert_eq!(r.status(), 200, "{path}");
    json_body(r)
}

#[test]
fn control_interface_round_trip() {
    let s = server();
    let info = get(&s, "/__control/info");
    assert_eq!(info["url"], s.url());
    assert_eq!(info["registration_token"], s.registration_token());

    let r = post(&s, "/__control/registration_tokens", json!({}));
    assert_eq!(r.status(), 201);
    let reg = json_body(r)["token"].as_str().unwrap().to_string();
    assert_eq!(post(&s, "/api/v4/runners", json!({ "token": reg })).status(), 201);

    let r =
        post(&s, "/__control/runners", json!({ "description": "ui runner", "tags": ["gpu"], "run_untagged": false }));
    assert_eq!(r.status(), 201);
    let runner = json_body(r);
    let rtoken = runner["token"].as_str().unwrap().to_string();
    assert!(rtoken.starts_with("glrt-"));
    let runners = get(&s, "/__control/runners");
    let rec = runners.as_array().unwrap().iter().find(|r| r["id"] == runner["id"]).unwrap();
    assert_eq!(rec["tags"], json!(["gpu"]));
    assert_eq!(rec["created_via"], "authentication_token");

    let r = post(&s, "/__control/jobs", json!({ "overrides": { "job_info": { "name": "gpu job" } }, "tags": ["gpu"] }));
    assert_eq!(r.status(), 201);
    let job = json_body(r);
    let id = job["id"].as_i64().unwrap();
    let r = post(&s, "/__control/jobs", json!({ "job_info": { "name": "plain" } }));
    let plain = json_body(r)["id"].as_i64().unwrap();
    assert_eq!(s.job(plain).unwrap().payload["job_info"]["name"], "plain");

    let (st, p, _) = request_job(&s, &rtoken, json!({}));
    assert_eq!(st, 201);
    assert_eq!(p["id"], id);
    assert_eq!(p["token"], job["token"]);
    let jt = job["token"].as_str().unwrap();
    patch_trace(&s, id, jt, Some("0-4"), b"hi \xff\n");
    let rec = get(&s, &format!("/__control/jobs/{id}"));
    assert_eq!(rec["state"], "running");
    assert_eq!(rec["trace_base64"], "aGkg/wo=");
    assert_eq!(rec["trace_size"], 5);
    assert_eq!(rec["trace"], "hi \u{fffd}\n");
    let raw = client().get(format!("{}/__control/jobs/{id}/trace", s.url())).send().unwrap().bytes().unwrap();
    assert_eq!(raw.as_ref(), b"hi \xff\n");
    assert!(get(&s, "/__control/jobs").as_array().unwrap().len() >= 3);
    let fixture = get(&s, "/__control/jobs/1");
    assert!(fixture["artifacts"][0]["size"].as_u64().unwrap() > 0);
    let zip = client().get(format!("{}/__control/jobs/1/artifacts/0", s.url())).send().unwrap().bytes().unwrap();
    assert_eq!(&zip[..2], b"PK");
    assert_eq!(client().get(format!("{}/__control/jobs/424242", s.url())).send().unwrap().status(), 404);

    let r = post(&s, &format!("/__control/jobs/{id}/cancel"), json!({ "graceful": false }));
    assert_eq!(json_body(r)["state"], "canceled");
    assert_eq!(s.job(id).unwrap().state, "canceled");
}

#[test]
fn control_faults_and_settings() {
    let s = server();
    let r = post(
        &s,
        "/__control/faults",
        json!([
            { "endpoint": "verify", "count": 2, "kind": "status", "code": 502, "retry_after": 3 },
            { "endpoint": "job_request", "kind": "delay", "delay_ms": 10 },
            { "endpoint": "trace", "kind": "drop_connection" },
            { "endpoint": "job_update", "kind": "truncated_body" },
            { "endpoint": "artifacts_upload", "kind": "body", "code": 500, "body": "oops" },
            { "endpoint": "any", "kind": "drop_after_handling" }
        ]),
    );
    assert_eq!(r.status(), 201);
    assert_eq!(json_body(r).as_array().unwrap().len(), 6);
    assert_eq!(
        post(&s, "/__control/faults", json!({ "endpoint": "nowhere", "kind": "status", "code": 500 })).status(),
        400
    );
    assert_eq!(post(&s, "/__control/faults", json!({ "endpoint": "trace", "kind": "explode" })).status(), 400);
    let token = s.create_runner_token();
    assert_eq!(post(&s, "/api/v4/runners/verify", json!({ "token": token })).status(), 502);
    let r = client().delete(format!("{}/__control/faults", s.url())).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(get(&s, "/__control/faults").as_array().unwrap().is_empty());
    assert_eq!(post(&s, "/api/v4/runners/verify", json!({ "token": token })).status(), 200);

    let settings = get(&s, "/__control/settings");
    assert_eq!(settings["trace_update_interval"], 3);
    let r = with_json(
        client().patch(format!("{}/__control/settings", s.url())),
        &json!({ "legacy_verify": true, "trace_update_interval": 30, "long_poll_timeout_ms": 0 }),
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.config().trace_update_interval, 30);
    assert!(s.config().long_poll_timeout.is_zero());
    assert_eq!(post(&s, "/api/v4/runners/verify", json!({ "token": token })).text().unwrap(), "200");
    let r = with_json(client().put(format!("{}/__control/settings", s.url())), &json!({ "listen": "0.0.0.0:1" }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = with_json(client().put(format!("{}/__control/settings", s.url())), &json!({ "legacy_verify": "yes" }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn request_log_has_no_tokens() {
    let s = server();
    let reg = s.registration_token();
    let r = post(&s, "/api/v4/runners", json!({ "token": reg, "info": info(&[]) }));
    let rtoken = json_body(r)["token"].as_str().unwrap().to_string();
    let id = s.queue_job(json!({}));
    let (_, p, _) =
        request_job(&s, &rtoken, json!({ "session": { "url": "https://x", "authorization": "bearer-secret" } }));
    let jt = p["token"].as_str().unwrap().to_string();
    patch_trace(&s, id, &jt, Some("0-2"), b"abc");
    update(&s, id, &jt, json!({ "state": "success", "trace": format!("contains {jt}") }));
    client().get(format!("{}/api/v4/jobs/1/artifacts?token={jt}", s.url())).send().unwrap();

    let log = get(&s, "/__control/requests");
    let text = log.to_string();
    for secret in [&reg, &rtoken, &jt, &"bearer-secret".to_string()] {
        assert!(!text.contains(secret.as_str()), "{secret} leaked into the log: {text}");
    }
    let records = s.requests();
    assert_eq!(records.len(), 5);
    let put = records.iter().find(|r| r.method == "PUT").unwrap();
    assert_eq!(put.status, 200);
    assert_eq!(put.body_json.as_ref().unwrap()["state"], "success");
    assert!(put.headers.iter().any(|(k, v)| k == "job-token" && v == "[REDACTED]"));
    assert!(put.response_headers.iter().any(|(k, v)| k == "job-status" && v == "success"));
    let patch = records.iter().find(|r| r.method == "PATCH").unwrap();
    assert_eq!(patch.body_size, 3);
    assert!(patch.body_json.is_none());
    let get_art = records.iter().find(|r| r.method == "GET").unwrap();
    assert!(get_art.path.ends_with("?token=[REDACTED]"));
    assert!(!format!("{records:?}").contains(&jt));
    let r = client().delete(format!("{}/__control/requests", s.url())).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(s.requests().is_empty());
}

/// The request log orders requests exactly: many arrive within one millisecond, and `at_ms`
/// alone cannot say which came first (a test comparing with a marker request's `at_ms` once
/// counted a PATCH answered before the marker as sent after it).
#[test]
fn request_log_numbers_requests_in_the_order_they_arrive() {
    let s = server();
    let c = client();
    let paths: Vec<String> = (0..50).map(|i| format!("/api/v4/__order/{i}")).collect();
    for p in &paths {
        assert_eq!(c.get(format!("{}{p}", s.url())).send().unwrap().status(), 404);
    }
    let records = s.requests();
    let arrivals: Vec<u64> =
        paths.iter().map(|p| records.iter().find(|r| &r.path == p).expect("logged").arrival).collect();
    assert!(arrivals.windows(2).all(|w| w[0] < w[1]), "one after the other, each a later number: {arrivals:?}");
    let same_ms = records.windows(2).filter(|w| w[0].at_ms == w[1].at_ms).count();
    eprintln!("{same_ms} of 49 neighbours shared a millisecond");
    let log = get(&s, "/__control/requests");
    assert_eq!(log[0]["arrival"], json!(arrivals[0]), "the control interface has the number too");
}

#[test]
fn clocks_and_limits_are_settings() {
    let s = server();
    let settings = get(&s, "/__control/settings");
    for (key, gitlab) in [
        ("stale_job_timeout_ms", json!(3_600_000)),
        ("touch_threshold_ms", json!(900_000)),
        ("ack_window_ms", json!(120_000)),
        ("job_token_leeway_ms", json!(300_000)),
        ("job_token_min_lifetime_ms", json!(60_000)),
        ("runner_token_lifetime_ms", Value::Null),
        ("max_trace_size", json!(104_857_600)),
        ("max_artifact_size", json!(104_857_600)),
        ("default_artifacts_expire_in", json!("30 days")),
    ] {
        assert_eq!(settings[key], gitlab, "{key}");
    }
    let change = json!({
        "stale_job_timeout_ms": 2000, "touch_threshold_ms": 1000, "ack_window_ms": 500,
        "job_token_leeway_ms": 100, "job_token_min_lifetime_ms": 0, "runner_token_lifetime_ms": 1500,
        "default_artifacts_expire_in": "1 week", "max_trace_size": 16
    });
    let r = with_json(client().patch(format!("{}/__control/settings", s.url())), &change).send().unwrap();
    assert_eq!(r.status(), 200);
    let c = s.config();
    assert_eq!(c.stale_job_timeout, Duration::from_secs(2));
    assert_eq!(c.touch_threshold, Duration::from_secs(1));
    assert_eq!(c.ack_window, Duration::from_millis(500));
    assert_eq!(c.job_token_leeway, Duration::from_millis(100));
    assert_eq!(c.job_token_min_lifetime, Duration::ZERO);
    assert_eq!(c.runner_token_lifetime, Some(Duration::from_millis(1500)));
    assert_eq!(c.default_artifacts_expire_in, "1 week");
    assert_eq!(c.max_trace_size, 16);
    let off = json!({ "runner_token_lifetime_ms": null });
    assert_eq!(with_json(client().put(format!("{}/__control/settings", s.url())), &off).send().unwrap().status(), 200);
    assert_eq!(s.config().runner_token_lifetime, None);
    let bad = json!({ "ack_window_ms": "soon" });
    assert_eq!(with_json(client().put(format!("{}/__control/settings", s.url())), &bad).send().unwrap().status(), 400);
}

#[test]
fn control_runners_are_validated_like_gitlabs() {
    let s = server();
    let r = post(&s, "/__control/runners", json!({ "maximum_timeout": 599 }));
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("at least 10 minutes"));
    assert_eq!(post(&s, "/__control/runners", json!({ "maximum_timeout": 600 })).status(), 201);
}
