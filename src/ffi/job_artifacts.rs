//! The artifacts of a job: its own `artifacts:` collected from a working directory into a
//! `glr_artifacts` list, and the artifacts of the jobs it depends on (download and safe
//! extraction). Here rather than in `job` or `artifacts` because these functions use both
//! handles (and `job` already uses `artifacts`, for glr_job_set_success()).

use super::artifacts::glr_artifacts;
use super::guard::{guard, guard_result, invalid_arg, FfiResult};
use super::handle::{handle_ref, out_arg};
use super::job::{glr_job, job_ref};
use super::status::glr_status;
use super::strings::{owned_c_string, str_arg};
use crate::core::artifacts;
use crate::core::payload::Dependency;
use crate::core::sync::lock;
use std::ffi::c_char;
use std::path::Path;
use std::ptr;

/// Collects the job's own artifacts, as the official GitLab runner does, from `workdir` (where
/// the job ran) and appends the files built to `artifacts`. For each entry of the job's
/// `artifacts:` (see glr_job_payload()):
/// - `when`: `on_success` (the default) is taken when `job_succeeded` is non-zero, `on_failure`
///   when it is 0, `always` in both cases;
/// - `paths`: paths or glob patterns relative to `workdir` (`*`, `?`, `[a-z]`, `{a,b}`, and `**`
///   for any number of directories); a matched directory is taken with everything below it;
///   `$VAR`/`${VAR}` are expanded from the job's variables (also in `name` and `exclude`);
/// - `exclude`: patterns tested against every collected path (a pattern whose last segment is
///   `**` drops a directory and everything below it);
/// - `untracked: true`: adds every file `git ls-files -o` lists in `workdir` (git's ignore rules
///   are not applied, as with the official runner); nothing, with a warning, when `workdir` is not
///   a git work tree;
/// - `artifact_format`: `zip` (or none) builds a zip archive (symbolic links kept as links),
///   `gzip` a gzip stream with one member per file (GitLab's report types: junit, dotenv,
///   cobertura...), `raw` takes the single matched file as it is;
/// - `name` (default "artifacts") gives the file name GitLab stores (`<name>.zip`, `<name>.gz`,
///   or `<name>`), `artifact_type` and `expire_in` are sent with the upload;
/// - the job variable `ARTIFACT_COMPRESSION_LEVEL` (fastest, fast, default, slow, slowest) sets
///   the compression, as with the official runner (fastest stores without compressing).
///
/// An entry that matches nothing is skipped with a warning to the log callback (as the official
/// runner does), so GLR_OK with no file added is possible (see glr_artifacts_count()). Files are
/// built on disk, under the system's temporary directory (TMPDIR), and removed by
/// glr_artifacts_free(). On error nothing is added.
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_UTF8, GLR_ERR_INVALID_ARGUMENT (a path or
/// pattern leaving `workdir`: `..`, an absolute path elsewhere, a symbolic link pointing outside
/// or a directory reached through one; a malformed pattern; more than one file for a `raw`
/// artifact; an `artifact_format` other than zip, gzip or raw; `workdir` not a directory),
/// GLR_ERR_IO (`workdir` missing, unreadable files, a full disk, or `untracked: true` without a
/// usable `git` program).
#[no_mangle]
pub unsafe extern "C" fn glr_artifacts_collect(
    artifacts: *mut glr_artifacts,
    job: *const glr_job,
    workdir: *const c_char,
    job_succeeded: i32,
) -> glr_status {
    guard(|| {
        let artifacts = unsafe { handle_ref(artifacts, "artifacts") }?;
        let job = unsafe { job_ref(job) }?;
        let workdir = unsafe { str_arg(workdir, "workdir") }?;
        let collected =
            artifacts::collect(job.inner.payload(), &job.inner.info(), Path::new(workdir), job_succeeded != 0)?;
        lock(&artifacts.inner).add_collected(collected);
        Ok(())
    })
}

/// # Safety
/// `job` is NULL or a live handle.
unsafe fn dependency(job: *const glr_job, index: usize) -> FfiResult<Dependency> {
    let job = unsafe { job_ref(job) }?;
    let info = job.inner.info();
    let deps = &info.dependencies;
    deps.get(index).cloned().ok_or_else(|| invalid_arg("index", format!("{index} >= dependency count {}", deps.len())))
}

/// The file name of dependency `index`'s artifacts archive, as GitLab reported it (e.g.
/// "artifacts.zip"). On success `*out` is a new string freed with glr_string_free(), or NULL when
/// GitLab sent none (the dependency has no artifacts, or they expired). (An owned string rather
/// than a borrowed one, unlike glr_job_dependency_name().)
///
/// Errors: GLR_ERR_NULL_ARGUMENT (`job`, `out`), GLR_ERR_INVALID_ARGUMENT (`index` out of range).
#[no_mangle]
pub unsafe extern "C" fn glr_job_dependency_artifacts_filename(
    job: *const glr_job,
    index: usize,
    out: *mut *mut c_char,
) -> glr_status {
    guard(|| {
        let out = unsafe { out_arg(out, "out") }?;
        let dep = unsafe { dependency(job, index) }?;
        out.write(dep.artifacts_filename.as_deref().map_or(ptr::null_mut(), owned_c_string));
        Ok(())
    })
}

/// The size in bytes of dependency `index`'s artifacts archive, as GitLab reported it; -1 when
/// unknown (GitLab sent none), and -1 with the error recorded (glr_last_error_code():
/// GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_ARGUMENT for `index` out of range) on bad arguments.
#[no_mangle]
pub unsafe extern "C" fn glr_job_dependency_artifacts_size(job: *const glr_job, index: usize) -> i64 {
    guard_result(-1, || Ok(unsafe { dependency(job, index) }?.artifacts_size.unwrap_or(-1)))
}

/// Downloads the artifacts archive (a zip) of dependency `index` (0 <= index <
/// glr_job_dependency_count()) to the file `dest_path`, replacing it. Like the official runner:
/// `GET /api/v4/jobs/<dependency id>/artifacts` with the dependency's token (the job's own when
/// GitLab gave none), asking GitLab for a direct download from its object storage first; redirects
/// are followed, and the token is never sent to another host than GitLab's. The body is streamed
/// to a temporary file in `dest_path`'s directory (memory does not grow with the size), which is
/// renamed to `dest_path` (mode 0600) only once complete: on error `dest_path` is untouched.
/// Network errors and unexpected statuses are retried (3 attempts in all). Blocks until done.
/// Unpack the archive with glr_extract_artifacts().
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_UTF8, GLR_ERR_INVALID_ARGUMENT (`index` out of
/// range, `dest_path` is a directory), GLR_ERR_AUTH (GitLab answered 401/403: the dependency's
/// token was rejected, e.g. this job is no longer running), GLR_ERR_NOT_FOUND (404: the
/// dependency has no artifacts, or they expired), GLR_ERR_NETWORK, GLR_ERR_HTTP (after the
/// retries), GLR_ERR_IO (the file could not be written).
#[no_mangle]
pub unsafe extern "C" fn glr_job_download_artifacts(
    job: *mut glr_job,
    index: usize,
    dest_path: *const c_char,
) -> glr_status {
    guard(|| {
        let handle = unsafe { job_ref(job) }?;
        let dest = unsafe { str_arg(dest_path, "dest_path") }?;
        handle.inner.download_artifacts(index, Path::new(dest))?;
        Ok(())
    })
}

/// Extracts the zip archive `zip_path` (e.g. from glr_job_download_artifacts()) into the
/// directory `dest_dir` (created if missing; existing files of the same names are replaced),
/// keeping permissions. Nothing is ever written outside `dest_dir`: every entry is checked
/// first, and the whole archive is refused when one entry would escape: a name with a `..`
/// component or an absolute name ("zip slip"), an entry below a symbolic link of the archive, or
/// a symbolic link that could point outside `dest_dir` (an absolute target, or `..` anywhere but
/// at the start of the target or climbing above `dest_dir`). Symbolic links that stay inside are
/// created, after all files. A symbolic link already present in `dest_dir` is never written
/// through: a path that needs one as a directory is refused. Devices and fifos are skipped.
///
/// Errors: GLR_ERR_NULL_ARGUMENT, GLR_ERR_INVALID_UTF8, GLR_ERR_INVALID_ARGUMENT (an escaping
/// entry, nothing written; or a symbolic link in `dest_dir` on an entry's path), GLR_ERR_PARSE (not
/// a zip archive, or a damaged one: entries before the damage may have been written), GLR_ERR_IO
/// (`zip_path` unreadable, files that cannot be written).
#[no_mangle]
pub unsafe extern "C" fn glr_extract_artifacts(zip_path: *const c_char, dest_dir: *const c_char) -> glr_status {
    guard(|| {
        let zip_path = unsafe { str_arg(zip_path, "zip_path") }?;
        let dest_dir = unsafe { str_arg(dest_dir, "dest_dir") }?;
        artifacts::extract(Path::new(zip_path), Path::new(dest_dir))?;
        Ok(())
    })
}
