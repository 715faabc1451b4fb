//! The harness: runs every scenario (our side in child processes through the C API, the Python
//! package in fresh interpreters), checks what the server stored, and writes BENCHMARKS.md.

mod issue16;

use crate::capi::Runner;
use crate::content;
use crate::proc;
use crate::python::{self, Python};
use crate::report::{errors_text, field, nums, pct, table};
use crate::server::{self, Server, ServerExe};
use crate::stats::{dur, kib, ns, num, ratio, Runs};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

pub struct Options {
    pub quick: bool,
    pub python: bool,
    pub out: PathBuf,
}

type Result<T> = std::result::Result<T, String>;

/// How much work each scenario does (the full run must stay well under 10 minutes on 2 cores,
/// build included; `--quick` is the smoke test's seconds-long version).
struct Plan {
    i4_runs: usize,
    i4_appends: usize,
    i4_burst: usize,
    i4_pause_ms: usize,
    i4_delay_ms: u64,
    i4_tp_mib: usize,
    i4_tp_runs: usize,
    i4_jobs: usize,
    i4_jobs_runs: usize,
    /// Issue 14: parked jobs, the observation window (s), cancels, the keep-alive (None: default).
    i14_jobs: usize,
    i14_window: usize,
    i14_cancels: usize,
    i14_keepalive: Option<i64>,
    /// Issue 16 instruction counts: appends (two runs, the difference is counted), job requests.
    i16_appends: (usize, usize),
    i16_requests: (usize, usize),
    i16_fault_appends: (usize, usize),
    /// Issue 16: dumps and loads of the dumps/loads job (two runs, the difference is counted).
    i16_persist: (usize, usize),
    e2e_appends: usize,
    e2e_runs: (usize, usize),
    lat_delays: Vec<u64>,
    lat_appends: (usize, Vec<usize>),
    lat_runs: (usize, Vec<usize>),
    dl_log_bytes: usize,
    dl_iters: (usize, usize),
    dl_runs: (usize, usize),
    hold_ns: Vec<usize>,
    hold_runs: (usize, usize),
    rtt_n: (usize, usize),
    rtt_runs: (usize, usize),
    log_mibs: Vec<usize>,
    log_chunk: usize,
    log_runs: (Vec<usize>, Vec<usize>),
    conc_ns: Vec<usize>,
    conc_appends: usize,
    conc_threads: usize,
    conc_runs: (Vec<usize>, Vec<usize>),
    so_workers: usize,
    so_jobs: usize,
    so_lines: usize,
    so_runs: (usize, usize),
    i16: issue16::Plan,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            i4_runs: 5,
            i4_appends: 50_000,
            i4_burst: 1000,
            i4_pause_ms: 20,
            i4_delay_ms: 200,
            i4_tp_mib: 100,
            i4_tp_runs: 7,
            i4_jobs: 1000,
            i4_jobs_runs: 3,
            i14_jobs: 1000,
            i14_window: 75,
            i14_cancels: 10,
            i14_keepalive: None,
            i16_appends: (5_000, 25_000),
            i16_requests: (100, 300),
            i16_fault_appends: (20_000, 200_000),
            i16_persist: (2, 6),
            e2e_appends: 1000,
            e2e_runs: (5, 3),
            lat_delays: vec![0, 50],
            lat_appends: (10_000, vec![200, 30]),
            lat_runs: (5, vec![5, 3]),
            dl_log_bytes: 1 << 20,
            dl_iters: (200, 20),
            dl_runs: (5, 5),
            hold_ns: vec![1, 100, 1000],
            hold_runs: (3, 3),
            rtt_n: (1000, 200),
            rtt_runs: (5, 3),
            log_mibs: vec![1, 10, 100],
            log_chunk: 64 << 10,
            log_runs: (vec![5, 3, 2], vec![3, 1, 0]),
            conc_ns: vec![1, 10, 100, 1000],
            conc_appends: 20,
            conc_threads: 8,
            conc_runs: (vec![3, 3, 3, 3], vec![3, 3, 2, 0]),
            so_workers: 8,
            so_jobs: 400,
            so_lines: 20,
            so_runs: (3, 2),
            i16: issue16::Plan::full(),
        }
    }

    fn quick() -> Plan {
        Plan {
            i4_runs: 1,
            i4_appends: 2000,
            i4_burst: 500,
            i4_pause_ms: 5,
            i4_delay_ms: 20,
            i4_tp_mib: 2,
            i4_tp_runs: 1,
            i4_jobs: 20,
            i4_jobs_runs: 1,
            i14_jobs: 20,
            i14_window: 6,
            i14_cancels: 2,
            i14_keepalive: Some(2),
            i16_appends: (500, 1500),
            i16_requests: (10, 30),
            i16_fault_appends: (1000, 5000),
            i16_persist: (1, 3),
            e2e_appends: 50,
            e2e_runs: (1, 1),
            lat_delays: vec![0, 10],
            lat_appends: (500, vec![20, 5]),
            lat_runs: (1, vec![1, 1]),
            dl_log_bytes: 64 << 10,
            dl_iters: (10, 3),
            dl_runs: (1, 1),
            hold_ns: vec![1, 10],
            hold_runs: (1, 1),
            rtt_n: (50, 20),
            rtt_runs: (1, 1),
            log_mibs: vec![1],
            log_chunk: 64 << 10,
            log_runs: (vec![1], vec![1]),
            conc_ns: vec![1, 4],
            conc_appends: 5,
            conc_threads: 2,
            conc_runs: (vec![1, 1], vec![1, 1]),
            so_workers: 2,
            so_jobs: 10,
            so_lines: 5,
            so_runs: (1, 1),
            i16: issue16::Plan::quick(),
        }
    }
}

struct Harness {
    plan: Plan,
    exe: PathBuf,
    server_exe: ServerExe,
    py: std::result::Result<Python, String>,
    started: Instant,
    /// The load average when the run began.
    load_start: String,
    /// Rows of the issue 4 summary: figure, measured, target, met.
    targets: Vec<Vec<String>>,
    sections: Vec<String>,
    /// Failures of the harness's own checks (a log not stored, a job taken twice...).
    problems: Vec<String>,
    /// Figures of this run that the issue 16 target table compares, by name.
    figures: BTreeMap<&'static str, f64>,
}

pub fn run(opts: &Options) -> Result<()> {
    let started = Instant::now();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin_dir = exe.parent().ok_or("no bin dir")?.to_path_buf();
    let target_dir = bin_dir.parent().ok_or("no target dir")?.to_path_buf();
    let server_exe = locate_server(&bin_dir, opts.quick);
    progress(started, &format!("test server: {}", server_exe.describe()));
    let py = if opts.python {
        progress(started, &format!("Python: venv under {}", target_dir.join("bench-venv").display()));
        Python::setup(&target_dir)
    } else {
        Err("skipped (--no-python)".into())
    };
    if let Err(e) = &py {
        progress(started, &format!("Python side unavailable: {e}"));
    }
    let load_start = proc::loadavg();
    let mut h = Harness {
        plan: if opts.quick { Plan::quick() } else { Plan::full() },
        exe,
        server_exe,
        py,
        started,
        load_start,
        targets: Vec::new(),
        sections: Vec::new(),
        problems: Vec::new(),
        figures: BTreeMap::new(),
    };
    type Scenario = fn(&mut Harness) -> Result<()>;
    let scenarios: Vec<(&str, Scenario)> = vec![
        ("issue 4: append latency and the wire", Harness::i4_append),
        ("issue 4: 100 MiB upload throughput", Harness::i4_throughput),
        ("issue 4: 1,000 live jobs", Harness::i4_jobs),
        ("issue 14: 1,000 parked jobs watched", Harness::i14_parked),
        ("issue 16: instruction counts and page faults", Harness::i16_counts),
        ("issue 16: client CPU, append tail, memory kept, test server", Harness::i16_more),
        ("register + request + appends + success", Harness::e2e),
        ("append latency", Harness::latency),
        ("dumps/loads", Harness::dumps_loads),
        ("peak memory holding jobs", Harness::hold),
        ("request_job round trips", Harness::rtt),
        ("scaling: log size", Harness::log_size),
        ("scaling: concurrent jobs", Harness::concurrent),
        ("scale-out", Harness::scale_out),
    ];
    for (name, f) in scenarios {
        progress(h.started, &format!("scenario: {name}"));
        if let Err(e) = f(&mut h) {
            progress(h.started, &format!("scenario {name} failed: {e}"));
            h.sections.push(format!("## {name}\n\n**Failed:** {e}\n"));
            h.problems.push(format!("{name}: {e}"));
        }
    }
    let md = h.markdown(opts);
    std::fs::write(&opts.out, md).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    progress(h.started, &format!("wrote {}", opts.out.display()));
    if !h.problems.is_empty() {
        return Err(format!("{} check(s) failed: {}", h.problems.len(), h.problems.join("; ")));
    }
    Ok(())
}

fn progress(started: Instant, msg: &str) {
    eprintln!("[bench {:>6.1}s] {msg}", started.elapsed().as_secs_f64());
}

/// `glr-testserver` next to this binary, built first when this is the full run (cargo run builds
/// only the bench package's binaries); the smoke test uses `bench serve`.
fn locate_server(bin_dir: &Path, quick: bool) -> ServerExe {
    let bin = bin_dir.join("glr-testserver");
    if !quick {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        // With -p bench too, features unify exactly as in `cargo run -p bench`: nothing is rebuilt,
        // only the binary is linked.
        cmd.args(["build", "--quiet", "-p", "bench", "-p", "glr-testserver"]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        if let Some(target) = bin_dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        // `cargo run` put this package's CARGO_MANIFEST_DIR, CARGO_PKG_* ... in our environment; some
        // build scripts (ring's) track them, and would rebuild half the tree.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("CARGO_PKG_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_BIN_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                ]
                .contains(&k.as_str())
            {
                cmd.env_remove(&k);
            }
        }
        let _ = cmd.stdin(Stdio::null()).status();
    }
    if bin.exists() {
        ServerExe::Binary(bin)
    } else {
        ServerExe::SelfServe(bin_dir.join("bench"))
    }
}

fn shell(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

impl Harness {
    fn progress(&self, msg: &str) {
        progress(self.started, msg);
    }

    fn server(&self) -> Result<Server> {
        Server::start(&self.server_exe, server::DEFAULT_ARGS)
    }

    /// Our side of a scenario, in a child process.
    fn ours(&self, mode: &str, args: Value) -> Result<Value> {
        let out = Command::new(&self.exe)
            .args(["child", mode, &args.to_string()])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("child {mode}: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!("child {mode}: {} {}", out.status, err.trim()));
        }
        python::parse_result(&String::from_utf8_lossy(&out.stdout))
    }

    /// The Python side of a scenario; Err when the package could not be installed.
    fn py(&self, mode: &str, args: Value) -> Result<Value> {
        match &self.py {
            Ok(p) => p.run(mode, &args),
            Err(e) => Err(format!("Python side not run: {e}")),
        }
    }

    fn py_available(&self) -> bool {
        self.py.is_ok()
    }

    fn py_missing(&self) -> String {
        match &self.py {
            Ok(_) => "—".into(),
            Err(e) => format!("not run ({e})"),
        }
    }

    fn check(&mut self, ok: bool, what: String) {
        if !ok {
            self.progress(&format!("CHECK FAILED: {what}"));
            self.problems.push(what);
        }
    }

    /// Issue 4: append latency at delay 0 and 200 ms, and bytes/requests on the wire.
    fn i4_append(&mut self) -> Result<()> {
        let p = &self.plan;
        let mut rows = Vec::new();
        let mut p99s = Vec::new();
        let mut wire0 = None;
        for delay in [0, p.i4_delay_ms] {
            let p = &self.plan;
            let v = self.ours(
                "i4-append",
                json!({"runs": p.i4_runs, "appends": p.i4_appends, "burst": p.i4_burst, "pause_ms": p.i4_pause_ms, "delay_ms": delay}),
            )?;
            let p50 = Runs(field(&v, "runs", "p50_ns"));
            let p99 = Runs(field(&v, "runs", "p99_ns"));
            let p999 = Runs(field(&v, "runs", "p999_ns"));
            let max = Runs(field(&v, "runs", "max_ns"));
            let runs = v["runs"].as_array().cloned().unwrap_or_default();
            let mib = |r: &Value| f(r, "log_bytes") / (1024.0 * 1024.0);
            let wire = Runs(runs.iter().map(|r| f(r, "patch_bytes") / f(r, "log_bytes")).collect());
            let patches = Runs(runs.iter().map(|r| f(r, "patches") / mib(r)).collect());
            let all = Runs(runs.iter().map(|r| (f(r, "patches") + f(r, "puts")) / mib(r)).collect());
            let stored = runs.iter().filter(|r| r["stored_ok"] == true).count();
            self.check(
                stored == runs.len(),
                format!("issue 4 append (delay {delay} ms): {stored}/{} logs stored whole", runs.len()),
            );
            rows.push(vec![
                format!("{delay} ms"),
                p50.show(ns),
                p99.show(ns),
                p999.show(ns),
                max.show(ns),
                Runs(field(&v, "runs", "append_secs")).show(dur),
                format!("{:.2} MiB", runs.first().map(mib).unwrap_or(0.0)),
                wire.show(|x| format!("{x:.4}")),
                patches.show(|x| format!("{x:.2}")),
                all.show(|x| format!("{x:.2}")),
                format!("{stored}/{}", runs.len()),
            ]);
            p99s.push((delay, p99.clone(), p50.clone()));
            if delay == 0 {
                wire0 = Some((wire, patches, all));
            }
        }
        for (delay, p99, p50) in &p99s {
            let m = p99.median().unwrap_or(f64::NAN);
            self.targets.push(vec![
                format!(
                    "append latency p99, 100-byte appends, server delaying every request by {delay} ms (p50 {})",
                    p50.show(ns)
                ),
                p99.show(ns),
                "< 5 µs".into(),
                yes(m < 5000.0),
            ]);
        }
        if let [(_, a, _), (_, b, _)] = p99s.as_slice() {
            let (a, b) = (a.median(), b.median());
            self.targets.push(vec![
                format!("append p99 with the {} ms delay / without", self.plan.i4_delay_ms),
                ratio(b, a),
                "unaffected (< 5 µs either way)".into(),
                yes(b.is_some_and(|b| b < 5000.0)),
            ]);
        }
        if let Some((wire, patches, all)) = wire0 {
            let w = wire.median().unwrap_or(f64::NAN);
            self.targets.push(vec![
                "bytes on the wire per byte of log (trace PATCH bodies / log bytes), no faults".into(),
                wire.show(|x| format!("{x:.4}")),
                "≤ 1.001".into(),
                yes(w <= 1.001),
            ]);
            let pm = patches.median().unwrap_or(f64::NAN);
            self.targets.push(vec![
                format!(
                    "requests per MiB of log: trace PATCHes (all of the job's PATCH + PUT: {})",
                    all.show(|x| format!("{x:.2}"))
                ),
                patches.show(|x| format!("{x:.2}")),
                "≤ 2".into(),
                yes(pm <= 2.0),
            ]);
        }
        let p = &self.plan;
        self.sections.push(format!(
            "## Issue 4: the append path and the wire\n\n\
             In one process through the C API, against an in-process test server (update interval 1 s). \
             {} appends of 100-byte lines per run, in bursts of {} with a {} ms pause between bursts, so the \
             background uploader works while the caller appends; then `glr_job_set_success` (untimed). \
             Latency is each `glr_job_log_append` call timed alone; percentiles per run, then the median of the runs \
             (min–max). The wire columns count this job's requests in the server's request log.\n\n{}\n\
             Command: `cargo run --release -p bench` (child mode `i4-append`).\n",
            p.i4_appends,
            p.i4_burst,
            p.i4_pause_ms,
            table(
                &[
                    "server delay",
                    "p50",
                    "p99",
                    "p99.9",
                    "max",
                    "append window",
                    "log",
                    "PATCH bytes / log bytes",
                    "PATCHes / MiB",
                    "PATCH+PUT / MiB",
                    "stored whole"
                ],
                &rows
            )
        ));
        Ok(())
    }

    /// Issue 4: a 100 MiB log, append all then set_success.
    fn i4_throughput(&mut self) -> Result<()> {
        let (tp_runs, tp_mib) = (self.plan.i4_tp_runs, self.plan.i4_tp_mib);
        let v = self.ours("i4-throughput", json!({"runs": tp_runs, "mib": tp_mib}))?;
        let runs = v["runs"].as_array().cloned().unwrap_or_default();
        let mbps = Runs(runs.iter().map(|r| f(r, "bytes") / 1e6 / f(r, "secs")).collect());
        let secs = Runs(field(&v, "runs", "secs"));
        let append = Runs(field(&v, "runs", "append_secs"));
        let finish = Runs(runs.iter().map(|r| f(r, "secs") - f(r, "append_secs")).collect());
        let stored = runs.iter().filter(|r| r["stored_ok"] == true).count();
        self.check(stored == runs.len(), format!("issue 4 throughput: {stored}/{} logs stored whole", runs.len()));
        let raw_mbps = Runs(runs.iter().map(|r| f(r, "bytes") / 1e6 / f(r, "raw_secs")).collect());
        let raw_stored = runs.iter().filter(|r| r["raw_ok"] == true).count();
        self.check(raw_stored == runs.len(), "issue 4 throughput: a raw client's log was not stored whole".into());
        // Ours over the raw client of the same run (paired: this machine's speed drifts).
        let paired = Runs(runs.iter().map(|r| f(r, "raw_secs") / f(r, "secs")).collect());
        let append_mbps = Runs(runs.iter().map(|r| f(r, "bytes") / 1e6 / f(r, "append_secs")).collect());
        let m = mbps.median().unwrap_or(f64::NAN);
        self.keep("upload_ours_mbps", mbps.median());
        self.keep("upload_raw_mbps", raw_mbps.median());
        self.keep("upload_paired_ratio", paired.median());
        self.keep("append_alone_mbps", append_mbps.median());
        let raw_median = raw_mbps.median().unwrap_or(f64::NAN);
        self.targets.push(vec![
            format!("upload throughput of a {tp_mib} MiB log on loopback (append all + set_success; no delay; the same server takes {raw_median:.0} MB/s from a raw client)"),
            mbps.show(|x| format!("{x:.0} MB/s")),
            "≥ 200 MB/s".into(),
            yes(m >= 200.0),
        ]);
        self.sections.push(format!(
            "## Issue 4: upload throughput\n\n\
             A {} MiB log appended in 100-byte lines, then `glr_job_set_success` (which uploads what the background \
             uploader has not, in 1 MiB PATCHes, then the final PUT), against an in-process test server, no delay. \
             Throughput = log bytes / (append + set_success) wall time, MB = 10^6 bytes. The last column is the \
             ceiling the test server allows on this machine: a raw HTTP client (reqwest) sending the same log as 1 MiB \
             PATCHes to the same in-process server, with no masking and no bookkeeping, right after each of our \
             runs; the last column is ours / raw run by run.\n\n{}\n",
            tp_mib,
            table(
                &[
                    "throughput",
                    "total",
                    "appending",
                    "appending alone",
                    "set_success (upload + final PUT)",
                    "stored whole, checksum matched",
                    "raw client, same server: PATCHes only",
                    "ours / raw, paired"
                ],
                &[vec![
                    mbps.show(|x| format!("{x:.0} MB/s")),
                    secs.show(dur),
                    append.show(dur),
                    append_mbps.show(|x| format!("{x:.0} MB/s")),
                    finish.show(dur),
                    format!("{stored}/{}", runs.len()),
                    raw_mbps.show(|x| format!("{x:.0} MB/s")),
                    paired.show(|x| format!("{x:.2}")),
                ]]
            )
        ));
        Ok(())
    }

    /// Issue 4: 1,000 live jobs: threads added and memory per job.
    /// Instructions of `mode` under callgrind for the two sizes of `sizes` (key `key` in the
    /// child's arguments), per unit of the difference.
    fn per_unit(&self, mode: &str, base: Value, key: &str, sizes: (usize, usize), toggle: Option<&str>) -> Result<f64> {
        let scratch = std::env::temp_dir();
        let run = |n: usize| -> Result<u64> {
            let mut args = base.clone();
            args[key] = json!(n);
            let argv = vec!["child".to_string(), mode.to_string(), args.to_string()];
            crate::instr::count(&self.exe, &argv, toggle, &scratch)
        };
        let (small, large) = (run(sizes.0)?, run(sizes.1)?);
        Ok((large.saturating_sub(small)) as f64 / (sizes.1 - sizes.0) as f64)
    }

    fn i16_counts(&mut self) -> Result<()> {
        let faults = {
            let (warm, n) = self.plan.i16_fault_appends;
            self.ours("append-faults", json!({"warm": warm, "n": n}))?
        };
        let per_1000_faults = f(&faults, "per_1000");
        self.keep("faults_per_1000", Some(per_1000_faults));
        self.targets.push(vec![
            "page faults per 1,000 appends in steady state (100-byte lines, after the first ones)".into(),
            format!("{per_1000_faults:.2}"),
            "≤ 1".into(),
            yes(per_1000_faults <= 1.0),
        ]);
        if !crate::instr::available() {
            self.sections.push(
                "## Issue 16: instruction counts

Not measured: valgrind is not installed here.
"
                .to_string(),
            );
            return Ok(());
        }
        let append =
            self.per_unit("append-instr", json!({"warm": 0}), "n", self.plan.i16_appends, Some("glr_job_log_append"))?;
        let srv = self.server()?;
        let base = |side: &str| json!({"url": srv.url, "reg": srv.registration_token, "side": side});
        let ours = self.per_unit("rtt-instr", base("ours"), "n", self.plan.i16_requests, None)?;
        let raw = self.per_unit("rtt-instr", base("raw"), "n", self.plan.i16_requests, None)?;
        let ratio = ours / raw;
        let persist = |mode: &str, f: &str| {
            let base = json!({"log_bytes": self.plan.dl_log_bytes});
            self.per_unit(mode, base, "n", self.plan.i16_persist, Some(f))
        };
        let dumps = persist("dumps-instr", "glr_job_dumps")?;
        let loads = persist("loads-instr", "glr_job_loads")?;
        self.keep("append_instr", Some(append));
        self.keep("rtt_instr_ratio", Some(ratio));
        self.targets.push(vec![
            "instructions per 100-byte append (callgrind, inside glr_job_log_append)".into(),
            format!("{append:.0}"),
            "≤ 600".into(),
            yes(append <= 600.0),
        ]);
        self.targets.push(vec![
            "client instructions per request_job (whole process), ours / raw HTTP client".into(),
            format!("{ratio:.2} ({ours:.0} / {raw:.0})"),
            "≤ 1.4".into(),
            yes(ratio <= 1.4),
        ]);
        self.sections.push(format!(
            "## Issue 16: instruction counts and page faults

             Instructions counted by `valgrind --tool=callgrind` (repeatable whatever else the machine does).              Appends: a child process appends 100-byte lines to one job (in-process test server); the instructions              executed inside `glr_job_log_append` (`--toggle-collect`) for {} and for {} appends, the difference              divided by the difference of the counts. Job requests: the whole child process (every thread: the              calling one and the library's runtime) for {} and {} job requests answered 204 by a separate server              process, through our library, and through a plain `reqwest` blocking client sending a job request body              ({}), the difference per request. Page faults: minor faults of the appending thread over {} appends              after {} (getrusage per thread). Dumps and loads: the job of section 3 with its {} log (in-process              test server); the instructions inside `glr_job_dumps` (or `glr_job_loads`, the job then freed outside              the count) for {} and for {} calls, the difference per call.

{}
",
            self.plan.i16_appends.0,
            self.plan.i16_appends.1,
            self.plan.i16_requests.0,
            self.plan.i16_requests.1,
            "the raw client does not build a body, parse an answer or keep a job",
            self.plan.i16_fault_appends.1,
            self.plan.i16_fault_appends.0,
            kib(self.plan.dl_log_bytes as f64 / 1024.0),
            self.plan.i16_persist.0,
            self.plan.i16_persist.1,
            table(
                &[
                    "instructions / append",
                    "request_job: ours",
                    "raw client",
                    "ours / raw",
                    "page faults / 1,000 appends",
                    "instructions / dumps",
                    "instructions / loads",
                ],
                &[vec![
                    format!("{append:.0}"),
                    format!("{ours:.0}"),
                    format!("{raw:.0}"),
                    format!("{ratio:.2}"),
                    format!("{per_1000_faults:.2}"),
                    format!("{dumps:.0}"),
                    format!("{loads:.0}"),
                ]]
            ),
        ));
        Ok(())
    }

    fn i14_parked(&mut self) -> Result<()> {
        let (n, window, cancels) = (self.plan.i14_jobs, self.plan.i14_window, self.plan.i14_cancels);
        let keepalive = self.plan.i14_keepalive;
        let srv = self.server()?;
        srv.queue_jobs(n)?;
        let r = self.ours(
            "i14-parked",
            json!({"url": srv.url, "reg": srv.registration_token, "n": n, "window": window, "cancels": cancels, "keepalive": keepalive}),
        )?;
        let interval_s = keepalive.unwrap_or(30) as f64;
        let per_hour = f(&r, "requests_per_job_per_hour");
        let added = f(&r, "threads_parked") - f(&r, "threads_start");
        let per_job = f(&r, "per_job_kib");
        let noticed: Vec<f64> =
            r["noticed_ms"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
        let noticed = Runs(noticed);
        let missed = f(&r, "missed");
        let budget = 3600.0 / interval_s * 130.0 / 120.0;
        self.targets.push(vec![
            format!("GitLab requests per parked job per hour, {n} watchers, keep-alive {interval_s:.0} s"),
            format!("{per_hour:.1}"),
            format!("≤ {budget:.0}"),
            yes(per_hour <= budget),
        ]);
        self.targets.push(vec![
            format!("threads the library adds, {n} parked jobs"),
            format!("{added:.0}"),
            "≤ 4".into(),
            yes(added <= 4.0),
        ]);
        self.targets.push(vec![
            format!("memory per parked job ({n} watchers, RSS after − before, / {n})"),
            kib(per_job),
            "≤ 16 KiB".into(),
            yes(per_job <= 16.0),
        ]);
        self.targets.push(vec![
            format!("how soon a cancel is noticed by a watcher ({} jobs canceled, glr_job_state polled)", cancels),
            format!(
                "max {} (median {}), {missed:.0} missed",
                noticed.show(ms_of).split(' ').next().unwrap_or("-"),
                noticed.median().map_or("-".into(), ms_of)
            ),
            format!("≤ the keep-alive interval ({interval_s:.0} s)"),
            yes(missed == 0.0 && noticed.max().is_some_and(|m| m <= interval_s * 1000.0)),
        ]);
        if f(&r, "patches") > 0.0 {
            self.problems.push(format!("issue 14 parked jobs: watchers sent {} trace PATCHes", f(&r, "patches")));
        }
        self.sections.push(format!(
            "## Issue 14: {n} parked jobs watched by one process

             A child process registers a runner, takes {n} jobs, appends one line to each, flushes it and hands it over              (`glr_job_hand_over_dumps`, the dump dropped): every handle is then a watcher, as a batch-system daemon              keeps one per queued job. For {window} s the process does nothing but watch; {cancels} jobs are canceled              at the server (hard) 2 s into the window and the process polls `glr_job_state`. Requests are the jobs'              updates and trace PATCHes in the server's records over the window (canceled jobs left out), scaled to an              hour; threads from /proc/self/task; memory from VmRSS before taking the jobs and with them parked.              Keep-alive interval: {interval_s:.0} s (GitLab drops a running job after an hour without an update).

{}
",
            table(
                &["requests / job / hour", "trace PATCHes", "threads added", "RSS before", "RSS parked", "per parked job", "cancel noticed (ms)", "missed"],
                &[vec![
                    format!("{per_hour:.1}"),
                    format!("{:.0}", f(&r, "patches")),
                    format!("{added:.0}"),
                    kib(f(&r, "rss_before_kib")),
                    kib(f(&r, "rss_after_kib")),
                    kib(per_job),
                    noticed.show(ms_of),
                    format!("{missed:.0}"),
                ]]
            ),
        ));
        Ok(())
    }

    fn i4_jobs(&mut self) -> Result<()> {
        let n = self.plan.i4_jobs;
        let mut results = Vec::new();
        for _ in 0..self.plan.i4_jobs_runs {
            let srv = self.server()?;
            srv.queue_jobs(n)?;
            results.push(self.ours("i4-jobs", json!({"url": srv.url, "reg": srv.registration_token, "n": n}))?);
        }
        let heap = {
            let srv = self.server()?;
            srv.queue_jobs(n + 1)?;
            self.ours("heap", json!({"url": srv.url, "reg": srv.registration_token, "n": n}))?
        };
        let get = |k: &str| Runs(results.iter().map(|r| f(r, k)).collect());
        let added = Runs(results.iter().map(|r| f(r, "threads_with_jobs") - f(r, "threads_start")).collect());
        let per_job = get("per_job_kib");
        self.targets.push(vec![
            format!("threads the library adds, {n} live jobs in one process"),
            added.show(|x| format!("{x:.0}")),
            "≤ 4".into(),
            yes(added.max().is_some_and(|m| m <= 4.0)),
        ]);
        self.targets.push(vec![
            format!("memory per live job besides its log ({n} jobs, RSS after − before − log bytes, / {n})"),
            per_job.show(kib),
            "≤ 64 KiB".into(),
            yes(per_job.median().is_some_and(|m| m <= 64.0)),
        ]);
        self.sections.push(format!(
            "## Issue 4: {n} live jobs in one process\n\n\
             A child process registers a runner, then takes {n} jobs (GitLab's realistic payload from the test server), \
             appends one 100-byte line to each and flushes it; the jobs stay alive. Threads from /proc/self/task, memory \
             from VmRSS in /proc/self/status. The server is a separate process here, so that its own memory is not \
             counted.\n\n{}\n\
             Where a job's memory goes: live heap bytes per job (a counting allocator in a separate run of {n} jobs) \
             {}, of which GitLab's payload kept as its JSON text {} (parsed into a `serde_json::Value` it would take \
             {}: the library parses it only while building the job), the job's accessor fields (`JobInfo`) {}, the \
             runner's `info` as JSON text {}, the masker {}, the runner data {}; the rest of the RSS per job is \
             allocator overhead.\n",
            table(
                &["threads at start", "after register", "with the jobs", "RSS before the jobs", "RSS with the jobs", "per job besides its log", "peak RSS"],
                &[vec![
                    get("threads_start").show(|x| format!("{x:.0}")),
                    get("threads_after_register").show(|x| format!("{x:.0}")),
                    get("threads_with_jobs").show(|x| format!("{x:.0}")),
                    get("rss_before_kib").show(kib),
                    get("rss_after_kib").show(kib),
                    per_job.show(kib),
                    get("hwm_kib").show(kib),
                ]]
            ),
            kib(f(&heap, "per_job_bytes") / 1024.0),
            kib(f(&heap, "payload_json_bytes") / 1024.0),
            kib(f(&heap, "payload_value_bytes") / 1024.0),
            kib(f(&heap, "job_info_bytes") / 1024.0),
            kib(f(&heap, "runner_info_bytes") / 1024.0),
            kib(f(&heap, "masker_bytes") / 1024.0),
            kib(f(&heap, "runner_data_bytes") / 1024.0),
        ));
        Ok(())
    }

    /// The stored trace compared with what was appended: completeness and whether the job ended
    /// as success with a matching checksum (ours) — small logs only (the record holds the trace).
    fn stored(&self, srv: &Server, id: i64, expected: &[u8]) -> Result<(Option<f64>, Value)> {
        let rec = srv.job(id)?;
        let trace = srv.trace(id)?;
        Ok((content::completeness(&trace, expected), rec))
    }

    fn e2e(&mut self) -> Result<()> {
        let (n, (runs_o, runs_p)) = (self.plan.e2e_appends, self.plan.e2e_runs);
        let lines: Vec<u8> = (0..n).flat_map(|i| content::line(i, 100)).collect();
        let srv = self.server()?;
        srv.queue_jobs(runs_o)?;
        let o =
            self.ours("e2e", json!({"url": srv.url, "reg": srv.registration_token, "runs": runs_o, "appends": n}))?;
        let mut ours_complete = Vec::new();
        let mut ours_reqs = Vec::new();
        for id in o["jobs"].as_array().cloned().unwrap_or_default().iter().filter_map(Value::as_i64) {
            let (c, rec) = self.stored(&srv, id, &lines)?;
            let ok = c == Some(1.0) && rec["state"] == "success" && rec["checksum_matches"] == true;
            self.check(ok, format!("e2e: our job {id} not stored whole as success"));
            ours_complete.push(c.unwrap_or(0.0));
            ours_reqs.push(format!("{} PATCH + {} PUT", rec["trace_patches"], rec["updates"]));
        }
        let ours_t = Runs(nums(&o, "secs"));
        let (py_t, py_complete, py_errors, py_reqs) = if self.py_available() {
            srv.queue_jobs(runs_p)?;
            let pv =
                self.py("e2e", json!({"url": srv.url, "reg": srv.registration_token, "runs": runs_p, "appends": n}))?;
            let mut expected = content::PYTHON_HEADER.as_bytes().to_vec();
            expected.extend_from_slice(&lines);
            let mut comp = Vec::new();
            let mut reqs = Vec::new();
            for id in pv["jobs"].as_array().cloned().unwrap_or_default().iter().filter_map(Value::as_i64) {
                let (c, rec) = self.stored(&srv, id, &expected)?;
                comp.push(c.unwrap_or(f64::NAN));
                reqs.push(format!("{} PATCH + {} PUT", rec["trace_patches"], rec["updates"]));
            }
            (
                Runs(nums(&pv, "secs")),
                Runs(comp),
                errors_text(&[&pv["append_errors"]]),
                reqs.first().cloned().unwrap_or_default(),
            )
        } else {
            (Runs::default(), Runs::default(), self.py_missing(), String::new())
        };
        let rows = vec![
            vec!["wall time".into(), ours_t.show(dur), py_t.show(dur), ratio(py_t.median(), ours_t.median())],
            vec![
                "log stored by the server (of what was appended)".into(),
                Runs(ours_complete).show(pct),
                if py_t.is_empty() { "—".to_string() } else { py_complete.show(pct) },
                "".into(),
            ],
            vec![
                "requests for the job (server's count)".into(),
                ours_reqs.first().cloned().unwrap_or_default(),
                py_reqs,
                "".into(),
            ],
            vec!["appends that raised (all runs)".into(), "0".into(), py_errors, "".into()],
        ];
        self.sections.push(format!(
            "## 1. register + request + {n} log appends + success\n\n\
             Each run registers a runner, takes a queued job, appends {n} lines of 100 bytes one by one and reports \
             success; wall time of all of it (Python's `Runner.register` also verifies the new runner: a second \
             POST). Both implementations against the same `glr-testserver` process.\n\n{}\n",
            table(&["", "gitlab_runner_api (C API)", "Python 1.0.4", "Python / ours"], &rows)
        ));
        Ok(())
    }

    fn latency(&mut self) -> Result<()> {
        let mut rows = Vec::new();
        let delays = self.plan.lat_delays.clone();
        for (k, delay) in delays.iter().copied().enumerate() {
            let srv = self.server()?;
            srv.set_delay(delay)?;
            let (na, ra) = (self.plan.lat_appends.0, self.plan.lat_runs.0);
            srv.queue_jobs(ra)?;
            let o = self
                .ours("latency", json!({"url": srv.url, "reg": srv.registration_token, "runs": ra, "appends": na}))?;
            let lines: Vec<u8> = (0..na).flat_map(|i| content::line(i, 100)).collect();
            for id in o["runs"].as_array().cloned().unwrap_or_default().iter().filter_map(|r| r["job"].as_i64()) {
                let (c, _) = self.stored(&srv, id, &lines)?;
                self.check(c == Some(1.0), format!("latency: our job {id} log incomplete"));
            }
            let (op50, op99) = (Runs(field(&o, "runs", "p50_ns")), Runs(field(&o, "runs", "p99_ns")));
            if delay == 0 {
                self.keep("append_p99_ns", op99.median());
            }
            let (pp50, pp99, pcomp, perr, pn) = if self.py_available() {
                let (np, rp) = (self.plan.lat_appends.1[k], self.plan.lat_runs.1[k]);
                srv.queue_jobs(rp)?;
                let pv = self
                    .py("latency", json!({"url": srv.url, "reg": srv.registration_token, "runs": rp, "appends": np}))?;
                let mut expected = content::PYTHON_HEADER.as_bytes().to_vec();
                expected.extend((0..np).flat_map(|i| content::line(i, 100)));
                let mut comp = Vec::new();
                for id in pv["runs"].as_array().cloned().unwrap_or_default().iter().filter_map(|r| r["job"].as_i64()) {
                    comp.push(self.stored(&srv, id, &expected)?.0.unwrap_or(f64::NAN));
                }
                (
                    Runs(field(&pv, "runs", "p50_ns")),
                    Runs(field(&pv, "runs", "p99_ns")),
                    Runs(comp).show(pct),
                    errors_text(&[&pv["append_errors"]]),
                    format!("{np} × {rp} runs"),
                )
            } else {
                (Runs::default(), Runs::default(), "—".into(), self.py_missing(), "—".into())
            };
            rows.push(vec![
                format!("{delay} ms"),
                format!("{na} × {ra} runs"),
                op50.show(ns),
                op99.show(ns),
                pn,
                pp50.show(ns),
                pp99.show(ns),
                ratio(pp50.median(), op50.median()),
                ratio(pp99.median(), op99.median()),
                pcomp,
                perr,
            ]);
        }
        self.sections.push(format!(
            "## 2. Append latency\n\n\
             Each append of a 100-byte line timed alone (ours: `glr_job_log_append`; Python: `job.log += line`), the \
             server delaying every request by the given time. Percentiles per run, median of the runs (min–max). \
             Python appends synchronously (one PATCH per append, and after the first a 416 plus its PUT-`trace` \
             fallback, which the server answers 400, raised as NotImplementedError).\n\n{}\n",
            table(
                &[
                    "delay",
                    "ours: appends",
                    "ours p50",
                    "ours p99",
                    "Python: appends",
                    "Python p50",
                    "Python p99",
                    "p50 Python/ours",
                    "p99 Python/ours",
                    "Python log stored",
                    "Python appends that raised"
                ],
                &rows
            )
        ));
        Ok(())
    }

    fn dumps_loads(&mut self) -> Result<()> {
        let p = &self.plan;
        let (bytes, (io, ip), (ro, rp)) = (p.dl_log_bytes, p.dl_iters, p.dl_runs);
        let srv = self.server()?;
        // One run of ours, then one of Python, and so on: each pair sees the machine in the same
        // state (its speed drifts within a minute here); the ratios are the medians of the pairs'.
        let (mut od, mut ol, mut pd, mut pl, mut of) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut dump_bytes, mut psize) = (Value::Null, self.py_missing());
        let py = self.py_available();
        for i in 0..ro.max(if py { rp } else { 0 }) {
            if i < ro {
                srv.queue_jobs(1)?;
                let o = self.ours(
                    "dumpsloads",
                    json!({"url": srv.url, "reg": srv.registration_token, "runs": 1, "iters": io, "log_bytes": bytes}),
                )?;
                self.check(o["roundtrip_same_size"] == true, "dumps/loads: our loaded job dumps differently".into());
                od.extend(nums(&o, "dumps_per_s"));
                ol.extend(nums(&o, "loads_per_s"));
                of.extend(nums(&o, "floor_per_s"));
                dump_bytes = o["dump_bytes"].clone();
            }
            if py && i < rp {
                srv.queue_jobs(1)?;
                let pv = self.py(
                    "dumpsloads",
                    json!({"url": srv.url, "reg": srv.registration_token, "runs": 1, "iters": ip, "log_bytes": bytes}),
                )?;
                pd.extend(nums(&pv, "dumps_per_s"));
                pl.extend(nums(&pv, "loads_per_s"));
                psize = format!("{} B", pv["dump_bytes"]);
            }
        }
        let paired = |a: &[f64], b: &[f64]| {
            let r: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
            Runs(r).median()
        };
        self.keep("dumps_vs_python", paired(&od, &pd));
        self.keep("loads_vs_python", paired(&ol, &pl));
        let (od, ol, pd, pl) = (Runs(od), Runs(ol), Runs(pd), Runs(pl));
        self.keep("loads_ours_per_s", ol.median());
        self.keep("loads_py_per_s", pl.median());
        self.keep("loads_floor_per_s", Runs(of).median());
        self.keep("loads_py_min_per_s", pl.0.iter().copied().reduce(f64::min));
        self.keep("loads_py_max_per_s", pl.0.iter().copied().reduce(f64::max));
        let o = json!({"dump_bytes": dump_bytes});
        let per_s = |x: f64| format!("{}/s", num(x));
        let rows = vec![
            vec![
                "dumps per second".into(),
                od.show(per_s),
                pd.show(per_s),
                ratio(self.fig("dumps_vs_python"), Some(1.0)),
            ],
            vec![
                "loads per second".into(),
                ol.show(per_s),
                pl.show(per_s),
                ratio(self.fig("loads_vs_python"), Some(1.0)),
            ],
            vec!["dump size".into(), format!("{} B", o["dump_bytes"]), psize, "".into()],
            vec!["iterations per run".into(), format!("{io} × {ro} runs"), format!("{ip} × {rp} runs"), "".into()],
        ];
        self.sections.push(format!(
            "## 3. dumps / loads of a job with a {} log\n\n\
             A job taken from the test server (its realistic payload: variables, steps, artifacts, services...) with a \
             {} log (ours: appended and flushed; Python: one `+=`, which it uploads in one accepted PATCH). Ours: \
             `glr_job_dumps` (string freed) and `glr_job_loads` + `glr_job_free`, offline. Python: `job.dumps()` and \
             `Job.loads()`, which always verifies the runner over the network (one POST per load). The two take \
             turns, a run each; the last column is the median of the pairs' ratios.\n\n{}\n",
            kib(bytes as f64 / 1024.0),
            kib(bytes as f64 / 1024.0),
            table(&["", "gitlab_runner_api (C API)", "Python 1.0.4", "ours / Python"], &rows)
        ));
        Ok(())
    }

    fn hold(&mut self) -> Result<()> {
        let mut rows = Vec::new();
        let ns_ = self.plan.hold_ns.clone();
        let (ro, rp) = self.plan.hold_runs;
        let mut ours_hwm = BTreeMap::new();
        let mut py_hwm = BTreeMap::new();
        for &n in &ns_ {
            // A fresh server per run: its cost per request grows with the jobs it holds.
            let mut o = Vec::new();
            for _ in 0..ro {
                let srv = self.server()?;
                srv.queue_jobs(n)?;
                o.push(self.ours("hold", json!({"url": srv.url, "reg": srv.registration_token, "n": n}))?);
            }
            let mut p = Vec::new();
            if self.py_available() {
                for _ in 0..rp {
                    let srv = self.server()?;
                    srv.queue_jobs(n)?;
                    p.push(self.py("hold", json!({"url": srv.url, "reg": srv.registration_token, "n": n}))?);
                }
            }
            let oh = Runs(o.iter().map(|r| f(r, "hwm_kib")).collect());
            let ph = Runs(p.iter().map(|r| f(r, "hwm_kib")).collect());
            let ob = Runs(o.iter().map(|r| f(r, "baseline_kib")).collect());
            let pb = Runs(p.iter().map(|r| f(r, "baseline_kib")).collect());
            ours_hwm.insert(n, oh.median());
            py_hwm.insert(n, ph.median());
            rows.push(vec![
                n.to_string(),
                oh.show(kib),
                ob.show(kib),
                Runs(o.iter().map(|r| f(r, "threads")).collect()).show(|x| format!("{x:.0}")),
                if p.is_empty() { self.py_missing() } else { ph.show(kib) },
                pb.show(kib),
                ratio(ph.median(), oh.median()),
            ]);
        }
        let slope = |m: &BTreeMap<usize, Option<f64>>| -> String {
            let (lo, hi) = (ns_.first().copied().unwrap_or(1), ns_.last().copied().unwrap_or(1));
            match (m.get(&lo).copied().flatten(), m.get(&hi).copied().flatten()) {
                (Some(a), Some(b)) if hi > lo => kib((b - a) / (hi - lo) as f64),
                _ => "—".into(),
            }
        };
        self.sections.push(format!(
            "## 4. Peak memory of a process holding jobs\n\n\
             A fresh process registers a runner and takes N queued jobs (realistic payload) and holds them: peak RSS \
             (VmHWM). \"At start\" is the process's RSS before it does anything (ours: a Rust program linking the \
             library; Python: the interpreter with the package imported). Growth per extra job: ours {}, Python {}.\n\n{}\n",
            slope(&ours_hwm),
            slope(&py_hwm),
            table(&["jobs", "ours: peak RSS", "ours: at start", "ours: threads", "Python: peak RSS", "Python: at start", "Python / ours"], &rows)
        ));
        Ok(())
    }

    fn rtt(&mut self) -> Result<()> {
        let p = &self.plan;
        let ((no, np), (ro, rp)) = (p.rtt_n, p.rtt_runs);
        let srv = self.server()?;
        let o = self.ours("rtt", json!({"url": srv.url, "reg": srv.registration_token, "runs": ro, "n": no}))?;
        let (ours, raw) = (Runs(nums(&o, "ours_per_s")), Runs(nums(&o, "raw_per_s")));
        self.keep("rtt_ours_per_s", ours.median());
        self.keep("rtt_raw_per_s", raw.median());
        self.keep("rtt_time_ratio", Runs(nums(&o, "time_ratio")).median());
        let (pkg, praw) = if self.py_available() {
            let pv = self.py("rtt", json!({"url": srv.url, "reg": srv.registration_token, "runs": rp, "n": np}))?;
            (Runs(nums(&pv, "package_per_s")), Runs(nums(&pv, "raw_per_s")))
        } else {
            (Runs::default(), Runs::default())
        };
        let per_s = |x: f64| format!("{}/s", num(x));
        let mut rows = vec![
            vec![
                "gitlab_runner_api `glr_runner_request_job`".into(),
                format!("{no} × {ro}"),
                ours.show(per_s),
                "1".into(),
            ],
            vec![
                "raw HTTP client (reqwest, keep-alive), the same POST body".into(),
                format!("{no} × {ro}"),
                raw.show(per_s),
                ratio(raw.median(), ours.median()),
            ],
            vec![
                "Python 1.0.4 `runner.request_job()`".into(),
                format!("{np} × {rp}"),
                if pkg.is_empty() { self.py_missing() } else { pkg.show(per_s) },
                ratio(pkg.median(), ours.median()),
            ],
            vec![
                "raw Python `requests.post`, the package's body".into(),
                format!("{np} × {rp}"),
                praw.show(per_s),
                ratio(praw.median(), ours.median()),
            ],
        ];
        // Whether the test server's cost per request grows with the jobs it holds (it did while it
        // searched each logged request for every token it knew): the same with 1,000 more jobs on it.
        let busy_jobs = self.plan.hold_ns.last().copied().unwrap_or(1000);
        srv.queue_tagged_jobs(busy_jobs, "bench-nobody-has-this-tag")?;
        let b = self.ours("rtt", json!({"url": srv.url, "reg": srv.registration_token, "runs": ro.min(3), "n": no}))?;
        let (bours, braw) = (Runs(nums(&b, "ours_per_s")), Runs(nums(&b, "raw_per_s")));
        let overhead = match (ours.median(), raw.median()) {
            (Some(a), Some(b)) => {
                format!("{:.1} µs per request ({:+.0} %)", (1.0 / a - 1.0 / b) * 1e6, (b / a - 1.0) * 100.0)
            }
            _ => "—".into(),
        };
        let paired = Runs(nums(&o, "time_ratio")).median().map_or("—".into(), |r| format!("{r:.2}"));
        rows.push(vec![
            format!("ours, the server holding {busy_jobs} more jobs (none for this runner)"),
            format!("{no} × {}", ro.min(3)),
            bours.show(per_s),
            ratio(bours.median(), ours.median()),
        ]);
        rows.push(vec![
            format!("raw client, the server holding {busy_jobs} more jobs"),
            format!("{no} × {}", ro.min(3)),
            braw.show(per_s),
            ratio(braw.median(), ours.median()),
        ]);
        self.sections.push(format!(
            "## 5. request_job round trips\n\n\
             No job queued, long polling off: each request is answered 204 at once, so this is the client's cost per \
             poll. The raw client sends exactly the body our library sent (taken from the server's request log); \
             within a run the two take turns every 50 requests. Our overhead over the raw client: {overhead} \
             (medians); the median of the runs' own ratios, ours / raw time: {paired}. The last two rows are the same with the server \
             holding {busy_jobs} more jobs, to show whether its cost per request grows with the jobs it holds \
             (its instructions per job request, with and without them, are in the issue 16 section).\n\n{}\n",
            table(&["client", "requests × runs", "round trips per second", "relative to ours"], &rows)
        ));
        Ok(())
    }

    fn log_size(&mut self) -> Result<()> {
        let mut rows = Vec::new();
        let chunk = self.plan.log_chunk;
        let mibs = self.plan.log_mibs.clone();
        let mut ours_per_mib = Vec::new();
        let mut py_per_mib = Vec::new();
        for (k, &mib) in mibs.iter().enumerate() {
            let bytes = mib << 20;
            let expected = content::stream(bytes);
            let srv = self.server()?;
            let (ro, rp) = (self.plan.log_runs.0[k], self.plan.log_runs.1[k]);
            let mut o = Vec::new();
            for _ in 0..ro {
                srv.queue_jobs(1)?;
                let v = self.ours(
                    "logsize",
                    json!({"url": srv.url, "reg": srv.registration_token, "bytes": bytes, "chunk": chunk}),
                )?;
                let id = v["job"].as_i64().unwrap_or(0);
                let stored = srv.trace(id)?;
                self.check(
                    stored == expected,
                    format!("log size {mib} MiB: our job {id} stored {} of {} bytes", stored.len(), bytes),
                );
                o.push(v);
            }
            let mut p = Vec::new();
            let mut pcomp = Vec::new();
            if self.py_available() && rp > 0 {
                let mut pexp = content::PYTHON_HEADER.as_bytes().to_vec();
                pexp.extend_from_slice(&expected);
                for _ in 0..rp {
                    srv.queue_jobs(1)?;
                    let v = self.py(
                        "logsize",
                        json!({"url": srv.url, "reg": srv.registration_token, "bytes": bytes, "chunk": chunk}),
                    )?;
                    let stored = srv.trace(v["job"].as_i64().unwrap_or(0))?;
                    pcomp.push(content::completeness(&stored, &pexp).unwrap_or(f64::NAN));
                    p.push(v);
                }
            }
            drop(expected);
            let ot = Runs(o.iter().map(|r| f(r, "secs")).collect());
            let om = Runs(o.iter().map(|r| f(r, "hwm_kib") - f(r, "before_kib")).collect());
            let pt = Runs(p.iter().map(|r| f(r, "secs")).collect());
            let pm = Runs(p.iter().map(|r| f(r, "hwm_kib") - f(r, "before_kib")).collect());
            ours_per_mib.push((mib, ot.median().map(|t| t / mib as f64), om.median().map(|m| m / 1024.0 / mib as f64)));
            py_per_mib.push((mib, pt.median().map(|t| t / mib as f64), pm.median().map(|m| m / 1024.0 / mib as f64)));
            let python_cell = |r: &Runs, f: fn(f64) -> String| {
                if !self.py_available() {
                    self.py_missing()
                } else if rp == 0 {
                    "not run (see below)".into()
                } else {
                    r.show(f)
                }
            };
            rows.push(vec![
                format!("{mib} MiB"),
                ot.show(dur),
                ot.median().map_or("—".into(), |t| format!("{:.0} MB/s", bytes as f64 / 1e6 / t)),
                om.show(kib),
                python_cell(&pt, dur),
                python_cell(&pm, kib),
                if pcomp.is_empty() { "—".into() } else { Runs(pcomp).show(pct) },
                errors_text(&p.iter().map(|v| &v["append_errors"]).collect::<Vec<_>>()),
                ratio(pt.median(), ot.median()),
            ]);
        }
        self.sections.push(format!(
            "## 6. Scaling with the log size\n\n\
             One job; its log (100-byte lines) appended in {} KiB appends (a runner reading a pipe), then \
             success; wall time of the appends and the finish, and the peak RSS above the process's RSS before the log \
             (both implementations hold the whole log in memory: ours to resend after a loss and for dumps, Python as \
             a str).\n\n{}\n{}\n{}\n",
            chunk / 1024,
            table(
                &[
                    "log",
                    "ours: time",
                    "ours: throughput",
                    "ours: peak memory above start",
                    "Python: time",
                    "Python: peak memory above start",
                    "Python log stored",
                    "Python appends that raised",
                    "time Python / ours"
                ],
                &rows
            ),
            growth("ours", "time per MiB", &ours_per_mib.iter().map(|(m, t, _)| (*m, *t)).collect::<Vec<_>>(), dur),
            growth_py(&py_per_mib),
        ));
        Ok(())
    }

    fn concurrent(&mut self) -> Result<()> {
        let mut rows = Vec::new();
        let conc = self.plan.conc_ns.clone();
        let (appends, tmax) = (self.plan.conc_appends, self.plan.conc_threads);
        let mut ours_per_job = Vec::new();
        let mut ours_mem_per_job = Vec::new();
        let mut ours_cpu_per_job = Vec::new();
        let mut py_last = None;
        let mut py_skipped = Vec::new();
        for (k, &n) in conc.iter().enumerate() {
            let threads = n.min(tmax);
            let (ro, rp) = (self.plan.conc_runs.0[k], self.plan.conc_runs.1[k]);
            let lines: Vec<u8> = (0..appends).flat_map(|i| content::line(i, 100)).collect();
            let mut o = Vec::new();
            for _ in 0..ro {
                // A fresh server per run: its cost per request grows with the jobs it holds.
                let srv = self.server()?;
                srv.queue_jobs(n)?;
                let v = self.ours("concurrent", json!({"url": srv.url, "reg": srv.registration_token, "jobs": n, "threads": threads, "appends": appends}))?;
                let ids: Vec<i64> =
                    v["jobs"].as_array().cloned().unwrap_or_default().iter().filter_map(Value::as_i64).collect();
                let complete = ids.iter().filter(|id| srv.trace(**id).is_ok_and(|t| t == lines)).count();
                self.check(complete == n, format!("concurrent {n}: {complete}/{n} of our logs complete"));
                o.push(v);
            }
            let mut p = Vec::new();
            if self.py_available() {
                for _ in 0..rp {
                    let srv = self.server()?;
                    srv.queue_jobs(n)?;
                    p.push(self.py("concurrent", json!({"url": srv.url, "reg": srv.registration_token, "jobs": n, "threads": threads, "appends": appends}))?);
                }
            }
            let ot = Runs(o.iter().map(|r| f(r, "secs")).collect());
            let om = Runs(o.iter().map(|r| f(r, "hwm_kib") - f(r, "baseline_kib")).collect());
            let pt = Runs(p.iter().map(|r| f(r, "secs")).collect());
            let pm = Runs(p.iter().map(|r| f(r, "hwm_kib") - f(r, "baseline_kib")).collect());
            let oc = Runs(o.iter().map(|r| f(r, "cpu_secs")).collect());
            // CPU time is counted in 10 ms ticks: below 50 ms in all it says little.
            let oc_med = oc.median().filter(|c| *c >= 0.05);
            ours_cpu_per_job.push((n, oc_med.map(|c| c / n as f64)));
            if let (Some(t), true) = (pt.median(), rp > 0) {
                py_last = Some((n, t));
            }
            ours_per_job.push((n, ot.median().map(|t| t / n as f64)));
            ours_mem_per_job.push((n, om.median().map(|m| m / n as f64)));
            let pcell = |r: &Runs, f: fn(f64) -> String| {
                if !self.py_available() {
                    self.py_missing()
                } else if rp == 0 {
                    "not run (see below)".into()
                } else {
                    r.show(f)
                }
            };
            if rp == 0 {
                py_skipped.push(n);
            }
            rows.push(vec![
                n.to_string(),
                threads.to_string(),
                ot.show(dur),
                ot.median().map_or("—".into(), |t| dur(t / n as f64)),
                oc_med.map_or("— (< 50 ms in all)".into(), |c| dur(c / n as f64)),
                om.show(kib),
                pcell(&pt, dur),
                pcell(&pm, kib),
                ratio(pt.median(), ot.median()),
            ]);
        }
        self.sections.push(format!(
            "## 7. Scaling with concurrent jobs\n\n\
             N jobs live at once in one process, driven by min(N, {tmax}) threads: each thread takes its share of the \
             queued jobs, appends {appends} lines of 100 bytes round-robin over them, then reports each a success. \
             Time from the first job request to the last success; peak RSS above the process's RSS at start. Python \
             does the same with `threading`. Each run has a fresh server, but the server's time per request still \
             grows with the jobs it holds during the run (section 5), so the wall time per job grows faster than \
             the client's CPU time per job.\n\n{}\n{}\n{}\n",
            table(
                &[
                    "jobs",
                    "threads",
                    "ours: time",
                    "ours: per job",
                    "ours: CPU per job (client process)",
                    "ours: peak memory above start",
                    "Python: time",
                    "Python: peak memory above start",
                    "time Python / ours"
                ],
                &rows
            ),
            growth("ours", "time per job", &ours_per_job, dur)
                + &growth("ours", "CPU time per job (the client process only)", &ours_cpu_per_job, dur),
            growth("ours", "memory per job", &ours_mem_per_job, kib)
                + &match (py_last, py_skipped.is_empty()) {
                    (Some((n, t)), false) => format!(
                    "\nPython at {} jobs not run (time budget): at least {} if it only grew linearly from {n} jobs.\n",
                    py_skipped.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", "),
                    dur(t * *py_skipped.last().unwrap_or(&n) as f64 / n as f64)
                ),
                    _ => String::new(),
                },
        ));
        Ok(())
    }

    fn scale_out(&mut self) -> Result<()> {
        let p = &self.plan;
        let (workers, njobs, lines, (ro, rp)) = (p.so_workers, p.so_jobs, p.so_lines, p.so_runs);
        let mut ours_rows = Vec::new();
        let mut ours_t = Vec::new();
        for _ in 0..ro {
            let srv = self.server()?;
            let queued: BTreeSet<i64> = srv.queue_jobs(njobs)?.into_iter().collect();
            // One runner (a glrt- token from the "UI"), loaded by every worker with its own system_id,
            // as on 8 machines.
            let runner = Runner::from_token(&srv.url, &srv.runner_token)?;
            let dump: Value = serde_json::from_str(&runner.dumps()?).map_err(|e| e.to_string())?;
            let t = Instant::now();
            let children: Vec<_> = (0..workers)
                .map(|w| {
                    let mut d = dump.clone();
                    d["system_id"] = json!(format!("r_bench{w:07}"));
                    let args = json!({"runner": d.to_string(), "lines": lines, "line_len": 100});
                    Command::new(&self.exe)
                        .args(["child", "worker", &args.to_string()])
                        .stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<_>>()?;
            let mut per_worker = Vec::new();
            for c in children {
                let out = c.wait_with_output().map_err(|e| e.to_string())?;
                if !out.status.success() {
                    return Err(format!("worker failed: {}", String::from_utf8_lossy(&out.stderr)));
                }
                per_worker.push(python::parse_result(&String::from_utf8_lossy(&out.stdout))?);
            }
            let secs = t.elapsed().as_secs_f64();
            let v = self.verify_scale_out(&srv, &queued, &per_worker, lines, false)?;
            ours_t.push(secs);
            ours_rows.push(v);
        }
        let mut py_rows = Vec::new();
        let mut py_t = Vec::new();
        if self.py_available() {
            for _ in 0..rp {
                let srv = self.server()?;
                let queued: BTreeSet<i64> = srv.queue_jobs(njobs)?.into_iter().collect();
                let py = self.py.as_ref().map_err(|e| e.clone())?;
                let t = Instant::now();
                let args = json!({"url": srv.url, "reg": srv.registration_token, "lines": lines, "line_len": 100});
                let results: Vec<Result<Value>> = std::thread::scope(|s| {
                    let hs: Vec<_> = (0..workers).map(|_| s.spawn(|| py.run("worker", &args))).collect();
                    hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("panic".into()))).collect()
                });
                let secs = t.elapsed().as_secs_f64();
                let per_worker: Vec<Value> = results.into_iter().collect::<Result<_>>()?;
                py_rows.push(self.verify_scale_out(&srv, &queued, &per_worker, lines, true)?);
                py_t.push(secs);
            }
        }
        let summarize = |rows: &[ScaleOut]| -> Vec<String> {
            if rows.is_empty() {
                return vec!["—".into(); 6];
            }
            let all = |f: fn(&ScaleOut) -> String| {
                rows.iter().map(f).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>().join("; ")
            };
            vec![
                all(|r| format!("{}/{}", r.taken_once, r.queued)),
                all(|r| r.duplicates.to_string()),
                all(|r| format!("{}/{}", r.complete, r.queued)),
                all(|r| r.checksums.clone()),
                all(|r| r.system_ids.clone()),
                all(|r| r.spread.clone()),
            ]
        };
        let (so, sp) = (summarize(&ours_rows), summarize(&py_rows));
        let (ot, pt) = (Runs(ours_t), Runs(py_t));
        let labels = [
            "jobs taken exactly once",
            "jobs taken twice",
            "logs complete",
            "final checksum matched",
            "runner managers (system_id) seen by the server",
            "jobs per worker (min–max)",
        ];
        let mut rows = vec![vec![
            "total wall time".to_string(),
            ot.show(dur),
            if pt.is_empty() { self.py_missing() } else { pt.show(dur) },
            ratio(pt.median(), ot.median()),
        ]];
        rows.push(vec![
            "jobs per second".into(),
            ot.median().map_or("—".into(), |t| format!("{:.0}", njobs as f64 / t)),
            pt.median().map_or("—".into(), |t| format!("{:.1}", njobs as f64 / t)),
            "".into(),
        ]);
        for (i, l) in labels.iter().enumerate() {
            rows.push(vec![l.to_string(), so[i].clone(), sp[i].clone(), "".into()]);
        }
        self.sections.push(format!(
            "## 8. Scale-out: {workers} runner processes, {njobs} queued jobs\n\n\
             {workers} processes take jobs from one test server at the same time until it has none, each job logging \
             {lines} lines of 100 bytes naming it, then success. Ours: one runner (`glrt-` token) dumped once and \
             loaded by every process with its own `system_id`, as {workers} machines would. Python: each process \
             registers its own runner (the package sends no `system_id`). The server's job records are checked \
             afterwards.\n\n{}\n",
            table(&["", "gitlab_runner_api (C API)", "Python 1.0.4", "Python / ours"], &rows)
        ));
        Ok(())
    }

    fn verify_scale_out(
        &mut self,
        srv: &Server,
        queued: &BTreeSet<i64>,
        per_worker: &[Value],
        lines: usize,
        python: bool,
    ) -> Result<ScaleOut> {
        let mut count: BTreeMap<i64, usize> = BTreeMap::new();
        let mut sizes = Vec::new();
        for w in per_worker {
            let ids: Vec<i64> =
                w["jobs"].as_array().cloned().unwrap_or_default().iter().filter_map(Value::as_i64).collect();
            sizes.push(ids.len());
            for id in ids {
                *count.entry(id).or_default() += 1;
            }
        }
        let records = srv.jobs()?;
        let mut complete = 0;
        let mut checks = 0;
        let mut system_ids = BTreeSet::new();
        let mut server_taken = 0;
        for rec in records.iter().filter(|r| r["id"].as_i64().is_some_and(|id| queued.contains(&id))) {
            let id = rec["id"].as_i64().unwrap_or(0);
            if rec["runner_id"].is_i64() {
                server_taken += 1;
            }
            if let Some(s) = rec["system_id"].as_str() {
                system_ids.insert(s.to_string());
            }
            let mut expected: Vec<u8> = if python { content::PYTHON_HEADER.as_bytes().to_vec() } else { Vec::new() };
            expected.extend(content::job_lines(id, lines, 100).concat());
            let trace = srv.trace(id)?;
            if trace == expected && rec["state"] == "success" {
                complete += 1;
            }
            if rec["checksum_matches"] == true {
                checks += 1;
            }
        }
        let taken_once = queued.iter().filter(|id| count.get(id) == Some(&1)).count();
        let duplicates = count.values().filter(|c| **c > 1).count();
        let out = ScaleOut {
            queued: queued.len(),
            taken_once,
            duplicates,
            complete,
            checksums: if python { "n/a (sends none)".into() } else { format!("{checks}/{}", queued.len()) },
            system_ids: if python {
                format!("{} (`{}`)", system_ids.len(), system_ids.iter().cloned().collect::<Vec<_>>().join("`, `"))
            } else {
                system_ids.len().to_string()
            },
            spread: format!("{}–{}", sizes.iter().min().unwrap_or(&0), sizes.iter().max().unwrap_or(&0)),
        };
        let who = if python { "Python" } else { "ours" };
        self.check(
            taken_once == queued.len() && duplicates == 0 && server_taken == queued.len(),
            format!("scale-out ({who}): {taken_once}/{} jobs taken exactly once, {duplicates} twice", queued.len()),
        );
        if !python {
            self.check(
                complete == queued.len(),
                format!("scale-out (ours): {complete}/{} logs complete", queued.len()),
            );
            // Each worker that took a job shows as its own runner manager (a quick run may leave a
            // worker without a job: whoever polls first takes them).
            let working = sizes.iter().filter(|n| **n > 0).count();
            self.check(
                system_ids.len() == working,
                format!("scale-out (ours): {} system_ids for {working} workers that took jobs", system_ids.len()),
            );
        }
        Ok(out)
    }

    fn markdown(&self, opts: &Options) -> String {
        let py = match &self.py {
            Ok(p) => format!(
                "Python {} with gitlab-runner-api {} (venv under the target directory)",
                p.python_version, p.package_version
            ),
            Err(e) => format!("Python side not run: {e}"),
        };
        let cmd = if opts.quick { "cargo run --release -p bench -- --quick" } else { "cargo run --release -p bench" };
        let mut s = String::new();
        s.push_str("# Benchmarks\n\n");
        s.push_str(&format!(
            "<!-- Generated by `{cmd}` (bench/src/harness.rs): do not edit by hand, run it again. -->\n\n\
             - Command: `{cmd}` (from the repository root; it builds `glr-testserver`, creates the Python venv and \
             writes this file). `--quick` is the seconds-long smoke version used by `cargo test -p bench`.\n\
             - Date: {} · commit {} · harness wall time {:.0} s (build not included)\n\
             - Machine: {} · load average (1 min) {} at the start of the run, {} at the end\n\
             - Toolchain: {} · {}\n\
             - Test server: {}, started afresh for each scenario with `{}`\n\n",
            shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            shell("git", &["-C", concat!(env!("CARGO_MANIFEST_DIR"), "/.."), "rev-parse", "--short", "HEAD"]),
            self.started.elapsed().as_secs_f64(),
            proc::machine(),
            self.load_start,
            proc::loadavg(),
            shell("rustc", &["--version"]),
            py,
            self.server_exe.describe(),
            server::DEFAULT_ARGS.join(" "),
        ));
        s.push_str(
            "Every figure is the median of its runs with the spread as (min–max, n=runs); percentiles are taken within \
             a run, then the median of the runs. Ratios compare the medians of the same harness run. Our side runs \
             through the exported C functions (`glr_*`), in a child process per scenario; the Python side in a fresh \
             interpreter per scenario. Both talk HTTP over loopback to the same test server process, which shares the \
             machine's cores with them.\n\n\
             The Python package is measured as it behaves against current GitLab, which the test server reproduces: \
             its first `job.log +=` is accepted, but it counts the offset without its own header line, so every later \
             append gets 416 and falls back to `PUT /jobs/:id` with the whole log as `trace`, a parameter GitLab no \
             longer has; GitLab answers that PUT 400 (no `state`), which the package raises as NotImplementedError. \
             The driver catches it and goes on, so each later append costs a PATCH of everything after the wrong \
             offset plus a PUT of the whole log, and the server keeps only the first append. The \"log stored\" \
             columns show this; they are not hidden by the timings. The logs here are ASCII: with other text the \
             package's offsets, counted in characters instead of bytes, would go wrong in one more way.\n\n",
        );
        if !self.problems.is_empty() {
            s.push_str("**Checks that failed in this run:**\n\n");
            for p in &self.problems {
                s.push_str(&format!("- {p}\n"));
            }
            s.push('\n');
        }
        s.push_str("## Issue 4 targets\n\n");
        s.push_str(&table(&["figure", "measured", "target", "met"], &self.targets));
        s.push('\n');
        s.push_str(&self.i16_targets());
        s.push('\n');
        for sec in &self.sections {
            s.push_str(sec);
            s.push('\n');
        }
        s
    }
}

struct ScaleOut {
    queued: usize,
    taken_once: usize,
    duplicates: usize,
    complete: usize,
    checksums: String,
    system_ids: String,
    spread: String,
}

fn ms_of(v: f64) -> String {
    format!("{v:.0}")
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "**no**" }.into()
}

/// "grows linearly or better" or where it does not, from (size, cost per unit) points.
fn growth(who: &str, what: &str, points: &[(usize, Option<f64>)], fmt: fn(f64) -> String) -> String {
    let pts: Vec<(usize, f64)> = points.iter().filter_map(|(n, v)| v.map(|v| (*n, v))).collect();
    if pts.len() < 2 {
        return String::new();
    }
    let list = pts.iter().map(|(n, v)| format!("{} at {n}", fmt(*v))).collect::<Vec<_>>().join(", ");
    let worse: Vec<String> = pts
        .windows(2)
        .filter(|w| w[1].1 > w[0].1 * 1.5)
        .map(|w| format!("from {} to {} ({:.1}× per unit)", w[0].0, w[1].0, w[1].1 / w[0].1))
        .collect();
    if worse.is_empty() {
        format!("{who}: {what} {list}: linear or better (per-unit cost never grows by more than 1.5× between steps).\n")
    } else {
        format!("{who}: {what} {list}: **worse than linear** {}.\n", worse.join(", "))
    }
}

fn growth_py(points: &[(usize, Option<f64>, Option<f64>)]) -> String {
    let pts: Vec<(usize, f64)> = points.iter().filter_map(|(n, t, _)| t.map(|t| (*n, t))).collect();
    let mut s = String::new();
    if pts.len() >= 2 {
        let opts: Vec<(usize, Option<f64>)> = pts.iter().map(|(n, t)| (*n, Some(*t))).collect();
        s.push_str(&growth("Python", "time per MiB", &opts, dur));
    }
    let skipped: Vec<String> =
        points.iter().filter(|(_, t, _)| t.is_none()).map(|(n, _, _)| format!("{n} MiB")).collect();
    if !skipped.is_empty() && !pts.is_empty() {
        let (n, t) = pts[pts.len() - 1];
        let (m, _, _) = points[points.len() - 1];
        // Per-append cost grows with the log (each append resends it), so the total grows with its
        // square: t(m) ≈ t(n) · (m/n)².
        let projected = t * n as f64 * (m as f64 / n as f64).powi(2);
        s.push_str(&format!(
            "Python at {} not run: each of its appends re-sends the log after its wrong offset (PATCH) and the whole \
             log (PUT), so its cost grows with the square of the log size; extrapolated from {n} MiB: about {}.\n",
            skipped.join(", "),
            dur(projected)
        ));
    }
    s
}
