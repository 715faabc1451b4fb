//! `/api/v4/runners*`: registration (legacy registration tokens), verify, unregister (runner and
//! runner manager) and token reset. Runner endpoints authenticate only from the `token`
//! parameter (body or query); the `RUNNER-TOKEN` header is ignored as GitLab ignores it.

use super::common::{check, forbidden, json_response, message, no_content, text, Params};
use crate::model::RunnerOptions;
use crate::state::{runner_token_expiry, Shared};
use crate::util::iso8601_millis;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use serde_json::{json, Map, Value};
use std::sync::Arc;

const ACCESS_LEVELS: [&str; 2] = ["not_protected", "ref_protected"];

fn params(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Params, Response> {
    Params::parse(uri, headers, body)
}

/// `POST /api/v4/runners` (also `/api/v4/runners/`, as the Python package posts there).
pub(crate) async fn register(State(s): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let p = match params(&uri, &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    // Grape validates every declared parameter before the endpoint runs.
    let mut errors = Vec::new();
    let token = p.required_string("token", &mut errors);
    let description = p.string("description", &mut errors);
    let maintainer_note = p.string("maintainer_note", &mut errors);
    let maintenance_note = p.string("maintenance_note", &mut errors);
    let info = p.object("info", &mut errors).cloned();
    let active = p.boolean("active", &mut errors);
    let paused = p.boolean("paused", &mut errors);
    let locked = p.boolean("locked", &mut errors);
    let run_untagged = p.boolean("run_untagged", &mut errors);
    let access_level = p.string("access_level", &mut errors);
    if let Some(a) = &access_level {
        if !ACCESS_LEVELS.contains(&a.as_str()) {
            errors.push("access_level does not have a valid value".into());
        }
    }
    let tags = tag_list(p.get("tag_list"), &mut errors);
    let maximum_timeout = p.integer("maximum_timeout", &mut errors);
    if p.get("maintainer_note").is_some() && p.get("maintenance_note").is_some() {
        errors.push("maintainer_note, maintenance_note are mutually exclusive".into());
    }
    if p.get("active").is_some() && p.get("paused").is_some() {
        errors.push("active, paused are mutually exclusive".into());
    }
    if let Err(r) = check(errors) {
        return r;
    }
    let token = token.unwrap_or_default();
    let cfg = s.config();
    let enabled = cfg.registration_tokens_enabled;

    let mut inner = s.lock();
    // RegisterRunnerService checks the token first (403), then whether registration tokens are
    // allowed at all (410).
    if !inner.registration_tokens.contains(&token) {
        return forbidden(Some("invalid token supplied"));
    }
    if !enabled {
        return json_response(410, &json!({ "message": "410 Gone", "reason": "runner registration disallowed" }));
    }
    let opts = RunnerOptions {
        description,
        tags: tags.unwrap_or_default(),
        run_untagged: run_untagged.unwrap_or(true),
        locked: locked.unwrap_or(false),
        paused: match (paused, active) {
            (Some(p), _) => p,
            (None, Some(a)) => !a,
            (None, None) => false,
        },
        access_level: access_level.unwrap_or_else(|| "not_protected".into()),
        maximum_timeout,
    };
    let note = maintenance_note.or(maintainer_note);
    // The Ci::Runner model validations, answered as `render_validation_error!`.
    let mut invalid = Map::new();
    if matches!(opts.maximum_timeout, Some(t) if t < 600) {
        invalid.insert("maximum_timeout".into(), json!(["needs to be at least 10 minutes"]));
    }
    if !opts.run_untagged && opts.tags.is_empty() {
        invalid
            .insert("tags_list".into(), json!(["can not be empty when runner is not allowed to pick untagged jobs"]));
    }
    if note.as_ref().is_some_and(|n| n.chars().count() > 1024) {
        invalid.insert("maintenance_note".into(), json!(["is too long (maximum is 1024 characters)"]));
    }
    if !invalid.is_empty() {
        return message(400, Value::Object(invalid));
    }
    let name = info.as_ref().and_then(|i| i.get("name")).and_then(Value::as_str).map(str::to_owned);
    let (id, token) = inner.add_runner("registration_token", &opts, name, note, cfg.runner_token_lifetime);
    let expires = inner.runners.get(&id).and_then(|r| r.token_expires_at);
    json_response(201, &json!({ "id": id, "token": token, "token_expires_at": expires.map(iso8601_millis) }))
}

/// `tag_list`: `Array[String]`, a comma-separated string is split (GitLab's CommaSeparatedToArray).
fn tag_list(v: Option<&Value>, errors: &mut Vec<String>) -> Option<Vec<String>> {
    let list: Vec<String> = match v? {
        Value::String(s) => s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        Value::Array(a) => {
            let mut out = Vec::new();
            for t in a {
                match t {
                    Value::String(s) => out.push(s.trim().to_string()),
                    _ => {
                        errors.push("tag_list is invalid".into());
                        return None;
                    }
                }
            }
            out.into_iter().filter(|t| !t.is_empty()).collect()
        }
        _ => {
            errors.push("tag_list is invalid".into());
            return None;
        }
    };
    Some(list)
}

/// Runner-token authentication with the manager heartbeat (`authenticate_runner!`).
/// Returns the runner id.
fn authenticate_runner(s: &Shared, p: &Params, heartbeat: bool) -> Result<i64, Response> {
    let mut errors = Vec::new();
    let token = p.required_string("token", &mut errors);
    let system_id = p.string("system_id", &mut errors);
    check(errors)?;
    let mut inner = s.lock();
    let id = inner.runner_by_token(token.as_deref().unwrap_or("")).map(|r| r.id).ok_or_else(|| forbidden(None))?;
    if heartbeat {
        let info = p.get("info").cloned();
        inner.heartbeat(id, system_id.as_deref(), info.as_ref());
    }
    Ok(id)
}

/// `POST /api/v4/runners/verify`: 200 `{id, token, token_expires_at}` (or the legacy plain `200`).
pub(crate) async fn verify(State(s): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let p = match params(&uri, &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let id = match authenticate_runner(&s, &p, true) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if s.config().legacy_verify {
        return text(200, "200");
    }
    let inner = s.lock();
    let (token, expires) = inner.runners.get(&id).map(|r| (r.token.clone(), r.token_expires_at)).unwrap_or_default();
    json_response(200, &json!({ "id": id, "token": token, "token_expires_at": expires.map(iso8601_millis) }))
}

/// `DELETE /api/v4/runners`: the whole runner goes (204).
pub(crate) async fn unregister(State(s): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let p = match params(&uri, &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let id = match authenticate_runner(&s, &p, false) {
        Ok(id) => id,
        Err(r) => return r,
    };
    s.lock().runners.remove(&id);
    no_content()
}

/// `DELETE /api/v4/runners/managers`: only this `system_id`'s manager goes (204, 404 unknown).
pub(crate) async fn unregister_manager(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = match params(&uri, &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut errors = Vec::new();
    p.required_string("token", &mut errors);
    let system_id = p.required_string("system_id", &mut errors);
    if let Err(r) = check(errors) {
        return r;
    }
    let id = match authenticate_runner(&s, &p, false) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let system_id = system_id.unwrap_or_default();
    let mut inner = s.lock();
    let Some(runner) = inner.runners.get_mut(&id) else {
        return forbidden(None);
    };
    match runner.managers.iter().position(|m| m.system_id == system_id) {
        Some(i) => {
            runner.managers.remove(i);
            no_content()
        }
        // Grape's not_found!(resource) renders "404 <resource> Not Found".
        None => message(404, "404 Runner manager not found Not Found"),
    }
}

/// `POST /api/v4/runners/reset_authentication_token`: 201 `{token}` (+ `token_expires_at` when
/// tokens expire); the old token stops working at once, the new one lives a full lifetime.
pub(crate) async fn reset_token(State(s): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let p = match params(&uri, &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let id = match authenticate_runner(&s, &p, true) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let lifetime = s.config().runner_token_lifetime;
    let mut inner = s.lock();
    let new_token = {
        let glrt = inner.runners.get(&id).is_some_and(|r| r.token.starts_with("glrt-"));
        inner.new_runner_token(if glrt { "glrt-" } else { "t1_" })
    };
    let Some(runner) = inner.runners.get_mut(&id) else { return forbidden(None) };
    runner.token = new_token.clone();
    runner.token_expires_at = runner_token_expiry(lifetime);
    runner.token_resets += 1;
    // Entities::Ci::ResetTokenResult exposes `token_expires_at` only for expirable tokens.
    match runner.token_expires_at {
        Some(at) => json_response(201, &json!({ "token": new_token, "token_expires_at": iso8601_millis(at) })),
        None => json_response(201, &json!({ "token": new_token })),
    }
}
