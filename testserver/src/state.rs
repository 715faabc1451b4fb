//! The server's whole state behind one mutex. Every decision that must be race-free (handing a
//! job to exactly one runner, trace offsets, state transitions) happens while holding it; no
//! `.await` ever happens while it is held.

use crate::config::Config;
use crate::model::{ArtifactRecord, Endpoint, Fault, JobRecord, ManagerRecord, RunnerOptions, RunnerRecord};
use crate::payload_template::{self, TemplateContext};
use crate::queue::{Queue, Taker};
use crate::redact::Secrets;
use crate::util::{iso8601, iso8601_millis, Rng};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JobState {
    Pending,
    Running,
    Success,
    Failed,
    Canceling,
    Canceled,
}

impl JobState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Success => "success",
            JobState::Failed => "failed",
            JobState::Canceling => "canceling",
            JobState::Canceled => "canceled",
        }
    }

    /// GitLab's `EXECUTING_STATUSES`: the only states in which a job token authenticates.
    pub(crate) fn executing(self) -> bool {
        matches!(self, JobState::Running | JobState::Canceling)
    }
}

pub(crate) struct Manager {
    pub system_id: String,
    pub info: Value,
    pub features: Value,
    pub contacted: Instant,
}

pub(crate) struct Runner {
    pub id: i64,
    pub token: String,
    pub created_via: &'static str,
    pub description: Option<String>,
    pub maintenance_note: Option<String>,
    pub tags: Vec<String>,
    pub locked: bool,
    pub run_untagged: bool,
    pub active: bool,
    pub access_level: String,
    pub maximum_timeout: Option<i64>,
    pub name: Option<String>,
    pub managers: Vec<Manager>,
    /// When the token stops authenticating (`None`: never), from `runner_token_lifetime`.
    pub token_expires_at: Option<SystemTime>,
    /// How many times the token was reset through the API.
    pub token_resets: u32,
}

impl Runner {
    /// GitLab filters expired tokens at lookup, so an expired token is simply unknown.
    pub(crate) fn token_valid(&self, token: &str, now: SystemTime) -> bool {
        self.token == token && self.token_expires_at.is_none_or(|at| now < at)
    }
}

/// When a runner token issued now expires.
pub(crate) fn runner_token_expiry(lifetime: Option<Duration>) -> Option<SystemTime> {
    lifetime.map(|l| SystemTime::now() + l)
}

pub(crate) struct Job {
    pub id: i64,
    pub token: String,
    pub state: JobState,
    pub payload: Value,
    pub tags: Vec<String>,
    pub trace: Vec<u8>,
    pub failure_reason: Option<String>,
    pub reported_failure_reason: Option<String>,
    pub exit_code: Option<i64>,
    pub reported_checksum: Option<String>,
    pub reported_bytesize: Option<i64>,
    pub checksum_matches: Option<bool>,
    pub artifacts: Vec<ArtifactRecord>,
    pub runner_id: Option<i64>,
    pub system_id: Option<String>,
    /// Two-phase commit: assigned to a runner manager, still `pending` until `PUT state=running`.
    pub waiting_ack: bool,
    pub trace_patches: usize,
    pub updates: usize,
    pub queued_at: Instant,
    /// How many final PUTs were answered 202 ("still persisting").
    pub persist_202s: u32,
    /// When the first 202 was given (GitLab's `BuildPendingState.created_at`), for the backoff.
    pub pending_state_at: Option<Instant>,
    /// What the job was queued with, so that a retry can be built the same way.
    pub overrides: Value,
    pub pipeline_id: i64,
    /// GitLab's `updated_at` as far as the stale-job clock cares: set when the job starts
    /// running and moved by `touch` (see `clocks`).
    pub updated_at: Instant,
    /// Set at pickup: pickup + max(min lifetime, job timeout) + leeway (see `clocks`).
    pub token_expires_at: Option<Instant>,
    /// Two-phase commit: when the wait for `PUT state=running` began or was last renewed by
    /// `PUT state=pending` (GitLab's Redis key with a TTL of `ack_window`).
    pub ack_wait_since: Option<Instant>,
    /// How many retries lie behind this job (GitLab's `retries_count`).
    pub retries: u32,
    pub retry_of: Option<i64>,
    pub retried_as: Option<i64>,
}

impl Job {
    pub(crate) fn new(id: i64, token: String, payload: Value, tags: Vec<String>) -> Job {
        let now = Instant::now();
        Job {
            id,
            token,
            state: JobState::Pending,
            payload,
            tags,
            trace: Vec::new(),
            failure_reason: None,
            reported_failure_reason: None,
            exit_code: None,
            reported_checksum: None,
            reported_bytesize: None,
            checksum_matches: None,
            artifacts: Vec::new(),
            runner_id: None,
            system_id: None,
            waiting_ack: false,
            trace_patches: 0,
            updates: 0,
            queued_at: now,
            persist_202s: 0,
            pending_state_at: None,
            overrides: Value::Null,
            pipeline_id: 0,
            updated_at: now,
            token_expires_at: None,
            ack_wait_since: None,
            retries: 0,
            retry_of: None,
            retried_as: None,
        }
    }

    /// GitLab's `drop(reason)`, a state-machine event: a pending or running job fails with the
    /// reason, a canceling one ends canceled, finished jobs stay as they are.
    pub(crate) fn drop_with(&mut self, reason: &str) {
        match self.state {
            JobState::Pending | JobState::Running => {
                self.state = JobState::Failed;
                self.failure_reason = Some(reason.to_string());
                self.waiting_ack = false;
                self.ack_wait_since = None;
            }
            JobState::Canceling => self.state = JobState::Canceled,
            JobState::Success | JobState::Failed | JobState::Canceled => {}
        }
    }

    pub(crate) fn token_expired(&self, now: Instant) -> bool {
        self.token_expires_at.is_some_and(|at| now >= at)
    }
}

impl Job {
    pub(crate) fn record(&self) -> JobRecord {
        JobRecord {
            id: self.id,
            token: self.token.clone(),
            state: self.state.as_str().to_string(),
            trace: self.trace.clone(),
            failure_reason: self.failure_reason.clone(),
            reported_failure_reason: self.reported_failure_reason.clone(),
            exit_code: self.exit_code,
            reported_checksum: self.reported_checksum.clone(),
            reported_bytesize: self.reported_bytesize,
            checksum_matches: self.checksum_matches,
            artifacts: self.artifacts.clone(),
            runner_id: self.runner_id,
            system_id: self.system_id.clone(),
            trace_patches: self.trace_patches,
            updates: self.updates,
            tags: self.tags.clone(),
            payload: self.payload.clone(),
            seconds_since_update: self.updated_at.elapsed().as_secs_f64(),
            token_expires_in_seconds: self.token_expires_at.map(signed_seconds_until),
            retries: self.retries,
            retry_of: self.retry_of,
            retried_as: self.retried_as,
        }
    }

    /// The job's archive artifact, which is what `GET /jobs/:id/artifacts` serves.
    pub(crate) fn archive(&self) -> Option<&ArtifactRecord> {
        self.artifacts.iter().find(|a| a.artifact_type == "archive")
    }
}

pub(crate) struct Inner {
    pub rng: Rng,
    pub registration_tokens: Vec<String>,
    pub default_registration_token: String,
    pub runners: BTreeMap<i64, Runner>,
    next_runner_id: i64,
    pub jobs: BTreeMap<i64, Job>,
    next_job_id: i64,
    next_pipeline_id: i64,
    /// Queued job ids in FIFO order (only `pending`, not yet assigned jobs).
    pub pending: Queue,
    /// The runner queue value sent as `X-GitLab-Last-Update`; changes when a job is queued.
    pub queue_value: String,
    pub faults: Vec<Fault>,
    pub requests: Vec<crate::reqlog::Logged>,
    /// Direct-download links: key -> (job id, artifact index).
    pub storage_links: BTreeMap<String, (i64, usize)>,
    pub fixture_job: Option<i64>,
    /// Every secret issued or given so far, for the request log. Shared with `Shared::secrets` so
    /// that a log record is redacted without the state lock (and without copying the secrets).
    secrets: Arc<RwLock<Secrets>>,
}

/// Seconds from now until `at`, negative once it has passed.
fn signed_seconds_until(at: Instant) -> f64 {
    let now = Instant::now();
    if at >= now {
        (at - now).as_secs_f64()
    } else {
        -(now - at).as_secs_f64()
    }
}

impl Inner {
    /// The runner this token authenticates; expired tokens authenticate nobody.
    pub(crate) fn runner_by_token(&mut self, token: &str) -> Option<&mut Runner> {
        if token.is_empty() {
            return None;
        }
        let now = SystemTime::now();
        self.runners.values_mut().find(|r| r.token_valid(token, now))
    }

    pub(crate) fn job_id_by_token(&self, token: &str) -> Option<i64> {
        if token.is_empty() {
            return None;
        }
        self.jobs.values().find(|j| j.token == token).map(|j| j.id)
    }

    /// Records a secret for the request log's redaction; every token is recorded where it is
    /// made, before anyone can send it.
    pub(crate) fn remember_secret(&self, secret: &str) {
        self.secrets.write().unwrap_or_else(|e| e.into_inner()).add(secret);
    }

    /// A new runner token, already recorded as a secret.
    pub(crate) fn new_runner_token(&mut self, prefix: &str) -> String {
        let token = format!("{prefix}{}", self.rng.alnum(20));
        self.remember_secret(&token);
        token
    }

    /// GitLab's runner queue "tick": a new value wakes long polls and invalidates cached 204s.
    fn new_queue_value(&mut self) -> String {
        self.rng.hex(32)
    }

    pub(crate) fn add_runner(
        &mut self,
        created_via: &'static str,
        opts: &RunnerOptions,
        name: Option<String>,
        maintenance_note: Option<String>,
        token_lifetime: Option<Duration>,
    ) -> (i64, String) {
        let id = self.next_runner_id;
        self.next_runner_id += 1;
        let token = if created_via == "authentication_token" {
            self.new_runner_token("glrt-")
        } else {
            // Runners registered with a registration token get an opaque token (a legacy
            // partition prefix, never glrt-), which is what makes clients unregister them with
            // DELETE /runners instead of DELETE /runners/managers.
            self.new_runner_token("t1_")
        };
        self.runners.insert(
            id,
            Runner {
                id,
                token: token.clone(),
                created_via,
                description: opts.description.clone(),
                maintenance_note,
                tags: opts.tags.clone(),
                locked: opts.locked,
                run_untagged: opts.run_untagged,
                active: !opts.paused,
                access_level: opts.access_level.clone(),
                maximum_timeout: opts.maximum_timeout,
                name,
                managers: Vec::new(),
                token_expires_at: runner_token_expiry(token_lifetime),
                token_resets: 0,
            },
        );
        (id, token)
    }

    /// `authenticate_runner!` side effect: create/update the runner manager for `system_id`
    /// (`<legacy>` when absent) with the request's `info` and `info.features`.
    pub(crate) fn heartbeat(&mut self, runner_id: i64, system_id: Option<&str>, info: Option<&Value>) {
        let Some(r) = self.runners.get_mut(&runner_id) else { return };
        let sid = system_id.unwrap_or("<legacy>").to_string();
        let idx = match r.managers.iter().position(|m| m.system_id == sid) {
            Some(i) => i,
            None => {
                r.managers.push(Manager {
                    system_id: sid,
                    info: Value::Null,
                    features: Value::Null,
                    contacted: Instant::now(),
                });
                r.managers.len() - 1
            }
        };
        let m = &mut r.managers[idx];
        m.contacted = Instant::now();
        // A runner sends the same info with every request: compared (no allocation) rather
        // than copied each time.
        if let Some(info) = info.filter(|i| i.is_object() && **i != m.info) {
            m.info = info.clone();
            if let Some(f) = info.get("features") {
                m.features = f.clone();
            }
        }
    }

    pub(crate) fn manager_feature(&self, runner_id: i64, system_id: &str, feature: &str) -> bool {
        self.runners
            .get(&runner_id)
            .and_then(|r| r.managers.iter().find(|m| m.system_id == system_id))
            .map(|m| m.features.get(feature).and_then(Value::as_bool).unwrap_or(false))
            .unwrap_or(false)
    }

    /// The first queued job this runner may take: all job tags among the runner's tags, untagged
    /// jobs only for `run_untagged` runners, `ref_protected` runners only protected refs.
    pub(crate) fn find_job_for(&self, runner_id: i64) -> Option<i64> {
        let r = self.runners.get(&runner_id)?;
        let taker =
            Taker { tags: &r.tags, run_untagged: r.run_untagged, protected_only: r.access_level == "ref_protected" };
        self.pending.first_for(&taker, |id| {
            self.jobs.get(&id).is_some_and(|j| j.state == JobState::Pending && j.runner_id.is_none())
        })
    }
}

pub(crate) struct Shared {
    pub config: Mutex<Config>,
    inner: Mutex<Inner>,
    secrets: Arc<RwLock<Secrets>>,
    /// Bumped whenever the queue value changes; held long polls wait on it.
    pub tick: watch::Sender<u64>,
    pub base_url: String,
    pub started: Instant,
    /// Requests received so far, answered or not: the next request's place in the order of
    /// arrival. A millisecond clock cannot order two requests of the same millisecond.
    pub arrivals: AtomicU64,
}

impl Shared {
    pub(crate) fn new(config: Config, base_url: String) -> Shared {
        let mut rng = Rng::from_os();
        // GitLab registration tokens carry the `GR1348941` prefix.
        let reg = format!("GR1348941{}", rng.alnum(20));
        let queue_value = rng.hex(32);
        let secrets = Arc::new(RwLock::new(Secrets::default()));
        secrets.write().unwrap_or_else(|e| e.into_inner()).add(&reg);
        let mut inner = Inner {
            rng,
            registration_tokens: vec![reg.clone()],
            default_registration_token: reg,
            runners: BTreeMap::new(),
            next_runner_id: 1,
            jobs: BTreeMap::new(),
            next_job_id: 1,
            next_pipeline_id: 1000,
            pending: Queue::default(),
            queue_value,
            faults: Vec::new(),
            requests: Vec::new(),
            storage_links: BTreeMap::new(),
            fixture_job: None,
            secrets: secrets.clone(),
        };
        add_fixture_job(&mut inner);
        let (tick, _) = watch::channel(0);
        Shared {
            config: Mutex::new(config),
            inner: Mutex::new(inner),
            secrets,
            tick,
            base_url,
            started: Instant::now(),
            arrivals: AtomicU64::new(0),
        }
    }

    /// The secrets to redact from the request log. Never held across an `.await`, nor while
    /// taking the state lock (the state lock is taken first where both are).
    pub(crate) fn secrets(&self) -> RwLockReadGuard<'_, Secrets> {
        self.secrets.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A poisoned lock only means a handler panicked mid-way; the data is still the best we have.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn config(&self) -> Config {
        self.config.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Change the queue value and wake every held long poll. Call with the lock held.
    pub(crate) fn tick_queue(&self, inner: &mut Inner) {
        inner.queue_value = inner.new_queue_value();
        self.tick.send_modify(|n| *n += 1);
    }

    pub(crate) fn new_registration_token(&self) -> String {
        let mut inner = self.lock();
        let t = format!("GR1348941{}", inner.rng.alnum(20));
        inner.remember_secret(&t);
        inner.registration_tokens.push(t.clone());
        t
    }

    pub(crate) fn create_runner(&self, opts: &RunnerOptions) -> (i64, String) {
        let lifetime = self.config().runner_token_lifetime;
        self.lock().add_runner("authentication_token", opts, None, None, lifetime)
    }

    pub(crate) fn queue_job(&self, overrides: &Value, tags: Vec<String>) -> (i64, String) {
        let mut inner = self.lock();
        let pipeline_id = inner.next_pipeline_id;
        inner.next_pipeline_id += 1;
        let queued = self.insert_job(&mut inner, overrides, tags, pipeline_id);
        self.tick_queue(&mut inner);
        queued
    }

    /// Build a job from the template and put it at the end of the queue (without waking long
    /// polls: the caller ticks the queue). Returns (id, token).
    pub(crate) fn insert_job(
        &self,
        inner: &mut Inner,
        overrides: &Value,
        tags: Vec<String>,
        pipeline_id: i64,
    ) -> (i64, String) {
        let id = inner.next_job_id;
        inner.next_job_id += 1;
        // Job tokens look like GitLab's database job tokens.
        let token = format!("glcbt-{}", inner.rng.alnum(24));
        inner.remember_secret(&token);
        let created_at = iso8601(SystemTime::now());
        let dependency = inner.fixture_job.and_then(|fid| {
            let j = inner.jobs.get(&fid)?;
            let a = j.archive()?;
            let name = j.payload["job_info"]["name"].as_str().unwrap_or("build").to_string();
            Some((fid, name, a.filename.clone(), a.data.len()))
        });
        let ctx = TemplateContext {
            job_id: id,
            job_token: &token,
            server_url: &self.base_url,
            pipeline_id,
            created_at: &created_at,
            dependency: dependency.as_ref().map(|(i, n, f, s)| (*i, n.as_str(), f.as_str(), *s)),
        };
        let mut payload = payload_template::build_payload(&ctx, overrides);
        fill_dependency_files(inner, &mut payload);
        // Masked variables are secrets the runner must keep out of the log, and so must we.
        for v in payload["variables"].as_array().into_iter().flatten() {
            if v["masked"] == true {
                if let Some(value) = v["value"].as_str() {
                    inner.remember_secret(value);
                }
            }
        }
        let protected = payload["git_info"]["protected"].as_bool().unwrap_or(false);
        inner.pending.push(id, &tags, protected);
        let mut job = Job::new(id, token.clone(), payload, tags);
        job.overrides = overrides.clone();
        job.pipeline_id = pipeline_id;
        inner.jobs.insert(id, job);
        (id, token)
    }

    /// GitLab's cancel: a pending job is canceled at once; a running job goes to `canceling` only
    /// when asked gracefully *and* its runner manager advertised `cancel_gracefully`, else straight
    /// to `canceled`. Finished jobs are left alone. Returns the resulting state.
    pub(crate) fn cancel_job(&self, id: i64, graceful: bool) -> Option<&'static str> {
        let mut inner = self.lock();
        let (state, runner_id, system_id) = {
            let j = inner.jobs.get(&id)?;
            (j.state, j.runner_id, j.system_id.clone())
        };
        let supports_graceful = match (runner_id, system_id.as_deref()) {
            (Some(r), Some(s)) => inner.manager_feature(r, s, "cancel_gracefully"),
            _ => false,
        };
        let new_state = match state {
            JobState::Pending => JobState::Canceled,
            JobState::Running if graceful && supports_graceful => JobState::Canceling,
            JobState::Running | JobState::Canceling => JobState::Canceled,
            other => other,
        };
        inner.pending.remove(id);
        let j = inner.jobs.get_mut(&id)?;
        j.state = new_state;
        j.waiting_ack = false;
        Some(new_state.as_str())
    }

    pub(crate) fn take_fault(&self, endpoint: Endpoint) -> Option<crate::model::FaultKind> {
        let mut inner = self.lock();
        let idx =
            inner.faults.iter().position(|f| f.count > 0 && (f.endpoint == endpoint || f.endpoint == Endpoint::Any))?;
        let f = &mut inner.faults[idx];
        f.count -= 1;
        let kind = f.kind.clone();
        if f.count == 0 {
            inner.faults.remove(idx);
        }
        Some(kind)
    }

    pub(crate) fn runner_records(&self) -> Vec<RunnerRecord> {
        let inner = self.lock();
        inner
            .runners
            .values()
            .map(|r| RunnerRecord {
                id: r.id,
                token: r.token.clone(),
                created_via: r.created_via.to_string(),
                description: r.description.clone(),
                maintenance_note: r.maintenance_note.clone(),
                tags: r.tags.clone(),
                locked: r.locked,
                run_untagged: r.run_untagged,
                active: r.active,
                paused: !r.active,
                access_level: r.access_level.clone(),
                maximum_timeout: r.maximum_timeout,
                name: r.name.clone(),
                token_expires_at: r.token_expires_at.map(iso8601_millis),
                token_resets: r.token_resets,
                managers: r
                    .managers
                    .iter()
                    .map(|m| ManagerRecord {
                        system_id: m.system_id.clone(),
                        info: m.info.clone(),
                        features: m.features.clone(),
                        seconds_since_contact: m.contacted.elapsed().as_secs_f64(),
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Dependencies pointing at a job with an archive get GitLab's `artifacts_file` entry.
fn fill_dependency_files(inner: &Inner, payload: &mut Value) {
    let Some(Value::Array(deps)) = payload.get_mut("dependencies") else { return };
    for d in deps.iter_mut().filter_map(Value::as_object_mut) {
        if d.contains_key("artifacts_file") {
            continue;
        }
        let archive = d.get("id").and_then(Value::as_i64).and_then(|id| inner.jobs.get(&id)).and_then(Job::archive);
        if let Some(a) = archive {
            d.insert("artifacts_file".into(), json!({ "filename": a.filename, "size": a.data.len() }));
        }
    }
}

/// A finished "build" job with an archive, so that the default payload's dependency can be
/// downloaded without running a job first.
fn add_fixture_job(inner: &mut Inner) {
    let id = inner.next_job_id;
    inner.next_job_id += 1;
    let token = format!("glcbt-{}", inner.rng.alnum(24));
    inner.remember_secret(&token);
    let zip = crate::zip::stored_zip(&[
        ("build/output.txt", b"built by the fixture job\n"),
        ("build/version.txt", b"1.0.0\n"),
    ]);
    let payload = json!({ "id": id, "job_info": { "id": id, "name": "build", "stage": "build" } });
    let mut job = Job::new(id, token, payload, Vec::new());
    job.state = JobState::Success;
    job.trace = b"fixture job: built artifacts\n".to_vec();
    job.artifacts = vec![ArtifactRecord {
        artifact_type: "archive".into(),
        artifact_format: "zip".into(),
        expire_in: Some("7 days".into()),
        filename: "artifacts.zip".into(),
        data: zip,
    }];
    inner.jobs.insert(id, job);
    inner.fixture_job = Some(id);
}
