"""Job, its log (JobLog) and its variables (EnvVar): the Python package's API."""

import json
import math
import re
from collections import OrderedDict

from . import _lib, failure_reasons
from ._handle import Handle
from ._lib import byref, lib
from .artifacts import Artifacts

VALID_STATES = ["running", "success", "failed"]


class EnvVar(object):
    """One variable of a job: `key`, `value`, `is_public`, `is_masked` (and `is_file`,
    `is_raw`, which GitLab added after the Python package)."""

    def __init__(self, key="unknown", value="", public=False, masked=True, **kwargs):
        if not isinstance(key, str) or not re.match(r"^[a-zA-Z0-9_]+$", key):
            raise ValueError("Environment variables must match /^[a-zA-Z0-9_]+$/")
        for prop, flag in (("public", public), ("masked", masked)):
            if not isinstance(flag, bool):
                raise ValueError('Property "%s" of EnvVar must be of type bool' % prop)
        self._key = key
        self._value = value
        self._public = public
        self._masked = masked
        self._file = bool(kwargs.get("file", False))
        self._raw = bool(kwargs.get("raw", False))

    @classmethod
    def _from_flags(cls, key, value, flags):
        var = cls.__new__(cls)
        var._key = key
        var._value = value
        var._public = bool(flags & _lib.GLR_VAR_PUBLIC)
        var._masked = bool(flags & _lib.GLR_VAR_MASKED)
        var._file = bool(flags & _lib.GLR_VAR_FILE)
        var._raw = bool(flags & _lib.GLR_VAR_RAW)
        return var

    @property
    def key(self):
        return self._key

    @property
    def value(self):
        return self._value

    @property
    def is_public(self):
        return self._public

    @property
    def is_masked(self):
        return self._masked

    @property
    def is_file(self):
        """A file variable: write the value to a file and export the file's path."""
        return self._file

    @property
    def is_raw(self):
        """Not to be expanded."""
        return self._raw

    def bash(self):
        """`export KEY="value"` (no escaping, as in the Python package)."""
        return 'export {key}="{value}"'.format(key=self.key, value=self.value)

    def __repr__(self):
        if self.is_public and not self.is_masked:
            return "EnvVar(key=%s, value=%s)" % (self.key, self.value)
        return "EnvVar(key=%s)" % self.key

    def __eq__(self, other):
        if not isinstance(other, EnvVar):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None


class JobLog(object):
    """The job's log, reached as `job.log`: ``job.log += text`` appends, ``str(job.log)`` is the
    whole text. Appending never waits for the network: the library uploads in the background
    (promptly, then at GitLab's interval) and before the job is reported; flush() uploads now."""

    def __init__(self, job):
        self._job = job

    def __iadd__(self, other):
        if isinstance(other, str):
            data = other.encode("utf-8", "surrogatepass")  # lone surrogates become U+FFFD
        elif isinstance(other, (bytes, bytearray, memoryview)):
            data = bytes(other)  # any bytes; invalid UTF-8 becomes U+FFFD
        else:
            raise TypeError("can only append str (or bytes) to the job log, not %s" % type(other).__name__)
        if data:
            _lib.call("glr_job_log_append", self._job._handle(), data, len(data))
        return self

    def __add__(self, other):
        raise AttributeError("+ is not supported, use += instead")

    def flush(self):
        """Uploads everything appended and returns when GitLab has all of it."""
        _lib.call("glr_job_log_flush", self._job._handle())

    def __str__(self):
        out = _lib.OwnedStr()
        length = _lib.c_size_t()
        _lib.call("glr_job_log", self._job._handle(), byref(out), byref(length))
        return _lib.take(out, length.value) or ""

    def __len__(self):
        return len(str(self))

    def __eq__(self, other):
        if isinstance(other, JobLog):
            return str(self) == str(other)
        if isinstance(other, str):
            return str(self) == other
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return "JobLog(%r)" % str(self)


class Job(Handle):
    """A job taken from GitLab: Runner.request_job(), Job.load(), Job.loads(), or Job(runner,
    payload). The handle is freed by close() or garbage collection."""

    _free_fn = "glr_job_free"

    def __init__(self, runner, job_info, fail_on_error=True, state="running", log=None):
        """As in the Python package: a job of `runner` from GitLab's payload (a dict), offline.
        `log` is text GitLab already has (None: a new log starting with the "Running with"
        line). `fail_on_error` is accepted for compatibility; the library checks the payload."""
        if state not in VALID_STATES:
            raise ValueError("Invalid state given " + str(state))
        text = "" if log is None else log
        raw = _lib.JobP()
        data = json.dumps([1, runner.dumps(), job_info, state, text])
        _lib.call("glr_job_loads", _lib.c_str(data, "job_info"), byref(raw))
        self._ptr = raw
        if log is None:
            self._start_log()

    def close(self):
        """Uploads the log text GitLab does not have yet (best effort, while the job runs: the
        Python package uploaded on every `+=`), then frees the C handle. Also run when the
        object is garbage-collected. A watcher has no text to upload."""
        ptr = self._ptr
        if ptr and lib.glr_job_state(ptr) in (0, 3) and lib.glr_job_is_watcher(ptr) == 0:  # running, canceling
            try:
                lib.glr_job_log_flush(ptr)
            except Exception:
                pass
        super().close()

    def _start_log(self):
        """The Python package's first log line."""
        self.log += "Running with gitlab_runner_api %s\n" % _lib.version()

    # ---- persistence ----------------------------------------------------------------------

    @classmethod
    def loads(cls, data):
        """A job from dumps() output, or from the Python package's format. Offline: the log
        continues where GitLab's copy ends."""
        raw = _lib.JobP()
        _lib.call("glr_job_loads", _lib.c_str(data, "data"), byref(raw))
        return cls._adopt(raw)

    @classmethod
    def load(cls, filename):
        """A job from a file written by dump() (or by the Python package). Offline."""
        raw = _lib.JobP()
        _lib.call("glr_job_load", _lib.c_str(filename, "filename"), byref(raw))
        return cls._adopt(raw)

    def dumps(self):
        """The job as a string for Job.loads(): runner, payload, state and log (with how much of
        it GitLab has). It holds tokens and secret variables: keep it secret."""
        out = _lib.OwnedStr()
        _lib.call("glr_job_dumps", self._handle(), byref(out))
        return _lib.take(out)

    def dump(self, filename):
        """Writes dumps() to `filename`, atomically and with mode 0600."""
        _lib.call("glr_job_dump", self._handle(), _lib.c_str(filename, "filename"))

    # ---- one writer per job (not in the Python package) ------------------------------------

    def hand_over_dumps(self):
        """Hands the job over to whoever loads the returned string with Job.loads(): waits for
        an upload in flight to get its answer, serialises the job, and makes this object a
        watcher (see `is_watcher`). The loader sends every byte GitLab did not acknowledge to
        this object, exactly once. On failure nothing changed: this object still writes the log.
        dumps() instead is a snapshot: with it, two objects would write the log."""
        out = _lib.OwnedStr()
        _lib.call("glr_job_hand_over_dumps", self._handle(), byref(out))
        return _lib.take(out)

    def hand_over_dump(self, filename):
        """As hand_over_dumps(), writing the dump to `filename` (atomically, mode 0600) for
        Job.load(). When the file cannot be written, this object still writes the log."""
        _lib.call("glr_job_hand_over_dump", self._handle(), _lib.c_str(filename, "filename"))

    @classmethod
    def watch_loads(cls, data):
        """A watcher of a handed-over job (from hand_over_dumps() output), offline: it keeps the
        job alive at GitLab and learns cancels while the process that loads the same dump with
        Job.loads() writes the log."""
        raw = _lib.JobP()
        _lib.call("glr_job_watch_loads", _lib.c_str(data, "data"), byref(raw))
        return cls._adopt(raw)

    @classmethod
    def watch_load(cls, filename):
        """As watch_loads(), from a file written by hand_over_dump()."""
        raw = _lib.JobP()
        _lib.call("glr_job_watch_load", _lib.c_str(filename, "filename"), byref(raw))
        return cls._adopt(raw)

    @property
    def is_watcher(self):
        """True once this object no longer writes the job's log (handed over, loaded with
        watch_load(s), or a fork()ed child's copy of its parent's job): appending to the log
        raises NotOwnerError; auth(), set_success() and set_failed() still work."""
        return lib.glr_job_is_watcher(self._handle()) == 1

    def set_keepalive_interval(self, seconds):
        """How long the job may go without an exchange with GitLab before the background sends a
        keep-alive: whole seconds from 1 to 2700 (default 30)."""
        value = _lib.seconds_value(seconds, "seconds")
        if value != int(value):
            raise ValueError("the keep-alive interval is whole seconds, not %r" % (seconds,))
        _lib.call("glr_job_set_keepalive_interval", self._handle(), int(value))

    def set_call_timeout(self, seconds):
        """Bounds each network call of this job from now on (log.flush(), auth(), set_success(),
        set_failed() with their uploads, download_artifacts()): past `seconds` (a float), it
        raises CallTimeoutError. None or 0 restores the default, 5 minutes."""
        _lib.call("glr_job_set_call_timeout", self._handle(), _lib.milliseconds(seconds, "seconds"))

    # ---- GitLab's clocks (not in the Python package) ----------------------------------------

    @property
    def timeout(self):
        """Seconds GitLab gives the job (the job's `timeout:`, within the runner's
        maximum_timeout), or None when GitLab did not say. Tell a batch system this wall time."""
        value = lib.glr_job_timeout(self._handle())
        return None if value < 0 else value

    @property
    def deadline(self):
        """When GitLab stops the job, in unix seconds (compare with time.time()): when the runner
        took it plus `timeout`. The job token expires 5 minutes later. None when unknown."""
        value = lib.glr_job_deadline(self._handle())
        return None if value < 0 else value

    @property
    def acknowledged(self):
        """True once GitLab acknowledged that this runner took the job (the library sends that at
        once and retries in the background; GitLab gives a job it has not seen acknowledged
        within 2 minutes to another runner). None in a fork()ed child's copy of the job."""
        value = lib.glr_job_acknowledged(self._handle())
        return None if value < 0 else bool(value)

    # ---- learning state changes without callbacks (not in the Python package) ------------------

    def wait_state(self, known, timeout=None):
        """Waits until `state` differs from `known` (a state name, e.g. "running") and returns the
        state then; after `timeout` seconds (None: no limit, 0: do not wait) it returns `known`.
        For a thread of your own that waits for GitLab's cancel; the GIL is released meanwhile.
        Without a timeout the wait cannot be ended by Ctrl-C (it is a C call): loop with one.
        Something must talk to GitLab for a cancel to arrive: log uploads, the keep-alive
        (set_keepalive_interval()), auth()."""
        codes = {name: code for code, name in _lib.GLR_JOB_STATES.items()}
        if known not in codes:
            raise ValueError("known must be one of %s, not %r" % (sorted(codes), known))
        if timeout is None:
            milliseconds = -1
        else:
            seconds = _lib.seconds_value(timeout, "timeout")
            if seconds < 0:
                raise ValueError("timeout must not be negative (None waits without a limit)")
            milliseconds = min(math.ceil(seconds * 1000), 2**63 - 1)
        state = _lib.c_int32()
        _lib.call("glr_job_wait_state", self._handle(), codes[known], milliseconds, byref(state))
        return _lib.GLR_JOB_STATES.get(state.value, "unknown")

    def event_fd(self):
        """A file descriptor that becomes readable after every change of `state` (a cancel, the
        end): an eventfd for select/poll or an event loop. Reset it by reading its 8-byte counter
        (os.read(fd, 8)), then read `state`. It belongs to the job: never close it; it is closed
        with the job, so remove it from your event loop before close(). In asyncio:

            fd = job.event_fd()
            changed = asyncio.Event()

            def on_change():
                os.read(fd, 8)   # else the loop calls this again at once
                changed.set()

            loop.add_reader(fd, on_change)
            ...                  # await changed.wait(), then look at job.state, changed.clear()
            loop.remove_reader(fd)

        As with wait_state(), a cancel arrives with the next exchange with GitLab."""
        fd = _lib.c_int32()
        _lib.call("glr_job_event_fd", self._handle(), byref(fd))
        return fd.value

    @property
    def last_error_message(self):
        """The message of the last failed call on this job, whichever thread made it ("" when
        none failed). The exceptions carry the same text; this is for reading it elsewhere."""
        return _lib.handle_error_message(self._handle())

    # ---- talking to GitLab ----------------------------------------------------------------

    def auth(self):
        """Keep-alive and cancel check. Raises JobCancelledException when GitLab stopped the
        job; a graceful cancel sets `state` to "canceling" instead (finish the job then)."""
        _lib.call("glr_job_auth", self._handle())

    def set_success(self, artifacts=None):
        """Reports the job successful: uploads `artifacts` (an Artifacts, or None), the rest of
        the log, then the final state. AlreadyFinishedExcpetion if it was reported before."""
        _lib.call("glr_job_set_success", self._handle(), _artifacts_ptr(artifacts))

    def set_failed(self, failure_reason=None, artifacts=None, exit_code=None):
        """Reports the job failed with `failure_reason` (a failure_reasons instance, default
        UnknownFailure()) and, optionally, the script's `exit_code` (not in the Python package)."""
        if failure_reason is None:
            failure_reason = failure_reasons.UnknownFailure()
        if not isinstance(failure_reason, failure_reasons._FailureReason):
            raise ValueError("failure_reason must be one of the classes of gitlab_runner_api.failure_reasons")
        ptr = self._handle()
        if exit_code is not None:
            _lib.call("glr_job_set_exit_code", ptr, int(exit_code))
        _lib.call("glr_job_set_failed", ptr, failure_reason.code, _artifacts_ptr(artifacts))

    def get_registry_credential(self, image_name):
        """The registry credential for pulling `image_name`, as a dict (type, url, username,
        password): of the job's registry credentials whose URL prefixes the image, the
        longest. KeyError when there is none."""
        user, password = _lib.OwnedStr(), _lib.OwnedStr()
        try:
            _lib.call(
                "glr_job_get_registry_credential",
                self._handle(),
                _lib.c_str(image_name, "image_name"),
                byref(user),
                byref(password),
            )
        except KeyError as e:
            raise type(e)(
                "No registry credential found for " + image_name, status=e.status, function=e.function
            ) from None
        credential = {"type": "registry", "username": _lib.take(user), "password": _lib.take(password)}
        matches = [
            c
            for c in self.payload.get("credentials") or []
            if isinstance(c, dict)
            and c.get("type") == "registry"
            and isinstance(c.get("url"), str)
            and image_name.startswith(c["url"])
            and c.get("username") == credential["username"]
            and c.get("password") == credential["password"]
        ]
        if matches:
            best = max(matches, key=lambda c: len(c["url"]))
            credential = dict(best, **credential)
        return credential

    @property
    def dependencies(self):
        """The jobs whose artifacts this one may download (not in the Python package): a list of
        dicts with id, name, artifacts_filename and artifacts_size (None when unknown)."""
        ptr = self._handle()
        result = []
        for i in range(lib.glr_job_dependency_count(ptr)):
            filename = _lib.OwnedStr()
            _lib.call("glr_job_dependency_artifacts_filename", ptr, i, byref(filename))
            size = lib.glr_job_dependency_artifacts_size(ptr, i)
            result.append(
                {
                    "id": lib.glr_job_dependency_id(ptr, i),
                    "name": _lib.py_str(lib.glr_job_dependency_name(ptr, i)),
                    "artifacts_filename": _lib.take(filename),
                    "artifacts_size": None if size < 0 else size,
                }
            )
        return result

    def download_artifacts(self, index, dest_path):
        """Downloads the artifacts archive of dependency `index` (see `dependencies`) to
        `dest_path` (not in the Python package); extract it with extract_artifacts()."""
        _lib.call("glr_job_download_artifacts", self._handle(), index, _lib.c_str(dest_path, "dest_path"))

    # ---- properties -----------------------------------------------------------------------

    @property
    def log(self):
        """The job log: ``job.log += "text"``, ``str(job.log)``, ``job.log.flush()``."""
        self._handle()
        return JobLog(self)

    @log.setter
    def log(self, value):
        # `job.log += x` assigns the log back to the job: only that is allowed.
        if not (isinstance(value, JobLog) and value._job is self):
            raise TypeError("Expected this job's JobLog but got " + type(value).__name__)

    @property
    def state(self):
        """"running", "success", "failed", "canceling" (GitLab asks for a graceful stop) or
        "canceled" (GitLab stopped the job). Read-only: it follows GitLab."""
        return _lib.GLR_JOB_STATES.get(lib.glr_job_state(self._handle()), "unknown")

    @property
    def payload(self):
        """The job exactly as GitLab sent it (a dict), for everything without a property."""
        out = _lib.OwnedStr()
        _lib.call("glr_job_payload", self._handle(), byref(out))
        return json.loads(_lib.take(out))

    _job_info = payload  # the Python package's name for it

    def _string(self, getter):
        return _lib.py_str(getattr(lib, getter)(self._handle()))

    @property
    def id(self):
        return lib.glr_job_id(self._handle())

    @property
    def token(self):
        """The job token (a secret)."""
        return self._string("glr_job_token")

    @property
    def variables(self):
        """The job's variables (EnvVar) in GitLab's order, one per key, then CI_PROJECT_DIR,
        CI_SERVER and CI_DISPOSABLE_ENVIRONMENT as the Python package adds them."""
        ptr = self._handle()
        variables = OrderedDict()
        for i in range(lib.glr_job_variable_count(ptr)):
            key = _lib.py_str(lib.glr_job_variable_key(ptr, i))
            value = _lib.py_str(lib.glr_job_variable_value(ptr, i))
            variables[key] = EnvVar._from_flags(key, value, lib.glr_job_variable_flags(ptr, i))
        internal = [("CI_SERVER", "yes"), ("CI_DISPOSABLE_ENVIRONMENT", "true")]
        if self.project_path is not None:
            internal.insert(0, ("CI_PROJECT_DIR", "/builds/" + self.project_path))
        for key, value in internal:
            variables[key] = EnvVar(key, value, True)
        return list(variables.values())

    @property
    def username(self):
        return self._string("glr_job_username")

    @property
    def project_url(self):
        return self._string("glr_job_project_url")

    @property
    def project_path(self):
        return self._string("glr_job_project_path")

    @property
    def project_name(self):
        return self._string("glr_job_project_name")

    @property
    def ref(self):
        return self._string("glr_job_ref")

    @property
    def is_branch(self):
        """True for a branch, False for a tag, None when GitLab did not say."""
        value = lib.glr_job_is_branch(self._handle())
        return None if value < 0 else bool(value)

    @property
    def repo_url(self):
        """The repository URL (it holds the job token: never log it)."""
        return self._string("glr_job_repo_url")

    @property
    def name(self):
        return self._string("glr_job_name")

    @property
    def stage(self):
        return self._string("glr_job_stage")

    @property
    def job_url(self):
        return self._string("glr_job_job_url")

    @property
    def pipeline_url(self):
        return self._string("glr_job_pipeline_url")

    @property
    def commit_sha(self):
        return self._string("glr_job_commit_sha")

    @property
    def commit_message(self):
        return self._string("glr_job_commit_message")

    @property
    def pipeline_id(self):
        """The pipeline id as a string (as in the Python package)."""
        return self._string("glr_job_pipeline_id")

    @property
    def script(self):
        """The `script` lines (a list of str)."""
        ptr = self._handle()
        return [_lib.py_str(lib.glr_job_script_line(ptr, i)) for i in range(lib.glr_job_script_count(ptr))]

    @property
    def after_script(self):
        """The `after_script` lines, or None when the job has no after_script step."""
        ptr = self._handle()
        count = lib.glr_job_after_script_count(ptr)
        if count == 0:
            steps = self.payload.get("steps") or []
            if not any(isinstance(s, dict) and s.get("name") == "after_script" for s in steps):
                return None
        return [_lib.py_str(lib.glr_job_after_script_line(ptr, i)) for i in range(count)]

    def __repr__(self):
        if self.closed:
            return "Job(closed)"
        return "Job(id=%d, state=%s)" % (self.id, self.state)

    def __eq__(self, other):
        """The same job (payload), in the same state, with the same log text."""
        if not isinstance(other, Job):
            return NotImplemented
        return (self.payload, self.state, str(self.log)) == (other.payload, other.state, str(other.log))

    __hash__ = None


def _artifacts_ptr(artifacts):
    if artifacts is None:
        return None
    if not isinstance(artifacts, Artifacts):
        raise TypeError("artifacts must be a gitlab_runner_api.Artifacts (or None), not %s" % type(artifacts).__name__)
    return artifacts._handle()


__all__ = ["Job", "JobLog", "EnvVar"]
