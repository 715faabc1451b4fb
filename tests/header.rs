//! The C header: the committed copy is the generated one, it declares only glr_*/GLR_* names, and
//! it compiles warning-free as C99, C11, C++11 and C++17.

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Compiles C_SOURCE against the committed header with `compiler` as `lang` (`c`/`c++`).
fn compile(compiler_var: &str, default: &str, lang: &str, std: &str) {
    let compiler = std::env::var(compiler_var).unwrap_or_else(|_| default.to_owned());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("header-compile");
    std::fs::create_dir_all(&dir).unwrap();
    let ext = if lang == "c" { "c" } else { "cpp" };
    let source = dir.join(format!("check-{std}.{ext}"));
    std::fs::write(&source, C_SOURCE).unwrap();
    let include = committed_path().parent().unwrap().to_owned();
    let result = Command::new(&compiler)
        .args(["-x", lang, &format!("-std={std}"), "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
        .arg("-I")
        .arg(&include)
        .arg("-c")
        .arg(&source)
        .arg("-o")
        .arg(dir.join(format!("check-{std}.o")))
        .output();
    let output = match result {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run the {lang} compiler `{compiler}` ({e}); install one (Debian: apt-get install gcc g++) \
             or name it in ${compiler_var}"
        ),
    };
    assert!(
        output.status.success(),
        "{compiler} -std={std} rejects include/gitlab_runner_api.h:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn compiles_as_c99() {
    compile("CC", "cc", "c", "c99");
}

#[test]
fn compiles_as_c11() {
    compile("CC", "cc", "c", "c11");
}

#[test]
fn compiles_as_cpp11() {
    compile("CXX", "c++", "c++", "c++11");
}

#[test]
fn compiles_as_cpp17() {
    compile("CXX", "c++", "c++", "c++17");
}
