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
