"""gitlab_runner_api: the Python package's API on the C library libgitlab_runner_api (ctypes).

Switch from the Python package by installing this one instead: the imports stay
``from gitlab_runner_api import Runner, Job, failure_reasons``. The differences, all where the
Python package is wrong against current GitLab (or unsafe), are listed in README.md next to
this package.

The shared library is found through the environment variable GITLAB_RUNNER_API_LIB, the copy
bundled by `pip install` (built with the package), the loader (ldconfig, LD_LIBRARY_PATH), the
usual installed locations, or this repository's build; see gitlab_runner_api._lib. Importing fails with ImportError when none has the ABI this module needs.
"""

from . import _lib, cli, failure_reasons, utils
from ._process import set_log_fd, shutdown
from .artifacts import Artifacts, extract_artifacts
from .exceptions import (
    AlreadyFinishedExcpetion,
    APIExcpetion,
    AuthException,
    CallInterruptedError,
    CallTimeoutError,
    GitlabRunnerApiError,
    JobCancelledException,
    NotOwnerError,
)
from .job import EnvVar, Job, JobLog
from .runner import Runner

#: The C library's version (e.g. "0.1.0").
__version__ = _lib.version()
#: The C library's ABI version this module checked.
ABI_VERSION = _lib.ABI_VERSION

__all__ = [
    "Runner",
    "Job",
    "cli",
    "failure_reasons",
    "utils",
    "AlreadyFinishedExcpetion",
    "APIExcpetion",
    "AuthException",
    "JobCancelledException",
    # not in the Python package
    "Artifacts",
    "EnvVar",
    "JobLog",
    "GitlabRunnerApiError",
    "NotOwnerError",
    "CallTimeoutError",
    "CallInterruptedError",
    "extract_artifacts",
    "shutdown",
    "set_log_fd",
]
