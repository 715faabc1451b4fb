//! The bytes of a job log, stored so that uploading them copies nothing and appending never
//! moves what is there: a list of frozen pieces (shared, immutable `Bytes`) and a writable tail.
//!
//! A PATCH body is a slice of one frozen piece: the HTTP layer sends it, and resends it after a
//! failure, without a copy, and without holding the job's lock while it does. The uploader
//! freezes the tail up to where its PATCH ends (the tail goes on in the same memory after it).
//! A log's first MiB grows like a `Vec`; after that it grows in [`BLOCK`]-sized blocks that the
//! block pool has already mapped (see `blocks`), so a long log is never copied to grow, keeps no
//! doubled capacity, and its appends take no page faults.
//!
//! Every piece holds whole UTF-8 characters: the log only ever receives whole characters (see
//! `trace`), and pieces end where an append, a PATCH or the limit ended.

use super::blocks::{self, Take, BLOCK};
use bytes::{Bytes, BytesMut};

/// Below this, a PATCH body is copied out of the tail instead of freezing it: a copy of a few
/// KiB costs less than a piece more to keep, and it keeps the number of pieces at most one per
/// 4 KiB of log however often a caller flushes.
const COPY_BELOW: usize = 4096;
/// The first allocation of a log's tail (most logs are small).
const FIRST_CAPACITY: usize = 1024;
/// How far ahead of the writer a log's first MiB is mapped (see `LogText::map_ahead`).
const MAP_AHEAD: usize = 64 * 1024;

#[derive(Clone, Debug, Default)]
pub struct LogText {
    frozen: Vec<Bytes>,
    /// Where each frozen piece starts in the log (same length as `frozen`).
    starts: Vec<usize>,
    frozen_len: usize,
    tail: BytesMut,
    /// Up to where (a position in the log) the tail's memory is known to be mapped: writing
    /// below it takes no page fault (see `map_ahead`). Never more than the tail's end.
    mapped_end: usize,
}

impl LogText {
    /// A log restored from a dump: one frozen piece, taken over without a copy.
    pub fn from_string(text: String) -> Self {
        let mut t = LogText::default();
        t.freeze_piece(Bytes::from(text));
        t
    }

    pub fn len(&self) -> usize {
        self.frozen_len + self.tail.len()
    }

    /// The log's bytes, in order.
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        self.frozen.iter().map(|b| &b[..]).chain(std::iter::once(&self.tail[..])).filter(|p| !p.is_empty())
    }

    /// The byte at `at` (< len).
    pub fn byte_at(&self, at: usize) -> u8 {
        if at >= self.frozen_len {
            return self.tail[at - self.frozen_len];
        }
        let i = self.piece_index(at);
        self.frozen[i][at - self.starts[i]]
    }

    /// The whole log in one buffer (for `glr_job_log` and hand-over data: not on the hot path).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for p in self.pieces() {
            out.extend_from_slice(p);
        }
        out
    }

    /// The tail, with room for `slack` bytes more than it returns: the tail and how many of
    /// the `want` bytes fit (at least one). The slack is for output longer than its input (what
    /// the masker held back from the last append, a `[MASKED]` longer than its secret): text
    /// that still does not fit makes the tail grow by a copy, correct but slow. Small logs grow
    /// the tail as a `Vec` grows; once it is a full block, it is frozen and a new block goes on.
    #[inline]
    pub fn room(&mut self, want: usize, slack: usize) -> (&mut BytesMut, usize) {
        // `mapped_end` is never past the tail's end: room below it is room in the tail too.
        if self.len() + want + slack > self.mapped_end {
            self.make_room(want, slack);
        }
        debug_assert!(self.mapped_end <= self.frozen_len + self.tail.capacity(), "mapped past the tail");
        let free = self.tail.capacity() - self.tail.len();
        (&mut self.tail, want.min(free - slack))
    }

    /// `room`'s rare part (once per block, and in the first MiB once per [`MAP_AHEAD`], at
    /// most): out of line, so that an append's common path stays small.
    #[inline(never)]
    fn make_room(&mut self, want: usize, slack: usize) {
        let free = self.tail.capacity() - self.tail.len();
        // What the log holds in memory, written or not (freezing a piece does not change it).
        let footprint = self.frozen_len + self.tail.capacity();
        if footprint < BLOCK {
            if want + slack > free {
                // Growing towards the first block (a block and the slack, so that it holds a
                // whole block): at least doubling, as a Vec would.
                let target = (self.len() + want + slack).max(2 * footprint).max(FIRST_CAPACITY);
                let target = if target >= BLOCK { BLOCK + slack } else { target };
                if target >= BLOCK / 2 {
                    // A log this long is likely to go on: its blocks get prepared from now on.
                    blocks::expect();
                }
                self.tail.reserve(target.max(self.len() + slack + 1) - self.len());
                // New memory: only what was copied into it is known to be mapped.
                self.mapped_end = self.len();
            }
        } else if free <= slack {
            // `want` beyond this block: one append fills it and more (see `blocks::Take`).
            let how = if want > BLOCK { Take::OneLongAppend } else { Take::Lines };
            let full = std::mem::replace(&mut self.tail, blocks::take(how));
            self.freeze_piece(full.freeze());
            // A block from the pool is mapped already (one the writer made itself, when the
            // pool was empty, is mapped by its first write: a huge page where the kernel
            // gives them).
            self.mapped_end = self.frozen_len + self.tail.capacity();
            if self.tail.capacity() <= slack {
                // A slack as large as a block (a secret of a MiB held back): grow once.
                self.tail.reserve(slack + 1);
                self.mapped_end = self.len();
            } else {
                return;
            }
        }
        // The first block, grown as a `Vec`, is mapped as it is written.
        self.map_ahead(want + slack);
    }

    /// Maps the tail's memory ahead of the writer, from what is mapped already past the `want`
    /// bytes about to be written, by [`MAP_AHEAD`] or to the end of the tail's memory. A log's
    /// first MiB grows as a `Vec` does, into fresh memory (a large allocation is a fresh
    /// mapping) whose pages the appends would otherwise map one page fault per 4 KiB: one
    /// append in forty slow. Mapped 64 KiB at a time, the faults come sixteen together once
    /// per 640 appends of 100 bytes, and cost less together than apart.
    fn map_ahead(&mut self, want: usize) {
        let (len, end) = (self.tail.len(), self.tail.capacity());
        let from = self.mapped_end.saturating_sub(self.frozen_len).clamp(len, end);
        let to = (len + want + MAP_AHEAD).min(end);
        if from < to {
            blocks::touch_pages(&mut self.tail.spare_capacity_mut()[from - len..to - len]);
        }
        self.mapped_end = self.frozen_len + to;
    }

    /// Appends bytes at the end (growing the tail as needed; used for the rare text that does
    /// not go through `room`: a repaired character, the limit's notice).
    pub fn extend(&mut self, data: &[u8]) {
        let capacity = self.tail.capacity();
        self.tail.extend_from_slice(data);
        if self.tail.capacity() != capacity {
            // Moved to new memory: only what is in it is known to be mapped.
            self.mapped_end = self.len();
        }
    }

    /// The end of the piece holding byte `at`: a PATCH starting there ends here at the latest,
    /// so that its body is one piece (the tail counts as one, up to the log's end).
    pub fn piece_end(&self, at: usize) -> usize {
        if at >= self.frozen_len {
            return self.len();
        }
        let i = self.piece_index(at);
        self.starts[i] + self.frozen[i].len()
    }

    /// The bytes `from..to` (within one piece, as `piece_end` gives) as a shared buffer: a
    /// slice of a frozen piece, the tail frozen up to `to`, or for a small range in the tail a
    /// copy of it.
    pub fn bytes(&mut self, from: usize, to: usize) -> Bytes {
        if from < self.frozen_len {
            let i = self.piece_index(from);
            let start = self.starts[i];
            if to <= start + self.frozen[i].len() {
                return self.frozen[i].slice(from - start..to - start);
            }
            // Not one piece (a caller's mistake, not a reason to fail): one copy.
            let mut out = Vec::with_capacity(to - from);
            let mut at = 0;
            for p in self.pieces() {
                let (lo, hi) = (from.max(at), to.min(at + p.len()));
                if lo < hi {
                    out.extend_from_slice(&p[lo - at..hi - at]);
                }
                at += p.len();
            }
            return Bytes::from(out);
        }
        let (lo, hi) = (from - self.frozen_len, to - self.frozen_len);
        if hi - lo < COPY_BELOW {
            return Bytes::copy_from_slice(&self.tail[lo..hi]);
        }
        let head = self.tail.split_to(hi).freeze();
        let body = head.slice(lo..);
        self.freeze_piece(head);
        body
    }

    /// Cuts the log to `len` bytes (the limit; never below what GitLab acknowledged).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.frozen_len {
            self.tail.truncate(len - self.frozen_len);
            return;
        }
        let i = self.piece_index(len);
        self.frozen[i].truncate(len - self.starts[i]);
        let keep = if self.frozen[i].is_empty() { i } else { i + 1 };
        self.frozen.truncate(keep);
        self.starts.truncate(keep);
        self.frozen_len = len;
        self.tail.clear();
        // The tail now starts at `len`: what was known of its memory no longer lines up.
        self.mapped_end = len;
    }

    /// CRC-32 (IEEE) of the whole log.
    pub fn crc32(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        for p in self.pieces() {
            h.update(p);
        }
        h.finalize()
    }

    fn freeze_piece(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.starts.push(self.frozen_len);
            self.frozen_len += piece.len();
            self.frozen.push(piece);
        }
    }

    /// The frozen piece holding byte `at` (< frozen_len).
    fn piece_index(&self, at: usize) -> usize {
        self.starts.partition_point(|&s| s <= at) - 1
    }
}

impl Drop for LogText {
    /// A long log's blocks go back to the pool for the next long log (see `blocks::give_back`).
    fn drop(&mut self) {
        for piece in self.frozen.drain(..) {
            blocks::give_back(piece);
        }
        blocks::give_back_memory(std::mem::take(&mut self.tail));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(t: &mut LogText, mut data: &[u8]) {
        while !data.is_empty() {
            let (tail, n) = t.room(data.len(), blocks::HEADROOM);
            tail.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
    }

    fn text(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                b'a' + (x >> 59) as u8
            })
            .collect()
    }

    #[test]
    fn a_long_log_that_ends_gives_its_blocks_back_but_not_what_a_patch_still_reads() {
        let data = text(11, 9 * BLOCK);
        let mut t = LogText::default();
        append(&mut t, &data);
        // A PATCH body in flight from the log's third MiB (a block's piece) when the job ends.
        let from = 2 * BLOCK + 100;
        let to = t.piece_end(from).min(from + 10_000);
        let in_flight = t.bytes(from, to);
        let blocks_of_the_log: Vec<usize> =
            t.frozen.iter().map(|p| p.as_ptr() as usize).chain([t.tail.as_ptr() as usize]).collect();
        blocks::tests::RECLAIMED_HERE.with(|r| r.borrow_mut().clear());
        drop(t);
        let given_back = blocks::tests::RECLAIMED_HERE.with(|r| std::mem::take(&mut *r.borrow_mut()));
        // Eight blocks, two per allocation: at least one allocation is the log's alone (the
        // other block of a pair may be in another test's log, or in the pool).
        assert!(given_back.len() >= 2, "no allocation of the log was given back");
        let body = in_flight.as_ptr() as usize;
        assert!(
            !given_back.iter().any(|&b| (b..b + BLOCK + blocks::HEADROOM).contains(&body)),
            "the block a PATCH still reads was given back"
        );
        assert!(given_back.iter().any(|b| blocks_of_the_log.contains(b)), "no block given back was the log's");
        // The next logs write into the blocks given back; the body in flight keeps its bytes.
        let mut next = LogText::default();
        append(&mut next, &vec![b'x'; 9 * BLOCK]);
        assert_eq!(&in_flight[..], &data[from..to]);
    }

    #[test]
    fn appends_and_reads_back_across_blocks() {
        let data = text(1, 3 * BLOCK + 12345);
        let mut t = LogText::default();
        let mut at = 0;
        for size in [1, 100, 5000, BLOCK - 3, 7, 2 * BLOCK] {
            let end = (at + size).min(data.len());
            append(&mut t, &data[at..end]);
            at = end;
        }
        append(&mut t, &data[at..]);
        assert_eq!(t.len(), data.len());
        assert_eq!(t.to_vec(), data);
        for at in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, data.len() - 1] {
            assert_eq!(t.byte_at(at), data[at]);
        }
        assert_eq!(t.crc32(), crc32fast::hash(&data));
        // Past the first block, the log grows in blocks, not by copying what it holds.
        assert!(t.frozen.len() >= 3, "{} pieces", t.frozen.len());
        assert!(t.frozen.iter().all(|p| p.len() == BLOCK), "full blocks hold a whole PATCH");
    }

    #[test]
    fn bodies_are_the_bytes_asked_for_and_freezing_keeps_the_log() {
        let data = text(2, 2 * BLOCK + 999);
        let mut t = LogText::default();
        let mut at = 0;
        let mut bodies = Vec::new();
        // Uploads as the uploader makes them: from the last end to the piece end, capped.
        while at < data.len() {
            let step = (at % 7919 + 1) * 97;
            let end = (at + step).min(data.len());
            append(&mut t, &data[at..end]);
            at = end;
            let sent: usize = bodies.iter().map(|b: &Bytes| b.len()).sum();
            let to = t.piece_end(sent).min(sent + BLOCK);
            bodies.push(t.bytes(sent, to));
        }
        let mut sent = bodies.iter().map(|b| b.len()).sum::<usize>();
        while sent < t.len() {
            let to = t.piece_end(sent).min(sent + BLOCK);
            bodies.push(t.bytes(sent, to));
            sent = to;
        }
        assert_eq!(bodies.concat(), data);
        assert_eq!(t.to_vec(), data);
        // Any range within a piece, again (a resend after GitLab lost bytes).
        for from in [0, 10, BLOCK - 5, BLOCK + 17, data.len() - 3] {
            let to = t.piece_end(from);
            assert_eq!(&t.bytes(from, to)[..], &data[from..to]);
        }
        // Across pieces (not what the uploader asks for, still right).
        assert_eq!(&t.bytes(5, data.len())[..], &data[5..]);
    }

    #[test]
    fn small_bodies_from_the_tail_are_copies_and_leave_no_piece() {
        let mut t = LogText::default();
        append(&mut t, b"hello world\n");
        assert_eq!(&t.bytes(0, 12)[..], b"hello world\n");
        assert!(t.frozen.is_empty());
        append(&mut t, &vec![b'x'; COPY_BELOW]);
        let body = t.bytes(12, t.len());
        assert_eq!(body.len(), COPY_BELOW);
        assert_eq!(t.frozen.len(), 1, "a large body freezes the tail");
        append(&mut t, b"more");
        assert_eq!(t.len(), 12 + COPY_BELOW + 4);
        assert_eq!(t.piece_end(0), 12 + COPY_BELOW);
        assert_eq!(t.piece_end(12 + COPY_BELOW), t.len());
    }

    #[test]
    fn truncate_cuts_frozen_pieces_and_the_tail() {
        let data = text(3, BLOCK + 50_000);
        for cut in [0, 1, 4096, BLOCK, BLOCK + 1, BLOCK + 49_999] {
            let mut t = LogText::default();
            append(&mut t, &data[..BLOCK + 10_000]);
            let _ = t.bytes(0, t.piece_end(0));
            append(&mut t, &data[BLOCK + 10_000..]);
            t.truncate(cut);
            assert_eq!(t.len(), cut);
            t.extend(b"notice");
            let mut want = data[..cut].to_vec();
            want.extend_from_slice(b"notice");
            assert_eq!(t.to_vec(), want, "cut at {cut}");
        }
    }

    /// A log's first MiB grows into fresh memory: its pages are mapped ahead of the writer, so
    /// that few appends take a page fault (one per 4 KiB of log was one append in forty).
    #[cfg(target_os = "linux")]
    #[test]
    fn appends_in_a_logs_first_mib_seldom_take_a_page_fault() {
        let line = [b'x'; 100];
        let mut t = LogText::default();
        let (mut faulted, mut appends) = (0, 0);
        while t.len() + line.len() < BLOCK {
            let before = crate::os::thread_minor_faults();
            append(&mut t, &line);
            faulted += usize::from(crate::os::thread_minor_faults() != before);
            appends += 1;
        }
        // Sixteen map-aheads (the growths among them), and a few of the test's own (reading
        // /proc): about twenty. Mapped by the appends, one in forty.
        assert!(faulted * 200 <= appends, "{faulted} of {appends} appends took a page fault");
        assert_eq!(t.to_vec(), line.repeat(appends));
    }

    #[test]
    fn a_log_grown_by_small_appends_has_whole_blocks_too() {
        let mut t = LogText::default();
        while t.len() < 2 * BLOCK + 10 {
            append(&mut t, b"0123456789abcdef");
        }
        assert_eq!((t.piece_end(0), t.piece_end(BLOCK)), (BLOCK, 2 * BLOCK));
    }

    #[test]
    fn room_leaves_the_slack_asked_for() {
        let mut t = LogText::default();
        for slack in [0, 1, 64, 5000, BLOCK] {
            for _ in 0..3 {
                let (tail, n) = t.room(3 * BLOCK, slack);
                assert!(n >= 1);
                assert!(tail.capacity() - tail.len() >= n + slack, "slack {slack}");
                tail.extend_from_slice(&vec![b'y'; n]);
            }
        }
        assert_eq!(t.to_vec(), vec![b'y'; t.len()]);
    }

    #[test]
    fn a_restored_log_is_one_piece_and_goes_on() {
        let mut t = LogText::from_string("restored\n".into());
        append(&mut t, b"new\n");
        assert_eq!(t.to_vec(), b"restored\nnew\n");
        assert_eq!(t.piece_end(0), 9);
        assert_eq!(&t.bytes(0, 9)[..], b"restored\n");
        assert_eq!(LogText::from_string(String::new()).len(), 0);
    }
}
