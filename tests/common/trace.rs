//! What the test server stored as a job's log (its trace), and assertions on it.

use glr_testserver::JobRecord;

/// The job's log as the server stored it (invalid UTF-8 shown as U+FFFD).
pub fn trace(job: &JobRecord) -> String {
    String::from_utf8_lossy(&job.trace).into_owned()
}

/// Asserts that `parts` appear in `text` in this order, without overlapping.
#[track_caller]
pub fn assert_in_order(text: &str, parts: &[&str]) {
    let mut at = 0;
    for part in parts {
        match text[at..].find(part) {
            Some(i) => at += i + part.len(),
            None => panic!("{part:?} missing from the log (or out of order: {parts:?}):\n{text}"),
        }
    }
}
