//! `POST /api/v4/jobs/:id/artifacts` (protocol §5.1): one multipart part `file` streamed from
//! disk (memory does not grow with the file), type/format/expiry in the query, `JOB-TOKEN`,
//! retried like the official uploader: 3 tries, 6 when the last answer was 503, none after 403 or
//! 413; a 307 moves the upload to the scheme and host of its `Location` and tries again.

use super::{error_message_of, job_path, JOB_TOKEN};
use crate::core::diag;
use crate::core::error::{Error, ErrorKind, Result};
use crate::core::http::{self, Call};
use crate::core::model::ArtifactFile;
use reqwest::multipart::Form;
use std::time::Duration;

/// Tries in all, as the official uploader (`defaultTries`).
const TRIES: u32 = 3;
/// Tries in all when GitLab answers 503 (object storage trouble; `serviceUnavailableTries`).
const TRIES_ON_503: u32 = 6;
/// First wait between tries, doubled each time, capped by [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(500);
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Error bodies are small; never read more of one.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// The query string: keys sorted, empty values omitted, as the official runner.
fn query(file: &ArtifactFile) -> String {
    let mut pairs: Vec<(&str, &str)> =
        vec![("artifact_format", file.artifact_format.as_str()), ("artifact_type", file.artifact_type.as_str())];
    if let Some(e) = &file.expire_in {
        pairs.push(("expire_in", e.as_str()));
    }
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Scheme and host (with port) of a `Location`: the official runner keeps only those on a 307
/// (path and query dropped) and uses them as the new GitLab base URL.
fn base_of(location: &str) -> Option<String> {
    let (scheme, rest) = location.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    if host.is_empty() || !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    Some(format!("{}://{host}", scheme.to_ascii_lowercase()))
}

/// What one attempt came to. Failures carry their kind and what follows "<label>: ".
enum Attempt {
    Done,
    /// Try again (after `wait`, or the backoff when None), allowing `tries` tries in all.
    Again {
        kind: ErrorKind,
        why: String,
        tries: u32,
        wait: Option<Duration>,
    },
    Fail(ErrorKind, String),
}

/// Uploads one file for job `job_id`. Errors leave nothing half-reported: the caller keeps the
/// job running and may retry or fail it. A 403 is `ErrorKind::JobCanceled` (GitLab no longer
/// accepts the job token: the job was canceled or is not running); a 413 is `ErrorKind::Http`
/// with a message naming GitLab's maximum artifact size; other statuses, after the tries, are
/// `ErrorKind::Http` with GitLab's own message (e.g. "another artifact of the same type already
/// exists"); transport failures `ErrorKind::Network`; an unreadable file `ErrorKind::Io`.
pub fn upload(api_url: &str, job_id: i64, job_token: &str, file: &ArtifactFile, call: &Call) -> Result<()> {
    let what = format!("POST {}/artifacts", job_path(job_id));
    let kind = if file.artifact_type.is_empty() { "archive" } else { file.artifact_type.as_str() };
    let label = format!("{what} ({} as {kind})", file.name);
    let query = query(file);
    let mut base = api_url.trim_end_matches('/').to_string();
    let mut tries = 0u32;
    loop {
        tries += 1;
        let handle =
            std::fs::File::open(&file.path).map_err(|e| Error::io(format!("artifact {}: {e}", file.path.display())))?;
        let size = handle.metadata().map_err(|e| Error::io(format!("artifact {}: {e}", file.path.display())))?.len();
        let part = http::file_part(handle, size)
            .file_name(file.name.clone())
            .mime_str("application/octet-stream")
            .expect("a valid MIME type");
        let form = Form::new().part("file", part);
        let mut url = format!("{base}{}/artifacts", job_path(job_id));
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query);
        }
        let headers = [(JOB_TOKEN, job_token)];
        let secret = job_token.to_string();
        let answer =
            http::transfer(call, http::Method::POST, &url, &label, &headers, Some(form), move |resp| async move {
                judge(resp, size, &secret).await
            });
        let outcome = match answer {
            // The call's own bound ran out or another thread ended it: no retry.
            Err(e) if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Interrupted) => return Err(e),
            Err(e) => {
                let why = e.message.strip_prefix(&format!("{label}: ")).unwrap_or(&e.message).to_string();
                Attempt::Again { kind: e.kind, why, tries: TRIES, wait: None }
            }
            Ok((attempt, new_base)) => {
                if let Some(b) = new_base {
                    base = b;
                }
                attempt
            }
        };
        match outcome {
            Attempt::Done => {
                diag::info(&format!("{label}: uploaded {size} bytes"));
                return Ok(());
            }
            Attempt::Fail(kind, why) => return Err(Error::new(kind, format!("{label}: {why}"))),
            Attempt::Again { kind, why, tries: allowed, wait } => {
                if tries >= allowed {
                    let after = if tries > 1 { format!(" after {tries} attempts") } else { String::new() };
                    return Err(Error::new(kind, format!("{label}{after}: {why}")));
                }
                let wait = wait.unwrap_or_else(|| FIRST_WAIT.saturating_mul(1 << (tries - 1).min(16)).min(MAX_WAIT));
                diag::warn(&format!(
                    "{label}: {why}; retrying in {} ms (attempt {tries} of {allowed})",
                    wait.as_millis()
                ));
                call.sleep(&label, wait)?;
            }
        }
    }
}

/// Classifies GitLab's answer (reading at most a small error body); a redirect also gives the
/// new base URL.
async fn judge(mut resp: reqwest::Response, size: u64, job_token: &str) -> Result<(Attempt, Option<String>)> {
    let status = resp.status().as_u16();
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
    let retry_after = http::retry_after_of(resp.headers());
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() as u64 >= MAX_ERROR_BODY {
            break;
        }
    }
    let reason = reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    let detail = error_message_of(&body, &[job_token]).map(|m| format!(": {m}")).unwrap_or_default();
    let why = |extra: &str| format!("{status} {reason}{extra}{detail}");
    let mut new_base = None;
    let attempt = match status {
        200 | 201 => Attempt::Done,
        307 | 308 => match location.as_deref().and_then(base_of) {
            Some(b) => {
                diag::warn(&format!("POST .../artifacts redirected ({status}) to {b}; uploading there"));
                new_base = Some(b);
                let why = why(" (redirected; the last redirect was followed)");
                Attempt::Again { kind: ErrorKind::Http, why, tries: TRIES, wait: Some(Duration::ZERO) }
            }
            None => Attempt::Again {
                kind: ErrorKind::Http,
                why: why(" without a usable Location"),
                tries: TRIES,
                wait: None,
            },
        },
        403 => Attempt::Fail(
            ErrorKind::JobCanceled,
            why(" (the job token was rejected: the job was canceled or is not running any more)"),
        ),
        413 => Attempt::Fail(
            ErrorKind::Http,
            why(&format!(
                " (the file is {size} bytes, more than GitLab's maximum artifact size for this type: the \
                 instance's \"Maximum artifacts size\" setting or the project's or group's limit)"
            )),
        ),
        503 => Attempt::Again { kind: ErrorKind::Http, why: why(""), tries: TRIES_ON_503, wait: retry_after },
        _ => Attempt::Again { kind: ErrorKind::Http, why: why(""), tries: TRIES, wait: retry_after },
    };
    Ok((attempt, new_base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_sorted_and_encoded() {
        let f = ArtifactFile {
            path: "x".into(),
            name: "a.zip".into(),
            artifact_type: "archive".into(),
            artifact_format: "zip".into(),
            expire_in: Some("1 week".into()),
        };
        assert_eq!(query(&f), "artifact_format=zip&artifact_type=archive&expire_in=1%20week");
        let bare = ArtifactFile { artifact_format: String::new(), expire_in: None, ..f };
        assert_eq!(query(&bare), "artifact_type=archive");
    }

    #[test]
    fn redirects_keep_scheme_and_host_only() {
        assert_eq!(base_of("https://storage.example.com/upload?x=1").as_deref(), Some("https://storage.example.com"));
        assert_eq!(base_of("HTTP://h:8080?x").as_deref(), Some("http://h:8080"));
        assert_eq!(base_of("/relative"), None);
        assert_eq!(base_of("ftp://h/x"), None);
        assert_eq!(base_of("https:///x"), None);
    }
}
