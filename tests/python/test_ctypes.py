#!/usr/bin/env python3
"""End-to-end test of libgitlab_runner_api.so through Python's ctypes (stdlib only).

Usage:
    python3 tests/python/test_ctypes.py --lib target/debug/libgitlab_runner_api.so \
        --url http://127.0.0.1:PORT --registration-token TOKEN [--job-id N]

Against a GitLab (or the glr-testserver) that has a job queued for a runner tagged
"python,ctypes" (or for any runner), it runs the whole cycle a runner written in another language
would: register -> check_auth -> dumps/loads of the runner -> request_job -> job properties ->
log appends (with non-ASCII text) -> glr_job_hand_over_dumps (the first handle becomes a watcher)
-> glr_job_loads (the new owner) -> more log through the new owner -> glr_job_set_success ->
glr_shutdown, plus the error paths of the C contract (NULL arguments, invalid UTF-8, bad token,
finishing twice, a watcher's log functions, out-of-range timeouts). Every handle and every returned string is
freed. First of all, every function the header (--header) declares must have its signature in the
bindings' table.

Progress goes to stderr. On success the last line on stdout is one JSON object (ASCII only) that
tests/python_ctypes.rs checks against what the server stored:
    {"job_id", "runner_id", "system_id", "job_name", "stage", "script", "variables" (public,
     unmasked ones only), "lines" (every log line appended, in order), "log" (the whole log as
     the library holds it), "runner": {...}, "checks": <number of checks passed>,
     "functions_declared": <the header's function count>}
The first failed check exits with status 1 and a message saying what was expected and what
happened.

Ownership conventions used here (they matter: ctypes would silently leak otherwise):
  * borrowed `const char *` getters: restype c_char_p (ctypes copies into bytes; nothing to free);
  * `char **out` out-parameters: POINTER(POINTER(c_char)), read with ctypes.string_at() and then
    released with glr_string_free(), never converted automatically;
  * handles: pointers to opaque Structures, so that passing a job where a runner is expected is a
    ctypes.ArgumentError instead of undefined behaviour.
"""

import argparse
import ctypes
import importlib.util
import json
import os
import re
import sys
import tempfile
from ctypes import byref, c_size_t, c_void_p


def _load_c_api():
    """The bindings' table of the C API (bindings/python/gitlab_runner_api/_c_api.py: constants,
    handle types, every function's restype/argtypes), loaded by its path: the one list of ctypes
    signatures. Only that table: this script calls the raw C functions itself, not the bindings."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                        "bindings", "python", "gitlab_runner_api", "_c_api.py")
    spec = importlib.util.spec_from_file_location("glr_c_api", os.path.normpath(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


C_API = _load_c_api()
ABI_VERSION = C_API.ABI_VERSION
SIGNATURES = C_API.SIGNATURES
RunnerP, JobP, OptionsP, ArtifactsP = C_API.RunnerP, C_API.JobP, C_API.OptionsP, C_API.ArtifactsP
OwnedStr = C_API.OwnedStr  # a char* the library hands out: must go back through glr_string_free

GLR_OK = C_API.GLR_OK
GLR_ERR_NULL_ARGUMENT = C_API.GLR_ERR_NULL_ARGUMENT
GLR_ERR_INVALID_ARGUMENT = C_API.GLR_ERR_INVALID_ARGUMENT
GLR_ERR_INVALID_UTF8 = C_API.GLR_ERR_INVALID_UTF8
GLR_ERR_AUTH = C_API.GLR_ERR_AUTH
GLR_ERR_ALREADY_FINISHED = C_API.GLR_ERR_ALREADY_FINISHED
GLR_ERR_PARSE = C_API.GLR_ERR_PARSE
GLR_ERR_IO = C_API.GLR_ERR_IO
GLR_ERR_NOT_OWNER = C_API.GLR_ERR_NOT_OWNER
ALL_STATUSES = [
    C_API.GLR_OK, C_API.GLR_ERR_NULL_ARGUMENT, C_API.GLR_ERR_INVALID_ARGUMENT, C_API.GLR_ERR_INVALID_UTF8,
    C_API.GLR_ERR_AUTH, C_API.GLR_ERR_JOB_CANCELED, C_API.GLR_ERR_ALREADY_FINISHED, C_API.GLR_ERR_NETWORK,
    C_API.GLR_ERR_HTTP, C_API.GLR_ERR_PARSE, C_API.GLR_ERR_IO, C_API.GLR_ERR_NOT_FOUND, C_API.GLR_ERR_NOT_OWNER,
    C_API.GLR_ERR_TIMEOUT, C_API.GLR_ERR_INTERRUPTED, C_API.GLR_ERR_PANIC,
]
FAILURE_REASONS = [0, 1, 2, 3, 4, 5, 6, 8, 31, 32, 33]
GLR_FAILURE_SCRIPT = 1

GLR_JOB_RUNNING = 0
GLR_JOB_SUCCESS = 1

GLR_VAR_PUBLIC = C_API.GLR_VAR_PUBLIC
GLR_VAR_MASKED = C_API.GLR_VAR_MASKED

# Tags the runner registers with (the Rust test queues its job with exactly these tags).
RUNNER_TAGS = ["python", "ctypes"]
RUNNER_DESCRIPTION = "Python ctypes runner \u2014 caf\u00e9"  # non-ASCII on purpose
RUNNER_NAME = "python-ctypes-test"
RUNNER_VERSION = "0.0.1-test"
RUNNER_MAX_TIMEOUT = 1800

# The log, appended through two handles. The UTF-8 text of the brief is one whole line.
UTF8_LINE = "caf\u00e9 \u2713 \U0001F600\n"  # "café ✓ 😀"
LINES_FIRST_HANDLE_FLUSHED = ["python ctypes: first line\n", UTF8_LINE]
LINES_FIRST_HANDLE_UNFLUSHED = ["before dumps, not flushed: \u00fcn\u00efc\u00f6d\u00e9\n"]
LINES_SECOND_HANDLE = ["after loads: \u65e5\u672c\u8a9e\n", "last line, then success\n"]


class CheckFailed(Exception):
    pass


class Tester:
    def __init__(self, lib_path):
        self.checks = 0
        try:
            self.lib = ctypes.CDLL(lib_path)
        except OSError as e:
            raise CheckFailed(f"cannot dlopen {lib_path}: {e}")
        for name, (restype, argtypes) in SIGNATURES.items():
            try:
                fn = getattr(self.lib, name)
            except AttributeError:
                raise CheckFailed(f"{lib_path} does not export {name}")
            fn.restype = restype
            fn.argtypes = argtypes

    # ---- helpers ----------------------------------------------------------------------------

    def check(self, cond, message):
        if not cond:
            raise CheckFailed(message)
        self.checks += 1

    def eq(self, what, actual, expected):
        self.check(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")

    def last_error(self):
        """This thread's last error message, read with the snprintf-style protocol."""
        n = self.lib.glr_last_error_message(None, 0)
        buf = ctypes.create_string_buffer(n + 1)
        m = self.lib.glr_last_error_message(buf, n + 1)
        self.eq("glr_last_error_message length, asked twice", m, n)
        return buf.raw[:n].decode("utf-8")

    def status_str(self, status):
        return self.lib.glr_status_str(status).decode("utf-8")

    def ok(self, fname, *args):
        status = getattr(self.lib, fname)(*args)
        if status != GLR_OK:
            raise CheckFailed(
                f"{fname} failed: status {status} ({self.status_str(status)}): {self.last_error()!r}"
            )
        self.checks += 1

    def fails(self, fname, expected, *args, forbidden_in_message=()):
        """Calls fname(*args), expects status `expected` and a non-empty last error message."""
        status = getattr(self.lib, fname)(*args)
        message = self.last_error() if status != GLR_OK else ""
        self.check(
            status == expected,
            f"{fname}: expected status {expected} ({self.status_str(expected)}), got {status} "
            f"({self.status_str(status)}), message {message!r}",
        )
        self.check(message != "", f"{fname} failed with {status} but glr_last_error_message is empty")
        code = self.lib.glr_last_error_code()
        self.eq(f"glr_last_error_code after failed {fname}", code, expected)
        for secret in forbidden_in_message:
            self.check(secret not in message, f"{fname}: the error message contains a token: {message!r}")
        return message

    def take(self, ptr, length=None):
        """Copies a library-owned char* out and frees it with glr_string_free."""
        self.check(bool(ptr), "a string out-parameter was NULL after GLR_OK")
        try:
            return ctypes.string_at(ptr) if length is None else ctypes.string_at(ptr, length)
        finally:
            self.lib.glr_string_free(ptr)

    def owned_string(self, fname, handle):
        out = OwnedStr()
        self.ok(fname, handle, byref(out))
        return self.take(out)

    def job_log(self, job):
        out = OwnedStr()
        length = c_size_t(0xDEAD)
        self.ok("glr_job_log", job, byref(out), byref(length))
        data = self.take(out, length.value)
        # The string is also NUL-terminated: string_at without a length would agree unless the log
        # held a NUL byte, which ours does not.
        return data

    @staticmethod
    def sentinel(ptr_type):
        """A non-NULL pointer value that must survive a failed call (out-params written only on success)."""
        return ctypes.cast(c_void_p(0x5E17), ptr_type)

    @staticmethod
    def addr(ptr):
        return ctypes.cast(ptr, c_void_p).value

    def s(self, raw):
        """Borrowed const char* (already copied by ctypes) -> str, None stays None."""
        return None if raw is None else raw.decode("utf-8")

    # ---- the checks -------------------------------------------------------------------------

    def check_versions_and_statuses(self):
        self.eq("glr_abi_version()", self.lib.glr_abi_version(), ABI_VERSION)
        version = self.lib.glr_version()
        self.check(version is not None and len(version) > 0, f"glr_version() is empty: {version!r}")
        self.eq("glr_last_error_code() before any failure", self.lib.glr_last_error_code(), GLR_OK)
        self.eq("glr_last_error_message(NULL, 0) before any failure", self.lib.glr_last_error_message(None, 0), 0)
        texts = {}
        for status in ALL_STATUSES + [12345, -12345]:
            text = self.lib.glr_status_str(status)
            self.check(text is not None and len(text) > 0, f"glr_status_str({status}) is empty")
            texts[status] = text
        known = [texts[s] for s in ALL_STATUSES]
        self.eq("distinct glr_status_str texts for the known codes", len(set(known)), len(known))
        for reason in FAILURE_REASONS:
            text = self.lib.glr_failure_reason_str(reason)
            self.check(text is not None and len(text) > 0, f"glr_failure_reason_str({reason}) is empty")
        self.eq("glr_failure_reason_str(7) (not a GLR_FAILURE_* value)", self.lib.glr_failure_reason_str(7), None)
        self.eq("glr_failure_reason_str(1)", self.lib.glr_failure_reason_str(GLR_FAILURE_SCRIPT), b"script_failure")
        # the free functions accept NULL
        self.lib.glr_string_free(None)
        self.lib.glr_runner_free(None)
        self.lib.glr_job_free(None)
        self.lib.glr_register_options_free(None)
        self.lib.glr_artifacts_free(None)

    def make_options(self):
        opts = OptionsP()
        self.ok("glr_register_options_new", byref(opts))
        self.check(bool(opts), "glr_register_options_new gave NULL")
        self.fails("glr_register_options_new", GLR_ERR_NULL_ARGUMENT, None)
        self.ok("glr_register_options_set_description", opts, RUNNER_DESCRIPTION.encode())
        self.ok("glr_register_options_set_maintenance_note", opts, b"made by tests/python/test_ctypes.py")
        self.ok("glr_register_options_set_name", opts, RUNNER_NAME.encode())
        self.ok("glr_register_options_set_version", opts, RUNNER_VERSION.encode())
        self.ok("glr_register_options_set_platform", opts, b"linux")
        self.ok("glr_register_options_set_architecture", opts, b"amd64")
        self.ok("glr_register_options_set_executor", opts, b"custom")
        self.ok("glr_register_options_set_access_level", opts, b"not_protected")
        self.ok("glr_register_options_set_locked", opts, 1)
        self.ok("glr_register_options_set_run_untagged", opts, 1)
        self.ok("glr_register_options_set_maximum_timeout", opts, RUNNER_MAX_TIMEOUT)
        for tag in RUNNER_TAGS:
            self.ok("glr_register_options_add_tag", opts, tag.encode())
        # error paths of the setters; none of them may change the options
        self.fails("glr_register_options_set_description", GLR_ERR_NULL_ARGUMENT, None, b"x")
        self.fails("glr_register_options_add_tag", GLR_ERR_NULL_ARGUMENT, opts, None)
        self.fails("glr_register_options_set_description", GLR_ERR_INVALID_UTF8, opts, b"bad \xff\xfe utf-8")
        self.fails("glr_register_options_add_tag", GLR_ERR_INVALID_UTF8, opts, b"\xc3\x28")
        self.fails("glr_register_options_add_tag", GLR_ERR_INVALID_ARGUMENT, opts, b"a,b")
        self.fails("glr_register_options_set_access_level", GLR_ERR_INVALID_ARGUMENT, opts, b"everything")
        self.fails("glr_register_options_set_locked", GLR_ERR_INVALID_ARGUMENT, opts, 2)
        self.fails("glr_register_options_set_maximum_timeout", GLR_ERR_INVALID_ARGUMENT, opts, -1)
        return opts

    def register(self, url, token, opts):
        bad_token = "glrt-not-a-real-token-" + "x" * 12
        out = self.sentinel(RunnerP)
        self.fails("glr_runner_register", GLR_ERR_AUTH, url.encode(), bad_token.encode(), opts, byref(out),
                   forbidden_in_message=(bad_token,))
        self.eq("glr_runner_register out-param after GLR_ERR_AUTH (must be untouched)", self.addr(out), 0x5E17)
        self.fails("glr_runner_register", GLR_ERR_NULL_ARGUMENT, None, token.encode(), opts, byref(out))
        self.fails("glr_runner_register", GLR_ERR_NULL_ARGUMENT, url.encode(), None, opts, byref(out))
        self.fails("glr_runner_register", GLR_ERR_NULL_ARGUMENT, url.encode(), token.encode(), opts, None)
        self.fails("glr_runner_register", GLR_ERR_INVALID_UTF8, url.encode(), b"\xff" + token.encode(), opts,
                   byref(out))
        self.eq("glr_runner_register out-param after failures (must be untouched)", self.addr(out), 0x5E17)

        runner = RunnerP()
        self.ok("glr_runner_register", url.encode(), token.encode(), opts, byref(runner))
        self.check(bool(runner), "glr_runner_register returned GLR_OK and a NULL runner")
        return runner

    def runner_props(self, runner):
        L = self.lib
        return {
            "id": L.glr_runner_id(runner),
            "api_url": self.s(L.glr_runner_api_url(runner)),
            "token": self.s(L.glr_runner_token(runner)),
            "system_id": self.s(L.glr_runner_system_id(runner)),
            "description": self.s(L.glr_runner_description(runner)),
            "name": self.s(L.glr_runner_name(runner)),
            "version": self.s(L.glr_runner_version(runner)),
            "revision": self.s(L.glr_runner_revision(runner)),
            "platform": self.s(L.glr_runner_platform(runner)),
            "architecture": self.s(L.glr_runner_architecture(runner)),
            "executor": self.s(L.glr_runner_executor(runner)),
            "access_level": self.s(L.glr_runner_access_level(runner)),
            "locked": L.glr_runner_locked(runner),
            "active": L.glr_runner_active(runner),
            "run_untagged": L.glr_runner_run_untagged(runner),
            "maximum_timeout": L.glr_runner_maximum_timeout(runner),
            "tags": [self.s(L.glr_runner_tag(runner, i)) for i in range(L.glr_runner_tag_count(runner))],
        }

    def check_runner(self, runner, url):
        p = self.runner_props(runner)
        self.check(p["id"] > 0, f"glr_runner_id: expected > 0, got {p['id']}")
        self.check(p["api_url"] is not None and p["api_url"].rstrip("/") == url.rstrip("/"),
                   f"glr_runner_api_url: expected {url!r}, got {p['api_url']!r}")
        self.check(p["token"], f"glr_runner_token is empty: {p['token']!r}")
        self.check(p["system_id"], f"glr_runner_system_id is empty: {p['system_id']!r}")
        self.eq("glr_runner_description", p["description"], RUNNER_DESCRIPTION)
        self.eq("glr_runner_name", p["name"], RUNNER_NAME)
        self.eq("glr_runner_version", p["version"], RUNNER_VERSION)
        self.eq("glr_runner_platform", p["platform"], "linux")
        self.eq("glr_runner_architecture", p["architecture"], "amd64")
        self.eq("glr_runner_executor", p["executor"], "custom")
        self.eq("glr_runner_access_level", p["access_level"], "not_protected")
        self.eq("glr_runner_locked", p["locked"], 1)
        self.eq("glr_runner_run_untagged", p["run_untagged"], 1)
        self.check(p["active"] in (1, -1), f"glr_runner_active: expected 1 (or -1 unknown), got {p['active']}")
        self.eq("glr_runner_maximum_timeout", p["maximum_timeout"], RUNNER_MAX_TIMEOUT)
        self.eq("glr_runner_tags", sorted(p["tags"]), sorted(RUNNER_TAGS))
        n = self.lib.glr_runner_tag_count(runner)
        self.eq("glr_runner_tag(out of range)", self.lib.glr_runner_tag(runner, n), None)
        # getters on NULL give their documented defaults
        self.eq("glr_runner_id(NULL)", self.lib.glr_runner_id(None), 0)
        self.eq("glr_job_id(NULL)", self.lib.glr_job_id(None), 0)
        self.eq("glr_runner_token(NULL)", self.lib.glr_runner_token(None), None)
        self.eq("glr_runner_tag_count(NULL)", self.lib.glr_runner_tag_count(None), 0)
        return p

    def runner_persistence(self, runner, props, tmpdir):
        L = self.lib
        out = OwnedStr()
        self.fails("glr_runner_dumps", GLR_ERR_NULL_ARGUMENT, None, byref(out))
        self.fails("glr_runner_dumps", GLR_ERR_NULL_ARGUMENT, runner, None)
        data = self.owned_string("glr_runner_dumps", runner)
        try:
            json.loads(data.decode("utf-8"))
        except ValueError as e:
            raise CheckFailed(f"glr_runner_dumps output is not JSON ({e}): {data[:200]!r}")
        self.checks += 1

        loaded = RunnerP()
        self.ok("glr_runner_loads", data, byref(loaded))
        self.eq("runner properties after glr_runner_dumps -> glr_runner_loads", self.runner_props(loaded), props)
        self.ok("glr_runner_check_auth", loaded)  # the loaded runner works

        bad = self.sentinel(RunnerP)
        self.fails("glr_runner_loads", GLR_ERR_NULL_ARGUMENT, None, byref(bad))
        self.fails("glr_runner_loads", GLR_ERR_INVALID_UTF8, b'{"version": 2, "\xff": 1}', byref(bad))
        self.fails("glr_runner_loads", GLR_ERR_PARSE, b"this is not a runner", byref(bad))
        self.fails("glr_runner_loads", GLR_ERR_PARSE, b"[]", byref(bad))
        self.eq("glr_runner_loads out-param after failures (must be untouched)", self.addr(bad), 0x5E17)

        path = os.path.join(tmpdir, "runner \u00e9.json").encode()
        self.ok("glr_runner_dump", runner, path)
        mode = os.stat(path).st_mode & 0o777
        self.eq("mode of the glr_runner_dump file (it holds the token)", oct(mode), oct(0o600))
        from_file = RunnerP()
        self.ok("glr_runner_load", path, byref(from_file))
        self.eq("runner properties after glr_runner_dump -> glr_runner_load", self.runner_props(from_file), props)
        self.fails("glr_runner_load", GLR_ERR_IO, os.path.join(tmpdir, "missing.json").encode(), byref(bad))
        L.glr_runner_free(from_file)
        L.glr_runner_free(loaded)

    def request_job(self, runner, attempts=30):
        self.fails("glr_runner_request_job", GLR_ERR_NULL_ARGUMENT, None, byref(JobP()))
        self.fails("glr_runner_request_job", GLR_ERR_NULL_ARGUMENT, runner, None)
        for attempt in range(1, attempts + 1):
            job = JobP()
            self.ok("glr_runner_request_job", runner, byref(job))
            if job:
                log(f"got a job on attempt {attempt}")
                return job
        raise CheckFailed(f"glr_runner_request_job gave no job in {attempts} attempts (is one queued for tags "
                          f"{RUNNER_TAGS}?)")

    def job_props(self, job):
        L = self.lib
        n = L.glr_job_variable_count(job)
        return {
            "id": L.glr_job_id(job),
            "token": self.s(L.glr_job_token(job)),
            "name": self.s(L.glr_job_name(job)),
            "stage": self.s(L.glr_job_stage(job)),
            "ref": self.s(L.glr_job_ref(job)),
            "script": [self.s(L.glr_job_script_line(job, i)) for i in range(L.glr_job_script_count(job))],
            "variables": [
                (self.s(L.glr_job_variable_key(job, i)), self.s(L.glr_job_variable_value(job, i)),
                 L.glr_job_variable_flags(job, i))
                for i in range(n)
            ],
        }

    def check_job(self, job, expected_id):
        L = self.lib
        p = self.job_props(job)
        if expected_id is not None:
            self.eq("glr_job_id", p["id"], expected_id)
        self.check(p["id"] > 0, f"glr_job_id: expected > 0, got {p['id']}")
        self.check(p["token"], "glr_job_token is empty")
        self.check(p["name"], f"glr_job_name is empty: {p['name']!r}")
        self.eq("glr_job_state of a new job", L.glr_job_state(job), GLR_JOB_RUNNING)
        self.check(len(p["script"]) >= 1 and all(p["script"]), f"glr_job_script_line: {p['script']!r}")
        self.eq("glr_job_script_line(out of range)", L.glr_job_script_line(job, len(p["script"])), None)
        self.check(len(p["variables"]) > 0, "glr_job_variable_count is 0")
        self.eq("glr_job_variable(CI_JOB_ID)", self.s(L.glr_job_variable(job, b"CI_JOB_ID")), str(p["id"]))
        self.eq("glr_job_variable(CI_JOB_NAME)", self.s(L.glr_job_variable(job, b"CI_JOB_NAME")), p["name"])
        self.eq("glr_job_variable(no such key)", L.glr_job_variable(job, b"NO_SUCH_VARIABLE_HERE"), None)
        self.eq("glr_job_variable_key(out of range)", L.glr_job_variable_key(job, len(p["variables"])), None)
        for key, value, _flags in p["variables"]:
            self.check(key, "a variable has an empty or NULL key")
            self.check(value is not None, f"variable {key} has a NULL value")
        by_key = {}
        for key, value, _ in p["variables"]:
            by_key[key] = value  # the last one wins, as glr_job_variable documents
        for key, value in by_key.items():
            self.eq(f"glr_job_variable({key}) vs. the indexed accessors", self.s(L.glr_job_variable(job, key.encode())),
                    value)

        payload = json.loads(self.owned_string("glr_job_payload", job).decode("utf-8"))
        self.eq("payload id", payload.get("id"), p["id"])
        self.eq("payload job_info.name", payload.get("job_info", {}).get("name"), p["name"])
        script_step = [s for s in payload.get("steps", []) if s.get("name") == "script"]
        self.check(len(script_step) == 1, f"payload has no single script step: {payload.get('steps')!r}")
        self.eq("glr_job_script_line vs. the payload's script step", p["script"], script_step[0]["script"])
        return p

    def append(self, job, text):
        data = text.encode("utf-8")
        self.ok("glr_job_log_append", job, data, len(data))

    def job_cycle(self, runner, expected_id, tmpdir):
        L = self.lib
        job = self.request_job(runner)
        props = self.check_job(job, expected_id)

        # ---- log through the first handle: two lines flushed, one left in the buffer ----
        self.fails("glr_job_log_append", GLR_ERR_NULL_ARGUMENT, None, b"x", 1)
        self.fails("glr_job_log_append", GLR_ERR_NULL_ARGUMENT, job, None, 5)
        self.ok("glr_job_log_append", job, None, 0)  # NULL data with length 0 is allowed
        self.fails("glr_job_log_flush", GLR_ERR_NULL_ARGUMENT, None)
        for line in LINES_FIRST_HANDLE_FLUSHED:
            self.append(job, line)
        self.ok("glr_job_log_flush", job)
        for line in LINES_FIRST_HANDLE_UNFLUSHED:
            self.append(job, line)
        expected_log = "".join(LINES_FIRST_HANDLE_FLUSHED + LINES_FIRST_HANDLE_UNFLUSHED).encode("utf-8")
        self.eq("glr_job_log of the first handle", self.job_log(job), expected_log)
        self.fails("glr_job_log", GLR_ERR_NULL_ARGUMENT, job, None, None)

        # ---- glr_job_dumps: a snapshot, in JSON ----
        self.fails("glr_job_dumps", GLR_ERR_NULL_ARGUMENT, job, None)
        dumped = self.owned_string("glr_job_dumps", job)
        try:
            json.loads(dumped.decode("utf-8"))
        except ValueError as e:
            raise CheckFailed(f"glr_job_dumps output is not JSON ({e})")
        self.checks += 1
        bad = self.sentinel(JobP)
        self.fails("glr_job_loads", GLR_ERR_NULL_ARGUMENT, None, byref(bad))
        self.fails("glr_job_loads", GLR_ERR_INVALID_UTF8, b'{"version": 2, "x": "\xed\xa0\x80"}', byref(bad))
        self.fails("glr_job_loads", GLR_ERR_PARSE, b'{"not": "a job"}', byref(bad))
        self.eq("glr_job_loads out-param after failures (must be untouched)", self.addr(bad), 0x5E17)

        # ---- glr_job_hand_over_dumps: the first handle becomes a watcher ----
        self.fails("glr_job_hand_over_dumps", GLR_ERR_NULL_ARGUMENT, None, byref(OwnedStr()))
        self.fails("glr_job_hand_over_dumps", GLR_ERR_NULL_ARGUMENT, job, None)
        self.eq("glr_job_is_watcher(NULL)", L.glr_job_is_watcher(None), -1)
        self.eq("glr_job_is_watcher of the job taken", L.glr_job_is_watcher(job), 0)
        self.fails("glr_job_set_keepalive_interval", GLR_ERR_INVALID_ARGUMENT, job, 0)
        self.fails("glr_job_set_keepalive_interval", GLR_ERR_INVALID_ARGUMENT, job, 2701)
        self.ok("glr_job_set_keepalive_interval", job, 60)
        self.fails("glr_job_set_call_timeout", GLR_ERR_INVALID_ARGUMENT, job, -1)
        self.ok("glr_job_set_call_timeout", job, 0)
        handed = self.owned_string("glr_job_hand_over_dumps", job)
        self.eq("glr_job_is_watcher after glr_job_hand_over_dumps", L.glr_job_is_watcher(job), 1)
        self.fails("glr_job_log_append", GLR_ERR_NOT_OWNER, job, b"refused\n", 8)
        self.fails("glr_job_log_flush", GLR_ERR_NOT_OWNER, job)
        self.fails("glr_job_dumps", GLR_ERR_NOT_OWNER, job, byref(OwnedStr()))
        self.fails("glr_job_hand_over_dumps", GLR_ERR_NOT_OWNER, job, byref(OwnedStr()))
        self.eq("glr_job_log of the watcher (as handed over)", self.job_log(job), expected_log)
        watcher = JobP()
        self.fails("glr_job_watch_loads", GLR_ERR_NULL_ARGUMENT, None, byref(watcher))
        self.fails("glr_job_watch_loads", GLR_ERR_PARSE, b'{"not": "a job"}', byref(watcher))
        self.ok("glr_job_watch_loads", handed, byref(watcher))
        self.eq("glr_job_is_watcher of glr_job_watch_loads' job", L.glr_job_is_watcher(watcher), 1)
        self.eq("glr_job_id of the watcher", L.glr_job_id(watcher), props["id"])
        L.glr_job_free(watcher)

        loaded = JobP()
        self.ok("glr_job_loads", handed, byref(loaded))
        self.eq("glr_job_is_watcher of the new owner", L.glr_job_is_watcher(loaded), 0)
        self.check(bool(loaded) and self.addr(loaded) != self.addr(job), "glr_job_loads did not give a new handle")
        self.eq("job properties after glr_job_dumps -> glr_job_loads", self.job_props(loaded), props)
        self.eq("glr_job_state of the loaded job", L.glr_job_state(loaded), GLR_JOB_RUNNING)
        self.eq("glr_job_log of the loaded job", self.job_log(loaded), expected_log)

        # ---- more log through the loaded handle, then success there ----
        for line in LINES_SECOND_HANDLE:
            self.append(loaded, line)
        all_lines = LINES_FIRST_HANDLE_FLUSHED + LINES_FIRST_HANDLE_UNFLUSHED + LINES_SECOND_HANDLE
        expected_log = "".join(all_lines).encode("utf-8")
        self.eq("glr_job_log of the loaded job after appending", self.job_log(loaded), expected_log)
        self.fails("glr_job_set_success", GLR_ERR_NULL_ARGUMENT, None, None)
        self.ok("glr_job_set_success", loaded, None)
        self.eq("glr_job_state after glr_job_set_success", L.glr_job_state(loaded), GLR_JOB_SUCCESS)
        self.fails("glr_job_set_success", GLR_ERR_ALREADY_FINISHED, loaded, None)
        self.fails("glr_job_set_failed", GLR_ERR_ALREADY_FINISHED, loaded, GLR_FAILURE_SCRIPT, None)
        self.fails("glr_job_log_append", GLR_ERR_ALREADY_FINISHED, loaded, b"too late\n", 9)
        final_log = self.job_log(loaded)
        self.eq("glr_job_log after the failed late append", final_log, expected_log)

        # An unknown failure reason is rejected before anything is sent (the first handle still
        # believes the job is running; it must not report anything).
        self.fails("glr_job_set_failed", GLR_ERR_INVALID_ARGUMENT, job, 7777, None)

        # ---- the finished job survives dump -> load to a file ----
        path = os.path.join(tmpdir, "job.json").encode()
        self.ok("glr_job_dump", loaded, path)
        self.eq("mode of the glr_job_dump file", oct(os.stat(path).st_mode & 0o777), oct(0o600))
        from_file = JobP()
        self.ok("glr_job_load", path, byref(from_file))
        self.eq("glr_job_id after glr_job_dump -> glr_job_load", L.glr_job_id(from_file), props["id"])
        self.eq("glr_job_state after glr_job_dump -> glr_job_load", L.glr_job_state(from_file), GLR_JOB_SUCCESS)
        self.eq("glr_job_log after glr_job_dump -> glr_job_load", self.job_log(from_file), expected_log)
        self.fails("glr_job_set_success", GLR_ERR_ALREADY_FINISHED, from_file, None)

        self.fails("glr_shutdown", GLR_ERR_INVALID_ARGUMENT, -1)
        self.ok("glr_shutdown", 30000)  # nothing is left to upload

        L.glr_job_free(from_file)
        L.glr_job_free(loaded)
        L.glr_job_free(job)
        return props, all_lines, final_log

    def run(self, args):
        L = self.lib
        self.check_versions_and_statuses()
        # a NULL argument, and the message it leaves
        message = self.fails("glr_runner_check_auth", GLR_ERR_NULL_ARGUMENT, None)
        log(f"NULL runner: {message}")
        # the length query and truncation of glr_last_error_message
        full = L.glr_last_error_message(None, 0)
        small = ctypes.create_string_buffer(b"\x7f" * 8, 8)
        self.eq("glr_last_error_message(buf, 8) return value", L.glr_last_error_message(small, 8), full)
        self.check(small.raw.index(b"\x00") <= 7, "glr_last_error_message(buf, 8) did not NUL-terminate")
        self.check(message.encode().startswith(small.value), "truncated error message is not a prefix")

        opts = self.make_options()
        runner = self.register(args.url, args.registration_token, opts)
        L.glr_register_options_free(opts)
        props = self.check_runner(runner, args.url)
        log(f"registered runner {props['id']}")
        self.ok("glr_runner_check_auth", runner)
        self.fails("glr_runner_interrupt", GLR_ERR_NULL_ARGUMENT, None)
        self.ok("glr_runner_interrupt", runner)  # nothing in progress: later calls are not affected
        self.fails("glr_runner_set_call_timeout", GLR_ERR_INVALID_ARGUMENT, runner, -1)
        self.ok("glr_runner_set_call_timeout", runner, 60000)
        self.ok("glr_runner_check_auth", runner)
        self.eq("glr_last_error_code after a success", L.glr_last_error_code(), GLR_OK)
        self.eq("glr_last_error_message after a success", L.glr_last_error_message(None, 0), 0)

        with tempfile.TemporaryDirectory(prefix="glr-python-ctypes-") as tmpdir:
            self.runner_persistence(runner, props, tmpdir)
            job, lines, final_log = self.job_cycle(runner, args.job_id, tmpdir)

        L.glr_runner_free(runner)
        return {
            "job_id": job["id"],
            "runner_id": props["id"],
            "system_id": props["system_id"],
            "job_name": job["name"],
            "stage": job["stage"],
            "ref": job["ref"],
            "script": job["script"],
            "variables": {
                k: v for k, v, flags in job["variables"] if flags & GLR_VAR_PUBLIC and not flags & GLR_VAR_MASKED
            },
            "lines": lines,
            "log": final_log.decode("utf-8"),
            "runner": {k: v for k, v in props.items() if k not in ("token",)},
            "checks": self.checks,
        }


def header_functions(header):
    """The names of the functions `header` declares (a declaration starts a line with its
    return type; doc comments and macros do not)."""
    with open(header, encoding="utf-8") as f:
        return set(re.findall(r"^[a-z][^(\n]*?\b(glr_[a-z0-9_]+)\(", f.read(), re.M))


def check_declarations(header):
    """Every function of the header has its ctypes signature in _c_api.SIGNATURES (which the
    bindings declare at import), and the table names no function the header lacks. Returns
    how many functions the header declares."""
    functions = header_functions(header)
    if len(functions) < 100:
        raise CheckFailed(f"{header}: only {len(functions)} functions found; is it the library's header?")
    missing = sorted(functions - set(SIGNATURES))
    if missing:
        raise CheckFailed(f"no ctypes signature in bindings/python/gitlab_runner_api/_c_api.py for: {missing}")
    unknown = sorted(set(SIGNATURES) - functions)
    if unknown:
        raise CheckFailed(f"_c_api.py declares functions {header} does not have: {unknown}")
    return len(functions)


def log(message):
    print(f"test_ctypes: {message}", file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lib", required=True, help="path to libgitlab_runner_api.so")
    parser.add_argument("--url", required=True, help="GitLab (or glr-testserver) base URL")
    parser.add_argument("--registration-token", required=True, help="a valid registration token")
    parser.add_argument("--job-id", type=int, default=None, help="the id of the job the runner must get")
    parser.add_argument("--header", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                                         os.pardir, "include", "gitlab_runner_api.h"),
                        help="the C header whose every function must have a ctypes signature")
    args = parser.parse_args()
    try:
        declared = check_declarations(args.header)
        log(f"all {declared} functions of the header have a ctypes signature")
        tester = Tester(args.lib)
        summary = tester.run(args)
        summary["functions_declared"] = declared
    except CheckFailed as e:
        log(f"FAILED: {e}")
        return 1
    log(f"all {summary['checks']} checks passed")
    print(json.dumps(summary, ensure_ascii=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
