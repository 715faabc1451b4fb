//! The request log: what came in and what went out, with every token redacted. Tokens are
//! redacted by name (token headers, `token`-like keys and query parameters) and by value (any
//! secret the server knows, wherever it appears: see `redact`).

use crate::model::RequestRecord;
use crate::redact::{Secrets, REDACTED};
use axum::http::HeaderMap;
use serde_json::Value;
use std::borrow::Cow;
const SECRET_HEADERS: &[&str] =
    &["job-token", "runner-token", "private-token", "authorization", "proxy-authorization", "cookie"];
const SECRET_KEYS: &[&str] = &["token", "private_token", "job_token", "authorization", "password"];

pub(crate) fn redact_headers(headers: &HeaderMap, secrets: &Secrets) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let name = k.as_str().to_string();
            let value = if SECRET_HEADERS.contains(&name.as_str()) {
                REDACTED.to_string()
            } else {
                secrets.redact(&String::from_utf8_lossy(v.as_bytes())).into_owned()
            };
            (name, value)
        })
        .collect()
}

/// Path and query with secret query parameters' values replaced.
pub(crate) fn redact_target(target: &str, secrets: &Secrets) -> String {
    let redacted = match target.split_once('?') {
        None => target.to_string(),
        Some((path, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str()) => {
                        format!("{k}={REDACTED}")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", q.join("&"))
        }
    };
    secrets.redact(&redacted).into_owned()
}

pub(crate) fn redact_json(v: &mut Value, secrets: &Secrets) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if SECRET_KEYS.contains(&k.as_str()) && val.is_string() {
                    *val = Value::String(REDACTED.into());
                } else {
                    redact_json(val, secrets);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact_json(x, secrets)),
        Value::String(s) => {
            if let Cow::Owned(r) = secrets.redact(s) {
                *s = r;
            }
        }
        _ => {}
    }
}

/// The request half of a record; the gateway fills in the answer.
pub(crate) fn start_record(
    method: &str,
    target: &str,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &Secrets,
    at_ms: u64,
    arrival: u64,
) -> RequestRecord {
    let body_json = serde_json::from_slice::<Value>(body).ok().map(|mut v| {
        redact_json(&mut v, secrets);
        v
    });
    RequestRecord {
        method: method.to_string(),
        path: redact_target(target, secrets),
        status: 0,
        headers: redact_headers(headers, secrets),
        response_headers: Vec::new(),
        body_size: body.len(),
        body_json,
        at_ms,
        arrival,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_by_name_and_by_value() {
        let mut secrets = Secrets::default();
        secrets.add("glrt-SECRET123");
        let mut v = json!({"token": "whatever", "info": {"note": "uses glrt-SECRET123 here"}});
        redact_json(&mut v, &secrets);
        assert_eq!(v["token"], REDACTED);
        assert_eq!(v["info"]["note"], "uses [REDACTED] here");
        assert_eq!(
            redact_target("/api/v4/jobs/1/artifacts?token=abc&direct_download=true", &secrets),
            "/api/v4/jobs/1/artifacts?token=[REDACTED]&direct_download=true"
        );
    }
}
