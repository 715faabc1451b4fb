//! The few operating-system calls the safe core needs that the standard library does not offer
//! at our minimum Rust version, each wrapped in a safe function.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

/// Takes an exclusive advisory lock (`flock`) on `file` if nobody holds one: Ok(true) when
/// taken, Ok(false) when another process (or file descriptor) holds it. The lock is released
/// when `file` is closed.
pub(crate) fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: flock on a descriptor `file` owns for the duration of the call; no memory is shared.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}
