//! Artifacts to upload with the final update: `POST /api/v4/jobs/:id/artifacts`, one multipart
//! part `file` streamed from disk, type/format/expiry in the query, retried like the official
//! runner's uploader (3 tries, 6 on 503, none on 403/413; 307 rebases the host).

use super::error::{Error, ErrorKind, Result};
use super::{diag, http};
use std::path::PathBuf;
use std::time::Duration;

/// One file to upload, prepared by the caller (or collected from the job's `artifacts:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactFile {
    pub path: PathBuf,
    /// The file name GitLab stores (e.g. "artifacts.zip").
    pub name: String,
    /// e.g. "archive", "junit", "dotenv".
    pub artifact_type: String,
    /// "zip", "gzip" or "raw".
    pub artifact_format: String,
    pub expire_in: Option<String>,
}

/// The artifacts of one job, uploaded in order before the final update.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArtifactSet {
    pub files: Vec<ArtifactFile>,
}

const TRIES: u32 = 3;
const TRIES_ON_503: u32 = 6;

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

/// Scheme and host of a `Location` (the official runner keeps only those on a 307).
fn base_of(location: &str) -> Option<String> {
    let (scheme, rest) = location.split_once("://")?;
    let host = rest.split('/').next()?;
    if host.is_empty() || !(scheme == "http" || scheme == "https") {
        return None;
    }
    Some(format!("{scheme}://{host}"))
}

/// Uploads one file for job `job_id`. Errors leave nothing half-reported: the caller keeps the
/// job running and may retry or fail it.
pub fn upload(api_url: &str, job_id: i64, job_token: &str, file: &ArtifactFile) -> Result<()> {
    let what = format!("POST /api/v4/jobs/{job_id}/artifacts");
    let mut base = api_url.to_string();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let handle =
            std::fs::File::open(&file.path).map_err(|e| Error::io(format!("artifact {}: {e}", file.path.display())))?;
        let size = handle.metadata().map(|m| m.len()).ok();
        let part = match size {
            Some(len) => reqwest::blocking::multipart::Part::reader_with_length(handle, len),
            None => reqwest::blocking::multipart::Part::reader(handle),
        }
        .file_name(file.name.clone())
        .mime_str("application/octet-stream")
        .expect("a valid MIME type");
        let form = reqwest::blocking::multipart::Form::new().part("file", part);
        let url = format!("{base}/api/v4/jobs/{job_id}/artifacts?{}", query(file));
        let result = http::send_multipart(&url, &what, job_token, form);
        let (status, location, message) = match result {
            Ok(r) => r,
            Err(e) if attempt < TRIES => {
                diag::warn(&format!("{e}; retrying"));
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            Err(e) => return Err(e),
        };
        let fail = |kind: ErrorKind, extra: &str| {
            let detail = message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
            Error::new(kind, format!("{what} ({} as {}): {status}{extra}{detail}", file.name, file.artifact_type))
        };
        match status {
            200 | 201 => return Ok(()),
            307 | 308 => match location.as_deref().and_then(base_of) {
                Some(b) if attempt < TRIES => base = b,
                _ => return Err(fail(ErrorKind::Http, " redirect without a usable Location")),
            },
            403 => return Err(fail(ErrorKind::JobCanceled, " Forbidden (job token rejected or job not running)")),
            413 => {
                let size = size.map(|s| format!(" ({s} bytes)")).unwrap_or_default();
                return Err(fail(
                    ErrorKind::Http,
                    &format!(" Payload Too Large: the file{size} exceeds GitLab's maximum artifact size"),
                ));
            }
            503 if attempt < TRIES_ON_503 => std::thread::sleep(Duration::from_secs(1)),
            _ if attempt < TRIES && status != 503 => std::thread::sleep(Duration::from_secs(1)),
            _ => return Err(fail(ErrorKind::Http, &format!(" after {attempt} attempts"))),
        }
    }
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
        assert_eq!(base_of("https://storage.example.com/upload?x=1").as_deref(), Some("https://storage.example.com"));
        assert_eq!(base_of("/relative"), None);
    }
}
