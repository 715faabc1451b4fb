//! The Go binding (`bindings/go`, cgo and the standard library only): its `go test` suite runs
//! against an in-process test server with the cdylib and the header of this build — the quick
//! start, cancels learned through `Job.Canceled()` without callbacks (also with a 503 on the
//! trace upload and diagnostics at debug level), 16 goroutines reading only their own error
//! messages, `RequestJob(ctx)` ending promptly when its context is cancelled during a 30 s long
//! poll, a hand-over continued by `LoadJob`, and `Shutdown`. This test checks that every Go test
//! ran and passed (none skipped), that the sources are gofmt-clean, and, independently, that
//! every job the suite finished is stored by the server in the state the suite expected.
//!
//! `go` runs offline and leaves nothing outside target/: GOCACHE and GOPATH are under cargo's
//! scratch directory, GOPROXY=off, GOTOOLCHAIN=local, no GOFLAGS or go env file of the user's.
//!
//! Run alone: `cargo test --test go_bindings -- --nocapture` (shows the Go output, with the
//! figure of wrong messages the thread-local error function gives). Needs `go` (Debian:
//! golang-go; scripts/check-tools.sh installs it).
#![cfg(target_os = "linux")]

mod common;

use common::build::{cdylib, header_dir, link_soname, manifest_dir, scratch_dir};
use common::process::run;
use glr_testserver::{Config, TestServer};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `go test`'s own limit (it kills its test binary then); ours is a little longer.
const GO_TIMEOUT: &str = "240s";
const TIMEOUT: Duration = Duration::from_secs(300);

/// The tests the brief of the binding asks for: each must have run and passed.
const REQUIRED_TESTS: &[&str] = &[
    "TestQuickStart",
    "TestFailedWithExitCode",
    "TestRunnerDumpAndLoad",
    "TestFromTokenAndAuthErrors",
    "TestRunnerSettingsAndErrors",
    "TestGracefulCancelThroughChannel",
    "TestHardCancelThroughChannel",
    "TestHardCancelLearnedInTheBackground",
    "TestCancelDespiteTrace503WithDiagnostics",
    "TestCloseEndsTheCancelChannel",
    "TestPerHandleErrorsAcrossGoroutines",
    "TestRequestJobEndsWhenContextIsCancelled",
    "TestRequestJobCallTimeout",
    "TestCloseEndsALongPoll",
    "TestHandOverThenLoadJobContinuesTheLog",
    "TestHandOverDumpsWatchLoadsAndSnapshots",
    "TestShutdownUploadsPendingText",
    "TestVersion",
];

#[test]
fn go_bindings_pass_their_tests() {
    // `go` has no --version (common::build::require's probe): `go version`.
    let has_go = Command::new("go").arg("version").output().is_ok_and(|o| o.status.success());
    assert!(has_go, "`go` is required: run scripts/check-tools.sh (Debian: apt-get install golang-go)");
    let package = manifest_dir().join("bindings/go");
    let scratch = scratch_dir("go-bindings");
    let lib = scratch_dir("go-bindings/lib");
    link_library(&lib);

    let mut gofmt = go_command("gofmt", &package, &scratch);
    gofmt.args(["-l", "."]);
    let gofmt = run(gofmt, "gofmt -l", TIMEOUT);
    gofmt.expect_ok("gofmt -l");
    assert!(gofmt.stdout.trim().is_empty(), "not gofmt-clean (run gofmt -w bindings/go):\n{}", gofmt.stdout);

    let server = TestServer::start_with(Config {
        long_poll_timeout: Duration::from_millis(200),
        trace_update_interval: 1,
        ..Config::default()
    });
    let summary = scratch.join(format!("summary-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&summary);
    let mut cmd = go_command("go", &package, &scratch);
    cmd.args(["test", "-count=1", "-v", "-timeout", GO_TIMEOUT, "./..."])
        // The header's hash in the flags: go's build cache does not look at headers outside the
        // package, so a changed header must change the flags to rebuild.
        .env("CGO_CFLAGS", format!("-I{} -DGLR_HEADER_HASH={}", header_dir().display(), header_hash()))
        .env("CGO_LDFLAGS", format!("-L{0} -Wl,-rpath,{0}", lib.display()))
        .env("GLR_TEST_URL", server.url())
        .env("GLR_TEST_REGISTRATION_TOKEN", server.registration_token())
        .env("GLR_TEST_SUMMARY", &summary);
    let out = run(cmd, "go test ./... in bindings/go", TIMEOUT);
    let output = format!("{}{}", out.stdout, out.stderr);
    eprintln!("{output}");
    assert!(out.success(), "go test failed ({:?}):\n{output}", out.code);
    assert!(output.contains("ok  \tgitlab_runner_api/bindings/go"), "no \"ok\" line for the package:\n{output}");
    assert!(!output.contains("--- FAIL") && !output.contains("--- SKIP"), "failed or skipped Go tests:\n{output}");
    for test in REQUIRED_TESTS {
        assert!(output.contains(&format!("--- PASS: {test} ")), "{test} did not run or pass:\n{output}");
    }
    if let Some(figure) = output.lines().find(|l| l.contains("wrong messages read through the per-handle function")) {
        eprintln!("per-handle errors: {}", figure.trim());
    }

    // What the server stored, checked without the Go tests' help.
    let text = std::fs::read_to_string(&summary).unwrap_or_else(|e| panic!("{}: {e}", summary.display()));
    let expected: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).expect("summary JSON");
    assert!(expected.len() >= 7, "the Go tests finished only {} jobs: {text}", expected.len());
    let mut checksums = 0;
    for (id, want) in &expected {
        let id: i64 = id.parse().expect("job id");
        let job = server.job(id).unwrap_or_else(|| panic!("job {id} is not on the server"));
        assert_eq!(Some(job.state.as_str()), want["state"].as_str(), "job {id}");
        if want["checksum_matches"].as_bool() == Some(true) {
            assert_eq!(job.checksum_matches, Some(true), "job {id}: final checksum vs. stored trace");
            checksums += 1;
        }
    }
    assert!(checksums >= 4, "only {checksums} final checksums checked: {text}");
    let _ = std::fs::remove_file(&summary);
}

/// `go` or `gofmt` in `dir`, offline, with its caches under `scratch` and none of the user's Go
/// settings.
fn go_command(program: &str, dir: &Path, scratch: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env("GOCACHE", scratch.join("gocache"))
        .env("GOPATH", scratch.join("gopath"))
        .env("GOENV", "off")
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOWORK", "off")
        .env("GO111MODULE", "on")
        .env("CGO_ENABLED", "1")
        .env_remove("GLR_LOG");
    cmd
}

/// `dir`/libgitlab_runner_api.so (what -lgitlab_runner_api finds) and the SONAME the test
/// binary asks for at run time, both links to this build's cdylib.
fn link_library(dir: &Path) {
    let link = dir.join("libgitlab_runner_api.so");
    let tmp = dir.join(format!(".so.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(cdylib(), &tmp)
        .and_then(|()| std::fs::rename(&tmp, &link))
        .unwrap_or_else(|e| panic!("{}: {e}", link.display()));
    link_soname(dir);
}

/// A hash of this build's header, for the cgo flags.
fn header_hash() -> u64 {
    let header = header_dir().join("gitlab_runner_api.h");
    let text = std::fs::read(&header).unwrap_or_else(|e| panic!("{}: {e}", header.display()));
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}
