//! The one shared HTTP client: user agent, timeouts, TLS (system trust store plus an optional
//! extra CA file), proxies from the environment, and retries with backoff like the official runner
//! (408, 429, 500, 502, 503, 504 and >= 512; at most 5 attempts; `Retry-After` honoured).
//! Transport only: what GitLab's endpoints, headers and statuses mean is `api`'s business.

use super::diag;
use super::error::{Error, ErrorKind, Result};
use super::sync::{read, write};
use reqwest::blocking::Client;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

/// At most this many attempts per request, as the official runner.
pub const MAX_ATTEMPTS: u32 = 5;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A `Retry-After` longer than this is cut short: a library call must not hang for hours.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Long enough for GitLab's long polling (Workhorse holds a job request up to ~50 s).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest answer of the API read into memory (job payloads are far smaller); a larger or
/// endless body is an error, not an allocation of everything the server sends until the timeout.
pub const MAX_RESPONSE_BODY: u64 = 64 * 1024 * 1024;

pub use reqwest::Method;

/// What a request carries.
pub enum Body {
    None,
    Json(serde_json::Value),
    Text(Vec<u8>),
}

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
        }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Body::Json(body);
        self
    }
    pub fn text(mut self, body: Vec<u8>) -> Self {
        self.body = Body::Text(body);
        self
    }
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// The secrets this request carries (token headers, the body's `token`), which an answer
    /// must not bring back into a message.
    fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> =
            self.headers.iter().filter(|(name, _)| name.contains("token")).map(|(_, v)| v.clone()).collect();
        if let Body::Json(v) = &self.body {
            if let Some(t) = v.get("token").and_then(|t| t.as_str()) {
                secrets.push(t.to_string());
            }
        }
        secrets
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

/// Sets the whole-request timeout of every later request (default 120 s, or `GLR_HTTP_TIMEOUT`).
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
fn client_builder() -> Result<reqwest::blocking::ClientBuilder> {
    let mut builder = Client::builder()
        .use_rustls_tls()
        .tls_built_in_native_certs(true)
        .tls_built_in_webpki_certs(true)
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .user_agent(user_agent())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(None::<Duration>)
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

fn finish_client(builder: reqwest::blocking::ClientBuilder) -> Result<Client> {
    builder.build().map_err(|e| Error::new(ErrorKind::Network, format!("cannot set up the HTTP client: {e}")))
}

fn build_client() -> Result<Client> {
    finish_client(client_builder()?)
}

fn client() -> Result<&'static Client> {
    static CLIENT: OnceLock<std::result::Result<Client, Error>> = OnceLock::new();
    CLIENT.get_or_init(build_client).as_ref().map_err(Clone::clone)
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

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(v).min(RETRY_AFTER_MAX))
}

fn request_id() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::getrandom(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Sends `req`, retrying as described above. Returns the final response whatever its status
/// (after the retries a retriable status is returned to the caller); errors only when no
/// response could be had.
pub fn send(req: &Request) -> Result<Response> {
    let client = client()?;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match send_once(client, req) {
            Ok((status, headers, body)) => {
                if is_retriable_status(status) && attempt < MAX_ATTEMPTS {
                    let wait = retry_after(&headers).unwrap_or_else(|| backoff(attempt - 1));
                    diag::debug(&format!(
                        "{}: {status}, retrying in {} ms (attempt {attempt} of {MAX_ATTEMPTS})",
                        req.what,
                        wait.as_millis()
                    ));
                    std::thread::sleep(wait);
                    continue;
                }
                return Ok(Response {
                    status,
                    headers,
                    body,
                    attempts: attempt,
                    what: req.what.clone(),
                    secrets: req.secrets(),
                });
            }
            Err(SendError::TooLarge) => {
                return Err(Error::new(
                    ErrorKind::Network,
                    format!("{}: the answer is larger than {} MiB; not read", req.what, MAX_RESPONSE_BODY >> 20),
                ));
            }
            Err(failure) => {
                let (may_retry, why) = match failure {
                    SendError::Transport(e) => (e.is_connect() || req.idempotent, describe(&e)),
                    SendError::Body(e) => (req.idempotent, format!("the response was cut short ({e})")),
                    SendError::TooLarge => unreachable!("handled above"),
                };
                if may_retry && attempt < MAX_ATTEMPTS {
                    let wait = backoff(attempt - 1);
                    diag::debug(&format!(
                        "{}: {why}, retrying in {} ms (attempt {attempt} of {MAX_ATTEMPTS})",
                        req.what,
                        wait.as_millis()
                    ));
                    std::thread::sleep(wait);
                    continue;
                }
                let tries = if attempt > 1 { format!(" after {attempt} attempts") } else { String::new() };
                return Err(Error::new(ErrorKind::Network, format!("{}: {why}{tries}", req.what)));
            }
        }
    }
}

/// Why one attempt got no usable response.
enum SendError {
    Transport(reqwest::Error),
    /// The body is larger than [`MAX_RESPONSE_BODY`] (a hostile or broken server).
    TooLarge,
    /// Reading the body failed with an error that is not reqwest's.
    Body(String),
}

impl From<reqwest::Error> for SendError {
    fn from(e: reqwest::Error) -> Self {
        SendError::Transport(e)
    }
}

fn send_once(client: &Client, req: &Request) -> std::result::Result<(u16, HeaderMap, Vec<u8>), SendError> {
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
        Body::Json(v) => builder
            .header("content-type", "application/json")
            .body(serde_json::to_vec(v).expect("a JSON value serialises")),
        Body::Text(bytes) => builder.header("content-type", "text/plain").body(bytes.clone()),
    };
    let mut resp = builder.send()?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    if resp.content_length().is_some_and(|n| n > MAX_RESPONSE_BODY) {
        return Err(SendError::TooLarge);
    }
    // Read at most one byte more than allowed: a server sending forever cannot fill the memory.
    let mut body = Vec::new();
    if let Err(e) = std::io::Read::read_to_end(&mut std::io::Read::take(&mut resp, MAX_RESPONSE_BODY + 1), &mut body) {
        // The blocking body reports reqwest's error inside an io::Error: keep its kind.
        let text = e.to_string();
        return Err(match e.into_inner().map(|inner| inner.downcast::<reqwest::Error>()) {
            Some(Ok(inner)) => SendError::Transport(*inner),
            _ => SendError::Body(text),
        });
    }
    if body.len() as u64 > MAX_RESPONSE_BODY {
        return Err(SendError::TooLarge);
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

// Streamed transfers (artifacts). Added after the rest so that the request functions above stay
// as they are: a second client with the same settings that never follows redirects, because
// artifact transfers must handle them themselves (a 307 on upload rebases the host, as the
// official runner does; a download redirected to object storage must not take the job token
// to another host; and a 301/302 must never turn a streamed POST into a GET).

/// Artifact transfers may take long: at least this much for the whole request.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(3600);

/// Transfers handle redirects themselves (so a job token never follows one to another host).
fn build_transfer_client() -> Result<Client> {
    finish_client(client_builder()?.redirect(reqwest::redirect::Policy::none()))
}

fn transfer_client() -> Result<&'static Client> {
    static CLIENT: OnceLock<std::result::Result<Client, Error>> = OnceLock::new();
    CLIENT.get_or_init(build_transfer_client).as_ref().map_err(Clone::clone)
}

/// One attempt of a streamed transfer (no retries, redirects returned to the caller, whole
/// request including the body limited to max(request timeout, 1 h)). `headers` are sent as
/// given (plus `X-Request-Id`); `form` is a multipart body streamed from its readers. The
/// caller reads the returned response (status, headers, streamed body). Transport failures are
/// `ErrorKind::Network` errors naming `what`, never the URL.
pub fn send_transfer(
    method: Method,
    url: &str,
    what: &str,
    headers: &[(&str, &str)],
    form: Option<reqwest::blocking::multipart::Form>,
) -> Result<reqwest::blocking::Response> {
    let client = transfer_client()?;
    let mut builder = client
        .request(method, url)
        .header("x-request-id", request_id())
        .timeout(request_timeout().max(TRANSFER_TIMEOUT));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if let Some(form) = form {
        builder = builder.multipart(form);
    }
    builder.send().map_err(|e| transfer_error(what, &e))
}

/// A transport error of a transfer (also while reading its body) in words, without the URL.
pub fn transfer_error(what: &str, e: &reqwest::Error) -> Error {
    Error::new(ErrorKind::Network, format!("{what}: {}", describe(e)))
}

/// `Retry-After` (seconds) of a response, capped like the retries above.
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
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) >= BACKOFF_MIN && backoff(0) < BACKOFF_MIN * 2);
        assert!(backoff(3) >= BACKOFF_MIN * 8);
        assert!(backoff(30) <= BACKOFF_MAX + BACKOFF_MAX / 4);
    }
}
