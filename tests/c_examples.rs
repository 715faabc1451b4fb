//! The programs in examples-c/: each is compiled warning-free (C99 or C++17, `-Wall -Wextra
//! -Wpedantic -Werror`) against the header and the cdylib of this build, then run against an
//! in-process test server; the assertions are on what the server stored.
//!
//! Binaries go to `target/<profile>/c-examples/`, never into the source tree. A C and a C++
//! compiler are required (`CC`/`CXX` are honoured); without one the tests fail and say so.
//!
//! Memory and thread checking: with `GLR_C_EXAMPLES_CHECK` set, every run of every test goes
//! through a checker and must come out clean (`.ci/run` runs this file once per checker):
//! - `valgrind`: each program runs under `valgrind --leak-check=full
//!   --errors-for-leak-kinds=definite` (memcheck) with the suppressions users get,
//!   `valgrind/gitlab_runner_api.supp`; any error or definite leak fails the run;
//! - `sanitize`: the programs are built with `-fsanitize=address,undefined` (gcc's ASan, UBSan
//!   and LeakSanitizer); any report fails the run;
//! - `tsan`: the programs are built with `-fsanitize=thread` (this instruments the C code only:
//!   the Rust library is not instrumented without a nightly compiler);
//! - `helgrind`: each program runs under `valgrind --tool=helgrind` (see RELIABILITY.md for
//!   what it reports about the Rust library's own locks).
//!
//! Timeouts grow with the checker's slowdown.

mod common;

use common::build::{
    c_compiler, compile_program, cxx_compiler, header_dir, lib_dir, link_soname, manifest_dir, profile_dir,
};
use common::process::{self, Out};
use common::trace::{assert_in_order, trace};
use glr_testserver::{Config, JobRecord, TestServer, DEFAULT_MASKED_VALUE};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Every program the examples must provide (binary name, source file).
const PROGRAMS: &[(&str, &str)] = &[
    ("register", "register.c"),
    ("get_job", "get_job.c"),
    ("executor", "executor.c"),
    ("persist_job", "persist_job.c"),
    ("executor_cpp", "executor.cpp"),
    ("executor_hpp_cpp", "executor_hpp.cpp"),
    ("threads", "threads.c"),
    ("shutdown_exit", "shutdown_exit.c"),
    ("fork_child", "fork_child.c"),
    ("stop_polling", "stop_polling.c"),
];
/// No example run may take longer (a hang is a failure, not a stuck test run); times the
/// checker's slowdown.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// How the programs are built and run (`GLR_C_EXAMPLES_CHECK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Plain,
    Valgrind,
    Sanitize,
    Tsan,
    Helgrind,
}

fn check() -> Check {
    match std::env::var("GLR_C_EXAMPLES_CHECK").as_deref() {
        Err(_) | Ok("") => Check::Plain,
        Ok("valgrind") => Check::Valgrind,
        Ok("sanitize") => Check::Sanitize,
        Ok("tsan") => Check::Tsan,
        Ok("helgrind") => Check::Helgrind,
        Ok(other) => panic!("GLR_C_EXAMPLES_CHECK={other}: expected valgrind, sanitize, tsan or helgrind"),
    }
}

/// How much slower programs run under the checker.
fn slowdown() -> u32 {
    match check() {
        Check::Plain => 1,
        Check::Sanitize | Check::Tsan => 3,
        Check::Valgrind | Check::Helgrind => 8,
    }
}

/// Extra compiler flags of the checker.
fn check_flags() -> &'static [&'static str] {
    match check() {
        Check::Sanitize => &["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"],
        Check::Tsan => &["-fsanitize=thread"],
        _ => &[],
    }
}

/// The exit status a checker uses for "errors found" (not one the programs use themselves).
const CHECK_EXIT: i32 = 97;

fn examples_dir() -> PathBuf {
    manifest_dir().join("examples-c")
}

/// Where the compiled examples go: target/<profile>/c-examples/ (-sanitize, -tsan for builds
/// with a sanitizer).
fn out_dir() -> PathBuf {
    let name = match check() {
        Check::Sanitize => "c-examples-sanitize",
        Check::Tsan => "c-examples-tsan",
        _ => "c-examples",
    };
    profile_dir().join(name)
}

/// Compiles every program once per test process; returns the directory holding the binaries.
fn built() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(build_all) {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    }
}

fn build_all() -> Result<PathBuf, String> {
    let out = out_dir();
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    link_soname(&out);
    let (cc, cxx) = (c_compiler(), cxx_compiler());
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = sources()
            .into_iter()
            .chain(test_programs())
            .map(|(name, src)| {
                let (cc, cxx, out) = (&cc, &cxx, &out);
                s.spawn(move || compile_program(&src, &out.join(name), cc, cxx, check_flags()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("compile thread")).collect()
    });
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join("\n"))
    }
}

/// Every .c and .cpp file of examples-c/ with its binary name (`x.c` -> x, `x.cpp` -> x_cpp).
fn sources() -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(examples_dir())
        .expect("examples-c/")
        .map(|e| e.expect("dir entry").path())
        .filter_map(|p| {
            let stem = p.file_stem()?.to_str()?.to_string();
            match p.extension()?.to_str()? {
                "c" => Some((stem, p)),
                "cpp" => Some((format!("{stem}_cpp"), p)),
                _ => None,
            }
        })
        .collect();
    v.sort();
    v
}

/// C/C++ test programs built and run here too, so that the checkers cover them: the C++
/// wrapper's test (tests/header.rs also builds it with gcc and clang).
fn test_programs() -> Vec<(String, PathBuf)> {
    vec![("wrapper_test_cpp".to_string(), manifest_dir().join("tests/cpp/wrapper_test.cpp"))]
}

fn program(name: &str) -> PathBuf {
    built().join(name)
}

// ---- processes -------------------------------------------------------------------------------

/// A program running under the checker (if any).
struct Running {
    process: process::Running,
    /// Where the checker writes its reports (one file per process).
    check_logs: PathBuf,
    /// memcheck counts no leak as an error (`--leak-check=summary`): see [`leaks_in_children`].
    leak_summary_only: bool,
}

/// Programs whose fork()ed children keep using the library without exec (fork_child). In such
/// a child, memcheck's leak search reports as definitely lost what only the parent's threads
/// referenced (their closures, thread-locals, a request in flight): those threads do not exist
/// in the child, so their stacks are no roots, yet the memory is not the child's to free. These
/// programs run with `--leak-check=summary`, which counts no leak as an error in any process:
/// every other error still counts in the parent and the children, and the parent's own
/// "definitely lost" must still be 0 (read from its leak summary).
fn leaks_in_children(name: &str) -> bool {
    name == "fork_child"
}

impl Running {
    #[track_caller]
    fn wait(self) -> Out {
        let pid = self.process.id();
        let what = self.process.what().to_string();
        let out = self.process.wait(RUN_TIMEOUT * slowdown());
        assert_checker_clean(&self.check_logs, pid, &what, &out, self.leak_summary_only);
        out
    }
}

/// Fails when the checker reported anything for the run (its logs, or its exit status).
#[track_caller]
fn assert_checker_clean(logs: &Path, pid: u32, what: &str, out: &Out, leak_summary_only: bool) {
    let reports: Vec<(String, String)> = std::fs::read_dir(logs)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read_to_string(e.path()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(logs);
    let show = |reports: &[(String, String)]| {
        reports.iter().map(|(n, t)| format!("--- {n}\n{t}")).collect::<Vec<_>>().join("\n")
    };
    match check() {
        Check::Plain => {}
        Check::Valgrind | Check::Helgrind => {
            // One log per process: the program's own ends with its summary; a fork that
            // exec'd a shell (the executors) ends without one.
            let own = reports.iter().find(|(n, _)| n == &format!("{pid}.log"));
            let clean = own.is_some_and(|(_, t)| {
                let no_leak = !leak_summary_only
                    || !t.contains("definitely lost:")
                    || t.contains("definitely lost: 0 bytes in 0 blocks");
                t.contains("ERROR SUMMARY: 0 errors from 0 contexts") && no_leak
            });
            let dirty = reports
                .iter()
                .any(|(_, t)| t.lines().any(|l| l.contains("ERROR SUMMARY:") && !l.contains(": 0 errors")));
            assert!(
                clean && !dirty && out.code != Some(CHECK_EXIT),
                "{what}: valgrind reports errors\n{}\n{}",
                show(&reports),
                out.describe()
            );
        }
        Check::Sanitize | Check::Tsan => {
            // The sanitizers write a log only when they report something.
            assert!(
                reports.is_empty() && out.code != Some(CHECK_EXIT),
                "{what}: sanitizer reports\n{}\n{}",
                show(&reports),
                out.describe()
            );
        }
    }
}

/// Starts `program` (a binary of examples-c) in `cwd` with TMPDIR=`cwd`/tmp.
fn spawn(name: &str, args: &[&str], cwd: &Path) -> Running {
    let tmp = cwd.join("tmp");
    std::fs::create_dir_all(&tmp).expect("create tmp");
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let check_logs = cwd.join(format!("check-logs-{}", RUNS.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&check_logs).expect("create check-logs");
    let log = |tool: &str| format!("log_path={}/{tool}:exitcode={CHECK_EXIT}", check_logs.display());
    let mut command = match check() {
        Check::Valgrind | Check::Helgrind => {
            let mut c = Command::new("valgrind");
            if check() == Check::Valgrind {
                if leaks_in_children(name) {
                    c.arg("--leak-check=summary");
                } else {
                    c.args(["--leak-check=full", "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite"]);
                }
                // The suppressions users get for the library's dependencies (RELIABILITY.md).
                c.arg(format!("--suppressions={}", manifest_dir().join("valgrind/gitlab_runner_api.supp").display()));
            } else {
                c.arg("--tool=helgrind");
            }
            c.arg(format!("--error-exitcode={CHECK_EXIT}"))
                .arg(format!("--log-file={}/%p.log", check_logs.display()))
                .arg(program(name));
            c
        }
        _ => Command::new(program(name)),
    };
    command
        .env("ASAN_OPTIONS", format!("{}:detect_leaks=1", log("asan")))
        .env("UBSAN_OPTIONS", format!("{}:print_stacktrace=1:halt_on_error=1", log("ubsan")))
        .env(
            "TSAN_OPTIONS",
            format!(
                "{}:halt_on_error=0:suppressions={}",
                log("tsan"),
                manifest_dir().join("tests/c/tsan.supp").display()
            ),
        );
    command.args(args).current_dir(cwd).env("TMPDIR", &tmp).env_remove("GLR_LOG");
    let process = process::Running::start(command, &format!("{name} {}", args.join(" ")));
    Running { process, check_logs, leak_summary_only: check() == Check::Valgrind && leaks_in_children(name) }
}

fn run(name: &str, args: &[&str], cwd: &Path) -> Out {
    spawn(name, args, cwd).wait()
}

/// A private directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("glr-c-examples-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn file(&self, name: &str) -> String {
        self.0.join(name).to_str().expect("UTF-8 temp path").to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- helpers -------------------------------------------------------------------------------

fn server() -> TestServer {
    TestServer::start_with(Config { long_poll_timeout: Duration::from_millis(200), ..Default::default() })
}

/// Registers a runner with the `register` example; returns the runner file's path.
fn register(server: &TestServer, dir: &TempDir) -> String {
    let file = dir.file("runner.json");
    run("register", &[&server.url(), &server.registration_token(), &file], dir.path()).expect_ok("register");
    file
}

fn job_record(server: &TestServer, id: i64) -> JobRecord {
    server.job(id).unwrap_or_else(|| panic!("the server has no job {id}"))
}

fn mode(path: &str) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}")).permissions().mode() & 0o777
}

fn read_json(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}\n{text}"))
}

fn script_job(script: &[&str], after_script: &[&str]) -> Value {
    json!({"steps": [
        {"name": "script", "script": script, "timeout": 3600, "when": "on_success", "allow_failure": false},
        {"name": "after_script", "script": after_script, "timeout": 3600, "when": "always", "allow_failure": true}
    ]})
}

/// The executor removes its per-job directories (under TMPDIR) when the job is done.
#[track_caller]
fn assert_no_job_dirs_left(dir: &TempDir) {
    let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "job directories left behind in TMPDIR: {left:?}");
}

// ---- compiling -----------------------------------------------------------------------------

#[test]
fn every_example_compiles_warning_free() {
    let dir = built();
    let names: Vec<String> = sources().into_iter().map(|(n, _)| n).collect();
    for (name, src) in PROGRAMS {
        assert!(names.iter().any(|n| n == name), "examples-c/{src} is missing");
    }
    for name in &names {
        let bin = dir.join(name);
        let meta = std::fs::metadata(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        assert!(meta.permissions().mode() & 0o111 != 0, "{} is not executable", bin.display());
    }
}

#[test]
fn programs_load_the_library_and_print_usage() {
    let dir = TempDir::new();
    for (name, _) in PROGRAMS {
        let out = run(name, &[], dir.path());
        // 127 plus "error while loading shared libraries" would mean the rpath/SONAME is wrong.
        out.expect_code(1, name);
        assert!(out.stderr.contains("usage:"), "{name} without arguments should print its usage\n{}", out.describe());
    }
}

#[test]
fn makefile_builds_every_example() {
    let tmp = TempDir::new();
    let build = tmp.path().join("build");
    let make = |target: &str| {
        Command::new("make")
            .arg("-C")
            .arg(examples_dir())
            .arg(format!("BUILD={}", build.display()))
            .arg(format!("LIBDIR={}", lib_dir().display()))
            .arg(format!("INCLUDE={}", header_dir().display()))
            .arg(format!("CC={}", c_compiler()))
            .arg(format!("CXX={}", cxx_compiler()))
            .arg(target)
            .output()
            .unwrap_or_else(|e| panic!("cannot run make ({e}): install it, e.g. `apt install build-essential`"))
    };
    let out = make("all");
    assert!(
        out.status.success(),
        "make failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, _) in PROGRAMS {
        let bin = build.join(name);
        let o = Command::new(&bin).output().unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.code() == Some(1) && stderr.contains("usage:"),
            "{} built by make does not start: {:?}\n{stderr}",
            bin.display(),
            o.status
        );
    }
    let out = make("clean");
    assert!(out.status.success(), "make clean failed");
    assert!(!build.exists(), "make clean left {}", build.display());
}

// ---- chapter 1: register -------------------------------------------------------------------

#[test]
fn register_with_registration_token_saves_a_private_runner_file() {
    let server = server();
    let dir = TempDir::new();
    let file = dir.file("runner.json");
    let out = run(
        "register",
        &[
            &server.url(),
            &server.registration_token(),
            &file,
            "--tag",
            "alpha",
            "--tag",
            "beta",
            "--locked",
            "--description",
            "c example runner",
        ],
        dir.path(),
    );
    out.expect_ok("register");
    assert_eq!(mode(&file), 0o600, "the runner file holds a token: mode 0600");
    let saved = read_json(&file);
    assert_eq!(saved["format"], "gitlab_runner_api.runner", "{saved}");
    let id = saved["id"].as_i64().expect("runner id in the file");
    assert!(out.stdout.contains(&format!("Registered runner {id} (c example runner)")), "{}", out.describe());
    assert!(out.stdout.contains("Tags: alpha beta"), "{}", out.describe());

    let runners = server.runners();
    let runner = runners.iter().find(|r| r.id == id).unwrap_or_else(|| panic!("server has no runner {id}"));
    assert_eq!(runner.created_via, "registration_token");
    assert_eq!(runner.tags, ["alpha", "beta"]);
    assert!(runner.locked, "--locked was given");
    assert_eq!(runner.description.as_deref(), Some("c example runner"));
    assert_eq!(saved["token"].as_str(), Some(runner.token.as_str()), "the file holds the runner's token");
}

#[test]
fn register_with_glrt_token_verifies_it() {
    let server = server();
    let dir = TempDir::new();
    let token = server.create_runner_token();
    let file = dir.file("runner.json");
    let out = run("register", &[&server.url(), &token, &file], dir.path());
    out.expect_ok("register glrt-");
    assert_eq!(mode(&file), 0o600);
    let saved = read_json(&file);
    assert_eq!(saved["token"].as_str(), Some(token.as_str()));
    let runner = server.runners().into_iter().find(|r| r.token == token).expect("the glrt- runner");
    assert_eq!(saved["id"].as_i64(), Some(runner.id), "the id learned from /runners/verify");
    assert!(out.stdout.contains(&format!("Registered runner {}", runner.id)), "{}", out.describe());
}

#[test]
fn register_with_bad_token_fails_with_the_library_message() {
    let server = server();
    let dir = TempDir::new();
    let file = dir.file("runner.json");
    let out = run("register", &[&server.url(), "not-a-valid-token", &file], dir.path());
    out.expect_code(1, "register with a bad token");
    assert!(
        out.stderr.contains("glr_runner_register") && out.stderr.contains("(-4)"),
        "the failing call and GLR_ERR_AUTH should be named\n{}",
        out.describe()
    );
    assert!(!Path::new(&file).exists(), "no runner file on failure");
}

// ---- chapter 2: get_job --------------------------------------------------------------------

#[test]
fn get_job_prints_the_job_hides_secrets_and_dumps_it_for_the_executor() {
    let server = server();
    let dir = TempDir::new();
    let runner = register(&server, &dir);
    let mut overrides = script_job(&["echo from-dumped-job-$((40+2))"], &["echo after-dumped-$((1+2))"]);
    overrides["job_info"] = json!({"name": "compile-docs", "stage": "docs"});
    let id = server.queue_job(overrides);
    let job_file = dir.file("job.json");

    let out = run("get_job", &[&runner, &job_file], dir.path());
    out.expect_ok("get_job");
    let record = job_record(&server, id);
    for expected in [
        format!("Received job {id}"),
        "name:         compile-docs".to_string(),
        "stage:        docs".to_string(),
        "ref:          main (branch)".to_string(),
        "project_path: group/test-project".to_string(),
        format!("job_url:      {}/group/test-project/-/jobs/{id}", server.url()),
        "  echo from-dumped-job-$((40+2))".to_string(),
        "  echo after-dumped-$((1+2))".to_string(),
        "GREETING=hello world".to_string(),
        "SECRET_PASSWORD=[MASKED]  masked".to_string(),
        "DEPLOY_CONFIG=host=deploy.example.com\\nport=2222\\n  file".to_string(),
    ] {
        assert!(out.stdout.contains(&expected), "get_job should print {expected:?}\n{}", out.describe());
    }
    assert!(!out.stdout.contains(DEFAULT_MASKED_VALUE), "a masked variable's value was printed\n{}", out.stdout);
    assert!(!out.stdout.contains(&record.token), "the job token was printed\n{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("CI_REPOSITORY_URL={}", server.url().replace("://", "://gitlab-ci-token:[MASKED]@"))),
        "the token inside CI_REPOSITORY_URL should show as [MASKED]\n{}",
        out.stdout
    );
    assert_eq!(record.state, "running", "the job is taken, not finished");

    assert_eq!(mode(&job_file), 0o600, "the job file holds tokens: mode 0600");
    let saved = read_json(&job_file);
    assert_eq!(saved["format"], "gitlab_runner_api.job", "{saved}");
    assert_eq!(saved["payload"]["id"].as_i64(), Some(id));

    // Another process picks the saved job up.
    let out = run("executor", &["--job", &job_file], dir.path());
    out.expect_ok("executor --job");
    let record = job_record(&server, id);
    assert_eq!(record.state, "success", "{}", out.describe());
    assert_in_order(&trace(&record), &["from-dumped-job-42\n", "after-dumped-3\n", "Job succeeded"]);
    assert_eq!(record.checksum_matches, Some(true));
}

#[test]
fn get_job_without_a_job_exits_2() {
    let server = server();
    let dir = TempDir::new();
    let runner = register(&server, &dir);
    let job_file = dir.file("job.json");
    let out = run("get_job", &[&runner, &job_file, "--tries", "1"], dir.path());
    out.expect_code(2, "get_job with no job queued");
    assert!(out.stdout.contains("No jobs are currently available"), "{}", out.describe());
    assert!(!Path::new(&job_file).exists(), "no job file without a job");
}

// ---- chapter 3: the executors --------------------------------------------------------------

fn executor_reports_success_and_script_failure(executor: &str) {
    let server = server();
    let dir = TempDir::new();
    let runner = register(&server, &dir);

    // The outputs differ from the commands ($((...))), so finding an output proves it ran.
    let ok_id = server.queue_job(script_job(
        &[
            "echo first-$((1+1))",
            "echo second-$((2+2)) >&2",
            "printf 'third-%s\\n' $((3+3))",
            "echo \"greeting=$GREETING\"",
            "echo \"secret-length=${#SECRET_PASSWORD}\"",
            "echo \"secret=$SECRET_PASSWORD\"",
            "cat \"$DEPLOY_CONFIG\"",
            "echo \"job-id=$CI_JOB_ID\"",
        ],
        &["echo after-$((5+5))", "exit 7"],
    ));
    let out = run(executor, &[&runner, "--once"], dir.path());
    out.expect_ok(executor);
    assert!(out.stdout.contains(&format!("Job {ok_id}: reported, state success")), "{}", out.describe());
    let record = job_record(&server, ok_id);
    let text = trace(&record);
    assert_eq!(record.state, "success", "{text}");
    assert_eq!(record.failure_reason, None);
    assert_eq!(record.exit_code, None);
    assert_eq!(record.checksum_matches, Some(true), "the final update's checksum matches the stored log");
    assert_in_order(
        &text,
        &[
            "$ echo first-$((1+1))",
            "first-2\n",
            "$ echo second-$((2+2)) >&2",
            "second-4\n",
            "third-6\n",
            "greeting=hello world\n",
            &format!("secret-length={}\n", DEFAULT_MASKED_VALUE.len()),
            "secret=[MASKED]\n",
            "host=deploy.example.com\nport=2222\n",
            &format!("job-id={ok_id}\n"),
            "Running after_script",
            "$ echo after-$((5+5))",
            "after-10\n",
            "$ exit 7",
            "Job succeeded",
        ],
    );
    assert!(!text.contains(DEFAULT_MASKED_VALUE), "a masked variable reached the log:\n{text}");
    assert_no_job_dirs_left(&dir);

    let failing_id = server.queue_job(script_job(
        &["echo before-failure-$((6*7))", "exit 3", "echo never-$((1+1))"],
        &["echo after-failure-$((2*2))"],
    ));
    let out = run(executor, &[&runner, "--once"], dir.path());
    out.expect_ok(executor); // the job was reported: its failure is not the executor's
    assert!(out.stdout.contains(&format!("Job {failing_id}: reported, state failed")), "{}", out.describe());
    let record = job_record(&server, failing_id);
    let text = trace(&record);
    assert_eq!(record.state, "failed", "{text}");
    assert_eq!(record.failure_reason.as_deref(), Some("script_failure"));
    assert_eq!(record.exit_code, Some(3));
    assert_eq!(record.checksum_matches, Some(true));
    assert_in_order(
        &text,
        &[
            "before-failure-42\n",
            "$ exit 3",
            "Running after_script",
            "after-failure-4\n",
            "ERROR: Job failed: exit code 3",
        ],
    );
    assert!(!text.contains("never-"), "the script must stop at the first failing line:\n{text}");
    assert_no_job_dirs_left(&dir);
}

#[test]
fn c_executor_reports_success_and_script_failure() {
    executor_reports_success_and_script_failure("executor");
}

#[test]
fn cpp_executor_reports_success_and_script_failure() {
    executor_reports_success_and_script_failure("executor_cpp");
}

#[test]
fn hpp_executor_reports_success_and_script_failure() {
    executor_reports_success_and_script_failure("executor_hpp_cpp");
}

#[test]
fn executor_without_a_job_exits_2() {
    let server = server();
    let dir = TempDir::new();
    let runner = register(&server, &dir);
    for executor in ["executor", "executor_cpp", "executor_hpp_cpp"] {
        let out = run(executor, &[&runner, "--once"], dir.path());
        out.expect_code(2, executor);
        assert!(out.stdout.contains("No job available"), "{}", out.describe());
    }
}

/// A job whose second line runs long; GitLab cancels it while that line runs.
fn executor_handles_cancel(executor: &str, graceful: bool) {
    let server = server();
    let dir = TempDir::new();
    let runner = register(&server, &dir);
    let id = server.queue_job(script_job(
        &["echo started-$((1+1))", "sleep 30; echo slept-$((1+1))", "echo not-reached-$((1+1))"],
        &["echo after-cancel-$((3+4))"],
    ));
    let running = spawn(executor, &[&runner, "--once"], dir.path());
    // The executor uploads the log before each line: the first line's output shows it is at
    // the second one.
    let seen = server.wait_for_job(id, Duration::from_secs(30) * slowdown(), |j| trace(j).contains("started-2\n"));
    assert!(seen.is_some(), "the first line's output never reached the server: {:?}", server.job(id));
    let canceled_at = Instant::now();
    server.cancel_job(id, graceful);
    let out = running.wait();
    let took = canceled_at.elapsed();
    out.expect_ok(executor);
    assert!(
        took < Duration::from_secs(20) * slowdown(),
        "the running command was not stopped: {took:?}\n{}",
        out.describe()
    );

    let record = job_record(&server, id);
    let text = trace(&record);
    assert_eq!(record.state, "canceled", "{text}");
    assert!(!text.contains("slept-2"), "the running command should have been killed:\n{text}");
    assert!(!text.contains("not-reached-2"), "no line may start after the cancel:\n{text}");
    if graceful {
        // Graceful: after_script runs and the job is reported (GitLab then marks it canceled).
        assert_in_order(&text, &["started-2\n", "Running after_script", "after-cancel-7\n", "Job canceled"]);
        assert!(out.stdout.contains(&format!("Job {id}: reported")), "{}", out.describe());
    } else {
        // Hard: GitLab accepts nothing more; the executor stops.
        assert!(!text.contains("after-cancel-7"), "no after_script after a hard cancel:\n{text}");
        assert!(out.stdout.contains(&format!("Job {id}: canceled by GitLab")), "{}", out.describe());
    }
    assert_no_job_dirs_left(&dir);
}

#[test]
fn c_executor_graceful_cancel_runs_after_script() {
    executor_handles_cancel("executor", true);
}

#[test]
fn c_executor_hard_cancel_stops_the_job() {
    executor_handles_cancel("executor", false);
}

#[test]
fn cpp_executor_graceful_cancel_runs_after_script() {
    executor_handles_cancel("executor_cpp", true);
}

#[test]
fn cpp_executor_hard_cancel_stops_the_job() {
    executor_handles_cancel("executor_cpp", false);
}

#[test]
fn hpp_executor_graceful_cancel_runs_after_script() {
    executor_handles_cancel("executor_hpp_cpp", true);
}

#[test]
fn hpp_executor_hard_cancel_stops_the_job() {
    executor_handles_cancel("executor_hpp_cpp", false);
}

/// The C++-wrapper executor finishes a job another process took and saved (`--job`).
#[test]
fn hpp_executor_runs_a_saved_job() {
    let server = server();
    let dir = TempDir::new();
    let runner = register(&server, &dir);
    let id = server.queue_job(script_job(&["echo saved-$((20+22))"], &["echo after-saved-$((1+1))"]));
    let job_file = dir.file("job.json");
    run("get_job", &[&runner, &job_file], dir.path()).expect_ok("get_job");
    let out = run("executor_hpp_cpp", &["--job", &job_file], dir.path());
    out.expect_ok("executor_hpp_cpp --job");
    assert!(out.stdout.contains(&format!("Job {id}: reported, state success")), "{}", out.describe());
    let record = job_record(&server, id);
    let text = trace(&record);
    assert_eq!(record.state, "success", "{text}");
    assert_eq!(record.checksum_matches, Some(true));
    assert_in_order(
        &text,
        &["(examples-c/executor_hpp.cpp)", "saved-42\n", "Running after_script", "after-saved-2\n", "Job succeeded"],
    );
    assert_no_job_dirs_left(&dir);
}

// ---- chapter 4: persist_job ----------------------------------------------------------------

#[test]
fn persist_job_taken_by_one_process_is_finished_by_another() {
    let server = server();
    let dir = TempDir::new();
    let runner = register(&server, &dir);
    let id = server.queue_job(json!({}));
    let job_file = dir.file("job.json");

    let out = run("persist_job", &["take", &runner, &job_file], dir.path());
    out.expect_ok("persist_job take");
    assert!(out.stdout.contains(&format!("Took job {id}")), "{}", out.describe());
    assert_eq!(mode(&job_file), 0o600);
    let record = job_record(&server, id);
    assert_eq!(record.state, "running", "taken, not finished");
    assert!(trace(&record).contains("Job started in process A"), "process A flushed its lines:\n{}", trace(&record));

    let out = run("persist_job", &["finish", &job_file], dir.path());
    out.expect_ok("persist_job finish");
    let record = job_record(&server, id);
    let text = trace(&record);
    assert_eq!(record.state, "success", "{text}");
    assert_eq!(record.checksum_matches, Some(true), "the checksum covers both processes' lines");
    let lines = [
        "Job started in process A",
        "Work submitted to the batch system in process A",
        "Batch work finished in process B",
        "Job finished in process B",
    ];
    for line in lines {
        assert_eq!(text.matches(line).count(), 1, "{line:?} must be in the log exactly once:\n{text}");
    }
    assert_in_order(&text, &lines);

    // The saved job still says "running", but GitLab knows better: no second finish.
    let out = run("persist_job", &["finish", &job_file], dir.path());
    assert_ne!(out.code, Some(0), "finishing the same job twice must fail\n{}", out.describe());
    assert_eq!(trace(&job_record(&server, id)).matches("Job finished in process B").count(), 1);
}

#[test]
fn persist_job_take_without_a_job_exits_2() {
    let server = server();
    let dir = TempDir::new();
    let runner = register(&server, &dir);
    let job_file = dir.file("job.json");
    let out = run("persist_job", &["take", &runner, &job_file], dir.path());
    out.expect_code(2, "persist_job take with no job");
    assert!(!Path::new(&job_file).exists());
}

#[test]
fn c_executor_downloads_dependencies_and_uploads_artifacts() {
    let server = server();
    let dir = TempDir::new();
    let runner = register(&server, &dir);
    // The default payload depends on the test server's fixture job (build/output.txt in its
    // archive) and declares `out/` (archive, on_success) and `report.xml` (junit, always).
    let id = server.queue_job(script_job(
        &[
            "cat build/output.txt",
            "mkdir -p out/sub && echo result-$((40+2)) > out/sub/result.txt",
            "echo '<testsuite name=\"t\"/>' > report.xml",
        ],
        &[],
    ));
    let out = run("executor", &[&runner, "--once"], dir.path());
    out.expect_ok("executor");
    let record = job_record(&server, id);
    let text = trace(&record);
    assert_eq!(record.state, "success", "{text}");
    assert_in_order(
        &text,
        &["Downloading artifacts for build", "built by the fixture job\n", "Uploading artifacts: 2 file(s)"],
    );

    let archive = record.artifacts.iter().find(|a| a.artifact_type == "archive").expect("the archive was uploaded");
    assert_eq!((archive.artifact_format.as_str(), archive.expire_in.as_deref()), ("zip", Some("7 days")));
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive.data.clone())).expect("a zip");
    let mut content = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("out/sub/result.txt").expect("out/sub/result.txt"), &mut content)
        .unwrap();
    assert_eq!(content, "result-42\n");

    let junit = record.artifacts.iter().find(|a| a.artifact_type == "junit").expect("the junit report was uploaded");
    assert_eq!(junit.artifact_format, "gzip");
    let mut xml = String::new();
    std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(&junit.data[..]), &mut xml).unwrap();
    assert_eq!(xml, "<testsuite name=\"t\"/>\n");
    assert_no_job_dirs_left(&dir);
}

// ---- C/C++ test programs -------------------------------------------------------------------

#[test]
fn cpp_wrapper_test_program_passes() {
    let dir = TempDir::new();
    let out = run("wrapper_test_cpp", &[], dir.path());
    out.expect_ok("tests/cpp/wrapper_test.cpp");
    assert!(out.stdout.starts_with("wrapper ok"), "{}", out.describe());
}

// ---- threads -------------------------------------------------------------------------------

#[test]
fn threads_share_one_runner_and_job_under_faults() {
    use glr_testserver::{Endpoint, Fault, FaultKind};
    let server = server();
    let dir = TempDir::new();
    let runner = register(&server, &dir);
    let id = server.queue_job(json!({}));
    // Faults the threads' flushes and the final report run into (each within the retries).
    let kinds = [
        FaultKind::Status { code: 500, retry_after: None },
        FaultKind::Status { code: 503, retry_after: None },
        FaultKind::DropConnection,
        FaultKind::DropAfterHandling,
        FaultKind::Delay(Duration::from_millis(100)),
    ];
    for i in 0..20 {
        let endpoint = if i % 4 == 3 { Endpoint::JobUpdate } else { Endpoint::Trace };
        server.inject_fault(Fault { endpoint, count: 1, kind: kinds[i % kinds.len()].clone() });
    }
    let (threads, lines) = (32, 40);
    let dumps = dir.path().join("dumps");
    std::fs::create_dir_all(&dumps).unwrap();
    let out = run("threads", &[&runner, &threads.to_string(), &lines.to_string(), dumps.to_str().unwrap()], dir.path());
    out.expect_ok("threads");
    let record = job_record(&server, id);
    let text = trace(&record);
    assert_eq!(record.state, "success", "{}", out.describe());
    assert_eq!(record.checksum_matches, Some(true));
    for t in 0..threads {
        for k in 0..lines {
            let line = format!("thread {t:02} line {k:03}\n");
            assert_eq!(text.matches(&line).count(), 1, "{line:?} must be stored exactly once\n{text}");
        }
    }
    assert_eq!(text.lines().count(), threads * lines, "nothing but the appended lines");
    for t in 0..threads {
        assert_eq!(mode(dumps.join(format!("job-{t}.json")).to_str().unwrap()), 0o600);
    }
}

// ---- leaving a program: glr_shutdown (issue 13, finding 7) ----------------------------------

/// What shutdown_exit appends: 70 lines of 100 bytes, "line 01 of 70 ....\n".
fn shutdown_exit_text() -> String {
    (1..=70)
        .map(|i| {
            let head = format!("line {i:02} of 70 ");
            format!("{head}{}\n", ".".repeat(99 - head.len()))
        })
        .collect()
}

#[test]
fn shutdown_before_returning_from_main_keeps_every_byte() {
    let server = server();
    let dir = TempDir::new();
    let runner = register(&server, &dir);
    let id = server.queue_job(json!({}));
    let out = run("shutdown_exit", &[&runner], dir.path());
    out.expect_ok("shutdown_exit");
    assert!(out.stdout.contains("glr_shutdown: GitLab has all of it"), "{}", out.describe());
    let record = job_record(&server, id);
    let expected = shutdown_exit_text();
    assert_eq!(expected.len(), 7000);
    assert_eq!(trace(&record), expected, "the server has every byte, once, in order\n{}", out.describe());
    assert_eq!(record.state, "running", "glr_shutdown does not finish the job");
}

/// The same program returning from main without glr_shutdown: the server has only what the
/// background happened to send before the exit. How much is a race, so only its correctness is
/// checked; the amount is printed (RELIABILITY.md records what runs showed).
#[test]
fn returning_from_main_without_shutdown_keeps_only_what_was_sent() {
    let server = server();
    let dir = TempDir::new();
    let runner = register(&server, &dir);
    let id = server.queue_job(json!({}));
    let out = run("shutdown_exit", &[&runner, "--no-shutdown"], dir.path());
    out.expect_ok("shutdown_exit --no-shutdown");
    let stored = trace(&job_record(&server, id));
    let expected = shutdown_exit_text();
    eprintln!("without glr_shutdown the server has {} of {} bytes", stored.len(), expected.len());
    assert!(expected.starts_with(&stored), "what the server has is a prefix of the log:\n{stored}");
}

// ---- fork() (issue 13, finding 5) -----------------------------------------------------------

/// The number that follows `marker` in the first line of `text` containing `line_start`.
fn number_after(text: &str, line_start: &str, marker: &str) -> f64 {
    let line = text.lines().find(|l| l.contains(line_start)).unwrap_or_else(|| panic!("no {line_start:?} in:\n{text}"));
    let rest = &line[line.find(marker).unwrap_or_else(|| panic!("no {marker:?} in {line:?}")) + marker.len()..];
    let token = rest.split_whitespace().next().unwrap_or("");
    token.parse().unwrap_or_else(|_| panic!("{token:?} (in {line:?}) is not a number"))
}

/// fork_child.c's `append_filler`: numbered lines until at least `bytes` bytes.
fn filler(who: &str, bytes: usize) -> String {
    let mut out = String::new();
    for i in 0.. {
        if out.len() >= bytes {
            break;
        }
        out.push_str(&format!("{who} filler {i:07}\n"));
    }
    out
}

#[test]
fn fork_child_takes_its_own_job_and_leaves_the_parent_s_alone() {
    if check() == Check::Tsan {
        // ThreadSanitizer cannot follow the fork()ed child of a multi-threaded process: by
        // default the child dies when it starts a thread; with die_after_fork=0 TSan disables
        // itself there, and here it then aborted with "dup thread with used id" (RELIABILITY.md).
        eprintln!("fork_child is not run under tsan: ThreadSanitizer does not support a multi-threaded fork()");
        return;
    }
    let server = server();
    let dir = TempDir::new();
    let runner = register(&server, &dir);
    let parent_id = server.queue_job(json!({}));
    let child_id = server.queue_job(json!({}));
    let out = run("fork_child", &[&runner], dir.path());
    out.expect_ok("fork_child");
    let shown = out.describe();
    assert!(out.stdout.contains(&format!("child: the parent's job {parent_id} is not ours")), "{shown}");
    assert_eq!(number_after(&out.stdout, "child: took job", "took job ") as i64, child_id, "{shown}");
    let took = number_after(&out.stdout, "child: took job", &format!("took job {child_id} "));
    eprintln!("the child had its job {took:.3} s after fork()");
    let limit = 10.0 * f64::from(slowdown());
    assert!(took < limit, "the child took {took} s to get a job (limit {limit} s)\n{shown}");

    let parent = job_record(&server, parent_id);
    assert_eq!(parent.state, "success", "{shown}");
    assert_eq!(parent.checksum_matches, Some(true));
    // Both logs are long (MiB blocks, prepared by each process's own block thread).
    let parent_log = format!("parent: before the fork\n{}parent: after the child is done\n", filler("parent", 2 << 20));
    assert!(
        trace(&parent) == parent_log,
        "each parent line once, nothing from the child (its copy of the pending text included)"
    );
    let child = job_record(&server, child_id);
    assert_eq!(child.state, "success", "{shown}");
    assert_eq!(child.checksum_matches, Some(true));
    assert!(trace(&child) == format!("child: the only line of job {child_id}\n{}", filler("child", 3 << 20)));
}

// ---- stopping a poller (issue 13, finding 6) --------------------------------------------------

/// A server whose long poll holds a job request for 30 s, with a runner registered.
fn long_polling(dir: &TempDir) -> (TestServer, String) {
    let server = TestServer::start_with(Config { long_poll_timeout: Duration::from_secs(30), ..Default::default() });
    let runner = register(&server, dir);
    (server, runner)
}

#[test]
fn stop_polling_interrupt_ends_the_long_poll_and_later_calls_work() {
    let dir = TempDir::new();
    let (_server, runner) = long_polling(&dir);
    let delay = (300 * slowdown()).to_string();
    let out = run("stop_polling", &[&runner, "interrupt", &delay], dir.path());
    out.expect_ok("stop_polling interrupt");
    let shown = out.describe();
    let took = number_after(&out.stdout, "poller: request 2 returned", "(-14) ");
    assert!(took < f64::from(slowdown()), "request_job returned {took} s after glr_runner_interrupt\n{shown}");
    let later = number_after(&out.stdout, "afterwards: request_job returned", "(-13) after ");
    assert!(
        later >= 0.95 && later < 1.0 + f64::from(slowdown()),
        "the next call ran to its 1 s bound: {later}\n{shown}"
    );
}

#[test]
fn stop_polling_free_during_request_job_ends_that_call() {
    let dir = TempDir::new();
    let (_server, runner) = long_polling(&dir);
    let delay = (300 * slowdown()).to_string();
    let out = run("stop_polling", &[&runner, "free", &delay], dir.path());
    out.expect_ok("stop_polling free");
    let shown = out.describe();
    let freed = number_after(&out.stdout, "glr_runner_free returned", "after ");
    let took = number_after(&out.stdout, "poller: request 2 returned", "(-14) ");
    let limit = f64::from(slowdown());
    assert!(freed < limit && took < limit, "free returned after {freed} s, request_job after {took} s\n{shown}");
}
