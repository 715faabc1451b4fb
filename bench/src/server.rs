//! The test server as a separate process (`glr-testserver`), shared by both implementations in
//! a scenario, and its `/__control/` interface.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub type Result<T> = std::result::Result<T, String>;

/// How to start a server process.
#[derive(Clone, Debug)]
pub enum ServerExe {
    /// `target/<profile>/glr-testserver`.
    Binary(PathBuf),
    /// This harness's own `serve` mode (the same library and options), when the binary is not
    /// built (the smoke test).
    SelfServe(PathBuf),
}

impl ServerExe {
    pub fn describe(&self) -> String {
        match self {
            ServerExe::Binary(p) => {
                let profile = p.parent().and_then(|d| d.file_name()).map(|d| d.to_string_lossy().into_owned());
                format!("`glr-testserver` ({} build, a separate process)", profile.unwrap_or_default())
            }
            ServerExe::SelfServe(_) => "`bench serve` (the glr_testserver library in a separate process)".into(),
        }
    }
}

/// The options every scenario uses: no long polling (a runner that finds the queue empty hears
/// so at once: the scale-out workers stop, request_job round trips measure the client), and a
/// trace limit above the 100 MiB log.
pub const DEFAULT_ARGS: &[&str] =
    &["--quiet", "--long-poll-seconds", "0", "--trace-update-interval", "3", "--max-trace-size", "268435456"];

pub struct Server {
    child: Child,
    pub url: String,
    pub registration_token: String,
    pub runner_token: String,
    http: reqwest::blocking::Client,
}

impl Server {
    pub fn start(exe: &ServerExe, args: &[&str]) -> Result<Server> {
        Server::start_wrapped(&[], exe, args)
    }

    /// The server run by `wrapper` (e.g. `valgrind --tool=callgrind ...`; empty: run directly).
    pub fn start_wrapped(wrapper: &[String], exe: &ServerExe, args: &[&str]) -> Result<Server> {
        let (program, serve) = match exe {
            ServerExe::Binary(p) => (p, None),
            ServerExe::SelfServe(p) => (p, Some("serve")),
        };
        let mut cmd = match wrapper.split_first() {
            None => Command::new(program),
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(program);
                c
            }
        };
        cmd.args(serve);
        let mut child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the test server {exe:?}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut read = |key: &str| -> Result<String> {
            let line = lines
                .next()
                .ok_or_else(|| format!("test server ended before printing {key}="))?
                .map_err(|e| e.to_string())?;
            line.strip_prefix(&format!("{key}="))
                .map(str::to_string)
                .ok_or_else(|| format!("test server printed {line:?}, expected {key}="))
        };
        let url = read("url")?;
        let registration_token = read("registration_token")?;
        let runner_token = read("runner_token")?;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Server { child, url, registration_token, runner_token, http })
    }

    fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<reqwest::blocking::Response> {
        let mut req = self.http.request(method.clone(), format!("{}/__control/{path}", self.url));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().map_err(|e| format!("{method} /__control/{path}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{method} /__control/{path}: {}", resp.status()));
        }
        Ok(resp)
    }

    fn control_json(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let bytes = self.control(method, path, body)?.bytes().map_err(|e| format!("/__control/{path}: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("/__control/{path}: {e}"))
    }

    /// Queues `n` default jobs; returns their ids.
    pub fn queue_jobs(&self, n: usize) -> Result<Vec<i64>> {
        (0..n)
            .map(|_| {
                let v = self.control_json(reqwest::Method::POST, "jobs", Some(json!({})))?;
                v["id"].as_i64().ok_or_else(|| "POST /__control/jobs: no id".to_string())
            })
            .collect()
    }

    /// Queues `n` jobs tagged `tag` (a runner without that tag never gets them: they only make the
    /// server hold more jobs).
    pub fn queue_tagged_jobs(&self, n: usize, tag: &str) -> Result<()> {
        for _ in 0..n {
            self.control(reqwest::Method::POST, "jobs", Some(json!({"overrides": {}, "tags": [tag]})))?;
        }
        Ok(())
    }

    /// Every runner-API request delayed by `ms` (0: no delay); replaces pending faults.
    pub fn set_delay(&self, ms: u64) -> Result<()> {
        self.control(reqwest::Method::DELETE, "faults", None)?;
        if ms > 0 {
            let fault = json!({"endpoint": "any", "kind": "delay", "delay_ms": ms, "count": u32::MAX});
            self.control(reqwest::Method::POST, "faults", Some(fault))?;
        }
        Ok(())
    }

    /// A job record (includes the trace: only for small logs).
    pub fn job(&self, id: i64) -> Result<Value> {
        self.control_json(reqwest::Method::GET, &format!("jobs/{id}"), None)
    }

    /// All job records.
    pub fn jobs(&self) -> Result<Vec<Value>> {
        match self.control_json(reqwest::Method::GET, "jobs", None)? {
            Value::Array(a) => Ok(a),
            _ => Err("GET /__control/jobs: not an array".into()),
        }
    }

    /// The raw stored trace.
    pub fn trace(&self, id: i64) -> Result<Vec<u8>> {
        let resp = self.control(reqwest::Method::GET, &format!("jobs/{id}/trace"), None)?;
        resp.bytes().map(|b| b.to_vec()).map_err(|e| e.to_string())
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends the server with SIGTERM and waits for it: `glr-testserver` shuts down cleanly on it
    /// (and a process under valgrind writes its output either way).
    pub fn terminate(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().map_err(|e| format!("kill: {e}"))?;
        if !status.success() {
            return Err(format!("kill -TERM {pid}: {status}"));
        }
        self.child.wait().map_err(|e| format!("waiting for the test server: {e}"))?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bench serve [options]`: the test server with the options the harness uses, printing the
/// same lines as `glr-testserver`. Serves until killed.
pub fn serve(args: &[String]) -> Result<()> {
    use glr_testserver::{Config, TestServer};
    let mut cfg = Config::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--quiet" => cfg.log_requests = false,
            "--long-poll-seconds" => {
                let s: f64 = value()?.parse().map_err(|e| format!("{a}: {e}"))?;
                cfg.long_poll_timeout = Duration::from_secs_f64(s);
            }
            "--trace-update-interval" => {
                cfg.trace_update_interval = value()?.parse().map_err(|e| format!("{a}: {e}"))?
            }
            "--max-trace-size" => cfg.max_trace_size = value()?.parse().map_err(|e| format!("{a}: {e}"))?,
            other => return Err(format!("serve: unknown option {other}")),
        }
    }
    let server = TestServer::try_start_with(cfg).map_err(|e| e.to_string())?;
    println!("url={}", server.url());
    println!("registration_token={}", server.registration_token());
    println!("runner_token={}", server.create_runner_token());
    use std::io::Write;
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
