//! Artifacts (protocol §5): `POST /api/v4/jobs/:id/artifacts` (multipart part `file`, type,
//! format and expiry in the query) and `GET /api/v4/jobs/:id/artifacts` for dependencies, plus
//! the `/__storage/...` links that stand in for object storage in direct-download mode.

use super::common::{authenticate_job, check, forbidden, grape_error, job_token, message, status, JobAuth, Params};
use crate::model::ArtifactRecord;
use crate::range::{self, RangeAnswer};
use crate::state::Shared;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;

/// `Ci::JobArtifact.file_types` (protocol §5.1).
const FILE_TYPES: &[&str] = &[
    "archive",
    "metadata",
    "trace",
    "junit",
    "metrics",
    "metrics_referee",
    "network_referee",
    "dotenv",
    "cobertura",
    "jacoco",
    "cluster_applications",
    "cyclonedx",
    "annotations",
    "repository_xray",
    "lsif",
    "sast",
    "secret_detection",
    "dependency_scanning",
    "container_scanning",
    "cluster_image_scanning",
    "dast",
    "license_scanning",
    "accessibility",
    "codequality",
    "performance",
    "browser_performance",
    "load_performance",
    "terraform",
    "requirements",
    "requirements_v2",
    "coverage_fuzzing",
    "api_fuzzing",
];
/// `Ci::JobArtifact.file_formats`.
const FILE_FORMATS: &[&str] = &["raw", "zip", "gzip"];

pub(crate) async fn upload(
    State(s): State<Arc<Shared>>,
    Path(raw_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = match Params::parse(&uri, &HeaderMap::new(), &[]) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let cfg = s.config();

    // Step 1, Workhorse's call to /artifacts/authorize: its params, the job token, the size.
    let mut errors = Vec::new();
    let id = raw_id.parse::<i64>().ok();
    if id.is_none() {
        errors.push("id is invalid".into());
    }
    let artifact_type = query.string("artifact_type", &mut errors).unwrap_or_else(|| "archive".into());
    if !FILE_TYPES.contains(&artifact_type.as_str()) {
        errors.push("artifact_type does not have a valid value".into());
    }
    if let Err(r) = check(errors) {
        return r;
    }
    let id = id.unwrap_or_default();
    let token = job_token(Some(&query), &headers);
    if let Err(r) = authenticate_job(&mut s.lock(), id, &token, JobAuth::ARTIFACTS) {
        return r;
    }

    // Step 2, Workhorse stores the file and Rails validates the upload params.
    let (file, fields) = parse_multipart(&headers, body).await;
    let mut p = query;
    for (k, v) in fields {
        p.0.insert(k, Value::String(v));
    }
    let mut errors = Vec::new();
    if file.is_none() {
        errors.push("file is missing".into());
    }
    // CreateService: `params['expire_in'] || default_artifacts_expire_in`.
    let expire_in = p.string("expire_in", &mut errors).or_else(|| Some(cfg.default_artifacts_expire_in.clone()));
    let artifact_type = p.string("artifact_type", &mut errors).unwrap_or_else(|| "archive".into());
    if !FILE_TYPES.contains(&artifact_type.as_str()) {
        errors.push("artifact_type does not have a valid value".into());
    }
    let artifact_format = p.string("artifact_format", &mut errors).unwrap_or_else(|| "zip".into());
    if !FILE_FORMATS.contains(&artifact_format.as_str()) {
        errors.push("artifact_format does not have a valid value".into());
    }
    if let Err(r) = check(errors) {
        return r;
    }
    let Some((filename, data)) = file else { return grape_error("file is missing") };
    // Workhorse limits the file it stores (its MaximumSize), not the multipart body around it.
    if data.len() > cfg.max_artifact_size {
        return message(413, "413 Request Entity Too Large");
    }

    let mut inner = s.lock();
    // The job may have been finished or canceled while the body streamed in.
    if let Err(r) = authenticate_job(&mut inner, id, &token, JobAuth::ARTIFACTS) {
        return r;
    }
    let Some(job) = inner.jobs.get_mut(&id) else { return forbidden(None) };
    // CreateService: an identical re-upload (same type, same content) succeeds without a
    // duplicate, which makes client retries idempotent; different content is a 400.
    if let Some(existing) = job.artifacts.iter().find(|a| a.artifact_type == artifact_type) {
        if existing.data != data {
            return message(400, "another artifact of the same type already exists");
        }
    } else {
        job.artifacts.push(ArtifactRecord { artifact_type, artifact_format, expire_in, filename, data });
    }
    let mut r = Response::new(Body::from("201"));
    *r.status_mut() = status(201);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// The `file` part (filename, bytes) and every other text field of a multipart body.
async fn parse_multipart(headers: &HeaderMap, body: Bytes) -> (Option<(String, Vec<u8>)>, Vec<(String, String)>) {
    let mut file = None;
    let mut fields = Vec::new();
    // multer directly (not axum's extractor on a rebuilt request, which would fall back to
    // axum's 2 MB default body limit): the body is already read, within max_artifact_size.
    let Some(boundary) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|ct| ct.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
    else {
        return (None, fields);
    };
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    while let Ok(Some(field)) = mp.next_field().await {
        let name = field.name().unwrap_or("").to_string();
        let filename = field.file_name().map(str::to_owned);
        let Ok(data) = field.bytes().await else { break };
        if name == "file" {
            file = Some((filename.unwrap_or_else(|| "artifacts".into()), data.to_vec()));
        } else if filename.is_none() {
            fields.push((name, String::from_utf8_lossy(&data).into_owned()));
        }
    }
    (file, fields)
}

/// `GET /api/v4/jobs/:id/artifacts`: authenticated like GitLab's `authenticate_job_via_dependent_job!`:
/// the token must be the unexpired token of an executing job (else 401: GitLab's generic job-token
/// authentication knows no "expired" answer), the job must exist (else 403) and have an archive
/// (else 404). `Range` is honoured.
pub(crate) async fn download(
    State(s): State<Arc<Shared>>,
    Path(raw_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let query = Params::parse(&uri, &HeaderMap::new(), &[]).ok();
    let mut errors = Vec::new();
    let direct = query.as_ref().and_then(|q| q.boolean("direct_download", &mut errors)).unwrap_or(false);
    let id = match raw_id.parse::<i64>() {
        Ok(id) => id,
        Err(_) => {
            errors.push("id is invalid".into());
            0
        }
    };
    if let Err(r) = check(errors) {
        return r;
    }
    let token = job_token(query.as_ref(), &headers);
    let cfg = s.config();
    let mut inner = s.lock();
    let now = std::time::Instant::now();
    let authenticated = inner
        .job_id_by_token(&token)
        .and_then(|jid| inner.jobs.get(&jid))
        .is_some_and(|j| j.state.executing() && !j.token_expired(now));
    if !authenticated {
        return message(401, "401 Unauthorized");
    }
    let Some(job) = inner.jobs.get(&id) else { return forbidden(None) };
    let Some(index) = job.artifacts.iter().position(|a| a.artifact_type == "archive") else {
        return message(404, "404 Not Found");
    };
    if direct && cfg.artifacts_direct_download {
        let key = inner.rng.alnum(32);
        inner.storage_links.insert(key.clone(), (id, index));
        let mut r = Response::new(Body::empty());
        *r.status_mut() = status(302);
        if let Ok(v) = HeaderValue::from_str(&format!("{}/__storage/artifacts/{key}", s.base_url)) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    file_response(&job.artifacts[index], &headers)
}

/// `GET /__storage/artifacts/:key`: the "object storage" a direct download is redirected to.
/// Like a presigned URL it needs no token.
pub(crate) async fn storage(State(s): State<Arc<Shared>>, Path(key): Path<String>, headers: HeaderMap) -> Response {
    let inner = s.lock();
    let found = inner.storage_links.get(&key).and_then(|(jid, idx)| inner.jobs.get(jid)?.artifacts.get(*idx));
    match found {
        Some(a) => file_response(a, &headers),
        None => message(404, "404 Not Found"),
    }
}

/// The file, or the part of it a `Range` header asks for (206), or 416 for a range past its end.
fn file_response(a: &ArtifactRecord, request: &HeaderMap) -> Response {
    let size = a.data.len();
    let asked = request.get(header::RANGE).and_then(|v| v.to_str().ok());
    let mut r = match range::answer(asked, size) {
        RangeAnswer::Whole => Response::new(Body::from(a.data.clone())),
        RangeAnswer::Partial { first, last } => {
            let mut r = Response::new(Body::from(a.data[first..=last].to_vec()));
            *r.status_mut() = status(206);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        }
        RangeAnswer::Unsatisfiable => {
            let mut r = message(416, "416 Range Not Satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    r.headers_mut().insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    let disposition = format!("attachment; filename=\"{}\"", a.filename.replace('"', ""));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
