//! A misbehaving server: a raw TCP server (no HTTP library) answers every request of every
//! function that talks to GitLab with malformed JSON, JSON of the wrong shape, the wrong content
//! type, a truncated body, huge headers, an endless body, garbage that is not HTTP, a closed
//! connection, or nothing at all (it accepts and never answers). Every call must come back —
//! with an error wherever the answer cannot be used — within its time budget (the request
//! timeout, set to 1 s here, times the attempts the call is allowed, plus the backoff between
//! them), with a message, and never with GLR_ERR_PANIC.
//!
//! Streamed artifact transfers (upload, dependency download) are limited by max(request
//! timeout, 1 h) by design (a large file may take long), so they are not run against the server
//! that never answers or sends forever: see RELIABILITY.md.

mod common;

use common::*;
use gitlab_runner_api::ffi::artifacts::*;
use gitlab_runner_api::ffi::job::*;
use gitlab_runner_api::ffi::job_artifacts::*;
use gitlab_runner_api::ffi::runner::*;
use gitlab_runner_api::ffi::status::*;
use gitlab_runner_api::internal::{set_request_timeout, MAX_ATTEMPTS};
use serde_json::json;
use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The success status of the endpoint, `application/json`, and JSON cut in the middle.
    MalformedJson,
    /// The success status, `application/json`, and a JSON array where an object is expected.
    WrongShape,
    /// The success status with `text/html` and an HTML page.
    WrongContentType,
    /// `Content-Length: 4096`, 40 bytes sent, then the connection closed.
    TruncatedBody,
    /// 300 headers of 8 KiB each (2.4 MB of header).
    HugeHeaders,
    /// A chunked body that never ends.
    EndlessBody,
    /// Bytes that are not HTTP at all.
    NotHttp,
    /// The connection is closed as soon as the request has been read.
    CloseAtOnce,
    /// The request is read and never answered (the connection stays open).
    NeverAnswers,
}

/// Whether the answers of `mode` are unusable for every call (so each call must fail). The
/// others are well-formed HTTP with a success status: calls that do not read the body (a PUT,
/// a PATCH, a legacy verify) may accept them.
fn always_unusable(mode: Mode) -> bool {
    !matches!(mode, Mode::MalformedJson | Mode::WrongShape | Mode::WrongContentType)
}

/// Modes a streamed artifact transfer (1 h limit by design) would sit through.
fn stalls_transfers(mode: Mode) -> bool {
    matches!(mode, Mode::NeverAnswers | Mode::EndlessBody)
}

struct RawServer {
    url: String,
    stop: Arc<AtomicBool>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

fn start(mode: Mode) -> RawServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if s.load(Ordering::SeqCst) {
                break;
            }
            let Ok(conn) = conn else { continue };
            let s = s.clone();
            std::thread::spawn(move || serve(conn, mode, &s));
        }
    });
    RawServer { url, stop }
}

/// Reads one request (head and Content-Length body); returns its request line.
fn read_request(conn: &mut TcpStream) -> Option<String> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut byte).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut have = buf.len() - head_end;
    while have < length {
        match conn.read(&mut byte) {
            Ok(0) | Err(_) => break,
            Ok(n) => have += n,
        }
    }
    Some(head.lines().next().unwrap_or("").to_string())
}

/// The status GitLab answers a well-formed request of this kind with.
fn success_status(request_line: &str) -> &'static str {
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    match method {
        "POST" if path.ends_with("/runners/verify") => "200 OK",
        "POST" => "201 Created",
        // GitLab answers 204, whose body HTTP ignores: 200 makes the body count.
        "DELETE" => "200 OK",
        "PATCH" => "202 Accepted",
        _ => "200 OK",
    }
}

fn serve(mut conn: TcpStream, mode: Mode, stop: &AtomicBool) {
    loop {
        let Some(line) = read_request(&mut conn) else { return };
        let status = success_status(&line);
        let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
        let simple = |ctype: &str, body: &str| {
            format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        };
        let written = match mode {
            Mode::MalformedJson => {
                conn.write_all(simple("application/json", r#"{"id": 12, "token": "glrt-abc"#).as_bytes())
            }
            Mode::WrongShape => conn.write_all(simple("application/json", r#"[1, "two", {"three": 3}]"#).as_bytes()),
            Mode::WrongContentType => {
                conn.write_all(simple("text/html", "<html><body><h1>Welcome to nginx!</h1></body></html>").as_bytes())
            }
            Mode::TruncatedBody => {
                let head =
                    format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n");
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(br#"{"id": 12, "token": "glrt-abcdefghijk", "#);
                return;
            }
            Mode::HugeHeaders => {
                let mut head = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\n");
                let pad = "x".repeat(8 * 1024);
                for i in 0..300 {
                    head.push_str(&format!("X-Pad-{i}: {pad}\r\n"));
                }
                head.push_str("Content-Length: 2\r\n\r\n{}");
                let _ = conn.write_all(head.as_bytes());
                return;
            }
            Mode::EndlessBody => {
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                );
                let _ = conn.write_all(head.as_bytes());
                let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "[".repeat(64 * 1024));
                let started = Instant::now();
                while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60) {
                    if conn.write_all(chunk.as_bytes()).is_err() {
                        break;
                    }
                }
                return;
            }
            Mode::NotHttp => {
                let _ = conn.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\nProtocol mismatch.\r\n");
                return;
            }
            Mode::CloseAtOnce => return,
            Mode::NeverAnswers => {
                let started = Instant::now();
                while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
        };
        if written.is_err() {
            return;
        }
    }
}

/// A runner and a job taken from the real test server, dumped: loading them with the test
/// server's URL replaced points them at the raw server.
struct Dumps {
    runner: String,
    job: String,
    server_url: String,
    artifact: CString,
}

fn dumps() -> &'static Dumps {
    static D: OnceLock<Dumps> = OnceLock::new();
    D.get_or_init(|| {
        let t = taken(json!({}));
        let (mut r, mut j) = (ptr::null_mut(), ptr::null_mut());
        ok(unsafe { glr_runner_dumps(t.runner, &mut r) });
        ok(unsafe { glr_job_dumps(t.job, &mut j) });
        // In the target directory: this file outlives the test (it is made once per process).
        let artifact = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("misbehaviour-artifact.zip");
        std::fs::write(&artifact, b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0").unwrap();
        Dumps {
            runner: owned(r),
            job: owned(j),
            server_url: t.server.url(),
            artifact: CString::new(artifact.to_str().unwrap()).unwrap(),
        }
    })
}

fn runner_at(url: &str) -> *mut glr_runner {
    let d = dumps();
    let mut r = ptr::null_mut();
    ok(unsafe { glr_runner_loads(c(&d.runner.replace(&d.server_url, url)).as_ptr(), &mut r) });
    r
}

fn job_at(url: &str) -> *mut glr_job {
    let d = dumps();
    let mut j = ptr::null_mut();
    ok(unsafe { glr_job_loads(c(&d.job.replace(&d.server_url, url)).as_ptr(), &mut j) });
    j
}

type Call = fn(&str) -> glr_status;

/// Every function that talks to GitLab, with the number of requests (each with its attempts)
/// it may make in a row before giving up, and whether it is a streamed transfer.
fn calls() -> Vec<(&'static str, u32, bool, Call)> {
    vec![
        ("glr_runner_register", 1, false, |url| {
            let mut r = ptr::null_mut();
            let st = unsafe { glr_runner_register(c(url).as_ptr(), c("GR1348941token").as_ptr(), ptr::null(), &mut r) };
            unsafe { glr_runner_free(r) };
            st
        }),
        ("glr_runner_from_token", 1, false, |url| {
            let mut r = ptr::null_mut();
            let st = unsafe { glr_runner_from_token(c(url).as_ptr(), c("glrt-abcdefghijklmnop").as_ptr(), &mut r) };
            unsafe { glr_runner_free(r) };
            st
        }),
        ("glr_runner_check_auth", 1, false, |url| {
            let r = runner_at(url);
            let st = unsafe { glr_runner_check_auth(r) };
            unsafe { glr_runner_free(r) };
            st
        }),
        ("glr_runner_unregister", 1, false, |url| {
            let r = runner_at(url);
            let st = unsafe { glr_runner_unregister(r) };
            unsafe { glr_runner_free(r) };
            st
        }),
        ("glr_runner_request_job", 1, false, |url| {
            let r = runner_at(url);
            let mut j = ptr::null_mut();
            let st = unsafe { glr_runner_request_job(r, &mut j) };
            unsafe {
                glr_job_free(j);
                glr_runner_free(r);
            }
            st
        }),
        ("glr_job_log_flush", 1, false, |url| {
            let j = job_at(url);
            ok(unsafe { glr_job_log_append(j, c"a line\n".as_ptr(), 7) });
            let st = unsafe { glr_job_log_flush(j) };
            unsafe { glr_job_free(j) };
            st
        }),
        ("glr_job_auth", 1, false, |url| {
            let j = job_at(url);
            let st = unsafe { glr_job_auth(j) };
            unsafe { glr_job_free(j) };
            st
        }),
        // The log upload, then the final update.
        ("glr_job_set_success", 2, false, |url| {
            let j = job_at(url);
            ok(unsafe { glr_job_log_append(j, c"done\n".as_ptr(), 5) });
            let st = unsafe { glr_job_set_success(j, ptr::null()) };
            unsafe { glr_job_free(j) };
            st
        }),
        ("glr_job_set_failed", 2, false, |url| {
            let j = job_at(url);
            let st = unsafe { glr_job_set_failed(j, GLR_FAILURE_SCRIPT, ptr::null()) };
            unsafe { glr_job_free(j) };
            st
        }),
        ("glr_job_set_success with an artifact", 3, true, |url| {
            let j = job_at(url);
            let mut a = ptr::null_mut();
            ok(unsafe { glr_artifacts_new(&mut a) });
            let d = dumps();
            ok(unsafe {
                glr_artifacts_add_file(a, d.artifact.as_ptr(), c"a.zip".as_ptr(), ptr::null(), ptr::null(), ptr::null())
            });
            let st = unsafe { glr_job_set_success(j, a) };
            unsafe {
                glr_artifacts_free(a);
                glr_job_free(j);
            }
            st
        }),
        ("glr_job_download_artifacts", 1, true, |url| {
            let j = job_at(url);
            let dest = std::env::temp_dir()
                .join(format!("glr-misbehaviour-dl-{}-{url}", std::process::id()).replace([':', '/'], "_"));
            let st = unsafe { glr_job_download_artifacts(j, 0, c(dest.to_str().unwrap()).as_ptr()) };
            let _ = std::fs::remove_file(&dest);
            unsafe { glr_job_free(j) };
            st
        }),
    ]
}

/// The longest a call making `requests` requests may take: each request's attempts at the
/// request timeout, the backoff between them (100, 200, 400, 800 ms + 25 %), plus slack.
fn budget(requests: u32) -> Duration {
    let per_request = TIMEOUT * MAX_ATTEMPTS + Duration::from_millis(1875);
    per_request * requests + Duration::from_secs(3)
}

fn check(mode: Mode) {
    set_request_timeout(TIMEOUT);
    let _ = dumps();
    let server = start(mode);
    let url = server.url.clone();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = calls()
            .into_iter()
            .filter(|(_, _, transfer, _)| !(*transfer && stalls_transfers(mode)))
            .map(|(name, requests, _, call)| {
                let url = url.clone();
                s.spawn(move || {
                    let started = Instant::now();
                    let st = call(&url);
                    (name, requests, st, last_error(), started.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a call panicked")).collect()
    });
    let mut problems = Vec::new();
    for (name, requests, st, message, took) in &results {
        let label = format!("{mode:?}: {name} -> {st} ({message}) in {took:.1?}");
        if *took > budget(*requests) {
            problems.push(format!("{label}: longer than its budget {:?}", budget(*requests)));
        }
        if *st == GLR_ERR_PANIC {
            problems.push(format!("{label}: panic"));
        }
        if *st != GLR_OK && message.is_empty() {
            problems.push(format!("{label}: no message"));
        }
        if always_unusable(mode) && *st == GLR_OK {
            problems.push(format!("{label}: accepted an unusable answer"));
        }
        eprintln!("{label}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The calls that must read a JSON object from the body fail on malformed ones with PARSE.
fn check_parse_errors(mode: Mode) {
    set_request_timeout(TIMEOUT);
    let server = start(mode);
    let mut r = ptr::null_mut();
    let st = unsafe { glr_runner_register(c(&server.url).as_ptr(), c("GR1348941token").as_ptr(), ptr::null(), &mut r) };
    expect(st, GLR_ERR_PARSE);
    assert!(r.is_null());
    let runner = runner_at(&server.url);
    let mut j = ptr::null_mut();
    expect(unsafe { glr_runner_request_job(runner, &mut j) }, GLR_ERR_PARSE);
    assert!(j.is_null());
    unsafe { glr_runner_free(runner) };
}

#[test]
fn malformed_json() {
    check(Mode::MalformedJson);
    check_parse_errors(Mode::MalformedJson);
}

#[test]
fn json_of_the_wrong_shape() {
    check(Mode::WrongShape);
    check_parse_errors(Mode::WrongShape);
}

#[test]
fn wrong_content_type() {
    check(Mode::WrongContentType);
    check_parse_errors(Mode::WrongContentType);
}

#[test]
fn truncated_body() {
    check(Mode::TruncatedBody);
}

#[test]
fn huge_headers() {
    check(Mode::HugeHeaders);
}

#[test]
fn endless_body() {
    check(Mode::EndlessBody);
}

#[test]
fn not_http() {
    check(Mode::NotHttp);
}

#[test]
fn connection_closed_at_once() {
    check(Mode::CloseAtOnce);
}

#[test]
fn accepts_and_never_answers() {
    check(Mode::NeverAnswers);
}

/// An endless body is cut at MAX_RESPONSE_BODY, long before the timeout: with the default
/// timeout (120 s) a server sending at loopback speed would otherwise fill the memory. Runs in a
/// child process with GLR_HTTP_TIMEOUT=60, so that the size limit, not the timeout, ends it.
#[test]
fn endless_body_is_cut_at_the_size_limit() {
    if std::env::var_os("GLR_TEST_CHILD").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "endless_body_is_cut_at_the_size_limit", "--nocapture", "--test-threads=1"])
            .env("GLR_TEST_CHILD", "1")
            .env("GLR_HTTP_TIMEOUT", "60")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("1 passed"), "child failed:\n{text}");
        return;
    }
    let server = start(Mode::EndlessBody);
    let started = Instant::now();
    let mut r = ptr::null_mut();
    let st = unsafe { glr_runner_register(c(&server.url).as_ptr(), c("GR1348941token").as_ptr(), ptr::null(), &mut r) };
    let msg = expect(st, GLR_ERR_NETWORK);
    assert!(msg.contains("larger than 64 MiB"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

#[test]
fn nobody_listening() {
    // A port that was just free: connection refused, retried, then GLR_ERR_NETWORK.
    set_request_timeout(TIMEOUT);
    let url = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut r = ptr::null_mut();
    let started = Instant::now();
    let st = unsafe { glr_runner_from_token(c(&url).as_ptr(), c("glrt-abcdefghijklmnop").as_ptr(), &mut r) };
    let msg = expect(st, GLR_ERR_NETWORK);
    assert!(msg.contains("could not connect"), "{msg}");
    assert!(started.elapsed() < budget(1), "{:?}", started.elapsed());
}
