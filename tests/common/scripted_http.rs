//! A scripted HTTP server, for the few answers the test server does not give: GitLab's rate
//! limiter sends `RateLimit-ResetTime`, the test server has no rate limits. It answers the
//! requests it gets with its canned answers in order (the last one again once they run out), one
//! request per connection, and records when each request arrived and what its first line was.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request as the scripted server saw it.
#[derive(Clone, Debug)]
pub struct Arrival {
    pub at: Instant,
    /// `POST /api/v4/runners/verify HTTP/1.1`
    pub request_line: String,
}

pub struct ScriptedServer {
    url: String,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    stop: Arc<AtomicBool>,
}

/// One canned answer: the status line's code and reason, extra headers, a JSON body.
pub fn answer(status: &str, headers: &[(&str, String)], json_body: &str) -> String {
    let mut text = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{json_body}", json_body.len()));
    text
}

impl ScriptedServer {
    pub fn start(answers: Vec<String>) -> ScriptedServer {
        assert!(!answers.is_empty(), "a scripted server needs an answer");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (Arc::clone(&arrivals), Arc::clone(&stop));
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let text = answers[n.min(answers.len() - 1)].clone();
                serve(stream, &text, &seen);
            }
        });
        ScriptedServer { url, arrivals, stop }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

/// Reads one request (head and `Content-Length` body), records it, sends `text`, closes.
fn serve(stream: TcpStream, text: &str, seen: &Mutex<Vec<Arrival>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return; // the accept loop's wake-up, or a client that went away
    }
    let at = Instant::now();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    seen.lock().unwrap().push(Arrival { at, request_line: request_line.trim_end().to_string() });
    let mut stream = stream;
    let _ = stream.write_all(text.as_bytes());
    let _ = stream.flush();
}
