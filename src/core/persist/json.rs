//! JSON strings written fast, for the one large string of a dump: the job's log (a MiB and
//! more). serde_json looks at every byte through a table; here 16 bytes at a time are compared
//! (a fixed-size loop the compiler turns into vector compares) and the runs between escapes are
//! copied whole. The output is byte for byte what serde_json writes, so dumps keep their format.

/// The bytes a JSON string cannot hold as they are: `"`, `\` and the control characters.
/// Everything else (DEL, `/`, any byte of a multi-byte UTF-8 sequence) is copied unchanged.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

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
}
