//! `POST /api/v4/jobs/request` (job assignment, long polling, two-phase commit) and
//! `PUT /api/v4/jobs/:id` (state updates, protocol §3).

use super::common::{
    authenticate_job, check, forbidden, grape_error, integer_value, json_response, no_content, path_id, text,
    with_header, JobAuth, Params,
};
use crate::clocks::{job_token_expiry, touch};
use crate::payload_template::{finalize_for_runner, FAILURE_REASONS};
use crate::state::{Inner, JobState, Shared};
use crate::util::crc32_label;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What the Rails side decided for a job request, or that Workhorse should hold it.
enum Decision {
    Respond(Response),
    Hold(watch::Receiver<u64>),
}

pub(crate) async fn request(State(s): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let p = match Params::parse(&uri, &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut errors = Vec::new();
    let token = p.required_string("token", &mut errors).unwrap_or_default();
    let last_update = p.string("last_update", &mut errors);
    let system_id = p.string("system_id", &mut errors);
    let info = p.object("info", &mut errors).map(|o| Value::Object(o.clone()));
    if let Some(Value::Object(i)) = &info {
        if i.get("features").is_some_and(|f| !f.is_object() && !f.is_null()) {
            errors.push("info[features] is invalid".into());
        }
    }
    p.object("session", &mut errors);
    if let Err(r) = check(errors) {
        return r;
    }
    let cfg = s.config();
    // Workhorse only long-polls JSON requests that carry both token and last_update.
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json"));
    let polling = !cfg.long_poll_timeout.is_zero() && is_json && last_update.is_some();

    let decision = {
        let mut inner = s.lock();
        decide(&s, &mut inner, &token, system_id.as_deref(), info.as_ref(), last_update.as_deref(), polling)
    };
    let resp = match decision {
        Decision::Respond(r) => r,
        Decision::Hold(mut rx) => {
            match tokio::time::timeout(cfg.long_poll_timeout, rx.changed()).await {
                // The queue changed while held: go to "Rails" at once, which assigns a job if
                // one fits (GitLab's Workhorse would answer 204 and the runner re-ask at once;
                // we save that round trip).
                Ok(Ok(())) => {
                    let mut inner = s.lock();
                    match decide(&s, &mut inner, &token, system_id.as_deref(), info.as_ref(), None, false) {
                        Decision::Respond(r) => r,
                        Decision::Hold(_) => no_content(),
                    }
                }
                // Workhorse's timeout answer carries no X-GitLab-Last-Update.
                _ => no_content(),
            }
        }
    };
    if polling || !cfg.long_poll_timeout.is_zero() {
        with_header(resp, "gitlab-ci-builds-polling", "yes")
    } else {
        resp
    }
}

/// GitLab's `post '/request'` + `acquire_ci_job!`, run under the state lock so that a job is
/// given to exactly one runner however many ask at once.
fn decide(
    s: &Shared,
    inner: &mut Inner,
    token: &str,
    system_id: Option<&str>,
    info: Option<&Value>,
    last_update: Option<&str>,
    polling: bool,
) -> Decision {
    let Some(runner_id) = inner.runner_by_token(token).map(|r| r.id) else {
        return Decision::Respond(forbidden(None));
    };
    inner.heartbeat(runner_id, system_id, info);
    let runner = &inner.runners[&runner_id];
    if !runner.active {
        let r = with_header(no_content(), "x-gitlab-last-update", &inner.queue_value);
        return Decision::Respond(r);
    }
    if last_update == Some(inner.queue_value.as_str()) {
        if polling {
            return Decision::Hold(s.tick.subscribe());
        }
        let r = with_header(no_content(), "x-gitlab-last-update", &inner.queue_value);
        return Decision::Respond(r);
    }
    let Some(job_id) = inner.find_job_for(runner_id) else {
        let r = with_header(no_content(), "x-gitlab-last-update", &inner.queue_value);
        return Decision::Respond(r);
    };
    let sid = system_id.unwrap_or("<legacy>").to_string();
    let cfg = s.config();
    let two_phase = cfg.two_phase_commit && inner.manager_feature(runner_id, &sid, "two_phase_job_commit");
    let (description, tags, max_timeout) = {
        let r = &inner.runners[&runner_id];
        (r.description.clone(), r.tags.clone(), r.maximum_timeout)
    };
    inner.pending.remove(job_id);
    let Some(job) = inner.jobs.get_mut(&job_id) else {
        return Decision::Respond(no_content());
    };
    job.runner_id = Some(runner_id);
    job.system_id = Some(sid);
    let now = Instant::now();
    if two_phase {
        // Assigned but still pending until the runner confirms with PUT state=running.
        job.waiting_ack = true;
        job.ack_wait_since = Some(now);
    } else {
        job.state = JobState::Running;
        job.updated_at = now;
    }
    let queued = job.queued_at.elapsed().as_secs_f64();
    finalize_for_runner(&mut job.payload, runner_id, description.as_deref(), &tags, max_timeout, queued);
    // The job token (a JWT in GitLab) is issued now, for the timeout the runner was given.
    let timeout = job.payload["runner_info"]["timeout"].as_i64();
    job.token_expires_at = Some(job_token_expiry(&cfg, timeout, now));
    // A job found answers 201 without X-GitLab-Last-Update.
    Decision::Respond(json_response(201, &job.payload))
}

/// GitLab's `Ci::Runner::Backoff`: 1, 2, 4 ... 64 seconds depending on how long the final state
/// has been pending.
fn backoff_seconds(elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs < 2.0 {
        return 1;
    }
    let exp = secs.log2().floor() as u32;
    2u64.saturating_pow(exp).clamp(1, 64)
}

/// `PUT /api/v4/jobs/:id`.
pub(crate) async fn update(
    State(s): State<Arc<Shared>>,
    Path(raw_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = match Params::parse(&uri, &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    // Grape validates all params (token is required in the params: the JOB-TOKEN header alone
    // is not enough for this endpoint) before authentication.
    let mut errors = Vec::new();
    let token = p.required_string("token", &mut errors).unwrap_or_default();
    let id = match path_id(&raw_id) {
        Ok(id) => Some(id),
        Err(_) => {
            errors.push("id is invalid".into());
            None
        }
    };
    let state = p.string("state", &mut errors).unwrap_or_default();
    let top_checksum = p.string("checksum", &mut errors);
    let failure_reason = p.string("failure_reason", &mut errors);
    let exit_code = p.integer("exit_code", &mut errors);
    let (out_checksum, out_bytesize) = match p.object("output", &mut errors) {
        Some(o) => {
            let c = match o.get("checksum") {
                Some(Value::String(c)) => Some(c.clone()),
                Some(Value::Null) | None => None,
                Some(_) => {
                    errors.push("output[checksum] is invalid".into());
                    None
                }
            };
            let b = o
                .get("bytesize")
                .filter(|v| !v.is_null())
                .and_then(|v| integer_value(v, "output[bytesize]", &mut errors));
            (c, b)
        }
        None => (None, None),
    };
    if let Err(r) = check(errors) {
        return r;
    }
    let Some(id) = id else { return grape_error("id is invalid") };
    let checksum = out_checksum.or(top_checksum);
    let cfg = s.config();

    let mut inner = s.lock();
    if let Err(r) = authenticate_job(&mut inner, id, &token, JobAuth::UPDATE) {
        return r;
    }
    let Some(job) = inner.jobs.get_mut(&id) else { return forbidden(None) };
    job.updates += 1;
    if let Some(c) = &checksum {
        job.reported_checksum = Some(c.clone());
        job.reported_bytesize = out_bytesize;
        let size_ok = out_bytesize.is_none_or(|b| b == job.trace.len() as i64);
        job.checksum_matches = Some(*c == crc32_label(&job.trace) && size_ok);
    }
    if failure_reason.is_some() {
        job.reported_failure_reason.clone_from(&failure_reason);
    }

    // Two-phase commit (UpdateBuildStateService#handle_runner_ack_workflow).
    let now = Instant::now();
    if job.waiting_ack {
        match state.as_str() {
            // Keep-alive while preparing: the wait starts again (the Redis TTL is renewed).
            "pending" => {
                job.ack_wait_since = Some(now);
                return respond(200, job.state, None);
            }
            // `run!`, which also updates the job.
            "running" => {
                job.waiting_ack = false;
                job.ack_wait_since = None;
                job.state = JobState::Running;
                job.updated_at = now;
            }
            _ => return respond(400, job.state, None),
        }
    }

    // A final state with a checksum while the trace is "still being persisted": 202 + backoff.
    let accept_available = state != "running" && checksum.is_some();
    if accept_available && !job.trace.is_empty() && job.persist_202s < cfg.trace_persist_delays {
        let since = *job.pending_state_at.get_or_insert_with(Instant::now);
        // GitLab gives up waiting after 5 minutes and applies the state anyway.
        if since.elapsed() < Duration::from_secs(300) {
            job.persist_202s += 1;
            return respond(202, job.state, Some(backoff_seconds(since.elapsed())));
        }
    }

    // UpdateBuildStateService#update_build_state!
    let code = match state.as_str() {
        "running" => {
            touch(job, cfg.touch_threshold, now);
            200
        }
        "success" => {
            job.state = match job.state {
                JobState::Canceling => JobState::Canceled,
                _ => JobState::Success,
            };
            200
        }
        "failed" => {
            job.exit_code = exit_code;
            match job.state {
                JobState::Canceling => job.state = JobState::Canceled,
                _ => {
                    job.state = JobState::Failed;
                    let reason = failure_reason.as_deref().unwrap_or("unknown_failure");
                    let known = FAILURE_REASONS.contains(&reason);
                    job.failure_reason = Some(if known { reason } else { "unknown_failure" }.to_string());
                }
            }
            200
        }
        _ => 400,
    };
    respond(code, job.state, None)
}

/// GitLab's answer to a PUT: `Job-Status`, the interval only when there is a backoff, and the
/// status code as plain-text body.
fn respond(code: u16, state: JobState, backoff: Option<u64>) -> Response {
    let r = with_header(text(code, &code.to_string()), "job-status", state.as_str());
    match backoff {
        Some(b) => with_header(r, "x-gitlab-trace-update-interval", &b.to_string()),
        None => r,
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_seconds;
    use std::time::Duration;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_seconds(Duration::from_millis(10)), 1);
        assert_eq!(backoff_seconds(Duration::from_secs(3)), 2);
        assert_eq!(backoff_seconds(Duration::from_secs(9)), 8);
        assert_eq!(backoff_seconds(Duration::from_secs(1000)), 64);
    }
}
