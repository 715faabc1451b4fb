//! A job taken from GitLab: its payload, its state, its log and the updates that report it.
//!
//! Locking: `inner` holds the state and the log and is only ever held for memory work, so
//! appending never waits on the network; `net` serialises this job's conversation with GitLab
//! (one PATCH or PUT at a time, in order) and is never taken while `inner` is held. The
//! background uploader (`uploader.rs`) only ever *tries* `net`: a caller flushing or finishing
//! the job has priority.

use super::api::jobs::{self as wire, JobEndpoint, TraceOutcome, TraceSummary, Update, UpdateOutcome, UpdateState};
use super::api::{self, Answer, JobSignals, RemoteStatus};
use super::artifacts::ArtifactSet;
use super::diag;
use super::error::{Error, ErrorKind, Result};
use super::failure;
use super::info::info_json;
use super::mask::Masker;
use super::model::{JobData, JobState, RunnerData};
use super::payload::{JobInfo, VAR_MASKED};
use super::sync::{lock, read, write};
use super::trace::Trace;
use super::uploader::{self, Background};
use super::url::warn_if_plain_http;
use serde_json::value::RawValue;
use serde_json::Value;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The official runner's first update interval, used until GitLab gives one.
const DEFAULT_UPDATE_INTERVAL: Duration = Duration::from_secs(3);
/// GitLab's update interval is capped like the official runner's.
const MAX_UPDATE_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Without a successful upload for this long, a keep-alive `PUT state=running` is sent.
const KEEPALIVE_AFTER: Duration = Duration::from_secs(30);
/// A final update answered 202 ("trace still being persisted") is repeated at most this long;
/// GitLab applies the state by itself after 5 minutes.
const FINAL_UPDATE_PATIENCE: Duration = Duration::from_secs(6 * 60);
/// The longest wait between two repeats of a final update answered 202.
const MAX_ACCEPTED_WAIT: Duration = Duration::from_secs(64);
/// Resyncs in a row without progress before a flush gives up (GitLab keeps moving the end).
const MAX_RESYNCS_WITHOUT_PROGRESS: u32 = 20;
/// The background uploader sends at most this many 1 MiB patches per job per turn, so one job's
/// backlog does not starve the others.
const PATCHES_PER_TURN: usize = 4;
/// Shortest pause between two background turns of one job.
const MIN_TURN_GAP: Duration = Duration::from_secs(1);
/// Longest pause between two background attempts after failures.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);

/// Called when GitLab cancels the job (with the new state: canceling or canceled).
pub type CancelCallback = Box<dyn Fn(JobState) + Send + Sync>;

struct JobMut {
    state: JobState,
    committed: bool,
    exit_code: Option<i32>,
    trace: Trace,
    update_interval: Duration,
    /// When the background uploader last tried to send (None: not since the last append).
    last_attempt: Option<Instant>,
    /// Last successful exchange with GitLab (keep-alive clock).
    last_contact: Instant,
    /// Consecutive failed background attempts (for backoff).
    failures: u32,
}

pub(crate) struct JobShared {
    runner: RunnerData,
    /// The runner's `info` as JSON text (sent with every job update).
    runner_info: Box<RawValue>,
    /// GitLab's payload, as JSON text (see `JobData::payload`).
    payload: String,
    info: JobInfo,
    inner: Mutex<JobMut>,
    net: Mutex<()>,
    /// Read-locked while it runs, so replacing it waits for a call in progress to end.
    cancel_callback: RwLock<Option<CancelCallback>>,
}

/// A job. Cheap to share between threads; the background uploader keeps only a weak reference.
pub struct Job {
    shared: Arc<JobShared>,
}

/// How a job ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// With GitLab's name of the failure reason.
    Failed(String),
}

fn masker_for(info: &JobInfo) -> Masker {
    let phrases = info.variables.iter().filter(|v| v.flags & VAR_MASKED != 0).map(|v| v.value.as_str());
    Masker::new(phrases, info.token_mask_prefixes.iter().map(String::as_str))
}

impl Job {
    fn build(
        runner: RunnerData,
        payload: String,
        state: JobState,
        committed: bool,
        exit_code: Option<i32>,
        trace: impl FnOnce(Masker) -> Trace,
    ) -> Result<Job> {
        let parsed: Value =
            serde_json::from_str(&payload).map_err(|e| Error::parse(format!("job payload is not JSON: {e}")))?;
        let info = JobInfo::from_payload(&parsed)?;
        let trace = trace(masker_for(&info));
        let inner = JobMut {
            state,
            committed,
            exit_code,
            trace,
            update_interval: DEFAULT_UPDATE_INTERVAL,
            last_attempt: None,
            last_contact: Instant::now(),
            failures: 0,
        };
        let shared = Arc::new(JobShared {
            runner_info: RawValue::from_string(info_json(&runner).to_string()).expect("serialised JSON is JSON"),
            runner,
            payload,
            info,
            inner: Mutex::new(inner),
            net: Mutex::new(()),
            cancel_callback: RwLock::new(None),
        });
        let background: Arc<dyn Background> = shared.clone();
        uploader::register(Arc::downgrade(&background));
        Ok(Job { shared })
    }

    /// A job just received from `POST /jobs/request`.
    pub fn new(runner: RunnerData, payload: String) -> Result<Job> {
        Self::build(runner, payload, JobState::Running, false, None, Trace::new)
    }

    /// A job restored from a dump (offline; its log offset is re-learned before the next upload).
    pub fn from_data(data: JobData) -> Result<Job> {
        warn_if_plain_http(&data.runner.api_url);
        let log = data.log;
        Self::build(data.runner, data.payload, data.state, data.committed, data.exit_code, |m| Trace::from_data(log, m))
    }

    pub fn to_data(&self) -> JobData {
        let s = &self.shared;
        let m = lock(&s.inner);
        JobData {
            runner: s.runner.clone(),
            payload: s.payload.clone(),
            state: m.state,
            committed: m.committed,
            exit_code: m.exit_code,
            log: m.trace.to_data(),
        }
    }

    pub fn id(&self) -> i64 {
        self.shared.info.id
    }
    pub fn info(&self) -> &JobInfo {
        &self.shared.info
    }
    /// GitLab's payload as JSON text.
    pub fn payload(&self) -> &str {
        &self.shared.payload
    }
    pub fn runner(&self) -> &RunnerData {
        &self.shared.runner
    }
    pub fn state(&self) -> JobState {
        lock(&self.shared.inner).state
    }
    /// The whole log as stored (what was appended, masked and UTF-8-fixed).
    pub fn log_text(&self) -> String {
        lock(&self.shared.inner).trace.text_str().to_string()
    }

    /// Appends to the log: a memory copy, never a network wait. The background uploader sends it
    /// promptly the first time, then at the interval GitLab asks for.
    pub fn append_log(&self, data: &[u8]) -> Result<()> {
        let wake = {
            let mut m = lock(&self.shared.inner);
            check_active(m.state, self.id())?;
            let idle = m.trace.all_acknowledged();
            m.trace.push(data);
            idle && !m.trace.all_acknowledged()
        };
        if wake {
            uploader::wake();
        }
        Ok(())
    }

    /// Caps the log at `limit` bytes (the official runner's notice is added where it is cut).
    pub fn set_log_limit(&self, limit: usize) {
        lock(&self.shared.inner).trace.set_limit(limit);
    }

    pub fn set_exit_code(&self, code: i32) -> Result<()> {
        let mut m = lock(&self.shared.inner);
        check_active(m.state, self.id())?;
        m.exit_code = Some(code);
        Ok(())
    }

    /// Installs (or with None removes) the function called when GitLab cancels the job. It runs
    /// on whichever thread learns of the cancel (possibly the background uploader).
    pub fn set_cancel_callback(&self, callback: Option<CancelCallback>) {
        *write(&self.shared.cancel_callback) = callback;
    }

    /// `PUT state=running`: accepts the job (two-phase commit). Sent once, before the first log
    /// upload; `request_job` sends it right after pickup.
    pub fn commit(&self) -> Result<()> {
        let _net = lock(&self.shared.net);
        self.shared.commit_locked()
    }

    /// Keep-alive and cancel check (the Python package's `auth()`): `PUT state=running` with the
    /// log's checksum and size, as the official runner's touch.
    pub fn auth(&self) -> Result<()> {
        let _net = lock(&self.shared.net);
        check_active(self.state(), self.id())?;
        self.shared.touch()
    }

    /// Uploads everything appended so far; returns when GitLab acknowledged it all.
    pub fn flush_log(&self) -> Result<()> {
        let _net = lock(&self.shared.net);
        check_active(self.state(), self.id())?;
        self.shared.upload(None)
    }

    /// Uploads `set` (each file in order), then reports the job finished. An upload failure
    /// returns its error and leaves the job running, so the caller can retry or fail it.
    pub fn finish_with_artifacts(&self, outcome: Outcome, set: &ArtifactSet) -> Result<()> {
        if !set.files.is_empty() {
            let s = &self.shared;
            let _net = lock(&s.net);
            check_active(self.state(), self.id())?;
            // Job-token endpoints only accept a job GitLab sees running.
            s.commit_locked()?;
            for file in &set.files {
                if let Err(e) = api::upload::upload(&s.runner.api_url, s.info.id, &s.info.token, file) {
                    if e.kind == ErrorKind::JobCanceled {
                        // A 403: GitLab no longer runs the job, as on a PATCH or PUT.
                        s.set_state(JobState::Canceled);
                    }
                    return Err(e);
                }
            }
        }
        self.finish(outcome)
    }

    /// Reports the job finished: uploads the whole log, then the final `PUT` with checksum,
    /// size, failure reason and exit code, repeated while GitLab answers 202.
    pub fn finish(&self, outcome: Outcome) -> Result<()> {
        let s = &self.shared;
        let _net = lock(&s.net);
        check_active(self.state(), self.id())?;
        lock(&s.inner).trace.finish_pending();
        let started = Instant::now();
        let mut wait = Duration::from_secs(1);
        loop {
            s.upload(None)?;
            let (state_name, update) = s.final_update(&outcome);
            let reply = s.put(&update)?;
            match reply.outcome {
                UpdateOutcome::Applied => {
                    let new_state = match (&reply.signals.status, &outcome) {
                        (Some(RemoteStatus::Canceled), _) => JobState::Canceled,
                        (_, Outcome::Success) => JobState::Success,
                        (_, Outcome::Failed(_)) => JobState::Failed,
                    };
                    lock(&s.inner).state = new_state;
                    diag::info(&format!("job {}: reported {state_name}", s.info.id));
                    return Ok(());
                }
                UpdateOutcome::Accepted if started.elapsed() < FINAL_UPDATE_PATIENCE => {
                    wait = reply.signals.update_interval.unwrap_or(wait * 2).min(MAX_ACCEPTED_WAIT);
                    diag::debug(&format!("job {}: final update accepted, waiting {}s", s.info.id, wait.as_secs()));
                    std::thread::sleep(wait);
                }
                UpdateOutcome::TraceResetRequested => {
                    diag::warn(&format!("job {}: GitLab asks for the whole log again", s.info.id));
                    lock(&s.inner).trace.reset();
                }
                // Our own earlier final update was applied but its answer was lost.
                UpdateOutcome::Forbidden
                    if reply.signals.status.as_ref().is_some_and(|st| st.as_str() == state_name) =>
                {
                    lock(&s.inner).state = if state_name == "success" { JobState::Success } else { JobState::Failed };
                    return Ok(());
                }
                UpdateOutcome::Forbidden => {
                    s.observe(&reply.signals, &reply.answer, true)?;
                    return Err(reply.answer.unexpected());
                }
                UpdateOutcome::Accepted | UpdateOutcome::Unexpected => return Err(reply.answer.unexpected()),
            }
        }
    }

    /// The registry credential for `image`: (username, password).
    pub fn registry_credential(&self, image: &str) -> Result<(String, String)> {
        self.info().registry_credential(image).map(|c| (c.username.clone(), c.password.clone())).ok_or_else(|| {
            Error::not_found(format!("job {}: no registry credential matches image {image:?}", self.id()))
        })
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // The C side frees its userdata after this: make sure the callback can no longer run
        // (this waits for a call in progress on the uploader thread).
        self.set_cancel_callback(None);
    }
}

/// Ok while the job may still log and finish.
fn check_active(state: JobState, id: i64) -> Result<()> {
    match state {
        JobState::Running | JobState::Canceling => Ok(()),
        JobState::Canceled => Err(Error::new(ErrorKind::JobCanceled, format!("job {id} was canceled by GitLab"))),
        s => Err(Error::new(ErrorKind::AlreadyFinished, format!("job {id} has already finished as {}", s.as_str()))),
    }
}

impl JobShared {
    fn endpoint(&self) -> JobEndpoint<'_> {
        JobEndpoint { api_url: &self.runner.api_url, job_id: self.info.id, token: &self.info.token }
    }

    fn put(&self, update: &Update<'_>) -> Result<wire::UpdateReply> {
        wire::update(self.endpoint(), update)
    }

    fn summary(&self) -> TraceSummary {
        let m = lock(&self.inner);
        TraceSummary { checksum: m.trace.checksum(), bytesize: m.trace.len() }
    }

    fn set_state(&self, new: JobState) {
        let changed = {
            let mut m = lock(&self.inner);
            let changed = m.state != new;
            m.state = new;
            changed
        };
        if changed {
            let cb = read(&self.cancel_callback);
            if let Some(cb) = cb.as_ref() {
                cb(new);
            }
        }
    }

    /// Applies what an answer to a non-final request tells: the update interval and
    /// `Job-Status`. `canceling`: graceful cancel (state CANCELING, still usable);
    /// `canceled`/`failed` or a refused job token (`forbidden`): GitLab stopped the job (state
    /// CANCELED, error).
    fn observe(&self, signals: &JobSignals, answer: &Answer, forbidden: bool) -> Result<()> {
        let current = {
            let mut m = lock(&self.inner);
            if let Some(i) = signals.update_interval {
                m.update_interval = i.min(MAX_UPDATE_INTERVAL);
            }
            if answer.succeeded() {
                m.last_contact = Instant::now();
            }
            m.state
        };
        let status = signals.status.as_ref();
        if forbidden && status == Some(&RemoteStatus::Success) {
            // Another process (that loaded the same dump) already reported the job successful.
            self.set_state(JobState::Success);
            return Err(answer
                .error(ErrorKind::AlreadyFinished)
                .context(format!("job {}: GitLab already has it as successful", self.info.id)));
        }
        let stopped = forbidden || matches!(status, Some(RemoteStatus::Canceled | RemoteStatus::Failed));
        if stopped {
            diag::warn(&format!("job {} was stopped by GitLab", self.info.id));
            self.set_state(JobState::Canceled);
            let why = match status {
                Some(s) => format!("GitLab reports the job as {}", s.as_str()),
                None => "job token rejected or job no longer running".to_string(),
            };
            return Err(answer.error(ErrorKind::JobCanceled).context(format!("job {}: {why}", self.info.id)));
        }
        if status == Some(&RemoteStatus::Canceling) && current == JobState::Running {
            diag::info(&format!("job {}: GitLab asks to cancel it (graceful)", self.info.id));
            self.set_state(JobState::Canceling);
        }
        Ok(())
    }

    /// `observe` of an update's reply; Ok for the outcomes of a non-final update that succeeded.
    fn observe_update(&self, reply: &wire::UpdateReply) -> Result<()> {
        self.observe(&reply.signals, &reply.answer, reply.outcome == UpdateOutcome::Forbidden)?;
        match reply.outcome {
            UpdateOutcome::Applied | UpdateOutcome::Accepted => Ok(()),
            _ => Err(reply.answer.unexpected()),
        }
    }

    fn commit_locked(&self) -> Result<()> {
        if lock(&self.inner).committed {
            return Ok(());
        }
        let reply = self.put(&Update { info: &self.runner_info, state: UpdateState::Running, output: None })?;
        self.observe_update(&reply)?;
        lock(&self.inner).committed = true;
        Ok(())
    }

    /// Keep-alive `PUT state=running` with the log's checksum and size. Caller holds `net`.
    fn touch(&self) -> Result<()> {
        self.commit_locked()?;
        let reply =
            self.put(&Update { info: &self.runner_info, state: UpdateState::Running, output: Some(self.summary()) })?;
        self.observe_update(&reply)
    }

    /// PATCHes until GitLab holds every byte (or `max_patches` were sent). Caller holds `net`.
    fn upload(&self, max_patches: Option<usize>) -> Result<()> {
        self.commit_locked()?;
        let mut resyncs = 0;
        let mut sent = 0;
        loop {
            if max_patches.is_some_and(|max| sent >= max) {
                return Ok(());
            }
            let (chunk, body) = {
                let m = lock(&self.inner);
                match m.trace.next_chunk() {
                    None => return Ok(()),
                    Some(c) => (c, m.trace.bytes()[c.from..c.to].to_vec()),
                }
            };
            sent += 1;
            let reply = match wire::patch_trace(self.endpoint(), chunk.start, body) {
                Ok(r) => r,
                Err(e) => {
                    lock(&self.inner).trace.unanswered(chunk);
                    return Err(e);
                }
            };
            self.observe(&reply.signals, &reply.answer, reply.outcome == TraceOutcome::Forbidden)?;
            match reply.outcome {
                TraceOutcome::Stored { size: Some(size) } => {
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
                TraceOutcome::Stored { size: None } => {
                    lock(&self.inner).trace.accepted(chunk, chunk.start + chunk.len())
                }
                TraceOutcome::RangeMismatch { size } => {
                    diag::debug(&format!("job {}: GitLab's log is {size} bytes, resyncing", self.info.id));
                    lock(&self.inner).trace.resync(size);
                    resyncs += 1;
                }
                TraceOutcome::Forbidden | TraceOutcome::Unexpected => return Err(reply.answer.unexpected()),
            }
            if resyncs > MAX_RESYNCS_WITHOUT_PROGRESS {
                return Err(Error::new(
                    ErrorKind::Http,
                    format!("job {}: GitLab's log keeps changing under our uploads; giving up for now", self.info.id),
                ));
            }
        }
    }

    fn final_update(&self, outcome: &Outcome) -> (&'static str, Update<'_>) {
        let exit_code = lock(&self.inner).exit_code;
        let (name, state) = match outcome {
            Outcome::Success => ("success", UpdateState::Success),
            Outcome::Failed(reason) => (
                "failed",
                UpdateState::Failed {
                    reason: failure::map_for_gitlab(reason, self.info.failure_reasons.as_deref()),
                    exit_code,
                },
            ),
        };
        (name, Update { info: &self.runner_info, state, output: Some(self.summary()) })
    }
}

impl Background for JobShared {
    /// When the background uploader should next look at this job (None: nothing to do).
    fn next_due(&self, now: Instant) -> Option<Instant> {
        let m = lock(&self.inner);
        if !m.state.is_active() {
            return None;
        }
        // Like the official runner's trace loop: a tick at GitLab's interval uploads what is new,
        // or, when nothing reached GitLab for a while, sends a keep-alive.
        let tick = m.last_attempt.map_or(now, |t| t + m.update_interval);
        let due = if m.trace.acknowledged() < m.trace.len() {
            tick
        } else if m.committed {
            tick.max(m.last_contact + KEEPALIVE_AFTER)
        } else {
            return None;
        };
        // Never two turns within a second, and back off after failures.
        let gap = if m.failures > 0 {
            Duration::from_secs(1u64 << m.failures.min(6)).min(MAX_RETRY_BACKOFF)
        } else {
            MIN_TURN_GAP
        };
        Some(m.last_attempt.map_or(due, |t| due.max(t + gap)))
    }

    /// One turn of the background uploader for this job.
    fn turn(&self) {
        let Ok(_net) = self.net.try_lock() else {
            // A caller is flushing or finishing: it does the work; look again later.
            lock(&self.inner).last_attempt = Some(Instant::now());
            return;
        };
        let (active, has_data, keepalive_due) = {
            let m = lock(&self.inner);
            (
                m.state.is_active(),
                m.trace.acknowledged() < m.trace.len(),
                m.committed && m.last_contact.elapsed() >= KEEPALIVE_AFTER,
            )
        };
        let result = if !active {
            return;
        } else if has_data {
            self.upload(Some(PATCHES_PER_TURN))
        } else if keepalive_due {
            self.touch()
        } else {
            lock(&self.inner).last_attempt = Some(Instant::now());
            return;
        };
        let mut m = lock(&self.inner);
        m.last_attempt = Some(Instant::now());
        match result {
            Ok(()) => m.failures = 0,
            Err(e) => {
                m.failures = m.failures.saturating_add(1);
                drop(m);
                if e.kind != ErrorKind::JobCanceled {
                    diag::warn(&format!("job {}: background log upload failed (will retry): {e}", self.info.id));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::runner::{RegisterOptions, Runner};
    use glr_testserver::{Config, TestServer};

    fn running_job(server: &TestServer) -> (Job, i64) {
        let id = server.queue_job(serde_json::json!({}));
        let runner =
            Runner::register(&server.url(), &server.registration_token(), &RegisterOptions::default()).unwrap();
        let job = runner.request_job().unwrap().expect("a job");
        (job, id)
    }

    #[test]
    fn a_silent_job_is_kept_alive() {
        let server =
            TestServer::start_with(Config { long_poll_timeout: Duration::from_millis(100), ..Config::default() });
        let (job, id) = running_job(&server);
        let before = server.job(id).unwrap().updates;
        // Pretend nothing reached GitLab for longer than the keep-alive period.
        lock(&job.shared.inner).last_contact = Instant::now() - KEEPALIVE_AFTER - Duration::from_secs(1);
        uploader::wake();
        let rec = server.wait_for_job(id, Duration::from_secs(10), |j| j.updates > before);
        assert!(rec.is_some(), "a keep-alive PUT state=running was sent");
        let put = server.requests().into_iter().rev().find(|r| r.method == "PUT").unwrap();
        assert_eq!(put.body_json.unwrap()["state"], "running");
        assert!(lock(&job.shared.inner).last_contact.elapsed() < KEEPALIVE_AFTER);
    }

    #[test]
    fn a_cancel_is_discovered_by_a_keep_alive() {
        let server =
            TestServer::start_with(Config { long_poll_timeout: Duration::from_millis(100), ..Config::default() });
        let (job, id) = running_job(&server);
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        job.set_cancel_callback(Some(Box::new(move |state| {
            let _ = lock(&tx).send(state);
        })));
        server.cancel_job(id, true);
        lock(&job.shared.inner).last_contact = Instant::now() - KEEPALIVE_AFTER - Duration::from_secs(1);
        uploader::wake();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(JobState::Canceling), "graceful, via keep-alive");
        server.cancel_job(id, false);
        lock(&job.shared.inner).last_contact = Instant::now() - KEEPALIVE_AFTER - Duration::from_secs(1);
        uploader::wake();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(JobState::Canceled), "hard, via keep-alive");
        assert_eq!(job.state(), JobState::Canceled);
    }

    #[test]
    fn the_background_schedule_follows_gitlab_s_interval_and_backs_off() {
        let server = TestServer::start();
        let (job, _) = running_job(&server);
        let now = Instant::now();
        let s = &job.shared;
        assert!(s.next_due(now).unwrap() > now, "nothing to send: only the keep-alive is scheduled");
        lock(&s.inner).trace.push(b"x");
        {
            let mut m = lock(&s.inner);
            m.last_attempt = None;
        }
        assert_eq!(s.next_due(now), Some(now), "the first upload is due at once");
        {
            let mut m = lock(&s.inner);
            m.last_attempt = Some(now);
            m.update_interval = Duration::from_secs(60);
        }
        assert_eq!(s.next_due(now), Some(now + Duration::from_secs(60)), "then at GitLab's interval");
        {
            let mut m = lock(&s.inner);
            m.update_interval = Duration::from_secs(3);
            m.failures = 5;
        }
        assert_eq!(s.next_due(now), Some(now + Duration::from_secs(32)), "after failures: backoff");
        {
            let mut m = lock(&s.inner);
            m.failures = 0;
            m.trace = Trace::new(Masker::default());
            m.last_contact = now;
        }
        assert_eq!(s.next_due(now), Some(now + KEEPALIVE_AFTER), "silent: a keep-alive after 30 s");
        lock(&s.inner).state = JobState::Success;
        assert_eq!(s.next_due(now), None, "a finished job is left alone");
    }
}
