//! A job taken from GitLab: its payload, its state, its log and the updates that report it.
//!
//! Locking: `inner` holds the state and the log and is only ever held for memory work, so
//! appending never waits on the network; `net` serialises this job's conversation with GitLab
//! (one PATCH or PUT at a time, in order) and is never taken while `inner` is held.

use super::artifacts::{self, ArtifactSet};
use super::diag;
use super::error::{Error, ErrorKind, Result};
use super::failure;
use super::http::{self, Method, Request, Response};
use super::info::info_json;
use super::model::{JobData, JobState, RunnerData};
use super::payload::JobInfo;
use super::runner::lock;
use super::trace::{parse_range, Trace};
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;

/// GitLab's update interval is capped like the official runner's.
const MAX_UPDATE_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// A final update answered 202 ("trace still being persisted") is repeated at most this long;
/// GitLab applies the state by itself after 5 minutes.
const FINAL_UPDATE_PATIENCE: Duration = Duration::from_secs(6 * 60);
/// The longest wait between two repeats of a final update answered 202.
const MAX_ACCEPTED_WAIT: Duration = Duration::from_secs(64);
/// Resyncs in a row without progress before a flush gives up (GitLab keeps moving the end).
const MAX_RESYNCS_WITHOUT_PROGRESS: u32 = 20;

struct JobMut {
    state: JobState,
    committed: bool,
    exit_code: Option<i32>,
    trace: Trace,
    update_interval: Option<Duration>,
}

pub struct Job {
    runner: RunnerData,
    runner_info: Value,
    payload: Value,
    info: JobInfo,
    inner: Mutex<JobMut>,
    net: Mutex<()>,
}

/// How a job ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// With GitLab's name of the failure reason.
    Failed(String),
}

impl Job {
    /// A job just received from `POST /jobs/request`.
    pub fn new(runner: RunnerData, payload: Value) -> Result<Job> {
        let info = JobInfo::from_payload(&payload)?;
        let inner = JobMut {
            state: JobState::Running,
            committed: false,
            exit_code: None,
            trace: Trace::new(),
            update_interval: None,
        };
        Ok(Job {
            runner_info: info_json(&runner),
            runner,
            payload,
            info,
            inner: Mutex::new(inner),
            net: Mutex::new(()),
        })
    }

    /// A job restored from a dump (offline; its log offset is re-learned before the next upload).
    pub fn from_data(data: JobData) -> Result<Job> {
        let info = JobInfo::from_payload(&data.payload)?;
        let inner = JobMut {
            state: data.state,
            committed: data.committed,
            exit_code: data.exit_code,
            trace: Trace::from_data(data.log),
            update_interval: None,
        };
        Ok(Job {
            runner_info: info_json(&data.runner),
            runner: data.runner,
            payload: data.payload,
            info,
            inner: Mutex::new(inner),
            net: Mutex::new(()),
        })
    }

    pub fn to_data(&self) -> JobData {
        let m = lock(&self.inner);
        JobData {
            runner: self.runner.clone(),
            payload: self.payload.clone(),
            state: m.state,
            committed: m.committed,
            exit_code: m.exit_code,
            log: m.trace.to_data(),
        }
    }

    pub fn id(&self) -> i64 {
        self.info.id
    }
    pub fn info(&self) -> &JobInfo {
        &self.info
    }
    pub fn payload(&self) -> &Value {
        &self.payload
    }
    pub fn runner(&self) -> &RunnerData {
        &self.runner
    }
    pub fn state(&self) -> JobState {
        lock(&self.inner).state
    }
    /// The whole log as stored (what was appended, masked and UTF-8-fixed).
    pub fn log_text(&self) -> String {
        lock(&self.inner).trace.text_str().to_string()
    }

    /// Ok while the job may still log and finish.
    fn check_active(state: JobState, id: i64) -> Result<()> {
        match state {
            JobState::Running | JobState::Canceling => Ok(()),
            JobState::Canceled => Err(Error::new(ErrorKind::JobCanceled, format!("job {id} was canceled by GitLab"))),
            s => {
                Err(Error::new(ErrorKind::AlreadyFinished, format!("job {id} has already finished as {}", s.as_str())))
            }
        }
    }

    /// Appends to the log: a memory copy, never a network wait.
    pub fn append_log(&self, data: &[u8]) -> Result<()> {
        let mut m = lock(&self.inner);
        Self::check_active(m.state, self.info.id)?;
        m.trace.push(data);
        Ok(())
    }

    pub fn set_exit_code(&self, code: i32) -> Result<()> {
        let mut m = lock(&self.inner);
        Self::check_active(m.state, self.info.id)?;
        m.exit_code = Some(code);
        Ok(())
    }

    fn path(&self) -> String {
        format!("/api/v4/jobs/{}", self.info.id)
    }

    fn put(&self, body: Value) -> Result<Response> {
        let req = Request::new(Method::PUT, &self.runner.api_url, &self.path())
            .header("job-token", &self.info.token)
            .json(body)
            .idempotent();
        http::send(&req)
    }

    /// Reads `Job-Status` and the update interval of an answer to a non-final request.
    /// `canceling`: graceful cancel (state CANCELING, still usable); `canceled`/`failed` or a
    /// 403: GitLab stopped the job (state CANCELED, error).
    fn observe(&self, resp: &Response) -> Result<()> {
        let status = resp.header("job-status").map(str::to_string);
        let interval = resp
            .header("x-gitlab-trace-update-interval")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s).min(MAX_UPDATE_INTERVAL));
        let mut m = lock(&self.inner);
        if interval.is_some() {
            m.update_interval = interval;
        }
        let stopped = resp.status == 403 || matches!(status.as_deref(), Some("canceled") | Some("failed"));
        if stopped {
            m.state = JobState::Canceled;
            drop(m);
            diag::warn(&format!("job {} was stopped by GitLab", self.info.id));
            let why = match status.as_deref() {
                Some(s) => format!("GitLab reports the job as {s}"),
                None => "job token rejected or job no longer running".to_string(),
            };
            return Err(resp.error(ErrorKind::JobCanceled).context(format!("job {}: {why}", self.info.id)));
        }
        if status.as_deref() == Some("canceling") && m.state == JobState::Running {
            m.state = JobState::Canceling;
            drop(m);
            diag::info(&format!("job {}: GitLab asks to cancel it (graceful)", self.info.id));
        }
        Ok(())
    }

    /// `PUT state=running`: accepts the job (two-phase commit). Sent once, before the first
    /// log upload; `request_job` sends it right after pickup.
    pub fn commit(&self) -> Result<()> {
        let _net = lock(&self.net);
        self.commit_locked()
    }

    fn commit_locked(&self) -> Result<()> {
        if lock(&self.inner).committed {
            return Ok(());
        }
        let resp =
            self.put(json!({"info": self.runner_info, "token": self.info.token, "state": "running", "output": {}}))?;
        self.observe(&resp)?;
        match resp.status {
            200 | 202 => {
                lock(&self.inner).committed = true;
                Ok(())
            }
            _ => Err(resp.unexpected()),
        }
    }

    /// Keep-alive and cancel check (the Python package's `auth()`): `PUT state=running` with the
    /// log's checksum and size, as the official runner's touch.
    pub fn auth(&self) -> Result<()> {
        let _net = lock(&self.net);
        Self::check_active(self.state(), self.info.id)?;
        self.commit_locked()?;
        let (checksum, size) = {
            let m = lock(&self.inner);
            (m.trace.checksum(), m.trace.len())
        };
        let resp = self.put(json!({
            "info": self.runner_info, "token": self.info.token, "state": "running",
            "output": {"checksum": checksum, "bytesize": size}
        }))?;
        self.observe(&resp)?;
        match resp.status {
            200 | 202 => Ok(()),
            _ => Err(resp.unexpected()),
        }
    }

    /// Uploads everything appended so far; returns when GitLab acknowledged it all.
    pub fn flush_log(&self) -> Result<()> {
        let _net = lock(&self.net);
        Self::check_active(self.state(), self.info.id)?;
        self.upload_all()
    }

    /// PATCHes until GitLab holds every byte. Caller holds `net`.
    fn upload_all(&self) -> Result<()> {
        self.commit_locked()?;
        let mut resyncs = 0;
        loop {
            let (chunk, body) = {
                let m = lock(&self.inner);
                match m.trace.next_chunk() {
                    None => return Ok(()),
                    Some(c) => (c, m.trace.bytes()[c.from..c.to].to_vec()),
                }
            };
            let req = Request::new(Method::PATCH, &self.runner.api_url, &format!("{}/trace", self.path()))
                .header("job-token", &self.info.token)
                .header("content-range", chunk.content_range())
                .text(body)
                .idempotent();
            let resp = match http::send(&req) {
                Ok(r) => r,
                Err(e) => {
                    lock(&self.inner).trace.unanswered(chunk);
                    return Err(e);
                }
            };
            self.observe(&resp)?;
            let server_size = resp.header("range").and_then(parse_range);
            match (resp.status, server_size) {
                (202, Some(size)) => {
                    let mut m = lock(&self.inner);
                    let before = m.trace.acknowledged();
                    m.trace.accepted(chunk, size);
                    if m.trace.acknowledged() == before && !chunk.is_empty() {
                        resyncs += 1;
                    } else {
                        resyncs = 0;
                    }
                }
                // A 202 without Range (not GitLab, but harmless): the bytes are taken as stored.
                (202, None) => lock(&self.inner).trace.accepted(chunk, chunk.start + chunk.len()),
                (416, Some(size)) => {
                    diag::debug(&format!("job {}: GitLab's log is {size} bytes, resyncing", self.info.id));
                    lock(&self.inner).trace.resync(size);
                    resyncs += 1;
                }
                _ => return Err(resp.unexpected()),
            }
            if resyncs > MAX_RESYNCS_WITHOUT_PROGRESS {
                return Err(Error::new(
                    ErrorKind::Http,
                    format!("PATCH {}/trace: GitLab's log keeps changing under us; giving up for now", self.path()),
                ));
            }
        }
    }

    /// Reports the job finished: uploads the whole log, then the final `PUT` with checksum,
    /// size, failure reason and exit code, repeated while GitLab answers 202.
    pub fn finish(&self, outcome: Outcome) -> Result<()> {
        let _net = lock(&self.net);
        Self::check_active(self.state(), self.info.id)?;
        lock(&self.inner).trace.finish_pending();
        let started = std::time::Instant::now();
        let mut wait = Duration::from_secs(1);
        loop {
            self.upload_all()?;
            let (state_name, body) = self.final_body(&outcome);
            let resp = self.put(body)?;
            let job_status = resp.header("job-status").map(str::to_string);
            match resp.status {
                200 => {
                    let mut m = lock(&self.inner);
                    m.state = match (job_status.as_deref(), &outcome) {
                        (Some("canceled"), _) => JobState::Canceled,
                        (_, Outcome::Success) => JobState::Success,
                        (_, Outcome::Failed(_)) => JobState::Failed,
                    };
                    diag::info(&format!("job {}: reported {state_name}", self.info.id));
                    return Ok(());
                }
                202 if started.elapsed() < FINAL_UPDATE_PATIENCE => {
                    let given = resp
                        .header("x-gitlab-trace-update-interval")
                        .and_then(|v| v.parse::<u64>().ok())
                        .filter(|s| *s > 0)
                        .map(Duration::from_secs);
                    wait = given.unwrap_or(wait * 2).min(MAX_ACCEPTED_WAIT);
                    diag::debug(&format!(
                        "job {}: final update accepted, waiting {}s for GitLab",
                        self.info.id,
                        wait.as_secs()
                    ));
                    std::thread::sleep(wait);
                }
                412 => {
                    diag::warn(&format!("job {}: GitLab asks for the whole log again", self.info.id));
                    lock(&self.inner).trace.reset();
                }
                // Our own earlier final update was applied but its answer was lost.
                403 if job_status.as_deref() == Some(state_name) => {
                    let mut m = lock(&self.inner);
                    m.state = if state_name == "success" { JobState::Success } else { JobState::Failed };
                    return Ok(());
                }
                403 => {
                    self.observe(&resp)?;
                    return Err(resp.unexpected());
                }
                _ => return Err(resp.unexpected()),
            }
        }
    }

    /// Uploads `set` (each file in order), then reports the job finished. An upload failure
    /// returns its error and leaves the job running, so the caller can retry or fail it.
    pub fn finish_with_artifacts(&self, outcome: Outcome, set: &ArtifactSet) -> Result<()> {
        if !set.files.is_empty() {
            let _net = lock(&self.net);
            Self::check_active(self.state(), self.info.id)?;
            // Job-token endpoints only accept a job GitLab sees running.
            self.commit_locked()?;
            for file in &set.files {
                artifacts::upload(&self.runner.api_url, self.info.id, &self.info.token, file)?;
            }
        }
        self.finish(outcome)
    }

    fn final_body(&self, outcome: &Outcome) -> (&'static str, Value) {
        let m = lock(&self.inner);
        let checksum = m.trace.checksum();
        let mut body = json!({
            "info": self.runner_info,
            "token": self.info.token,
            "state": "success",
            "checksum": checksum,
            "output": {"checksum": checksum, "bytesize": m.trace.len()},
        });
        match outcome {
            Outcome::Success => ("success", body),
            Outcome::Failed(reason) => {
                body["state"] = json!("failed");
                body["failure_reason"] = json!(failure::map_for_gitlab(reason, self.info.failure_reasons.as_deref()));
                if let Some(code) = m.exit_code.filter(|c| *c != 0) {
                    body["exit_code"] = json!(code);
                }
                ("failed", body)
            }
        }
    }

    /// The registry credential for `image`: (username, password).
    pub fn registry_credential(&self, image: &str) -> Result<(String, String)> {
        self.info.registry_credential(image).map(|c| (c.username.clone(), c.password.clone())).ok_or_else(|| {
            Error::not_found(format!("job {}: no registry credential matches image {image:?}", self.info.id))
        })
    }
}
