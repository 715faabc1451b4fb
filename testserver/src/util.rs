//! Small helpers with no protocol knowledge: randomness, time formatting, CRC, base64.

use std::time::{SystemTime, UNIX_EPOCH};

/// A small non-cryptographic generator (splitmix64) seeded from the OS. Tokens only have to be
/// unguessable enough that tests cannot pass by accident, not secure against an attacker.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn from_os() -> Rng {
        let mut seed = [0u8; 8];
        // A failing OS RNG is not worth aborting a test double for: fall back to the clock.
        if getrandom::getrandom(&mut seed).is_err() {
            let nanos =
                SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0x1234_5678);
            seed = nanos.to_le_bytes();
        }
        Rng(u64::from_le_bytes(seed))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `len` characters of `[A-Za-z0-9_-]`-free alphanumerics, the alphabet GitLab tokens use.
    pub(crate) fn alnum(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len).map(|_| ALPHABET[(self.next_u64() % ALPHABET.len() as u64) as usize] as char).collect()
    }

    pub(crate) fn hex(&mut self, len: usize) -> String {
        (0..len).map(|_| char::from_digit((self.next_u64() % 16) as u32, 16).unwrap_or('0')).collect()
    }
}

/// `crc32:%08x` exactly as the official runner formats its trace checksum (lowercase, zero-padded).
pub(crate) fn crc32_label(data: &[u8]) -> String {
    format!("crc32:{:08x}", crc32fast::hash(data))
}

/// RFC 3339 / ISO 8601 UTC timestamp with second precision, e.g. `2024-05-01T12:34:56Z`.
pub(crate) fn iso8601(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// ISO 8601 UTC with milliseconds, e.g. `2024-05-01T12:34:56.789Z`: how GitLab's API renders
/// times such as `token_expires_at` (ActiveSupport's JSON time precision is 3).
pub(crate) fn iso8601_millis(t: SystemTime) -> String {
    let millis = t.duration_since(UNIX_EPOCH).map(|d| d.subsec_millis()).unwrap_or(0);
    let seconds = iso8601(t);
    format!("{}.{millis:03}Z", seconds.trim_end_matches('Z'))
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's civil_from_days algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Standard base64 with padding (only encoding is needed: the control interface hands out bytes).
pub fn base64_encode(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(TABLE[(n >> 18) as usize & 63] as char);
        out.push(TABLE[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { TABLE[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { TABLE[n as usize & 63] as char } else { '=' });
    }
    out
}

/// Ruby's `String#to_i` on the part before the first `-`: leading whitespace, optional sign,
/// digits, anything else ends the number; no digits gives 0. GitLab parses `Content-Range`
/// this way, so `bytes 5-9` starts at 0 and `abc` starts at 0, and we must do the same.
pub(crate) fn ruby_to_i_before_dash(s: &str) -> i64 {
    let first = s.split('-').next().unwrap_or("");
    // A leading '-' leaves an empty first part, so the start is never negative.
    let t = first.trim_start();
    let digits = t.strip_prefix('+').unwrap_or(t);
    let mut n: i64 = 0;
    for c in digits.chars() {
        match c.to_digit(10) {
            Some(d) => n = n.saturating_mul(10).saturating_add(i64::from(d)),
            None if c == '_' => continue,
            None => break,
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn iso8601_known_dates() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(iso8601(t), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_042);
        assert_eq!(iso8601_millis(t), "2023-11-14T22:13:20.042Z");
    }

    #[test]
    fn content_range_start_like_ruby() {
        assert_eq!(ruby_to_i_before_dash("0-10"), 0);
        assert_eq!(ruby_to_i_before_dash("15-20/6"), 15);
        assert_eq!(ruby_to_i_before_dash(" 7-9"), 7);
        assert_eq!(ruby_to_i_before_dash("bytes 5-9"), 0);
        assert_eq!(ruby_to_i_before_dash("-5-9"), 0);
        assert_eq!(ruby_to_i_before_dash(""), 0);
        assert_eq!(ruby_to_i_before_dash("12abc-3"), 12);
    }

    #[test]
    fn crc_label_format() {
        assert_eq!(crc32_label(b"hello"), "crc32:3610a686");
        assert_eq!(crc32_label(b""), "crc32:00000000");
    }
}
