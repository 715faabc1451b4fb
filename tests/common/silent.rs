//! A server that accepts connections, reads what is sent and never answers: the network at its
//! most unhelpful, for calls that must end by their own time bound. Also pointing a runner or a
//! job taken from the test server at another URL (their dumps, with the URL replaced).

use super::ffi::{c, ok, owned};
use gitlab_runner_api::ffi::job::{glr_job, glr_job_dumps, glr_job_loads};
use gitlab_runner_api::ffi::runner::{glr_runner, glr_runner_dumps, glr_runner_loads};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Accepts every connection and never writes a byte; stops (and closes them) when dropped.
pub struct SilentServer {
    url: String,
    stop: Arc<AtomicBool>,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("local_addr"));
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || swallow(conn, &s));
            }
        });
        SilentServer { url, stop }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Reads (and discards) until the client gives up or the server stops; never answers.
fn swallow(mut conn: TcpStream, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

/// A new handle of `runner` whose API URL is `to` instead of `from` (offline: a dump, edited).
pub fn runner_moved(runner: *const glr_runner, from: &str, to: &str) -> *mut glr_runner {
    let mut dump = ptr::null_mut();
    ok(unsafe { glr_runner_dumps(runner, &mut dump) });
    let mut moved = ptr::null_mut();
    ok(unsafe { glr_runner_loads(c(&owned(dump).replace(from, to)).as_ptr(), &mut moved) });
    moved
}

/// A new owner of `job` (from its dump) whose API URL is `to` instead of `from`. The original
/// handle still owns the job too: use it no more than to free it.
pub fn job_moved(job: *const glr_job, from: &str, to: &str) -> *mut glr_job {
    let mut dump = ptr::null_mut();
    ok(unsafe { glr_job_dumps(job, &mut dump) });
    let mut moved = ptr::null_mut();
    ok(unsafe { glr_job_loads(c(&owned(dump).replace(from, to)).as_ptr(), &mut moved) });
    moved
}
