//! What every handle of one job shares, and its conversation with GitLab: the commit, the
//! keep-alive, the log uploads and the final update, each reading GitLab's answer through
//! `observe` (state, cancels, intervals).
//!
//! Locking: `inner` holds the state and the log and is only ever held for memory work, so
//! appending never waits on the network; `net` serialises this job's conversation with GitLab
//! (one PATCH or PUT at a time, in order) and is never taken while `inner` is held. The
//! background uploader only ever *tries* `net`: a caller flushing or finishing has priority.
//! No lock is held while a callback runs: state changes are posted to the event thread.

use super::callback::{self, CallbackSlot};
use super::Outcome;
use crate::core::api::jobs::{
    self as wire, JobEndpoint, TraceOutcome, TraceSummary, Update, UpdateOutcome, UpdateReply, UpdateState,
};
use crate::core::api::{Answer, JobSignals, RemoteStatus};
use crate::core::diag;
use crate::core::error::{Error, ErrorKind, Result};
use crate::core::failure;
use crate::core::http::{Call, Interrupter};
use crate::core::model::{JobData, JobState, JobView, RunnerData};
use crate::core::payload::JobInfo;
use crate::core::payload_text;
use crate::core::process;
use crate::core::sync::{lock, wait_timeout};
use crate::core::time;
use crate::core::trace::Trace;
use crate::os::EventFd;
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, TryLockError, Weak};
use std::time::{Duration, Instant};

/// The official runner's first update interval, used until GitLab gives one.
pub(super) const DEFAULT_UPDATE_INTERVAL: Duration = Duration::from_secs(3);
/// GitLab's update interval is capped like the official runner's.
const MAX_UPDATE_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Without a successful exchange for this long, a keep-alive `PUT state=running` is sent (the
/// official runner's default; GitLab drops a running job after an hour without an update).
pub(super) const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);
/// A job's calls (flush, finish, auth...) take at most this long in all unless the caller sets
/// another bound: minutes, so a server that never answers cannot hold a caller for long.
pub(crate) const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// A final update answered 202 ("trace still being persisted") is repeated at most this long;
/// GitLab applies the state by itself after 5 minutes.
const FINAL_UPDATE_PATIENCE: Duration = Duration::from_secs(6 * 60);
/// The longest wait between two repeats of a final update answered 202.
const MAX_ACCEPTED_WAIT: Duration = Duration::from_secs(64);
/// GitLab accepts a job token this long after the job's timeout (`lib/ci/job_token/jwt`).
const JOB_TOKEN_MARGIN_SECONDS: i64 = 5 * 60;
/// Resyncs in a row without progress before a flush gives up (GitLab keeps moving the end).
const MAX_RESYNCS_WITHOUT_PROGRESS: u32 = 20;

/// The payload's values every request needs, kept apart from the rest (see `details`).
pub(crate) struct JobKeys {
    pub(crate) id: i64,
    pub(crate) token: String,
    /// `runner_info.timeout`.
    pub(crate) timeout: Option<i64>,
}

/// What a job is built from.
pub(super) struct Parts {
    pub(super) runner: Arc<RunnerData>,
    pub(super) runner_info: Arc<RawValue>,
    pub(super) payload: String,
    pub(super) info: JobInfo,
    /// Keep the parsed payload (an owner reads it; a watcher parses it again when asked).
    pub(super) keep_details: bool,
    pub(super) taken_at: Option<i64>,
    pub(super) inner: JobMut,
}

/// Who writes the job's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// This handle writes the log (the only one that does).
    Owner,
    /// A hand-over is in progress: no more appends; the dump is being written.
    HandingOver,
    /// Keeps the job alive and learns cancels; never sends log text.
    Watcher,
}

pub(super) struct JobMut {
    pub(super) state: JobState,
    pub(super) role: Role,
    pub(super) committed: bool,
    pub(super) exit_code: Option<i32>,
    pub(super) trace: Trace,
    pub(super) update_interval: Duration,
    pub(super) keepalive: Duration,
    /// When the background uploader last tried to send (None: not since the last append).
    pub(super) last_attempt: Option<Instant>,
    /// Last successful exchange with GitLab (keep-alive clock).
    pub(super) last_contact: Instant,
    /// Consecutive failed background attempts (for backoff).
    pub(super) failures: u32,
    /// No background attempt before this: GitLab asked to wait (`Retry-After`).
    pub(super) not_before: Option<Instant>,
    /// The last background turn found a caller sending (a flush, the finish): whole PATCHes
    /// waiting then wait for the usual gap too, instead of being looked at again at once, which
    /// kept the uploader's thread busy until the caller was done.
    pub(super) caller_sending: bool,
}

pub(crate) struct JobShared {
    pub(super) runner: Arc<RunnerData>,
    /// The runner's `info` as JSON text (sent with every job update).
    pub(super) runner_info: Arc<RawValue>,
    /// GitLab's payload, as JSON text (see `JobData::payload`).
    pub(super) payload: String,
    /// What every request needs, from the payload.
    pub(super) info: JobKeys,
    /// Everything else the payload says (variables, script...), parsed when first asked for and
    /// dropped when the handle becomes a watcher: a process may watch thousands of parked jobs.
    details: Mutex<Option<Arc<JobInfo>>>,
    /// When the job was taken from GitLab (unix seconds; None for a dump too old to say).
    pub(super) taken_at: Option<i64>,
    /// The process generation that built this handle: in a fork()ed child it differs, and the
    /// handle is the parent's (see `check_local`).
    generation: u64,
    pub(super) inner: Mutex<JobMut>,
    net: Mutex<()>,
    /// The state as a number, readable without a lock (`JobState` order).
    state_code: AtomicU8,
    /// Set when the last handle is freed: no request starts any more.
    closed: AtomicBool,
    /// Ends this job's calls in progress at once (when it is freed).
    pub(super) closing: Arc<Interrupter>,
    /// Set while a hand-over waits for the upload in progress: no new attempt or upload starts.
    pub(super) handing_over: Arc<AtomicBool>,
    /// Milliseconds a call may take in all.
    call_timeout_ms: AtomicU64,
    pub(super) callback: CallbackSlot,
    /// Why GitLab stopped the job, in words (an expired token, a deleted job, a cancel), for the
    /// calls that come after: whichever request met it, the reason is not lost.
    stop_reason: Mutex<Option<String>>,
    /// Waiters for a state change (`wait_state`), woken by `set_state` and `close`.
    state_watch: Mutex<()>,
    state_changed: Condvar,
    /// A descriptor made readable on every state change, created on first request.
    event_fd: OnceLock<std::result::Result<EventFd, String>>,
    /// This job, for the events it posts.
    me: Weak<JobShared>,
}

fn state_code(state: JobState) -> u8 {
    match state {
        JobState::Running => 0,
        JobState::Success => 1,
        JobState::Failed => 2,
        JobState::Canceling => 3,
        JobState::Canceled => 4,
    }
}

fn state_of(code: u8) -> JobState {
    match code {
        0 => JobState::Running,
        1 => JobState::Success,
        2 => JobState::Failed,
        3 => JobState::Canceling,
        _ => JobState::Canceled,
    }
}

/// How much of the log one `upload` sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Patches {
    /// Everything (a flush, the final update, shutdown).
    All,
    /// At most this many PATCHes (a background turn, fair to the other jobs).
    AtMost(usize),
    /// At most this many, and only whole chunks: a full block or what ends where more text
    /// follows, never the unfinished end of the log (that waits for GitLab's interval).
    Full(usize),
}

impl Patches {
    fn max(self) -> Option<usize> {
        match self {
            Patches::All => None,
            Patches::AtMost(n) | Patches::Full(n) => Some(n),
        }
    }
}
impl JobShared {
    pub(super) fn new(parts: Parts, me: Weak<JobShared>) -> JobShared {
        let Parts { runner, runner_info, payload, info, keep_details, taken_at, inner } = parts;
        JobShared {
            runner,
            runner_info,
            payload,
            info: JobKeys { id: info.id, token: info.token.clone(), timeout: info.timeout },
            details: Mutex::new(keep_details.then(|| Arc::new(info))),
            taken_at,
            generation: process::generation(),
            state_code: AtomicU8::new(state_code(inner.state)),
            inner: Mutex::new(inner),
            net: Mutex::new(()),
            closed: AtomicBool::new(false),
            closing: Arc::new(Interrupter::new()),
            handing_over: Arc::new(AtomicBool::new(false)),
            call_timeout_ms: AtomicU64::new(DEFAULT_CALL_TIMEOUT.as_millis() as u64),
            callback: CallbackSlot::default(),
            stop_reason: Mutex::new(None),
            state_watch: Mutex::new(()),
            state_changed: Condvar::new(),
            event_fd: OnceLock::new(),
            me,
        }
    }

    pub(super) fn id(&self) -> i64 {
        self.info.id
    }

    /// Everything the payload says, parsed again if it was dropped.
    pub(super) fn details(&self) -> Arc<JobInfo> {
        let mut d = lock(&self.details);
        if let Some(info) = d.as_ref() {
            return info.clone();
        }
        let info = Arc::new(payload_text::job_info(&self.payload).expect("the payload was read before"));
        *d = Some(info.clone());
        info
    }

    /// A watcher keeps only what its requests need: the parsed payload and the masker go.
    pub(super) fn slim_down(&self) {
        *lock(&self.details) = None;
        lock(&self.inner).trace.drop_masking();
    }

    /// The state without taking a lock.
    pub(super) fn state(&self) -> JobState {
        state_of(self.state_code.load(Ordering::Acquire))
    }

    /// Err(NotOwner) in a fork()ed child for a job its parent took: the parent still runs it,
    /// and this copy's locks may have been held by a parent thread that does not exist here.
    pub(super) fn check_local(&self) -> Result<()> {
        if self.generation == process::generation() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::NotOwner,
            format!(
                "job {}: this is the parent process's job (this process was fork()ed after it was taken); \
                 the parent writes its log",
                self.id()
            ),
        ))
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The last handle is gone: nothing of this job reaches GitLab any more. Calls in progress
    /// end at once; an answer in flight is ignored.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.closing.interrupt();
        self.notify_state_watchers();
    }

    /// Wakes `wait_state` callers and makes the event descriptor readable.
    fn notify_state_watchers(&self) {
        // Taken after the change, so a waiter that saw the old state is already waiting.
        drop(lock(&self.state_watch));
        self.state_changed.notify_all();
        if let Some(Ok(fd)) = self.event_fd.get() {
            fd.signal();
        }
    }

    /// Waits until the state differs from `known`, the job is freed, or `timeout` (None: no
    /// limit) passed; returns the state then.
    pub(super) fn wait_state(&self, known: JobState, timeout: Option<Duration>) -> JobState {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut guard = lock(&self.state_watch);
        loop {
            let now = self.state();
            if now != known || self.is_closed() {
                return now;
            }
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(w) if !w.is_zero() => w,
                    _ => return now,
                },
                None => Duration::from_secs(3600),
            };
            guard = wait_timeout(&self.state_changed, guard, wait).0;
        }
    }

    /// The descriptor made readable after each state change (created on first call; closed
    /// with the job).
    pub(super) fn event_fd(&self) -> Result<i32> {
        match self.event_fd.get_or_init(|| EventFd::new().map_err(|e| e.to_string())) {
            Ok(fd) => Ok(fd.raw()),
            Err(e) => Err(Error::io(format!("job {}: cannot create an event descriptor: {e}", self.id()))),
        }
    }

    pub(super) fn set_call_timeout(&self, limit: Duration) {
        let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        self.call_timeout_ms.store(ms, Ordering::Release);
    }

    /// The bounds of one call made by a caller of this job.
    pub(super) fn call(&self) -> Call {
        let limit = Duration::from_millis(self.call_timeout_ms.load(Ordering::Acquire));
        Call::within(limit).interruptible(&self.closing, "the job was freed").stop_retrying_when(&self.handing_over)
    }

    /// Takes `net` within the bounds of `call` (another caller or the uploader may hold it).
    pub(super) fn lock_net<'a>(&'a self, call: &Call) -> Result<MutexGuard<'a, ()>> {
        let mut pause = Duration::from_micros(200);
        loop {
            match self.net.try_lock() {
                Ok(g) => return Ok(g),
                Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
            call.check(&format!("job {}", self.id()))?;
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// `net` if free now, for the background uploader (which never waits for a caller).
    pub(super) fn try_lock_net(&self) -> Option<MutexGuard<'_, ()>> {
        match self.net.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Sets the state; a change to canceling or canceled is posted to the cancel callback.
    pub(super) fn set_state(&self, new: JobState) {
        let changed = {
            let mut m = lock(&self.inner);
            let changed = m.state != new;
            m.state = new;
            self.state_code.store(state_code(new), Ordering::Release);
            changed
        };
        if changed {
            self.notify_state_watchers();
        }
        if changed && matches!(new, JobState::Canceling | JobState::Canceled) {
            callback::post(self.me.clone(), |j: &JobShared| &j.callback, new);
        }
    }

    /// GitLab stopped the job: `why` is what later calls will say.
    fn stopped(&self, why: String) {
        *lock(&self.stop_reason) = Some(why);
        self.set_state(JobState::Canceled);
    }

    /// An artifact upload's job token was refused: GitLab no longer runs the job.
    pub(super) fn stopped_by_artifact_refusal(&self, e: &Error) {
        self.stopped(e.message.clone());
    }

    /// Ok while the job may still log and finish (`state` is the state the caller read). Inlined:
    /// every append asks; the error is built out of line.
    #[inline]
    pub(super) fn check_active(&self, state: JobState) -> Result<()> {
        match state {
            JobState::Running | JobState::Canceling => Ok(()),
            s => Err(self.inactive(s)),
        }
    }

    #[cold]
    #[inline(never)]
    fn inactive(&self, state: JobState) -> Error {
        let id = self.id();
        match state {
            JobState::Canceled => {
                let why = lock(&self.stop_reason).clone().unwrap_or_else(|| format!("job {id} was canceled by GitLab"));
                Error::new(ErrorKind::JobCanceled, why)
            }
            s => Error::new(ErrorKind::AlreadyFinished, format!("job {id} has already finished as {}", s.as_str())),
        }
    }

    pub(super) fn is_owner(&self) -> bool {
        lock(&self.inner).role == Role::Owner
    }

    pub(super) fn not_owner(&self) -> Error {
        let why = match lock(&self.inner).role {
            Role::HandingOver => "it is being handed over",
            _ => "it was handed over (this handle is a watcher)",
        };
        Error::new(ErrorKind::NotOwner, format!("job {}: this handle does not write the log: {why}", self.id()))
    }

    /// The job as [`to_data`](Self::to_data) gives it, borrowed, for `f` to run under the lock
    /// (a dump is written straight from the log buffer: no copy of a large log).
    pub(super) fn with_view<R>(&self, f: impl FnOnce(&JobView<'_>) -> R) -> R {
        let m = lock(&self.inner);
        f(&JobView {
            runner: &self.runner,
            payload: &self.payload,
            state: m.state,
            committed: m.committed,
            exit_code: m.exit_code,
            log: m.trace.view(),
            taken_at: self.taken_at,
        })
    }

    pub(super) fn to_data(&self) -> JobData {
        let m = lock(&self.inner);
        JobData {
            runner: self.runner.clone(),
            payload: self.payload.clone(),
            state: m.state,
            committed: m.committed,
            exit_code: m.exit_code,
            log: m.trace.to_data(),
            taken_at: self.taken_at,
        }
    }

    /// Unix time at which GitLab stops the job: taken + its timeout (None when unknown).
    pub(super) fn deadline(&self) -> Option<i64> {
        Some(self.taken_at? + self.info.timeout?)
    }

    /// Why GitLab refuses the job token, in words: an expired token (GitLab accepts it for the
    /// job's timeout plus 5 minutes after the job was taken) or a job no longer running.
    fn refusal(&self, status: Option<&RemoteStatus>, answer: &Answer) -> String {
        let past_deadline = self.deadline().is_some_and(|d| time::unix_now() > d + JOB_TOKEN_MARGIN_SECONDS);
        if answer.says("expired") || past_deadline {
            let timeout = self.info.timeout.map_or("unknown".to_string(), |t| format!("{t} s"));
            return format!(
                "the job token has expired: GitLab accepts it for the job's timeout ({timeout}) plus 5 minutes after \
                 the job was taken{}",
                self.deadline().map_or(String::new(), |d| format!(" (deadline {})", time::format_rfc3339(d)))
            );
        }
        match status {
            Some(s) => format!("GitLab reports the job as {}", s.as_str()),
            None => "job token rejected or job no longer running".to_string(),
        }
    }

    fn endpoint(&self) -> JobEndpoint<'_> {
        JobEndpoint { api_url: &self.runner.api_url, job_id: self.info.id, token: &self.info.token }
    }

    /// Err once the job is freed: no request may start.
    fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::new(ErrorKind::Interrupted, format!("job {}: the job was freed", self.id())));
        }
        Ok(())
    }

    fn put(&self, update: &Update<'_>, call: &Call) -> Result<UpdateReply> {
        self.check_open()?;
        let reply = wire::update(self.endpoint(), update, call)?;
        // An answer that arrives after the job was freed changes nothing.
        self.check_open()?;
        Ok(reply)
    }

    fn summary(&self) -> TraceSummary {
        let m = lock(&self.inner);
        TraceSummary { checksum: m.trace.checksum(), bytesize: m.trace.len() }
    }

    /// Applies what an answer to a non-final request tells: the update interval and
    /// `Job-Status`. `canceling`: graceful cancel (state CANCELING, still usable);
    /// `canceled`/`failed` or a refused job token (`forbidden`): GitLab stopped the job (state
    /// CANCELED, error).
    fn observe(&self, signals: &JobSignals, answer: &Answer, forbidden: bool) -> Result<()> {
        let current = {
            let mut m = lock(&self.inner);
            m.not_before = answer.retry_after.map(|wait| Instant::now() + wait);
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
            let why = if forbidden {
                self.refusal(status, answer)
            } else {
                format!("GitLab reports the job as {}", status.map_or("stopped", |s| s.as_str()))
            };
            let why = format!("job {}: {why}", self.info.id);
            self.stopped(why.clone());
            return Err(answer.error(ErrorKind::JobCanceled).context(why));
        }
        if status == Some(&RemoteStatus::Canceling) && current == JobState::Running {
            diag::info(&format!("job {}: GitLab asks to cancel it (graceful)", self.info.id));
            self.set_state(JobState::Canceling);
        }
        Ok(())
    }

    /// A 404 to a job update: GitLab no longer has the job; like the official runner, stop.
    fn gone(&self, answer: &Answer) -> Error {
        diag::warn(&format!("job {}: GitLab no longer has it (404)", self.id()));
        let why =
            format!("job {}: GitLab no longer has this job (it was deleted, with its pipeline or project)", self.id());
        self.stopped(why.clone());
        answer.error(ErrorKind::JobCanceled).context(why)
    }

    /// `observe` of an update's reply; Ok for the outcomes of a non-final update that succeeded.
    fn observe_update(&self, reply: &UpdateReply) -> Result<()> {
        self.observe(&reply.signals, &reply.answer, reply.outcome == UpdateOutcome::Forbidden)?;
        if reply.outcome == UpdateOutcome::Gone {
            return Err(self.gone(&reply.answer));
        }
        match reply.outcome {
            UpdateOutcome::Applied | UpdateOutcome::Accepted => Ok(()),
            _ => Err(reply.answer.unexpected()),
        }
    }

    /// `PUT state=running`: accepts the job (two-phase commit), once. Caller holds `net`.
    pub(super) fn commit_locked(&self, call: &Call) -> Result<()> {
        if lock(&self.inner).committed {
            return Ok(());
        }
        let reply = self.put(&Update { info: &self.runner_info, state: UpdateState::Running, output: None }, call)?;
        self.observe_update(&reply)?;
        lock(&self.inner).committed = true;
        Ok(())
    }

    /// Keep-alive `PUT state=running`: with the log's checksum and size from the owner, as the
    /// official runner's touch; without them from a watcher (it does not have the log).
    /// Caller holds `net`.
    pub(super) fn touch(&self, call: &Call) -> Result<()> {
        self.commit_locked(call)?;
        let output = self.is_owner().then(|| self.summary());
        let reply = self.put(&Update { info: &self.runner_info, state: UpdateState::Running, output }, call)?;
        self.observe_update(&reply)
    }

    /// PATCHes until GitLab holds every byte, or as `patches` says. Caller holds `net`.
    pub(super) fn upload(&self, patches: Patches, call: &Call) -> Result<()> {
        self.commit_locked(call)?;
        let mut resyncs = 0;
        let mut sent = 0;
        loop {
            if patches.max().is_some_and(|max| sent >= max) {
                return Ok(());
            }
            if self.handing_over.load(Ordering::Acquire) {
                return Err(self.not_owner());
            }
            let (chunk, body) = {
                let mut m = lock(&self.inner);
                match m.trace.next_chunk() {
                    None => return Ok(()),
                    Some(_) if matches!(patches, Patches::Full(_)) && !m.trace.whole_chunk_waiting() => return Ok(()),
                    // Shared with the log, not copied: the lock is held for no longer than this.
                    Some(c) => (c, m.trace.chunk_body(c)),
                }
            };
            sent += 1;
            self.check_open()?;
            let reply = match wire::patch_trace(self.endpoint(), chunk.start, body, call) {
                Ok(r) => r,
                Err(e) => {
                    lock(&self.inner).trace.unanswered(chunk);
                    return Err(e);
                }
            };
            // Freed while the PATCH was in flight: its answer changes nothing.
            self.check_open()?;
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

    fn final_update(&self, outcome: &Outcome, with_log: bool) -> (&'static str, Update<'_>) {
        let exit_code = lock(&self.inner).exit_code;
        let (name, state) = match outcome {
            Outcome::Success => ("success", UpdateState::Success),
            Outcome::Failed(reason) => (
                "failed",
                UpdateState::Failed {
                    reason: failure::map_for_gitlab(reason, self.details().failure_reasons.as_deref()),
                    exit_code,
                },
            ),
        };
        let output = with_log.then(|| self.summary());
        (name, Update { info: &self.runner_info, state, output })
    }

    /// The final update, repeated while GitLab answers 202. The owner uploads the whole log
    /// first and reports its checksum and size; a watcher reports the state only. Caller holds
    /// `net`.
    pub(super) fn finish_locked(&self, outcome: &Outcome, call: &Call) -> Result<()> {
        let with_log = self.is_owner();
        if with_log {
            lock(&self.inner).trace.finish_pending();
        }
        let started = Instant::now();
        let mut wait = Duration::from_secs(1);
        loop {
            if with_log {
                self.upload(Patches::All, call)?;
            } else {
                self.commit_locked(call)?;
            }
            let (state_name, update) = self.final_update(outcome, with_log);
            let reply = self.put(&update, call)?;
            match reply.outcome {
                UpdateOutcome::Applied => {
                    let reported = match outcome {
                        Outcome::Success => JobState::Success,
                        Outcome::Failed(_) => JobState::Failed,
                    };
                    if reply.signals.status == Some(RemoteStatus::Canceled) {
                        // GitLab canceled it before our report arrived (its callback is told).
                        self.stopped(format!("job {}: GitLab reports the job as canceled", self.id()));
                    } else {
                        self.set_state(reported);
                    }
                    diag::info(&format!("job {}: reported {state_name}", self.info.id));
                    return Ok(());
                }
                UpdateOutcome::Accepted if started.elapsed() < FINAL_UPDATE_PATIENCE => {
                    wait = reply.signals.update_interval.unwrap_or(wait * 2).min(MAX_ACCEPTED_WAIT);
                    diag::debug(&format!("job {}: final update accepted, waiting {}s", self.info.id, wait.as_secs()));
                    call.sleep(&format!("job {}: final update", self.info.id), wait)?;
                }
                UpdateOutcome::TraceResetRequested if with_log => {
                    diag::warn(&format!("job {}: GitLab asks for the whole log again", self.info.id));
                    lock(&self.inner).trace.reset();
                }
                // Our own earlier final update was applied but its answer was lost.
                UpdateOutcome::Forbidden
                    if reply.signals.status.as_ref().is_some_and(|st| st.as_str() == state_name) =>
                {
                    self.set_state(if state_name == "success" { JobState::Success } else { JobState::Failed });
                    return Ok(());
                }
                UpdateOutcome::Forbidden => {
                    self.observe(&reply.signals, &reply.answer, true)?;
                    return Err(reply.answer.unexpected());
                }
                UpdateOutcome::Gone => return Err(self.gone(&reply.answer)),
                _ => return Err(reply.answer.unexpected()),
            }
        }
    }
}
