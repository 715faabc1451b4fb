//! Installing the Python bindings with pip brings the C library along: `pip install
//! ./bindings/python` (into a fresh venv) builds it with cargo and bundles it, and so does the
//! wheel `pip wheel ./bindings/python` makes (installed into another fresh venv). In each venv,
//! `bindings/python/tests/chapters.py` (the Python package documentation's four chapters) runs
//! from a directory of its own with nothing pointing at the library or the checkout; this test
//! checks that it loaded the bundled library and what the test server stored for its jobs.
//!
//! The package's build runs `cargo build --release --lib`: the first run builds the release
//! library (minutes), later ones find it current. pip needs PyPI (or its cache) for setuptools.
//! Run alone: `cargo test --test python_wheel` (needs python3 with venv; Debian: python3-venv).
#![cfg(target_os = "linux")]

mod common;

use common::build::{manifest_dir, require, scratch_dir};
use common::process::{self, Out};
use common::trace::{assert_in_order, trace};
use glr_testserver::{Config, TestServer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// pip's builds run cargo: a cold release build of the library takes minutes on a small machine.
const BUILD_TIMEOUT: Duration = Duration::from_secs(1200);
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const BUNDLED: &str = "gitlab_runner_api/libgitlab_runner_api.so";

/// A command that sees neither the library nor the checkout's package except as installed.
fn isolated(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for var in ["GITLAB_RUNNER_API_LIB", "PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "GLR_LOG"] {
        cmd.env_remove(var);
    }
    cmd.env("PIP_DISABLE_PIP_VERSION_CHECK", "1").env("PYTHONIOENCODING", "utf-8");
    cmd
}

#[track_caller]
fn run(cmd: Command, what: &str, timeout: Duration) -> Out {
    let out = process::run(cmd, what, timeout);
    out.expect_ok(what);
    out
}

/// A fresh venv at `dir`; returns its python.
fn venv(dir: &Path) -> PathBuf {
    let mut cmd = isolated("python3");
    cmd.args(["-m", "venv"]).arg(dir);
    run(cmd, "python3 -m venv (Debian: apt-get install python3-venv)", RUN_TIMEOUT);
    dir.join("bin/python")
}

/// `python -m pip ARGS` of a venv, in the repository's root (so "./bindings/python" is literal).
fn pip(python: &Path, args: &[&str], what: &str) -> Out {
    let mut cmd = isolated(python);
    cmd.args(["-m", "pip"]).args(args).current_dir(manifest_dir());
    run(cmd, what, BUILD_TIMEOUT)
}

/// Runs the chapters with a venv's python from `workdir` (a copy of the script there) and checks
/// the library it loaded and what the server stored for its jobs.
fn run_chapters(server: &TestServer, python: &Path, venv: &Path, workdir: &Path) {
    std::fs::create_dir_all(workdir).unwrap();
    std::fs::copy(manifest_dir().join("bindings/python/tests/chapters.py"), workdir.join("chapters.py")).unwrap();
    let ids = [server.queue_job(json!({})), server.queue_job(json!({}))];
    let mut cmd = isolated(python);
    cmd.arg("chapters.py").arg(server.url()).arg(server.registration_token()).current_dir(workdir);
    let out = run(cmd, "chapters.py", RUN_TIMEOUT);
    let report: Value = out
        .stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON report from chapters.py\n{}", out.describe()));

    let library = Path::new(report["library"].as_str().expect("library"));
    assert!(
        library.starts_with(venv) && library.ends_with(BUNDLED),
        "chapters.py loaded {} instead of the library bundled in {}",
        library.display(),
        venv.display()
    );
    let runner_id = report["runner_id"].as_i64().expect("runner_id");
    let runner = server.runners().into_iter().find(|r| r.id == runner_id).expect("the runner register-runner made");
    assert!(runner.locked, "register-runner --locked");

    let jobs = report["jobs"].as_array().expect("jobs");
    let got: Vec<i64> = jobs.iter().map(|j| j["id"].as_i64().expect("id")).collect();
    assert_eq!(got, ids, "the two queued jobs, in order");
    for (job, state) in jobs.iter().zip(["success", "failed"]) {
        let record = server.job(job["id"].as_i64().unwrap()).expect("job on the server");
        assert_eq!(job["state"], state);
        assert_eq!(record.state, state, "job {}", record.id);
        assert_eq!(record.checksum_matches, Some(true), "job {}: final checksum vs. stored log", record.id);
        if state == "failed" {
            assert_eq!(record.failure_reason.as_deref(), Some("script_failure"));
        }
        let lines: Vec<&str> = job["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
        let text = trace(&record);
        assert_in_order(&text, &lines);
        for line in &lines {
            assert_eq!(text.matches(line).count(), 1, "{line:?} once in the log of job {}:\n{text}", record.id);
        }
        assert!(text.starts_with("Running with gitlab_runner_api "), "the package's first line:\n{text}");
    }
}

/// The wheel's name and its WHEEL metadata and file list, read with the venv's Python.
fn wheel_contents(python: &Path, wheel: &Path) -> String {
    let code = "import sys, zipfile\n\
                z = zipfile.ZipFile(sys.argv[1])\n\
                print('\\n'.join(z.namelist()))\n\
                print(next(z.read(n).decode() for n in z.namelist() if n.endswith('.dist-info/WHEEL')))\n";
    let mut cmd = isolated(python);
    cmd.args(["-c", code]).arg(wheel);
    run(cmd, "reading the wheel", RUN_TIMEOUT).stdout
}

#[test]
fn pip_installs_the_package_with_its_library() {
    require("python3", "python3");
    let scratch = scratch_dir("python-wheel");
    // Fresh venvs every run (an earlier run's install must not hide a broken build).
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let server = TestServer::start_with(Config {
        long_poll_timeout: Duration::from_millis(200),
        trace_update_interval: 1,
        ..Config::default()
    });

    // 1. pip install ./bindings/python
    let installed = scratch.join("venv-pip-install");
    let python = venv(&installed);
    pip(&python, &["install", "./bindings/python"], "pip install ./bindings/python");
    run_chapters(&server, &python, &installed, &scratch.join("run-pip-install"));

    // 2. a wheel, installed into another fresh venv
    let wheelhouse = scratch.join("wheelhouse");
    pip(&python, &["wheel", "--no-deps", "-w", wheelhouse.to_str().unwrap(), "./bindings/python"], "pip wheel");
    let wheels: Vec<PathBuf> = std::fs::read_dir(&wheelhouse).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(wheels.len(), 1, "{wheels:?}");
    let wheel = &wheels[0];
    let name = wheel.file_name().unwrap().to_str().unwrap();
    let arch = std::env::consts::ARCH;
    assert_eq!(name, format!("gitlab_runner_api_ctypes-0.1.0-py3-none-linux_{arch}.whl"), "a platform wheel");
    let contents = wheel_contents(&python, wheel);
    assert!(contents.lines().any(|l| l == BUNDLED), "{BUNDLED} is not in {name}:\n{contents}");
    assert!(contents.contains("Root-Is-Purelib: false"), "{contents}");
    assert!(contents.contains(&format!("Tag: py3-none-linux_{arch}")), "{contents}");

    let from_wheel = scratch.join("venv-wheel");
    let python = venv(&from_wheel);
    pip(&python, &["install", wheel.to_str().unwrap()], "pip install the wheel");
    run_chapters(&server, &python, &from_wheel, &scratch.join("run-wheel"));

    // Venvs and the wheel hold copies of the library: do not leave them behind.
    let _ = std::fs::remove_dir_all(&scratch);
}
