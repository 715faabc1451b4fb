//! A runner: registration (legacy registration tokens and `glrt-` authentication tokens),
//! verification, unregistration and job requests with long polling.

use super::error::{Error, ErrorKind, Result};
use super::http::{self, Method, Request};
use super::info::{info_json, is_valid_feature_name};
use super::job::Job;
use super::model::{Identity, Registration, RunnerData};
use super::{diag, system_id};
use serde_json::{json, Map, Value};
use std::sync::Mutex;

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

/// `https://gitlab.example.com/` -> `https://gitlab.example.com` (and a trailing `/ci` dropped,
/// as the official runner does). Only http and https.
pub fn normalize_api_url(url: &str) -> Result<String> {
    let trimmed = url.trim();
    let lower = trimmed.to_ascii_lowercase();
    let rest_start = if lower.starts_with("https://") {
        8
    } else if lower.starts_with("http://") {
        7
    } else {
        return Err(Error::invalid(format!("api_url {trimmed:?} must start with http:// or https://")));
    };
    let mut u = trimmed.trim_end_matches('/');
    if u.ends_with("/ci") {
        u = u[..u.len() - 3].trim_end_matches('/');
    }
    if u.len() <= rest_start || u.contains(char::is_whitespace) {
        return Err(Error::invalid(format!("api_url {trimmed:?} has no host")));
    }
    Ok(u.to_string())
}

/// The host of an `http(s)://` URL, lowercase, without user info, port or brackets.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host =
        if let Some(v6) = host_port.strip_prefix('[') { v6.split(']').next()? } else { host_port.split(':').next()? };
    Some(host.to_ascii_lowercase())
}

/// Whether `host` is this machine: `localhost` (and `*.localhost`), 127.0.0.0/8 or ::1.
fn is_loopback_host(host: &str) -> bool {
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Logs a warning when `api_url` is plain `http://` to a host other than this machine: the
/// runner token, job tokens and job logs would cross the network unencrypted. Called when a
/// runner or job is built (register, from_token, loads), before any connection is made.
pub fn warn_if_plain_http(api_url: &str) {
    if !api_url.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://")) {
        return;
    }
    let host = url_host(api_url).unwrap_or_default();
    if !is_loopback_host(&host) {
        diag::warn(&format!(
            "GitLab URL http://{host} is plain http:// to another machine: the runner token, job tokens \
             and job logs travel unencrypted; use https://"
        ));
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
        }
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
        let r = &options.registration;
        let mut body = Map::new();
        let mut put = |k: &str, v: Value| {
            body.insert(k.to_string(), v);
        };
        if let Some(d) = &r.description {
            put("description", json!(d));
        }
        if let Some(n) = &r.maintenance_note {
            put("maintenance_note", json!(n));
        }
        if !r.tags.is_empty() {
            put("tag_list", json!(r.tags.join(",")));
        }
        if let Some(v) = r.run_untagged {
            put("run_untagged", json!(v));
        }
        if let Some(v) = r.locked {
            put("locked", json!(v));
        }
        if let Some(v) = &r.access_level {
            put("access_level", json!(v));
        }
        if let Some(v) = r.maximum_timeout {
            put("maximum_timeout", json!(v));
        }
        if let Some(paused) = r.paused.or(r.active.map(|a| !a)) {
            put("paused", json!(paused));
        }
        put("info", super::info::identity_json(&options.identity, &Default::default()));
        put("token", json!(registration_token));

        let req = Request::new(Method::POST, &api_url, "/api/v4/runners")
            .header("accept", "application/json")
            .header("runner-token", registration_token)
            .json(Value::Object(body));
        let resp = http::send(&req)?;
        match resp.status {
            201 => {}
            403 => return Err(resp.error(ErrorKind::Auth).context("the registration token was rejected")),
            410 => {
                return Err(resp.error(ErrorKind::Auth).context(
                    "this GitLab does not accept registration tokens; create the runner in GitLab \
                     (CI/CD settings > Runners) and use its glrt- authentication token with glr_runner_from_token",
                ))
            }
            400 => return Err(resp.error(ErrorKind::InvalidArgument)),
            _ => return Err(resp.unexpected()),
        }
        let v = resp.json()?;
        let (id, token, expires) = registration_details(&v, &resp.what)?;
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

    /// `POST /api/v4/runners/verify`: Some((id, expiry)) from a current GitLab, None from one
    /// that answers the legacy plain `200`.
    fn verify(&self) -> Result<Option<(i64, Option<String>)>> {
        let d = &self.data;
        let body = json!({"info": info_json(&self.data()), "token": d.token, "system_id": self.system_id()});
        let req = Request::new(Method::POST, &d.api_url, "/api/v4/runners/verify")
            .header("accept", "application/json")
            .header("runner-token", &d.token)
            .json(body)
            .idempotent();
        let resp = http::send(&req)?;
        match resp.status {
            200 => {}
            403 => return Err(resp.error(ErrorKind::Auth).context("the runner token was rejected")),
            _ => return Err(resp.unexpected()),
        }
        match serde_json::from_slice::<Value>(&resp.body) {
            Ok(v) if v.is_object() => {
                let (id, _, expires) = registration_details(&v, &resp.what)?;
                Ok(Some((id, expires)))
            }
            _ => Ok(None),
        }
    }

    pub fn check_auth(&self) -> Result<()> {
        self.verify().map(|_| ())
    }

    /// Removes the runner (legacy token: `DELETE /runners`) or, for a `glrt-` runner created in
    /// GitLab, only this machine's runner manager (`DELETE /runners/managers`), as the official runner.
    pub fn unregister(&self) -> Result<()> {
        let d = &self.data;
        let created_in_gitlab = d.token.starts_with("glrt-");
        let (path, body) = if created_in_gitlab {
            ("/api/v4/runners/managers", json!({"token": d.token, "system_id": self.system_id()}))
        } else {
            ("/api/v4/runners", json!({"token": d.token}))
        };
        let req = Request::new(Method::DELETE, &d.api_url, path).header("runner-token", &d.token).json(body);
        let resp = http::send(&req)?;
        match resp.status {
            204 | 200 => Ok(()),
            403 => Err(resp.error(ErrorKind::Auth).context("the runner token was rejected")),
            404 if created_in_gitlab => Err(resp.error(ErrorKind::NotFound)),
            _ => Err(resp.unexpected()),
        }
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
        let mut body = json!({"info": info_json(&snapshot), "token": snapshot.token, "system_id": snapshot.system_id});
        if let Some(last) = lock(&self.last_update).clone() {
            body["last_update"] = json!(last);
        }
        let req = Request::new(Method::POST, &snapshot.api_url, "/api/v4/jobs/request")
            .header("accept", "application/json")
            .header("runner-token", &snapshot.token)
            .json(body);
        let resp = http::send(&req)?;
        if let Some(v) = resp.header("x-gitlab-last-update") {
            *lock(&self.last_update) = Some(v.to_string());
        }
        match resp.status {
            201 => {}
            204 | 409 => return Ok(None),
            403 => return Err(resp.error(ErrorKind::Auth).context("the runner token was rejected")),
            _ => return Err(resp.unexpected()),
        }
        let payload = String::from_utf8(resp.body).map_err(|_| {
            Error::parse(format!(
                "{}: 201 with a body that is not UTF-8 (a job was assigned but cannot be read)",
                resp.what
            ))
        })?;
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

/// `{id, token, token_expires_at}` of a registration or verify answer.
fn registration_details(v: &Value, what: &str) -> Result<(i64, String, Option<String>)> {
    let id = match v.get("id") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| Error::parse(format!("{what}: the answer has no runner id")))?;
    let token = v.get("token").and_then(Value::as_str).unwrap_or("").to_string();
    let expires = v.get("token_expires_at").and_then(Value::as_str).map(str::to_string);
    if token.is_empty() && what.ends_with("/runners") {
        return Err(Error::parse(format!("{what}: the answer has no runner token")));
    }
    Ok((id, token, expires))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of our locks cannot leave the data half-written in a way that
    // matters more than refusing all further calls would: keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_are_normalised() {
        assert_eq!(normalize_api_url("https://gitlab.cern.ch/").unwrap(), "https://gitlab.cern.ch");
        assert_eq!(normalize_api_url("http://h:8080//").unwrap(), "http://h:8080");
        assert_eq!(normalize_api_url("https://h/gitlab/ci/").unwrap(), "https://h/gitlab");
        assert_eq!(normalize_api_url("https://h/sub").unwrap(), "https://h/sub");
        for bad in ["", "gitlab.com", "ftp://h", "https://", "https:// h"] {
            assert!(normalize_api_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for (url, host) in [
            ("http://127.0.0.1:8080", "127.0.0.1"),
            ("http://user:pw@LocalHost/x", "localhost"),
            ("http://[::1]:3000/", "::1"),
            ("https://gitlab.example.com/ci", "gitlab.example.com"),
        ] {
            assert_eq!(url_host(url).as_deref(), Some(host), "{url}");
        }
        for host in ["localhost", "127.0.0.1", "127.8.9.10", "::1", "ci.localhost"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["gitlab.example.com", "10.0.0.1", "192.168.1.2", "::2", "localhost.example.com", ""] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

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
