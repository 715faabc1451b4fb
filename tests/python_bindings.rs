//! The Python bindings (`bindings/python/gitlab_runner_api`, a ctypes package offering the Python
//! package's API): `bindings/python/tests/test_api.py`, written against the Python package's
//! documented behaviour (registering a runner, getting jobs, executing jobs, persisting jobs) and
//! the documented differences, runs against an in-process test server with the cdylib of this
//! build. Its own checks read the server's control interface; this test then checks that every
//! test ran and passed (none skipped), and, independently, that every job the script finished
//! is stored by the server in the state the script expected.
//!
//! Run alone: `cargo test --test python_bindings` (needs python3, standard library only).
#![cfg(target_os = "linux")]

mod common;

use common::build::cdylib;
use glr_testserver::{Config, TestServer};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(300);
/// The test file has this many tests; fewer ran means some were lost (a class not collected...).
const MIN_TESTS: usize = 49;

#[test]
fn python_bindings_pass_their_tests() {
    let server = TestServer::start_with(Config {
        long_poll_timeout: Duration::from_millis(200),
        trace_update_interval: 1,
        ..Config::default()
    });
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let summary = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("python-bindings-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&summary);

    let mut child = Command::new("python3")
        .arg(repo.join("bindings/python/tests/test_api.py"))
        .env("GLR_TEST_URL", server.url())
        .env("GLR_TEST_REGISTRATION_TOKEN", server.registration_token())
        .env("GLR_TEST_SUMMARY", &summary)
        .env("GITLAB_RUNNER_API_LIB", cdylib())
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTHONPATH")
        .env_remove("GLR_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): it is required (Debian: apt-get install python3)"));
    let readers: Vec<_> =
        [Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stderr.take().unwrap())]
            .into_iter()
            .map(|mut pipe| {
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let _ = pipe.read_to_end(&mut buf);
                    String::from_utf8_lossy(&buf).into_owned()
                })
            })
            .collect();
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut texts = readers.into_iter().map(|h| h.join().expect("reader"));
    let (stdout, stderr) = (texts.next().unwrap(), texts.next().unwrap());
    let status = status.unwrap_or_else(|| panic!("test_api.py did not finish within {TIMEOUT:?}\n{stderr}"));
    assert!(status.success(), "bindings/python/tests/test_api.py failed ({status}):\n{stderr}\n{stdout}");

    // unittest's report (on stderr): every test ran, none was skipped.
    let ran: usize = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Ran ")?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no \"Ran N tests\" line:\n{stderr}"));
    assert!(ran >= MIN_TESTS, "only {ran} tests ran (expected at least {MIN_TESTS}):\n{stderr}");
    assert!(stderr.lines().any(|l| l.trim() == "OK"), "unittest did not report OK:\n{stderr}");
    assert!(!stderr.contains("skipped"), "tests were skipped:\n{stderr}");

    // What the server stored, checked without the script's help.
    let text = std::fs::read_to_string(&summary).unwrap_or_else(|e| panic!("{}: {e}", summary.display()));
    let expected: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).expect("summary JSON");
    assert!(expected.len() >= 14, "the script finished only {} jobs: {text}", expected.len());
    let mut checksums = 0;
    for (id, want) in &expected {
        let id: i64 = id.parse().expect("job id");
        let job = server.job(id).unwrap_or_else(|| panic!("job {id} is not on the server"));
        assert_eq!(Some(job.state.as_str()), want["state"].as_str(), "job {id}");
        if let Some(matches) = want["checksum_matches"].as_bool() {
            if job.state == "success" || job.state == "failed" {
                assert_eq!(job.checksum_matches, Some(matches), "job {id}: final checksum vs. stored trace");
                checksums += 1;
            }
        }
    }
    assert!(checksums >= 10, "only {checksums} final checksums checked: {text}");
    // Every runner the script registered exists, and no job is left half-done.
    assert!(server.runners().len() >= 20, "runners on the server: {}", server.runners().len());
    let _ = std::fs::remove_file(&summary);
}
