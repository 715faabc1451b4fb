//! Failure reasons: GitLab's own numbering (`CommitStatus.failure_reason`) for the ones a
//! runner may send, and the official runner's mapping against what the job's GitLab accepts.

/// (number, GitLab name) of every reason a runner may report.
pub const FAILURE_REASONS: &[(i32, &str)] = &[
    (0, "unknown_failure"),
    (1, "script_failure"),
    (2, "api_failure"),
    (3, "stuck_or_timeout_failure"),
    (4, "runner_system_failure"),
    (5, "missing_dependency_failure"),
    (6, "runner_unsupported"),
    (8, "job_execution_timeout"),
    (31, "runner_configuration_error"),
    (32, "runner_external_dependency_failure"),
    (33, "runner_interrupted"),
];

/// GitLab's name of failure reason `number`, or None for a number a runner may not send.
pub fn name_of(number: i32) -> Option<&'static str> {
    FAILURE_REASONS.iter().find(|(n, _)| *n == number).map(|(_, name)| *name)
}

/// Reasons every GitLab accepts even when its job payload does not list them.
const ALWAYS_SUPPORTED: &[&str] = &["script_failure", "runner_system_failure", "job_execution_timeout"];

/// Newer reasons and the older ones the official runner falls back to.
const COMPATIBILITY: &[(&str, &str)] = &[
    ("image_pull_failure", "runner_system_failure"),
    ("runner_configuration_error", "script_failure"),
    ("runner_external_dependency_failure", "runner_system_failure"),
];

/// The reason to send for `reason`, given the job's `features.failure_reasons`. Like the
/// official runner: as is when supported, else through the compatibility map, else
/// `unknown_failure`. A GitLab that sends no list at all predates the list: send as is.
pub fn map_for_gitlab(reason: &str, supported: Option<&[String]>) -> String {
    let Some(list) = supported else { return reason.to_string() };
    let ok = |r: &str| ALWAYS_SUPPORTED.contains(&r) || list.iter().any(|s| s == r);
    let mut current = reason;
    for _ in 0..10 {
        if ok(current) {
            return current.to_string();
        }
        match COMPATIBILITY.iter().find(|(from, _)| *from == current) {
            Some((_, to)) => current = to,
            None => break,
        }
    }
    "unknown_failure".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_gitlabs() {
        assert_eq!(name_of(1), Some("script_failure"));
        assert_eq!(name_of(8), Some("job_execution_timeout"));
        assert_eq!(name_of(33), Some("runner_interrupted"));
        assert_eq!(name_of(7), None);
        assert_eq!(name_of(-1), None);
    }

    #[test]
    fn mapping_follows_the_official_runner() {
        let old: Vec<String> =
            ["unknown_failure", "script_failure", "api_failure"].iter().map(|s| s.to_string()).collect();
        assert_eq!(map_for_gitlab("api_failure", Some(&old)), "api_failure");
        assert_eq!(map_for_gitlab("runner_system_failure", Some(&old)), "runner_system_failure");
        assert_eq!(map_for_gitlab("runner_configuration_error", Some(&old)), "script_failure");
        assert_eq!(map_for_gitlab("runner_external_dependency_failure", Some(&old)), "runner_system_failure");
        assert_eq!(map_for_gitlab("runner_interrupted", Some(&old)), "unknown_failure");
        assert_eq!(map_for_gitlab("runner_interrupted", None), "runner_interrupted");
    }
}
