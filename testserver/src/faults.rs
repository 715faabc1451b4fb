//! Fault injection: which endpoint a request is, and the canned answers of `Status`/`Body` faults.
//! The faults that need the connection or the real answer are carried out in gateway.rs.

use crate::model::Endpoint;
use crate::routes::common::{json_response, message, status, with_header};
use axum::body::Body;
use axum::http::{header, HeaderValue, Method};
use axum::response::Response;

/// The runner-API endpoint of a request (after trailing-slash normalisation), if any.
pub(crate) fn classify(method: &Method, path: &str) -> Option<Endpoint> {
    let rest = path.strip_prefix("/api/v4/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let m = method.as_str();
    Some(match (m, parts.as_slice()) {
        ("POST", ["runners"]) => Endpoint::Register,
        ("DELETE", ["runners"]) => Endpoint::Unregister,
        ("POST", ["runners", "verify"]) => Endpoint::Verify,
        ("DELETE", ["runners", "managers"]) => Endpoint::UnregisterManager,
        ("POST", ["runners", "reset_authentication_token"]) => Endpoint::ResetToken,
        ("POST", ["jobs", "request"]) => Endpoint::JobRequest,
        ("PUT", ["jobs", _]) => Endpoint::JobUpdate,
        ("PATCH", ["jobs", _, "trace"]) => Endpoint::Trace,
        ("POST", ["jobs", _, "artifacts"]) => Endpoint::ArtifactsUpload,
        ("GET", ["jobs", _, "artifacts"]) => Endpoint::ArtifactsDownload,
        _ => return None,
    })
}

/// `FaultKind::Status`: `{"message":"503 Service Unavailable"}` and an optional `Retry-After`.
pub(crate) fn status_answer(code: u16, retry_after: Option<u64>) -> Response {
    let reason = status(code).canonical_reason().unwrap_or("");
    let r = message(code, format!("{code} {reason}").trim_end().to_string());
    match retry_after {
        Some(secs) => with_header(r, "retry-after", &secs.to_string()),
        None => r,
    }
}

/// `FaultKind::Body`: JSON content type when the body is JSON, else text/plain.
pub(crate) fn body_answer(code: u16, body: &str) -> Response {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        let mut r = json_response(code, &v);
        *r.body_mut() = Body::from(body.to_string());
        return r;
    }
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status(code);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_runner_api_paths() {
        assert_eq!(classify(&Method::POST, "/api/v4/runners"), Some(Endpoint::Register));
        assert_eq!(classify(&Method::PUT, "/api/v4/jobs/7"), Some(Endpoint::JobUpdate));
        assert_eq!(classify(&Method::PATCH, "/api/v4/jobs/7/trace"), Some(Endpoint::Trace));
        assert_eq!(classify(&Method::GET, "/api/v4/jobs/7/artifacts"), Some(Endpoint::ArtifactsDownload));
        assert_eq!(classify(&Method::GET, "/__control/jobs"), None);
    }
}
