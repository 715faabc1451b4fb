//! One writer per job (issue 13): a job's log has exactly one writer. A hand-over
//! (glr_job_hand_over_dump(s)) waits for the upload in flight, writes the dump the next owner
//! loads, and turns the handle into a watcher that never sends log text again; glr_job_free stops
//! everything of its job; the log limit travels in dumps; watchers refuse to write, keep the job
//! alive, learn cancels and may finish the job.
//!
//! "After" a moment of the test is measured on the test server's clock (a marker request, see
//! `common::requests`), and every check of the stored log is against everything appended,
//! each line exactly once and in order, with the checksum GitLab compares.

mod common;

use common::process::in_own_process;
use common::requests::*;
use common::*;
use gitlab_runner_api::ffi::job::*;
use gitlab_runner_api::ffi::status::*;
use gitlab_runner_api::internal::{set_request_timeout, MAX_ATTEMPTS};
use glr_testserver::{Endpoint, Fault, FaultKind, TestServer};
use serde_json::json;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// `n` numbered lines starting with `prefix`.
fn lines(prefix: &str, n: usize) -> String {
    (0..n).map(|i| format!("{prefix} {i:03}\n")).collect()
}

/// Appends `text` line by line, as a job's output arrives.
fn append_lines(job: *mut glr_job, text: &str) {
    for line in text.split_inclusive('\n') {
        append(job, line.as_bytes());
    }
}

fn delay(ms: u64) -> FaultKind {
    FaultKind::Delay(Duration::from_millis(ms))
}

fn fault(count: u32, kind: FaultKind) -> Fault {
    Fault { endpoint: Endpoint::Trace, count, kind }
}

/// Waits until the trace PATCH that took an injected fault has arrived (the server holds it).
#[track_caller]
fn wait_for_patch_in_flight(server: &TestServer) {
    assert!(wait_until(Duration::from_secs(10), || pending_faults(server) == 0), "no trace PATCH arrived");
}

/// Waits until a trace PATCH of job `id` was answered `status`.
#[track_caller]
fn wait_for_patch_answered(server: &TestServer, id: i64, status: u16) {
    let seen = wait_until(Duration::from_secs(10), || patches(server, id).iter().any(|r| r.status == status));
    assert!(seen, "no PATCH answered {status}:\n{}", describe(&job_requests(server, id)));
}

/// The stored log is `expected` (each line once, in order), the job succeeded and GitLab's
/// checksum of it matches the one reported.
#[track_caller]
fn assert_stored_once(server: &TestServer, id: i64, expected: &str) {
    let rec = server.job(id).unwrap();
    let stored = trace::trace(&rec);
    if stored != expected {
        let twice: Vec<&str> =
            expected.lines().filter(|l| stored.matches(&format!("{l}\n")).count() > 1).take(5).collect();
        panic!(
            "the stored log is not everything appended exactly once ({} bytes stored, {} expected; lines \
             stored twice: {twice:?})\n--- requests\n{}",
            stored.len(),
            expected.len(),
            describe(&job_requests(server, id))
        );
    }
    assert_eq!(rec.state, "success");
    assert_eq!(rec.checksum_matches, Some(true), "the reported checksum matches the stored log");
}

/// No request of job `id` arrived after the marker `since` (from `server_mark`).
#[track_caller]
fn assert_silent_since(server: &TestServer, id: i64, since: u64, who: &str) {
    let late = job_requests_since(server, id, since);
    assert!(late.is_empty(), "{who} sent requests afterwards:\n{}", describe(&late));
}

// ---- 1. hand-over ---------------------------------------------------------------------------

/// Issue 13, "lines stored twice in the Slurm pattern": a flush fails, the process hands the
/// job over and keeps its handle; the old handle must not keep retrying in the background while
/// the loader sends the same lines.
#[test]
fn hand_over_after_a_failed_flush_stores_every_line_once() {
    let t = taken(json!({}));
    let before = lines("acknowledged before the failure", 20);
    append_lines(t.job, &before);
    ok(unsafe { glr_job_log_flush(t.job) });

    // More 503s than the background's attempt and the flush's together absorb.
    t.server.inject_fault(fault(4 * MAX_ATTEMPTS, FaultKind::Status { code: 503, retry_after: None }));
    let failed = lines("sent while GitLab answers 503", 20);
    append_lines(t.job, &failed);
    expect(unsafe { glr_job_log_flush(t.job) }, GLR_ERR_HTTP);
    let dump = hand_over_dumps(t.job);
    let handed_over = server_mark(&t.server);
    t.server.clear_faults();
    assert_eq!(unsafe { glr_job_is_watcher(t.job) }, 1);

    // The watcher's background would have retried within a few seconds (1-4 s backoff).
    std::thread::sleep(Duration::from_secs(5));
    assert_silent_since(&t.server, t.id, handed_over, "the handed-over handle");
    assert_eq!(trace::trace(&t.server.job(t.id).unwrap()), before, "nothing reached GitLab after the hand-over");

    let next = job_loads(&dump);
    let after = lines("appended by the loader", 20);
    append_lines(next, &after);
    ok(unsafe { glr_job_set_success(next, ptr::null()) });
    assert_stored_once(&t.server, t.id, &format!("{before}{failed}{after}"));
    let watcher_patches = patches(&t.server, t.id).iter().filter(|r| r.arrival >= handed_over).count();
    assert!(watcher_patches > 0, "the loader uploaded (the request log sees its PATCHes)");
    unsafe { glr_job_free(next) };
}

/// The hand-over waits for the answer of the PATCH in flight (GitLab holds it 1.5 s), so the
/// dump knows those bytes are stored and the loader does not send them again.
#[test]
fn hand_over_waits_for_the_upload_in_flight() {
    let t = taken(json!({}));
    let first = lines("first", 10);
    append_lines(t.job, &first);
    ok(unsafe { glr_job_log_flush(t.job) });
    let stored_before = patches(&t.server, t.id).iter().filter(|r| r.status == 202).count();

    t.server.inject_fault(fault(1, delay(1500)));
    let held = lines("in the PATCH GitLab holds", 10);
    append_lines(t.job, &held);
    wait_for_patch_in_flight(&t.server);
    let started = Instant::now();
    let dump = hand_over_dumps(t.job);
    let took = started.elapsed();
    let handed_over = server_mark(&t.server);
    // The request log records a request when it is answered: the held PATCH must be there.
    let answered = patches(&t.server, t.id).iter().filter(|r| r.status == 202).count();
    assert_eq!(
        answered,
        stored_before + 1,
        "the hand-over returned after {took:?}, before GitLab answered the PATCH in flight:\n{}",
        describe(&job_requests(&t.server, t.id))
    );
    assert!(took >= Duration::from_millis(500), "the hand-over waited for the held PATCH ({took:?})");
    assert_eq!(trace::trace(&t.server.job(t.id).unwrap()), format!("{first}{held}"));

    let next = job_loads(&dump);
    let after = lines("appended by the loader", 10);
    append_lines(next, &after);
    // The watcher sent nothing between the hand-over and the loader's first request.
    let loader_started = server_mark(&t.server);
    let watcher_requests: Vec<_> =
        job_requests_since(&t.server, t.id, handed_over).into_iter().filter(|r| r.arrival < loader_started).collect();
    assert!(
        watcher_requests.iter().all(|r| r.method != "PATCH"),
        "the watcher PATCHed:\n{}",
        describe(&watcher_requests)
    );
    ok(unsafe { glr_job_set_success(next, ptr::null()) });
    assert_stored_once(&t.server, t.id, &format!("{first}{held}{after}"));
    unsafe { glr_job_free(next) };
}

/// The PATCH in flight at the hand-over never gets an answer: GitLab holds it longer than the
/// request timeout (1 s here: a process-wide setting, so each such test runs in its own
/// process), the library gives up on it, and the test server, seeing the client gone, never
/// stores it. The loader stores every byte exactly once; with `no_retry`, also checks that the
/// handle made no new attempt after the hand-over began.
fn hand_over_while_a_patch_times_out(no_retry: bool) {
    set_request_timeout(Duration::from_secs(1));
    let t = taken(json!({}));
    let first = lines("first", 10);
    append_lines(t.job, &first);
    ok(unsafe { glr_job_log_flush(t.job) });

    t.server.inject_fault(fault(1, delay(3000)));
    let unanswered = lines("in the PATCH that gets no answer", 10);
    append_lines(t.job, &unanswered);
    wait_for_patch_in_flight(&t.server);
    let handing_over = server_mark(&t.server);
    let started = Instant::now();
    let dump = hand_over_dumps(t.job);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "the hand-over waited for the request timeout only ({took:?})");
    // The server's hold ends; nothing of the watcher arrives meanwhile.
    std::thread::sleep(Duration::from_secs(3));
    if no_retry {
        assert_silent_since(&t.server, t.id, handing_over, "the handing-over handle");
    }

    let next = job_loads(&dump);
    let after = lines("appended by the loader", 10);
    append_lines(next, &after);
    ok(unsafe { glr_job_set_success(next, ptr::null()) });
    assert_stored_once(&t.server, t.id, &format!("{first}{unanswered}{after}"));
    unsafe { glr_job_free(next) };
}

#[test]
fn hand_over_while_a_patch_gets_no_answer_stores_every_byte_once() {
    if in_own_process("hand_over_while_a_patch_gets_no_answer_stores_every_byte_once", Duration::from_secs(60)) {
        hand_over_while_a_patch_times_out(false);
    }
}

#[test]
fn hand_over_while_a_patch_gets_no_answer_retries_nothing() {
    if in_own_process("hand_over_while_a_patch_gets_no_answer_retries_nothing", Duration::from_secs(60)) {
        hand_over_while_a_patch_times_out(true);
    }
}

/// GitLab stores a PATCH but its answer is lost, and every retry's connection drops: the upload
/// fails with the bytes stored. The loader of the hand-over dump recognises them (its first
/// probe finds exactly them) and does not send them again.
#[test]
fn hand_over_after_a_patch_stored_but_never_answered_stores_it_once() {
    let t = taken(json!({}));
    let first = lines("first", 10);
    append_lines(t.job, &first);
    ok(unsafe { glr_job_log_flush(t.job) });

    // One call's attempts: stored and unanswered, then dropped; again for the other caller.
    for _ in 0..2 {
        t.server.inject_fault(fault(1, FaultKind::DropAfterHandling));
        t.server.inject_fault(fault(MAX_ATTEMPTS - 1, FaultKind::DropConnection));
    }
    let stored = lines("stored without an answer", 10);
    append_lines(t.job, &stored);
    expect(unsafe { glr_job_log_flush(t.job) }, GLR_ERR_NETWORK);
    let dump = hand_over_dumps(t.job);
    t.server.clear_faults();
    assert_eq!(trace::trace(&t.server.job(t.id).unwrap()), format!("{first}{stored}"), "GitLab stored it");

    let next = job_loads(&dump);
    let after = lines("appended by the loader", 10);
    append_lines(next, &after);
    ok(unsafe { glr_job_set_success(next, ptr::null()) });
    assert_stored_once(&t.server, t.id, &format!("{first}{stored}{after}"));
    unsafe { glr_job_free(next) };
}

/// A hand-over that arrives while the upload waits to retry (GitLab said 429, Retry-After 3 s)
/// starts no new attempt: it returns at once, and the loader sends the text.
#[test]
fn hand_over_during_a_retry_pause_starts_no_new_attempt() {
    let t = taken(json!({}));
    t.server.inject_fault(fault(1, FaultKind::Status { code: 429, retry_after: Some(3) }));
    let text = lines("waiting for a retry", 5);
    append_lines(t.job, &text);
    wait_for_patch_answered(&t.server, t.id, 429);
    let handing_over = server_mark(&t.server);
    let started = Instant::now();
    let dump = hand_over_dumps(t.job);
    let took = started.elapsed();
    let attempts = patches(&t.server, t.id).into_iter().filter(|r| r.arrival >= handing_over).collect::<Vec<_>>();
    assert!(
        attempts.is_empty() && took < Duration::from_secs(1),
        "the hand-over took {took:?} and the handle sent PATCHes after it began:\n{}",
        describe(&attempts)
    );
    let next = job_loads(&dump);
    ok(unsafe { glr_job_set_success(next, ptr::null()) });
    assert_stored_once(&t.server, t.id, &text);
    unsafe { glr_job_free(next) };
}

// ---- 2. free --------------------------------------------------------------------------------

/// Issue 13, "glr_job_free does not stop an upload in progress": 3.5 MB appended (four PATCHes
/// of 1 MiB), the first held by GitLab for 2 s, the job freed 300 ms into it.
#[test]
fn free_during_a_slow_upload_sends_nothing_afterwards() {
    let mut t = taken(json!({}));
    t.server.inject_fault(fault(1, delay(2000)));
    let line = format!("{}\n", "x".repeat(99));
    let mut big = String::with_capacity(3_500_000);
    for _ in 0..35_000 {
        big.push_str(&line);
    }
    append(t.job, big.as_bytes());
    wait_for_patch_in_flight(&t.server);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    unsafe { glr_job_free(t.job) };
    t.job = ptr::null_mut();
    let took = started.elapsed();
    let freed = server_mark(&t.server);
    assert!(took < Duration::from_secs(1), "free ended the upload in flight at once ({took:?})");
    // Past the server's hold and the three PATCHes that would follow it.
    std::thread::sleep(Duration::from_secs(4));
    assert_silent_since(&t.server, t.id, freed, "the freed job");
}

/// Issue 13, finding 9, "glr_job_free during another thread's flush is a use-after-free": a
/// thread waits in glr_job_log_flush on a PATCH GitLab holds for 3 s; the job is freed 300 ms
/// into it. The flush returns GLR_ERR_INTERRUPTED (as the header says), free returns once it
/// did, well before the hold ends, and nothing more of the job reaches GitLab. The same run under
/// valgrind is the C example stop_polling (its runner) in tests/c_examples.rs.
#[test]
fn free_during_another_thread_s_flush_ends_that_flush() {
    let mut t = taken(json!({}));
    append_lines(t.job, "a first line\n");
    assert_eq!(unsafe { glr_job_log_flush(t.job) }, GLR_OK, "{}", last_error());
    t.server.inject_fault(fault(1, delay(3000)));
    append_lines(t.job, "a line GitLab holds\n");
    struct Job(*mut glr_job);
    // SAFETY (Send): the library allows calls on a job from any thread; the main thread frees
    // it only while this thread is inside its call, which the header allows.
    unsafe impl Send for Job {}
    let job = Job(t.job);
    let flushing = std::thread::spawn(move || {
        let job = job;
        let started = Instant::now();
        let st = unsafe { glr_job_log_flush(job.0) };
        (st, started.elapsed())
    });
    wait_for_patch_in_flight(&t.server);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    unsafe { glr_job_free(t.job) };
    t.job = ptr::null_mut();
    let took = started.elapsed();
    let freed = server_mark(&t.server);
    let (st, flush_took) = flushing.join().expect("the flushing thread");
    assert_eq!(st, GLR_ERR_INTERRUPTED, "the flush in progress ends when its job is freed");
    assert!(took < Duration::from_secs(2), "free waited for the flush to return, not for GitLab ({took:?})");
    assert!(flush_took < Duration::from_secs(3), "the flush ended before GitLab's hold did ({flush_took:?})");
    std::thread::sleep(Duration::from_secs(4));
    assert_silent_since(&t.server, t.id, freed, "the freed job");
}

/// A snapshot (glr_job_dumps) taken while GitLab refuses the upload, then the handle freed: the
/// freed job never sends its text; the loader of the snapshot sends it, once.
#[test]
fn a_freed_job_leaves_its_text_to_the_loader_of_its_snapshot() {
    let mut t = taken(json!({}));
    let first = lines("acknowledged", 10);
    append_lines(t.job, &first);
    ok(unsafe { glr_job_log_flush(t.job) });
    // 503s with a pause between attempts: the freed job is inside its upload when it is freed.
    t.server.inject_fault(fault(1000, FaultKind::Status { code: 503, retry_after: Some(1) }));
    let pending = lines("refused while the job lived", 10);
    append_lines(t.job, &pending);
    wait_for_patch_answered(&t.server, t.id, 503);
    let dump = job_dumps(t.job);
    unsafe { glr_job_free(t.job) };
    t.job = ptr::null_mut();
    let freed = server_mark(&t.server);
    t.server.clear_faults();
    std::thread::sleep(Duration::from_secs(4));
    assert_silent_since(&t.server, t.id, freed, "the freed job");
    assert_eq!(trace::trace(&t.server.job(t.id).unwrap()), first);

    let next = job_loads(&dump);
    let after = lines("appended by the loader", 10);
    append_lines(next, &after);
    ok(unsafe { glr_job_set_success(next, ptr::null()) });
    assert_stored_once(&t.server, t.id, &format!("{first}{pending}{after}"));
    unsafe { glr_job_free(next) };
}

// ---- 3. the log limit in dumps ----------------------------------------------------------------

const LIMIT_NOTICE: &str = "\n\x1b[33;1mJob's log exceeded limit of 2048 bytes.\nJob execution will continue but no more output will be collected.\x1b[0;m\n";

/// Issue 13, "the log limit is not saved in dumps": a job limited to 2 KiB and handed over
/// stays limited in the loader, whether the limit was reached before the hand-over or after.
#[test]
fn the_log_limit_survives_a_hand_over() {
    let server = server();
    let runner = register(&server);
    for (what, before_bytes, limited) in
        [("not reached before the hand-over", 1000, false), ("reached before", 5000, true)]
    {
        let id = server.queue_job(json!({}));
        let job = take_job(&server, runner);
        ok(unsafe { glr_job_set_log_limit(job, 2048) });
        append_lines(job, &lines(&"b".repeat(45), before_bytes / 50));
        let dump = hand_over_dumps(job);
        let next = job_loads(&dump);
        append_lines(next, &lines("appended by the loader, past the limit", 200));
        ok(unsafe { glr_job_set_success(next, ptr::null()) });
        let rec = server.job(id).unwrap();
        let stored = trace::trace(&rec);
        let tail: String = stored.chars().skip(stored.chars().count().saturating_sub(300)).collect();
        assert!(stored.ends_with(LIMIT_NOTICE), "{what}: the stored log ends with the notice; it ends with {tail:?}");
        assert_eq!(stored.matches("exceeded limit").count(), 1, "{what}: one notice");
        assert!(stored.len() <= 2048 + LIMIT_NOTICE.len(), "{what}: {} bytes stored", stored.len());
        assert_eq!(rec.checksum_matches, Some(true), "{what}");
        assert_eq!(job_log(next), stored, "{what}: the loader's log is what GitLab holds");
        // As persisted (the dump also holds tokens: only its log's limit fields are shown).
        let log = &serde_json::from_str::<serde_json::Value>(&dump).unwrap()["log"];
        // ("limited" is left out while false.)
        let fields = (log["limit"].as_u64(), log["limited"].as_bool().unwrap_or(false));
        assert_eq!(fields, (Some(2048), limited), "{what}: the dump's log.limit and log.limited");
        unsafe {
            glr_job_free(next);
            glr_job_free(job);
        }
    }
    unsafe { gitlab_runner_api::ffi::runner::glr_runner_free(runner) };
}

// ---- 4. watchers ------------------------------------------------------------------------------

/// Every log-writing function of a watcher returns GLR_ERR_NOT_OWNER with a message, writes no
/// out-parameter, and the watcher still reads its log.
fn assert_refuses_to_write(job: *mut glr_job, who: &str, log: &str) {
    assert_eq!(unsafe { glr_job_is_watcher(job) }, 1, "{who}");
    let refused = |st: glr_status, what: &str| {
        let msg = expect(st, GLR_ERR_NOT_OWNER);
        assert!(msg.contains("does not write the log"), "{who}: {what}: {msg}");
    };
    refused(unsafe { glr_job_log_append(job, c"x\n".as_ptr(), 2) }, "append");
    refused(unsafe { glr_job_log_flush(job) }, "flush");
    refused(unsafe { glr_job_set_log_limit(job, 4096) }, "set_log_limit");
    let dir = std::env::temp_dir().join(format!("glr-one-writer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = c(dir.join("watcher.json").to_str().unwrap());
    refused(unsafe { glr_job_dump(job, path.as_ptr()) }, "dump");
    refused(unsafe { glr_job_hand_over_dump(job, path.as_ptr()) }, "hand_over_dump");
    assert!(!dir.join("watcher.json").exists(), "{who}: no dump written");
    let _ = std::fs::remove_dir_all(&dir);
    let mut out = 0x10 as *mut std::ffi::c_char;
    refused(unsafe { glr_job_dumps(job, &mut out) }, "dumps");
    refused(unsafe { glr_job_hand_over_dumps(job, &mut out) }, "hand_over_dumps: not a second hand-over");
    assert_eq!(out as usize, 0x10, "{who}: out-parameter untouched");
    assert_eq!(job_log(job), log, "{who}: reads the log as it was handed over");
}

#[test]
fn watchers_refuse_to_write_and_read_their_log() {
    let t = taken(json!({}));
    append(t.job, b"hello\n");
    ok(unsafe { glr_job_log_flush(t.job) });
    let dump = hand_over_dumps(t.job);
    let watcher = watch_loads(&dump);
    let next = job_loads(&dump);
    assert_refuses_to_write(t.job, "the handed-over handle", "hello\n");
    assert_refuses_to_write(watcher, "a watcher loaded from the dump", "hello\n");
    assert_eq!(unsafe { glr_job_is_watcher(next) }, 0, "the loader owns the log");
    assert_eq!(unsafe { glr_job_is_watcher(ptr::null()) }, -1);
    append(next, b"world\n");
    ok(unsafe { glr_job_set_success(next, ptr::null()) });
    assert_stored_once(&t.server, t.id, "hello\nworld\n");
    assert_eq!(job_log(t.job), "hello\n", "the watcher's log stays as it was handed over");
    unsafe {
        glr_job_free(watcher);
        glr_job_free(next);
    }
}

/// A watcher's background sends `PUT state=running` without output when the keep-alive
/// interval (1 s here) passed, and never a PATCH: both a handed-over handle and one loaded as a
/// watcher. With `check_gaps`, also that they come at that interval.
fn watchers_keep_alive(check_gaps: bool) {
    let t = taken(json!({}));
    append(t.job, b"hello\n");
    let dump = hand_over_dumps(t.job);
    let loaded = watch_loads(&dump);
    for (active, quiet, who) in
        [(t.job, loaded, "the handed-over handle"), (loaded, t.job, "a watcher loaded from the dump")]
    {
        // One watcher at a time, so the keep-alives seen are its own.
        ok(unsafe { glr_job_set_keepalive_interval(quiet, 2700) });
        ok(unsafe { glr_job_set_keepalive_interval(active, 1) });
        let since = server_mark(&t.server);
        let keepalives =
            || job_requests_since(&t.server, t.id, since).into_iter().filter(is_keepalive_without_output).count();
        // Generous: the gaps are checked below, when asked for.
        let seen = wait_until(Duration::from_secs(20), || keepalives() >= 3);
        let requests = job_requests_since(&t.server, t.id, since);
        assert!(seen, "{who}: three keep-alives without output within 20 s:\n{}", describe(&requests));
        assert!(requests.iter().all(|r| r.method == "PUT" && r.status == 200), "{who}:\n{}", describe(&requests));
        if check_gaps {
            // The background's turns are at least 1 s apart: gaps of 1-2 s.
            let gaps: Vec<u64> = requests.windows(2).map(|w| w[1].at_ms.saturating_sub(w[0].at_ms)).collect();
            assert!(gaps.iter().all(|g| *g <= 2500), "{who}: keep-alive gaps {gaps:?} ms for an interval of 1 s");
        }
    }
    unsafe { glr_job_free(loaded) };
}

#[test]
fn watchers_send_keepalives_without_output() {
    watchers_keep_alive(false);
}

#[test]
fn watchers_keep_alive_at_the_interval_asked_for() {
    watchers_keep_alive(true);
}

/// Records the cancel callback's calls: the states, and whether each ran on "glr-events".
struct Seen {
    calls: AtomicI32,
    last_state: AtomicI32,
    off_event_thread: AtomicBool,
}

unsafe extern "C" fn on_cancel(userdata: *mut c_void, _job: *mut glr_job, state: i32) {
    let seen = unsafe { &*(userdata as *const Seen) };
    seen.last_state.store(state, Ordering::SeqCst);
    if std::thread::current().name() != Some("glr-events") {
        seen.off_event_thread.store(true, Ordering::SeqCst);
    }
    seen.calls.fetch_add(1, Ordering::SeqCst);
}

/// A watcher learns a graceful cancel, then a hard one, from its keep-alives alone: its state
/// and its cancel callback (once each, on the event thread).
#[test]
fn watchers_learn_cancels_from_their_keepalives() {
    let t = taken(json!({}));
    let dump = hand_over_dumps(t.job);
    let loaded = watch_loads(&dump);
    let seen: Vec<Box<Seen>> = (0..2)
        .map(|_| {
            Box::new(Seen { calls: AtomicI32::new(0), last_state: AtomicI32::new(-1), off_event_thread: false.into() })
        })
        .collect();
    let watchers = [(t.job, "the handed-over handle"), (loaded, "a watcher loaded from the dump")];
    for ((job, _), seen) in watchers.iter().zip(&seen) {
        ok(unsafe { glr_job_set_keepalive_interval(*job, 1) });
        ok(unsafe { glr_job_set_cancel_callback(*job, Some(on_cancel), &**seen as *const Seen as *mut c_void) });
    }
    for (graceful, state, calls) in [(true, GLR_JOB_CANCELING, 1), (false, GLR_JOB_CANCELED, 2)] {
        t.server.cancel_job(t.id, graceful);
        for ((job, who), seen) in watchers.iter().zip(&seen) {
            let learned = wait_until(Duration::from_secs(10), || seen.calls.load(Ordering::SeqCst) == calls);
            assert!(learned, "{who}: the callback learned the cancel (graceful {graceful})");
            assert_eq!(unsafe { glr_job_state(*job) }, state, "{who}");
            assert_eq!(seen.last_state.load(Ordering::SeqCst), state, "{who}");
            assert!(!seen.off_event_thread.load(Ordering::SeqCst), "{who}: the callback ran on glr-events");
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    for ((_, who), seen) in watchers.iter().zip(&seen) {
        assert_eq!(seen.calls.load(Ordering::SeqCst), 2, "{who}: once per change");
    }
    assert!(patches(&t.server, t.id).is_empty(), "no watcher sent a PATCH");
    unsafe { glr_job_free(loaded) };
    ok(unsafe { glr_job_set_cancel_callback(t.job, None, ptr::null_mut()) });
}

/// A watcher may finish the job: the final PUT has no checksum (it does not have the log).
#[test]
fn a_watcher_finishes_the_job_without_a_checksum() {
    let t = taken(json!({}));
    append(t.job, b"hello\n");
    ok(unsafe { glr_job_log_flush(t.job) });
    let dump = hand_over_dumps(t.job);
    let since = server_mark(&t.server);
    ok(unsafe { glr_job_set_failed(t.job, GLR_FAILURE_SCRIPT, ptr::null()) });
    let rec = t.server.job(t.id).unwrap();
    assert_eq!((rec.state.as_str(), rec.failure_reason.as_deref()), ("failed", Some("script_failure")));
    assert_eq!(rec.reported_checksum, None, "no checksum reported");
    assert_eq!(trace::trace(&rec), "hello\n");
    let requests = job_requests_since(&t.server, t.id, since);
    let last = requests.last().expect("the final update");
    assert_eq!(last.body_json.as_ref().unwrap()["state"], "failed");
    assert!(
        last.body_json.as_ref().unwrap().pointer("/output/checksum").is_none(),
        "the final PUT has no output.checksum: {:?}",
        last.body_json
    );
    assert!(requests.iter().all(|r| r.method == "PUT"), "no PATCH:\n{}", describe(&requests));
    assert_eq!(unsafe { glr_job_state(t.job) }, GLR_JOB_FAILED);
    // The loader of the dump learns the job is over.
    let next = job_loads(&dump);
    append(next, b"too late\n");
    assert_ne!(unsafe { glr_job_set_success(next, ptr::null()) }, GLR_OK);
    unsafe { glr_job_free(next) };
}

/// A hand-over whose dump cannot be written fails with GLR_ERR_IO and leaves the handle the
/// owner: it keeps appending and nothing is lost.
#[test]
fn a_hand_over_that_cannot_write_its_dump_leaves_the_owner() {
    let t = taken(json!({}));
    append(t.job, b"before\n");
    let dir = std::env::temp_dir().join(format!("glr-one-writer-missing-{}", std::process::id()));
    let path = c(dir.join("no-such-dir").join("job.json").to_str().unwrap());
    let msg = expect(unsafe { glr_job_hand_over_dump(t.job, path.as_ptr()) }, GLR_ERR_IO);
    assert!(msg.contains("no-such-dir"), "the message names the path: {msg}");
    assert_eq!(unsafe { glr_job_is_watcher(t.job) }, 0, "still the owner");
    append(t.job, b"after\n");
    ok(unsafe { glr_job_log_flush(t.job) });
    ok(unsafe { glr_job_set_success(t.job, ptr::null()) });
    assert_stored_once(&t.server, t.id, "before\nafter\n");
}
