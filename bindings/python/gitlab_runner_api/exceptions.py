"""Exceptions, with the names of the Python package gitlab_runner_api 1.0.4 (typos included:
AlreadyFinishedExcpetion, APIExcpetion).

Every failure of a library call raises a subclass of GitlabRunnerApiError carrying `status` (the
C library's GLR_ERR_* value), `function` (the C function) and `message` (the library's message,
which never contains a token). Where a built-in exception says the same, the class also derives
from it, so code written for the Python package keeps working: bad arguments and unreadable
persisted data are ValueErrors, a missing registry credential is a KeyError, file errors are
OSErrors, network errors are ConnectionErrors, a call that ran out of time is a TimeoutError and
one another thread ended is an InterruptedError.
"""


class GitlabRunnerApiError(Exception):
    """A library call failed: `status`, `function` and `message` say which, how and why."""

    def __init__(self, *args, status=None, function=None):
        super().__init__(*args)
        self.status = status
        self.function = function

    @property
    def message(self):
        """The library's message (the first argument)."""
        return str(self.args[0]) if self.args else ""

    def __str__(self):
        if self.function is None:
            return super().__str__()
        return "%s: %s (status %s)" % (self.function, self.message, self.status)


class AuthException(GitlabRunnerApiError):
    """GitLab rejected the runner token or the registration token (GLR_ERR_AUTH)."""


class JobCancelledException(GitlabRunnerApiError):
    """GitLab stopped the job: it can no longer be reported (GLR_ERR_JOB_CANCELED)."""


class AlreadyFinishedExcpetion(GitlabRunnerApiError):
    """The job was already reported successful or failed (GLR_ERR_ALREADY_FINISHED)."""


class APIExcpetion(GitlabRunnerApiError):
    """GitLab could not be reached or answered unexpectedly, after the library's retries."""


class NetworkError(APIExcpetion, ConnectionError):
    """Connection, TLS or timeout failure, after retries (GLR_ERR_NETWORK)."""


class HTTPError(APIExcpetion):
    """An unexpected HTTP status from GitLab, after retries (GLR_ERR_HTTP)."""


class InvalidArgumentError(GitlabRunnerApiError, ValueError):
    """The library refused an argument (GLR_ERR_INVALID_ARGUMENT, _NULL_ARGUMENT, _INVALID_UTF8)."""


class ParseError(GitlabRunnerApiError, ValueError):
    """Bad JSON from GitLab, or persisted data that cannot be loaded (GLR_ERR_PARSE)."""


class LibraryIOError(GitlabRunnerApiError, OSError):
    """A local file could not be read or written (GLR_ERR_IO)."""


class NotFoundError(GitlabRunnerApiError, KeyError):
    """The thing asked for does not exist, e.g. a registry credential (GLR_ERR_NOT_FOUND)."""

    def __str__(self):  # not KeyError's repr()-quoting
        return GitlabRunnerApiError.__str__(self)


class NotOwnerError(GitlabRunnerApiError):
    """This Job no longer writes the job's log: it was handed over (Job.hand_over_dump()), it is
    a watcher (Job.watch_load()), or a fork()ed child's copy of its parent's job
    (GLR_ERR_NOT_OWNER)."""


class CallTimeoutError(GitlabRunnerApiError, TimeoutError):
    """The call's own time bound ran out (set_call_timeout(), shutdown()) (GLR_ERR_TIMEOUT)."""


class CallInterruptedError(GitlabRunnerApiError, InterruptedError):
    """Another thread ended the call: Runner.interrupt(), or the handle was closed meanwhile
    (GLR_ERR_INTERRUPTED)."""


class InternalError(GitlabRunnerApiError, RuntimeError):
    """A bug inside the library was caught at its boundary (GLR_ERR_PANIC): please report it."""


class ImagePullException(Exception):
    """Unused; kept because the Python package's module defines it."""


class JobTimeoutException(Exception):
    """Unused; kept because the Python package's module defines it."""


__all__ = [
    "AlreadyFinishedExcpetion",
    "APIExcpetion",
    "AuthException",
    "ImagePullException",
    "JobTimeoutException",
    "JobCancelledException",
    "GitlabRunnerApiError",
    "NetworkError",
    "HTTPError",
    "InvalidArgumentError",
    "ParseError",
    "LibraryIOError",
    "NotFoundError",
    "NotOwnerError",
    "CallTimeoutError",
    "CallInterruptedError",
    "InternalError",
]
