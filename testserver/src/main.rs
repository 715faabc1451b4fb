//! `glr-testserver`: run the GitLab runner-API double by hand or from scripts.
//! Prints `key=value` lines (url, registration_token, runner_token, job=ID per queued job) on
//! stdout, then serves until SIGINT/SIGTERM. See README.md.

use glr_testserver::{Config, TestServer};
use std::io::Write;
use std::time::Duration;

const USAGE: &str = "usage: glr-testserver [options]
  --listen ADDR               address to listen on (default 127.0.0.1:0, a free port)
  --jobs FILE                 queue one job per element of FILE (a JSON array of override objects;
                              {\"runner_info\": {\"timeout\": S}} sets a job's timeout)
  --queue N                   queue N default jobs
  --long-poll-seconds S       hold time of long-polled job requests (default 3, 0 = off)
  --trace-update-interval S   X-GitLab-Trace-Update-Interval on trace answers (default 3)
  --trace-persist-delays N    202 answers to a final update before it is applied (default 0)
  --no-registration-tokens    POST /api/v4/runners answers 410
  --legacy-verify             /runners/verify answers plain-text 200
  --no-two-phase-commit       ignore the runner's two_phase_job_commit feature
  --direct-download           artifact downloads with direct_download=true answer 302
  --quiet                     do not log requests to stderr
  --help                      this text
GitLab's clocks and limits (defaults are GitLab's; S = seconds, fractions allowed):
  --stale-job-timeout S       drop a running job not updated for S, stuck_or_timeout_failure (3600)
  --touch-threshold S         a PUT running / trace append refreshes the job only when its last
                              update is older than S (900)
  --ack-window S              two-phase commit: fail runner_provisioning_timeout and retry a job
                              not acknowledged within S (120)
  --job-token-leeway S        job token lifetime = max(min lifetime, job timeout) + S (300)
  --job-token-min-lifetime S  least job token lifetime before the leeway (60)
  --runner-token-lifetime S   runner tokens expire S after creation or reset (default: never)
  --max-trace-size BYTES      a trace reaching BYTES is refused, trace_size_exceeded; GitLab's
                              limit of L MB is L*1048576 (default 104857600 = 100 MB; 0 = none)
  --max-artifact-size BYTES   artifact file size limit, 413 beyond it (default 104857600)
  --default-artifacts-expire-in TEXT
                              expire_in stored when an upload gives none (default \"30 days\")";

fn main() {
    match run() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("glr-testserver: {e}\n{USAGE}");
            std::process::exit(2);
        }
    }
}

fn run() -> Result<(), String> {
    let mut cfg = Config { log_requests: true, ..Config::default() };
    let mut jobs_file = None;
    let mut queue = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => cfg.listen = value("--listen")?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--jobs" => jobs_file = Some(value("--jobs")?),
            "--queue" => queue = number(&value("--queue")?, "--queue")? as usize,
            "--long-poll-seconds" => {
                let s: f64 = value("--long-poll-seconds")?
                    .parse()
                    .map_err(|_| "--long-poll-seconds needs a number".to_string())?;
                if !(0.0..=86_400.0).contains(&s) {
                    return Err("--long-poll-seconds out of range".into());
                }
                cfg.long_poll_timeout = Duration::from_secs_f64(s);
            }
            "--trace-update-interval" => {
                cfg.trace_update_interval = number(&value("--trace-update-interval")?, "--trace-update-interval")?
            }
            "--trace-persist-delays" => {
                cfg.trace_persist_delays = number(&value("--trace-persist-delays")?, "--trace-persist-delays")? as u32
            }
            "--max-trace-size" => {
                cfg.max_trace_size = number(&value("--max-trace-size")?, "--max-trace-size")? as usize
            }
            "--max-artifact-size" => {
                cfg.max_artifact_size = number(&value("--max-artifact-size")?, "--max-artifact-size")? as usize
            }
            "--default-artifacts-expire-in" => cfg.default_artifacts_expire_in = value(&arg)?,
            "--stale-job-timeout" => cfg.stale_job_timeout = seconds(&value(&arg)?, &arg)?,
            "--touch-threshold" => cfg.touch_threshold = seconds(&value(&arg)?, &arg)?,
            "--ack-window" => cfg.ack_window = seconds(&value(&arg)?, &arg)?,
            "--job-token-leeway" => cfg.job_token_leeway = seconds(&value(&arg)?, &arg)?,
            "--job-token-min-lifetime" => cfg.job_token_min_lifetime = seconds(&value(&arg)?, &arg)?,
            "--runner-token-lifetime" => cfg.runner_token_lifetime = Some(seconds(&value(&arg)?, &arg)?),
            "--no-registration-tokens" => cfg.registration_tokens_enabled = false,
            "--legacy-verify" => cfg.legacy_verify = true,
            "--no-two-phase-commit" => cfg.two_phase_commit = false,
            "--direct-download" => cfg.artifacts_direct_download = true,
            "--quiet" => cfg.log_requests = false,
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let job_overrides: Vec<serde_json::Value> = match &jobs_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("--jobs {path}: {e}"))?;
            match serde_json::from_str(&text) {
                Ok(serde_json::Value::Array(a)) => a,
                Ok(_) => return Err(format!("--jobs {path}: expected a JSON array")),
                Err(e) => return Err(format!("--jobs {path}: {e}")),
            }
        }
        None => Vec::new(),
    };

    let server = TestServer::try_start_with(cfg).map_err(|e| format!("cannot listen: {e}"))?;
    let mut out = std::io::stdout().lock();
    let mut lines = vec![
        format!("url={}", server.url()),
        format!("registration_token={}", server.registration_token()),
        format!("runner_token={}", server.create_runner_token()),
    ];
    for o in job_overrides {
        lines.push(format!("job={}", server.queue_job(o)));
    }
    for _ in 0..queue {
        lines.push(format!("job={}", server.queue_job(serde_json::json!({}))));
    }
    for l in lines {
        writeln!(out, "{l}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    server.wait_for_shutdown_signal();
    Ok(())
}

/// Seconds, fractions allowed, up to ten years.
fn seconds(s: &str, name: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("{name} needs a number of seconds"))?;
    if !(0.0..=315_360_000.0).contains(&v) {
        return Err(format!("{name} out of range"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn number(s: &str, name: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("{name} needs a non-negative integer"))
}
