//! Finding where a pattern could start, for the log masker: a byte of a small set, checked with
//! the byte after it. Most log text holds no such place and is then copied in bulk.
//!
//! On x86_64 with AVX2 (detected at run time, once per set) 32 positions are classified at a
//! time by two nibble tables (`pshufb`): each start byte gets a bit (start bytes share the 8 bits
//! when there are more), the low and high nibble of a byte each look up the bits of the start
//! bytes with that nibble, and the two lookups ANDed are exactly the start bytes' bits. The byte
//! after it is classified the same way against the byte(s) that may follow each start byte, so
//! that a common letter starting a pattern (`g` of `glpat-`, only ever followed by `l`) rarely
//! stops the scan, and the cost does not grow with the size of the set. Without AVX2, SSSE3 does
//! the same 16 at a time; without it (only the oldest x86_64 CPUs), SSE2 (part of x86_64)
//! compares with each start byte, for up to 8 of them; elsewhere, and for larger sets there, a
//! byte table. The one place with `unsafe` SIMD intrinsics; the functions here are safe.

/// The bytes that can start a pattern, each with the byte that must follow it when only one can.
#[derive(Clone, Debug)]
pub(crate) struct StartSet {
    table: [bool; 256],
    /// Which search runs; only ever a path the CPU has (checked where it is set).
    path: Path,
    #[cfg(target_arch = "x86_64")]
    nibbles: Nibbles,
    #[cfg(target_arch = "x86_64")]
    vector: Option<Vectors>,
}

/// The ways to search, fastest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// Nibble tables, 32 positions at a time.
    Avx2,
    /// Nibble tables, 16 positions at a time.
    Ssse3,
    /// One compare per start byte, 16 positions at a time (at most 8 start bytes).
    Sse2,
    /// One position at a time.
    Table,
}

/// More start bytes than this and the SSE2 compares stop paying off: the table is used.
const MAX_VECTOR_MEMBERS: usize = 8;

impl StartSet {
    /// `starts`: each start byte with its only possible next byte, or None when several (or
    /// none: a one-byte pattern) may follow. A byte listed twice with different next bytes
    /// counts as "several".
    pub(crate) fn new(starts: impl IntoIterator<Item = (u8, Option<u8>)>) -> StartSet {
        let mut set = StartSet::build(starts);
        set.path = set.best_path();
        set
    }

    /// The set searched by `path`, or None when this CPU cannot run it (or it does not apply to
    /// this set: SSE2 compares with more than 8 start bytes): to test each path, also the ones
    /// `new` would not pick here.
    #[cfg(test)]
    pub(crate) fn with_path(starts: impl IntoIterator<Item = (u8, Option<u8>)>, path: Path) -> Option<StartSet> {
        let mut set = StartSet::build(starts);
        set.supports(path).then(|| {
            set.path = path;
            set
        })
    }

    fn build(starts: impl IntoIterator<Item = (u8, Option<u8>)>) -> StartSet {
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
        // Sorted, so that start bytes sharing a bit (more than 8) are neighbours, mostly with the
        // same high nibble: fewer bytes then match the shared bit by mistake.
        members.sort_unstable();
        #[cfg(target_arch = "x86_64")]
        {
            let vector = (!members.is_empty() && members.len() <= MAX_VECTOR_MEMBERS).then(|| Vectors::new(&members));
            StartSet { table, path: Path::Table, nibbles: Nibbles::new(&members), vector }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            StartSet { table, path: Path::Table }
        }
    }

    /// Whether this CPU can run `path` for this set.
    fn supports(&self, path: Path) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match path {
                Path::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
                Path::Ssse3 => std::arch::is_x86_feature_detected!("ssse3"),
                Path::Sse2 => self.vector.is_some(),
                Path::Table => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            path == Path::Table
        }
    }

    /// The fastest path this CPU has (detected here, once per set, not per search). An empty
    /// set takes the table: it finds nothing at once.
    fn best_path(&self) -> Path {
        if !self.table.contains(&true) {
            return Path::Table;
        }
        [Path::Avx2, Path::Ssse3, Path::Sse2].into_iter().find(|p| self.supports(*p)).unwrap_or(Path::Table)
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, b: u8) -> bool {
        self.table[b as usize]
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> Path {
        self.path
    }

    /// The first position `p` at or after `from` holding a start byte for which `accept(p)`
    /// holds (the masker's exact check of the next byte). `accept` is called only at start
    /// bytes, and (but for the last byte, which has no next one yet) mostly only where the
    /// start byte is followed by its one next byte, so it must reject any other place itself.
    #[inline]
    pub(crate) fn find_where(&self, hay: &[u8], from: usize, accept: impl Fn(usize) -> bool) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        match self.path {
            // SAFETY (all three): `path` is only ever set to a path `supports` found on this
            // CPU (`new`, `with_path`), so the instructions each function is compiled for exist.
            Path::Avx2 => return unsafe { self.nibbles.scan_avx2(&self.table, hay, from, accept) },
            Path::Ssse3 => return unsafe { self.nibbles.scan_ssse3(&self.table, hay, from, accept) },
            Path::Sse2 => {
                if let Some(v) = &self.vector {
                    return v.find_where(&self.table, hay, from, accept);
                }
            }
            Path::Table => {}
        }
        find_with_table(&self.table, hay, from, accept)
    }
}

fn find_with_table(table: &[bool; 256], hay: &[u8], from: usize, accept: impl Fn(usize) -> bool) -> Option<usize> {
    (from..hay.len()).find(|&p| table[hay[p] as usize] && accept(p))
}

/// The nibble tables: bit `k` of `first_lo[n]` is set when a start byte of group `k` has the low
/// nibble `n` (likewise `first_hi`), so `first_lo[b & 15] & first_hi[b >> 4]` has bit `k` set
/// exactly for a start byte `b` of group `k` (and, when a group holds several start bytes, for
/// the mixes of their nibbles too: `accept` is then preceded by the exact table). `second_*`:
/// the bytes that may follow the start bytes of each group, all bytes for a group with a start
/// byte that may be followed by any.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug)]
struct Nibbles {
    first_lo: [u8; 16],
    first_hi: [u8; 16],
    second_lo: [u8; 16],
    second_hi: [u8; 16],
}

#[cfg(target_arch = "x86_64")]
impl Nibbles {
    fn new(members: &[(u8, Option<u8>)]) -> Nibbles {
        let mut n = Nibbles { first_lo: [0; 16], first_hi: [0; 16], second_lo: [0; 16], second_hi: [0; 16] };
        for (k, &(first, second)) in members.iter().enumerate() {
            // Up to 8 start bytes: one bit each. More: 8 groups of neighbours.
            let bit = 1u8 << (k * 8 / members.len().max(8));
            n.first_lo[(first & 15) as usize] |= bit;
            n.first_hi[(first >> 4) as usize] |= bit;
            match second {
                Some(s) => {
                    n.second_lo[(s & 15) as usize] |= bit;
                    n.second_hi[(s >> 4) as usize] |= bit;
                }
                None => {
                    n.second_lo.iter_mut().chain(n.second_hi.iter_mut()).for_each(|b| *b |= bit);
                }
            }
        }
        n
    }

    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn scan_avx2(
        &self,
        table: &[bool; 256],
        hay: &[u8],
        from: usize,
        accept: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        use std::arch::x86_64::*;
        let len = hay.len();
        let mut i = from;
        if len < 33 {
            // Not one whole block: 16 at a time.
            return unsafe { self.scan_ssse3(table, hay, from, accept) };
        }
        // SAFETY: AVX2 by the caller's contract; every block `at` read has `at + 33 <= len`
        // (checked in the loop, and `len - 33` with `len >= 33`), so both 32-byte loads, at `at`
        // and `at + 1`, are inside `hay`.
        unsafe {
            let t = Tables256 {
                first_lo: _mm256_broadcastsi128_si256(_mm_loadu_si128(self.first_lo.as_ptr().cast())),
                first_hi: _mm256_broadcastsi128_si256(_mm_loadu_si128(self.first_hi.as_ptr().cast())),
                second_lo: _mm256_broadcastsi128_si256(_mm_loadu_si128(self.second_lo.as_ptr().cast())),
                second_hi: _mm256_broadcastsi128_si256(_mm_loadu_si128(self.second_hi.as_ptr().cast())),
            };
            let hits = |at: usize| {
                let here = _mm256_loadu_si256(hay.as_ptr().add(at).cast());
                let next = _mm256_loadu_si256(hay.as_ptr().add(at + 1).cast());
                t.hits(here, next)
            };
            while i + 33 <= len {
                if let Some(at) = first_accepted(hits(i), i, table, hay, &accept) {
                    return Some(at);
                }
                i += 32;
            }
            // The rest, but the last byte, as one more block that overlaps the one before (the
            // positions before `i` masked off; `i <= len - 2`, so the shift is under 32); the
            // last byte has no next one to compare.
            if i + 1 < len {
                let block = len - 33;
                if let Some(at) = first_accepted(hits(block) & (u32::MAX << (i - block)), block, table, hay, &accept) {
                    return Some(at);
                }
                i = len - 1;
            }
        }
        find_with_table(table, hay, i, accept)
    }

    /// # Safety
    /// The CPU has SSSE3.
    #[target_feature(enable = "ssse3")]
    unsafe fn scan_ssse3(
        &self,
        table: &[bool; 256],
        hay: &[u8],
        from: usize,
        accept: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        use std::arch::x86_64::*;
        let len = hay.len();
        let mut i = from;
        if len < 17 {
            return find_with_table(table, hay, from, accept);
        }
        // SAFETY: SSSE3 by the caller's contract; every block `at` read has `at + 17 <= len`,
        // so both 16-byte loads, at `at` and `at + 1`, are inside `hay`.
        unsafe {
            let t = Tables128 {
                first_lo: _mm_loadu_si128(self.first_lo.as_ptr().cast()),
                first_hi: _mm_loadu_si128(self.first_hi.as_ptr().cast()),
                second_lo: _mm_loadu_si128(self.second_lo.as_ptr().cast()),
                second_hi: _mm_loadu_si128(self.second_hi.as_ptr().cast()),
            };
            let hits = |at: usize| {
                let here = _mm_loadu_si128(hay.as_ptr().add(at).cast());
                let next = _mm_loadu_si128(hay.as_ptr().add(at + 1).cast());
                t.hits(here, next)
            };
            while i + 17 <= len {
                if let Some(at) = first_accepted(hits(i), i, table, hay, &accept) {
                    return Some(at);
                }
                i += 16;
            }
            // As in scan_avx2: an overlapping last block (`i - block < 16`), then the last byte.
            if i + 1 < len {
                let block = len - 17;
                if let Some(at) = first_accepted(hits(block) & (u32::MAX << (i - block)), block, table, hay, &accept) {
                    return Some(at);
                }
                i = len - 1;
            }
        }
        find_with_table(table, hay, i, accept)
    }
}

#[cfg(target_arch = "x86_64")]
struct Tables256 {
    first_lo: std::arch::x86_64::__m256i,
    first_hi: std::arch::x86_64::__m256i,
    second_lo: std::arch::x86_64::__m256i,
    second_hi: std::arch::x86_64::__m256i,
}

#[cfg(target_arch = "x86_64")]
impl Tables256 {
    /// Bit `k` set when position `k` of `here` holds a start byte (of a group) whose byte after
    /// it, position `k` of `next`, may follow a start byte of that group.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    // Register-only intrinsics are safe inside a function with the feature from Rust 1.87; the
    // `unsafe` block is for the older compilers `rust-version` allows.
    #[allow(unused_unsafe)]
    unsafe fn hits(&self, here: std::arch::x86_64::__m256i, next: std::arch::x86_64::__m256i) -> u32 {
        use std::arch::x86_64::*;
        // SAFETY: AVX2 by the caller's contract; register operations only.
        unsafe {
            let low = _mm256_set1_epi8(0x0f);
            // The shift is per 16-bit lane: the mask drops the bits shifted in from the other byte.
            let class = |v: __m256i, lo: __m256i, hi: __m256i| {
                let l = _mm256_shuffle_epi8(lo, _mm256_and_si256(v, low));
                let h = _mm256_shuffle_epi8(hi, _mm256_and_si256(_mm256_srli_epi16::<4>(v), low));
                _mm256_and_si256(l, h)
            };
            let both = _mm256_and_si256(
                class(here, self.first_lo, self.first_hi),
                class(next, self.second_lo, self.second_hi),
            );
            !(_mm256_movemask_epi8(_mm256_cmpeq_epi8(both, _mm256_setzero_si256())) as u32)
        }
    }
}

#[cfg(target_arch = "x86_64")]
struct Tables128 {
    first_lo: std::arch::x86_64::__m128i,
    first_hi: std::arch::x86_64::__m128i,
    second_lo: std::arch::x86_64::__m128i,
    second_hi: std::arch::x86_64::__m128i,
}

#[cfg(target_arch = "x86_64")]
impl Tables128 {
    /// As `Tables256::hits`, for 16 positions (bits 16 and up clear).
    ///
    /// # Safety
    /// The CPU has SSSE3.
    #[target_feature(enable = "ssse3")]
    #[inline]
    // Register-only intrinsics are safe inside a function with the feature from Rust 1.87; the
    // `unsafe` block is for the older compilers `rust-version` allows.
    #[allow(unused_unsafe)]
    unsafe fn hits(&self, here: std::arch::x86_64::__m128i, next: std::arch::x86_64::__m128i) -> u32 {
        use std::arch::x86_64::*;
        // SAFETY: SSSE3 by the caller's contract; register operations only.
        unsafe {
            let low = _mm_set1_epi8(0x0f);
            let class = |v: __m128i, lo: __m128i, hi: __m128i| {
                let l = _mm_shuffle_epi8(lo, _mm_and_si128(v, low));
                let h = _mm_shuffle_epi8(hi, _mm_and_si128(_mm_srli_epi16::<4>(v), low));
                _mm_and_si128(l, h)
            };
            let both =
                _mm_and_si128(class(here, self.first_lo, self.first_hi), class(next, self.second_lo, self.second_hi));
            !(_mm_movemask_epi8(_mm_cmpeq_epi8(both, _mm_setzero_si128())) as u32) & 0xffff
        }
    }
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

    // Out of line: the AVX2 and SSSE3 paths dispatch through `StartSet::find_where` too, which
    // then needs no room for this one's unrolled instances.
    #[inline(never)]
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
            if let Some(at) = first_accepted(self.hits::<N>(hay, i), i, table, hay, &accept) {
                return Some(at);
            }
            i += 16;
        }
        // The rest, but the last byte, as one more block that overlaps the one before (the
        // positions before `i` masked off); the last byte has no next one to compare.
        if hay.len() >= 17 && i + 1 < hay.len() {
            let block = hay.len() - 17;
            let hits = self.hits::<N>(hay, block) & (u32::MAX << (i - block));
            if let Some(at) = first_accepted(hits, block, table, hay, &accept) {
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

/// The first position of `hits` (bits from `base`) holding a start byte that `accept` takes.
/// The table check drops the positions that only look like a start byte (several sharing a bit).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn first_accepted(
    mut hits: u32,
    base: usize,
    table: &[bool; 256],
    hay: &[u8],
    accept: &impl Fn(usize) -> bool,
) -> Option<usize> {
    while hits != 0 {
        let at = base + hits.trailing_zeros() as usize;
        if table[hay[at] as usize] && accept(at) {
            return Some(at);
        }
        hits &= hits - 1;
    }
    None
}

/// Whether every byte is ASCII: 32 bytes per step ORed together where SSE2 is there (part of
/// x86_64), the last part as one 16-byte load that overlaps what came before (instead of a byte
/// loop), and one sign-bit test at the end. Shorter text: two overlapping 8-byte words.
pub(crate) fn is_ascii(bytes: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let len = bytes.len();
        if len < 16 {
            return is_ascii_short(bytes);
        }
        let p = bytes.as_ptr();
        // SAFETY: SSE2 is part of x86_64; every load reads 16 bytes at an offset `at` with
        // `at + 16 <= len` (the loop conditions, and `len - 16` with `len >= 16`).
        unsafe {
            let mut acc = _mm_loadu_si128(p.add(len - 16).cast());
            let mut i = 0;
            while i + 32 <= len {
                acc = _mm_or_si128(
                    acc,
                    _mm_or_si128(_mm_loadu_si128(p.add(i).cast()), _mm_loadu_si128(p.add(i + 16).cast())),
                );
                i += 32;
            }
            if i + 16 <= len {
                acc = _mm_or_si128(acc, _mm_loadu_si128(p.add(i).cast()));
            }
            _mm_movemask_epi8(acc) == 0
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    bytes.is_ascii()
}

/// `is_ascii` for fewer than 16 bytes: from 8 up, the first and the last 8 as words.
#[cfg(target_arch = "x86_64")]
fn is_ascii_short(bytes: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().expect("8 bytes"));
    match bytes.len() {
        8.. => (word(&bytes[..8]) | word(&bytes[bytes.len() - 8..])) & HIGH == 0,
        _ => bytes.iter().fold(0, |acc, b| acc | b) < 0x80,
    }
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
        for (starts, path) in sets.iter().flat_map(|s| ALL_PATHS.map(|p| (*s, p))) {
            let Some(set) = StartSet::with_path(starts.iter().copied(), path) else { continue };
            for filter in filters {
                for len in [hay.len(), hay.len() - 3, 33, 17, 16, 15, 1, 0] {
                    let hay = &hay[..len];
                    let accept = |p| starts_at(starts, hay, p) && filter(p);
                    for from in 0..=len {
                        let want = (from..len).find(|&p| accept(p));
                        assert_eq!(
                            set.find_where(hay, from, accept),
                            want,
                            "{starts:?} {path:?} from {from} len {len}"
                        );
                    }
                }
            }
        }
    }

    /// Every length up to past four 32-byte steps, at odd addresses, with one non-ASCII byte
    /// at every place (or none): the overlapping last load and the short words miss nothing.
    #[test]
    fn is_ascii_agrees_with_the_standard_library() {
        let mut text = [b'a'; 134];
        for start in 0..3 {
            for bad in (0..text.len()).map(Some).chain([None]) {
                if let Some(bad) = bad {
                    text[bad] = if bad % 2 == 0 { 0x80 } else { 0xff };
                }
                for len in 0..=text.len() - start {
                    let t = &text[start..start + len];
                    assert_eq!(is_ascii(t), t.is_ascii(), "byte {bad:?} start {start} len {len}");
                }
                if let Some(bad) = bad {
                    text[bad] = b'a';
                }
            }
        }
    }

    const ALL_PATHS: [Path; 4] = [Path::Avx2, Path::Ssse3, Path::Sse2, Path::Table];

    use crate::test_rng::Rng;

    /// `size` distinct start bytes (any of the 256), a third of them followed by any byte.
    fn random_starts(rng: &mut Rng, size: usize) -> Vec<(u8, Option<u8>)> {
        let mut firsts: Vec<u8> = (0..=255).collect();
        for k in 0..size {
            let j = k + rng.below(256 - k);
            firsts.swap(k, j);
        }
        firsts[..size].iter().map(|&f| (f, (rng.below(3) != 0).then(|| rng.next() as u8))).collect()
    }

    /// Text that is mostly start bytes, their next bytes and neighbours of both (the same
    /// nibbles, where a nibble classifier could go wrong), with some bytes of anything.
    fn random_text(rng: &mut Rng, starts: &[(u8, Option<u8>)], len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                let (f, s) = starts[rng.below(starts.len())];
                match rng.below(6) {
                    0 | 1 => f,
                    2 => s.unwrap_or(f),
                    3 => f ^ (1 << rng.below(8)),
                    4 => s.unwrap_or(f) ^ 0x10,
                    _ => rng.next() as u8,
                }
            })
            .collect()
    }

    /// Every path this CPU has against the plain byte-by-byte search, for sets of every size
    /// from 1 to 20 and larger ones up to all 256 bytes, on random text of every length around
    /// the block sizes (shorter than a block, one block, one and a bit, ...) starting at odd
    /// addresses, from every (or many) start positions, with an `accept` that also refuses some
    /// exact places (as the masker's does not, but `find_where` must not rely on it).
    #[test]
    fn every_path_agrees_with_the_plain_search_on_random_text() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let sizes = (1..=20).chain([24, 31, 32, 33, 64, 100, 200, 256]);
        let lens = [0, 1, 2, 3, 15, 16, 17, 18, 31, 32, 33, 34, 35, 47, 48, 49, 63, 64, 65, 66, 97, 100, 129, 200];
        let mut checked = [0usize; 4];
        for size in sizes {
            for _trial in 0..6 {
                let starts = random_starts(&mut rng, size);
                let buffer = random_text(&mut rng, &starts, 203);
                let refuse = rng.below(5); // 0: accept takes every exact place
                for (n, path) in ALL_PATHS.into_iter().enumerate() {
                    let Some(set) = StartSet::with_path(starts.iter().copied(), path) else { continue };
                    for len in lens {
                        let offset = 1 + rng.below(3);
                        let hay = &buffer[offset..offset + len];
                        let accept = |p: usize| starts_at(&starts, hay, p) && (refuse == 0 || p % 7 != refuse);
                        let froms: Vec<usize> =
                            if len <= 66 { (0..=len).collect() } else { (0..12).map(|_| rng.below(len + 1)).collect() };
                        for from in froms.into_iter().chain([0, len.saturating_sub(2), len.saturating_sub(1), len]) {
                            let want = (from..len).find(|&p| accept(p));
                            assert_eq!(
                                set.find_where(hay, from, accept),
                                want,
                                "{path:?} {starts:?} {hay:?} from {from}"
                            );
                            checked[n] += 1;
                        }
                    }
                }
            }
        }
        assert!(checked[3] > 0 && checked[2] > 0, "the table and SSE2 always run on x86_64: {checked:?}");
    }

    /// `accept` (the masker's check, which indexes by the start byte) is never asked about a
    /// byte that is not a start byte, on any path and for any set size; and for up to 8 start
    /// bytes the vector paths ask it only where the next byte may follow (the point of checking
    /// the pair: a common letter that starts a pattern does not stop the scan).
    #[test]
    fn accept_is_asked_only_about_start_bytes() {
        let mut rng = Rng(12345);
        for size in (1..=12).chain([40, 256]) {
            let starts = random_starts(&mut rng, size);
            let hay = random_text(&mut rng, &starts, 300);
            for path in ALL_PATHS {
                let Some(set) = StartSet::with_path(starts.iter().copied(), path) else { continue };
                let asked = std::cell::RefCell::new(Vec::new());
                let none = set.find_where(&hay, 0, |p| {
                    asked.borrow_mut().push(p);
                    false
                });
                assert_eq!(none, None);
                for &p in asked.borrow().iter() {
                    assert!(starts.iter().any(|(f, _)| *f == hay[p]), "{path:?}: asked about {p} ({})", hay[p]);
                    if size <= MAX_VECTOR_MEMBERS && path != Path::Table && p + 1 < hay.len() {
                        assert!(
                            starts_at(&starts, &hay, p),
                            "{path:?}: asked about {p}, whose next byte cannot follow"
                        );
                    }
                }
                let want: Vec<usize> = (0..hay.len()).filter(|&p| starts_at(&starts, &hay, p)).collect();
                let exact: Vec<usize> =
                    asked.borrow().iter().copied().filter(|&p| starts_at(&starts, &hay, p)).collect();
                assert_eq!(exact, want, "{path:?}: every exact place is asked about, in order");
            }
        }
    }

    /// The fastest path is the one taken: AVX2 where the CPU has it (the fallbacks are tested
    /// above through `with_path`), the table for an empty set.
    #[test]
    fn new_takes_the_fastest_path_the_cpu_has() {
        let set = StartSet::new([(b'g', Some(b'l')), (b'?', None)]);
        #[cfg(target_arch = "x86_64")]
        {
            let want = if std::arch::is_x86_feature_detected!("avx2") {
                Path::Avx2
            } else if std::arch::is_x86_feature_detected!("ssse3") {
                Path::Ssse3
            } else {
                Path::Sse2
            };
            assert_eq!(set.path(), want);
            assert!(StartSet::with_path([(b'g', None)], Path::Sse2).is_some());
            let nine = (b'a'..=b'i').map(|b| (b, None));
            assert!(StartSet::with_path(nine, Path::Sse2).is_none(), "SSE2 compares take at most 8 start bytes");
        }
        #[cfg(not(target_arch = "x86_64"))]
        assert_eq!(set.path(), Path::Table);
        assert_eq!(StartSet::new([]).path(), Path::Table);
        assert_eq!(StartSet::new([]).find_where(b"anything at all, longer than a block", 0, |_| true), None);
    }

    #[test]
    fn a_start_byte_given_two_next_bytes_takes_any() {
        let text = b"aaaaaaaaaaaaaaaaaaaagqaaaaaaaaaaaaaaaaaa";
        for path in ALL_PATHS {
            let Some(two) = StartSet::with_path([(b'g', Some(b'l')), (b'g', Some(b'x'))], path) else { continue };
            assert_eq!(
                two.find_where(text, 0, |_| true),
                Some(20),
                "{path:?}: the scan leaves the next byte to accept"
            );
            let same = StartSet::with_path([(b'g', Some(b'l')), (b'g', Some(b'l'))], path).unwrap();
            let want = if path == Path::Table { Some(20) } else { None };
            assert_eq!(same.find_where(text, 0, |_| true), want, "{path:?}: only the table asks about any g");
        }
    }
}
