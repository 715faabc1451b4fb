//! The C ABI: `extern "C"` functions only, each a thin shell around one call into the core.
//!
//! Every exported function follows the same shape (see `guard`, `handle`, `strings`):
//! guard (panic boundary + last error) -> argument checks (NULL, UTF-8, out-params first) ->
//! one call into `crate::core` -> map the result (`core::error::Error` -> `glr_status`).
//! Items here are named in C style because cbindgen turns this module, and only this module,
//! into `include/gitlab_runner_api.h`; their doc comments are the header's documentation, in
//! the order of the module declarations below (keep them in reading order, not sorted).
#![allow(non_camel_case_types)]
// One safety contract covers every exported function and is stated once in the header and the
// README: pointer arguments are NULL or valid (handles live, strings NUL-terminated, buffers as
// long as their length argument). Repeating it on 100 functions would drown their real docs.
#![allow(clippy::missing_safety_doc)]

pub mod version;

pub mod status;

pub(crate) mod fork;

pub(crate) mod text;

pub(crate) mod handle_errors;

pub mod guard;

pub mod strings;

pub mod handle;

pub mod diagnostics;

pub mod options;

pub mod runner;

pub mod job;

pub mod artifacts;

pub mod job_artifacts;

pub mod lifecycle;
