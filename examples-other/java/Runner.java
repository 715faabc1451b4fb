import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jdk.incubator.foreign.MemoryAddress;

/**
 * The quick-start flow from Java 17: register a runner, take a job, read its properties and
 * variables, log, watch for GitLab's cancel, report success.
 *
 * <pre>
 *   java --add-modules jdk.incubator.foreign --enable-native-access=ALL-UNNAMED -cp CLASSES \
 *       Runner API_URL REGISTRATION_TOKEN [--steps N] [--step-ms MS] [--leak-check N]
 * </pre>
 *
 * The "script" is N steps (default 3) of MS milliseconds (default 100), one log line each. A
 * thread of this program waits for a change of the job's state (glr_job_wait_state), so no
 * callback is needed: a graceful cancel stops the script, runs an after_script and reports the
 * job (GitLab records it as canceled); a hard cancel stops it, and nothing more is reported.
 * --leak-check N afterwards takes and frees N owned strings and prints how much the process grew.
 *
 * <p>Lines {@code key=value} on stdout are what tests/other_languages.rs reads. Exit status: 0 the
 * job was reported or canceled by GitLab; 1 usage or library error. The library is
 * GITLAB_RUNNER_API_LIB, else libgitlab_runner_api.so on java.library.path.
 */
public final class Runner {
  private static final String USAGE =
      "usage: Runner API_URL REGISTRATION_TOKEN [--steps N] [--step-ms MS] [--leak-check N]";

  private final MemoryAddress runner;
  private final int steps;
  private final int stepMs;
  private final int leakCheck;

  private Runner(MemoryAddress runner, int steps, int stepMs, int leakCheck) {
    this.runner = runner;
    this.steps = steps;
    this.stepMs = stepMs;
    this.leakCheck = leakCheck;
  }

  /**
   * Watches the job's state on a thread of its own (the library's callbacks would do it on the
   * library's thread). Bounded waits, so that {@link #finish} returns within a second and no
   * wait starts once the job is to be freed.
   */
  private static final class StateWatcher extends Thread {
    private final MemoryAddress job;
    private volatile int state = Glr.JOB_RUNNING;
    private volatile boolean stopped;
    private volatile RuntimeException failure;

    StateWatcher(MemoryAddress job) {
      super("job-state-watcher");
      this.job = job;
      setDaemon(true);
    }

    @Override
    public void run() {
      try {
        while (!stopped && state == Glr.JOB_RUNNING) {
          state = Glr.waitState(job, state, 1000);
        }
      } catch (RuntimeException e) {
        failure = e;
      }
    }

    int state() {
      if (failure != null) throw failure;
      return state;
    }

    /** Ends the watch; the job may be freed afterwards. */
    void finish() throws InterruptedException {
      stopped = true;
      join();
    }
  }

  public static void main(String[] argv) throws Exception {
    int steps = 3;
    int stepMs = 100;
    int leakCheck = 0;
    java.util.List<String> rest = new java.util.ArrayList<>();
    try {
      for (int i = 0; i < argv.length; i++) {
        switch (argv[i]) {
          case "--steps" -> steps = Integer.parseUnsignedInt(argv[++i]);
          case "--step-ms" -> stepMs = Integer.parseUnsignedInt(argv[++i]);
          case "--leak-check" -> leakCheck = Integer.parseUnsignedInt(argv[++i]);
          default -> rest.add(argv[i]);
        }
      }
    } catch (NumberFormatException | ArrayIndexOutOfBoundsException e) {
      rest.clear();
    }
    if (rest.size() != 2) {
      System.err.println(USAGE);
      System.exit(1);
    }
    try {
      System.exit(run(rest.get(0), rest.get(1), steps, stepMs, leakCheck));
    } catch (Glr.Failure e) {
      System.err.println("Runner: " + e.getMessage());
      System.exit(1);
    }
  }

  private static int run(String url, String token, int steps, int stepMs, int leakCheck) throws Exception {
    System.out.println("gitlab_runner_api " + Glr.version() + " from Java " + Runtime.version());
    MemoryAddress runner = Glr.register(url, token, "java example", "java");
    System.out.println("runner=" + Glr.runnerId(runner));
    try {
      new Runner(runner, steps, stepMs, leakCheck).takeAndRunJob();
    } finally {
      Glr.runnerFree(runner);
    }
    Glr.check("glr_shutdown", Glr.shutdown(5000), Glr::threadError);
    System.out.println("owned_taken=" + Glr.OWNED_TAKEN.get() + " owned_freed=" + Glr.OWNED_FREED.get());
    return Glr.OWNED_TAKEN.get() == Glr.OWNED_FREED.get() ? 0 : 1;
  }

  private void takeAndRunJob() throws Exception {
    MemoryAddress job;
    // A blocking long poll is fine on a Java thread; glr_runner_interrupt from another thread
    // would end it at once.
    while ((job = Glr.requestJob(runner)).equals(MemoryAddress.NULL)) {
      System.out.println("No job yet");
    }
    StateWatcher watcher = new StateWatcher(job);
    watcher.start();
    try {
      printJob(job);
      append(job, "Hello from Java " + Runtime.version() + " (jdk.incubator.foreign)\n");
      // A secret written to the log is masked by the library (the test checks the trace).
      append(job, "password: " + Glr.variable(job, "SECRET_PASSWORD") + "\n");
      boolean reported = report(job, runScript(job, watcher));
      watcher.join(); // the state changed (finished or canceled): the watcher has ended
      System.out.println(
          "result=" + (reported ? "reported" : "canceled") + " state=" + Glr.JOB_STATES[Glr.jobState(job)]);
      System.out.println("log_bytes=" + Glr.log(job).getBytes(java.nio.charset.StandardCharsets.UTF_8).length);
      showPerHandleError(job);
      if (leakCheck > 0) leakCheck(job);
    } finally {
      watcher.finish();
      Glr.jobFree(job);
    }
  }

  private static void printJob(MemoryAddress job) {
    System.out.println("job=" + Glr.jobId(job));
    String name = Glr.jobString(job, "name");
    System.out.println("name=" + name);
    System.out.println("ref=" + Glr.jobString(job, "ref") + " sha=" + Glr.jobString(job, "commit_sha"));
    System.out.println(
        "project=" + Glr.jobString(job, "project_path") + " pipeline=" + Glr.jobString(job, "pipeline_id"));
    long count = Glr.variableCount(job);
    System.out.println("variables=" + count);
    for (long i = 0; i < count; i++) {
      String key = Glr.variableKey(job, i);
      if (key.startsWith("CI_")) continue;
      boolean masked = (Glr.variableFlags(job, i) & Glr.VAR_MASKED) != 0;
      System.out.println("  " + key + "=" + (masked ? "[MASKED]" : '"' + Glr.variableValue(job, i).replace("\n", "\\n") + '"'));
    }
    // The payload is an owned string (Glr.payload reads it and frees it with glr_string_free).
    // The JDK has no JSON parser: a pattern finds job_info's name.
    Matcher m = Pattern.compile("\"job_info\"\\s*:\\s*\\{[^}]*?\"name\"\\s*:\\s*\"([^\"]*)\"").matcher(Glr.payload(job));
    System.out.println("payload_name_matches=" + (m.find() && m.group(1).equals(name)));
  }

  private static void append(MemoryAddress job, String text) {
    Glr.check("glr_job_log_append", Glr.logAppend(job, text), () -> Glr.jobError(job));
  }

  /** Runs the steps, stopping at a cancel; returns the state that stopped it (or running). */
  private int runScript(MemoryAddress job, StateWatcher watcher) throws InterruptedException {
    long lines = Glr.scriptCount(job);
    for (int step = 1; step <= steps; step++) {
      if (watcher.state() != Glr.JOB_RUNNING) break;
      String line = lines > 0 ? Glr.scriptLine(job, (step - 1) % lines) : "";
      append(job, "step " + step + " of " + steps + ": " + line + "\n");
      Thread.sleep(stepMs);
    }
    return watcher.state();
  }

  /** Reports the job; false when GitLab had stopped it (hard cancel). */
  private static boolean report(MemoryAddress job, int state) {
    if (state == Glr.JOB_CANCELED) return false;
    int status;
    if (state == Glr.JOB_CANCELING) {
      append(job, "after_script: cleaning up after the cancel\n");
      append(job, "ERROR: Job canceled\n");
      status = Glr.setFailed(job, Glr.FAILURE_UNKNOWN);
    } else {
      append(job, "Job succeeded\n");
      status = Glr.logFlush(job);
      if (status == Glr.OK) status = Glr.setSuccess(job);
    }
    if (status == Glr.ERR_JOB_CANCELED) return false; // a hard cancel that came meanwhile
    Glr.check("reporting the job", status, () -> Glr.jobError(job));
    return true;
  }

  /** A call failing on another thread leaves its message on the job, not on this thread. */
  private static void showPerHandleError(MemoryAddress job) throws InterruptedException {
    int[] status = new int[1];
    Thread late = new Thread(() -> status[0] = Glr.logAppend(job, "too late\n"));
    late.start();
    late.join();
    System.out.println("late_append_status=" + status[0]);
    System.out.println("late_append_thread_error=\"" + Glr.threadError() + '"');
    System.out.println("late_append_job_error=\"" + Glr.jobError(job) + '"');
  }

  private static long rssKib() throws java.io.IOException {
    Matcher m = Pattern.compile("VmRSS:\\s+(\\d+)").matcher(Files.readString(Path.of("/proc/self/status")));
    return m.find() ? Long.parseLong(m.group(1)) : -1;
  }

  /** Takes and frees `leakCheck` owned strings (payload, runner dump) twice; prints how much RSS grew. */
  private void leakCheck(MemoryAddress job) throws java.io.IOException {
    for (int i = 0; i < 500; i++) { // warm-up: the allocator, the JIT and the heap settle
      Glr.payload(job);
      Glr.runnerDumps(runner);
    }
    System.gc();
    long before = rssKib();
    int bytes = Glr.payload(job).length();
    for (int i = 0; i < leakCheck; i++) {
      Glr.payload(job);
      Glr.runnerDumps(runner);
    }
    System.gc();
    System.out.println("leak_check_strings=" + 2 * leakCheck + " leak_check_payload_bytes=" + bytes
        + " leak_check_rss_growth_kib=" + (rssKib() - before));
  }
}
