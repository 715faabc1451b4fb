//! The safe core: no C types, no raw pointers. The ffi layer is a thin shell around it.
#![forbid(unsafe_code)]

pub mod api;
pub mod artifacts;
pub mod blocks;
pub mod diag;
pub mod error;
pub mod events;
pub mod failure;
pub mod http;
pub mod info;
pub mod job;
pub mod json;
pub mod log_text;
pub mod mask;
pub mod model;
pub mod payload;
mod payload_text;
pub mod persist;
pub mod process;
pub mod runner;
pub mod sync;
pub mod system_id;
pub mod time;
mod timers;
pub mod trace;
pub mod uploader;
pub mod url;
