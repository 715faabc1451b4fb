//! Tests of the test server itself over real HTTP with a plain client (reqwest), not the library.
//! One test binary (modules below) to keep link time down.

mod artifacts;
mod cli;
mod clocks;
mod common;
mod control;
mod faults;
mod jobs;
mod load;
mod redaction;
mod runners;
mod tokens;
mod trace;
