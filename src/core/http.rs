//! The one shared HTTP client: user agent, timeouts, TLS (system trust store plus an optional
//! extra CA file), proxies from the environment, and retries with backoff like the official runner
//! (408, 429, 500, 502, 503, 504 and >= 512; at most 5 attempts; the wait GitLab asks for, from
//! `RateLimit-ResetTime` or `Retry-After`, honoured within the call's bound).
//! Transport only: what GitLab's endpoints, headers and statuses mean is `api`'s business.
//!
//! Requests run on the library's own async runtime (one worker thread per process) while the
//! calling thread waits in `block_on`. That is what makes a call boundable and interruptible: a
//! [`Call`] carries its deadline and an [`Interrupter`] another thread may trigger, and when
//! either fires the request in progress is dropped (its connection closed) and the call returns
//! at once. The runtime, its connection pool and its clients are built per process
//! (`process::PerProcess`), so a `fork()`ed child gets working ones of its own.

use super::diag;
use super::error::{Error, ErrorKind, Result};
use super::process::PerProcess;
use super::sync::{read, write};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Client;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// At most this many attempts per request, as the official runner.
pub const MAX_ATTEMPTS: u32 = 5;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Long enough for GitLab's long polling (Workhorse holds a job request up to ~50 s).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest answer of the API read into memory (job payloads are far smaller); a larger or
/// endless body is an error, not an allocation of everything the server sends until the timeout.
pub const MAX_RESPONSE_BODY: u64 = 64 * 1024 * 1024;
/// Artifact transfers may take long: at least this much for the whole request.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(3600);

pub use reqwest::Method;

// ---------------------------------------------------------------------------------------------
// Bounds and interruptions of one call.

/// Ends the calls in progress that were started with it, at once, from any thread. Calls that
/// start afterwards are not affected (each remembers the count it started with).
#[derive(Debug, Default)]
pub struct Interrupter {
    count: AtomicU64,
    notify: tokio::sync::Notify,
}

impl Interrupter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Interrupts every call in progress that uses this interrupter.
    pub fn interrupt(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    fn current(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Resolves once `interrupt` was called after the count `since` was read.
    async fn interrupted_since(&self, since: u64) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so an interrupt between the two is not missed.
            notified.as_mut().enable();
            if self.current() != since {
                return;
            }
            notified.await;
        }
    }
}

/// What bounds one library call (its requests, retries and waits): a deadline, an interrupter
/// and why it would fire, and a flag that stops retrying (the attempt in progress still gets
/// its answer: a hand-over must know whether GitLab stored the text it sent). Owned (shared
/// parts behind `Arc`), because the call's work runs as a task on the library's runtime.
#[derive(Clone)]
pub struct Call {
    deadline: Option<Instant>,
    limit: Duration,
    interrupt: Option<(Arc<Interrupter>, u64, &'static str)>,
    stop_retrying: Option<Arc<AtomicBool>>,
    /// One attempt per request, no waiting: for the background, which serves many jobs and
    /// must not spend one job's backoff or Retry-After on all of them.
    single_attempt: bool,
}

impl Call {
    /// A call that may take `limit` in all (Duration::MAX: no bound besides each request's timeout).
    pub fn within(limit: Duration) -> Call {
        Call {
            deadline: Instant::now().checked_add(limit),
            limit,
            interrupt: None,
            stop_retrying: None,
            single_attempt: false,
        }
    }

    /// Also ended at once when `interrupter` fires; `why` says by whom in the message.
    pub fn interruptible(mut self, interrupter: &Arc<Interrupter>, why: &'static str) -> Call {
        self.interrupt = Some((interrupter.clone(), interrupter.current(), why));
        self
    }

    /// No new attempt once `flag` is set (the one in progress finishes).
    pub fn stop_retrying_when(mut self, flag: &Arc<AtomicBool>) -> Call {
        self.stop_retrying = Some(flag.clone());
        self
    }

    /// One attempt per request: a retriable answer or failure is returned at once (the caller
    /// schedules the next try itself).
    pub fn one_attempt(mut self) -> Call {
        self.single_attempt = true;
        self
    }

    fn retrying_stopped(&self) -> bool {
        self.single_attempt || self.stop_retrying.as_ref().is_some_and(|f| f.load(Ordering::Acquire))
    }

    /// Waits `wait` before a retry; false (at once) when retrying is stopped meanwhile: a
    /// hand-over must not wait for a backoff of up to a minute.
    async fn pause_before_retry(&self, wait: Duration) -> bool {
        let Some(flag) = &self.stop_retrying else {
            tokio::time::sleep(wait).await;
            return true;
        };
        let until = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < until {
            if flag.load(Ordering::Acquire) {
                return false;
            }
            tokio::time::sleep_until(until.min(tokio::time::Instant::now() + Duration::from_millis(20))).await;
        }
        !flag.load(Ordering::Acquire)
    }

    /// Err once the deadline passed or the interrupter fired.
    pub fn check(&self, what: &str) -> Result<()> {
        if let Some((i, since, why)) = &self.interrupt {
            if i.current() != *since {
                return Err(self.interrupted_error(what, why));
            }
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(self.timeout_error(what));
        }
        Ok(())
    }

    fn interrupted_error(&self, what: &str, why: &str) -> Error {
        Error::new(ErrorKind::Interrupted, format!("{what}: interrupted ({why})"))
    }

    fn timeout_error(&self, what: &str) -> Error {
        Error::new(ErrorKind::Timeout, format!("{what}: the call's time limit of {} ran out", human(self.limit)))
    }

    /// Sleeps `wait`, or less: Err when the deadline or the interrupter ends the call first.
    pub fn sleep(&self, what: &str, wait: Duration) -> Result<()> {
        bounded(self, what, async move {
            tokio::time::sleep(wait).await;
            Ok(())
        })
    }
}

/// `1.5 s`, `5 min` for messages.
fn human(d: Duration) -> String {
    if d >= Duration::from_secs(120) && d.as_secs().is_multiple_of(60) {
        format!("{} min", d.as_secs() / 60)
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

// ---------------------------------------------------------------------------------------------
// The runtime and the clients, one set per process.

struct Transport {
    runtime: tokio::runtime::Runtime,
    /// API requests: follows redirects as reqwest does.
    api: Client,
    /// Artifact transfers: never follows redirects, because they handle them themselves (a 307
    /// on upload rebases the host, as the official runner does; a download redirected to object
    /// storage must not take the job token to another host; a 301/302 must never turn a
    /// streamed POST into a GET).
    transfers: Client,
}

fn build_transport() -> std::result::Result<Transport, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(4)
        .thread_name("glr-http")
        .enable_all()
        .build()
        .map_err(|e| Error::new(ErrorKind::Network, format!("cannot start the HTTP runtime: {e}")))?;
    let api = finish_client(client_builder()?)?;
    let transfers = finish_client(client_builder()?.redirect(reqwest::redirect::Policy::none()))?;
    Ok(Transport { runtime, api, transfers })
}

fn transport() -> Result<&'static Transport> {
    static TRANSPORT: PerProcess<std::result::Result<Transport, Error>> = PerProcess::new();
    match TRANSPORT.get(build_transport) {
        Some(t) => t.as_ref().map_err(Clone::clone),
        None => Err(Error::new(ErrorKind::Network, "this process was fork()ed too many generations deep")),
    }
}

/// Runs `work` as a task on the library's runtime to its end, unless the call's deadline or
/// interrupter ends it first (then `work` is dropped: a request in flight is abandoned, its
/// connection closed); the calling thread only waits for the result. So the request's deep state
/// machine (connect, TLS, HTTP) never runs on the caller's stack, which may be small (a
/// binding's worker thread, musl's 128 KiB default), and a caller inside another async runtime
/// does not nest runtimes.
fn bounded<T: Send + 'static>(
    call: &Call,
    what: &str,
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    call.check(what)?;
    let transport = transport()?;
    let call_in_task = call.clone();
    let (done, result) = std::sync::mpsc::sync_channel(1);
    transport.runtime.spawn(async move {
        let call = &call_in_task;
        let interrupted = async {
            match &call.interrupt {
                Some((i, since, _)) => i.interrupted_since(*since).await,
                None => std::future::pending().await,
            }
        };
        let deadline = async {
            match call.deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        // How the call ended; the caller words an interruption or a timeout (it has the
        // request's name, which the task then need not copy).
        let outcome = tokio::select! {
            result = work => Ended::Done(result),
            _ = interrupted => Ended::Interrupted,
            _ = deadline => Ended::TimedOut,
        };
        let _ = done.send(outcome);
    });
    match result.recv() {
        Ok(Ended::Done(result)) => result,
        Ok(Ended::Interrupted) => {
            Err(call.interrupted_error(what, call.interrupt.as_ref().map_or("", |(_, _, why)| why)))
        }
        Ok(Ended::TimedOut) => Err(call.timeout_error(what)),
        Err(_) => Err(Error::new(ErrorKind::Network, format!("{what}: the request's task ended without an answer"))),
    }
}

/// How a bounded call's task ended.
enum Ended<T> {
    Done(Result<T>),
    Interrupted,
    TimedOut,
}

// ---------------------------------------------------------------------------------------------
// API requests.

/// What a request carries.
#[derive(Clone)]
pub enum Body {
    None,
    /// Serialised once; resent as it is on each attempt.
    Json(Bytes),
    Text(Bytes),
}

#[derive(Clone)]
pub struct Request {
    pub method: Method,
    /// Full URL (base + `/api/v4/...`).
    pub url: String,
    /// Method and path for messages, e.g. `PATCH /api/v4/jobs/42/trace` (never a token).
    pub what: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    /// Safe to send twice: then transport failures after the request may have reached the
    /// server are retried too (a failure to connect is always retried).
    pub idempotent: bool,
    /// The secrets this request carries (token headers, the body's `token`), which an answer
    /// must not bring back into a message.
    secrets: Vec<String>,
}

impl Request {
    pub fn new(method: Method, base_url: &str, path: &str) -> Self {
        Request {
            what: format!("{method} {}", path.split('?').next().unwrap_or(path)),
            url: format!("{base_url}{path}"),
            method,
            headers: Vec::new(),
            body: Body::None,
            idempotent: false,
            secrets: Vec::new(),
        }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        let value = value.into();
        if name.contains("token") {
            self.secrets.push(value.clone());
        }
        self.headers.push((name, value));
        self
    }
    /// The body, serialised once (resent as it is on each attempt). A token in it that is not
    /// also in a `*-token` header must be named with [`Request::secret`].
    pub fn json(mut self, body: &impl serde::Serialize) -> Self {
        self.body = Body::Json(serde_json::to_vec(body).expect("a request body serialises").into());
        self
    }
    /// A secret the request carries (masked in messages built from the answer).
    pub fn secret(mut self, value: &str) -> Self {
        self.secrets.push(value.to_string());
        self
    }
    pub fn text(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Body::Text(body.into());
        self
    }
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }
}

/// `text` with every occurrence of each secret replaced by `[MASKED]`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, "[MASKED]");
    }
    out
}

pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// How many attempts it took (for messages).
    pub attempts: u32,
    pub what: String,
    /// The request's tokens, masked in messages built from the answer (a server or proxy may
    /// echo them; GitLab does not).
    pub secrets: Vec<String>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
    }
}

fn timeout_setting() -> &'static RwLock<Duration> {
    static T: OnceLock<RwLock<Duration>> = OnceLock::new();
    T.get_or_init(|| {
        let from_env = std::env::var("GLR_HTTP_TIMEOUT")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map(Duration::from_secs);
        RwLock::new(from_env.unwrap_or(DEFAULT_REQUEST_TIMEOUT))
    })
}

/// Sets the timeout of each later request (one attempt; default 120 s, or `GLR_HTTP_TIMEOUT`).
pub fn set_request_timeout(timeout: Duration) {
    *write(timeout_setting()) = timeout;
}

pub fn request_timeout() -> Duration {
    *read(timeout_setting())
}

fn user_agent() -> String {
    format!("gitlab_runner_api/{} ({}; {})", env!("CARGO_PKG_VERSION"), std::env::consts::OS, std::env::consts::ARCH)
}

/// The settings every client shares: TLS (system roots, webpki roots, an extra CA file from
/// `GLR_CA_FILE`), user agent, connect timeout, idle pool.
fn client_builder() -> Result<reqwest::ClientBuilder> {
    let mut builder = Client::builder()
        .use_rustls_tls()
        .tls_built_in_native_certs(true)
        .tls_built_in_webpki_certs(true)
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .user_agent(user_agent())
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(90));
    if let Ok(path) = std::env::var("GLR_CA_FILE") {
        if !path.is_empty() {
            let pem =
                std::fs::read(&path).map_err(|e| Error::io(format!("extra CA file {path} (GLR_CA_FILE): {e}")))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::invalid(format!("extra CA file {path} (GLR_CA_FILE): not PEM certificates: {e}"))
            })?;
            if certs.is_empty() {
                return Err(Error::invalid(format!("extra CA file {path} (GLR_CA_FILE) holds no certificate")));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
    }
    Ok(builder)
}

fn finish_client(builder: reqwest::ClientBuilder) -> std::result::Result<Client, Error> {
    builder.build().map_err(|e| Error::new(ErrorKind::Network, format!("cannot set up the HTTP client: {e}")))
}

fn is_retriable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504) || status >= 512
}

fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_MIN.saturating_mul(1u32 << attempt.min(16));
    let exp = exp.min(BACKOFF_MAX);
    // Up to 25 % jitter so many runners do not retry in lockstep.
    let mut b = [0u8; 2];
    let _ = getrandom::getrandom(&mut b);
    let jitter = exp.mul_f64(f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX) * 0.25);
    exp + jitter
}

/// The wait a server asks for before a retry, as the official runner reads it:
/// `RateLimit-ResetTime` (an HTTP date) first, else `Retry-After` (seconds, or an HTTP date).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let until = |date: &str| {
        let secs = super::time::parse_http_date(date)? - super::time::unix_now();
        Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
    };
    if let Some(wait) = header("ratelimit-resettime").and_then(until) {
        return Some(wait);
    }
    let v = header("retry-after")?;
    v.parse::<u64>().ok().map(Duration::from_secs).or_else(|| until(v))
}

/// 32 hex digits that look random, as the official runner's `X-Request-Id`, and never repeat in
/// a process: a counter mixed with a key drawn from the OS once per process (a fork()ed child
/// draws its own, so parent and child do not send the same ids). Not a system call per request.
fn request_id() -> String {
    struct Ids {
        key: [u64; 2],
        next: AtomicU64,
    }
    static IDS: PerProcess<Ids> = PerProcess::new();
    let ids = IDS.get(|| {
        let mut b = [0u8; 16];
        let _ = getrandom::getrandom(&mut b);
        let (hi, lo) = b.split_at(8);
        let word = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8 bytes"));
        Ids { key: [word(hi), word(lo)], next: AtomicU64::new(0) }
    });
    let (high, low) = match ids {
        Some(ids) => {
            let n = ids.next.fetch_add(1, Ordering::Relaxed);
            // Both halves are bijections of the counter, so no two requests share an id.
            (mix(ids.key[0] ^ n), mix(ids.key[1].wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15))))
        }
        None => {
            let mut b = [0u8; 16];
            let _ = getrandom::getrandom(&mut b);
            let (hi, lo) = b.split_at(8);
            (u64::from_le_bytes(hi.try_into().expect("8 bytes")), u64::from_le_bytes(lo.try_into().expect("8 bytes")))
        }
    };
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for word in [high, low] {
        for shift in (0..16).rev() {
            id.push(HEX[(word >> (shift * 4)) as usize & 15] as char);
        }
    }
    id
}

/// SplitMix64's finaliser: a bijection of u64 whose output bits each depend on every input bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Sends `req`, retrying as described above, within the bounds of `call`. Returns the final
/// response whatever its status (after the retries a retriable status is returned to the
/// caller); errors only when no response could be had, or when `call` ran out (`Timeout`) or
/// was interrupted (`Interrupted`).
pub fn send(mut req: Request, call: &Call) -> Result<Response> {
    let client = transport()?.api.clone();
    let call_in_task = call.clone();
    let what = req.what.clone();
    bounded(call, &what, async move {
        let call = &call_in_task;
        let client = &client;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let last_attempt = attempt >= MAX_ATTEMPTS || call.retrying_stopped();
            match send_once(client, &req).await {
                Ok((status, headers, body)) => {
                    // The wait is worked out only for a status to retry (its jitter draws
                    // random bytes: not for every answer).
                    let retry = is_retriable_status(status) && !last_attempt;
                    let wait = if retry {
                        retry_after(&headers).unwrap_or_else(|| backoff(attempt - 1))
                    } else {
                        Duration::ZERO
                    };
                    // A wait beyond the call's bound would only end in a timeout: answer now.
                    let in_time = call.deadline.is_none_or(|d| Instant::now() + wait < d);
                    if retry && in_time {
                        diag::debug(&format!(
                            "{}: {status}, retrying in {} ms (attempt {attempt} of {MAX_ATTEMPTS})",
                            req.what,
                            wait.as_millis()
                        ));
                        if call.pause_before_retry(wait).await {
                            continue;
                        }
                    }
                    return Ok(Response {
                        status,
                        headers,
                        body,
                        attempts: attempt,
                        what: std::mem::take(&mut req.what),
                        secrets: std::mem::take(&mut req.secrets),
                    });
                }
                Err(SendError::TooLarge) => {
                    return Err(Error::new(
                        ErrorKind::Network,
                        format!("{}: the answer is larger than {} MiB; not read", req.what, MAX_RESPONSE_BODY >> 20),
                    ));
                }
                Err(SendError::Transport(e)) => {
                    let may_retry = e.is_connect() || req.idempotent;
                    let why = describe(&e);
                    if may_retry && !last_attempt {
                        let wait = backoff(attempt - 1);
                        diag::debug(&format!(
                            "{}: {why}, retrying in {} ms (attempt {attempt} of {MAX_ATTEMPTS})",
                            req.what,
                            wait.as_millis()
                        ));
                        if call.pause_before_retry(wait).await {
                            continue;
                        }
                    }
                    let tries = if attempt > 1 { format!(" after {attempt} attempts") } else { String::new() };
                    return Err(Error::new(ErrorKind::Network, format!("{}: {why}{tries}", req.what)));
                }
            }
        }
    })
}

/// Why one attempt got no usable response.
enum SendError {
    Transport(reqwest::Error),
    /// The body is larger than [`MAX_RESPONSE_BODY`] (a hostile or broken server).
    TooLarge,
}

impl From<reqwest::Error> for SendError {
    fn from(e: reqwest::Error) -> Self {
        SendError::Transport(e)
    }
}

async fn send_once(client: &Client, req: &Request) -> std::result::Result<(u16, HeaderMap, Vec<u8>), SendError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &req.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            headers.insert(n, v);
        }
    }
    headers.insert("x-request-id", HeaderValue::from_str(&request_id()).expect("hex is a valid header value"));
    let mut builder = client.request(req.method.clone(), &req.url).headers(headers).timeout(request_timeout());
    builder = match &req.body {
        Body::None => builder,
        Body::Json(bytes) => builder.header("content-type", "application/json").body(bytes.clone()),
        Body::Text(bytes) => builder.header("content-type", "text/plain").body(bytes.clone()),
    };
    let mut resp = builder.send().await?;
    let status = resp.status().as_u16();
    let headers = std::mem::take(resp.headers_mut());
    if resp.content_length().is_some_and(|n| n > MAX_RESPONSE_BODY) {
        return Err(SendError::TooLarge);
    }
    // Stop one chunk past the limit: a server sending forever cannot fill the memory.
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > MAX_RESPONSE_BODY {
            return Err(SendError::TooLarge);
        }
    }
    Ok((status, headers, body))
}

/// A transport error in words, without the URL (reqwest puts it in its Display) so that a
/// URL with credentials in it can never reach a message.
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the response was cut short"
    } else if e.is_request() {
        "the request failed"
    } else {
        "network error"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what} ({detail})")
    }
}

// ---------------------------------------------------------------------------------------------
// Streamed transfers (artifacts).

/// One attempt of a streamed transfer (no retries, redirects returned to the caller, the whole
/// request including the body limited to max(request timeout, 1 h) and by `call`). `headers`
/// are sent as given (plus `X-Request-Id`); `form` is a multipart body streamed from its
/// readers. `read` gets the response (status, headers, streamed body) and returns what the
/// caller makes of it. Transport failures are `ErrorKind::Network` errors naming `what`, never
/// the URL.
pub fn transfer<T, F, Fut>(
    call: &Call,
    method: Method,
    url: &str,
    what: &str,
    headers: &[(&str, &str)],
    form: Option<reqwest::multipart::Form>,
    read: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(reqwest::Response) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>> + Send,
{
    let client = transport()?.transfers.clone();
    let (url, label) = (url.to_string(), what.to_string());
    let headers: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    bounded(call, what, async move {
        let what = label.as_str();
        let mut builder = client
            .request(method, &url)
            .header("x-request-id", request_id())
            .timeout(request_timeout().max(TRANSFER_TIMEOUT));
        for (name, value) in &headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(form) = form {
            builder = builder.multipart(form);
        }
        let resp = builder.send().await.map_err(|e| transfer_error(what, &e))?;
        read(resp).await
    })
}

/// A multipart part streamed from `file` (read on the runtime's blocking threads), `size` bytes.
pub fn file_part(file: std::fs::File, size: u64) -> reqwest::multipart::Part {
    let stream = tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 256 * 1024);
    reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), size)
}

/// A transport error of a transfer (also while reading its body) in words, without the URL.
pub fn transfer_error(what: &str, e: &reqwest::Error) -> Error {
    Error::new(ErrorKind::Network, format!("{what}: {}", describe(e)))
}

/// The wait a response asks for (`RateLimit-ResetTime`, `Retry-After`), as the retries above.
pub fn retry_after_of(headers: &HeaderMap) -> Option<Duration> {
    retry_after(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriable_statuses_match_the_official_runner() {
        for s in [408, 429, 500, 502, 503, 504, 512, 599] {
            assert!(is_retriable_status(s), "{s}");
        }
        for s in [200, 201, 204, 400, 403, 404, 409, 416, 501, 505, 511] {
            assert!(!is_retriable_status(s), "{s}");
        }
    }

    #[test]
    fn request_ids_are_32_hex_digits_and_never_repeat() {
        let ids: Vec<String> = (0..100_000).map(|_| request_id()).collect();
        assert!(ids
            .iter()
            .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())));
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "an id repeated");
        // Consecutive ids look unrelated (about half their bits differ), as random ones would.
        let bits = |a: &str, b: &str| {
            let n = |s: &str| u128::from_str_radix(s, 16).unwrap();
            (n(a) ^ n(b)).count_ones()
        };
        let mean = ids.windows(2).map(|w| bits(&w[0], &w[1]) as f64).sum::<f64>() / (ids.len() - 1) as f64;
        assert!((56.0..72.0).contains(&mean), "consecutive ids differ in {mean} bits on average");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) >= BACKOFF_MIN && backoff(0) < BACKOFF_MIN * 2);
        assert!(backoff(3) >= BACKOFF_MIN * 8);
        assert!(backoff(30) <= BACKOFF_MAX + BACKOFF_MAX / 4);
    }

    #[test]
    fn the_wait_gitlab_asks_for_is_read_as_the_official_runner_reads_it() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("600"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(600)), "not cut short: the call's bound decides");
        let in_90_s = super::super::time::unix_now() + 90;
        let date = |t: i64| {
            // An HTTP date for unix time t (weekday is not checked by the parser).
            let s = super::super::time::format_rfc3339(t);
            let (y, mo, d, hms) = (&s[0..4], &s[5..7], &s[8..10], &s[11..19]);
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
            format!("Mon, {d} {} {y} {hms} GMT", months[mo.parse::<usize>().unwrap() - 1])
        };
        h.insert("ratelimit-resettime", HeaderValue::from_str(&date(in_90_s)).unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(
            wait <= Duration::from_secs(90) && wait >= Duration::from_secs(85),
            "RateLimit-ResetTime first: {wait:?}"
        );
        h.remove("ratelimit-resettime");
        h.insert("retry-after", HeaderValue::from_str(&date(in_90_s)).unwrap());
        assert!(retry_after(&h).unwrap() >= Duration::from_secs(85), "Retry-After as a date");
    }

    #[test]
    fn a_call_ends_at_its_deadline_or_when_interrupted() {
        let started = Instant::now();
        let call = Call::within(Duration::from_millis(200));
        let e = call.sleep("waiting", Duration::from_secs(30)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert_eq!(e.message, "waiting: the call's time limit of 0.2 s ran out");
        assert!(started.elapsed() < Duration::from_secs(5));

        let interrupter = Arc::new(Interrupter::new());
        let before = Arc::new(Interrupter::new());
        before.interrupt(); // an interrupt before the call does not end it
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                interrupter.interrupt();
            });
            let call = Call::within(Duration::from_secs(60)).interruptible(&interrupter, "by a test");
            let e = call.sleep("polling", Duration::from_secs(30)).unwrap_err();
            assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Interrupted, "polling: interrupted (by a test)"));
        });
        let call = Call::within(Duration::from_secs(60)).interruptible(&before, "earlier");
        assert!(call.sleep("short", Duration::from_millis(10)).is_ok());
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
