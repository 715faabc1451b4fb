//! The runner's authentication token over its lifetime. GitLab may give tokens an expiry
//! (`token_expires_at`); an expired token is refused everywhere, the reset endpoint included, so
//! a runner must rotate before: like the official runner, at 75 % of the lifetime
//! (`TokenResetIntervalFactor`), on its next network call.
//!
//! A runner loaded from a file keeps that file current: the rotation rewrites it (atomically,
//! mode 0600) while holding an exclusive lock on `<file>.lock`, so of several processes sharing
//! the file one rotates; the others, when GitLab refuses their old token, re-read the file and
//! retry once with the token found there.

use crate::core::error::{Error, Result};
use crate::core::http::Call;
use crate::core::model::RunnerData;
use crate::core::{diag, persist, time};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The fraction of a token's lifetime after which it is rotated (the official runner's).
const ROTATE_AT: f64 = 0.75;

/// The token and what is known of its lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Token {
    pub(super) value: String,
    /// GitLab's `token_expires_at`, as it sent it.
    pub(super) expires_at: Option<String>,
    /// When this token was obtained (RFC 3339).
    pub(super) obtained_at: Option<String>,
}

impl Token {
    pub(super) fn of(data: &RunnerData) -> Token {
        Token {
            value: data.token.clone(),
            expires_at: data.token_expires_at.clone(),
            obtained_at: data.token_obtained_at.clone(),
        }
    }

    /// A token GitLab just handed out, obtained now.
    pub(super) fn fresh(value: String, expires_at: Option<String>) -> Token {
        Token { value, expires_at, obtained_at: Some(time::format_rfc3339(time::unix_now())) }
    }

    pub(super) fn write_into(&self, data: &mut RunnerData) {
        data.token = self.value.clone();
        data.token_expires_at = self.expires_at.clone();
        data.token_obtained_at = self.obtained_at.clone();
    }

    /// Unix time at which it should be rotated; None when it does not expire (or GitLab's
    /// expiry cannot be read). Without a known start, the lifetime is taken to start at `since`
    /// (when this process got the runner): later than the truth, never past the expiry.
    pub(super) fn rotate_at(&self, since: i64) -> Option<i64> {
        let expires = time::parse_rfc3339(self.expires_at.as_deref()?)?;
        let obtained = self.obtained_at.as_deref().and_then(time::parse_rfc3339).unwrap_or(since).min(expires);
        Some(obtained + ((expires - obtained) as f64 * ROTATE_AT) as i64)
    }
}

/// `<file>.lock`: the lock file of a runner file (a separate file, because the runner file is
/// replaced by rename, which a lock on it would not survive).
fn lock_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    file.with_file_name(name)
}

/// An exclusive lock on a runner file, held until dropped.
pub(super) struct FileLock {
    _file: File,
}

/// Takes the lock of `runner_file`, waiting for another process within the bounds of `call`.
pub(super) fn lock_file(runner_file: &Path, call: &Call) -> Result<FileLock> {
    let path = lock_path(runner_file);
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&path).map_err(|e| Error::io(format!("runner file lock {}: {e}", path.display())))?;
    let mut pause = Duration::from_millis(5);
    loop {
        match crate::os::try_lock_exclusive(&file) {
            Ok(true) => return Ok(FileLock { _file: file }),
            Ok(false) => {
                call.check(&format!("waiting for the lock of {}", runner_file.display()))?;
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(e) => return Err(Error::io(format!("runner file lock {}: {e}", path.display()))),
        }
    }
}

/// The runner file as it is now (None when it cannot be read or parsed: then ours is written).
pub(super) fn read_file(runner_file: &Path) -> Option<RunnerData> {
    let text = persist::read_file(runner_file).ok()?;
    match persist::runner_from_str(&text) {
        Ok(data) => Some(data),
        Err(e) => {
            diag::warn(&format!(
                "runner file {}: cannot be read back ({e}); it will be rewritten",
                runner_file.display()
            ));
            None
        }
    }
}

/// Writes `token` into the runner file: what the file holds (another process may have set its
/// own system_id, features...) with the token fields replaced, or `ours` when it is unreadable.
/// Atomic, mode 0600. The caller holds the file's lock.
pub(super) fn write_token(runner_file: &Path, token: &Token, ours: &RunnerData) -> Result<()> {
    let mut data = read_file(runner_file).unwrap_or_else(|| ours.clone());
    token.write_into(&mut data);
    persist::write_file_atomic(runner_file, &persist::runner_to_string(&data))
        .map_err(|e| e.context("the runner's new token could not be saved in its file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_is_due_at_three_quarters_of_the_lifetime() {
        let t = |obtained: Option<&str>, expires: Option<&str>| Token {
            value: "x".into(),
            obtained_at: obtained.map(String::from),
            expires_at: expires.map(String::from),
        };
        let day0 = time::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        let four_days = t(Some("2030-01-01T00:00:00Z"), Some("2030-01-05T00:00:00.000Z"));
        assert_eq!(four_days.rotate_at(0), Some(day0 + 3 * 86_400));
        assert_eq!(t(None, None).rotate_at(day0), None, "no expiry: never");
        assert_eq!(t(Some("2030-01-01T00:00:00Z"), Some("garbage")).rotate_at(day0), None);
        // Unknown start: counted from when this process got the runner.
        assert_eq!(t(None, Some("2030-01-05T00:00:00Z")).rotate_at(day0), Some(day0 + 3 * 86_400));
        // A start after the expiry (clock trouble) is taken as the expiry: due at once.
        assert_eq!(t(None, Some("2030-01-05T00:00:00Z")).rotate_at(day0 + 10 * 86_400), Some(day0 + 4 * 86_400));
        assert_eq!(lock_path(Path::new("/spool/runner.json")), PathBuf::from("/spool/runner.json.lock"));
    }
}
