"""Loading libgitlab_runner_api with ctypes: where the library is looked for, its ABI check, the
declaration of every C function used (from _c_api.SIGNATURES), and the C API's conventions made Pythonic (statuses become
exceptions, strings are copied in and out, every string the library hands out is freed).

Where the shared library is looked for, first match wins:
  1. the path in the environment variable GITLAB_RUNNER_API_LIB (only there, when it is set);
  2. the library bundled in this package (BUNDLED: `pip install ./bindings/python` and the wheels
     built from it run `cargo build --release` and put it there, see setup.py);
  3. ctypes.util.find_library("gitlab_runner_api") (the loader's cache: ldconfig, LD_LIBRARY_PATH);
  4. the usual installed locations (<prefix>/lib/libgitlab_runner_api.so.<ABI> for the prefixes
     of this Python, /usr/local and /usr);
  5. this repository's build, when the module runs from a checkout: $CARGO_TARGET_DIR or
     <repo>/target, release then debug.
The library found must report glr_abi_version() == ABI_VERSION, else ImportError.
"""

import ctypes
import ctypes.util
import datetime
import math
import os
import sys
from ctypes import byref, c_size_t, c_uint32, c_void_p  # noqa: F401 (others use _lib.c_size_t)

from . import exceptions

# The header's constants, the handle types and SIGNATURES (the declaration of every function
# used) live in _c_api, which tests/python/test_ctypes.py shares; re-exported here, where the
# rest of the package looks for them (_lib.JobP, _lib.GLR_VAR_FILE, _lib.SIGNATURES, ...).
from ._c_api import *  # noqa: E402,F401,F403

#: The environment variable naming the shared library to load.
LIBRARY_ENV = "GITLAB_RUNNER_API_LIB"

#: Where an installed package (a wheel) holds the library built with it (the file name is the
#: one setup.py copies to; a checkout's package directory has none).
BUNDLED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libgitlab_runner_api.so")


def candidates():
    """The paths (or loader names) tried, in order."""
    explicit = os.environ.get(LIBRARY_ENV)
    if explicit:
        return [explicit]
    paths = []
    # The library built together with this package comes first: it is the one these
    # declarations were built against, whatever else is installed on the machine.
    if os.path.isfile(BUNDLED):
        paths.append(BUNDLED)
    found = ctypes.util.find_library("gitlab_runner_api")
    if found:
        paths.append(found)
    prefixes = []
    for prefix in (sys.prefix, sys.base_prefix, "/usr/local", "/usr"):
        if prefix not in prefixes:
            prefixes.append(prefix)
    for prefix in prefixes:
        for libdir in ("lib", "lib64"):
            paths.append(os.path.join(prefix, libdir, "libgitlab_runner_api.so.%d" % ABI_VERSION))
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, os.pardir, os.pardir, os.pardir))
    if os.path.isfile(os.path.join(repo, "include", "gitlab_runner_api.h")):
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(repo, "target")
        if not os.path.isabs(target):
            target = os.path.join(repo, target)
        for profile in ("release", "debug"):
            paths.append(os.path.join(target, profile, "libgitlab_runner_api.so"))
    return paths


def load_library(path=None, expected_abi=ABI_VERSION):
    """Loads the library (from `path`, else from candidates()), checks its ABI version and
    declares its functions. Raises ImportError saying what was tried when nothing fits."""
    tried = []
    for candidate in [path] if path else candidates():
        if os.sep in candidate and not os.path.exists(candidate):
            tried.append("%s: no such file" % candidate)
            continue
        try:
            lib = ctypes.CDLL(candidate)
        except OSError as e:
            tried.append("%s: %s" % (candidate, e))
            continue
        try:
            lib.glr_abi_version.restype = c_uint32
            lib.glr_abi_version.argtypes = []
        except AttributeError:
            tried.append("%s: not gitlab_runner_api (no glr_abi_version)" % candidate)
            continue
        abi = lib.glr_abi_version()
        if abi != expected_abi:
            tried.append("%s: ABI version %d, this module needs %d" % (candidate, abi, expected_abi))
            continue
        for name, (restype, argtypes) in SIGNATURES.items():
            try:
                fn = getattr(lib, name)
            except AttributeError:
                raise ImportError("%s does not export %s (a library older than this module?)" % (candidate, name))
            fn.restype = restype
            fn.argtypes = argtypes
        return lib, candidate
    raise ImportError(
        "cannot load libgitlab_runner_api (set %s to its path, or install it):\n  %s"
        % (LIBRARY_ENV, "\n  ".join(tried) or "no candidates")
    )


lib, path = load_library()

# ---- strings --------------------------------------------------------------------------------


def c_str(value, what):
    """A Python str argument as NUL-terminated UTF-8 bytes (None stays None)."""
    if value is None:
        return None
    if not isinstance(value, str):
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "surrogateescape")
        if not isinstance(value, str):
            raise TypeError("%s must be a string, not %s" % (what, type(value).__name__))
    if "\0" in value:
        raise ValueError("%s must not contain a NUL character" % what)
    return value.encode("utf-8", "surrogateescape")


def py_str(value):
    """A borrowed C string (bytes from c_char_p) as str, or None."""
    if value is None:
        return None
    return value.decode("utf-8", "replace")


def take(ptr, length=None):
    """Copies a string the library handed out and frees it with glr_string_free()."""
    if not ptr:
        return None
    try:
        data = ctypes.string_at(ptr, length) if length is not None else ctypes.string_at(ptr)
    finally:
        lib.glr_string_free(ptr)
    return data.decode("utf-8", "replace")


# ---- durations ------------------------------------------------------------------------------

_INT64_MAX = 2**63 - 1


def seconds_value(seconds, what):
    """A duration given as a number of seconds (int or float) or a datetime.timedelta, as a
    number of seconds; TypeError / ValueError for anything else, NaN or infinity."""
    if isinstance(seconds, datetime.timedelta):
        seconds = seconds.total_seconds()
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError("%s must be a number of seconds, not %s" % (what, type(seconds).__name__))
    if isinstance(seconds, float) and (math.isnan(seconds) or math.isinf(seconds)):
        raise ValueError("%s must be a finite number of seconds, not %r" % (what, seconds))
    return seconds


def milliseconds(seconds, what):
    """A call timeout in seconds (None: the library's default) as the C API's milliseconds. A
    positive duration is at least 1 ms (0 means the default there); a negative one stays
    negative, for the library to refuse."""
    if seconds is None:
        return 0
    seconds = seconds_value(seconds, what)
    ms = math.ceil(seconds * 1000) if seconds > 0 else math.floor(seconds * 1000)
    if abs(ms) > _INT64_MAX:
        raise ValueError("%s is too large: %r seconds" % (what, seconds))
    return int(ms)


def version():
    """The library's version, e.g. "0.1.0"."""
    return py_str(lib.glr_version())


# ---- errors ---------------------------------------------------------------------------------


def _copy_message(function, *handle):
    """A message copied out snprintf-style by `function` (glr_last_error_message, or a
    per-handle one with its handle first); asks again when it grew meanwhile (another thread
    failed on the same handle)."""
    size = 256
    while True:
        buf = ctypes.create_string_buffer(size)
        n = function(*handle, buf, size)
        if n < size:
            return buf.raw[:n].decode("utf-8", "replace")
        size = n + 1


def last_error_message():
    """The calling thread's last error message (read right after the failing call)."""
    return _copy_message(lib.glr_last_error_message)


def handle_error_message(handle):
    """The message of the last failed call on a job or runner handle, whichever thread made it
    ("" when none failed yet); None for anything else (registration options, artifacts)."""
    if isinstance(handle, JobP):
        return _copy_message(lib.glr_job_last_error_message, handle)
    if isinstance(handle, RunnerP):
        return _copy_message(lib.glr_runner_last_error_message, handle)
    return None


_ERRORS = {
    GLR_ERR_NULL_ARGUMENT: exceptions.InvalidArgumentError,
    GLR_ERR_INVALID_ARGUMENT: exceptions.InvalidArgumentError,
    GLR_ERR_INVALID_UTF8: exceptions.InvalidArgumentError,
    GLR_ERR_AUTH: exceptions.AuthException,
    GLR_ERR_JOB_CANCELED: exceptions.JobCancelledException,
    GLR_ERR_ALREADY_FINISHED: exceptions.AlreadyFinishedExcpetion,
    GLR_ERR_NETWORK: exceptions.NetworkError,
    GLR_ERR_HTTP: exceptions.HTTPError,
    GLR_ERR_PARSE: exceptions.ParseError,
    GLR_ERR_IO: exceptions.LibraryIOError,
    GLR_ERR_NOT_FOUND: exceptions.NotFoundError,

    GLR_ERR_NOT_OWNER: exceptions.NotOwnerError,
    GLR_ERR_TIMEOUT: exceptions.CallTimeoutError,
    GLR_ERR_INTERRUPTED: exceptions.CallInterruptedError,
    GLR_ERR_PANIC: exceptions.InternalError,
}


def error(status, function, handle=None):
    """The exception for `status` returned by `function`. Its message is the handle's last
    failure when the call was on a job or runner (the library keeps it per handle, whichever
    thread failed), else the calling thread's last error."""
    message = handle_error_message(handle) if handle is not None else None
    if not message:  # not a job or runner call (or nothing recorded on it)
        message = last_error_message()
    cls = _ERRORS.get(status, exceptions.GitlabRunnerApiError)
    return cls(message, status=status, function=function)


def check(status, function, handle=None):
    """Raises the exception for `status` unless it is GLR_OK."""
    if status != GLR_OK:
        raise error(status, function, handle)


def call(function, *args):
    """Calls the C function named `function`, raising on a failure status (with the message of
    its first argument when that is a job or runner handle)."""
    check(getattr(lib, function)(*args), function, args[0] if args else None)


__all__ = ["lib", "path", "load_library", "candidates", "ABI_VERSION", "LIBRARY_ENV", "BUNDLED", "byref", "c_void_p"]
