"""What concerns the whole process rather than one runner or job: shutdown()."""

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


__all__ = ["shutdown"]
