//! `POST /jobs/request` and `PUT /jobs/:id`.

use crate::common::*;
use glr_testserver::{Config, TestServer};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn var<'a>(p: &'a Value, key: &str) -> &'a Value {
    p["variables"].as_array().unwrap().iter().find(|v| v["key"] == key).unwrap_or_else(|| panic!("no {key}"))
}

#[test]
fn request_gives_a_complete_consistent_payload() {
    let s = server();
    let token = s.create_runner_token();
    let id = s.queue_job(json!({ "job_info": { "name": "unit tests" } }));
    let (status, p, headers) = request_job(&s, &token, json!({}));
    assert_eq!(status, 201);
    assert!(find(&headers, "x-gitlab-last-update").is_none(), "a job answer has no last-update header");
    assert_eq!(find(&headers, "content-type"), Some("application/json"));
    for key in [
        "id",
        "token",
        "allow_git_fetch",
        "job_info",
        "git_info",
        "runner_info",
        "variables",
        "steps",
        "image",
        "services",
        "artifacts",
        "cache",
        "credentials",
        "dependencies",
        "features",
    ] {
        assert!(p.get(key).is_some(), "payload lacks {key}");
    }
    assert_eq!(p["id"], id);
    let job_token = p["token"].as_str().unwrap();
    assert_eq!(s.job(id).unwrap().token, job_token);
    assert_eq!(p["job_info"]["id"], id);
    assert_eq!(p["job_info"]["name"], "unit tests");
    assert!(p["job_info"]["time_in_queue_seconds"].is_number());
    assert_eq!(p["job_info"]["project_jobs_running_on_instance_runners_count"], "+Inf");
    for key in ["repo_url", "ref", "sha", "before_sha", "ref_type", "refspecs", "depth"] {
        assert!(p["git_info"].get(key).is_some(), "git_info lacks {key}");
    }
    assert!(p["git_info"]["repo_url"].as_str().unwrap().contains(&format!("gitlab-ci-token:{job_token}@127.0.0.1")));
    assert_eq!(p["runner_info"]["timeout"], 3600);
    assert!(p["runner_info"].as_object().unwrap().contains_key("runner_session_url"));
    let url = s.url();
    assert_eq!(var(&p, "CI_JOB_TOKEN")["value"], job_token);
    assert_eq!(var(&p, "CI_JOB_TOKEN")["masked"], true);
    assert_eq!(var(&p, "CI_JOB_ID")["value"], id.to_string());
    assert_eq!(var(&p, "CI_JOB_NAME")["value"], "unit tests");
    assert_eq!(var(&p, "CI_PROJECT_URL")["value"], format!("{url}/group/test-project"));
    assert_eq!(var(&p, "CI_JOB_URL")["value"], format!("{url}/group/test-project/-/jobs/{id}"));
    let pipeline = p["job_info"]["pipeline_id"].to_string();
    assert_eq!(var(&p, "CI_PIPELINE_ID")["value"], pipeline);
    assert_eq!(var(&p, "CI_PIPELINE_URL")["value"], format!("{url}/group/test-project/-/pipelines/{pipeline}"));
    assert_eq!(var(&p, "CI_COMMIT_SHA")["value"], p["git_info"]["sha"]);
    assert!(var(&p, "CI_COMMIT_MESSAGE")["value"].as_str().unwrap().contains('\n'));
    assert_eq!(var(&p, "GITLAB_USER_LOGIN")["value"], "test.user");
    assert_eq!(var(&p, "CI_RUNNER_ID")["value"], s.runners()[0].id.to_string());
    assert_eq!(var(&p, "DEPLOY_CONFIG")["file"], true);
    assert_eq!(var(&p, "RAW_VALUE")["raw"], true);
    assert_eq!(var(&p, "SECRET_PASSWORD")["masked"], true);
    assert!(var(&p, "GREETING").get("file").is_none(), "file/raw omitted when false");
    let steps = p["steps"].as_array().unwrap();
    assert_eq!(steps[0]["name"], "script");
    assert_eq!(steps[1]["name"], "after_script");
    assert_eq!(p["credentials"][0]["type"], "registry");
    assert_eq!(p["credentials"][0]["password"], job_token);
    assert_eq!(p["dependencies"][0]["token"], job_token);
    assert!(p["dependencies"][0]["artifacts_file"]["size"].as_u64().unwrap() > 0);
    let reasons = p["features"]["failure_reasons"].as_array().unwrap();
    assert!(reasons.iter().any(|r| r == "script_failure") && reasons.iter().any(|r| r == "runner_interrupted"));
    assert!(p["features"]["token_mask_prefixes"].as_array().unwrap().iter().any(|x| x == "glpat-"));
    let job = s.job(id).unwrap();
    assert_eq!(job.state, "running");
    assert_eq!(job.runner_id, Some(s.runners()[0].id));
    assert_eq!(job.system_id.as_deref(), Some("s_0123456789ab"));
}

#[test]
fn no_job_answers_204_with_last_update_and_errors() {
    let s = TestServer::start_with(Config { long_poll_timeout: Duration::ZERO, ..Config::default() });
    let token = s.create_runner_token();
    let (status, _, headers) = request_job(&s, &token, json!({}));
    assert_eq!(status, 204);
    let lu = find(&headers, "x-gitlab-last-update").expect("204 carries X-GitLab-Last-Update").to_string();
    // Without Workhorse long polling the same value is answered at once with the same header.
    let (status, _, headers) = request_job(&s, &token, json!({ "last_update": lu }));
    assert_eq!(status, 204);
    assert_eq!(find(&headers, "x-gitlab-last-update"), Some(lu.as_str()));
    assert_eq!(post(&s, "/api/v4/jobs/request", json!({ "info": info(&[]) })).status(), 400);
    assert_eq!(post(&s, "/api/v4/jobs/request", json!({ "token": "glrt-wrong" })).status(), 403);
    // A paused runner gets 204 + header even with jobs queued.
    let (_, paused) = s.create_runner(glr_testserver::RunnerOptions { paused: true, ..Default::default() });
    s.queue_job(json!({}));
    let (status, _, headers) = request_job(&s, &paused, json!({}));
    assert_eq!(status, 204);
    assert!(find(&headers, "x-gitlab-last-update").is_some());
    // A new job changes the value, so a stale last_update gets the job.
    let (status, _, _) = request_job(&s, &token, json!({ "last_update": lu }));
    assert_eq!(status, 201);
}

#[test]
fn long_poll_holds_then_answers_204_without_header() {
    let s = TestServer::start_with(Config { long_poll_timeout: Duration::from_millis(400), ..Config::default() });
    let token = s.create_runner_token();
    let (_, _, headers) = request_job(&s, &token, json!({}));
    let lu = find(&headers, "x-gitlab-last-update").unwrap().to_string();
    let t = Instant::now();
    let (status, _, headers) = request_job(&s, &token, json!({ "last_update": lu }));
    let held = t.elapsed();
    assert_eq!(status, 204);
    assert!(held >= Duration::from_millis(350), "held only {held:?}");
    assert!(find(&headers, "x-gitlab-last-update").is_none());
    assert_eq!(find(&headers, "gitlab-ci-builds-polling"), Some("yes"));
}

#[test]
fn long_poll_answers_promptly_when_a_job_is_queued() {
    let s = TestServer::start_with(Config { long_poll_timeout: Duration::from_secs(10), ..Config::default() });
    let token = s.create_runner_token();
    let (_, _, headers) = request_job(&s, &token, json!({}));
    let lu = find(&headers, "x-gitlab-last-update").unwrap().to_string();
    let t = Instant::now();
    let (status, p) = std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            let (st, p, _) = request_job(&s, &token, json!({ "last_update": lu }));
            (st, p)
        });
        std::thread::sleep(Duration::from_millis(200));
        let id = s.queue_job(json!({}));
        let (st, p) = h.join().unwrap();
        assert_eq!(p["id"], id);
        (st, p)
    });
    assert_eq!(status, 201, "{p}");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn tags_protected_refs_and_timeouts_decide_who_gets_a_job() {
    let s = server();
    let (_, untagged) = s.create_runner(glr_testserver::RunnerOptions::default());
    let (_, docker) = s.create_runner(glr_testserver::RunnerOptions {
        tags: vec!["docker".into()],
        run_untagged: false,
        maximum_timeout: Some(1800),
        ..Default::default()
    });
    let (_, protected_only) =
        s.create_runner(glr_testserver::RunnerOptions { access_level: "ref_protected".into(), ..Default::default() });
    let tagged = s.queue_job_with_tags(json!({}), &["docker"]);
    assert_eq!(request_job(&s, &untagged, json!({})).0, 204, "untagged runner cannot take a tagged job");
    let (st, p, _) = request_job(&s, &docker, json!({}));
    assert_eq!(st, 201);
    assert_eq!(p["id"], tagged);
    assert_eq!(p["runner_info"]["timeout"], 1800, "capped by the runner's maximum_timeout");
    s.queue_job(json!({}));
    assert_eq!(request_job(&s, &docker, json!({})).0, 204, "run_untagged=false");
    s.queue_job(json!({ "git_info": { "protected": false } }));
    let (st, p, _) = request_job(&s, &protected_only, json!({}));
    assert_eq!(st, 201, "the first (protected) untagged job");
    assert_eq!(p["git_info"]["protected"], true);
    assert_eq!(request_job(&s, &protected_only, json!({})).0, 204, "unprotected ref");
    assert_eq!(request_job(&s, &untagged, json!({})).0, 201);
}

#[test]
fn update_transitions_and_answers() {
    let s = server();
    let (id, token) = running_job(&s);
    let r = update(&s, id, &token, json!({ "state": "running", "output": {} }));
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "job-status").as_deref(), Some("running"));
    assert!(header(&r, "x-gitlab-trace-update-interval").is_none());
    assert_eq!(r.text().unwrap(), "200");

    // token must be a parameter; the header alone is not enough for PUT.
    let r = with_json(client().put(format!("{}/api/v4/jobs/{id}", s.url())), &json!({ "state": "running" }))
        .header("JOB-TOKEN", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(update(&s, id, "glcbt-wrong", json!({ "state": "running" })).status(), 403);
    assert_eq!(update(&s, 999_999, &token, json!({ "state": "running" })).status(), 403);
    assert_eq!(update(&s, id, &token, json!({ "state": "bogus" })).status(), 400);
    assert_eq!(update(&s, id, &token, json!({})).status(), 400, "no state is a 400 in current GitLab");
    assert_eq!(update(&s, id, &token, json!({ "state": "pending" })).status(), 400, "pending outside two-phase commit");
    assert_eq!(update(&s, id, &token, json!({ "exit_code": "x", "state": "failed" })).status(), 400);

    let r = update(&s, id, &token, json!({ "state": "failed", "failure_reason": "script_failure", "exit_code": 42 }));
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "job-status").as_deref(), Some("failed"));
    let j = s.job(id).unwrap();
    assert_eq!(
        (j.state.as_str(), j.failure_reason.as_deref(), j.exit_code),
        ("failed", Some("script_failure"), Some(42))
    );

    // Once finished: 403 with Job-Status, the "already done as you asked" answer.
    let r = update(&s, id, &token, json!({ "state": "failed", "failure_reason": "script_failure" }));
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "job-status").as_deref(), Some("failed"));
    assert!(r.text().unwrap().contains("Job is not processing on runner"));
    assert_eq!(s.job(id).unwrap().updates, 5, "authenticated PUTs");
}

#[test]
fn success_unknown_reasons_and_checksums() {
    let s = server();
    let (id, token) = running_job(&s);
    let log = b"hello\nworld\n";
    assert_eq!(patch_trace(&s, id, &token, Some("0-11"), log).status(), 202);
    let r = update(
        &s,
        id,
        &token,
        json!({ "state": "success", "checksum": crc(log), "output": { "checksum": crc(log), "bytesize": 12 } }),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "job-status").as_deref(), Some("success"));
    let j = s.job(id).unwrap();
    assert_eq!(j.state, "success");
    assert_eq!(j.checksum_matches, Some(true));
    assert_eq!(j.reported_bytesize, Some(12));
    assert_eq!(j.trace, log);

    let (id, token) = running_job(&s);
    patch_trace(&s, id, &token, Some("0-2"), b"abc");
    let r = update(
        &s,
        id,
        &token,
        json!({ "state": "failed", "failure_reason": "what_is_this", "exit_code": 3, "output": { "checksum": "crc32:00000000", "bytesize": 3 } }),
    );
    assert_eq!(r.status(), 200);
    let j = s.job(id).unwrap();
    assert_eq!(j.failure_reason.as_deref(), Some("unknown_failure"));
    assert_eq!(j.reported_failure_reason.as_deref(), Some("what_is_this"));
    assert_eq!(j.checksum_matches, Some(false));
    assert_eq!(j.exit_code, Some(3));

    let (id, token) = running_job(&s);
    update(&s, id, &token, json!({ "state": "failed" }));
    assert_eq!(s.job(id).unwrap().failure_reason.as_deref(), Some("unknown_failure"), "missing reason");
}

#[test]
fn final_update_gets_202_while_the_trace_is_persisting() {
    let s = TestServer::start_with(Config { trace_persist_delays: 2, ..Config::default() });
    let (id, token) = running_job(&s);
    let log = b"some log\n";
    patch_trace(&s, id, &token, Some("0-8"), log);
    let body = json!({ "state": "success", "output": { "checksum": crc(log), "bytesize": log.len() } });
    for _ in 0..2 {
        let r = update(&s, id, &token, body.clone());
        assert_eq!(r.status(), 202);
        assert_eq!(header(&r, "job-status").as_deref(), Some("running"));
        let interval: u64 = header(&r, "x-gitlab-trace-update-interval").unwrap().parse().unwrap();
        assert!((1..=64).contains(&interval));
        assert_eq!(s.job(id).unwrap().state, "running");
    }
    let r = update(&s, id, &token, body);
    assert_eq!(r.status(), 200);
    assert_eq!(s.job(id).unwrap().state, "success");
    assert_eq!(s.job(id).unwrap().updates, 3);

    // Without a checksum GitLab applies the state at once.
    let (id, token) = running_job(&s);
    patch_trace(&s, id, &token, Some("0-8"), log);
    assert_eq!(update(&s, id, &token, json!({ "state": "success" })).status(), 200);
}

#[test]
fn two_phase_commit_keeps_the_job_pending_until_running() {
    let s = server();
    let runner = s.create_runner_token();
    let other = s.create_runner_token();
    let id = s.queue_job(json!({}));
    let two_phase = json!({ "info": info(&["two_phase_job_commit", "cancel_gracefully"]) });
    let (st, p, _) = request_job(&s, &runner, two_phase.clone());
    assert_eq!(st, 201);
    let token = p["token"].as_str().unwrap().to_string();
    assert_eq!(s.job(id).unwrap().state, "pending");
    assert_eq!(request_job(&s, &other, json!({})).0, 204, "assigned jobs go to nobody else");
    let r = patch_trace(&s, id, &token, Some("0-1"), b"hi");
    assert_eq!(r.status(), 403, "no trace before the job is committed");
    assert_eq!(header(&r, "job-status").as_deref(), Some("pending"));
    assert_eq!(update(&s, id, &token, json!({ "state": "pending" })).status(), 200, "keep-alive");
    assert_eq!(update(&s, id, &token, json!({ "state": "success" })).status(), 400);
    let r = update(&s, id, &token, json!({ "state": "running" }));
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "job-status").as_deref(), Some("running"));
    assert_eq!(s.job(id).unwrap().state, "running");
    assert_eq!(patch_trace(&s, id, &token, Some("0-1"), b"hi").status(), 202);
    assert_eq!(update(&s, id, &token, json!({ "state": "pending" })).status(), 400, "no longer waiting");
}

#[test]
fn cancel_graceful_and_hard() {
    let s = server();
    let (id, token) = running_job(&s); // this runner advertises cancel_gracefully
    s.cancel_job(id, true);
    assert_eq!(s.job(id).unwrap().state, "canceling");
    let r = update(&s, id, &token, json!({ "state": "running" }));
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "job-status").as_deref(), Some("canceling"));
    let r = patch_trace(&s, id, &token, Some("0-5"), b"after\n");
    assert_eq!(r.status(), 202, "after_script output is still accepted while canceling");
    assert_eq!(header(&r, "job-status").as_deref(), Some("canceling"));
    let r = update(&s, id, &token, json!({ "state": "failed", "failure_reason": "job_canceled" }));
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "job-status").as_deref(), Some("canceled"));
    assert_eq!(s.job(id).unwrap().state, "canceled");

    let (id, token) = running_job(&s);
    s.cancel_job(id, false);
    let r = update(&s, id, &token, json!({ "state": "running" }));
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "job-status").as_deref(), Some("canceled"));
    let r = patch_trace(&s, id, &token, Some("0-1"), b"xy");
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "job-status").as_deref(), Some("canceled"));

    // A runner manager that did not advertise cancel_gracefully gets a hard cancel.
    let plain = s.create_runner_token();
    let id = s.queue_job(json!({}));
    let (st, _, _) = request_job(&s, &plain, json!({ "info": info(&[]) }));
    assert_eq!(st, 201);
    s.cancel_job(id, true);
    assert_eq!(s.job(id).unwrap().state, "canceled");

    let pending = s.queue_job(json!({}));
    s.cancel_job(pending, true);
    assert_eq!(s.job(pending).unwrap().state, "canceled");
    assert_eq!(request_job(&s, &plain, json!({})).0, 204, "canceled jobs are not handed out");
}
