//! Bad input at the boundary, table-driven: for every function the header exports, NULL for
//! each pointer, invalid UTF-8 for each string, out-of-range indexes, unknown enum and flag
//! values, and handles of jobs that already finished (or were canceled). Every case must
//!
//! - return the documented status (or, for a getter, its documented default) with that status as
//!   the thread's last error and a non-empty glr_last_error_message();
//! - leave out-parameters untouched;
//! - change nothing: the handle's dump, the file system, and everything the test server holds
//!   (jobs, traces, runners) are the same before and after;
//! - leak nothing: a second identical call allocates no more than it frees on the calling thread
//!   (a counting global allocator sees every allocation of this process, the library included).
//!
//! `every_exported_function_is_in_the_table` fails when a function is added to the header
//! without rows here.

mod common;

use common::*;
use common::{job_dumps as job_dump, runner_dumps as runner_dump};
use gitlab_runner_api::ffi::artifacts::*;
use gitlab_runner_api::ffi::diagnostics::*;
use gitlab_runner_api::ffi::guard::*;
use gitlab_runner_api::ffi::job::*;
use gitlab_runner_api::ffi::job_artifacts::*;
use gitlab_runner_api::ffi::lifecycle::glr_shutdown;
use gitlab_runner_api::ffi::options::*;
use gitlab_runner_api::ffi::runner::*;
use gitlab_runner_api::ffi::status::*;
use gitlab_runner_api::ffi::strings::*;
use glr_testserver::TestServer;
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};
use std::ptr;

// ---- a counting allocator: bytes allocated minus bytes freed, per thread -----------------------

struct Counting;

thread_local! {
    static NET_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = NET_BYTES.try_with(|n| n.set(n.get() + delta));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(p, layout) }
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn net_bytes() -> isize {
    NET_BYTES.with(Cell::get)
}

// ---- the table --------------------------------------------------------------------------------

/// What a call gave back (nothing on the heap, so the leak check measures only the library).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Got {
    Status(glr_status),
    Int(i64),
    Null,
    NonNull,
    Unit,
}

/// What the header documents for the case.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// This status, also as glr_last_error_code(), with a message.
    Status(glr_status),
    /// A getter's documented default, with this status recorded and a message.
    Default(Got, glr_status),
    /// Documented as accepted (a no-op or a static answer) and leaving the last error alone.
    KeepsLastError(Got),
}

/// Which state must not change (besides the test server's, which is always compared).
#[derive(Debug, Clone, Copy)]
enum State {
    Server,
    Runner,
    Job,
    Finished,
    Canceled,
    /// The watcher of `job` (glr_job_watch_loads of its dump), which has no dump of its own.
    Watcher,
    Artifacts,
}

struct Case {
    what: String,
    expect: Expect,
    state: State,
    /// Talks to the server (a finished job's download): other threads allocate, so the leak
    /// check does not apply; the state checks still do.
    network: bool,
    call: Box<dyn Fn(&Fx) -> Got>,
}

struct Row {
    function: &'static str,
    /// Why a function has no bad-input case (no arguments, or none it could reject).
    no_bad_input: Option<&'static str>,
    cases: Vec<Case>,
}

/// The handles and inputs the cases use.
struct Fx {
    server: TestServer,
    runner: *mut glr_runner,
    job: *mut glr_job,
    finished: *mut glr_job,
    canceled: *mut glr_job,
    watcher: *mut glr_job,
    options: *mut glr_register_options,
    artifacts: *mut glr_artifacts,
    dir: PathBuf,
    bad: CString,
    good: CString,
    url: CString,
    token: CString,
    runner_dump: CString,
    job_dump: CString,
    not_a_zip: CString,
    missing: CString,
    in_missing_dir: CString,
}

const SENTINEL: usize = 0x10;

/// Calls `f` with an out-parameter holding a sentinel and checks it was not written.
fn with_out<T>(f: impl FnOnce(*mut *mut T) -> glr_status) -> Got {
    let mut out = SENTINEL as *mut T;
    let st = f(&mut out);
    assert_eq!(out as usize, SENTINEL, "an out-parameter was written on failure (status {st})");
    Got::Status(st)
}

fn ptr_got<T>(p: *const T) -> Got {
    if p.is_null() {
        Got::Null
    } else {
        Got::NonNull
    }
}

fn case(what: impl Into<String>, expect: Expect, state: State, call: impl Fn(&Fx) -> Got + 'static) -> Case {
    Case { what: what.into(), expect, state, network: false, call: Box::new(call) }
}

fn status(what: &str, st: glr_status, state: State, call: impl Fn(&Fx) -> Got + 'static) -> Case {
    case(what, Expect::Status(st), state, call)
}

fn row(function: &'static str, cases: Vec<Case>) -> Row {
    Row { function, no_bad_input: None, cases }
}

fn no_bad_input(function: &'static str, why: &'static str, cases: Vec<Case>) -> Row {
    Row { function, no_bad_input: Some(why), cases }
}

const NULL: glr_status = GLR_ERR_NULL_ARGUMENT;
const INVALID: glr_status = GLR_ERR_INVALID_ARGUMENT;
const UTF8: glr_status = GLR_ERR_INVALID_UTF8;

/// A NULL `runner` handle for a runner getter: its documented default and GLR_ERR_NULL_ARGUMENT.
fn runner_getter(function: &'static str, default: Got, get: fn(*const glr_runner) -> Got) -> Row {
    row(function, vec![case("runner NULL", Expect::Default(default, NULL), State::Server, move |_| get(ptr::null()))])
}

fn job_getter(function: &'static str, default: Got, get: fn(*const glr_job) -> Got) -> Row {
    row(function, vec![case("job NULL", Expect::Default(default, NULL), State::Server, move |_| get(ptr::null()))])
}

/// A getter by index: NULL job, and indexes just past the end and at the end of the range.
fn job_indexed(function: &'static str, default: Got, get: fn(*const glr_job, usize) -> Got) -> Row {
    let mut cases = vec![case("job NULL", Expect::Default(default, NULL), State::Server, move |_| get(ptr::null(), 0))];
    for (what, index) in [("index = count + 1000", 1000usize), ("index = SIZE_MAX", usize::MAX)] {
        cases.push(case(what, Expect::Default(default, INVALID), State::Job, move |fx| get(fx.job, index)));
    }
    row(function, cases)
}

/// A string setter of glr_register_options: NULL options, invalid UTF-8 value.
fn option_string(
    function: &'static str,
    set: unsafe extern "C" fn(*mut glr_register_options, *const c_char) -> glr_status,
) -> Row {
    row(
        function,
        vec![
            status("options NULL", NULL, State::Server, move |fx| {
                Got::Status(unsafe { set(ptr::null_mut(), fx.good.as_ptr()) })
            }),
            status("value invalid UTF-8", UTF8, State::Server, move |fx| {
                Got::Status(unsafe { set(fx.options, fx.bad.as_ptr()) })
            }),
        ],
    )
}

/// A 0/1 flag setter of glr_register_options: NULL options, 2, -1, INT32_MIN.
fn option_flag(function: &'static str, set: unsafe extern "C" fn(*mut glr_register_options, i32) -> glr_status) -> Row {
    let mut cases =
        vec![status("options NULL", NULL, State::Server, move |_| Got::Status(unsafe { set(ptr::null_mut(), 1) }))];
    for v in [2, -1, i32::MIN] {
        cases.push(status(&format!("value {v}"), INVALID, State::Server, move |fx| {
            Got::Status(unsafe { set(fx.options, v) })
        }));
    }
    row(function, cases)
}

/// A job function that reports to GitLab or changes the log: NULL job, a finished job, a
/// canceled job.
fn job_action(function: &'static str, act: fn(*mut glr_job) -> glr_status) -> Row {
    row(
        function,
        vec![
            status("job NULL", NULL, State::Server, move |_| Got::Status(act(ptr::null_mut()))),
            status("job finished", GLR_ERR_ALREADY_FINISHED, State::Finished, move |fx| Got::Status(act(fx.finished))),
            status("job canceled by GitLab", GLR_ERR_JOB_CANCELED, State::Canceled, move |fx| {
                Got::Status(act(fx.canceled))
            }),
        ],
    )
}

/// Texts glr_job_loads and glr_job_watch_loads refuse with GLR_ERR_PARSE.
fn not_job_dumps() -> [(&'static str, &'static std::ffi::CStr); 4] {
    [
        ("data \"{\"", c"{"),
        ("data a runner dump", c"{\"format\":\"gitlab_runner_api.runner\",\"version\":2}"),
        ("data version 3", c"{\"format\":\"gitlab_runner_api.job\",\"version\":3}"),
        ("data [1, \"x\", {}, \"running\", \"\"]", c"[1, \"x\", {}, \"running\", \"\"]"),
    ]
}

/// A path in the test directory that does not exist: a call that wrongly wrote it would show in
/// the directory snapshot.
fn missing_path() -> CString {
    CString::new(test_dir().join("missing.json").to_str().unwrap()).unwrap()
}

/// The watcher refuses a log-writing call with GLR_ERR_NOT_OWNER and nothing changes.
fn watcher_refuses(act: fn(*mut glr_job) -> glr_status) -> Case {
    status("job a watcher", GLR_ERR_NOT_OWNER, State::Watcher, move |fx| Got::Status(act(fx.watcher)))
}

fn table() -> Vec<Row> {
    let mut t = Vec::new();

    // -- library-wide ------------------------------------------------------------------------
    t.push(no_bad_input("glr_version", "no arguments", vec![]));
    t.push(no_bad_input("glr_abi_version", "no arguments", vec![]));
    t.push(no_bad_input(
        "glr_status_str",
        "every value is accepted",
        [12345, -12345, i32::MIN, i32::MAX]
            .into_iter()
            .map(|v| {
                case(format!("unknown status {v}"), Expect::KeepsLastError(Got::NonNull), State::Server, move |_| {
                    ptr_got(glr_status_str(v))
                })
            })
            .collect(),
    ));
    t.push(no_bad_input(
        "glr_last_error_message",
        "a NULL buffer is allowed (length query); with a non-zero length it is ignored",
        vec![case("buf NULL, buflen 64", Expect::KeepsLastError(Got::Int(11)), State::Server, |_| {
            Got::Int(unsafe { glr_last_error_message(ptr::null_mut(), 64) } as i64)
        })],
    ));
    t.push(no_bad_input("glr_last_error_code", "no arguments", vec![]));
    t.push(no_bad_input(
        "glr_string_free",
        "NULL is a no-op",
        vec![case("s NULL", Expect::KeepsLastError(Got::Unit), State::Server, |_| {
            unsafe { glr_string_free(ptr::null_mut()) };
            Got::Unit
        })],
    ));
    t.push(no_bad_input(
        "glr_set_log_callback",
        "NULL callback and userdata turn diagnostics off (documented)",
        vec![case("callback NULL", Expect::Default(Got::Unit, GLR_OK), State::Server, |_| {
            unsafe { glr_set_log_callback(None, ptr::null_mut()) };
            Got::Unit
        })],
    ));

    t.push(row(
        "glr_set_log_fd",
        vec![
            status("fd -2", INVALID, State::Server, |_| Got::Status(glr_set_log_fd(-2, GLR_LOG_WARN))),
            status("fd INT32_MIN", INVALID, State::Server, |_| Got::Status(glr_set_log_fd(i32::MIN, GLR_LOG_WARN))),
            status("level 99 (fd 2)", INVALID, State::Server, |_| Got::Status(glr_set_log_fd(2, 99))),
            status("level -1 (fd 2)", INVALID, State::Server, |_| Got::Status(glr_set_log_fd(2, -1))),
        ],
    ));
    t.push(row(
        "glr_shutdown",
        [-1, i64::MIN]
            .into_iter()
            .map(|ms| {
                status(&format!("timeout_milliseconds {ms}"), INVALID, State::Server, move |_| {
                    Got::Status(glr_shutdown(ms))
                })
            })
            .collect(),
    ));

    // -- registration options ----------------------------------------------------------------
    t.push(row(
        "glr_register_options_new",
        vec![status("out NULL", NULL, State::Server, |_| {
            Got::Status(unsafe { glr_register_options_new(ptr::null_mut()) })
        })],
    ));
    t.push(no_bad_input(
        "glr_register_options_free",
        "NULL is a no-op",
        vec![case("options NULL", Expect::KeepsLastError(Got::Unit), State::Server, |_| {
            unsafe { glr_register_options_free(ptr::null_mut()) };
            Got::Unit
        })],
    ));
    t.push(option_string("glr_register_options_set_description", glr_register_options_set_description));
    t.push(option_string("glr_register_options_set_maintenance_note", glr_register_options_set_maintenance_note));
    t.push(option_string("glr_register_options_set_name", glr_register_options_set_name));
    t.push(option_string("glr_register_options_set_version", glr_register_options_set_version));
    t.push(option_string("glr_register_options_set_revision", glr_register_options_set_revision));
    t.push(option_string("glr_register_options_set_platform", glr_register_options_set_platform));
    t.push(option_string("glr_register_options_set_architecture", glr_register_options_set_architecture));
    t.push(option_string("glr_register_options_set_executor", glr_register_options_set_executor));
    let mut access = option_string("glr_register_options_set_access_level", glr_register_options_set_access_level);
    access.cases.push(status("value \"admin\" (not an access level)", INVALID, State::Server, |fx| {
        Got::Status(unsafe { glr_register_options_set_access_level(fx.options, c"admin".as_ptr()) })
    }));
    t.push(access);
    t.push(option_flag("glr_register_options_set_active", glr_register_options_set_active));
    t.push(option_flag("glr_register_options_set_paused", glr_register_options_set_paused));
    t.push(option_flag("glr_register_options_set_locked", glr_register_options_set_locked));
    t.push(option_flag("glr_register_options_set_run_untagged", glr_register_options_set_run_untagged));
    t.push(row(
        "glr_register_options_set_maximum_timeout",
        vec![
            status("options NULL", NULL, State::Server, |_| {
                Got::Status(unsafe { glr_register_options_set_maximum_timeout(ptr::null_mut(), 3600) })
            }),
            status("seconds -1", INVALID, State::Server, |fx| {
                Got::Status(unsafe { glr_register_options_set_maximum_timeout(fx.options, -1) })
            }),
            status("seconds INT64_MIN", INVALID, State::Server, |fx| {
                Got::Status(unsafe { glr_register_options_set_maximum_timeout(fx.options, i64::MIN) })
            }),
        ],
    ));
    t.push(row(
        "glr_register_options_add_tag",
        vec![
            status("options NULL", NULL, State::Server, |fx| {
                Got::Status(unsafe { glr_register_options_add_tag(ptr::null_mut(), fx.good.as_ptr()) })
            }),
            status("tag NULL", NULL, State::Server, |fx| {
                Got::Status(unsafe { glr_register_options_add_tag(fx.options, ptr::null()) })
            }),
            status("tag invalid UTF-8", UTF8, State::Server, |fx| {
                Got::Status(unsafe { glr_register_options_add_tag(fx.options, fx.bad.as_ptr()) })
            }),
            status("tag with a comma", INVALID, State::Server, |fx| {
                Got::Status(unsafe { glr_register_options_add_tag(fx.options, c"a,b".as_ptr()) })
            }),
            status("tag empty", INVALID, State::Server, |fx| {
                Got::Status(unsafe { glr_register_options_add_tag(fx.options, c"".as_ptr()) })
            }),
        ],
    ));

    // -- runner ------------------------------------------------------------------------------
    t.push(row(
        "glr_runner_register",
        vec![
            status("out NULL", NULL, State::Server, |fx| {
                Got::Status(unsafe {
                    glr_runner_register(fx.url.as_ptr(), fx.token.as_ptr(), ptr::null(), ptr::null_mut())
                })
            }),
            status("api_url NULL", NULL, State::Server, |fx| {
                with_out(|o| unsafe { glr_runner_register(ptr::null(), fx.token.as_ptr(), ptr::null(), o) })
            }),
            status("registration_token NULL", NULL, State::Server, |fx| {
                with_out(|o| unsafe { glr_runner_register(fx.url.as_ptr(), ptr::null(), ptr::null(), o) })
            }),
            status("api_url invalid UTF-8", UTF8, State::Server, |fx| {
                with_out(|o| unsafe { glr_runner_register(fx.bad.as_ptr(), fx.token.as_ptr(), ptr::null(), o) })
            }),
            status("registration_token invalid UTF-8", UTF8, State::Server, |fx| {
                with_out(|o| unsafe { glr_runner_register(fx.url.as_ptr(), fx.bad.as_ptr(), ptr::null(), o) })
            }),
            status("api_url ftp://", INVALID, State::Server, |fx| {
                with_out(|o| unsafe {
                    glr_runner_register(c"ftp://gitlab".as_ptr(), fx.token.as_ptr(), ptr::null(), o)
                })
            }),
            status("registration_token empty", INVALID, State::Server, |fx| {
                with_out(|o| unsafe { glr_runner_register(fx.url.as_ptr(), c"".as_ptr(), ptr::null(), o) })
            }),
        ],
    ));
    t.push(row(
        "glr_runner_from_token",
        vec![
            status("out NULL", NULL, State::Server, |fx| {
                Got::Status(unsafe { glr_runner_from_token(fx.url.as_ptr(), fx.token.as_ptr(), ptr::null_mut()) })
            }),
            status("api_url NULL", NULL, State::Server, |fx| {
                with_out(|o| unsafe { glr_runner_from_token(ptr::null(), fx.token.as_ptr(), o) })
            }),
            status("authentication_token NULL", NULL, State::Server, |fx| {
                with_out(|o| unsafe { glr_runner_from_token(fx.url.as_ptr(), ptr::null(), o) })
            }),
            status("api_url invalid UTF-8", UTF8, State::Server, |fx| {
                with_out(|o| unsafe { glr_runner_from_token(fx.bad.as_ptr(), fx.token.as_ptr(), o) })
            }),
            status("authentication_token invalid UTF-8", UTF8, State::Server, |fx| {
                with_out(|o| unsafe { glr_runner_from_token(fx.url.as_ptr(), fx.bad.as_ptr(), o) })
            }),
            status("api_url without host", INVALID, State::Server, |fx| {
                with_out(|o| unsafe { glr_runner_from_token(c"https://".as_ptr(), fx.token.as_ptr(), o) })
            }),
        ],
    ));
    t.push(row(
        "glr_runner_set_feature",
        vec![
            status("runner NULL", NULL, State::Server, |fx| {
                Got::Status(unsafe { glr_runner_set_feature(ptr::null_mut(), fx.good.as_ptr(), 1) })
            }),
            status("feature NULL", NULL, State::Runner, |fx| {
                Got::Status(unsafe { glr_runner_set_feature(fx.runner, ptr::null(), 1) })
            }),
            status("feature invalid UTF-8", UTF8, State::Runner, |fx| {
                Got::Status(unsafe { glr_runner_set_feature(fx.runner, fx.bad.as_ptr(), 1) })
            }),
            status("feature \"Bad-Name\"", INVALID, State::Runner, |fx| {
                Got::Status(unsafe { glr_runner_set_feature(fx.runner, c"Bad-Name".as_ptr(), 1) })
            }),
            status("enabled 2", INVALID, State::Runner, |fx| {
                Got::Status(unsafe { glr_runner_set_feature(fx.runner, c"image".as_ptr(), 2) })
            }),
            status("enabled -1", INVALID, State::Runner, |fx| {
                Got::Status(unsafe { glr_runner_set_feature(fx.runner, c"image".as_ptr(), -1) })
            }),
        ],
    ));
    t.push(row(
        "glr_runner_set_system_id",
        vec![
            status("runner NULL", NULL, State::Server, |_| {
                Got::Status(unsafe { glr_runner_set_system_id(ptr::null_mut(), c"s_0123456789ab".as_ptr()) })
            }),
            status("system_id invalid UTF-8", UTF8, State::Runner, |fx| {
                Got::Status(unsafe { glr_runner_set_system_id(fx.runner, fx.bad.as_ptr()) })
            }),
            status("system_id \"x_0123456789ab\" (wrong prefix)", INVALID, State::Runner, |fx| {
                Got::Status(unsafe { glr_runner_set_system_id(fx.runner, c"x_0123456789ab".as_ptr()) })
            }),
            status("system_id \"s_short\"", INVALID, State::Runner, |fx| {
                Got::Status(unsafe { glr_runner_set_system_id(fx.runner, c"s_short".as_ptr()) })
            }),
            status("system_id empty", INVALID, State::Runner, |fx| {
                Got::Status(unsafe { glr_runner_set_system_id(fx.runner, c"".as_ptr()) })
            }),
        ],
    ));
    t.push(row(
        "glr_runner_reset_token",
        vec![status("runner NULL", NULL, State::Server, |_| {
            Got::Status(unsafe { glr_runner_reset_token(ptr::null_mut()) })
        })],
    ));
    let set_label = |fx: &Fx, key: &std::ffi::CStr, value: Option<&std::ffi::CStr>| {
        Got::Status(unsafe { glr_runner_set_label(fx.runner, key.as_ptr(), value.map_or(ptr::null(), |v| v.as_ptr())) })
    };
    let long_value = CString::new("v".repeat(257)).unwrap();
    let long_key = CString::new("k".repeat(66)).unwrap();
    let mut label_cases = vec![
        status("runner NULL", NULL, State::Server, |_| {
            Got::Status(unsafe { glr_runner_set_label(ptr::null_mut(), c"team".as_ptr(), c"ci".as_ptr()) })
        }),
        status("key NULL", NULL, State::Runner, |fx| {
            Got::Status(unsafe { glr_runner_set_label(fx.runner, ptr::null(), c"ci".as_ptr()) })
        }),
        status("key invalid UTF-8", UTF8, State::Runner, |fx| {
            Got::Status(unsafe { glr_runner_set_label(fx.runner, fx.bad.as_ptr(), c"ci".as_ptr()) })
        }),
        status("value invalid UTF-8", UTF8, State::Runner, |fx| {
            Got::Status(unsafe { glr_runner_set_label(fx.runner, c"team".as_ptr(), fx.bad.as_ptr()) })
        }),
    ];
    for (what, key, value) in [
        ("key \"ab\" (too short)", c"ab", c"ci"),
        ("key \".team\" (starts with '.')", c".team", c"ci"),
        ("key \"-team\" (starts with '-')", c"-team", c"ci"),
        ("key \"te am\" (a space)", c"te am", c"ci"),
        ("key empty", c"", c"ci"),
        ("value empty", c"team", c""),
        ("value \"a/b\"", c"team", c"a/b"),
    ] {
        label_cases.push(status(what, INVALID, State::Runner, move |fx| set_label(fx, key, Some(value))));
    }
    label_cases
        .push(status("key of 66 bytes", INVALID, State::Runner, move |fx| set_label(fx, &long_key, Some(c"ci"))));
    label_cases.push(status("value of 257 bytes", INVALID, State::Runner, move |fx| {
        set_label(fx, c"team", Some(&long_value))
    }));
    t.push(row("glr_runner_set_label", label_cases));
    t.push(no_bad_input(
        "glr_runner_last_error_message",
        "a NULL runner answers 0 and an empty string (documented); a NULL buffer is a length query",
        vec![case("runner NULL", Expect::KeepsLastError(Got::Unit), State::Server, |_| {
            let mut buf = [b'x' as c_char; 8];
            let n = unsafe { glr_runner_last_error_message(ptr::null(), buf.as_mut_ptr(), buf.len()) };
            assert_eq!((n, buf[0]), (0, 0), "a NULL runner must give length 0 and an empty string");
            Got::Unit
        })],
    ));
    t.push(row(
        "glr_runner_check_auth",
        vec![status("runner NULL", NULL, State::Server, |_| {
            Got::Status(unsafe { glr_runner_check_auth(ptr::null()) })
        })],
    ));
    t.push(row(
        "glr_runner_unregister",
        vec![status("runner NULL", NULL, State::Server, |_| {
            Got::Status(unsafe { glr_runner_unregister(ptr::null_mut()) })
        })],
    ));
    t.push(row(
        "glr_runner_request_job",
        vec![
            status("runner NULL", NULL, State::Server, |_| {
                with_out(|o| unsafe { glr_runner_request_job(ptr::null_mut(), o) })
            }),
            // A job is queued: a request with a NULL out would take it and lose it.
            status("out NULL (a job is queued)", NULL, State::Runner, |fx| {
                Got::Status(unsafe { glr_runner_request_job(fx.runner, ptr::null_mut()) })
            }),
        ],
    ));
    t.push(row(
        "glr_runner_dumps",
        vec![
            status("runner NULL", NULL, State::Server, |_| with_out(|o| unsafe { glr_runner_dumps(ptr::null(), o) })),
            status("out NULL", NULL, State::Runner, |fx| {
                Got::Status(unsafe { glr_runner_dumps(fx.runner, ptr::null_mut()) })
            }),
        ],
    ));
    let mut loads = vec![
        status("data NULL", NULL, State::Server, |_| with_out(|o| unsafe { glr_runner_loads(ptr::null(), o) })),
        status("out NULL", NULL, State::Server, |fx| {
            Got::Status(unsafe { glr_runner_loads(fx.runner_dump.as_ptr(), ptr::null_mut()) })
        }),
        status("data invalid UTF-8", UTF8, State::Server, |fx| {
            with_out(|o| unsafe { glr_runner_loads(fx.bad.as_ptr(), o) })
        }),
    ];
    for (what, text) in [
        ("data \"{\"", c"{"),
        ("data empty", c""),
        ("data a job dump", c"{\"format\":\"gitlab_runner_api.job\",\"version\":2}"),
        ("data version 99", c"{\"format\":\"gitlab_runner_api.runner\",\"version\":99}"),
        ("data [1] (short Python array)", c"[1]"),
    ] {
        loads.push(status(what, GLR_ERR_PARSE, State::Server, move |_| {
            with_out(|o| unsafe { glr_runner_loads(text.as_ptr(), o) })
        }));
    }
    t.push(row("glr_runner_loads", loads));
    t.push(row(
        "glr_runner_dump",
        vec![
            status("runner NULL", NULL, State::Server, |fx| {
                Got::Status(unsafe { glr_runner_dump(ptr::null(), fx.missing.as_ptr()) })
            }),
            status("path NULL", NULL, State::Runner, |fx| {
                Got::Status(unsafe { glr_runner_dump(fx.runner, ptr::null()) })
            }),
            status("path invalid UTF-8", UTF8, State::Runner, |fx| {
                Got::Status(unsafe { glr_runner_dump(fx.runner, fx.bad.as_ptr()) })
            }),
            status("path in a missing directory", GLR_ERR_IO, State::Runner, |fx| {
                Got::Status(unsafe { glr_runner_dump(fx.runner, fx.in_missing_dir.as_ptr()) })
            }),
        ],
    ));
    t.push(row(
        "glr_runner_load",
        vec![
            status("path NULL", NULL, State::Server, |_| with_out(|o| unsafe { glr_runner_load(ptr::null(), o) })),
            status("out NULL", NULL, State::Server, |fx| {
                Got::Status(unsafe { glr_runner_load(fx.missing.as_ptr(), ptr::null_mut()) })
            }),
            status("path invalid UTF-8", UTF8, State::Server, |fx| {
                with_out(|o| unsafe { glr_runner_load(fx.bad.as_ptr(), o) })
            }),
            status("path missing", GLR_ERR_IO, State::Server, |fx| {
                with_out(|o| unsafe { glr_runner_load(fx.missing.as_ptr(), o) })
            }),
            status("file not a runner", GLR_ERR_PARSE, State::Server, |fx| {
                with_out(|o| unsafe { glr_runner_load(fx.not_a_zip.as_ptr(), o) })
            }),
        ],
    ));
    let mut runner_timeout = vec![status("runner NULL", NULL, State::Server, |_| {
        Got::Status(unsafe { glr_runner_set_call_timeout(ptr::null_mut(), 1000) })
    })];
    for ms in [-1, i64::MIN] {
        runner_timeout.push(status(&format!("milliseconds {ms}"), INVALID, State::Runner, move |fx| {
            Got::Status(unsafe { glr_runner_set_call_timeout(fx.runner, ms) })
        }));
    }
    t.push(row("glr_runner_set_call_timeout", runner_timeout));
    t.push(row(
        "glr_runner_interrupt",
        vec![status("runner NULL", NULL, State::Server, |_| {
            Got::Status(unsafe { glr_runner_interrupt(ptr::null_mut()) })
        })],
    ));
    t.push(no_bad_input(
        "glr_runner_free",
        "NULL is a no-op",
        vec![case("runner NULL", Expect::KeepsLastError(Got::Unit), State::Server, |_| {
            unsafe { glr_runner_free(ptr::null_mut()) };
            Got::Unit
        })],
    ));
    t.push(runner_getter("glr_runner_id", Got::Int(0), |r| Got::Int(unsafe { glr_runner_id(r) })));
    t.push(runner_getter("glr_runner_api_url", Got::Null, |r| ptr_got(unsafe { glr_runner_api_url(r) })));
    t.push(runner_getter("glr_runner_token", Got::Null, |r| ptr_got(unsafe { glr_runner_token(r) })));
    t.push(runner_getter("glr_runner_token_expires_at", Got::Null, |r| {
        ptr_got(unsafe { glr_runner_token_expires_at(r) })
    }));
    t.push(runner_getter("glr_runner_system_id", Got::Null, |r| ptr_got(unsafe { glr_runner_system_id(r) })));
    t.push(runner_getter("glr_runner_description", Got::Null, |r| ptr_got(unsafe { glr_runner_description(r) })));
    t.push(runner_getter("glr_runner_name", Got::Null, |r| ptr_got(unsafe { glr_runner_name(r) })));
    t.push(runner_getter("glr_runner_version", Got::Null, |r| ptr_got(unsafe { glr_runner_version(r) })));
    t.push(runner_getter("glr_runner_revision", Got::Null, |r| ptr_got(unsafe { glr_runner_revision(r) })));
    t.push(runner_getter("glr_runner_platform", Got::Null, |r| ptr_got(unsafe { glr_runner_platform(r) })));
    t.push(runner_getter("glr_runner_architecture", Got::Null, |r| ptr_got(unsafe { glr_runner_architecture(r) })));
    t.push(runner_getter("glr_runner_executor", Got::Null, |r| ptr_got(unsafe { glr_runner_executor(r) })));
    t.push(runner_getter("glr_runner_access_level", Got::Null, |r| ptr_got(unsafe { glr_runner_access_level(r) })));
    t.push(runner_getter("glr_runner_locked", Got::Int(-1), |r| Got::Int(unsafe { glr_runner_locked(r) }.into())));
    t.push(runner_getter("glr_runner_active", Got::Int(-1), |r| Got::Int(unsafe { glr_runner_active(r) }.into())));
    t.push(runner_getter("glr_runner_run_untagged", Got::Int(-1), |r| {
        Got::Int(unsafe { glr_runner_run_untagged(r) }.into())
    }));
    t.push(runner_getter("glr_runner_maximum_timeout", Got::Int(-1), |r| {
        Got::Int(unsafe { glr_runner_maximum_timeout(r) })
    }));
    t.push(runner_getter("glr_runner_tag_count", Got::Int(0), |r| Got::Int(unsafe { glr_runner_tag_count(r) } as i64)));
    let mut tag = runner_getter("glr_runner_tag", Got::Null, |r| ptr_got(unsafe { glr_runner_tag(r, 0) }));
    for index in [0usize, 1000, usize::MAX] {
        tag.cases.push(case(
            format!("index {index} (no tags)"),
            Expect::Default(Got::Null, INVALID),
            State::Runner,
            move |fx| ptr_got(unsafe { glr_runner_tag(fx.runner, index) }),
        ));
    }
    t.push(tag);
    t.push(row(
        "glr_failure_reason_str",
        [7, 9, 30, 34, -1, i32::MIN, i32::MAX]
            .into_iter()
            .map(|v| {
                case(
                    format!("reason {v} (not a GLR_FAILURE_*)"),
                    Expect::Default(Got::Null, INVALID),
                    State::Server,
                    move |_| ptr_got(glr_failure_reason_str(v)),
                )
            })
            .collect(),
    ));

    // -- job -----------------------------------------------------------------------------------
    t.push(job_getter("glr_job_id", Got::Int(0), |j| Got::Int(unsafe { glr_job_id(j) })));
    for (name, get) in [
        ("glr_job_token", glr_job_token as unsafe extern "C" fn(*const glr_job) -> *const c_char),
        ("glr_job_name", glr_job_name),
        ("glr_job_stage", glr_job_stage),
        ("glr_job_ref", glr_job_ref),
        ("glr_job_repo_url", glr_job_repo_url),
        ("glr_job_commit_sha", glr_job_commit_sha),
        ("glr_job_commit_message", glr_job_commit_message),
        ("glr_job_username", glr_job_username),
        ("glr_job_project_url", glr_job_project_url),
        ("glr_job_project_path", glr_job_project_path),
        ("glr_job_project_name", glr_job_project_name),
        ("glr_job_job_url", glr_job_job_url),
        ("glr_job_pipeline_url", glr_job_pipeline_url),
        ("glr_job_pipeline_id", glr_job_pipeline_id),
    ] {
        t.push(row(
            name,
            vec![case("job NULL", Expect::Default(Got::Null, NULL), State::Server, move |_| {
                ptr_got(unsafe { get(ptr::null()) })
            })],
        ));
    }
    t.push(job_getter("glr_job_is_branch", Got::Int(-1), |j| Got::Int(unsafe { glr_job_is_branch(j) }.into())));
    t.push(job_getter("glr_job_state", Got::Int(-1), |j| Got::Int(unsafe { glr_job_state(j) }.into())));
    t.push(job_getter("glr_job_timeout", Got::Int(-1), |j| Got::Int(unsafe { glr_job_timeout(j) })));
    t.push(job_getter("glr_job_deadline", Got::Int(-1), |j| Got::Int(unsafe { glr_job_deadline(j) })));
    t.push(job_getter("glr_job_acknowledged", Got::Int(-1), |j| Got::Int(unsafe { glr_job_acknowledged(j) }.into())));
    t.push(no_bad_input(
        "glr_job_last_error_message",
        "a NULL job answers 0 and an empty string (documented); a NULL buffer is a length query",
        vec![case("job NULL", Expect::KeepsLastError(Got::Unit), State::Server, |_| {
            let mut buf = [b'x' as c_char; 8];
            let n = unsafe { glr_job_last_error_message(ptr::null(), buf.as_mut_ptr(), buf.len()) };
            assert_eq!((n, buf[0]), (0, 0), "a NULL job must give length 0 and an empty string");
            Got::Unit
        })],
    ));
    /// Calls glr_job_wait_state with an out-parameter holding a sentinel and checks it was not
    /// written.
    fn wait_state(job: *mut glr_job, known: i32, timeout: i64, out_null: bool) -> Got {
        let mut out = 0x5a5a_i32;
        let out_ptr = if out_null { ptr::null_mut() } else { &mut out as *mut i32 };
        let st = unsafe { glr_job_wait_state(job, known, timeout, out_ptr) };
        assert_eq!(out, 0x5a5a, "state_out was written on failure (status {st})");
        Got::Status(st)
    }
    t.push(row(
        "glr_job_wait_state",
        vec![
            status("job NULL", NULL, State::Server, |_| wait_state(ptr::null_mut(), GLR_JOB_RUNNING, 0, false)),
            status("state_out NULL", NULL, State::Job, |fx| wait_state(fx.job, GLR_JOB_RUNNING, 0, true)),
            status("known_state 99", INVALID, State::Job, |fx| wait_state(fx.job, 99, 0, false)),
            status("known_state -1", INVALID, State::Job, |fx| wait_state(fx.job, -1, 0, false)),
            status("timeout -2", INVALID, State::Job, |fx| wait_state(fx.job, GLR_JOB_RUNNING, -2, false)),
            status("timeout INT64_MIN", INVALID, State::Job, |fx| wait_state(fx.job, GLR_JOB_RUNNING, i64::MIN, false)),
        ],
    ));
    t.push(row(
        "glr_job_event_fd",
        vec![
            status("job NULL", NULL, State::Server, |_| {
                let mut fd = -7;
                let st = unsafe { glr_job_event_fd(ptr::null_mut(), &mut fd) };
                assert_eq!(fd, -7, "fd_out was written on failure");
                Got::Status(st)
            }),
            status("fd_out NULL", NULL, State::Job, |fx| {
                Got::Status(unsafe { glr_job_event_fd(fx.job, ptr::null_mut()) })
            }),
        ],
    ));
    t.push(job_getter("glr_job_script_count", Got::Int(0), |j| Got::Int(unsafe { glr_job_script_count(j) } as i64)));
    t.push(job_getter("glr_job_after_script_count", Got::Int(0), |j| {
        Got::Int(unsafe { glr_job_after_script_count(j) } as i64)
    }));
    t.push(job_getter(
        "glr_job_variable_count",
        Got::Int(0),
        |j| Got::Int(unsafe { glr_job_variable_count(j) } as i64),
    ));
    t.push(job_getter("glr_job_dependency_count", Got::Int(0), |j| {
        Got::Int(unsafe { glr_job_dependency_count(j) } as i64)
    }));
    t.push(job_indexed("glr_job_script_line", Got::Null, |j, i| ptr_got(unsafe { glr_job_script_line(j, i) })));
    t.push(job_indexed("glr_job_after_script_line", Got::Null, |j, i| {
        ptr_got(unsafe { glr_job_after_script_line(j, i) })
    }));
    t.push(job_indexed("glr_job_variable_key", Got::Null, |j, i| ptr_got(unsafe { glr_job_variable_key(j, i) })));
    t.push(job_indexed("glr_job_variable_value", Got::Null, |j, i| ptr_got(unsafe { glr_job_variable_value(j, i) })));
    t.push(job_indexed("glr_job_variable_flags", Got::Int(0), |j, i| {
        Got::Int(unsafe { glr_job_variable_flags(j, i) }.into())
    }));
    t.push(job_indexed("glr_job_dependency_id", Got::Int(0), |j, i| Got::Int(unsafe { glr_job_dependency_id(j, i) })));
    t.push(job_indexed("glr_job_dependency_name", Got::Null, |j, i| ptr_got(unsafe { glr_job_dependency_name(j, i) })));
    t.push(job_indexed("glr_job_dependency_artifacts_size", Got::Int(-1), |j, i| {
        Got::Int(unsafe { glr_job_dependency_artifacts_size(j, i) })
    }));
    t.push(row(
        "glr_job_variable",
        vec![
            case("job NULL", Expect::Default(Got::Null, NULL), State::Server, |fx| {
                ptr_got(unsafe { glr_job_variable(ptr::null(), fx.good.as_ptr()) })
            }),
            case("key NULL", Expect::Default(Got::Null, NULL), State::Job, |fx| {
                ptr_got(unsafe { glr_job_variable(fx.job, ptr::null()) })
            }),
            case("key invalid UTF-8", Expect::Default(Got::Null, UTF8), State::Job, |fx| {
                ptr_got(unsafe { glr_job_variable(fx.job, fx.bad.as_ptr()) })
            }),
        ],
    ));
    t.push(row(
        "glr_job_payload",
        vec![
            status("job NULL", NULL, State::Server, |_| with_out(|o| unsafe { glr_job_payload(ptr::null(), o) })),
            status("out NULL", NULL, State::Job, |fx| Got::Status(unsafe { glr_job_payload(fx.job, ptr::null_mut()) })),
        ],
    ));
    t.push(row(
        "glr_job_get_registry_credential",
        vec![
            status("job NULL", NULL, State::Server, |fx| {
                with_out(|u| {
                    with_out_status(|p| unsafe { glr_job_get_registry_credential(ptr::null(), fx.good.as_ptr(), u, p) })
                })
            }),
            status("image NULL", NULL, State::Job, |fx| {
                with_out(|u| with_out_status(|p| unsafe { glr_job_get_registry_credential(fx.job, ptr::null(), u, p) }))
            }),
            status("username_out NULL", NULL, State::Job, |fx| {
                with_out(|p| unsafe { glr_job_get_registry_credential(fx.job, fx.good.as_ptr(), ptr::null_mut(), p) })
            }),
            status("password_out NULL", NULL, State::Job, |fx| {
                with_out(|u| unsafe { glr_job_get_registry_credential(fx.job, fx.good.as_ptr(), u, ptr::null_mut()) })
            }),
            status("image invalid UTF-8", UTF8, State::Job, |fx| {
                with_out(|u| {
                    with_out_status(|p| unsafe { glr_job_get_registry_credential(fx.job, fx.bad.as_ptr(), u, p) })
                })
            }),
            status("image of an unknown registry", GLR_ERR_NOT_FOUND, State::Job, |fx| {
                with_out(|u| {
                    with_out_status(|p| unsafe {
                        glr_job_get_registry_credential(fx.job, c"nowhere.example/img".as_ptr(), u, p)
                    })
                })
            }),
        ],
    ));
    let mut append = job_action("glr_job_log_append", |j| unsafe { glr_job_log_append(j, c"x\n".as_ptr(), 2) });
    append.cases.push(status("data NULL with len 5", NULL, State::Job, |fx| {
        Got::Status(unsafe { glr_job_log_append(fx.job, ptr::null(), 5) })
    }));
    append.cases.push(status("len > PTRDIFF_MAX", INVALID, State::Job, |fx| {
        Got::Status(unsafe { glr_job_log_append(fx.job, fx.good.as_ptr(), usize::MAX) })
    }));
    append.cases.push(watcher_refuses(|j| unsafe { glr_job_log_append(j, c"x\n".as_ptr(), 2) }));
    t.push(append);
    let mut flush = job_action("glr_job_log_flush", |j| unsafe { glr_job_log_flush(j) });
    flush.cases.push(watcher_refuses(|j| unsafe { glr_job_log_flush(j) }));
    t.push(flush);
    t.push(row(
        "glr_job_log",
        vec![
            status("job NULL", NULL, State::Server, |_| {
                let mut len = 77usize;
                let got = with_out(|o| unsafe { glr_job_log(ptr::null(), o, &mut len) });
                assert_eq!(len, 77, "len_out written on failure");
                got
            }),
            status("out NULL", NULL, State::Job, |fx| {
                let mut len = 77usize;
                let st = unsafe { glr_job_log(fx.job, ptr::null_mut(), &mut len) };
                assert_eq!(len, 77, "len_out written on failure");
                Got::Status(st)
            }),
        ],
    ));
    t.push(job_action("glr_job_auth", |j| unsafe { glr_job_auth(j) }));
    t.push(job_action("glr_job_set_exit_code", |j| unsafe { glr_job_set_exit_code(j, 3) }));
    t.push(row(
        "glr_job_set_cancel_callback",
        vec![status("job NULL", NULL, State::Server, |_| {
            Got::Status(unsafe { glr_job_set_cancel_callback(ptr::null_mut(), None, ptr::null_mut()) })
        })],
    ));
    t.push(row(
        "glr_job_set_log_limit",
        vec![
            status("job NULL", NULL, State::Server, |_| {
                Got::Status(unsafe { glr_job_set_log_limit(ptr::null_mut(), 4096) })
            }),
            watcher_refuses(|j| unsafe { glr_job_set_log_limit(j, 4096) }),
        ],
    ));
    let mut keepalive = vec![status("job NULL", NULL, State::Server, |_| {
        Got::Status(unsafe { glr_job_set_keepalive_interval(ptr::null_mut(), 30) })
    })];
    for seconds in [0, 2701, -1, i64::MIN, i64::MAX] {
        keepalive.push(status(&format!("seconds {seconds} (not 1..=2700)"), INVALID, State::Job, move |fx| {
            Got::Status(unsafe { glr_job_set_keepalive_interval(fx.job, seconds) })
        }));
    }
    t.push(row("glr_job_set_keepalive_interval", keepalive));
    let mut job_timeout = vec![status("job NULL", NULL, State::Server, |_| {
        Got::Status(unsafe { glr_job_set_call_timeout(ptr::null_mut(), 1000) })
    })];
    for ms in [-1, i64::MIN] {
        job_timeout.push(status(&format!("milliseconds {ms}"), INVALID, State::Job, move |fx| {
            Got::Status(unsafe { glr_job_set_call_timeout(fx.job, ms) })
        }));
    }
    t.push(row("glr_job_set_call_timeout", job_timeout));
    t.push(job_action("glr_job_set_success", |j| unsafe { glr_job_set_success(j, ptr::null()) }));
    let mut failed =
        job_action("glr_job_set_failed", |j| unsafe { glr_job_set_failed(j, GLR_FAILURE_SCRIPT, ptr::null()) });
    for reason in [7, 9, 34, -1, i32::MIN, i32::MAX] {
        failed.cases.push(status(&format!("reason {reason} (not a GLR_FAILURE_*)"), INVALID, State::Job, move |fx| {
            Got::Status(unsafe { glr_job_set_failed(fx.job, reason, ptr::null()) })
        }));
    }
    t.push(failed);
    t.push(row(
        "glr_job_dumps",
        vec![
            status("job NULL", NULL, State::Server, |_| with_out(|o| unsafe { glr_job_dumps(ptr::null(), o) })),
            status("out NULL", NULL, State::Job, |fx| Got::Status(unsafe { glr_job_dumps(fx.job, ptr::null_mut()) })),
            status("job a watcher", GLR_ERR_NOT_OWNER, State::Watcher, |fx| {
                with_out(|o| unsafe { glr_job_dumps(fx.watcher, o) })
            }),
        ],
    ));
    let mut job_loads = vec![
        status("data NULL", NULL, State::Server, |_| with_out(|o| unsafe { glr_job_loads(ptr::null(), o) })),
        status("out NULL", NULL, State::Server, |fx| {
            Got::Status(unsafe { glr_job_loads(fx.job_dump.as_ptr(), ptr::null_mut()) })
        }),
        status("data invalid UTF-8", UTF8, State::Server, |fx| {
            with_out(|o| unsafe { glr_job_loads(fx.bad.as_ptr(), o) })
        }),
    ];
    for (what, text) in not_job_dumps() {
        job_loads.push(status(what, GLR_ERR_PARSE, State::Server, move |_| {
            with_out(|o| unsafe { glr_job_loads(text.as_ptr(), o) })
        }));
    }
    t.push(row("glr_job_loads", job_loads));
    let mut watch_loads = vec![
        status("data NULL", NULL, State::Server, |_| with_out(|o| unsafe { glr_job_watch_loads(ptr::null(), o) })),
        status("out NULL", NULL, State::Server, |fx| {
            Got::Status(unsafe { glr_job_watch_loads(fx.job_dump.as_ptr(), ptr::null_mut()) })
        }),
        status("data invalid UTF-8", UTF8, State::Server, |fx| {
            with_out(|o| unsafe { glr_job_watch_loads(fx.bad.as_ptr(), o) })
        }),
    ];
    for (what, text) in not_job_dumps() {
        watch_loads.push(status(what, GLR_ERR_PARSE, State::Server, move |_| {
            with_out(|o| unsafe { glr_job_watch_loads(text.as_ptr(), o) })
        }));
    }
    t.push(row("glr_job_watch_loads", watch_loads));
    t.push(row(
        "glr_job_watch_load",
        vec![
            status("path NULL", NULL, State::Server, |_| with_out(|o| unsafe { glr_job_watch_load(ptr::null(), o) })),
            status("out NULL", NULL, State::Server, |fx| {
                Got::Status(unsafe { glr_job_watch_load(fx.missing.as_ptr(), ptr::null_mut()) })
            }),
            status("path invalid UTF-8", UTF8, State::Server, |fx| {
                with_out(|o| unsafe { glr_job_watch_load(fx.bad.as_ptr(), o) })
            }),
            status("path missing", GLR_ERR_IO, State::Server, |fx| {
                with_out(|o| unsafe { glr_job_watch_load(fx.missing.as_ptr(), o) })
            }),
            status("file not a job", GLR_ERR_PARSE, State::Server, |fx| {
                with_out(|o| unsafe { glr_job_watch_load(fx.not_a_zip.as_ptr(), o) })
            }),
        ],
    ));
    t.push(job_getter("glr_job_is_watcher", Got::Int(-1), |j| Got::Int(unsafe { glr_job_is_watcher(j) }.into())));
    // A hand-over that fails leaves the handle the owner (State::Job: its dump still works).
    t.push(row(
        "glr_job_hand_over_dumps",
        vec![
            status("job NULL", NULL, State::Server, |_| {
                with_out(|o| unsafe { glr_job_hand_over_dumps(ptr::null_mut(), o) })
            }),
            status("out NULL", NULL, State::Job, |fx| {
                Got::Status(unsafe { glr_job_hand_over_dumps(fx.job, ptr::null_mut()) })
            }),
            status("job finished", GLR_ERR_ALREADY_FINISHED, State::Finished, |fx| {
                with_out(|o| unsafe { glr_job_hand_over_dumps(fx.finished, o) })
            }),
            status("job canceled by GitLab", GLR_ERR_JOB_CANCELED, State::Canceled, |fx| {
                with_out(|o| unsafe { glr_job_hand_over_dumps(fx.canceled, o) })
            }),
            status("job a watcher (not a second hand-over)", GLR_ERR_NOT_OWNER, State::Watcher, |fx| {
                with_out(|o| unsafe { glr_job_hand_over_dumps(fx.watcher, o) })
            }),
        ],
    ));
    t.push(row(
        "glr_job_hand_over_dump",
        vec![
            status("job NULL", NULL, State::Server, |fx| {
                Got::Status(unsafe { glr_job_hand_over_dump(ptr::null_mut(), fx.missing.as_ptr()) })
            }),
            status("path NULL", NULL, State::Job, |fx| {
                Got::Status(unsafe { glr_job_hand_over_dump(fx.job, ptr::null()) })
            }),
            status("path invalid UTF-8", UTF8, State::Job, |fx| {
                Got::Status(unsafe { glr_job_hand_over_dump(fx.job, fx.bad.as_ptr()) })
            }),
            status("path in a missing directory (stays the owner)", GLR_ERR_IO, State::Job, |fx| {
                Got::Status(unsafe { glr_job_hand_over_dump(fx.job, fx.in_missing_dir.as_ptr()) })
            }),
            status("job finished", GLR_ERR_ALREADY_FINISHED, State::Finished, |fx| {
                Got::Status(unsafe { glr_job_hand_over_dump(fx.finished, fx.missing.as_ptr()) })
            }),
            status("job canceled by GitLab", GLR_ERR_JOB_CANCELED, State::Canceled, |fx| {
                Got::Status(unsafe { glr_job_hand_over_dump(fx.canceled, fx.missing.as_ptr()) })
            }),
            watcher_refuses(|j| unsafe { glr_job_hand_over_dump(j, missing_path().as_ptr()) }),
        ],
    ));
    t.push(row(
        "glr_job_dump",
        vec![
            status("job NULL", NULL, State::Server, |fx| {
                Got::Status(unsafe { glr_job_dump(ptr::null(), fx.missing.as_ptr()) })
            }),
            status("path NULL", NULL, State::Job, |fx| Got::Status(unsafe { glr_job_dump(fx.job, ptr::null()) })),
            status("path invalid UTF-8", UTF8, State::Job, |fx| {
                Got::Status(unsafe { glr_job_dump(fx.job, fx.bad.as_ptr()) })
            }),
            status("path in a missing directory", GLR_ERR_IO, State::Job, |fx| {
                Got::Status(unsafe { glr_job_dump(fx.job, fx.in_missing_dir.as_ptr()) })
            }),
            watcher_refuses(|j| unsafe { glr_job_dump(j, missing_path().as_ptr()) }),
        ],
    ));
    t.push(row(
        "glr_job_load",
        vec![
            status("path NULL", NULL, State::Server, |_| with_out(|o| unsafe { glr_job_load(ptr::null(), o) })),
            status("out NULL", NULL, State::Server, |fx| {
                Got::Status(unsafe { glr_job_load(fx.missing.as_ptr(), ptr::null_mut()) })
            }),
            status("path invalid UTF-8", UTF8, State::Server, |fx| {
                with_out(|o| unsafe { glr_job_load(fx.bad.as_ptr(), o) })
            }),
            status("path missing", GLR_ERR_IO, State::Server, |fx| {
                with_out(|o| unsafe { glr_job_load(fx.missing.as_ptr(), o) })
            }),
            status("file not a job", GLR_ERR_PARSE, State::Server, |fx| {
                with_out(|o| unsafe { glr_job_load(fx.not_a_zip.as_ptr(), o) })
            }),
        ],
    ));
    t.push(no_bad_input(
        "glr_job_free",
        "NULL is a no-op",
        vec![case("job NULL", Expect::KeepsLastError(Got::Unit), State::Server, |_| {
            unsafe { glr_job_free(ptr::null_mut()) };
            Got::Unit
        })],
    ));

    // -- artifacts -----------------------------------------------------------------------------
    t.push(row(
        "glr_artifacts_new",
        vec![status("out NULL", NULL, State::Server, |_| Got::Status(unsafe { glr_artifacts_new(ptr::null_mut()) }))],
    ));
    t.push(no_bad_input(
        "glr_artifacts_free",
        "NULL is a no-op",
        vec![case("artifacts NULL", Expect::KeepsLastError(Got::Unit), State::Server, |_| {
            unsafe { glr_artifacts_free(ptr::null_mut()) };
            Got::Unit
        })],
    ));
    type AddArgs = [*const c_char; 5];
    let add = |fx: &Fx, args: AddArgs| unsafe {
        glr_artifacts_add_file(fx.artifacts, args[0], args[1], args[2], args[3], args[4])
    };
    let valid = |fx: &Fx| -> AddArgs {
        [fx.not_a_zip.as_ptr(), c"a.zip".as_ptr(), c"archive".as_ptr(), c"zip".as_ptr(), c"1 week".as_ptr()]
    };
    let mut add_cases = vec![status("artifacts NULL", NULL, State::Server, move |fx| {
        let a = valid(fx);
        Got::Status(unsafe { glr_artifacts_add_file(ptr::null_mut(), a[0], a[1], a[2], a[3], a[4]) })
    })];
    for (i, name) in ["path", "name"].into_iter().enumerate() {
        add_cases.push(status(&format!("{name} NULL"), NULL, State::Artifacts, move |fx| {
            let mut a = valid(fx);
            a[i] = ptr::null();
            Got::Status(add(fx, a))
        }));
    }
    for (i, name) in ["path", "name", "artifact_type", "artifact_format", "expire_in"].into_iter().enumerate() {
        add_cases.push(status(&format!("{name} invalid UTF-8"), UTF8, State::Artifacts, move |fx| {
            let mut a = valid(fx);
            a[i] = fx.bad.as_ptr();
            Got::Status(add(fx, a))
        }));
    }
    for (what, i, value, st) in [
        ("name empty", 1, c"", INVALID),
        ("name with a slash", 1, c"dir/a.zip", INVALID),
        ("artifact_format \"tar\"", 3, c"tar", INVALID),
        ("artifact_type empty", 2, c"", INVALID),
        ("path missing", 0, c"/nonexistent/glr/a.zip", GLR_ERR_IO),
        ("path a directory", 0, c"/", GLR_ERR_IO),
    ] {
        add_cases.push(status(what, st, State::Artifacts, move |fx| {
            let mut a = valid(fx);
            a[i] = value.as_ptr();
            Got::Status(add(fx, a))
        }));
    }
    t.push(row("glr_artifacts_add_file", add_cases));
    t.push(row(
        "glr_artifacts_count",
        vec![case("artifacts NULL", Expect::Default(Got::Int(0), NULL), State::Server, |_| {
            Got::Int(unsafe { glr_artifacts_count(ptr::null()) } as i64)
        })],
    ));
    t.push(row(
        "glr_artifacts_collect",
        vec![
            status("artifacts NULL", NULL, State::Server, |fx| {
                Got::Status(unsafe { glr_artifacts_collect(ptr::null_mut(), fx.job, fx.good.as_ptr(), 1) })
            }),
            status("job NULL", NULL, State::Artifacts, |fx| {
                Got::Status(unsafe { glr_artifacts_collect(fx.artifacts, ptr::null(), fx.good.as_ptr(), 1) })
            }),
            status("workdir NULL", NULL, State::Artifacts, |fx| {
                Got::Status(unsafe { glr_artifacts_collect(fx.artifacts, fx.job, ptr::null(), 1) })
            }),
            status("workdir invalid UTF-8", UTF8, State::Artifacts, |fx| {
                Got::Status(unsafe { glr_artifacts_collect(fx.artifacts, fx.job, fx.bad.as_ptr(), 1) })
            }),
            status("workdir missing", GLR_ERR_IO, State::Artifacts, |fx| {
                Got::Status(unsafe { glr_artifacts_collect(fx.artifacts, fx.job, fx.missing.as_ptr(), 1) })
            }),
            status("workdir a file", INVALID, State::Artifacts, |fx| {
                Got::Status(unsafe { glr_artifacts_collect(fx.artifacts, fx.job, fx.not_a_zip.as_ptr(), 0) })
            }),
        ],
    ));
    t.push(row(
        "glr_job_dependency_artifacts_filename",
        vec![
            status("job NULL", NULL, State::Server, |_| {
                with_out(|o| unsafe { glr_job_dependency_artifacts_filename(ptr::null(), 0, o) })
            }),
            status("out NULL", NULL, State::Job, |fx| {
                Got::Status(unsafe { glr_job_dependency_artifacts_filename(fx.job, 0, ptr::null_mut()) })
            }),
            status("index = SIZE_MAX", INVALID, State::Job, |fx| {
                with_out(|o| unsafe { glr_job_dependency_artifacts_filename(fx.job, usize::MAX, o) })
            }),
            status("index = count", INVALID, State::Job, |fx| {
                with_out(|o| unsafe {
                    glr_job_dependency_artifacts_filename(fx.job, glr_job_dependency_count(fx.job), o)
                })
            }),
        ],
    ));
    let dest = |fx: &Fx| CString::new(fx.dir.join("download.zip").to_str().unwrap()).unwrap();
    t.push(row(
        "glr_job_download_artifacts",
        vec![
            status("job NULL", NULL, State::Server, move |fx| {
                Got::Status(unsafe { glr_job_download_artifacts(ptr::null_mut(), 0, dest(fx).as_ptr()) })
            }),
            status("dest_path NULL", NULL, State::Job, |fx| {
                Got::Status(unsafe { glr_job_download_artifacts(fx.job, 0, ptr::null()) })
            }),
            status("dest_path invalid UTF-8", UTF8, State::Job, |fx| {
                Got::Status(unsafe { glr_job_download_artifacts(fx.job, 0, fx.bad.as_ptr()) })
            }),
            status("index = SIZE_MAX", INVALID, State::Job, move |fx| {
                Got::Status(unsafe { glr_job_download_artifacts(fx.job, usize::MAX, dest(fx).as_ptr()) })
            }),
            status("dest_path a directory", INVALID, State::Job, |fx| {
                let d = CString::new(fx.dir.to_str().unwrap()).unwrap();
                Got::Status(unsafe { glr_job_download_artifacts(fx.job, 0, d.as_ptr()) })
            }),
            Case {
                network: true,
                ..status("job finished (GitLab refuses its token)", GLR_ERR_AUTH, State::Finished, move |fx| {
                    Got::Status(unsafe { glr_job_download_artifacts(fx.finished, 0, dest(fx).as_ptr()) })
                })
            },
        ],
    ));
    t.push(row(
        "glr_extract_artifacts",
        vec![
            status("zip_path NULL", NULL, State::Server, |fx| {
                Got::Status(unsafe { glr_extract_artifacts(ptr::null(), fx.good.as_ptr()) })
            }),
            status("dest_dir NULL", NULL, State::Server, |fx| {
                Got::Status(unsafe { glr_extract_artifacts(fx.not_a_zip.as_ptr(), ptr::null()) })
            }),
            status("zip_path invalid UTF-8", UTF8, State::Server, |fx| {
                Got::Status(unsafe { glr_extract_artifacts(fx.bad.as_ptr(), fx.good.as_ptr()) })
            }),
            status("dest_dir invalid UTF-8", UTF8, State::Server, |fx| {
                Got::Status(unsafe { glr_extract_artifacts(fx.not_a_zip.as_ptr(), fx.bad.as_ptr()) })
            }),
            status("zip_path missing", GLR_ERR_IO, State::Server, |fx| {
                let d = CString::new(fx.dir.join("extracted").to_str().unwrap()).unwrap();
                Got::Status(unsafe { glr_extract_artifacts(fx.missing.as_ptr(), d.as_ptr()) })
            }),
            status("zip_path not a zip", GLR_ERR_PARSE, State::Server, |fx| {
                let d = CString::new(fx.dir.join("extracted").to_str().unwrap()).unwrap();
                Got::Status(unsafe { glr_extract_artifacts(fx.not_a_zip.as_ptr(), d.as_ptr()) })
            }),
        ],
    ));
    t
}

/// [`with_out`] for a second out-parameter, returning the raw status.
fn with_out_status<T>(f: impl FnOnce(*mut *mut T) -> glr_status) -> glr_status {
    match with_out(f) {
        Got::Status(st) => st,
        _ => unreachable!(),
    }
}

// ---- running the table ---------------------------------------------------------------------------

/// Everything that must not change: the server's jobs (state, trace, reported values, artifacts)
/// and runners, the files in the test directory, and the handle the case is about.
fn snapshot(fx: &Fx, state: State) -> String {
    let jobs: Vec<String> = fx
        .server
        .jobs()
        .into_iter()
        .map(|j| {
            format!(
                "{} {} {:?} {:?} {:?} {:?} {} {}",
                j.id,
                j.state,
                j.trace,
                j.failure_reason,
                j.exit_code,
                j.reported_checksum,
                j.trace_patches,
                j.artifacts.len()
            )
        })
        .collect();
    let runners: Vec<String> =
        fx.server.runners().into_iter().map(|r| format!("{} {} {}", r.id, r.managers.len(), r.token)).collect();
    let mut files: Vec<String> = std::fs::read_dir(&fx.dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            format!("{:?} {}", e.file_name(), e.metadata().map(|m| m.len()).unwrap_or(0))
        })
        .collect();
    files.sort();
    let handle = match state {
        State::Server => String::new(),
        State::Runner => runner_dump(fx.runner),
        State::Job => dump_or_error(fx.job),
        State::Finished => dump_or_error(fx.finished),
        State::Canceled => dump_or_error(fx.canceled),
        State::Watcher => unsafe {
            format!(
                "watcher {} state {} log {:?}",
                glr_job_is_watcher(fx.watcher),
                glr_job_state(fx.watcher),
                job_log(fx.watcher)
            )
        },
        State::Artifacts => unsafe { glr_artifacts_count(fx.artifacts) }.to_string(),
    };
    format!("{jobs:?}\n{runners:?}\n{files:?}\n{handle}")
}

/// The job's dump, or why there is none (a case that wrongly turned the owner into a watcher
/// then shows as a changed state instead of stopping the whole table).
fn dump_or_error(job: *const glr_job) -> String {
    let mut out = ptr::null_mut();
    match unsafe { glr_job_dumps(job, &mut out) } {
        GLR_OK => owned(out),
        st => format!("no dump: {st} {}", last_error()),
    }
}

fn last_code() -> glr_status {
    glr_last_error_code()
}

/// Runs one case: expectations, state before/after, and the leak check on a second call.
fn run_case(fx: &Fx, function: &str, c: &Case) -> Result<(), String> {
    let label = format!("{function}: {}", c.what);
    let before = snapshot(fx, c.state);
    // A known error first, for the cases that must leave it alone.
    let _ = unsafe { glr_job_id(ptr::null()) };
    let preset = last_error();
    let got = (c.call)(fx);
    let (code, message) = (last_code(), last_error());
    match c.expect {
        Expect::Status(st) => {
            if got != Got::Status(st) {
                return Err(format!("{label}: returned {got:?}, documented {st} ({message})"));
            }
            if code != st || message.is_empty() {
                return Err(format!("{label}: last error is {code} {message:?}, expected {st} with a message"));
            }
        }
        Expect::Default(value, st) => {
            if got != value {
                return Err(format!("{label}: returned {got:?}, documented {value:?}"));
            }
            if code != st || (st != GLR_OK && message.is_empty()) {
                return Err(format!("{label}: last error is {code} {message:?}, expected {st} with a message"));
            }
        }
        Expect::KeepsLastError(value) => {
            let value = match value {
                // The length of the preset message ("job is NULL").
                Got::Int(_) => Got::Int(preset.len() as i64),
                v => v,
            };
            if got != value {
                return Err(format!("{label}: returned {got:?}, documented {value:?}"));
            }
            if message != preset {
                return Err(format!("{label}: the last error changed from {preset:?} to {message:?}"));
            }
        }
    }
    let after = snapshot(fx, c.state);
    if before != after {
        return Err(format!("{label}: the call changed state\n--- before\n{before}\n--- after\n{after}"));
    }
    if !c.network {
        // The same call again: everything it allocates on this thread it must free (or replace:
        // the last-error slot and the borrowed-string caches reach their size on the first call).
        // (snapshot() above cleared the slot: call once to fill it again, then measure.)
        let _ = (c.call)(fx);
        let start = net_bytes();
        let _ = (c.call)(fx);
        let leaked = net_bytes() - start;
        if leaked != 0 {
            return Err(format!("{label}: {leaked} bytes allocated and not freed by a failing call"));
        }
    }
    Ok(())
}

fn test_dir() -> PathBuf {
    std::env::temp_dir().join(format!("glr-bad-input-{}", std::process::id()))
}

fn fixture() -> Fx {
    let server = server();
    let dir = test_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let runner = register(&server);
    let take = |overrides| {
        server.queue_job(overrides);
        take_job(&server, runner)
    };
    let job = take(json!({}));
    ok(unsafe { glr_job_log_append(job, c"running job\n".as_ptr(), 12) });
    ok(unsafe { glr_job_log_flush(job) });
    let finished = take(json!({}));
    ok(unsafe { glr_job_set_success(finished, ptr::null()) });
    let canceled = take(json!({}));
    let canceled_id = unsafe { glr_job_id(canceled) };
    server.cancel_job(canceled_id, false);
    assert_eq!(unsafe { glr_job_auth(canceled) }, GLR_ERR_JOB_CANCELED);
    assert_eq!(unsafe { glr_job_state(canceled) }, GLR_JOB_CANCELED);
    let watcher = watch_loads(&job_dump(job));
    // A job waiting in the queue: a request_job with a NULL out must not take it.
    server.queue_job(json!({}));
    let mut options = ptr::null_mut();
    ok(unsafe { glr_register_options_new(&mut options) });
    let mut artifacts = ptr::null_mut();
    ok(unsafe { glr_artifacts_new(&mut artifacts) });
    let not_a_zip = dir.join("not-a-zip.txt");
    std::fs::write(&not_a_zip, "plain text\n").unwrap();
    let path = |p: &Path| CString::new(p.to_str().unwrap()).unwrap();
    Fx {
        url: c(&server.url()),
        token: c(&server.registration_token()),
        runner_dump: c(&runner_dump(runner)),
        job_dump: c(&job_dump(job)),
        not_a_zip: path(&not_a_zip),
        missing: path(&dir.join("missing.json")),
        in_missing_dir: path(&dir.join("no-such-dir").join("x.json")),
        bad: invalid_utf8(),
        good: c("x"),
        server,
        runner,
        job,
        finished,
        canceled,
        watcher,
        options,
        artifacts,
        dir,
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        unsafe {
            glr_job_free(self.job);
            glr_job_free(self.finished);
            glr_job_free(self.canceled);
            glr_job_free(self.watcher);
            glr_runner_free(self.runner);
            glr_register_options_free(self.options);
            glr_artifacts_free(self.artifacts);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn every_bad_input_gets_its_documented_status_and_changes_nothing() {
    let fx = fixture();
    let table = table();
    let mut failures = Vec::new();
    let mut cases = 0;
    for row in &table {
        assert!(
            !row.cases.is_empty() || row.no_bad_input.is_some(),
            "{}: no case and no reason why none is possible",
            row.function
        );
        for c in &row.cases {
            cases += 1;
            if let Err(e) = run_case(&fx, row.function, c) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{} of {cases} bad-input cases failed:\n{}", failures.len(), failures.join("\n"));
    // The handles still work after all that.
    assert_eq!(unsafe { glr_job_state(fx.job) }, GLR_JOB_RUNNING);
    ok(unsafe { glr_job_log_append(fx.job, c"still fine\n".as_ptr(), 11) });
    ok(unsafe { glr_job_set_success(fx.job, ptr::null()) });
    let id = unsafe { glr_job_id(fx.job) };
    let rec = fx.server.job(id).unwrap();
    assert_eq!((rec.state.as_str(), rec.trace.as_slice()), ("success", &b"running job\nstill fine\n"[..]));
    eprintln!("{cases} bad-input cases over {} functions", table.len());
}

/// The functions the committed header declares.
fn header_functions() -> BTreeSet<String> {
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/gitlab_runner_api.h")).unwrap();
    let mut names = BTreeSet::new();
    for line in header.lines() {
        // A declaration starts at column 0 with its return type; the name is followed by '('.
        if !line.starts_with(|c: char| c.is_ascii_alphabetic()) || line.starts_with("typedef") {
            continue;
        }
        if let Some(open) = line.find('(') {
            let before = &line[..open];
            let name = before.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or("");
            if name.starts_with("glr_") {
                names.insert(name.to_string());
            }
        }
    }
    names
}

#[test]
fn every_exported_function_is_in_the_table() {
    let declared = header_functions();
    assert!(declared.len() > 100, "the header parse found only {declared:?}");
    let table = table();
    let mut listed = BTreeSet::new();
    for row in &table {
        assert!(listed.insert(row.function.to_string()), "{} has two rows", row.function);
    }
    let missing: Vec<_> = declared.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&declared).collect();
    assert!(missing.is_empty(), "exported functions without bad-input rows (add them to table()): {missing:?}");
    assert!(unknown.is_empty(), "rows for functions the header does not declare: {unknown:?}");
}
