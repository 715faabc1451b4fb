//! Finding the first byte of a small set in a buffer, 16 bytes at a time (SSE2, which every
//! x86_64 CPU has), for the log masker: most log text holds no byte that could start a secret,
//! and is then copied in bulk. Elsewhere, and for larger sets, a byte table. The one place with
//! `unsafe` SIMD intrinsics; the functions here are safe.

/// A set of bytes to look for.
#[derive(Clone, Debug)]
pub(crate) struct ByteSet {
    table: [bool; 256],
    /// Each member repeated 16 times, ready for the vector compare (empty when there are too
    /// many members: then the table is used).
    #[cfg(target_arch = "x86_64")]
    needles: Vec<std::arch::x86_64::__m128i>,
}

/// More members than this and the vector search stops paying off: the table is used.
const MAX_VECTOR_MEMBERS: usize = 12;

impl ByteSet {
    pub(crate) fn new(bytes: impl IntoIterator<Item = u8>) -> ByteSet {
        let mut table = [false; 256];
        for b in bytes {
            table[b as usize] = true;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let members: Vec<u8> = (0..=255u8).filter(|b| table[*b as usize]).collect();
            let needles = if members.len() <= MAX_VECTOR_MEMBERS {
                // SAFETY: SSE2 is part of x86_64; set1 only builds a value.
                members.iter().map(|&m| unsafe { std::arch::x86_64::_mm_set1_epi8(m as i8) }).collect()
            } else {
                Vec::new()
            };
            ByteSet { table, needles }
        }
        #[cfg(not(target_arch = "x86_64"))]
        ByteSet { table }
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, b: u8) -> bool {
        self.table[b as usize]
    }

    /// The first position at or after `from` holding a member, and whether every byte before it
    /// (from `from`) is ASCII.
    pub(crate) fn find(&self, hay: &[u8], from: usize) -> (Option<usize>, bool) {
        #[cfg(target_arch = "x86_64")]
        if !self.needles.is_empty() {
            return find_sse2(&self.needles, &self.table, hay, from);
        }
        find_with_table(&self.table, hay, from)
    }
}

fn find_with_table(table: &[bool; 256], hay: &[u8], from: usize) -> (Option<usize>, bool) {
    let rest = &hay[from.min(hay.len())..];
    let at = rest.iter().position(|&c| table[c as usize]);
    let scanned = &rest[..at.unwrap_or(rest.len())];
    (at.map(|p| from + p), scanned.is_ascii())
}

#[cfg(target_arch = "x86_64")]
fn find_sse2(
    needles: &[std::arch::x86_64::__m128i],
    table: &[bool; 256],
    hay: &[u8],
    from: usize,
) -> (Option<usize>, bool) {
    use std::arch::x86_64::*;
    let mut i = from;
    let mut ascii = true;
    // SAFETY: SSE2 is part of x86_64; every load reads 16 bytes inside `hay` (i + 16 <= len).
    unsafe {
        while i + 16 <= hay.len() {
            let v = _mm_loadu_si128(hay.as_ptr().add(i).cast());
            let mut hit = _mm_setzero_si128();
            for n in needles {
                hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, *n));
            }
            let hits = _mm_movemask_epi8(hit) as u32;
            let high = _mm_movemask_epi8(v) as u32;
            if hits != 0 {
                let at = hits.trailing_zeros();
                // Only the bytes before the member count for "ASCII so far".
                ascii &= high & ((1u32 << at) - 1) == 0;
                return (Some(i + at as usize), ascii);
            }
            ascii &= high == 0;
            i += 16;
        }
    }
    let (at, tail_ascii) = find_with_table(table, hay, i);
    (at, ascii && tail_ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_member_and_tells_ascii() {
        let set = ByteSet::new(*b"g_?&");
        let text = b"0123456789abcdefhijklmnopqrstuvwxyz ABCDEF g rest";
        assert_eq!(set.find(text, 0), (Some(43), true));
        assert_eq!(set.find(text, 44), (None, true));
        assert_eq!(set.find(b"", 0), (None, true));
        let utf8 = "aaaaaaaaaaaaaaaaaaa€aaaaaaaaaaaaaaag".as_bytes();
        assert_eq!(set.find(utf8, 0), (Some(utf8.len() - 1), false));
        let early = "€g".as_bytes();
        assert_eq!(set.find(early, 0), (Some(3), false));
        let late = "g€".as_bytes();
        assert_eq!(set.find(late, 0), (Some(0), true), "bytes after the member do not count");
        // Every position and length, against the plain search.
        let hay: Vec<u8> = (0..200u32).map(|i| if i % 37 == 36 { b'&' } else { b'a' + (i % 23) as u8 }).collect();
        for from in 0..hay.len() {
            let plain = hay[from..].iter().position(|&c| set.contains(c)).map(|p| from + p);
            assert_eq!(set.find(&hay, from).0, plain, "from {from}");
        }
        // A large set goes through the table, with the same answers.
        let big = ByteSet::new(b'a'..=b'z');
        assert_eq!(big.find(b"0123456789 x", 0), (Some(11), true));
    }
}
