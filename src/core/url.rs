//! GitLab's base URL: the one normalisation every entry point uses (register, from_token,
//! loads of both formats), and the warning about plain http:// to another machine.

use super::diag;
use super::error::{Error, Result};

/// `https://gitlab.example.com/` -> `https://gitlab.example.com` (and a trailing `/ci` dropped,
/// as the official runner does). Only http and https.
pub fn normalize_api_url(url: &str) -> Result<String> {
    let trimmed = url.trim();
    let lower = trimmed.to_ascii_lowercase();
    let rest_start = if lower.starts_with("https://") {
        8
    } else if lower.starts_with("http://") {
        7
    } else {
        return Err(Error::invalid(format!("api_url {trimmed:?} must start with http:// or https://")));
    };
    let mut u = trimmed.trim_end_matches('/');
    if u.ends_with("/ci") {
        u = u[..u.len() - 3].trim_end_matches('/');
    }
    if u.len() <= rest_start || u.contains(char::is_whitespace) {
        return Err(Error::invalid(format!("api_url {trimmed:?} has no host")));
    }
    Ok(u.to_string())
}

/// The host of an `http(s)://` URL, lowercase, without user info, port or brackets.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host =
        if let Some(v6) = host_port.strip_prefix('[') { v6.split(']').next()? } else { host_port.split(':').next()? };
    Some(host.to_ascii_lowercase())
}

/// Whether `host` is this machine: `localhost` (and `*.localhost`), 127.0.0.0/8 or ::1.
fn is_loopback_host(host: &str) -> bool {
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Logs a warning when `api_url` is plain `http://` to a host other than this machine: the
/// runner token, job tokens and job logs would cross the network unencrypted. Called when a
/// runner or job is built (register, from_token, loads), before any connection is made.
pub fn warn_if_plain_http(api_url: &str) {
    if !api_url.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://")) {
        return;
    }
    let host = url_host(api_url).unwrap_or_default();
    if !is_loopback_host(&host) {
        diag::warn(&format!(
            "GitLab URL http://{host} is plain http:// to another machine: the runner token, job tokens \
             and job logs travel unencrypted; use https://"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_are_normalised() {
        assert_eq!(normalize_api_url("https://gitlab.cern.ch/").unwrap(), "https://gitlab.cern.ch");
        assert_eq!(normalize_api_url("http://h:8080//").unwrap(), "http://h:8080");
        assert_eq!(normalize_api_url("https://h/gitlab/ci/").unwrap(), "https://h/gitlab");
        assert_eq!(normalize_api_url("https://h/sub").unwrap(), "https://h/sub");
        for bad in ["", "gitlab.com", "ftp://h", "https://", "https:// h"] {
            assert!(normalize_api_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for (url, host) in [
            ("http://127.0.0.1:8080", "127.0.0.1"),
            ("http://user:pw@LocalHost/x", "localhost"),
            ("http://[::1]:3000/", "::1"),
            ("https://gitlab.example.com/ci", "gitlab.example.com"),
        ] {
            assert_eq!(url_host(url).as_deref(), Some(host), "{url}");
        }
        for host in ["localhost", "127.0.0.1", "127.8.9.10", "::1", "ci.localhost"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["gitlab.example.com", "10.0.0.1", "192.168.1.2", "::2", "localhost.example.com", ""] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
