//! Finding where a pattern could start, for the log masker: a byte of a small set, checked with
//! the byte after it. Most log text holds no such place and is then copied in bulk. On x86_64
//! 16 positions are checked at a time (SSE2, which every x86_64 CPU has), each start byte with
//! its one possible next byte where it has only one (`g` then `l` for `glpat-`...), so that
//! common letters do not stop the scan; elsewhere, and for larger sets, a byte table. The one
//! place with `unsafe` SIMD intrinsics; the functions here are safe.

/// The bytes that can start a pattern, each with the byte that must follow it when only one can.
#[derive(Clone, Debug)]
pub(crate) struct StartSet {
    table: [bool; 256],
    #[cfg(target_arch = "x86_64")]
    vector: Option<Vectors>,
}

/// More start bytes than this and the vector search stops paying off: the table is used.
const MAX_VECTOR_MEMBERS: usize = 8;

impl StartSet {
    /// `starts`: each start byte with its only possible next byte, or None when several (or
    /// none: a one-byte pattern) may follow. A byte listed twice with different next bytes
    /// counts as "several".
    pub(crate) fn new(starts: impl IntoIterator<Item = (u8, Option<u8>)>) -> StartSet {
        let mut table = [false; 256];
        let mut members: Vec<(u8, Option<u8>)> = Vec::new();
        for (first, second) in starts {
            table[first as usize] = true;
            match members.iter_mut().find(|(f, _)| *f == first) {
                Some(m) if m.1 != second => m.1 = None,
                Some(_) => {}
                None => members.push((first, second)),
            }
        }
        #[cfg(target_arch = "x86_64")]
        {
            let vector = (!members.is_empty() && members.len() <= MAX_VECTOR_MEMBERS).then(|| Vectors::new(&members));
            StartSet { table, vector }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = members;
            StartSet { table }
        }
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, b: u8) -> bool {
        self.table[b as usize]
    }

    /// The first position `p` at or after `from` holding a start byte for which `accept(p)`
    /// holds (the masker's exact check of the next byte). `accept` is called only where the
    /// start byte is followed by its one next byte (or by nothing yet, at the end), so it must
    /// reject any other place too.
    pub(crate) fn find_where(&self, hay: &[u8], from: usize, accept: impl Fn(usize) -> bool) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(v) = &self.vector {
            return v.find_where(&self.table, hay, from, accept);
        }
        find_with_table(&self.table, hay, from, accept)
    }
}

fn find_with_table(table: &[bool; 256], hay: &[u8], from: usize, accept: impl Fn(usize) -> bool) -> Option<usize> {
    (from..hay.len()).find(|&p| table[hay[p] as usize] && accept(p))
}

/// The start bytes as 16-byte vectors: the byte, the byte that must follow it, and a mask that
/// is all ones when any byte may follow.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug)]
struct Vectors {
    len: usize,
    first: [std::arch::x86_64::__m128i; MAX_VECTOR_MEMBERS],
    second: [std::arch::x86_64::__m128i; MAX_VECTOR_MEMBERS],
    any_second: [std::arch::x86_64::__m128i; MAX_VECTOR_MEMBERS],
}

#[cfg(target_arch = "x86_64")]
impl Vectors {
    fn new(members: &[(u8, Option<u8>)]) -> Vectors {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86_64; these only build values.
        unsafe {
            let mut v = Vectors {
                len: members.len(),
                first: [_mm_setzero_si128(); MAX_VECTOR_MEMBERS],
                second: [_mm_setzero_si128(); MAX_VECTOR_MEMBERS],
                any_second: [_mm_setzero_si128(); MAX_VECTOR_MEMBERS],
            };
            for (k, &(first, second)) in members.iter().enumerate() {
                v.first[k] = _mm_set1_epi8(first as i8);
                v.second[k] = _mm_set1_epi8(second.unwrap_or(0) as i8);
                v.any_second[k] = _mm_set1_epi8(if second.is_none() { -1 } else { 0 });
            }
            v
        }
    }

    fn find_where(
        &self,
        table: &[bool; 256],
        hay: &[u8],
        from: usize,
        accept: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        // One instance per set size, so that the compare loop is unrolled.
        match self.len {
            1 => self.scan::<1>(table, hay, from, accept),
            2 => self.scan::<2>(table, hay, from, accept),
            3 => self.scan::<3>(table, hay, from, accept),
            4 => self.scan::<4>(table, hay, from, accept),
            5 => self.scan::<5>(table, hay, from, accept),
            6 => self.scan::<6>(table, hay, from, accept),
            7 => self.scan::<7>(table, hay, from, accept),
            _ => self.scan::<MAX_VECTOR_MEMBERS>(table, hay, from, accept),
        }
    }

    fn scan<const N: usize>(
        &self,
        table: &[bool; 256],
        hay: &[u8],
        from: usize,
        accept: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let mut i = from;
        while i + 17 <= hay.len() {
            if let Some(at) = first_accepted(self.hits::<N>(hay, i), i, &accept) {
                return Some(at);
            }
            i += 16;
        }
        // The rest, but the last byte, as one more block that overlaps the one before (the
        // positions before `i` masked off); the last byte has no next one to compare.
        if hay.len() >= 17 && i + 1 < hay.len() {
            let block = hay.len() - 17;
            let hits = self.hits::<N>(hay, block) & (u32::MAX << (i - block));
            if let Some(at) = first_accepted(hits, block, &accept) {
                return Some(at);
            }
            i = hay.len() - 1;
        }
        find_with_table(table, hay, i, accept)
    }

    /// Bit `k` set when position `at + k` holds a start byte followed by its next byte (or by
    /// any, for a start byte with several). Needs `at + 17 <= hay.len()`.
    #[inline(always)]
    fn hits<const N: usize>(&self, hay: &[u8], at: usize) -> u32 {
        use std::arch::x86_64::*;
        assert!(at + 17 <= hay.len());
        // SAFETY: SSE2 is part of x86_64; both loads read 16 bytes inside `hay` (asserted).
        unsafe {
            let here = _mm_loadu_si128(hay.as_ptr().add(at).cast());
            let next = _mm_loadu_si128(hay.as_ptr().add(at + 1).cast());
            let mut hit = _mm_setzero_si128();
            for k in 0..N {
                let starts = _mm_cmpeq_epi8(here, self.first[k]);
                let follows = _mm_or_si128(_mm_cmpeq_epi8(next, self.second[k]), self.any_second[k]);
                hit = _mm_or_si128(hit, _mm_and_si128(starts, follows));
            }
            _mm_movemask_epi8(hit) as u32
        }
    }
}

/// The first position of `hits` (bits from `base`) that `accept` takes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn first_accepted(mut hits: u32, base: usize, accept: &impl Fn(usize) -> bool) -> Option<usize> {
    while hits != 0 {
        let at = base + hits.trailing_zeros() as usize;
        if accept(at) {
            return Some(at);
        }
        hits &= hits - 1;
    }
    None
}

/// Whether every byte is ASCII, 16 at a time where SSE2 is there.
pub(crate) fn is_ascii(bytes: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let mut chunks = bytes.chunks_exact(16);
        // SAFETY: SSE2 is part of x86_64; each load reads one 16-byte chunk.
        let high =
            chunks.by_ref().fold(0, |acc, c| acc | unsafe { _mm_movemask_epi8(_mm_loadu_si128(c.as_ptr().cast())) });
        high == 0 && chunks.remainder().is_ascii()
    }
    #[cfg(not(target_arch = "x86_64"))]
    bytes.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact check the masker passes as `accept`: a start byte followed by its next byte, or
    /// by nothing yet at the end.
    fn starts_at(starts: &[(u8, Option<u8>)], hay: &[u8], p: usize) -> bool {
        let follows = |s: &Option<u8>| s.is_none_or(|s| p + 1 >= hay.len() || hay[p + 1] == s);
        starts.iter().any(|(f, s)| *f == hay[p] && follows(s))
    }

    #[test]
    fn finds_the_first_accepted_start() {
        let starts = [(b'g', Some(b'l')), (b'_', None), (b'?', None), (b'&', None)];
        let set = StartSet::new(starts);
        let text = b"0123456789abcdefghijklmnopqrstuvwxyz ABCDEF g rest gl_";
        let exact = |p| starts_at(&starts, text, p);
        assert_eq!(set.find_where(text, 0, exact), Some(51), "a g followed by anything but l starts nothing");
        assert_eq!(set.find_where(text, 52, exact), Some(53));
        assert_eq!(set.find_where(text, 0, |p| exact(p) && p > 51), Some(53));
        assert_eq!(set.find_where(b"", 0, |_| true), None);
        assert_eq!(set.find_where(b"g", 5, |_| true), None, "from past the end");
        let end = b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaag";
        assert_eq!(set.find_where(end, 0, |p| starts_at(&starts, end, p)), Some(end.len() - 1), "nothing follows yet");
        assert!(set.contains(b'g') && !set.contains(b'l'));
    }

    #[test]
    fn agrees_with_the_plain_search_everywhere() {
        let sets: [&[(u8, Option<u8>)]; 4] = [
            &[(b'g', Some(b'h'))],
            &[(b'g', Some(b'h')), (b'&', None), (b'c', Some(b'x'))],
            &[(b'a', Some(b'b')), (b'c', None), (b'e', Some(b'f')), (b'g', Some(b'h')), (b'i', None)],
            // Nine start bytes: past the vector's size, the table.
            &[
                (b'a', None),
                (b'b', None),
                (b'c', None),
                (b'd', None),
                (b'e', None),
                (b'f', None),
                (b'g', None),
                (b'h', None),
                (b'i', Some(b'j')),
            ],
        ];
        let hay: Vec<u8> = (0..200u32).map(|i| if i % 37 == 36 { b'&' } else { b'a' + (i % 23) as u8 }).collect();
        let filters: [&dyn Fn(usize) -> bool; 3] = [&|_| true, &|p| p % 2 == 0, &|p| p > 150];
        for starts in sets {
            let set = StartSet::new(starts.iter().copied());
            for filter in filters {
                for len in [hay.len(), hay.len() - 3, 33, 17, 16, 15, 1, 0] {
                    let hay = &hay[..len];
                    let accept = |p| starts_at(starts, hay, p) && filter(p);
                    for from in 0..=len {
                        let want = (from..len).find(|&p| accept(p));
                        assert_eq!(set.find_where(hay, from, accept), want, "{starts:?} from {from} len {len}");
                    }
                }
            }
        }
    }

    #[test]
    fn is_ascii_agrees_with_the_standard_library() {
        let mut text = [b'a'; 70];
        for len in 0..=text.len() {
            assert!(is_ascii(&text[..len]));
        }
        for bad in 0..text.len() {
            text[bad] = 0x80;
            for len in 0..=text.len() {
                assert_eq!(is_ascii(&text[..len]), text[..len].is_ascii(), "byte {bad} len {len}");
            }
            text[bad] = b'a';
        }
    }

    #[test]
    fn a_start_byte_given_two_next_bytes_takes_any() {
        let text = b"aaaaaaaaaaaaaaaaaaaagqaaaaaaaaaaaaaaaaaa";
        let two = StartSet::new([(b'g', Some(b'l')), (b'g', Some(b'x'))]);
        assert_eq!(two.find_where(text, 0, |_| true), Some(20), "the scan leaves the next byte to accept");
        let same = StartSet::new([(b'g', Some(b'l')), (b'g', Some(b'l'))]);
        assert_eq!(same.find_where(text, 0, |_| true), None);
    }
}
