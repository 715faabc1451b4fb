//! The C header: the committed copy is the generated one, it declares only glr_*/GLR_* names, each
//! with a doc comment, and it compiles warning-free as C99, C11, C++11 and C++17 with gcc and with
//! clang (and under stricter warnings). The C++ wrapper include/gitlab_runner_api.hpp compiles as
//! C++17 and C++20 with both, refuses older standards, and tests/cpp/wrapper_test.cpp exercises
//! it against this build's library and a test server. clang is required (scripts/check-tools.sh installs it).

mod common;

use common::build::{clang, default_compiler, scratch_dir};
use glr_testserver::{Config, Endpoint, Fault, FaultKind, TestServer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const UPDATE_COMMAND: &str = "GLR_UPDATE_HEADER=1 cargo test --test header";

fn committed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include/gitlab_runner_api.h")
}

fn generated() -> String {
    let path = env!("GLR_GENERATED_HEADER");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("generated header {path}: {e}"))
}

#[test]
fn committed_header_is_up_to_date() {
    let generated = generated();
    let committed_path = committed_path();
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    if committed == generated {
        return;
    }
    if std::env::var_os("GLR_UPDATE_HEADER").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(committed_path.parent().unwrap()).unwrap();
        std::fs::write(&committed_path, &generated).unwrap();
        eprintln!("updated {}", committed_path.display());
        return;
    }
    let first_difference = committed
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
    panic!(
        "{} is not the header generated from src/ffi (first difference at line {}).\n\
         Refresh it with `{UPDATE_COMMAND}` and commit it.",
        committed_path.display(),
        first_difference + 1
    );
}

/// The name a declaration line declares, if it declares one (comments and blank lines don't).
fn declared_name(line: &str) -> Option<&str> {
    let line = line.trim_end();
    let ident_end = |s: &str| s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    if let Some(rest) = line.strip_prefix("#define ") {
        return Some(&rest[..ident_end(rest)]);
    }
    if line.starts_with("typedef ") {
        if let Some(at) = line.find("(*") {
            let rest = &line[at + 2..];
            return Some(&rest[..ident_end(rest)]);
        }
        let body = line.strip_suffix(';')?;
        return body.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next();
    }
    // A function declaration starts at column 0 with its return type (or GLR_MUST_USE).
    if line.starts_with(|c: char| c.is_ascii_alphabetic()) && !line.starts_with("extern") {
        let before = &line[..line.find('(')?];
        return before.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next();
    }
    None
}

#[test]
fn header_declares_only_prefixed_names() {
    let header = generated();
    let mut names = Vec::new();
    let mut in_comment = false;
    for line in header.lines() {
        let t = line.trim_start();
        if in_comment || t.starts_with("/*") {
            in_comment = !t.contains("*/");
            continue;
        }
        if let Some(name) = declared_name(line) {
            names.push(name.to_owned());
        }
    }
    let bad: Vec<_> = names.iter().filter(|n| !(n.starts_with("glr_") || n.starts_with("GLR_"))).collect();
    assert!(bad.is_empty(), "names without the glr_/GLR_ prefix in the header: {bad:?}");
    // The parse above found the declarations it is meant to police.
    for expected in ["GLR_H", "GLR_OK", "GLR_ABI_VERSION", "glr_status", "glr_log_callback", "glr_status_str"] {
        assert!(names.iter().any(|n| n == expected), "{expected} not found among {names:?}");
    }
}

const C_SOURCE: &str = r#"
#include "gitlab_runner_api.h"
#include "gitlab_runner_api.h" /* the include guard works */

#if GLR_VERSION_MAJOR < 0 || GLR_VERSION_MINOR < 0 || GLR_VERSION_PATCH < 0 || GLR_ABI_VERSION < 1
#error "version macros"
#endif

static void on_log(void *userdata, int32_t level, const char *message) {
    (void)userdata;
    (void)level;
    (void)message;
}

int glr_header_check(void);
int glr_header_check(void) {
    char buf[128];
    glr_status st = glr_last_error_code();
    size_t n = glr_last_error_message(buf, sizeof buf);
    glr_log_callback cb = on_log;
    const char *(*status_str)(glr_status) = glr_status_str;
    glr_set_log_callback(cb, NULL);
    glr_string_free(NULL);
    if (st != GLR_OK && st != GLR_ERR_PANIC && st != GLR_ERR_NOT_FOUND) return 1;
    if (glr_abi_version() != GLR_ABI_VERSION) return 2;
    return (int)n + (status_str(GLR_ERR_NULL_ARGUMENT) == NULL) + (glr_version() == NULL) +
           (GLR_VERSION_STRING[0] == '\0') + (GLR_LOG_DEBUG > GLR_LOG_ERROR ? 0 : 1);
}
"#;

/// Where the compile tests write (never the source tree).
fn scratch() -> PathBuf {
    scratch_dir("header-compile")
}

/// Compiles `source` (written to a file named after `tag`) with `compiler` as `lang` (`c`/`c++`)
/// and `std`, `-Wall -Wextra -Wpedantic -Werror` plus `extra`; `-c` unless `link` is given (the
/// link arguments). Returns the compiler's output on failure as Err.
fn try_compile(
    compiler: &str,
    lang: &str,
    std: &str,
    extra: &[&str],
    source: &str,
    tag: &str,
    link: Option<&[String]>,
) -> Result<PathBuf, String> {
    let dir = scratch();
    let ext = if lang == "c" { "c" } else { "cpp" };
    let stem = format!("{tag}-{}-{std}", compiler.replace(['/', '+'], "_"));
    let source_path = dir.join(format!("{stem}.{ext}"));
    std::fs::write(&source_path, source).unwrap();
    let output_path = dir.join(if link.is_some() { stem.clone() } else { format!("{stem}.o") });
    let mut cmd = Command::new(compiler);
    cmd.args(["-x", lang, &format!("-std={std}"), "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
        .args(extra)
        .arg("-I")
        .arg(committed_path().parent().unwrap());
    if link.is_none() {
        cmd.arg("-c");
    }
    cmd.arg(&source_path).arg("-o").arg(&output_path);
    if let Some(args) = link {
        cmd.args(args);
    }
    let output = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run the {lang} compiler `{compiler}` ({e}); run scripts/check-tools.sh (Debian: apt-get install gcc g++ clang)")
    });
    if output.status.success() {
        Ok(output_path)
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }
}

#[track_caller]
fn compile_ok(compiler: &str, lang: &str, std: &str, extra: &[&str], source: &str, tag: &str) {
    if let Err(e) = try_compile(compiler, lang, std, extra, source, tag, None) {
        panic!("{compiler} -std={std} {extra:?} rejects the header ({tag}):\n{e}");
    }
}

// The header with the brief's flags, as C99, C11, C++11 and C++17, with gcc and with clang.

#[test]
fn compiles_as_c99() {
    compile_ok(&default_compiler("c"), "c", "c99", &[], C_SOURCE, "check");
}

#[test]
fn compiles_as_c11() {
    compile_ok(&default_compiler("c"), "c", "c11", &[], C_SOURCE, "check");
}

#[test]
fn compiles_as_cpp11() {
    compile_ok(&default_compiler("c++"), "c++", "c++11", &[], C_SOURCE, "check");
}

#[test]
fn compiles_as_cpp17() {
    compile_ok(&default_compiler("c++"), "c++", "c++17", &[], C_SOURCE, "check");
}

#[test]
fn compiles_as_c99_with_clang() {
    compile_ok(&clang("c"), "c", "c99", &[], C_SOURCE, "check");
}

#[test]
fn compiles_as_c11_with_clang() {
    compile_ok(&clang("c"), "c", "c11", &[], C_SOURCE, "check");
}

#[test]
fn compiles_as_cpp11_with_clang() {
    compile_ok(&clang("c++"), "c++", "c++11", &[], C_SOURCE, "check");
}

#[test]
fn compiles_as_cpp17_with_clang() {
    compile_ok(&clang("c++"), "c++", "c++17", &[], C_SOURCE, "check");
}

/// Warnings users commonly turn on must not fire inside the header.
const STRICT_C: &[&str] = &[
    "-Wconversion",
    "-Wsign-conversion",
    "-Wshadow",
    "-Wundef",
    "-Wstrict-prototypes",
    "-Wmissing-prototypes",
    "-Wcast-qual",
    "-Wredundant-decls",
];
const STRICT_CXX: &[&str] = &[
    "-Wconversion",
    "-Wsign-conversion",
    "-Wshadow",
    "-Wundef",
    "-Wold-style-cast",
    "-Wzero-as-null-pointer-constant",
    "-Wnon-virtual-dtor",
];

#[test]
fn header_is_clean_under_strict_warnings() {
    let include_only = "#include \"gitlab_runner_api.h\"\n";
    for compiler in [default_compiler("c"), clang("c")] {
        for std in ["c99", "c11", "c17"] {
            compile_ok(&compiler, "c", std, STRICT_C, include_only, "strict");
        }
    }
    for compiler in [default_compiler("c++"), clang("c++")] {
        for std in ["c++11", "c++14", "c++17", "c++20"] {
            compile_ok(&compiler, "c++", std, STRICT_CXX, include_only, "strict");
        }
    }
    // clang's every warning, in C.
    compile_ok(&clang("c"), "c", "c99", &["-Weverything"], include_only, "everything");
}

/// Every declaration of the header has a doxygen comment right before it (the include guard
/// and the alternatives of the GLR_MUST_USE definition excepted: one comment covers them).
#[test]
fn every_declaration_has_a_doc_comment() {
    let header = generated();
    let mut in_comment = false;
    let mut previous = String::new();
    let mut missing = Vec::new();
    let mut checked = 0;
    for line in header.lines() {
        let t = line.trim();
        if in_comment || t.starts_with("/*") {
            in_comment = !t.contains("*/");
            if !t.is_empty() {
                previous = t.to_owned();
            }
            continue;
        }
        if let Some(name) = declared_name(line) {
            if !matches!(name, "GLR_H" | "GLR_MUST_USE") {
                checked += 1;
                if !previous.ends_with("*/") || previous.starts_with("/* Generated") {
                    missing.push(name.to_owned());
                }
            }
        }
        if !t.is_empty() {
            previous = t.to_owned();
        }
    }
    assert!(missing.is_empty(), "declarations without a doc comment: {missing:?}");
    assert!(checked > 150, "only {checked} declarations found: the parse is broken");
}

// ---- the C++ wrapper include/gitlab_runner_api.hpp ---------------------------------------------

const HPP_SOURCE: &str = r#"
#include "gitlab_runner_api.hpp"
#include "gitlab_runner_api.hpp" /* the include guard works */
#include <string>
#include <vector>

int glr_hpp_check(glr::Runner &runner);
int glr_hpp_check(glr::Runner &runner) {
    std::optional<glr::Job> job = runner.request_job();
    if (!job)
        return 0;
    std::size_t n = 0;
    for (std::string_view line : job->script())
        n += line.size();
    for (const glr::Variable &v : job->variables())
        n += v.is_masked() ? 1u : 0u;
    std::vector<std::string> tags(runner.tags().begin(), runner.tags().end());
    job->append_log("x");
    job->set_cancel_callback([](glr::JobState) {});
    glr::Artifacts artifacts;
    job->set_failed(glr::FailureReason::script, &artifacts);
    return static_cast<int>(n + tags.size());
}
"#;

#[test]
fn cpp_wrapper_compiles_as_cpp17_and_cpp20() {
    for compiler in [default_compiler("c++"), clang("c++")] {
        for std in ["c++17", "c++20"] {
            compile_ok(&compiler, "c++", std, STRICT_CXX, HPP_SOURCE, "hpp");
        }
    }
}

#[test]
fn cpp_wrapper_says_it_needs_cpp17() {
    for compiler in [default_compiler("c++"), clang("c++")] {
        let err = try_compile(&compiler, "c++", "c++14", &[], HPP_SOURCE, "hpp14", None)
            .expect_err("the wrapper must refuse C++14");
        assert!(err.contains("gitlab_runner_api.hpp needs C++17 or later"), "{compiler}:\n{err}");
    }
}

/// The jobs wrapper_test.cpp takes from the server, in the order it takes them.
struct WrapperTestJobs {
    /// Finished by the handle that took it, after a failed first upload.
    plain: i64,
    /// Handed over as a string, finished by the new owner.
    handed_over: i64,
    /// Handed over through a file, failed by the process that loaded it.
    handed_over_file: i64,
}

/// How long the server holds a job request with nothing to give: longer than the second within
/// which wrapper_test.cpp expects an interrupted request_job() to return.
const WRAPPER_TEST_LONG_POLL: Duration = Duration::from_secs(3);

/// The jobs wrapper_test.cpp expects on the server it is given (the default payload, with its
/// dependency on the server's fixture job), and the fault that makes the first log upload fail
/// once (so that the library logs a retry).
fn prepare_server_for_wrapper_test(server: &TestServer) -> WrapperTestJobs {
    let jobs = WrapperTestJobs {
        plain: server.queue_job(serde_json::json!({})),
        handed_over: server.queue_job(serde_json::json!({})),
        handed_over_file: server.queue_job(serde_json::json!({})),
    };
    server.inject_fault(Fault {
        endpoint: Endpoint::Trace,
        count: 1,
        kind: FaultKind::Status { code: 500, retry_after: None },
    });
    jobs
}

/// `job`'s trace holds each of `lines` exactly once, and nothing after the last one.
#[track_caller]
fn assert_trace_lines_once(what: &str, job: &glr_testserver::JobRecord, lines: &[&str]) {
    let trace = String::from_utf8_lossy(&job.trace);
    for line in lines {
        assert_eq!(trace.matches(line).count(), 1, "{what}: {line:?} must be stored exactly once:\n{trace}");
    }
    assert!(trace.ends_with(lines[lines.len() - 1]), "{what}: the log does not end with the last line:\n{trace}");
}

/// tests/cpp/wrapper_test.cpp, linked with this build's library and run, against a test server
/// (tests/c_examples.rs runs it offline, under the memory and thread checkers).
#[test]
fn cpp_wrapper_runs() {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    let lib = deps.join("libgitlab_runner_api.so");
    assert!(lib.is_file(), "{} is missing", lib.display());
    // The program asks for the SONAME; cargo writes only libgitlab_runner_api.so.
    let abi = generated()
        .lines()
        .find_map(|l| l.strip_prefix("#define GLR_ABI_VERSION ").map(|v| v.trim().to_owned()))
        .expect("GLR_ABI_VERSION");
    let libdir = scratch().join(format!("lib-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&libdir);
    std::fs::create_dir_all(&libdir).unwrap();
    std::os::unix::fs::symlink(&lib, libdir.join(format!("libgitlab_runner_api.so.{abi}"))).unwrap();
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cpp/wrapper_test.cpp"))
        .expect("tests/cpp/wrapper_test.cpp");
    for compiler in [default_compiler("c++"), clang("c++")] {
        let link = vec![
            format!("-L{}", deps.display()),
            format!("-Wl,-rpath,{}", libdir.display()),
            "-lgitlab_runner_api".to_owned(),
        ];
        let program = try_compile(&compiler, "c++", "c++17", STRICT_CXX, &source, "wrapper_test", Some(&link))
            .unwrap_or_else(|e| panic!("{compiler}: tests/cpp/wrapper_test.cpp does not build:\n{e}"));
        let server = TestServer::start_with(Config { long_poll_timeout: WRAPPER_TEST_LONG_POLL, ..Default::default() });
        let jobs = prepare_server_for_wrapper_test(&server);
        let out = Command::new(&program)
            .args([server.url(), server.registration_token()])
            .env_remove("GLR_LOG")
            .env("TMPDIR", scratch())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.starts_with("wrapper ok") && stdout.contains(", with a server)"),
            "{compiler}: wrapper_test failed ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        // What the program did reached the server.
        let job = server.job(jobs.plain).expect("the first queued job");
        assert_eq!(job.state, "success", "{compiler}: the job was not reported successful");
        assert_eq!(
            job.system_id.as_deref(),
            Some("s_cppwrapper12"),
            "{compiler}: set_system_id() did not reach GitLab"
        );
        assert_trace_lines_once(
            &compiler,
            &job,
            &["wrapper_test: first line\n", "wrapper_test: after the replacement\n"],
        );
        // Handed over: every line once, from both owners, and the final checksum covers them.
        let job = server.job(jobs.handed_over).expect("the second queued job");
        assert_eq!(job.state, "success", "{compiler}: the handed-over job was not finished by its new owner");
        assert_trace_lines_once(
            &format!("{compiler}, hand_over_dumps"),
            &job,
            &["wrapper_test handover: by the first owner\n", "wrapper_test handover: by the new owner\n"],
        );
        assert_eq!(job.checksum_matches, Some(true), "{compiler}: the new owner's checksum");
        assert!(!String::from_utf8_lossy(&job.trace).contains("lost"), "{compiler}: a watcher's text reached GitLab");
        let job = server.job(jobs.handed_over_file).expect("the third queued job");
        assert_eq!(job.state, "failed", "{compiler}: the job handed over through a file was not failed");
        assert_eq!((job.failure_reason.as_deref(), job.exit_code), (Some("script_failure"), Some(3)));
        assert_trace_lines_once(
            &format!("{compiler}, hand_over_dump"),
            &job,
            &["wrapper_test file handover: before\n", "wrapper_test file handover: after\n"],
        );
        assert_eq!(job.checksum_matches, Some(true), "{compiler}: the loader's checksum");
        assert!(!String::from_utf8_lossy(&job.trace).contains("lost"), "{compiler}: a watcher's text reached GitLab");
    }
    let _ = std::fs::remove_dir_all(&libdir);
}
