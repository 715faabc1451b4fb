//! The shared library as shipped: it exports only `glr_*` symbols, carries the SONAME
//! `libgitlab_runner_api.so.<GLR_ABI_VERSION>`, and a C program linked against it by that name
//! runs and agrees with the header's version macros.
#![cfg(target_os = "linux")]

mod common;

use common::build::cdylib;
use std::path::Path;
use std::process::{Command, Output};

use gitlab_runner_api::ffi::version::GLR_ABI_VERSION;

fn run(tool: &str, args: &[&str], lib: &Path) -> Output {
    let output = Command::new(tool).args(args).arg(lib).output().unwrap_or_else(|e| {
        panic!("cannot run `{tool}` ({e}): it comes with the Debian package binutils (apt-get install binutils)")
    });
    assert!(output.status.success(), "{tool} {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

#[test]
fn exports_only_glr_symbols() {
    let lib = cdylib();
    let output = run("nm", &["-D", "--defined-only"], &lib);
    let listing = String::from_utf8(output.stdout).unwrap();
    // Lines are "<address> <type> <name>". No exception is allowed: the version script
    // (`global: glr_*; local: *;`) hides everything else, including Rust's own symbols and the
    // toolchain's _init/_fini.
    let names: Vec<&str> = listing.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    let foreign: Vec<_> = names.iter().filter(|n| !n.starts_with("glr_")).collect();
    assert!(foreign.is_empty(), "{} exports symbols without the glr_ prefix: {foreign:?}", lib.display());
    for expected in ["glr_version", "glr_abi_version", "glr_status_str", "glr_last_error_message", "glr_string_free"] {
        assert!(names.contains(&expected), "{expected} is not exported by {}: {names:?}", lib.display());
    }
}

#[test]
fn soname_is_the_abi_version() {
    let lib = cdylib();
    let output = run("readelf", &["-d"], &lib);
    let dynamic = String::from_utf8(output.stdout).unwrap();
    let soname = dynamic.lines().find(|l| l.contains("(SONAME)"));
    let expected = format!("[libgitlab_runner_api.so.{GLR_ABI_VERSION}]");
    assert!(
        soname.is_some_and(|l| l.trim_end().ends_with(&expected)),
        "SONAME of {} is {soname:?}, expected {expected}",
        lib.display()
    );
}

const C_PROGRAM: &str = r#"
#include <stdio.h>
#include <string.h>
#include "gitlab_runner_api.h"

int main(void) {
    if (glr_abi_version() != GLR_ABI_VERSION) {
        printf("abi %u != %u\n", (unsigned)glr_abi_version(), (unsigned)GLR_ABI_VERSION);
        return 1;
    }
    if (strcmp(glr_version(), GLR_VERSION_STRING) != 0) {
        printf("version %s != %s\n", glr_version(), GLR_VERSION_STRING);
        return 2;
    }
    if (glr_last_error_code() != GLR_OK || glr_last_error_message(NULL, 0) != 0) return 3;
    glr_string_free(NULL);
    printf("%s|%s\n", glr_status_str(GLR_ERR_AUTH), glr_status_str(12345));
    return 0;
}
"#;

#[test]
fn c_program_links_by_soname_and_matches_the_header() {
    let lib = cdylib();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("binary-hygiene");
    let libdir = dir.join("lib");
    std::fs::create_dir_all(&libdir).unwrap();
    // What an installation provides: the real file under its SONAME, and the dev symlink.
    for name in [format!("libgitlab_runner_api.so.{GLR_ABI_VERSION}"), "libgitlab_runner_api.so".to_owned()] {
        let link = libdir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&lib, &link).unwrap();
    }
    let source = dir.join("version_check.c");
    std::fs::write(&source, C_PROGRAM).unwrap();
    let exe = dir.join("version_check");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let built = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(&source)
        .arg(format!("-I{}", include.display()))
        .arg(format!("-L{}", libdir.display()))
        .arg(format!("-Wl,-rpath,{}", libdir.display()))
        .arg("-lgitlab_runner_api")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` ({e}); Debian: apt-get install gcc"));
    assert!(built.status.success(), "{cc} failed:\n{}", String::from_utf8_lossy(&built.stderr));

    let ran = Command::new(&exe).output().unwrap();
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{} failed ({}): {stdout}{}",
        exe.display(),
        ran.status,
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(stdout, "authentication failed: GitLab rejected the token|unknown status\n");

    // It was resolved through the SONAME, not through the unversioned name.
    let needed = run("readelf", &["-d"], &exe);
    let needed = String::from_utf8(needed.stdout).unwrap();
    assert!(
        needed.contains(&format!("Shared library: [libgitlab_runner_api.so.{GLR_ABI_VERSION}]")),
        "the program does not record the SONAME as NEEDED:\n{needed}"
    );
}
