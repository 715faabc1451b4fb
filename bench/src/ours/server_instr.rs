//! Issue 16: the test server's instructions per job request, with jobs held and without. The
//! server is its own process run under callgrind (every thread of it), so the count is the
//! server's alone; the client is our library in this process.

use super::Result;
use crate::capi::Runner;
use crate::server::{self, Server, ServerExe};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The jobs "held": queued with a tag no runner has, so that no request takes one (as in
/// section 5); the server keeps them, their tokens and their masked variables.
const NOBODY: &str = "bench-nobody-has-this-tag";

/// The server's background clock task: every 100 ms it looks at every job, a cost per second
/// held, not per request. Callgrind stops counting on entering it and resumes on leaving it, so
/// a slower run (a busy machine, valgrind's own pace) does not count more of it.
const CLOCK_TASK: &str = "glr_testserver::clocks::run*";

/// The server this binary would use: `glr-testserver` next to it, else its own `serve` mode.
fn default_server() -> Result<ServerExe> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name("glr-testserver");
    Ok(if bin.exists() { ServerExe::Binary(bin) } else { ServerExe::SelfServe(exe) })
}

/// `callgrind_control ARG PID`: zeroes the counters (`-z`) or writes them out (`-d`).
fn control(arg: &str, pid: u32) -> Result<()> {
    let out = Command::new("callgrind_control")
        .args([arg, &pid.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("callgrind_control: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains("OK") {
        return Err(format!("callgrind_control {arg}: {} {text}", out.status));
    }
    Ok(())
}

/// Instructions of the server process over `n` job requests (answered 204), after it was
/// started, made to hold `held` jobs, and answered `warm` job requests of the same runner: the
/// counters are zeroed right before the `n` and written out right after, so neither the start,
/// the queueing nor the shutdown (which frees every job) is counted. `fresh`: the requests carry
/// no `last_update` (a raw client sending the runner's token and info), so the server looks for
/// a job in its queue every time; else our library's requests, which send back the queue cursor
/// of the last answer, so the server answers 204 from it (as GitLab does) without the queue.
fn count(exe: &ServerExe, held: usize, warm: usize, n: usize, fresh: bool) -> Result<u64> {
    let out = std::env::temp_dir().join(format!("callgrind.server.{}.out", std::process::id()));
    let dump = out.with_extension("out.1");
    let _ = std::fs::remove_file(&dump);
    let wrapper = [
        "valgrind".to_string(),
        "--tool=callgrind".into(),
        format!("--callgrind-out-file={}", out.display()),
        format!("--toggle-collect={CLOCK_TASK}"),
        // After it: --toggle-collect turns counting off at the start (to count only the task).
        "--collect-atstart=yes".into(),
    ];
    let srv = Server::start_wrapped(&wrapper, exe, server::DEFAULT_ARGS)?;
    srv.queue_tagged_jobs(held, NOBODY)?;
    let runner = Runner::register(&srv.url, &srv.registration_token)?;
    let token = serde_json::from_str::<Value>(&runner.dumps()?).map_err(|e| e.to_string())?["token"]
        .as_str()
        .ok_or("runner dump without token")?
        .to_string();
    let body = json!({"token": token, "info": {"name": "raw", "features": {"variables": true}}}).to_string();
    let http = reqwest::blocking::Client::new();
    let endpoint = format!("{}/api/v4/jobs/request", srv.url);
    let ask = |k: usize| -> Result<()> {
        for _ in 0..k {
            let none = if fresh {
                let r = http
                    .post(&endpoint)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .map_err(|e| e.to_string())?;
                r.status().as_u16() == 204
            } else {
                runner.request_job()?.is_none()
            };
            if !none {
                return Err("a job was handed out; this measurement needs none for this runner".into());
            }
        }
        Ok(())
    };
    ask(warm)?;
    control("-z", srv.pid())?;
    ask(n)?;
    control("-d", srv.pid())?;
    drop(runner);
    srv.terminate()?;
    let _ = std::fs::remove_file(&out);
    crate::instr::summary(&dump)
}

/// For each number of jobs held in `held`: the server's instructions per job request, over
/// `requests.1` requests after `requests.0` uncounted ones; `fresh`: see `count`.
pub fn server_instr(a: &Value) -> Result<Value> {
    let exe = match a["server"].as_str() {
        Some(p) => ServerExe::Binary(PathBuf::from(p)),
        None => default_server()?,
    };
    let list = |k: &str| -> Vec<usize> {
        a[k].as_array().map(|v| v.iter().filter_map(|x| x.as_u64().map(|x| x as usize)).collect()).unwrap_or_default()
    };
    let (held, requests) = (list("held"), list("requests"));
    let [warm, n] = requests[..] else { return Err("requests: two numbers (uncounted, counted)".into()) };
    if n == 0 {
        return Err("requests: no request to count".into());
    }
    let fresh = a["fresh"] == true;
    let mut out = Vec::new();
    for h in held {
        let total = count(&exe, h, warm, n, fresh)?;
        out.push(json!({"held": h, "instructions": total, "per_request": total as f64 / n as f64}));
    }
    Ok(json!({"server": format!("{exe:?}"), "requests": [warm, n], "runs": out}))
}
