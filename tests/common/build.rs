//! This build's artifacts as a C or C++ program (or another language) sees them: the cdylib
//! cargo built for this test run, the header, the SONAME link, the compilers, and compiling a
//! program of `examples-c/` or `tests/` against them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How the example and test programs are compiled: warnings are errors.
pub const C_FLAGS: &[&str] = &["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2", "-g", "-pthread"];
pub const CXX_FLAGS: &[&str] = &["-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2", "-g", "-pthread"];

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A directory `name` under cargo's scratch directory for this package's tests (never the
/// source tree), created if need be.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// target/<profile>/ of this build: this test binary is target/<profile>/deps/<name>-<hash>.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/").to_path_buf()
}

/// The cdylib cargo built for this test run. `cargo test` writes the package's cdylib next to
/// the test binaries (target/<profile>/deps/libgitlab_runner_api.so) and only `cargo build`
/// copies it up to target/<profile>/: the copy there may be stale, so deps/ comes first (a
/// mutation of the library once went unnoticed the other way round).
pub fn cdylib() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("target/<profile>/deps");
    let candidates =
        [deps.join("libgitlab_runner_api.so"), deps.parent().unwrap_or(deps).join("libgitlab_runner_api.so")];
    candidates
        .iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("the cdylib of this build is not at any of {candidates:?}"))
        .clone()
}

/// The directory of [`cdylib`], for `-L` and rpaths.
pub fn lib_dir() -> PathBuf {
    cdylib().parent().expect("the cdylib's directory").to_path_buf()
}

/// The directory of this build's header: the generated one (the committed copy in include/ may
/// lag behind src/ffi).
pub fn header_dir() -> PathBuf {
    match option_env!("GLR_GENERATED_HEADER") {
        Some(h) => Path::new(h).parent().expect("header path has a parent").to_path_buf(),
        None => manifest_dir().join("include"),
    }
}

/// The value of `#define NAME value` in `header` (quotes removed).
pub fn header_define(header: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(header).unwrap_or_else(|e| panic!("{}: {e}", header.display()));
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("{name} in {}", header.display()))
}

/// GLR_ABI_VERSION of this build's header.
pub fn abi_version() -> String {
    header_define(&header_dir().join("gitlab_runner_api.h"), "GLR_ABI_VERSION")
}

/// Programs ask for the SONAME (libgitlab_runner_api.so.<ABI>) at run time, but cargo writes only
/// libgitlab_runner_api.so: makes `dir`/<SONAME> a link to [`cdylib`], atomically (test
/// processes running at the same time never see it missing). Returns the link.
pub fn link_soname(dir: &Path) -> PathBuf {
    let soname = dir.join(format!("libgitlab_runner_api.so.{}", abi_version()));
    let tmp_link = dir.join(format!(".soname.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(cdylib(), &tmp_link)
        .and_then(|()| std::fs::rename(&tmp_link, &soname))
        .unwrap_or_else(|e| panic!("{}: {e}", soname.display()));
    soname
}

// ---- compilers -------------------------------------------------------------------------------

/// The platform's compiler for `lang` ("c": `$CC`, else `cc`; otherwise `$CXX`, else `c++`; on
/// Debian, gcc). header.rs compiles with it and with clang, so it must not fall back to another.
pub fn default_compiler(lang: &str) -> String {
    let (var, default) = if lang == "c" { ("CC", "cc") } else { ("CXX", "c++") };
    std::env::var(var).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// The first of `$env_var` and `candidates` that runs `--version`.
pub fn find_compiler(env_var: &str, candidates: &[&str]) -> Option<String> {
    let from_env = std::env::var(env_var).ok().filter(|s| !s.is_empty());
    from_env.into_iter().chain(candidates.iter().map(|s| s.to_string())).find(|cc| runs(cc))
}

/// A working C compiler, whichever (the examples must build with any).
pub fn c_compiler() -> String {
    find_compiler("CC", &["cc", "gcc", "clang"]).unwrap_or_else(|| {
        panic!("no C compiler found (tried $CC, cc, gcc, clang): install one, e.g. `apt install build-essential`")
    })
}

/// A working C++ compiler, whichever.
pub fn cxx_compiler() -> String {
    find_compiler("CXX", &["c++", "g++", "clang++"]).unwrap_or_else(|| {
        panic!("no C++ compiler found (tried $CXX, c++, g++, clang++): install one, e.g. `apt install build-essential`")
    })
}

/// clang (`lang` "c") or clang++; fails the test when it is missing.
pub fn clang(lang: &str) -> String {
    let name = if lang == "c" { "clang" } else { "clang++" };
    require(name, "clang");
    name.to_owned()
}

/// Checks that `tool --version` runs, or fails the test naming the Debian package to install.
pub fn require(tool: &str, package: &str) {
    assert!(runs(tool), "`{tool}` is required: run scripts/check-tools.sh (Debian: apt-get install {package})");
}

fn runs(tool: &str) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

// ---- compiling programs against this build -----------------------------------------------------

/// The sources a program is built from: `main`, and for each `#include "x.h"` of it whose x.c
/// sits beside x.h, that file (the examples' shared code, e.g. examples-c/common/job_exec.c).
pub fn program_sources(main: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(main).unwrap_or_else(|e| panic!("{}: {e}", main.display()));
    let dir = main.parent().expect("a source file's directory");
    let mut sources = vec![main.to_path_buf()];
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix("#include \"") else { continue };
        let Some(header) = rest.split('"').next().and_then(|h| h.strip_suffix(".h")) else { continue };
        let source = dir.join(format!("{header}.c"));
        if source.is_file() && !sources.contains(&source) {
            sources.push(source);
        }
    }
    sources
}

/// Compiles the program `main` (C or C++ by its extension, with [`program_sources`]) against this
/// build's header and cdylib into `dest`, with C_FLAGS/CXX_FLAGS and `extra_flags`, an rpath to
/// the cdylib's directory and to `dest`'s (where [`link_soname`] puts the SONAME). Compiles to
/// a private name, then renames: concurrent test processes never see half a binary. Err holds
/// the compiler's complaint.
pub fn compile_program(main: &Path, dest: &Path, cc: &str, cxx: &str, extra_flags: &[&str]) -> Result<(), String> {
    let is_cpp = main.extension().is_some_and(|e| e == "cpp");
    let (compiler, flags) = if is_cpp { (cxx, CXX_FLAGS) } else { (cc, C_FLAGS) };
    let lib_dir = lib_dir();
    let out = dest.parent().expect("the program's directory");
    let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
    let output = Command::new(compiler)
        .args(flags)
        .args(extra_flags)
        .arg("-I")
        .arg(header_dir())
        .arg("-I") // the C++ wrapper, include/gitlab_runner_api.hpp
        .arg(manifest_dir().join("include"))
        .arg("-o")
        .arg(&tmp)
        .args(program_sources(main))
        .arg("-L")
        .arg(&lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", out.display()))
        .arg("-lgitlab_runner_api")
        .output()
        .map_err(|e| format!("{compiler}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{} does not compile warning-free with {compiler} {}:\n{}{}",
            main.display(),
            flags.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    std::fs::rename(&tmp, dest).map_err(|e| format!("{}: {e}", dest.display()))
}
