"""Loading libgitlab_runner_api with ctypes: where the library is looked for, its ABI check, the
declaration of every C function used, and the C API's conventions made Pythonic (statuses become
exceptions, strings are copied in and out, every string the library hands out is freed).

Where the shared library is looked for, first match wins:
  1. the path in the environment variable GITLAB_RUNNER_API_LIB (only there, when it is set);
  2. ctypes.util.find_library("gitlab_runner_api") (the loader's cache: ldconfig, LD_LIBRARY_PATH);
  3. the usual installed locations (<prefix>/lib/libgitlab_runner_api.so.<ABI> for the prefixes
     of this Python, /usr/local and /usr);
  4. this repository's build, when the module runs from a checkout: $CARGO_TARGET_DIR or
     <repo>/target, release then debug.
The library found must report glr_abi_version() == ABI_VERSION, else ImportError.
"""

import ctypes
import ctypes.util
import os
import sys
from ctypes import POINTER, byref, c_char, c_char_p, c_int32, c_int64, c_size_t, c_uint32, c_void_p

from . import exceptions

#: The ABI this module was written for (GLR_ABI_VERSION of include/gitlab_runner_api.h).
ABI_VERSION = 1
#: The environment variable naming the shared library to load.
LIBRARY_ENV = "GITLAB_RUNNER_API_LIB"

GLR_OK = 0
GLR_ERR_NULL_ARGUMENT = -1
GLR_ERR_INVALID_ARGUMENT = -2
GLR_ERR_INVALID_UTF8 = -3
GLR_ERR_AUTH = -4
GLR_ERR_JOB_CANCELED = -5
GLR_ERR_ALREADY_FINISHED = -6
GLR_ERR_NETWORK = -7
GLR_ERR_HTTP = -8
GLR_ERR_PARSE = -9
GLR_ERR_IO = -10
GLR_ERR_NOT_FOUND = -11
GLR_ERR_PANIC = -99

GLR_JOB_STATES = {0: "running", 1: "success", 2: "failed", 3: "canceling", 4: "canceled"}

GLR_VAR_PUBLIC = 1
GLR_VAR_MASKED = 2
GLR_VAR_FILE = 4
GLR_VAR_RAW = 8


class Runner(ctypes.Structure):
    """Opaque glr_runner (a distinct pointer type, so handles cannot be mixed up)."""


class Job(ctypes.Structure):
    """Opaque glr_job."""


class RegisterOptions(ctypes.Structure):
    """Opaque glr_register_options."""


class Artifacts(ctypes.Structure):
    """Opaque glr_artifacts."""


RunnerP = POINTER(Runner)
JobP = POINTER(Job)
OptionsP = POINTER(RegisterOptions)
ArtifactsP = POINTER(Artifacts)
#: A char* the library hands out: never converted automatically, freed with glr_string_free().
OwnedStr = POINTER(c_char)
status_t = c_int32

# name: (restype, argtypes). Borrowed `const char *` results are c_char_p (copied into bytes).
# Not declared: glr_set_log_callback and glr_job_set_cancel_callback (C callbacks from the
# library's threads; Python code reads Job.state instead, and GLR_LOG=info prints diagnostics).
SIGNATURES = {
    "glr_version": (c_char_p, []),
    "glr_abi_version": (c_uint32, []),
    "glr_status_str": (c_char_p, [status_t]),
    "glr_last_error_message": (c_size_t, [POINTER(c_char), c_size_t]),
    "glr_last_error_code": (status_t, []),
    "glr_string_free": (None, [OwnedStr]),
    "glr_failure_reason_str": (c_char_p, [c_int32]),
    # registration options
    "glr_register_options_new": (status_t, [POINTER(OptionsP)]),
    "glr_register_options_free": (None, [OptionsP]),
    "glr_register_options_set_description": (status_t, [OptionsP, c_char_p]),
    "glr_register_options_set_maintenance_note": (status_t, [OptionsP, c_char_p]),
    "glr_register_options_set_name": (status_t, [OptionsP, c_char_p]),
    "glr_register_options_set_version": (status_t, [OptionsP, c_char_p]),
    "glr_register_options_set_revision": (status_t, [OptionsP, c_char_p]),
    "glr_register_options_set_platform": (status_t, [OptionsP, c_char_p]),
    "glr_register_options_set_architecture": (status_t, [OptionsP, c_char_p]),
    "glr_register_options_set_executor": (status_t, [OptionsP, c_char_p]),
    "glr_register_options_set_access_level": (status_t, [OptionsP, c_char_p]),
    "glr_register_options_set_active": (status_t, [OptionsP, c_int32]),
    "glr_register_options_set_paused": (status_t, [OptionsP, c_int32]),
    "glr_register_options_set_locked": (status_t, [OptionsP, c_int32]),
    "glr_register_options_set_run_untagged": (status_t, [OptionsP, c_int32]),
    "glr_register_options_set_maximum_timeout": (status_t, [OptionsP, c_int64]),
    "glr_register_options_add_tag": (status_t, [OptionsP, c_char_p]),
    # runner
    "glr_runner_register": (status_t, [c_char_p, c_char_p, OptionsP, POINTER(RunnerP)]),
    "glr_runner_from_token": (status_t, [c_char_p, c_char_p, POINTER(RunnerP)]),
    "glr_runner_set_feature": (status_t, [RunnerP, c_char_p, c_int32]),
    "glr_runner_set_system_id": (status_t, [RunnerP, c_char_p]),
    "glr_runner_check_auth": (status_t, [RunnerP]),
    "glr_runner_unregister": (status_t, [RunnerP]),
    "glr_runner_request_job": (status_t, [RunnerP, POINTER(JobP)]),
    "glr_runner_dumps": (status_t, [RunnerP, POINTER(OwnedStr)]),
    "glr_runner_loads": (status_t, [c_char_p, POINTER(RunnerP)]),
    "glr_runner_dump": (status_t, [RunnerP, c_char_p]),
    "glr_runner_load": (status_t, [c_char_p, POINTER(RunnerP)]),
    "glr_runner_free": (None, [RunnerP]),
    "glr_runner_id": (c_int64, [RunnerP]),
    "glr_runner_api_url": (c_char_p, [RunnerP]),
    "glr_runner_token": (c_char_p, [RunnerP]),
    "glr_runner_token_expires_at": (c_char_p, [RunnerP]),
    "glr_runner_system_id": (c_char_p, [RunnerP]),
    "glr_runner_description": (c_char_p, [RunnerP]),
    "glr_runner_name": (c_char_p, [RunnerP]),
    "glr_runner_version": (c_char_p, [RunnerP]),
    "glr_runner_revision": (c_char_p, [RunnerP]),
    "glr_runner_platform": (c_char_p, [RunnerP]),
    "glr_runner_architecture": (c_char_p, [RunnerP]),
    "glr_runner_executor": (c_char_p, [RunnerP]),
    "glr_runner_access_level": (c_char_p, [RunnerP]),
    "glr_runner_locked": (c_int32, [RunnerP]),
    "glr_runner_active": (c_int32, [RunnerP]),
    "glr_runner_run_untagged": (c_int32, [RunnerP]),
    "glr_runner_maximum_timeout": (c_int64, [RunnerP]),
    "glr_runner_tag_count": (c_size_t, [RunnerP]),
    "glr_runner_tag": (c_char_p, [RunnerP, c_size_t]),
    # job
    "glr_job_id": (c_int64, [JobP]),
    "glr_job_token": (c_char_p, [JobP]),
    "glr_job_name": (c_char_p, [JobP]),
    "glr_job_stage": (c_char_p, [JobP]),
    "glr_job_ref": (c_char_p, [JobP]),
    "glr_job_repo_url": (c_char_p, [JobP]),
    "glr_job_commit_sha": (c_char_p, [JobP]),
    "glr_job_commit_message": (c_char_p, [JobP]),
    "glr_job_username": (c_char_p, [JobP]),
    "glr_job_project_url": (c_char_p, [JobP]),
    "glr_job_project_path": (c_char_p, [JobP]),
    "glr_job_project_name": (c_char_p, [JobP]),
    "glr_job_job_url": (c_char_p, [JobP]),
    "glr_job_pipeline_url": (c_char_p, [JobP]),
    "glr_job_pipeline_id": (c_char_p, [JobP]),
    "glr_job_is_branch": (c_int32, [JobP]),
    "glr_job_state": (c_int32, [JobP]),
    "glr_job_script_count": (c_size_t, [JobP]),
    "glr_job_script_line": (c_char_p, [JobP, c_size_t]),
    "glr_job_after_script_count": (c_size_t, [JobP]),
    "glr_job_after_script_line": (c_char_p, [JobP, c_size_t]),
    "glr_job_variable_count": (c_size_t, [JobP]),
    "glr_job_variable_key": (c_char_p, [JobP, c_size_t]),
    "glr_job_variable_value": (c_char_p, [JobP, c_size_t]),
    "glr_job_variable_flags": (c_uint32, [JobP, c_size_t]),
    "glr_job_variable": (c_char_p, [JobP, c_char_p]),
    "glr_job_payload": (status_t, [JobP, POINTER(OwnedStr)]),
    "glr_job_get_registry_credential": (status_t, [JobP, c_char_p, POINTER(OwnedStr), POINTER(OwnedStr)]),
    "glr_job_log_append": (status_t, [JobP, c_char_p, c_size_t]),
    "glr_job_log_flush": (status_t, [JobP]),
    "glr_job_log": (status_t, [JobP, POINTER(OwnedStr), POINTER(c_size_t)]),
    "glr_job_auth": (status_t, [JobP]),
    "glr_job_set_exit_code": (status_t, [JobP, c_int32]),
    "glr_job_set_log_limit": (status_t, [JobP, c_size_t]),
    "glr_job_set_success": (status_t, [JobP, ArtifactsP]),
    "glr_job_set_failed": (status_t, [JobP, c_int32, ArtifactsP]),
    "glr_job_dumps": (status_t, [JobP, POINTER(OwnedStr)]),
    "glr_job_loads": (status_t, [c_char_p, POINTER(JobP)]),
    "glr_job_dump": (status_t, [JobP, c_char_p]),
    "glr_job_load": (status_t, [c_char_p, POINTER(JobP)]),
    "glr_job_free": (None, [JobP]),
    "glr_job_dependency_count": (c_size_t, [JobP]),
    "glr_job_dependency_id": (c_int64, [JobP, c_size_t]),
    "glr_job_dependency_name": (c_char_p, [JobP, c_size_t]),
    "glr_job_dependency_artifacts_filename": (status_t, [JobP, c_size_t, POINTER(OwnedStr)]),
    "glr_job_dependency_artifacts_size": (c_int64, [JobP, c_size_t]),
    "glr_job_download_artifacts": (status_t, [JobP, c_size_t, c_char_p]),
    # artifacts
    "glr_artifacts_new": (status_t, [POINTER(ArtifactsP)]),
    "glr_artifacts_free": (None, [ArtifactsP]),
    "glr_artifacts_add_file": (status_t, [ArtifactsP, c_char_p, c_char_p, c_char_p, c_char_p, c_char_p]),
    "glr_artifacts_count": (c_size_t, [ArtifactsP]),
    "glr_artifacts_collect": (status_t, [ArtifactsP, JobP, c_char_p, c_int32]),
    "glr_extract_artifacts": (status_t, [c_char_p, c_char_p]),
}


def candidates():
    """The paths (or loader names) tried, in order."""
    explicit = os.environ.get(LIBRARY_ENV)
    if explicit:
        return [explicit]
    paths = []
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


def version():
    """The library's version, e.g. "0.1.0"."""
    return py_str(lib.glr_version())


# ---- errors ---------------------------------------------------------------------------------


def last_error_message():
    """The calling thread's last error message (read right after the failing call)."""
    n = lib.glr_last_error_message(None, 0)
    buf = ctypes.create_string_buffer(n + 1)
    lib.glr_last_error_message(buf, n + 1)
    return buf.raw[:n].decode("utf-8", "replace")


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
    GLR_ERR_PANIC: exceptions.InternalError,
}


def error(status, function):
    """The exception for `status` returned by `function` (reads the thread's last error)."""
    message = last_error_message()
    cls = _ERRORS.get(status, exceptions.GitlabRunnerApiError)
    return cls(message, status=status, function=function)


def check(status, function):
    """Raises the exception for `status` unless it is GLR_OK."""
    if status != GLR_OK:
        raise error(status, function)


def call(function, *args):
    """Calls the C function named `function`, raising on a failure status."""
    check(getattr(lib, function)(*args), function)


__all__ = ["lib", "path", "load_library", "candidates", "ABI_VERSION", "LIBRARY_ENV", "byref", "c_void_p"]
