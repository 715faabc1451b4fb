//! Instruction counts with callgrind: repeatable for the same binary and inputs whatever else the
//! machine does, so the per-call figures of the issue 16 targets are stable on a noisy machine.

use std::path::Path;
use std::process::{Command, Stdio};

pub type Result<T> = std::result::Result<T, String>;

/// Whether valgrind can be run here.
pub fn available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `exe args` under callgrind and returns the instructions executed: inside the calls of
/// `toggle` (and what they call, on their thread) when given, else by the whole process.
pub fn count(exe: &Path, args: &[String], toggle: Option<&str>, scratch: &Path) -> Result<u64> {
    let out = scratch.join(format!("callgrind.{}.out", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind").arg(format!("--callgrind-out-file={}", out.display()));
    if let Some(f) = toggle {
        cmd.arg(format!("--toggle-collect={f}"));
    }
    let status = cmd
        .arg(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("valgrind: {e}"))?;
    if !status.status.success() {
        return Err(format!(
            "valgrind {}: {}",
            status.status,
            String::from_utf8_lossy(&status.stderr).lines().last().unwrap_or("")
        ));
    }
    summary(&out)
}

/// The instruction count of a callgrind output file, which is then removed.
pub fn summary(out: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let _ = std::fs::remove_file(out);
    // "summary: N" (or "totals: N") holds the instruction count (the default event, Ir).
    text.lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| "callgrind output without a summary".to_string())
}
