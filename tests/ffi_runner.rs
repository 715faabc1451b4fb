//! The runner functions of the C API against the test server: happy paths and every error.

mod common;

use common::*;
use gitlab_runner_api::ffi::job::{glr_job_free, glr_job_set_success};
use gitlab_runner_api::ffi::options::*;
use gitlab_runner_api::ffi::runner::*;
use gitlab_runner_api::ffi::status::*;
use glr_testserver::{Endpoint, Fault, FaultKind};
use serde_json::{json, Value};
use std::ptr;

fn options_with_everything() -> *mut glr_register_options {
    let mut o = ptr::null_mut();
    ok(unsafe { glr_register_options_new(&mut o) });
    unsafe {
        ok(glr_register_options_set_description(o, c("my runner").as_ptr()));
        ok(glr_register_options_set_maintenance_note(o, c("note").as_ptr()));
        ok(glr_register_options_set_locked(o, 1));
        ok(glr_register_options_set_run_untagged(o, 0));
        ok(glr_register_options_set_active(o, 1));
        ok(glr_register_options_set_maximum_timeout(o, 3600));
        ok(glr_register_options_set_access_level(o, c("ref_protected").as_ptr()));
        ok(glr_register_options_set_name(o, c("myrunner").as_ptr()));
        ok(glr_register_options_set_version(o, c("1.2").as_ptr()));
        ok(glr_register_options_set_revision(o, c("abc").as_ptr()));
        ok(glr_register_options_set_platform(o, c("linux").as_ptr()));
        ok(glr_register_options_set_architecture(o, c("amd64").as_ptr()));
        ok(glr_register_options_set_executor(o, c("custom").as_ptr()));
        ok(glr_register_options_add_tag(o, c("docker").as_ptr()));
        ok(glr_register_options_add_tag(o, c("linux").as_ptr()));
    }
    o
}

#[test]
fn register_sends_every_option_and_the_getters_report_them() {
    let server = server();
    let o = options_with_everything();
    let mut runner = ptr::null_mut();
    let url = c(&format!("{}/", server.url()));
    let token = c(&server.registration_token());
    ok(unsafe { glr_runner_register(url.as_ptr(), token.as_ptr(), o, &mut runner) });
    unsafe { glr_register_options_free(o) };

    let rec = server.runners().into_iter().next().expect("the server has the runner");
    assert_eq!(rec.description.as_deref(), Some("my runner"));
    assert_eq!(rec.tags, ["docker", "linux"]);
    assert!(rec.locked && !rec.run_untagged && rec.active && !rec.paused);
    assert_eq!(rec.access_level, "ref_protected");
    assert_eq!(rec.maximum_timeout, Some(3600));
    assert_eq!(rec.maintenance_note.as_deref(), Some("note"));

    unsafe {
        assert_eq!(glr_runner_id(runner), rec.id);
        assert_eq!(borrowed(glr_runner_token(runner)).as_deref(), Some(rec.token.as_str()));
        assert_eq!(borrowed(glr_runner_api_url(runner)), Some(server.url()), "normalised: no trailing /");
        assert_eq!(borrowed(glr_runner_description(runner)).as_deref(), Some("my runner"));
        assert_eq!(borrowed(glr_runner_name(runner)).as_deref(), Some("myrunner"));
        assert_eq!(borrowed(glr_runner_version(runner)).as_deref(), Some("1.2"));
        assert_eq!(borrowed(glr_runner_revision(runner)).as_deref(), Some("abc"));
        assert_eq!(borrowed(glr_runner_platform(runner)).as_deref(), Some("linux"));
        assert_eq!(borrowed(glr_runner_architecture(runner)).as_deref(), Some("amd64"));
        assert_eq!(borrowed(glr_runner_executor(runner)).as_deref(), Some("custom"));
        assert_eq!(borrowed(glr_runner_access_level(runner)).as_deref(), Some("ref_protected"));
        assert_eq!((glr_runner_locked(runner), glr_runner_active(runner), glr_runner_run_untagged(runner)), (1, 1, 0));
        assert_eq!(glr_runner_maximum_timeout(runner), 3600);
        assert_eq!(glr_runner_tag_count(runner), 2);
        assert_eq!(borrowed(glr_runner_tag(runner, 1)).as_deref(), Some("linux"));
        assert!(glr_runner_tag(runner, 2).is_null());
        expect(gitlab_runner_api::ffi::guard::glr_last_error_code(), GLR_ERR_INVALID_ARGUMENT);
        let sid = borrowed(glr_runner_system_id(runner)).unwrap();
        assert!(sid.len() == 14 && (sid.starts_with("s_") || sid.starts_with("r_")), "{sid}");
        glr_runner_free(runner);
    }
}

#[test]
fn unset_properties_are_null_or_unknown() {
    let server = server();
    let runner = register(&server);
    unsafe {
        assert!(glr_runner_description(runner).is_null());
        assert!(glr_runner_executor(runner).is_null());
        assert_eq!(glr_runner_locked(runner), -1);
        assert_eq!(glr_runner_maximum_timeout(runner), -1);
        assert_eq!(glr_runner_tag_count(runner), 0);
        glr_runner_free(runner);
    }
}

#[test]
fn register_errors() {
    let server = server();
    let url = c(&server.url());
    let good = c(&server.registration_token());
    let mut runner = ptr::null_mut();

    let msg = expect(
        unsafe { glr_runner_register(url.as_ptr(), c("wrong").as_ptr(), ptr::null(), &mut runner) },
        GLR_ERR_AUTH,
    );
    assert!(msg.contains("403"), "{msg}");
    assert!(!msg.contains("wrong"), "no token in messages: {msg}");
    assert!(runner.is_null(), "out untouched on failure");

    server.set_config(|c| c.registration_tokens_enabled = false);
    let msg =
        expect(unsafe { glr_runner_register(url.as_ptr(), good.as_ptr(), ptr::null(), &mut runner) }, GLR_ERR_AUTH);
    assert!(msg.contains("410") && msg.contains("glrt-"), "{msg}");
    server.set_config(|c| c.registration_tokens_enabled = true);

    server.inject_fault(Fault { endpoint: Endpoint::Register, count: 1, kind: FaultKind::Body { code: 400, body: r#"{"message":{"runner_projects.base":["Maximum number of ci registered project runners (3) exceeded"]}}"#.into() } });
    let msg = expect(
        unsafe { glr_runner_register(url.as_ptr(), good.as_ptr(), ptr::null(), &mut runner) },
        GLR_ERR_INVALID_ARGUMENT,
    );
    assert!(msg.contains("Maximum number"), "{msg}");

    server.inject_fault(Fault {
        endpoint: Endpoint::Register,
        count: 5,
        kind: FaultKind::Status { code: 500, retry_after: None },
    });
    let msg =
        expect(unsafe { glr_runner_register(url.as_ptr(), good.as_ptr(), ptr::null(), &mut runner) }, GLR_ERR_HTTP);
    assert!(msg.contains("500") && msg.contains("after 5 attempts"), "{msg}");

    server.inject_fault(Fault {
        endpoint: Endpoint::Register,
        count: 1,
        kind: FaultKind::Body { code: 201, body: "{\"id\": 5, \"tok".into() },
    });
    expect(unsafe { glr_runner_register(url.as_ptr(), good.as_ptr(), ptr::null(), &mut runner) }, GLR_ERR_PARSE);

    // 503 twice then success: retried transparently, honouring Retry-After.
    server.inject_fault(Fault {
        endpoint: Endpoint::Register,
        count: 2,
        kind: FaultKind::Status { code: 503, retry_after: Some(1) },
    });
    ok(unsafe { glr_runner_register(url.as_ptr(), good.as_ptr(), ptr::null(), &mut runner) });
    unsafe { glr_runner_free(runner) };

    let bad_url = c("http://127.0.0.1:1");
    expect(unsafe { glr_runner_register(bad_url.as_ptr(), good.as_ptr(), ptr::null(), &mut runner) }, GLR_ERR_NETWORK);
    expect(
        unsafe { glr_runner_register(c("gitlab.example.com").as_ptr(), good.as_ptr(), ptr::null(), &mut runner) },
        GLR_ERR_INVALID_ARGUMENT,
    );

    // NULL and invalid UTF-8, each argument.
    expect(unsafe { glr_runner_register(ptr::null(), good.as_ptr(), ptr::null(), &mut runner) }, GLR_ERR_NULL_ARGUMENT);
    expect(unsafe { glr_runner_register(url.as_ptr(), ptr::null(), ptr::null(), &mut runner) }, GLR_ERR_NULL_ARGUMENT);
    expect(
        unsafe { glr_runner_register(url.as_ptr(), good.as_ptr(), ptr::null(), ptr::null_mut()) },
        GLR_ERR_NULL_ARGUMENT,
    );
    expect(
        unsafe { glr_runner_register(invalid_utf8().as_ptr(), good.as_ptr(), ptr::null(), &mut runner) },
        GLR_ERR_INVALID_UTF8,
    );
    expect(
        unsafe { glr_runner_register(url.as_ptr(), invalid_utf8().as_ptr(), ptr::null(), &mut runner) },
        GLR_ERR_INVALID_UTF8,
    );
}

#[test]
fn register_options_reject_bad_values() {
    let mut o = ptr::null_mut();
    ok(unsafe { glr_register_options_new(&mut o) });
    unsafe {
        expect(glr_register_options_add_tag(o, c("a,b").as_ptr()), GLR_ERR_INVALID_ARGUMENT);
        expect(glr_register_options_add_tag(o, c("").as_ptr()), GLR_ERR_INVALID_ARGUMENT);
        expect(glr_register_options_add_tag(o, ptr::null()), GLR_ERR_NULL_ARGUMENT);
        expect(glr_register_options_add_tag(o, invalid_utf8().as_ptr()), GLR_ERR_INVALID_UTF8);
        expect(glr_register_options_set_access_level(o, c("everything").as_ptr()), GLR_ERR_INVALID_ARGUMENT);
        expect(glr_register_options_set_locked(o, 2), GLR_ERR_INVALID_ARGUMENT);
        expect(glr_register_options_set_maximum_timeout(o, -5), GLR_ERR_INVALID_ARGUMENT);
        expect(glr_register_options_set_description(ptr::null_mut(), c("x").as_ptr()), GLR_ERR_NULL_ARGUMENT);
        ok(glr_register_options_set_description(o, ptr::null()));
        expect(glr_register_options_new(ptr::null_mut()), GLR_ERR_NULL_ARGUMENT);
        glr_register_options_free(o);
        glr_register_options_free(ptr::null_mut());
    }
}

#[test]
fn glrt_tokens_verify_and_unregister_only_the_manager() {
    let server = server();
    let token = server.create_runner_token();
    let mut runner = ptr::null_mut();
    ok(unsafe { glr_runner_from_token(c(&server.url()).as_ptr(), c(&token).as_ptr(), &mut runner) });
    let rec = server.runners().into_iter().find(|r| r.token == token).unwrap();
    unsafe {
        assert_eq!(glr_runner_id(runner), rec.id);
        let sid = borrowed(glr_runner_system_id(runner)).unwrap();
        assert!(rec.managers.iter().any(|m| m.system_id == sid), "verify registers this runner manager");
        ok(glr_runner_check_auth(runner));
        ok(glr_runner_unregister(runner));
        assert!(server.runners().iter().any(|r| r.token == token), "the runner created in GitLab stays");
        expect(glr_runner_unregister(runner), GLR_ERR_NOT_FOUND);
        glr_runner_free(runner);
    }
    expect(
        unsafe { glr_runner_from_token(c(&server.url()).as_ptr(), c("glrt-nope").as_ptr(), &mut runner) },
        GLR_ERR_AUTH,
    );

    server.set_config(|c| c.legacy_verify = true);
    ok(unsafe { glr_runner_from_token(c(&server.url()).as_ptr(), c(&token).as_ptr(), &mut runner) });
    assert_eq!(unsafe { glr_runner_id(runner) }, 0, "a legacy plain 200 tells no id");
    unsafe { glr_runner_free(runner) };
    expect(unsafe { glr_runner_from_token(ptr::null(), c(&token).as_ptr(), &mut runner) }, GLR_ERR_NULL_ARGUMENT);
}

#[test]
fn check_auth_and_unregister_of_a_registered_runner() {
    let server = server();
    let runner = register(&server);
    unsafe {
        ok(glr_runner_check_auth(runner));
        ok(glr_runner_unregister(runner));
        assert!(server.runners().is_empty());
        expect(glr_runner_check_auth(runner), GLR_ERR_AUTH);
        expect(glr_runner_unregister(runner), GLR_ERR_AUTH);
        expect(glr_runner_check_auth(ptr::null()), GLR_ERR_NULL_ARGUMENT);
        expect(glr_runner_unregister(ptr::null_mut()), GLR_ERR_NULL_ARGUMENT);
        glr_runner_free(runner);
        glr_runner_free(ptr::null_mut());
    }
}

fn job_requests(server: &glr_testserver::TestServer) -> Vec<Value> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/v4/jobs/request"))
        .filter_map(|r| r.body_json)
        .collect()
}

#[test]
fn request_job_long_polls_and_declares_features() {
    let server = server();
    let runner = register(&server);
    ok(unsafe { glr_runner_set_feature(runner, c("refspecs").as_ptr(), 1) });
    expect(unsafe { glr_runner_set_feature(runner, c("Bad Name").as_ptr(), 1) }, GLR_ERR_INVALID_ARGUMENT);
    expect(unsafe { glr_runner_set_feature(runner, c("image").as_ptr(), 7) }, GLR_ERR_INVALID_ARGUMENT);

    let mut job = ptr::null_mut();
    ok(unsafe { glr_runner_request_job(runner, &mut job) });
    assert!(job.is_null(), "no job queued");
    ok(unsafe { glr_runner_request_job(runner, &mut job) });
    assert!(job.is_null());
    let bodies = job_requests(&server);
    assert_eq!(bodies.len(), 2);
    assert!(bodies[0].get("last_update").is_none());
    assert!(bodies[1]["last_update"].is_string(), "the X-GitLab-Last-Update value is sent back: {}", bodies[1]);
    let features = &bodies[0]["info"]["features"];
    assert_eq!(features["refspecs"], true);
    assert_eq!(features["trace_checksum"], true);
    assert_eq!(features["two_phase_job_commit"], true);
    assert_eq!(features["image"], false);
    assert!(bodies[0]["system_id"].is_string());

    let id = server.queue_job(serde_json::json!({}));
    let job = take_job(&server, runner);
    assert_eq!(unsafe { gitlab_runner_api::ffi::job::glr_job_id(job) }, id);
    let rec = server.job(id).unwrap();
    assert_eq!(rec.state, "running", "the job is committed (two-phase commit) right away");
    unsafe { gitlab_runner_api::ffi::job::glr_job_free(job) };
    unsafe { glr_runner_free(runner) };
}

#[test]
fn request_job_errors() {
    let server = server();
    let runner = register(&server);
    let mut job = ptr::null_mut();
    server.inject_fault(Fault {
        endpoint: Endpoint::JobRequest,
        count: 5,
        kind: FaultKind::Status { code: 502, retry_after: None },
    });
    let msg = expect(unsafe { glr_runner_request_job(runner, &mut job) }, GLR_ERR_HTTP);
    assert!(msg.contains("502"), "{msg}");
    server.inject_fault(Fault {
        endpoint: Endpoint::JobRequest,
        count: 1,
        kind: FaultKind::Status { code: 409, retry_after: None },
    });
    ok(unsafe { glr_runner_request_job(runner, &mut job) });
    assert!(job.is_null(), "409 means another runner was faster: no job");
    server.queue_job(serde_json::json!({}));
    server.inject_fault(Fault { endpoint: Endpoint::JobRequest, count: 1, kind: FaultKind::TruncatedBody });
    expect(unsafe { glr_runner_request_job(runner, &mut job) }, GLR_ERR_PARSE);
    assert!(job.is_null());
    expect(unsafe { glr_runner_request_job(runner, ptr::null_mut()) }, GLR_ERR_NULL_ARGUMENT);
    expect(unsafe { glr_runner_request_job(ptr::null_mut(), &mut job) }, GLR_ERR_NULL_ARGUMENT);
    ok(unsafe { glr_runner_unregister(runner) });
    expect(unsafe { glr_runner_request_job(runner, &mut job) }, GLR_ERR_AUTH);
    unsafe { glr_runner_free(runner) };
}

#[test]
fn dumps_loads_dump_load_round_trip_offline() {
    let server = server();
    let o = options_with_everything();
    let mut runner = ptr::null_mut();
    ok(unsafe {
        glr_runner_register(c(&server.url()).as_ptr(), c(&server.registration_token()).as_ptr(), o, &mut runner)
    });
    unsafe { glr_register_options_free(o) };
    ok(unsafe { glr_runner_set_feature(runner, c("image").as_ptr(), 1) });
    let mut s = ptr::null_mut();
    ok(unsafe { glr_runner_dumps(runner, &mut s) });
    let dumped = owned(s);
    let v: Value = serde_json::from_str(&dumped).unwrap();
    assert_eq!(v["format"], "gitlab_runner_api.runner");
    assert_eq!(v["features"]["image"], true);

    drop(server); // loading is offline
    let mut loaded = ptr::null_mut();
    ok(unsafe { glr_runner_loads(c(&dumped).as_ptr(), &mut loaded) });
    unsafe {
        assert_eq!(glr_runner_id(loaded), glr_runner_id(runner));
        assert_eq!(borrowed(glr_runner_token(loaded)), borrowed(glr_runner_token(runner)));
        assert_eq!(
            borrowed(glr_runner_system_id(loaded)),
            borrowed(glr_runner_system_id(runner)),
            "system_id persisted"
        );
        assert_eq!(glr_runner_tag_count(loaded), 2);
        assert_eq!(glr_runner_maximum_timeout(loaded), 3600);
    }

    let dir = std::env::temp_dir().join(format!("glr-runner-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("runner.json");
    let cpath = c(path.to_str().unwrap());
    ok(unsafe { glr_runner_dump(loaded, cpath.as_ptr()) });
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let mut from_file = ptr::null_mut();
    ok(unsafe { glr_runner_load(cpath.as_ptr(), &mut from_file) });
    assert_eq!(unsafe { glr_runner_id(from_file) }, unsafe { glr_runner_id(runner) });

    let missing = c(dir.join("missing.json").to_str().unwrap());
    expect(unsafe { glr_runner_load(missing.as_ptr(), &mut from_file) }, GLR_ERR_IO);
    expect(unsafe { glr_runner_dump(loaded, c("/nonexistent-dir/x.json").as_ptr()) }, GLR_ERR_IO);
    let mut bad = ptr::null_mut();
    for garbage in ["", "{", "[2, \"x\"]", "{\"format\":\"gitlab_runner_api.job\",\"version\":2}", "null"] {
        expect(unsafe { glr_runner_loads(c(garbage).as_ptr(), &mut bad) }, GLR_ERR_PARSE);
        assert!(bad.is_null());
    }
    expect(unsafe { glr_runner_loads(invalid_utf8().as_ptr(), &mut bad) }, GLR_ERR_INVALID_UTF8);
    expect(unsafe { glr_runner_dumps(ptr::null(), &mut s) }, GLR_ERR_NULL_ARGUMENT);
    expect(unsafe { glr_runner_dumps(runner, ptr::null_mut()) }, GLR_ERR_NULL_ARGUMENT);
    unsafe {
        glr_runner_free(runner);
        glr_runner_free(loaded);
        glr_runner_free(from_file);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn python_v1_runner_strings_load_with_the_python_property_values() {
    let v1 = r#"[1, "http://127.0.0.1:36137", 6602, "RUNNERTOKEN", {"info": {"name": "myrunner", "version": "1.2", "revision": "abc", "platform": "linux", "architecture": "amd64", "executor": "custom", "access_level": "ref_protected"}, "description": "desc", "locked": true, "run_untagged": false, "tag_list": "a,b", "maximum_timeout": 3600}]"#;
    let mut r = ptr::null_mut();
    ok(unsafe { glr_runner_loads(c(v1).as_ptr(), &mut r) });
    unsafe {
        assert_eq!(glr_runner_id(r), 6602);
        assert_eq!(borrowed(glr_runner_token(r)).as_deref(), Some("RUNNERTOKEN"));
        assert_eq!(borrowed(glr_runner_api_url(r)).as_deref(), Some("http://127.0.0.1:36137"));
        assert_eq!(borrowed(glr_runner_description(r)).as_deref(), Some("desc"));
        assert_eq!(borrowed(glr_runner_executor(r)).as_deref(), Some("custom"));
        assert_eq!(borrowed(glr_runner_access_level(r)).as_deref(), Some("ref_protected"));
        assert_eq!((glr_runner_locked(r), glr_runner_run_untagged(r)), (1, 0));
        assert_eq!(glr_runner_maximum_timeout(r), 3600);
        assert_eq!(glr_runner_tag_count(r), 2);
        glr_runner_free(r);
    }
}

#[test]
fn each_process_can_be_its_own_runner_manager() {
    let server = server();
    let runner = register(&server);
    let original = borrowed(unsafe { glr_runner_system_id(runner) }).unwrap();
    ok(unsafe { glr_runner_set_system_id(runner, c("r_0123456789ab").as_ptr()) });
    assert_eq!(borrowed(unsafe { glr_runner_system_id(runner) }).as_deref(), Some("r_0123456789ab"));
    let mut job = ptr::null_mut();
    ok(unsafe { glr_runner_request_job(runner, &mut job) });
    assert_eq!(job_requests(&server).last().unwrap()["system_id"], "r_0123456789ab");
    let mut s = ptr::null_mut();
    ok(unsafe { glr_runner_dumps(runner, &mut s) });
    assert_eq!(serde_json::from_str::<Value>(&owned(s)).unwrap()["system_id"], "r_0123456789ab", "persisted");

    ok(unsafe { glr_runner_set_system_id(runner, ptr::null()) });
    let random = borrowed(unsafe { glr_runner_system_id(runner) }).unwrap();
    assert!(random.starts_with("r_") && random != "r_0123456789ab" && random != original, "{random}");
    for bad in ["", "x_0123456789ab", "s_short", "s_0123456789ab!"] {
        expect(unsafe { glr_runner_set_system_id(runner, c(bad).as_ptr()) }, GLR_ERR_INVALID_ARGUMENT);
    }
    expect(unsafe { glr_runner_set_system_id(runner, invalid_utf8().as_ptr()) }, GLR_ERR_INVALID_UTF8);
    expect(unsafe { glr_runner_set_system_id(ptr::null_mut(), ptr::null()) }, GLR_ERR_NULL_ARGUMENT);
    assert_eq!(borrowed(unsafe { glr_runner_system_id(runner) }), Some(random), "a rejected id changes nothing");
    unsafe { glr_runner_free(runner) };
}

/// A thread with a small stack (128 KiB: musl's default, and what koffi gives its async calls)
/// can make calls that open connections: the request's state machine lives on the heap.
#[test]
fn calls_work_on_a_thread_with_a_small_stack() {
    let server = server();
    server.queue_job(json!({}));
    let (url, token) = (c(&server.url()), c(&server.registration_token()));
    let worker = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || {
            let mut runner = ptr::null_mut();
            let st = unsafe { glr_runner_register(url.as_ptr(), token.as_ptr(), ptr::null(), &mut runner) };
            let mut job = ptr::null_mut();
            let st2 = unsafe { glr_runner_request_job(runner, &mut job) };
            let taken = !job.is_null();
            unsafe {
                glr_job_set_success(job, ptr::null());
                glr_job_free(job);
                glr_runner_free(runner);
            }
            (st, st2, taken)
        })
        .unwrap();
    assert_eq!(worker.join().expect("the small-stack thread did not crash"), (GLR_OK, GLR_OK, true));
}
