//! GitLab's clocks: what happens to jobs when time passes without the runner.
//!
//! - A running job whose last update is older than `stale_job_timeout` is dropped with
//!   `stuck_or_timeout_failure` (GitLab: `Ci::StuckBuilds::DropRunningService`, 1 hour, from a
//!   periodic worker). The last update moves only through [`touch`].
//! - A two-phase-commit job not acknowledged within `ack_window` is failed
//!   `runner_provisioning_timeout` and retried as a new job (GitLab:
//!   `Ci::RetryWaitingJobService`, auto-retried at most twice for this reason).
//!
//! GitLab runs these from background workers; here one background task checks every
//! [`SWEEP_EVERY`], so a clock fires at most that much late. Token lifetimes need no task: they
//! are checked when a token is used, as GitLab checks them.

use crate::config::Config;
use crate::state::{Inner, Job, JobState, Shared};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the background task looks at the clocks.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// `Gitlab::Ci::Build::AutoRetry::DEFAULT_RETRIES[:runner_provisioning_timeout]`: a job that
/// already has this many retries behind it is not retried again.
pub(crate) const ACK_TIMEOUT_RETRIES: u32 = 2;

/// GitLab's `build.touch if build.needs_touch?`: the last update moves only when it is older
/// than the threshold, so frequent updates do not keep rewriting it.
pub(crate) fn touch(job: &mut Job, threshold: Duration, now: Instant) {
    if now.saturating_duration_since(job.updated_at) > threshold {
        job.updated_at = now;
    }
}

/// `Ci::JobToken::Jwt::Encode#expire_time`: issue time + max(DEFAULT_EXPIRE_TIME, the job's
/// timeout) + LEEWAY. The token is issued when the job is handed to a runner.
pub(crate) fn job_token_expiry(cfg: &Config, timeout_seconds: Option<i64>, issued: Instant) -> Instant {
    let timeout = Duration::from_secs(timeout_seconds.unwrap_or(0).max(0) as u64);
    issued + cfg.job_token_min_lifetime.max(timeout) + cfg.job_token_leeway
}

/// The background task; ends when the server shuts down.
pub(crate) async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => sweep(&shared, Instant::now()),
            _ = shutdown.changed() => break,
        }
    }
}

pub(crate) fn sweep(shared: &Shared, now: Instant) {
    let cfg = shared.config();
    let mut inner = shared.lock();
    for job in inner.jobs.values_mut() {
        if job.state == JobState::Running && now.saturating_duration_since(job.updated_at) > cfg.stale_job_timeout {
            job.drop_with("stuck_or_timeout_failure");
        }
    }
    let unacknowledged: Vec<i64> = inner
        .jobs
        .values()
        .filter(|j| j.waiting_ack && j.state == JobState::Pending)
        .filter(|j| j.ack_wait_since.is_some_and(|t| now.saturating_duration_since(t) >= cfg.ack_window))
        .map(|j| j.id)
        .collect();
    let mut requeued = false;
    for id in unacknowledged {
        requeued |= ack_timed_out(shared, &mut inner, id);
    }
    if requeued {
        shared.tick_queue(&mut inner);
    }
}

/// `build.drop!(:runner_provisioning_timeout)` and its automatic retry: a new job (new id, new
/// token, same pipeline and definition) at the end of the queue. Returns whether one was queued.
fn ack_timed_out(shared: &Shared, inner: &mut Inner, id: i64) -> bool {
    let Some(job) = inner.jobs.get_mut(&id) else { return false };
    job.drop_with("runner_provisioning_timeout");
    if job.retries >= ACK_TIMEOUT_RETRIES {
        return false;
    }
    let (overrides, tags, pipeline_id, retries) =
        (job.overrides.clone(), job.tags.clone(), job.pipeline_id, job.retries);
    let (new_id, _) = shared.insert_job(inner, &overrides, tags, pipeline_id);
    if let Some(new) = inner.jobs.get_mut(&new_id) {
        new.retries = retries + 1;
        new.retry_of = Some(id);
    }
    if let Some(old) = inner.jobs.get_mut(&id) {
        old.retried_as = Some(new_id);
    }
    true
}
