//! What a runner is registered with, checked before any request as the Python package does,
//! plus what GitLab would refuse anyway.

use crate::core::error::{Error, Result};
use crate::core::model::{Identity, Registration};

/// GitLab refuses a shorter `maximum_timeout` (its runner model's validation).
pub const MIN_MAXIMUM_TIMEOUT: i64 = 600;

/// The options of `Runner.register` in the Python package, plus `paused` and `maintenance_note`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterOptions {
    pub registration: Registration,
    pub identity: Identity,
}

pub const ACCESS_LEVELS: &[&str] = &["not_protected", "ref_protected"];

impl RegisterOptions {
    /// The checks the Python package makes before any request, plus a few GitLab would reject.
    pub fn validate(&self) -> Result<()> {
        let r = &self.registration;
        for tag in &r.tags {
            if tag.contains(',') {
                return Err(Error::invalid(format!("tag {tag:?} contains a comma")));
            }
            if tag.trim().is_empty() {
                return Err(Error::invalid("a tag is empty"));
            }
        }
        if let Some(level) = &r.access_level {
            if !ACCESS_LEVELS.contains(&level.as_str()) {
                return Err(Error::invalid(format!("access_level must be one of {ACCESS_LEVELS:?}, not {level:?}")));
            }
        }
        if let Some(t) = r.maximum_timeout {
            if t < MIN_MAXIMUM_TIMEOUT {
                return Err(Error::invalid(format!(
                    "maximum_timeout must be at least {MIN_MAXIMUM_TIMEOUT} seconds, as GitLab requires (not {t})"
                )));
            }
        }
        if let (Some(active), Some(paused)) = (r.active, r.paused) {
            if active == paused {
                return Err(Error::invalid("active and paused contradict each other; set only one"));
            }
        }
        if r.maintenance_note.as_ref().is_some_and(|n| n.chars().count() > 1024) {
            return Err(Error::invalid("maintenance_note is longer than 1024 characters"));
        }
        Ok(())
    }
}

/// A token given by the caller: not empty, no blanks or control characters.
pub(super) fn check_token(token: &str, what: &str) -> Result<()> {
    if token.trim().is_empty() {
        return Err(Error::invalid(format!("{what} is empty")));
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid(format!("{what} contains whitespace or control characters")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::ErrorKind;

    #[test]
    fn register_options_are_validated_like_the_python_package() {
        let mut o = RegisterOptions::default();
        assert!(o.validate().is_ok());
        o.registration.tags = vec!["a,b".into()];
        assert_eq!(o.validate().unwrap_err().kind, ErrorKind::InvalidArgument);
        o.registration.tags = vec!["a".into()];
        o.registration.access_level = Some("everything".into());
        assert!(o.validate().is_err());
        o.registration.access_level = Some("ref_protected".into());
        assert!(o.validate().is_ok());
        o.registration.maximum_timeout = Some(-1);
        assert!(o.validate().is_err());
        o.registration.maximum_timeout = Some(599);
        assert!(o.validate().unwrap_err().message.contains("at least 600 seconds"), "GitLab's own minimum");
        o.registration.maximum_timeout = Some(600);
        assert!(o.validate().is_ok());
    }
}
