//! Handlers of the runner API (`/api/v4/...`), one file per resource.

pub(crate) mod artifacts;
pub(crate) mod common;
pub(crate) mod jobs;
pub(crate) mod runners;
pub(crate) mod trace;
