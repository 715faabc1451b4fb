"""The C API of libgitlab_runner_api as ctypes sees it: the header's status codes and flags, the
opaque handle types, and every declared function's restype and argtypes (SIGNATURES).

The one list of ctypes signatures: gitlab_runner_api._lib declares the functions from it, and
tests/python/test_ctypes.py, which calls the raw C ABI the way a plain ctypes user would, loads
this file by its path (it has no side effects and imports only the standard library, so loading
it neither loads the library nor the rest of the bindings).
"""

import ctypes
from ctypes import CFUNCTYPE, POINTER, c_char, c_char_p, c_int32, c_int64, c_size_t, c_uint32, c_void_p

#: The ABI these declarations are written for (GLR_ABI_VERSION of include/gitlab_runner_api.h).
ABI_VERSION = 1

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
GLR_ERR_NOT_OWNER = -12
GLR_ERR_TIMEOUT = -13
GLR_ERR_INTERRUPTED = -14
GLR_ERR_PANIC = -99

GLR_JOB_STATES = {0: "running", 1: "success", 2: "failed", 3: "canceling", 4: "canceled"}

GLR_LOG_ERROR = 1
GLR_LOG_WARN = 2
GLR_LOG_INFO = 3
GLR_LOG_DEBUG = 4

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

# The two callback types. Declared for completeness (a plain ctypes user may install them), but
# the package never does: they run on the library's thread "glr-events", and a Python callback
# there takes the GIL from the library's side. The package offers glr_job_wait_state(),
# glr_job_event_fd() and glr_set_log_fd() instead (Job.wait_state, Job.event_fd, set_log_fd).
LogCallback = CFUNCTYPE(None, c_void_p, c_int32, c_char_p)
CancelCallback = CFUNCTYPE(None, c_void_p, JobP, c_int32)

# name: (restype, argtypes), for every function of the header (the ctypes test checks that).
# Borrowed `const char *` results are c_char_p (copied into bytes).
SIGNATURES = {
    "glr_version": (c_char_p, []),
    "glr_abi_version": (c_uint32, []),
    "glr_status_str": (c_char_p, [status_t]),
    "glr_last_error_message": (c_size_t, [POINTER(c_char), c_size_t]),
    "glr_last_error_code": (status_t, []),
    "glr_string_free": (None, [OwnedStr]),
    "glr_failure_reason_str": (c_char_p, [c_int32]),
    "glr_set_log_fd": (status_t, [c_int32, c_int32]),
    "glr_set_log_callback": (None, [LogCallback, c_void_p]),
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
    "glr_runner_set_call_timeout": (status_t, [RunnerP, c_int64]),
    "glr_runner_interrupt": (status_t, [RunnerP]),
    "glr_runner_reset_token": (status_t, [RunnerP]),
    "glr_runner_set_label": (status_t, [RunnerP, c_char_p, c_char_p]),
    "glr_runner_last_error_message": (c_size_t, [RunnerP, POINTER(c_char), c_size_t]),
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
    "glr_job_wait_state": (status_t, [JobP, c_int32, c_int64, POINTER(c_int32)]),
    "glr_job_event_fd": (status_t, [JobP, POINTER(c_int32)]),
    "glr_job_set_cancel_callback": (status_t, [JobP, CancelCallback, c_void_p]),
    "glr_job_last_error_message": (c_size_t, [JobP, POINTER(c_char), c_size_t]),
    "glr_job_timeout": (c_int64, [JobP]),
    "glr_job_deadline": (c_int64, [JobP]),
    "glr_job_acknowledged": (c_int32, [JobP]),
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
    "glr_job_set_keepalive_interval": (status_t, [JobP, c_int64]),
    "glr_job_set_call_timeout": (status_t, [JobP, c_int64]),
    "glr_job_set_success": (status_t, [JobP, ArtifactsP]),
    "glr_job_set_failed": (status_t, [JobP, c_int32, ArtifactsP]),
    "glr_job_dumps": (status_t, [JobP, POINTER(OwnedStr)]),
    "glr_job_loads": (status_t, [c_char_p, POINTER(JobP)]),
    "glr_job_dump": (status_t, [JobP, c_char_p]),
    "glr_job_load": (status_t, [c_char_p, POINTER(JobP)]),
    "glr_job_hand_over_dumps": (status_t, [JobP, POINTER(OwnedStr)]),
    "glr_job_hand_over_dump": (status_t, [JobP, c_char_p]),
    "glr_job_watch_loads": (status_t, [c_char_p, POINTER(JobP)]),
    "glr_job_watch_load": (status_t, [c_char_p, POINTER(JobP)]),
    "glr_job_is_watcher": (c_int32, [JobP]),
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
    # the process
    "glr_shutdown": (status_t, [c_int64]),
}
