//! Finding where the plain text of a JSON string ends, and copying it, 64 bytes at a time: the
//! loop under reading a dump's log (a MiB and more of JSON string, an escape every line).
//!
//! A run of plain text ends at a byte a reader of the string must stop and look at: its closing
//! `"`, the `\` of an escape, or a control character (below 0x20, which a string may not hold).
//! On x86_64 these are found 32 bytes at a time with AVX2 (detected at run time), else 16 with
//! SSE2 (part of x86_64); elsewhere one byte at a time. The quote and the control characters are
//! one test: `b ^ 2` maps `"` (0x22) to 0x20 and the control characters onto themselves, so they
//! are exactly the bytes with `b ^ 2 <= 0x20` (unsigned: `max(b ^ 2, 0x20) == 0x20`); the
//! backslash is a second compare.
//!
//! With AVX2, a run is copied as it is looked at: each 64 bytes loaded for the search are stored
//! at the end of the output, into room it has, and the output then ends where the run does. A
//! run costs no call to `memcpy` and no second pass. Besides `scan`, the one place with `unsafe`
//! SIMD intrinsics; the functions here are safe.

const WINDOW: usize = 64;

/// Where the first run end in `b` at or after `from` is, or `b.len()`. `from` is at most
/// `b.len()`.
pub(crate) fn next_json_run_end(b: &[u8], from: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2 (just checked).
            return unsafe { next_run_end_avx2(b, from) };
        }
        next_run_end_with(b, from, run_ends_sse2)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        next_run_end_with(b, from, run_ends_bytewise)
    }
}

/// What a reader does at the end of a run (see [`copy_json_runs`]).
pub(crate) enum AtEnd<T> {
    /// Goes on with the run starting here (a character boundary of the text).
    Next(usize),
    /// Stops with this.
    Done(T),
}

/// A reader of runs into `O`: told where each run ends, it reads what is there (an escape, say)
/// and says what next. A trait rather than a closure so that its `at_end` can be compiled into
/// the loop over the runs (`#[inline(always)]`), which a closure is not always.
pub(crate) trait RunReader<O> {
    type Result;
    fn at_end(&mut self, out: &mut O, end: usize) -> AtEnd<Self::Result>;
}

impl<O, T, F: FnMut(&mut O, usize) -> AtEnd<T>> RunReader<O> for F {
    type Result = T;
    fn at_end(&mut self, out: &mut O, end: usize) -> AtEnd<T> {
        self(out, end)
    }
}

/// Reads runs of the JSON string text `s` into `out`, the first from `from` (a character
/// boundary): appends the text up to the run's end (the first run end at or after its start,
/// or the end of `s`), then asks `reader.at_end(out, end)` what next: the start of the next run
/// (after the escape it read), or the reading's result. `out` may be given room for the rest of
/// `s` at once (the text it gets is never longer), which makes this reserve nothing.
///
/// Panics if a run would start inside a character, or past the end of `s`.
pub(crate) fn copy_json_runs<R: RunReader<String>>(s: &str, from: usize, out: &mut String, reader: R) -> R::Result {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2 (just checked).
            return unsafe { copy_runs_avx2(s, from, out, reader) };
        }
    }
    read_runs(s, from, out, reader, copy_run)
}

/// Appends the text of `s` from `from` up to its first run end (or the end of `s`) to `out`,
/// and returns where that is: found, then copied (where there is no AVX2).
fn copy_run(s: &str, from: usize, out: &mut String) -> usize {
    let end = next_json_run_end(s.as_bytes(), from);
    out.push_str(&s[from..end]);
    end
}

/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn copy_runs_avx2<R: RunReader<String>>(s: &str, from: usize, out: &mut String, reader: R) -> R::Result {
    read_runs(s, from, out, reader, |s, from, out| {
        // A no-op check once `out` has room for the rest of `s`.
        out.reserve(s.len() - from);
        // SAFETY: the caller checked AVX2; `read_runs` gives a character boundary `from`, and
        // the room is there (just made sure of).
        unsafe { copy_run_avx2(s, from, out) }
    })
}

/// The runs of `s` one after another, the first from `from`: `take_run(s, from, out)` takes a
/// run (copies it, or only finds its end) and says where it ends, `reader` what next. Compiled
/// into each caller (and so, with AVX2, into one function with the reader's `at_end`: no call
/// per run).
///
/// Panics if a run would start inside a character, or past the end of `s`.
#[inline(always)]
pub(crate) fn read_runs<O, R: RunReader<O>>(
    s: &str,
    mut from: usize,
    out: &mut O,
    mut reader: R,
    take_run: impl Fn(&str, usize, &mut O) -> usize,
) -> R::Result {
    loop {
        assert!(s.is_char_boundary(from), "a run starts at a character boundary");
        let end = take_run(s, from, out);
        match reader.at_end(out, end) {
            AtEnd::Next(next) => from = next,
            AtEnd::Done(result) => return result,
        }
    }
}

/// Appends the text of `s` from `from` up to its first run end (or the end of `s`) to `out`, and
/// returns where that is.
///
/// # Safety
/// The CPU has AVX2, `from` is a character boundary of `s`, and `out` has room for
/// `s.len() - from` more bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn copy_run_avx2(s: &str, from: usize, out: &mut String) -> usize {
    use std::arch::x86_64::*;
    let b = s.as_bytes();
    // SAFETY: every load reads `b[at..at + 64]` with `at + 64 <= b.len()`. Every store writes
    // the bytes loaded from `b[at..]` at offset `at - from` past the end of `out`, and
    // `at - from + 64 <= b.len() - from`: inside the room the caller gave. The length set is
    // that of the bytes `b[from..end]` stored there in order, and that is `s[from..end]`, valid
    // UTF-8: `from` is a character boundary (the caller's word), and so is `end`, the end of
    // `s` or a run end (an ASCII byte). Until the length is set, `out` is what it was.
    unsafe {
        let out = out.as_mut_vec();
        let start = out.len();
        let dst = out.as_mut_ptr().add(start);
        let mut at = from;
        while at + WINDOW <= b.len() {
            let p = b.as_ptr().add(at);
            let (lo, hi) = (_mm256_loadu_si256(p.cast()), _mm256_loadu_si256(p.add(32).cast()));
            let q = dst.add(at - from);
            _mm256_storeu_si256(q.cast(), lo);
            _mm256_storeu_si256(q.add(32).cast(), hi);
            let ends = run_ends_of_avx2(lo, hi);
            if ends != 0 {
                let end = at + ends.trailing_zeros() as usize;
                out.set_len(start + end - from);
                return end;
            }
            at += WINDOW;
        }
        let end = tail_run_end(b, at);
        std::ptr::copy_nonoverlapping(b.as_ptr().add(at), dst.add(at - from), end - at);
        out.set_len(start + end - from);
        end
    }
}

/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn next_run_end_avx2(b: &[u8], from: usize) -> usize {
    // SAFETY: the caller checked AVX2.
    next_run_end_with(b, from, |window| unsafe { run_ends_avx2(window) })
}

#[inline(always)]
fn next_run_end_with(b: &[u8], mut at: usize, ends_of: impl Fn(&[u8; WINDOW]) -> u64) -> usize {
    while let Some(window) = b.get(at..at + WINDOW) {
        let ends = ends_of(window.try_into().expect("a window"));
        if ends != 0 {
            return at + ends.trailing_zeros() as usize;
        }
        at += WINDOW;
    }
    tail_run_end(b, at)
}

/// The first run end in `b` from `at` on, or `b.len()`, a byte at a time (the last bytes, fewer
/// than a window).
fn tail_run_end(b: &[u8], at: usize) -> usize {
    at + b[at..].iter().position(|&c| ends_run(c)).unwrap_or(b.len() - at)
}

/// A byte that ends a run of plain text in a JSON string: also the bytes a JSON string cannot
/// hold as they are, which a writer escapes. Inlined and in this order (the range test first):
/// so the writer's escape search (`json::has_escape`) becomes vector compares; the other order
/// made dumps five times the instructions.
#[inline]
pub(crate) fn ends_run(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The run ends of `window` as a mask (bit `i`: `window[i]`), 16 bytes at a time.
#[cfg(target_arch = "x86_64")]
#[inline]
fn run_ends_sse2(window: &[u8; WINDOW]) -> u64 {
    use std::arch::x86_64::*;
    let p = window.as_ptr();
    let mut marks = 0u64;
    // SAFETY: SSE2 is part of x86_64; the four loads read 16 bytes each inside `window`.
    unsafe {
        let (flip, space, backslash) = (_mm_set1_epi8(2), _mm_set1_epi8(0x20), _mm_set1_epi8(b'\\' as i8));
        for k in 0..4 {
            let v = _mm_loadu_si128(p.add(16 * k).cast());
            let quote_or_control = _mm_cmpeq_epi8(_mm_max_epu8(_mm_xor_si128(v, flip), space), space);
            let ends = _mm_or_si128(quote_or_control, _mm_cmpeq_epi8(v, backslash));
            marks |= u64::from(_mm_movemask_epi8(ends) as u16) << (16 * k);
        }
    }
    marks
}

/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn run_ends_avx2(window: &[u8; WINDOW]) -> u64 {
    use std::arch::x86_64::*;
    let p = window.as_ptr();
    // SAFETY: the caller checked AVX2; the two loads read 32 bytes each inside `window`.
    unsafe { run_ends_of_avx2(_mm256_loadu_si256(p.cast()), _mm256_loadu_si256(p.add(32).cast())) }
}

/// The run ends of the 64 bytes `lo` then `hi`, as a mask.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn run_ends_of_avx2(lo: std::arch::x86_64::__m256i, hi: std::arch::x86_64::__m256i) -> u64 {
    use std::arch::x86_64::*;
    let (flip, space, backslash) = (_mm256_set1_epi8(2), _mm256_set1_epi8(0x20), _mm256_set1_epi8(b'\\' as i8));
    let ends = |v| {
        let quote_or_control = _mm256_cmpeq_epi8(_mm256_max_epu8(_mm256_xor_si256(v, flip), space), space);
        _mm256_movemask_epi8(_mm256_or_si256(quote_or_control, _mm256_cmpeq_epi8(v, backslash))) as u32
    };
    u64::from(ends(lo)) | u64::from(ends(hi)) << 32
}

/// The run ends of `window` one byte at a time (where there is no SSE2, and the reference the
/// vector forms are tested against).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn run_ends_bytewise(window: &[u8; WINDOW]) -> u64 {
    window.iter().enumerate().fold(0u64, |m, (i, &b)| if ends_run(b) { m | (1 << i) } else { m })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    /// Every way the run ends of `window` can be found on this CPU.
    fn run_ends_each_way(window: &[u8; WINDOW]) -> Vec<u64> {
        #[allow(unused_mut)]
        let mut ways = vec![run_ends_bytewise(window)];
        #[cfg(target_arch = "x86_64")]
        {
            ways.push(run_ends_sse2(window));
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: this CPU has AVX2 (just checked).
                ways.push(unsafe { run_ends_avx2(window) });
            }
        }
        ways
    }

    #[test]
    fn run_ends_are_quotes_backslashes_and_control_characters() {
        let mut rng = Rng(0x1234_5678_9abc_def0);
        let check = |window: &[u8; WINDOW]| {
            let want = run_ends_bytewise(window);
            for (way, got) in run_ends_each_way(window).into_iter().enumerate() {
                assert_eq!(got, want, "way {way} for {window:?}");
            }
        };
        // Every byte value at every position, and random windows.
        for b in 0..=255u8 {
            for at in 0..WINDOW {
                let mut window = [b'a'; WINDOW];
                window[at] = b;
                check(&window);
            }
        }
        for _ in 0..10_000 {
            check(&std::array::from_fn(|_| rng.next() as u8));
        }
        let mut window = [b'x'; WINDOW];
        window[3] = b'"';
        window[40] = b'\\';
        window[63] = b'\n';
        assert_eq!(run_ends_bytewise(&window), (1 << 3) | (1 << 40) | (1 << 63));
    }

    /// Where the first run end from `from` is, by every way this CPU has, and the copy of the
    /// text up to it appended to a `String` holding `before`, by every way.
    fn each_way(s: &str, from: usize, before: &str) -> (Vec<usize>, Vec<(String, usize)>) {
        let b = s.as_bytes();
        #[allow(unused_mut)]
        let mut ends = vec![next_json_run_end(b, from), next_run_end_with(b, from, run_ends_bytewise)];
        let without_avx2 = {
            let mut out = before.to_string();
            let end = copy_run(s, from, &mut out);
            (out, end)
        };
        let mut out = before.to_string();
        let end = copy_json_runs(s, from, &mut out, |_: &mut String, end| AtEnd::Done(end));
        #[allow(unused_mut)]
        let mut copies = vec![without_avx2, (out, end)];
        #[cfg(target_arch = "x86_64")]
        {
            ends.push(next_run_end_with(b, from, run_ends_sse2));
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: this CPU has AVX2 (just checked).
                ends.push(unsafe { next_run_end_avx2(b, from) });
                // Without spare room but what it needs, so that a store past it would show
                // (under a memory checker) as a write out of bounds.
                let mut out = String::with_capacity(before.len() + s.len() - from);
                out.push_str(before);
                // SAFETY: AVX2 (checked), a character boundary (the callers below pass only
                // those), and the room just made.
                let end = unsafe { copy_run_avx2(s, from, &mut out) };
                copies.push((out, end));
            }
        }
        (ends, copies)
    }

    #[test]
    fn runs_end_at_the_first_run_end_every_way_and_are_copied_whole() {
        let mut rng = Rng(0x0bad_cafe_f00d_d00d);
        let pieces = ["x", "\"", "\\", "\n", "\u{1f}", "é", "€😀", "plain text ", "~\u{7f}/"];
        for case in 0..3000 {
            let len = if case < 300 { case } else { rng.below(700) };
            let mut s = String::new();
            while s.len() < len {
                // Mostly plain text, so that runs cross windows.
                let piece = if rng.below(3) == 0 { *rng.pick(&pieces) } else { "abcdefghijklmnopqrstuvwxyz" };
                s.push_str(piece);
            }
            let boundaries: Vec<usize> = (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect();
            let from = *rng.pick(&boundaries);
            let want = from + s[from..].bytes().position(ends_run).unwrap_or(s.len() - from);
            let before = if case % 2 == 0 { "" } else { "held: é " };
            let (ends, copies) = each_way(&s, from, before);
            for (way, end) in ends.iter().enumerate() {
                assert_eq!(*end, want, "way {way}: {s:?} from {from}");
            }
            for (way, (out, end)) in copies.iter().enumerate() {
                assert_eq!((out.as_str(), *end), (format!("{before}{}", &s[from..want]).as_str(), want), "copy {way}");
            }
        }
    }

    #[test]
    fn run_ends_are_found_at_every_position_of_a_window() {
        for len in 0..3 * WINDOW + 5 {
            let plain = "a".repeat(len);
            for at in 0..len {
                for end in [b'"', b'\\', 0, b'\n', 0x1f] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = end;
                    let s = String::from_utf8(bytes).unwrap();
                    // From every start up to it, and past it.
                    for from in (0..=at).step_by(7).chain([at, at + 1]) {
                        let want = if from > at { len } else { at };
                        let (ends, copies) = each_way(&s, from, "");
                        assert!(ends.iter().all(|&e| e == want), "len {len} at {at} from {from}: {ends:?}");
                        assert!(copies.iter().all(|(out, e)| *e == want && *out == s[from..want]), "len {len} at {at}");
                    }
                }
            }
        }
        // Bytes that end no run, non-ASCII included.
        let s = "é€😀 ~\u{7f}/'".repeat(40);
        assert_eq!(next_json_run_end(s.as_bytes(), 0), s.len());
    }

    #[test]
    fn a_run_that_is_the_whole_text_is_copied_to_its_end() {
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 1000] {
            let s = "a".repeat(len);
            let (ends, copies) = each_way(&s, 0, "");
            assert!(ends.iter().all(|&e| e == len), "{len}: {ends:?}");
            assert!(copies.iter().all(|(out, end)| *out == s && *end == len), "{len}");
        }
    }

    #[test]
    fn runs_are_read_one_after_another_as_the_reader_says() {
        // A reader that marks each run end and goes on after it, and stops at the end of the
        // text.
        let s = "ab\"cd\\\\ef\n€é\"\"gh";
        for way in 0..2 {
            let mut out = String::from(">");
            let mut ends = Vec::new();
            let read = |out: &mut String, end: usize| {
                ends.push(end);
                if end == s.len() {
                    return AtEnd::Done(out.len());
                }
                out.push('|');
                AtEnd::Next(end + 1)
            };
            let len = match way {
                0 => copy_json_runs(s, 0, &mut out, read),
                _ => read_runs(s, 0, &mut out, read, copy_run),
            };
            assert_eq!(out, ">ab|cd||ef|€é||gh", "way {way}");
            assert_eq!((len, ends), (out.len(), vec![2, 5, 6, 9, 15, 16, 19]), "way {way}");
        }
    }

    #[test]
    #[should_panic(expected = "a run starts at a character boundary")]
    fn a_run_inside_a_character_is_refused() {
        copy_json_runs("é", 1, &mut String::new(), |_: &mut String, end| AtEnd::Done(end));
    }

    #[test]
    #[should_panic(expected = "a run starts at a character boundary")]
    fn a_run_past_the_end_is_refused() {
        let mut first = true;
        copy_json_runs("ab\"", 0, &mut String::new(), |_: &mut String, end| match std::mem::take(&mut first) {
            true => AtEnd::Next(end + 5),
            false => AtEnd::Done(end),
        });
    }
}
