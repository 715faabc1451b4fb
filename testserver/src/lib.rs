//! `glr_testserver`: a faithful double of GitLab's runner API (`/api/v4/runners*`,
//! `/api/v4/jobs*`) for testing `gitlab_runner_api` and your own runners without a GitLab.
//!
//! It reproduces GitLab's status codes, headers and bodies as described in the project's protocol
//! reference (registration and glrt- tokens, runner managers, long polling with
//! `X-GitLab-Last-Update`, two-phase job commit, `Job-Status`, trace offsets with `Range`/416,
//! 202 "still persisting" final updates, artifacts) and rejects what GitLab rejects. It shares no
//! code with the library: it is an independent reading of the protocol.
//!
//! ```no_run
//! use glr_testserver::TestServer;
//! let server = TestServer::start();
//! let job_id = server.queue_job(serde_json::json!({"job_info": {"name": "build"}}));
//! // ... point a runner at server.url() with server.registration_token() ...
//! let job = server.job(job_id).unwrap();
//! println!("{} {}", job.state, String::from_utf8_lossy(&job.trace));
//! ```
//!
//! The server runs on its own tokio runtime (background threads) and stops when dropped; the API
//! is synchronous and can be used from any thread. The same operations are available over HTTP
//! under `/__control/` (see README.md).

// Handlers return a ready `Response` as their error value on purpose (it *is* the answer);
// boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod clocks;
mod config;
mod control;
mod faults;
mod gateway;
mod model;
mod payload_template;
mod queue;
mod range;
mod redact;
mod reqlog;
mod routes;
mod server;
mod state;
mod util;
mod zip;

pub use config::{Config, MEGABYTE};
pub use model::{
    ArtifactRecord, Endpoint, Fault, FaultKind, JobRecord, ManagerRecord, RequestRecord, RunnerOptions, RunnerRecord,
};
pub use payload_template::DEFAULT_MASKED_VALUE;
pub use util::base64_encode;

use state::Shared;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A running test server. `Send + Sync`; dropping it stops the server.
pub struct TestServer {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: watch::Sender<bool>,
}

impl TestServer {
    /// Start with [`Config::default()`] on a free loopback port. Panics if it cannot listen.
    pub fn start() -> TestServer {
        TestServer::start_with(Config::default())
    }

    /// Start with `config`. Panics if it cannot listen (see [`TestServer::try_start_with`]).
    pub fn start_with(config: Config) -> TestServer {
        match TestServer::try_start_with(config) {
            Ok(s) => s,
            Err(e) => panic!("glr-testserver: cannot start: {e}"),
        }
    }

    pub fn try_start_with(config: Config) -> std::io::Result<TestServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("glr-testserver")
            .enable_io()
            .enable_time()
            .build()?;
        // Entering (not block_on) works even when the caller is itself inside a runtime.
        let listener = {
            let _guard = runtime.enter();
            server::bind(config.listen)?
        };
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared::new(config, url));
        let router = server::router(shared.clone());
        let (shutdown, rx) = watch::channel(false);
        runtime.spawn(clocks::run(shared.clone(), rx.clone()));
        runtime.spawn(server::serve(listener, router, rx));
        Ok(TestServer { shared, runtime: Some(runtime), shutdown })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The registration token created at start.
    pub fn registration_token(&self) -> String {
        self.shared.lock().default_registration_token.clone()
    }

    /// Another valid registration token.
    pub fn create_registration_token(&self) -> String {
        self.shared.new_registration_token()
    }

    /// A runner created "in the UI" (new workflow); returns its `glrt-` authentication token.
    pub fn create_runner_token(&self) -> String {
        self.shared.create_runner(&RunnerOptions::default()).1
    }

    /// Like [`TestServer::create_runner_token`] with server-side settings; returns (id, token).
    pub fn create_runner(&self, options: RunnerOptions) -> (i64, String) {
        self.shared.create_runner(&options)
    }

    /// Queue a job built from the default payload with `overrides` deep-merged in (objects
    /// merged, arrays and scalars replaced; `variables` merged by key; `id`/`token` are the
    /// server's). Returns the job id. Wakes long-polling runners.
    pub fn queue_job(&self, overrides: serde_json::Value) -> i64 {
        self.shared.queue_job(&overrides, Vec::new()).0
    }

    /// [`TestServer::queue_job`] for a tagged job (only runners with all these tags get it).
    pub fn queue_job_with_tags(&self, overrides: serde_json::Value, tags: &[&str]) -> i64 {
        let tags = tags.iter().map(|t| t.to_string()).collect();
        self.shared.queue_job(&overrides, tags).0
    }

    /// Cancel like GitLab: a pending job becomes `canceled`; a running job becomes `canceling`
    /// when `graceful` and its runner manager advertised `cancel_gracefully`, else `canceled`.
    pub fn cancel_job(&self, id: i64, graceful: bool) {
        self.shared.cancel_job(id, graceful);
    }

    /// Cut a job's stored trace to its first `len` bytes, as GitLab does when live trace chunks
    /// are lost (e.g. a Redis flush): the next PATCH from the runner gets 416 with the new size.
    pub fn truncate_trace(&self, id: i64, len: usize) {
        if let Some(job) = self.shared.lock().jobs.get_mut(&id) {
            job.trace.truncate(len);
        }
    }

    /// Add a fault for the next `fault.count` requests to `fault.endpoint` (faults are used in
    /// the order they were added).
    pub fn inject_fault(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// Remove all pending faults.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// A snapshot of one job.
    pub fn job(&self, id: i64) -> Option<JobRecord> {
        self.shared.lock().jobs.get(&id).map(|j| j.record())
    }

    /// Snapshots of all jobs (including the fixture job whose archive the default payload's
    /// dependency points to).
    pub fn jobs(&self) -> Vec<JobRecord> {
        self.shared.lock().jobs.values().map(|j| j.record()).collect()
    }

    /// Poll (every 10 ms) until `pred` holds for the job or `timeout` passes.
    pub fn wait_for_job(&self, id: i64, timeout: Duration, pred: impl Fn(&JobRecord) -> bool) -> Option<JobRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            let j = self.job(id)?;
            if pred(&j) {
                return Some(j);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Snapshots of all runners and their managers.
    pub fn runners(&self) -> Vec<RunnerRecord> {
        self.shared.runner_records()
    }

    /// The request log (runner API only, tokens redacted).
    pub fn requests(&self) -> Vec<RequestRecord> {
        let log = self.shared.lock().requests.clone();
        reqlog::read_all(log, &self.shared.secrets())
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// The current settings.
    pub fn config(&self) -> Config {
        self.shared.config()
    }

    /// Change settings at runtime (`listen` has no effect once started).
    pub fn set_config(&self, f: impl FnOnce(&mut Config)) {
        let mut cfg = self.shared.config.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut cfg);
    }

    /// Block until SIGINT or SIGTERM (used by the `glr-testserver` binary).
    pub fn wait_for_shutdown_signal(&self) {
        let Some(rt) = &self.runtime else { return };
        rt.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
        });
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(rt) = self.runtime.take() {
            // Waiting for the workers is not allowed inside another runtime.
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(1));
            }
        }
    }
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer").field("url", &self.shared.base_url).finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_server_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::TestServer>();
    }

    /// Tests written with #[tokio::test] start and drop servers inside a runtime.
    #[test]
    fn starts_and_stops_inside_another_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let server = super::TestServer::start();
            assert!(server.url().starts_with("http://127.0.0.1:"));
            drop(server);
        });
    }
}
