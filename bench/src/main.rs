//! The benchmark harness (design §9): `cargo run --release -p bench` runs every scenario through
//! our C API and through the Python package gitlab-runner-api 1.0.4 against the same test server
//! and writes BENCHMARKS.md. See BENCHMARKS.md for what is measured and how.
//!
//! ```text
//! bench [--quick] [--no-python] [--out FILE]   the harness (default: every scenario, BENCHMARKS.md)
//! bench child MODE JSON                         one scenario of our implementation (internal)
//! bench serve [OPTIONS]                         the test server, when glr-testserver is not built
//! ```

mod alloc;
mod capi;
mod content;
mod harness;
mod instr;
mod ours;
mod proc;
mod python;
mod report;
mod server;
mod stats;

use std::path::PathBuf;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("child") => child(&args[1..]),
        Some("serve") => server::serve(&args[1..]),
        _ => harness_main(&args),
    };
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn child(args: &[String]) -> Result<(), String> {
    let [mode, json] = args else { return Err("usage: bench child MODE JSON".into()) };
    let a: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("arguments: {e}"))?;
    let out = ours::run(mode, &a)?;
    println!("RESULT {out}");
    Ok(())
}

fn harness_main(args: &[String]) -> Result<(), String> {
    let mut opts = harness::Options {
        quick: false,
        python: true,
        out: std::fs::canonicalize(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")))
            .join("BENCHMARKS.md"),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--no-python" => opts.python = false,
            "--out" => opts.out = PathBuf::from(it.next().ok_or("--out needs a file")?),
            "-h" | "--help" => {
                println!("usage: bench [--quick] [--no-python] [--out FILE]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    harness::run(&opts)
}
