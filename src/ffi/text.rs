//! Text handed to C as NUL-terminated strings: C cannot see past a NUL, so NUL characters in a
//! message or value are replaced first. A leaf: the panic boundary (last-error messages), the
//! string helpers and diagnostics all use it.

use std::borrow::Cow;
use std::ffi::CString;

/// `s` with its NUL characters, which C could not see past, replaced by U+FFFD: every text
/// handed to C as a NUL-terminated string goes through this, so C always sees the whole text.
pub(crate) fn without_nul(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// [`without_nul`] as a `CString`.
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(without_nul(s).into_owned()).expect("NULs were replaced")
}

/// Copies `message` into the C buffer `buf` of `buflen` bytes, snprintf-style: at most
/// `buflen - 1` bytes (cut on a UTF-8 character boundary) and a NUL when `buflen > 0`; nothing
/// when `buf` is NULL. Returns the whole message's length in bytes, without the NUL.
///
/// # Safety
/// `buf` is NULL or points to `buflen` writable bytes.
pub(crate) unsafe fn copy_to_buffer(message: &str, buf: *mut std::ffi::c_char, buflen: usize) -> usize {
    if !buf.is_null() && buflen > 0 {
        let mut n = message.len().min(buflen - 1);
        while !message.is_char_boundary(n) {
            n -= 1;
        }
        // SAFETY: the caller guarantees `buf` points to `buflen` writable bytes and
        // n + 1 <= buflen; `message` is our own string, so the regions do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(message.as_ptr(), buf.cast::<u8>(), n);
            *buf.add(n) = 0;
        }
    }
    message.len()
}
