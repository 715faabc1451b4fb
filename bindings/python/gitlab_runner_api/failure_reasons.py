"""Why a job failed, as in the Python package: pass an instance to Job.set_failed(), e.g.
``job.set_failed(failure_reasons.ScriptFailure())``. str(reason) is GitLab's name; `code` is the
C library's GLR_FAILURE_* value. Beyond the package's six, the reasons GitLab accepts from a
runner since then are offered too (the library maps them for an older GitLab)."""

import abc


class _FailureReason(abc.ABC):
    """Abstract base of the failure reasons (not instantiable)."""

    #: The C library's GLR_FAILURE_* value.
    code = None

    @abc.abstractmethod
    def __str__(self):
        raise NotImplementedError

    def __repr__(self):
        return "%s()" % type(self).__name__

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))


class UnknownFailure(_FailureReason):
    """unknown_failure (the default of Job.set_failed())."""

    code = 0

    def __str__(self):
        return "unknown_failure"


class ScriptFailure(_FailureReason):
    """script_failure: the job's script failed."""

    code = 1

    def __str__(self):
        return "script_failure"


class ApiFailure(_FailureReason):
    """api_failure"""

    code = 2

    def __str__(self):
        return "api_failure"


class StuckOrTimeoutFailure(_FailureReason):
    """stuck_or_timeout_failure"""

    code = 3

    def __str__(self):
        return "stuck_or_timeout_failure"


class RunnerSystemFailure(_FailureReason):
    """runner_system_failure: the runner or its system failed."""

    code = 4

    def __str__(self):
        return "runner_system_failure"


class MissingDependencyFailure(_FailureReason):
    """missing_dependency_failure"""

    code = 5

    def __str__(self):
        return "missing_dependency_failure"


class RunnerUnsupported(_FailureReason):
    """runner_unsupported (not in the Python package)."""

    code = 6

    def __str__(self):
        return "runner_unsupported"


class JobExecutionTimeout(_FailureReason):
    """job_execution_timeout (not in the Python package)."""

    code = 8

    def __str__(self):
        return "job_execution_timeout"


class RunnerConfigurationError(_FailureReason):
    """runner_configuration_error (not in the Python package)."""

    code = 31

    def __str__(self):
        return "runner_configuration_error"


class RunnerExternalDependencyFailure(_FailureReason):
    """runner_external_dependency_failure (not in the Python package)."""

    code = 32

    def __str__(self):
        return "runner_external_dependency_failure"


class RunnerInterrupted(_FailureReason):
    """runner_interrupted (not in the Python package)."""

    code = 33

    def __str__(self):
        return "runner_interrupted"


__all__ = [
    "ApiFailure",
    "MissingDependencyFailure",
    "RunnerSystemFailure",
    "ScriptFailure",
    "StuckOrTimeoutFailure",
    "UnknownFailure",
    "RunnerUnsupported",
    "JobExecutionTimeout",
    "RunnerConfigurationError",
    "RunnerExternalDependencyFailure",
    "RunnerInterrupted",
]
