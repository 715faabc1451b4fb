//! `/api/v4/runners*`: every status path of register, verify, unregister, managers, reset.

use crate::common::*;
use glr_testserver::{Config, TestServer};
use serde_json::json;

#[test]
fn register_with_registration_token_creates_a_runner() {
    let s = server();
    let r = post(
        &s,
        "/api/v4/runners",
        json!({ "token": s.registration_token(), "description": "my runner", "tag_list": "docker, linux",
                "run_untagged": false, "locked": true, "access_level": "ref_protected",
                "maximum_timeout": 3600, "paused": false, "info": info(&[]) }),
    );
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "content-type").as_deref(), Some("application/json"));
    let v = json_body(r);
    let id = v["id"].as_i64().unwrap();
    let token = v["token"].as_str().unwrap();
    assert!(!token.starts_with("glrt-"), "legacy-registered runners do not get glrt- tokens");
    assert!(v.as_object().unwrap().contains_key("token_expires_at"));
    let runners = s.runners();
    let rec = runners.iter().find(|r| r.id == id).unwrap();
    assert_eq!(rec.tags, vec!["docker", "linux"]);
    assert!(!rec.run_untagged && rec.locked && rec.active);
    assert_eq!(rec.access_level, "ref_protected");
    assert_eq!(rec.maximum_timeout, Some(3600));
    assert_eq!(rec.description.as_deref(), Some("my runner"));
    assert_eq!(rec.name.as_deref(), Some("test-runner"));
}

#[test]
fn register_accepts_trailing_slash_and_array_tags() {
    let s = server();
    let r = post(
        &s,
        "/api/v4/runners/",
        json!({ "token": s.registration_token(), "tag_list": ["a", "b"], "active": false }),
    );
    assert_eq!(r.status(), 201);
    let id = json_body(r)["id"].as_i64().unwrap();
    let rec = s.runners().into_iter().find(|r| r.id == id).unwrap();
    assert_eq!(rec.tags, vec!["a", "b"]);
    assert!(rec.paused, "active: false means paused");
    // The log keeps the path as sent.
    assert!(s.requests().iter().any(|r| r.path == "/api/v4/runners/" && r.status == 201));
}

#[test]
fn register_rejects_what_gitlab_rejects() {
    let s = server();
    let reg = s.registration_token();
    let cases = [
        (json!({}), 400, "token is missing"),
        (json!({ "token": reg, "access_level": "everything" }), 400, "access_level does not have a valid value"),
        (json!({ "token": reg, "locked": "maybe" }), 400, "locked is invalid"),
        (json!({ "token": reg, "maximum_timeout": "soon" }), 400, "maximum_timeout is invalid"),
        (json!({ "token": reg, "active": true, "paused": false }), 400, "mutually exclusive"),
        (json!({ "token": reg, "maximum_timeout": 60 }), 400, "needs to be at least 10 minutes"),
        (json!({ "token": reg, "run_untagged": false }), 400, "can not be empty"),
        (json!({ "token": "GR1348941wrong" }), 403, "403 Forbidden"),
    ];
    for (body, code, text) in cases {
        let r = post(&s, "/api/v4/runners", body.clone());
        assert_eq!(r.status().as_u16(), code, "{body}");
        let t = r.text().unwrap();
        assert!(t.contains(text), "{body} -> {t}");
    }
    let r =
        with_json(client().post(format!("{}/api/v4/runners", s.url())), &json!(null)).body("{not json").send().unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(s.runners().len(), 0);
}

#[test]
fn registration_can_be_switched_off_and_new_tokens_work() {
    let s = server();
    let extra = s.create_registration_token();
    assert_eq!(post(&s, "/api/v4/runners", json!({ "token": extra })).status(), 201);
    s.set_config(|c| c.registration_tokens_enabled = false);
    let r = post(&s, "/api/v4/runners", json!({ "token": extra }));
    assert_eq!(r.status(), 410);
    // A bad token is still a 403 first.
    assert_eq!(post(&s, "/api/v4/runners", json!({ "token": "nope" })).status(), 403);
}

#[test]
fn verify_answers_json_or_legacy_text_and_records_the_manager() {
    let s = server();
    let token = s.create_runner_token();
    assert!(token.starts_with("glrt-"));
    let r = post(
        &s,
        "/api/v4/runners/verify",
        json!({ "token": token, "system_id": "s_aaaaaaaaaaaa", "info": info(&["cancel_gracefully"]) }),
    );
    assert_eq!(r.status(), 200);
    let v = json_body(r);
    assert_eq!(v["token"], token.as_str());
    assert!(v["id"].as_i64().unwrap() > 0);
    let m = &s.runners()[0].managers[0];
    assert_eq!(m.system_id, "s_aaaaaaaaaaaa");
    assert_eq!(m.info["executor"], "custom");
    assert_eq!(m.features["cancel_gracefully"], true);

    // Without system_id GitLab files it under "<legacy>".
    assert_eq!(post(&s, "/api/v4/runners/verify", json!({ "token": token })).status(), 200);
    assert!(s.runners()[0].managers.iter().any(|m| m.system_id == "<legacy>"));

    s.set_config(|c| c.legacy_verify = true);
    let r = post(&s, "/api/v4/runners/verify", json!({ "token": token }));
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").unwrap().starts_with("text/plain"));
    assert_eq!(r.text().unwrap(), "200");

    assert_eq!(post(&s, "/api/v4/runners/verify", json!({ "token": "glrt-wrong" })).status(), 403);
    assert_eq!(post(&s, "/api/v4/runners/verify", json!({})).status(), 400);
    // The RUNNER-TOKEN header alone does not authenticate: GitLab reads only the parameter.
    let r = with_json(client().post(format!("{}/api/v4/runners/verify", s.url())), &json!({}))
        .header("RUNNER-TOKEN", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn unregister_runner_and_manager() {
    let s = server();
    let token = s.create_runner_token();
    assert_eq!(delete(&s, "/api/v4/runners", json!({ "token": "glrt-wrong" })).status(), 403);
    assert_eq!(delete(&s, "/api/v4/runners", json!({})).status(), 400);

    post(&s, "/api/v4/runners/verify", json!({ "token": token, "system_id": "s_111111111111" }));
    post(&s, "/api/v4/runners/verify", json!({ "token": token, "system_id": "s_222222222222" }));
    assert_eq!(s.runners()[0].managers.len(), 2);
    let r = delete(&s, "/api/v4/runners/managers", json!({ "token": token, "system_id": "s_111111111111" }));
    assert_eq!(r.status(), 204);
    assert_eq!(r.text().unwrap(), "");
    assert_eq!(s.runners()[0].managers.len(), 1, "only that manager goes");
    let r = delete(&s, "/api/v4/runners/managers", json!({ "token": token, "system_id": "s_111111111111" }));
    assert_eq!(r.status(), 404);
    assert!(r.text().unwrap().contains("Runner manager not found"));
    assert_eq!(delete(&s, "/api/v4/runners/managers", json!({ "token": token })).status(), 400);
    assert_eq!(
        delete(&s, "/api/v4/runners/managers", json!({ "token": "glrt-x", "system_id": "s_222222222222" })).status(),
        403
    );

    assert_eq!(delete(&s, "/api/v4/runners", json!({ "token": token })).status(), 204);
    assert!(s.runners().is_empty());
    assert_eq!(post(&s, "/api/v4/runners/verify", json!({ "token": token })).status(), 403);
}

#[test]
fn reset_token_replaces_the_old_one() {
    let s = server();
    let token = s.create_runner_token();
    let r = post(&s, "/api/v4/runners/reset_authentication_token", json!({ "token": token }));
    assert_eq!(r.status(), 201);
    let new = json_body(r)["token"].as_str().unwrap().to_string();
    assert!(new.starts_with("glrt-") && new != token);
    assert_eq!(post(&s, "/api/v4/runners/verify", json!({ "token": token })).status(), 403);
    assert_eq!(post(&s, "/api/v4/runners/verify", json!({ "token": new })).status(), 200);
    assert_eq!(post(&s, "/api/v4/runners/reset_authentication_token", json!({ "token": token })).status(), 403);
    assert_eq!(post(&s, "/api/v4/runners/reset_authentication_token", json!({})).status(), 400);
}

#[test]
fn form_encoded_parameters_work_like_json() {
    let s = TestServer::start_with(Config::default());
    let r = client()
        .post(format!("{}/api/v4/runners", s.url()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={}&description=form", s.registration_token()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(s.runners()[0].description.as_deref(), Some("form"));
}

#[test]
fn unknown_paths_and_methods() {
    let s = server();
    let r = client().get(format!("{}/api/v4/nothing", s.url())).send().unwrap();
    assert_eq!(r.status(), 404);
    let r = client().get(format!("{}/api/v4/runners/verify", s.url())).send().unwrap();
    assert_eq!(r.status(), 405);
}
