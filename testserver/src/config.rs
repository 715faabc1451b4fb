//! Server settings. Most can be changed while the server runs (`TestServer::set_config`).
//!
//! The clocks and limits default to GitLab's own values, so that a client tested against the
//! server meets what it will meet in production; tests shorten them (README, "Clocks and limits").

use std::net::SocketAddr;
use std::time::Duration;

/// One megabyte as Rails counts it (`1.megabyte`), the unit of GitLab's size limits.
pub const MEGABYTE: usize = 1024 * 1024;

/// Settings of a [`crate::TestServer`]. Build with struct update syntax:
/// `Config { long_poll_timeout: Duration::from_millis(200), ..Config::default() }`.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen (only read at start). Default `127.0.0.1:0` (a free port on loopback).
    pub listen: SocketAddr,
    /// How long a `POST /jobs/request` whose `last_update` equals the current queue value is held
    /// (Workhorse long polling). `0` disables long polling: such a request is answered at once with
    /// 204 + the same `X-GitLab-Last-Update`, as Rails does without Workhorse. Default 3 s.
    pub long_poll_timeout: Duration,
    /// Seconds sent in `X-GitLab-Trace-Update-Interval` on trace PATCH answers. GitLab sends 60, or
    /// 3 while someone watches the job page; default 3 so tests do not wait.
    pub trace_update_interval: u64,
    /// `false`: `POST /runners` answers 410 Gone (registration tokens switched off). Default true.
    pub registration_tokens_enabled: bool,
    /// `true`: `POST /runners/verify` answers the plain-text `200` of older GitLab instead of JSON.
    pub legacy_verify: bool,
    /// How many final-state PUTs per job (with a checksum, on a non-empty trace) are answered 202
    /// "log still being persisted" before the state is applied. Default 0.
    pub trace_persist_delays: u32,
    /// Trace size limit in bytes. GitLab's `ci_jobs_trace_size_limit` is L megabytes and refuses
    /// a PATCH when `(start + body size) / 1.megabyte >= L`, which is the same as
    /// `start + body size >= L × 1 MiB`: this server refuses a PATCH when `start + body size >=
    /// max_trace_size` (so the stored trace stays below the limit), answers 403 and drops the job
    /// with `trace_size_exceeded`. `0` means no limit, as GitLab's 0. Default 100 MiB (GitLab's
    /// default of 100 MB); set a few bytes in tests.
    pub max_trace_size: usize,
    /// Size limit in bytes of one artifact *file* (not of the multipart body around it): a larger
    /// file gets 413. Default 100 MiB (GitLab's default `max_artifacts_size` of 100 MB).
    pub max_artifact_size: usize,
    /// `expire_in` stored for an artifact uploaded without one (GitLab's instance setting
    /// `default_artifacts_expire_in`). Default `30 days`, GitLab's default.
    pub default_artifacts_expire_in: String,
    /// Honour `info.features.two_phase_job_commit` (GitLab's `allow_runner_job_acknowledgement`
    /// flag). Default true.
    pub two_phase_commit: bool,
    /// `GET /jobs/:id/artifacts?direct_download=true` answers 302 to a storage URL on this server
    /// (as GitLab does with object storage). Default false: the file is sent directly.
    pub artifacts_direct_download: bool,
    /// Print one line per request (method, redacted path, status) to stderr. Default false.
    pub log_requests: bool,
    /// A running job whose last update is older than this is dropped with
    /// `stuck_or_timeout_failure` (GitLab's `BUILD_RUNNING_OUTDATED_TIMEOUT`). Default 1 hour.
    pub stale_job_timeout: Duration,
    /// `PUT state=running` and an appended trace chunk refresh a running job's last update only
    /// when it is older than this (GitLab's `needs_touch?`). Default 15 minutes.
    pub touch_threshold: Duration,
    /// Two-phase commit: a job handed out and neither accepted (`PUT state=running`) nor kept
    /// waiting (`PUT state=pending`) within this is failed `runner_provisioning_timeout` and
    /// retried as a new job (GitLab's `RUNNER_ACK_QUEUE_EXPIRY_TIME`). Default 2 minutes.
    pub ack_window: Duration,
    /// Added to a job token's lifetime so that a timed-out job can still send its final state
    /// (GitLab's `Ci::JobToken::Jwt::Encode::LEEWAY`). Default 5 minutes.
    pub job_token_leeway: Duration,
    /// The least lifetime of a job token before the leeway (GitLab's
    /// `JSONWebToken::Token::DEFAULT_EXPIRE_TIME`). A job token expires at pickup +
    /// max(this, the job's `runner_info.timeout`) + `job_token_leeway`. Default 60 s.
    pub job_token_min_lifetime: Duration,
    /// Lifetime of runner authentication tokens from their creation or last reset (GitLab's
    /// `runner_token_expiration_interval`). `None`: tokens never expire and answers carry no
    /// `token_expires_at`, GitLab's default. Applies to tokens issued after it is set.
    pub runner_token_lifetime: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            long_poll_timeout: Duration::from_secs(3),
            trace_update_interval: 3,
            registration_tokens_enabled: true,
            legacy_verify: false,
            trace_persist_delays: 0,
            max_trace_size: 100 * MEGABYTE,
            max_artifact_size: 100 * MEGABYTE,
            default_artifacts_expire_in: "30 days".into(),
            two_phase_commit: true,
            artifacts_direct_download: false,
            log_requests: false,
            stale_job_timeout: Duration::from_secs(3600),
            touch_threshold: Duration::from_secs(15 * 60),
            ack_window: Duration::from_secs(120),
            job_token_leeway: Duration::from_secs(5 * 60),
            job_token_min_lifetime: Duration::from_secs(60),
            runner_token_lifetime: None,
        }
    }
}
