//! The job log as a byte buffer with GitLab's view of it: what was appended, what GitLab
//! acknowledged, and where GitLab's copy ends. Pure bookkeeping, no I/O: `job.rs` sends the
//! chunks this module hands out and reports the answers back, so every resync rule is unit-tested.
//!
//! The bytes themselves live in a [`LogText`]: PATCH bodies are slices of it, not copies.
//!
//! Offsets are bytes (GitLab's unit), never characters. Appended bytes are kept as valid UTF-8:
//! invalid sequences become U+FFFD as with the official runner, and an incomplete sequence at the
//! end of an append waits for the next append instead of being mangled.

use super::blocks::{BLOCK, HEADROOM};
use super::log_text::LogText;
use super::mask::{Masker, Mode};
use super::model::{LogData, LogView};
use bytes::Bytes;

/// At most this many bytes per PATCH, as the official runner (and one block of the log).
pub const MAX_PATCH: usize = BLOCK;

/// One PATCH to send: the log's bytes `from..to` at GitLab offset `start`.
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
}

/// The official runner's default `output_limit` is 4 MiB; GitLab's own trace limit
/// (`ci_jobs_trace_size_limit`) defaults to 100 MiB. We default to GitLab's, so long logs are not
/// cut short by us when GitLab would keep them.
pub const DEFAULT_LIMIT: usize = 100 * 1024 * 1024;
/// The smallest limit `set_limit` takes (the notice itself is about 130 bytes).
pub const MIN_LOG_LIMIT: usize = 1024;
/// Room kept in the log's block beyond an append's length, for masked output longer than its
/// input (a `[MASKED]` after a short token, or several); with less, the block grows by a copy.
/// Blocks have this much headroom, so a full block still holds a whole PATCH.
const OUTPUT_SLACK: usize = HEADROOM;

#[derive(Clone, Debug, Default)]
pub struct Trace {
    text: LogText,
    acked: usize,
    remote: usize,
    /// False after loading a dump: GitLab's size must be learned (empty PATCH) before appending,
    /// because a stale start whose end happens to match GitLab's size is answered 202 unstored.
    verified: bool,
    /// None once the log is no longer written here (a watcher): masking tables are not small.
    masker: Option<Box<Masker>>,
    /// Masked bytes ending in an incomplete UTF-8 character.
    utf8_pending: Vec<u8>,
    scratch: Vec<u8>,
    limit: usize,
    limited: bool,
    /// A PATCH that got no answer: if GitLab turns out to hold exactly its bytes, it was stored.
    unconfirmed: Option<Chunk>,
    /// After loading: how many loaded bytes were not acknowledged. If GitLab holds more than the
    /// dump knew, the process that dumped (or another loader of the same dump) sent them, and
    /// GitLab's extra bytes begin with exactly these.
    loaded_unacked: Option<usize>,
}

impl Trace {
    /// An empty log of a job just received: GitLab's trace is empty too.
    pub fn new(masker: Masker) -> Self {
        Trace { verified: true, masker: Some(Box::new(masker)), limit: DEFAULT_LIMIT, ..Default::default() }
    }

    /// A log restored from a dump; GitLab's size is re-learned before the first upload.
    pub fn from_data(data: LogData, masker: Masker) -> Self {
        let mut t = Trace {
            acked: data.acknowledged.min(data.text.len()),
            remote: data.remote.max(data.acknowledged),
            text: LogText::from_string(data.text),
            verified: false,
            masker: Some(Box::new(masker)),
            limit: data.limit.unwrap_or(DEFAULT_LIMIT).max(MIN_LOG_LIMIT),
            limited: data.limited,
            ..Default::default()
        };
        t.loaded_unacked = Some(t.text.len() - t.acked);
        // Held bytes only exist outside a secret, so re-reading them first and then restoring the
        // masker's position inside a secret is exact.
        t.push(&data.pending);
        if let Some(m) = t.masker.as_mut() {
            m.set_mode(Mode::from_u8(data.mask_mode));
        }
        t
    }

    pub fn to_data(&self) -> LogData {
        let LogView { text: _, acknowledged, remote, pending, mask_mode, limit, limited } = self.view();
        LogData { text: self.text_string(), acknowledged, remote, pending, mask_mode, limit, limited }
    }

    /// What [`to_data`](Self::to_data) gives, borrowed: a dump writes the text from here.
    pub fn view(&self) -> LogView<'_> {
        let mut pending = self.utf8_pending.clone();
        pending.extend_from_slice(self.masker.as_ref().map_or(&[][..], |m| m.held()));
        LogView {
            text: self.text.pieces().collect(),
            acknowledged: self.acked,
            remote: self.remote,
            pending,
            mask_mode: self.masker.as_ref().map_or(0, |m| m.mode().as_u8()),
            limit: (self.limit != DEFAULT_LIMIT).then_some(self.limit),
            limited: self.limited,
        }
    }

    /// The log will not be written here any more (the handle became a watcher): the masker,
    /// and what it held back, go.
    pub fn drop_masking(&mut self) {
        self.masker = None;
        self.scratch = Vec::new();
    }

    /// Sets the size limit in bytes (at least 1 KiB); text past it is dropped after a notice.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.max(MIN_LOG_LIMIT);
    }

    /// The whole log as one string (a copy).
    pub fn text_string(&self) -> String {
        String::from_utf8(self.text.to_vec()).expect("the log buffer only ever holds valid UTF-8")
    }

    /// The body of `chunk` (from `next_chunk`), shared with the log rather than copied.
    pub fn chunk_body(&mut self, chunk: Chunk) -> Bytes {
        if chunk.is_empty() {
            return Bytes::new();
        }
        self.text.bytes(chunk.from, chunk.to)
    }

    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn acknowledged(&self) -> usize {
        self.acked
    }

    /// Appends raw bytes: masked, UTF-8-repaired, limited. Cost proportional to `data.len()`,
    /// whatever the log's size.
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.limited {
            let used = self.push_piece(data);
            data = &data[used..];
            self.enforce_limit();
        }
    }

    /// Appends as much of `data` as the log's current block holds; returns how much that was.
    fn push_piece(&mut self, data: &[u8]) -> usize {
        if !self.utf8_pending.is_empty() {
            // After an incomplete character (rare): through the scratch buffer, all at once.
            let mut masked = std::mem::take(&mut self.scratch);
            masked.clear();
            match self.masker.as_mut() {
                Some(m) => m.push(data, &mut masked),
                None => masked.extend_from_slice(data),
            }
            self.decode(&masked);
            self.scratch = masked;
            return data.len();
        }
        // The common case: masked straight into the log, then checked in place. Text that is
        // not all ASCII (rare in logs) is taken back out and decoded.
        let slack = OUTPUT_SLACK + self.masker.as_ref().map_or(0, |m| m.held().len());
        let (tail, fits) = self.text.room(data.len(), slack);
        let piece = &data[..fits];
        let start = tail.len();
        match self.masker.as_mut() {
            Some(m) => m.push(piece, tail),
            None => tail.extend_from_slice(piece),
        }
        if !crate::scan::is_ascii(&tail[start..]) {
            let added = tail[start..].to_vec();
            tail.truncate(start);
            self.decode_slice(&added);
        }
        fits
    }

    fn decode(&mut self, data: &[u8]) {
        if self.utf8_pending.is_empty() {
            self.decode_slice(data);
        } else {
            let mut joined = std::mem::take(&mut self.utf8_pending);
            joined.extend_from_slice(data);
            self.decode_slice(&joined);
        }
    }

    fn decode_slice(&mut self, mut input: &[u8]) {
        loop {
            match std::str::from_utf8(input) {
                Ok(s) => {
                    self.text.extend(s.as_bytes());
                    return;
                }
                Err(e) => {
                    let (valid, rest) = input.split_at(e.valid_up_to());
                    self.text.extend(valid);
                    match e.error_len() {
                        Some(bad) => {
                            self.text.extend("\u{FFFD}".as_bytes());
                            input = &rest[bad..];
                        }
                        None => {
                            // An incomplete character at the end: wait for its other bytes.
                            self.utf8_pending = rest.to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Past the limit: cut on a character boundary, add the official runner's notice, and drop
    /// everything after (never cutting what GitLab already acknowledged).
    #[inline]
    fn enforce_limit(&mut self) {
        if self.text.len() > self.limit {
            self.cut_at_limit();
        }
    }

    #[inline(never)]
    fn cut_at_limit(&mut self) {
        let mut cut = self.limit.max(self.acked);
        while cut > self.acked && (self.text.byte_at(cut) & 0xC0) == 0x80 {
            cut -= 1;
        }
        self.text.truncate(cut);
        self.text.extend(
            format!(
                "\n\x1b[33;1mJob's log exceeded limit of {} bytes.\nJob execution will continue but no more output will be collected.\x1b[0;m\n",
                self.limit
            )
            .as_bytes(),
        );
        self.limited = true;
        self.utf8_pending.clear();
    }

    /// Ends the stream: held-back bytes are decided, an incomplete character becomes U+FFFD.
    pub fn finish_pending(&mut self) {
        if self.limited {
            return;
        }
        let mut out = Vec::new();
        if let Some(m) = self.masker.as_mut() {
            m.finish(&mut out);
        }
        self.decode(&out);
        if !self.utf8_pending.is_empty() {
            self.utf8_pending.clear();
            self.text.extend("\u{FFFD}".as_bytes());
        }
        self.enforce_limit();
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
        // Within one piece of the log, so that the body is a slice of it, not a copy.
        let piece_end = self.text.piece_end(self.acked);
        let to = if self.acked + MAX_PATCH >= piece_end {
            piece_end
        } else {
            floor_char_boundary(&self.text, self.acked + MAX_PATCH, self.acked)
        };
        Some(Chunk { start: self.remote, from: self.acked, to })
    }

    /// Whether the next PATCH is a whole one: something follows it, so it will not grow.
    pub fn whole_chunk_waiting(&self) -> bool {
        self.verified && self.next_chunk().is_some_and(|c| c.to < self.text.len())
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
            if !chunk.is_empty() {
                // Our own text is stored: from now on, GitLab's extra bytes are not the dump's.
                // (Not on the probe: the previous owner's last PATCH, sent before it handed
                // the job over, may still land after our probe.)
                self.loaded_unacked = None;
            }
        } else {
            // A 202 whose size is not where our bytes would end did not store them as we meant.
            self.resync(server_size);
        }
    }

    /// GitLab's trace is `server_size` bytes long and does not end where we thought (416, or an
    /// odd 202): continue from its end.
    pub fn resync(&mut self, server_size: usize) {
        self.verified = true;
        if let Some(unacked) = self.loaded_unacked.take() {
            if server_size > self.remote {
                // The dumped-but-unacknowledged text was uploaded after the dump was taken
                // (the dumping process's last upload, or another loader's): do not send it twice.
                let theirs = (server_size - self.remote).min(unacked);
                self.acked += theirs;
                self.remote += theirs;
            }
        }
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
        format!("crc32:{:08x}", self.text.crc32())
    }
}

/// The largest char boundary <= `at` and > `min` (so a chunk never splits a UTF-8 character and
/// never ends up empty).
fn floor_char_boundary(text: &LogText, mut at: usize, min: usize) -> usize {
    let limit = at;
    while at > min && at < text.len() && (text.byte_at(at) & 0xC0) == 0x80 {
        at -= 1;
    }
    if at == min {
        limit
    } else {
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(t: &mut Trace) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(c) = t.next_chunk() {
            out.extend_from_slice(&t.chunk_body(c));
            let end = c.start + c.len();
            t.accepted(c, end);
        }
        out
    }

    #[test]
    fn invalid_utf8_becomes_replacement_and_split_chars_wait() {
        let mut t = Trace::new(Masker::default());
        t.push(b"ok \xff end ");
        let euro = "€".as_bytes();
        t.push(&euro[..1]);
        assert_eq!(t.text_string(), "ok \u{FFFD} end ");
        t.push(&euro[1..]);
        assert_eq!(t.text_string(), "ok \u{FFFD} end €");
        t.push(&euro[..2]);
        t.finish_pending();
        assert_eq!(t.text_string(), "ok \u{FFFD} end €\u{FFFD}");
    }

    #[test]
    fn chunks_are_at_most_one_mib() {
        let mut t = Trace::new(Masker::default());
        t.push(&vec![b'a'; MAX_PATCH + 10]);
        let c = t.next_chunk().unwrap();
        assert_eq!((c.start, c.len()), (0, MAX_PATCH));
        t.accepted(c, MAX_PATCH);
        let c = t.next_chunk().unwrap();
        assert_eq!((c.start, c.len()), (MAX_PATCH, 10));
        t.accepted(c, MAX_PATCH + 10);
        assert!(t.next_chunk().is_none());
        assert!(t.all_acknowledged());
    }

    #[test]
    fn chunks_never_split_a_character() {
        let mut t = Trace::new(Masker::default());
        t.push(&vec![b'a'; MAX_PATCH - 1]);
        t.push("é".as_bytes());
        let c = t.next_chunk().unwrap();
        assert_eq!(c.len(), MAX_PATCH - 1);
    }

    #[test]
    fn server_smaller_means_resend() {
        let mut t = Trace::new(Masker::default());
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
        let mut t = Trace::from_data(
            LogData {
                text: "abc".into(),
                acknowledged: 3,
                remote: 3,
                pending: vec![],
                mask_mode: 0,
                ..Default::default()
            },
            Masker::default(),
        );
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
    fn text_the_dumping_process_sent_after_the_dump_is_not_sent_again() {
        let data = LogData {
            text: "sent\nunsent\n".into(),
            acknowledged: 5,
            remote: 5,
            pending: vec![],
            mask_mode: 0,
            ..Default::default()
        };
        // GitLab got "unsent\n" from the process that dumped, after the dump.
        let mut t = Trace::from_data(data.clone(), Masker::default());
        t.push(b"new\n");
        t.resync(12);
        let c = t.next_chunk().unwrap();
        assert_eq!((c.start, &t.chunk_body(c)[..]), (12, &b"new\n"[..]));
        // Two loaders: GitLab has the dump's unsent text and the other loader's line after it.
        let mut t = Trace::from_data(data, Masker::default());
        t.push(b"mine\n");
        t.resync(12 + 7);
        let c = t.next_chunk().unwrap();
        assert_eq!((c.start, &t.chunk_body(c)[..]), (19, &b"mine\n"[..]));
    }

    #[test]
    fn a_stale_202_that_does_not_end_where_we_end_resyncs() {
        let mut t = Trace::new(Masker::default());
        t.push(b"12345");
        let c = t.next_chunk().unwrap();
        t.accepted(c, 9); // GitLab holds 9 bytes: ours did not land where we meant
        let c = t.next_chunk().unwrap();
        assert_eq!((c.start, c.from), (9, 0));
    }

    #[test]
    fn an_unanswered_patch_found_stored_is_not_sent_twice() {
        let mut t = Trace::new(Masker::default());
        t.push(b"line\n");
        let c = t.next_chunk().unwrap();
        t.unanswered(c);
        t.resync(5);
        assert!(t.next_chunk().is_none());
        assert_eq!(t.acknowledged(), 5);
    }

    #[test]
    fn reset_resends_everything_after_a_probe() {
        let mut t = Trace::new(Masker::default());
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
        let mut t = Trace::new(Masker::default());
        t.push(b"hello");
        assert_eq!(t.checksum(), "crc32:3610a686");
    }
}
