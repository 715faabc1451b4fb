//! The public record types handed out by the control interface (snapshots, never live views).

use serde::Serialize;
use std::time::Duration;

/// Which runner-API endpoint a [`Fault`] applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Register,
    Verify,
    Unregister,
    UnregisterManager,
    ResetToken,
    JobRequest,
    JobUpdate,
    Trace,
    ArtifactsUpload,
    ArtifactsDownload,
    /// Every runner-API endpoint above (never the control interface).
    Any,
}

impl Endpoint {
    /// The JSON name used by the HTTP control interface.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Register => "register",
            Endpoint::Verify => "verify",
            Endpoint::Unregister => "unregister",
            Endpoint::UnregisterManager => "unregister_manager",
            Endpoint::ResetToken => "reset_token",
            Endpoint::JobRequest => "job_request",
            Endpoint::JobUpdate => "job_update",
            Endpoint::Trace => "trace",
            Endpoint::ArtifactsUpload => "artifacts_upload",
            Endpoint::ArtifactsDownload => "artifacts_download",
            Endpoint::Any => "any",
        }
    }

    pub fn from_name(name: &str) -> Option<Endpoint> {
        const ALL: [Endpoint; 11] = [
            Endpoint::Register,
            Endpoint::Verify,
            Endpoint::Unregister,
            Endpoint::UnregisterManager,
            Endpoint::ResetToken,
            Endpoint::JobRequest,
            Endpoint::JobUpdate,
            Endpoint::Trace,
            Endpoint::ArtifactsUpload,
            Endpoint::ArtifactsDownload,
            Endpoint::Any,
        ];
        ALL.into_iter().find(|e| e.name() == name)
    }
}

/// What an injected fault does to a matching request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status (body `{"message":"<code> <reason>"}`) without handling the request;
    /// `retry_after` adds a `Retry-After: <seconds>` header.
    Status { code: u16, retry_after: Option<u64> },
    /// Wait, then handle the request normally.
    Delay(Duration),
    /// Close the connection without answering and without handling the request.
    DropConnection,
    /// Handle the request normally (state changes happen), then send only the first half of the
    /// answer's body with a matching Content-Length: a well-formed HTTP answer with cut JSON.
    TruncatedBody,
    /// Answer with this status and body without handling the request (JSON content type when the
    /// body parses as JSON, else text/plain).
    Body { code: u16, body: String },
    /// Handle the request normally (state changes happen), then close the connection without
    /// answering: "GitLab applied it but the answer was lost".
    DropAfterHandling,
}

/// A fault for the next `count` requests to `endpoint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub endpoint: Endpoint,
    pub count: u32,
    pub kind: FaultKind,
}

/// One stored artifact file.
#[derive(Clone, Debug, Serialize)]
pub struct ArtifactRecord {
    pub artifact_type: String,
    pub artifact_format: String,
    pub expire_in: Option<String>,
    pub filename: String,
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// What the server knows about a job.
#[derive(Clone, Debug, Serialize)]
pub struct JobRecord {
    pub id: i64,
    pub token: String,
    /// `pending`, `running`, `success`, `failed`, `canceling` or `canceled`.
    pub state: String,
    /// The stored trace bytes (after GitLab's server-side hiding of the job token).
    #[serde(skip)]
    pub trace: Vec<u8>,
    /// GitLab's failure reason once the job failed (unknown reasons become `unknown_failure`).
    pub failure_reason: Option<String>,
    /// The `failure_reason` string exactly as the client last sent it.
    pub reported_failure_reason: Option<String>,
    pub exit_code: Option<i64>,
    /// `output.checksum` (or the deprecated top-level `checksum`) of the last PUT that had one.
    pub reported_checksum: Option<String>,
    pub reported_bytesize: Option<i64>,
    /// Whether that checksum (and bytesize, when sent) matched the stored trace at that time.
    pub checksum_matches: Option<bool>,
    pub artifacts: Vec<ArtifactRecord>,
    pub runner_id: Option<i64>,
    /// The `system_id` of the runner manager that picked the job.
    pub system_id: Option<String>,
    /// Trace PATCHes that passed authentication (416s included).
    pub trace_patches: usize,
    /// Job PUTs that passed authentication (400s and 202s included).
    pub updates: usize,
    /// The job tags (a job is only given to a runner having all of them).
    pub tags: Vec<String>,
    /// The payload as handed to the runner (the template before pickup).
    pub payload: serde_json::Value,
    /// Seconds since the job's last update as the stale-job clock sees it (GitLab's
    /// `updated_at`: set when the job starts running, moved by `PUT state=running` and appended
    /// trace only when older than `touch_threshold`).
    pub seconds_since_update: f64,
    /// Seconds until the job token expires (negative once expired); `None` before pickup.
    pub token_expires_in_seconds: Option<f64>,
    /// How many retries lie behind this job (GitLab's `retries_count`).
    pub retries: u32,
    /// The job this one is a retry of.
    pub retry_of: Option<i64>,
    /// The job created as this one's retry (two-phase commit: not acknowledged in time).
    pub retried_as: Option<i64>,
}

/// A runner manager: one machine/process using a runner token, keyed by `system_id`.
#[derive(Clone, Debug, Serialize)]
pub struct ManagerRecord {
    /// The `system_id` sent by the runner, or `<legacy>` when it sent none.
    pub system_id: String,
    /// The last `info` object the manager sent, as sent.
    pub info: serde_json::Value,
    /// `info.features` of that request (GitLab's `runtime_features`).
    pub features: serde_json::Value,
    /// Seconds since the manager's last authenticated request.
    pub seconds_since_contact: f64,
}

/// A runner (one token; several managers may share it).
#[derive(Clone, Debug, Serialize)]
pub struct RunnerRecord {
    pub id: i64,
    pub token: String,
    /// `registration_token` (legacy `POST /runners`) or `authentication_token` (glrt-, created
    /// through the control interface, the "new workflow").
    pub created_via: String,
    pub description: Option<String>,
    pub maintenance_note: Option<String>,
    pub tags: Vec<String>,
    pub locked: bool,
    pub run_untagged: bool,
    pub active: bool,
    pub paused: bool,
    pub access_level: String,
    pub maximum_timeout: Option<i64>,
    /// `info.name` given at registration.
    pub name: Option<String>,
    /// When the current token expires, as GitLab renders it (`2024-05-01T12:34:56.789Z`);
    /// `None` when tokens do not expire (`runner_token_lifetime` unset when it was issued).
    pub token_expires_at: Option<String>,
    /// How many times the token was reset with `POST /runners/reset_authentication_token`.
    pub token_resets: u32,
    pub managers: Vec<ManagerRecord>,
}

/// One request to the runner API (control requests are not logged). Tokens are redacted
/// everywhere as `[REDACTED]`.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    pub method: String,
    /// Path with query string.
    pub path: String,
    /// Status answered; 0 when the connection was dropped without an answer.
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
    pub body_size: usize,
    pub body_json: Option<serde_json::Value>,
    /// Milliseconds since the server started, when the request arrived.
    pub at_ms: u64,
    /// Place in the order of arrival (0 for the server's first request). Unlike `at_ms` it
    /// tells apart requests of the same millisecond: a request answered before another was
    /// sent has the smaller number.
    pub arrival: u64,
}

/// Options for a runner created through the control interface (new workflow, glrt- token).
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub run_untagged: bool,
    pub locked: bool,
    pub paused: bool,
    pub access_level: String,
    pub maximum_timeout: Option<i64>,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            description: None,
            tags: Vec::new(),
            run_untagged: true,
            locked: false,
            paused: false,
            access_level: "not_protected".into(),
            maximum_timeout: None,
        }
    }
}
