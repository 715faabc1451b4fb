# frozen_string_literal: true

# The quick-start flow from Ruby, without a single callback: register a runner, take a job,
# read its properties and variables, log, watch for GitLab's cancel, report success.
#
#   ruby runner.rb API_URL REGISTRATION_TOKEN [--steps N] [--step-ms MS] [--log LEVEL] [--leak-check N]
#
# The "script" is N steps (default 3) of MS milliseconds (default 100), one log line each;
# between lines the program waits on the job's event descriptor (IO.select), so GitLab's cancel
# stops it at once. A graceful cancel runs an after_script and reports the job (GitLab records
# it as canceled); a hard cancel stops it, and nothing more is reported. SIGINT/SIGTERM while
# waiting for a job ends the long poll (glr_runner_interrupt) and exits 0.
# The library's diagnostics at LEVEL (error, warn, info, debug; default warn) come through a
# pipe (glr_set_log_fd) and are printed on stderr as "[library] ...".
# --leak-check N afterwards takes and frees N owned strings and prints how much the process grew.
#
# Lines `key=value` on stdout are what tests/other_languages.rs reads; the rest is for people.
# Exit status: 0 the job was reported or canceled by GitLab, or polling was interrupted;
# 1 usage or library error. The library is GITLAB_RUNNER_API_LIB, else libgitlab_runner_api.so.1.

require 'json'
require_relative 'glr'

USAGE = 'usage: ruby runner.rb API_URL REGISTRATION_TOKEN [--steps N] [--step-ms MS] [--log LEVEL] [--leak-check N]'

def parse_args(argv)
  args = { steps: 3, step_ms: 100, log: 'warn', leak_check: 0 }
  rest = []
  until argv.empty?
    arg = argv.shift
    key = { '--steps' => :steps, '--step-ms' => :step_ms, '--log' => :log, '--leak-check' => :leak_check }[arg]
    next rest << arg unless key

    value = argv.shift or return nil
    args[key] = key == :log ? value : Integer(value, exception: false)
    return nil if args[key].nil? || (key == :log && !Glr::LOG_LEVELS.key?(value))
  end
  return nil unless rest.size == 2

  args.merge(url: rest[0], token: rest[1])
end

# The library's diagnostics through a pipe read by a Ruby thread (a log callback would crash
# Ruby: it runs on the library's thread). Returns the function that stops them.
def start_diagnostics(level)
  reader, writer = IO.pipe
  Glr.check('glr_set_log_fd', Glr.glr_set_log_fd(writer.fileno, Glr::LOG_LEVELS.fetch(level))) { Glr.thread_error }
  printer = Thread.new { reader.each_line { |line| warn "[library] #{line}" } }
  lambda do
    Glr.glr_set_log_fd(-1, 0) # the library writes no more to it
    writer.close
    printer.join
    reader.close
  end
end

def register(url, token)
  options = Glr.out_pointer
  Glr.check('glr_register_options_new', Glr.glr_register_options_new(options)) { Glr.thread_error }
  begin
    Glr.check('set_description', Glr.glr_register_options_set_description(options.ptr, 'ruby example')) { Glr.thread_error }
    Glr.check('add_tag', Glr.glr_register_options_add_tag(options.ptr, 'ruby')) { Glr.thread_error }
    # No handle yet whose error could be read: this thread's slot, read at once, same thread.
    runner = Glr.out_pointer
    Glr.check('glr_runner_register', Glr.glr_runner_register(url, token, options.ptr, runner)) { Glr.thread_error }
    runner.ptr
  ensure
    Glr.glr_register_options_free(options.ptr)
  end
end

# Long-polls for a job in a Ruby thread while the main thread waits for it, so that a signal
# (handled on the main thread) can end the poll with glr_runner_interrupt. nil: interrupted.
def take_job(runner)
  interrupted = false
  previous = %w[INT TERM].to_h do |signal|
    [signal, trap(signal) { interrupted = true; Glr.glr_runner_interrupt(runner) }] # rubocop:disable Style/Semicolon
  end
  poller = Thread.new do
    loop do
      break nil if interrupted

      out = Glr.out_pointer
      status = Glr.glr_runner_request_job(runner, out)
      break nil if status == Glr::ERR_INTERRUPTED

      Glr.check('glr_runner_request_job', status) { Glr.runner_error(runner) }
      break out.ptr unless out.ptr.null?

      puts 'No job yet'
    end
  end
  poller.value
ensure
  previous&.each { |signal, handler| trap(signal, handler) }
end

def print_job(job)
  puts "job=#{Glr.glr_job_id(job)}"
  puts "name=#{Glr.borrowed(Glr.glr_job_name(job))}"
  puts "ref=#{Glr.borrowed(Glr.glr_job_ref(job))} sha=#{Glr.borrowed(Glr.glr_job_commit_sha(job))}"
  puts "project=#{Glr.borrowed(Glr.glr_job_project_path(job))} pipeline=#{Glr.borrowed(Glr.glr_job_pipeline_id(job))}"
  count = Glr.glr_job_variable_count(job)
  puts "variables=#{count}"
  count.times do |i|
    key = Glr.borrowed(Glr.glr_job_variable_key(job, i))
    next if key.start_with?('CI_')

    masked = Glr.glr_job_variable_flags(job, i).anybits?(Glr::VAR_MASKED)
    puts "  #{key}=#{masked ? '[MASKED]' : Glr.borrowed(Glr.glr_job_variable_value(job, i)).inspect}"
  end
  # The payload is an owned string: read it, then glr_string_free (take_owned does both).
  out = Glr.out_pointer
  Glr.check('glr_job_payload', Glr.glr_job_payload(job, out)) { Glr.job_error(job) }
  payload = JSON.parse(Glr.take_owned(out))
  puts "payload_name_matches=#{payload.dig('job_info', 'name') == Glr.borrowed(Glr.glr_job_name(job))}"
end

def append(job, text)
  Glr.check('glr_job_log_append', Glr.glr_job_log_append(job, text, text.bytesize)) { Glr.job_error(job) }
end

# The job's event descriptor as a Ruby IO for IO.select. The job owns and closes it: autoclose
# off, and no use of it after glr_job_free.
def event_io(job)
  out = Fiddle::Pointer.malloc(Fiddle::SIZEOF_INT, Fiddle::RUBY_FREE)
  Glr.check('glr_job_event_fd', Glr.glr_job_event_fd(job, out)) { Glr.job_error(job) }
  IO.for_fd(out[0, Fiddle::SIZEOF_INT].unpack1('l'), autoclose: false)
end

# Waits up to `seconds` for a change of the job's state; returns the state then.
def wait_for_change(job, events, seconds)
  if IO.select([events], nil, nil, seconds)
    events.sysread(8) # the eventfd's counter: reading it resets it
  end
  Glr.glr_job_state(job)
end

# Runs the steps, stopping at a cancel; returns the state that stopped it (or running).
def run_script(job, events, args)
  lines = Glr.glr_job_script_count(job)
  state = Glr.glr_job_state(job)
  1.upto(args[:steps]) do |step|
    break unless state == Glr::JOB_RUNNING

    line = lines.positive? ? Glr.borrowed(Glr.glr_job_script_line(job, (step - 1) % lines)) : ''
    append(job, "step #{step} of #{args[:steps]}: #{line}\n")
    state = wait_for_change(job, events, args[:step_ms] / 1000.0)
  end
  state
end

# Reports the job; false when GitLab had stopped it (hard cancel).
def report(job, state)
  return false if state == Glr::JOB_CANCELED

  status =
    if state == Glr::JOB_CANCELING
      append(job, "after_script: cleaning up after the cancel\n")
      append(job, "ERROR: Job canceled\n")
      Glr.glr_job_set_failed(job, Glr::FAILURE_UNKNOWN, nil)
    else
      append(job, "Job succeeded\n")
      flushed = Glr.glr_job_log_flush(job)
      flushed == Glr::OK ? Glr.glr_job_set_success(job, nil) : flushed
    end
  return false if status == Glr::ERR_JOB_CANCELED # a hard cancel that came meanwhile

  Glr.check('reporting the job', status) { Glr.job_error(job) }
  true
end

# A call that fails in another Ruby thread leaves its message on the job's handle; this
# thread's slot knows nothing of it.
def show_per_handle_error(job)
  status = Thread.new { Glr.glr_job_log_append(job, "too late\n", 9) }.value
  puts "late_append_status=#{status}"
  puts "late_append_thread_error=#{Glr.thread_error.inspect}"
  puts "late_append_job_error=#{Glr.job_error(job).inspect}"
end

def rss_kib = File.read('/proc/self/status')[/^VmRSS:\s+(\d+)/, 1].to_i

# Takes and frees `count` owned strings (payload, runner dump) and prints how much RSS grew.
def leak_check(job, runner, count)
  take = lambda do |function, handle|
    out = Glr.out_pointer
    Glr.check('owned string', Glr.send(function, handle, out)) { Glr.thread_error }
    Glr.take_owned(out)
  end
  once = -> { take.call(:glr_job_payload, job) && take.call(:glr_runner_dumps, runner) }
  500.times { once.call } # warm-up: the allocator and Ruby's heap reach their steady size
  GC.start
  before = rss_kib
  bytes = take.call(:glr_job_payload, job).bytesize
  count.times { once.call }
  GC.start
  puts "leak_check_strings=#{2 * count} leak_check_payload_bytes=#{bytes} leak_check_rss_growth_kib=#{rss_kib - before}"
end

def finish_job(job, runner, args)
  events = event_io(job)
  print_job(job)
  append(job, "Hello from Ruby #{RUBY_VERSION} (Fiddle #{Fiddle::VERSION})\n")
  # A secret written to the log is masked by the library (the test checks the trace).
  append(job, "password: #{Glr.borrowed(Glr.glr_job_variable(job, 'SECRET_PASSWORD'))}\n")
  reported = report(job, run_script(job, events, args))
  puts "result=#{reported ? 'reported' : 'canceled'} state=#{Glr::JOB_STATES[Glr.glr_job_state(job)]}"
  log = Glr.out_pointer
  length = Fiddle::Pointer.malloc(Fiddle::SIZEOF_SIZE_T, Fiddle::RUBY_FREE)
  Glr.check('glr_job_log', Glr.glr_job_log(job, log, length)) { Glr.job_error(job) }
  puts "log_bytes=#{Glr.take_owned(log, length[0, Fiddle::SIZEOF_SIZE_T].unpack1('J')).bytesize}"
  show_per_handle_error(job)
  leak_check(job, runner, args[:leak_check]) if args[:leak_check].positive?
end

def main(argv)
  args = parse_args(argv.dup)
  unless args
    warn USAGE
    return 1
  end
  stop_diagnostics = start_diagnostics(args[:log])
  puts "gitlab_runner_api #{Glr.glr_version} from Ruby #{RUBY_VERSION}, Fiddle #{Fiddle::VERSION}"
  runner = register(args[:url], args[:token])
  puts "runner=#{Glr.glr_runner_id(runner)}"
  begin
    job = take_job(runner)
    unless job
      puts 'result=interrupted'
      return 0
    end

    begin
      finish_job(job, runner, args)
    ensure
      Glr.glr_job_free(job) # closes the event descriptor too
    end
  ensure
    Glr.glr_runner_free(runner)
  end
  Glr.check('glr_shutdown', Glr.glr_shutdown(5000)) { Glr.thread_error }
  puts "owned_taken=#{Glr::OWNED[:taken]} owned_freed=#{Glr::OWNED[:freed]}"
  Glr::OWNED[:taken] == Glr::OWNED[:freed] ? 0 : 1
rescue Glr::Error => e
  warn "runner.rb: #{e.message}"
  1
ensure
  stop_diagnostics&.call
end

exit(main(ARGV)) if $PROGRAM_NAME == __FILE__
