//! Secrets, dump files and TLS.
//!
//! - Every error path the test can drive (rejected tokens, a server echoing a token in its
//!   error message, 5xx, dropped connections, cancels, artifact failures, hostile dumps with
//!   tokens in the wrong fields, URLs with a password, refused connections, TLS to a plain
//!   server) leaves no runner token, registration token, job token, masked value or URL
//!   password in any error message, any log callback line, or stderr with GLR_LOG=debug (in a
//!   child process, since GLR_LOG is read once).
//! - Dump files are mode 0600 and written atomically: a child process dumping in a loop is
//!   killed (SIGKILL) at random moments, and the file always loads, holding one complete version.
//! - TLS verification is on by default: a server whose certificate comes from a self-signed CA
//!   (made with the openssl command) is refused, accepted with GLR_CA_FILE naming that CA, and
//!   refused with another CA (child processes: GLR_CA_FILE is read once, when the client is built).
//! - Plain http:// to a host other than this machine logs a warning, without connecting.

mod common;

use common::*;
use common::{job_dumps as job_dump, runner_dumps as runner_dump};
use gitlab_runner_api::ffi::artifacts::*;
use gitlab_runner_api::ffi::diagnostics::glr_set_log_callback;
use gitlab_runner_api::ffi::job::*;
use gitlab_runner_api::ffi::job_artifacts::*;
use gitlab_runner_api::ffi::runner::*;
use gitlab_runner_api::ffi::status::*;
use glr_testserver::{Endpoint, Fault, FaultKind, DEFAULT_MASKED_VALUE};
use serde_json::{json, Value};
use std::ffi::{c_char, c_void, CStr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::ptr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

// ---- child processes ---------------------------------------------------------------------------

/// Runs this test binary's test `name` alone in a child process with `env`; returns its output.
fn child(name: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]).env("GLR_TEST_CHILD", name).stdin(Stdio::null());
    cmd.env_remove("GLR_LOG").env_remove("GLR_CA_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn is_child(name: &str) -> bool {
    std::env::var("GLR_TEST_CHILD").is_ok_and(|v| v == name)
}

// ---- the log callback ----------------------------------------------------------------------------

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" fn collect(_: *mut c_void, level: i32, message: *const c_char) {
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
    LINES.lock().unwrap().push(format!("{level} {text}"));
}

// ---- error paths -------------------------------------------------------------------------------

fn load_runner(dump: &str) -> *mut glr_runner {
    let mut r = ptr::null_mut();
    ok(unsafe { glr_runner_loads(c(dump).as_ptr(), &mut r) });
    r
}

/// Drives every error path it can against a fresh test server; returns (the secrets involved,
/// the error messages seen, how many calls failed).
fn drive_error_paths() -> (Vec<String>, Vec<String>) {
    let server = server();
    let mut secrets = vec![server.registration_token(), DEFAULT_MASKED_VALUE.to_string()];
    let mut messages = Vec::new();
    let mut record = |what: &str, st: glr_status| {
        let m = last_error();
        assert_ne!(st, GLR_OK, "{what} was expected to fail");
        assert_ne!(st, GLR_ERR_PANIC, "{what}: {m}");
        assert!(!m.is_empty(), "{what}: no message");
        messages.push(format!("{what}: {m}"));
    };
    let url = server.url();
    let reg = server.registration_token();

    // Rejected tokens.
    let wrong = "GR1348941wrongSECRETtoken";
    secrets.push(wrong.into());
    let mut r = ptr::null_mut();
    record("register, wrong token", unsafe {
        glr_runner_register(c(&url).as_ptr(), c(wrong).as_ptr(), ptr::null(), &mut r)
    });
    // A server that echoes the token in its error message (GitLab does not; a proxy might).
    server.inject_fault(Fault {
        endpoint: Endpoint::Register,
        count: 1,
        kind: FaultKind::Body {
            code: 400,
            body: json!({"message": format!("token {reg} is not allowed here")}).to_string(),
        },
    });
    record("register, token echoed by the server", unsafe {
        glr_runner_register(c(&url).as_ptr(), c(&reg).as_ptr(), ptr::null(), &mut r)
    });
    server.inject_fault(Fault {
        endpoint: Endpoint::Register,
        count: 5,
        kind: FaultKind::Body { code: 500, body: format!("<html>proxy error for token={reg}</html>") },
    });
    record("register, token in a non-JSON error page", unsafe {
        glr_runner_register(c(&url).as_ptr(), c(&reg).as_ptr(), ptr::null(), &mut r)
    });
    let wrong_glrt = "glrt-wrongSECRET0123456789";
    secrets.push(wrong_glrt.into());
    record("from_token, wrong token", unsafe {
        glr_runner_from_token(c(&url).as_ptr(), c(wrong_glrt).as_ptr(), &mut r)
    });
    // A URL with a password in it.
    let pw_url = url.replacen("://", "://user:PW-SECRET-4242@", 1);
    secrets.push("PW-SECRET-4242".into());
    record("from_token, URL with a password", unsafe {
        glr_runner_from_token(c(&pw_url).as_ptr(), c(wrong_glrt).as_ptr(), &mut r)
    });

    // A real runner and job.
    let runner = register(&server);
    let runner_token = borrowed(unsafe { glr_runner_token(runner) }).unwrap();
    secrets.push(runner_token.clone());
    let stale = load_runner(&runner_dump(runner).replace(&runner_token, "glrt-staleSECRET987654"));
    secrets.push("glrt-staleSECRET987654".into());
    record("check_auth, stale token", unsafe { glr_runner_check_auth(stale) });
    let mut j = ptr::null_mut();
    record("request_job, stale token", unsafe { glr_runner_request_job(stale, &mut j) });
    unsafe { glr_runner_free(stale) };
    server.inject_fault(Fault {
        endpoint: Endpoint::JobRequest,
        count: 5,
        kind: FaultKind::Status { code: 500, retry_after: None },
    });
    record("request_job, 500 x5", unsafe { glr_runner_request_job(runner, &mut j) });

    let id = server.queue_job(json!({}));
    let job = take_job(&server, runner);
    let job_token = borrowed(unsafe { glr_job_token(job) }).unwrap();
    secrets.push(job_token.clone());
    // Secrets written to the log are masked there; none may surface in diagnostics either.
    for text in [format!("masked {DEFAULT_MASKED_VALUE}\n"), format!("job token {job_token}\n")] {
        ok(unsafe { glr_job_log_append(job, text.as_ptr().cast::<c_char>(), text.len()) });
    }
    // More faults than attempts: the background uploader may take a few of them.
    server.inject_fault(Fault {
        endpoint: Endpoint::Trace,
        count: 12,
        kind: FaultKind::Status { code: 503, retry_after: None },
    });
    record("flush, 503 x5", unsafe { glr_job_log_flush(job) });
    server.clear_faults();
    server.inject_fault(Fault { endpoint: Endpoint::Trace, count: 12, kind: FaultKind::DropConnection });
    record("flush, dropped x5", unsafe { glr_job_log_flush(job) });
    server.clear_faults();
    server.inject_fault(Fault {
        endpoint: Endpoint::Trace,
        count: 5,
        kind: FaultKind::Body { code: 400, body: json!({"error": format!("bad token {job_token}")}).to_string() },
    });
    record("flush, token echoed", unsafe { glr_job_log_flush(job) });
    server.clear_faults();
    server.inject_fault(Fault {
        endpoint: Endpoint::JobUpdate,
        count: 5,
        kind: FaultKind::Status { code: 502, retry_after: None },
    });
    record("auth, 502 x5", unsafe { glr_job_auth(job) });
    server.clear_faults();
    // Artifacts: a failed upload, failed downloads.
    let dir = std::env::temp_dir().join(format!("glr-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a.zip");
    std::fs::write(&file, b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0").unwrap();
    let mut a = ptr::null_mut();
    ok(unsafe { glr_artifacts_new(&mut a) });
    ok(unsafe {
        glr_artifacts_add_file(
            a,
            c(file.to_str().unwrap()).as_ptr(),
            c"a.zip".as_ptr(),
            ptr::null(),
            ptr::null(),
            ptr::null(),
        )
    });
    server.inject_fault(Fault {
        endpoint: Endpoint::ArtifactsUpload,
        count: 5,
        kind: FaultKind::Status { code: 413, retry_after: None },
    });
    record("set_success, artifact 413", unsafe { glr_job_set_success(job, a) });
    unsafe { glr_artifacts_free(a) };
    let dest = c(dir.join("dl.zip").to_str().unwrap());
    server.inject_fault(Fault {
        endpoint: Endpoint::ArtifactsDownload,
        count: 3,
        kind: FaultKind::Status { code: 404, retry_after: None },
    });
    record("download, 404", unsafe { glr_job_download_artifacts(job, 0, dest.as_ptr()) });
    server.inject_fault(Fault {
        endpoint: Endpoint::ArtifactsDownload,
        count: 3,
        kind: FaultKind::Status { code: 401, retry_after: None },
    });
    record("download, 401", unsafe { glr_job_download_artifacts(job, 0, dest.as_ptr()) });
    let (mut u, mut p) = (ptr::null_mut(), ptr::null_mut());
    record("registry credential, unknown image", unsafe {
        glr_job_get_registry_credential(job, c"nowhere.example/img".as_ptr(), &mut u, &mut p)
    });
    record("dump to a missing directory", unsafe {
        glr_job_dump(job, c(dir.join("no/such/dir.json").to_str().unwrap()).as_ptr())
    });

    // Hostile dumps: tokens moved into fields of another type, or where a name is expected.
    let rdump: Value = serde_json::from_str(&runner_dump(runner)).unwrap();
    let jdump: Value = serde_json::from_str(&job_dump(job)).unwrap();
    let mut hostile_runners = Vec::new();
    for field in ["id", "system_id", "registration", "features", "format", "version"] {
        let mut d = rdump.clone();
        d[field] = json!(runner_token.clone());
        if field == "system_id" {
            d[field] = json!(12);
        }
        hostile_runners.push(d.to_string());
    }
    hostile_runners.push(json!([1, url, runner_token, 5, {}]).to_string());
    hostile_runners.push(json!([1, url, 5, runner_token, runner_token]).to_string());
    hostile_runners.push(format!("{{\"token\": \"{runner_token}\", \"id\": 1, \"api_url\": \"{url}\""));
    for (i, d) in hostile_runners.iter().enumerate() {
        // Some are merely odd and load (a bad system_id is replaced): only failures count.
        let st = unsafe { glr_runner_loads(c(d).as_ptr(), &mut r) };
        if st == GLR_OK {
            unsafe { glr_runner_free(r) };
        } else {
            record(&format!("runner loads, hostile dump {i}"), st);
        }
    }
    let mut hostile_jobs = Vec::new();
    for (path, value) in [
        (vec!["state"], json!(job_token.clone())),
        (vec!["payload", "id"], json!(job_token.clone())),
        (vec!["payload", "token"], json!(12)),
        (vec!["log", "acknowledged"], json!(job_token.clone())),
        (vec!["log", "text"], json!(7)),
        (vec!["runner", "token"], json!([runner_token.clone()])),
        (vec!["runner", "api_url"], json!(format!("ftp://{runner_token}@x"))),
        (vec!["payload"], json!(job_token.clone())),
    ] {
        let mut d = jdump.clone();
        let mut at = &mut d;
        for k in &path[..path.len() - 1] {
            at = &mut at[*k];
        }
        at[*path.last().unwrap()] = value;
        hostile_jobs.push(d.to_string());
    }
    hostile_jobs.push(json!([1, runner_dump(runner), {"id": job_token, "token": 5}, "running", ""]).to_string());
    let mut hj = ptr::null_mut();
    for (i, d) in hostile_jobs.iter().enumerate() {
        let st = unsafe { glr_job_loads(c(d).as_ptr(), &mut hj) };
        if st == GLR_OK {
            unsafe { glr_job_free(hj) };
        } else {
            record(&format!("job loads, hostile dump {i}"), st);
        }
    }

    // Cancel: every later report fails.
    server.cancel_job(id, false);
    record("auth after a hard cancel", unsafe { glr_job_auth(job) });
    record("set_success after a hard cancel", unsafe { glr_job_set_success(job, ptr::null()) });
    record("append after a hard cancel", unsafe { glr_job_log_append(job, c"x".as_ptr(), 1) });

    // Nobody listening, and TLS to a plain HTTP server.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let at_dead = load_runner(&runner_dump(runner).replace(&url, &dead));
    record("check_auth, connection refused", unsafe { glr_runner_check_auth(at_dead) });
    unsafe { glr_runner_free(at_dead) };
    record("register over TLS to a plain server", unsafe {
        glr_runner_register(c(&url.replace("http://", "https://")).as_ptr(), c(&reg).as_ptr(), ptr::null(), &mut r)
    });
    unsafe {
        glr_job_free(job);
        glr_runner_free(runner);
    }
    let _ = std::fs::remove_dir_all(&dir);
    (secrets, messages)
}

/// The places a secret was found in `text`, for the assertion message.
fn leaks(secrets: &[String], text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for s in secrets {
        for line in text.lines().filter(|l| l.contains(s.as_str())) {
            found.push(format!("{s:?} in: {line}"));
        }
    }
    found
}

#[test]
fn no_secret_in_messages_log_lines_or_stderr() {
    if is_child("no_secret_in_messages_log_lines_or_stderr") {
        // Pass 1: no callback, so GLR_LOG=debug sends every line to stderr.
        let (mut secrets, mut messages) = drive_error_paths();
        // Pass 2: the same with a log callback installed.
        unsafe { glr_set_log_callback(Some(collect), ptr::null_mut()) };
        let (s2, m2) = drive_error_paths();
        unsafe { glr_set_log_callback(None, ptr::null_mut()) };
        secrets.extend(s2);
        messages.extend(m2);
        for s in &secrets {
            println!("SECRET {s}");
        }
        for m in &messages {
            println!("MESSAGE {m}");
        }
        for l in LINES.lock().unwrap().iter() {
            println!("CALLBACK {l}");
        }
        return;
    }
    let out = child("no_secret_in_messages_log_lines_or_stderr", &[("GLR_LOG", "debug")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the child failed:\n{stdout}\n{stderr}");
    let secrets: Vec<String> = stdout.lines().filter_map(|l| l.strip_prefix("SECRET ")).map(str::to_string).collect();
    let messages: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("MESSAGE ")).collect();
    let callback: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("CALLBACK ")).collect();
    let library_stderr: Vec<&str> = stderr.lines().filter(|l| l.starts_with("gitlab_runner_api: ")).collect();
    // The paths were driven and the channels were live.
    assert!(secrets.len() >= 12, "{secrets:?}");
    assert!(messages.len() >= 2 * 35, "only {} error messages", messages.len());
    assert!(callback.len() >= 20, "only {} callback lines", callback.len());
    assert!(library_stderr.len() >= 20, "GLR_LOG=debug sent only {} lines to stderr", library_stderr.len());
    assert!(library_stderr.iter().any(|l| l.starts_with("gitlab_runner_api: debug: ")));
    let mut found = leaks(&secrets, &messages.join("\n"));
    found.extend(leaks(&secrets, &callback.join("\n")));
    found.extend(leaks(&secrets, &stderr));
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
    eprintln!(
        "{} error messages, {} callback lines, {} stderr lines checked against {} secrets",
        messages.len(),
        callback.len(),
        library_stderr.len(),
        secrets.len()
    );
}

// ---- dump files ----------------------------------------------------------------------------------

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The child: dumps a job and its runner to the same two files in a loop, the log growing by
/// one numbered line (of varying length) before each dump, until it is killed.
#[test]
fn dumps_survive_a_kill_at_any_moment() {
    if is_child("dumps_survive_a_kill_at_any_moment") {
        let dir = PathBuf::from(std::env::var("GLR_DUMP_DIR").unwrap());
        let mut j = ptr::null_mut();
        let template = std::fs::read_to_string(dir.join("template.json")).unwrap();
        ok(unsafe { glr_job_loads(c(&template).as_ptr(), &mut j) });
        let mut r = ptr::null_mut();
        ok(unsafe {
            glr_runner_loads(c(&std::fs::read_to_string(dir.join("runner-template.json")).unwrap()).as_ptr(), &mut r)
        });
        let (job_path, runner_path) =
            (c(dir.join("job.json").to_str().unwrap()), c(dir.join("runner.json").to_str().unwrap()));
        // Bounded, should the parent die before killing it.
        let started = Instant::now();
        for n in 0.. {
            if started.elapsed() > Duration::from_secs(60) {
                break;
            }
            let line = format!("version {n} {}\n", "x".repeat(n % 5000));
            ok(unsafe { glr_job_log_append(j, line.as_ptr().cast::<c_char>(), line.len()) });
            ok(unsafe { glr_job_dump(j, job_path.as_ptr()) });
            ok(unsafe { glr_runner_set_feature(r, c"image".as_ptr(), (n % 2) as i32) });
            ok(unsafe { glr_runner_dump(r, runner_path.as_ptr()) });
            if n == 0 {
                // After the first dumps (which make the existing readable file private), so that
                // on a loaded machine a kill right after READY still finds what it checks.
                println!("READY");
            }
        }
        return;
    }
    let dir = std::env::temp_dir().join(format!("glr-dump-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A job and runner to dump (offline: the URL is never contacted).
    let t = taken(json!({}));
    std::fs::write(dir.join("template.json"), job_dump(t.job)).unwrap();
    std::fs::write(dir.join("runner-template.json"), runner_dump(t.runner)).unwrap();
    // An existing file readable by others: the first dump makes it private.
    std::fs::write(dir.join("job.json"), job_dump(t.job)).unwrap();
    std::fs::set_permissions(dir.join("job.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let mut versions = std::collections::BTreeSet::new();
    let rounds = 25;
    for round in 0..rounds {
        let mut cmd = Command::new(&exe);
        cmd.args(["--exact", "dumps_survive_a_kill_at_any_moment", "--nocapture", "--test-threads=1"])
            .env("GLR_TEST_CHILD", "dumps_survive_a_kill_at_any_moment")
            .env("GLR_DUMP_DIR", &dir)
            .env_remove("GLR_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut ch = cmd.spawn().unwrap();
        // Wait for READY, then kill at a pseudo-random moment 5-150 ms later.
        let mut out = ch.stdout.take().unwrap();
        let mut buf = [0u8; 4096];
        let mut seen = String::new();
        let started = Instant::now();
        while !seen.contains("READY") {
            let n = std::io::Read::read(&mut out, &mut buf).unwrap();
            assert!(n > 0 && started.elapsed() < Duration::from_secs(30), "the child did not start: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(5 + seed % 145));
        ch.kill().unwrap();
        ch.wait().unwrap();
        // The job file: private, complete, loads, and its log ends with a whole version line.
        let path = dir.join("job.json");
        assert_eq!(mode(&path), 0o600, "round {round}: job.json mode");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut j = ptr::null_mut();
        let st = unsafe { glr_job_loads(c(&text).as_ptr(), &mut j) };
        assert_eq!(st, GLR_OK, "round {round}: job.json does not load after a kill ({}):\n{text}", last_error());
        let log: Value = serde_json::from_str(&text).unwrap();
        let log = log["log"]["text"].as_str().unwrap_or("").to_string();
        let last = log.lines().last().unwrap_or("");
        if let Some(rest) = last.strip_prefix("version ") {
            let (n, pad) = rest.split_once(' ').unwrap();
            let n: usize = n.parse().unwrap();
            assert_eq!(pad.len(), n % 5000, "round {round}: a partial last line");
            versions.insert(n);
        }
        unsafe { glr_job_free(j) };
        // The runner file too (it may not exist yet if the kill came before its first dump).
        let rpath = dir.join("runner.json");
        if rpath.exists() {
            assert_eq!(mode(&rpath), 0o600, "round {round}: runner.json mode");
            let mut r = ptr::null_mut();
            let rt = std::fs::read_to_string(&rpath).unwrap();
            assert_eq!(
                unsafe { glr_runner_loads(c(&rt).as_ptr(), &mut r) },
                GLR_OK,
                "round {round}: runner.json:\n{rt}"
            );
            unsafe { glr_runner_free(r) };
        }
    }
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !["job.json", "runner.json", "template.json", "runner-template.json"].contains(&n.as_str()))
        .collect();
    eprintln!("{rounds} kills; dumps seen at versions {versions:?}; temporary files left by kills: {leftovers:?}");
    assert!(versions.len() >= rounds / 3, "the kills did not land at different moments: {versions:?}");
    // Temporary files a kill left behind are private too.
    for name in &leftovers {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- TLS -----------------------------------------------------------------------------------------

struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    fn other_ca(&self) -> PathBuf {
        self.dir.join("other-ca.pem")
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap_or_else(|e| {
        panic!("cannot run openssl ({e}): install it (Debian: apt-get install openssl; scripts/check-tools.sh does)")
    });
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, a server certificate it signed for 127.0.0.1 and localhost, and an unrelated CA.
fn make_pki() -> Pki {
    let dir = std::env::temp_dir().join(format!("glr-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    for name in ["ca", "other-ca"] {
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        let (key, pem, subj) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN=glr test {name}"));
        args.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]);
        args.extend([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&dir, &args);
    }
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    openssl(&dir, &args);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    Pki { dir }
}

/// A TLS server (rustls) answering every request like GitLab's /runners/verify; runs until the
/// process ends. Returns its https:// URL.
fn tls_server(pki: &Pki) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(pki.dir.join("server.pem")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(pki.dir.join("server.key")).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = std::sync::Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = std::io::Read::read(&mut tls, &mut chunk) else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let body = r#"{"id": 4242, "token": "glrt-tlstest", "token_expires_at": null}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = std::io::Write::write_all(&mut tls, answer.as_bytes());
                tls.conn.send_close_notify();
                let _ = std::io::Write::flush(&mut tls);
            });
        }
    });
    url
}

/// In a child: glr_runner_from_token against GLR_TLS_URL; prints the status and message.
#[test]
fn tls_verification() {
    if is_child("tls_verification") {
        let url = std::env::var("GLR_TLS_URL").unwrap();
        let mut r = ptr::null_mut();
        let st = unsafe { glr_runner_from_token(c(&url).as_ptr(), c"glrt-tlstest".as_ptr(), &mut r) };
        println!("\nSTATUS {st} {}", last_error());
        if st == GLR_OK {
            println!("ID {}", unsafe { glr_runner_id(r) });
        }
        unsafe { glr_runner_free(r) };
        return;
    }
    let pki = make_pki();
    let url = tls_server(&pki);
    let run = |ca: Option<&Path>| {
        let ca_str = ca.map(|p| p.to_str().unwrap().to_string());
        let mut env = vec![("GLR_TLS_URL", url.as_str())];
        if let Some(ca) = &ca_str {
            env.push(("GLR_CA_FILE", ca.as_str()));
        }
        let out = child("tls_verification", &env);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "child: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout.lines().filter(|l| l.starts_with("STATUS ") || l.starts_with("ID ")).collect::<Vec<_>>().join("\n")
    };
    // Verification is on by default: the system roots do not know this CA.
    let default = run(None);
    assert!(default.starts_with(&format!("STATUS {GLR_ERR_NETWORK} ")), "{default}");
    assert!(default.to_lowercase().contains("certificate"), "the message names the certificate problem: {default}");
    // With the CA configured: accepted, and the answer was read.
    let with_ca = run(Some(&pki.ca()));
    assert_eq!(with_ca, "STATUS 0 \nID 4242");
    // With another CA: refused.
    let other = run(Some(&pki.other_ca()));
    assert!(other.starts_with(&format!("STATUS {GLR_ERR_NETWORK} ")), "{other}");
    let _ = std::fs::remove_dir_all(&pki.dir);
}

// ---- plain http:// -------------------------------------------------------------------------------

#[test]
fn plain_http_to_another_host_logs_a_warning_without_connecting() {
    // Lines of this test only (other tests of this binary may log meanwhile).
    unsafe { glr_set_log_callback(Some(collect), ptr::null_mut()) };
    let t = taken(json!({}));
    let (rd, jd) = (runner_dump(t.runner), job_dump(t.job));
    let url = t.server.url();
    let warnings_for = |target: &str| -> Vec<String> {
        LINES.lock().unwrap().clear();
        let mut r = ptr::null_mut();
        ok(unsafe { glr_runner_loads(c(&rd.replace(&url, target)).as_ptr(), &mut r) });
        let mut j = ptr::null_mut();
        ok(unsafe { glr_job_loads(c(&jd.replace(&url, target)).as_ptr(), &mut j) });
        unsafe {
            glr_runner_free(r);
            glr_job_free(j);
            // Lines reach the callback on the library's event thread: installing it again
            // returns once every line logged before was delivered.
            glr_set_log_callback(Some(collect), ptr::null_mut());
        }
        LINES.lock().unwrap().iter().filter(|l| l.contains("plain http://")).cloned().collect()
    };
    let remote = warnings_for("http://gitlab.example.com");
    assert_eq!(remote.len(), 2, "a warning for the runner and one for the job: {remote:?}");
    for w in &remote {
        assert!(w.starts_with(&format!("{GLR_LOG_WARN} ")), "{w}");
        assert!(w.contains("http://gitlab.example.com"), "{w}");
    }
    let with_password = warnings_for("http://user:PW-SECRET@gitlab.example.com:8080/gitlab");
    assert_eq!(with_password.len(), 2, "{with_password:?}");
    assert!(with_password.iter().all(|w| !w.contains("PW-SECRET")), "{with_password:?}");
    for quiet in ["https://gitlab.example.com", "http://127.0.0.1:9", "http://localhost:8080", "http://[::1]:80"] {
        assert_eq!(warnings_for(quiet), Vec::<String>::new(), "{quiet}");
    }
    unsafe { glr_set_log_callback(None, ptr::null_mut()) };
}

use gitlab_runner_api::ffi::diagnostics::GLR_LOG_WARN;
