//! `glr_runner`: register, verify, request jobs, persist. Each function: argument checks, one
//! call into `core::runner`, result mapping.

use super::guard::{catch_panic, guard, guard_result, invalid_arg, FfiResult};
use super::handle::{free_counted, handle_use, new_handle, out_arg, Counted, InUse, Using};
use super::handle_errors::HandleErrors;
use super::job::call_timeout;
use super::job::glr_job;
use super::options::glr_register_options;
use super::status::glr_status;
use super::strings::{owned_c_string, str_arg, BorrowedStrings};
use super::text::copy_to_buffer;
use crate::core::model::RunnerData;
use crate::core::persist;
use crate::core::runner::{RegisterOptions, Runner};
use crate::core::sync::lock;
use std::ffi::c_char;
use std::path::Path;
use std::ptr;

/// A registered runner. Create with glr_runner_register(), glr_runner_from_token(),
/// glr_runner_loads() or glr_runner_load(); free with glr_runner_free().
///
/// Thread safety: every function may be called on the same runner from several threads at once
/// (internally locked). glr_runner_free() may be called while other threads are inside calls
/// on it (it ends them, #GLR_ERR_INTERRUPTED, and waits for them to return), but no thread may
/// start a call on the runner once it was called. Jobs taken from a runner keep their own copy
/// of what they need, so a runner may be freed while its jobs live on.
///
/// fork(): a fork()ed child may keep using its parent's runners (and new ones): its network
/// calls use the child's own connections.
pub struct glr_runner {
    pub(crate) inner: Runner,
    strings: BorrowedStrings,
    in_use: InUse,
    errors: HandleErrors,
}

impl glr_runner {
    pub(crate) fn new(inner: Runner) -> Self {
        glr_runner { inner, strings: BorrowedStrings::new(), in_use: InUse::default(), errors: HandleErrors::default() }
    }
}

impl Counted for glr_runner {
    fn in_use(&self) -> &InUse {
        &self.in_use
    }
    fn errors(&self) -> &HandleErrors {
        &self.errors
    }
}

/// Copies the message of the last failed call on `runner` into `buf`, snprintf-style, whichever
/// thread made that call (see glr_job_last_error_message()). Returns the message's full length
/// (0 when no call on the runner failed yet or `runner` is NULL). Does not touch the thread's
/// last error.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_last_error_message(
    runner: *const glr_runner,
    buf: *mut c_char,
    buflen: usize,
) -> usize {
    // SAFETY: NULL or live, by the caller's contract; `buf` as glr_last_error_message().
    let message = catch_panic(|| unsafe { runner.as_ref() }.map(|r| r.errors.last()).unwrap_or_default());
    unsafe { copy_to_buffer(&message.unwrap_or_default(), buf, buflen) }
}

/// # Safety
/// `runner` is NULL or a live handle.
unsafe fn runner_ref<'a>(runner: *const glr_runner) -> FfiResult<Using<'a, glr_runner>> {
    unsafe { handle_use(runner, "runner") }
}

/// Registers a new runner with a registration token (`POST /api/v4/runners`, the legacy
/// workflow; GitLab deprecates it in favour of glr_runner_from_token()).
///
/// `api_url` is GitLab's base URL (e.g. "https://gitlab.example.com"; a trailing "/" is fine).
/// `options` may be NULL for GitLab's defaults; it is only read. Strings are copied.
/// On success `*out` is a new runner, freed with glr_runner_free(); on failure it is untouched.
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_UTF8, GLR_ERR_INVALID_ARGUMENT (bad URL or
/// option, or GitLab's 400), GLR_ERR_AUTH (token rejected; also 410 when this GitLab accepts
/// no registration tokens: the message says what to do instead), GLR_ERR_NETWORK, GLR_ERR_HTTP,
/// GLR_ERR_PARSE.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_register(
    api_url: *const c_char,
    registration_token: *const c_char,
    options: *const glr_register_options,
    out: *mut *mut glr_runner,
) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        let api_url = unsafe { str_arg(api_url, "api_url") }?;
        let token = unsafe { str_arg(registration_token, "registration_token") }?;
        let options: RegisterOptions = match unsafe { options.as_ref() } {
            Some(o) => lock(&o.inner).clone(),
            None => RegisterOptions::default(),
        };
        out.write(new_handle(glr_runner::new(Runner::register(api_url, token, &options)?)));
        Ok(())
    })
}

/// Uses a runner created in GitLab (the current workflow): verifies its authentication token
/// (`glrt-...`) with `POST /api/v4/runners/verify` and learns the runner's id.
///
/// On success `*out` is a new runner, freed with glr_runner_free().
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_UTF8, GLR_ERR_INVALID_ARGUMENT (bad URL),
/// GLR_ERR_AUTH (token rejected), GLR_ERR_NETWORK, GLR_ERR_HTTP, GLR_ERR_PARSE.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_from_token(
    api_url: *const c_char,
    authentication_token: *const c_char,
    out: *mut *mut glr_runner,
) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        let api_url = unsafe { str_arg(api_url, "api_url") }?;
        let token = unsafe { str_arg(authentication_token, "authentication_token") }?;
        out.write(new_handle(glr_runner::new(Runner::from_token(api_url, token)?)));
        Ok(())
    })
}

/// Declares whether the embedding executor supports a feature GitLab asks runners about
/// (`info.features`, e.g. "image", "services", "variables", "refspecs", "artifacts"), so that
/// GitLab only sends jobs it can run. Persisted with the runner; sent from the next request on.
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_UTF8, GLR_ERR_INVALID_ARGUMENT (name not
/// lowercase letters, digits and `_`, or `enabled` not 0/1).
#[no_mangle]
pub unsafe extern "C" fn glr_runner_set_feature(
    runner: *mut glr_runner,
    feature: *const c_char,
    enabled: i32,
) -> glr_status {
    guard(|| {
        let runner = unsafe { runner_ref(runner) }?;
        let feature = unsafe { str_arg(feature, "feature") }?;
        let enabled = match enabled {
            0 => false,
            1 => true,
            other => return Err(invalid_arg("enabled", format!("must be 0 or 1, not {other}"))),
        };
        Ok(runner.inner.set_feature(feature, enabled)?)
    })
}

/// Checks the runner's token with GitLab (`POST /api/v4/runners/verify`).
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_AUTH (token rejected), GLR_ERR_NETWORK, GLR_ERR_HTTP.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_check_auth(runner: *const glr_runner) -> glr_status {
    guard(|| Ok(unsafe { runner_ref(runner) }?.inner.check_auth()?))
}

/// Unregisters the runner. A runner registered with a registration token is deleted
/// (`DELETE /api/v4/runners`); for a runner created in GitLab (`glrt-` token) only this
/// machine's runner manager is removed (`DELETE /api/v4/runners/managers`), as the official
/// runner does. The handle stays valid (and must still be freed).
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_AUTH, GLR_ERR_NOT_FOUND (no such runner manager),
/// GLR_ERR_NETWORK, GLR_ERR_HTTP.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_unregister(runner: *mut glr_runner) -> glr_status {
    guard(|| Ok(unsafe { runner_ref(runner) }?.inner.unregister()?))
}

/// Asks GitLab for a job (`POST /api/v4/jobs/request`, with long polling: the call may wait up
/// to about a minute when GitLab holds the request). A job received is accepted at once
/// (`state=running`). Bounded by the runner's call timeout (glr_runner_set_call_timeout());
/// glr_runner_interrupt() from another thread ends it at once.
///
/// On success `*out` is the new job (freed with glr_job_free()) or NULL when there is no job
/// now. Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_AUTH (runner token rejected), GLR_ERR_NETWORK,
/// GLR_ERR_HTTP, GLR_ERR_PARSE (GitLab assigned a job whose payload cannot be read),
/// GLR_ERR_TIMEOUT, GLR_ERR_INTERRUPTED.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_request_job(runner: *mut glr_runner, out: *mut *mut glr_job) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        let runner = unsafe { runner_ref(runner) }?;
        let job = runner.inner.request_job()?;
        out.write(job.map_or(ptr::null_mut(), |j| new_handle(glr_job::new(j))));
        Ok(())
    })
}

/// Serialises the runner (our JSON format v2; it holds the runner token: keep it secret).
///
/// On success `*out` is a new string, freed with glr_string_free(). Errors: GLR_ERR_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_dumps(runner: *const glr_runner, out: *mut *mut c_char) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        let runner = unsafe { runner_ref(runner) }?;
        out.write(owned_c_string(&persist::runner_to_string(&runner.inner.data())));
        Ok(())
    })
}

/// Restores a runner from glr_runner_dumps() output, or from the Python package's format
/// (`[1, api_url, id, token, data]`). Offline: no request is made (call glr_runner_check_auth()
/// to verify the token).
///
/// On success `*out` is a new runner. Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_UTF8,
/// GLR_ERR_PARSE (malformed, unknown version, or not a runner).
#[no_mangle]
pub unsafe extern "C" fn glr_runner_loads(data: *const c_char, out: *mut *mut glr_runner) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        let data = unsafe { str_arg(data, "data") }?;
        out.write(new_handle(glr_runner::new(Runner::from_data(persist::runner_from_str(data)?))));
        Ok(())
    })
}

/// Writes glr_runner_dumps() output to `path`, atomically (a temporary file renamed over it)
/// and with mode 0600, since it holds the runner token.
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_UTF8, GLR_ERR_IO.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_dump(runner: *const glr_runner, path: *const c_char) -> glr_status {
    guard(|| {
        let runner = unsafe { runner_ref(runner) }?;
        let path = unsafe { str_arg(path, "path") }?;
        Ok(persist::write_file_atomic(Path::new(path), &persist::runner_to_string(&runner.inner.data()))?)
    })
}

/// Reads a runner from a file written by glr_runner_dump() (or by the Python package). Offline.
///
/// On success `*out` is a new runner. Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_UTF8,
/// GLR_ERR_IO, GLR_ERR_PARSE.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_load(path: *const c_char, out: *mut *mut glr_runner) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        let path = unsafe { str_arg(path, "path") }?;
        let data = persist::read_file(Path::new(path))?;
        let runner = Runner::from_file_data(persist::runner_from_str(&data)?, Path::new(path));
        out.write(new_handle(glr_runner::new(runner)));
        Ok(())
    })
}

/// Bounds every network call of this runner from now on (glr_runner_request_job() with its
/// long poll, glr_runner_check_auth(), glr_runner_unregister()): each returns #GLR_ERR_TIMEOUT
/// once `milliseconds` have passed since it started, retries included. 0 restores the default,
/// 5 minutes. Each request also has its own timeout (120 s, or `GLR_HTTP_TIMEOUT` seconds).
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_ARGUMENT (negative).
#[no_mangle]
pub unsafe extern "C" fn glr_runner_set_call_timeout(runner: *mut glr_runner, milliseconds: i64) -> glr_status {
    guard(|| {
        let runner = unsafe { runner_ref(runner) }?;
        runner.inner.set_call_timeout(call_timeout(milliseconds, crate::core::runner::DEFAULT_CALL_TIMEOUT)?);
        Ok(())
    })
}

/// Ends the runner's network calls in progress on other threads at once: a
/// glr_runner_request_job() waiting in GitLab's long poll returns #GLR_ERR_INTERRUPTED (so does
/// a check_auth or unregister in progress). Calls started afterwards are not affected. For a
/// program that stops polling (a signal, a shutdown request, an event loop closing).
///
/// Errors: GLR_ERR_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_interrupt(runner: *mut glr_runner) -> glr_status {
    guard(|| {
        unsafe { runner_ref(runner) }?.inner.interrupt();
        Ok(())
    })
}

/// Frees a runner. NULL is a no-op; must not be called twice. Calls in progress on other
/// threads end (#GLR_ERR_INTERRUPTED) and this waits for them to return; no thread may start a
/// call on the runner once this was called. Jobs taken from it stay valid.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_free(runner: *mut glr_runner) {
    unsafe { free_counted(runner, |r| r.inner.interrupt()) }
}

/// # Safety
/// `runner` is NULL or a live handle.
unsafe fn runner_field<T>(runner: *const glr_runner, default: T, f: impl FnOnce(&glr_runner) -> FfiResult<T>) -> T {
    guard_result(default, || f(&*unsafe { runner_ref(runner) }?))
}

/// # Safety
/// `runner` is NULL or a live handle.
unsafe fn runner_str(runner: *const glr_runner, f: impl FnOnce(&RunnerData) -> Option<&str>) -> *const c_char {
    unsafe { runner_field(runner, ptr::null(), |r| Ok(r.strings.get_opt(f(r.inner.fixed())))) }
}

fn tristate(v: Option<bool>) -> i32 {
    v.map_or(-1, i32::from)
}

/// The runner's id in GitLab (0 when GitLab did not say, or `runner` is NULL).
#[no_mangle]
pub unsafe extern "C" fn glr_runner_id(runner: *const glr_runner) -> i64 {
    unsafe { runner_field(runner, 0, |r| Ok(r.inner.fixed().id)) }
}

/// GitLab's base URL, normalised (no trailing "/"). Borrowed: valid until glr_runner_free().
/// NULL only if `runner` is NULL.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_api_url(runner: *const glr_runner) -> *const c_char {
    unsafe { runner_str(runner, |d| Some(&d.api_url)) }
}

/// The runner's current authentication token (a secret; it changes when the token is rotated).
/// Borrowed: valid until glr_runner_free(), also after a rotation (which returns new strings).
/// NULL only if `runner` is NULL.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_token(runner: *const glr_runner) -> *const c_char {
    unsafe { runner_field(runner, ptr::null(), |r| Ok(r.strings.get(&r.inner.token()))) }
}

/// When the current token expires (ISO 8601, as GitLab sent it), or NULL when it does not or is
/// unknown. Borrowed: valid until glr_runner_free().
#[no_mangle]
pub unsafe extern "C" fn glr_runner_token_expires_at(runner: *const glr_runner) -> *const c_char {
    unsafe { runner_field(runner, ptr::null(), |r| Ok(r.strings.get_opt(r.inner.token_expires_at().as_deref()))) }
}

/// Rotates the runner's authentication token now (`POST /api/v4/runners/reset_authentication_token`;
/// the old token stops working at once). The library also does this by itself, on the runner's
/// next network call once 75 % of the token's lifetime (from `token_expires_at`) has passed, as
/// the official runner does. A runner loaded with glr_runner_load() writes the new token to its
/// file (atomically, mode 0600, holding an exclusive lock on `<file>.lock`, so that of several
/// processes sharing the file one rotates; the others, when GitLab refuses their old token,
/// re-read the file and retry once). Any other runner must be dumped again by the caller.
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_AUTH (the token is already refused: expired or
/// reset), GLR_ERR_NETWORK, GLR_ERR_HTTP, GLR_ERR_IO (the runner file could not be written: the
/// new token is in use in this process, but the file still has the old one), GLR_ERR_TIMEOUT.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_reset_token(runner: *mut glr_runner) -> glr_status {
    guard(|| Ok(unsafe { runner_ref(runner) }?.inner.reset_token()?))
}

/// Sets the runner label `key` to `value` (NULL removes it): GitLab stores labels on the runner
/// manager (`info.labels`, GitLab 18+), sent from the next request on, persisted. Keys: 3 to 65
/// letters, digits, `.`, `_`, `-`, not starting with `.` or `-`; values: 1 to 256 of the same;
/// at most 32 labels (the official runner's rules).
///
/// Errors: GLR_ERR_NULL_ARGUMENT (`runner`, `key`), GLR_ERR_INVALID_UTF8, GLR_ERR_INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_set_label(
    runner: *mut glr_runner,
    key: *const c_char,
    value: *const c_char,
) -> glr_status {
    guard(|| {
        let runner = unsafe { runner_ref(runner) }?;
        let key = unsafe { str_arg(key, "key") }?;
        let value = unsafe { super::strings::opt_str_arg(value, "value") }?;
        Ok(runner.inner.set_label(key, value)?)
    })
}

/// This runner manager's `system_id` (`s_...` derived from the machine id, or `r_...` random),
/// created once and persisted. Borrowed: valid until glr_runner_free() (also after
/// glr_runner_set_system_id(), which returns new strings). NULL only if `runner` is NULL.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_system_id(runner: *const glr_runner) -> *const c_char {
    unsafe { runner_field(runner, ptr::null(), |r| Ok(r.strings.get(&r.inner.system_id()))) }
}

/// Sets this runner manager's `system_id` (the identity GitLab shows for each machine or process
/// using the runner): `system_id` of the form `s_` or `r_` followed by 12 letters or digits, or
/// NULL for a new random one. Several processes polling with copies of one runner file should
/// each have their own. Persisted by glr_runner_dump()/glr_runner_dumps(); sent from the next
/// request on.
///
/// Errors: GLR_ERR_NULL_ARGUMENT (`runner`), GLR_ERR_INVALID_UTF8, GLR_ERR_INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn glr_runner_set_system_id(runner: *mut glr_runner, system_id: *const c_char) -> glr_status {
    guard(|| {
        let runner = unsafe { runner_ref(runner) }?;
        let id = unsafe { super::strings::opt_str_arg(system_id, "system_id") }?;
        Ok(runner.inner.set_system_id(id)?)
    })
}

/// The description given at registration, or NULL. Borrowed: valid until glr_runner_free().
#[no_mangle]
pub unsafe extern "C" fn glr_runner_description(runner: *const glr_runner) -> *const c_char {
    unsafe { runner_str(runner, |d| d.registration.description.as_deref()) }
}

/// `info.name` as set at registration, or NULL. Borrowed: valid until glr_runner_free().
#[no_mangle]
pub unsafe extern "C" fn glr_runner_name(runner: *const glr_runner) -> *const c_char {
    unsafe { runner_str(runner, |d| d.identity.name.as_deref()) }
}

/// `info.version` as set at registration, or NULL. Borrowed: valid until glr_runner_free().
#[no_mangle]
pub unsafe extern "C" fn glr_runner_version(runner: *const glr_runner) -> *const c_char {
    unsafe { runner_str(runner, |d| d.identity.version.as_deref()) }
}

/// `info.revision` as set at registration, or NULL. Borrowed: valid until glr_runner_free().
#[no_mangle]
pub unsafe extern "C" fn glr_runner_revision(runner: *const glr_runner) -> *const c_char {
    unsafe { runner_str(runner, |d| d.identity.revision.as_deref()) }
}

/// `info.platform` as set at registration, or NULL. Borrowed: valid until glr_runner_free().
#[no_mangle]
pub unsafe extern "C" fn glr_runner_platform(runner: *const glr_runner) -> *const c_char {
    unsafe { runner_str(runner, |d| d.identity.platform.as_deref()) }
}

/// `info.architecture` as set at registration, or NULL. Borrowed: valid until glr_runner_free().
#[no_mangle]
pub unsafe extern "C" fn glr_runner_architecture(runner: *const glr_runner) -> *const c_char {
    unsafe { runner_str(runner, |d| d.identity.architecture.as_deref()) }
}

/// `info.executor` as set at registration, or NULL. Borrowed: valid until glr_runner_free().
#[no_mangle]
pub unsafe extern "C" fn glr_runner_executor(runner: *const glr_runner) -> *const c_char {
    unsafe { runner_str(runner, |d| d.identity.executor.as_deref()) }
}

/// The access level given at registration ("not_protected" or "ref_protected"), or NULL.
/// Borrowed: valid until glr_runner_free().
#[no_mangle]
pub unsafe extern "C" fn glr_runner_access_level(runner: *const glr_runner) -> *const c_char {
    unsafe { runner_str(runner, |d| d.registration.access_level.as_deref()) }
}

/// Whether the runner was registered locked: 1, 0, or -1 when unknown (not set at registration,
/// or `runner` is NULL).
#[no_mangle]
pub unsafe extern "C" fn glr_runner_locked(runner: *const glr_runner) -> i32 {
    unsafe { runner_field(runner, -1, |r| Ok(tristate(r.inner.fixed().registration.locked))) }
}

/// Whether the runner was registered active (not paused): 1, 0, or -1 when unknown (or `runner`
/// is NULL).
#[no_mangle]
pub unsafe extern "C" fn glr_runner_active(runner: *const glr_runner) -> i32 {
    unsafe {
        runner_field(runner, -1, |r| {
            let reg = &r.inner.fixed().registration;
            Ok(tristate(reg.active.or(reg.paused.map(|p| !p))))
        })
    }
}

/// Whether the runner was registered to run untagged jobs: 1, 0, or -1 when unknown (or `runner`
/// is NULL).
#[no_mangle]
pub unsafe extern "C" fn glr_runner_run_untagged(runner: *const glr_runner) -> i32 {
    unsafe { runner_field(runner, -1, |r| Ok(tristate(r.inner.fixed().registration.run_untagged))) }
}

/// The maximum job timeout given at registration in seconds, or -1 when unknown (or `runner` is
/// NULL).
#[no_mangle]
pub unsafe extern "C" fn glr_runner_maximum_timeout(runner: *const glr_runner) -> i64 {
    unsafe { runner_field(runner, -1, |r| Ok(r.inner.fixed().registration.maximum_timeout.unwrap_or(-1))) }
}

/// How many tags the runner was registered with (0 if `runner` is NULL).
#[no_mangle]
pub unsafe extern "C" fn glr_runner_tag_count(runner: *const glr_runner) -> usize {
    unsafe { runner_field(runner, 0, |r| Ok(r.inner.fixed().registration.tags.len())) }
}

/// Tag number `index` (0-based), or NULL when out of range (GLR_ERR_INVALID_ARGUMENT is then
/// the thread's last error). Borrowed: valid until glr_runner_free().
#[no_mangle]
pub unsafe extern "C" fn glr_runner_tag(runner: *const glr_runner, index: usize) -> *const c_char {
    unsafe {
        runner_field(runner, ptr::null(), |r| {
            let tags = &r.inner.fixed().registration.tags;
            let tag =
                tags.get(index).ok_or_else(|| invalid_arg("index", format!("{index} >= tag count {}", tags.len())))?;
            Ok(r.strings.get(tag))
        })
    }
}
