//! Plain data of runners and jobs: what is persisted by `persist` and what the live
//! `Runner`/`Job` objects are built from. No behaviour and no network here.

use std::collections::BTreeMap;

/// The server-side settings a runner was registered with (what `POST /runners` accepts).
/// `None` means "not given": GitLab's default applies and the getter reports "unknown".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registration {
    pub description: Option<String>,
    /// The Python package's `active`; sent to GitLab as `paused = !active`.
    pub active: Option<bool>,
    pub paused: Option<bool>,
    pub locked: Option<bool>,
    pub run_untagged: Option<bool>,
    pub tags: Vec<String>,
    pub maximum_timeout: Option<i64>,
    /// `not_protected` or `ref_protected`.
    pub access_level: Option<String>,
    pub maintenance_note: Option<String>,
}

/// What the runner says about itself in `info` (name, version...): only the values the user set.
/// Defaults for the wire are filled in by `runner::info_json`, not stored here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub name: Option<String>,
    pub version: Option<String>,
    pub revision: Option<String>,
    pub platform: Option<String>,
    pub architecture: Option<String>,
    pub executor: Option<String>,
}

/// Everything that defines a runner and survives `dumps`/`loads`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunnerData {
    /// Normalised: no trailing `/`.
    pub api_url: String,
    /// 0 when GitLab did not tell (legacy verify).
    pub id: i64,
    pub token: String,
    pub token_expires_at: Option<String>,
    /// `s_` or `r_` + 12 alphanumerics; created once, then persisted.
    pub system_id: String,
    pub registration: Registration,
    pub identity: Identity,
    /// Features the embedding executor declared (`glr_runner_set_feature`).
    pub features: BTreeMap<String, bool>,
}

/// The job's state as this library knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogData {
    pub text: String,
    /// Bytes of `text` GitLab has acknowledged.
    pub acknowledged: usize,
    /// GitLab's trace size as last learned (>= acknowledged when another writer appended).
    pub remote: usize,
    pub pending: Vec<u8>,
    /// Where the masker stood inside a secret (`mask::Mode` as a number; 0 = outside).
    pub mask_mode: u8,
}

/// Everything that defines a job and survives `dumps`/`loads`.
#[derive(Clone, Debug, PartialEq)]
pub struct JobData {
    pub runner: RunnerData,
    /// The job payload as GitLab sent it, as JSON text. Kept as text, not as a parsed tree: a
    /// parsed payload costs about ten times its size, and a process may hold thousands of jobs.
    pub payload: String,
    pub state: JobState,
    /// `PUT state=running` was acknowledged (two-phase commit done).
    pub committed: bool,
    pub exit_code: Option<i32>,
    pub log: LogData,
}
