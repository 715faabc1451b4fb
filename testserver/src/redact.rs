//! Every secret the server issued or was given (registration, runner and job tokens, masked
//! variables), and finding them in the text of a log record.
//!
//! Every runner-API request is logged and redacted, so the cost of redacting must not grow with
//! the jobs the server holds (it did: each record was searched for each known token, one after
//! the other). Here a text is scanned once, left to right, whatever the number of secrets: a
//! bitmap of the secrets' first two bytes rejects almost every position with one bit test, and
//! where it passes, the secrets are looked up by their leading bytes in a hash map. Secrets are
//! only ever added (a reset runner token stays redacted, as it was once valid).

use std::borrow::Cow;
use std::collections::HashMap;

pub(crate) const REDACTED: &str = "[REDACTED]";

/// Shorter values are not redacted by value: they would blank out ordinary words and numbers.
pub(crate) const MIN_SECRET_LEN: usize = 4;

/// Secrets are indexed by at most this many leading bytes: enough that some of the random part of
/// every token the server issues is in its key (`glcbt-` + 24, `glrt-` + 20, `GR1348941` + 20
/// random characters), so tokens sharing a prefix land in different buckets. Secrets sharing all
/// of their first 16 bytes share a bucket and are compared one after the other.
const KEY_LEN: usize = 16;

pub(crate) struct Secrets {
    /// One bit per pair of first two bytes of a secret.
    pairs: Box<[u64; 1024]>,
    /// The first min(len, KEY_LEN) bytes of a secret -> the secrets starting with them, longest
    /// first.
    by_key: HashMap<Box<[u8]>, Vec<Box<[u8]>>>,
    /// The key lengths in use, longest first (at most KEY_LEN - MIN_SECRET_LEN + 1 of them,
    /// however many secrets there are).
    key_lens: Vec<usize>,
}

impl Default for Secrets {
    fn default() -> Self {
        Secrets { pairs: Box::new([0; 1024]), by_key: HashMap::new(), key_lens: Vec::new() }
    }
}

fn pair(a: u8, b: u8) -> usize {
    (usize::from(a) << 8) | usize::from(b)
}

impl Secrets {
    pub(crate) fn add(&mut self, secret: &str) {
        let b = secret.as_bytes();
        if b.len() < MIN_SECRET_LEN {
            return;
        }
        let k = b.len().min(KEY_LEN);
        let bucket = self.by_key.entry(b[..k].into()).or_default();
        if bucket.iter().any(|s| **s == *b) {
            return;
        }
        bucket.push(b.into());
        // Longest first: where two secrets start at the same place, the longer one is redacted
        // whole, so no tail of it is left in the log.
        bucket.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let p = pair(b[0], b[1]);
        self.pairs[p / 64] |= 1 << (p % 64);
        if !self.key_lens.contains(&k) {
            self.key_lens.push(k);
            self.key_lens.sort_unstable_by(|a, b| b.cmp(a));
        }
    }

    /// The length of the longest secret starting at `text[i..]`.
    fn longest_at(&self, text: &[u8], i: usize) -> Option<usize> {
        // Key lengths longest first, buckets longest first: a secret found under a longer key is
        // at least KEY_LEN long, longer than any under a shorter key.
        self.key_lens.iter().find_map(|&k| {
            let bucket = self.by_key.get(text.get(i..i + k)?)?;
            bucket.iter().find(|s| text[i..].starts_with(s)).map(|s| s.len())
        })
    }

    /// `s` with every known secret in it replaced by `[REDACTED]` (borrowed when there is none).
    pub(crate) fn redact<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let t = s.as_bytes();
        let mut out: Option<Vec<u8>> = None;
        let (mut i, mut copied) = (0, 0);
        while i + MIN_SECRET_LEN <= t.len() {
            let p = pair(t[i], t[i + 1]);
            if self.pairs[p / 64] & (1 << (p % 64)) != 0 {
                if let Some(n) = self.longest_at(t, i) {
                    let o = out.get_or_insert_with(|| Vec::with_capacity(t.len()));
                    o.extend_from_slice(&t[copied..i]);
                    o.extend_from_slice(REDACTED.as_bytes());
                    i += n;
                    copied = i;
                    continue;
                }
            }
            i += 1;
        }
        match out {
            None => Cow::Borrowed(s),
            Some(mut o) => {
                o.extend_from_slice(&t[copied..]);
                // A match of a whole UTF-8 string inside UTF-8 text starts and ends on character
                // boundaries, so this never fails; lossy rather than a panic all the same.
                Cow::Owned(String::from_utf8(o).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(list: &[&str]) -> Secrets {
        let mut s = Secrets::default();
        list.iter().for_each(|x| s.add(x));
        s
    }

    #[test]
    fn finds_every_secret_anywhere() {
        let s = secrets(&["glcbt-AAAAAAAAAAAAAAAAAAAAAAAA", "glcbt-BBBBBBBBBBBBBBBBBBBBBBBB", "pw-1", "hunter22"]);
        assert_eq!(s.redact("no secret here"), "no secret here");
        assert!(matches!(s.redact("no secret here"), Cow::Borrowed(_)));
        assert_eq!(
            s.redact("a glcbt-BBBBBBBBBBBBBBBBBBBBBBBB b glcbt-AAAAAAAAAAAAAAAAAAAAAAAAx pw-1hunter22"),
            "a [REDACTED] b [REDACTED]x [REDACTED][REDACTED]"
        );
        // At the very start and end, and a prefix of a token alone is no token.
        assert_eq!(s.redact("pw-1"), "[REDACTED]");
        assert_eq!(s.redact("glcbt-AAAA"), "glcbt-AAAA");
        assert_eq!(s.redact("é pw-1 ü"), "é [REDACTED] ü");
    }

    #[test]
    fn the_longest_secret_wins_and_short_values_are_ignored() {
        let s = secrets(&["abcd", "abcdefgh", "abcdefghijklmnopqrstuvwxyz", "abc"]);
        assert_eq!(s.redact("abcdefghijklmnopqrstuvwxyz!"), "[REDACTED]!");
        assert_eq!(s.redact("abcdefgh-"), "[REDACTED]-");
        assert_eq!(s.redact("abcde"), "[REDACTED]e");
        assert_eq!(s.redact("abc"), "abc");
    }

    #[test]
    fn ten_thousand_tokens_sharing_a_prefix_fall_in_their_own_buckets() {
        // Random like the server's tokens (util::Rng): the key holds some of the random part.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alnum = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut token = || {
            let tail: String = (0..24)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alnum[(x % 62) as usize] as char
                })
                .collect();
            format!("glcbt-{tail}")
        };
        let tokens: Vec<String> = (0..10_000).map(|_| token()).collect();
        let mut s = Secrets::default();
        tokens.iter().for_each(|t| s.add(t));
        s.add(&tokens[0]);
        assert_eq!(s.by_key.values().map(Vec::len).max(), Some(1));
        assert_eq!(s.key_lens, vec![KEY_LEN]);
        for t in tokens.iter().step_by(997) {
            assert_eq!(s.redact(&format!("x{t}y")), "x[REDACTED]y");
        }
    }
}
