//! GitLab's runner API on the wire, and nothing else: every endpoint path, header name and
//! status interpretation of the protocol lives under this module (`reference/gitlab-runner-
//! protocol.md` is the detail). It knows requests and typed replies, not jobs or runners: the
//! state machines in `job.rs` and `runner.rs` decide what a reply means for them.
//!
//! - [`runners`]: register, verify, unregister, request a job (runner token);
//! - [`jobs`]: job updates (`PUT /jobs/:id`) and log uploads (`PATCH /jobs/:id/trace`) (job token);
//! - [`upload`], [`download`]: artifact uploads and dependency downloads (job token, streamed).

pub mod download;
pub mod jobs;
pub mod runners;
pub mod upload;

use super::error::{Error, ErrorKind};
use super::http::{redact, Response};
use std::time::Duration;

/// Runner-token endpoints carry the token in this header (and, for older GitLabs, in the body).
const RUNNER_TOKEN: &str = "runner-token";
/// Job-token endpoints carry the job's token in this header.
const JOB_TOKEN: &str = "job-token";
/// GitLab's view of the job, on answers to job-token requests.
const JOB_STATUS: &str = "job-status";
/// Seconds until the next log upload GitLab wants (also the wait after a 202 final update).
const TRACE_UPDATE_INTERVAL: &str = "x-gitlab-trace-update-interval";
/// The long-poll cursor of job requests, sent back as `last_update`.
const LAST_UPDATE: &str = "x-gitlab-last-update";
const ACCEPT: &str = "accept";
const JSON: &str = "application/json";

fn job_path(job_id: i64) -> String {
    format!("/api/v4/jobs/{job_id}")
}

/// What GitLab's `Job-Status` header says about a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteStatus {
    Running,
    /// A graceful cancel: the runner may still run after_script and finish the job.
    Canceling,
    Canceled,
    Failed,
    Success,
    /// Any other value (pending...), as GitLab spelled it.
    Other(String),
}

impl RemoteStatus {
    fn parse(value: &str) -> RemoteStatus {
        match value {
            "running" => RemoteStatus::Running,
            "canceling" => RemoteStatus::Canceling,
            "canceled" => RemoteStatus::Canceled,
            "failed" => RemoteStatus::Failed,
            "success" => RemoteStatus::Success,
            other => RemoteStatus::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            RemoteStatus::Running => "running",
            RemoteStatus::Canceling => "canceling",
            RemoteStatus::Canceled => "canceled",
            RemoteStatus::Failed => "failed",
            RemoteStatus::Success => "success",
            RemoteStatus::Other(s) => s,
        }
    }
}

/// What any answer to a job-token request may tell about the job, besides its status code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobSignals {
    /// `Job-Status`.
    pub status: Option<RemoteStatus>,
    /// `X-GitLab-Trace-Update-Interval`, when positive (not capped: each use has its own cap).
    pub update_interval: Option<Duration>,
}

impl JobSignals {
    fn of(resp: &Response) -> JobSignals {
        JobSignals {
            status: resp.header(JOB_STATUS).map(RemoteStatus::parse),
            update_interval: resp
                .header(TRACE_UPDATE_INTERVAL)
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
        }
    }
}

/// An answer as far as messages need it: which request, which status, after how many attempts,
/// and GitLab's own message (with the request's secrets masked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The wait GitLab asked for before another try (`RateLimit-ResetTime`, `Retry-After`).
    pub retry_after: Option<Duration>,
    what: String,
    attempts: u32,
    detail: Option<String>,
}

impl Answer {
    fn of(resp: &Response) -> Answer {
        let secrets: Vec<&str> = resp.secrets.iter().map(String::as_str).collect();
        Answer {
            status: resp.status,
            retry_after: crate::core::http::retry_after_of(&resp.headers),
            what: resp.what.clone(),
            attempts: resp.attempts,
            detail: error_message_of(&resp.body, &secrets),
        }
    }

    /// Whether GitLab's own message says `text` (e.g. "Job token has expired").
    pub fn says(&self, text: &str) -> bool {
        self.detail.as_deref().is_some_and(|d| d.contains(text))
    }

    /// A 1xx-3xx answer: GitLab took the request (the job is alive at GitLab).
    pub fn succeeded(&self) -> bool {
        self.status < 400
    }

    /// `PUT /api/v4/jobs/42: 500 Internal Server Error after 5 attempts: <GitLab's message>`.
    pub fn error(&self, kind: ErrorKind) -> Error {
        let reason = reqwest::StatusCode::from_u16(self.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
        let mut msg = format!("{}: {} {reason}", self.what, self.status);
        if self.attempts > 1 {
            msg.push_str(&format!(" after {} attempts", self.attempts));
        }
        if let Some(detail) = &self.detail {
            msg.push_str(": ");
            msg.push_str(detail);
        }
        Error::new(kind, msg)
    }

    /// The error for a status the caller did not expect.
    pub fn unexpected(&self) -> Error {
        self.error(ErrorKind::Http)
    }
}

/// GitLab's error text from a `{"message": ...}` or `{"error": ...}` body, shortened to 300
/// characters. GitLab never echoes tokens there, but a proxy or another server might: `secrets`
/// (the tokens the request carried) are masked. Arbitrary bodies are never shown.
fn error_message_of(body: &[u8], secrets: &[&str]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let m = v.get("message").or_else(|| v.get("error"))?;
    let text = match m {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    // Masked before shortening, so a cut can never leave part of a secret behind.
    Some(redact(&text, secrets).chars().take(300).collect())
}

/// The body of an answer as JSON, or a parse error naming the request.
fn json_of(resp: &Response) -> super::error::Result<serde_json::Value> {
    serde_json::from_slice(&resp.body)
        .map_err(|e| Error::parse(format!("{}: {} with a body that is not valid JSON ({e})", resp.what, resp.status)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_messages_are_extracted_shortened_and_masked() {
        assert_eq!(error_message_of(br#"{"message":"403 Forbidden"}"#, &[]).as_deref(), Some("403 Forbidden"));
        assert_eq!(error_message_of(br#"{"error":"token is missing"}"#, &[]).as_deref(), Some("token is missing"));
        assert_eq!(error_message_of(b"<html>", &[]), None);
        let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(1000));
        assert_eq!(error_message_of(long.as_bytes(), &[]).unwrap().len(), 300);
        let echoed = br#"{"message":"token glcbt-abc is invalid, glcbt-abc"}"#;
        assert_eq!(
            error_message_of(echoed, &["glcbt-abc", ""]).as_deref(),
            Some("token [MASKED] is invalid, [MASKED]")
        );
    }

    #[test]
    fn job_status_values_are_read_as_gitlab_spells_them() {
        for s in ["running", "canceling", "canceled", "failed", "success", "pending"] {
            assert_eq!(RemoteStatus::parse(s).as_str(), s);
        }
        assert_eq!(RemoteStatus::parse("canceling"), RemoteStatus::Canceling);
    }
}
