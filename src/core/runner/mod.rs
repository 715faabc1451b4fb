//! A runner: registration (legacy registration tokens and `glrt-` authentication tokens),
//! verification, unregistration, job requests with long polling, and its token over its
//! lifetime ([`token`]: rotation at 75 %, the runner file kept current).

mod options;
mod token;

pub use options::{RegisterOptions, ACCESS_LEVELS, MIN_MAXIMUM_TIMEOUT};

use super::api::runners as wire;
use super::error::{Error, ErrorKind, Result};
use super::http::{Call, Interrupter};
use super::info::{identity_json, info_raw, is_valid_feature_name, is_valid_label, MAX_LABELS};
use super::job::Job;
use super::model::RunnerData;
use super::sync::lock;
use super::url::{normalize_api_url, warn_if_plain_http};
use super::{diag, system_id, time, uploader};
use options::check_token;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use token::Token;

/// A runner's calls take at most this long in all unless the caller sets another bound: a job
/// request is long-polled by GitLab for up to a minute, and retries add to that.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The bounds of a call made before there is a runner (register, from_token).
fn default_call() -> Call {
    Call::within(DEFAULT_CALL_TIMEOUT)
}

/// What changes while a runner lives (everything else is `Runner::data`, fixed).
struct Changing {
    token: Token,
    /// The `info` object of requests, serialised once per change of features or labels, and
    /// shared with the jobs taken (their updates carry it).
    info: Arc<RawValue>,
    /// `Runner::data` as of the last change, shared with the jobs taken (None: build it).
    snapshot: Option<Arc<RunnerData>>,
    features: BTreeMap<String, bool>,
    labels: BTreeMap<String, String>,
    /// This runner manager's identity (changeable, so processes sharing a runner file can differ).
    system_id: String,
    /// The last non-empty `X-GitLab-Last-Update`, sent back as `last_update` (long polling).
    last_update: Option<String>,
}

pub struct Runner {
    /// The fixed part: URL, id, registration, identity (the token fields are in `changing`).
    data: RunnerData,
    changing: Mutex<Changing>,
    /// The file this runner was loaded from: rotations are written back to it.
    file: Option<PathBuf>,
    /// Unix time this process got the runner: the start of a token lifetime nobody recorded.
    since: i64,
    /// Serialises rotations within this process.
    rotating: Mutex<()>,
    /// Milliseconds one call may take in all.
    call_timeout_ms: AtomicU64,
    /// Ends this runner's calls in progress (`interrupt`).
    interrupter: Arc<Interrupter>,
}

impl Runner {
    /// A runner from persisted data (offline). Warns about plain http:// to another machine.
    pub fn from_data(data: RunnerData) -> Runner {
        warn_if_plain_http(&data.api_url);
        Runner::build(data, None)
    }

    /// A runner loaded from `file` (offline): token rotations are written back to it.
    pub fn from_file_data(data: RunnerData, file: &Path) -> Runner {
        warn_if_plain_http(&data.api_url);
        Runner::build(data, Some(file.to_path_buf()))
    }

    fn build(data: RunnerData, file: Option<PathBuf>) -> Runner {
        let changing = Changing {
            token: Token::of(&data),
            info: Arc::from(info_raw(&data)),
            snapshot: None,
            features: data.features.clone(),
            labels: data.labels.clone(),
            system_id: data.system_id.clone(),
            last_update: None,
        };
        Runner {
            data,
            changing: Mutex::new(changing),
            file,
            since: time::unix_now(),
            rotating: Mutex::new(()),
            call_timeout_ms: AtomicU64::new(DEFAULT_CALL_TIMEOUT.as_millis() as u64),
            interrupter: Arc::new(Interrupter::new()),
        }
    }

    /// How long one call of this runner (a job request with its long poll, verify...) may take.
    pub fn set_call_timeout(&self, limit: Duration) {
        let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        self.call_timeout_ms.store(ms, Ordering::Release);
    }

    /// Ends this runner's calls in progress on other threads at once (`ErrorKind::Interrupted`).
    pub fn interrupt(&self) {
        self.interrupter.interrupt();
    }

    fn call(&self) -> Call {
        let limit = Duration::from_millis(self.call_timeout_ms.load(Ordering::Acquire));
        Call::within(limit)
            .interruptible(&self.interrupter, "glr_runner_interrupt() was called, or the runner was freed")
    }

    /// A snapshot of everything persisted.
    pub fn data(&self) -> RunnerData {
        let mut d = self.data.clone();
        let c = lock(&self.changing);
        c.token.write_into(&mut d);
        d.features = c.features.clone();
        d.labels = c.labels.clone();
        d.system_id = c.system_id.clone();
        d
    }

    /// The fixed part (URL, id, registration, identity): borrowed, never changes while the
    /// runner lives. The token and what else changes are in [`Runner::data`].
    pub fn fixed(&self) -> &RunnerData {
        &self.data
    }

    /// The current authentication token (it changes when rotated).
    pub fn token(&self) -> String {
        lock(&self.changing).token.value.clone()
    }

    /// GitLab's `token_expires_at` of the current token.
    pub fn token_expires_at(&self) -> Option<String> {
        lock(&self.changing).token.expires_at.clone()
    }

    /// Registers a new runner with a (legacy) registration token: `POST /api/v4/runners`.
    pub fn register(api_url: &str, registration_token: &str, options: &RegisterOptions) -> Result<Runner> {
        let api_url = normalize_api_url(api_url)?;
        check_token(registration_token, "registration token")?;
        warn_if_plain_http(&api_url);
        options.validate()?;
        let info = identity_json(&options.identity, &Default::default(), &Default::default());
        let wire::Credentials { id, token, token_expires_at: expires } =
            wire::register(&api_url, registration_token, &options.registration, info, &default_call())?;
        diag::info(&format!("registered runner {id} at {api_url}"));
        let mut data = RunnerData {
            api_url,
            id,
            system_id: system_id::new_system_id(),
            registration: options.registration.clone(),
            identity: options.identity.clone(),
            ..Default::default()
        };
        Token::fresh(token, expires).write_into(&mut data);
        Ok(Runner::build(data, None))
    }

    /// A runner created in GitLab (new workflow): verifies its `glrt-` token and learns its id.
    pub fn from_token(api_url: &str, token: &str) -> Result<Runner> {
        let api_url = normalize_api_url(api_url)?;
        check_token(token, "authentication token")?;
        let mut data = RunnerData {
            api_url,
            token: token.to_string(),
            system_id: system_id::new_system_id(),
            ..Default::default()
        };
        let runner = Runner::from_data(data.clone());
        if let Some(verified) = runner.verify_once()? {
            data.id = verified.id;
            Token::fresh(token.to_string(), verified.token_expires_at).write_into(&mut data);
            return Ok(Runner::from_data(data));
        }
        Ok(runner)
    }

    fn verify_once(&self) -> Result<Option<wire::Credentials>> {
        let (info, token, system_id) = self.request_identity();
        wire::verify(&self.data.api_url, &token, &info, &system_id, &self.call())
    }

    /// `POST /api/v4/runners/verify`: checks the token (rotating it first when due).
    pub fn check_auth(&self) -> Result<()> {
        self.with_token(|| self.verify_once()).map(|_| ())
    }

    /// Removes the runner (legacy token: `DELETE /runners`) or, for a `glrt-` runner created in
    /// GitLab, only this machine's runner manager (`DELETE /runners/managers`), as the official runner.
    pub fn unregister(&self) -> Result<()> {
        self.with_token(|| {
            let snapshot = self.data();
            wire::unregister(&snapshot.api_url, &snapshot.token, &snapshot.system_id, &self.call())
        })
    }

    pub fn system_id(&self) -> String {
        lock(&self.changing).system_id.clone()
    }

    /// Gives this runner manager another identity: `id` (`s_`/`r_` + 12 alphanumerics), or a
    /// new random one. For several processes polling with copies of one runner file.
    pub fn set_system_id(&self, id: Option<&str>) -> Result<()> {
        let id = match id {
            Some(id) if system_id::is_valid(id) => id.to_string(),
            Some(id) => {
                return Err(Error::invalid(format!(
                    "system_id {id:?} must be s_ or r_ followed by 12 letters or digits"
                )))
            }
            None => system_id::random_system_id(),
        };
        let mut c = lock(&self.changing);
        c.system_id = id;
        c.snapshot = None;
        Ok(())
    }

    pub fn set_feature(&self, name: &str, enabled: bool) -> Result<()> {
        if !is_valid_feature_name(name) {
            return Err(Error::invalid(format!("feature name {name:?} must be lowercase letters, digits and _")));
        }
        let mut c = lock(&self.changing);
        c.features.insert(name.to_string(), enabled);
        self.refresh_info(&mut c);
        Ok(())
    }

    /// Sets label `key` to `value` (None removes it): sent in `info.labels` with every request,
    /// stored by GitLab on the runner manager, persisted.
    pub fn set_label(&self, key: &str, value: Option<&str>) -> Result<()> {
        let mut c = lock(&self.changing);
        match value {
            None => {
                c.labels.remove(key);
            }
            Some(v) if !is_valid_label(key, v) => {
                return Err(Error::invalid(format!(
                    "label {key:?}={v:?}: keys are 3 to 65 of letters, digits, '.', '_', '-' (not starting with \
                     '.' or '-'), values 1 to 256 of the same"
                )))
            }
            Some(_) if c.labels.len() >= MAX_LABELS && !c.labels.contains_key(key) => {
                return Err(Error::invalid(format!("a runner has at most {MAX_LABELS} labels")))
            }
            Some(v) => {
                c.labels.insert(key.to_string(), v.to_string());
            }
        }
        self.refresh_info(&mut c);
        Ok(())
    }

    fn refresh_info(&self, c: &mut Changing) {
        let mut d = self.data.clone();
        d.features = c.features.clone();
        d.labels = c.labels.clone();
        c.info = Arc::from(info_raw(&d));
        c.snapshot = None;
    }

    /// The serialised `info`, the token and the system_id of the next request.
    fn request_identity(&self) -> (Arc<RawValue>, String, String) {
        let c = lock(&self.changing);
        (c.info.clone(), c.token.value.clone(), c.system_id.clone())
    }

    /// [`Runner::data`], shared: built again only after something changed.
    fn shared_data(&self) -> Arc<RunnerData> {
        if let Some(s) = lock(&self.changing).snapshot.clone() {
            return s;
        }
        let data = Arc::new(self.data());
        lock(&self.changing).snapshot = Some(data.clone());
        data
    }

    /// `POST /api/v4/jobs/request`. Ok(None): no job now (204, or 409 when another runner was
    /// faster). A received job is committed at once (`state=running`), as the official runner;
    /// when that fails, the background keeps trying within GitLab's acknowledgement window.
    pub fn request_job(&self) -> Result<Option<Job>> {
        let (info, payload) = self.with_token(|| {
            let (info, token, system_id) = self.request_identity();
            let last_update = lock(&self.changing).last_update.clone();
            let reply =
                wire::request_job(&self.data.api_url, &token, &info, &system_id, last_update.as_deref(), &self.call())?;
            if let Some(v) = reply.last_update {
                lock(&self.changing).last_update = Some(v);
            }
            Ok((info, reply.payload))
        })?;
        let Some(payload) = payload else { return Ok(None) };
        let job = Job::received(self.shared_data(), info, payload)
            .map_err(|e| e.context("a job was assigned but cannot be read"))?;
        diag::info(&format!("received job {}", job.id()));
        match job.commit() {
            Ok(()) => Ok(Some(job)),
            Err(e) if e.kind == ErrorKind::JobCanceled => {
                diag::warn(&format!("job {} was withdrawn by GitLab right after pickup: {e}", job.id()));
                Ok(None)
            }
            Err(e) => {
                // Keep the job: the background uploader keeps committing it.
                diag::warn(&format!("job {}: could not confirm it to GitLab yet (retrying): {e}", job.id()));
                uploader::wake();
                Ok(Some(job))
            }
        }
    }

    /// Rotates the authentication token now (`POST /runners/reset_authentication_token`); a
    /// runner loaded from a file writes the new token to it.
    pub fn reset_token(&self) -> Result<()> {
        self.rotate(true)
    }

    /// Runs `request` with the current token: first rotates it when 75 % of its lifetime has
    /// passed; when GitLab refuses it, the runner file may hold a newer one (another process
    /// rotated): then `request` is tried once more with that.
    fn with_token<T>(&self, request: impl Fn() -> Result<T>) -> Result<T> {
        if let Err(e) = self.rotate(false) {
            // The current token still works until it expires: go on, and say why it was kept.
            diag::warn(&format!("runner {}: the token could not be rotated (will retry): {e}", self.data.id));
        }
        match request() {
            Err(e) if e.kind == ErrorKind::Auth && self.adopt_token_from_file_locked() => request(),
            other => other,
        }
    }

    /// `adopt_token_from_file` holding the file's lock: another process may be between its
    /// reset at GitLab and the file's rewrite, and the lock waits for that.
    fn adopt_token_from_file_locked(&self) -> bool {
        let Some(file) = &self.file else { return false };
        match token::lock_file(file, &self.call()) {
            Ok(_lock) => self.adopt_token_from_file(),
            Err(_) => self.adopt_token_from_file(),
        }
    }

    /// Takes the token the runner file holds if it differs from ours; whether it did.
    fn adopt_token_from_file(&self) -> bool {
        let Some(file) = &self.file else { return false };
        let Some(on_disk) = token::read_file(file) else { return false };
        let theirs = Token::of(&on_disk);
        let mut c = lock(&self.changing);
        if theirs.value == c.token.value || theirs.value.is_empty() {
            return false;
        }
        diag::info(&format!("runner {}: using the token another process wrote to {}", self.data.id, file.display()));
        c.token = theirs;
        c.snapshot = None;
        true
    }

    /// Rotates the token when `now` asks for it or 75 % of its lifetime has passed.
    fn rotate(&self, now: bool) -> Result<()> {
        let due = |t: &Token| now || t.rotate_at(self.since).is_some_and(|at| time::unix_now() >= at);
        if !due(&lock(&self.changing).token) {
            return Ok(());
        }
        let _one_at_a_time = lock(&self.rotating);
        let call = self.call();
        let _file_lock = match &self.file {
            Some(file) => Some(token::lock_file(file, &call)?),
            None => None,
        };
        // Under the file's lock: another process may have rotated already.
        if !now && self.adopt_token_from_file() {
            return Ok(());
        }
        let current = lock(&self.changing).token.clone();
        if !due(&current) {
            return Ok(()); // another thread of ours rotated meanwhile
        }
        let new = wire::reset_token(&self.data.api_url, &current.value, &call)?;
        let fresh = Token::fresh(new.token, new.token_expires_at);
        {
            let mut c = lock(&self.changing);
            c.token = fresh.clone();
            c.snapshot = None;
        }
        diag::info(&format!("runner {}: authentication token rotated", self.data.id));
        if let Some(file) = &self.file {
            token::write_token(file, &fresh, &self.data())?;
        }
        Ok(())
    }
}
