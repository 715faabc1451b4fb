//! Plain data of runners and jobs: what is persisted by `persist` and what the live
//! `Runner`/`Job` objects are built from. No behaviour and no network here.
//!
//! `Serialize` is our dump format (v2): field order is key order, unset optional settings are
//! left out. `persist` adds the format header and reads it back by hand (see there why); it
//! writes jobs by hand too, from a [`JobView`], in the same bytes (a test holds both together),
//! so that a job's log is escaped fast and never copied for a dump.

use super::payload::JobInfo;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The server-side settings a runner was registered with (what `POST /runners` accepts).
/// `None` means "not given": GitLab's default applies and the getter reports "unknown".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Registration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The Python package's `active`; sent to GitLab as `paused = !active`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_untagged: Option<bool>,
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_timeout: Option<i64>,
    /// `not_protected` or `ref_protected`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_note: Option<String>,
}

/// What the runner says about itself in `info` (name, version...): only the values the user set.
/// Defaults for the wire are filled in by `runner::info_json`, not stored here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
}

/// Everything that defines a runner and survives `dumps`/`loads`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunnerData {
    /// Normalised: no trailing `/`.
    pub api_url: String,
    /// 0 when GitLab did not tell (legacy verify).
    pub id: i64,
    pub token: String,
    pub token_expires_at: Option<String>,
    /// When this token was obtained (registration, verify, rotation), RFC 3339: the start of its
    /// lifetime, from which the rotation at 75 % of it is computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_obtained_at: Option<String>,
    /// `s_` or `r_` + 12 alphanumerics; created once, then persisted.
    pub system_id: String,
    pub registration: Registration,
    pub identity: Identity,
    /// Features the embedding executor declared (`glr_runner_set_feature`).
    pub features: BTreeMap<String, bool>,
    /// `info.labels` (`glr_runner_set_label`): stored by GitLab on the runner manager.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The job's state as this library knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Success,
    Failed,
    /// GitLab asked for a graceful stop: the caller may still log (after_script) and finish.
    Canceling,
    /// GitLab stopped the job; nothing more is accepted.
    Canceled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Success => "success",
            JobState::Failed => "failed",
            JobState::Canceling => "canceling",
            JobState::Canceled => "canceled",
        }
    }
    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "running" => JobState::Running,
            "success" => JobState::Success,
            "failed" => JobState::Failed,
            "canceling" => JobState::Canceling,
            "canceled" => JobState::Canceled,
            _ => return None,
        })
    }
    /// Running or canceling: GitLab still accepts log and a final state.
    pub fn is_active(self) -> bool {
        matches!(self, JobState::Running | JobState::Canceling)
    }
}

/// The job log as persisted: the processed text, how much of it GitLab acknowledged, and raw
/// bytes appended but not yet processed (an incomplete UTF-8 sequence or a possible secret).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LogData {
    pub text: String,
    /// Bytes of `text` GitLab has acknowledged.
    pub acknowledged: usize,
    /// GitLab's trace size as last learned (>= acknowledged when another writer appended).
    pub remote: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<u8>,
    /// Where the masker stood inside a secret (`mask::Mode` as a number; 0 = outside).
    #[serde(skip_serializing_if = "is_zero")]
    pub mask_mode: u8,
    /// The size limit set with `glr_job_set_log_limit` (None: the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The limit was reached: the notice is in `text` and nothing more is collected.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub limited: bool,
}

/// A [`LogData`] borrowed from the live log (or from a `LogData`): what a dump writes, without
/// a copy of the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogView<'a> {
    /// The text in the pieces it is stored in, in order. Each is valid UTF-8 on its own: the
    /// log holds nothing else and a piece never ends inside a character (`LogData::text` is a
    /// `String`). Kept as bytes so that a dump does not check a large log again.
    pub text: Vec<&'a [u8]>,
    pub acknowledged: usize,
    pub remote: usize,
    pub pending: Vec<u8>,
    pub mask_mode: u8,
    pub limit: Option<usize>,
    pub limited: bool,
}

impl LogData {
    pub fn view(&self) -> LogView<'_> {
        let LogData { text, acknowledged, remote, pending, mask_mode, limit, limited } = self;
        LogView {
            text: vec![text.as_bytes()],
            acknowledged: *acknowledged,
            remote: *remote,
            pending: pending.clone(),
            mask_mode: *mask_mode,
            limit: *limit,
            limited: *limited,
        }
    }
}

/// A [`JobData`] borrowed from a live job (under its lock) or from a `JobData`.
#[derive(Clone, Debug, PartialEq)]
pub struct JobView<'a> {
    pub runner: &'a RunnerData,
    pub payload: &'a str,
    pub state: JobState,
    pub committed: bool,
    pub exit_code: Option<i32>,
    pub log: LogView<'a>,
    pub taken_at: Option<i64>,
}

impl JobData {
    pub fn view(&self) -> JobView<'_> {
        let JobData { runner, payload, state, committed, exit_code, log, taken_at } = self;
        JobView {
            runner,
            payload,
            state: *state,
            committed: *committed,
            exit_code: *exit_code,
            log: log.view(),
            taken_at: *taken_at,
        }
    }
}

/// A job read from a dump: its data, and its payload read already where the reading had it in
/// hand (the job then does not read the payload a second time).
#[derive(Debug)]
pub struct LoadedJob {
    pub data: JobData,
    /// Must be what `JobInfo::from_payload` gives for `data.payload` (the job trusts it and does
    /// not check): only the readings in `persist` fill it, from that very text.
    pub info: Option<JobInfo>,
}

/// Everything that defines a job and survives `dumps`/`loads`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobData {
    /// Written by `persist` with its own format header, as a runner dump of its own. Shared:
    /// the jobs a runner takes hold one copy of it.
    #[serde(skip)]
    pub runner: Arc<RunnerData>,
    /// The job payload as GitLab sent it, as JSON text. Kept as text, not as a parsed tree: a
    /// parsed payload costs about ten times its size, and a process may hold thousands of jobs.
    #[serde(serialize_with = "embedded_json")]
    pub payload: String,
    pub state: JobState,
    /// `PUT state=running` was acknowledged (two-phase commit done).
    pub committed: bool,
    pub exit_code: Option<i32>,
    pub log: LogData,
    /// When the job was taken from GitLab (unix seconds): its deadline is this plus its timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<i64>,
}

fn is_zero(v: &u8) -> bool {
    *v == 0
}

/// JSON text embedded as it is (it was produced by a JSON parser or checked by one).
fn embedded_json<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    let raw: &serde_json::value::RawValue = serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
    raw.serialize(s)
}

/// One file to upload, prepared by the caller (or collected from the job's `artifacts:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactFile {
    pub path: PathBuf,
    /// The file name GitLab stores (e.g. "artifacts.zip").
    pub name: String,
    /// e.g. "archive", "junit", "dotenv"; empty: not sent (GitLab's default, archive).
    pub artifact_type: String,
    /// "zip", "gzip" or "raw"; empty: not sent (GitLab's default, zip).
    pub artifact_format: String,
    pub expire_in: Option<String>,
}
