//! Strings across the boundary: checked input, owned output (`glr_string_free`), and borrowed
//! output cached per handle ([`BorrowedStrings`]).
//!
//! Owned strings are allocated with a hidden header in front of the bytes (the block's size), so
//! `glr_string_free` never has to trust `strlen` (byte buffers handed out with a length may
//! contain NUL bytes) and never mixes allocators with C's `free`.

use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::sync::{Mutex, PoisonError};

use super::guard::{guard_quiet, null_arg, FfiError, FfiResult};
use super::status::*;
use super::text::{c_string, without_nul};

/// A NUL-terminated UTF-8 argument, borrowed for the duration of the call.
/// NULL gives `GLR_ERR_NULL_ARGUMENT` ("`name` is NULL"), bad UTF-8 `GLR_ERR_INVALID_UTF8`.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and unchanged for `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> FfiResult<&'a str> {
    match unsafe { opt_str_arg(p, name) }? {
        Some(s) => Ok(s),
        None => Err(null_arg(name)),
    }
}

/// Like [`str_arg`], but NULL is allowed and gives `None` (optional arguments).
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char, name: &str) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    match utf8(bytes) {
        Ok(s) => Ok(Some(s)),
        Err(valid_up_to) => Err(FfiError::new(
            GLR_ERR_INVALID_UTF8,
            format!("{name} is not valid UTF-8 (invalid byte at offset {valid_up_to})"),
        )),
    }
}

/// `std::str::from_utf8`, with the same verdict and error offset (`valid_up_to`), for large
/// arguments that are mostly ASCII (a dump is JSON around a log): those parts are checked 128
/// bytes at a time (an OR of the block, which the compiler vectorises), and only the blocks
/// holding other bytes go through `from_utf8`, which checks such text a word at a time.
fn utf8(bytes: &[u8]) -> Result<&str, usize> {
    const BLOCK: usize = 128;
    let mut at = 0;
    loop {
        while let Some(block) = bytes.get(at..at + BLOCK) {
            if block.iter().fold(0u8, |any, &b| any | b) >= 0x80 {
                break;
            }
            at += BLOCK;
        }
        let end = at + BLOCK;
        if end > bytes.len() {
            std::str::from_utf8(&bytes[at..]).map_err(|e| at + e.valid_up_to())?;
            break;
        }
        match std::str::from_utf8(&bytes[at..end]) {
            Ok(_) => at = end,
            // A character cut by the block's end (it starts at least 125 bytes in): checked with
            // the next block.
            Err(e) if e.error_len().is_none() => at += e.valid_up_to(),
            Err(e) => return Err(at + e.valid_up_to()),
        }
    }
    // SAFETY: every byte was checked above: `bytes[..at]` ends on a character boundary each
    // time `at` moves, and the rest was checked by `from_utf8`.
    Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// A `(data, len)` byte argument. NULL with `len == 0` is an empty slice; NULL with `len > 0` is
/// `GLR_ERR_NULL_ARGUMENT`; `len > isize::MAX` is `GLR_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes that stay valid and unchanged for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(p: *const c_char, len: usize, name: &str) -> FfiResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(FfiError::new(GLR_ERR_NULL_ARGUMENT, format!("{name} is NULL but its length is {len}")));
    }
    if len > isize::MAX as usize {
        return Err(FfiError::new(GLR_ERR_INVALID_ARGUMENT, format!("{name}: length {len} is too large")));
    }
    // SAFETY: non-NULL, `len` readable bytes by the caller's contract, len <= isize::MAX.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

const HEADER: usize = std::mem::size_of::<usize>();

/// An owned C string being built in place: `HEADER` bytes of room, then the bytes, written
/// straight into the block that C receives, so that a large string (a dump) is not copied again.
/// The header records the block's capacity, which `glr_string_free` gives back to `Vec`.
pub(crate) struct OwnedCBuf(Vec<u8>);

impl OwnedCBuf {
    /// Room for `len` bytes (more are allowed: the block grows).
    pub(crate) fn with_capacity(len: usize) -> Self {
        let mut v = Vec::with_capacity(HEADER + len + 1);
        v.extend_from_slice(&[0; HEADER]);
        OwnedCBuf(v)
    }

    fn of(bytes: &[u8]) -> Self {
        let mut b = Self::with_capacity(bytes.len());
        b.0.extend_from_slice(bytes);
        b
    }

    /// Writes the content with `write`, which may only append (the header is in front). Text that
    /// holds no NUL byte (JSON), or bytes handed out with their length.
    pub(crate) fn write(mut self, write: impl FnOnce(&mut Vec<u8>)) -> Self {
        write(&mut self.0);
        self
    }

    /// The string for C: NUL-terminated, never NULL, freed with `glr_string_free`.
    pub(crate) fn into_c(self) -> *mut c_char {
        let mut v = self.0;
        v.push(0);
        let mut v = std::mem::ManuallyDrop::new(v);
        let capacity = v.capacity();
        v[..HEADER].copy_from_slice(&capacity.to_ne_bytes());
        // SAFETY: HEADER < v.len(), so the pointer stays inside the block.
        unsafe { v.as_mut_ptr().add(HEADER).cast() }
    }
}

/// A fresh copy of `bytes` for C, NUL-terminated (the bytes may contain NULs; callers that hand
/// such data out also report its length). Never NULL; freed with `glr_string_free`.
pub(crate) fn owned_c_bytes(bytes: &[u8]) -> *mut c_char {
    OwnedCBuf::of(bytes).into_c()
}

/// A fresh NUL-terminated copy of `s` for C ([`without_nul`]), freed with `glr_string_free`.
/// Never NULL.
pub(crate) fn owned_c_string(s: &str) -> *mut c_char {
    owned_c_bytes(without_nul(s).as_bytes())
}

/// Frees a string returned by this library through a `char **` out-parameter (dumps, payload,
/// log, credentials...). NULL is a no-op.
///
/// Only pass strings this library allocated, each once; never pass them to free(), and never
/// pass the borrowed `const char *` returned by getters. Thread-safe. Does not clear the
/// thread's last error.
#[no_mangle]
pub unsafe extern "C" fn glr_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    guard_quiet(|| {
        // SAFETY: `s` came from OwnedCBuf::into_c, so it is HEADER bytes into the buffer of a
        // `Vec<u8>` whose capacity the header holds (unaligned: a `u8` block).
        unsafe {
            let base = s.cast::<u8>().sub(HEADER);
            let capacity = base.cast::<usize>().read_unaligned();
            drop(Vec::from_raw_parts(base, 0, capacity));
        }
    })
}

/// Borrowed strings for getters: each distinct value is converted to a C string once and kept
/// until this cache (that is, its handle) is dropped, so the pointer handed to C stays valid
/// "until the handle is freed" even if the underlying value later changes. Thread-safe.
///
/// ```ignore
/// pub struct glr_job { job: core::job::Job, strings: BorrowedStrings }
/// // in glr_job_name:  Ok(job.strings.get_opt(job.job.name()))
/// ```
#[derive(Default)]
pub(crate) struct BorrowedStrings {
    // The CString's heap buffer does not move when the map rehashes, and entries are never
    // removed, so pointers into it live as long as the map.
    cache: Mutex<HashMap<Box<str>, CString>>,
}

impl BorrowedStrings {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A `const char *` holding `value` (NULs replaced with U+FFFD), valid while `self` lives.
    pub(crate) fn get(&self, value: &str) -> *const c_char {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = cache.get(value) {
            return c.as_ptr();
        }
        let c = c_string(value);
        let p = c.as_ptr();
        cache.insert(value.into(), c);
        p
    }

    /// [`get`](Self::get) for optional values: `None` gives NULL.
    pub(crate) fn get_opt(&self, value: Option<&str>) -> *const c_char {
        value.map_or(std::ptr::null(), |v| self.get(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T: std::fmt::Debug>(r: FfiResult<T>) -> FfiError {
        r.unwrap_err()
    }

    #[test]
    fn str_arg_checks() {
        unsafe {
            assert_eq!(str_arg(c"api".as_ptr(), "url").unwrap(), "api");
            assert_eq!(str_arg(c"".as_ptr(), "url").unwrap(), "");
            let e = err(str_arg(std::ptr::null(), "api_url"));
            assert_eq!((e.status, e.message.as_str()), (GLR_ERR_NULL_ARGUMENT, "api_url is NULL"));
            let bad = b"ab\xffc\0";
            let e = err(str_arg(bad.as_ptr().cast(), "token"));
            assert_eq!(e.status, GLR_ERR_INVALID_UTF8);
            assert_eq!(e.message, "token is not valid UTF-8 (invalid byte at offset 2)");

            assert_eq!(opt_str_arg(std::ptr::null(), "x").unwrap(), None);
            assert_eq!(opt_str_arg(c"é".as_ptr(), "x").unwrap(), Some("é"));
            assert_eq!(err(opt_str_arg(bad.as_ptr().cast(), "x")).status, GLR_ERR_INVALID_UTF8);
        }
    }

    #[test]
    fn the_utf8_check_is_std_s() {
        let std_verdict = |b: &[u8]| std::str::from_utf8(b).map(str::len).map_err(|e| e.valid_up_to());
        let pieces: [&[u8]; 12] = [
            b"a",
            b"xyz",
            "é".as_bytes(),
            "€".as_bytes(),
            "😀".as_bytes(),
            b"\xff",
            b"\xc3",
            b"\xe2\x82",
            b"\xed\xa0\x80",
            b"\x80",
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for case in 0..20_000 {
            // Mostly ASCII, like the arguments this is for, with a piece at some block offset.
            let mut b: Vec<u8> = vec![b'a'; case % 300];
            for _ in 0..case % 4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let piece = pieces[(seed % 12) as usize];
                let at = ((seed >> 8) as usize) % (b.len() + 1);
                b.splice(at..at, piece.iter().copied());
            }
            assert_eq!(utf8(&b).map(str::len), std_verdict(&b), "{b:?}");
        }
        let long = "ascii ".repeat(1000) + &"é€😀".repeat(1000) + &"x".repeat(100);
        assert_eq!(utf8(long.as_bytes()), Ok(long.as_str()));
    }

    #[test]
    fn bytes_arg_checks() {
        unsafe {
            assert_eq!(bytes_arg(std::ptr::null(), 0, "data").unwrap(), b"");
            let e = err(bytes_arg(std::ptr::null(), 3, "data"));
            assert_eq!((e.status, e.message.as_str()), (GLR_ERR_NULL_ARGUMENT, "data is NULL but its length is 3"));
            let d = b"a\0\xffb";
            assert_eq!(bytes_arg(d.as_ptr().cast(), 4, "data").unwrap(), d);
            assert_eq!(bytes_arg(d.as_ptr().cast(), 0, "data").unwrap(), b"");
            let e = err(bytes_arg(d.as_ptr().cast(), usize::MAX, "data"));
            assert_eq!(e.status, GLR_ERR_INVALID_ARGUMENT);
        }
    }

    #[test]
    fn owned_strings_round_trip() {
        for s in ["", "x", "héllo wörld", &"long ".repeat(10_000)] {
            let p = owned_c_string(s);
            assert!(!p.is_null());
            assert_eq!(unsafe { CStr::from_ptr(p) }.to_str().unwrap(), s);
            unsafe { glr_string_free(p) };
        }
        unsafe { glr_string_free(std::ptr::null_mut()) };
    }

    #[test]
    fn owned_string_nul_is_replaced() {
        let p = owned_c_string("a\0b");
        assert_eq!(unsafe { CStr::from_ptr(p) }.to_str().unwrap(), "a\u{FFFD}b");
        unsafe { glr_string_free(p) };
    }

    #[test]
    fn owned_bytes_keep_nuls() {
        let data = b"a\0b\0";
        let p = owned_c_bytes(data);
        let back = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), data.len() + 1) };
        assert_eq!(back, b"a\0b\0\0");
        unsafe { glr_string_free(p) };
    }

    #[test]
    fn borrowed_strings_are_stable_and_shared() {
        let cache = BorrowedStrings::new();
        let a = cache.get("alpha");
        // many inserts force rehashing; earlier pointers must stay valid
        let others: Vec<_> = (0..1000).map(|i| cache.get(&format!("v{i}"))).collect();
        assert_eq!(cache.get("alpha"), a);
        assert_eq!(unsafe { CStr::from_ptr(a) }.to_str().unwrap(), "alpha");
        assert_eq!(unsafe { CStr::from_ptr(others[999]) }.to_str().unwrap(), "v999");
        assert!(cache.get_opt(None).is_null());
        assert_eq!(cache.get_opt(Some("alpha")), a);
        let n = cache.get("n\0ul");
        assert_eq!(unsafe { CStr::from_ptr(n) }.to_str().unwrap(), "n\u{FFFD}ul");
    }
}
