//! A runner: registration (legacy registration tokens and `glrt-` authentication tokens),
//! verification, unregistration and job requests with long polling.

use super::api::runners as wire;
use super::error::{Error, ErrorKind, Result};
use super::http::{Call, Interrupter};
use super::info::{identity_json, info_json, is_valid_feature_name};
use super::job::Job;
use super::model::{Identity, Registration, RunnerData};
use super::sync::lock;
use super::url::{normalize_api_url, warn_if_plain_http};
use super::{diag, system_id};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The options of `Runner.register` in the Python package, plus `paused` and `maintenance_note`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterOptions {
    pub registration: Registration,
    pub identity: Identity,
}

pub const ACCESS_LEVELS: &[&str] = &["not_protected", "ref_protected"];

impl RegisterOptions {
    /// The checks the Python package makes before any request, plus a few GitLab would reject.
    pub fn validate(&self) -> Result<()> {
        let r = &self.registration;
        for tag in &r.tags {
            if tag.contains(',') {
                return Err(Error::invalid(format!("tag {tag:?} contains a comma")));
            }
            if tag.trim().is_empty() {
                return Err(Error::invalid("a tag is empty"));
            }
        }
        if let Some(level) = &r.access_level {
            if !ACCESS_LEVELS.contains(&level.as_str()) {
                return Err(Error::invalid(format!("access_level must be one of {ACCESS_LEVELS:?}, not {level:?}")));
            }
        }
        if let Some(t) = r.maximum_timeout {
            if t < 0 {
                return Err(Error::invalid(format!("maximum_timeout must not be negative ({t})")));
            }
        }
        if let (Some(active), Some(paused)) = (r.active, r.paused) {
            if active == paused {
                return Err(Error::invalid("active and paused contradict each other; set only one"));
            }
        }
        if r.maintenance_note.as_ref().is_some_and(|n| n.chars().count() > 1024) {
            return Err(Error::invalid("maintenance_note is longer than 1024 characters"));
        }
        Ok(())
    }
}

fn check_token(token: &str, what: &str) -> Result<()> {
    if token.trim().is_empty() {
        return Err(Error::invalid(format!("{what} is empty")));
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid(format!("{what} contains whitespace or control characters")));
    }
    Ok(())
}

pub struct Runner {
    data: RunnerData,
    features: Mutex<std::collections::BTreeMap<String, bool>>,
    /// This runner manager's identity (changeable, so processes sharing a runner file can differ).
    system_id: Mutex<String>,
    /// The last non-empty `X-GitLab-Last-Update`, sent back as `last_update` (long polling).
    last_update: Mutex<Option<String>>,
    /// Milliseconds one call may take in all.
    call_timeout_ms: AtomicU64,
    /// Ends this runner's calls in progress (`interrupt`).
    interrupter: Interrupter,
}

/// A runner's calls take at most this long in all unless the caller sets another bound: a job
/// request is long-polled by GitLab for up to a minute, and retries add to that.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The bounds of a call made before there is a runner (register, from_token).
fn default_call() -> Call<'static> {
    Call::within(DEFAULT_CALL_TIMEOUT)
}

impl Runner {
    /// A runner from persisted data (offline). Warns about plain http:// to another machine.
    pub fn from_data(data: RunnerData) -> Runner {
        warn_if_plain_http(&data.api_url);
        Runner::build(data)
    }

    fn build(data: RunnerData) -> Runner {
        Runner {
            features: Mutex::new(data.features.clone()),
            system_id: Mutex::new(data.system_id.clone()),
            data,
            last_update: Mutex::new(None),
            call_timeout_ms: AtomicU64::new(DEFAULT_CALL_TIMEOUT.as_millis() as u64),
            interrupter: Interrupter::new(),
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

    fn call(&self) -> Call<'_> {
        let limit = Duration::from_millis(self.call_timeout_ms.load(Ordering::Acquire));
        Call::within(limit).interruptible(&self.interrupter, "glr_runner_interrupt() was called")
    }

    /// A snapshot of everything persisted.
    pub fn data(&self) -> RunnerData {
        let mut d = self.data.clone();
        d.features = lock(&self.features).clone();
        d.system_id = self.system_id();
        d
    }

    /// The fixed part (everything but features and system_id): borrowed, never changes while the
    /// runner lives.
    pub fn fixed(&self) -> &RunnerData {
        &self.data
    }

    /// Registers a new runner with a (legacy) registration token: `POST /api/v4/runners`.
    pub fn register(api_url: &str, registration_token: &str, options: &RegisterOptions) -> Result<Runner> {
        let api_url = normalize_api_url(api_url)?;
        check_token(registration_token, "registration token")?;
        warn_if_plain_http(&api_url);
        options.validate()?;
        let info = identity_json(&options.identity, &Default::default());
        let wire::Credentials { id, token, token_expires_at: expires } =
            wire::register(&api_url, registration_token, &options.registration, info, &default_call())?;
        diag::info(&format!("registered runner {id} at {api_url}"));
        Ok(Runner::build(RunnerData {
            api_url,
            id,
            token,
            token_expires_at: expires,
            system_id: system_id::new_system_id(),
            registration: options.registration.clone(),
            identity: options.identity.clone(),
            features: Default::default(),
        }))
    }

    /// A runner created in GitLab (new workflow): verifies its `glrt-` token and learns its id.
    pub fn from_token(api_url: &str, token: &str) -> Result<Runner> {
        let api_url = normalize_api_url(api_url)?;
        check_token(token, "authentication token")?;
        let mut runner = Runner::from_data(RunnerData {
            api_url,
            token: token.to_string(),
            system_id: system_id::new_system_id(),
            ..Default::default()
        });
        if let Some((id, expires)) = runner.verify()? {
            runner.data.id = id;
            runner.data.token_expires_at = expires;
        }
        Ok(runner)
    }

    /// Verifies the token: Some((id, expiry)) from a current GitLab, None from one that answers
    /// the legacy plain `200`.
    fn verify(&self) -> Result<Option<(i64, Option<String>)>> {
        let d = &self.data;
        let verified = wire::verify(&d.api_url, &d.token, info_json(&self.data()), &self.system_id(), &self.call())?;
        Ok(verified.map(|c| (c.id, c.token_expires_at)))
    }

    pub fn check_auth(&self) -> Result<()> {
        self.verify().map(|_| ())
    }

    /// Removes the runner (legacy token: `DELETE /runners`) or, for a `glrt-` runner created in
    /// GitLab, only this machine's runner manager (`DELETE /runners/managers`), as the official runner.
    pub fn unregister(&self) -> Result<()> {
        wire::unregister(&self.data.api_url, &self.data.token, &self.system_id(), &self.call())
    }

    pub fn system_id(&self) -> String {
        lock(&self.system_id).clone()
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
        *lock(&self.system_id) = id;
        Ok(())
    }

    pub fn set_feature(&self, name: &str, enabled: bool) -> Result<()> {
        if !is_valid_feature_name(name) {
            return Err(Error::invalid(format!("feature name {name:?} must be lowercase letters, digits and _")));
        }
        lock(&self.features).insert(name.to_string(), enabled);
        Ok(())
    }

    /// `POST /api/v4/jobs/request`. Ok(None): no job now (204, or 409 when another runner was
    /// faster). A received job is committed at once (`state=running`), as the official runner.
    pub fn request_job(&self) -> Result<Option<Job>> {
        let snapshot = self.data();
        let last_update = lock(&self.last_update).clone();
        let reply = wire::request_job(
            &snapshot.api_url,
            &snapshot.token,
            info_json(&snapshot),
            &snapshot.system_id,
            last_update.as_deref(),
            &self.call(),
        )?;
        if let Some(v) = reply.last_update {
            *lock(&self.last_update) = Some(v);
        }
        let Some(payload) = reply.payload else { return Ok(None) };
        let job = Job::new(snapshot, payload).map_err(|e| e.context("a job was assigned but cannot be read"))?;
        diag::info(&format!("received job {}", job.id()));
        match job.commit() {
            Ok(()) => Ok(Some(job)),
            Err(e) if e.kind == ErrorKind::JobCanceled => {
                diag::warn(&format!("job {} was withdrawn by GitLab right after pickup: {e}", job.id()));
                Ok(None)
            }
            Err(e) => {
                // Keep the job: the commit is retried before its first log upload or update.
                diag::warn(&format!("job {}: could not confirm it to GitLab yet: {e}", job.id()));
                Ok(Some(job))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_options_are_validated_like_the_python_package() {
        let mut o = RegisterOptions::default();
        assert!(o.validate().is_ok());
        o.registration.tags = vec!["a,b".into()];
        assert_eq!(o.validate().unwrap_err().kind, ErrorKind::InvalidArgument);
        o.registration.tags = vec!["a".into()];
        o.registration.access_level = Some("everything".into());
        assert!(o.validate().is_err());
        o.registration.access_level = Some("ref_protected".into());
        assert!(o.validate().is_ok());
        o.registration.maximum_timeout = Some(-1);
        assert!(o.validate().is_err());
    }
}
