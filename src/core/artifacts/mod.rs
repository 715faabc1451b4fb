//! Job artifacts, as the official runner handles them (protocol §5):
//! - [`collect`]: the job's own `artifacts:` entries applied to a working directory (`when`,
//!   `paths` globs with `**`, `exclude`, `untracked`, `name`, `expire_in`), each built into the
//!   file GitLab expects for its type (a zip archive, a gzip stream of report files, or a raw
//!   file) in a temporary directory;
//! - [`download`]: a dependency's archive to a file (the transfer is `api::download`);
//! - [`extract`]: unzipping a downloaded archive without writing outside the destination.
//!
//! The upload of an [`ArtifactFile`] is `api::upload`, called by the job before its final update.

mod archive;
mod collect;
mod download;
mod extract;
mod glob;

pub use crate::core::model::ArtifactFile;
pub use collect::{collect, Collected};
pub use download::download;
pub use extract::extract;

use super::error::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// A temporary directory holding collected archives, removed with the last clone of the
/// [`ArtifactSet`] that holds it (so an upload in progress keeps its files even if the set it
/// was copied from is dropped).
#[derive(Clone, Debug)]
pub struct Scratch(Arc<tempfile::TempDir>);

impl Scratch {
    /// A new private (0700) directory under the system's temporary directory (`TMPDIR`).
    pub fn new() -> Result<Scratch> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("glr-artifacts-");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o700));
        }
        builder
            .tempdir()
            .map(|d| Scratch(Arc::new(d)))
            .map_err(|e| Error::io(format!("cannot create a temporary directory for artifacts: {e}")))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl PartialEq for Scratch {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Scratch {}

/// The artifacts of one job, uploaded in order before the final update.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArtifactSet {
    pub files: Vec<ArtifactFile>,
    /// Where collected files live; kept as long as the set (or a copy of it) lives.
    pub scratch: Vec<Scratch>,
}

impl ArtifactSet {
    /// Appends what [`collect`] built (and keeps its temporary directory alive).
    pub fn add_collected(&mut self, collected: Collected) {
        self.files.extend(collected.files);
        self.scratch.push(collected.scratch);
    }
}
