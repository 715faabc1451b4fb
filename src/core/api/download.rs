//! A dependency's artifacts (protocol §5.2): `GET /api/v4/jobs/<dependency id>/artifacts` with
//! the dependency's token as `JOB-TOKEN`, `direct_download=true` on the first attempt, redirects
//! followed by hand (the token is sent only to GitLab's own scheme, host and port, never to object
//! storage), the body streamed into a new temporary file, so memory does not grow with the file.
//! Tried 3 times, as the official downloader.

use super::{error_message_of, job_path, JOB_TOKEN};
use crate::core::diag;
use crate::core::error::{Error, ErrorKind, Result};
use crate::core::http::{self, Call};
use reqwest::Url;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

/// Attempts in all for network errors and unexpected statuses, as the official downloader
/// (one try plus two retries).
const TRIES: u32 = 3;
const RETRY_WAIT: Duration = Duration::from_secs(1);
const MAX_REDIRECTS: u32 = 10;
const MAX_ERROR_BODY: u64 = 64 * 1024;

enum Failure {
    /// Worth another attempt.
    Again(Error),
    Final(Error),
}

/// A finished download: the archive in a temporary file, its size, and how messages name it.
pub struct Downloaded {
    pub file: tempfile::NamedTempFile,
    pub size: u64,
    /// `GET /api/v4/jobs/7/artifacts (dependency "build")`.
    pub label: String,
}

/// Downloads the artifacts archive of job `dependency_id` (named `name` in the payload) with
/// `token` into a new temporary file in `dir`.
///
/// Errors: `Auth` (401/403 from GitLab: the token was rejected), `NotFound` (404: no artifacts,
/// or they expired), `Network`/`Http` after 3 attempts, `Io` (writing in `dir`).
pub fn download(
    api_url: &str,
    dependency_id: i64,
    name: Option<&str>,
    token: &str,
    dir: &Path,
    call: &Call,
) -> Result<Downloaded> {
    let what = format!("GET {}/artifacts", job_path(dependency_id));
    let label = match name {
        Some(n) => format!("{what} (dependency {n:?})"),
        None => what.clone(),
    };
    let label = label.as_str();
    let api = Url::parse(api_url).map_err(|e| Error::invalid(format!("the runner's URL is not a URL: {e}")))?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut url = format!("{}{}/artifacts", api_url.trim_end_matches('/'), job_path(dependency_id));
        if attempt == 1 {
            url.push_str("?direct_download=true");
        }
        let url = Url::parse(&url).map_err(|e| Error::invalid(format!("{what}: bad URL: {e}")))?;
        match fetch(url, &api, token, label, dir, call) {
            Ok((file, size)) => return Ok(Downloaded { file, size, label: label.to_string() }),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Again(e)) if attempt < TRIES => {
                diag::warn(&format!("{e}; retrying (attempt {attempt} of {TRIES})"));
                call.sleep(label, RETRY_WAIT)?;
            }
            Err(Failure::Again(e)) => {
                return Err(Error::new(
                    e.kind,
                    e.message.replacen(label, &format!("{label} after {attempt} attempts"), 1),
                ))
            }
        }
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// One attempt: GET, following redirects, the body streamed into a new temporary file in `dir`.
/// What one hop of a download came to.
enum Hop {
    Redirect(Url),
    Done(tempfile::NamedTempFile, u64),
    Failed(Failure),
}

/// One attempt: GET, following redirects, the body streamed into a new temporary file in `dir`.
fn fetch(
    mut url: Url,
    api: &Url,
    token: &str,
    label: &str,
    dir: &Path,
    call: &Call,
) -> std::result::Result<(tempfile::NamedTempFile, u64), Failure> {
    let mut redirects = 0;
    loop {
        let to_gitlab = same_origin(&url, api);
        let headers: Vec<(&str, &str)> = if to_gitlab { vec![(JOB_TOKEN, token)] } else { Vec::new() };
        let where_ = if to_gitlab { String::new() } else { format!(" (from {})", url.host_str().unwrap_or("storage")) };
        // The answer is read on the library's runtime: it gets owned copies.
        let (at, whence, secret, name, folder) =
            (url.clone(), where_.clone(), token.to_string(), label.to_string(), dir.to_path_buf());
        let hop =
            http::transfer(call, http::Method::GET, url.as_str(), label, &headers, None, move |resp| async move {
                read_hop(resp, &at, to_gitlab, &whence, &secret, &name, &folder).await
            });
        match hop {
            Err(e) if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Interrupted) => return Err(Failure::Final(e)),
            Err(e) => return Err(Failure::Again(e)),
            Ok(Hop::Failed(f)) => return Err(f),
            Ok(Hop::Done(tmp, size)) => return Ok((tmp, size)),
            Ok(Hop::Redirect(next)) => {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(Failure::Final(Error::new(
                        ErrorKind::Http,
                        format!("{label}: more than {MAX_REDIRECTS} redirects"),
                    )));
                }
                url = next;
            }
        }
    }
}

/// Reads one answer: a redirect's target, the body into a temporary file, or why it failed.
async fn read_hop(
    mut resp: reqwest::Response,
    url: &Url,
    to_gitlab: bool,
    where_: &str,
    token: &str,
    label: &str,
    dir: &Path,
) -> Result<Hop> {
    let status = resp.status().as_u16();
    if matches!(status, 301 | 302 | 303 | 307 | 308) {
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
        let next =
            location.as_deref().and_then(|l| url.join(l).ok()).filter(|u| matches!(u.scheme(), "http" | "https"));
        return Ok(match next {
            Some(next) => {
                diag::debug(&format!("{label}: {status} redirect to {}", next.host_str().unwrap_or("?")));
                Hop::Redirect(next)
            }
            None => Hop::Failed(Failure::Again(Error::new(
                ErrorKind::Http,
                format!("{label}: {status} redirect without a usable Location{where_}"),
            ))),
        });
    }
    if status == 200 {
        let tmp = match tempfile::Builder::new().prefix(".glr-download-").tempfile_in(dir) {
            Ok(t) => t,
            Err(e) => {
                return Ok(Hop::Failed(Failure::Final(Error::io(format!(
                    "{label}: cannot create a file in {}: {e}",
                    dir.display()
                )))))
            }
        };
        // Read before the body: the hint shrinks as it is consumed.
        let announced = resp.content_length();
        let size = match stream(&mut resp, tmp.as_file(), label, dir).await {
            Ok(size) => size,
            Err(f) => return Ok(Hop::Failed(f)),
        };
        if let Some(expected) = announced.filter(|n| *n != size) {
            return Ok(Hop::Failed(Failure::Again(Error::new(
                ErrorKind::Network,
                format!("{label}: the download was cut short ({size} of {expected} bytes){where_}"),
            ))));
        }
        return Ok(Hop::Done(tmp, size));
    }
    let reason = reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() as u64 >= MAX_ERROR_BODY {
            break;
        }
    }
    let detail = error_message_of(&body, &[token]).map(|m| format!(": {m}")).unwrap_or_default();
    let msg = |extra: &str| format!("{label}: {status} {reason}{where_}{extra}{detail}");
    Ok(Hop::Failed(match status {
        401 | 403 if to_gitlab => Failure::Final(Error::new(
            ErrorKind::Auth,
            msg(" (the dependency's job token was rejected: the job is not running, or may not read these artifacts)"),
        )),
        404 if to_gitlab => {
            Failure::Final(Error::not_found(msg(" (the dependency has no artifacts, or they expired)")))
        }
        // Object storage refusing a presigned link (expired, clock skew...) or anything else:
        // the next attempt asks GitLab without direct_download.
        _ => Failure::Again(Error::new(ErrorKind::Http, msg(""))),
    }))
}

/// Copies the body into `file`; read failures are worth another attempt, write failures not.
async fn stream(
    resp: &mut reqwest::Response,
    file: &std::fs::File,
    label: &str,
    dir: &Path,
) -> std::result::Result<u64, Failure> {
    let write_failed =
        |e: std::io::Error| Failure::Final(Error::io(format!("{label}: writing in {}: {e}", dir.display())));
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    let mut size = 0u64;
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                return Err(Failure::Again(Error::new(
                    ErrorKind::Network,
                    format!(
                        "{label}: the download was cut short after {size} bytes ({})",
                        http::transfer_error(label, &e).message.trim_start_matches(&format!("{label}: "))
                    ),
                )))
            }
        };
        // A blocking write, on the runtime's worker: let its other tasks move elsewhere meanwhile.
        tokio::task::block_in_place(|| out.write_all(&chunk)).map_err(write_failed)?;
        size += chunk.len() as u64;
    }
    out.flush().map_err(write_failed)?;
    drop(out);
    file.sync_all().map_err(write_failed)?;
    Ok(size)
}
