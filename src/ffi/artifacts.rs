//! `glr_artifacts`: the files to upload with glr_job_set_success()/glr_job_set_failed().
//! Filling one from a job (its own `artifacts:`) and the job's dependencies are in
//! `job_artifacts`, which uses both handles.

use super::guard::{guard, guard_result, FfiResult};
use super::handle::{free_handle, handle_ref, new_handle, out_arg};
use super::status::glr_status;
use super::strings::{opt_str_arg, str_arg};
use crate::core::artifacts::{ArtifactFile, ArtifactSet};
use crate::core::sync::lock;
use std::ffi::c_char;
use std::sync::Mutex;

/// A list of artifact files for one job. Create with glr_artifacts_new(), fill with
/// glr_artifacts_add_file() and/or glr_artifacts_collect(), pass to glr_job_set_success() or
/// glr_job_set_failed() (which only read it, so a failed upload can be retried with the same
/// list), free with glr_artifacts_free(). Files built by glr_artifacts_collect() live in a private
/// temporary directory that is removed when the list is freed. Safe to use from several threads
/// (internally locked).
pub struct glr_artifacts {
    pub(crate) inner: Mutex<ArtifactSet>,
}

impl glr_artifacts {
    pub(crate) fn snapshot(&self) -> ArtifactSet {
        lock(&self.inner).clone()
    }
}

/// Creates an empty artifact list. On success `*out` is a new handle, freed with
/// glr_artifacts_free(). Errors: GLR_ERR_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn glr_artifacts_new(out: *mut *mut glr_artifacts) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        out.write(new_handle(glr_artifacts { inner: Mutex::new(ArtifactSet::default()) }));
        Ok(())
    })
}

/// Frees an artifact list and removes the temporary files glr_artifacts_collect() built for it
/// (an upload running on another thread keeps its own copy until it ends). NULL is a no-op. Must
/// not be called twice.
#[no_mangle]
pub unsafe extern "C" fn glr_artifacts_free(artifacts: *mut glr_artifacts) {
    unsafe { free_handle(artifacts) }
}

/// Adds a file the caller prepared (e.g. a zip it built). `path` is the local file (read when
/// the job is finished, streamed); `name` the file name GitLab stores (e.g. "artifacts.zip");
/// `artifact_type` NULL means "archive", `artifact_format` NULL means "zip" (GitLab's pairs:
/// archive/zip, junit and other reports/gzip, most scanner reports/raw); `expire_in` NULL keeps
/// the project's default (e.g. "1 week"). Strings are copied.
///
/// Errors: GLR_ERR_NULL_ARGUMENT (`artifacts`, `path`, `name`), GLR_ERR_INVALID_UTF8,
/// GLR_ERR_INVALID_ARGUMENT (empty name, or a format other than zip/gzip/raw),
/// GLR_ERR_IO (`path` is not a readable file).
#[no_mangle]
pub unsafe extern "C" fn glr_artifacts_add_file(
    artifacts: *mut glr_artifacts,
    path: *const c_char,
    name: *const c_char,
    artifact_type: *const c_char,
    artifact_format: *const c_char,
    expire_in: *const c_char,
) -> glr_status {
    guard(|| {
        let artifacts = unsafe { handle_ref(artifacts, "artifacts") }?;
        let file = ArtifactFile {
            path: unsafe { str_arg(path, "path") }?.into(),
            name: unsafe { str_arg(name, "name") }?.to_string(),
            artifact_type: unsafe { opt_str_arg(artifact_type, "artifact_type") }?.unwrap_or("archive").to_string(),
            artifact_format: unsafe { opt_str_arg(artifact_format, "artifact_format") }?.unwrap_or("zip").to_string(),
            expire_in: unsafe { opt_str_arg(expire_in, "expire_in") }?.map(str::to_string),
        };
        check(&file)?;
        lock(&artifacts.inner).files.push(file);
        Ok(())
    })
}

fn check(file: &ArtifactFile) -> FfiResult<()> {
    use super::guard::invalid_arg;
    if file.name.trim().is_empty() || file.name.contains('/') {
        return Err(invalid_arg("name", "must be a plain, non-empty file name"));
    }
    if !["zip", "gzip", "raw"].contains(&file.artifact_format.as_str()) {
        return Err(invalid_arg("artifact_format", format!("{:?} is not zip, gzip or raw", file.artifact_format)));
    }
    if file.artifact_type.trim().is_empty() {
        return Err(invalid_arg("artifact_type", "is empty"));
    }
    match std::fs::metadata(&file.path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(crate::core::error::Error::io(format!("{} is not a regular file", file.path.display())).into()),
        Err(e) => Err(crate::core::error::Error::io(format!("{}: {e}", file.path.display())).into()),
    }
}

/// How many files the list holds (0 if `artifacts` is NULL, with GLR_ERR_NULL_ARGUMENT recorded).
#[no_mangle]
pub unsafe extern "C" fn glr_artifacts_count(artifacts: *const glr_artifacts) -> usize {
    guard_result(0, || Ok(lock(&unsafe { handle_ref(artifacts, "artifacts") }?.inner).files.len()))
}
