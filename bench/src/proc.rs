//! What the kernel says about this process and the machine.

use std::time::Duration;

/// A field of /proc/self/status in KiB (VmRSS, VmHWM...).
pub fn status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub fn rss_kib() -> u64 {
    status_kib("VmRSS")
}

/// Peak resident set size.
pub fn hwm_kib() -> u64 {
    status_kib("VmHWM")
}

/// CPU time (user + system) this process used so far, in seconds.
pub fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 11 and 12 counted from the state (field 3).
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on Linux for all practical purposes.
    100.0
}

/// Threads of this process (entries of /proc/self/task).
pub fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

/// Waits until the thread count settles (threads may still be starting or ending).
pub fn threads_settled() -> usize {
    let mut last = threads();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(25));
        let now = threads();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// The machine line of BENCHMARKS.md: cores, CPU model, RAM.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 =
        meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("nproc {cores}, {model}, {:.1} GiB RAM", mem_kib as f64 / 1024.0 / 1024.0)
}

/// The 1-minute load average (other work on the machine skews timings).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Minor page faults of the calling thread so far (getrusage(RUSAGE_THREAD)), from
/// /proc/thread-self/stat field 10.
pub fn thread_minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    // Fields after the command: state is field 3, minflt field 10.
    rest.split_whitespace().nth(7).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// `struct rusage` of Linux: user and system time as timevals, then 14 longs (maxrss, minflt...).
#[repr(C)]
#[derive(Default)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    rest: [i64; 14],
}

extern "C" {
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    fn mmap(addr: *mut u8, len: usize, prot: i32, flags: i32, fd: i32, offset: i64) -> *mut u8;
    fn munmap(addr: *mut u8, len: usize) -> i32;
}

/// One page of memory just mapped and never written: the first write to it is a page fault
/// (the kernel clears a page for it; on a virtual machine the host may have to back it first),
/// as an append takes that grows a short log into new memory.
pub struct FreshPage(*mut u8);

impl FreshPage {
    const SIZE: usize = 4096;

    pub fn map() -> Option<FreshPage> {
        // PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS (Linux's values).
        // SAFETY: a new anonymous mapping, touching no memory of ours.
        let p = unsafe { mmap(std::ptr::null_mut(), Self::SIZE, 0x1 | 0x2, 0x02 | 0x20, -1, 0) };
        (p as isize != -1 && !p.is_null()).then_some(FreshPage(p))
    }

    /// Writes its first byte (the page fault).
    pub fn write(&mut self) {
        // SAFETY: the page is mapped writable and ours until drop.
        unsafe { self.0.write_volatile(1) }
    }
}

impl Drop for FreshPage {
    fn drop(&mut self) {
        // SAFETY: unmaps the page `map` mapped; nothing refers to it after this.
        unsafe { munmap(self.0, Self::SIZE) };
    }
}

fn rusage_cpu(who: i32) -> f64 {
    let mut u = Rusage::default();
    // SAFETY: getrusage writes one struct rusage, which `Rusage` lays out exactly.
    if unsafe { getrusage(who, &mut u) } != 0 {
        return f64::NAN;
    }
    let secs = |t: [i64; 2]| t[0] as f64 + t[1] as f64 / 1e6;
    secs(u.utime) + secs(u.stime)
}

/// What the calling thread went through so far (getrusage(RUSAGE_THREAD)): minor page faults,
/// major ones (a page read back from its file: this machine's kernel pages out file pages
/// nobody touched for a while, the program's own code included), voluntary context switches (it waited: a lock, a sleep) and involuntary ones (the scheduler
/// gave its core to another thread).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadEvents {
    pub minor_faults: i64,
    pub major_faults: i64,
    pub waited: i64,
    pub preempted: i64,
}

pub fn thread_events() -> ThreadEvents {
    let mut u = Rusage::default();
    // SAFETY: as in `rusage_cpu`; 1 is RUSAGE_THREAD.
    if unsafe { getrusage(1, &mut u) } != 0 {
        return ThreadEvents::default();
    }
    // After maxrss, ixrss, idrss, isrss: minflt (4), majflt (5) ... nvcsw (12), nivcsw (13).
    ThreadEvents { minor_faults: u.rest[4], major_faults: u.rest[5], waited: u.rest[12], preempted: u.rest[13] }
}

/// CPU time (user + system) of the calling thread so far, to the microsecond
/// (getrusage(RUSAGE_THREAD)).
pub fn thread_cpu_secs() -> f64 {
    rusage_cpu(1)
}

/// CPU time (user + system) of the whole process so far, threads that ended included, to the
/// microsecond (getrusage(RUSAGE_SELF); `cpu_secs` counts 10 ms ticks).
pub fn process_cpu_secs() -> f64 {
    rusage_cpu(0)
}

/// CPU time so far of each thread of this process, by thread id: its name (`comm`, at most 15
/// bytes: `glr-log-uploade`) and nanoseconds on a CPU (`schedstat`'s first field, exact where
/// getrusage of another thread is not to be had). Threads that ended are not in it.
pub fn threads_cpu_ns() -> std::collections::BTreeMap<u64, (String, u64)> {
    let mut all = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return all };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<u64>().ok()) else { continue };
        let read = |f: &str| std::fs::read_to_string(task.path().join(f)).unwrap_or_default();
        let ns = read("schedstat").split_whitespace().next().and_then(|n| n.parse().ok());
        if let Some(ns) = ns {
            all.insert(tid, (read("comm").trim().to_string(), ns));
        }
    }
    all
}

/// CPU seconds each thread name took between two [`threads_cpu_ns`] readings (threads started in
/// between count from zero), summed over the threads of a name.
pub fn threads_cpu_between(
    before: &std::collections::BTreeMap<u64, (String, u64)>,
    after: &std::collections::BTreeMap<u64, (String, u64)>,
) -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    for (tid, (name, ns)) in after {
        let earlier = before.get(tid).map_or(0, |(_, ns)| *ns);
        *by_name.entry(name.clone()).or_insert(0.0) += ns.saturating_sub(earlier) as f64 / 1e9;
    }
    by_name
}
