//! GitLab's clocks (issue 14), against the test server with each clock shortened from GitLab's
//! value to seconds: a hand-off to a batch system only survives a real GitLab if the library
//! respects them.
//!
//! 1. The stale-job drop (a running job without an update for an hour): a job parked behind a
//!    watcher outlives it many times over and is finished by the process that loads its dump,
//!    also while another job of the process waits out a Retry-After; a job handed over with no
//!    watcher left is dropped as stuck.
//! 2. The runner token's lifetime: a runner loaded from a file rotates its token before it
//!    expires and writes it back; a second process sharing the file keeps working.
//! 3. The two-phase acknowledgement window: a commit GitLab refuses for longer than one call
//!    retries is retried in the background and lands inside the window.
//! 4. The job's deadline and its token's expiry: the deadline survives every kind of dump, and an
//!    expired job token is called that.
//! 5. The smaller rules: maximum_timeout, a 404 on the job, waits GitLab asks for, runner labels.
//!
//! Where the second party must be another process, the test binary runs one of its `#[ignore]`d
//! child tests in a child process (`common::process::start_child_test`).

mod common;

use common::process::{child_passed, in_own_process, is_child, start_child_test};
use common::requests::*;
use common::scripted_http::{answer, ScriptedServer};
use common::*;
use gitlab_runner_api::ffi::job::*;
use gitlab_runner_api::ffi::options::*;
use gitlab_runner_api::ffi::runner::*;
use gitlab_runner_api::ffi::status::*;
use gitlab_runner_api::internal::{RegisterOptions, Runner, MAX_ATTEMPTS};
use glr_testserver::{Config, Endpoint, Fault, FaultKind, RequestRecord, TestServer};
use serde_json::{json, Value};
use std::ffi::CStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::ptr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A test server like `common::server()` (fast long polls and updates) with `clocks` applied.
fn clocks_server(clocks: impl FnOnce(&mut Config)) -> TestServer {
    let mut config =
        Config { long_poll_timeout: Duration::from_millis(200), trace_update_interval: 1, ..Config::default() };
    clocks(&mut config);
    TestServer::start_with(config)
}

/// A scratch directory of its own for `name` in this process, emptied.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = common::build::scratch_dir(&format!("gitlab-clocks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path_arg(path: &Path) -> std::ffi::CString {
    c(path.to_str().unwrap())
}

/// An environment variable the parent test set for its child process.
fn child_env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} is set by the parent test"))
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Unix seconds of a time as GitLab renders it (`2024-05-01T12:34:56.789Z`, UTC).
fn gitlab_time(text: &str) -> f64 {
    let parse = |s: &str| s.parse::<i64>().unwrap_or_else(|_| panic!("not a GitLab time: {text:?}"));
    let (date, time) = text.trim_end_matches('Z').split_once('T').expect("a GitLab time has a T");
    let d: Vec<i64> = date.split('-').map(parse).collect();
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(parse).collect();
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let (y, m) = if d[1] <= 2 { (d[0] - 1, d[1] + 9) } else { (d[0], d[1] - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let seconds = days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    seconds as f64 + format!("0.{fraction}").parse::<f64>().unwrap()
}

/// A call on a job, for tests that try several.
type JobCall = fn(*mut glr_job) -> glr_status;

/// The job's own messages: the last failed call's (glr_job_last_error_message).
fn job_error(job: *const glr_job) -> String {
    let need = unsafe { glr_job_last_error_message(job, ptr::null_mut(), 0) };
    let mut buf = vec![0u8; need + 1];
    unsafe { glr_job_last_error_message(job, buf.as_mut_ptr().cast(), buf.len()) };
    CStr::from_bytes_until_nul(&buf).unwrap().to_string_lossy().into_owned()
}

// ---- 1. the stale-job drop --------------------------------------------------------------------

/// The stale time of section 1 (GitLab: 1 hour), and the watcher's keep-alive interval (seconds).
const STALE: Duration = Duration::from_secs(2);
const TOUCH_THRESHOLD: Duration = Duration::from_millis(500);
const WATCHER_KEEPALIVE: i64 = 1;

fn stale_server() -> TestServer {
    clocks_server(|c| {
        c.stale_job_timeout = STALE;
        c.touch_threshold = TOUCH_THRESHOLD;
    })
}

const PARKED_CHILD: &str = "child_loads_the_handed_over_job_and_finishes_it";

/// Issue 14, "a job waits in the batch queue longer than GitLab's stale time": the job is handed
/// over and waits three stale times with only the watcher's keep-alives reaching GitLab; then
/// another process loads the dump and finishes it. In a process of its own: the background
/// thread is shared by every job of the process, and the other tests' jobs must not decide
/// whether this one's keep-alives come in time (that they do not stall each other is
/// one_job_waiting_out_a_retry_after_does_not_stall_the_keepalives_of_the_others).
#[test]
fn a_job_parked_behind_a_watcher_outlives_the_stale_time_and_is_finished_by_another_process() {
    let name = "a_job_parked_behind_a_watcher_outlives_the_stale_time_and_is_finished_by_another_process";
    if in_own_process(name, Duration::from_secs(120)) {
        parked_behind_a_watcher();
    }
}

fn parked_behind_a_watcher() {
    let server = stale_server();
    let id = server.queue_job(json!({}));
    let runner = register(&server);
    let job = take_job(&server, runner);
    let before = lines("logged before the hand-over", 10);
    append_lines(job, &before);
    let dump = fresh_dir("parked").join("job.json");
    ok(unsafe { glr_job_hand_over_dump(job, path_arg(&dump).as_ptr()) });
    ok(unsafe { glr_job_set_keepalive_interval(job, WATCHER_KEEPALIVE) });

    let parked = server_mark(&server);
    std::thread::sleep(3 * STALE);
    let rec = server.job(id).unwrap();
    let requests = job_requests_since(&server, id, parked);
    assert_eq!(
        (rec.state.as_str(), rec.failure_reason.as_deref()),
        ("running", None),
        "the parked job is alive after {:?}:\n{}",
        3 * STALE,
        describe(&requests)
    );
    let keepalives = requests.iter().filter(|r| is_keepalive_without_output(r)).count();
    assert!(keepalives >= 3, "the watcher kept it alive (keep-alives without output):\n{}", describe(&requests));

    let after = lines("appended by the loader", 10);
    let child = start_child_test(
        PARKED_CHILD,
        &[("GLR_CLOCKS_DUMP", dump.display().to_string()), ("GLR_CLOCKS_PREFIX", "appended by the loader".into())],
    );
    child_passed(&child.wait(Duration::from_secs(60)), "the loader of the dump");
    let rec = server.job(id).unwrap();
    assert_eq!(rec.state, "success", "{}", describe(&job_requests(&server, id)));
    assert_eq!(trace::trace(&rec), format!("{before}{after}"), "the whole log, each line once");
    assert_eq!(rec.checksum_matches, Some(true), "the loader's checksum covers GitLab's log");
    unsafe {
        glr_job_free(job);
        glr_runner_free(runner);
    }
}

/// The other process of the test above: loads the hand-over dump (the new owner), appends ten
/// lines and reports success.
#[test]
#[ignore = "the loader process of a_job_parked_behind_a_watcher_...: that test runs it"]
fn child_loads_the_handed_over_job_and_finishes_it() {
    if !is_child(PARKED_CHILD) {
        return;
    }
    let mut job = ptr::null_mut();
    ok(unsafe { glr_job_load(c(&child_env("GLR_CLOCKS_DUMP")).as_ptr(), &mut job) });
    assert_eq!(unsafe { glr_job_is_watcher(job) }, 0, "the loader owns the log");
    append_lines(job, &lines(&child_env("GLR_CLOCKS_PREFIX"), 10));
    ok(unsafe { glr_job_set_success(job, ptr::null()) });
    unsafe { glr_job_free(job) };
}

/// A daemon watches many parked jobs from one process, and the library's one background thread
/// keeps them all alive: GitLab asking one job to wait (a 503 with `Retry-After: 10` on its log
/// upload) must not hold up the keep-alives of the others.
#[test]
fn one_job_waiting_out_a_retry_after_does_not_stall_the_keepalives_of_the_others() {
    let server = stale_server();
    let runner = register(&server);
    let parked_id = server.queue_job(json!({}));
    let parked = take_job(&server, runner);
    let _dump = hand_over_dumps(parked);
    ok(unsafe { glr_job_set_keepalive_interval(parked, WATCHER_KEEPALIVE) });
    let refused_id = server.queue_job(json!({}));
    let refused = take_job(&server, runner);
    server.inject_fault(Fault {
        endpoint: Endpoint::Trace,
        count: 1,
        kind: FaultKind::Status { code: 503, retry_after: Some(10) },
    });
    append(refused, b"GitLab asks this upload to wait 10 s\n");
    assert!(
        wait_until(Duration::from_secs(10), || patches(&server, refused_id).iter().any(|r| r.status == 503)),
        "the upload got its 503"
    );
    let since = server_mark(&server);
    std::thread::sleep(3 * STALE);
    let rec = server.job(parked_id).unwrap();
    let requests = job_requests_since(&server, parked_id, since);
    assert_eq!(
        (rec.state.as_str(), rec.failure_reason.as_deref()),
        ("running", None),
        "the parked job was dropped while another job waited out a Retry-After; its requests since:\n{}",
        describe(&requests)
    );
    assert!(requests.len() >= 3, "keep-alives went on:\n{}", describe(&requests));
    unsafe {
        glr_job_free(refused);
        glr_job_free(parked);
        glr_runner_free(runner);
    }
}

/// The README's warning, "a dump on disk with no process holding it dies": handed over and the
/// handle freed, nothing keeps the job alive and GitLab drops it as stuck; the dump's loader then
/// learns that the job is over.
#[test]
fn a_job_handed_over_with_no_watcher_left_is_dropped_as_stuck() {
    let server = stale_server();
    let id = server.queue_job(json!({}));
    let runner = register(&server);
    let job = take_job(&server, runner);
    append(job, b"handed over, then nobody watches\n");
    let dump = hand_over_dumps(job);
    unsafe { glr_job_free(job) };
    let freed = Instant::now();
    let rec = server.wait_for_job(id, 4 * STALE, |j| j.state != "running").expect("the job is dropped");
    assert_eq!((rec.state.as_str(), rec.failure_reason.as_deref()), ("failed", Some("stuck_or_timeout_failure")));
    assert!(freed.elapsed() >= STALE - Duration::from_millis(600), "not before the stale time: {:?}", freed.elapsed());

    let next = job_loads(&dump);
    let msg = expect(unsafe { glr_job_set_success(next, ptr::null()) }, GLR_ERR_JOB_CANCELED);
    assert!(msg.contains("failed"), "the loader learns GitLab failed the job: {msg}");
    unsafe {
        glr_job_free(next);
        glr_runner_free(runner);
    }
}

// ---- 2. the runner token's lifetime -------------------------------------------------------------

/// The runner token lifetime of section 2 (GitLab: none by default, often days); the library
/// rotates at 75 % of it, here after 3 s.
const TOKEN_LIFETIME: Duration = Duration::from_secs(4);

const SHARING_CHILD: &str = "child_takes_jobs_with_the_shared_runner_file";

/// One job request of a runner sharing a runner file: it must succeed, with a token that had not
/// expired when the call began (GitLab's own `token_expires_at` for it). Returns the job, if any.
#[track_caller]
fn request_with_live_token(runner: *mut glr_runner, who: &str) -> *mut glr_job {
    let began = unix_now();
    let mut job = ptr::null_mut();
    let status = unsafe { glr_runner_request_job(runner, &mut job) };
    assert_eq!(status, GLR_OK, "{who}: glr_runner_request_job failed: {}", last_error());
    let expires = borrowed(unsafe { glr_runner_token_expires_at(runner) }).expect("tokens expire on this server");
    assert!(
        gitlab_time(&expires) > began,
        "{who}: the request succeeded with a token that expired at {expires}, before the call began"
    );
    job
}

/// Takes jobs with `runner` until `until`, finishing each; returns how long after `started`
/// each was taken.
fn take_jobs_until(runner: *mut glr_runner, until: Instant, started: Instant, who: &str, queue: impl Fn()) -> Vec<f64> {
    let mut taken = Vec::new();
    while Instant::now() < until {
        queue();
        let job = request_with_live_token(runner, who);
        if !job.is_null() {
            taken.push(started.elapsed().as_secs_f64());
            ok(unsafe { glr_job_set_success(job, ptr::null()) });
            unsafe { glr_job_free(job) };
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    taken
}

/// The runner-API requests of one runner manager, in order.
fn manager_requests(server: &TestServer, system_id: &str) -> Vec<RequestRecord> {
    let mut requests: Vec<RequestRecord> = server
        .requests()
        .into_iter()
        .filter(|r| r.body_json.as_ref().is_some_and(|b| b["system_id"] == system_id))
        .collect();
    requests.sort_by_key(|r| r.arrival);
    requests
}

/// Issue 14, "runner tokens expire": a runner loaded from a file keeps taking jobs across two
/// token lifetimes, rotating before each expiry and writing the new token to the file, while a
/// second process polls with the same file.
#[test]
fn a_runner_loaded_from_a_file_keeps_taking_jobs_across_token_rotations() {
    let server = clocks_server(|c| c.runner_token_lifetime = Some(TOKEN_LIFETIME));
    let file = fresh_dir("rotation").join("runner.json");
    let made = runner_from_token(&server);
    ok(unsafe { glr_runner_dump(made, path_arg(&file).as_ptr()) });
    unsafe { glr_runner_free(made) };
    let mut runner = ptr::null_mut();
    ok(unsafe { glr_runner_load(path_arg(&file).as_ptr(), &mut runner) });
    let id = unsafe { glr_runner_id(runner) };
    let system_id = borrowed(unsafe { glr_runner_system_id(runner) }).unwrap();
    let first_pointer = unsafe { glr_runner_token(runner) };
    let first_token = borrowed(first_pointer).unwrap();

    let period = 2 * TOKEN_LIFETIME + Duration::from_secs(1);
    let started = Instant::now();
    let child = start_child_test(
        SHARING_CHILD,
        &[
            ("GLR_CLOCKS_RUNNER_FILE", file.display().to_string()),
            ("GLR_CLOCKS_FOR_MS", period.as_millis().to_string()),
        ],
    );
    let queue = || {
        server.queue_job(json!({}));
        server.queue_job(json!({}));
    };
    let taken = take_jobs_until(runner, started + period, started, "the first process", queue);
    let out = child.wait(Duration::from_secs(60));
    child_passed(&out, "the second process sharing the runner file");
    let child_taken: Vec<f64> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("took a job at "))
        .map(|s| s.trim_end_matches(" s").parse().unwrap())
        .collect();
    let last_lifetime = (period - TOKEN_LIFETIME).as_secs_f64();
    for (who, times) in [("the first process", &taken), ("the second process", &child_taken)] {
        assert!(
            times.iter().any(|t| *t >= last_lifetime),
            "{who} still took jobs after two token lifetimes: took jobs at {times:?} s\n{}",
            out.describe()
        );
    }

    // GitLab's side: resets, none refused (each came before the token expired).
    let record = server.runners().into_iter().find(|r| r.id == id).expect("the runner");
    println!(
        "jobs taken: {} by the first process, {} by the second; {} token resets",
        taken.len(),
        child_taken.len(),
        record.token_resets
    );
    assert!(record.token_resets >= 2, "at least one rotation per lifetime: {} resets", record.token_resets);
    let resets: Vec<RequestRecord> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/v4/runners/reset_authentication_token"))
        .collect();
    assert!(resets.iter().all(|r| r.status == 201), "a reset was refused:\n{}", describe(&resets));
    assert_eq!(resets.len(), record.token_resets as usize, "one reset per rotation: no process rotated twice");
    // A job request refused (another process rotated the token it had) is retried at once with
    // the token from the file: the next request of that process succeeds.
    let child_system_id = out.stderr.lines().find_map(|l| l.strip_prefix("system_id ")).expect("the child's system_id");
    for sid in [system_id.as_str(), child_system_id] {
        let requests = manager_requests(&server, sid);
        for pair in requests.windows(2).filter(|w| w[0].status == 403) {
            assert!(
                matches!(pair[1].status, 201 | 204),
                "manager {sid}: a refused request was not followed by a successful retry:\n{}",
                describe(&requests)
            );
        }
    }

    // The file: the newest token, when it was obtained and when it expires, mode 0600.
    let text = std::fs::read_to_string(&file).unwrap();
    let data: Value = serde_json::from_str(&text).unwrap();
    let on_disk = |key: &str| data.get(key).cloned();
    assert_eq!(on_disk("token"), Some(json!(record.token)), "the file holds GitLab's current token");
    assert_eq!(on_disk("token_expires_at"), Some(json!(record.token_expires_at)), "and its expiry");
    let obtained = on_disk("token_obtained_at").and_then(|v| v.as_str().map(String::from)).expect("token_obtained_at");
    let lifetime = gitlab_time(record.token_expires_at.as_deref().unwrap()) - gitlab_time(&obtained);
    assert!(
        (TOKEN_LIFETIME.as_secs_f64() - 1.5..=TOKEN_LIFETIME.as_secs_f64() + 1.0).contains(&lifetime),
        "token_obtained_at {obtained} is when the token was issued ({lifetime} s before its expiry)"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the runner file holds the token: mode {mode:o}");

    // A borrowed token from before the rotations still reads the old string.
    assert_eq!(unsafe { CStr::from_ptr(first_pointer) }.to_str().unwrap(), first_token);
    assert_ne!(borrowed(unsafe { glr_runner_token(runner) }).unwrap(), first_token, "rotated");
    unsafe { glr_runner_free(runner) };
}

/// The second process of the test above: loads the same runner file, gives itself a system_id
/// of its own (as the header advises) and takes jobs for the time it is given, printing when.
#[test]
#[ignore = "the second process of a_runner_loaded_from_a_file_keeps_taking_jobs_...: that test runs it"]
fn child_takes_jobs_with_the_shared_runner_file() {
    if !is_child(SHARING_CHILD) {
        return;
    }
    let started = Instant::now();
    let until = started + Duration::from_millis(child_env("GLR_CLOCKS_FOR_MS").parse().unwrap());
    let mut runner = ptr::null_mut();
    ok(unsafe { glr_runner_load(c(&child_env("GLR_CLOCKS_RUNNER_FILE")).as_ptr(), &mut runner) });
    ok(unsafe { glr_runner_set_system_id(runner, ptr::null()) });
    // On stderr: libtest writes its "test ... " lines to stdout, around what a test prints.
    eprintln!("system_id {}", borrowed(unsafe { glr_runner_system_id(runner) }).unwrap());
    for at in take_jobs_until(runner, until, started, "the second process", || {}) {
        eprintln!("took a job at {at:.2} s");
    }
    unsafe { glr_runner_free(runner) };
}

/// A runner that has no file (glr_runner_loads) rotates in memory only: GitLab has the new token,
/// the runner uses it, the file its dump came from is untouched and no lock file appears.
#[test]
fn a_runner_without_a_file_rotates_in_memory_only() {
    let server = clocks_server(|c| c.runner_token_lifetime = Some(Duration::from_secs(3600)));
    let dir = fresh_dir("in-memory");
    let file = dir.join("runner.json");
    let made = runner_from_token(&server);
    ok(unsafe { glr_runner_dump(made, path_arg(&file).as_ptr()) });
    unsafe { glr_runner_free(made) };
    let text = std::fs::read_to_string(&file).unwrap();
    let mut runner = ptr::null_mut();
    ok(unsafe { glr_runner_loads(c(&text).as_ptr(), &mut runner) });
    let old = borrowed(unsafe { glr_runner_token(runner) }).unwrap();

    ok(unsafe { glr_runner_reset_token(runner) });
    let new = borrowed(unsafe { glr_runner_token(runner) }).unwrap();
    let record = server.runners().into_iter().find(|r| r.id == unsafe { glr_runner_id(runner) }).unwrap();
    assert_eq!((record.token_resets, record.token.as_str()), (1, new.as_str()), "GitLab has the new token");
    assert_ne!(new, old);
    ok(unsafe { glr_runner_check_auth(runner) });
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text, "the file it was dumped to is untouched");
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("runner.json")], "no lock file, no other file");
    assert!(runner_dumps(runner).contains(&new), "its dump has the new token");
    unsafe { glr_runner_free(runner) };
}

// ---- 3. the acknowledgement window ------------------------------------------------------------

/// The two-phase commit's window of section 3 (GitLab: 2 minutes).
const ACK_WINDOW: Duration = Duration::from_secs(10);

/// Issue 14, "the commit is tried once": GitLab answers 503 to more commits than two calls'
/// retries absorb; the job is still acknowledged inside the window, by the background, and
/// GitLab does not give it to anyone else.
#[test]
fn a_commit_refused_longer_than_one_call_is_acknowledged_inside_the_window() {
    let server = clocks_server(|c| c.ack_window = ACK_WINDOW);
    let id = server.queue_job(json!({}));
    let runner = register(&server);
    // More than two calls absorb: the background may try first, while glr_runner_request_job
    // waits for its turn to commit.
    let refusals = 2 * MAX_ATTEMPTS + 3;
    server.inject_fault(Fault {
        endpoint: Endpoint::JobUpdate,
        count: refusals,
        kind: FaultKind::Status { code: 503, retry_after: None },
    });
    let picked = Instant::now();
    let job = take_job(&server, runner);
    assert_eq!(unsafe { glr_job_acknowledged(job) }, 0, "the commit in glr_runner_request_job got only 503s");
    assert!(
        wait_until(ACK_WINDOW, || unsafe { glr_job_acknowledged(job) } == 1),
        "acknowledged within the window:\n{}",
        describe(&job_requests(&server, id))
    );
    let acknowledged_after = picked.elapsed();
    assert!(acknowledged_after < ACK_WINDOW, "acknowledged after {acknowledged_after:?}");
    let commits = job_requests(&server, id);
    let refused = commits.iter().filter(|r| r.status == 503).count();
    assert_eq!(refused, refusals as usize, "every refusal was a commit:\n{}", describe(&commits));

    // Past the window the job is still this one, running: GitLab retried nothing.
    std::thread::sleep((ACK_WINDOW + Duration::from_millis(500)).saturating_sub(picked.elapsed()));
    let rec = server.job(id).unwrap();
    assert_eq!((rec.state.as_str(), rec.retried_as), ("running", None), "{}", describe(&job_requests(&server, id)));
    assert_eq!(server.jobs().iter().filter(|j| j.retry_of == Some(id)).count(), 0, "no retry of the job exists");
    append(job, b"acknowledged late, runs normally\n");
    ok(unsafe { glr_job_set_success(job, ptr::null()) });
    assert_eq!(server.job(id).unwrap().checksum_matches, Some(true));
    unsafe {
        glr_job_free(job);
        glr_runner_free(runner);
    }
}

// ---- 4. the job's deadline and its token's expiry ------------------------------------------

/// Issue 14, "the deadline is lost in dumps": the deadline is when the runner took the job plus
/// its timeout, whichever handle reads it and however late it was loaded.
#[test]
fn the_deadline_survives_dumps_hand_overs_and_watchers() {
    let server = server();
    let id = server.queue_job(json!({"runner_info": {"timeout": 1800}}));
    let runner = register(&server);
    let before = unix_now().floor() as i64;
    let job = take_job(&server, runner);
    let after = unix_now().ceil() as i64;
    let timeout = unsafe { glr_job_timeout(job) };
    assert_eq!(
        Some(timeout),
        server.job(id).unwrap().payload["runner_info"]["timeout"].as_i64(),
        "runner_info.timeout"
    );
    assert_eq!(timeout, 1800);
    let deadline = unsafe { glr_job_deadline(job) };
    assert!((before + timeout..=after + timeout).contains(&deadline), "taken + timeout: {deadline}");
    // A loader that took "now" as the time of pickup would be off by this much at least.
    std::thread::sleep(Duration::from_millis(1100));

    let dir = fresh_dir("deadline");
    let mut handles: Vec<(String, *mut glr_job)> = Vec::new();
    let snapshot = job_loads(&job_dumps(job));
    handles.push(("glr_job_loads of glr_job_dumps".into(), snapshot));
    handles.push(("glr_job_loads of a loaded job's glr_job_dumps".into(), job_loads(&job_dumps(snapshot))));
    let file = dir.join("snapshot.json");
    ok(unsafe { glr_job_dump(job, path_arg(&file).as_ptr()) });
    let mut loaded = ptr::null_mut();
    ok(unsafe { glr_job_load(path_arg(&file).as_ptr(), &mut loaded) });
    handles.push(("glr_job_load of glr_job_dump".into(), loaded));
    let handed = dir.join("handed.json");
    ok(unsafe { glr_job_hand_over_dump(job, path_arg(&handed).as_ptr()) });
    let mut next = ptr::null_mut();
    ok(unsafe { glr_job_load(path_arg(&handed).as_ptr(), &mut next) });
    handles.push(("glr_job_load of the hand-over dump".into(), next));
    let mut watcher = ptr::null_mut();
    ok(unsafe { glr_job_watch_load(path_arg(&handed).as_ptr(), &mut watcher) });
    handles.push(("glr_job_watch_load of the hand-over dump".into(), watcher));
    let text = std::fs::read_to_string(&handed).unwrap();
    handles.push(("glr_job_watch_loads of the hand-over dump".into(), watch_loads(&text)));
    handles.push(("glr_job_loads of the new owner's glr_job_dumps".into(), job_loads(&job_dumps(next))));
    for (what, handle) in &handles {
        let read = unsafe { (glr_job_deadline(*handle), glr_job_timeout(*handle)) };
        assert_eq!(read, (deadline, timeout), "{what}: (deadline, timeout)");
    }
    assert_eq!(unsafe { glr_job_deadline(job) }, deadline, "the handed-over handle (a watcher)");
    for (_, handle) in handles {
        unsafe { glr_job_free(handle) };
    }
    unsafe {
        glr_job_free(job);
        glr_runner_free(runner);
    }
}

/// A server whose job tokens expire 1.5 s after pickup for a job with `timeout: 1`.
fn expiring_tokens_server() -> TestServer {
    clocks_server(|c| {
        c.job_token_min_lifetime = Duration::ZERO;
        c.job_token_leeway = Duration::from_millis(500);
    })
}

/// Takes a job whose token expires 1.5 s later and waits until GitLab considers it expired.
fn take_expired_job(server: &TestServer, runner: *mut glr_runner) -> (*mut glr_job, i64) {
    let id = server.queue_job(json!({"runner_info": {"timeout": 1}}));
    let job = take_job(server, runner);
    assert_eq!(unsafe { glr_job_timeout(job) }, 1);
    let expired = wait_until(Duration::from_secs(5), || {
        server.job(id).unwrap().token_expires_in_seconds.is_some_and(|s| s < -0.2)
    });
    assert!(expired, "the job token expired on the server");
    (job, id)
}

/// Issue 14, "an expired job token looks like a cancel": whatever call meets it, the message
/// says the job token has expired, and GitLab fails the job `job_token_expired`.
#[test]
fn an_expired_job_token_is_called_expired() {
    let server = expiring_tokens_server();
    let runner = register(&server);
    let calls: [(&str, JobCall); 4] = [
        ("glr_job_auth", |job| unsafe { glr_job_auth(job) }),
        ("glr_job_set_success", |job| unsafe { glr_job_set_success(job, ptr::null()) }),
        ("glr_job_log_append + glr_job_log_flush", |job| {
            append(job, b"logged after the token expired\n");
            unsafe { glr_job_log_flush(job) }
        }),
        // The background's upload meets the expiry first; the caller's next call must still say why.
        ("glr_job_log_append, the background's upload, then glr_job_set_failed", |job| {
            append(job, b"logged after the token expired\n");
            let met = wait_until(Duration::from_secs(15), || unsafe { glr_job_state(job) } != GLR_JOB_RUNNING);
            assert!(met, "the background's upload met the expired token");
            unsafe { glr_job_set_failed(job, GLR_FAILURE_SCRIPT, ptr::null()) }
        }),
    ];
    for (what, call) in calls {
        let (job, id) = take_expired_job(&server, runner);
        let status = call(job);
        let msg = last_error();
        assert_ne!(status, GLR_OK, "{what}");
        assert!(msg.contains("job token has expired"), "{what}: status {status}, message: {msg}");
        assert!(job_error(job).contains("job token has expired"), "{what}: the job's last error: {}", job_error(job));
        let rec = server.job(id).unwrap();
        assert_eq!(rec.failure_reason.as_deref(), Some("job_token_expired"), "{what}");
        unsafe { glr_job_free(job) };
    }
    unsafe { glr_runner_free(runner) };
}

// ---- 5. the smaller rules ---------------------------------------------------------------------

/// GitLab refuses a maximum_timeout below 10 minutes: the library refuses it first, before any
/// request.
#[test]
fn a_maximum_timeout_below_600_is_refused_before_any_request() {
    let server = server();
    let mut options = ptr::null_mut();
    ok(unsafe { glr_register_options_new(&mut options) });
    let msg = expect(unsafe { glr_register_options_set_maximum_timeout(options, 599) }, GLR_ERR_INVALID_ARGUMENT);
    assert!(msg.contains("600"), "{msg}");
    // The refused value is not kept: registering sends none.
    let mut runner = ptr::null_mut();
    let (url, token) = (c(&server.url()), c(&server.registration_token()));
    ok(unsafe { glr_runner_register(url.as_ptr(), token.as_ptr(), options, &mut runner) });
    assert_eq!(unsafe { glr_runner_maximum_timeout(runner) }, -1);
    let registration = server.requests().into_iter().find(|r| r.path == "/api/v4/runners").expect("registered");
    assert!(registration.body_json.unwrap().get("maximum_timeout").is_none(), "599 was never sent");
    unsafe { glr_runner_free(runner) };
    ok(unsafe { glr_register_options_set_maximum_timeout(options, 600) });
    unsafe { glr_register_options_free(options) };

    // Registration itself checks it too (the Rust options have no setter in between).
    server.clear_requests();
    let mut rust_options = RegisterOptions::default();
    rust_options.registration.maximum_timeout = Some(599);
    let err = Runner::register(&server.url(), &server.registration_token(), &rust_options).err().expect("refused");
    assert!(err.message.contains("at least 600"), "{}", err.message);
    assert!(server.requests().is_empty(), "no request was sent: {:?}", server.requests());
}

/// Issue 14, "a 404 is retried forever": GitLab answers 404 to a job update when the job is gone
/// (its pipeline or project deleted). The job ends: state canceled, and the message says so.
#[test]
fn a_404_to_a_job_update_ends_the_job() {
    let server = server();
    let runner = register(&server);
    let calls: [(&str, JobCall); 2] = [
        ("glr_job_auth", |job| unsafe { glr_job_auth(job) }),
        ("glr_job_set_success", |job| unsafe { glr_job_set_success(job, ptr::null()) }),
    ];
    for (what, call) in calls {
        let id = server.queue_job(json!({}));
        let job = take_job(&server, runner);
        server.inject_fault(Fault {
            endpoint: Endpoint::JobUpdate,
            count: 1,
            kind: FaultKind::Status { code: 404, retry_after: None },
        });
        let since = server_mark(&server);
        let msg = expect(call(job), GLR_ERR_JOB_CANCELED);
        assert!(msg.contains("GitLab no longer has"), "{what}: {msg}");
        assert_eq!(unsafe { glr_job_state(job) }, GLR_JOB_CANCELED, "{what}");
        let requests = job_requests_since(&server, id, since);
        assert_eq!(requests.len(), 1, "{what}: one request, not retried:\n{}", describe(&requests));
        expect(unsafe { glr_job_log_append(job, c"more\n".as_ptr(), 5) }, GLR_ERR_JOB_CANCELED);
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(job_requests_since(&server, id, since).len(), 1, "{what}: nothing more was sent for it");
        unsafe { glr_job_free(job) };
    }
    unsafe { glr_runner_free(runner) };
}

/// Issue 14, "Retry-After is slept even past the call's bound": a wait longer than what is left
/// of the call returns GitLab's answer at once.
#[test]
fn a_retry_after_longer_than_the_call_returns_the_answer_at_once() {
    let t = taken(json!({}));
    ok(unsafe { glr_job_set_call_timeout(t.job, 2000) });
    t.server.inject_fault(Fault {
        endpoint: Endpoint::JobUpdate,
        count: 1,
        kind: FaultKind::Status { code: 503, retry_after: Some(30) },
    });
    let started = Instant::now();
    let msg = expect(unsafe { glr_job_auth(t.job) }, GLR_ERR_HTTP);
    assert!(started.elapsed() < Duration::from_millis(1000), "returned after {:?}", started.elapsed());
    assert!(msg.contains("503"), "GitLab's answer: {msg}");
    ok(unsafe { glr_job_auth(t.job) });

    ok(unsafe { glr_runner_set_call_timeout(t.runner, 2000) });
    t.server.inject_fault(Fault {
        endpoint: Endpoint::JobRequest,
        count: 1,
        kind: FaultKind::Status { code: 429, retry_after: Some(60) },
    });
    let started = Instant::now();
    let mut job = ptr::null_mut();
    let msg = expect(unsafe { glr_runner_request_job(t.runner, &mut job) }, GLR_ERR_HTTP);
    assert!(started.elapsed() < Duration::from_millis(1000), "returned after {:?}", started.elapsed());
    assert!(msg.contains("429"), "GitLab's answer: {msg}");
    assert!(job.is_null());

    // The background's upload got the 503 and waits out its 30 s (its own bound is longer): a
    // flush meanwhile still ends within its call's bound.
    t.server.inject_fault(Fault {
        endpoint: Endpoint::Trace,
        count: 1,
        kind: FaultKind::Status { code: 503, retry_after: Some(30) },
    });
    append(t.job, b"uploaded by the background first\n");
    assert!(
        wait_until(Duration::from_secs(10), || patches(&t.server, t.id).iter().any(|r| r.status == 503)),
        "the background's PATCH got the 503"
    );
    let started = Instant::now();
    let status = unsafe { glr_job_log_flush(t.job) };
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2600),
        "the flush took {took:?} for a bound of 2 s ({status}: {})",
        last_error()
    );
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) of unix time `t`.
fn http_date(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // H. Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// GitLab's rate limiter says when to come back in `RateLimit-ResetTime` (an HTTP date), which
/// the official runner reads before `Retry-After`: a reset 2 s away is waited for, and the call
/// (bounded at 10 s) succeeds although `Retry-After` asks for 30 s.
#[test]
fn a_short_ratelimit_reset_time_is_waited_for() {
    let reset_at = unix_now().ceil() as i64 + 2;
    let limited = answer(
        "429 Too Many Requests",
        &[("RateLimit-ResetTime", http_date(reset_at)), ("Retry-After", "30".into())],
        r#"{"message":"Retry later"}"#,
    );
    let verified = answer("200 OK", &[], r#"{"id":1,"token":"glrt-scripted","token_expires_at":null}"#);
    let scripted = ScriptedServer::start(vec![limited, verified]);
    let server = server();
    let made = runner_from_token(&server);
    let mut dump: Value = serde_json::from_str(&runner_dumps(made)).unwrap();
    unsafe { glr_runner_free(made) };
    dump["api_url"] = json!(scripted.url());
    let mut runner = ptr::null_mut();
    ok(unsafe { glr_runner_loads(c(&dump.to_string()).as_ptr(), &mut runner) });
    ok(unsafe { glr_runner_set_call_timeout(runner, 10_000) });

    let began = unix_now();
    ok(unsafe { glr_runner_check_auth(runner) });
    let arrivals = scripted.arrivals();
    assert_eq!(arrivals.len(), 2, "one 429, one retry: {arrivals:?}");
    let gap = arrivals[1].at.duration_since(arrivals[0].at).as_secs_f64();
    // The header has whole seconds, and so has the library's clock: up to a second off.
    let reset_in = reset_at as f64 - began;
    assert!(
        gap >= (reset_in - 1.0).max(0.9) && gap <= reset_in + 1.5,
        "the retry came {gap:.2} s after the 429, the reset was {reset_in:.2} s after the call began"
    );
    assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT", "the date format the header uses");
    unsafe { glr_runner_free(runner) };
}

/// The `info.labels` of the runner's last job request, as GitLab received it.
fn labels_sent(server: &TestServer) -> Value {
    let request = server.requests().into_iter().rev().find(|r| r.path == "/api/v4/jobs/request").expect("a request");
    request.body_json.unwrap().pointer("/info/labels").cloned().unwrap_or(Value::Null)
}

/// Runner labels reach GitLab with every request (`info.labels`), survive dumps, and follow the
/// official runner's rules.
#[test]
fn runner_labels_reach_gitlab_and_survive_dumps() {
    let server = server();
    let runner = runner_from_token(&server);
    ok(unsafe { glr_runner_set_label(runner, c"env".as_ptr(), c"production".as_ptr()) });
    ok(unsafe { glr_runner_set_label(runner, c"site_1.rack-2".as_ptr(), c"A.b_c-9".as_ptr()) });
    let mut job = ptr::null_mut();
    ok(unsafe { glr_runner_request_job(runner, &mut job) });
    let expected = json!({"env": "production", "site_1.rack-2": "A.b_c-9"});
    assert_eq!(labels_sent(&server), expected);

    let mut reloaded = ptr::null_mut();
    ok(unsafe { glr_runner_loads(c(&runner_dumps(runner)).as_ptr(), &mut reloaded) });
    ok(unsafe { glr_runner_request_job(reloaded, &mut job) });
    assert_eq!(labels_sent(&server), expected, "after glr_runner_dumps / glr_runner_loads");
    let manager = server.runners().into_iter().flat_map(|r| r.managers).next().expect("a runner manager");
    assert_eq!(manager.info["labels"], expected, "GitLab stored them on the runner manager");

    ok(unsafe { glr_runner_set_label(reloaded, c"env".as_ptr(), ptr::null()) });
    ok(unsafe { glr_runner_request_job(reloaded, &mut job) });
    assert_eq!(labels_sent(&server), json!({"site_1.rack-2": "A.b_c-9"}), "NULL removes a label");

    let long_key = "k".repeat(66);
    let long_value = "v".repeat(257);
    for (key, value) in [
        ("ab", "short key"),
        (".hidden", "x"),
        ("-dash", "x"),
        ("with space", "x"),
        (long_key.as_str(), "x"),
        ("empty", ""),
        ("spaced", "a b"),
        ("long", long_value.as_str()),
        ("slash", "a/b"),
    ] {
        let msg = expect(
            unsafe { glr_runner_set_label(reloaded, c(key).as_ptr(), c(value).as_ptr()) },
            GLR_ERR_INVALID_ARGUMENT,
        );
        assert!(msg.contains("label"), "{key:?}={value:?}: {msg}");
    }
    for i in 1..32 {
        ok(unsafe { glr_runner_set_label(reloaded, c(&format!("key{i:02}")).as_ptr(), c"v".as_ptr()) });
    }
    let msg = expect(
        unsafe { glr_runner_set_label(reloaded, c"one-too-many".as_ptr(), c"v".as_ptr()) },
        GLR_ERR_INVALID_ARGUMENT,
    );
    assert!(msg.contains("32"), "{msg}");
    ok(unsafe { glr_runner_set_label(reloaded, c"key01".as_ptr(), c"changed".as_ptr()) });
    ok(unsafe { glr_runner_request_job(reloaded, &mut job) });
    let sent = labels_sent(&server);
    assert_eq!(sent.as_object().map(|o| o.len()), Some(32), "32 labels sent: {sent}");
    assert_eq!(sent["key01"], "changed");
    unsafe {
        glr_runner_free(reloaded);
        glr_runner_free(runner);
    }
}
