//! Streaming secret masking for the job log, as the official runner masks (protocol §7) but with
//! no leak across append boundaries: bytes that could still be the start of a secret are held
//! back (at most the longest pattern's length minus one) until the next append decides.
//!
//! Three kinds of secrets, in the official runner's order of precedence:
//! - phrases: values of masked variables, replaced whole by `[MASKED]` (longest first);
//! - URL parameters (`?private_token=...`): the value after `key=` becomes `[MASKED]`;
//! - token prefixes (`glpat-` & co.): the prefix is kept, the token characters after it become
//!   one `[MASKED]`.

use crate::scan::StartSet;
use bytes::BufMut;

const MASK: &[u8] = b"[MASKED]";

/// GitLab's token prefixes the official runner masks by default (`glpat-` always, the rest with
/// FF_MASK_ALL_DEFAULT_TOKENS, on by default).
pub const DEFAULT_TOKEN_PREFIXES: &[&str] = &[
    "glpat-",
    "gloas-",
    "gldt-",
    "glrt-",
    "glcbt-",
    "glrtr-",
    "glptt-",
    "glft-",
    "glimt-",
    "glagent-",
    "glsoat-",
    "glffct-",
    "_gitlab_session=",
    "gltok-",
];

/// The official runner honours only this many prefixes (the shortest ones).
const MAX_PREFIXES: usize = 15;

/// URL query keys whose values are secrets (compared case-insensitively).
const URL_KEYS: &[&str] = &[
    "private_token",
    "authenticity_token",
    "rss_token",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
];

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'=' | b'-')
}

fn ends_url_value(b: u8) -> bool {
    matches!(b, b'?' | b'&') || b.is_ascii_whitespace() || b.is_ascii_control()
}

/// Where the masker is inside a secret whose end is not yet seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Normal,
    /// A token prefix was written; a token character next starts the masked run.
    AfterPrefix,
    /// `[MASKED]` was written for a token; its remaining characters are dropped.
    InToken,
    /// `?key=` was written; a value character next starts the masked run.
    AfterUrlKey,
    /// `[MASKED]` was written for a URL value; its remaining characters are dropped.
    InUrlValue,
}

impl Mode {
    pub fn as_u8(self) -> u8 {
        self as u8
    }
    pub fn from_u8(v: u8) -> Mode {
        match v {
            1 => Mode::AfterPrefix,
            2 => Mode::InToken,
            3 => Mode::AfterUrlKey,
            4 => Mode::InUrlValue,
            _ => Mode::Normal,
        }
    }
}

enum Found {
    Nothing,
    /// Could be a secret: wait for more bytes.
    Undecided,
    Phrase(usize),
    UrlKey(usize),
    Prefix(usize),
}

#[derive(Clone, Debug)]
pub struct Masker {
    /// Longest first.
    phrases: Vec<Vec<u8>>,
    prefixes: Vec<Vec<u8>>,
    /// For each start byte, the bytes that can follow it (index into `seconds`, 0 = none): a
    /// cheap second look, so that common letters starting a pattern (`g` of `glpat-`) rarely
    /// cost a full comparison.
    second_index: [u16; 256],
    seconds: Vec<[u64; 4]>,
    /// The bytes that can start a pattern (`?` and `&` for URL keys), searched 16 or 32 bytes
    /// at a time (see `scan`): most text holds none, and is copied in bulk.
    start_set: StartSet,
    mode: Mode,
    held: Vec<u8>,
}

impl Default for Masker {
    /// Masks only GitLab's default token prefixes and secret URL parameters.
    fn default() -> Self {
        Masker::new([], [])
    }
}

impl Masker {
    /// `phrases`: values of masked variables; `extra_prefixes`: the job's
    /// `features.token_mask_prefixes`. Both normalised as the official runner does (trimmed,
    /// de-duplicated, empty dropped; prefixes: the 15 shortest).
    pub fn new<'a>(
        phrases: impl IntoIterator<Item = &'a str>,
        extra_prefixes: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut p: Vec<Vec<u8>> =
            phrases.into_iter().map(str::trim).filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()).collect();
        p.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        p.dedup();
        let mut prefixes: Vec<Vec<u8>> = DEFAULT_TOKEN_PREFIXES
            .iter()
            .copied()
            .chain(extra_prefixes)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        prefixes.sort_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)));
        prefixes.dedup();
        prefixes.truncate(MAX_PREFIXES);
        let mut m = Masker {
            phrases: Vec::new(),
            prefixes: Vec::new(),
            second_index: [0; 256],
            seconds: Vec::new(),
            start_set: StartSet::new([]),
            mode: Mode::Normal,
            held: Vec::new(),
        };
        for pat in p.iter().chain(prefixes.iter()) {
            m.allow(pat[0], pat.get(1).copied());
        }
        for key in URL_KEYS {
            let first = key.as_bytes()[0];
            for sep in [b'?', b'&'] {
                m.allow(sep, Some(first.to_ascii_lowercase()));
                m.allow(sep, Some(first.to_ascii_uppercase()));
            }
        }
        // A byte starts a pattern when it has a set of second bytes; the scan checks the second
        // byte itself when there is only one.
        let starts: Vec<(u8, Option<u8>)> =
            (0..=255u8).filter(|b| m.second_index[*b as usize] != 0).map(|b| (b, m.only_follower(b))).collect();
        m.start_set = StartSet::new(starts);
        m.phrases = p;
        m.prefixes = prefixes;
        m
    }

    /// The first position at or after `from` where a pattern could start: a start byte followed
    /// by a byte that may follow it (or by nothing yet, at the end).
    fn next_candidate(&self, buf: &[u8], from: usize) -> usize {
        let could_continue = |p: usize| p + 1 >= buf.len() || self.may_follow(buf[p], buf[p + 1]);
        self.start_set.find_where(buf, from, could_continue).unwrap_or(buf.len())
    }

    /// Records that a pattern starts with `first` then `second` (None: a one-byte pattern, any
    /// byte may follow).
    fn allow(&mut self, first: u8, second: Option<u8>) {
        if self.second_index[first as usize] == 0 {
            self.seconds.push([0; 4]);
            // At most 256 start bytes, so the count always fits.
            self.second_index[first as usize] = self.seconds.len() as u16;
        }
        let set = &mut self.seconds[self.second_index[first as usize] as usize - 1];
        match second {
            Some(b) => set[b as usize / 64] |= 1 << (b % 64),
            None => *set = [u64::MAX; 4],
        }
    }

    /// The one byte that may follow `first`, if only one may.
    fn only_follower(&self, first: u8) -> Option<u8> {
        let set = &self.seconds[self.second_index[first as usize] as usize - 1];
        let count: u32 = set.iter().map(|w| w.count_ones()).sum();
        (count == 1).then(|| (0..=255u8).find(|&b| self.may_follow(first, b))).flatten()
    }

    fn may_follow(&self, first: u8, second: u8) -> bool {
        let set = &self.seconds[self.second_index[first as usize] as usize - 1];
        set[second as usize / 64] & (1 << (second % 64)) != 0
    }

    /// Raw bytes not yet decided (persisted with the log so another process continues).
    pub fn held(&self) -> &[u8] {
        &self.held
    }
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Restores the state saved with `held()` and `mode()` (then push the held bytes again).
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    /// Masks `input`, appending what is decided to `out`.
    #[inline]
    pub fn push(&mut self, input: &[u8], out: &mut impl BufMut) {
        if self.held.is_empty() {
            // The common case, without `run`'s state machine: nothing held, no secret open, so
            // the text up to the first place a pattern could start is decided (most appends hold
            // none: all of it). `run` goes on from there as it would have.
            let mut rest = input;
            if self.mode == Mode::Normal {
                let next = self.next_candidate(input, 0);
                out.put_slice(&input[..next]);
                if next == input.len() {
                    return;
                }
                rest = &input[next..];
            }
            self.run(rest, out, false);
        } else {
            let mut joined = std::mem::take(&mut self.held);
            joined.extend_from_slice(input);
            self.run(&joined, out, false);
        }
    }

    /// End of the stream: decides the held bytes.
    pub fn finish(&mut self, out: &mut impl BufMut) {
        let held = std::mem::take(&mut self.held);
        self.run(&held, out, true);
        self.mode = Mode::Normal;
    }

    fn run(&mut self, buf: &[u8], out: &mut impl BufMut, last: bool) {
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            match self.mode {
                Mode::InToken if is_token_char(b) => i += 1,
                Mode::InUrlValue if !ends_url_value(b) => i += 1,
                Mode::AfterPrefix if is_token_char(b) => {
                    out.put_slice(MASK);
                    self.mode = Mode::InToken;
                }
                Mode::AfterUrlKey if !ends_url_value(b) => {
                    out.put_slice(MASK);
                    self.mode = Mode::InUrlValue;
                }
                Mode::InToken | Mode::InUrlValue | Mode::AfterPrefix | Mode::AfterUrlKey => self.mode = Mode::Normal,
                Mode::Normal => {
                    let next = self.next_candidate(buf, i);
                    if next > i {
                        out.put_slice(&buf[i..next]);
                        i = next;
                        continue;
                    }
                    match self.find(&buf[i..], last) {
                        Found::Nothing => {
                            out.put_u8(b);
                            i += 1;
                        }
                        Found::Undecided => {
                            self.held = buf[i..].to_vec();
                            return;
                        }
                        Found::Phrase(len) => {
                            out.put_slice(MASK);
                            i += len;
                        }
                        Found::UrlKey(len) => {
                            out.put_slice(&buf[i..i + len]);
                            i += len;
                            self.mode = Mode::AfterUrlKey;
                        }
                        Found::Prefix(len) => {
                            out.put_slice(&buf[i..i + len]);
                            i += len;
                            self.mode = Mode::AfterPrefix;
                        }
                    }
                }
            }
        }
    }

    /// What starts at `s[0]`. Undecided when `s` ends inside a pattern that could still match
    /// (and is preferred over any shorter complete match).
    fn find(&self, s: &[u8], last: bool) -> Found {
        let partial = |pat: &[u8], eq: fn(&[u8], &[u8]) -> bool| !last && s.len() < pat.len() && eq(&pat[..s.len()], s);
        let exact = |a: &[u8], b: &[u8]| a == b;
        for p in &self.phrases {
            if s.len() >= p.len() && s[..p.len()] == p[..] {
                return Found::Phrase(p.len());
            }
            if partial(p, exact) {
                return Found::Undecided;
            }
        }
        if s[0] == b'?' || s[0] == b'&' {
            let rest = &s[1..];
            for key in URL_KEYS {
                let pat = [key.as_bytes(), b"="].concat();
                if rest.len() >= pat.len() && rest[..pat.len()].eq_ignore_ascii_case(&pat) {
                    return Found::UrlKey(1 + pat.len());
                }
                if !last && rest.len() < pat.len() && pat[..rest.len()].eq_ignore_ascii_case(rest) {
                    return Found::Undecided;
                }
            }
        }
        let mut found = Found::Nothing;
        for p in &self.prefixes {
            if s.len() >= p.len() && s[..p.len()] == p[..] {
                found = Found::Prefix(p.len());
            } else if partial(p, exact) {
                return Found::Undecided;
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(phrases: &[&str], prefixes: &[&str], writes: &[&str]) -> String {
        let mut m = Masker::new(phrases.iter().copied(), prefixes.iter().copied());
        let mut out = Vec::new();
        for w in writes {
            m.push(w.as_bytes(), &mut out);
        }
        m.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn official_runner_vectors() {
        assert_eq!(mask(&["secrets"], &[], &["s", "ecrets"]), "[MASKED]");
        assert_eq!(mask(&["secrets"], &[], &["ssecrets"]), "s[MASKED]");
        assert_eq!(
            mask(&["this is the end", "en foobar", "en"], &[], &["overlap: this is the en", " foobar"]),
            "overlap: this is the [MASKED]"
        );
        assert_eq!(mask(&[], &[], &["glpat-abcdef"]), "glpat-[MASKED]");
        assert_eq!(mask(&[], &["mytoken:"], &["mytoken:ghijklmno"]), "mytoken:[MASKED]");
        assert_eq!(
            mask(&[], &[], &["https://example.com/?x-amz-credential=foobar"]),
            "https://example.com/?x-amz-credential=[MASKED]"
        );
        assert_eq!(mask(&[], &[], &["a?PRIVATE_TOKEN=x&b=1 c"]), "a?PRIVATE_TOKEN=[MASKED]&b=1 c");
        assert_eq!(mask(&[], &[], &["glpat- nothing"]), "glpat- nothing");
    }

    #[test]
    fn self_overlapping_secrets_do_not_leak_at_boundaries() {
        // The official runner leaks `aaab` for writes "aa" + "ab"; we do not.
        assert_eq!(mask(&["aab"], &[], &["aa", "ab"]), "a[MASKED]");
        assert_eq!(mask(&["aab"], &[], &["aaab"]), "a[MASKED]");
        assert_eq!(mask(&["abab"], &[], &["ab", "a", "bab"]), "[MASKED]ab");
    }

    #[test]
    fn tokens_and_url_values_continue_across_writes() {
        assert_eq!(mask(&[], &[], &["x glp", "at-abc", "def ok"]), "x glpat-[MASKED] ok");
        assert_eq!(mask(&[], &[], &["?rss_tok", "en=ab", "cd&n=1"]), "?rss_token=[MASKED]&n=1");
        assert_eq!(mask(&[], &[], &["glpat-abc"]), "glpat-[MASKED]");
    }

    #[test]
    fn an_unfinished_candidate_is_released_at_the_end() {
        assert_eq!(mask(&["secret"], &[], &["a sec"]), "a sec");
        assert_eq!(mask(&["secret"], &[], &["a secre", "x"]), "a secrex");
    }

    #[test]
    fn random_splits_never_leak() {
        let secrets = ["hunter2hunter2", "aabaab", "p4$$w0rd"];
        let text = "start aabaabaab hunter2hunter2hunter2 p4$$w0rd glpat-xyz ?private_token=zzz end";
        let whole = mask(&secrets, &[], &[text]);
        for s in secrets {
            assert!(!whole.contains(s), "{whole}");
        }
        let mut seed = 12345u64;
        for _ in 0..2000 {
            let mut m = Masker::new(secrets.iter().copied(), std::iter::empty());
            let mut out = Vec::new();
            let bytes = text.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let n = 1 + (seed >> 33) as usize % 7;
                let j = (i + n).min(bytes.len());
                m.push(&bytes[i..j], &mut out);
                i = j;
            }
            m.finish(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), whole, "same result whatever the split");
        }
    }

    #[test]
    fn the_second_byte_filter_misses_nothing() {
        assert_eq!(mask(&["x"], &[], &["axbxx"]), "a[MASKED]b[MASKED][MASKED]");
        assert_eq!(mask(&[], &[], &["gglpat-abc ggg"]), "gglpat-[MASKED] ggg");
        assert_eq!(mask(&["ab"], &[], &["aab", "a", "b"]), "a[MASKED][MASKED]");
        assert_eq!(mask(&[], &[], &["&X-AMZ-SIGNATURE=s3cr3t ok"]), "&X-AMZ-SIGNATURE=[MASKED] ok");
    }

    /// The same masked text whichever way the start bytes are searched (AVX2, SSSE3, SSE2 or
    /// the byte table, as this CPU has them), for many masked values (more start bytes than the
    /// vector paths give bits or compares to), text dense with their starts, and random splits.
    #[test]
    fn every_scan_path_masks_the_same() {
        use crate::scan::{Path, StartSet};
        let phrases: Vec<String> =
            (0..24u8).map(|k| format!("{}{}-s3cr{k}", (b'!' + k * 4) as char, (b'a' + k) as char)).collect();
        let base = Masker::new(phrases.iter().map(String::as_str), ["tok:"]);
        let mut seed = 99u64;
        let mut rand = |n: usize| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        let pieces: Vec<&str> = phrases
            .iter()
            .map(String::as_str)
            .chain(["glpat-x1", "?private_token=v", "&x=1", " ", "g", "gl", "tok:a", "é"])
            .collect();
        for _ in 0..200 {
            let text: String = (0..40).map(|_| pieces[rand(pieces.len())]).collect();
            let splits: Vec<usize> = (0..6).map(|_| rand(text.len() + 1)).collect();
            let mut results = Vec::new();
            for path in [Path::Avx2, Path::Ssse3, Path::Sse2, Path::Table] {
                let mut m = base.clone();
                let starts: Vec<(u8, Option<u8>)> =
                    (0..=255u8).filter(|b| m.second_index[*b as usize] != 0).map(|b| (b, m.only_follower(b))).collect();
                let Some(set) = StartSet::with_path(starts, path) else { continue };
                m.start_set = set;
                let mut out = Vec::new();
                let mut cuts = splits.clone();
                cuts.sort_unstable();
                let mut at = 0;
                for cut in cuts.into_iter().chain([text.len()]) {
                    m.push(&text.as_bytes()[at..cut], &mut out);
                    at = cut;
                }
                m.finish(&mut out);
                results.push((path, out));
            }
            assert!(results.len() >= 2, "the table and (on x86_64) SSE2 at least");
            for (path, out) in &results[1..] {
                assert_eq!(out, &results[0].1, "{path:?} against {:?} on {text:?}", results[0].0);
            }
            for p in &phrases {
                assert!(!String::from_utf8_lossy(&results[0].1).contains(p.as_str()), "{p} leaked from {text:?}");
            }
        }
    }

    #[test]
    fn held_back_bytes_are_bounded() {
        let mut m = Masker::new(["0123456789"], std::iter::empty());
        let mut out = Vec::new();
        m.push(b"xx012345678", &mut out);
        assert_eq!(out, b"xx");
        assert_eq!(m.held(), b"012345678");
    }
}
