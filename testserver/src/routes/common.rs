//! What every runner-API handler shares: Grape-like parameter handling, GitLab's error bodies,
//! and job-token authentication (`authenticate_job!`).

use crate::state::{Inner, JobState};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// Request parameters the way Grape sees them: query string merged with a JSON or
/// form-urlencoded body (body wins).
pub(crate) struct Params(pub Map<String, Value>);

impl Params {
    pub(crate) fn parse(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Params, Response> {
        let mut map = Map::new();
        if let Some(q) = uri.query() {
            for (k, v) in serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default() {
                map.insert(k, Value::String(v));
            }
        }
        let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if ctype.starts_with("application/x-www-form-urlencoded") {
            let text = String::from_utf8_lossy(body);
            for (k, v) in serde_urlencoded::from_str::<Vec<(String, String)>>(&text).unwrap_or_default() {
                map.insert(k, Value::String(v));
            }
        } else if ctype.starts_with("application/json") && !body.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(o)) => map.extend(o),
                // Grape answers a body its JSON parser rejects with 400.
                _ => return Err(grape_error("message body does not match declared format")),
            }
        }
        Ok(Params(map))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// `requires :key, type: String`.
    pub(crate) fn required_string(&self, key: &str, errors: &mut Vec<String>) -> Option<String> {
        match self.get(key) {
            None => {
                errors.push(format!("{key} is missing"));
                None
            }
            Some(_) => self.string(key, errors),
        }
    }

    /// `optional :key, type: String`: numbers and booleans coerce, objects and arrays do not.
    pub(crate) fn string(&self, key: &str, errors: &mut Vec<String>) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                errors.push(format!("{key} is invalid"));
                None
            }
        }
    }

    /// `type: Boolean` with Grape's coercions.
    pub(crate) fn boolean(&self, key: &str, errors: &mut Vec<String>) -> Option<bool> {
        let v = self.get(key)?;
        let parsed = match v {
            Value::Bool(b) => Some(*b),
            Value::Number(n) if n.as_i64() == Some(1) => Some(true),
            Value::Number(n) if n.as_i64() == Some(0) => Some(false),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "t" | "1" | "yes" | "y" | "on" => Some(true),
                "false" | "f" | "0" | "no" | "n" | "off" => Some(false),
                _ => None,
            },
            _ => None,
        };
        if parsed.is_none() {
            errors.push(format!("{key} is invalid"));
        }
        parsed
    }

    /// `type: Integer`: JSON integers or strings of digits.
    pub(crate) fn integer(&self, key: &str, errors: &mut Vec<String>) -> Option<i64> {
        integer_value(self.get(key)?, key, errors)
    }

    /// `type: Hash`.
    pub(crate) fn object(&self, key: &str, errors: &mut Vec<String>) -> Option<&Map<String, Value>> {
        match self.get(key)? {
            Value::Object(o) => Some(o),
            _ => {
                errors.push(format!("{key} is invalid"));
                None
            }
        }
    }
}

pub(crate) fn integer_value(v: &Value, name: &str, errors: &mut Vec<String>) -> Option<i64> {
    let parsed = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    if parsed.is_none() {
        errors.push(format!("{name} is invalid"));
    }
    parsed
}

/// Grape's parameter validation failure: 400 `{"error":"a is missing, b is invalid"}`.
pub(crate) fn grape_error(msg: &str) -> Response {
    json_response(400, &json!({ "error": msg }))
}

pub(crate) fn check(errors: Vec<String>) -> Result<(), Response> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(grape_error(&errors.join(", ")))
    }
}

pub(crate) fn json_response(code: u16, v: &Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    *r.status_mut() = status(code);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// GitLab's `render_api_error!`: `{"message": ...}`.
pub(crate) fn message(code: u16, msg: impl Into<Value>) -> Response {
    json_response(code, &json!({ "message": msg.into() }))
}

/// `forbidden!(reason)`: `403 Forbidden` or `403 Forbidden - <reason>`.
pub(crate) fn forbidden(reason: Option<&str>) -> Response {
    match reason {
        Some(r) => message(403, format!("403 Forbidden - {r}")),
        None => message(403, "403 Forbidden"),
    }
}

pub(crate) fn text(code: u16, body: &str) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status(code);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

pub(crate) fn no_content() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

pub(crate) fn with_header(mut r: Response, name: &'static str, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
    r
}

pub(crate) fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `requires :id, type: Integer` on the path.
pub(crate) fn path_id(raw: &str) -> Result<i64, Response> {
    raw.parse::<i64>().map_err(|_| grape_error("id is invalid"))
}

/// The job token of a request: the `token` parameter, else the `JOB-TOKEN` header.
pub(crate) fn job_token(params: Option<&Params>, headers: &HeaderMap) -> String {
    let from_param = params.and_then(|p| match p.get("token") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
        None => None,
    });
    from_param.or_else(|| headers.get("job-token").and_then(|v| v.to_str().ok()).map(str::to_owned)).unwrap_or_default()
}

/// How an endpoint authenticates its job token (GitLab's `authenticate_job!` arguments).
#[derive(Clone, Copy)]
pub(crate) struct JobAuth {
    /// A two-phase-commit job still waiting for acknowledgement passes (only `PUT /jobs/:id`).
    pub allow_waiting_ack: bool,
    /// An expired token also drops its job with `job_token_expired` (`fail_on_expired_token`).
    pub fail_on_expired_token: bool,
}

impl JobAuth {
    pub(crate) const UPDATE: JobAuth = JobAuth { allow_waiting_ack: true, fail_on_expired_token: true };
    pub(crate) const TRACE: JobAuth = JobAuth { allow_waiting_ack: false, fail_on_expired_token: true };
    pub(crate) const ARTIFACTS: JobAuth = JobAuth { allow_waiting_ack: false, fail_on_expired_token: false };
}

/// GitLab's `authenticate_job!`, in its order: the job of the URL must exist (else plain 403);
/// the token must be a job's token (else plain 403); an expired token gets 403 "Job token has
/// expired" with its job's `Job-Status` (and drops that job when `fail_on_expired_token`); the
/// token's job must be executing (else 403 "Job is not processing on runner" with its
/// `Job-Status`); it must be the URL's job (else plain 403).
pub(crate) fn authenticate_job(inner: &mut Inner, id: i64, token: &str, auth: JobAuth) -> Result<(), Response> {
    if !inner.jobs.contains_key(&id) {
        return Err(forbidden(None));
    }
    let Some(found_id) = inner.job_id_by_token(token) else {
        return Err(forbidden(None));
    };
    let Some(found) = inner.jobs.get_mut(&found_id) else { return Err(forbidden(None)) };
    if found.token_expired(Instant::now()) {
        if auth.fail_on_expired_token {
            found.drop_with("job_token_expired");
        }
        let r = forbidden(Some("Job token has expired"));
        return Err(with_header(r, "job-status", found.state.as_str()));
    }
    let waiting = auth.allow_waiting_ack && found.waiting_ack && found.state == JobState::Pending;
    if !found.state.executing() && !waiting {
        let r = forbidden(Some("Job is not processing on runner"));
        return Err(with_header(r, "job-status", found.state.as_str()));
    }
    if found_id != id {
        return Err(forbidden(None));
    }
    Ok(())
}
