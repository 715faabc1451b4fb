//! The request log: what came in and what went out, with every token redacted. Tokens are
//! redacted by name (token headers, `token`-like keys and query parameters) and by value (any
//! secret the server knows, wherever it appears: see `redact`).

use crate::model::RequestRecord;
use crate::redact::{Secrets, REDACTED};
use axum::body::Bytes;
use axum::http::HeaderMap;
use serde::de::IgnoredAny;
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

/// A request as the log keeps it: the record, and a JSON body as the bytes that came, read into
/// the record's `body_json` (and redacted) only when the log is read. So a request costs the
/// server one reading of its body (the handler's), not three (the log's, its redaction, the
/// handler's): the log is read by tests now and then, the requests come all the time.
#[derive(Clone)]
pub(crate) struct Logged {
    pub record: RequestRecord,
    /// The body, when it is JSON (checked without building it).
    json: Option<Bytes>,
}

impl Logged {
    /// The record with its JSON body read, redacted with the secrets known now (every secret
    /// known when the request came, and any issued since: never less redacted).
    pub(crate) fn read(self, secrets: &Secrets) -> RequestRecord {
        let mut record = self.record;
        record.body_json = self.json.and_then(|b| serde_json::from_slice::<Value>(&b).ok()).map(|mut v| {
            redact_json(&mut v, secrets);
            v
        });
        record
    }
}

/// The records of `log` (a copy taken under the state lock), bodies read and redacted (see
/// `Logged::read`).
pub(crate) fn read_all(log: Vec<Logged>, secrets: &Secrets) -> Vec<RequestRecord> {
    log.into_iter().map(|l| l.read(secrets)).collect()
}

/// The request half of a record; the gateway fills in the answer.
pub(crate) fn start_record(
    method: &str,
    target: &str,
    headers: &HeaderMap,
    body: &Bytes,
    secrets: &Secrets,
    at_ms: u64,
    arrival: u64,
) -> Logged {
    let json = serde_json::from_slice::<IgnoredAny>(body).is_ok().then(|| body.clone());
    let record = RequestRecord {
        method: method.to_string(),
        path: redact_target(target, secrets),
        status: 0,
        headers: redact_headers(headers, secrets),
        response_headers: Vec::new(),
        body_size: body.len(),
        body_json: None,
        at_ms,
        arrival,
    };
    Logged { record, json }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_logged_json_body_is_read_and_redacted_when_the_log_is_read() {
        let mut secrets = Secrets::default();
        secrets.add("glrt-KNOWN");
        let body = Bytes::from_static(br#"{"token": "glrt-KNOWN", "info": {"note": "glrt-KNOWN and glrt-LATER"}}"#);
        let logged = start_record("POST", "/api/v4/jobs/request", &HeaderMap::new(), &body, &secrets, 0, 0);
        secrets.add("glrt-LATER");
        let record = logged.read(&secrets);
        assert_eq!(record.body_json, Some(json!({"token": REDACTED, "info": {"note": "[REDACTED] and [REDACTED]"}})));
        assert_eq!(record.body_size, body.len());
        let text = Bytes::from_static(b"a line of log\n");
        let logged = start_record("PATCH", "/api/v4/jobs/1/trace", &HeaderMap::new(), &text, &secrets, 0, 1);
        assert_eq!(logged.read(&secrets).body_json, None, "a body that is not JSON has none");
        let logged = start_record(
            "PATCH",
            "/api/v4/jobs/1/trace",
            &HeaderMap::new(),
            &Bytes::from_static(b"[1, 2]"),
            &secrets,
            0,
            2,
        );
        assert_eq!(logged.read(&secrets).body_json, Some(json!([1, 2])), "any JSON, as before");
    }

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
