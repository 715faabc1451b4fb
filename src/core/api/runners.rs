//! Runner-token endpoints: `POST /runners` (register with a registration token),
//! `POST /runners/verify`, `DELETE /runners` or `/runners/managers` (unregister) and
//! `POST /jobs/request` (long-polled).

use super::{json_of, Answer, ACCEPT, JSON, LAST_UPDATE, RUNNER_TOKEN};
use crate::core::error::{Error, ErrorKind, Result};
use crate::core::http::{self, Call, Method, Request};
use crate::core::model::Registration;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

/// A runner's credentials as GitLab hands them out (register) or confirms them (verify).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub id: i64,
    /// Empty from verify (the caller already has it).
    pub token: String,
    pub token_expires_at: Option<String>,
}

fn auth_rejected(answer: &Answer) -> Error {
    answer.error(ErrorKind::Auth).context("the runner token was rejected")
}

/// `POST /api/v4/runners` with a (legacy) registration token and the runner's settings.
pub fn register(
    api_url: &str,
    registration_token: &str,
    r: &Registration,
    info: Value,
    call: &Call,
) -> Result<Credentials> {
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
    put("info", info);
    put("token", json!(registration_token));

    let req = Request::new(Method::POST, api_url, "/api/v4/runners")
        .header(ACCEPT, JSON)
        .header(RUNNER_TOKEN, registration_token)
        .json(&Value::Object(body));
    let resp = http::send(req, call)?;
    let answer = Answer::of(&resp);
    match resp.status {
        201 => credentials(&json_of(&resp)?, &resp.what, true),
        403 => Err(answer.error(ErrorKind::Auth).context("the registration token was rejected")),
        410 => Err(answer.error(ErrorKind::Auth).context(
            "this GitLab does not accept registration tokens; create the runner in GitLab \
             (CI/CD settings > Runners) and use its glrt- authentication token with glr_runner_from_token",
        )),
        400 => Err(answer.error(ErrorKind::InvalidArgument)),
        _ => Err(answer.unexpected()),
    }
}

/// The body of verify and job requests: `info` is spliced in as it was serialised.
#[derive(Serialize)]
struct RunnerBody<'a> {
    info: &'a RawValue,
    token: &'a str,
    system_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_update: Option<&'a str>,
}

/// `POST /api/v4/runners/verify`: Some(credentials, without the token) from a current GitLab,
/// None from one that answers the legacy plain `200`.
pub fn verify(
    api_url: &str,
    token: &str,
    info: &RawValue,
    system_id: &str,
    call: &Call,
) -> Result<Option<Credentials>> {
    let body = RunnerBody { info, token, system_id, last_update: None };
    let req = Request::new(Method::POST, api_url, "/api/v4/runners/verify")
        .header(ACCEPT, JSON)
        .header(RUNNER_TOKEN, token)
        .json(&body)
        .idempotent();
    let resp = http::send(req, call)?;
    match resp.status {
        200 => {}
        403 => return Err(auth_rejected(&Answer::of(&resp))),
        _ => return Err(Answer::of(&resp).unexpected()),
    }
    match serde_json::from_slice::<Value>(&resp.body) {
        Ok(v) if v.is_object() => credentials(&v, &resp.what, false).map(Some),
        _ => Ok(None),
    }
}

/// Removes the runner (legacy token: `DELETE /runners`) or, for a `glrt-` runner created in
/// GitLab, only this runner manager (`DELETE /runners/managers`), as the official runner.
pub fn unregister(api_url: &str, token: &str, system_id: &str, call: &Call) -> Result<()> {
    let created_in_gitlab = token.starts_with("glrt-");
    let (path, body) = if created_in_gitlab {
        ("/api/v4/runners/managers", json!({"token": token, "system_id": system_id}))
    } else {
        ("/api/v4/runners", json!({"token": token}))
    };
    let req = Request::new(Method::DELETE, api_url, path).header(RUNNER_TOKEN, token).json(&body);
    let resp = http::send(req, call)?;
    let answer = Answer::of(&resp);
    match resp.status {
        204 | 200 => Ok(()),
        403 => Err(auth_rejected(&answer)),
        404 if created_in_gitlab => Err(answer.error(ErrorKind::NotFound)),
        _ => Err(answer.unexpected()),
    }
}

/// `POST /api/v4/runners/reset_authentication_token` with the current token in the body (not in
/// `RUNNER-TOKEN`, as the official runner): a new token, the old one invalid at once.
pub fn reset_token(api_url: &str, token: &str, call: &Call) -> Result<Credentials> {
    let req = Request::new(Method::POST, api_url, "/api/v4/runners/reset_authentication_token")
        .header(ACCEPT, JSON)
        .json(&json!({ "token": token }))
        .secret(token);
    let resp = http::send(req, call)?;
    let answer = Answer::of(&resp);
    match resp.status {
        201 | 200 => {
            let v = json_of(&resp)?;
            let token = v.get("token").and_then(Value::as_str).unwrap_or("").to_string();
            if token.is_empty() {
                return Err(Error::parse(format!("{}: the answer has no runner token", resp.what)));
            }
            let token_expires_at = v.get("token_expires_at").and_then(Value::as_str).map(str::to_string);
            Ok(Credentials { id: 0, token, token_expires_at })
        }
        403 => Err(auth_rejected(&answer)),
        _ => Err(answer.unexpected()),
    }
}

/// The answer to a job request.
#[derive(Debug)]
pub struct JobRequestReply {
    /// The job payload as GitLab sent it (JSON text), or None: no job now (204, or 409 when
    /// another runner was faster).
    pub payload: Option<String>,
    /// `X-GitLab-Last-Update`, to send back as `last_update` on the next request.
    pub last_update: Option<String>,
}

/// `POST /api/v4/jobs/request`, long-polled by GitLab when `last_update` is the newest cursor.
pub fn request_job(
    api_url: &str,
    token: &str,
    info: &RawValue,
    system_id: &str,
    last_update: Option<&str>,
    call: &Call,
) -> Result<JobRequestReply> {
    let body = RunnerBody { info, token, system_id, last_update };
    let req = Request::new(Method::POST, api_url, "/api/v4/jobs/request")
        .header(ACCEPT, JSON)
        .header(RUNNER_TOKEN, token)
        .json(&body);
    let resp = http::send(req, call)?;
    let last_update = resp.header(LAST_UPDATE).map(str::to_string);
    match resp.status {
        201 => {}
        204 | 409 => return Ok(JobRequestReply { payload: None, last_update }),
        403 => return Err(auth_rejected(&Answer::of(&resp))),
        _ => return Err(Answer::of(&resp).unexpected()),
    }
    let what = resp.what.clone();
    let payload = String::from_utf8(resp.body).map_err(|_| {
        Error::parse(format!("{what}: 201 with a body that is not UTF-8 (a job was assigned but cannot be read)"))
    })?;
    Ok(JobRequestReply { payload: Some(payload), last_update })
}

/// `{id, token, token_expires_at}` of a registration or verify answer.
fn credentials(v: &Value, what: &str, token_required: bool) -> Result<Credentials> {
    let id = match v.get("id") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| Error::parse(format!("{what}: the answer has no runner id")))?;
    let token = v.get("token").and_then(Value::as_str).unwrap_or("").to_string();
    let token_expires_at = v.get("token_expires_at").and_then(Value::as_str).map(str::to_string);
    if token.is_empty() && token_required {
        return Err(Error::parse(format!("{what}: the answer has no runner token")));
    }
    Ok(Credentials { id, token, token_expires_at })
}
