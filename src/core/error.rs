//! The one error type of the core. Each kind maps to exactly one `glr_status` in the ffi layer;
//! the message is what `glr_last_error_message` shows, so it must say what failed and why and
//! must never contain a token.

use std::fmt;

/// What went wrong, at the granularity a caller branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A value given by the caller is not acceptable (bad option, unknown enum value...).
    InvalidArgument,
    /// GitLab rejected the runner token (or the registration token).
    Auth,
    /// GitLab stopped the job (`Job-Status: canceled`/`failed`, or a 403 on a job endpoint).
    JobCanceled,
    /// The job was already reported as finished.
    AlreadyFinished,
    /// Connection, TLS or timeout failure, after the retries that were safe to make.
    Network,
    /// GitLab answered with a status we did not expect, after retries.
    Http,
    /// GitLab sent JSON we cannot use, or persisted data is malformed.
    Parse,
    /// A local file could not be read or written.
    Io,
    /// The thing asked for does not exist (no such credential, runner manager, artifact...).
    NotFound,
    /// This handle does not write the job's log: it handed the job over, is a watcher, or is a
    /// fork()ed child's copy of its parent's job.
    NotOwner,
    /// The call's own time bound ran out.
    Timeout,
    /// Another thread ended the call (`glr_runner_interrupt`, or the handle was freed).
    Interrupted,
}

/// An error with its kind and a human-readable message (never holding a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub fn parse(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Parse, message)
    }
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Io, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    /// The same error with `context: ` put in front of its message.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
