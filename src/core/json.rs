//! JSON strings written and read fast, for the one large string of a dump: the job's log (a MiB
//! and more). serde_json looks at every byte through a table; here 16 bytes at a time are
//! compared (a fixed-size loop the compiler turns into vector compares) and the runs between
//! escapes are copied whole. The output is byte for byte what serde_json writes, so dumps keep
//! their format; reading accepts exactly the strings serde_json accepts and gives the same text.
//! A [`Cursor`] finds where the large parts of a dump are, so that serde_json parses the rest,
//! and how deeply a job payload nests without building it.

use crate::json_scan::{copy_json_runs, ends_run as needs_escape, next_json_run_end, read_runs, AtEnd, RunReader};

// The bytes a JSON string cannot hold as they are, and so needs an escape for, are those a
// reader stops at (`json_scan::ends_run`): `"`, `\` and the control characters. Everything else
// (DEL, `/`, any byte of a multi-byte UTF-8 sequence) is copied unchanged.

const CHUNK: usize = 16;

/// Whether any byte of `chunk` needs an escape. An OR over the whole chunk without early exit:
/// the compiler makes it a few vector compares (a bit mask of the positions would not be).
fn has_escape(chunk: &[u8; CHUNK]) -> bool {
    chunk.iter().fold(0u8, |any, &b| any | u8::from(needs_escape(b))) != 0
}

/// Where the next byte needing an escape is, from `from` on (or `s.len()`): whole chunks are
/// skipped, the chunk with the byte (and the tail) are searched a byte at a time.
fn next_escape(s: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(chunk) = s.get(i..i + CHUNK) {
        if has_escape(chunk.try_into().expect("CHUNK bytes")) {
            break;
        }
        i += CHUNK;
    }
    s[i..].iter().position(|&b| needs_escape(b)).map_or(s.len(), |p| i + p)
}

/// serde_json's escape for `b`: the short forms it knows, else `\u00xx` in lower case.
fn write_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match b {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

/// The concatenation of `pieces` as one JSON string literal (quotes included), appended to
/// `out`. Each piece is UTF-8 on its own (the caller's guarantee): only ASCII bytes are escaped,
/// so the output is UTF-8 as well, and where the pieces meet does not matter.
pub fn write_str_pieces(out: &mut Vec<u8>, pieces: &[&[u8]]) {
    out.reserve(pieces.iter().map(|p| p.len()).sum::<usize>() + 2);
    out.push(b'"');
    for text in pieces {
        write_escaped(out, text);
    }
    out.push(b'"');
}

fn write_escaped(out: &mut Vec<u8>, text: &[u8]) {
    let mut start = 0;
    loop {
        let at = next_escape(text, start);
        out.extend_from_slice(&text[start..at]);
        let Some(&b) = text.get(at) else { break };
        write_escape(out, b);
        start = at + 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Reading: the same large string read fast, and a walk over the rest that builds nothing.
//
// serde_json reads a string by looking for its end a few bytes at a time, then copies it into a
// scratch buffer that grows by doubling, then copies it once more into the `String`. Here the
// search looks at 64 bytes at a time and copies them as it goes (`json_scan`: SSE2 or AVX2),
// and the runs between escapes go straight into a `String` sized once: a log with one escape
// per line costs one pass over it. Everything is checked as strictly as serde_json checks a
// string it turns into a `String` (control characters, escapes, `\u` surrogate pairs), so text
// this reads is text serde_json would have read, and read the same.

/// Why a JSON string could not be read: what was wrong, and at which byte of the input. Never
/// the text itself (dumps hold tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrError {
    pub at: usize,
    pub what: &'static str,
}

impl std::fmt::Display for StrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

fn str_error<T>(at: usize, what: &'static str) -> Result<T, StrError> {
    Err(StrError { at, what })
}

/// Where the text of a string goes: a `String`, or nowhere when a string is only checked.
pub trait Sink: Sized {
    /// The runs of plain text of `s`, the first from `from`, one after another (see
    /// `json_scan::copy_json_runs`): each taken, then its end given to `reader`, which says
    /// where the next starts or what the result is.
    fn runs<R: RunReader<Self>>(&mut self, s: &str, from: usize, reader: R) -> R::Result;
    fn char(&mut self, c: char);
}

impl Sink for String {
    #[inline]
    fn runs<R: RunReader<Self>>(&mut self, s: &str, from: usize, reader: R) -> R::Result {
        copy_json_runs(s, from, self, reader)
    }
    #[inline]
    fn char(&mut self, c: char) {
        self.push(c);
    }
}

/// A [`Sink`] that keeps nothing: the string is only checked.
pub struct Check;

impl Sink for Check {
    fn runs<R: RunReader<Self>>(&mut self, s: &str, from: usize, reader: R) -> R::Result {
        read_runs(s, from, self, reader, |s, from, _| next_json_run_end(s.as_bytes(), from))
    }
    fn char(&mut self, _: char) {}
}

/// The four hex digits of a `\u` escape at `b[at..]` (either case, as serde_json).
fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let digits = b.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |n, &d| Some(n * 16 + char::from(d).to_digit(16)?))
}

/// The escape at `b[at]` (a `\`): its character into `out`, and where the string goes on.
#[inline(always)]
fn read_escape(b: &[u8], at: usize, out: &mut impl Sink) -> Result<usize, StrError> {
    let simple = match b.get(at + 1) {
        None => return str_error(at, "unterminated string"),
        Some(b'u') => return read_unicode_escape(b, at, out),
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(_) => return str_error(at, "invalid escape"),
    };
    out.char(simple);
    Ok(at + 2)
}

/// `\uXXXX` at `b[at]`, or a surrogate pair `\uD8XX\uDCXX`; a surrogate without its other half
/// is refused, as serde_json refuses it in a `String`.
#[inline(never)]
fn read_unicode_escape(b: &[u8], at: usize, out: &mut impl Sink) -> Result<usize, StrError> {
    let Some(unit) = hex4(b, at + 2) else { return str_error(at, "invalid \\u escape (not 4 hex digits)") };
    let (c, end) = match unit {
        0xd800..=0xdbff => {
            let low = match (b.get(at + 6..at + 8), hex4(b, at + 8)) {
                (Some(b"\\u"), Some(low @ 0xdc00..=0xdfff)) => low,
                _ => return str_error(at, "lone surrogate in a \\u escape"),
            };
            (0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00), at + 12)
        }
        0xdc00..=0xdfff => return str_error(at, "lone surrogate in a \\u escape"),
        _ => (unit, at + 6),
    };
    out.char(char::from_u32(c).expect("not a surrogate"));
    Ok(end)
}

/// Reads the JSON string whose opening `"` is at `s[at]` into `out` and returns where it ends
/// (after the closing `"`).
pub fn read_str_into(s: &str, at: usize, out: &mut impl Sink) -> Result<usize, StrError> {
    debug_assert_eq!(s.as_bytes().get(at), Some(&b'"'));
    // Each run starts after an ASCII byte (the `"`, an escape): a character boundary.
    out.runs(s, at + 1, StrReader { b: s.as_bytes(), at })
}

/// The reader of the string whose `"` is at `b[at]`, at the end of each of its runs: the
/// string's end, an escape (read into the output), or an error.
struct StrReader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<S: Sink> RunReader<S> for StrReader<'_> {
    type Result = Result<usize, StrError>;

    #[inline(always)]
    fn at_end(&mut self, out: &mut S, end: usize) -> AtEnd<Self::Result> {
        match self.b.get(end) {
            None => AtEnd::Done(str_error(self.at, "unterminated string")),
            Some(b'"') => AtEnd::Done(Ok(end + 1)),
            Some(b'\\') => match read_escape(self.b, end, out) {
                Ok(next) => AtEnd::Next(next),
                Err(e) => AtEnd::Done(Err(e)),
            },
            Some(_) => AtEnd::Done(str_error(end, "control character in a string")),
        }
    }
}

/// The JSON string whose opening `"` is at `s[at]`, unescaped, and where it ends. Room is made
/// once for the rest of `s` (the text cannot be longer): this is for the one large string of a
/// document, whose allocation would otherwise grow and copy about twenty times.
pub fn read_str(s: &str, at: usize) -> Result<(String, usize), StrError> {
    let mut text = String::with_capacity(s.len() - at);
    let end = read_str_into(s, at, &mut text)?;
    Ok((text, end))
}

/// The bytes that end a number or a literal (`true`, `null`...) in JSON text.
fn ends_literal(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' | b'[' | b']' | b'{' | b'}' | b'"')
}

/// The longest number [`Cursor::skip_value`] vouches for: f64 holds every number of up to 308
/// digits without an exponent.
const MAX_NUMBER_LEN: usize = 300;

/// A walk over JSON text that finds where values are without building them. It follows the
/// syntax only as far as needed to find them (strings are checked fully, numbers and literals
/// are not): whoever uses what it finds still has the rest parsed by serde_json, which then
/// refuses what this let through.
pub struct Cursor<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(s: &'a str) -> Self {
        Cursor { s, at: 0 }
    }

    pub fn at(&self) -> usize {
        self.at
    }

    /// The next byte that is not JSON whitespace (the cursor moves to it), or None at the end.
    pub fn peek(&mut self) -> Option<u8> {
        let b = self.s.as_bytes();
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(self.at) {
            self.at += 1;
        }
        b.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.at += 1)
    }

    /// The string at the cursor, unescaped (see [`read_str`]).
    pub fn read_str(&mut self) -> Option<String> {
        if self.peek()? != b'"' {
            return None;
        }
        let (text, end) = read_str(self.s, self.at).ok()?;
        self.at = end;
        Some(text)
    }

    /// A string without escapes (object keys): borrowed. None for any other value.
    fn plain_str(&mut self) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let end = next_json_run_end(self.s.as_bytes(), start);
        if self.s.as_bytes().get(end) != Some(&b'"') {
            return None;
        }
        self.at = end + 1;
        Some(&self.s[start..end])
    }

    /// Moves past the value at the cursor (a whole array or object at once, without recursion)
    /// and returns how deeply it nests (a scalar is 0). None where the text is not JSON.
    pub fn skip_value(&mut self) -> Option<usize> {
        let b = self.s.as_bytes();
        let (mut depth, mut deepest) = (0usize, 0usize);
        loop {
            match self.peek()? {
                b'"' => self.at = read_str_into(self.s, self.at, &mut Check).ok()?,
                b'{' | b'[' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                    self.at += 1;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    self.at += 1;
                }
                b',' | b':' if depth > 0 => self.at += 1,
                b',' | b':' => return None,
                _ => {
                    // A number or a literal, up to the next delimiter. serde_json refuses
                    // numbers beyond f64's range, which only an exponent or hundreds of digits
                    // reach: such a number is not vouched for.
                    let token = &b[self.at..];
                    let len = token.iter().position(|&c| ends_literal(c)).unwrap_or(token.len());
                    let number = matches!(token[0], b'-' | b'0'..=b'9');
                    if number && (len > MAX_NUMBER_LEN || token[..len].iter().any(|c| matches!(c, b'e' | b'E'))) {
                        return None;
                    }
                    self.at += len;
                }
            }
            if depth == 0 {
                return Some(deepest);
            }
        }
    }

    /// The members of the object at the cursor: `member` is called with each key (which must be
    /// a string without escapes: a key is compared as it is written) with the cursor on its
    /// value, which it must move past. None if the text is not such an object or `member` says
    /// None.
    pub fn members(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.plain_str()?;
            self.eat(b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(s: &str) -> String {
        let mut out = Vec::new();
        write_str_pieces(&mut out, &[s.as_bytes()]);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_ascii_character_is_escaped_as_serde_json_does() {
        for c in (0u8..=0x7f).map(char::from) {
            // Alone, at every position of a chunk, and across chunk boundaries.
            for s in [c.to_string(), format!("{}{c}{}", "x".repeat(15), "y".repeat(20)), c.to_string().repeat(40)] {
                assert_eq!(ours(&s), serde_json::to_string(&s).unwrap(), "{c:?}");
            }
        }
    }

    #[test]
    fn longer_texts_match_serde_json() {
        let mut cases = vec![
            String::new(),
            "é😀 €".repeat(50),
            "plain text without escapes, longer than one chunk of sixteen bytes".into(),
            "line\n".repeat(100),
            "\u{1b}[31;1mred\u{1b}[0m\r\n\"quoted\" \\back\\ \t\u{7f}\u{0}".repeat(7),
        ];
        // Every length around the chunk size, with the escape at every position.
        for len in 0..40 {
            for at in 0..len {
                let mut s: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                s[at] = b'\n';
                cases.push(String::from_utf8(s).unwrap());
            }
        }
        for s in &cases {
            assert_eq!(ours(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn pieces_make_one_string() {
        let mut out = Vec::new();
        write_str_pieces(&mut out, &[b"a\n", b"", "\u{e9}\"".as_bytes(), b"z"]);
        assert_eq!(out, serde_json::to_vec("a\n\u{e9}\"z").unwrap());
    }

    #[test]
    fn appends_to_what_is_there() {
        let mut out = b"[".to_vec();
        write_str_pieces(&mut out, &[b"a\"b"]);
        assert_eq!(out, b"[\"a\\\"b\"");
    }

    // ---- reading ----

    /// What serde_json makes of the JSON text `lit` as a `String`.
    fn serde(lit: &str) -> Option<String> {
        serde_json::from_str::<String>(lit).ok()
    }

    /// `lit` read whole, or the error.
    fn read(lit: &str) -> Result<String, StrError> {
        let (text, end) = read_str(lit, 0)?;
        assert_eq!(end, lit.len(), "{lit:?}");
        Ok(text)
    }

    use crate::test_rng::Rng;

    /// The bytes looked at, at a time, when a string is read (`json_scan`).
    const BLOCK: usize = 64;

    #[test]
    fn escapes_across_the_edge_of_the_bytes_looked_at_read_as_serde_json_reads_them() {
        // Each escape (up to 12 bytes) at every position around the first and second 64 bytes
        // looked at, with another escape soon after it or after the next 64 bytes.
        for escape in [r"\n", r#"\""#, r"\\", r"\u00e9", r"\ud83d\ude00"] {
            for before in 0..2 * BLOCK + 14 {
                for gap in [0, 1, 13, BLOCK - 1, BLOCK + 1] {
                    let lit = format!("\"{}{escape}{}{escape}z\"", "x".repeat(before), "y".repeat(gap));
                    assert_eq!(read(&lit).ok(), serde(&lit), "{lit:?}");
                }
            }
        }
    }

    #[test]
    fn every_json_escape_reads_as_serde_json_reads_it() {
        for lit in [
            r#""\"""#,
            r#""\\""#,
            r#""\/""#,
            r#""\b\f\n\r\t""#,
            r#""\u0000\u001f\u0041\u00e9\u00E9\u20ac\uFFFF\uffff""#,
            r#""a\u0041b\nc""#,
            r#""""#,
            r#""plain""#,
        ] {
            let text = read(lit).unwrap();
            assert_eq!(Some(text), serde(lit), "{lit}");
        }
        assert_eq!(read(r#""\b\f\n\r\t\u0000""#).unwrap(), "\u{8}\u{c}\n\r\t\u{0}");
    }

    #[test]
    fn surrogate_pairs_are_one_character() {
        for lit in [r#""\ud83d\ude00""#, r#""\uD83D\uDE00""#, r#""x\ud800\udc00y""#, r#""\udbff\udfff""#] {
            let text = read(lit).unwrap();
            // The quotes and the 12 bytes of the pair give one character.
            assert_eq!(text.chars().count(), lit.len() - 2 - 12 + 1, "{lit}");
            assert_eq!(Some(text), serde(lit), "{lit}");
        }
        assert_eq!(read(r#""\ud83d\ude00""#).unwrap(), "😀");
    }

    #[test]
    fn bad_strings_are_refused_with_what_and_where() {
        for (lit, what, at) in [
            (r#""\x""#, "invalid escape", 1),
            (r#""ab\'""#, "invalid escape", 3),
            (r#""\u12""#, "invalid \\u escape (not 4 hex digits)", 1),
            (r#""\u12G4""#, "invalid \\u escape (not 4 hex digits)", 1),
            (r#""\u+123""#, "invalid \\u escape (not 4 hex digits)", 1),
            (r#""\ud800""#, "lone surrogate in a \\u escape", 1),
            (r#""\ud800x""#, "lone surrogate in a \\u escape", 1),
            (r#""\ud800\u0041""#, "lone surrogate in a \\u escape", 1),
            (r#""\ud800\ud800""#, "lone surrogate in a \\u escape", 1),
            (r#""\ud800\n""#, "lone surrogate in a \\u escape", 1),
            (r#""a\udc00""#, "lone surrogate in a \\u escape", 2),
            ("\"a\nb\"", "control character in a string", 2),
            ("\"\u{0}\"", "control character in a string", 1),
            ("\"abc", "unterminated string", 0),
            ("\"abc\\", "unterminated string", 4),
            ("\"", "unterminated string", 0),
        ] {
            let e = read_str(lit, 0).unwrap_err();
            assert_eq!(e, StrError { at, what }, "{lit:?}");
            assert_eq!(e.to_string(), format!("{what} at byte {at}"));
            assert_eq!(serde(lit), None, "serde_json accepts {lit:?}");
        }
    }

    #[test]
    fn bad_strings_longer_than_the_bytes_looked_at_are_refused_with_what_and_where() {
        // Each fault with its first byte at every position around the edges of the first and
        // second 64 bytes looked at (the opening `"` is byte 0), in a string of over 128 bytes;
        // the faults that cut the text end it there.
        let faults: [(&str, &str, bool); 8] = [
            ("\n", "control character in a string", false),
            ("\u{1f}", "control character in a string", false),
            (r"\ud800x", "lone surrogate in a \\u escape", false),
            (r"\udc00", "lone surrogate in a \\u escape", false),
            (r"\q", "invalid escape", false),
            (r"\u12", "invalid \\u escape (not 4 hex digits)", true),
            (r"\", "unterminated string", true),
            (r"\ud83d\u", "lone surrogate in a \\u escape", true),
        ];
        for (fault, what, cuts) in faults {
            for at in (BLOCK - 3..BLOCK + 3).chain(2 * BLOCK - 3..2 * BLOCK + 3) {
                let before = "x".repeat(at - 1);
                let lit = if cuts {
                    format!("\"{before}{fault}")
                } else {
                    format!("\"{before}{fault}{}\"", "y".repeat(3 * BLOCK))
                };
                let e = read_str(&lit, 0).unwrap_err();
                assert_eq!(e, StrError { at, what }, "{fault:?} at {at}");
                assert_eq!(serde(&lit), None, "serde_json accepts {lit:?}");
            }
        }
        // Unterminated after a long run: the error is at the opening quote.
        for len in [BLOCK - 2, BLOCK - 1, BLOCK, 2 * BLOCK + 1, 1000] {
            let lit = format!("\"{}", "x".repeat(len));
            assert_eq!(read_str(&lit, 0).unwrap_err(), StrError { at: 0, what: "unterminated string" }, "{len}");
        }
    }

    #[test]
    fn a_log_that_is_all_escapes_reads_back() {
        let all: String = (0u8..0x20).map(char::from).chain("\"\\".chars()).collect::<String>().repeat(5000);
        let lit = serde_json::to_string(&all).unwrap();
        assert_eq!(read(&lit).unwrap(), all);
        let lines = "\n".repeat(100_000);
        assert_eq!(read(&serde_json::to_string(&lines).unwrap()).unwrap(), lines);
        let pairs = r"\ud83d\ude00".repeat(10_000);
        assert_eq!(read(&format!("\"{pairs}\"")).unwrap(), "😀".repeat(10_000));
    }

    #[test]
    fn random_strings_round_trip_as_through_serde_json() {
        let pieces =
            ["a", "Z", " ", "0", "\"", "\\", "/", "\n", "\r", "\t", "\u{0}", "\u{1b}", "\u{7f}", "é", "€", "😀"];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..3000 {
            let len = if case % 100 == 0 { rng.below(5000) } else { rng.below(200) };
            // Runs of plain text between the special characters, as in a log.
            let text: String = (0..len)
                .map(|_| if rng.below(4) == 0 { (*rng.pick(&pieces)).to_string() } else { "x".repeat(rng.below(70)) })
                .collect();
            let lit = serde_json::to_string(&text).unwrap();
            assert_eq!(read(&lit).unwrap(), text);
            assert_eq!(read(&ours(&text)).unwrap(), text);
            // Inside a document: the string ends at its closing quote.
            let doc = format!("{lit},\"next\"");
            assert_eq!(read_str(&doc, 0).unwrap(), (text, lit.len()));
        }
    }

    #[test]
    fn random_literals_are_accepted_exactly_when_serde_json_accepts_them() {
        let pieces =
            ["a", "\\", "\"", "u", "d8", "D8", "dc", "00", "3d", "de", "0", "f", "g", "n", "t", "/", "x", "\n", "é"];
        let mut rng = Rng(42);
        for _ in 0..50_000 {
            let body: String = (0..rng.below(12)).map(|_| *rng.pick(&pieces)).collect();
            let lit = format!("\"{body}\"");
            match read_str(&lit, 0) {
                // It may end before the last quote (an unescaped one in the body).
                Ok((text, end)) => assert_eq!(serde(&lit[..end]), Some(text), "{lit:?}"),
                Err(_) => assert_eq!(serde(&lit), None, "{lit:?}"),
            }
        }
    }

    #[test]
    fn the_cursor_finds_members_and_skips_whole_values() {
        let doc = r#" { "a" : [1, {"b": "x\"]}"}, [[]]], "c":{"d":"é\n"} ,"e":-1.5,"f":true,"g":null,"h":{}} "#;
        let mut seen = Vec::new();
        let mut c = Cursor::new(doc);
        c.members(|c, key| {
            if key == "c" {
                c.members(|c, key| {
                    assert_eq!(key, "d");
                    assert_eq!(c.read_str().as_deref(), Some("é\n"));
                    Some(())
                })?;
                seen.push((key, 1));
            } else {
                seen.push((key, c.skip_value()?));
            }
            Some(())
        })
        .unwrap();
        assert_eq!(seen, [("a", 3), ("c", 1), ("e", 0), ("f", 0), ("g", 0), ("h", 1)]);
        assert_eq!(c.peek(), None);
    }

    #[test]
    fn the_cursor_refuses_what_it_cannot_vouch_for() {
        let members = |doc: &str| Cursor::new(doc).members(|c, _| c.skip_value().map(drop));
        assert!(members(r#"{"a":1,"b":[2,{"c":3}]}"#).is_some());
        for doc in [
            r#"{"\u0061":1}"#, // an escaped key: compared as written, it would not match
            r#"{"a":1e5}"#,    // exponents may leave f64's range, which serde_json refuses
            &format!(r#"{{"a":{}}}"#, "9".repeat(301)),
            r#"{"a":"\ud800"}"#,                   // a lone surrogate, which serde_json skips
            r#"{"a":[1,2}"#.trim_end_matches('}'), // unterminated
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":,1}"#,
            r#"[1]"#,
            "",
        ] {
            assert_eq!(members(doc), None, "{doc}");
        }
        // What it lets through is for serde_json to refuse.
        assert!(members(r#"{"a":[1,}"#).is_none());
        assert!(members(r#"{"a":[1 2]}"#).is_some());
    }
}
