// The C library gitlab_runner_api seen from Node.js through koffi: the declarations runner.js
// uses, and the three rules a binding must keep (README, "Using it from other languages"):
//
// 1. Owned strings (`char **` out-parameters: payload, dumps, log) are declared as plain
//    pointers (`void **`) and given back with glr_string_free(). Never `char *!` and never
//    koffi.free(): both call libc free() on memory the library's allocator owns, and the
//    process aborts ("munmap_chunk(): invalid pointer"). Borrowed `const char *` getters are
//    declared as such: koffi copies them into JS strings and nothing is freed.
// 2. Calls that wait for the network run with koffi's `.async` (a libuv pool thread), so the
//    event loop stays free. Their error is read from the handle
//    (glr_job_last_error_message / glr_runner_last_error_message), because the thread-local
//    glr_last_error_message belongs to the pool thread the call ran on, not to the main thread.
// 3. No callbacks: the library calls them on its own thread, where JS cannot run while the
//    loop is busy. A cancel is learnt with glr_job_wait_state on a pool thread (see runner.js).

'use strict';

const koffi = require('koffi');

// koffi runs `.async` calls on a stack of its own, 128 KiB by default. A library call that
// opens a connection needs up to 192 KiB with a debug build of the library (SIGSEGV with
// 128 KiB; a release build needs about 48 KiB), so async calls get 1 MiB. Set before the first call.
koffi.config({ ...koffi.config(), async_stack_size: 1024 * 1024 });

const ABI_VERSION = 1; // GLR_ABI_VERSION of the header this file was written against

const lib = koffi.load(process.env.GITLAB_RUNNER_API_LIB || `libgitlab_runner_api.so.${ABI_VERSION}`);

koffi.opaque('glr_runner');
koffi.opaque('glr_job');
koffi.opaque('glr_register_options');

const decl = (signature) => lib.func(signature);

const c = {
  // library
  glr_version: decl('const char *glr_version(void)'),
  glr_abi_version: decl('uint32_t glr_abi_version(void)'),
  glr_status_str: decl('const char *glr_status_str(int32_t status)'),
  glr_last_error_message: decl('size_t glr_last_error_message(_Out_ uint8_t *buf, size_t buflen)'),
  glr_string_free: decl('void glr_string_free(void *s)'),
  glr_shutdown: decl('int32_t glr_shutdown(int64_t timeout_milliseconds)'),
  // registration
  glr_register_options_new: decl('int32_t glr_register_options_new(_Out_ glr_register_options **out)'),
  glr_register_options_free: decl('void glr_register_options_free(glr_register_options *options)'),
  glr_register_options_set_description: decl(
    'int32_t glr_register_options_set_description(glr_register_options *options, const char *value)'),
  glr_register_options_add_tag: decl('int32_t glr_register_options_add_tag(glr_register_options *options, const char *tag)'),
  glr_runner_register: decl(
    'int32_t glr_runner_register(const char *api_url, const char *token, glr_register_options *options, _Out_ glr_runner **out)'),
  // runner
  glr_runner_last_error_message: decl(
    'size_t glr_runner_last_error_message(glr_runner *runner, _Out_ uint8_t *buf, size_t buflen)'),
  glr_runner_request_job: decl('int32_t glr_runner_request_job(glr_runner *runner, _Out_ glr_job **out)'),
  glr_runner_interrupt: decl('int32_t glr_runner_interrupt(glr_runner *runner)'),
  glr_runner_dumps: decl('int32_t glr_runner_dumps(glr_runner *runner, _Out_ void **out)'),
  glr_runner_id: decl('int64_t glr_runner_id(glr_runner *runner)'),
  glr_runner_free: decl('void glr_runner_free(glr_runner *runner)'),
  // job: borrowed getters
  glr_job_id: decl('int64_t glr_job_id(glr_job *job)'),
  glr_job_name: decl('const char *glr_job_name(glr_job *job)'),
  glr_job_ref: decl('const char *glr_job_ref(glr_job *job)'),
  glr_job_commit_sha: decl('const char *glr_job_commit_sha(glr_job *job)'),
  glr_job_project_path: decl('const char *glr_job_project_path(glr_job *job)'),
  glr_job_pipeline_id: decl('const char *glr_job_pipeline_id(glr_job *job)'),
  glr_job_state: decl('int32_t glr_job_state(glr_job *job)'),
  glr_job_script_count: decl('size_t glr_job_script_count(glr_job *job)'),
  glr_job_script_line: decl('const char *glr_job_script_line(glr_job *job, size_t index)'),
  glr_job_variable_count: decl('size_t glr_job_variable_count(glr_job *job)'),
  glr_job_variable_key: decl('const char *glr_job_variable_key(glr_job *job, size_t index)'),
  glr_job_variable_value: decl('const char *glr_job_variable_value(glr_job *job, size_t index)'),
  glr_job_variable_flags: decl('uint32_t glr_job_variable_flags(glr_job *job, size_t index)'),
  glr_job_variable: decl('const char *glr_job_variable(glr_job *job, const char *key)'),
  // job: owned strings (plain pointers, freed with glr_string_free)
  glr_job_payload: decl('int32_t glr_job_payload(glr_job *job, _Out_ void **out)'),
  glr_job_log: decl('int32_t glr_job_log(glr_job *job, _Out_ void **out, _Out_ size_t *len_out)'),
  // job: calls
  glr_job_last_error_message: decl('size_t glr_job_last_error_message(glr_job *job, _Out_ uint8_t *buf, size_t buflen)'),
  glr_job_wait_state: decl(
    'int32_t glr_job_wait_state(glr_job *job, int32_t known_state, int64_t timeout_milliseconds, _Out_ int32_t *state_out)'),
  glr_job_log_append: decl('int32_t glr_job_log_append(glr_job *job, const uint8_t *data, size_t len)'),
  glr_job_log_flush: decl('int32_t glr_job_log_flush(glr_job *job)'),
  glr_job_set_success: decl('int32_t glr_job_set_success(glr_job *job, void *artifacts)'),
  glr_job_set_failed: decl('int32_t glr_job_set_failed(glr_job *job, int32_t reason, void *artifacts)'),
  glr_job_free: decl('void glr_job_free(glr_job *job)'),
};

const GLR_OK = 0;
const GLR_ERR_JOB_CANCELED = -5;
const GLR_ERR_ALREADY_FINISHED = -6;
const GLR_ERR_INTERRUPTED = -14;
const JOB_STATES = ['running', 'success', 'failed', 'canceling', 'canceled'];
const GLR_JOB_RUNNING = 0;
const GLR_JOB_CANCELING = 3;
const GLR_JOB_CANCELED = 4;
const GLR_VAR_MASKED = 2;
const GLR_FAILURE_UNKNOWN = 0;

if (c.glr_abi_version() !== ABI_VERSION) {
  throw new Error(`libgitlab_runner_api has ABI ${c.glr_abi_version()}, this binding was written for ${ABI_VERSION}`);
}

// A message copied out snprintf-style: the first call asks for the length.
function copyMessage(read) {
  const length = Number(read(null, 0));
  if (length === 0) return '';
  const buf = Buffer.alloc(length + 1);
  read(buf, buf.length);
  return buf.toString('utf8', 0, length);
}

/** The calling thread's last error: meaningful only right after a synchronous call. */
function threadError() {
  return copyMessage((buf, len) => c.glr_last_error_message(buf, len));
}

function jobError(job) {
  return copyMessage((buf, len) => c.glr_job_last_error_message(job, buf, len));
}

function runnerError(runner) {
  return copyMessage((buf, len) => c.glr_runner_last_error_message(runner, buf, len));
}

class GlrError extends Error {
  constructor(what, status, message) {
    super(`${what}: ${c.glr_status_str(status)} (${status}): ${message}`);
    this.status = status;
  }
}

/** Throws a GlrError for a failed status; `message` is read only then (it is not cleared by successes). */
function check(what, status, message) {
  if (status !== GLR_OK) throw new GlrError(what, status, message());
}

/** Runs `fn` on a libuv pool thread (koffi's `.async`) and resolves with its status. */
function callAsync(fn, ...args) {
  return new Promise((resolve, reject) => {
    fn.async(...args, (err, status) => (err ? reject(err) : resolve(status)));
  });
}

// Every owned string taken and given back, so the program can show that the two match.
const owned = { taken: 0, freed: 0 };

/**
 * Reads an owned string (the pointer an out-parameter received) and frees it with
 * glr_string_free, whatever happens while reading. `length` for strings that come with one.
 */
function takeOwned(ptr, length) {
  owned.taken += 1;
  try {
    return length === undefined ? koffi.decode.string(ptr) : koffi.decode.string(ptr, Number(length));
  } finally {
    c.glr_string_free(ptr);
    owned.freed += 1;
  }
}

module.exports = {
  c,
  koffiVersion: koffi.version,
  GLR_OK,
  GLR_ERR_JOB_CANCELED,
  GLR_ERR_ALREADY_FINISHED,
  GLR_ERR_INTERRUPTED,
  GLR_JOB_RUNNING,
  GLR_JOB_CANCELING,
  GLR_JOB_CANCELED,
  GLR_VAR_MASKED,
  GLR_FAILURE_UNKNOWN,
  JOB_STATES,
  GlrError,
  check,
  callAsync,
  threadError,
  jobError,
  runnerError,
  takeOwned,
  owned,
};
