//! Keeps the harness compiling and running: the `--quick` configuration (seconds) of every
//! scenario, our side only (the Python side needs a venv from PyPI; the full run does that).
//! No timing is asserted; the harness's own checks are: every log stored whole, every job of the
//! scale-out taken exactly once, one runner manager per worker... (it exits non-zero otherwise).

use std::process::Command;

#[test]
fn quick_run_writes_every_section_and_passes_its_checks() {
    let out = std::env::temp_dir().join(format!("glr-bench-smoke-{}.md", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--quick", "--no-python", "--out"])
        .arg(&out)
        .output()
        .expect("run the harness");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "harness failed: {stderr}");
    let md = std::fs::read_to_string(&out).expect("BENCHMARKS file written");
    let _ = std::fs::remove_file(&out);
    for heading in [
        "## Issue 4 targets",
        "## Issue 4: the append path and the wire",
        "## Issue 4: upload throughput",
        "live jobs in one process",
        "## Issue 16 targets",
        "## Issue 16: client CPU, the append tail, memory kept, the test server's cost",
        "## 1. register + request",
        "## 2. Append latency",
        "## 3. dumps / loads",
        "## 4. Peak memory",
        "## 5. request_job round trips",
        "## 6. Scaling with the log size",
        "## 7. Scaling with concurrent jobs",
        "## 8. Scale-out",
    ] {
        assert!(md.contains(heading), "missing section {heading:?} in:\n{md}");
    }
    assert!(!md.contains("**Failed:**"), "a scenario failed:\n{md}");
    assert!(!md.contains("Checks that failed"), "a check failed:\n{md}");
    // The Python side is reported as not run, never as numbers.
    assert!(md.contains("Python side not run: skipped (--no-python)"), "{md}");
}
