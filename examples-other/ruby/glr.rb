# frozen_string_literal: true

# The C library gitlab_runner_api seen from Ruby through Fiddle (the standard library): the
# declarations runner.rb uses and the rules a binding must keep (README, "Using it from other
# languages"):
#
# 1. No callbacks, ever. The library calls them on its own thread ("glr-events"); Ruby cannot
#    run on a thread it did not create and aborts the process with
#    "rb_thread_call_with_gvl() is called by non-ruby thread". Everything a callback would
#    tell is polled instead: a job's state through its event descriptor (IO.for_fd + IO.select)
#    or glr_job_wait_state in a Ruby thread, the diagnostics through glr_set_log_fd on a pipe.
# 2. Owned strings (`char **` out-parameters: payload, dumps, log) are read, then given back
#    with glr_string_free: never Fiddle.free or a Fiddle::Pointer with a free function, which
#    call libc free() and abort the process ("munmap_chunk(): invalid pointer"). Borrowed
#    `const char *` getters are copied into Ruby strings and never freed.
# 3. Errors are read from the handle (glr_job_last_error_message,
#    glr_runner_last_error_message): Fiddle releases the GVL during a call, and the thread-local
#    glr_last_error_message is only right on the OS thread that made the call.
#
# Fiddle releases the GVL for every call, so a call that waits for the network (request_job,
# flush, set_success) blocks only the Ruby thread that made it.

require 'fiddle'
require 'fiddle/import'

module Glr
  extend Fiddle::Importer

  ABI_VERSION = 1 # GLR_ABI_VERSION of the header this file was written against

  dlload(ENV.fetch('GITLAB_RUNNER_API_LIB', "libgitlab_runner_api.so.#{ABI_VERSION}"))

  typealias 'glr_status', 'int32_t'

  # library
  extern 'const char *glr_version(void)'
  extern 'uint32_t glr_abi_version(void)'
  extern 'const char *glr_status_str(glr_status)'
  extern 'size_t glr_last_error_message(char *, size_t)'
  extern 'void glr_string_free(void *)'
  extern 'glr_status glr_set_log_fd(int32_t, int32_t)'
  extern 'glr_status glr_shutdown(int64_t)'
  # registration
  extern 'glr_status glr_register_options_new(void **)'
  extern 'void glr_register_options_free(void *)'
  extern 'glr_status glr_register_options_set_description(void *, const char *)'
  extern 'glr_status glr_register_options_add_tag(void *, const char *)'
  extern 'glr_status glr_runner_register(const char *, const char *, void *, void **)'
  # runner
  extern 'size_t glr_runner_last_error_message(void *, char *, size_t)'
  extern 'glr_status glr_runner_request_job(void *, void **)'
  extern 'glr_status glr_runner_interrupt(void *)'
  extern 'glr_status glr_runner_dumps(void *, void **)'
  extern 'int64_t glr_runner_id(void *)'
  extern 'void glr_runner_free(void *)'
  # job: borrowed getters
  extern 'int64_t glr_job_id(void *)'
  extern 'const char *glr_job_name(void *)'
  extern 'const char *glr_job_ref(void *)'
  extern 'const char *glr_job_commit_sha(void *)'
  extern 'const char *glr_job_project_path(void *)'
  extern 'const char *glr_job_pipeline_id(void *)'
  extern 'int32_t glr_job_state(void *)'
  extern 'size_t glr_job_script_count(void *)'
  extern 'const char *glr_job_script_line(void *, size_t)'
  extern 'size_t glr_job_variable_count(void *)'
  extern 'const char *glr_job_variable_key(void *, size_t)'
  extern 'const char *glr_job_variable_value(void *, size_t)'
  extern 'uint32_t glr_job_variable_flags(void *, size_t)'
  extern 'const char *glr_job_variable(void *, const char *)'
  # job: owned strings
  extern 'glr_status glr_job_payload(void *, void **)'
  extern 'glr_status glr_job_log(void *, void **, size_t *)'
  # job: calls
  extern 'size_t glr_job_last_error_message(void *, char *, size_t)'
  extern 'glr_status glr_job_event_fd(void *, int32_t *)'
  extern 'glr_status glr_job_log_append(void *, const char *, size_t)'
  extern 'glr_status glr_job_log_flush(void *)'
  extern 'glr_status glr_job_set_success(void *, void *)'
  extern 'glr_status glr_job_set_failed(void *, int32_t, void *)'
  extern 'void glr_job_free(void *)'

  OK = 0
  ERR_JOB_CANCELED = -5
  ERR_INTERRUPTED = -14
  JOB_RUNNING = 0
  JOB_CANCELING = 3
  JOB_CANCELED = 4
  JOB_STATES = %w[running success failed canceling canceled].freeze
  VAR_MASKED = 2
  FAILURE_UNKNOWN = 0
  LOG_LEVELS = { 'error' => 1, 'warn' => 2, 'info' => 3, 'debug' => 4 }.freeze

  unless glr_abi_version == ABI_VERSION
    raise "libgitlab_runner_api has ABI #{glr_abi_version}, this binding was written for #{ABI_VERSION}"
  end

  # A failed call: what, the status's name and the library's message.
  class Error < StandardError
    attr_reader :status

    def initialize(what, status, message)
      super("#{what}: #{Glr.glr_status_str(status).to_s} (#{status}): #{message}")
      @status = status
    end
  end

  module_function

  # A borrowed `const char *` as a Ruby string (nil for NULL); the library keeps the memory.
  def borrowed(pointer)
    pointer.null? ? nil : pointer.to_s.force_encoding(Encoding::UTF_8)
  end

  # A message copied out snprintf-style (the first call asks for the length).
  def copy_message
    length = yield(nil, 0)
    return '' if length.zero?

    buf = Fiddle::Pointer.malloc(length + 1, Fiddle::RUBY_FREE) # Ruby's own memory
    yield(buf, length + 1)
    buf.to_s(length).force_encoding(Encoding::UTF_8)
  end

  def thread_error = copy_message { |buf, len| glr_last_error_message(buf, len) }
  def job_error(job) = copy_message { |buf, len| glr_job_last_error_message(job, buf, len) }
  def runner_error(runner) = copy_message { |buf, len| glr_runner_last_error_message(runner, buf, len) }

  # Raises Glr::Error unless `status` is OK; the block gives the message (read only then).
  def check(what, status)
    raise Error.new(what, status, yield) unless status == OK
  end

  # A pointer-sized out-parameter in Ruby's memory.
  def out_pointer = Fiddle::Pointer.malloc(Fiddle::SIZEOF_VOIDP, Fiddle::RUBY_FREE)

  # Every owned string taken and given back, so the program can show that the two match.
  OWNED = { taken: 0, freed: 0 } # rubocop:disable Style/MutableConstant

  # Reads the owned string an out-parameter received and frees it with glr_string_free,
  # whatever happens while reading. `length` for strings that come with one.
  def take_owned(out, length = nil)
    pointer = out.ptr
    OWNED[:taken] += 1
    begin
      (length ? pointer.to_s(length) : pointer.to_s).force_encoding(Encoding::UTF_8)
    ensure
      glr_string_free(pointer)
      OWNED[:freed] += 1
    end
  end
end
