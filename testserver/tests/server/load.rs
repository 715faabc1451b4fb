//! 100 concurrent clients, long polls included: nobody is refused, every job goes to exactly
//! one runner.

use crate::common::*;
use glr_testserver::{Config, TestServer};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 100;
const JOBS: usize = 60;

#[test]
fn hundred_concurrent_long_polling_runners() {
    let s = TestServer::start_with(Config { long_poll_timeout: Duration::from_secs(2), ..Config::default() });
    let tokens: Vec<String> = (0..CLIENTS).map(|_| s.create_runner_token()).collect();
    let http = client();
    let barrier = Barrier::new(CLIENTS + 1);
    let assigned = AtomicUsize::new(0);
    let got: Mutex<Vec<i64>> = Mutex::new(Vec::new());
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = format!("{}/api/v4/jobs/request", s.url());

    std::thread::scope(|sc| {
        for (i, token) in tokens.iter().enumerate() {
            let (http, barrier, assigned, got, errors, url) = (&http, &barrier, &assigned, &got, &errors, &url);
            sc.spawn(move || {
                let send = |last_update: Option<&str>| {
                    let mut body = json!({ "token": token, "system_id": format!("s_{i:012}") });
                    if let Some(lu) = last_update {
                        body["last_update"] = json!(lu);
                    }
                    with_json(http.post(url), &body).send()
                };
                // First contact: learn the queue value (204 + X-GitLab-Last-Update).
                let mut last_update = match send(None) {
                    Ok(r) if r.status() == 204 => header(&r, "x-gitlab-last-update"),
                    Ok(r) => {
                        errors.lock().unwrap().push(format!("first request: {}", r.status()));
                        None
                    }
                    Err(e) => {
                        errors.lock().unwrap().push(format!("first request: {e}"));
                        None
                    }
                };
                barrier.wait();
                while assigned.load(Ordering::SeqCst) < JOBS && Instant::now() < deadline {
                    match send(last_update.as_deref()) {
                        Ok(r) if r.status() == 201 => {
                            let v: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
                            got.lock().unwrap().push(v["id"].as_i64().unwrap());
                            assigned.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) if r.status() == 204 => {
                            if let Some(lu) = header(&r, "x-gitlab-last-update") {
                                last_update = Some(lu);
                            }
                        }
                        Ok(r) => errors.lock().unwrap().push(format!("status {}", r.status())),
                        Err(e) => errors.lock().unwrap().push(format!("request failed: {e}")),
                    }
                }
            });
        }
        barrier.wait();
        // Let every client's long poll be held, then queue the jobs.
        std::thread::sleep(Duration::from_millis(300));
        for _ in 0..JOBS {
            s.queue_job(json!({}));
        }
    });

    let errors = errors.into_inner().unwrap();
    assert!(errors.is_empty(), "{} errors, e.g. {:?}", errors.len(), &errors[..errors.len().min(5)]);
    let got = got.into_inner().unwrap();
    let unique: HashSet<i64> = got.iter().copied().collect();
    assert_eq!(got.len(), JOBS, "every job handed out once");
    assert_eq!(unique.len(), JOBS, "no job handed out twice");
    for id in unique {
        let j = s.job(id).unwrap();
        assert_eq!(j.state, "running");
        assert!(j.runner_id.is_some());
    }
    // Many requests were in flight at once: the held long polls.
    let held =
        s.requests().iter().filter(|r| r.body_json.as_ref().is_some_and(|b| b.get("last_update").is_some())).count();
    assert!(held >= CLIENTS, "only {held} long-poll requests");
}
