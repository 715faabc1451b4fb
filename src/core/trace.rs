//! The job log as a byte buffer with GitLab's view of it: what was appended, what GitLab
//! acknowledged, and where GitLab's copy ends. Pure bookkeeping, no I/O: `job.rs` sends the
//! chunks this module hands out and reports the answers back, so every resync rule is unit-tested.
//!
//! Offsets are bytes (GitLab's unit), never characters. Appended bytes are kept as valid UTF-8:
//! invalid sequences become U+FFFD as with the official runner, and an incomplete sequence at the
//! end of an append waits for the next append instead of being mangled.

use super::model::LogData;

/// At most this many bytes per PATCH, as the official runner.
pub const MAX_PATCH: usize = 1024 * 1024;

/// One PATCH to send: `bytes(text[from..to])` at GitLab offset `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub start: usize,
    pub from: usize,
    pub to: usize,
}

impl Chunk {
    pub fn len(&self) -> usize {
        self.to - self.from
    }
    pub fn is_empty(&self) -> bool {
        self.from == self.to
    }
    /// `Content-Range` as GitLab's runner sends it: `start-endInclusive`, no unit. An empty
    /// probe says `start-start` (GitLab reads only the start).
    pub fn content_range(&self) -> String {
        let end = if self.is_empty() { self.start } else { self.start + self.len() - 1 };
        format!("{}-{}", self.start, end)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Trace {
    text: Vec<u8>,
    acked: usize,
    remote: usize,
    /// False after loading a dump: GitLab's size must be learned (empty PATCH) before appending,
    /// because a stale start whose end happens to match GitLab's size is answered 202 unstored.
    verified: bool,
    pending: Vec<u8>,
    /// A PATCH that got no answer: if GitLab turns out to hold exactly its bytes, it was stored.
    unconfirmed: Option<Chunk>,
}

impl Trace {
    /// An empty log of a job just received: GitLab's trace is empty too.
    pub fn new() -> Self {
        Trace { verified: true, ..Default::default() }
    }

    /// A log restored from a dump; GitLab's size is re-learned before the first upload.
    pub fn from_data(data: LogData) -> Self {
        let mut t = Trace {
            text: data.text.into_bytes(),
            acked: data.acknowledged,
            remote: data.remote.max(data.acknowledged),
            verified: false,
            pending: Vec::new(),
            unconfirmed: None,
        };
        t.acked = t.acked.min(t.text.len());
        t.push(&data.pending);
        t
    }

    pub fn to_data(&self) -> LogData {
        LogData {
            text: self.text_str().to_string(),
            acknowledged: self.acked,
            remote: self.remote,
            pending: self.pending.clone(),
        }
    }

    pub fn text_str(&self) -> &str {
        std::str::from_utf8(&self.text).expect("the log buffer only ever holds valid UTF-8")
    }

    pub fn bytes(&self) -> &[u8] {
        &self.text
    }

    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn acknowledged(&self) -> usize {
        self.acked
    }

    /// Appends raw bytes: cost proportional to `data.len()`, whatever the log's size.
    pub fn push(&mut self, data: &[u8]) {
        if self.pending.is_empty() {
            self.decode(data);
        } else {
            let mut joined = std::mem::take(&mut self.pending);
            joined.extend_from_slice(data);
            self.decode(&joined);
        }
    }

    fn decode(&mut self, mut input: &[u8]) {
        loop {
            match std::str::from_utf8(input) {
                Ok(s) => {
                    self.text.extend_from_slice(s.as_bytes());
                    return;
                }
                Err(e) => {
                    let (valid, rest) = input.split_at(e.valid_up_to());
                    self.text.extend_from_slice(valid);
                    match e.error_len() {
                        Some(bad) => {
                            self.text.extend_from_slice("\u{FFFD}".as_bytes());
                            input = &rest[bad..];
                        }
                        None => {
                            // An incomplete character at the end: wait for its other bytes.
                            self.pending = rest.to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: an incomplete character left over becomes U+FFFD.
    pub fn finish_pending(&mut self) {
        if !self.pending.is_empty() {
            self.pending.clear();
            self.text.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }

    /// Whether everything appended (and decoded) is acknowledged by GitLab.
    pub fn all_acknowledged(&self) -> bool {
        self.verified && self.acked == self.text.len()
    }

    /// The next PATCH to send, or None when GitLab has everything. An empty chunk is a probe
    /// that learns GitLab's size without storing anything.
    pub fn next_chunk(&self) -> Option<Chunk> {
        if !self.verified {
            return Some(Chunk { start: self.remote, from: self.acked, to: self.acked });
        }
        if self.acked == self.text.len() {
            return None;
        }
        let to = floor_char_boundary(&self.text, (self.acked + MAX_PATCH).min(self.text.len()), self.acked);
        Some(Chunk { start: self.remote, from: self.acked, to })
    }

    /// The PATCH got no answer (it may or may not have been stored).
    pub fn unanswered(&mut self, chunk: Chunk) {
        if !chunk.is_empty() {
            self.unconfirmed = Some(chunk);
        }
    }

    /// GitLab answered 202 with `Range: 0-server_size`.
    pub fn accepted(&mut self, chunk: Chunk, server_size: usize) {
        if server_size == chunk.start + chunk.len() && (self.verified || chunk.is_empty()) {
            self.acked = chunk.to;
            self.remote = server_size;
            self.verified = true;
            self.unconfirmed = None;
        } else {
            // A 202 whose size is not where our bytes would end did not store them as we meant.
            self.resync(server_size);
        }
    }

    /// GitLab's trace is `server_size` bytes long and does not end where we thought (416, or an
    /// odd 202): continue from its end.
    pub fn resync(&mut self, server_size: usize) {
        self.verified = true;
        if let Some(lost) = self.unconfirmed.take() {
            if lost.start == self.remote && server_size == lost.start + lost.len() && lost.from == self.acked {
                // Our unanswered PATCH was stored after all.
                self.acked = lost.to;
                self.remote = server_size;
                return;
            }
        }
        if server_size >= self.remote {
            // Another writer (a second process that loaded the same dump) appended: keep our
            // unacknowledged bytes and append them after its end.
            self.remote = server_size;
        } else {
            // GitLab lost bytes: send them again, as far as we still hold them.
            let missing = self.remote - server_size;
            self.acked = self.acked.saturating_sub(missing);
            self.remote = server_size;
        }
    }

    /// GitLab asked for the whole trace again (412 on the final update, `trace_reset`).
    pub fn reset(&mut self) {
        self.acked = 0;
        self.remote = 0;
        self.verified = false;
        self.unconfirmed = None;
    }

    /// CRC-32 (IEEE) of the log, as `crc32:%08x`.
    pub fn checksum(&self) -> String {
        format!("crc32:{:08x}", crc32fast::hash(&self.text))
    }
}

/// The largest char boundary <= `at` and > `min` (so a chunk never splits a UTF-8 character and
/// never ends up empty).
fn floor_char_boundary(text: &[u8], mut at: usize, min: usize) -> usize {
    let limit = at;
    while at > min && at < text.len() && (text[at] & 0xC0) == 0x80 {
        at -= 1;
    }
    if at == min {
        limit
    } else {
        at
    }
}

/// Parses GitLab's `Range: 0-N` (N = bytes stored, an exclusive end).
pub fn parse_range(value: &str) -> Option<usize> {
    let (start, end) = value.trim().split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    end.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(t: &mut Trace) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(c) = t.next_chunk() {
            out.extend_from_slice(&t.bytes()[c.from..c.to]);
            let end = c.start + c.len();
            t.accepted(c, end);
        }
        out
    }

    #[test]
    fn invalid_utf8_becomes_replacement_and_split_chars_wait() {
        let mut t = Trace::new();
        t.push(b"ok \xff end ");
        let euro = "€".as_bytes();
        t.push(&euro[..1]);
        assert_eq!(t.text_str(), "ok \u{FFFD} end ");
        t.push(&euro[1..]);
        assert_eq!(t.text_str(), "ok \u{FFFD} end €");
        t.push(&euro[..2]);
        t.finish_pending();
        assert_eq!(t.text_str(), "ok \u{FFFD} end €\u{FFFD}");
    }

    #[test]
    fn chunks_are_at_most_one_mib_and_content_range_is_inclusive() {
        let mut t = Trace::new();
        t.push(&vec![b'a'; MAX_PATCH + 10]);
        let c = t.next_chunk().unwrap();
        assert_eq!((c.start, c.len()), (0, MAX_PATCH));
        assert_eq!(c.content_range(), format!("0-{}", MAX_PATCH - 1));
        t.accepted(c, MAX_PATCH);
        let c = t.next_chunk().unwrap();
        assert_eq!((c.start, c.len()), (MAX_PATCH, 10));
        t.accepted(c, MAX_PATCH + 10);
        assert!(t.next_chunk().is_none());
        assert!(t.all_acknowledged());
    }

    #[test]
    fn chunks_never_split_a_character() {
        let mut t = Trace::new();
        t.push(&vec![b'a'; MAX_PATCH - 1]);
        t.push("é".as_bytes());
        let c = t.next_chunk().unwrap();
        assert_eq!(c.len(), MAX_PATCH - 1);
    }

    #[test]
    fn server_smaller_means_resend() {
        let mut t = Trace::new();
        t.push(b"hello world\n");
        let c = t.next_chunk().unwrap();
        t.accepted(c, 12);
        t.push(b"more\n");
        t.resync(6); // GitLab lost the tail
        let c = t.next_chunk().unwrap();
        assert_eq!((c.start, c.from), (6, 6));
        assert_eq!(sent(&mut t), b"world\nmore\n");
    }

    #[test]
    fn server_larger_means_another_writer_and_we_keep_our_bytes() {
        let mut t = Trace::from_data(LogData { text: "abc".into(), acknowledged: 3, remote: 3, pending: vec![] });
        t.push(b"mine\n");
        let probe = t.next_chunk().unwrap();
        assert!(probe.is_empty());
        assert_eq!(probe.start, 3);
        t.resync(10); // 416 Range: 0-10, the other process appended 7 bytes
        let c = t.next_chunk().unwrap();
        assert_eq!((c.start, c.from, c.to), (10, 3, 8));
        t.accepted(c, 15);
        assert!(t.all_acknowledged());
    }

    #[test]
    fn a_stale_202_that_does_not_end_where_we_end_resyncs() {
        let mut t = Trace::new();
        t.push(b"12345");
        let c = t.next_chunk().unwrap();
        t.accepted(c, 9); // GitLab holds 9 bytes: ours did not land where we meant
        let c = t.next_chunk().unwrap();
        assert_eq!((c.start, c.from), (9, 0));
    }

    #[test]
    fn an_unanswered_patch_found_stored_is_not_sent_twice() {
        let mut t = Trace::new();
        t.push(b"line\n");
        let c = t.next_chunk().unwrap();
        t.unanswered(c);
        t.resync(5);
        assert!(t.next_chunk().is_none());
        assert_eq!(t.acknowledged(), 5);
    }

    #[test]
    fn reset_resends_everything_after_a_probe() {
        let mut t = Trace::new();
        t.push(b"abc");
        assert_eq!(sent(&mut t), b"abc");
        t.reset();
        let probe = t.next_chunk().unwrap();
        assert!(probe.is_empty() && probe.start == 0);
        t.accepted(probe, 0);
        assert_eq!(sent(&mut t), b"abc");
    }

    #[test]
    fn checksum_is_crc32_ieee() {
        let mut t = Trace::new();
        t.push(b"hello");
        assert_eq!(t.checksum(), "crc32:3610a686");
        assert_eq!(parse_range("0-11"), Some(11));
        assert_eq!(parse_range("0-0"), Some(0));
        assert_eq!(parse_range("5-11"), None);
        assert_eq!(parse_range("bytes"), None);
    }
}
