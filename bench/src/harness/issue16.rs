//! Issue 16: the measurements its targets need that no other scenario makes (client CPU per MiB
//! uploaded, the append tail, the memory a big append keeps, the test server's cost per request
//! with jobs held), and its target table, built from this run's figures of every scenario.

use super::{f, yes, Harness, Result};
use crate::content;
use crate::report::{field, table};
use crate::stats::{dur, kib, ns, Runs};
use serde_json::{json, Value};

/// How much work the issue 16 measurements do.
pub(super) struct Plan {
    /// Client CPU: runs of the upload (its size is the issue 4 upload's, `i4_tp_mib`).
    cpu_runs: usize,
    /// Append p99.9: runs, untimed appends first, timed appends.
    tail: (usize, usize, usize),
    /// Append max with live jobs: jobs, rounds of one append to each, pause between rounds (ms), runs.
    live: (usize, usize, usize, usize),
    /// RSS kept by one big append: its size (MiB), runs (one process each).
    rss: (usize, usize),
    /// Test server instructions: jobs held (none, then these), job requests (uncounted, counted).
    server_held: usize,
    server_requests: (usize, usize),
}

/// The appends of `append max` counted as the start of their round (see `live_over_early`).
const ROUND_START: usize = 10;

impl Plan {
    pub(super) fn full() -> Plan {
        Plan {
            cpu_runs: 7,
            tail: (5, 20_000, 200_000),
            live: (1000, 20, 100, 5),
            rss: (50, 3),
            server_held: 1000,
            server_requests: (20, 300),
        }
    }

    pub(super) fn quick() -> Plan {
        Plan {
            cpu_runs: 1,
            tail: (1, 1000, 5000),
            live: (20, 3, 5, 1),
            rss: (4, 1),
            // The smoke test runs a debug server under callgrind: kept tiny.
            server_held: 5,
            server_requests: (2, 5),
        }
    }
}

/// A row of the target table; `met` None: not measured in this run.
fn row(figure: &str, now: String, target: &str, met: Option<bool>) -> Vec<String> {
    let met = match met {
        Some(m) => yes(m),
        None => "not measured".into(),
    };
    vec![figure.to_string(), now, target.to_string(), met]
}

impl Harness {
    /// Keeps a figure of this run for the issue 16 table (NaN: not measured).
    pub(super) fn keep(&mut self, key: &'static str, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.figures.insert(key, v);
        }
    }

    pub(super) fn fig(&self, key: &str) -> Option<f64> {
        self.figures.get(key).copied()
    }

    pub(super) fn i16_more(&mut self) -> Result<()> {
        let mut rows = Vec::new();
        let mut problems = Vec::new();
        let mut measure = |name: &str, r: Result<Vec<String>>| match r {
            Ok(row) => rows.push(row),
            Err(e) => {
                problems.push(format!("issue 16 {name}: {e}"));
                rows.push(vec![name.to_string(), format!("**failed:** {e}"), String::new()]);
            }
        };
        measure("client CPU per MiB", self.i16_cpu());
        measure("append p99.9", self.i16_tail());
        measure("append max with live jobs", self.i16_live());
        measure("RSS kept by a big append", self.i16_rss());
        measure("test server instructions per job request", self.i16_server());
        for p in problems {
            self.check(false, p);
        }
        let p = &self.plan.i16;
        self.sections.push(format!(
            "## Issue 16: client CPU, the append tail, memory kept, the test server's cost\n\n\
             Each figure has its own child mode (`bench child MODE JSON`, named in the table), which can be run \
             alone.\n\n\
             - Client CPU per MiB: the {mib} MiB upload of the issue 4 scenario against a separate server process, \
             so that the child's CPU time (getrusage RUSAGE_SELF: every thread, ended ones too) is the client's \
             alone. Ours: appending the log in 100-byte lines plus `glr_job_set_success`; raw: a `reqwest` \
             blocking client PATCHing the same log in 1 MiB chunks to a job our library took; runs: {cpu_runs} \
             of each, side by side.\n\
             - Append p99.9: as section 2 (100-byte lines back to back, a separate server process, no delay), \
             after {warm} untimed appends (the log's first pages), {n} timed appends per run; runs: {tail_runs}.\n\
             - Append max with live jobs: one process takes {jobs} jobs and gives each a first line (untimed), \
             then {rounds} rounds of one timed append to every job, {pause} ms apart (the jobs' PATCHes go up \
             meanwhile, at the server's update interval); the worst append of the run; runs: {live_runs}. Each \
             append is also put in one class by getrusage(RUSAGE_THREAD) read around it (outside the timed part): \
             its thread lost its core (an involuntary context switch), waited (a voluntary one: a lock), took a \
             page fault, or none of these. Right after each append, a 1 µs busy loop (no call, no memory) is \
             timed and classed the same way: what the machine itself does to a thread in those moments.\n\
             - RSS kept by a big append: a fresh process takes a job, then one {rss_mib} MiB `glr_job_log_append` \
             from a buffer of its own that it then frees; VmRSS after minus before, over the append's size \
             (after `glr_job_log_flush` too, the log uploaded); runs: {rss_runs}, one process each.\n\
             - Test server instructions per job request: `valgrind --tool=callgrind` on the test server's own \
             process (every thread of it). The server is started and made to hold N jobs (queued through its \
             control interface with a tag no runner has, as in section 5); a runner (our library) registers and \
             sends {r0} job requests, then the counters are zeroed (`callgrind_control -z`), it sends {r1} more \
             (answered 204) and they are written out (`callgrind_control -d`): instructions / {r1}. So the \
             start, the queueing of the jobs and the shutdown are not counted, nor is the server's background \
             clock task (`--toggle-collect`: every 100 ms it looks at every job, a cost per second held rather \
             than per request, which a slow run would count more of). N = 0 and N = {held}. Our library sends \
             back the queue cursor of the last answer (`last_update`), so after the first request the server \
             answers 204 from it without looking at its queue, as GitLab does; the second figure is for requests \
             without it (a raw client sending the runner's token and a small info), each of which makes the \
             server look for a job in its queue (the N jobs are all queued, for another tag).\n\n{}\n",
            table(&["figure", "measured", "child mode"], &rows),
            mib = self.plan.i4_tp_mib,
            cpu_runs = p.cpu_runs,
            warm = p.tail.1,
            n = p.tail.2,
            tail_runs = p.tail.0,
            jobs = p.live.0,
            rounds = p.live.1,
            pause = p.live.2,
            live_runs = p.live.3,
            rss_mib = p.rss.0,
            rss_runs = p.rss.1,
            r0 = p.server_requests.0,
            r1 = p.server_requests.1,
            held = p.server_held,
        ));
        Ok(())
    }

    fn i16_cpu(&mut self) -> Result<Vec<String>> {
        let srv = self.server()?;
        let runs = self.plan.i16.cpu_runs;
        srv.queue_jobs(2 * runs)?;
        let v = self.ours(
            "upload-cpu",
            json!({"url": srv.url, "reg": srv.registration_token, "runs": runs, "mib": self.plan.i4_tp_mib}),
        )?;
        let all = v["runs"].as_array().cloned().unwrap_or_default();
        let stored = all.iter().filter(|r| r["ours_stored"] == true && r["raw_stored"] == true).count();
        self.check(stored == all.len(), format!("issue 16 client CPU: {stored}/{} logs stored whole", all.len()));
        let mib = |r: &Value| f(r, "bytes") / (1024.0 * 1024.0);
        let per_mib = |r: &Value, k: &str| f(r, k) / mib(r);
        let ours = Runs(all.iter().map(|r| per_mib(r, "ours_cpu_secs")).collect());
        let raw = Runs(all.iter().map(|r| per_mib(r, "raw_cpu_secs")).collect());
        let ratio = Runs(all.iter().map(|r| f(r, "ours_cpu_secs") / f(r, "raw_cpu_secs")).collect());
        self.keep("cpu_ours_per_mib", ours.median());
        self.keep("cpu_raw_per_mib", raw.median());
        self.keep("cpu_paired_ratio", ratio.median());
        let appending = Runs(all.iter().map(|r| per_mib(r, "ours_append_cpu_secs")).collect());
        self.keep("cpu_append_per_mib", appending.median());
        // The library's threads (by name; see `proc::threads_cpu_ns`).
        let thread = |name: &str| Runs(all.iter().map(|r| f(&r["ours_threads_cpu_secs"], name) / mib(r)).collect());
        let (pool, http) = (thread("glr-log-blocks"), thread("glr-http"));
        self.keep("cpu_pool_per_mib", pool.median());
        self.keep("cpu_http_per_mib", http.median());
        // What ours / raw cannot go below: the raw client's cost plus our appending, over raw.
        let floor = Runs(
            all.iter().map(|r| (f(r, "raw_cpu_secs") + f(r, "ours_append_cpu_secs")) / f(r, "raw_cpu_secs")).collect(),
        );
        self.keep("cpu_floor_ratio", floor.median());
        let ours_mbps = Runs(all.iter().map(|r| f(r, "bytes") / 1e6 / f(r, "ours_secs")).collect());
        let raw_mbps = Runs(all.iter().map(|r| f(r, "bytes") / 1e6 / f(r, "raw_secs")).collect());
        let wall = Runs(all.iter().map(|r| f(r, "raw_secs") / f(r, "ours_secs")).collect());
        self.keep("upload_separate_wall_ratio", wall.median());
        Ok(vec![
            "client CPU per MiB uploaded".into(),
            format!(
                "ours {} (of which the appending thread's appends {}, the block pool's thread mapping the \
                 log's memory {}, the HTTP thread {}), raw {}, ours / raw {} (wall: ours {}, raw {}, ours / raw \
                 throughput {})",
                ours.show(dur),
                appending.show(dur),
                pool.show(dur),
                http.show(dur),
                raw.show(dur),
                ratio.show(|x| format!("{x:.2}")),
                ours_mbps.show(|x| format!("{x:.0} MB/s")),
                raw_mbps.show(|x| format!("{x:.0} MB/s")),
                wall.show(|x| format!("{x:.2}")),
            ),
            "`upload-cpu`".into(),
        ])
    }

    fn i16_tail(&mut self) -> Result<Vec<String>> {
        let srv = self.server()?;
        let (runs, warm, n) = self.plan.i16.tail;
        srv.queue_jobs(runs)?;
        let v = self.ours(
            "append-p999",
            json!({"url": srv.url, "reg": srv.registration_token, "runs": runs, "warm": warm, "n": n}),
        )?;
        let expected: Vec<u8> = (0..warm + n).flat_map(|i| content::line(i, 100)).collect();
        for id in v["runs"].as_array().cloned().unwrap_or_default().iter().filter_map(|r| r["job"].as_i64()) {
            let ok = srv.trace(id)? == expected;
            self.check(ok, format!("issue 16 append p99.9: job {id} log not stored whole"));
        }
        let p999 = Runs(field(&v, "runs", "p999_ns"));
        self.keep("append_p999_ns", p999.median());
        Ok(vec![
            "append p99.9, steady state, no server delay".into(),
            format!(
                "p99.9 {} (p50 {}, p99 {}, max {})",
                p999.show(ns),
                Runs(field(&v, "runs", "p50_ns")).show(ns),
                Runs(field(&v, "runs", "p99_ns")).show(ns),
                Runs(field(&v, "runs", "max_ns")).show(ns),
            ),
            "`append-p999`".into(),
        ])
    }

    fn i16_live(&mut self) -> Result<Vec<String>> {
        let (jobs, rounds, pause_ms, runs) = self.plan.i16.live;
        let mut results = Vec::new();
        for _ in 0..runs {
            let srv = self.server()?;
            srv.queue_jobs(jobs)?;
            let v = self.ours(
                "append-max-jobs",
                json!({"url": srv.url, "reg": srv.registration_token, "jobs": jobs, "rounds": rounds, "pause_ms": pause_ms}),
            )?;
            let expected: Vec<u8> = (0..=rounds).flat_map(|i| content::line(i, 100)).collect();
            let ids: Vec<i64> =
                v["jobs"].as_array().cloned().unwrap_or_default().iter().filter_map(Value::as_i64).collect();
            let complete = ids.iter().filter(|id| srv.trace(**id).is_ok_and(|t| t == expected)).count();
            self.check(complete == jobs, format!("issue 16 append max: {complete}/{jobs} logs stored whole"));
            results.push(v);
        }
        let get = |k: &str| Runs(results.iter().map(|r| f(r, k)).collect());
        let max = get("max_ns");
        self.keep("live_max_ns", max.median());
        self.keep("live_jobs", Some(jobs as f64));
        // The appends by what their thread went through meanwhile (see the child mode).
        let class = |c: &str| {
            let n = Runs(results.iter().map(|r| r["by_event"][c]["n"].as_f64().unwrap_or(f64::NAN)).collect());
            let m = Runs(results.iter().map(|r| r["by_event"][c]["max_ns"].as_f64().unwrap_or(f64::NAN)).collect());
            (n, m)
        };
        let (clean_n, clean_max) = class("clean");
        self.keep("live_max_clean_ns", clean_max.median());
        let noop = |k: &str| Runs(results.iter().map(|r| r["noop"][k].as_f64().unwrap_or(f64::NAN)).collect());
        let (noop_max, noop_clean_max) = (noop("max_ns"), noop("clean_max_ns"));
        self.keep("live_noop_max_ns", noop_max.median());
        self.keep("live_noop_clean_max_ns", noop_clean_max.median());
        let matched = |k: &str| Runs(results.iter().map(|r| r["matched"][k].as_f64().unwrap_or(f64::NAN)).collect());
        self.keep("live_matched_max_ns", matched("max_ns").median());
        self.keep("live_matched_cap_ns", matched("cap_ns").median());
        self.keep("live_matched_clean_max_ns", matched("clean_max_ns").median());
        let total = |k: &dyn Fn(&Value) -> f64| results.iter().map(k).sum::<f64>();
        let fault = |k: &str| Runs(results.iter().map(|r| r["fault"][k].as_f64().unwrap_or(f64::NAN)).collect());
        self.keep("live_fault_max_ns", fault("max_ns").median());
        self.keep("live_fault_clean_max_ns", fault("clean_max_ns").median());
        self.keep("live_fault_over", Some(total(&|r| r["fault"]["over_100us"].as_f64().unwrap_or(f64::NAN))));
        let (faulted_n, faulted_max) = class("faulted");
        self.keep("live_faulted_max_ns", faulted_max.median());
        self.keep("live_faulted_n", faulted_n.median());
        self.keep("live_matched_over", Some(total(&|r| r["matched"]["over_100us"].as_f64().unwrap_or(f64::NAN))));
        self.keep("live_appends_over", Some(total(&|r| f(r, "over_100us"))));
        self.keep("live_noop_over", Some(total(&|r| r["noop"]["over_100us"].as_f64().unwrap_or(f64::NAN))));
        self.keep("live_samples", Some(total(&|r| f(r, "appends"))));
        let wake = |k: &str| Runs(results.iter().map(|r| r["wake"][k].as_f64().unwrap_or(f64::NAN)).collect());
        self.keep("live_wake_max_ns", wake("max_ns").median());
        self.keep("live_wake_worst_ns", wake("max_ns").max());
        self.keep("live_wakes", Some(total(&|r| r["wake"]["n"].as_f64().unwrap_or(f64::NAN))));
        self.keep("live_wakes_over", Some(total(&|r| r["wake"]["over_100us"].as_f64().unwrap_or(f64::NAN))));
        let touch = |k: &str| Runs(results.iter().map(|r| r["touch"][k].as_f64().unwrap_or(f64::NAN)).collect());
        self.keep("live_touch_max_ns", touch("max_ns").median());
        self.keep("live_touch_clean_max_ns", touch("clean_max_ns").median());
        self.keep("live_touch_over", Some(total(&|r| r["touch"]["over_100us"].as_f64().unwrap_or(f64::NAN))));
        // The appends over the target that came among the first of their round, right after
        // the pause (when the uploader sleeps and the round's first new text wakes it).
        let early = |r: &Value| {
            let at = r["over_at"].as_array().map(Vec::as_slice).unwrap_or_default();
            at.iter().filter(|i| i.as_u64().is_some_and(|i| i < ROUND_START as u64)).count() as f64
        };
        self.keep("live_over_early", Some(total(&early)));
        let by_event = ["faulted", "waited", "preempted"]
            .iter()
            .map(|c| {
                let (n, m) = class(c);
                format!("{c} {} appends, max {}", n.show(|x| format!("{x:.0}")), m.show(ns))
            })
            .collect::<Vec<_>>()
            .join("; ");
        Ok(vec![
            format!("append max with {jobs} live jobs"),
            format!(
                "max {} (p99 {}, p99.9 {}; {} appends over {} per run). By what the appending thread went \
                 through during the append: none {} appends, max {}; {by_event}. The machine's floor, timed the \
                 same way right after each append: a {} busy loop (no call, no memory) took up to {}, and up to {} \
                 when its thread was not preempted, did not wait and took no fault; the same loop as long as \
                 the append before it (up to {}) took up to {}. Waking a sleeping thread, \
                 once in each pause: up to {}; a write of one byte to a page of the job's own after each append \
                 (last written a round before): up to {}; a first write to a page just mapped (a page \
                 fault): up to {}",
                max.show(ns),
                get("p99_ns").show(ns),
                get("p999_ns").show(ns),
                get("appends").median().unwrap_or(0.0),
                get("window_secs").show(dur),
                clean_n.show(|x| format!("{x:.0}")),
                clean_max.show(ns),
                ns(results.first().map_or(f64::NAN, |r| r["noop"]["loop_ns"].as_f64().unwrap_or(f64::NAN))),
                noop_max.show(ns),
                noop_clean_max.show(ns),
                ns(results.first().map_or(f64::NAN, |r| r["matched"]["cap_ns"].as_f64().unwrap_or(f64::NAN))),
                matched("max_ns").show(ns),
                wake("max_ns").show(ns),
                touch("max_ns").show(ns),
                fault("max_ns").show(ns),
            ),
            "`append-max-jobs`".into(),
        ])
    }

    fn i16_rss(&mut self) -> Result<Vec<String>> {
        let (mib, runs) = self.plan.i16.rss;
        let srv = self.server()?;
        srv.queue_jobs(runs)?;
        let mut results = Vec::new();
        for _ in 0..runs {
            results.push(self.ours("rss-append", json!({"url": srv.url, "reg": srv.registration_token, "mib": mib}))?);
        }
        let size_kib = (mib << 10) as f64;
        let kept = |k: &str| Runs(results.iter().map(|r| (f(r, k) - f(r, "rss_before_kib")) / size_kib).collect());
        let (after_append, after_flush) = (kept("rss_after_append_kib"), kept("rss_after_flush_kib"));
        self.keep("rss_kept_ratio", after_append.median());
        self.keep("rss_mib", Some(mib as f64));
        Ok(vec![
            format!("RSS kept by one {mib} MiB append / {mib} MiB"),
            format!(
                "{} after the append, {} after the flush (RSS before {})",
                after_append.show(|x| format!("{x:.2}")),
                after_flush.show(|x| format!("{x:.2}")),
                Runs(results.iter().map(|r| f(r, "rss_before_kib")).collect()).show(kib),
            ),
            "`rss-append`".into(),
        ])
    }

    fn i16_server(&mut self) -> Result<Vec<String>> {
        if !crate::instr::available() {
            return Err("valgrind is not installed here".into());
        }
        let p = &self.plan.i16;
        let mut args = json!({"held": [0, p.server_held], "requests": [p.server_requests.0, p.server_requests.1]});
        if let crate::server::ServerExe::Binary(b) = &self.server_exe {
            args["server"] = json!(b.display().to_string());
        }
        let v = self.ours("server-instr", args.clone())?;
        args["fresh"] = json!(true);
        let w = self.ours("server-instr", args)?;
        let per = |v: &Value, i: usize| f(&v["runs"][i], "per_request");
        let (none, held) = (per(&v, 0), per(&v, 1));
        let (fresh_none, fresh_held) = (per(&w, 0), per(&w, 1));
        self.keep("server_instr_none", Some(none));
        self.keep("server_instr_held", Some(held));
        self.keep("server_instr_fresh", Some(fresh_held / fresh_none));
        Ok(vec![
            format!("test server instructions per job request, {} jobs held / none", self.plan.i16.server_held),
            format!(
                "{:.2} ({held:.0} / {none:.0}); requests without `last_update`, which make the server look into \
                 its queue: {:.2} ({fresh_held:.0} / {fresh_none:.0})",
                held / none,
                fresh_held / fresh_none
            ),
            "`server-instr` (`\"fresh\": true`: without `last_update`)".into(),
        ])
    }

    /// The issue 16 target table from this run's figures.
    pub(super) fn i16_targets(&self) -> String {
        let g = |k: &str| self.fig(k);
        let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
        let show = |v: Option<f64>, fmt: &dyn Fn(f64) -> String| v.map_or("—".to_string(), fmt);
        let mut rows = Vec::new();

        let up = g("upload_paired_ratio");
        rows.push(row(
            &format!("{} MiB upload, ours / raw client, same server", self.plan.i4_tp_mib),
            show(up, &|r| {
                format!(
                    "{r:.2} (median of the runs' ratios; medians {:.0} / {:.0} MB/s)",
                    g("upload_ours_mbps").unwrap_or(0.0),
                    g("upload_raw_mbps").unwrap_or(0.0)
                )
            }),
            "≥ 0.9",
            up.map(|r| r >= 0.9),
        ));
        let cpu = g("cpu_paired_ratio");
        rows.push(row(
            "client CPU per MiB uploaded, ours / raw",
            show(cpu, &|r| {
                format!(
                    "{r:.2} (median of the runs' ratios; medians {} / {})",
                    dur(g("cpu_ours_per_mib").unwrap_or(0.0)),
                    dur(g("cpu_raw_per_mib").unwrap_or(0.0))
                )
            }),
            "≤ 2",
            cpu.map(|r| r <= 2.0),
        ));
        let instr = g("append_instr");
        rows.push(row(
            "instructions per 100-byte append (callgrind, inside glr_job_log_append)",
            show(instr, &|v| format!("{v:.0}")),
            "≤ 600",
            instr.map(|v| v <= 600.0),
        ));
        let faults = g("faults_per_1000");
        rows.push(row(
            "page faults per 1,000 appends in steady state",
            show(faults, &|v| format!("{v:.2}")),
            "≤ 1",
            faults.map(|v| v <= 1.0),
        ));
        let (p99, p999) = (g("append_p99_ns"), g("append_p999_ns"));
        rows.push(row(
            "append p99 (section 2, no delay) / p99.9 (steady state, no delay)",
            format!("{} / {}", show(p99, &ns), show(p999, &ns)),
            "≤ 0.4 / ≤ 2 µs",
            p99.zip(p999).map(|(a, b)| a <= 400.0 && b <= 2000.0),
        ));
        // Time per request is the inverse of round trips per second.
        // The median of the runs' ratios (the clients take turns within a run).
        let rtt = g("rtt_time_ratio").or_else(|| ratio(g("rtt_raw_per_s"), g("rtt_ours_per_s")));
        rows.push(row(
            "request_job, ours / raw client time (section 5)",
            show(rtt, &|r| format!("{r:.2}")),
            "≤ 1.1",
            rtt.map(|r| r <= 1.1),
        ));
        let ri = g("rtt_instr_ratio");
        rows.push(row(
            "client instructions per request_job, ours / raw",
            show(ri, &|r| format!("{r:.2}")),
            "≤ 1.4",
            ri.map(|r| r <= 1.4),
        ));
        let (d, l) = (g("dumps_vs_python"), g("loads_vs_python"));
        rows.push(row(
            &format!(
                "dumps / loads of a job with a {} log, ours / Python",
                kib(self.plan.dl_log_bytes as f64 / 1024.0)
            ),
            format!("{} / {}", show(d, &|r| format!("{r:.1}")), show(l, &|r| format!("{r:.1}"))),
            "≥ 10 / ≥ 15",
            d.zip(l).map(|(d, l)| d >= 10.0 && l >= 15.0),
        ));
        let rss = g("rss_kept_ratio");
        let rss_mib = g("rss_mib").unwrap_or(0.0);
        rows.push(row(
            &format!("RSS kept by a {rss_mib:.0} MiB append / {rss_mib:.0} MiB"),
            show(rss, &|r| format!("{r:.2}")),
            "≤ 1.15",
            rss.map(|r| r <= 1.15),
        ));
        let live = g("live_max_ns");
        rows.push(row(
            &format!("append max with {:.0} live jobs", g("live_jobs").unwrap_or(0.0)),
            show(live, &|v| {
                let clean = g("live_max_clean_ns").map_or("—".into(), ns);
                let matched = g("live_matched_max_ns").map_or("—".into(), ns);
                format!(
                    "{} ({clean} over the appends whose thread was not preempted, did not wait and took no page \
                     fault; a busy loop as long as each append, right after it: {matched})",
                    ns(v)
                )
            }),
            "≤ 100 µs",
            live.map(|v| v <= 100_000.0),
        ));
        let srv = ratio(g("server_instr_held"), g("server_instr_none"));
        rows.push(row(
            &format!(
                "test server: instructions per job request with {} jobs held / with none",
                self.plan.i16.server_held
            ),
            show(srv, &|r| {
                format!(
                    "{r:.2} ({:.0} / {:.0}, our library's requests); {} without `last_update` (the queue looked into)",
                    g("server_instr_held").unwrap_or(0.0),
                    g("server_instr_none").unwrap_or(0.0),
                    show(g("server_instr_fresh"), &|x| format!("{x:.2}"))
                )
            }),
            "≤ 1.2",
            srv.map(|r| r <= 1.2),
        ));
        format!(
            "## Issue 16 targets\n\n\
             Every figure from this run (the scenario that measures it is named in its row or described in the \
             issue 16 sections below); \"not measured\" where this run could not (valgrind or the Python side \
             missing, or a scenario failed).\n\n{}\n{}",
            table(&["figure", "now", "target", "met?"], &rows),
            self.i16_limits()
        )
    }

    /// What bounds the figures that miss their target, from this run's figures where it can be
    /// measured, on this machine (2 cores): a paragraph for each figure this run did not meet.
    fn i16_limits(&self) -> String {
        let g = |k: &str| self.fig(k);
        let fmt_s = |v: Option<f64>| v.map_or("—".to_string(), dur);
        let missed = |v: Option<f64>, met: &dyn Fn(f64) -> bool| v.is_some_and(|v| !met(v));
        let mut paragraphs = Vec::new();
        if missed(g("upload_paired_ratio"), &|r| r >= 0.9) || missed(g("cpu_paired_ratio"), &|r| r <= 2.0) {
            paragraphs.push(format!(
                "- **Upload ratio and client CPU per MiB.** Our figure includes appending the log in 100-byte \
                 lines (masking, UTF-8 checks, the copy into the log, its fresh memory: {} of the appending \
                 thread's CPU per MiB in this run), which the raw client does not do: it sends a buffer it already \
                 has. The raw client's whole cost is {} per MiB, so even with an upload path that cost nothing \
                 more than the raw one, ours / raw could not be below {} (raw + appending, over raw; the median \
                 of the runs'). Of the rest, the library's HTTP thread took {} per MiB (to set against the \
                 raw client's whole cost) and the block pool's thread {}: mapping the log's fresh memory \
                 (the kernel clears each page it gives) for a process's first long log, which a log kept in \
                 memory needs and the raw client's buffer, written before its timing starts, does not (later \
                 logs reuse the blocks of the ones that ended). Both figures also count the server's side of \
                 loopback TCP, which the kernel runs on the sending thread, so they move from run to run with the \
                 server's timing. In wall time, both \
                 clients wait for the same server; ours overlaps its appends with the upload (whole 1 MiB PATCHes \
                 go up as they fill). Against the server in another process (the client CPU scenario), ours / raw \
                 throughput is {} (the median of the runs'); in the same process on 2 cores, the appending thread competes with the server for \
                 the cores, so ours = raw only with a core to spare.",
                fmt_s(g("cpu_append_per_mib")),
                fmt_s(g("cpu_raw_per_mib")),
                g("cpu_floor_ratio").map_or("—".to_string(), |f| format!("{f:.2}")),
                fmt_s(g("cpu_http_per_mib")),
                fmt_s(g("cpu_pool_per_mib")),
                g("upload_separate_wall_ratio").map_or("—".to_string(), |f| format!("{f:.2}")),
            ));
        }
        if missed(g("faults_per_1000"), &|v| v <= 1.0) {
            paragraphs.push(
                "- **Page faults per 1,000 appends.** Fresh memory costs a fault to whoever maps it first. The \
                 pool maps blocks ahead of the writer, two at a time on a 2 MiB huge page where the kernel gives \
                 them (one fault for both); where it does not (transparent huge pages off, or none free), a block \
                 is 256 small pages, and a writer that finds the pool empty (its thread got no core in time) \
                 takes those faults itself."
                    .to_string(),
            );
        }
        if missed(g("live_max_ns"), &|v| v <= 100_000.0) {
            paragraphs.push(format!(
                "- **Append max with live jobs.** The machine stalls a thread by itself: a 1 µs busy loop that \
                 calls nothing and touches no memory, timed the same way right after each append of the same \
                 run, took up to {} ({} in the loops during which its thread was not preempted, did not wait and \
                 took no fault: the virtual CPU was taken away, which the guest does not see as a context \
                 switch). The appends that were not preempted, did not wait and took no fault took up to {}. \
                 A busy loop as long as each append (up to {}), timed right after it, so exposed to the \
                 machine for as long as the append was but doing none of its work, took up to {} ({} when its \
                 thread was not preempted, did not wait and took no fault), and {} of as many took longer \
                 than 100 µs. \
                 Over all runs, {} of {} appends took longer than 100 µs, and {} of as many 1 µs loops; {} of \
                 those appends were among the first {ROUND_START} of their round ({} of the appends): the \
                 first after a pause, which give the jobs' logs new text while the library's upload thread \
                 sleeps, and the first of them wakes it (so that a job's first text goes up at once, not at \
                 the next interval). Waking a sleeping thread, timed the same way once in each pause (the \
                 lock, the flag, the notify: a system call, which on a virtual machine also has to \
                 interrupt the other virtual CPU), took up to {} ({} at worst; {} of {} over 100 µs). \
                 And memory stalls: a write of one byte to a page of the job's own, last written a round \
                 before as the job's memory was, timed the same way after each append, took up to {} ({} \
                 when the thread was not preempted, did not wait and took no fault, so the stall is the \
                 host's, which the guest does not see), and {} of as many writes took longer than 100 µs. \
                 An append touches several such places (the job, its log, its masker). \
                 The appends that took a page fault ({} a run: a short log growing into fresh memory, whose \
                 pages the append that needs them maps) took up to {}; in the same moments a first write to \
                 a page just mapped, timed right after each append, took up to {} ({} when its thread was not \
                 preempted and did not wait: the kernel clearing a page, and the host backing it, which the \
                 guest does not see), and {} of as many took longer than 100 µs. \
                 The worst appends besides are ones during which the scheduler gave the thread's core to another \
                 thread: on 2 cores the caller shares them with the library's HTTP thread sending the jobs' \
                 PATCHes and with the server, and a time slice is longer than the target.",
                fmt_s(g("live_noop_max_ns").map(|v| v / 1e9)),
                fmt_s(g("live_noop_clean_max_ns").map(|v| v / 1e9)),
                fmt_s(g("live_max_clean_ns").map(|v| v / 1e9)),
                fmt_s(g("live_matched_cap_ns").map(|v| v / 1e9)),
                fmt_s(g("live_matched_max_ns").map(|v| v / 1e9)),
                fmt_s(g("live_matched_clean_max_ns").map(|v| v / 1e9)),
                g("live_matched_over").map_or("—".into(), |v| format!("{v:.0}")),
                g("live_appends_over").map_or("—".into(), |v| format!("{v:.0}")),
                g("live_samples").map_or("—".into(), |v| format!("{v:.0}")),
                g("live_noop_over").map_or("—".into(), |v| format!("{v:.0}")),
                g("live_over_early").map_or("—".into(), |v| format!("{v:.0}")),
                g("live_jobs").map_or("—".into(), |j| format!("{:.0} %", 100.0 * ROUND_START as f64 / j)),
                fmt_s(g("live_wake_max_ns").map(|v| v / 1e9)),
                fmt_s(g("live_wake_worst_ns").map(|v| v / 1e9)),
                g("live_wakes_over").map_or("—".into(), |v| format!("{v:.0}")),
                g("live_wakes").map_or("—".into(), |v| format!("{v:.0}")),
                fmt_s(g("live_touch_max_ns").map(|v| v / 1e9)),
                fmt_s(g("live_touch_clean_max_ns").map(|v| v / 1e9)),
                g("live_touch_over").map_or("—".into(), |v| format!("{v:.0}")),
                g("live_faulted_n").map_or("—".into(), |v| format!("{v:.0}")),
                fmt_s(g("live_faulted_max_ns").map(|v| v / 1e9)),
                fmt_s(g("live_fault_max_ns").map(|v| v / 1e9)),
                fmt_s(g("live_fault_clean_max_ns").map(|v| v / 1e9)),
                g("live_fault_over").map_or("—".into(), |v| format!("{v:.0}")),
            ));
        }
        if missed(g("loads_vs_python"), &|r| r >= 15.0) {
            let per_load = |k: &str| g(k).map(|per_s| 1.0 / per_s);
            paragraphs.push(format!(
                "- **loads / Python.** Ours took {} per load of a dump with a 1 MiB log in this run (the C \
                 string's length and UTF-8, the log's JSON string read 64 bytes at a time and copied into the \
                 log, then the payload, read once where the dump is read), Python {} \
                 (its load includes a network request: it verifies the runner, which ours does not do). \
                 Python's own speed moved from {} to {} loads per second between the runs of this one harness \
                 run, and the ratio moves with it. The floor of any load of this dump through the C API (its \
                 length, its UTF-8 checked, its bytes copied once), timed in the same runs, took {}: ours is {} \
                 times that, so this is not a physical limit yet.",
                fmt_s(per_load("loads_ours_per_s")),
                fmt_s(per_load("loads_py_per_s")),
                g("loads_py_min_per_s").map_or("—".into(), |v| format!("{v:.0}")),
                g("loads_py_max_per_s").map_or("—".into(), |v| format!("{v:.0}")),
                fmt_s(per_load("loads_floor_per_s")),
                g("loads_floor_per_s")
                    .zip(g("loads_ours_per_s"))
                    .map_or("—".into(), |(f, o)| format!("{:.1}", f / o)),
            ));
        }
        if paragraphs.is_empty() {
            return String::new();
        }
        format!("### What bounds the figures below their target\n\n{}\n", paragraphs.join("\n"))
    }
}
