//! `glr_job`: a job taken from GitLab. Each function: argument checks, one call into
//! `core::job`, result mapping.

use super::artifacts::glr_artifacts;
use super::guard::{catch_panic, guard, guard_result, invalid_arg, FfiResult};
use super::handle::{free_counted, handle_use, new_handle, out_arg, Counted, InUse, Using};
use super::handle_errors::HandleErrors;
use super::status::glr_status;
use super::strings::{bytes_arg, owned_c_bytes, owned_c_string, str_arg, BorrowedStrings, OwnedCBuf};
use super::text::copy_to_buffer;
use crate::core::artifacts::ArtifactSet;
use crate::core::failure;
use crate::core::job::{Job, Outcome};
use crate::core::model::JobState;
use crate::core::payload::JobInfo;
use crate::core::persist;
use std::ffi::{c_char, c_void};
use std::path::Path;
use std::ptr;
use std::time::Duration;

/// The job is running.
pub const GLR_JOB_RUNNING: i32 = 0;
/// The job was reported successful.
pub const GLR_JOB_SUCCESS: i32 = 1;
/// The job was reported failed.
pub const GLR_JOB_FAILED: i32 = 2;
/// GitLab asked for a graceful stop: run your after_script, log, then finish the job.
pub const GLR_JOB_CANCELING: i32 = 3;
/// GitLab stopped the job; calls that report to GitLab return GLR_ERR_JOB_CANCELED.
pub const GLR_JOB_CANCELED: i32 = 4;

/// Variable flag: the value is public (not secret).
pub const GLR_VAR_PUBLIC: u32 = 1;
/// Variable flag: the value is masked in the job log.
pub const GLR_VAR_MASKED: u32 = 2;
/// Variable flag: the variable is a file variable (the value is the file's content).
pub const GLR_VAR_FILE: u32 = 4;
/// Variable flag: the value must not be expanded.
pub const GLR_VAR_RAW: u32 = 8;

/// A failure reason for glr_job_set_failed(), in GitLab's own numbering.
pub type glr_failure_reason = i32;
/// unknown_failure
pub const GLR_FAILURE_UNKNOWN: glr_failure_reason = 0;
/// script_failure: the job's script failed (use glr_job_set_exit_code() too).
pub const GLR_FAILURE_SCRIPT: glr_failure_reason = 1;
/// api_failure
pub const GLR_FAILURE_API: glr_failure_reason = 2;
/// stuck_or_timeout_failure
pub const GLR_FAILURE_STUCK_OR_TIMEOUT: glr_failure_reason = 3;
/// runner_system_failure: the runner or the system it runs on failed.
pub const GLR_FAILURE_RUNNER_SYSTEM: glr_failure_reason = 4;
/// missing_dependency_failure
pub const GLR_FAILURE_MISSING_DEPENDENCY: glr_failure_reason = 5;
/// runner_unsupported
pub const GLR_FAILURE_RUNNER_UNSUPPORTED: glr_failure_reason = 6;
/// job_execution_timeout
pub const GLR_FAILURE_JOB_EXECUTION_TIMEOUT: glr_failure_reason = 8;
/// runner_configuration_error (sent as script_failure to a GitLab that does not know it)
pub const GLR_FAILURE_RUNNER_CONFIGURATION_ERROR: glr_failure_reason = 31;
/// runner_external_dependency_failure (sent as runner_system_failure to an older GitLab)
pub const GLR_FAILURE_RUNNER_EXTERNAL_DEPENDENCY: glr_failure_reason = 32;
/// runner_interrupted (sent as unknown_failure to an older GitLab)
pub const GLR_FAILURE_RUNNER_INTERRUPTED: glr_failure_reason = 33;

/// A job taken from GitLab. Obtained from glr_runner_request_job(), glr_job_loads(),
/// glr_job_load() (the owner of the job's log) or glr_job_watch_load(s) (a watcher); freed with
/// glr_job_free().
///
/// One writer per job: exactly one handle, in one process, writes a job's log (the *owner*).
/// glr_job_hand_over_dump() passes the log to whoever loads the dump and turns this handle into
/// a *watcher*: it keeps the job alive at GitLab (a keep-alive every
/// glr_job_set_keepalive_interval() seconds, from the background), learns cancels (state,
/// callback, glr_job_auth()) and may finish the job, but never sends log text again (log
/// functions return #GLR_ERR_NOT_OWNER).
///
/// Thread safety: every function may be called on the same job from several threads at once;
/// appending to the log never waits for the network, even while another thread flushes.
/// glr_job_free() may be called while other threads are inside calls on the job (it ends their
/// network waits, they return #GLR_ERR_INTERRUPTED, and it waits for them to return), but no
/// thread may start a call on the job once glr_job_free() was called.
///
/// fork(): in a child process, a job its parent took is not the child's: log functions return
/// #GLR_ERR_NOT_OWNER and nothing of it is sent from the child (the parent keeps running it).
/// Its fixed values (id, token, payload...) can be read; glr_job_free() in the child releases
/// nothing (the memory belongs to the parent's copy). Handles the child creates work normally.
pub struct glr_job {
    pub(crate) inner: Job,
    strings: BorrowedStrings,
    in_use: InUse,
    errors: HandleErrors,
}

impl glr_job {
    pub(crate) fn new(inner: Job) -> Self {
        glr_job { inner, strings: BorrowedStrings::new(), in_use: InUse::default(), errors: HandleErrors::default() }
    }
}

impl Counted for glr_job {
    fn in_use(&self) -> &InUse {
        &self.in_use
    }
    fn errors(&self) -> &HandleErrors {
        &self.errors
    }
}

/// Copies the message of the last failed call on `job` into `buf`, snprintf-style (as
/// glr_last_error_message()), whichever thread made that call: for runtimes that move a caller
/// between OS threads (Go goroutines, Node.js's thread pool), where the thread's last error may
/// belong to someone else. Successful calls do not clear it; read it right after a call on the
/// job returned an error. Returns the message's full length (0, and an empty string, when no
/// call on the job failed yet or `job` is NULL). Does not touch the thread's last error.
#[no_mangle]
pub unsafe extern "C" fn glr_job_last_error_message(job: *const glr_job, buf: *mut c_char, buflen: usize) -> usize {
    // SAFETY: NULL or live, by the caller's contract; `buf` as glr_last_error_message().
    let message = catch_panic(|| unsafe { job.as_ref() }.map(|j| j.errors.last()).unwrap_or_default());
    unsafe { copy_to_buffer(&message.unwrap_or_default(), buf, buflen) }
}

/// Waits until the job's state differs from `known_state` (a GLR_JOB_* value), at most
/// `timeout_milliseconds` (0: do not wait; -1: no limit), and sets `*state_out` to the state
/// then: the same as `known_state` when the time ran out. For programs that cannot take
/// callbacks on a library thread: a thread of their own waits here for GitLab's cancel. It
/// returns early when the job is freed on another thread.
///
/// Errors: GLR_ERR_NULL_ARGUMENT (`job`, `state_out`), GLR_ERR_INVALID_ARGUMENT (not a state, or
/// a timeout below -1), GLR_ERR_NOT_OWNER (a parent's job in a fork()ed child).
#[no_mangle]
pub unsafe extern "C" fn glr_job_wait_state(
    job: *mut glr_job,
    known_state: i32,
    timeout_milliseconds: i64,
    state_out: *mut i32,
) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(state_out, "state_out") }?;
        let job = unsafe { job_ref(job) }?;
        let known = state_of(known_state)
            .ok_or_else(|| invalid_arg("known_state", format!("{known_state} is not a GLR_JOB_* value")))?;
        let timeout = match timeout_milliseconds {
            -1 => None,
            ms if ms >= 0 => Some(Duration::from_millis(ms as u64)),
            ms => return Err(invalid_arg("timeout_milliseconds", format!("{ms} is below -1 (-1 means no limit)"))),
        };
        out.write(state_code(job.inner.wait_state(known, timeout)?));
        Ok(())
    })
}

/// Sets `*fd_out` to a descriptor that becomes readable after every change of the job's state
/// (a cancel, the end), for poll/epoll/select, libuv, asyncio's add_reader or Go's netpoller: a
/// program learns of GitLab's cancel without callbacks. It is an eventfd: read its 8-byte
/// counter to reset it (it stays readable until read), then call glr_job_state(). The same
/// descriptor is returned on every call; it belongs to the job: do not close it; it is closed
/// when the job is freed.
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_IO (no descriptor to be had), GLR_ERR_NOT_OWNER (a
/// parent's job in a fork()ed child).
#[no_mangle]
pub unsafe extern "C" fn glr_job_event_fd(job: *mut glr_job, fd_out: *mut i32) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(fd_out, "fd_out") }?;
        let job = unsafe { job_ref(job) }?;
        out.write(job.inner.event_fd()?);
        Ok(())
    })
}

/// GitLab's name of a failure reason ("script_failure"...), or NULL for a value that is not a
/// GLR_FAILURE_* constant (GLR_ERR_INVALID_ARGUMENT is then the thread's last error). Static text.
#[no_mangle]
pub extern "C" fn glr_failure_reason_str(reason: glr_failure_reason) -> *const c_char {
    guard_result(ptr::null(), || match failure::FAILURE_REASONS.iter().position(|(n, _)| *n == reason) {
        Some(i) => Ok(FAILURE_REASON_NAMES[i].as_ptr().cast()),
        None => Err(invalid_arg("reason", format!("{reason} is not a GLR_FAILURE_* value"))),
    })
}

/// NUL-terminated copies of `failure::FAILURE_REASONS`' names, same order (checked by a test).
const FAILURE_REASON_NAMES: &[&[u8]] = &[
    b"unknown_failure\0",
    b"script_failure\0",
    b"api_failure\0",
    b"stuck_or_timeout_failure\0",
    b"runner_system_failure\0",
    b"missing_dependency_failure\0",
    b"runner_unsupported\0",
    b"job_execution_timeout\0",
    b"runner_configuration_error\0",
    b"runner_external_dependency_failure\0",
    b"runner_interrupted\0",
];

fn state_of(code: i32) -> Option<JobState> {
    Some(match code {
        GLR_JOB_RUNNING => JobState::Running,
        GLR_JOB_SUCCESS => JobState::Success,
        GLR_JOB_FAILED => JobState::Failed,
        GLR_JOB_CANCELING => JobState::Canceling,
        GLR_JOB_CANCELED => JobState::Canceled,
        _ => return None,
    })
}

fn state_code(state: JobState) -> i32 {
    match state {
        JobState::Running => GLR_JOB_RUNNING,
        JobState::Success => GLR_JOB_SUCCESS,
        JobState::Failed => GLR_JOB_FAILED,
        JobState::Canceling => GLR_JOB_CANCELING,
        JobState::Canceled => GLR_JOB_CANCELED,
    }
}

/// # Safety
/// `job` is NULL or a live handle.
pub(crate) unsafe fn job_ref<'a>(job: *const glr_job) -> FfiResult<Using<'a, glr_job>> {
    unsafe { handle_use(job, "job") }
}

/// # Safety
/// `job` is NULL or a live handle.
unsafe fn job_field<T>(job: *const glr_job, default: T, f: impl FnOnce(&glr_job) -> FfiResult<T>) -> T {
    guard_result(default, || f(&*unsafe { job_ref(job) }?))
}

/// # Safety
/// `job` is NULL or a live handle.
unsafe fn job_str(job: *const glr_job, f: impl FnOnce(&JobInfo) -> Option<&str>) -> *const c_char {
    unsafe { job_field(job, ptr::null(), |j| Ok(j.strings.get_opt(f(&j.inner.info())))) }
}

fn index_err(what: &str, index: usize, count: usize) -> super::guard::FfiError {
    invalid_arg("index", format!("{index} >= {what} count {count}"))
}

/// The job's id (0 if `job` is NULL).
#[no_mangle]
pub unsafe extern "C" fn glr_job_id(job: *const glr_job) -> i64 {
    unsafe { job_field(job, 0, |j| Ok(j.inner.id())) }
}

/// The job token (a secret: CI_JOB_TOKEN). Borrowed: valid until glr_job_free(). NULL only if `job`
/// is NULL.
#[no_mangle]
pub unsafe extern "C" fn glr_job_token(job: *const glr_job) -> *const c_char {
    unsafe { job_str(job, |i| Some(&i.token)) }
}

/// `job_info.name`, or NULL when GitLab did not send it. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_name(job: *const glr_job) -> *const c_char {
    unsafe { job_str(job, |i| i.name.as_deref()) }
}

/// `job_info.stage`, or NULL. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_stage(job: *const glr_job) -> *const c_char {
    unsafe { job_str(job, |i| i.stage.as_deref()) }
}

/// `git_info.ref` (branch or tag name), or NULL. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_ref(job: *const glr_job) -> *const c_char {
    unsafe { job_str(job, |i| i.git_ref.as_deref()) }
}

/// `git_info.repo_url` (it embeds the job token: never log it), or NULL.
/// Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_repo_url(job: *const glr_job) -> *const c_char {
    unsafe { job_str(job, |i| i.repo_url.as_deref()) }
}

/// `git_info.sha`, or NULL. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_commit_sha(job: *const glr_job) -> *const c_char {
    unsafe { job_str(job, |i| i.commit_sha.as_deref()) }
}

/// The CI_COMMIT_MESSAGE variable, or NULL. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_commit_message(job: *const glr_job) -> *const c_char {
    unsafe { job_str(job, |i| i.commit_message.as_deref()) }
}

/// The GITLAB_USER_LOGIN variable, or NULL. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_username(job: *const glr_job) -> *const c_char {
    unsafe { job_str(job, |i| i.username.as_deref()) }
}

/// The CI_PROJECT_URL variable, or NULL. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_project_url(job: *const glr_job) -> *const c_char {
    unsafe { job_str(job, |i| i.project_url.as_deref()) }
}

/// The CI_PROJECT_PATH variable ("group/project"), or NULL. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_project_path(job: *const glr_job) -> *const c_char {
    unsafe { job_str(job, |i| i.project_path.as_deref()) }
}

/// The CI_PROJECT_NAME variable (else `job_info.project_name`), or NULL.
/// Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_project_name(job: *const glr_job) -> *const c_char {
    unsafe { job_str(job, |i| i.project_name.as_deref()) }
}

/// The CI_JOB_URL variable, or NULL. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_job_url(job: *const glr_job) -> *const c_char {
    unsafe { job_str(job, |i| i.job_url.as_deref()) }
}

/// The CI_PIPELINE_URL variable, or NULL. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_pipeline_url(job: *const glr_job) -> *const c_char {
    unsafe { job_str(job, |i| i.pipeline_url.as_deref()) }
}

/// The pipeline id as GitLab sends it (the CI_PIPELINE_ID variable, else
/// `job_info.pipeline_id`), as text, or NULL. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_pipeline_id(job: *const glr_job) -> *const c_char {
    unsafe { job_str(job, |i| i.pipeline_id.as_deref()) }
}

/// 1 if the job runs for a branch, 0 for a tag, -1 when unknown (or `job` is NULL).
#[no_mangle]
pub unsafe extern "C" fn glr_job_is_branch(job: *const glr_job) -> i32 {
    unsafe { job_field(job, -1, |j| Ok(j.inner.info().is_branch.map_or(-1, i32::from))) }
}

/// The job's state: GLR_JOB_RUNNING, _SUCCESS, _FAILED, _CANCELING or _CANCELED (-1 if `job`
/// is NULL). Learned from GitLab's answers to log uploads, glr_job_auth() and the final update.
#[no_mangle]
pub unsafe extern "C" fn glr_job_state(job: *const glr_job) -> i32 {
    unsafe { job_field(job, -1, |j| Ok(state_code(j.inner.state()))) }
}

/// Seconds GitLab gives the job (`runner_info.timeout`: the job's `timeout:`, within the
/// runner's `maximum_timeout`), or -1 when GitLab did not say (or `job` is NULL). Tell a batch
/// system this wall time: GitLab stops the job at glr_job_deadline().
#[no_mangle]
pub unsafe extern "C" fn glr_job_timeout(job: *const glr_job) -> i64 {
    unsafe { job_field(job, -1, |j| Ok(j.inner.timeout().unwrap_or(-1))) }
}

/// When GitLab stops the job, in unix seconds: when the runner took it plus glr_job_timeout().
/// Its job token expires 5 minutes later; after that every call for the job fails (GitLab
/// fails the job `job_token_expired`). -1 when unknown (no timeout in the payload, a dump
/// written by an older version, or `job` is NULL). Saved in dumps.
#[no_mangle]
pub unsafe extern "C" fn glr_job_deadline(job: *const glr_job) -> i64 {
    unsafe { job_field(job, -1, |j| Ok(j.inner.deadline().unwrap_or(-1))) }
}

/// 1 once GitLab has acknowledged the job (`PUT state=running`, the two-phase commit that
/// glr_runner_request_job() sends at once), 0 while not yet (the commit failed and is retried
/// in the background: GitLab gives a job it has not seen acknowledged within 2 minutes to
/// another runner), -1 if `job` is NULL (or a parent's job in a fork()ed child).
#[no_mangle]
pub unsafe extern "C" fn glr_job_acknowledged(job: *const glr_job) -> i32 {
    unsafe { job_field(job, -1, |j| Ok(j.inner.acknowledged().map_or(-1, i32::from))) }
}

/// How many `script` lines the job has (of every step named "script"; 0 if `job` is NULL).
#[no_mangle]
pub unsafe extern "C" fn glr_job_script_count(job: *const glr_job) -> usize {
    unsafe { job_field(job, 0, |j| Ok(j.inner.info().script.len())) }
}

/// `script` line number `index`, or NULL when out of range (GLR_ERR_INVALID_ARGUMENT as last
/// error). Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_script_line(job: *const glr_job, index: usize) -> *const c_char {
    unsafe {
        job_field(job, ptr::null(), |j| {
            let lines = &j.inner.info().script;
            lines.get(index).map(|l| j.strings.get(l)).ok_or_else(|| index_err("script line", index, lines.len()))
        })
    }
}

/// How many `after_script` lines the job has (0 if none, or if `job` is NULL).
#[no_mangle]
pub unsafe extern "C" fn glr_job_after_script_count(job: *const glr_job) -> usize {
    unsafe { job_field(job, 0, |j| Ok(j.inner.info().after_script.len())) }
}

/// `after_script` line number `index`, or NULL when out of range. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_after_script_line(job: *const glr_job, index: usize) -> *const c_char {
    unsafe {
        job_field(job, ptr::null(), |j| {
            let lines = &j.inner.info().after_script;
            lines.get(index).map(|l| j.strings.get(l)).ok_or_else(|| index_err("after_script line", index, lines.len()))
        })
    }
}

/// How many variables GitLab sent (in payload order; 0 if `job` is NULL).
#[no_mangle]
pub unsafe extern "C" fn glr_job_variable_count(job: *const glr_job) -> usize {
    unsafe { job_field(job, 0, |j| Ok(j.inner.info().variables.len())) }
}

/// The key of variable `index`, or NULL when out of range. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_variable_key(job: *const glr_job, index: usize) -> *const c_char {
    unsafe {
        job_field(job, ptr::null(), |j| {
            let vars = &j.inner.info().variables;
            vars.get(index).map(|v| j.strings.get(&v.key)).ok_or_else(|| index_err("variable", index, vars.len()))
        })
    }
}

/// The value of variable `index`, or NULL when out of range. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_variable_value(job: *const glr_job, index: usize) -> *const c_char {
    unsafe {
        job_field(job, ptr::null(), |j| {
            let vars = &j.inner.info().variables;
            vars.get(index).map(|v| j.strings.get(&v.value)).ok_or_else(|| index_err("variable", index, vars.len()))
        })
    }
}

/// The flags of variable `index` (GLR_VAR_PUBLIC | _MASKED | _FILE | _RAW), 0 when out of range
/// (GLR_ERR_INVALID_ARGUMENT as last error) or `job` is NULL.
#[no_mangle]
pub unsafe extern "C" fn glr_job_variable_flags(job: *const glr_job, index: usize) -> u32 {
    unsafe {
        job_field(job, 0, |j| {
            let vars = &j.inner.info().variables;
            vars.get(index).map(|v| v.flags).ok_or_else(|| index_err("variable", index, vars.len()))
        })
    }
}

/// The value of the variable named `key` (the last one if repeated), or NULL when GitLab did
/// not send it. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_variable(job: *const glr_job, key: *const c_char) -> *const c_char {
    unsafe {
        job_field(job, ptr::null(), |j| {
            let key = str_arg(key, "key")?;
            Ok(j.strings.get_opt(j.inner.info().variable(key)))
        })
    }
}

/// The job payload exactly as GitLab sent it (JSON), for everything without an accessor
/// (image, services, cache, artifacts, ...). On success `*out` is a new string, freed with
/// glr_string_free(). Errors: GLR_ERR_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn glr_job_payload(job: *const glr_job, out: *mut *mut c_char) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        let job = unsafe { job_ref(job) }?;
        out.write(owned_c_string(job.inner.payload()));
        Ok(())
    })
}

/// The registry credential for pulling `image` (e.g. "registry.example.com/group/img:tag"): of
/// the job's credentials of type "registry" whose URL is a prefix of the image name, the
/// longest. On success `*username_out` and `*password_out` are new strings, each freed with
/// glr_string_free(). Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_UTF8, GLR_ERR_NOT_FOUND.
#[no_mangle]
pub unsafe extern "C" fn glr_job_get_registry_credential(
    job: *const glr_job,
    image: *const c_char,
    username_out: *mut *mut c_char,
    password_out: *mut *mut c_char,
) -> glr_status {
    guard(|| {
        let user_out = unsafe { out_arg(username_out, "username_out") }?;
        let pass_out = unsafe { out_arg(password_out, "password_out") }?;
        let job = unsafe { job_ref(job) }?;
        let image = unsafe { str_arg(image, "image") }?;
        let (user, pass) = job.inner.registry_credential(image)?;
        user_out.write(owned_c_string(&user));
        pass_out.write(owned_c_string(&pass));
        Ok(())
    })
}

/// Appends `len` bytes of `data` to the job log (any bytes; invalid UTF-8 becomes U+FFFD). Never
/// waits on the network: the background uploader sends it promptly, then at the interval GitLab
/// asks for; glr_job_log_flush() and the job's end send the rest. `data` may be NULL when `len`
/// is 0. Safe from several threads at once.
///
/// Text not yet acknowledged by GitLab lives only in this process's memory: if the process
/// exits (returns from main, calls exit()) before glr_job_log_flush(), glr_job_set_success() /
/// _failed(), a hand-over or glr_shutdown(), that text is lost.
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_ALREADY_FINISHED, GLR_ERR_JOB_CANCELED,
/// GLR_ERR_NOT_OWNER (a watcher, a handed-over job, a parent's job in a fork()ed child).
#[no_mangle]
pub unsafe extern "C" fn glr_job_log_append(job: *mut glr_job, data: *const c_char, len: usize) -> glr_status {
    guard(|| {
        let job = unsafe { job_ref(job) }?;
        let data = unsafe { bytes_arg(data, len, "data") }?;
        Ok(job.inner.append_log(data)?)
    })
}

/// Uploads everything appended so far and returns when GitLab acknowledged all of it, or when
/// the job's call timeout (glr_job_set_call_timeout(), default 5 minutes) runs out.
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_ALREADY_FINISHED, GLR_ERR_JOB_CANCELED (GitLab stopped
/// the job), GLR_ERR_NETWORK, GLR_ERR_HTTP, GLR_ERR_TIMEOUT, GLR_ERR_NOT_OWNER,
/// GLR_ERR_INTERRUPTED (the job was freed meanwhile). Nothing appended is lost on error: the
/// background uploader keeps sending it.
#[no_mangle]
pub unsafe extern "C" fn glr_job_log_flush(job: *mut glr_job) -> glr_status {
    guard(|| Ok(unsafe { job_ref(job) }?.inner.flush_log()?))
}

/// The whole log as stored (after UTF-8 repair; a watcher has it as it was when handed over).
/// On success `*out` is a new NUL-terminated string freed with glr_string_free(), and
/// `*len_out` (if `len_out` is not NULL) its length in bytes. Errors: GLR_ERR_NULL_ARGUMENT,
/// GLR_ERR_NOT_OWNER (a parent's job in a fork()ed child).
#[no_mangle]
pub unsafe extern "C" fn glr_job_log(job: *const glr_job, out: *mut *mut c_char, len_out: *mut usize) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        let job = unsafe { job_ref(job) }?;
        let text = job.inner.log_text()?;
        if let Some(len) = unsafe { len_out.as_mut() } {
            *len = text.len();
        }
        out.write(owned_c_bytes(text.as_bytes()));
        Ok(())
    })
}

/// Keep-alive and cancel check (`PUT /api/v4/jobs/:id state=running`, like the Python
/// package's `auth()`). Afterwards glr_job_state() tells whether GitLab asks to cancel. Works
/// on watchers too.
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_JOB_CANCELED (GitLab stopped the job or rejects its
/// token), GLR_ERR_ALREADY_FINISHED, GLR_ERR_NETWORK, GLR_ERR_HTTP, GLR_ERR_TIMEOUT,
/// GLR_ERR_INTERRUPTED, GLR_ERR_NOT_OWNER (a parent's job in a fork()ed child).
#[no_mangle]
pub unsafe extern "C" fn glr_job_auth(job: *mut glr_job) -> glr_status {
    guard(|| Ok(unsafe { job_ref(job) }?.inner.auth()?))
}

/// Records the exit code of the job's script, sent with glr_job_set_failed() (a code of 0 is
/// never sent, as with the official runner). Errors: GLR_ERR_NULL_ARGUMENT,
/// GLR_ERR_ALREADY_FINISHED, GLR_ERR_JOB_CANCELED.
#[no_mangle]
pub unsafe extern "C" fn glr_job_set_exit_code(job: *mut glr_job, exit_code: i32) -> glr_status {
    guard(|| Ok(unsafe { job_ref(job) }?.inner.set_exit_code(exit_code)?))
}

/// Called when GitLab cancels a job: `state` is GLR_JOB_CANCELING (graceful: run your
/// after_script, then finish the job) or GLR_JOB_CANCELED (hard stop: the job can no longer be
/// reported). `job` is the handle the callback was set on.
pub type glr_cancel_callback = Option<unsafe extern "C" fn(userdata: *mut c_void, job: *mut glr_job, state: i32)>;

/// Sets (or with a NULL `callback`, removes) the function called when GitLab cancels the job, so
/// a C program learns of it without polling. It is called once for every change to
/// #GLR_JOB_CANCELING or #GLR_JOB_CANCELED, whichever request revealed it (a log upload, a
/// keep-alive, glr_job_auth(), the final update, an artifact upload), after the change.
///
/// It runs on the library's event thread (never on the thread that made a call, and never
/// with a library lock held; the same thread runs the log callback, one callback at a time):
/// it may call any function on any handle, its own job included (flush, set_failed, replace
/// the callback), except freeing the job it was called for. A slow callback delays other
/// callbacks, never an upload. It must not unwind (no C++ exception may leave it). Runtimes that
/// cannot take calls on a thread they did not create can use glr_job_state() polling instead.
///
/// When this function returns, a call of the previous callback in progress has returned (unless
/// this is called from that callback); after glr_job_free() returns it is never called again.
///
/// Errors: GLR_ERR_NULL_ARGUMENT (`job`).
#[no_mangle]
pub unsafe extern "C" fn glr_job_set_cancel_callback(
    job: *mut glr_job,
    callback: glr_cancel_callback,
    userdata: *mut c_void,
) -> glr_status {
    guard(|| {
        let handle = unsafe { job_ref(job) }?;
        let callback = callback.map(|cb| {
            // Addresses as integers so the closure is Send + Sync; the C contract above makes
            // that sound.
            let (job_addr, user_addr) = (job as usize, userdata as usize);
            Box::new(move |state: JobState| {
                // SAFETY: the job outlives every call (glr_job_free removes the callback first).
                unsafe { cb(user_addr as *mut c_void, job_addr as *mut glr_job, state_code(state)) }
            }) as crate::core::job::CancelCallback
        });
        handle.inner.set_cancel_callback(callback);
        Ok(())
    })
}

/// Caps the job's log at `limit_bytes` (default 100 MiB, GitLab's own default limit; at least
/// 1024). Past it, the log is cut on a character boundary, the official runner's notice
/// ("Job's log exceeded limit of N bytes.") is added, and further output is dropped. The limit
/// is saved in dumps: the process that loads one keeps it.
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_NOT_OWNER.
#[no_mangle]
pub unsafe extern "C" fn glr_job_set_log_limit(job: *mut glr_job, limit_bytes: usize) -> glr_status {
    guard(|| Ok(unsafe { job_ref(job) }?.inner.set_log_limit(limit_bytes)?))
}

/// The longest keep-alive interval accepted: GitLab only moves a running job's update time when
/// it is more than 15 minutes old and drops the job after an hour without one.
const MAX_KEEPALIVE_SECONDS: i64 = 45 * 60;

/// Sets how long the job may go without any exchange with GitLab before the background sends a
/// keep-alive (`PUT state=running`): default 30 seconds, like the official runner; from 1 to
/// 2700 (GitLab drops a running job after an hour without an update). Owners and watchers alike.
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_ARGUMENT (out of range), GLR_ERR_NOT_OWNER (a
/// parent's job in a fork()ed child).
#[no_mangle]
pub unsafe extern "C" fn glr_job_set_keepalive_interval(job: *mut glr_job, seconds: i64) -> glr_status {
    guard(|| {
        let job = unsafe { job_ref(job) }?;
        if !(1..=MAX_KEEPALIVE_SECONDS).contains(&seconds) {
            return Err(invalid_arg("seconds", format!("{seconds} is not between 1 and {MAX_KEEPALIVE_SECONDS}")));
        }
        Ok(job.inner.set_keepalive_interval(Duration::from_secs(seconds as u64))?)
    })
}

/// A call timeout in milliseconds as a Duration: 0 is `default`, negative is refused.
pub(crate) fn call_timeout(milliseconds: i64, default: Duration) -> FfiResult<Duration> {
    match milliseconds {
        0 => Ok(default),
        ms if ms > 0 => Ok(Duration::from_millis(ms as u64)),
        ms => Err(invalid_arg("milliseconds", format!("{ms} is negative (0 means the default)"))),
    }
}

/// Bounds every network call of this job from now on (glr_job_log_flush(), glr_job_auth(),
/// glr_job_set_success()/_failed() with their artifact uploads and waits,
/// glr_job_download_artifacts()): each returns #GLR_ERR_TIMEOUT once `milliseconds` have passed
/// since it started, retries and waits included. 0 restores the default, 5 minutes. Each
/// request also has its own timeout (120 s, or `GLR_HTTP_TIMEOUT` seconds in the environment).
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_ARGUMENT (negative).
#[no_mangle]
pub unsafe extern "C" fn glr_job_set_call_timeout(job: *mut glr_job, milliseconds: i64) -> glr_status {
    guard(|| {
        let job = unsafe { job_ref(job) }?;
        job.inner.set_call_timeout(call_timeout(milliseconds, crate::core::job::DEFAULT_CALL_TIMEOUT)?);
        Ok(())
    })
}

/// # Safety
/// `artifacts` is NULL or a live handle.
unsafe fn artifact_set(artifacts: *const glr_artifacts) -> ArtifactSet {
    unsafe { artifacts.as_ref() }.map(glr_artifacts::snapshot).unwrap_or_default()
}

/// Reports the job successful: uploads `artifacts` (NULL: none; only read), then the whole
/// log, then the final update (with the log's checksum and size), waiting while GitLab says it
/// is still storing the log. A watcher reports the state without the log's checksum (it does
/// not have the log). Bounded by the job's call timeout (glr_job_set_call_timeout()).
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_ALREADY_FINISHED (reported before),
/// GLR_ERR_JOB_CANCELED, GLR_ERR_NETWORK, GLR_ERR_HTTP, GLR_ERR_IO (an artifact file),
/// GLR_ERR_TIMEOUT, GLR_ERR_INTERRUPTED, GLR_ERR_NOT_OWNER (a parent's job in a fork()ed child).
/// On error the job stays running, so the call can be repeated or the job failed instead.
#[no_mangle]
pub unsafe extern "C" fn glr_job_set_success(job: *mut glr_job, artifacts: *const glr_artifacts) -> glr_status {
    guard(|| {
        let job = unsafe { job_ref(job) }?;
        Ok(job.inner.finish_with_artifacts(Outcome::Success, &unsafe { artifact_set(artifacts) })?)
    })
}

/// Reports the job failed with `reason` (a GLR_FAILURE_* value; mapped to what the job's GitLab
/// accepts, like the official runner) and the exit code set with glr_job_set_exit_code().
/// Uploads `artifacts` first (NULL: none). Otherwise as glr_job_set_success().
///
/// Errors: as glr_job_set_success(), plus GLR_ERR_INVALID_ARGUMENT for an unknown `reason`.
#[no_mangle]
pub unsafe extern "C" fn glr_job_set_failed(
    job: *mut glr_job,
    reason: glr_failure_reason,
    artifacts: *const glr_artifacts,
) -> glr_status {
    guard(|| {
        let job = unsafe { job_ref(job) }?;
        let name = failure::name_of(reason)
            .ok_or_else(|| invalid_arg("reason", format!("{reason} is not a GLR_FAILURE_* value")))?;
        Ok(job.inner.finish_with_artifacts(Outcome::Failed(name.to_string()), &unsafe { artifact_set(artifacts) })?)
    })
}

/// Serialises the job (our JSON format v2: runner, payload, state, log and how much of it GitLab
/// acknowledged, log limit). It holds the job and runner tokens and secret variables: keep it
/// secret. On success `*out` is a new string, freed with glr_string_free().
///
/// A snapshot: this handle stays the owner and keeps uploading. To pass the job to another
/// process, use glr_job_hand_over_dumps(): a process that loads a snapshot while this handle
/// still writes makes two writers, and GitLab keeps both their logs.
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_NOT_OWNER (a watcher has no log to dump).
#[no_mangle]
pub unsafe extern "C" fn glr_job_dumps(job: *const glr_job, out: *mut *mut c_char) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        let job = unsafe { job_ref(job) }?;
        // Written under the job's lock straight into the string C receives (a dump is JSON: no
        // NUL to replace).
        let dump = job.inner.with_view(|v| {
            OwnedCBuf::with_capacity(persist::job_size_hint(v)).write(|b| persist::write_job(v, b)).into_c()
        })?;
        out.write(dump);
        Ok(())
    })
}

/// Hands the job over to whoever loads `*out` (with glr_job_loads()): waits for an upload in
/// progress to get its answer, starts no other, serialises the job, and turns this handle into
/// a watcher (see #glr_job). Whatever the network does meanwhile (an upload in flight, a flush
/// that failed, GitLab unreachable), the process that loads the dump sends every byte this
/// handle did not get acknowledged, exactly once. On success `*out` is a new string, freed with
/// glr_string_free(); on failure nothing changed and this handle is still the owner.
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_NOT_OWNER (already a watcher), GLR_ERR_ALREADY_FINISHED,
/// GLR_ERR_JOB_CANCELED, GLR_ERR_TIMEOUT (the upload in progress did not end within the job's
/// call timeout).
#[no_mangle]
pub unsafe extern "C" fn glr_job_hand_over_dumps(job: *mut glr_job, out: *mut *mut c_char) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        let job = unsafe { job_ref(job) }?;
        let text = job.inner.hand_over(|data| Ok(persist::job_to_string(data)))?;
        out.write(owned_c_string(&text));
        Ok(())
    })
}

/// As glr_job_hand_over_dumps(), writing the dump to `path` (atomically, mode 0600) for
/// glr_job_load(). When the file cannot be written, nothing changed and this handle is still
/// the owner.
///
/// Errors: as glr_job_hand_over_dumps(), plus GLR_ERR_INVALID_UTF8, GLR_ERR_IO.
#[no_mangle]
pub unsafe extern "C" fn glr_job_hand_over_dump(job: *mut glr_job, path: *const c_char) -> glr_status {
    guard(|| {
        let job = unsafe { job_ref(job) }?;
        let path = unsafe { str_arg(path, "path") }?;
        job.inner.hand_over(|data| persist::write_file_atomic(Path::new(path), &persist::job_to_string(data)))?;
        Ok(())
    })
}

/// A watcher of a dumped job (see #glr_job): it keeps the job alive at GitLab and learns
/// cancels while the process that loads the same dump with glr_job_loads() writes the log.
/// Offline. On success `*out` is a new job handle. Errors: GLR_ERR_NULL_ARGUMENT,
/// GLR_ERR_INVALID_UTF8, GLR_ERR_PARSE.
#[no_mangle]
pub unsafe extern "C" fn glr_job_watch_loads(data: *const c_char, out: *mut *mut glr_job) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        let data = unsafe { str_arg(data, "data") }?;
        out.write(new_handle(glr_job::new(Job::watcher_from_loaded(persist::load_job(data)?)?)));
        Ok(())
    })
}

/// As glr_job_watch_loads(), from a file. Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_UTF8,
/// GLR_ERR_IO, GLR_ERR_PARSE.
#[no_mangle]
pub unsafe extern "C" fn glr_job_watch_load(path: *const c_char, out: *mut *mut glr_job) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        let path = unsafe { str_arg(path, "path") }?;
        let data = persist::read_file(Path::new(path))?;
        out.write(new_handle(glr_job::new(Job::watcher_from_loaded(persist::load_job(&data)?)?)));
        Ok(())
    })
}

/// 1 if this handle is a watcher (handed over, loaded with glr_job_watch_load(s), or a parent's
/// job in a fork()ed child), 0 if it writes the job's log, -1 if `job` is NULL.
#[no_mangle]
pub unsafe extern "C" fn glr_job_is_watcher(job: *const glr_job) -> i32 {
    unsafe { job_field(job, -1, |j| Ok(i32::from(j.inner.is_watcher()))) }
}

/// Restores a job from glr_job_dumps() output or from the Python package's format
/// (`[1, "<runner>", payload, state, log]`). Offline: no request is made. The log continues
/// where GitLab's copy ends, even if another process appended meanwhile.
///
/// On success `*out` is a new job. Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_UTF8, GLR_ERR_PARSE.
#[no_mangle]
pub unsafe extern "C" fn glr_job_loads(data: *const c_char, out: *mut *mut glr_job) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        let data = unsafe { str_arg(data, "data") }?;
        out.write(new_handle(glr_job::new(Job::from_loaded(persist::load_job(data)?)?)));
        Ok(())
    })
}

/// Writes glr_job_dumps() output to `path`, atomically and with mode 0600 (a snapshot: see
/// glr_job_dumps(); glr_job_hand_over_dump() passes the job on).
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_UTF8, GLR_ERR_IO, GLR_ERR_NOT_OWNER.
#[no_mangle]
pub unsafe extern "C" fn glr_job_dump(job: *const glr_job, path: *const c_char) -> glr_status {
    guard(|| {
        let job = unsafe { job_ref(job) }?;
        let path = unsafe { str_arg(path, "path") }?;
        // Serialised under the job's lock, written to disk after it (appends do not wait for the
        // disk).
        let dump = job.inner.with_view(|v| {
            let mut out = Vec::with_capacity(persist::job_size_hint(v));
            persist::write_job(v, &mut out);
            out
        })?;
        Ok(persist::write_bytes_atomic(Path::new(path), &dump)?)
    })
}

/// Reads a job from a file written by glr_job_dump() (or the Python package). Offline.
/// On success `*out` is a new job. Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_UTF8,
/// GLR_ERR_IO, GLR_ERR_PARSE.
#[no_mangle]
pub unsafe extern "C" fn glr_job_load(path: *const c_char, out: *mut *mut glr_job) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        let path = unsafe { str_arg(path, "path") }?;
        let data = persist::read_file(Path::new(path))?;
        out.write(new_handle(glr_job::new(Job::from_loaded(persist::load_job(&data)?)?)));
        Ok(())
    })
}

/// Frees a job. NULL is a no-op; must not be called twice. After it returns nothing of this
/// job reaches GitLab from this handle (no new request, no retry; an answer in flight is
/// ignored) and the cancel callback is never called again. Text not yet acknowledged is dropped:
/// finish, flush or hand the job over first.
///
/// Other threads may be inside calls on the job: their network waits end
/// (#GLR_ERR_INTERRUPTED) and this waits for them to return. No thread may start a call on the
/// job once this was called. In a fork()ed child, a job of the parent's is not released (see
/// #glr_job).
#[no_mangle]
pub unsafe extern "C" fn glr_job_free(job: *mut glr_job) {
    // SAFETY: NULL or live, by the caller's contract.
    if unsafe { job.as_ref() }.is_some_and(|j| j.inner.is_parents()) {
        // A fork()ed child's copy of its parent's job: its counters and locks may reflect
        // threads that only exist in the parent. Leave it as it is.
        return;
    }
    unsafe { free_counted(job, |j| j.inner.close()) }
}

/// How many jobs this job depends on (whose artifacts it may download; 0 if `job` is NULL).
#[no_mangle]
pub unsafe extern "C" fn glr_job_dependency_count(job: *const glr_job) -> usize {
    unsafe { job_field(job, 0, |j| Ok(j.inner.info().dependencies.len())) }
}

/// The job id of dependency `index`, or 0 when out of range (GLR_ERR_INVALID_ARGUMENT as last
/// error) or `job` is NULL.
#[no_mangle]
pub unsafe extern "C" fn glr_job_dependency_id(job: *const glr_job, index: usize) -> i64 {
    unsafe {
        job_field(job, 0, |j| {
            let deps = &j.inner.info().dependencies;
            deps.get(index).map(|d| d.id).ok_or_else(|| index_err("dependency", index, deps.len()))
        })
    }
}

/// The job name of dependency `index`, or NULL. Borrowed: valid until glr_job_free().
#[no_mangle]
pub unsafe extern "C" fn glr_job_dependency_name(job: *const glr_job, index: usize) -> *const c_char {
    unsafe {
        job_field(job, ptr::null(), |j| {
            let deps = &j.inner.info().dependencies;
            let dep = deps.get(index).ok_or_else(|| index_err("dependency", index, deps.len()))?;
            Ok(j.strings.get_opt(dep.name.as_deref()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reason_names_match_the_core_list() {
        assert_eq!(FAILURE_REASON_NAMES.len(), failure::FAILURE_REASONS.len());
        for (i, (n, name)) in failure::FAILURE_REASONS.iter().enumerate() {
            let c = unsafe { std::ffi::CStr::from_ptr(glr_failure_reason_str(*n)) };
            assert_eq!(c.to_str().unwrap(), *name);
            assert_eq!(FAILURE_REASON_NAMES[i], format!("{name}\0").as_bytes());
        }
        assert!(glr_failure_reason_str(7).is_null());
        assert!(glr_failure_reason_str(-5).is_null());
    }
}
