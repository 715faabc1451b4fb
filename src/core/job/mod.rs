//! A job taken from GitLab: its payload, its state, its log and the updates that report it.
//!
//! One writer per job: a job's log has exactly one writer at a time, the *owner*. A hand-over
//! (`hand_over`) writes the dump the next owner loads and turns this handle into a *watcher*,
//! which keeps the job alive at GitLab and learns cancels, may finish it (without the log's
//! checksum: it does not have the log), but never sends log text again. A fork()ed child's copy
//! of its parent's job is not the owner either (`shared::JobShared::check_local`).
//!
//! - [`shared`]: the state shared by every handle and the conversation with GitLab;
//! - [`background`]: what the uploader thread does for a job;
//! - [`callback`]: the cancel callback, delivered on the event thread.

mod background;
mod callback;
mod shared;

pub use callback::CancelCallback;
pub(crate) use shared::DEFAULT_CALL_TIMEOUT;

use crate::core::api;
use crate::core::artifacts::{self, ArtifactSet};
use crate::core::blocks::BLOCK;
use crate::core::error::{Error, ErrorKind, Result};
use crate::core::info::info_raw;
use crate::core::mask::Masker;
use crate::core::model::{JobData, JobState, JobView, LoadedJob, LogData, RunnerData};
use crate::core::payload::{JobInfo, VAR_MASKED};
use crate::core::payload_text;
use crate::core::sync::lock;
use crate::core::time;
use crate::core::trace::Trace;
use crate::core::uploader::{self, Background};
use crate::core::url::warn_if_plain_http;
use serde_json::value::RawValue;
use shared::{JobMut, JobShared, Parts, Patches, Role, DEFAULT_KEEPALIVE, DEFAULT_UPDATE_INTERVAL};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A job. The background uploader keeps only a weak reference.
pub struct Job {
    shared: Arc<JobShared>,
    /// How this job asks the background thread to look at it.
    background: uploader::Registration,
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
    /// A job from its data; `trace` builds its log (empty for a new job, restored from a dump).
    /// `info`: the payload read already (None: read here).
    fn build(
        data: JobData,
        info: Option<JobInfo>,
        runner_info: Option<Arc<RawValue>>,
        role: Role,
        trace: impl FnOnce(LogData, Masker) -> Trace,
    ) -> Result<Job> {
        let JobData { runner, payload, state, committed, exit_code, log, taken_at } = data;
        let info = match info {
            Some(info) => info,
            None => payload_text::job_info(&payload)?,
        };
        let trace = trace(log, masker_for(&info));
        let inner = JobMut {
            state,
            role,
            committed,
            exit_code,
            trace,
            update_interval: DEFAULT_UPDATE_INTERVAL,
            keepalive: DEFAULT_KEEPALIVE,
            last_attempt: None,
            last_contact: Instant::now(),
            failures: 0,
            not_before: None,
            caller_sending: false,
        };
        let runner_info = runner_info.unwrap_or_else(|| Arc::from(info_raw(&runner)));
        let keep_details = role == Role::Owner;
        let parts = Parts { runner, runner_info, payload, info, keep_details, taken_at, inner };
        let shared = Arc::new_cyclic(|me| JobShared::new(parts, me.clone()));
        if !keep_details {
            shared.slim_down();
        }
        let background: Arc<dyn Background> = shared.clone();
        let background = uploader::register(Arc::downgrade(&background));
        Ok(Job { shared, background })
    }

    /// A job just received from `POST /jobs/request` by `runner`: this handle owns its log.
    pub fn new(runner: RunnerData, payload: String) -> Result<Job> {
        let info = Arc::from(info_raw(&runner));
        Self::received(Arc::new(runner), info, payload)
    }

    /// As [`Job::new`], with the runner's `info` already serialised (its updates carry it).
    pub(crate) fn received(runner: Arc<RunnerData>, runner_info: Arc<RawValue>, payload: String) -> Result<Job> {
        let data = JobData {
            runner,
            payload,
            state: JobState::Running,
            committed: false,
            exit_code: None,
            log: LogData::default(),
            taken_at: Some(time::unix_now()),
        };
        Self::build(data, None, Some(runner_info), Role::Owner, |_, masker| Trace::new(masker))
    }

    /// A job restored from a dump (offline; its log offset is re-learned before the next
    /// upload): the new owner of its log.
    pub fn from_loaded(job: LoadedJob) -> Result<Job> {
        Self::restore(job, Role::Owner)
    }

    /// A watcher restored from a dump (offline): keeps the job alive and learns cancels while
    /// another process, which loaded the same dump, writes the log.
    pub fn watcher_from_loaded(job: LoadedJob) -> Result<Job> {
        Self::restore(job, Role::Watcher)
    }

    fn restore(LoadedJob { data, info }: LoadedJob, role: Role) -> Result<Job> {
        warn_if_plain_http(&data.runner.api_url);
        Self::build(data, info, None, role, Trace::from_data)
    }

    /// A snapshot of everything persisted, for a dump that leaves this handle the owner.
    /// Err(NotOwner) for a watcher: it does not have the log a loader would continue.
    pub fn to_data(&self) -> Result<JobData> {
        self.shared.check_local()?;
        if !self.shared.is_owner() {
            return Err(self.shared.not_owner());
        }
        Ok(self.shared.to_data())
    }

    /// As [`to_data`](Self::to_data), borrowed: `f` runs under the job's lock, so it should
    /// only write the view out.
    pub fn with_view<R>(&self, f: impl FnOnce(&JobView<'_>) -> R) -> Result<R> {
        self.shared.check_local()?;
        if !self.shared.is_owner() {
            return Err(self.shared.not_owner());
        }
        Ok(self.shared.with_view(f))
    }

    /// Hands the job over: waits for the upload in progress (if any) to get its answer,
    /// starts no other, snapshots the job and gives the snapshot to `write` (which writes the
    /// dump the next owner loads). When `write` succeeds this handle is a watcher from then on;
    /// when it fails, nothing changed and the handle is still the owner.
    pub fn hand_over<T>(&self, write: impl FnOnce(&JobData) -> Result<T>) -> Result<T> {
        let s = &self.shared;
        s.check_local()?;
        {
            let m = lock(&s.inner);
            if m.role != Role::Owner {
                drop(m);
                return Err(s.not_owner());
            }
            s.check_active(m.state)?;
        }
        s.handing_over.store(true, Ordering::Release);
        let result = (|| {
            let call = s.call();
            // The uploader or another caller may be in the middle of a PATCH: its answer tells
            // whether GitLab stored those bytes, which the dump must know.
            let _net = s.lock_net(&call)?;
            let data = {
                let mut m = lock(&s.inner);
                s.check_active(m.state)?;
                m.role = Role::HandingOver; // no append from here on: it would be lost
                JobData {
                    runner: s.runner.clone(),
                    payload: s.payload.clone(),
                    state: m.state,
                    committed: m.committed,
                    exit_code: m.exit_code,
                    log: m.trace.to_data(),
                    taken_at: s.taken_at,
                }
            };
            let written = write(&data);
            lock(&s.inner).role = if written.is_ok() { Role::Watcher } else { Role::Owner };
            if written.is_ok() {
                s.slim_down();
            }
            written
        })();
        s.handing_over.store(false, Ordering::Release);
        uploader::wake();
        result
    }

    /// Whether this handle is a watcher (handed over, loaded as one, or a fork()ed child's copy).
    pub fn is_watcher(&self) -> bool {
        self.shared.check_local().is_err() || !self.shared.is_owner()
    }

    pub fn id(&self) -> i64 {
        self.shared.info.id
    }
    /// What the payload says (parsed again if this handle dropped it, as watchers do).
    pub fn info(&self) -> Arc<JobInfo> {
        self.shared.details()
    }
    /// GitLab's payload as JSON text.
    pub fn payload(&self) -> &str {
        &self.shared.payload
    }
    pub fn runner(&self) -> &RunnerData {
        &self.shared.runner
    }
    /// The state, without a lock (also in a fork()ed child).
    pub fn state(&self) -> JobState {
        self.shared.state()
    }
    /// Waits until the state differs from `known` (or the job is freed, or `timeout` passed;
    /// None: no limit) and returns it.
    pub fn wait_state(&self, known: JobState, timeout: Option<Duration>) -> Result<JobState> {
        self.shared.check_local()?;
        Ok(self.shared.wait_state(known, timeout))
    }

    /// A descriptor that becomes readable after each state change (for poll loops); the
    /// caller resets it by reading its 8-byte counter; it is closed when the job is freed.
    pub fn event_fd(&self) -> Result<i32> {
        self.shared.check_local()?;
        self.shared.event_fd()
    }

    /// Seconds GitLab gives the job (`runner_info.timeout`), when it said.
    pub fn timeout(&self) -> Option<i64> {
        self.shared.info.timeout
    }

    /// Unix time at which GitLab stops the job (taken + timeout; its token expires 5 minutes
    /// later), when known.
    pub fn deadline(&self) -> Option<i64> {
        self.shared.deadline()
    }

    /// Whether GitLab has acknowledged the job (`PUT state=running`, the two-phase commit): a
    /// job not acknowledged within 2 minutes of its pickup is given to another runner.
    pub fn acknowledged(&self) -> Result<bool> {
        self.shared.check_local()?;
        Ok(lock(&self.shared.inner).committed)
    }

    /// The whole log as stored (what was appended, masked and UTF-8-fixed). A watcher has the
    /// log as it was when it was handed over or dumped.
    pub fn log_text(&self) -> Result<String> {
        self.shared.check_local()?;
        Ok(lock(&self.shared.inner).trace.text_string())
    }

    /// Appends to the log: a memory copy, never a network wait. The background uploader sends it
    /// promptly the first time, then at the interval GitLab asks for.
    pub fn append_log(&self, data: &[u8]) -> Result<()> {
        let s = &self.shared;
        s.check_local()?;
        let wake = {
            let mut m = lock(&s.inner);
            if m.role != Role::Owner {
                drop(m);
                return Err(s.not_owner());
            }
            s.check_active(m.state)?;
            let idle = m.trace.all_acknowledged();
            let before = m.trace.len();
            m.trace.push(data);
            // The uploader sleeps until the interval unless told: told when the log gets text
            // to send after having none, and each time it grows past a block's end, when a
            // whole PATCH waits that goes up at once (see `background::full_chunk_waiting`).
            let filled_a_block = m.trace.len() / BLOCK != before / BLOCK;
            (idle || filled_a_block) && !m.trace.all_acknowledged()
        };
        if wake {
            self.background.wake();
        }
        Ok(())
    }

    /// Caps the log at `limit` bytes (the official runner's notice is added where it is cut).
    pub fn set_log_limit(&self, limit: usize) -> Result<()> {
        let s = &self.shared;
        s.check_local()?;
        let mut m = lock(&s.inner);
        if m.role != Role::Owner {
            drop(m);
            return Err(s.not_owner());
        }
        m.trace.set_limit(limit);
        Ok(())
    }

    pub fn set_exit_code(&self, code: i32) -> Result<()> {
        self.shared.check_local()?;
        let mut m = lock(&self.shared.inner);
        self.shared.check_active(m.state)?;
        m.exit_code = Some(code);
        Ok(())
    }

    /// How long this job may go without an exchange with GitLab before the background sends a
    /// keep-alive (owners and watchers alike).
    pub fn set_keepalive_interval(&self, interval: Duration) -> Result<()> {
        self.shared.check_local()?;
        lock(&self.shared.inner).keepalive = interval;
        uploader::wake();
        Ok(())
    }

    /// How long one call of this job (flush, finish, auth, artifact transfers) may take in all.
    pub fn set_call_timeout(&self, limit: Duration) {
        self.shared.set_call_timeout(limit);
    }

    /// Installs (or with None removes) the function called when GitLab cancels the job. It runs
    /// on the library's event thread, with no lock held. Returns once a call of the previous
    /// callback in progress has returned (except when called from a callback).
    pub fn set_cancel_callback(&self, callback: Option<CancelCallback>) {
        self.shared.callback.replace(callback);
    }

    /// `PUT state=running`: accepts the job (two-phase commit). Sent once, before the first log
    /// upload; `request_job` sends it right after pickup.
    pub fn commit(&self) -> Result<()> {
        let s = &self.shared;
        s.check_local()?;
        let call = s.call();
        let _net = s.lock_net(&call)?;
        s.commit_locked(&call)
    }

    /// Keep-alive and cancel check (the Python package's `auth()`): `PUT state=running`, with
    /// the log's checksum and size from the owner, as the official runner's touch.
    pub fn auth(&self) -> Result<()> {
        let s = &self.shared;
        s.check_local()?;
        s.check_active(s.state())?;
        let call = s.call();
        let _net = s.lock_net(&call)?;
        s.check_active(s.state())?;
        s.touch(&call)
    }

    /// Uploads everything appended so far; returns when GitLab acknowledged it all.
    pub fn flush_log(&self) -> Result<()> {
        let s = &self.shared;
        s.check_local()?;
        if !s.is_owner() {
            return Err(s.not_owner());
        }
        s.check_active(s.state())?;
        let call = s.call();
        let _net = s.lock_net(&call)?;
        s.check_active(s.state())?;
        s.upload(Patches::All, &call)
    }

    /// Uploads `set` (each file in order), then reports the job finished. An upload failure
    /// returns its error and leaves the job running, so the caller can retry or fail it.
    pub fn finish_with_artifacts(&self, outcome: Outcome, set: &ArtifactSet) -> Result<()> {
        let s = &self.shared;
        s.check_local()?;
        s.check_active(s.state())?;
        let call = s.call();
        let _net = s.lock_net(&call)?;
        s.check_active(s.state())?;
        if !set.files.is_empty() {
            // Job-token endpoints only accept a job GitLab sees running.
            s.commit_locked(&call)?;
            for file in &set.files {
                if let Err(e) = api::upload::upload(&s.runner.api_url, s.info.id, &s.info.token, file, &call) {
                    if e.kind == ErrorKind::JobCanceled {
                        // A 403: GitLab no longer runs the job, as on a PATCH or PUT.
                        s.stopped_by_artifact_refusal(&e);
                    }
                    return Err(e);
                }
            }
        }
        s.finish_locked(&outcome, &call)
    }

    /// Reports the job finished: the owner uploads the whole log, then the final `PUT` with
    /// checksum, size, failure reason and exit code, repeated while GitLab answers 202.
    pub fn finish(&self, outcome: Outcome) -> Result<()> {
        self.finish_with_artifacts(outcome, &ArtifactSet::default())
    }

    /// The registry credential for `image`: (username, password).
    pub fn registry_credential(&self, image: &str) -> Result<(String, String)> {
        self.info().registry_credential(image).map(|c| (c.username.clone(), c.password.clone())).ok_or_else(|| {
            Error::not_found(format!("job {}: no registry credential matches image {image:?}", self.id()))
        })
    }

    /// Downloads the artifacts archive of dependency `index` to `dest`; returns its size.
    pub fn download_artifacts(&self, index: usize, dest: &Path) -> Result<u64> {
        let call = self.shared.call();
        artifacts::download(&self.shared.runner.api_url, &self.shared.details(), index, dest, &call)
    }

    /// Nothing of this job reaches GitLab from this handle any more: calls in progress end at
    /// once (`Interrupted`), no request starts, an answer in flight is ignored.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether this handle is a fork()ed child's copy of a job its parent took (then it must not
    /// be touched beyond reading its fixed values: its locks may be held by a thread that only
    /// existed in the parent).
    pub fn is_parents(&self) -> bool {
        self.shared.check_local().is_err()
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.is_parents() {
            // A fork()ed child's copy: leave the parent's machinery alone (see is_parents).
            return;
        }
        // Nothing of this job reaches GitLab from now on; an answer in flight is ignored.
        self.shared.close();
        // The C side frees its userdata after this: make sure the callback can no longer run
        // (this waits for a delivery in progress on the event thread).
        self.set_cancel_callback(None);
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

    fn pretend_silent(job: &Job) {
        let mut m = lock(&job.shared.inner);
        m.last_contact = Instant::now() - m.keepalive - Duration::from_secs(1);
    }

    #[test]
    fn the_uploader_waits_while_a_caller_sends_whole_patches() {
        use std::sync::atomic::Ordering;
        let server = TestServer::start();
        let (job, _) = running_job(&server);
        job.append_log(b"first line\n").unwrap();
        job.flush_log().unwrap();
        // A caller sending (as a flush or the finish does, for as long as GitLab takes), while
        // whole PATCHes wait: the uploader finds them due at once, and the sending taken.
        let sending = job.shared.try_lock_net().expect("no one sends");
        let mut line = vec![b'x'; 1023];
        line.push(b'\n');
        for _ in 0..3 * 1024 {
            job.append_log(&line).unwrap();
        }
        let before = background::tests::TURNS_WHILE_A_CALLER_SENDS.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(500));
        let turns = background::tests::TURNS_WHILE_A_CALLER_SENDS.load(Ordering::SeqCst) - before;
        drop(sending);
        // One a second at most (other tests' jobs may add a few): it was one after another.
        assert!(turns <= 20, "the uploader took {turns} turns while a caller was sending");
        job.flush_log().unwrap();
        assert_eq!(server.job(job.id()).unwrap().trace.len(), job.log_text().unwrap().len());
    }

    #[test]
    fn a_silent_job_is_kept_alive() {
        let server =
            TestServer::start_with(Config { long_poll_timeout: Duration::from_millis(100), ..Config::default() });
        let (job, id) = running_job(&server);
        let before = server.job(id).unwrap().updates;
        pretend_silent(&job);
        uploader::wake();
        let rec = server.wait_for_job(id, Duration::from_secs(10), |j| j.updates > before);
        assert!(rec.is_some(), "a keep-alive PUT state=running was sent");
        let put = server.requests().into_iter().rev().find(|r| r.method == "PUT").unwrap();
        assert_eq!(put.body_json.unwrap()["state"], "running");
        // The server counts the update before our side has read its answer: wait for that.
        let deadline = Instant::now() + Duration::from_secs(10);
        while lock(&job.shared.inner).last_contact.elapsed() >= DEFAULT_KEEPALIVE && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(lock(&job.shared.inner).last_contact.elapsed() < DEFAULT_KEEPALIVE, "the answer renewed the clock");
    }

    #[test]
    fn a_cancel_is_discovered_by_a_keep_alive() {
        let server =
            TestServer::start_with(Config { long_poll_timeout: Duration::from_millis(100), ..Config::default() });
        let (job, id) = running_job(&server);
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        job.set_cancel_callback(Some(Box::new(move |state| {
            let _ = lock(&tx).send(state);
        })));
        server.cancel_job(id, true);
        pretend_silent(&job);
        uploader::wake();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(JobState::Canceling), "graceful, via keep-alive");
        server.cancel_job(id, false);
        pretend_silent(&job);
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
        lock(&s.inner).last_attempt = Some(now);
        assert_eq!(
            s.next_due(now),
            Some(now + Duration::from_secs(1)),
            "also after a commit or keep-alive attempt (but not twice within a second)"
        );
        {
            let mut m = lock(&s.inner);
            let c = m.trace.next_chunk().unwrap();
            m.trace.accepted(c, c.start + c.len());
            m.trace.push(b"more");
        }
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
        assert_eq!(s.next_due(now), Some(now + DEFAULT_KEEPALIVE), "silent: a keep-alive after 30 s");
        {
            let mut m = lock(&s.inner);
            m.update_interval = Duration::from_secs(60);
            m.last_attempt = Some(now);
        }
        assert_eq!(s.next_due(now), Some(now + DEFAULT_KEEPALIVE), "not paced by GitLab's upload interval");
        job.set_keepalive_interval(Duration::from_secs(5)).unwrap();
        assert_eq!(s.next_due(now), Some(now + Duration::from_secs(5)), "at the interval set");
        lock(&s.inner).role = Role::Watcher;
        lock(&s.inner).trace.push(b"y");
        assert_eq!(s.next_due(now), Some(now + Duration::from_secs(5)), "a watcher: keep-alives only");
        s.set_state(JobState::Success);
        assert_eq!(s.next_due(now), None, "a finished job is left alone");
    }
}
