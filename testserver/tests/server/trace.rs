//! `PATCH /jobs/:id/trace`.

use crate::common::*;
use glr_testserver::{Config, TestServer, MEGABYTE};
use serde_json::json;

#[test]
fn append_answers_202_with_range_status_and_interval() {
    let s = server();
    let (id, token) = running_job(&s);
    let r = patch_trace(&s, id, &token, Some("0-10"), b"hello world");
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range").as_deref(), Some("0-11"));
    assert_eq!(header(&r, "job-status").as_deref(), Some("running"));
    assert_eq!(header(&r, "x-gitlab-trace-update-interval").as_deref(), Some("3"));
    let r = patch_trace(&s, id, &token, Some("11-12"), b"!\n");
    assert_eq!(header(&r, "range").as_deref(), Some("0-13"));
    assert_eq!(s.job(id).unwrap().trace, b"hello world!\n");
    assert_eq!(s.job(id).unwrap().trace_patches, 2);
    // An empty patch at the right offset stores nothing and tells the size.
    let r = patch_trace(&s, id, &token, Some("13-12"), b"");
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range").as_deref(), Some("0-13"));
    s.set_config(|c| c.trace_update_interval = 60);
    let r = patch_trace(&s, id, &token, Some("13-13"), b"x");
    assert_eq!(header(&r, "x-gitlab-trace-update-interval").as_deref(), Some("60"));
}

#[test]
fn wrong_offsets_get_416_with_the_stored_size() {
    let s = server();
    let (id, token) = running_job(&s);
    patch_trace(&s, id, &token, Some("0-10"), b"hello world");
    for range in ["15-20", "8-20", "5-9/100"] {
        let r = patch_trace(&s, id, &token, Some(range), b"zz");
        assert_eq!(r.status(), 416, "{range}");
        assert_eq!(header(&r, "range").as_deref(), Some("0-11"));
    }
    // GitLab's trap: a stale start whose start + length equals the stored size is a 202 that
    // stores nothing.
    let r = patch_trace(&s, id, &token, Some("6-10"), b"WORLD");
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range").as_deref(), Some("0-11"));
    assert_eq!(s.job(id).unwrap().trace, b"hello world");
    // Only the start counts; a malformed range reads as start 0.
    let r = patch_trace(&s, id, &token, Some("bytes 11-12"), b"!!");
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "range").as_deref(), Some("0-11"));
}

#[test]
fn missing_range_bad_tokens_and_finished_jobs() {
    let s = server();
    let (id, token) = running_job(&s);
    let r = patch_trace(&s, id, &token, None, b"x");
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("Missing header Content-Range"));
    assert_eq!(patch_trace(&s, id, "glcbt-wrong", None, b"x").status(), 403, "auth comes first");
    assert_eq!(patch_trace(&s, 424_242, &token, Some("0-0"), b"x").status(), 403);
    // Token in the query works too.
    let r = client()
        .patch(format!("{}/api/v4/jobs/{id}/trace?token={token}", s.url()))
        .header("Content-Range", "0-0")
        .body("y")
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    update(&s, id, &token, json!({ "state": "success" }));
    let r = patch_trace(&s, id, &token, Some("1-1"), b"z");
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "job-status").as_deref(), Some("success"));
    // Another job's token is not this job's token.
    let (id2, _) = running_job(&s);
    let (_, token3) = running_job(&s);
    let r = patch_trace(&s, id2, &token3, Some("0-0"), b"z");
    assert_eq!(r.status(), 403);
    assert!(header(&r, "job-status").is_none());
}

#[test]
fn size_limit_drops_the_job() {
    let s = TestServer::start_with(Config { max_trace_size: 16, ..Config::default() });
    let (id, token) = running_job(&s);
    assert_eq!(patch_trace(&s, id, &token, Some("0-9"), b"0123456789").status(), 202);
    let r = patch_trace(&s, id, &token, Some("10-19"), b"0123456789");
    assert_eq!(r.status(), 403);
    let j = s.job(id).unwrap();
    assert_eq!(j.state, "failed");
    assert_eq!(j.failure_reason.as_deref(), Some("trace_size_exceeded"));
    assert_eq!(j.trace.len(), 10);
    let r = patch_trace(&s, id, &token, Some("10-10"), b"x");
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "job-status").as_deref(), Some("failed"));
}

#[test]
fn size_limit_compares_like_gitlab_and_defaults_to_100_mb() {
    assert_eq!(Config::default().max_trace_size, 100 * MEGABYTE, "ci_jobs_trace_size_limit: 100");
    // GitLab refuses `size / 1.megabyte >= 1`: one byte short of a megabyte is the most it keeps.
    let s = TestServer::start_with(Config { max_trace_size: MEGABYTE, ..Config::default() });
    let (id, token) = running_job(&s);
    let almost = vec![b'a'; MEGABYTE - 1];
    assert_eq!(patch_trace(&s, id, &token, Some("0-1"), &almost).status(), 202);
    let r = patch_trace(&s, id, &token, Some(&format!("{}-{}", MEGABYTE - 1, MEGABYTE)), b"b");
    assert_eq!(r.status(), 403, "reaching the limit is exceeding it");
    let j = s.job(id).unwrap();
    assert_eq!((j.state.as_str(), j.failure_reason.as_deref()), ("failed", Some("trace_size_exceeded")));
    assert_eq!(j.trace.len(), MEGABYTE - 1);
    // 0 is no limit, as in GitLab.
    let s = TestServer::start_with(Config { max_trace_size: 0, ..Config::default() });
    let (id, token) = running_job(&s);
    assert_eq!(patch_trace(&s, id, &token, Some("0-1"), b"no limit").status(), 202);
}

#[test]
fn job_token_is_hidden_in_the_stored_trace() {
    let s = server();
    let (id, token) = running_job(&s);
    let line = format!("token={token}\n");
    assert_eq!(patch_trace(&s, id, &token, Some("0-1"), line.as_bytes()).status(), 202);
    let stored = s.job(id).unwrap().trace;
    assert_eq!(stored.len(), line.len(), "offsets do not move");
    assert!(!String::from_utf8_lossy(&stored).contains(&token));
}

#[test]
fn binary_and_invalid_utf8_bytes_are_stored_exactly() {
    let s = server();
    let (id, token) = running_job(&s);
    let data: Vec<u8> = (0u8..=255).collect();
    assert_eq!(patch_trace(&s, id, &token, Some("0-255"), &data).status(), 202);
    assert_eq!(s.job(id).unwrap().trace, data);
}
