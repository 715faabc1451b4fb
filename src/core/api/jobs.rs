//! Job-token endpoints of a running job: `PUT /api/v4/jobs/:id` (commit, keep-alive, final
//! update) and `PATCH /api/v4/jobs/:id/trace` (log upload), with typed replies.

use super::{job_path, Answer, JobSignals, JOB_TOKEN};
use crate::core::error::Result;
use crate::core::http::{self, Call, Method, Request};
use serde::Serialize;
use serde_json::value::RawValue;

/// Where a job-token request goes: GitLab's base URL, the job and its token.
#[derive(Clone, Copy)]
pub struct JobEndpoint<'a> {
    pub api_url: &'a str,
    pub job_id: i64,
    pub token: &'a str,
}

/// The state a job update reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateState {
    /// Two-phase commit (`output` None) or keep-alive (`output` with checksum and size).
    Running,
    Success,
    /// With GitLab's name of the failure reason, and the script's exit code if not 0.
    Failed {
        reason: String,
        exit_code: Option<i32>,
    },
}

/// The log as the update reports it: `crc32:%08x` of exactly the bytes sent, and their count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceSummary {
    pub checksum: String,
    pub bytesize: usize,
}

/// A `PUT /jobs/:id` body. `info` is the runner's `info` object as JSON text.
pub struct Update<'a> {
    pub info: &'a RawValue,
    pub state: UpdateState,
    pub output: Option<TraceSummary>,
}

#[derive(Serialize)]
struct UpdateBody<'a> {
    info: &'a RawValue,
    token: &'a str,
    state: &'static str,
    /// Also at the top level: GitLab versions before `output` read it there.
    #[serde(skip_serializing_if = "Option::is_none")]
    checksum: Option<&'a str>,
    /// `{}` for the commit: GitLab requires the key.
    output: OutputBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
}

#[derive(Serialize)]
struct OutputBody<'a> {
    #[serde(flatten)]
    summary: Option<&'a TraceSummary>,
}

/// What GitLab made of a job update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// 200: applied.
    Applied,
    /// 202: accepted, not applied yet (the trace is being persisted): repeat after the interval.
    Accepted,
    /// 412: GitLab wants the whole trace again (`trace_reset`).
    TraceResetRequested,
    /// 403: the job token is refused (the job is not running any more, or was never ours).
    Forbidden,
    /// 404: GitLab no longer has the job (deleted with its pipeline or project): the official
    /// runner aborts the job.
    Gone,
    /// Any other status, after the transport's retries.
    Unexpected,
}

pub struct UpdateReply {
    pub outcome: UpdateOutcome,
    pub signals: JobSignals,
    pub answer: Answer,
}

fn update_body<'a>(token: &'a str, update: &'a Update<'a>) -> UpdateBody<'a> {
    let (state, failure_reason, exit_code) = match &update.state {
        UpdateState::Running => ("running", None, None),
        UpdateState::Success => ("success", None, None),
        UpdateState::Failed { reason, exit_code } => ("failed", Some(reason.as_str()), exit_code.filter(|c| *c != 0)),
    };
    let is_final = !matches!(update.state, UpdateState::Running);
    UpdateBody {
        info: update.info,
        token,
        state,
        checksum: update.output.as_ref().filter(|_| is_final).map(|o| o.checksum.as_str()),
        output: OutputBody { summary: update.output.as_ref() },
        failure_reason,
        exit_code,
    }
}

/// `PUT /api/v4/jobs/:id`. Safe to repeat (GitLab applies the same state once).
pub fn update(to: JobEndpoint<'_>, update: &Update<'_>, call: &Call) -> Result<UpdateReply> {
    let body = update_body(to.token, update);
    let req = Request::new(Method::PUT, to.api_url, &job_path(to.job_id))
        .header(JOB_TOKEN, to.token)
        .json(&body)
        .idempotent();
    let resp = http::send(req, call)?;
    let outcome = match resp.status {
        200 => UpdateOutcome::Applied,
        202 => UpdateOutcome::Accepted,
        412 => UpdateOutcome::TraceResetRequested,
        403 => UpdateOutcome::Forbidden,
        404 => UpdateOutcome::Gone,
        _ => UpdateOutcome::Unexpected,
    };
    Ok(UpdateReply { outcome, signals: JobSignals::of(&resp), answer: Answer::of(&resp) })
}

/// What GitLab made of a log upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceOutcome {
    /// 202: stored; GitLab's trace is now `size` bytes (`Range: 0-size`; None without `Range`,
    /// which GitLab always sends).
    Stored { size: Option<usize> },
    /// 416: the upload did not start at GitLab's end, which is `size`.
    RangeMismatch { size: usize },
    /// 403: the job token is refused.
    Forbidden,
    /// Any other status (or a 416 without `Range`), after the transport's retries.
    Unexpected,
}

pub struct TraceReply {
    pub outcome: TraceOutcome,
    pub signals: JobSignals,
    pub answer: Answer,
}

/// `PATCH /api/v4/jobs/:id/trace` of `body` at GitLab offset `start`. An empty body is a probe
/// that stores nothing and learns GitLab's size. Safe to repeat: a repeat is refused with 416.
pub fn patch_trace(to: JobEndpoint<'_>, start: usize, body: bytes::Bytes, call: &Call) -> Result<TraceReply> {
    let req = Request::new(Method::PATCH, to.api_url, &format!("{}/trace", job_path(to.job_id)))
        .header(JOB_TOKEN, to.token)
        .header("content-range", content_range(start, body.len()))
        .text(body)
        .idempotent();
    let resp = http::send(req, call)?;
    let size = resp.header("range").and_then(parse_range);
    let outcome = match (resp.status, size) {
        (202, size) => TraceOutcome::Stored { size },
        (416, Some(size)) => TraceOutcome::RangeMismatch { size },
        (403, _) => TraceOutcome::Forbidden,
        _ => TraceOutcome::Unexpected,
    };
    Ok(TraceReply { outcome, signals: JobSignals::of(&resp), answer: Answer::of(&resp) })
}

/// `Content-Range` as GitLab's runner sends it: `start-endInclusive`, no unit. An empty probe
/// says `start-start` (GitLab reads only the start).
fn content_range(start: usize, len: usize) -> String {
    let end = if len == 0 { start } else { start + len - 1 };
    format!("{start}-{end}")
}

/// Parses GitLab's `Range: 0-N` (N = bytes stored, an exclusive end).
fn parse_range(value: &str) -> Option<usize> {
    let (start, end) = value.trim().split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    end.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_gitlab_s() {
        assert_eq!(content_range(0, 1024), "0-1023");
        assert_eq!(content_range(7, 0), "7-7");
        assert_eq!(parse_range("0-11"), Some(11));
        assert_eq!(parse_range("0-0"), Some(0));
        assert_eq!(parse_range("5-11"), None);
        assert_eq!(parse_range("bytes"), None);
    }

    #[test]
    fn update_bodies_are_the_official_runner_s() {
        let info = RawValue::from_string(r#"{"name":"x"}"#.into()).unwrap();
        let body =
            |state, output| serde_json::to_string(&update_body("T", &Update { info: &info, state, output })).unwrap();
        let sum = || Some(TraceSummary { checksum: "crc32:00000001".into(), bytesize: 5 });
        assert_eq!(
            body(UpdateState::Running, None),
            r#"{"info":{"name":"x"},"token":"T","state":"running","output":{}}"#
        );
        assert_eq!(
            body(UpdateState::Running, sum()),
            r#"{"info":{"name":"x"},"token":"T","state":"running","output":{"checksum":"crc32:00000001","bytesize":5}}"#
        );
        assert_eq!(
            body(UpdateState::Failed { reason: "script_failure".into(), exit_code: Some(3) }, sum()),
            r#"{"info":{"name":"x"},"token":"T","state":"failed","checksum":"crc32:00000001","output":{"checksum":"crc32:00000001","bytesize":5},"failure_reason":"script_failure","exit_code":3}"#
        );
    }
}
