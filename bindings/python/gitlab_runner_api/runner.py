"""Runner: register, load/save, check the token, request jobs (the Python package's API)."""

import json

from . import _lib
from ._handle import Handle
from ._lib import byref, lib

ACCESS_LEVELS = ["not_protected", "ref_protected"]


def _opt_bool(value):
    return None if value < 0 else bool(value)


class Runner(Handle):
    """A GitLab runner. Create it with Runner.register(), Runner.load(), Runner.loads() or
    Runner.from_token(); the handle is freed by close() or garbage collection."""

    _free_fn = "glr_runner_free"

    def __init__(self, api_url, runner_id, runner_token, data=None):
        """As in the Python package: a runner from its parts (`data` being the registration
        details, e.g. {"info": {}, "locked": True}), verified with GitLab (check_auth())."""
        data = {"info": {}} if data is None else data
        raw = _lib.RunnerP()
        _lib.call(
            "glr_runner_loads", _lib.c_str(json.dumps([1, api_url, runner_id, runner_token, data]), "data"), byref(raw)
        )
        self._ptr = raw
        self.check_auth()

    # ---- creating -------------------------------------------------------------------------

    @classmethod
    def register(
        cls,
        api_url,
        token,
        description=None,
        active=None,
        locked=None,
        run_untagged=None,
        tags=None,
        maximum_timeout=None,
        name=None,
        version=None,
        revision=None,
        platform=None,
        architecture=None,
        executor=None,
        access_level=None,
    ):
        """Registers a new runner in GitLab with a registration token (POST /api/v4/runners).
        Arguments are checked first (ValueError, as in the Python package); options left None
        are not sent. Raises AuthException when GitLab rejects the token."""
        if not isinstance(api_url, str):
            raise ValueError("api_url must be a string")
        if not isinstance(token, str):
            raise ValueError("token must be a string")
        strings = {
            "description": description,
            "name": name,
            "version": version,
            "revision": revision,
            "platform": platform,
            "architecture": architecture,
            "executor": executor,
            "access_level": access_level,
        }
        for key, value in strings.items():
            if value is not None and not isinstance(value, str):
                raise ValueError("%s must be a string" % key)
        booleans = {"active": active, "locked": locked, "run_untagged": run_untagged}
        for key, value in booleans.items():
            if value is not None and not isinstance(value, bool):
                raise ValueError("%s must be a bool" % key)
        if maximum_timeout is not None and (isinstance(maximum_timeout, bool) or not isinstance(maximum_timeout, int)):
            raise ValueError("maximum_timeout must be an integer")
        if tags is not None:
            if not isinstance(tags, (list, tuple, set, frozenset)):
                raise ValueError("tags must be a list")
            for tag in tags:
                if not isinstance(tag, str):
                    raise ValueError("tags must be strings")
                if "," in tag:
                    raise ValueError('tags must not contain ","')
        if access_level is not None and access_level not in ACCESS_LEVELS:
            raise ValueError("access_level must be one of %s" % ACCESS_LEVELS)

        options = _lib.OptionsP()
        _lib.call("glr_register_options_new", byref(options))
        try:
            for key, value in strings.items():
                if value is not None:
                    _lib.call("glr_register_options_set_" + key, options, _lib.c_str(value, key))
            for key, value in booleans.items():
                if value is not None:
                    _lib.call("glr_register_options_set_" + key, options, 1 if value else 0)
            if maximum_timeout is not None:
                _lib.call("glr_register_options_set_maximum_timeout", options, maximum_timeout)
            for tag in tags or ():
                _lib.call("glr_register_options_add_tag", options, _lib.c_str(tag, "tag"))
            raw = _lib.RunnerP()
            _lib.call(
                "glr_runner_register", _lib.c_str(api_url, "api_url"), _lib.c_str(token, "token"), options, byref(raw)
            )
        finally:
            lib.glr_register_options_free(options)
        return cls._adopt(raw)

    @classmethod
    def from_token(cls, api_url, token):
        """A runner created in GitLab's UI (the current workflow), from its `glrt-` token,
        verified with GitLab. Not in the Python package."""
        raw = _lib.RunnerP()
        _lib.call("glr_runner_from_token", _lib.c_str(api_url, "api_url"), _lib.c_str(token, "token"), byref(raw))
        return cls._adopt(raw)

    @classmethod
    def loads(cls, data, do_auth=False):
        """A runner from dumps() output, or from the Python package's format. Offline unless
        `do_auth` (then check_auth() is called)."""
        raw = _lib.RunnerP()
        _lib.call("glr_runner_loads", _lib.c_str(data, "data"), byref(raw))
        runner = cls._adopt(raw)
        if do_auth:
            runner.check_auth()
        return runner

    @classmethod
    def load(cls, filename, do_auth=False):
        """A runner from a file written by dump() (or by the Python package). Offline unless
        `do_auth`."""
        raw = _lib.RunnerP()
        _lib.call("glr_runner_load", _lib.c_str(filename, "filename"), byref(raw))
        runner = cls._adopt(raw)
        if do_auth:
            runner.check_auth()
        return runner

    # ---- using ----------------------------------------------------------------------------

    def check_auth(self):
        """Checks the token with GitLab (POST /api/v4/runners/verify); AuthException if rejected."""
        _lib.call("glr_runner_check_auth", self._handle())

    def request_job(self):
        """Asks GitLab for a job (long polling: may wait up to about a minute; see
        set_call_timeout() and interrupt()). Returns a Job, or None when there is none now."""
        from .job import Job

        raw = _lib.JobP()
        _lib.call("glr_runner_request_job", self._handle(), byref(raw))
        if not raw:
            return None
        job = Job._adopt(raw)
        job._start_log()
        return job

    def set_call_timeout(self, seconds):
        """Bounds each network call of this runner from now on (request_job() with its long
        poll, check_auth(), unregister()): past `seconds` (a float), it raises
        CallTimeoutError. None or 0 restores the default, 5 minutes. Not in the Python package."""
        _lib.call("glr_runner_set_call_timeout", self._handle(), _lib.milliseconds(seconds, "seconds"))

    def interrupt(self):
        """Ends this runner's calls in progress in other threads at once: a request_job()
        waiting in GitLab's long poll raises CallInterruptedError. Calls started afterwards are
        not affected. For stopping a polling thread; not in the Python package."""
        _lib.call("glr_runner_interrupt", self._handle())

    def reset_token(self):
        """Rotates the runner's token now (the old one stops working at once). The library also
        does it by itself once 75 % of the token's lifetime (token_expires_at) passed. A runner
        from Runner.load() writes the new token to its file (atomically, under a lock shared
        with other processes using the file); any other runner must be dumped again. Not in the
        Python package."""
        _lib.call("glr_runner_reset_token", self._handle())

    def set_label(self, key, value):
        """Sets the runner manager's label `key` to `value` (None removes it), sent to GitLab
        (info.labels, GitLab 18+) from the next request on and kept by dumps(). Keys: 3 to 65
        letters, digits, ".", "_", "-", not starting with "." or "-"; values: 1 to 256 of the
        same; at most 32 labels (ValueError otherwise). Not in the Python package."""
        _lib.call("glr_runner_set_label", self._handle(), _lib.c_str(key, "key"), _lib.c_str(value, "value"))

    @property
    def last_error_message(self):
        """The message of the last failed call on this runner, whichever thread made it ("" when
        none failed). The exceptions carry the same text; this is for reading it elsewhere."""
        return _lib.handle_error_message(self._handle())

    def unregister(self):
        """Removes the runner from GitLab (not in the Python package)."""
        _lib.call("glr_runner_unregister", self._handle())

    def set_feature(self, feature, enabled=True):
        """Declares what your executor supports (GitLab's info.features, e.g. "image"); not in
        the Python package."""
        _lib.call("glr_runner_set_feature", self._handle(), _lib.c_str(feature, "feature"), 1 if enabled else 0)

    def set_system_id(self, system_id=None):
        """Gives this process its own runner manager identity ("s_"/"r_" + 12 letters or digits,
        or None for a random one); not in the Python package."""
        _lib.call("glr_runner_set_system_id", self._handle(), _lib.c_str(system_id, "system_id"))

    def dumps(self):
        """The runner as a string for Runner.loads() (it holds the token: keep it secret)."""
        out = _lib.OwnedStr()
        _lib.call("glr_runner_dumps", self._handle(), byref(out))
        return _lib.take(out)

    def dump(self, filename):
        """Writes dumps() to `filename`, atomically and with mode 0600."""
        _lib.call("glr_runner_dump", self._handle(), _lib.c_str(filename, "filename"))

    # ---- properties -----------------------------------------------------------------------

    def _string(self, getter):
        return _lib.py_str(getattr(lib, getter)(self._handle()))

    @property
    def api_url(self):
        """GitLab's URL (normalised: no trailing "/")."""
        return self._string("glr_runner_api_url")

    @property
    def id(self):
        """The runner's id in GitLab."""
        return lib.glr_runner_id(self._handle())

    @property
    def token(self):
        """The runner's authentication token (a secret)."""
        return self._string("glr_runner_token")

    @property
    def token_expires_at(self):
        """When the token expires (ISO 8601), or None."""
        return self._string("glr_runner_token_expires_at")

    @property
    def system_id(self):
        """This machine's runner manager id (sent to GitLab with every request)."""
        return self._string("glr_runner_system_id")

    @property
    def description(self):
        return self._string("glr_runner_description")

    @property
    def name(self):
        return self._string("glr_runner_name")

    @property
    def version(self):
        return self._string("glr_runner_version")

    @property
    def revision(self):
        return self._string("glr_runner_revision")

    @property
    def platform(self):
        return self._string("glr_runner_platform")

    @property
    def architecture(self):
        return self._string("glr_runner_architecture")

    @property
    def executor(self):
        return self._string("glr_runner_executor")

    @property
    def access_level(self):
        return self._string("glr_runner_access_level")

    @property
    def locked(self):
        """True, False, or None when not given at registration."""
        return _opt_bool(lib.glr_runner_locked(self._handle()))

    @property
    def active(self):
        """True, False, or None when not given at registration."""
        return _opt_bool(lib.glr_runner_active(self._handle()))

    @property
    def run_untagged(self):
        """True, False, or None when not given at registration."""
        return _opt_bool(lib.glr_runner_run_untagged(self._handle()))

    @property
    def maximum_timeout(self):
        """Seconds, or None when not given at registration."""
        value = lib.glr_runner_maximum_timeout(self._handle())
        return None if value < 0 else value

    @property
    def tags(self):
        """The tags, as a set (empty when none)."""
        ptr = self._handle()
        return {_lib.py_str(lib.glr_runner_tag(ptr, i)) for i in range(lib.glr_runner_tag_count(ptr))}

    def __repr__(self):
        if self.closed:
            return "Runner(closed)"
        return "Runner(id=%d, api_url=%s)" % (self.id, self.api_url)

    def __eq__(self, other):
        if not isinstance(other, Runner):
            return NotImplemented
        return json.loads(self.dumps()) == json.loads(other.dumps())

    __hash__ = None


__all__ = ["Runner"]
