"""What concerns the whole process rather than one runner or job: shutdown(), set_log_fd()."""

from . import _lib


def shutdown(timeout=60.0):
    """Uploads the pending log text of every live job of this process that writes its log, and
    returns True once GitLab acknowledged all of it. Call it before the process exits: the
    library uploads in the background, and text not acknowledged when the process exits is
    lost. Raises CallTimeoutError when `timeout` (seconds; 0 means one minute, as in the C API)
    runs out, else the error of the first job that could not upload (APIExcpetion,
    JobCancelledException...); the message lists "job N: B bytes not acknowledged". Jobs are
    not finished by it, and everything stays usable. Not in the Python package."""
    if timeout is None:
        raise TypeError("timeout must be a number of seconds, not None")
    _lib.call("glr_shutdown", _lib.milliseconds(timeout, "timeout"))
    return True


_LOG_LEVELS = {
    "error": _lib.GLR_LOG_ERROR,
    "warn": _lib.GLR_LOG_WARN,
    "info": _lib.GLR_LOG_INFO,
    "debug": _lib.GLR_LOG_DEBUG,
}


def set_log_fd(fd, level="info"):
    """Sends the library's diagnostics at `level` ("error", "warn", "info" or "debug") and more
    severe to the file descriptor `fd`, one line each, "gitlab_runner_api: <level>: <message>\n"
    (at most 4000 bytes, so a pipe gets each whole); None (or -1) stops. Give it the writing end
    of os.pipe() and read the lines where you like (loop.add_reader in asyncio, a thread, the
    logging module). The library never blocks on it: a line the descriptor cannot take at once
    is dropped. The descriptor stays yours: once this returns after a change, nothing is written
    to the previous one, which may then be closed. GLR_LOG's stderr lines stop while it is set.
    Not in the Python package."""
    if fd is None:
        fd = -1
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError("fd must be a file descriptor (an int) or None, not %s" % type(fd).__name__)
    if level not in _LOG_LEVELS:
        raise ValueError("level must be one of %s, not %r" % (sorted(_LOG_LEVELS), level))
    _lib.call("glr_set_log_fd", fd, _LOG_LEVELS[level])


__all__ = ["shutdown", "set_log_fd"]
