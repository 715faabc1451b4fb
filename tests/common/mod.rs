//! Support shared by the integration tests: each test file that needs it says `mod common;`.
//!
//! - the crate root (from [`ffi`]): driving the exported C functions from Rust, as a C program
//!   would (`use common::*;`);
//! - [`build`]: this build's cdylib, header and compilers, and compiling C/C++ programs against
//!   them (the examples, the C++ wrapper's test, programs written by a test);
//! - [`process`]: child processes with a deadline and their output, and a test's body run in
//!   another process;
//! - [`trace`]: what the test server stored as a job's log;
//! - [`requests`]: the test server's request log in time and order (the server's clock, a
//!   job's requests, faults not yet taken);
//! - [`deadline`]: hard time limits for code that might deadlock;
//! - [`callbacks`]: Rust closures as the library's cancel callback, a gate to hold one at;
//! - [`silent`]: a server that never answers, and handles moved to another URL;
//! - [`scripted_http`]: a server of canned answers, for headers the test server never sends.
//!
//! Every test binary compiles all of it and uses a part, hence `allow(dead_code)`.
#![allow(dead_code)]

pub mod build;
pub mod callbacks;
pub mod deadline;
mod ffi;
pub mod process;
pub mod requests;
pub mod scripted_http;
pub mod silent;
pub mod trace;

// Not every test binary uses these either.
#[allow(unused_imports)]
pub use ffi::*;
