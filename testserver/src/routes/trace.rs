//! `PATCH /api/v4/jobs/:id/trace` (protocol §4): append-only, offset-checked trace upload.

use super::common::{authenticate_job, forbidden, job_token, message, path_id, status, with_header, JobAuth};
use crate::clocks::touch;
use crate::state::Shared;
use crate::util::ruby_to_i_before_dash;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use std::sync::Arc;

pub(crate) async fn patch(
    State(s): State<Arc<Shared>>,
    Path(raw_id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = match path_id(&raw_id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    // The body is the raw trace, so the token comes from the query or the JOB-TOKEN header.
    let query = super::common::Params::parse(&uri, &HeaderMap::new(), &[]).ok();
    let token = job_token(query.as_ref(), &headers);
    let cfg = s.config();

    let mut inner = s.lock();
    if let Err(r) = authenticate_job(&mut inner, id, &token, JobAuth::TRACE) {
        return r;
    }
    let hidden_secrets: Vec<String> = vec![inner.default_registration_token.clone()];
    let Some(job) = inner.jobs.get_mut(&id) else { return forbidden(None) };
    job.trace_patches += 1;
    // Checked after authentication, as GitLab does.
    let Some(range) = headers.get("content-range") else {
        return message(400, "400 Missing header Content-Range");
    };
    let range = String::from_utf8_lossy(range.as_bytes()).into_owned();
    // GitLab reads only the start of Content-Range and computes the end from the body size.
    let start = ruby_to_i_before_dash(&range);
    let body_end = start.saturating_add(body.len() as i64);
    // GitLab: `size / 1.megabyte >= ci_jobs_trace_size_limit` (0 = no limit), which for a limit of
    // L MB is `size >= L MiB` (see Config::max_trace_size).
    if cfg.max_trace_size > 0 && body_end >= cfg.max_trace_size as i64 {
        job.drop_with("trace_size_exceeded");
        return message(403, "403 Forbidden");
    }
    // Gitlab::Ci::Trace#append writes only when start == current size and returns the size
    // after the call; the answer is 202 when that equals start + body size, else 416. So a stale
    // start whose start + length happens to equal the stored size gets 202 and stores nothing.
    // Only a write touches the job (Trace#write), so a 416 refreshes nothing.
    if start == job.trace.len() as i64 {
        let mut chunk = body.to_vec();
        let mut secrets = hidden_secrets;
        secrets.push(job.token.clone());
        hide_secrets(&mut chunk, &secrets);
        job.trace.extend_from_slice(&chunk);
        touch(job, cfg.touch_threshold, std::time::Instant::now());
    }
    let size = job.trace.len() as i64;
    if size != body_end {
        let r = message(416, "416 Range Not Satisfiable");
        return with_header(r, "range", &format!("0-{size}"));
    }
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status(202);
    let r = with_header(r, "job-status", job.state.as_str());
    let r = with_header(r, "range", &format!("0-{size}"));
    with_header(r, "x-gitlab-trace-update-interval", &cfg.trace_update_interval.to_string())
}

/// GitLab's `hide_secrets`: the project's registration token and the job token are replaced by
/// `x` repeated to the same length in each appended chunk, so offsets do not move.
fn hide_secrets(chunk: &mut [u8], secrets: &[String]) {
    for secret in secrets.iter().map(String::as_bytes).filter(|s| !s.is_empty()) {
        // memmem: a linear scan per byte would make the server, not the runner, the bottleneck
        // of every throughput measurement.
        let finder = memchr::memmem::Finder::new(secret);
        let mut at = 0;
        while let Some(found) = finder.find(&chunk[at..]) {
            let start = at + found;
            chunk[start..start + secret.len()].fill(b'x');
            at = start + secret.len();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hides_tokens_in_place() {
        let mut c = b"token glcbt-abc and glcbt-abc!".to_vec();
        super::hide_secrets(&mut c, &["glcbt-abc".to_string()]);
        assert_eq!(&c, b"token xxxxxxxxx and xxxxxxxxx!");
    }
}
