//! examples-c/slurm/ end to end on a real Slurm: a one-node cluster brought up on this machine by
//! scripts/slurm-local.sh, glr-slurm-daemon taking five jobs from an in-process test server and
//! handing each over to a Slurm batch job (sbatch), glr-slurm-job running them.
//!
//! First, alone: a job whose daemon lines GitLab refused (503 on every trace PATCH, more than a
//! flush's retries absorb) until its batch job runs. The daemon hands it over anyway; the stored
//! log holds every daemon line and every batch line exactly once and the final checksum matches
//! (a daemon that dumped and kept its owner handle alive would retry its lines behind the batch
//! job's back: GitLab would store them twice).
//!
//! Then four at once. Checked: every job ran as its own Slurm job (the id sbatch gave the daemon is
//! the one the batch job logs), every GitLab log holds the script's output in order, success and
//! script failure (with the exit code) as the scripts decide, artifacts uploaded from the batch
//! job, the daemon restarted while two batch jobs run follows them again, a batch job `scancel`ed
//! behind the daemon's back ends as `runner_system_failure`, and a job GitLab cancels has its batch
//! job `scancel`ed by the daemon (squeue shows it CANCELLED).
//!
//! Then GitLab's clocks (issue 14): with the stale-job time shortened to seconds, two jobs are
//! held in the Slurm queue (`sbatch --hold`) for twice that time; the daemon's watchers keep them
//! alive (GitLab never drops them), and released they succeed. Each batch job's time limit is
//! what is left until its deadline (`--time` from glr_job_deadline, in minutes rounded down), and
//! none for a job without a timeout.
//!
//! Then the daemon stops on SIGTERM, nothing is left in Slurm, and the cluster is taken down (also
//! when the test fails).
//!
//! The only skip: where Slurm cannot be brought up (not root, no apt-get, daemons that do not
//! start), the test prints why and returns.

mod common;

use common::build::{compile_program, default_compiler, header_dir, lib_dir, link_soname, manifest_dir, profile_dir};
use common::trace::{assert_in_order, trace};
use gitlab_runner_api::internal::{runner_to_string, Runner};
use glr_testserver::{Config, Endpoint, Fault, FaultKind, JobRecord, TestServer};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The whole scenario must finish within this (Slurm starts a job within a few seconds here).
const DEADLINE: Duration = Duration::from_secs(200);

/// GitLab's stale-job time (1 hour) as the held jobs meet it, and how often the stale clock is
/// moved (GitLab: 15 minutes): the daemon's watchers (a keep-alive each second) must beat it.
const HELD_STALE: Duration = Duration::from_secs(4);
const HELD_TOUCH_THRESHOLD: Duration = Duration::from_secs(1);

/// The library's attempts per request (src/core/http.rs MAX_ATTEMPTS): a flush that gets more
/// 503s than this in a row fails.
const ATTEMPTS_PER_REQUEST: usize = 5;

/// Compiles glr-slurm-daemon and glr-slurm-job into target/<profile>/slurm-example/.
fn build_programs() -> PathBuf {
    let out = profile_dir().join("slurm-example");
    std::fs::create_dir_all(&out).expect("create the output directory");
    link_soname(&out);
    let (cc, cxx) = (default_compiler("c"), default_compiler("c++"));
    for name in ["glr-slurm-daemon", "glr-slurm-job"] {
        let src = manifest_dir().join("examples-c/slurm").join(format!("{name}.c"));
        compile_program(&src, &out.join(name), &cc, &cxx, &[]).unwrap_or_else(|e| panic!("{e}"));
    }
    out
}

// ---- the cluster ---------------------------------------------------------------------------

/// A one-node Slurm cluster in a private directory; `down` and removed on drop.
struct Slurm {
    dir: PathBuf,
}

impl Slurm {
    /// Brings the cluster up, or says why it cannot (the test then skips).
    fn up() -> Result<Slurm, String> {
        // The effective user, asked without libc.
        let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        if uid.ok().as_deref() != Some("0") {
            return Err("not running as root (slurm-local.sh installs and runs slurmctld/slurmd as root)".into());
        }
        let dir = std::env::temp_dir().join(format!("glr-slurm-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let slurm = Slurm { dir };
        let out = Command::new(manifest_dir().join("scripts/slurm-local.sh"))
            .arg("up")
            .arg(&slurm.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run scripts/slurm-local.sh: {e}"))?;
        if !out.status.success() {
            // Drop takes down whatever did start.
            return Err(format!(
                "scripts/slurm-local.sh up failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr).trim_end()
            ));
        }
        Ok(slurm)
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", self.conf()).stdin(Stdio::null());
        c
    }

    /// squeue's state word for a batch job ("" when Slurm no longer knows it).
    fn state(&self, slurm_id: &str) -> String {
        let out =
            self.command("squeue").args(["-h", "-t", "all", "-j", slurm_id, "-o", "%T"]).output().expect("squeue");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Every job Slurm still has pending or running.
    fn active_jobs(&self) -> String {
        let out = self.command("squeue").args(["-h", "-o", "%i %T %j"]).output().expect("squeue");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// squeue's time limit of a batch job (`9:00`, `UNLIMITED`).
    fn time_limit(&self, slurm_id: &str) -> String {
        let out =
            self.command("squeue").args(["-h", "-t", "all", "-j", slurm_id, "-o", "%l"]).output().expect("squeue");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Releases a held batch job (`scontrol release`).
    fn release(&self, slurm_id: &str) {
        let status = self.command("scontrol").args(["release", slurm_id]).status().expect("scontrol");
        assert!(status.success(), "scontrol release {slurm_id}: {status}");
    }

    fn scancel(&self, slurm_id: &str) {
        let status = self.command("scancel").arg(slurm_id).status().expect("scancel");
        assert!(status.success(), "scancel {slurm_id}: {status}");
    }

    fn logs(&self) -> String {
        ["slurmctld.log", "slurmd.log"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(self.dir.join("log").join(f)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                format!("--- {f} (last lines)\n{}\n", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect()
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        let _ = Command::new(manifest_dir().join("scripts/slurm-local.sh"))
            .arg("down")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---- the daemon ----------------------------------------------------------------------------

/// glr-slurm-daemon, its stdout collected line by line; killed on drop if still running.
struct Daemon {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    fn output(&self) -> String {
        format!("--- daemon stdout\n{}--- daemon stderr\n{}", self.stdout.lock().unwrap(), self.stderr.lock().unwrap())
    }

    /// Waits for a stdout line starting with `prefix`; returns it.
    fn wait_line(&self, prefix: &str, deadline: Instant) -> String {
        loop {
            if let Some(l) = self.stdout.lock().unwrap().lines().find(|l| l.starts_with(prefix)) {
                return l.to_string();
            }
            assert!(Instant::now() < deadline, "no daemon line {prefix:?} in time\n{}", self.output());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends a signal ("-STOP", "-CONT"...) to the daemon.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(signal).arg(self.child.id().to_string()).status().expect("kill");
        assert!(status.success(), "kill {signal} the daemon: {status}");
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "the daemon did not exit cleanly on SIGTERM: {status}\n{}", self.output());
                return;
            }
            assert!(Instant::now() < deadline, "the daemon did not stop on SIGTERM\n{}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends the lines read from `pipe` to `text`, on a thread of its own.
fn collect(pipe: impl std::io::Read + Send + 'static, text: &Arc<Mutex<String>>) {
    let t = Arc::clone(text);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut s = t.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

/// Starts `command` (glr-slurm-daemon and its arguments); its output goes on after what
/// `previous` (a daemon stopped before) printed.
fn start_daemon(command: &mut Command, previous: Option<&Daemon>) -> Daemon {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start glr-slurm-daemon");
    let (stdout, stderr) = match previous {
        Some(d) => (Arc::clone(&d.stdout), Arc::clone(&d.stderr)),
        None => Default::default(),
    };
    collect(child.stdout.take().unwrap(), &stdout);
    collect(child.stderr.take().unwrap(), &stderr);
    Daemon { child, stdout, stderr }
}

// ---- helpers -------------------------------------------------------------------------------

fn script_job(name: &str, script: &[&str]) -> Value {
    json!({
        "job_info": {"name": name},
        "steps": [
            {"name": "script", "script": script, "timeout": 3600, "when": "on_success", "allow_failure": false},
            {"name": "after_script", "script": [format!("echo after-{name}")], "timeout": 3600, "when": "always",
             "allow_failure": true}
        ]
    })
}

fn wait_job(
    server: &TestServer,
    id: i64,
    what: &str,
    deadline: Instant,
    pred: impl Fn(&JobRecord) -> bool,
) -> JobRecord {
    loop {
        let job = server.job(id).expect("the job exists");
        if pred(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} ({what}): not reached in time; state {}\n{}",
            job.state,
            trace(&job)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How often `part` occurs in `text`.
fn occurrences(text: &str, part: &str) -> usize {
    text.matches(part).count()
}

/// Trace PATCHes of job `id` the server answered with `status`.
fn trace_patches_answered(server: &TestServer, id: i64, status: u16) -> usize {
    let path = format!("/api/v4/jobs/{id}/trace");
    server.requests().iter().filter(|r| r.method == "PATCH" && r.path.starts_with(&path) && r.status == status).count()
}

/// Job `id`'s trace PATCHes and PUTs as "ms METHOD status bytes" lines, for failure messages.
fn job_requests(server: &TestServer, id: i64) -> String {
    let job = format!("/api/v4/jobs/{id}");
    server
        .requests()
        .iter()
        .filter(|r| {
            r.path == job || r.path.starts_with(&format!("{job}?")) || r.path.starts_with(&format!("{job}/trace"))
        })
        .map(|r| format!("{:>7} ms {} {} {} bytes\n", r.at_ms, r.method, r.status, r.body_size))
        .collect()
}

/// The Slurm id in "Job ID: submitted as Slurm job SLURM_ID".
fn slurm_id_of(daemon: &Daemon, id: i64, deadline: Instant) -> String {
    let line = daemon.wait_line(&format!("Job {id}: submitted as Slurm job "), deadline);
    line.rsplit(' ').next().expect("a Slurm id").to_string()
}

// ---- the test ------------------------------------------------------------------------------

#[test]
fn slurm_daemon_runs_jobs_as_batch_jobs_and_follows_them() {
    let slurm = match Slurm::up() {
        Ok(s) => s,
        Err(why) => {
            println!("SKIPPED slurm_daemon_runs_jobs_as_batch_jobs_and_follows_them: Slurm cannot run here: {why}");
            eprintln!("SKIPPED slurm_daemon_runs_jobs_as_batch_jobs_and_follows_them: Slurm cannot run here: {why}");
            return;
        }
    };
    let started = Instant::now();
    let deadline = started + DEADLINE;
    let bin = build_programs();
    let work = slurm.dir.join("work");
    let spool = work.join("spool");
    let tmp = work.join("tmp");
    std::fs::create_dir_all(&tmp).expect("create the work directory");

    let server = TestServer::start_with(Config { long_poll_timeout: Duration::from_millis(200), ..Default::default() });
    let runner = Runner::from_token(&server.url(), &server.create_runner_token()).expect("runner from token");
    let runner_file = work.join("runner.json");
    std::fs::write(&runner_file, runner_to_string(&runner.data())).expect("write the runner file");

    // ---- A hand-over after a failed upload ----
    // GitLab refuses every trace PATCH until the job is in Slurm: the daemon's flush fails (more
    // 503s than its retries absorb) and the daemon hands the job over with its lines unsent.
    // Then the daemon is paused (SIGSTOP) until the batch job's first lines are stored, so that
    // anything the daemon still sent would reach GitLab after the batch job's upload: the order
    // in which a second writer duplicates lines (a daemon handle that stayed the owner retries
    // its lines, gets a 416 and appends them after the batch job's). The batch job's `sleep`
    // leaves that retry time to land before the report.
    let handed = server.queue_job(script_job("handed", &["echo batch-line-1", "sleep 5", "echo batch-line-2"]));
    server.inject_fault(Fault {
        endpoint: Endpoint::Trace,
        count: 100_000,
        kind: FaultKind::Status { code: 503, retry_after: None },
    });
    // A short --poll-seconds (its default is 30): the test waits for what the monitor sees.
    let daemon_command = |extra: &[&str]| {
        let mut command = Command::new(bin.join("glr-slurm-daemon"));
        command
            .arg(&runner_file)
            .arg(&spool)
            .args(["--poll-seconds", "1", "--keepalive-seconds", "1", "--max-jobs", "8"])
            .args(extra)
            .env("SLURM_CONF", slurm.conf())
            .env("TMPDIR", &tmp)
            .env_remove("GLR_LOG");
        command
    };
    let mut daemon = start_daemon(&mut daemon_command(&[]), None);

    let handed_slurm = slurm_id_of(&daemon, handed, deadline);
    let refused = trace_patches_answered(&server, handed, 503);
    assert!(
        refused >= ATTEMPTS_PER_REQUEST && trace_patches_answered(&server, handed, 202) == 0,
        "the daemon's upload before the hand-over failed: {refused} PATCHes answered 503, none stored\n{}",
        daemon.output()
    );
    daemon.signal("-STOP");
    server.clear_faults();
    wait_job(&server, handed, "batch job uploading", deadline, |j| {
        trace(j).contains(&format!("Running as Slurm job {handed_slurm} on "))
    });
    daemon.signal("-CONT");
    let job = wait_job(&server, handed, "success", deadline, |j| j.state != "running" && j.state != "pending");
    let text = trace(&job);
    assert_eq!(job.state, "success", "{text}");
    assert_in_order(
        &text,
        &[
            "(examples-c/slurm/glr-slurm-daemon)\n",
            "Submitting the job to Slurm\n",
            "(examples-c/slurm/glr-slurm-job)\n",
            &format!("Running as Slurm job {handed_slurm} on "),
            "\nbatch-line-1\n",
            "$ sleep 5",
            "\nbatch-line-2\n",
            "after-handed\n",
            "Job succeeded",
        ],
    );
    for line in [
        "(examples-c/slurm/glr-slurm-daemon)\n",
        "Submitting the job to Slurm\n",
        "(examples-c/slurm/glr-slurm-job)\n",
        "Running as Slurm job ",
        "\nbatch-line-1\n",
        "\nbatch-line-2\n",
        "after-handed\n",
        "Job succeeded",
    ] {
        assert_eq!(
            occurrences(&text, line),
            1,
            "{line:?} stored once:\n{text}\n--- requests\n{}",
            job_requests(&server, handed)
        );
    }
    assert_eq!(
        job.checksum_matches,
        Some(true),
        "the batch job's checksum covers GitLab's log:\n{text}\n--- requests\n{}",
        job_requests(&server, handed)
    );
    daemon.wait_line(&format!("Job {handed}: finished by Slurm job {handed_slurm} (success)"), deadline);

    // ---- Four jobs at once ----
    // 1 succeeds (stdout and stderr, artifacts), 2 fails with exit code 3, 3 sleeps and gets
    // scancel'ed behind the daemon's back, 4 sleeps and GitLab cancels it.
    let ok = server.queue_job(script_job(
        "ok",
        &[
            "echo ok-line-1 on $SLURM_JOB_ID",
            "echo ok-line-2 >&2",
            "mkdir -p out && echo result-$((40+2)) > out/result.txt && echo ok-line-3",
        ],
    ));
    let failing = server.queue_job(script_job("failing", &["echo fail-line-1", "exit 3", "echo never-here"]));
    let killed = server.queue_job(script_job("killed", &["echo killed-started", "sleep 300"]));
    let canceled = server.queue_job(script_job("canceled", &["echo cancel-started", "sleep 300"]));

    // Every job became its own Slurm job.
    let ids: Vec<String> =
        [ok, failing, killed, canceled].iter().map(|&id| slurm_id_of(&daemon, id, deadline)).collect();
    let (ok_slurm, failing_slurm, killed_slurm, canceled_slurm) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "four distinct Slurm jobs: {ids:?}");
    println!("Slurm job ids: ok {ok_slurm}, failing {failing_slurm}, killed {killed_slurm}, canceled {canceled_slurm}");

    // The two sleepers run (their first line reached GitLab): scancel one behind the daemon's
    // back, cancel the other in GitLab.
    // Once GitLab has the `$ sleep 300` line the batch jobs have nothing left to upload, so only
    // the daemon's watcher (a keep-alive every second, or every 3 s: the server's update
    // interval) can learn of the cancel before the batch job's own 30 s keep-alive: the daemon's
    // scancel is what ends the batch job.
    wait_job(&server, killed, "sleeping", deadline, |j| trace(j).contains("killed-started\n\x1b[32;1m$ sleep 300"));
    wait_job(&server, canceled, "sleeping", deadline, |j| trace(j).contains("cancel-started\n\x1b[32;1m$ sleep 300"));
    assert_eq!(slurm.state(killed_slurm), "RUNNING");
    assert_eq!(slurm.state(canceled_slurm), "RUNNING");
    // A restart in the middle: the new daemon watches the running jobs again from the spool
    // (glr_job_watch_load), and it is the one that sees them end.
    daemon.stop();
    let mut daemon = start_daemon(&mut daemon_command(&[]), Some(&daemon));
    daemon.wait_line(&format!("Job {killed}: following Slurm job {killed_slurm} again"), deadline);
    daemon.wait_line(&format!("Job {canceled}: following Slurm job {canceled_slurm} again"), deadline);
    slurm.scancel(killed_slurm);
    server.cancel_job(canceled, false);

    // 1: success, its output in order, after the daemon's lines, and its artifacts.
    let job = wait_job(&server, ok, "success", deadline, |j| j.state != "running" && j.state != "pending");
    let text = trace(&job);
    assert_eq!(job.state, "success", "{text}");
    assert_in_order(
        &text,
        &[
            "Submitting the job to Slurm\n",
            &format!("Running as Slurm job {ok_slurm} on "),
            "$ echo ok-line-1",
            &format!("ok-line-1 on {ok_slurm}\n"),
            "ok-line-2\n",
            "ok-line-3\n",
            "after-ok\n",
            "Job succeeded",
        ],
    );
    assert_eq!(job.checksum_matches, Some(true), "the batch job's final update covers the whole log");
    let archive = job.artifacts.iter().find(|a| a.artifact_type == "archive").expect("the archive was uploaded");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive.data.clone())).expect("a zip");
    let mut content = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("out/result.txt").expect("out/result.txt"), &mut content).unwrap();
    assert_eq!(content, "result-42\n");

    // 2: failed by its script, exit code 3, nothing after the failing line.
    let job = wait_job(&server, failing, "failed", deadline, |j| j.state != "running" && j.state != "pending");
    let text = trace(&job);
    assert_eq!((job.state.as_str(), job.failure_reason.as_deref()), ("failed", Some("script_failure")), "{text}");
    assert_eq!(job.exit_code, Some(3), "{text}");
    assert_in_order(
        &text,
        &[&format!("Running as Slurm job {failing_slurm} on "), "fail-line-1\n", "$ exit 3", "after-failing\n"],
    );
    assert!(text.contains("exit code 3"), "{text}");
    assert!(!text.contains("never-here"), "{text}");

    // 3: the scancel'ed batch job logs why it stops (SIGTERM while GitLab still wants the job)
    // and exits without reporting; the daemon's watcher fails the job with runner_system_failure.
    let job = wait_job(&server, killed, "runner_system_failure", deadline, |j| j.state != "running");
    let text = trace(&job);
    assert_eq!(
        (job.state.as_str(), job.failure_reason.as_deref()),
        ("failed", Some("runner_system_failure")),
        "{text}"
    );
    assert_in_order(
        &text,
        &[
            &format!("Running as Slurm job {killed_slurm} on "),
            "killed-started\n",
            &format!("ERROR: Slurm stopped batch job {killed_slurm} (SIGTERM"),
        ],
    );
    // The watcher reports without a checksum (it has no log); a daemon that had taken the job
    // back as an owner (glr_job_load on restart) would send its own copy's, which GitLab's log
    // (with the batch job's lines) does not match.
    assert_ne!(job.checksum_matches, Some(false), "a checksum contradicts the stored log:\n{text}");
    daemon
        .wait_line(&format!("Job {killed}: Slurm job {killed_slurm} ended (CANCELLED) without finishing it"), deadline);

    // 4: GitLab canceled the job; the daemon scancel'ed its batch job.
    daemon.wait_line(&format!("Job {canceled}: canceled by GitLab: scancel Slurm job {canceled_slurm}"), deadline);
    loop {
        let state = slurm.state(canceled_slurm);
        if state == "CANCELLED" {
            break;
        }
        assert!(Instant::now() < deadline, "Slurm job {canceled_slurm} still {state} after GitLab's cancel");
        std::thread::sleep(Duration::from_millis(200));
    }
    let job = server.job(canceled).expect("job");
    assert_eq!(job.state, "canceled", "{}", trace(&job));
    assert!(trace(&job).contains("cancel-started\n"));
    assert!(!trace(&job).contains("after-canceled"), "a hard cancel runs no after_script");

    // The daemon lets go of every job, stops on SIGTERM; nothing is left in Slurm or the spool.
    daemon.wait_line(&format!("Job {ok}: finished by Slurm job {ok_slurm} (success)"), deadline);
    daemon.wait_line(&format!("Job {failing}: finished by Slurm job {failing_slurm} (failed)"), deadline);
    daemon.wait_line(&format!("Job {canceled}: "), deadline);
    let forgotten = format!("Job {canceled}: canceled by GitLab; Slurm job {canceled_slurm} ended");
    let finished = format!("Job {canceled}: finished by Slurm job {canceled_slurm}");
    loop {
        let out = daemon.stdout.lock().unwrap().clone();
        if out.contains(&forgotten) || out.contains(&finished) {
            break;
        }
        assert!(Instant::now() < deadline, "the daemon still follows job {canceled}\n{}", daemon.output());
        std::thread::sleep(Duration::from_millis(100));
    }

    // ---- Held in the Slurm queue past GitLab's stale time ----
    // A daemon that submits held batch jobs (sbatch --hold): they wait in the queue, PENDING,
    // until released, with only the daemon's watchers talking to GitLab for them.
    daemon.stop();
    server.set_config(|c| {
        c.stale_job_timeout = HELD_STALE;
        c.touch_threshold = HELD_TOUCH_THRESHOLD;
    });
    let mut daemon = start_daemon(&mut daemon_command(&["--sbatch-arg", "--hold"]), Some(&daemon));
    let mut held_job = script_job("held", &["echo held-line"]);
    held_job["runner_info"] = json!({"timeout": 600});
    let mut untimed_job = script_job("untimed", &["echo untimed-line"]);
    untimed_job["runner_info"] = json!({"timeout": null});
    let held = server.queue_job(held_job);
    let untimed = server.queue_job(untimed_job);
    let held_slurm = slurm_id_of(&daemon, held, deadline);
    let untimed_slurm = slurm_id_of(&daemon, untimed, deadline);
    // The minutes left of the 10 the job has, rounded down: 10 when sbatch ran within the
    // second the job was taken, else 9.
    for (id, slurm_id, limits) in
        [(held, &held_slurm, &["9:00", "10:00"][..]), (untimed, &untimed_slurm, &["UNLIMITED"])]
    {
        assert_eq!(slurm.state(slurm_id), "PENDING", "job {id} is held in the queue");
        let limit = slurm.time_limit(slurm_id);
        assert!(
            limits.contains(&limit.as_str()),
            "job {id}: time limit {limit}, not one of {limits:?} (sbatch --time)"
        );
    }
    let hold_until = Instant::now() + 2 * HELD_STALE;
    let mut stalest = 0.0f64;
    while Instant::now() < hold_until {
        for id in [held, untimed] {
            let job = server.job(id).expect("job");
            assert_eq!(
                (job.state.as_str(), job.failure_reason.as_deref()),
                ("running", None),
                "job {id}, held in Slurm, was dropped by GitLab\n{}\n{}",
                job_requests(&server, id),
                daemon.output()
            );
            stalest = stalest.max(job.seconds_since_update);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(slurm.state(&held_slurm), "PENDING", "still held after {:?}", 2 * HELD_STALE);
    println!(
        "held for {:?}: at most {stalest:.1} s without an update (GitLab drops at {HELD_STALE:?})",
        2 * HELD_STALE
    );
    slurm.release(&held_slurm);
    slurm.release(&untimed_slurm);
    for (id, name, slurm_id) in [(held, "held", &held_slurm), (untimed, "untimed", &untimed_slurm)] {
        let job = wait_job(&server, id, "success", deadline, |j| j.state != "running" && j.state != "pending");
        let text = trace(&job);
        assert_eq!((job.state.as_str(), job.failure_reason.as_deref()), ("success", None), "{text}");
        assert_in_order(
            &text,
            &[
                "Submitting the job to Slurm\n",
                &format!("Running as Slurm job {slurm_id} on "),
                &format!("\n{name}-line\n"),
                "Job succeeded",
            ],
        );
        assert_eq!(job.checksum_matches, Some(true), "{text}");
        daemon.wait_line(&format!("Job {id}: finished by Slurm job {slurm_id} (success)"), deadline);
    }
    daemon.stop();
    assert_eq!(slurm.active_jobs(), "", "jobs left in Slurm");
    let mut left: Vec<String> = std::fs::read_dir(&spool)
        .expect("the spool")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".out"))
        .collect();
    left.sort();
    assert!(left.is_empty(), "spool files left besides the batch jobs' output: {left:?}");
    let leftovers: Vec<_> = std::fs::read_dir(&tmp).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert!(leftovers.is_empty(), "job directories left in TMPDIR: {leftovers:?}");
    println!("slurm scenario took {:.1} s", started.elapsed().as_secs_f64());
}

/// examples-c/slurm/Makefile builds both programs (no Slurm needed); without arguments they print
/// their usage (a wrong rpath or SONAME would make them exit 127 instead).
#[test]
fn slurm_makefile_builds_both_programs() {
    let build = std::env::temp_dir().join(format!("glr-slurm-make-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&build);
    let out = Command::new("make")
        .arg("-C")
        .arg(manifest_dir().join("examples-c/slurm"))
        .arg(format!("BUILD={}", build.display()))
        .arg(format!("LIBDIR={}", lib_dir().display()))
        .arg(format!("INCLUDE={}", header_dir().display()))
        .output()
        .unwrap_or_else(|e| panic!("cannot run make ({e}): install it, e.g. `apt install build-essential`"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "make failed:\n{text}");
    for name in ["glr-slurm-daemon", "glr-slurm-job"] {
        let o = Command::new(build.join(name)).output().unwrap_or_else(|e| panic!("{name}: {e}"));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name} without arguments: {stderr}");
        assert!(stderr.contains("usage:"), "{name} without arguments should print its usage: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&build);
}
