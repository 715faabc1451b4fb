//! The `glr-testserver` binary: key=value lines on stdout, serving, clean exit on SIGTERM.

use crate::common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn cli_prints_url_tokens_and_jobs_then_serves_until_sigterm() {
    let dir = std::env::temp_dir().join(format!("glr-testserver-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jobs = dir.join("jobs.json");
    std::fs::write(&jobs, r#"[{"job_info": {"name": "from-file"}}, {}]"#).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_glr-testserver"))
        .args(["--listen", "127.0.0.1:0", "--queue", "1", "--long-poll-seconds", "0.2", "--quiet", "--jobs"])
        .arg(&jobs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().unwrap().unwrap();
    let url = next().strip_prefix("url=").unwrap().to_string();
    let reg = next().strip_prefix("registration_token=").unwrap().to_string();
    let runner = next().strip_prefix("runner_token=").unwrap().to_string();
    let job_ids: Vec<i64> = (0..3).map(|_| next().strip_prefix("job=").unwrap().parse().unwrap()).collect();
    assert!(url.starts_with("http://127.0.0.1:"));
    assert!(runner.starts_with("glrt-"));

    let c = client();
    let r = with_json(c.post(format!("{url}/api/v4/runners")), &json!({ "token": reg })).send().unwrap();
    assert_eq!(r.status(), 201);
    let r = with_json(c.post(format!("{url}/api/v4/jobs/request")), &json!({ "token": runner })).send().unwrap();
    assert_eq!(r.status(), 201);
    let p: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(p["id"], job_ids[0]);
    assert_eq!(p["job_info"]["name"], "from-file");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let t = Instant::now();
    let exit = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_rejects_bad_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_glr-testserver")).arg("--frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}

#[test]
fn cli_sets_the_clocks_and_documents_them() {
    let help = Command::new(env!("CARGO_BIN_EXE_glr-testserver")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--stale-job-timeout",
        "--touch-threshold",
        "--ack-window",
        "--job-token-leeway",
        "--job-token-min-lifetime",
        "--runner-token-lifetime",
        "--max-trace-size",
        "--max-artifact-size",
        "--default-artifacts-expire-in",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_glr-testserver"))
        .args(["--quiet", "--stale-job-timeout", "2", "--touch-threshold", "0.5", "--ack-window", "1.5"])
        .args(["--job-token-leeway", "3", "--job-token-min-lifetime", "0", "--runner-token-lifetime", "60"])
        .args(["--max-trace-size", "268435456", "--default-artifacts-expire-in", "2 days"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap().strip_prefix("url=").unwrap().to_string();
    let settings: serde_json::Value =
        serde_json::from_str(&client().get(format!("{url}/__control/settings")).send().unwrap().text().unwrap())
            .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(settings["stale_job_timeout_ms"], 2000);
    assert_eq!(settings["touch_threshold_ms"], 500);
    assert_eq!(settings["ack_window_ms"], 1500);
    assert_eq!(settings["job_token_leeway_ms"], 3000);
    assert_eq!(settings["job_token_min_lifetime_ms"], 0);
    assert_eq!(settings["runner_token_lifetime_ms"], 60_000);
    assert_eq!(settings["max_trace_size"], 268_435_456_u64);
    assert_eq!(settings["default_artifacts_expire_in"], "2 days");
    let bad = Command::new(env!("CARGO_BIN_EXE_glr-testserver")).args(["--ack-window", "-1"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
