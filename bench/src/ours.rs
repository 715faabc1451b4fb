//! Our implementation's side of every scenario, run in a child process (`bench child MODE JSON`)
//! so that memory and thread counts are those of a process doing only this, like a C program
//! linking the library. Each mode prints one JSON object; the harness checks the server's view.

use crate::capi::{Job, Runner};
use crate::content;
use crate::proc;
use crate::stats::percentiles_ns;
use glr_testserver::{Config, Endpoint, Fault, FaultKind, TestServer};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod append_tail;
mod rss_append;
mod server_instr;
mod upload_cpu;

pub type Result<T> = std::result::Result<T, String>;

fn arg_str(a: &Value, k: &str) -> Result<String> {
    a[k].as_str().map(str::to_string).ok_or_else(|| format!("argument {k} missing"))
}
fn arg_u(a: &Value, k: &str) -> Result<usize> {
    a[k].as_u64().map(|v| v as usize).ok_or_else(|| format!("argument {k} missing"))
}

pub fn run(mode: &str, a: &Value) -> Result<Value> {
    match mode {
        "e2e" => e2e(a),
        "latency" => latency(a),
        "dumpsloads" => dumps_loads(a),
        "hold" => hold(a),
        "rtt" => rtt(a),
        "logsize" => log_size(a),
        "concurrent" => concurrent(a),
        "worker" => worker(a),
        "i4-append" => i4_append(a),
        "i4-throughput" => i4_throughput(a),
        "i4-jobs" => i4_jobs(a),
        "heap" => heap(a),
        "i14-parked" => i14_parked(a),
        "append-instr" => append_instr(a),
        "append-faults" => append_faults(a),
        "rtt-instr" => rtt_instr(a),
        "dumps-instr" => dumps_instr(a),
        "loads-instr" => loads_instr(a),
        "upload-cpu" => upload_cpu::upload_cpu(a),
        "append-p999" => append_tail::append_p999(a),
        "append-max-jobs" => append_tail::append_max_jobs(a),
        "rss-append" => rss_append::rss_append(a),
        "server-instr" => server_instr::server_instr(a),
        other => Err(format!("unknown child mode {other}")),
    }
}

/// register + request + N appends of 100-byte lines + set_success, `runs` times.
fn e2e(a: &Value) -> Result<Value> {
    let (url, reg) = (arg_str(a, "url")?, arg_str(a, "reg")?);
    let (runs, appends) = (arg_u(a, "runs")?, arg_u(a, "appends")?);
    let lines: Vec<Vec<u8>> = (0..appends).map(|i| content::line(i, 100)).collect();
    let mut secs = Vec::new();
    let mut jobs = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let runner = Runner::register(&url, &reg)?;
        let job = runner.take_job()?;
        for l in &lines {
            job.append(l)?;
        }
        job.set_success()?;
        secs.push(t.elapsed().as_secs_f64());
        jobs.push(job.id());
    }
    Ok(json!({"secs": secs, "jobs": jobs}))
}

/// Per-append latency of `appends` 100-byte lines on one job (then set_success, untimed).
fn latency(a: &Value) -> Result<Value> {
    let (url, reg) = (arg_str(a, "url")?, arg_str(a, "reg")?);
    let (runs, appends) = (arg_u(a, "runs")?, arg_u(a, "appends")?);
    let lines: Vec<Vec<u8>> = (0..appends).map(|i| content::line(i, 100)).collect();
    let runner = Runner::register(&url, &reg)?;
    let mut out = Vec::new();
    for _ in 0..runs {
        let job = runner.take_job()?;
        let mut samples = Vec::with_capacity(appends);
        for l in &lines {
            let t = Instant::now();
            let st = job.append_raw(l);
            samples.push(t.elapsed().as_nanos() as u64);
            if st != 0 {
                return Err(format!("append: status {st}"));
            }
        }
        job.set_success()?;
        let p = percentiles_ns(&mut samples, &[50.0, 99.0, 100.0]);
        out.push(json!({"job": job.id(), "p50_ns": p[0], "p99_ns": p[1], "max_ns": p[2]}));
    }
    Ok(json!({"runs": out}))
}

/// dumps and loads per second of a job holding a `log_bytes` log.
fn dumps_loads(a: &Value) -> Result<Value> {
    let (url, reg) = (arg_str(a, "url")?, arg_str(a, "reg")?);
    let (runs, log_bytes, iters) = (arg_u(a, "runs")?, arg_u(a, "log_bytes")?, arg_u(a, "iters")?);
    let runner = Runner::register(&url, &reg)?;
    let job = runner.take_job()?;
    let text = content::stream(log_bytes);
    for chunk in text.chunks(100) {
        job.append(chunk)?;
    }
    job.flush()?;
    let dump = job.dumps_c()?;
    let mut dumps = Vec::new();
    let mut loads = Vec::new();
    let mut floor = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for _ in 0..iters {
            job.dumps_discard()?;
        }
        dumps.push(iters as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for _ in 0..iters {
            drop(Job::loads_c(&dump)?);
        }
        loads.push(iters as f64 / t.elapsed().as_secs_f64());
        // The floor of any load of this dump through the C API: its length found, its UTF-8
        // checked and its bytes copied once into memory of the loader's own.
        let t = Instant::now();
        for _ in 0..iters {
            let s = std::str::from_utf8(std::hint::black_box(&dump).to_bytes()).map_err(|e| e.to_string())?;
            std::hint::black_box(String::from(s));
        }
        floor.push(iters as f64 / t.elapsed().as_secs_f64());
    }
    // The loaded copy is the same job: its log is the dumped one.
    let back = Job::loads_c(&dump)?;
    let same = back.dumps()?.len() == dump.as_bytes().len();
    drop(back);
    job.set_success()?;
    Ok(
        json!({"dumps_per_s": dumps, "loads_per_s": loads, "floor_per_s": floor, "dump_bytes": dump.as_bytes().len(), "roundtrip_same_size": same, "job": job.id()}),
    )
}

/// A process that takes and holds `n` jobs: its peak memory.
fn hold(a: &Value) -> Result<Value> {
    let baseline_kib = proc::rss_kib();
    let (url, reg, n) = (arg_str(a, "url")?, arg_str(a, "reg")?, arg_u(a, "n")?);
    let runner = Runner::register(&url, &reg)?;
    let mut jobs = Vec::with_capacity(n);
    for _ in 0..n {
        jobs.push(runner.take_job()?);
    }
    let out = json!({
        "n": jobs.len(), "baseline_kib": baseline_kib, "rss_kib": proc::rss_kib(), "hwm_kib": proc::hwm_kib(),
        "threads": proc::threads_settled(),
    });
    drop(jobs);
    Ok(out)
}

/// request_job round trips (no job queued: 204) through the C API, then the same POST body
/// with a raw HTTP client (reqwest, keep-alive), on the same server.
fn rtt(a: &Value) -> Result<Value> {
    let (url, reg) = (arg_str(a, "url")?, arg_str(a, "reg")?);
    let (runs, n) = (arg_u(a, "runs")?, arg_u(a, "n")?);
    let runner = Runner::register(&url, &reg)?;
    let token = serde_json::from_str::<Value>(&runner.dumps()?).map_err(|e| e.to_string())?["token"]
        .as_str()
        .ok_or("runner dump without token")?
        .to_string();
    for _ in 0..20 {
        if runner.request_job()?.is_some() {
            return Err("a job was queued; this scenario needs an empty queue".into());
        }
    }
    // The body our library sends, from the server's request log (token redacted there).
    let http = reqwest::blocking::Client::new();
    let log: Value = http
        .get(format!("{url}/__control/requests"))
        .send()
        .and_then(|r| r.bytes())
        .map_err(|e| format!("request log: {e}"))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("request log: {e}")))?;
    let mut body = log
        .as_array()
        .and_then(|a| a.iter().rev().find(|r| r["path"].as_str() == Some("/api/v4/jobs/request")))
        .map(|r| r["body_json"].clone())
        .ok_or("no job request in the server's log")?;
    body["token"] = json!(token);
    let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let endpoint = format!("{url}/api/v4/jobs/request");
    let raw_once = || -> Result<()> {
        let r = http
            .post(&endpoint)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .map_err(|e| e.to_string())?;
        if r.status().as_u16() != 204 {
            return Err(format!("raw request: {}", r.status()));
        }
        Ok(())
    };
    for _ in 0..20 {
        raw_once()?;
    }
    let mut ours = Vec::new();
    let mut raw = Vec::new();
    // Within a run the two clients take turns every `TURN` requests, so that both see the
    // machine in the same state (its speed drifts within seconds here); a run's figure for
    // each is its requests over its own time.
    const TURN: usize = 50;
    for _ in 0..runs {
        let (mut ours_secs, mut raw_secs) = (0.0, 0.0);
        let mut done = 0;
        while done < n {
            let k = TURN.min(n - done);
            let t = Instant::now();
            for _ in 0..k {
                if runner.request_job()?.is_some() {
                    return Err("unexpected job".into());
                }
            }
            ours_secs += t.elapsed().as_secs_f64();
            let t = Instant::now();
            for _ in 0..k {
                raw_once()?;
            }
            raw_secs += t.elapsed().as_secs_f64();
            done += k;
        }
        ours.push(n as f64 / ours_secs);
        raw.push(n as f64 / raw_secs);
    }
    let paired: Vec<f64> = ours.iter().zip(&raw).map(|(o, r)| r / o).collect();
    Ok(json!({"ours_per_s": ours, "raw_per_s": raw, "time_ratio": paired, "body_bytes": body.len()}))
}

/// One job whose log of `bytes` bytes is appended in `chunk`-byte appends, then set_success:
/// the wall time of that and the process's peak memory.
fn log_size(a: &Value) -> Result<Value> {
    let (url, reg) = (arg_str(a, "url")?, arg_str(a, "reg")?);
    let (bytes, chunk) = (arg_u(a, "bytes")?, arg_u(a, "chunk")?);
    let text = content::stream(bytes);
    let runner = Runner::register(&url, &reg)?;
    let job = runner.take_job()?;
    let before_kib = proc::rss_kib();
    let t = Instant::now();
    for c in text.chunks(chunk) {
        job.append(c)?;
    }
    job.set_success()?;
    let secs = t.elapsed().as_secs_f64();
    Ok(
        json!({"secs": secs, "job": job.id(), "before_kib": before_kib, "hwm_kib": proc::hwm_kib(), "text_kib": bytes / 1024}),
    )
}

/// `jobs` jobs live at once, driven by `threads` threads (each takes its share, appends
/// `appends` 100-byte lines round-robin over its jobs, then finishes them).
fn concurrent(a: &Value) -> Result<Value> {
    let (url, reg) = (arg_str(a, "url")?, arg_str(a, "reg")?);
    let (n, threads, appends) = (arg_u(a, "jobs")?, arg_u(a, "threads")?, arg_u(a, "appends")?);
    let baseline_kib = proc::rss_kib();
    let cpu0 = proc::cpu_secs();
    let runner = Arc::new(Runner::register(&url, &reg)?);
    let lines: Arc<Vec<Vec<u8>>> = Arc::new((0..appends).map(|i| content::line(i, 100)).collect());
    let t = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            let share = n / threads + usize::from(k < n % threads);
            let (runner, lines) = (runner.clone(), lines.clone());
            std::thread::spawn(move || -> Result<Vec<i64>> {
                let mut jobs = Vec::with_capacity(share);
                for _ in 0..share {
                    jobs.push(runner.take_job()?);
                }
                for l in lines.iter() {
                    for j in &jobs {
                        j.append(l)?;
                    }
                }
                for j in &jobs {
                    j.set_success()?;
                }
                Ok(jobs.iter().map(Job::id).collect())
            })
        })
        .collect();
    let mut ids = Vec::new();
    for h in handles {
        ids.extend(h.join().map_err(|_| "a thread panicked".to_string())??);
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = proc::cpu_secs() - cpu0;
    Ok(json!({"secs": secs, "cpu_secs": cpu, "jobs": ids, "baseline_kib": baseline_kib, "hwm_kib": proc::hwm_kib()}))
}

/// A scale-out worker: loads the runner (its own system_id), takes jobs until GitLab has none,
/// logs `lines` lines naming each job, finishes it.
fn worker(a: &Value) -> Result<Value> {
    let dump = arg_str(a, "runner")?;
    let (lines, line_len) = (arg_u(a, "lines")?, arg_u(a, "line_len")?);
    let runner = Runner::loads(&dump)?;
    let t = Instant::now();
    let mut taken = Vec::new();
    while let Some(job) = runner.request_job()? {
        for l in content::job_lines(job.id(), lines, line_len) {
            job.append(&l)?;
        }
        job.set_success()?;
        taken.push(job.id());
    }
    Ok(json!({"jobs": taken, "secs": t.elapsed().as_secs_f64()}))
}

/// An in-process test server for the issue 4 figures.
fn in_process_server(interval: u64) -> TestServer {
    TestServer::start_with(Config {
        long_poll_timeout: Duration::from_millis(200),
        trace_update_interval: interval,
        max_trace_size: 256 << 20,
        ..Config::default()
    })
}

/// Issue 4: append latency of 100-byte lines while the server delays every request by
/// `delay_ms`, appends paced in bursts (so the background uploader runs meanwhile), and what
/// went on the wire for the job.
fn i4_append(a: &Value) -> Result<Value> {
    let (runs, appends, burst, pause_ms) =
        (arg_u(a, "runs")?, arg_u(a, "appends")?, arg_u(a, "burst")?, arg_u(a, "pause_ms")?);
    let delay_ms = arg_u(a, "delay_ms")? as u64;
    let server = in_process_server(1);
    for _ in 0..runs {
        server.queue_job(json!({}));
    }
    let runner = Runner::register(&server.url(), &server.registration_token())?;
    if delay_ms > 0 {
        server.inject_fault(Fault {
            endpoint: Endpoint::Any,
            count: u32::MAX,
            kind: FaultKind::Delay(Duration::from_millis(delay_ms)),
        });
    }
    let lines: Vec<Vec<u8>> = (0..appends).map(|i| content::line(i, 100)).collect();
    let mut out = Vec::new();
    for _ in 0..runs {
        let job = runner.take_job()?;
        server.clear_requests();
        let mut samples = Vec::with_capacity(appends);
        let t = Instant::now();
        for (i, l) in lines.iter().enumerate() {
            let t0 = Instant::now();
            let st = job.append_raw(l);
            samples.push(t0.elapsed().as_nanos() as u64);
            if st != 0 {
                return Err(format!("append: status {st}"));
            }
            if (i + 1) % burst == 0 {
                std::thread::sleep(Duration::from_millis(pause_ms as u64));
            }
        }
        let append_secs = t.elapsed().as_secs_f64();
        job.set_success()?;
        let id = job.id();
        let rec = server.job(id).ok_or("job vanished")?;
        let log_bytes: usize = lines.iter().map(Vec::len).sum();
        let trace_path = format!("/api/v4/jobs/{id}/trace");
        let job_path = format!("/api/v4/jobs/{id}");
        let reqs = server.requests();
        let patches: Vec<_> = reqs.iter().filter(|r| r.method == "PATCH" && r.path == trace_path).collect();
        let puts = reqs.iter().filter(|r| r.method == "PUT" && r.path == job_path).count();
        let patch_bytes: usize = patches.iter().map(|r| r.body_size).sum();
        let p = percentiles_ns(&mut samples, &[50.0, 99.0, 99.9, 100.0]);
        out.push(json!({
            "p50_ns": p[0], "p99_ns": p[1], "p999_ns": p[2], "max_ns": p[3], "append_secs": append_secs,
            "log_bytes": log_bytes, "patches": patches.len(), "puts": puts, "patch_bytes": patch_bytes,
            "stored_ok": rec.trace.len() == log_bytes && rec.state == "success" && rec.checksum_matches == Some(true),
        }));
    }
    Ok(json!({"runs": out}))
}

/// Issue 4: a `mib` MiB log appended in 100-byte lines, then set_success, on loopback.
fn i4_throughput(a: &Value) -> Result<Value> {
    let (runs, mib) = (arg_u(a, "runs")?, arg_u(a, "mib")?);
    let server = in_process_server(3);
    for _ in 0..2 * runs {
        server.queue_job(json!({}));
    }
    let runner = Runner::register(&server.url(), &server.registration_token())?;
    let text = content::stream(mib << 20);
    let http = reqwest::blocking::Client::new();
    let mut out = Vec::new();
    for _ in 0..runs {
        let job = runner.take_job()?;
        let t = Instant::now();
        for l in text.chunks(100) {
            job.append(l)?;
        }
        let append_secs = t.elapsed().as_secs_f64();
        job.set_success()?;
        let secs = t.elapsed().as_secs_f64();
        let rec = server.job(job.id()).ok_or("job vanished")?;
        let stored_ok = rec.trace == text && rec.checksum_matches == Some(true);
        drop(rec);
        // Right after, the same server's ceiling: a raw HTTP client PATCHing the same log in
        // 1 MiB chunks (no masking, no bookkeeping), on a job our library took (and so
        // committed). Paired run by run, as this machine's speed drifts between runs.
        let raw_job = runner.take_job()?;
        let t = Instant::now();
        raw_patches(&http, &server.url(), &raw_job, &text)?;
        let raw_secs = t.elapsed().as_secs_f64();
        let raw_ok = server.job(raw_job.id()).is_some_and(|r| r.trace == text);
        out.push(json!({
            "secs": secs, "append_secs": append_secs, "bytes": text.len(), "stored_ok": stored_ok,
            "raw_secs": raw_secs, "raw_ok": raw_ok,
        }));
    }
    Ok(json!({"runs": out}))
}

/// The raw HTTP client of the upload comparisons: `text` PATCHed in 1 MiB chunks to the trace of
/// `job` (which our library took, and so committed), each answered 202, nothing else.
pub(crate) fn raw_patches(http: &reqwest::blocking::Client, url: &str, job: &Job, text: &[u8]) -> Result<()> {
    let endpoint = format!("{url}/api/v4/jobs/{}/trace", job.id());
    let token = job.token();
    for (k, c) in text.chunks(1 << 20).enumerate() {
        let start = k << 20;
        let r = http
            .patch(&endpoint)
            .header("job-token", &token)
            .header("content-range", format!("{start}-{}", start + c.len() - 1))
            .header("content-type", "text/plain")
            .body(c.to_vec())
            .send()
            .map_err(|e| e.to_string())?;
        if r.status().as_u16() != 202 {
            return Err(format!("raw PATCH: {}", r.status()));
        }
    }
    Ok(())
}

/// Issue 4: `n` live jobs in one process (against a separate server process, so the server's own
/// memory is not counted): threads the library adds and memory per job besides its log.
fn i4_jobs(a: &Value) -> Result<Value> {
    let threads_start = proc::threads();
    let (url, reg, n) = (arg_str(a, "url")?, arg_str(a, "reg")?, arg_u(a, "n")?);
    let runner = Runner::register(&url, &reg)?;
    let threads_runner = proc::threads_settled();
    let rss_before = proc::rss_kib();
    let line = content::line(0, 100);
    let mut jobs = Vec::with_capacity(n);
    for _ in 0..n {
        let job = runner.take_job()?;
        job.append(&line)?;
        jobs.push(job);
    }
    for j in &jobs {
        j.flush()?;
    }
    let threads_jobs = proc::threads_settled();
    let rss_after = proc::rss_kib();
    let log_kib = (n * line.len()) as f64 / 1024.0;
    let per_job_kib = (rss_after as f64 - rss_before as f64 - log_kib) / n as f64;
    Ok(json!({
        "n": n, "threads_start": threads_start, "threads_after_register": threads_runner, "threads_with_jobs": threads_jobs,
        "rss_before_kib": rss_before, "rss_after_kib": rss_after, "per_job_kib": per_job_kib, "hwm_kib": proc::hwm_kib(),
    }))
}

/// Issue 16 (run under callgrind by the harness): `warm` then `n` appends of 100-byte lines to one
/// job; the harness counts the instructions inside `glr_job_log_append`.
fn append_instr(a: &Value) -> Result<Value> {
    let (warm, n) = (arg_u(a, "warm")?, arg_u(a, "n")?);
    let server = in_process_server(1);
    server.queue_job(json!({}));
    let runner = Runner::register(&server.url(), &server.registration_token())?;
    let job = runner.take_job()?;
    let lines: Vec<Vec<u8>> = (0..64).map(|i| content::line(i, 100)).collect();
    for i in 0..warm + n {
        let st = job.append_raw(&lines[i % lines.len()]);
        if st != 0 {
            return Err(format!("append: status {st}"));
        }
    }
    job.set_success()?;
    Ok(json!({"appends": warm + n}))
}

/// A job of the in-process test server holding a `log_bytes` log, appended in 100-byte lines
/// and flushed (what dumps-instr and loads-instr work on, as `dumpsloads` does).
fn job_with_log(server: &TestServer, log_bytes: usize) -> Result<(Runner, Job)> {
    server.queue_job(json!({}));
    let runner = Runner::register(&server.url(), &server.registration_token())?;
    let job = runner.take_job()?;
    for chunk in content::stream(log_bytes).chunks(100) {
        job.append(chunk)?;
    }
    job.flush()?;
    Ok((runner, job))
}

/// Issue 16 (run under callgrind by the harness): `n` `glr_job_dumps` of a job with a
/// `log_bytes` log; the harness counts the instructions inside `glr_job_dumps`.
fn dumps_instr(a: &Value) -> Result<Value> {
    let (n, log_bytes) = (arg_u(a, "n")?, arg_u(a, "log_bytes")?);
    let server = in_process_server(1);
    let (_runner, job) = job_with_log(&server, log_bytes)?;
    let mut bytes = 0;
    for _ in 0..n {
        bytes = job.dumps_discard()?;
    }
    job.set_success()?;
    Ok(json!({"dumps": n, "dump_bytes": bytes}))
}

/// Issue 16 (run under callgrind by the harness): `n` `glr_job_loads` (each job freed) of the
/// dump of a job with a `log_bytes` log; the harness counts the instructions inside
/// `glr_job_loads`.
fn loads_instr(a: &Value) -> Result<Value> {
    let (n, log_bytes) = (arg_u(a, "n")?, arg_u(a, "log_bytes")?);
    let server = in_process_server(1);
    let (_runner, job) = job_with_log(&server, log_bytes)?;
    let dump = job.dumps_c()?;
    for _ in 0..n {
        drop(Job::loads_c(&dump)?);
    }
    job.set_success()?;
    Ok(json!({"loads": n, "dump_bytes": dump.as_bytes().len()}))
}

/// Issue 16: minor page faults of `n` appends of 100-byte lines after `warm` (steady state: the
/// log already holds `warm` lines), on this thread (getrusage RUSAGE_THREAD).
fn append_faults(a: &Value) -> Result<Value> {
    let (warm, n) = (arg_u(a, "warm")?, arg_u(a, "n")?);
    let server = in_process_server(1);
    server.queue_job(json!({}));
    let runner = Runner::register(&server.url(), &server.registration_token())?;
    let job = runner.take_job()?;
    let lines: Vec<Vec<u8>> = (0..64).map(|i| content::line(i, 100)).collect();
    for i in 0..warm {
        job.append(&lines[i % lines.len()])?;
    }
    let before = proc::thread_minor_faults();
    for i in 0..n {
        job.append(&lines[i % lines.len()])?;
    }
    let faults = proc::thread_minor_faults() - before;
    job.set_success()?;
    Ok(json!({"appends": n, "faults": faults, "per_1000": faults as f64 * 1000.0 / n as f64}))
}

/// Issue 16 (run under callgrind by the harness, whole process): `n` job requests answered 204,
/// through our library or a raw HTTP client sending the same body; the harness takes the
/// difference of two `n` to get the cost of one request.
fn rtt_instr(a: &Value) -> Result<Value> {
    let (url, reg, n) = (arg_str(a, "url")?, arg_str(a, "reg")?, arg_u(a, "n")?);
    let raw = a["side"].as_str() == Some("raw");
    let runner = Runner::register(&url, &reg)?;
    if !raw {
        for _ in 0..n {
            if runner.request_job()?.is_some() {
                return Err("a job was queued; this scenario needs an empty queue".into());
            }
        }
        return Ok(json!({"n": n}));
    }
    let token = serde_json::from_str::<Value>(&runner.dumps()?).map_err(|e| e.to_string())?["token"]
        .as_str()
        .ok_or("runner dump without token")?
        .to_string();
    let body = serde_json::to_vec(&json!({"info": {"name": "raw"}, "token": token, "system_id": "s_0123456789ab"}))
        .map_err(|e| e.to_string())?;
    let http = reqwest::blocking::Client::new();
    let endpoint = format!("{url}/api/v4/jobs/request");
    for _ in 0..n {
        let r = http
            .post(&endpoint)
            .header("content-type", "application/json")
            .header("runner-token", &token)
            .body(body.clone())
            .send()
            .map_err(|e| e.to_string())?;
        if r.status().as_u16() != 204 {
            return Err(format!("raw request: {}", r.status()));
        }
    }
    Ok(json!({"n": n}))
}

/// Issue 14: `n` jobs handed over and watched by this process for `window` seconds (the
/// batch-system pattern: the daemon keeps a watcher per queued job): GitLab requests per job,
/// threads, memory per parked job, and how soon `cancels` jobs canceled at the server mid-window
/// are noticed (by polling glr_job_state, as a program without callbacks would).
fn i14_parked(a: &Value) -> Result<Value> {
    let threads_start = proc::threads();
    let (url, reg, n) = (arg_str(a, "url")?, arg_str(a, "reg")?, arg_u(a, "n")?);
    let (window, cancels, keepalive) = (arg_u(a, "window")?, arg_u(a, "cancels")?, a["keepalive"].as_i64());
    let runner = Runner::register(&url, &reg)?;
    let line = content::line(0, 100);
    let rss_before = proc::rss_kib();
    let mut jobs = Vec::with_capacity(n);
    for _ in 0..n {
        let job = runner.take_job()?;
        job.append(&line)?;
        job.flush()?;
        job.hand_over()?;
        if let Some(k) = keepalive {
            job.set_keepalive_interval(k)?;
        }
        jobs.push(job);
    }
    let rss_after = proc::rss_kib();
    let threads_parked = proc::threads_settled();
    let control = |method: reqwest::Method, path: &str, body: Option<Value>| -> Result<Value> {
        let client = reqwest::blocking::Client::new();
        let mut req = client.request(method, format!("{url}/__control/{path}"));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().map_err(|e| e.to_string())?;
        let bytes = resp.bytes().map_err(|e| e.to_string())?;
        serde_json::from_slice::<Value>(&bytes).map_err(|e| format!("/__control/{path}: {e}"))
    };
    let counts = || -> Result<std::collections::HashMap<i64, (u64, u64)>> {
        let all = control(reqwest::Method::GET, "jobs", None)?;
        Ok(all
            .as_array()
            .ok_or("GET /__control/jobs: not an array")?
            .iter()
            .map(|j| {
                (
                    j["id"].as_i64().unwrap_or(0),
                    (j["updates"].as_u64().unwrap_or(0), j["trace_patches"].as_u64().unwrap_or(0)),
                )
            })
            .collect())
    };
    let t0 = Instant::now();
    let before = counts()?;
    // Cancel some jobs a little into the window, then see when each watcher notices.
    std::thread::sleep(Duration::from_secs(2).min(Duration::from_secs(window as u64 / 4)));
    let canceled: Vec<usize> = (0..cancels).map(|i| i * n / cancels.max(1)).collect();
    let mut noticed_ms = Vec::new();
    let cancel_at = Instant::now();
    for &i in &canceled {
        control(reqwest::Method::POST, &format!("jobs/{}/cancel", jobs[i].id()), Some(json!({"graceful": false})))?;
    }
    let mut pending: Vec<usize> = canceled.clone();
    while !pending.is_empty() && t0.elapsed() < Duration::from_secs(window as u64) {
        pending.retain(|&i| {
            if jobs[i].state() == 4 {
                noticed_ms.push(cancel_at.elapsed().as_secs_f64() * 1000.0);
                false
            } else {
                true
            }
        });
        std::thread::sleep(Duration::from_millis(50));
    }
    let rest = Duration::from_secs(window as u64).saturating_sub(t0.elapsed());
    std::thread::sleep(rest);
    let secs = t0.elapsed().as_secs_f64();
    let after = counts()?;
    let watched: Vec<i64> =
        jobs.iter().enumerate().filter(|(i, _)| !canceled.contains(i)).map(|(_, j)| j.id()).collect();
    let mut puts = 0u64;
    let mut patches = 0u64;
    for id in &watched {
        let (u0, p0) = before.get(id).copied().unwrap_or_default();
        let (u1, p1) = after.get(id).copied().unwrap_or_default();
        puts += u1.saturating_sub(u0);
        patches += p1.saturating_sub(p0);
    }
    let per_job_per_hour = (puts + patches) as f64 / watched.len().max(1) as f64 / secs * 3600.0;
    Ok(json!({
        "n": n, "window_secs": secs, "threads_start": threads_start, "threads_parked": threads_parked,
        "rss_before_kib": rss_before, "rss_after_kib": rss_after,
        "per_job_kib": (rss_after as f64 - rss_before as f64) / n as f64,
        "requests_per_job_per_hour": per_job_per_hour, "patches": patches,
        "cancels": cancels, "noticed_ms": noticed_ms, "missed": pending.len(),
    }))
}

/// Where a live job's heap goes (counting allocator): the whole job, and the parts the library
/// builds from GitLab's payload, rebuilt here with the library's own (public) core functions.
fn heap(a: &Value) -> Result<Value> {
    use gitlab_runner_api::internal::{info_json, runner_from_str, JobInfo, Masker, VAR_MASKED};
    crate::alloc::start();
    let (url, reg, n) = (arg_str(a, "url")?, arg_str(a, "reg")?, arg_u(a, "n")?);
    let runner = Runner::register(&url, &reg)?;
    let warm = runner.take_job()?;
    let live0 = crate::alloc::live();
    let mut jobs = Vec::with_capacity(n);
    for _ in 0..n {
        jobs.push(runner.take_job()?);
    }
    let per_job = (crate::alloc::live() - live0) as f64 / n as f64;
    let text = warm.payload()?;
    let measure = |f: &mut dyn FnMut() -> Box<dyn std::any::Any>| {
        let l0 = crate::alloc::live();
        let keep = f();
        let used = crate::alloc::live() - l0;
        drop(keep);
        used
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let payload_value = measure(&mut || Box::new(serde_json::from_str::<Value>(&text).unwrap()));
    let job_info = measure(&mut || Box::new(JobInfo::from_payload(&value).unwrap()));
    let ji = JobInfo::from_payload(&value).map_err(|e| e.to_string())?;
    let masker = measure(&mut || {
        let phrases = ji.variables.iter().filter(|v| v.flags & VAR_MASKED != 0).map(|v| v.value.as_str());
        Box::new(Masker::new(phrases, ji.token_mask_prefixes.iter().map(String::as_str)))
    });
    let rd = runner_from_str(&runner.dumps()?).map_err(|e| e.to_string())?;
    let runner_info = measure(&mut || Box::new(info_json(&rd).to_string()));
    let runner_data = measure(&mut || Box::new(rd.clone()));
    drop(jobs);
    Ok(json!({
        "n": n, "per_job_bytes": per_job, "payload_json_bytes": text.len(), "payload_value_bytes": payload_value,
        "job_info_bytes": job_info, "masker_bytes": masker, "runner_info_bytes": runner_info, "runner_data_bytes": runner_data,
    }))
}
