//! Token lifetimes, shortened: job tokens (pickup + max(min lifetime, timeout) + leeway) and
//! runner tokens (`runner_token_lifetime`, renewed by a reset).

use crate::clocks::clocked;
use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn expires_in(s: &glr_testserver::TestServer, id: i64) -> f64 {
    s.job(id).unwrap().token_expires_in_seconds.expect("set at pickup")
}

#[test]
fn job_token_lifetime_follows_gitlabs_rule() {
    let s = server();
    // GitLab's defaults: max(60 s, timeout) + 5 min.
    let (default_timeout, _) = running_job(&s);
    assert!((expires_in(&s, default_timeout) - (3600.0 + 300.0)).abs() < 5.0);
    let (short, _) = running_job_with(&s, json!({ "runner_info": { "timeout": 30 } }));
    assert!((expires_in(&s, short) - (60.0 + 300.0)).abs() < 5.0, "the 60 s floor");
    let (long, _) = running_job_with(&s, json!({ "runner_info": { "timeout": 7200 } }));
    assert!((expires_in(&s, long) - (7200.0 + 300.0)).abs() < 5.0);
    let queued = s.queue_job(json!({}));
    assert_eq!(s.job(queued).unwrap().token_expires_in_seconds, None, "no token is issued before pickup");
}

#[test]
fn an_expired_job_token_is_refused_and_fails_the_job_on_update_and_trace() {
    let s = clocked(|c| {
        c.job_token_min_lifetime = Duration::ZERO;
        c.job_token_leeway = Duration::from_millis(500);
    });
    let one_second = json!({ "runner_info": { "timeout": 1 } });
    let (traced, t_token) = running_job_with(&s, one_second.clone());
    let (updated, u_token) = running_job_with(&s, one_second.clone());
    let (uploading, up_token) = running_job_with(&s, one_second);
    assert_eq!(patch_trace(&s, traced, &t_token, Some("0-1"), b"ok").status(), 202);
    std::thread::sleep(Duration::from_millis(1700));

    let expired = |r: reqwest::blocking::Response, job_status: &str| {
        assert_eq!(r.status(), 403);
        assert_eq!(header(&r, "job-status").as_deref(), Some(job_status));
        assert_eq!(json_body(r), json!({ "message": "403 Forbidden - Job token has expired" }));
    };
    expired(patch_trace(&s, traced, &t_token, Some("2-3"), b"no"), "failed");
    expired(update(&s, updated, &u_token, json!({ "state": "success" })), "failed");
    for id in [traced, updated] {
        let j = s.job(id).unwrap();
        assert_eq!((j.state.as_str(), j.failure_reason.as_deref()), ("failed", Some("job_token_expired")));
    }
    assert_eq!(s.job(traced).unwrap().trace, b"ok");

    // Artifact uploads refuse the token but do not drop the job (no fail_on_expired_token).
    let body = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n\r\nPK\r\n--b--\r\n";
    let r = client()
        .post(format!("{}/api/v4/jobs/{uploading}/artifacts", s.url()))
        .header("JOB-TOKEN", &up_token)
        .header("Content-Type", "multipart/form-data; boundary=b")
        .body(body)
        .send()
        .unwrap();
    expired(r, "running");
    assert_eq!(s.job(uploading).unwrap().state, "running");
    // Downloads authenticate through GitLab's generic job-token path: 401.
    let dep = s.job(uploading).unwrap().payload["dependencies"][0]["id"].as_i64().unwrap();
    let r =
        client().get(format!("{}/api/v4/jobs/{dep}/artifacts", s.url())).header("JOB-TOKEN", &up_token).send().unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn the_min_lifetime_wins_over_a_shorter_timeout() {
    let s = clocked(|c| {
        c.job_token_min_lifetime = Duration::from_millis(2500);
        c.job_token_leeway = Duration::from_millis(100);
    });
    let (id, token) = running_job_with(&s, json!({ "runner_info": { "timeout": 1 } }));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(patch_trace(&s, id, &token, Some("0-1"), b"ok").status(), 202, "timeout + leeway is not the rule");
}

/// `2024-05-01T12:34:56.789Z`: ISO 8601, UTC, milliseconds, as GitLab's API renders times.
fn is_gitlab_time(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    let template = "dddd-dd-ddTdd:dd:dd.dddZ";
    s.len() == template.len()
        && s.chars().zip(template.chars()).all(|(c, t)| if t == 'd' { c.is_ascii_digit() } else { c == t })
}

#[test]
fn runner_tokens_do_not_expire_by_default() {
    let s = server();
    let r = post(&s, "/api/v4/runners", json!({ "token": s.registration_token() }));
    let reg = json_body(r);
    assert_eq!(reg["token_expires_at"], Value::Null);
    let r = post(&s, "/api/v4/runners/reset_authentication_token", json!({ "token": reg["token"] }));
    let reset = json_body(r);
    assert!(reset.get("token_expires_at").is_none(), "only expirable tokens expose it: {reset}");
    assert_eq!(s.runners()[0].token_expires_at, None);
}

#[test]
fn runner_tokens_expire_and_a_reset_renews_them() {
    let s = clocked(|c| c.runner_token_lifetime = Some(Duration::from_millis(1500)));
    let reg = json_body(post(&s, "/api/v4/runners", json!({ "token": s.registration_token() })));
    assert!(is_gitlab_time(&reg["token_expires_at"]), "{reg}");
    let token = reg["token"].as_str().unwrap().to_string();
    let verified = json_body(post(&s, "/api/v4/runners/verify", json!({ "token": token })));
    assert_eq!(verified["token_expires_at"], reg["token_expires_at"]);

    std::thread::sleep(Duration::from_millis(800));
    let r = post(&s, "/api/v4/runners/reset_authentication_token", json!({ "token": token }));
    assert_eq!(r.status(), 201);
    let reset = json_body(r);
    let new = reset["token"].as_str().unwrap().to_string();
    assert_ne!(new, token);
    assert!(is_gitlab_time(&reset["token_expires_at"]), "{reset}");
    assert!(reset["token_expires_at"].as_str() > reg["token_expires_at"].as_str(), "a new lifetime from now");
    assert_eq!(
        post(&s, "/api/v4/runners/verify", json!({ "token": token })).status(),
        403,
        "old token invalid at once"
    );
    let rec = &s.runners()[0];
    assert_eq!((rec.token.as_str(), rec.token_resets), (new.as_str(), 1));
    assert_eq!(rec.token_expires_at.as_deref(), reset["token_expires_at"].as_str());

    // 1.1 s after the reset the new token is still good (the old lifetime would have ended).
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(post(&s, "/api/v4/runners/verify", json!({ "token": new })).status(), 200);
    std::thread::sleep(Duration::from_millis(600));
    let refused = [
        post(&s, "/api/v4/runners/verify", json!({ "token": new })).status(),
        post(&s, "/api/v4/jobs/request", json!({ "token": new })).status(),
        post(&s, "/api/v4/runners/reset_authentication_token", json!({ "token": new })).status(),
        delete(&s, "/api/v4/runners/managers", json!({ "token": new, "system_id": "<legacy>" })).status(),
        delete(&s, "/api/v4/runners", json!({ "token": new })).status(),
    ];
    assert_eq!(refused.map(|st| st.as_u16()), [403; 5]);
    assert_eq!(s.runners()[0].token_resets, 1);

    // Runners created "in the UI" get the lifetime too.
    let created = json_body(post(&s, "/__control/runners", json!({})));
    assert!(is_gitlab_time(&created["token_expires_at"]), "{created}");
}
