//! The shared library as another language sees it: `tests/python/test_ctypes.py` dlopens the
//! built `libgitlab_runner_api.so` with Python's ctypes and runs a whole register → job → log →
//! success → dumps → loads cycle (plus the C contract's error paths) against an in-process
//! glr-testserver. This test then checks what the *server* stored: the job succeeded, its trace
//! holds every line appended through both job handles exactly once, in order, byte-exact (UTF-8
//! included), the final checksum matched, and the runner exists with its tags.
//!
//! Run alone: `cargo test --test python_ctypes` (needs `python3`; Debian: apt-get install python3).
//! The script can also be run by hand against `glr-testserver`, see its docstring.
#![cfg(target_os = "linux")]

mod common;

use common::build::{cdylib, require};
use common::process;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use glr_testserver::{Config, TestServer};
use serde_json::{json, Value};

/// The script must finish well within this (it takes about a second); then it is killed.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// The exact UTF-8 text the script appends (one line of its log); checked byte for byte.
const UTF8_TEXT: &str = "café ✓ 😀";

fn python3() -> PathBuf {
    require("python3", "python3");
    PathBuf::from("python3")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("python").join("test_ctypes.py")
}

struct ScriptRun {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the script with a deadline, capturing both streams.
fn run_script(args: &[String]) -> ScriptRun {
    let mut cmd = Command::new(python3());
    cmd.arg(script()).args(args).env("PYTHONIOENCODING", "utf-8").env("PYTHONDONTWRITEBYTECODE", "1");
    let out = process::run(cmd, "tests/python/test_ctypes.py", SCRIPT_TIMEOUT);
    ScriptRun { success: out.success(), code: out.code, stdout: out.stdout, stderr: out.stderr }
}

/// Byte offset of every occurrence of `needle` in `haystack`.
fn occurrences(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return Vec::new();
    }
    (0..=haystack.len() - needle.len()).filter(|&i| &haystack[i..i + needle.len()] == needle).collect()
}

#[test]
fn python_ctypes_full_cycle() {
    let lib = cdylib();
    let server = TestServer::start_with(Config { long_poll_timeout: Duration::from_millis(200), ..Config::default() });

    let job_name = "python ctypes job";
    let script_lines = ["echo \"one\"", "echo 'zwei ✓'", "make test"];
    let job_id = server.queue_job_with_tags(
        json!({
            "job_info": {"name": job_name},
            "steps": [
                {"name": "script", "script": script_lines, "timeout": 3600, "when": "on_success", "allow_failure": false},
                {"name": "after_script", "script": ["echo bye"], "timeout": 3600, "when": "always", "allow_failure": true}
            ],
            "variables": [{"key": "PYTHON_CTYPES_VAR", "value": "välue ✓", "public": true, "masked": false}]
        }),
        &["python", "ctypes"],
    );

    let args = vec![
        "--lib".to_string(),
        lib.display().to_string(),
        "--url".to_string(),
        server.url(),
        "--registration-token".to_string(),
        server.registration_token(),
        "--job-id".to_string(),
        job_id.to_string(),
    ];
    let run = run_script(&args);
    assert!(
        run.success,
        "tests/python/test_ctypes.py failed (exit {:?}).\n--- stderr ---\n{}\n--- stdout ---\n{}",
        run.code, run.stderr, run.stdout
    );
    let last = run.stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let summary: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the script's last stdout line is not its JSON summary ({e}): {last:?}"));
    eprintln!("{}", run.stderr.trim_end());

    // What the script read through the C API agrees with what was queued.
    assert_eq!(summary["job_id"], json!(job_id), "summary: {summary}");
    assert_eq!(summary["job_name"], json!(job_name));
    assert_eq!(summary["stage"], json!("test"));
    assert_eq!(summary["ref"], json!("main"));
    assert_eq!(summary["script"], json!(script_lines));
    assert_eq!(summary["variables"]["PYTHON_CTYPES_VAR"], json!("välue ✓"));
    assert_eq!(summary["variables"]["CI_JOB_ID"], json!(job_id.to_string()));
    assert!(summary["checks"].as_u64().unwrap_or(0) > 100, "suspiciously few checks ran: {}", summary["checks"]);

    // The job as the server stored it.
    let job = server.job(job_id).expect("the queued job exists");
    let trace = &job.trace;
    let trace_text = String::from_utf8_lossy(trace);
    assert_eq!(job.state, "success", "job state; trace:\n{trace_text}");
    assert_eq!(job.failure_reason, None);
    assert_eq!(job.exit_code, None, "no exit code is sent on success");
    let lines: Vec<String> = summary["lines"]
        .as_array()
        .expect("summary.lines")
        .iter()
        .map(|l| l.as_str().expect("a line is a string").to_string())
        .collect();
    assert!(lines.len() >= 5, "the script appended too few lines: {lines:?}");
    assert!(lines.iter().any(|l| l.contains(UTF8_TEXT)), "no line holds {UTF8_TEXT:?}: {lines:?}");
    let mut previous_end = 0;
    for line in &lines {
        let at = occurrences(trace, line.as_bytes());
        assert_eq!(
            at.len(),
            1,
            "line {line:?} is in the stored trace {} times (expected once); trace:\n{trace_text}",
            at.len()
        );
        assert!(at[0] >= previous_end, "line {line:?} is out of order in the stored trace:\n{trace_text}");
        previous_end = at[0] + line.len();
    }
    let utf8 = occurrences(trace, UTF8_TEXT.as_bytes());
    assert_eq!(utf8.len(), 1, "{UTF8_TEXT:?} ({:x?}) is not byte-exact in the trace: {trace:x?}", UTF8_TEXT.as_bytes());
    // Nothing but those lines: the library's view of its log is what the server stored.
    assert_eq!(trace_text, lines.concat(), "stored trace vs. the lines appended");
    assert_eq!(summary["log"].as_str(), Some(&*trace_text), "glr_job_log vs. the stored trace");
    assert_eq!(
        job.checksum_matches,
        Some(true),
        "final checksum {:?} (bytesize {:?}) vs. the stored trace ({} bytes)",
        job.reported_checksum,
        job.reported_bytesize,
        trace.len()
    );
    assert_eq!(job.reported_bytesize, Some(trace.len() as i64), "final bytesize vs. stored trace");

    // The runner as the server stored it, and the job went to it.
    let runner_id = summary["runner_id"].as_i64().expect("summary.runner_id");
    let runners = server.runners();
    let runner = runners
        .iter()
        .find(|r| r.id == runner_id)
        .unwrap_or_else(|| panic!("runner {runner_id} is not on the server: {runners:?}"));
    let mut tags = runner.tags.clone();
    tags.sort();
    assert_eq!(tags, ["ctypes", "python"], "runner tags on the server");
    assert!(runner.locked, "runner registered locked");
    assert!(runner.run_untagged);
    assert_eq!(runner.description.as_deref(), Some("Python ctypes runner — café"));
    assert_eq!(runner.maximum_timeout, Some(1800));
    assert_eq!(runner.access_level, "not_protected");
    assert_eq!(runner.name.as_deref(), Some("python-ctypes-test"));
    assert_eq!(runner.created_via, "registration_token");
    // One runner only: the rejected registrations (bad token, NULL, invalid UTF-8) created none.
    assert_eq!(runners.len(), 1, "runners on the server: {runners:?}");
    assert_eq!(job.runner_id, Some(runner_id), "the job went to the registered runner");
    assert_eq!(job.system_id.as_deref(), summary["system_id"].as_str(), "system_id of the job's runner manager");
}
