//! A dependency's artifacts downloaded to a file: the archive is streamed by `api::download`
//! into a temporary file beside the destination and renamed over it once complete, so the
//! destination never holds half a download.

use crate::core::api;
use crate::core::diag;
use crate::core::error::{Error, Result};
use crate::core::http::Call;
use crate::core::payload::JobInfo;
use std::path::Path;

/// Downloads the artifacts archive of dependency `index` of the job `info` (taken from GitLab
/// at `api_url`) to `dest`; returns its size. The dependency's own token is used, the job's
/// token when GitLab sent none.
///
/// Errors: `InvalidArgument` (no such dependency, `dest` is a directory), `Auth` (401/403 from
/// GitLab: the dependency token was rejected), `NotFound` (404: the dependency has no
/// artifacts, or they expired), `Network`/`Http` after 3 attempts, `Io` (writing `dest`).
pub fn download(api_url: &str, info: &JobInfo, index: usize, dest: &Path, call: &Call) -> Result<u64> {
    let deps = &info.dependencies;
    let dep = deps.get(index).ok_or_else(|| {
        Error::invalid(format!("dependency index {index} is out of range (the job has {} dependencies)", deps.len()))
    })?;
    let token = dep.token.as_deref().filter(|t| !t.is_empty()).unwrap_or(&info.token);
    if dest.is_dir() {
        return Err(Error::invalid(format!("dest_path {} is a directory, not a file name", dest.display())));
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let api::download::Downloaded { file, size, label } =
        api::download::download(api_url, dep.id, dep.name.as_deref(), token, dir, call)?;
    file.persist(dest).map_err(|e| Error::io(format!("{label}: renaming onto {}: {}", dest.display(), e.error)))?;
    diag::info(&format!("{label}: downloaded {size} bytes to {}", dest.display()));
    Ok(size)
}
