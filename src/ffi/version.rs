//! Library and ABI versions.
//!
//! `GLR_ABI_VERSION` is the one place the ABI number lives: build.rs reads it from this file for
//! the SONAME (`libgitlab_runner_api.so.<GLR_ABI_VERSION>`), and cbindgen emits it in the header.

use std::ffi::{c_char, CStr};

/// The ABI version of this header. The shared library's SONAME is
/// `libgitlab_runner_api.so.<GLR_ABI_VERSION>`; it changes on every incompatible change
/// (removed or changed function, renumbered constant, changed ownership rule).
/// Programs that load the library at run time (dlopen, ctypes) should check
/// `glr_abi_version() == GLR_ABI_VERSION` before using anything else.
pub const GLR_ABI_VERSION: u32 = 1;

const VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
    Ok(v) => v,
    Err(_) => panic!("CARGO_PKG_VERSION contains a NUL"),
};

/// The library version, e.g. "0.1.0" (equal to #GLR_VERSION_STRING of the header it was built
/// with). A static NUL-terminated string: never NULL, do not free. Thread-safe.
#[no_mangle]
pub extern "C" fn glr_version() -> *const c_char {
    VERSION.as_ptr()
}

/// The ABI version of the loaded library, to compare with #GLR_ABI_VERSION. Thread-safe.
#[no_mangle]
pub extern "C" fn glr_abi_version() -> u32 {
    GLR_ABI_VERSION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = unsafe { CStr::from_ptr(glr_version()) }.to_str().unwrap();
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
        assert_eq!(glr_abi_version(), 1);
    }
}
