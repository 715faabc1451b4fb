//! Issue 16: client CPU per MiB uploaded, ours and a raw HTTP client, against one test server in
//! another process (so that this process's CPU time is the client's alone: the caller's thread,
//! the library's threads, the raw client's runtime thread).

use super::{arg_str, arg_u, raw_patches, Result};
use crate::capi::Runner;
use crate::content;
use crate::proc::{process_cpu_secs, thread_cpu_secs, threads_cpu_between, threads_cpu_ns};
use serde_json::{json, Value};
use std::time::Instant;

/// `runs` times: a `mib` MiB log appended in 100-byte lines then `glr_job_set_success` (ours),
/// and the same log PATCHed in 1 MiB chunks by a raw reqwest client (as in `i4-throughput`);
/// CPU time of this process (getrusage RUSAGE_SELF) and wall time of each.
pub fn upload_cpu(a: &Value) -> Result<Value> {
    let (url, reg) = (arg_str(a, "url")?, arg_str(a, "reg")?);
    let (runs, mib) = (arg_u(a, "runs")?, arg_u(a, "mib")?);
    let runner = Runner::register(&url, &reg)?;
    let text = content::stream(mib << 20);
    let http = reqwest::blocking::Client::new();
    let mut out = Vec::new();
    for _ in 0..runs {
        let job = runner.take_job()?;
        let threads0 = threads_cpu_ns();
        let (cpu0, t) = (process_cpu_secs(), Instant::now());
        let appending0 = thread_cpu_secs();
        for l in text.chunks(100) {
            job.append(l)?;
        }
        // The appending thread's own CPU for the appends (part of ours: the raw client has none).
        let appending_cpu = thread_cpu_secs() - appending0;
        job.set_success()?;
        let (ours_cpu, ours_secs) = (process_cpu_secs() - cpu0, t.elapsed().as_secs_f64());
        // Where ours went, by thread: the caller's, and the library's (by their names).
        let ours_threads = threads_cpu_between(&threads0, &threads_cpu_ns());
        let id = job.id();
        drop(job);

        // The raw client PATCHes a job our library took (and so committed), then leaves it.
        let raw_job = runner.take_job()?;
        let (cpu0, t) = (process_cpu_secs(), Instant::now());
        raw_patches(&http, &url, &raw_job, &text)?;
        let (raw_cpu, raw_secs) = (process_cpu_secs() - cpu0, t.elapsed().as_secs_f64());
        // Both logs stored whole, checked after the timed parts.
        let stored = |job: i64| -> Result<bool> {
            let r = http.get(format!("{url}/__control/jobs/{job}/trace")).send().map_err(|e| e.to_string())?;
            Ok(r.bytes().map_err(|e| e.to_string())? == text)
        };
        out.push(json!({
            "job": id, "raw_job": raw_job.id(), "bytes": text.len(),
            "ours_stored": stored(id)?, "raw_stored": stored(raw_job.id())?,
            "ours_cpu_secs": ours_cpu, "ours_append_cpu_secs": appending_cpu, "ours_threads_cpu_secs": ours_threads, "ours_secs": ours_secs, "raw_cpu_secs": raw_cpu, "raw_secs": raw_secs,
        }));
    }
    Ok(json!({"runs": out}))
}
