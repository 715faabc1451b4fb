//! Issue 16: the memory one big append keeps. A fresh process per measurement (the harness runs
//! this mode once per run), against a separate server process, so that the RSS is the client's.

use super::{arg_str, arg_u, Result};
use crate::capi::Runner;
use crate::content;
use crate::proc;
use serde_json::{json, Value};

/// Takes a job, then: RSS before; one `glr_job_log_append` of `mib` MiB from a buffer of the
/// caller's, which is then freed (a buffer this large is its own mapping, so freeing it gives
/// its pages back at once); RSS after. Then the same after `glr_job_log_flush` (the log
/// uploaded, what the job keeps for its lifetime: for a resend after a loss and for dumps).
pub fn rss_append(a: &Value) -> Result<Value> {
    let (url, reg, mib) = (arg_str(a, "url")?, arg_str(a, "reg")?, arg_u(a, "mib")?);
    let runner = Runner::register(&url, &reg)?;
    let job = runner.take_job()?;
    let before = proc::rss_kib();
    let text = content::stream(mib << 20);
    job.append(&text)?;
    drop(text);
    let after_append = proc::rss_kib();
    job.flush()?;
    let after_flush = proc::rss_kib();
    job.set_success()?;
    Ok(json!({
        "job": job.id(), "mib": mib, "rss_before_kib": before, "rss_after_append_kib": after_append,
        "rss_after_flush_kib": after_flush, "hwm_kib": proc::hwm_kib(),
    }))
}
