//! Diagnostics: where the library's own log lines go.
//!
//! The library never prints by itself. A line goes to the installed sink (the C side installs
//! one from `glr_set_log_callback`); with no sink installed, `GLR_LOG=error|warn|info|debug`
//! in the environment (read once, on first use) sends lines at that level and more severe to
//! stderr as `gitlab_runner_api: <level>: <message>`; otherwise lines are dropped.
//!
//! Logging is cheap when nobody listens: [`enabled`] is one atomic load, so code that has to
//! format a message should check it first:
//! ```ignore
//! use crate::core::diag;
//! let (bytes, job) = (4096, 42);
//! if diag::enabled(diag::Level::Debug) {
//!     diag::debug(&format!("trace: sent {bytes} bytes of job {job}"));
//! }
//! ```
//! The sink runs on the event thread (`events`), never on the thread that logs and never with a
//! library lock held, so a sink may log or call back into the library, and a slow sink delays
//! no upload. A panicking sink is contained: the line is lost, nothing else is disturbed.

use super::events;
use super::sync::{read, write};
use std::fmt;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// Severity of a line. The numbers are part of the C API (`GLR_LOG_ERROR` 1 ... `GLR_LOG_DEBUG` 4):
/// smaller is more severe, like the `log` crate and syslog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    /// Something failed and the caller will see an error (or a panic was caught).
    Error = 1,
    /// Something unexpected that the library worked around (a retry, a resync, a lenient parse).
    Warn = 2,
    /// A notable step: a request made, a job received, a job finished.
    Info = 3,
    /// Detail for debugging the library itself.
    Debug = 4,
}

impl Level {
    /// The lowercase name used in `GLR_LOG` and in stderr lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    /// The level named by a `GLR_LOG` value (case-insensitive, surrounding blanks ignored).
    pub fn from_name(name: &str) -> Option<Level> {
        match name.trim().to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A diagnostics receiver. It is called on the library's event thread, one line at a time, in
/// the order the lines were logged.
pub type Sink = Box<dyn Fn(Level, &str) + Send + Sync>;

type SharedSink = Arc<dyn Fn(Level, &str) + Send + Sync>;

static SINK: RwLock<Option<SharedSink>> = RwLock::new(None);

/// Most verbose level anyone listens to: 0 = nobody, 1..=4 = a `Level`, `UNKNOWN` = not yet
/// computed (the environment has not been read).
static MAX_LEVEL: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = u8::MAX;
const OFF: u8 = 0;

/// The level `GLR_LOG` asks for, read once; `OFF` when unset or unrecognised.
fn env_level() -> u8 {
    static ENV: OnceLock<u8> = OnceLock::new();
    *ENV.get_or_init(|| std::env::var("GLR_LOG").ok().and_then(|v| Level::from_name(&v)).map_or(OFF, |l| l as u8))
}

/// The descriptor `set_log_fd` installed (-1: none) and the most verbose level it takes: the
/// atomics for the quick look, the lock held while a line is written (so that replacing the
/// descriptor waits for a write in progress, and the caller may then close the old one).
static LOG_FD: AtomicI32 = AtomicI32::new(-1);
static LOG_FD_LEVEL: AtomicU8 = AtomicU8::new(OFF);
static LOG_FD_WRITE: RwLock<()> = RwLock::new(());
/// Longest line written to the descriptor: below PIPE_BUF (4096), so a line goes into a pipe
/// whole, in one write, and lines of several threads never interleave.
const MAX_FD_LINE: usize = 4000;

/// The max level for a given state: a sink receives everything, the descriptor what it was set
/// up with, stderr what `GLR_LOG` says when there is neither.
fn max_level_for(sink_installed: bool) -> u8 {
    let fd_level = if LOG_FD.load(Ordering::Acquire) >= 0 { LOG_FD_LEVEL.load(Ordering::Acquire) } else { OFF };
    let stderr_level = if sink_installed || fd_level != OFF { OFF } else { env_level() };
    let sink_level = if sink_installed { Level::Debug as u8 } else { OFF };
    sink_level.max(fd_level).max(stderr_level)
}

/// Sends lines at `level` and more severe to descriptor `fd` (None: stop), as
/// `gitlab_runner_api: <level>: <message>\n`, never blocking: a line the descriptor cannot take
/// at once (a full pipe, a reader gone) is dropped. The descriptor stays the caller's.
pub fn set_log_fd(fd: Option<i32>, level: Level) {
    let slot = write(&SINK);
    // Waits for writes in progress: after this returns the old descriptor is never written.
    let _no_writer = write(&LOG_FD_WRITE);
    LOG_FD_LEVEL.store(level as u8, Ordering::Release);
    LOG_FD.store(fd.unwrap_or(-1), Ordering::Release);
    MAX_LEVEL.store(max_level_for(slot.is_some()), Ordering::Release);
}

fn write_to_fd(level: Level, message: &str) {
    if LOG_FD.load(Ordering::Acquire) < 0 {
        return;
    }
    let _writing = read(&LOG_FD_WRITE);
    // Read again under the lock: set_log_fd may have replaced it meanwhile.
    let fd = LOG_FD.load(Ordering::Acquire);
    if fd < 0 || (level as u8) > LOG_FD_LEVEL.load(Ordering::Acquire) {
        return;
    }
    let mut line = format!("gitlab_runner_api: {level}: ");
    let room = MAX_FD_LINE - line.len() - 1;
    let mut cut = message.len().min(room);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    line.push_str(&message[..cut]);
    line.push('\n');
    crate::os::write_without_blocking(fd, line.as_bytes());
}

/// Installs (`Some`) or removes (`None`) the process-wide sink, replacing any previous one.
/// Lines logged before go to the previous sink; when this returns, the previous sink has
/// received them and is not running any more (so its resources may be freed), except when
/// called from a sink itself (then it returns at once).
pub fn set_sink(sink: Option<Sink>) {
    {
        let mut slot = write(&SINK);
        *slot = sink.map(SharedSink::from);
        // Stored while the write lock is held, so a concurrent first `enabled` cannot overwrite
        // it with a value computed from the old sink.
        MAX_LEVEL.store(max_level_for(slot.is_some()), Ordering::Release);
    }
    events::set_drop_reporter(report_dropped_lines);
    events::barrier();
}

fn report_dropped_lines(count: u64) {
    warn(&format!("{count} diagnostic lines were dropped: the log callback could not keep up"));
}

/// Whether a line at `level` would go anywhere. One atomic load once initialised.
pub fn enabled(level: Level) -> bool {
    let mut max = MAX_LEVEL.load(Ordering::Acquire);
    if max == UNKNOWN {
        let slot = read(&SINK);
        let computed = max_level_for(slot.is_some());
        max = match MAX_LEVEL.compare_exchange(UNKNOWN, computed, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => computed,
            Err(current) => current,
        };
    }
    (level as u8) <= max
}

/// Sends one line to the descriptor and the sink, or to stderr when `GLR_LOG` asks for it and
/// there is neither, or nowhere.
pub fn emit(level: Level, message: &str) {
    if !enabled(level) {
        return;
    }
    write_to_fd(level, message);
    // The sink of the moment the line was logged receives it, on the event thread. Queued while
    // the sink is read-locked, so a `set_sink` that returns has seen it queued (and waited).
    let installed = read(&SINK);
    match installed.clone() {
        Some(sink) => {
            let message = message.to_string();
            events::post_log_line(move || sink(level, &message));
        }
        None => {
            if (level as u8) <= env_level() && LOG_FD.load(Ordering::Acquire) < 0 {
                eprintln!("gitlab_runner_api: {level}: {message}");
            }
        }
    }
}

/// `emit(Level::Error, message)`.
pub fn error(message: &str) {
    emit(Level::Error, message)
}

/// `emit(Level::Warn, message)`.
pub fn warn(message: &str) {
    emit(Level::Warn, message)
}

/// `emit(Level::Info, message)`.
pub fn info(message: &str) {
    emit(Level::Info, message)
}

/// `emit(Level::Debug, message)`.
pub fn debug(message: &str) {
    emit(Level::Debug, message)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Mutex, PoisonError};

    /// The sink is process-wide: tests that install one (here and in the ffi layer) take this.
    pub(crate) static SINK_TEST_LOCK: Mutex<()> = Mutex::new(());

    #[test]
    fn levels_order_and_names() {
        assert!(Level::Error < Level::Warn && Level::Warn < Level::Info && Level::Info < Level::Debug);
        for l in [Level::Error, Level::Warn, Level::Info, Level::Debug] {
            assert_eq!(Level::from_name(l.as_str()), Some(l));
        }
        assert_eq!(Level::from_name(" DEBUG\n"), Some(Level::Debug));
        assert_eq!(Level::from_name("trace"), None);
        assert_eq!([Level::Error as u8, Level::Debug as u8], [1, 4]);
    }

    // The sink is process-wide and other tests may log while one of these has it installed:
    // each test only counts its own lines, marked with a prefix of its own.

    #[test]
    fn sink_receives_lines_and_can_be_removed() {
        let _lock = SINK_TEST_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        set_sink(Some(Box::new(move |level, msg| {
            if let Some(m) = msg.strip_prefix("t1:") {
                s.lock().unwrap().push((level, m.to_owned()))
            }
        })));
        assert!(enabled(Level::Debug));
        debug("t1:d");
        error("t1:e");
        set_sink(None);
        debug("t1:after removal");
        assert_eq!(*seen.lock().unwrap(), vec![(Level::Debug, "d".to_owned()), (Level::Error, "e".to_owned())]);
        assert_eq!(enabled(Level::Error), env_level() >= Level::Error as u8);
    }

    #[test]
    fn sink_may_log_and_replace_itself_without_deadlock() {
        let _lock = SINK_TEST_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let count = Arc::new(Mutex::new(0));
        let c = count.clone();
        set_sink(Some(Box::new(move |_, msg| {
            if !msg.starts_with("t2:") {
                return;
            }
            *c.lock().unwrap() += 1;
            if msg == "t2:outer" {
                info("t2:inner"); // re-entrant log
                set_sink(None); // replacing the sink from inside it
            }
        })));
        info("t2:outer");
        events::barrier(); // the outer line
        events::barrier(); // the inner one, logged while the outer was delivered
        assert_eq!(*count.lock().unwrap(), 2);
        info("t2:dropped");
        events::barrier();
        assert_eq!(*count.lock().unwrap(), 2);
    }

    #[test]
    fn panicking_sink_is_contained() {
        let _lock = SINK_TEST_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        set_sink(Some(Box::new(|_, _| panic!("sink bug"))));
        warn("boom"); // must return normally
        set_sink(None);
    }
}
