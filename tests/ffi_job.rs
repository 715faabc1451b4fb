//! The job functions of the C API against the test server: properties, log, finishing,
//! cancellation, persistence across "processes" (handles), and errors.

mod common;

use common::job_dumps as dumps;
use common::*;
use gitlab_runner_api::ffi::job::*;
use gitlab_runner_api::ffi::runner::*;
use gitlab_runner_api::ffi::status::*;
use glr_testserver::{Endpoint, Fault, FaultKind, DEFAULT_MASKED_VALUE};
use serde_json::{json, Value};
use std::ptr;

fn log_of(job: *const glr_job) -> Vec<u8> {
    let (mut p, mut len) = (ptr::null_mut(), 0usize);
    ok(unsafe { glr_job_log(job, &mut p, &mut len) });
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }.to_vec();
    unsafe { gitlab_runner_api::ffi::strings::glr_string_free(p) };
    bytes
}

fn loads(data: &str) -> *mut glr_job {
    let mut j = ptr::null_mut();
    ok(unsafe { glr_job_loads(c(data).as_ptr(), &mut j) });
    j
}

#[test]
fn properties_come_from_the_payload() {
    let t = taken(json!({
        "job_info": {"name": "build docs", "stage": "docs"},
        "steps": [
            {"name": "script", "script": ["echo one", "echo two"]},
            {"name": "after_script", "script": ["echo bye"]},
            {"name": "release", "script": ["release-cli"]}
        ],
        "variables": [{"key": "MY_FILE", "value": "content", "public": false, "masked": false, "file": true}]
    }));
    let j = t.job;
    let payload: Value = t.server.job(t.id).unwrap().payload;
    unsafe {
        assert_eq!(glr_job_id(j), t.id);
        assert_eq!(borrowed(glr_job_token(j)).as_deref(), payload["token"].as_str());
        assert_eq!(borrowed(glr_job_name(j)).as_deref(), Some("build docs"));
        assert_eq!(borrowed(glr_job_stage(j)).as_deref(), Some("docs"));
        assert_eq!(borrowed(glr_job_ref(j)).as_deref(), payload["git_info"]["ref"].as_str());
        assert_eq!(borrowed(glr_job_repo_url(j)).as_deref(), payload["git_info"]["repo_url"].as_str());
        assert_eq!(borrowed(glr_job_commit_sha(j)).as_deref(), payload["git_info"]["sha"].as_str());
        assert_eq!(glr_job_is_branch(j), 1);
        let var = |k: &str| {
            payload["variables"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["key"] == k)
                .map(|v| v["value"].as_str().unwrap().to_string())
        };
        assert_eq!(borrowed(glr_job_commit_message(j)), var("CI_COMMIT_MESSAGE"));
        assert_eq!(borrowed(glr_job_username(j)), var("GITLAB_USER_LOGIN"));
        assert_eq!(borrowed(glr_job_project_url(j)), var("CI_PROJECT_URL"));
        assert_eq!(borrowed(glr_job_project_path(j)), var("CI_PROJECT_PATH"));
        assert_eq!(borrowed(glr_job_project_name(j)), var("CI_PROJECT_NAME"));
        assert_eq!(borrowed(glr_job_job_url(j)), var("CI_JOB_URL"));
        assert_eq!(borrowed(glr_job_pipeline_url(j)), var("CI_PIPELINE_URL"));
        assert_eq!(borrowed(glr_job_pipeline_id(j)), var("CI_PIPELINE_ID"));
        assert!(borrowed(glr_job_job_url(j)).is_some());

        assert_eq!(glr_job_state(j), GLR_JOB_RUNNING);
        assert_eq!(glr_job_script_count(j), 2);
        assert_eq!(borrowed(glr_job_script_line(j, 1)).as_deref(), Some("echo two"));
        assert!(glr_job_script_line(j, 2).is_null());
        assert_eq!(glr_job_after_script_count(j), 1);
        assert_eq!(borrowed(glr_job_after_script_line(j, 0)).as_deref(), Some("echo bye"));

        let n = glr_job_variable_count(j);
        assert_eq!(n, payload["variables"].as_array().unwrap().len());
        let mut saw_masked = false;
        for i in 0..n {
            let key = borrowed(glr_job_variable_key(j, i)).unwrap();
            let flags = glr_job_variable_flags(j, i);
            if key == "MY_FILE" {
                assert_eq!(flags & GLR_VAR_FILE, GLR_VAR_FILE);
                assert_eq!(borrowed(glr_job_variable_value(j, i)).as_deref(), Some("content"));
            }
            if borrowed(glr_job_variable_value(j, i)).as_deref() == Some(DEFAULT_MASKED_VALUE) {
                saw_masked = flags & GLR_VAR_MASKED != 0;
            }
        }
        assert!(saw_masked, "the masked variable carries GLR_VAR_MASKED");
        assert!(glr_job_variable_key(j, n).is_null());
        assert_eq!(borrowed(glr_job_variable(j, c("MY_FILE").as_ptr())).as_deref(), Some("content"));
        assert!(glr_job_variable(j, c("NOT_SENT").as_ptr()).is_null());
        assert_eq!(gitlab_runner_api::ffi::guard::glr_last_error_code(), GLR_OK, "absent is not an error");

        let mut p = ptr::null_mut();
        ok(glr_job_payload(j, &mut p));
        let back: Value = serde_json::from_str(&owned(p)).unwrap();
        assert_eq!(back, payload, "the raw payload is kept verbatim");

        let deps = payload["dependencies"].as_array().map_or(0, Vec::len);
        assert_eq!(glr_job_dependency_count(j), deps);
        if deps > 0 {
            assert_eq!(glr_job_dependency_id(j, 0), payload["dependencies"][0]["id"].as_i64().unwrap());
            assert_eq!(borrowed(glr_job_dependency_name(j, 0)).as_deref(), payload["dependencies"][0]["name"].as_str());
        }
    }
}

#[test]
fn registry_credentials_pick_the_longest_matching_url() {
    let t = taken(json!({"credentials": [
        {"type": "registry", "url": "registry.example.com", "username": "u1", "password": "p1"},
        {"type": "registry", "url": "registry.example.com/group", "username": "u2", "password": "p2"}
    ]}));
    let (mut u, mut p) = (ptr::null_mut(), ptr::null_mut());
    ok(unsafe {
        glr_job_get_registry_credential(t.job, c("registry.example.com/group/img:1").as_ptr(), &mut u, &mut p)
    });
    assert_eq!((owned(u), owned(p)), ("u2".to_string(), "p2".to_string()));
    let (mut u, mut p) = (ptr::null_mut(), ptr::null_mut());
    expect(
        unsafe { glr_job_get_registry_credential(t.job, c("docker.io/alpine").as_ptr(), &mut u, &mut p) },
        GLR_ERR_NOT_FOUND,
    );
    assert!(u.is_null() && p.is_null());
    expect(unsafe { glr_job_get_registry_credential(t.job, ptr::null(), &mut u, &mut p) }, GLR_ERR_NULL_ARGUMENT);
    expect(
        unsafe { glr_job_get_registry_credential(t.job, c("x").as_ptr(), ptr::null_mut(), &mut p) },
        GLR_ERR_NULL_ARGUMENT,
    );
}

#[test]
fn log_reaches_gitlab_byte_exact_and_success_carries_a_matching_checksum() {
    let t = taken(json!({}));
    append(t.job, b"hello\n");
    append(t.job, "caf\u{e9} \u{2713} \u{1F600}\n".as_bytes());
    append(t.job, b"bad \xff byte\n");
    let euro = "\u{20ac}".as_bytes();
    append(t.job, &euro[..1]);
    append(t.job, &euro[1..]);
    append(t.job, b"\n");
    ok(unsafe { glr_job_log_append(t.job, ptr::null(), 0) });
    ok(unsafe { glr_job_log_flush(t.job) });
    let expected = "hello\ncaf\u{e9} \u{2713} \u{1F600}\nbad \u{FFFD} byte\n\u{20ac}\n".as_bytes().to_vec();
    assert_eq!(t.server.job(t.id).unwrap().trace, expected, "flushed log is on GitLab");
    assert_eq!(log_of(t.job), expected);

    // A second MiB-sized burst goes up in several 1 MiB patches.
    let big = vec![b'x'; 2 * 1024 * 1024 + 100];
    append(t.job, &big);
    ok(unsafe { glr_job_set_success(t.job, ptr::null()) });
    let rec = t.server.job(t.id).unwrap();
    assert_eq!(rec.state, "success");
    assert_eq!(rec.trace.len(), expected.len() + big.len());
    assert_eq!(rec.checksum_matches, Some(true));
    assert_eq!(unsafe { glr_job_state(t.job) }, GLR_JOB_SUCCESS);

    expect(unsafe { glr_job_set_success(t.job, ptr::null()) }, GLR_ERR_ALREADY_FINISHED);
    expect(unsafe { glr_job_set_failed(t.job, GLR_FAILURE_SCRIPT, ptr::null()) }, GLR_ERR_ALREADY_FINISHED);
    expect(unsafe { glr_job_log_append(t.job, c("x").as_ptr(), 1) }, GLR_ERR_ALREADY_FINISHED);
    expect(unsafe { glr_job_log_flush(t.job) }, GLR_ERR_ALREADY_FINISHED);
    expect(unsafe { glr_job_auth(t.job) }, GLR_ERR_ALREADY_FINISHED);
    expect(unsafe { glr_job_set_exit_code(t.job, 1) }, GLR_ERR_ALREADY_FINISHED);
}

#[test]
fn failed_reports_reason_and_exit_code() {
    let t = taken(json!({}));
    append(t.job, b"$ make test\nerror\n");
    ok(unsafe { glr_job_set_exit_code(t.job, 3) });
    expect(unsafe { glr_job_set_failed(t.job, 7, ptr::null()) }, GLR_ERR_INVALID_ARGUMENT);
    expect(unsafe { glr_job_set_failed(t.job, -1, ptr::null()) }, GLR_ERR_INVALID_ARGUMENT);
    assert_eq!(t.server.job(t.id).unwrap().state, "running", "a rejected call changes nothing");
    ok(unsafe { glr_job_set_failed(t.job, GLR_FAILURE_SCRIPT, ptr::null()) });
    let rec = t.server.job(t.id).unwrap();
    assert_eq!(rec.state, "failed");
    assert_eq!(rec.failure_reason.as_deref(), Some("script_failure"));
    assert_eq!(rec.exit_code, Some(3));
    assert_eq!(rec.trace, b"$ make test\nerror\n");
    assert_eq!(unsafe { glr_job_state(t.job) }, GLR_JOB_FAILED);
}

#[test]
fn failure_reasons_are_mapped_to_what_the_job_s_gitlab_knows() {
    let t =
        taken(json!({"features": {"failure_reasons": ["unknown_failure", "script_failure", "runner_system_failure"]}}));
    ok(unsafe { glr_job_set_failed(t.job, GLR_FAILURE_RUNNER_CONFIGURATION_ERROR, ptr::null()) });
    let rec = t.server.job(t.id).unwrap();
    assert_eq!(
        rec.reported_failure_reason.as_deref(),
        Some("script_failure"),
        "runner_configuration_error falls back like the official runner"
    );
}

#[test]
fn a_final_update_answered_202_is_repeated_until_applied() {
    let t = taken(json!({}));
    t.server.set_config(|c| c.trace_persist_delays = 2);
    append(t.job, b"line\n");
    ok(unsafe { glr_job_set_success(t.job, ptr::null()) });
    let rec = t.server.job(t.id).unwrap();
    assert_eq!(rec.state, "success");
    assert!(rec.updates >= 4, "commit + two 202s + the applied one: {}", rec.updates);
}

#[test]
fn uploads_survive_server_errors_and_lost_answers_without_duplicates() {
    let t = taken(json!({}));
    t.server.inject_fault(Fault {
        endpoint: Endpoint::Trace,
        count: 2,
        kind: FaultKind::Status { code: 500, retry_after: None },
    });
    append(t.job, b"first\n");
    ok(unsafe { glr_job_log_flush(t.job) });
    t.server.inject_fault(Fault { endpoint: Endpoint::Trace, count: 1, kind: FaultKind::DropAfterHandling });
    append(t.job, b"second\n");
    ok(unsafe { glr_job_log_flush(t.job) });
    t.server.inject_fault(Fault { endpoint: Endpoint::Trace, count: 1, kind: FaultKind::DropConnection });
    append(t.job, b"third\n");
    ok(unsafe { glr_job_log_flush(t.job) });
    t.server.inject_fault(Fault { endpoint: Endpoint::JobUpdate, count: 1, kind: FaultKind::DropAfterHandling });
    ok(unsafe { glr_job_set_success(t.job, ptr::null()) });
    let rec = t.server.job(t.id).unwrap();
    assert_eq!(rec.trace, b"first\nsecond\nthird\n");
    assert_eq!(rec.state, "success");

    // After 5 failed attempts the error is returned and nothing is lost.
    // (Enough faults for the background uploader's attempt and the flush's own five.)
    let t = taken(json!({}));
    t.server.inject_fault(Fault {
        endpoint: Endpoint::Trace,
        count: 10,
        kind: FaultKind::Status { code: 503, retry_after: None },
    });
    append(t.job, b"kept\n");
    let msg = expect(unsafe { glr_job_log_flush(t.job) }, GLR_ERR_HTTP);
    t.server.clear_faults();
    assert!(msg.contains("503") && msg.contains("trace"), "{msg}");
    assert!(!msg.contains(t.server.job(t.id).unwrap().token.as_str()), "no token in messages");
    ok(unsafe { glr_job_set_success(t.job, ptr::null()) });
    assert_eq!(t.server.job(t.id).unwrap().trace, b"kept\n");
}

#[test]
fn graceful_cancel_lets_the_caller_finish() {
    let t = taken(json!({}));
    t.server.cancel_job(t.id, true);
    append(t.job, b"before\n");
    ok(unsafe { glr_job_log_flush(t.job) });
    assert_eq!(unsafe { glr_job_state(t.job) }, GLR_JOB_CANCELING);
    append(t.job, b"after_script output\n");
    ok(unsafe { glr_job_set_failed(t.job, GLR_FAILURE_UNKNOWN, ptr::null()) });
    let rec = t.server.job(t.id).unwrap();
    assert_eq!(rec.state, "canceled");
    assert_eq!(rec.trace, b"before\nafter_script output\n");
    assert_eq!(unsafe { glr_job_state(t.job) }, GLR_JOB_CANCELED);
}

#[test]
fn auth_sees_graceful_and_hard_cancel() {
    let t = taken(json!({}));
    ok(unsafe { glr_job_auth(t.job) });
    assert_eq!(unsafe { glr_job_state(t.job) }, GLR_JOB_RUNNING);
    t.server.cancel_job(t.id, true);
    ok(unsafe { glr_job_auth(t.job) });
    assert_eq!(unsafe { glr_job_state(t.job) }, GLR_JOB_CANCELING);
    expect(unsafe { glr_job_auth(ptr::null_mut()) }, GLR_ERR_NULL_ARGUMENT);

    let t = taken(json!({}));
    t.server.cancel_job(t.id, false);
    expect(unsafe { glr_job_auth(t.job) }, GLR_ERR_JOB_CANCELED);
    assert_eq!(unsafe { glr_job_state(t.job) }, GLR_JOB_CANCELED);
    expect(unsafe { glr_job_log_append(t.job, c("x").as_ptr(), 1) }, GLR_ERR_JOB_CANCELED);
    expect(unsafe { glr_job_set_success(t.job, ptr::null()) }, GLR_ERR_JOB_CANCELED);
}

#[test]
fn hard_cancel_is_seen_by_a_log_upload() {
    let t = taken(json!({}));
    t.server.cancel_job(t.id, false);
    // New text to upload (the background uploader or this flush learns the cancel from it).
    append(t.job, b"working\n");
    expect(unsafe { glr_job_log_flush(t.job) }, GLR_ERR_JOB_CANCELED);
    assert_eq!(unsafe { glr_job_state(t.job) }, GLR_JOB_CANCELED);
}

#[test]
fn a_dumped_job_is_finished_by_another_handle_offline_load() {
    let t = taken(json!({}));
    append(t.job, b"process A\n");
    ok(unsafe { glr_job_log_flush(t.job) });
    append(t.job, b"A, not yet uploaded\n");
    let dumped = dumps(t.job);
    let v: Value = serde_json::from_str(&dumped).unwrap();
    assert_eq!(v["format"], "gitlab_runner_api.job");
    assert_eq!(v["log"]["acknowledged"], 10);

    let b = loads(&dumped);
    unsafe {
        assert_eq!(glr_job_id(b), t.id);
        assert_eq!(glr_job_state(b), GLR_JOB_RUNNING);
    }
    append(b, b"process B\n");
    ok(unsafe { glr_job_set_success(b, ptr::null()) });
    let rec = t.server.job(t.id).unwrap();
    assert_eq!(rec.trace, b"process A\nA, not yet uploaded\nprocess B\n");
    assert_eq!(rec.state, "success");
    assert_eq!(rec.checksum_matches, Some(true));
    unsafe { glr_job_free(b) };
}

#[test]
fn two_processes_loading_the_same_dump_both_keep_their_lines() {
    let t = taken(json!({}));
    append(t.job, b"common\n");
    ok(unsafe { glr_job_log_flush(t.job) });
    let dumped = dumps(t.job);
    let (a, b) = (loads(&dumped), loads(&dumped));
    append(a, b"from A\n");
    ok(unsafe { glr_job_log_flush(a) });
    append(b, b"from B\n");
    ok(unsafe { glr_job_log_flush(b) });
    ok(unsafe { glr_job_set_success(b, ptr::null()) });
    let rec = t.server.job(t.id).unwrap();
    assert_eq!(rec.trace, b"common\nfrom A\nfrom B\n");
    unsafe {
        glr_job_free(a);
        glr_job_free(b);
    }
}

#[test]
fn dump_and_load_files() {
    let t = taken(json!({}));
    append(t.job, b"x\n");
    let dir = std::env::temp_dir().join(format!("glr-job-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("job.json");
    let cpath = c(path.to_str().unwrap());
    ok(unsafe { glr_job_dump(t.job, cpath.as_ptr()) });
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let mut j = ptr::null_mut();
    ok(unsafe { glr_job_load(cpath.as_ptr(), &mut j) });
    assert_eq!(log_of(j), b"x\n");
    ok(unsafe { glr_job_set_success(j, ptr::null()) });
    assert_eq!(t.server.job(t.id).unwrap().trace, b"x\n");
    unsafe { glr_job_free(j) };
    let mut none = ptr::null_mut();
    expect(unsafe { glr_job_load(c(dir.join("nope").to_str().unwrap()).as_ptr(), &mut none) }, GLR_ERR_IO);
    expect(unsafe { glr_job_dump(t.job, c("/nonexistent-dir/j.json").as_ptr()) }, GLR_ERR_IO);
    for garbage in
        ["", "[1]", "{\"format\":\"gitlab_runner_api.runner\",\"version\":2}", "[1, \"x\", {}, \"running\", \"\"]"]
    {
        expect(unsafe { glr_job_loads(c(garbage).as_ptr(), &mut none) }, GLR_ERR_PARSE);
        assert!(none.is_null());
    }
    expect(unsafe { glr_job_loads(invalid_utf8().as_ptr(), &mut none) }, GLR_ERR_INVALID_UTF8);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_python_v1_job_string_loads_and_finishes_against_gitlab() {
    let t = taken(json!({}));
    let rec = t.server.job(t.id).unwrap();
    let runner_token = borrowed(unsafe { glr_runner_token(t.runner) }).unwrap();
    let runner_v1 =
        json!([1, t.server.url(), unsafe { glr_runner_id(t.runner) }, runner_token, {"info": {}}]).to_string();
    let header = "Running with gitlab_runner_api 1.0.4\n";
    let v1 = json!([1, runner_v1, rec.payload, "running", header]).to_string();
    let j = loads(&v1);
    unsafe {
        assert_eq!(glr_job_id(j), t.id);
        assert_eq!(borrowed(glr_job_token(j)), Some(rec.token.clone()));
        assert_eq!(glr_job_state(j), GLR_JOB_RUNNING);
    }
    assert_eq!(log_of(j), header.as_bytes());
    // The Python package believed its whole log uploaded; GitLab holds nothing: resynced, resent.
    append(j, b"more\n");
    ok(unsafe { glr_job_set_success(j, ptr::null()) });
    assert_eq!(t.server.job(t.id).unwrap().trace, format!("{header}more\n").as_bytes());
    unsafe { glr_job_free(j) };
}

#[test]
fn null_arguments_and_handles() {
    unsafe {
        expect(glr_job_log_append(ptr::null_mut(), c("x").as_ptr(), 1), GLR_ERR_NULL_ARGUMENT);
        assert_eq!(glr_job_id(ptr::null()), 0);
        assert!(glr_job_name(ptr::null()).is_null());
        expect(gitlab_runner_api::ffi::guard::glr_last_error_code(), GLR_ERR_NULL_ARGUMENT);
        assert_eq!(glr_job_state(ptr::null()), -1);
        assert_eq!(glr_job_script_count(ptr::null()), 0);
        expect(glr_job_log_flush(ptr::null_mut()), GLR_ERR_NULL_ARGUMENT);
        expect(glr_job_set_success(ptr::null_mut(), ptr::null()), GLR_ERR_NULL_ARGUMENT);
        expect(glr_job_dumps(ptr::null(), &mut ptr::null_mut()), GLR_ERR_NULL_ARGUMENT);
        glr_job_free(ptr::null_mut());
    }
    let t = taken(json!({}));
    expect(unsafe { glr_job_log_append(t.job, ptr::null(), 3) }, GLR_ERR_NULL_ARGUMENT);
    expect(unsafe { glr_job_log(t.job, ptr::null_mut(), ptr::null_mut()) }, GLR_ERR_NULL_ARGUMENT);
    assert!(unsafe { glr_job_variable(t.job, invalid_utf8().as_ptr()) }.is_null());
    expect(gitlab_runner_api::ffi::guard::glr_last_error_code(), GLR_ERR_INVALID_UTF8);
    let mut p = ptr::null_mut();
    ok(unsafe { glr_job_log(t.job, &mut p, ptr::null_mut()) });
    assert_eq!(owned(p), "");
}

#[test]
fn a_job_finished_by_another_process_reports_already_finished() {
    let t = taken(json!({}));
    let dumped = dumps(t.job);
    ok(unsafe { glr_job_set_success(t.job, ptr::null()) });
    let late = loads(&dumped);
    append(late, b"too late\n");
    expect(unsafe { glr_job_auth(late) }, GLR_ERR_ALREADY_FINISHED);
    assert_eq!(unsafe { glr_job_state(late) }, GLR_JOB_SUCCESS);
    expect(unsafe { glr_job_set_success(late, ptr::null()) }, GLR_ERR_ALREADY_FINISHED);
    assert!(!t.server.job(t.id).unwrap().trace.ends_with(b"too late\n"));
    unsafe { glr_job_free(late) };
}
