//! The test server's request log read for questions about time and order: which requests of a
//! job arrived, in which order, and whether any arrived after a moment of the test (a marker
//! request's place in the order of arrival), and which injected faults are still waiting.
//!
//! The log gets a record when the server answers (or drops) a request, so a request held by a
//! `Delay` fault shows up only once it is answered, and one whose client went away while the
//! server held it (hyper then cancels the handler) never shows up and is not handled.

use glr_testserver::{RequestRecord, TestServer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The runner-API requests of job `id` (its `PUT /jobs/:id` and `PATCH /jobs/:id/trace`), in
/// the order they arrived.
pub fn job_requests(server: &TestServer, id: i64) -> Vec<RequestRecord> {
    let update = format!("/api/v4/jobs/{id}");
    let trace = format!("/api/v4/jobs/{id}/trace");
    let mut requests: Vec<RequestRecord> = server
        .requests()
        .into_iter()
        .filter(|r| {
            let path = r.path.split('?').next().unwrap_or("");
            path == update || path == trace
        })
        .collect();
    requests.sort_by_key(|r| r.arrival);
    requests
}

/// Job `id`'s trace PATCHes, in arrival order.
pub fn patches(server: &TestServer, id: i64) -> Vec<RequestRecord> {
    job_requests(server, id).into_iter().filter(|r| r.method == "PATCH").collect()
}

/// Job `id`'s requests that arrived after the marker `since` (from [`server_mark`]).
pub fn job_requests_since(server: &TestServer, id: i64, since: u64) -> Vec<RequestRecord> {
    job_requests(server, id).into_iter().filter(|r| r.arrival >= since).collect()
}

/// `PUT state=running` without the log's checksum: a watcher's keep-alive.
pub fn is_keepalive_without_output(r: &RequestRecord) -> bool {
    let Some(body) = &r.body_json else { return false };
    r.method == "PUT"
        && body["state"] == "running"
        && body.pointer("/output/checksum").is_none()
        && body.get("checksum").is_none()
}

/// One line per request, for failure messages.
pub fn describe(requests: &[RequestRecord]) -> String {
    requests
        .iter()
        .map(|r| {
            let state = r.body_json.as_ref().and_then(|b| b["state"].as_str().map(str::to_string)).unwrap_or_default();
            format!("  {} ms: {} {} {state} ({} bytes) -> {}", r.at_ms, r.method, r.path, r.body_size, r.status)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A moment of the test on the server, in the unit of `RequestRecord::arrival`: a marker request
/// (answered 404, logged like every runner-API request) arrives after every request the caller
/// saw answered before, and a request that arrives later has a number at least this. Not a
/// millisecond clock: a request answered in the marker's millisecond would count as after it.
pub fn server_mark(server: &TestServer) -> u64 {
    static MARKERS: AtomicU64 = AtomicU64::new(0);
    let path = format!("/api/v4/__test_clock/{}", MARKERS.fetch_add(1, Ordering::Relaxed));
    let (status, _) = http_get(server, &path);
    assert_eq!(status, 404, "the marker request is not part of the API");
    server
        .requests()
        .iter()
        .find(|r| r.path == path)
        .map(|r| r.arrival)
        .expect("the marker request is in the request log")
}

/// How many injected faults no request has taken yet (read over the control interface). A fault
/// is taken when its request arrives, so after a `Delay` fault is taken its request is being held.
pub fn pending_faults(server: &TestServer) -> usize {
    let (status, body) = http_get(server, "/__control/faults");
    assert_eq!(status, 200, "GET /__control/faults: {body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap().as_array().map_or(0, Vec::len)
}

/// `GET path` on the server, as HTTP/1.0 over a plain socket: (status, body). (reqwest's blocking
/// client is only there when the whole workspace is built, and a test binary built alone must
/// compile too.)
fn http_get(server: &TestServer, path: &str) -> (u16, String) {
    let addr = server.url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).expect("connect to the test server");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("the test server's answer");
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (status, body)
}

/// Polls `cond` every 10 ms until it holds (true) or `timeout` passed (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
