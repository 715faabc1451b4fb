//! `glr_register_options`: the options of `glr_runner_register` as an opaque builder, so new
//! options never change a struct layout (ABI-stable, easy from ctypes).

use super::guard::{guard, invalid_arg, FfiResult};
use super::handle::{free_handle, handle_ref, new_handle, out_arg};
use super::status::glr_status;
use super::strings::opt_str_arg;
use crate::core::runner::{RegisterOptions, ACCESS_LEVELS, MIN_MAXIMUM_TIMEOUT};
use crate::core::sync::lock;
use std::ffi::c_char;
use std::sync::Mutex;

/// Options for glr_runner_register(): create with glr_register_options_new(), set what you
/// need, pass to glr_runner_register(), free with glr_register_options_free(). Unset options are
/// not sent (GitLab's defaults apply). Safe to use from several threads (internally locked).
pub struct glr_register_options {
    pub(crate) inner: Mutex<RegisterOptions>,
}

/// Creates an empty set of registration options.
///
/// On success `*out` is a new handle, freed with glr_register_options_free().
/// Errors: GLR_ERR_NULL_ARGUMENT if `out` is NULL.
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_new(out: *mut *mut glr_register_options) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        out.write(new_handle(glr_register_options { inner: Mutex::new(RegisterOptions::default()) }));
        Ok(())
    })
}

/// Frees options from glr_register_options_new(). NULL is a no-op. Must not be called twice.
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_free(options: *mut glr_register_options) {
    unsafe { free_handle(options) }
}

/// # Safety
/// `options` is NULL or a live handle.
unsafe fn set(options: *mut glr_register_options, f: impl FnOnce(&mut RegisterOptions) -> FfiResult<()>) -> glr_status {
    guard(|| {
        let options = unsafe { handle_ref(options, "options") }?;
        f(&mut lock(&options.inner))
    })
}

fn flag(value: i32, name: &str) -> FfiResult<bool> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(invalid_arg(name, format!("must be 0 or 1, not {other}"))),
    }
}

/// # Safety
/// As [`set`]; `value` is NULL or a NUL-terminated string.
unsafe fn set_string(
    options: *mut glr_register_options,
    value: *const c_char,
    assign: impl FnOnce(&mut RegisterOptions, Option<String>),
) -> glr_status {
    unsafe {
        set(options, |o| {
            let v = opt_str_arg(value, "value")?.map(str::to_string);
            assign(o, v);
            Ok(())
        })
    }
}

/// Sets the runner's description (shown in GitLab).
///
/// `value` is copied; NULL unsets the option. Errors: GLR_ERR_NULL_ARGUMENT (`options`),
/// GLR_ERR_INVALID_UTF8.
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_set_description(
    options: *mut glr_register_options,
    value: *const c_char,
) -> glr_status {
    unsafe { set_string(options, value, |o, v| o.registration.description = v) }
}

/// Sets the maintenance note (at most 1024 characters; checked at registration).
///
/// `value` is copied; NULL unsets the option. Errors: GLR_ERR_NULL_ARGUMENT (`options`),
/// GLR_ERR_INVALID_UTF8.
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_set_maintenance_note(
    options: *mut glr_register_options,
    value: *const c_char,
) -> glr_status {
    unsafe { set_string(options, value, |o, v| o.registration.maintenance_note = v) }
}

/// Sets `info.name`, the runner software's name (default sent: "gitlab_runner_api").
///
/// `value` is copied; NULL unsets the option. Errors: GLR_ERR_NULL_ARGUMENT (`options`),
/// GLR_ERR_INVALID_UTF8.
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_set_name(
    options: *mut glr_register_options,
    value: *const c_char,
) -> glr_status {
    unsafe { set_string(options, value, |o, v| o.identity.name = v) }
}

/// Sets `info.version` (default sent: this library's version).
///
/// `value` is copied; NULL unsets the option. Errors: GLR_ERR_NULL_ARGUMENT (`options`),
/// GLR_ERR_INVALID_UTF8.
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_set_version(
    options: *mut glr_register_options,
    value: *const c_char,
) -> glr_status {
    unsafe { set_string(options, value, |o, v| o.identity.version = v) }
}

/// Sets `info.revision`.
///
/// `value` is copied; NULL unsets the option. Errors: GLR_ERR_NULL_ARGUMENT (`options`),
/// GLR_ERR_INVALID_UTF8.
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_set_revision(
    options: *mut glr_register_options,
    value: *const c_char,
) -> glr_status {
    unsafe { set_string(options, value, |o, v| o.identity.revision = v) }
}

/// Sets `info.platform` (default sent: the OS, e.g. "linux").
///
/// `value` is copied; NULL unsets the option. Errors: GLR_ERR_NULL_ARGUMENT (`options`),
/// GLR_ERR_INVALID_UTF8.
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_set_platform(
    options: *mut glr_register_options,
    value: *const c_char,
) -> glr_status {
    unsafe { set_string(options, value, |o, v| o.identity.platform = v) }
}

/// Sets `info.architecture` (default sent: e.g. "amd64").
///
/// `value` is copied; NULL unsets the option. Errors: GLR_ERR_NULL_ARGUMENT (`options`),
/// GLR_ERR_INVALID_UTF8.
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_set_architecture(
    options: *mut glr_register_options,
    value: *const c_char,
) -> glr_status {
    unsafe { set_string(options, value, |o, v| o.identity.architecture = v) }
}

/// Sets `info.executor`, the name of your executor (e.g. "custom", "slurm").
///
/// `value` is copied; NULL unsets the option. Errors: GLR_ERR_NULL_ARGUMENT (`options`),
/// GLR_ERR_INVALID_UTF8.
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_set_executor(
    options: *mut glr_register_options,
    value: *const c_char,
) -> glr_status {
    unsafe { set_string(options, value, |o, v| o.identity.executor = v) }
}

/// Sets the access level: "not_protected" or "ref_protected" (sent top-level, as GitLab expects).
///
/// `value` is copied; NULL unsets it. Errors: GLR_ERR_NULL_ARGUMENT (`options`),
/// GLR_ERR_INVALID_UTF8, GLR_ERR_INVALID_ARGUMENT for any other value.
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_set_access_level(
    options: *mut glr_register_options,
    value: *const c_char,
) -> glr_status {
    unsafe {
        set(options, |o| {
            let v = opt_str_arg(value, "value")?;
            if let Some(level) = v {
                if !ACCESS_LEVELS.contains(&level) {
                    return Err(invalid_arg(
                        "access_level",
                        format!("must be one of {ACCESS_LEVELS:?}, not {level:?}"),
                    ));
                }
            }
            o.registration.access_level = v.map(str::to_string);
            Ok(())
        })
    }
}

/// # Safety
/// As [`set`].
unsafe fn set_flag(
    options: *mut glr_register_options,
    value: i32,
    name: &str,
    assign: impl FnOnce(&mut RegisterOptions, Option<bool>),
) -> glr_status {
    unsafe {
        set(options, |o| {
            assign(o, Some(flag(value, name)?));
            Ok(())
        })
    }
}

/// Whether the runner takes jobs (the Python package's `active`; sent as `paused = !active`).
///
/// `value` is 1 or 0. Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_ARGUMENT (other values).
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_set_active(options: *mut glr_register_options, value: i32) -> glr_status {
    unsafe { set_flag(options, value, "active", |o, v| o.registration.active = v) }
}

/// Whether the runner is paused (takes no jobs).
///
/// `value` is 1 or 0. Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_ARGUMENT (other values).
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_set_paused(options: *mut glr_register_options, value: i32) -> glr_status {
    unsafe { set_flag(options, value, "paused", |o, v| o.registration.paused = v) }
}

/// Whether the runner is locked to its current project.
///
/// `value` is 1 or 0. Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_ARGUMENT (other values).
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_set_locked(options: *mut glr_register_options, value: i32) -> glr_status {
    unsafe { set_flag(options, value, "locked", |o, v| o.registration.locked = v) }
}

/// Whether the runner takes jobs without tags.
///
/// `value` is 1 or 0. Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_ARGUMENT (other values).
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_set_run_untagged(
    options: *mut glr_register_options,
    value: i32,
) -> glr_status {
    unsafe { set_flag(options, value, "run_untagged", |o, v| o.registration.run_untagged = v) }
}

/// Sets the maximum job timeout in seconds (at least 600).
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_ARGUMENT for a value below 600 (GitLab's own
/// minimum: ten minutes).
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_set_maximum_timeout(
    options: *mut glr_register_options,
    seconds: i64,
) -> glr_status {
    unsafe {
        set(options, |o| {
            if seconds < MIN_MAXIMUM_TIMEOUT {
                return Err(invalid_arg(
                    "maximum_timeout",
                    format!("must be at least {MIN_MAXIMUM_TIMEOUT} seconds, as GitLab requires (not {seconds})"),
                ));
            }
            o.registration.maximum_timeout = Some(seconds);
            Ok(())
        })
    }
}

/// Adds a tag. Tags must not be empty or contain a comma (GitLab receives them comma-separated).
///
/// `tag` is copied. Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_UTF8, GLR_ERR_INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn glr_register_options_add_tag(
    options: *mut glr_register_options,
    tag: *const c_char,
) -> glr_status {
    unsafe {
        set(options, |o| {
            let tag = super::strings::str_arg(tag, "tag")?;
            if tag.contains(',') || tag.trim().is_empty() {
                return Err(invalid_arg("tag", format!("{tag:?} must not be empty or contain a comma")));
            }
            o.registration.tags.push(tag.to_string());
            Ok(())
        })
    }
}
