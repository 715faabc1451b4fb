//! Driving the exported C functions from Rust (through the rlib), the way a C program would: C
//! strings in, statuses and out-params back, the thread's last error.

use gitlab_runner_api::ffi::guard::glr_last_error_message;
use gitlab_runner_api::ffi::job::{
    glr_job, glr_job_dumps, glr_job_free, glr_job_hand_over_dumps, glr_job_loads, glr_job_log, glr_job_log_append,
    glr_job_watch_loads,
};
use gitlab_runner_api::ffi::runner::*;
use gitlab_runner_api::ffi::status::*;
use gitlab_runner_api::ffi::strings::glr_string_free;
use glr_testserver::{Config, TestServer};
use std::ffi::{c_char, CStr, CString};
use std::ptr;
use std::time::Duration;

pub fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// The calling thread's last error message.
pub fn last_error() -> String {
    let need = unsafe { glr_last_error_message(ptr::null_mut(), 0) };
    let mut buf = vec![0u8; need + 1];
    unsafe { glr_last_error_message(buf.as_mut_ptr().cast(), buf.len()) };
    CStr::from_bytes_until_nul(&buf).unwrap().to_string_lossy().into_owned()
}

/// Asserts `status` is `expected`, showing the last error otherwise; returns that message.
#[track_caller]
pub fn expect(status: glr_status, expected: glr_status) -> String {
    let msg = last_error();
    assert_eq!(status, expected, "status {status} ({msg}), expected {expected}");
    if expected != GLR_OK {
        assert!(!msg.is_empty(), "an error must come with a message");
    }
    msg
}

#[track_caller]
pub fn ok(status: glr_status) {
    expect(status, GLR_OK);
}

/// A borrowed C string as Rust (None for NULL).
pub fn borrowed(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string())
}

/// Takes ownership of a library-allocated string.
pub fn owned(p: *mut c_char) -> String {
    assert!(!p.is_null());
    let s = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string();
    unsafe { glr_string_free(p) };
    s
}

/// A server whose long polls and update intervals keep tests fast.
pub fn server() -> TestServer {
    TestServer::start_with(Config {
        long_poll_timeout: Duration::from_millis(200),
        trace_update_interval: 1,
        ..Config::default()
    })
}

pub fn register(server: &TestServer) -> *mut glr_runner {
    let mut runner = ptr::null_mut();
    let url = c(&server.url());
    let token = c(&server.registration_token());
    ok(unsafe { glr_runner_register(url.as_ptr(), token.as_ptr(), ptr::null(), &mut runner) });
    assert!(!runner.is_null());
    runner
}

/// Registers a runner and takes the job `job_id` queued on `server` (the only one queued).
pub fn take_job(server: &TestServer, runner: *mut glr_runner) -> *mut glr_job {
    for _ in 0..20 {
        let mut job = ptr::null_mut();
        ok(unsafe { glr_runner_request_job(runner, &mut job) });
        if !job.is_null() {
            return job;
        }
    }
    panic!("no job received from {}", server.url());
}

/// Appends `text` to the job's log.
pub fn append(job: *mut glr_job, text: &[u8]) {
    ok(unsafe { glr_job_log_append(job, text.as_ptr().cast::<c_char>(), text.len()) });
}

/// The runner's dump (glr_runner_dumps).
pub fn runner_dumps(runner: *const glr_runner) -> String {
    let mut s = ptr::null_mut();
    ok(unsafe { glr_runner_dumps(runner, &mut s) });
    owned(s)
}

/// The job's dump (glr_job_dumps).
pub fn job_dumps(job: *const glr_job) -> String {
    let mut s = ptr::null_mut();
    ok(unsafe { glr_job_dumps(job, &mut s) });
    owned(s)
}

/// Hands the job over (glr_job_hand_over_dumps): the dump the next owner loads.
pub fn hand_over_dumps(job: *mut glr_job) -> String {
    let mut s = ptr::null_mut();
    ok(unsafe { glr_job_hand_over_dumps(job, &mut s) });
    owned(s)
}

/// The owner a dump restores (glr_job_loads).
pub fn job_loads(dump: &str) -> *mut glr_job {
    let mut job = ptr::null_mut();
    ok(unsafe { glr_job_loads(c(dump).as_ptr(), &mut job) });
    assert!(!job.is_null());
    job
}

/// A watcher of a dumped job (glr_job_watch_loads).
pub fn watch_loads(dump: &str) -> *mut glr_job {
    let mut job = ptr::null_mut();
    ok(unsafe { glr_job_watch_loads(c(dump).as_ptr(), &mut job) });
    assert!(!job.is_null());
    job
}

/// The job's log as the handle holds it (glr_job_log).
pub fn job_log(job: *const glr_job) -> String {
    let mut s = ptr::null_mut();
    let mut len = 0usize;
    ok(unsafe { glr_job_log(job, &mut s, &mut len) });
    let text = owned(s);
    assert_eq!(text.len(), len, "glr_job_log's length");
    text
}

/// Bytes that are not UTF-8, NUL-terminated.
pub fn invalid_utf8() -> CString {
    CString::new(vec![b'a', 0xff, 0xfe, b'b']).unwrap()
}

/// A test server with one job queued, a runner registered and that job taken; freed on drop.
pub struct Taken {
    pub server: TestServer,
    pub runner: *mut glr_runner,
    pub job: *mut glr_job,
    pub id: i64,
}

impl Drop for Taken {
    fn drop(&mut self) {
        unsafe {
            glr_job_free(self.job);
            glr_runner_free(self.runner);
        }
    }
}

pub fn taken(overrides: serde_json::Value) -> Taken {
    let server = server();
    let id = server.queue_job(overrides);
    let runner = register(&server);
    let job = take_job(&server, runner);
    Taken { server, runner, job, id }
}

/// A runner created in GitLab (a `glrt-` token from the test server), as `register-runner`
/// makes one (glr_runner_from_token).
pub fn runner_from_token(server: &TestServer) -> *mut glr_runner {
    let mut runner = ptr::null_mut();
    let url = c(&server.url());
    let token = c(&server.create_runner_token());
    ok(unsafe { glr_runner_from_token(url.as_ptr(), token.as_ptr(), &mut runner) });
    assert!(!runner.is_null());
    runner
}

/// `n` numbered lines starting with `prefix`.
pub fn lines(prefix: &str, n: usize) -> String {
    (0..n).map(|i| format!("{prefix} {i:03}\n")).collect()
}

/// Appends `text` line by line, as a job's output arrives.
pub fn append_lines(job: *mut glr_job, text: &str) {
    for line in text.split_inclusive('\n') {
        append(job, line.as_bytes());
    }
}
