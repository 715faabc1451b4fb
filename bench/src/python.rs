//! The Python package gitlab-runner-api 1.0.4 in a private venv under the target directory, and
//! its driver script (`bench/python/driver.py`).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const PACKAGE: &str = "gitlab-runner-api==1.0.4";

pub struct Python {
    exe: PathBuf,
    driver: PathBuf,
    /// e.g. `3.11.7`
    pub python_version: String,
    /// `1.0.4`
    pub package_version: String,
}

fn driver_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/python/driver.py"))
}

fn run_cmd(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(6).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!("{what}: {} ({})", out.status, tail.join(" | ")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The RESULT line of a child's stdout.
pub fn parse_result(stdout: &str) -> Result<Value, String> {
    let line = stdout.lines().rev().find_map(|l| l.strip_prefix("RESULT ")).ok_or("no RESULT line")?;
    serde_json::from_str(line).map_err(|e| format!("RESULT line: {e}"))
}

impl Python {
    /// Creates `<target>/bench-venv` and installs the package into it if needed.
    pub fn setup(target_dir: &Path) -> Result<Python, String> {
        let venv = target_dir.join("bench-venv");
        let exe = venv.join("bin/python");
        let driver = driver_path();
        let version = |exe: &Path| -> Result<Value, String> {
            let out = run_cmd(Command::new(exe).arg(&driver).arg("--version"), "python driver --version")?;
            parse_result(&out)
        };
        if let Ok(v) = version(&exe) {
            if v["version"] == "1.0.4" {
                return Ok(Python::new(exe, driver, &v));
            }
        }
        if !exe.exists() {
            run_cmd(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv")?;
        }
        run_cmd(
            Command::new(&exe).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                PACKAGE,
                "setuptools<82",
            ]),
            &format!("pip install {PACKAGE} 'setuptools<82'"),
        )?;
        let v = version(&exe)?;
        if v["version"] != "1.0.4" {
            return Err(format!("installed gitlab_runner_api reports version {}", v["version"]));
        }
        Ok(Python::new(exe, driver, &v))
    }

    fn new(exe: PathBuf, driver: PathBuf, v: &Value) -> Python {
        Python {
            exe,
            driver,
            python_version: v["python"].as_str().unwrap_or("?").to_string(),
            package_version: v["version"].as_str().unwrap_or("?").to_string(),
        }
    }

    /// Runs one scenario of the driver in a fresh interpreter.
    pub fn run(&self, mode: &str, args: &Value) -> Result<Value, String> {
        let out = run_cmd(
            Command::new(&self.exe).arg(&self.driver).arg(mode).arg(args.to_string()),
            &format!("python driver {mode}"),
        )?;
        parse_result(&out)
    }
}
