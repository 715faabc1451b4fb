//! Installing: `scripts/install.sh` puts the shared and static libraries, the headers, the
//! pkg-config and CMake files and `register-runner` into a prefix, and programs built against
//! that prefix the ways README.md shows (pkg-config, `pkg-config --static`, the C++ wrapper,
//! CMake's `find_package`) run against the in-process test server. The assertions are on the
//! installed files and on what the server stored.
//!
//! The script installs the library of this build (`--no-build` with this test binary's target
//! directory and profile): no second cargo build. It needs a C and a C++ compiler, pkg-config and
//! cmake (`scripts/check-tools.sh` installs them); without one the tests fail and say so.
#![cfg(target_os = "linux")]

mod common;

use common::build::{header_define, manifest_dir, profile_dir, require};
use common::process::{self, Out};
use glr_testserver::{Config, TestServer};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use gitlab_runner_api::ffi::version::GLR_ABI_VERSION;

/// No command may take longer (a hang is a failure, not a stuck test run).
const TIMEOUT: Duration = Duration::from_secs(300);

// The commands of README.md "Installing", run verbatim (in a directory holding the sources).
const PKG_CONFIG_C: &str = "cc -o quickstart quickstart.c $(pkg-config --cflags --libs gitlab_runner_api)";
const PKG_CONFIG_STATIC: &str = "cc -o quickstart_static quickstart.c $(pkg-config --cflags gitlab_runner_api) \\
   $(pkg-config --libs --static gitlab_runner_api | sed 's/-lgitlab_runner_api\\b/-l:libgitlab_runner_api.a/')";
const PKG_CONFIG_CPP: &str =
    "c++ -std=c++17 -o quickstart_cpp quickstart.cpp $(pkg-config --cflags --libs gitlab_runner_api) \\
   -Wl,-rpath,$(pkg-config --variable=libdir gitlab_runner_api)";
const DLOPEN: &str = "cc -o dlopen_check dlopen_check.c $(pkg-config --cflags gitlab_runner_api) -ldl";
/// Warnings are errors when the test builds the examples with CMake.
const WARNINGS: &str = "-Wall -Wextra -Wpedantic -Werror";

fn repo() -> &'static Path {
    manifest_dir()
}

/// This build's target directory and profile: this binary is <target>/<profile>/deps/install-<hash>.
fn target_and_profile() -> (PathBuf, String) {
    let profile_dir = profile_dir();
    let target = profile_dir.parent().expect("<target>/").to_path_buf();
    let profile = profile_dir.file_name().and_then(|n| n.to_str()).expect("profile name").to_string();
    (target, profile)
}

fn header_macro(name: &str) -> String {
    header_define(&repo().join("include/gitlab_runner_api.h"), name)
}

fn version() -> String {
    header_macro("GLR_VERSION_STRING")
}

/// This test process's directory under the cargo target's tmp dir. Those of earlier runs whose
/// process is gone are removed first (an install holds the static library: hundreds of MB in a
/// debug build).
fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        for entry in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("install-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        tmp.join(format!("install-{}", std::process::id()))
    })
}

/// A directory `name` of this test process, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = scratch_root().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// Removes a test's directory when the test passed (kept for a look when it failed).
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

// ---- processes ---------------------------------------------------------------------------------

/// Runs `cmd` to completion (killed after TIMEOUT), capturing both streams.
fn run(cmd: Command, what: &str) -> Out {
    process::run(cmd, what, TIMEOUT)
}

/// Runs a shell command line in `dir` with PKG_CONFIG_PATH set to `prefix`'s.
fn shell(line: &str, dir: &Path, prefix: &Path) -> Out {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(line).current_dir(dir).env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"));
    run(cmd, line)
}

// ---- installing --------------------------------------------------------------------------------

/// Runs scripts/install.sh --no-build on this build with `vars`.
fn install(vars: &[(&str, &Path)]) -> Out {
    let (target, profile) = target_and_profile();
    let mut cmd = Command::new(repo().join("scripts/install.sh"));
    cmd.arg("--no-build").env("CARGO_TARGET_DIR", &target).env("PROFILE", &profile).env_remove("DESTDIR");
    for var in ["PREFIX", "LIBDIR", "INCLUDEDIR", "BINDIR"] {
        cmd.env_remove(var);
    }
    for (name, value) in vars {
        cmd.env(name, value);
    }
    run(cmd, "scripts/install.sh")
}

extern "C" {
    /// C's atexit(): the test harness ends the process with exit(), which runs it.
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

static PREFIX: OnceLock<PathBuf> = OnceLock::new();

/// Removes the shared prefix when the test process exits, then this process's directory if
/// nothing else (a failed test's directory) is left in it.
extern "C" fn remove_prefix() {
    if let Some(prefix) = PREFIX.get() {
        let _ = std::fs::remove_dir_all(prefix);
        let _ = std::fs::remove_dir(scratch_root());
    }
}

/// The prefix every program of these tests is built against, installed once per process.
fn prefix() -> &'static Path {
    PREFIX.get_or_init(|| {
        let prefix = scratch("prefix");
        install(&[("PREFIX", &prefix)]).expect_ok("scripts/install.sh");
        // SAFETY: registers a plain function with no arguments, as atexit() requires.
        unsafe { atexit(remove_prefix) };
        prefix
    })
}

/// A directory with copies of examples-c/installed/quickstart.{c,cpp}, as a user would have.
fn sources(name: &str) -> PathBuf {
    let dir = scratch(name);
    for file in ["quickstart.c", "quickstart.cpp", "dlopen_check.c"] {
        std::fs::copy(repo().join("examples-c/installed").join(file), dir.join(file))
            .unwrap_or_else(|e| panic!("examples-c/installed/{file}: {e}"));
    }
    dir
}

fn needed_libraries(binary: &Path) -> Vec<String> {
    let out = run(
        {
            let mut c = Command::new("readelf");
            c.arg("-d").arg(binary);
            c
        },
        "readelf -d",
    );
    out.expect_ok("readelf -d");
    out.stdout
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split('[').nth(1)?.trim_end_matches(']').to_string()))
        .collect()
}

fn server() -> TestServer {
    TestServer::start_with(Config { long_poll_timeout: Duration::from_millis(200), ..Default::default() })
}

/// Queues a job, runs the quickstart `program` against `server` (with `envs`), and checks what
/// the server stored: a runner with `description`, the job reported successful by it, with
/// the program's log lines and a matching checksum.
fn run_quickstart(server: &TestServer, program: &Path, source: &str, description: &str, envs: &[(&str, &Path)]) {
    let line = format!("make check-{}", description.replace(' ', "-"));
    let id = server.queue_job(serde_json::json!({"steps": [
        {"name": "script", "script": [line], "timeout": 3600, "when": "on_success", "allow_failure": false}
    ]}));
    let mut cmd = Command::new(program);
    cmd.args([&server.url(), &server.registration_token(), description]).env_remove("LD_LIBRARY_PATH");
    for (name, value) in envs {
        cmd.env(name, value);
    }
    let out = run(cmd, &program.display().to_string());
    out.expect_ok(&program.display().to_string());
    assert!(out.stdout.contains(&format!("Job {id}: success")), "{}", out.describe());

    let job = server.job(id).expect("the queued job");
    let trace = String::from_utf8_lossy(&job.trace).into_owned();
    assert_eq!(job.state, "success", "{trace}");
    assert_eq!(job.checksum_matches, Some(true), "final checksum vs. stored trace:\n{trace}");
    let start = format!("Running with gitlab_runner_api {} ({source})\n$ {line}\n", version());
    assert!(trace.starts_with(&start), "the trace should start with {start:?}:\n{trace}");
    assert!(trace.ends_with("Job succeeded\n"), "trace:\n{trace}");
    let runner = server
        .runners()
        .into_iter()
        .find(|r| r.description.as_deref() == Some(description))
        .unwrap_or_else(|| panic!("no runner {description:?} on the server"));
    assert_eq!(job.runner_id, Some(runner.id), "the job went to the runner the program registered");
    assert!(out.stdout.contains(&format!("Registered runner {}", runner.id)), "{}", out.describe());
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

fn link_target(path: &Path) -> String {
    std::fs::read_link(path)
        .unwrap_or_else(|e| panic!("{} is not a symbolic link: {e}", path.display()))
        .display()
        .to_string()
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap_or_else(|e| panic!("{}: {e}", a.display()))
        == std::fs::read(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()))
}

/// Every file below `dir`, relative, sorted (symbolic links as `name -> target`).
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.push(format!("{rel} -> {}", std::fs::read_link(&path).unwrap().display()));
            } else if meta.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

// ---- the installed files ----------------------------------------------------------------------

/// A staged install (DESTDIR) with a custom LIBDIR: exactly the documented files, in place,
/// identical to this build's, with paths that name the final prefix, not the staging directory.
#[test]
fn install_layout_with_destdir_and_libdir() {
    let stage = scratch("stage");
    let _cleanup = Cleanup(stage.clone());
    let out =
        install(&[("DESTDIR", &stage), ("PREFIX", Path::new("/opt/glr")), ("LIBDIR", Path::new("/opt/glr/lib64"))]);
    out.expect_ok("install.sh with DESTDIR");
    let v = version();
    let abi = GLR_ABI_VERSION;
    assert_eq!(abi.to_string(), header_macro("GLR_ABI_VERSION"));
    let mut expected = vec![
        "opt/glr/bin/register-runner".to_string(),
        "opt/glr/include/gitlab_runner_api.h".to_string(),
        "opt/glr/include/gitlab_runner_api.hpp".to_string(),
        "opt/glr/lib64/cmake/gitlab_runner_api/gitlab_runner_apiConfig.cmake".to_string(),
        "opt/glr/lib64/cmake/gitlab_runner_api/gitlab_runner_apiConfigVersion.cmake".to_string(),
        "opt/glr/lib64/libgitlab_runner_api.a".to_string(),
        format!("opt/glr/lib64/libgitlab_runner_api.so -> libgitlab_runner_api.so.{abi}"),
        format!("opt/glr/lib64/libgitlab_runner_api.so.{abi} -> libgitlab_runner_api.so.{v}"),
        format!("opt/glr/lib64/libgitlab_runner_api.so.{v}"),
        "opt/glr/lib64/pkgconfig/gitlab_runner_api.pc".to_string(),
    ];
    expected.sort();
    assert_eq!(tree(&stage), expected, "the installed tree\n{}", out.describe());

    let root = stage.join("opt/glr");
    let lib = root.join("lib64");
    let (target, profile) = target_and_profile();
    let deps = target.join(&profile).join("deps");
    assert!(same_bytes(&lib.join(format!("libgitlab_runner_api.so.{v}")), &deps.join("libgitlab_runner_api.so")));
    assert!(same_bytes(&lib.join("libgitlab_runner_api.a"), &deps.join("libgitlab_runner_api.a")));
    assert!(same_bytes(&root.join("include/gitlab_runner_api.h"), &repo().join("include/gitlab_runner_api.h")));
    assert!(same_bytes(&root.join("include/gitlab_runner_api.hpp"), &repo().join("include/gitlab_runner_api.hpp")));
    assert!(same_bytes(&root.join("bin/register-runner"), Path::new(env!("CARGO_BIN_EXE_register-runner"))));
    assert_eq!(mode(&lib.join(format!("libgitlab_runner_api.so.{v}"))), 0o755);
    assert_eq!(mode(&root.join("bin/register-runner")), 0o755);
    for file in ["lib64/libgitlab_runner_api.a", "include/gitlab_runner_api.h", "lib64/pkgconfig/gitlab_runner_api.pc"]
    {
        assert_eq!(mode(&root.join(file)), 0o644, "{file}");
    }
    assert_eq!(link_target(&lib.join("libgitlab_runner_api.so")), format!("libgitlab_runner_api.so.{abi}"));

    // The real file carries the SONAME its link is named after.
    let dynamic = run(
        {
            let mut c = Command::new("readelf");
            c.arg("-d").arg(lib.join(format!("libgitlab_runner_api.so.{v}")));
            c
        },
        "readelf",
    );
    assert!(dynamic.stdout.contains(&format!("(SONAME)             Library soname: [libgitlab_runner_api.so.{abi}]")));

    // pkg-config: cargo-c's contents, paths relative to the final prefix.
    let pc = std::fs::read_to_string(lib.join("pkgconfig/gitlab_runner_api.pc")).unwrap();
    let expected_pc = format!(
        "prefix=/opt/glr\nexec_prefix=${{prefix}}\nlibdir=${{exec_prefix}}/lib64\nincludedir=${{prefix}}/include\n\n\
         Name: gitlab_runner_api\nDescription: A C-ABI library for writing your own GitLab CI runners\n\
         Version: {v}\nLibs: -L${{libdir}} -lgitlab_runner_api\n\
         Libs.private: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc\nCflags: -I${{includedir}}\n"
    );
    assert_eq!(pc, expected_pc);

    // CMake: the prefix is found relative to the config file (lib64/cmake/gitlab_runner_api).
    let config = std::fs::read_to_string(lib.join("cmake/gitlab_runner_api/gitlab_runner_apiConfig.cmake")).unwrap();
    assert!(config.contains("get_filename_component(_glr_prefix \"${CMAKE_CURRENT_LIST_DIR}/../../..\" ABSOLUTE)"));
    assert!(config.contains("set(_glr_libdir \"${_glr_prefix}/lib64\")"), "{config}");
    assert!(config.contains(&format!("IMPORTED_SONAME \"libgitlab_runner_api.so.{abi}\"")), "{config}");
    for text in [&pc, &config] {
        assert!(!text.contains(&stage.display().to_string()), "DESTDIR leaked into an installed file:\n{text}");
    }

    // The installed program runs.
    let help = run(
        {
            let mut c = Command::new(root.join("bin/register-runner"));
            c.arg("--help");
            c
        },
        "register-runner --help",
    );
    help.expect_ok("register-runner --help");
    assert!(help.stdout.contains("usage: register-runner"), "{}", help.describe());
}

#[test]
fn install_script_refuses_bad_arguments() {
    let mut cmd = Command::new(repo().join("scripts/install.sh"));
    cmd.arg("--frobnicate");
    let out = run(cmd, "install.sh --frobnicate");
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(out.stderr.contains("unknown argument: --frobnicate"), "{}", out.describe());

    let out = install(&[("PREFIX", Path::new("relative/prefix"))]);
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(out.stderr.contains("must be absolute paths"), "{}", out.describe());

    let mut cmd = Command::new(repo().join("scripts/install.sh"));
    cmd.arg("--help");
    let out = run(cmd, "install.sh --help");
    out.expect_ok("install.sh --help");
    for word in ["PREFIX", "DESTDIR", "LIBDIR", "--no-build", "gitlab_runner_api.pc", "gitlab_runner_apiConfig.cmake"] {
        assert!(out.stdout.contains(word), "--help should mention {word}\n{}", out.describe());
    }
}

/// The installed register-runner registers a runner and saves it.
#[test]
fn installed_register_runner_registers() {
    let server = server();
    let dir = scratch("register-runner");
    let _cleanup = Cleanup(dir.clone());
    let file = dir.join("runner.json");
    let mut cmd = Command::new(prefix().join("bin/register-runner"));
    cmd.arg(server.url()).arg(server.registration_token()).arg(&file).arg("--locked");
    run(cmd, "register-runner").expect_ok("installed register-runner");
    assert_eq!(mode(&file), 0o600);
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let runners = server.runners();
    assert_eq!(runners.len(), 1);
    assert_eq!(saved["id"].as_i64(), Some(runners[0].id));
    assert!(runners[0].locked);
}

// ---- programs built against the installed files -------------------------------------------------

#[test]
fn readme_shows_the_commands_these_tests_run() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for command in [
        PKG_CONFIG_C,
        PKG_CONFIG_STATIC,
        PKG_CONFIG_CPP,
        DLOPEN,
        "scripts/install.sh",
        "find_package(gitlab_runner_api",
    ] {
        assert!(readme.contains(command), "README.md should show:\n{command}");
    }
}

#[test]
fn pkg_config_c_program_linked_dynamically() {
    require("cc", "gcc");
    require("pkg-config", "pkg-config");
    let prefix = prefix();
    let dir = sources("pkg-config-dynamic");
    let _cleanup = Cleanup(dir.clone());
    shell(PKG_CONFIG_C, &dir, prefix).expect_ok(PKG_CONFIG_C);
    let program = dir.join("quickstart");
    let needed = needed_libraries(&program);
    assert!(needed.contains(&format!("libgitlab_runner_api.so.{GLR_ABI_VERSION}")), "NEEDED: {needed:?}");
    // A prefix outside the loader's search path: LD_LIBRARY_PATH (or ldconfig, or an rpath).
    let server = server();
    run_quickstart(
        &server,
        &program,
        "quickstart.c",
        "pkg-config dynamic",
        &[("LD_LIBRARY_PATH", &prefix.join("lib"))],
    );
}

#[test]
fn pkg_config_c_program_linked_statically() {
    require("cc", "gcc");
    require("pkg-config", "pkg-config");
    let prefix = prefix();
    let dir = sources("pkg-config-static");
    let _cleanup = Cleanup(dir.clone());
    shell(PKG_CONFIG_STATIC, &dir, prefix).expect_ok(PKG_CONFIG_STATIC);
    let program = dir.join("quickstart_static");
    let needed = needed_libraries(&program);
    assert!(!needed.iter().any(|n| n.contains("gitlab_runner_api")), "a static program needs no library: {needed:?}");
    let server = server();
    run_quickstart(&server, &program, "quickstart.c", "pkg-config static", &[]);
}

#[test]
fn cpp_program_with_the_wrapper_via_pkg_config() {
    require("c++", "g++");
    require("pkg-config", "pkg-config");
    let prefix = prefix();
    let dir = sources("pkg-config-cpp");
    let _cleanup = Cleanup(dir.clone());
    shell(PKG_CONFIG_CPP, &dir, prefix).expect_ok(PKG_CONFIG_CPP);
    let program = dir.join("quickstart_cpp");
    assert!(needed_libraries(&program).contains(&format!("libgitlab_runner_api.so.{GLR_ABI_VERSION}")));
    // The rpath from `pkg-config --variable=libdir` finds the library: no LD_LIBRARY_PATH.
    let server = server();
    run_quickstart(&server, &program, "quickstart.cpp", "cpp wrapper", &[]);
}

/// A program that loads the library at run time (no link) checks glr_abi_version() first, and
/// refuses a library that is not this one.
#[test]
fn dlopen_user_checks_the_abi_version() {
    require("cc", "gcc");
    require("pkg-config", "pkg-config");
    let prefix = prefix();
    let dir = sources("dlopen");
    let _cleanup = Cleanup(dir.clone());
    shell(DLOPEN, &dir, prefix).expect_ok(DLOPEN);
    let program = dir.join("dlopen_check");
    let needed = needed_libraries(&program);
    assert!(!needed.iter().any(|n| n.contains("gitlab_runner_api")), "NEEDED: {needed:?}");

    let mut cmd = Command::new(&program);
    cmd.env("LD_LIBRARY_PATH", prefix.join("lib"));
    let out = run(cmd, "dlopen_check");
    out.expect_ok("dlopen_check");
    assert_eq!(
        out.stdout.trim(),
        format!("libgitlab_runner_api.so.{GLR_ABI_VERSION}: gitlab_runner_api {}, ABI {GLR_ABI_VERSION}", version())
    );

    let mut cmd = Command::new(&program);
    cmd.arg("libc.so.6");
    let out = run(cmd, "dlopen_check libc.so.6");
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(out.stderr.contains("is not gitlab_runner_api"), "{}", out.describe());
}

/// examples-c/installed/CMakeLists.txt: `find_package(gitlab_runner_api 0.1 REQUIRED)` and the
/// shared, static and C++ programs, warning-free, each run against the server.
#[test]
fn cmake_project_with_find_package() {
    require("cmake", "cmake");
    require("cc", "gcc");
    require("c++", "g++");
    let prefix = prefix();
    let build = scratch("cmake-build");
    let _cleanup = Cleanup(build.clone());
    let mut configure = Command::new("cmake");
    configure
        .arg("-S")
        .arg(repo().join("examples-c/installed"))
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .arg(format!("-DCMAKE_C_FLAGS={WARNINGS}"))
        .arg(format!("-DCMAKE_CXX_FLAGS={WARNINGS}"))
        .env_remove("PKG_CONFIG_PATH");
    let out = run(configure, "cmake configure");
    out.expect_ok("cmake configure");
    let mut compile = Command::new("cmake");
    compile.arg("--build").arg(&build);
    run(compile, "cmake --build").expect_ok("cmake --build");

    let needed = needed_libraries(&build.join("quickstart"));
    assert!(needed.contains(&format!("libgitlab_runner_api.so.{GLR_ABI_VERSION}")), "NEEDED: {needed:?}");
    let needed = needed_libraries(&build.join("quickstart_static"));
    assert!(!needed.iter().any(|n| n.contains("gitlab_runner_api")), "static: NEEDED {needed:?}");

    // CMake gives the programs an rpath to the imported library: they run as built.
    let server = server();
    run_quickstart(&server, &build.join("quickstart"), "quickstart.c", "cmake shared", &[]);
    run_quickstart(&server, &build.join("quickstart_static"), "quickstart.c", "cmake static", &[]);
    run_quickstart(&server, &build.join("quickstart_cpp"), "quickstart.cpp", "cmake cpp", &[]);
}

/// gitlab_runner_apiConfigVersion.cmake: which requested versions the installed one satisfies.
#[test]
fn cmake_version_requests() {
    require("cmake", "cmake");
    let prefix = prefix();
    let v = version();
    let (major, minor) = {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap())
    };
    assert_eq!(major, 0, "update this test's expectations for 1.0");
    // (request, compatible): before 1.0 a minor release may change the ABI.
    let mut cases: Vec<(String, bool)> = vec![
        (String::new(), true),
        (format!("{major}"), true),
        (format!("{major}.{minor}"), true),
        (v.clone(), true),
        (format!("{major}.{minor}.9999"), false),
        (format!("{major}.{}", minor + 1), false),
        (format!("{}", major + 1), false),
        (format!("{major}.{minor}...<{major}.{}", minor + 1), true),
        (format!("{major}.{}...{}", minor + 1, major + 2), false),
    ];
    if minor > 0 {
        cases.push((format!("{major}.{}", minor - 1), false));
    }
    let mut lists = String::from("cmake_minimum_required(VERSION 3.19)\nproject(versions LANGUAGES NONE)\n");
    for (request, _) in &cases {
        lists += &format!(
            "find_package(gitlab_runner_api {request} QUIET)\n\
             message(STATUS \"RESULT [{request}] ${{gitlab_runner_api_FOUND}} ${{gitlab_runner_api_VERSION}}\")\n\
             unset(gitlab_runner_api_VERSION)\n"
        );
    }
    let dir = scratch("cmake-versions");
    let _cleanup = Cleanup(dir.clone());
    std::fs::write(dir.join("CMakeLists.txt"), lists).unwrap();
    let mut configure = Command::new("cmake");
    configure
        .arg("-S")
        .arg(&dir)
        .arg("-B")
        .arg(dir.join("build"))
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()));
    let out = run(configure, "cmake");
    out.expect_ok("cmake (version requests)");
    for (request, compatible) in &cases {
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains(&format!("RESULT [{request}] ")))
            .unwrap_or_else(|| panic!("no result for {request:?}\n{}", out.describe()));
        let found = line.split_whitespace().nth(3) == Some("1");
        assert_eq!(found, *compatible, "find_package(gitlab_runner_api {request}): {line}");
        if found {
            assert!(line.trim_end().ends_with(&v), "gitlab_runner_api_VERSION: {line}");
        }
    }
}
