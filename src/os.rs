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

/// Maps every page of `memory` for writing in one system call (`madvise(MADV_POPULATE_WRITE)`,
/// Linux 5.14 and later), without a page fault trap per page. False where that is not
/// available (older kernels, other systems): the caller then touches the pages itself.
#[cfg(target_os = "linux")]
pub(crate) fn populate_for_writing(memory: &mut [std::mem::MaybeUninit<u8>]) -> bool {
    // Not in every libc crate version we accept; its value is fixed by the kernel's ABI.
    const MADV_POPULATE_WRITE: libc::c_int = 23;
    const PAGE: usize = 4096;
    let start = memory.as_mut_ptr() as usize;
    let end = start + memory.len();
    // madvise takes whole pages: the ones wholly inside; the partial ones at the ends are
    // written below.
    let (first, last) = (start.next_multiple_of(PAGE), end / PAGE * PAGE);
    if last <= first {
        return false;
    }
    // SAFETY: [first, last) lies inside `memory`, which the caller holds mutably; populating
    // maps its pages and changes no byte a reader could rely on (the memory is uninitialised).
    if unsafe { libc::madvise(first as *mut libc::c_void, last - first, MADV_POPULATE_WRITE) } != 0 {
        return false;
    }
    let n = memory.len();
    memory[0].write(0);
    memory[n - 1].write(0);
    true
}

/// The size of the huge pages the kernel gives memory that asks for them (`MADV_HUGEPAGE`):
/// Some only where transparent huge pages are on for such memory ("always" or "madvise" in
/// /sys/kernel/mm/transparent_hugepage/enabled). Read once per process.
#[cfg(target_os = "linux")]
pub(crate) fn huge_page_size() -> Option<usize> {
    static SIZE: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        let dir = "/sys/kernel/mm/transparent_hugepage";
        let enabled = std::fs::read_to_string(format!("{dir}/enabled")).ok()?;
        if !(enabled.contains("[always]") || enabled.contains("[madvise]")) {
            return None;
        }
        std::fs::read_to_string(format!("{dir}/hpage_pmd_size")).ok()?.trim().parse().ok()
    })
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn huge_page_size() -> Option<usize> {
    None
}

/// Asks the kernel to back `memory`'s whole huge pages with huge pages (`madvise(MADV_HUGEPAGE)`
/// on the part of it aligned to `huge`): one page fault and one clearing of memory per huge page
/// instead of one per 4 KiB. A hint: false if nothing was asked (the memory holds no aligned huge
/// page, or the kernel refused); the memory works the same either way.
#[cfg(target_os = "linux")]
pub(crate) fn ask_for_huge_pages(memory: &mut [std::mem::MaybeUninit<u8>], huge: usize) -> bool {
    let start = memory.as_mut_ptr() as usize;
    let (first, last) = (start.next_multiple_of(huge), (start + memory.len()) / huge * huge);
    if last <= first {
        return false;
    }
    // SAFETY: [first, last) lies inside `memory`, which the caller holds mutably; the advice
    // changes how its pages are backed, never what a byte of it reads.
    unsafe { libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_HUGEPAGE) == 0 }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn ask_for_huge_pages(_: &mut [std::mem::MaybeUninit<u8>], _: usize) -> bool {
    false
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn populate_for_writing(_: &mut [std::mem::MaybeUninit<u8>]) -> bool {
    false
}

/// Minor page faults of the calling thread so far (field 10 of /proc/thread-self/stat); for tests.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn thread_minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self/stat");
    let rest = stat.rsplit_once(')').expect("stat has a command in parentheses").1;
    rest.split_whitespace().nth(7).and_then(|v| v.parse().ok()).expect("minflt")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn populated_memory_is_written_without_page_faults() {
        let mut memory: Vec<u8> = Vec::with_capacity(4 << 20);
        if !populate_for_writing(memory.spare_capacity_mut()) {
            // A kernel before 5.14: the caller touches the pages itself (tested in `blocks`).
            return;
        }
        let before = thread_minor_faults();
        for byte in memory.spare_capacity_mut().iter_mut().step_by(4096) {
            byte.write(1);
        }
        let faults = thread_minor_faults() - before;
        // 1,024 pages: without the populate each is a fault (a few others: reading the count).
        assert!(faults < 100, "{faults} page faults writing populated memory");
    }

    #[test]
    fn too_little_memory_for_a_whole_page_is_left_to_the_caller() {
        let mut small = [std::mem::MaybeUninit::<u8>::uninit(); 100];
        assert!(!populate_for_writing(&mut small));
    }
}
