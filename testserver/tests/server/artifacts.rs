//! `POST/GET /jobs/:id/artifacts`. Multipart bodies are built by hand (one `file` part, as the
//! official runner sends) to keep the HTTP client plain.

use crate::common::*;
use glr_testserver::{Config, TestServer};
use reqwest::blocking::Response;
use serde_json::json;

const BOUNDARY: &str = "glr-test-boundary-7d2f";

fn multipart(filename: &str, data: &[u8], extra_fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (k, v) in extra_fields {
        b.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
        );
    }
    b.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(data);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    b
}

fn upload(s: &TestServer, id: i64, token: &str, query: &str, body: Vec<u8>) -> Response {
    client()
        .post(format!("{}/api/v4/jobs/{id}/artifacts?{query}", s.url()))
        .header("JOB-TOKEN", token)
        .header("Content-Type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(body)
        .send()
        .unwrap()
}

fn download(s: &TestServer, id: i64, token: Option<&str>, query: &str) -> Response {
    let mut rb = client().get(format!("{}/api/v4/jobs/{id}/artifacts{query}", s.url()));
    if let Some(t) = token {
        rb = rb.header("JOB-TOKEN", t);
    }
    rb.send().unwrap()
}

#[test]
fn upload_stores_type_format_expiry_and_file() {
    let s = server();
    let (id, token) = running_job(&s);
    let data = b"PK\x03\x04 pretend zip".to_vec();
    let r = upload(
        &s,
        id,
        &token,
        "artifact_format=zip&artifact_type=archive&expire_in=7d",
        multipart("artifacts.zip", &data, &[]),
    );
    assert_eq!(r.status(), 201);
    assert_eq!(r.text().unwrap(), "201");
    let r = upload(&s, id, &token, "artifact_format=gzip&artifact_type=junit", multipart("junit.xml.gz", b"gz", &[]));
    assert_eq!(r.status(), 201);
    let arts = s.job(id).unwrap().artifacts;
    assert_eq!(arts.len(), 2);
    assert_eq!(arts[0].artifact_type, "archive");
    assert_eq!(arts[0].artifact_format, "zip");
    assert_eq!(arts[0].expire_in.as_deref(), Some("7d"));
    assert_eq!(arts[0].filename, "artifacts.zip");
    assert_eq!(arts[0].data, data);
    assert_eq!(arts[1].expire_in.as_deref(), Some("30 days"), "GitLab's default_artifacts_expire_in");
}

#[test]
fn large_uploads_are_stored_whole() {
    let s = server();
    let (id, token) = running_job(&s);
    let data: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let r = upload(&s, id, &token, "artifact_format=zip&artifact_type=archive", multipart("big.zip", &data, &[]));
    assert_eq!(r.status(), 201, "a 5 MiB upload (over axum's 2 MB default) is accepted");
    assert_eq!(s.job(id).unwrap().artifacts[0].data, data);
}

#[test]
fn upload_defaults_and_form_fields() {
    let s = server();
    let (id, token) = running_job(&s);
    let r = upload(&s, id, &token, "", multipart("a.zip", b"abc", &[("expire_in", "1 hour")]));
    assert_eq!(r.status(), 201);
    let a = &s.job(id).unwrap().artifacts[0];
    assert_eq!((a.artifact_type.as_str(), a.artifact_format.as_str()), ("archive", "zip"));
    assert_eq!(a.expire_in.as_deref(), Some("1 hour"));
}

#[test]
fn upload_rejections() {
    let s = TestServer::start_with(Config { max_artifact_size: 1024, ..Config::default() });
    let (id, token) = running_job(&s);
    let ok = |d: &[u8]| multipart("a.zip", d, &[]);
    assert_eq!(upload(&s, id, &token, "", ok(b"first")).status(), 201);
    // Same type, same content: an idempotent retry, no duplicate.
    assert_eq!(upload(&s, id, &token, "", ok(b"first")).status(), 201);
    assert_eq!(s.job(id).unwrap().artifacts.len(), 1);
    let r = upload(&s, id, &token, "", ok(b"second"));
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("another artifact of the same type already exists"));
    assert_eq!(upload(&s, id, &token, "artifact_type=nonsense", ok(b"x")).status(), 400);
    assert_eq!(upload(&s, id, &token, "artifact_type=junit&artifact_format=rar", ok(b"x")).status(), 400);
    let no_file =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--{BOUNDARY}--\r\n");
    let r = upload(&s, id, &token, "artifact_type=junit&artifact_format=gzip", no_file.into_bytes());
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("file is missing"));
    assert_eq!(upload(&s, id, &token, "artifact_type=dotenv&artifact_format=gzip", ok(&[7u8; 4096])).status(), 413);
    assert_eq!(upload(&s, id, "glcbt-wrong", "artifact_type=dotenv&artifact_format=gzip", ok(b"x")).status(), 403);
    update(&s, id, &token, json!({ "state": "success" }));
    let r = upload(&s, id, &token, "artifact_type=dotenv&artifact_format=gzip", ok(b"x"));
    assert_eq!(r.status(), 403, "uploads must come before the final update");
    assert_eq!(header(&r, "job-status").as_deref(), Some("success"));
}

#[test]
fn download_dependency_artifacts() {
    let s = server();
    let (id, token) = running_job(&s);
    let payload = s.job(id).unwrap().payload;
    let dep = &payload["dependencies"][0];
    let dep_id = dep["id"].as_i64().unwrap();
    let r = download(&s, dep_id, dep["token"].as_str(), "");
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-disposition").unwrap().contains("artifacts.zip"));
    let bytes = r.bytes().unwrap();
    assert_eq!(bytes.len() as u64, dep["artifacts_file"]["size"].as_u64().unwrap());
    assert_eq!(&bytes[..4], b"PK\x03\x04");

    assert_eq!(download(&s, dep_id, None, "").status(), 401);
    assert_eq!(download(&s, dep_id, Some("glcbt-wrong"), "").status(), 401);
    assert_eq!(download(&s, 987_654, Some(&token), "").status(), 403);
    assert_eq!(download(&s, id, Some(&token), "").status(), 404, "no archive yet");
    // Token as query parameter.
    assert_eq!(download(&s, dep_id, None, &format!("?token={token}")).status(), 200);

    // Artifacts uploaded by one job are downloadable by a later one.
    upload(&s, id, &token, "artifact_type=archive&artifact_format=zip", multipart("artifacts.zip", b"mine", &[]));
    update(&s, id, &token, json!({ "state": "success" }));
    assert_eq!(download(&s, dep_id, Some(&token), "").status(), 401, "a finished job's token is no longer valid");
    let (_, token2) = running_job_with(&s, json!({ "dependencies": [{ "id": id, "name": "test-job" }] }));
    let j2 = s.jobs().into_iter().find(|j| j.token == token2).unwrap();
    assert_eq!(j2.payload["dependencies"][0]["artifacts_file"]["size"], 4);
    assert_eq!(j2.payload["dependencies"][0]["token"], token2.as_str());
    let r = download(&s, id, Some(&token2), "");
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().as_ref(), b"mine");
}

#[test]
fn direct_download_redirects_to_storage() {
    let s = TestServer::start_with(Config { artifacts_direct_download: true, ..Config::default() });
    let (_, token) = running_job(&s);
    let r = download(&s, 1, Some(&token), "?direct_download=true");
    assert_eq!(r.status(), 302);
    let location = header(&r, "location").unwrap();
    assert!(location.starts_with(&format!("{}/__storage/", s.url())));
    let r = client().get(&location).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(&r.bytes().unwrap()[..2], b"PK");
    // Without the parameter the file comes directly.
    assert_eq!(download(&s, 1, Some(&token), "").status(), 200);
}

#[test]
fn the_size_limit_applies_to_the_file_not_the_multipart_body() {
    assert_eq!(Config::default().max_artifact_size, 100 * glr_testserver::MEGABYTE);
    let s = TestServer::start_with(Config { max_artifact_size: 1024, ..Config::default() });
    let (id, token) = running_job(&s);
    let exactly = multipart("a.zip", &[1u8; 1024], &[("expire_in", "1 day")]);
    assert!(exactly.len() > 1024, "the body is larger than the file");
    assert_eq!(upload(&s, id, &token, "", exactly).status(), 201);
    let r = upload(&s, id, &token, "artifact_type=junit&artifact_format=gzip", multipart("j.gz", &[1u8; 1025], &[]));
    assert_eq!(r.status(), 413);
}

#[test]
fn downloads_honour_range_requests() {
    let s = TestServer::start_with(Config { artifacts_direct_download: true, ..Config::default() });
    let (_, token) = running_job(&s);
    let whole = download(&s, 1, Some(&token), "");
    assert_eq!(header(&whole, "accept-ranges").as_deref(), Some("bytes"));
    let whole = whole.bytes().unwrap().to_vec();
    let n = whole.len();
    let ranged =
        |url: String, range: &str| client().get(url).header("JOB-TOKEN", &token).header("Range", range).send().unwrap();
    let api = format!("{}/api/v4/jobs/1/artifacts", s.url());

    let r = ranged(api.clone(), "bytes=0-3");
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-range"), Some(format!("bytes 0-3/{n}")));
    assert_eq!(r.bytes().unwrap().as_ref(), &whole[..4]);
    let r = ranged(api.clone(), "bytes=-5");
    assert_eq!(header(&r, "content-range"), Some(format!("bytes {}-{}/{n}", n - 5, n - 1)));
    assert_eq!(r.bytes().unwrap().as_ref(), &whole[n - 5..]);
    let r = ranged(api.clone(), &format!("bytes={}-", n - 2));
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().unwrap().as_ref(), &whole[n - 2..]);
    let r = ranged(api.clone(), &format!("bytes={n}-"));
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "content-range"), Some(format!("bytes */{n}")));
    let r = ranged(api.clone(), "bytes=0-1,4-5");
    assert_eq!(r.status(), 200, "several ranges: the whole file, as object storage answers");
    assert_eq!(r.bytes().unwrap().len(), n);

    // The object-storage side of a direct download too.
    let r = download(&s, 1, Some(&token), "?direct_download=true");
    let location = header(&r, "location").unwrap();
    let r = ranged(location, "bytes=2-2");
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().unwrap().as_ref(), &whole[2..3]);
}
