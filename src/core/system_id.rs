//! The runner manager's `system_id`: `s_` + 12 hex chars derived from /etc/machine-id (stable per
//! machine), else `r_` + 12 random alphanumerics. Created once per runner and persisted with it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The message keyed by the machine id. Deliberately not the official runner's
/// `"gitlab-runner"`, so both on one machine do not claim the same runner manager.
const HMAC_MESSAGE: &[u8] = b"gitlab_runner_api";

pub fn new_system_id() -> String {
    for path in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        if let Ok(id) = std::fs::read_to_string(path) {
            let id = id.trim();
            if !id.is_empty() {
                return from_machine_id(id);
            }
        }
    }
    random_system_id()
}

fn from_machine_id(machine_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(machine_id.as_bytes()).expect("HMAC takes any key length");
    mac.update(HMAC_MESSAGE);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("s_{}", &hex[..12])
}

pub fn random_system_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut bytes = [0u8; 12];
    getrandom::getrandom(&mut bytes).expect("the OS random source works");
    let tail: String = bytes.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect();
    format!("r_{tail}")
}

/// Whether `s` has the shape GitLab expects (`^[sr]_[0-9a-zA-Z]{12}$`).
pub fn is_valid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 14 && (b[0] == b's' || b[0] == b'r') && b[1] == b'_' && b[2..].iter().all(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_well_formed() {
        let a = from_machine_id("0123456789abcdef0123456789abcdef");
        assert_eq!(a, from_machine_id("0123456789abcdef0123456789abcdef"));
        assert_ne!(a, from_machine_id("fedcba9876543210fedcba9876543210"));
        assert!(is_valid(&a), "{a}");
        assert!(a.starts_with("s_"));
    }

    #[test]
    fn random_ids_are_well_formed_and_differ() {
        let a = random_system_id();
        assert!(is_valid(&a), "{a}");
        assert_ne!(a, random_system_id());
        assert!(!is_valid("s_short"));
        assert!(!is_valid("x_0123456789ab"));
    }
}
