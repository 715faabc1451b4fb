//! The middleware in front of every handler: it buffers the request body, applies an injected
//! fault, and writes the request log (and the optional stderr line). Control requests pass
//! straight through, neither logged nor faulted.

use crate::faults;
use crate::model::FaultKind;
use crate::reqlog;
use crate::routes::common::message;
use crate::server::{ConnKill, RawTarget};
use crate::state::Shared;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Slack on top of the size limits, so that an over-limit upload is still read whole and
/// answered with a proper 413 instead of a reset connection.
const BODY_SLACK: usize = 1024 * 1024;

pub(crate) async fn gateway(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/__control") {
        return next.run(req).await;
    }
    let at_ms = s.started.elapsed().as_millis() as u64;
    let arrival = s.arrivals.fetch_add(1, Ordering::SeqCst);
    let target = req.extensions().get::<RawTarget>().map(|t| t.0.clone()).unwrap_or_else(|| req.uri().to_string());
    let kill = req.extensions().get::<ConnKill>().cloned();
    let endpoint = faults::classify(req.method(), req.uri().path());
    let fault = endpoint.and_then(|e| s.take_fault(e));
    let cfg = s.config();

    let (parts, body) = req.into_parts();
    let limit = cfg.max_artifact_size.max(cfg.max_trace_size) + BODY_SLACK;
    let body = axum::body::to_bytes(body, limit).await;
    let bytes = body.as_ref().cloned().unwrap_or_default();
    let mut record =
        reqlog::start_record(parts.method.as_str(), &target, &parts.headers, &bytes, &s.secrets(), at_ms, arrival);
    if body.is_err() {
        let resp = message(413, "413 Request Entity Too Large");
        finish(&s, &cfg, record, Some(&resp));
        return resp;
    }
    let rebuild = |bytes: Bytes| Request::from_parts(parts, Body::from(bytes));

    let resp = match fault {
        Some(FaultKind::Status { code, retry_after }) => faults::status_answer(code, retry_after),
        Some(FaultKind::Body { code, body }) => faults::body_answer(code, &body),
        Some(FaultKind::DropConnection) => {
            finish(&s, &cfg, record, None);
            return drop_connection(kill).await;
        }
        Some(FaultKind::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(rebuild(bytes)).await
        }
        Some(FaultKind::TruncatedBody) => truncate(next.run(rebuild(bytes)).await).await,
        Some(FaultKind::DropAfterHandling) => {
            let handled = next.run(rebuild(bytes)).await;
            record.record.response_headers = reqlog::redact_headers(handled.headers(), &s.secrets());
            finish(&s, &cfg, record, None);
            return drop_connection(kill).await;
        }
        None => next.run(rebuild(bytes)).await,
    };
    finish(&s, &cfg, record, Some(&resp));
    resp
}

fn finish(s: &Shared, cfg: &crate::Config, mut logged: reqlog::Logged, resp: Option<&Response>) {
    let record = &mut logged.record;
    if let Some(r) = resp {
        record.status = r.status().as_u16();
        // The secrets as they are now: tokens created by this very request (registration, reset)
        // are redacted too.
        record.response_headers = reqlog::redact_headers(r.headers(), &s.secrets());
    }
    if cfg.log_requests {
        let status = if record.status == 0 { "dropped".to_string() } else { record.status.to_string() };
        eprintln!("glr-testserver: {} {} -> {status}", record.method, record.path);
    }
    s.lock().requests.push(logged);
}

/// Close the connection without an answer: the connection task watches `kill` and drops the
/// connection, which also drops this future, so it never needs to finish.
async fn drop_connection(kill: Option<ConnKill>) -> Response {
    match kill {
        Some(k) => {
            k.0.notify_one();
            std::future::pending::<Response>().await
        }
        None => message(500, "500 cannot drop this connection"),
    }
}

/// Keep status and headers, send only the first half of the body (correct Content-Length).
async fn truncate(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let cut = bytes.slice(..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(cut))
}
