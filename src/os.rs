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

/// An eventfd: a descriptor that becomes readable once `signal` was called (and stays readable
/// until someone reads its 8-byte counter). Closed when dropped.
#[derive(Debug)]
pub(crate) struct EventFd(std::os::fd::OwnedFd);

impl EventFd {
    /// A new non-blocking, close-on-exec eventfd.
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new descriptor we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created descriptor nobody else owns.
        Ok(EventFd(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }))
    }

    /// Makes the descriptor readable (adds 1 to its counter; never blocks: a full counter,
    /// which cannot happen in practice, leaves it readable anyway).
    pub(crate) fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local u64 to a descriptor we own.
        let _ = unsafe { libc::write(self.raw(), (&one as *const u64).cast(), 8) };
    }

    pub(crate) fn raw(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.0)
    }
}

/// Writes `line` to descriptor `fd` only if that cannot block, and without raising SIGPIPE in
/// a process whose reader went away: a socket with `MSG_DONTWAIT | MSG_NOSIGNAL`; anything else
/// after `poll` says it takes data now (for a pipe: at least PIPE_BUF bytes free, so a line of at
/// most that size goes in whole, in one write), with SIGPIPE blocked in this thread meanwhile.
/// Returns whether the whole line was written.
pub(crate) fn write_without_blocking(fd: i32, line: &[u8]) -> bool {
    // SAFETY: send reads `line.len()` bytes of a borrowed slice.
    let sent = unsafe { libc::send(fd, line.as_ptr().cast(), line.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if sent >= 0 {
        return sent as usize == line.len();
    }
    if io::Error::last_os_error().raw_os_error() != Some(libc::ENOTSOCK) {
        return false;
    }
    let mut p = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
    // SAFETY: polls one descriptor described by a local struct, without waiting.
    let ready = unsafe { libc::poll(&mut p, 1, 0) };
    if ready != 1 || p.revents != libc::POLLOUT {
        return false; // full, or the reader is gone (POLLERR/POLLHUP)
    }
    // SAFETY: signal-mask calls on local sigset_t values, then a write of a borrowed slice; a
    // SIGPIPE raised by that write stays pending while blocked and is taken back with a zero
    // timeout before the old mask returns.
    unsafe {
        let mut pipe_only: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe_only);
        libc::sigaddset(&mut pipe_only, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_only, &mut old);
        let n = libc::write(fd, line.as_ptr().cast(), line.len());
        if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EPIPE) {
            let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            libc::sigtimedwait(&pipe_only, std::ptr::null_mut(), &zero);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        n >= 0 && n as usize == line.len()
    }
}
