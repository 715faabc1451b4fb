//! The library driven through its exported C functions (linked as the rlib, called exactly as a C
//! program calls them: C strings in, statuses and out-parameters back). Every benchmark of our
//! implementation goes through these, so the figures include the C boundary (argument checks,
//! panic guard, last-error slot).

use gitlab_runner_api::ffi::guard::glr_last_error_message;
use gitlab_runner_api::ffi::job::*;
use gitlab_runner_api::ffi::runner::*;
use gitlab_runner_api::ffi::status::GLR_OK;
use gitlab_runner_api::ffi::strings::glr_string_free;
use std::ffi::{c_char, CStr, CString};
use std::ptr;

pub type Result<T> = std::result::Result<T, String>;

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL in benchmark strings")
}

/// The calling thread's last error message.
pub fn last_error() -> String {
    let need = unsafe { glr_last_error_message(ptr::null_mut(), 0) };
    let mut buf = vec![0u8; need + 1];
    unsafe { glr_last_error_message(buf.as_mut_ptr().cast(), buf.len()) };
    CStr::from_bytes_until_nul(&buf).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn check(what: &str, status: i32) -> Result<()> {
    if status == GLR_OK {
        Ok(())
    } else {
        Err(format!("{what}: status {status}: {}", last_error()))
    }
}

fn take_string(p: *mut c_char) -> String {
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    unsafe { glr_string_free(p) };
    s
}

/// A runner handle (freed on drop).
pub struct Runner(*mut glr_runner);
// The C API allows a handle to be used from any thread.
unsafe impl Send for Runner {}
unsafe impl Sync for Runner {}

impl Runner {
    pub fn register(url: &str, registration_token: &str) -> Result<Runner> {
        let (u, t) = (c(url), c(registration_token));
        let mut out = ptr::null_mut();
        check("glr_runner_register", unsafe { glr_runner_register(u.as_ptr(), t.as_ptr(), ptr::null(), &mut out) })?;
        Ok(Runner(out))
    }

    pub fn from_token(url: &str, token: &str) -> Result<Runner> {
        let (u, t) = (c(url), c(token));
        let mut out = ptr::null_mut();
        check("glr_runner_from_token", unsafe { glr_runner_from_token(u.as_ptr(), t.as_ptr(), &mut out) })?;
        Ok(Runner(out))
    }

    pub fn loads(data: &str) -> Result<Runner> {
        let d = c(data);
        let mut out = ptr::null_mut();
        check("glr_runner_loads", unsafe { glr_runner_loads(d.as_ptr(), &mut out) })?;
        Ok(Runner(out))
    }

    pub fn dumps(&self) -> Result<String> {
        let mut out = ptr::null_mut();
        check("glr_runner_dumps", unsafe { glr_runner_dumps(self.0, &mut out) })?;
        Ok(take_string(out))
    }

    /// One job request; None when GitLab has no job now.
    pub fn request_job(&self) -> Result<Option<Job>> {
        let mut out = ptr::null_mut();
        check("glr_runner_request_job", unsafe { glr_runner_request_job(self.0, &mut out) })?;
        Ok((!out.is_null()).then_some(Job(out)))
    }

    /// Requests until a job comes (the queue is filled before; a bounded number of tries).
    pub fn take_job(&self) -> Result<Job> {
        for _ in 0..50 {
            if let Some(j) = self.request_job()? {
                return Ok(j);
            }
        }
        Err("no job received after 50 requests".into())
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        unsafe { glr_runner_free(self.0) }
    }
}

/// A job handle (freed on drop).
pub struct Job(*mut glr_job);
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

impl Job {
    pub fn id(&self) -> i64 {
        unsafe { glr_job_id(self.0) }
    }

    #[inline]
    pub fn append(&self, data: &[u8]) -> Result<()> {
        check("glr_job_log_append", unsafe { glr_job_log_append(self.0, data.as_ptr().cast(), data.len()) })
    }

    /// The bare call, for latency loops (the status is checked by the caller).
    #[inline]
    pub fn append_raw(&self, data: &[u8]) -> i32 {
        unsafe { glr_job_log_append(self.0, data.as_ptr().cast(), data.len()) }
    }

    pub fn flush(&self) -> Result<()> {
        check("glr_job_log_flush", unsafe { glr_job_log_flush(self.0) })
    }

    pub fn set_success(&self) -> Result<()> {
        check("glr_job_set_success", unsafe { glr_job_set_success(self.0, ptr::null()) })
    }

    /// The job token (borrowed from the handle, copied here).
    pub fn token(&self) -> String {
        let p = unsafe { glr_job_token(self.0) };
        if p.is_null() {
            return String::new();
        }
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// The raw payload GitLab sent.
    pub fn payload(&self) -> Result<String> {
        let mut out = ptr::null_mut();
        check("glr_job_payload", unsafe { glr_job_payload(self.0, &mut out) })?;
        Ok(take_string(out))
    }

    pub fn dumps(&self) -> Result<String> {
        let mut out = ptr::null_mut();
        check("glr_job_dumps", unsafe { glr_job_dumps(self.0, &mut out) })?;
        Ok(take_string(out))
    }

    /// `glr_job_dumps` keeping the C string (for loads loops: no conversion in the timed part).
    pub fn dumps_c(&self) -> Result<CString> {
        let mut out = ptr::null_mut();
        check("glr_job_dumps", unsafe { glr_job_dumps(self.0, &mut out) })?;
        let s = unsafe { CStr::from_ptr(out) }.to_owned();
        unsafe { glr_string_free(out) };
        Ok(s)
    }

    /// One `glr_job_dumps` whose string is freed at once (what a timed loop measures).
    pub fn dumps_discard(&self) -> Result<usize> {
        let mut out = ptr::null_mut();
        check("glr_job_dumps", unsafe { glr_job_dumps(self.0, &mut out) })?;
        let len = unsafe { CStr::from_ptr(out) }.to_bytes().len();
        unsafe { glr_string_free(out) };
        Ok(len)
    }

    /// Hands the job over (the dump is dropped): the handle becomes a watcher.
    pub fn hand_over(&self) -> Result<()> {
        let mut out = ptr::null_mut();
        check("glr_job_hand_over_dumps", unsafe { glr_job_hand_over_dumps(self.0, &mut out) })?;
        unsafe { glr_string_free(out) };
        Ok(())
    }

    pub fn state(&self) -> i32 {
        unsafe { glr_job_state(self.0) }
    }

    pub fn set_keepalive_interval(&self, seconds: i64) -> Result<()> {
        check("glr_job_set_keepalive_interval", unsafe { glr_job_set_keepalive_interval(self.0, seconds) })
    }

    pub fn loads_c(data: &CStr) -> Result<Job> {
        let mut out = ptr::null_mut();
        check("glr_job_loads", unsafe { glr_job_loads(data.as_ptr(), &mut out) })?;
        Ok(Job(out))
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        unsafe { glr_job_free(self.0) }
    }
}
