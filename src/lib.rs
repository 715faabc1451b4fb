//! gitlab_runner_api: a library for writing your own GitLab CI runners, with a C ABI.
//!
//! The API is the C one (`ffi`, whose doc comments become `include/gitlab_runner_api.h`). The
//! safe core behind it is private, so the compiler sees every unused item in it.
#![deny(unsafe_op_in_unsafe_fn)]

mod core;
pub mod ffi;
mod json_scan;
mod os;
mod scan;
#[cfg(test)]
mod test_rng;

/// Not API: the few core items this crate's own command-line tool, integration tests and
/// benchmark harness use directly. No stability promise; C users never see them.
#[doc(hidden)]
pub mod internal {
    pub use crate::core::http::{set_request_timeout, MAX_ATTEMPTS};
    pub use crate::core::info::info_json;
    pub use crate::core::job::Job;
    pub use crate::core::mask::Masker;
    pub use crate::core::model::RunnerData;
    pub use crate::core::payload::{JobInfo, VAR_MASKED};
    pub use crate::core::persist::{runner_from_str, runner_to_string, write_file_atomic};
    pub use crate::core::runner::{RegisterOptions, Runner};
}
