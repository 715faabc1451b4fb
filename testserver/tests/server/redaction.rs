//! The request log never shows a secret, however many the server holds: redaction is indexed
//! (its cost does not grow with the jobs held), so this checks that the index misses none of
//! them, in every place a client could put one.

use crate::common::*;
use glr_testserver::RequestRecord;
use serde_json::json;

const JOBS: usize = 1000;

fn masked_value(i: usize) -> String {
    format!("mv-{i:04}-hunter2-{}", i * 7919)
}

#[test]
fn a_server_holding_1000_jobs_redacts_every_token_and_masked_variable() {
    let s = server();
    // Runner tokens of both workflows, one of them reset (its old value was valid once).
    let reg = s.registration_token();
    let extra_reg = s.create_registration_token();
    let legacy = json_body(post(&s, "/api/v4/runners", json!({ "token": extra_reg, "info": info(&[]) })))["token"]
        .as_str()
        .unwrap()
        .to_string();
    let glrt = s.create_runner_token();
    let before_reset = s.create_runner_token();
    let r = post(&s, "/api/v4/runners/reset_authentication_token", json!({ "token": before_reset }));
    assert_eq!(r.status(), 201);
    let after_reset = json_body(r)["token"].as_str().unwrap().to_string();
    // Jobs nobody takes (a tag no runner has), each with its own masked variable.
    for i in 0..JOBS {
        let vars = json!({ "variables": [
            { "key": "DEPLOY_KEY", "value": masked_value(i), "public": false, "masked": true }
        ] });
        s.queue_job_with_tags(vars, &["nobody-has-this"]);
    }
    let jobs: Vec<(i64, String)> =
        s.jobs().into_iter().filter(|j| j.tags == ["nobody-has-this"]).map(|j| (j.id, j.token)).collect();
    assert_eq!(jobs.len(), JOBS);
    let runner_secrets = [reg.clone(), extra_reg.clone(), legacy.clone(), glrt.clone(), before_reset, after_reset];

    s.clear_requests();
    let http = client();
    for (i, (id, jt)) in jobs.iter().enumerate() {
        let rt = &runner_secrets[i % runner_secrets.len()];
        let mv = masked_value(i);
        // In the query (by name and not), in headers (token headers and others), in the body
        // (token keys and free text, nested), to a runner-API path that exists and one that does not.
        let path = if i % 2 == 0 { format!("/api/v4/jobs/{id}") } else { "/api/v4/no-such-endpoint".to_string() };
        let body = json!({
            "token": jt,
            "state": "running",
            "info": { "name": format!("runner {rt}"), "config": { "list": [mv, format!("x{jt}y")] } },
        });
        let r = with_json(http.put(format!("{}{path}?token={jt}&note={mv}&other={rt}", s.url())), &body)
            .header("JOB-TOKEN", jt)
            .header("X-Note", format!("{rt} and {mv}"))
            .header("Authorization", format!("Bearer {rt}"))
            .send()
            .unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    let records = s.requests();
    assert_eq!(records.len(), JOBS);
    for (i, (rec, (_, jt))) in records.iter().zip(&jobs).enumerate() {
        let text = format!("{rec:?}");
        for secret in [jt, &masked_value(i), &runner_secrets[i % runner_secrets.len()]] {
            assert!(!text.contains(secret.as_str()), "record {i} shows {secret}: {text}");
        }
        assert_redacted_in_place(rec, i);
    }
    // No token shape anywhere in the log as served over HTTP (the records hold no payloads,
    // which name the prefixes): every occurrence was a known secret.
    let log = client().get(format!("{}/__control/requests", s.url())).send().unwrap().text().unwrap();
    assert!(log.len() > JOBS * 200, "the log was served: {} bytes", log.len());
    for shape in ["glcbt-", "glrt-", "GR1348941", "t1_", "hunter2"] {
        assert!(!log.contains(shape), "{shape} in the request log");
    }
}

fn assert_redacted_in_place(rec: &RequestRecord, i: usize) {
    assert!(rec.path.contains("?token=[REDACTED]&note=[REDACTED]&other=[REDACTED]"), "record {i}: {}", rec.path);
    let header = |name: &str| rec.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(header("job-token"), Some("[REDACTED]"));
    assert_eq!(header("x-note"), Some("[REDACTED] and [REDACTED]"));
    let body = rec.body_json.as_ref().expect("a JSON body");
    assert_eq!(body["token"], "[REDACTED]");
    assert_eq!(body["info"]["name"], "runner [REDACTED]");
    assert_eq!(body["info"]["config"]["list"], json!(["[REDACTED]", "x[REDACTED]y"]));
    assert_eq!(body["state"], "running", "what is no secret stays");
}
