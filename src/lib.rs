//! gitlab_runner_api: a library for writing your own GitLab CI runners, with a C ABI.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod core;
pub mod ffi;
