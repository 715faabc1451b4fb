//! Server settings. Most can be changed while the server runs (`TestServer::set_config`).

use std::net::SocketAddr;
use std::time::Duration;

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
    /// Trace size limit in bytes: a PATCH that would end past it gets 403 and the job is dropped
    /// with `trace_size_exceeded`. Default 4 MiB.
    pub max_trace_size: usize,
    /// Artifact size limit in bytes: larger uploads get 413. Default 100 MiB.
    pub max_artifact_size: usize,
    /// Honour `info.features.two_phase_job_commit` (GitLab's `allow_runner_job_acknowledgement`
    /// flag). Default true.
    pub two_phase_commit: bool,
    /// `GET /jobs/:id/artifacts?direct_download=true` answers 302 to a storage URL on this server
    /// (as GitLab does with object storage). Default false: the file is sent directly.
    pub artifacts_direct_download: bool,
    /// Print one line per request (method, redacted path, status) to stderr. Default false.
    pub log_requests: bool,
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
            max_trace_size: 4 * 1024 * 1024,
            max_artifact_size: 100 * 1024 * 1024,
            two_phase_commit: true,
            artifacts_direct_download: false,
            log_requests: false,
        }
    }
}
