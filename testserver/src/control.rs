//! The HTTP control interface under `/__control/` (documented in README.md): the same operations
//! as the Rust API, for C tests, shell scripts and people testing their own runners.

use crate::model::{Endpoint, Fault, FaultKind, JobRecord, RunnerOptions};
use crate::routes::common::{json_response, message};
use crate::state::Shared;
use crate::util::base64_encode;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

type Ctl = State<Arc<Shared>>;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/__control/info", get(info))
        .route("/__control/registration_tokens", post(new_registration_token))
        .route("/__control/runners", get(runners).post(create_runner))
        .route("/__control/jobs", get(jobs).post(queue_job))
        .route("/__control/jobs/{id}", get(job))
        .route("/__control/jobs/{id}/trace", get(job_trace))
        .route("/__control/jobs/{id}/artifacts/{index}", get(job_artifact))
        .route("/__control/jobs/{id}/cancel", post(cancel))
        .route("/__control/faults", get(faults).post(add_faults).delete(clear_faults))
        .route("/__control/requests", get(requests).delete(clear_requests))
        .route("/__control/settings", get(settings).put(change_settings).patch(change_settings))
}

fn bad_request(msg: &str) -> Response {
    json_response(400, &json!({ "error": msg }))
}

/// An empty body means `{}`.
fn body_json(body: &Bytes) -> Result<Value, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| bad_request(&format!("body is not JSON: {e}")))
}

async fn info(State(s): Ctl) -> Response {
    let reg = s.lock().default_registration_token.clone();
    json_response(200, &json!({ "url": s.base_url, "registration_token": reg, "version": env!("CARGO_PKG_VERSION") }))
}

async fn new_registration_token(State(s): Ctl) -> Response {
    json_response(201, &json!({ "token": s.new_registration_token() }))
}

/// Parses `{description, tags, run_untagged, locked, paused, access_level, maximum_timeout}`.
pub(crate) fn runner_options(v: &Value) -> Result<RunnerOptions, String> {
    let mut o = RunnerOptions::default();
    if let Some(d) = v.get("description").and_then(Value::as_str) {
        o.description = Some(d.to_string());
    }
    if let Some(tags) = v.get("tags") {
        o.tags = match tags {
            Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            Value::String(s) => s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
            _ => return Err("tags must be an array of strings".into()),
        };
    }
    let flag = |k: &str, d: bool| v.get(k).and_then(Value::as_bool).unwrap_or(d);
    o.run_untagged = flag("run_untagged", o.run_untagged);
    o.locked = flag("locked", o.locked);
    o.paused = flag("paused", o.paused);
    if let Some(a) = v.get("access_level").and_then(Value::as_str) {
        if a != "not_protected" && a != "ref_protected" {
            return Err("access_level must be not_protected or ref_protected".into());
        }
        o.access_level = a.to_string();
    }
    o.maximum_timeout = v.get("maximum_timeout").and_then(Value::as_i64);
    // The same Ci::Runner validation as registration.
    if o.maximum_timeout.is_some_and(|t| t < 600) {
        return Err("maximum_timeout needs to be at least 10 minutes".into());
    }
    Ok(o)
}

async fn create_runner(State(s): Ctl, body: Bytes) -> Response {
    let opts = match body_json(&body).and_then(|v| runner_options(&v).map_err(|e| bad_request(&e))) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let (id, token) = s.create_runner(&opts);
    let expires = s.lock().runners.get(&id).and_then(|r| r.token_expires_at).map(crate::util::iso8601_millis);
    json_response(201, &json!({ "id": id, "token": token, "token_expires_at": expires }))
}

async fn runners(State(s): Ctl) -> Response {
    json_response(200, &json!(s.runner_records()))
}

/// Body: the overrides object itself, or `{"overrides": {...}, "tags": [...]}`.
async fn queue_job(State(s): Ctl, body: Bytes) -> Response {
    let v = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !v.is_object() {
        return bad_request("body must be a JSON object");
    }
    let wrapped = v.get("overrides").is_some() || v.get("tags").is_some();
    let (overrides, tags) = if wrapped {
        let tags = v
            .get("tags")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        (v.get("overrides").cloned().unwrap_or(json!({})), tags)
    } else {
        (v, Vec::new())
    };
    let (id, token) = s.queue_job(&overrides, tags);
    json_response(201, &json!({ "id": id, "token": token }))
}

/// A job record as JSON: the trace both as (lossy UTF-8) text and as base64.
pub(crate) fn job_json(r: &JobRecord) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    v["trace"] = json!(String::from_utf8_lossy(&r.trace));
    v["trace_base64"] = json!(base64_encode(&r.trace));
    v["trace_size"] = json!(r.trace.len());
    if let Some(Value::Array(arts)) = v.get_mut("artifacts") {
        for (a, rec) in arts.iter_mut().zip(&r.artifacts) {
            a["size"] = json!(rec.data.len());
            a["data_base64"] = json!(base64_encode(&rec.data));
        }
    }
    v
}

async fn jobs(State(s): Ctl) -> Response {
    let all: Vec<Value> = s.lock().jobs.values().map(|j| job_json(&j.record())).collect();
    json_response(200, &Value::Array(all))
}

fn with_job<T>(s: &Shared, raw: &str, f: impl FnOnce(&crate::state::Job) -> T) -> Result<T, Response> {
    let id: i64 = raw.parse().map_err(|_| bad_request("job id must be an integer"))?;
    let inner = s.lock();
    inner.jobs.get(&id).map(f).ok_or_else(|| message(404, "404 Job Not Found"))
}

async fn job(State(s): Ctl, Path(id): Path<String>) -> Response {
    match with_job(&s, &id, |j| job_json(&j.record())) {
        Ok(v) => json_response(200, &v),
        Err(r) => r,
    }
}

fn octets(data: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(data));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    r
}

async fn job_trace(State(s): Ctl, Path(id): Path<String>) -> Response {
    match with_job(&s, &id, |j| j.trace.clone()) {
        Ok(t) => octets(t),
        Err(r) => r,
    }
}

async fn job_artifact(State(s): Ctl, Path((id, index)): Path<(String, usize)>) -> Response {
    match with_job(&s, &id, |j| j.artifacts.get(index).map(|a| a.data.clone())) {
        Ok(Some(d)) => octets(d),
        Ok(None) => message(404, "404 Artifact Not Found"),
        Err(r) => r,
    }
}

async fn cancel(State(s): Ctl, Path(id): Path<String>, body: Bytes) -> Response {
    let v = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let graceful = v.get("graceful").and_then(Value::as_bool).unwrap_or(false);
    let Ok(id) = id.parse::<i64>() else { return bad_request("job id must be an integer") };
    match s.cancel_job(id, graceful) {
        Some(state) => json_response(200, &json!({ "id": id, "state": state })),
        None => message(404, "404 Job Not Found"),
    }
}

/// `{"endpoint": "trace", "count": 2, "kind": "status", "code": 500, "retry_after": 1}`; kinds:
/// `status` (code, retry_after), `delay` (delay_ms), `drop_connection`, `truncated_body`,
/// `body` (code, body), `drop_after_handling`.
pub(crate) fn fault_from_json(v: &Value) -> Result<Fault, String> {
    let name = v.get("endpoint").and_then(Value::as_str).unwrap_or("any");
    let endpoint = Endpoint::from_name(name).ok_or_else(|| format!("unknown endpoint {name:?}"))?;
    let count = v.get("count").and_then(Value::as_u64).unwrap_or(1) as u32;
    let code = v.get("code").and_then(Value::as_u64).map(|c| c as u16);
    let kind = match v.get("kind").and_then(Value::as_str).unwrap_or("") {
        "status" => FaultKind::Status {
            code: code.ok_or("status faults need a code")?,
            retry_after: v.get("retry_after").and_then(Value::as_u64),
        },
        "delay" => FaultKind::Delay(Duration::from_millis(
            v.get("delay_ms").and_then(Value::as_u64).ok_or("delay faults need delay_ms")?,
        )),
        "drop_connection" => FaultKind::DropConnection,
        "truncated_body" => FaultKind::TruncatedBody,
        "drop_after_handling" => FaultKind::DropAfterHandling,
        "body" => FaultKind::Body {
            code: code.unwrap_or(200),
            body: v.get("body").and_then(Value::as_str).unwrap_or("").to_string(),
        },
        other => return Err(format!("unknown fault kind {other:?}")),
    };
    if let FaultKind::Status { code, .. } | FaultKind::Body { code, .. } = &kind {
        if !(100..=999).contains(code) {
            return Err(format!("invalid status code {code}"));
        }
    }
    Ok(Fault { endpoint, count, kind })
}

pub(crate) fn fault_to_json(f: &Fault) -> Value {
    let mut v = json!({ "endpoint": f.endpoint.name(), "count": f.count });
    match &f.kind {
        FaultKind::Status { code, retry_after } => {
            v["kind"] = json!("status");
            v["code"] = json!(code);
            v["retry_after"] = json!(retry_after);
        }
        FaultKind::Delay(d) => {
            v["kind"] = json!("delay");
            v["delay_ms"] = json!(d.as_millis() as u64);
        }
        FaultKind::DropConnection => v["kind"] = json!("drop_connection"),
        FaultKind::TruncatedBody => v["kind"] = json!("truncated_body"),
        FaultKind::DropAfterHandling => v["kind"] = json!("drop_after_handling"),
        FaultKind::Body { code, body } => {
            v["kind"] = json!("body");
            v["code"] = json!(code);
            v["body"] = json!(body);
        }
    }
    v
}

async fn add_faults(State(s): Ctl, body: Bytes) -> Response {
    let v = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let list = match v {
        Value::Array(a) => a,
        other => vec![other],
    };
    let mut parsed = Vec::new();
    for f in &list {
        match fault_from_json(f) {
            Ok(f) => parsed.push(f),
            Err(e) => return bad_request(&e),
        }
    }
    let mut inner = s.lock();
    inner.faults.extend(parsed);
    let all: Vec<Value> = inner.faults.iter().map(fault_to_json).collect();
    json_response(201, &Value::Array(all))
}

async fn faults(State(s): Ctl) -> Response {
    let all: Vec<Value> = s.lock().faults.iter().map(fault_to_json).collect();
    json_response(200, &Value::Array(all))
}

async fn clear_faults(State(s): Ctl) -> Response {
    s.lock().faults.clear();
    json_response(200, &json!([]))
}

async fn requests(State(s): Ctl) -> Response {
    let log = s.lock().requests.clone();
    json_response(200, &json!(crate::reqlog::read_all(log, &s.secrets())))
}

async fn clear_requests(State(s): Ctl) -> Response {
    s.lock().requests.clear();
    json_response(200, &json!([]))
}

pub(crate) fn settings_json(c: &crate::Config) -> Value {
    json!({
        "listen": c.listen.to_string(),
        "long_poll_timeout_ms": c.long_poll_timeout.as_millis() as u64,
        "trace_update_interval": c.trace_update_interval,
        "registration_tokens_enabled": c.registration_tokens_enabled,
        "legacy_verify": c.legacy_verify,
        "trace_persist_delays": c.trace_persist_delays,
        "max_trace_size": c.max_trace_size,
        "max_artifact_size": c.max_artifact_size,
        "two_phase_commit": c.two_phase_commit,
        "artifacts_direct_download": c.artifacts_direct_download,
        "log_requests": c.log_requests,
        "default_artifacts_expire_in": c.default_artifacts_expire_in,
        "stale_job_timeout_ms": millis(c.stale_job_timeout),
        "touch_threshold_ms": millis(c.touch_threshold),
        "ack_window_ms": millis(c.ack_window),
        "job_token_leeway_ms": millis(c.job_token_leeway),
        "job_token_min_lifetime_ms": millis(c.job_token_min_lifetime),
        "runner_token_lifetime_ms": c.runner_token_lifetime.map(millis),
    })
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// Applies the keys present in `v` (unknown keys are an error, `listen` is read-only).
pub(crate) fn apply_settings(c: &mut crate::Config, v: &Value) -> Result<(), String> {
    let Value::Object(map) = v else { return Err("settings must be a JSON object".into()) };
    for (k, val) in map {
        let bad = || format!("invalid value for {k}");
        let uint = || val.as_u64().ok_or_else(bad);
        let ms = || uint().map(Duration::from_millis);
        let boolean = || val.as_bool().ok_or_else(bad);
        match k.as_str() {
            "long_poll_timeout_ms" => c.long_poll_timeout = Duration::from_millis(uint()?),
            "trace_update_interval" => c.trace_update_interval = uint()?,
            "registration_tokens_enabled" => c.registration_tokens_enabled = boolean()?,
            "legacy_verify" => c.legacy_verify = boolean()?,
            "trace_persist_delays" => c.trace_persist_delays = uint()? as u32,
            "max_trace_size" => c.max_trace_size = uint()? as usize,
            "max_artifact_size" => c.max_artifact_size = uint()? as usize,
            "two_phase_commit" => c.two_phase_commit = boolean()?,
            "artifacts_direct_download" => c.artifacts_direct_download = boolean()?,
            "log_requests" => c.log_requests = boolean()?,
            "default_artifacts_expire_in" => {
                c.default_artifacts_expire_in = val.as_str().ok_or_else(bad)?.to_string();
            }
            "stale_job_timeout_ms" => c.stale_job_timeout = ms()?,
            "touch_threshold_ms" => c.touch_threshold = ms()?,
            "ack_window_ms" => c.ack_window = ms()?,
            "job_token_leeway_ms" => c.job_token_leeway = ms()?,
            "job_token_min_lifetime_ms" => c.job_token_min_lifetime = ms()?,
            // null switches expiry off again.
            "runner_token_lifetime_ms" => c.runner_token_lifetime = if val.is_null() { None } else { Some(ms()?) },
            "listen" => return Err("listen cannot be changed while running".into()),
            other => return Err(format!("unknown setting {other:?}")),
        }
    }
    Ok(())
}

async fn settings(State(s): Ctl) -> Response {
    json_response(200, &settings_json(&s.config()))
}

async fn change_settings(State(s): Ctl, body: Bytes) -> Response {
    let v = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut cfg = s.config.lock().unwrap_or_else(|e| e.into_inner());
    let mut next = cfg.clone();
    if let Err(e) = apply_settings(&mut next, &v) {
        return bad_request(&e);
    }
    *cfg = next;
    json_response(200, &settings_json(&cfg))
}
