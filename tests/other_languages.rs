//! The examples of examples-other/ — Node.js through koffi, Ruby through Fiddle, Java 17
//! through jdk.incubator.foreign — run against an in-process test server with the cdylib of
//! this build. Each does the quick-start flow (register, take a job, properties, variables,
//! log, cancel handling, success) the way its runtime must: no callbacks, errors read from the
//! handle, owned strings given back with glr_string_free, blocking calls off the event loop.
//!
//! What each test checks is what the server stored (state, trace, checksum) and the program's
//! `key=value` lines, among them:
//! - owned strings: every program takes and frees N payloads and runner dumps (`--leak-check`)
//!   and prints how much its RSS grew; freed with libc free() instead the process aborts, and
//!   not freed at all it grows by N payloads (about 400 MB here): the test allows an eighth;
//! - per-handle errors: a call that fails on another thread (a pool thread in Node) leaves its
//!   message on the job and none on the main thread;
//! - Node: the event loop ticked while request_job long-polled (the job is queued a second
//!   after the poll started), and SIGTERM ends a 30-second long poll at once
//!   (glr_runner_interrupt);
//! - Ruby: graceful and hard cancels, with 503 answers injected on the trace PATCH and the
//!   library's diagnostics read from a pipe (glr_set_log_fd), no callback installed: the
//!   process neither crashes nor misses the cancel.
//!
//! Needs node and npm (koffi is installed with `npm ci` into examples-other/node/node_modules,
//! from the npm registry the first time, then from the cache target/npm-cache), ruby, and a
//! JDK 17 (scripts/check-tools.sh installs them). Run alone: `cargo test --test other_languages`.
#![cfg(target_os = "linux")]

mod common;

use common::build::{cdylib, manifest_dir, scratch_dir};
use common::process::{Out, Running};
use common::trace::{assert_in_order, trace};
use glr_testserver::{Config, Endpoint, Fault, FaultKind, JobRecord, TestServer};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// No run may take longer: a hang is a failure, not a stuck test run.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// `--leak-check`: owned strings of each kind taken and freed.
const LEAK_ROUNDS: usize = 10_000;
/// A variable this big makes each payload about 40 KB, so leaking them is plain to see.
const BIG_VALUE_BYTES: usize = 32 * 1024;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Lang {
    Node,
    Ruby,
    Java,
}

impl Lang {
    /// How the program greets in the job's log.
    fn greeting(self) -> &'static str {
        match self {
            Lang::Node => "Hello from Node.js",
            Lang::Ruby => "Hello from Ruby",
            Lang::Java => "Hello from Java",
        }
    }

    /// The command that runs the example with `args`, set up (installed, compiled) once.
    fn command(self, args: &[String]) -> Command {
        let examples = manifest_dir().join("examples-other");
        let mut cmd = match self {
            Lang::Node => {
                let dir = node_example_installed();
                let mut c = Command::new("node");
                c.arg(dir.join("runner.js"));
                c
            }
            Lang::Ruby => {
                require("ruby", "ruby");
                let mut c = Command::new("ruby");
                c.arg(examples.join("ruby/runner.rb"));
                c
            }
            Lang::Java => {
                let (classes, java) = java_example_compiled();
                let mut c = Command::new(java);
                // A fixed, pre-touched heap: the leak check measures native memory, not the
                // Java heap growing towards its default maximum (a quarter of the machine).
                c.args(["-Xms64m", "-Xmx64m", "-XX:+AlwaysPreTouch"])
                    .args(["--add-modules", "jdk.incubator.foreign", "--enable-native-access=ALL-UNNAMED"])
                    .arg("-cp")
                    .arg(classes)
                    .arg("Runner");
                c
            }
        };
        // LIBC_FATAL_STDERR_: glibc's abort messages ("munmap_chunk(): invalid pointer", what
        // libc free() on an owned string gives) go to stderr, into the failure's output.
        cmd.args(args).env("GITLAB_RUNNER_API_LIB", cdylib()).env("LIBC_FATAL_STDERR_", "1").env_remove("GLR_LOG");
        cmd
    }
}

/// Fails the test unless `tool --version` runs, naming the Debian package.
fn require(tool: &str, package: &str) {
    let ok = Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "`{tool}` is required: run scripts/check-tools.sh (Debian: apt-get install {package})");
}

/// examples-other/node with koffi installed by `npm ci` (once per test process), the
/// version package-lock.json pins, from the npm cache under target/ when it has it.
fn node_example_installed() -> PathBuf {
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        require("node", "nodejs");
        require("npm", "npm");
        let dir = manifest_dir().join("examples-other/node");
        let cache = common::build::profile_dir().parent().expect("target/").join("npm-cache");
        // No install scripts: koffi's native code comes in its platform package.
        let out = Command::new("npm")
            .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--no-update-notifier", "--prefer-offline"])
            .arg("--cache")
            .arg(&cache)
            .current_dir(&dir)
            .output()
            .map_err(|e| format!("cannot run npm: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "npm ci in {} failed:\n{}{}",
                dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(dir)
    });
    result.clone().unwrap_or_else(|e| panic!("{e}"))
}

/// A JDK 17 (jdk.incubator.foreign is Java 17's; later JDKs replaced it): $JAVA_HOME, Debian's
/// /usr/lib/jvm/java-17-openjdk-*, or javac on PATH, whichever is version 17. Its bin/.
fn jdk17_bin() -> Option<PathBuf> {
    let is_17 = |javac: &Path| {
        Command::new(javac)
            .arg("-version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).starts_with("javac 17"))
    };
    let mut candidates: Vec<PathBuf> =
        std::env::var_os("JAVA_HOME").map(|h| Path::new(&h).join("bin")).into_iter().collect();
    if let Ok(dirs) = std::fs::read_dir("/usr/lib/jvm") {
        let mut found: Vec<PathBuf> = dirs
            .filter_map(|d| d.ok())
            .filter(|d| d.file_name().to_string_lossy().starts_with("java-17-"))
            .map(|d| d.path().join("bin"))
            .collect();
        found.sort();
        candidates.extend(found);
    }
    if let Some(bin) = candidates.into_iter().find(|bin| is_17(&bin.join("javac"))) {
        return Some(bin);
    }
    // javac on PATH: `java` beside it is the same JDK.
    is_17(Path::new("javac")).then(PathBuf::new)
}

/// Compiles examples-other/java once per test process; returns (classes dir, java command).
fn java_example_compiled() -> (PathBuf, PathBuf) {
    static COMPILED: OnceLock<Result<(PathBuf, PathBuf), String>> = OnceLock::new();
    let result = COMPILED.get_or_init(|| {
        let bin = jdk17_bin().ok_or(
            "a JDK 17 is required (javac 17): run scripts/check-tools.sh (Debian: apt-get install openjdk-17-jdk-headless)",
        )?;
        // One directory, compiled afresh by each test process (class files of an older
        // version of the sources must not linger).
        let classes = scratch_dir("java-example");
        std::fs::remove_dir_all(&classes).map_err(|e| format!("{}: {e}", classes.display()))?;
        let sources = manifest_dir().join("examples-other/java");
        let out = Command::new(bin.join("javac"))
            .args(["--add-modules", "jdk.incubator.foreign", "-Xlint:all", "-d"])
            .arg(&classes)
            .arg(sources.join("Glr.java"))
            .arg(sources.join("Runner.java"))
            .output()
            .map_err(|e| format!("cannot run javac: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The one warning javac always gives for an incubator module; any other fails.
        let others: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.contains("incubat") && !l.trim().is_empty() && *l != "1 warning")
            .collect();
        if !out.status.success() || !others.is_empty() {
            return Err(format!("examples-other/java does not compile warning-free:\n{stderr}"));
        }
        Ok((classes, bin.join("java")))
    });
    result.clone().unwrap_or_else(|e| panic!("{e}"))
}

// ---- server and runs -----------------------------------------------------------------------

fn server(long_poll: Duration) -> TestServer {
    TestServer::start_with(Config { long_poll_timeout: long_poll, trace_update_interval: 1, ..Config::default() })
}

/// A job whose payload carries a 32 KiB variable (see BIG_VALUE_BYTES).
fn queue_big_job(server: &TestServer) -> i64 {
    server.queue_job(json!({"variables": [
        {"key": "BIG_VALUE", "value": "x".repeat(BIG_VALUE_BYTES), "public": true, "masked": false}
    ]}))
}

/// Starts the example of `lang` against `server` with `extra` arguments.
fn start(lang: Lang, server: &TestServer, extra: &[&str]) -> Running {
    let mut args = vec![server.url(), server.registration_token()];
    args.extend(extra.iter().map(|s| s.to_string()));
    Running::start(lang.command(&args), &format!("the {lang:?} example"))
}

/// A finished run: its output and its `key=value` pairs (`key="..."` takes the rest of the line).
struct Report {
    out: Out,
    values: HashMap<String, String>,
}

impl Report {
    fn of(out: Out) -> Report {
        let mut values = HashMap::new();
        for line in out.stdout.lines().filter(|l| !l.starts_with(' ')) {
            if let Some((key, quoted)) = line.split_once("=\"") {
                if !key.contains(' ') {
                    values.insert(key.to_string(), quoted.strip_suffix('"').unwrap_or(quoted).to_string());
                    continue;
                }
            }
            for pair in line.split_whitespace() {
                if let Some((k, v)) = pair.split_once('=') {
                    values.insert(k.to_string(), v.to_string());
                }
            }
        }
        Report { out, values }
    }

    #[track_caller]
    fn get(&self, key: &str) -> &str {
        self.values.get(key).unwrap_or_else(|| panic!("no {key}= in the output\n{}", self.out.describe()))
    }

    #[track_caller]
    fn number(&self, key: &str) -> i64 {
        let v = self.get(key);
        v.parse().unwrap_or_else(|_| panic!("{key}={v} is not a number\n{}", self.out.describe()))
    }

    #[track_caller]
    fn expect(&self, key: &str, value: &str) {
        assert_eq!(self.get(key), value, "{key}\n{}", self.out.describe());
    }
}

#[track_caller]
fn finish(run: Running) -> Report {
    let out = run.wait(RUN_TIMEOUT);
    assert!(out.success(), "the program failed (it must exit 0, not crash)\n{}", out.describe());
    Report::of(out)
}

#[track_caller]
fn job_record(server: &TestServer, id: i64, timeout: Duration, state: &str) -> JobRecord {
    server
        .wait_for_job(id, timeout, |j| j.state == state)
        .unwrap_or_else(|| panic!("job {id} did not become {state}: {:?}", server.job(id).map(|j| j.state)))
}

/// The value of the job's masked SECRET_PASSWORD, as the server sent it.
fn secret_of(job: &JobRecord) -> String {
    job.payload["variables"]
        .as_array()
        .and_then(|vars| vars.iter().find(|v| v["key"] == "SECRET_PASSWORD"))
        .and_then(|v| v["value"].as_str())
        .expect("the default payload has SECRET_PASSWORD")
        .to_string()
}

/// Waits until the server answered a job request of the program: its next one is held in the
/// long poll (the first has no last_update and is answered at once).
fn wait_for_long_poll(server: &TestServer, run: &Running) {
    let deadline = Instant::now() + RUN_TIMEOUT;
    while !server.requests().iter().any(|r| r.path.starts_with("/api/v4/jobs/request")) {
        assert!(Instant::now() < deadline, "{} never asked for a job", run.what());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
}

fn sigterm(run: &Running) {
    let status = Command::new("kill").arg("-TERM").arg(run.id().to_string()).status().expect("kill");
    assert!(status.success(), "kill -TERM {}", run.id());
}

// ---- shared checks ---------------------------------------------------------------------------

/// The quick start: the job reported successful with its whole log, secrets masked, and
/// every owned string given back.
#[track_caller]
fn assert_quick_start(lang: Lang, server: &TestServer, id: i64, report: &Report) {
    report.expect("job", &id.to_string());
    report.expect("payload_name_matches", "true");
    report.expect("result", "reported");
    report.expect("state", "success");
    let job = job_record(server, id, Duration::from_secs(10), "success");
    assert_eq!(job.checksum_matches, Some(true), "the final checksum matches the stored trace");
    let text = trace(&job);
    assert_in_order(&text, &[lang.greeting(), "password: [MASKED]", "step 1 of 3: ", "step 3 of 3: ", "Job succeeded"]);
    assert!(!text.contains(&secret_of(&job)), "the secret reached the log:\n{text}");
    assert!(!text.contains("too late"), "an append after the end reached the log:\n{text}");
    assert_per_handle_error(report, -6, "finished");
    assert_owned_strings_freed(report);
}

/// A call that failed on another thread: its message is on the job, the main thread's slot is
/// empty (it belongs to the thread that made the call).
#[track_caller]
fn assert_per_handle_error(report: &Report, status: i64, words: &str) {
    assert_eq!(report.number("late_append_status"), status, "{}", report.out.describe());
    report.expect("late_append_thread_error", "");
    let message = report.get("late_append_job_error");
    assert!(message.contains(words), "the job's last error {message:?} should say {words:?}");
}

/// Every owned string was freed with glr_string_free, and the leak check's RSS stayed flat.
#[track_caller]
fn assert_owned_strings_freed(report: &Report) {
    let taken = report.number("owned_taken");
    assert_eq!(taken, report.number("owned_freed"), "owned strings taken and freed");
    assert!(taken as usize >= 2 * LEAK_ROUNDS, "the leak check ran: {taken} owned strings");
    let payload = report.number("leak_check_payload_bytes");
    assert!(payload as usize > BIG_VALUE_BYTES, "the payload carries the big variable: {payload} bytes");
    // Not freeing them would grow the process by LEAK_ROUNDS payloads at least.
    let leak_kib = LEAK_ROUNDS as i64 * payload / 1024;
    let grown = report.number("leak_check_rss_growth_kib");
    assert!(
        grown < leak_kib / 8,
        "RSS grew by {grown} KiB over {LEAK_ROUNDS} payloads of {payload} bytes (leaking them: {leak_kib} KiB)\n{}",
        report.out.describe()
    );
}

/// A graceful cancel: seen between two steps, after_script logged, the job ended canceled.
#[track_caller]
fn assert_graceful_cancel(server: &TestServer, id: i64, report: &Report, steps: usize) {
    report.expect("result", "reported");
    let job = job_record(server, id, Duration::from_secs(10), "canceled");
    assert_eq!(job.checksum_matches, Some(true), "the final checksum matches the stored trace");
    let text = trace(&job);
    assert_in_order(&text, &["step 1 of ", "after_script: cleaning up after the cancel", "ERROR: Job canceled"]);
    assert!(!text.contains(&format!("step {steps} of {steps}")), "the cancel was missed: every step ran\n{text}");
    assert_per_handle_error(report, -5, "canceled");
}

/// Cancels job `id` once its program is running it (the server has it running).
fn cancel_when_running(server: &TestServer, id: i64, graceful: bool) {
    job_record(server, id, RUN_TIMEOUT, "running");
    std::thread::sleep(Duration::from_millis(500));
    server.cancel_job(id, graceful);
}

fn leak_check_args() -> [String; 2] {
    ["--leak-check".to_string(), LEAK_ROUNDS.to_string()]
}

// ---- Node.js ---------------------------------------------------------------------------------

#[test]
fn node_quick_start_keeps_the_event_loop_free_and_gives_owned_strings_back() {
    let server = server(Duration::from_secs(5));
    let leak = leak_check_args();
    let run = start(Lang::Node, &server, &[&leak[0], &leak[1]]);
    // The job comes while request_job is held in the long poll, on a pool thread.
    wait_for_long_poll(&server, &run);
    std::thread::sleep(Duration::from_millis(500));
    let id = queue_big_job(&server);
    let report = finish(run);
    assert_quick_start(Lang::Node, &server, id, &report);
    // A heartbeat every 5 ms during a second of long poll; a synchronous call would show none.
    let ticks = report.number("event_loop_ticks_during_blocking_calls");
    assert!(ticks >= 50, "the event loop ticked only {ticks} times during blocking calls\n{}", report.out.describe());
}

#[test]
fn node_sigterm_ends_the_long_poll_at_once() {
    assert_sigterm_ends_the_long_poll(Lang::Node);
}

#[test]
fn node_sees_a_graceful_cancel_without_a_callback() {
    let server = server(Duration::from_millis(200));
    let id = server.queue_job(json!({}));
    let run = start(Lang::Node, &server, &["--steps", "300", "--step-ms", "100"]);
    cancel_when_running(&server, id, true);
    assert_graceful_cancel(&server, id, &finish(run), 300);
}

/// SIGTERM while the program waits in a 30-second long poll: glr_runner_interrupt ends it, and
/// the program exits 0 within seconds.
fn assert_sigterm_ends_the_long_poll(lang: Lang) {
    let server = server(Duration::from_secs(30));
    let run = start(lang, &server, &[]);
    wait_for_long_poll(&server, &run);
    let signalled = Instant::now();
    sigterm(&run);
    let report = finish(run);
    let took = signalled.elapsed();
    report.expect("result", "interrupted");
    assert!(
        took < Duration::from_secs(5),
        "the program took {took:?} to stop after SIGTERM\n{}",
        report.out.describe()
    );
}

// ---- Ruby --------------------------------------------------------------------------------------

#[test]
fn ruby_quick_start_gives_owned_strings_back() {
    let server = server(Duration::from_millis(200));
    let id = queue_big_job(&server);
    let leak = leak_check_args();
    let report = finish(start(Lang::Ruby, &server, &[&leak[0], &leak[1]]));
    assert_quick_start(Lang::Ruby, &server, id, &report);
}

#[test]
fn ruby_graceful_cancel_through_503s_with_diagnostics_on_a_pipe() {
    let server = server(Duration::from_millis(200));
    let id = server.queue_job(json!({}));
    // The first trace uploads fail: the library retries, and the cancel comes in a later answer.
    server.inject_fault(Fault {
        endpoint: Endpoint::Trace,
        count: 2,
        kind: FaultKind::Status { code: 503, retry_after: None },
    });
    let run = start(Lang::Ruby, &server, &["--steps", "300", "--step-ms", "100", "--log", "debug"]);
    cancel_when_running(&server, id, true);
    let report = finish(run);
    assert_graceful_cancel(&server, id, &report, 300);
    assert_diagnostics(&report, &[&format!("/jobs/{id}/trace: 503"), "cancel"]);
}

#[test]
fn ruby_hard_cancel_with_diagnostics_on_a_pipe() {
    let server = server(Duration::from_millis(200));
    let id = server.queue_job(json!({}));
    let run = start(Lang::Ruby, &server, &["--steps", "300", "--step-ms", "100", "--log", "debug"]);
    cancel_when_running(&server, id, false);
    let report = finish(run);
    report.expect("result", "canceled");
    report.expect("state", "canceled");
    let job = server.job(id).expect("the job");
    assert_eq!(job.state, "canceled");
    assert_per_handle_error(&report, -5, "canceled");
    assert_diagnostics(&report, &[&format!("job {id}")]);
}

#[test]
fn ruby_sigterm_ends_the_long_poll_at_once() {
    assert_sigterm_ends_the_long_poll(Lang::Ruby);
}

/// The library's lines came through the pipe (runner.rb prints them as "[library] ...") and
/// include each of `words`.
#[track_caller]
fn assert_diagnostics(report: &Report, words: &[&str]) {
    let lines: Vec<&str> =
        report.out.stderr.lines().filter(|l| l.starts_with("[library] gitlab_runner_api: ")).collect();
    for word in words {
        assert!(
            lines.iter().any(|l| l.contains(word)),
            "no diagnostic line with {word:?} came through the pipe\n{}",
            report.out.describe()
        );
    }
}

// ---- Java ------------------------------------------------------------------------------------

#[test]
fn java_quick_start_gives_owned_strings_back() {
    let server = server(Duration::from_millis(200));
    let id = queue_big_job(&server);
    let leak = leak_check_args();
    let report = finish(start(Lang::Java, &server, &[&leak[0], &leak[1]]));
    assert_quick_start(Lang::Java, &server, id, &report);
}

#[test]
fn java_sees_a_graceful_cancel_without_a_callback() {
    let server = server(Duration::from_millis(200));
    let id = server.queue_job(json!({}));
    let run = start(Lang::Java, &server, &["--steps", "300", "--step-ms", "100"]);
    cancel_when_running(&server, id, true);
    assert_graceful_cancel(&server, id, &finish(run), 300);
}
