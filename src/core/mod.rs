//! The safe core: no C types, no raw pointers. The ffi layer is a thin shell around it.
#![forbid(unsafe_code)]

pub mod error;
pub mod model;
pub mod persist;
pub mod system_id;
