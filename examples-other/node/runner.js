// The quick-start flow from Node.js: register a runner, take a job, read its properties and
// variables, log, watch for GitLab's cancel, report success.
//
//   node runner.js API_URL REGISTRATION_TOKEN [--steps N] [--step-ms MS] [--leak-check N]
//
// The "script" is N steps (default 3) of MS milliseconds (default 100), one log line each.
// A graceful cancel stops it, runs an after_script and reports the job (GitLab records it as
// canceled); a hard cancel stops it, and nothing more is reported. SIGINT/SIGTERM while
// waiting for a job ends the long poll at once (glr_runner_interrupt) and exits 0.
// --leak-check N afterwards takes and frees N owned strings and prints how much the process
// grew (tests/other_languages.rs checks that it stays flat).
//
// Lines `key=value` on stdout are what tests/other_languages.rs reads; the rest is for people.
// Exit status: 0 the job was reported or canceled by GitLab, or polling was interrupted;
// 1 usage or library error. The library is GITLAB_RUNNER_API_LIB, else libgitlab_runner_api.so.1.

'use strict';

const glr = require('./glr');

const { c } = glr;

function parseArgs(argv) {
  const args = { steps: 3, stepMs: 100, leakCheck: 0 };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = { '--steps': 'steps', '--step-ms': 'stepMs', '--leak-check': 'leakCheck' }[argv[i]];
    if (flag) {
      args[flag] = Number(argv[++i]);
      if (!Number.isInteger(args[flag]) || args[flag] < 0) return null;
    } else {
      rest.push(argv[i]);
    }
  }
  if (rest.length !== 2) return null;
  [args.url, args.token] = rest;
  return args;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The event loop's heartbeat: ticks counted while blocking calls run on the pool show that
// the loop stayed free (with a synchronous call there would be none).
const loop = { ticks: 0, ticksDuringCalls: 0, msInCalls: 0 };
const heartbeat = setInterval(() => (loop.ticks += 1), 5);

/** A blocking library call on the pool, timed against the heartbeat. */
async function blocking(fn, ...args) {
  const [ticks, started] = [loop.ticks, Date.now()];
  try {
    return await glr.callAsync(fn, ...args);
  } finally {
    loop.ticksDuringCalls += loop.ticks - ticks;
    loop.msInCalls += Date.now() - started;
  }
}

function register(url, token) {
  const options = [null];
  glr.check('glr_register_options_new', c.glr_register_options_new(options), glr.threadError);
  try {
    glr.check('set_description', c.glr_register_options_set_description(options[0], 'node example'), glr.threadError);
    glr.check('add_tag', c.glr_register_options_add_tag(options[0], 'node'), glr.threadError);
    // Synchronous on purpose: there is no handle yet whose error could be read, so the
    // failure is only in this thread's slot (a short request, once, at start-up).
    const runner = [null];
    glr.check('glr_runner_register', c.glr_runner_register(url, token, options[0], runner), glr.threadError);
    return runner[0];
  } finally {
    c.glr_register_options_free(options[0]);
  }
}

/** Long-polls for a job on the pool; null when SIGINT/SIGTERM interrupted the wait. */
async function takeJob(runner) {
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
    c.glr_runner_interrupt(runner); // returns at once; the pool thread's request ends
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  try {
    for (;;) {
      if (interrupted) return null;
      const out = [null];
      const status = await blocking(c.glr_runner_request_job, runner, out);
      if (status === glr.GLR_ERR_INTERRUPTED) return null;
      glr.check('glr_runner_request_job', status, () => glr.runnerError(runner));
      if (out[0]) return out[0];
      console.log('No job yet');
    }
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
}

function printJob(job) {
  console.log(`job=${c.glr_job_id(job)}`);
  console.log(`name=${c.glr_job_name(job)}`);
  console.log(`ref=${c.glr_job_ref(job)} sha=${c.glr_job_commit_sha(job)}`);
  console.log(`project=${c.glr_job_project_path(job)} pipeline=${c.glr_job_pipeline_id(job)}`);
  const count = Number(c.glr_job_variable_count(job));
  console.log(`variables=${count}`);
  for (let i = 0; i < count; i++) {
    const masked = c.glr_job_variable_flags(job, i) & glr.GLR_VAR_MASKED;
    const value = masked ? '[MASKED]' : JSON.stringify(c.glr_job_variable_value(job, i));
    if (!c.glr_job_variable_key(job, i).startsWith('CI_')) console.log(`  ${c.glr_job_variable_key(job, i)}=${value}`);
  }
  // The payload is an owned string: read it, then glr_string_free (takeOwned does both).
  const payloadOut = [null];
  glr.check('glr_job_payload', c.glr_job_payload(job, payloadOut), () => glr.jobError(job));
  const payload = JSON.parse(glr.takeOwned(payloadOut[0]));
  console.log(`payload_name_matches=${payload.job_info.name === c.glr_job_name(job)}`);
}

function append(job, text) {
  const bytes = Buffer.from(text);
  glr.check('glr_job_log_append', c.glr_job_log_append(job, bytes, bytes.length), () => glr.jobError(job));
}

/**
 * Watches for a change of the job's state on a pool thread (no callback: the library would
 * call it on its own thread). Bounded waits, so the pool thread is given back every second
 * (the pool has 4 threads unless UV_THREADPOOL_SIZE says otherwise) and the job can be freed
 * soon after `watch.stopped` is set. `watch.state` is the latest state seen.
 */
function watchState(job) {
  const watch = { state: glr.GLR_JOB_RUNNING, stopped: false };
  watch.done = (async () => {
    while (!watch.stopped && watch.state === glr.GLR_JOB_RUNNING) {
      const out = [0];
      const status = await glr.callAsync(c.glr_job_wait_state, job, watch.state, 1000, out);
      if (watch.stopped) return;
      glr.check('glr_job_wait_state', status, () => glr.jobError(job));
      watch.state = out[0];
    }
  })();
  watch.done.catch(() => {}); // its error is rethrown where main() awaits it
  return watch;
}

/** Runs the steps, stopping at a cancel; returns the state that stopped it (or running). */
async function runScript(job, watch, args) {
  const lines = Number(c.glr_job_script_count(job));
  for (let step = 1; step <= args.steps; step++) {
    if (watch.state !== glr.GLR_JOB_RUNNING) break;
    const line = lines > 0 ? c.glr_job_script_line(job, (step - 1) % lines) : '';
    append(job, `step ${step} of ${args.steps}: ${line}\n`);
    await sleep(args.stepMs);
  }
  return watch.state;
}

/** Reports the job; false when GitLab had stopped it (hard cancel). */
async function report(job, state) {
  const jobError = () => glr.jobError(job);
  if (state === glr.GLR_JOB_CANCELED) return false;
  let status;
  if (state === glr.GLR_JOB_CANCELING) {
    append(job, 'after_script: cleaning up after the cancel\n');
    append(job, 'ERROR: Job canceled\n');
    status = await blocking(c.glr_job_set_failed, job, glr.GLR_FAILURE_UNKNOWN, null);
  } else {
    append(job, 'Job succeeded\n');
    // flush, then the final update: both wait for GitLab, both on the pool.
    status = await blocking(c.glr_job_log_flush, job);
    if (status === glr.GLR_OK) status = await blocking(c.glr_job_set_success, job, null);
  }
  if (status === glr.GLR_ERR_JOB_CANCELED) return false; // a hard cancel that came meanwhile
  glr.check('reporting the job', status, jobError);
  return true;
}

/**
 * A failure on a pool thread is on the job's handle, not on the main thread's slot: appending
 * to a finished job fails there (GLR_ERR_ALREADY_FINISHED or _JOB_CANCELED).
 */
async function showPerHandleError(job) {
  const bytes = Buffer.from('too late\n');
  const status = await glr.callAsync(c.glr_job_log_append, job, bytes, bytes.length);
  console.log(`late_append_status=${status}`);
  console.log(`late_append_thread_error=${JSON.stringify(glr.threadError())}`);
  console.log(`late_append_job_error=${JSON.stringify(glr.jobError(job))}`);
}

/** Takes and frees `n` owned strings (payload, runner dump) and prints how much RSS grew. */
function leakCheck(job, runner, n) {
  const once = () => {
    for (const [fn, handle] of [[c.glr_job_payload, job], [c.glr_runner_dumps, runner]]) {
      const out = [null];
      glr.check('owned string', fn(handle, out), () => glr.threadError());
      glr.takeOwned(out[0]);
    }
  };
  for (let i = 0; i < 500; i++) once(); // warm-up: allocator and V8 reach their steady size
  global.gc?.();
  const before = process.memoryUsage.rss();
  const payloadOut = [null];
  glr.check('glr_job_payload', c.glr_job_payload(job, payloadOut), glr.threadError);
  const bytes = Buffer.byteLength(glr.takeOwned(payloadOut[0]));
  for (let i = 0; i < n; i++) once();
  global.gc?.();
  const grownKiB = Math.round((process.memoryUsage.rss() - before) / 1024);
  console.log(`leak_check_strings=${2 * n} leak_check_payload_bytes=${bytes} leak_check_rss_growth_kib=${grownKiB}`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!args) {
    console.error('usage: node runner.js API_URL REGISTRATION_TOKEN [--steps N] [--step-ms MS] [--leak-check N]');
    return 1;
  }
  console.log(`gitlab_runner_api ${c.glr_version()} from Node.js ${process.version}, koffi ${glr.koffiVersion}`);
  const runner = register(args.url, args.token);
  console.log(`runner=${c.glr_runner_id(runner)}`);
  try {
    const job = await takeJob(runner);
    if (!job) {
      console.log('result=interrupted');
      return 0;
    }
    const watch = watchState(job);
    try {
      printJob(job);
      append(job, `Hello from Node.js ${process.version} (koffi ${glr.koffiVersion})\n`);
      // A secret written to the log is masked by the library (the test checks the trace).
      append(job, `password: ${c.glr_job_variable(job, 'SECRET_PASSWORD')}\n`);
      const state = await runScript(job, watch, args);
      const reported = await report(job, state);
      await watch.done; // the state changed (finished or canceled): the watcher has ended
      console.log(`result=${reported ? 'reported' : 'canceled'} state=${glr.JOB_STATES[c.glr_job_state(job)]}`);
      const log = [null];
      const length = [0];
      glr.check('glr_job_log', c.glr_job_log(job, log, length), () => glr.jobError(job));
      console.log(`log_bytes=${Buffer.byteLength(glr.takeOwned(log[0], length[0]))}`);
      await showPerHandleError(job);
      if (args.leakCheck > 0) leakCheck(job, runner, args.leakCheck);
    } finally {
      // A `.async` call is queued before a pool thread starts it: freeing the job while one is
      // queued could start it on a freed handle. So the watcher ends first (within a second).
      watch.stopped = true;
      await watch.done.catch(() => {});
      c.glr_job_free(job);
    }
  } finally {
    c.glr_runner_free(runner);
  }
  // Synchronous: nothing is left to upload by now, and its error is only in this thread's slot.
  glr.check('glr_shutdown', c.glr_shutdown(5000), glr.threadError);
  console.log(`event_loop_ticks_during_blocking_calls=${loop.ticksDuringCalls} over ${loop.msInCalls} ms`);
  console.log(`owned_taken=${glr.owned.taken} owned_freed=${glr.owned.freed}`);
  return glr.owned.taken === glr.owned.freed ? 0 : 1;
}

main()
  .then((code) => {
    clearInterval(heartbeat);
    process.exitCode = code;
  })
  .catch((err) => {
    clearInterval(heartbeat);
    console.error(`runner.js: ${err.message}`);
    process.exitCode = 1;
  });
