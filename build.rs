//! Generates the C header and sets the shared library's link options. Writes only inside OUT_DIR.
//!
//! - `$OUT_DIR/gitlab_runner_api.h`: cbindgen (pinned build-dependency) run on src/ffi/mod.rs
//!   and the modules it declares, configured by cbindgen.toml, plus the GLR_VERSION_* macros.
//!   Its path is exported as GLR_GENERATED_HEADER for tests/header.rs, which compares it with
//!   the committed include/gitlab_runner_api.h.
//! - Linux: SONAME `libgitlab_runner_api.so.<GLR_ABI_VERSION>` and a version script that exports
//!   only `glr_*` symbols from the cdylib.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

const HEADER_NAME: &str = "gitlab_runner_api.h";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src/ffi");

    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));

    let header = out_dir.join(HEADER_NAME);
    generate_header(&manifest_dir, &header);
    println!("cargo:rustc-env=GLR_GENERATED_HEADER={}", header.display());

    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let abi = abi_version(&manifest_dir.join("src/ffi/version.rs"));
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgitlab_runner_api.so.{abi}");
        let script = out_dir.join("gitlab_runner_api.map");
        write_if_changed(&script, "{\n  global: glr_*;\n  local: *;\n};\n");
        println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", script.display());
    }
}

fn generate_header(manifest_dir: &Path, dest: &Path) {
    let mut config = cbindgen::Config::from_file(manifest_dir.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("cbindgen.toml: {e}"));
    let version = |part: &str| env::var(format!("CARGO_PKG_VERSION_{part}")).expect("CARGO_PKG_VERSION_*");
    let macros = format!(
        "\n\n/** Major version of this header (the library's is glr_version()). */\n\
         #define GLR_VERSION_MAJOR {}\n\
         /** Minor version of this header. */\n\
         #define GLR_VERSION_MINOR {}\n\
         /** Patch version of this header. */\n\
         #define GLR_VERSION_PATCH {}\n\
         /** Version of this header as a string, e.g. \"0.1.0\". */\n\
         #define GLR_VERSION_STRING \"{}\"",
        version("MAJOR"),
        version("MINOR"),
        version("PATCH"),
        env::var("CARGO_PKG_VERSION").expect("CARGO_PKG_VERSION"),
    );
    config.after_includes = Some(config.after_includes.take().unwrap_or_default() + &macros);

    // Only the ffi module: nothing from the core can appear in the header.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(manifest_dir.join("src/ffi/mod.rs"))
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen could not generate {HEADER_NAME}: {e}"));
    let mut text = Vec::new();
    bindings.write(&mut text);
    write_if_changed(dest, &String::from_utf8(text).expect("cbindgen writes UTF-8"));
}

/// `GLR_ABI_VERSION` as declared in src/ffi/version.rs (the single place it is defined).
fn abi_version(version_rs: &Path) -> u32 {
    let src = fs::read_to_string(version_rs).unwrap_or_else(|e| panic!("{}: {e}", version_rs.display()));
    src.lines()
        .find_map(|l| l.trim().strip_prefix("pub const GLR_ABI_VERSION: u32 = ")?.strip_suffix(';')?.parse().ok())
        .unwrap_or_else(|| panic!("{}: no `pub const GLR_ABI_VERSION: u32 = N;` line", version_rs.display()))
}

/// Keeps the file's mtime when nothing changed, so dependants are not rebuilt needlessly.
fn write_if_changed(path: &Path, contents: &str) {
    if fs::read_to_string(path).ok().as_deref() != Some(contents) {
        fs::write(path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
