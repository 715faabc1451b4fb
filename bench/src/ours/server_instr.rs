//! Issue 16: the test server's instructions per job request, with jobs held and without. The
//! server is its own process run under callgrind (every thread of it), so the count is the
//! server's alone; the client is our library in this process.

use super::Result;
use crate::capi::Runner;
use crate::server::{self, Server, ServerExe};
use serde_json::{json, Value};
use std::path::PathBuf;

/// The jobs "held": queued with a tag no runner has, so that no request takes one (as in
/// section 5); the server keeps them, their tokens and their masked variables.
const NOBODY: &str = "bench-nobody-has-this-tag";

/// The server this binary would use: `glr-testserver` next to it, else its own `serve` mode.
fn default_server() -> Result<ServerExe> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name("glr-testserver");
    Ok(if bin.exists() { ServerExe::Binary(bin) } else { ServerExe::SelfServe(exe) })
}

/// Instructions of one server process (start, `held` jobs queued, a runner registered, `n` job
/// requests answered 204, SIGTERM).
fn count(exe: &ServerExe, held: usize, n: usize) -> Result<u64> {
    let out = std::env::temp_dir().join(format!("callgrind.server.{}.out", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let wrapper =
        ["valgrind".to_string(), "--tool=callgrind".into(), format!("--callgrind-out-file={}", out.display())];
    let srv = Server::start_wrapped(&wrapper, exe, server::DEFAULT_ARGS)?;
    srv.queue_tagged_jobs(held, NOBODY)?;
    let runner = Runner::register(&srv.url, &srv.registration_token)?;
    for _ in 0..n {
        if runner.request_job()?.is_some() {
            return Err("a job was handed out; this measurement needs none for this runner".into());
        }
    }
    drop(runner);
    srv.terminate()?;
    crate::instr::summary(&out)
}

/// For each number of jobs held in `held`: the server's instructions for `requests.0` and
/// `requests.1` job requests, the difference per request.
pub fn server_instr(a: &Value) -> Result<Value> {
    let exe = match a["server"].as_str() {
        Some(p) => ServerExe::Binary(PathBuf::from(p)),
        None => default_server()?,
    };
    let list = |k: &str| -> Vec<usize> {
        a[k].as_array().map(|v| v.iter().filter_map(|x| x.as_u64().map(|x| x as usize)).collect()).unwrap_or_default()
    };
    let (held, requests) = (list("held"), list("requests"));
    let [small, large] = requests[..] else { return Err("requests: two numbers".into()) };
    if large <= small {
        return Err("requests: the second must be larger".into());
    }
    let mut out = Vec::new();
    for h in held {
        let (a, b) = (count(&exe, h, small)?, count(&exe, h, large)?);
        let per_request = b.saturating_sub(a) as f64 / (large - small) as f64;
        out.push(json!({"held": h, "small": a, "large": b, "per_request": per_request}));
    }
    Ok(json!({"server": format!("{exe:?}"), "requests": [small, large], "runs": out}))
}
