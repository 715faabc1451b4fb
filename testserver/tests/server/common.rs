//! Shared helpers: a blocking HTTP client and the usual setup steps.

use glr_testserver::{Config, TestServer};
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{json, Value};
use std::time::Duration;

pub fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(20)).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A server with a short long-poll so that tests never wait long.
pub fn server() -> TestServer {
    TestServer::start_with(Config { long_poll_timeout: Duration::from_millis(300), ..Config::default() })
}

pub fn with_json(rb: RequestBuilder, body: &Value) -> RequestBuilder {
    rb.header("Content-Type", "application/json").body(body.to_string())
}

pub fn post(s: &TestServer, path: &str, body: Value) -> Response {
    with_json(client().post(format!("{}{path}", s.url())), &body).send().unwrap()
}

pub fn delete(s: &TestServer, path: &str, body: Value) -> Response {
    with_json(client().delete(format!("{}{path}", s.url())), &body).send().unwrap()
}

pub fn header(r: &Response, name: &str) -> Option<String> {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_string())
}

pub fn json_body(r: Response) -> Value {
    let text = r.text().unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// The official runner's features map with the given ones true.
pub fn features(on: &[&str]) -> Value {
    let all = [
        "variables",
        "image",
        "services",
        "artifacts",
        "cache",
        "fallback_cache_keys",
        "shared",
        "upload_multiple_artifacts",
        "upload_raw_artifacts",
        "session",
        "terminal",
        "refspecs",
        "masking",
        "proxy",
        "raw_variables",
        "artifacts_exclude",
        "multi_build_steps",
        "trace_reset",
        "trace_checksum",
        "trace_size",
        "vault_secrets",
        "cancelable",
        "return_exit_code",
        "service_variables",
        "service_multiple_aliases",
        "image_executor_opts",
        "service_executor_opts",
        "cancel_gracefully",
        "native_steps_integration",
        "two_phase_job_commit",
        "job_inputs",
    ];
    let mut m = serde_json::Map::new();
    for f in all {
        m.insert(f.into(), json!(on.contains(&f)));
    }
    Value::Object(m)
}

pub fn info(on: &[&str]) -> Value {
    json!({ "name": "test-runner", "version": "1.0.0", "revision": "abcdef01", "platform": "linux",
            "architecture": "amd64", "executor": "custom", "features": features(on), "config": {"gpus": ""} })
}

/// Request a job with a glrt- runner; returns (status, body-or-null, response headers as pairs).
pub fn request_job(s: &TestServer, token: &str, extra: Value) -> (u16, Value, Vec<(String, String)>) {
    let mut body = json!({ "token": token, "system_id": "s_0123456789ab", "info": info(&["cancel_gracefully"]) });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let r = post(s, "/api/v4/jobs/request", body);
    let status = r.status().as_u16();
    let headers = r.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let text = r.text().unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, v, headers)
}

pub fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Queue a default job, pick it with a fresh glrt- runner; returns (job id, job token).
pub fn running_job(s: &TestServer) -> (i64, String) {
    running_job_with(s, json!({}))
}

pub fn running_job_with(s: &TestServer, overrides: Value) -> (i64, String) {
    let token = s.create_runner_token();
    let id = s.queue_job(overrides);
    let (status, payload, _) = request_job(s, &token, json!({}));
    assert_eq!(status, 201, "{payload}");
    assert_eq!(payload["id"], id);
    (id, payload["token"].as_str().unwrap().to_string())
}

pub fn patch_trace(s: &TestServer, id: i64, token: &str, range: Option<&str>, body: &[u8]) -> Response {
    let mut rb = client()
        .patch(format!("{}/api/v4/jobs/{id}/trace?debug_trace=false", s.url()))
        .header("JOB-TOKEN", token)
        .header("Content-Type", "text/plain");
    if let Some(r) = range {
        rb = rb.header("Content-Range", r);
    }
    rb.body(body.to_vec()).send().unwrap()
}

pub fn update(s: &TestServer, id: i64, token: &str, body: Value) -> Response {
    let mut b = json!({ "token": token, "info": info(&[]) });
    if let (Value::Object(m), Value::Object(e)) = (&mut b, body) {
        m.extend(e);
    }
    with_json(client().put(format!("{}/api/v4/jobs/{id}", s.url())), &b).header("JOB-TOKEN", token).send().unwrap()
}

pub fn crc(data: &[u8]) -> String {
    format!("crc32:{:08x}", crc32fast::hash(data))
}
