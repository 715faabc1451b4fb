import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodType;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import jdk.incubator.foreign.CLinker;
import jdk.incubator.foreign.FunctionDescriptor;
import jdk.incubator.foreign.MemoryAccess;
import jdk.incubator.foreign.MemoryAddress;
import jdk.incubator.foreign.MemoryLayout;
import jdk.incubator.foreign.MemorySegment;
import jdk.incubator.foreign.ResourceScope;
import jdk.incubator.foreign.SymbolLookup;

/**
 * The C library gitlab_runner_api seen from Java 17 through jdk.incubator.foreign: the
 * functions Runner.java uses and the rules a binding must keep (README, "Using it from other
 * languages"):
 *
 * <ul>
 *   <li>Owned strings ({@code char **} out-parameters: payload, dumps, log) are copied into Java
 *       strings and given back with glr_string_free ({@link #takeOwned}); never libc free().
 *       Borrowed {@code const char *} getters are copied ({@link #borrowed}) and never freed.
 *   <li>Errors are read from the handle (glr_job_last_error_message,
 *       glr_runner_last_error_message). Java threads are OS threads, so the thread-local
 *       glr_last_error_message would do on the calling thread too; the handle's message does
 *       whichever thread asks.
 *   <li>No callbacks here: Java could take upcalls on the library's thread, but everything a
 *       callback tells can be waited for on a thread of one's own (glr_job_wait_state).
 * </ul>
 *
 * Strings are decoded as UTF-8 by hand: Java 17's CLinker.toJavaString uses the platform charset.
 * Run with {@code --add-modules jdk.incubator.foreign --enable-native-access=ALL-UNNAMED}.
 */
final class Glr {
  static final int ABI_VERSION = 1; // GLR_ABI_VERSION of the header this file was written against

  static final int OK = 0;
  static final int ERR_JOB_CANCELED = -5;
  static final int JOB_RUNNING = 0;
  static final int JOB_CANCELING = 3;
  static final int JOB_CANCELED = 4;
  static final String[] JOB_STATES = {"running", "success", "failed", "canceling", "canceled"};
  static final int VAR_MASKED = 2;
  static final int FAILURE_UNKNOWN = 0;

  private static final CLinker LINKER = CLinker.getInstance();
  private static final SymbolLookup LIBRARY = load();

  private static SymbolLookup load() {
    String path = System.getenv("GITLAB_RUNNER_API_LIB");
    if (path != null && !path.isEmpty()) {
      System.load(path);
    } else {
      System.loadLibrary("gitlab_runner_api"); // libgitlab_runner_api.so on java.library.path
    }
    return SymbolLookup.loaderLookup();
  }

  /** A downcall handle: Java types MemoryAddress (any pointer), int (int32_t), long (int64_t, size_t). */
  private static MethodHandle fn(SymbolLookup lookup, String name, Class<?> ret, Class<?>... args) {
    List<MemoryLayout> layouts = new ArrayList<>();
    for (Class<?> arg : args) {
      layouts.add(layout(arg));
    }
    MemoryLayout[] argLayouts = layouts.toArray(new MemoryLayout[0]);
    FunctionDescriptor descriptor =
        ret == void.class ? FunctionDescriptor.ofVoid(argLayouts) : FunctionDescriptor.of(layout(ret), argLayouts);
    MemoryAddress symbol =
        lookup.lookup(name).orElseThrow(() -> new UnsatisfiedLinkError(name + " is not in the library"));
    return LINKER.downcallHandle(symbol, MethodType.methodType(ret, args), descriptor);
  }

  private static MethodHandle fn(String name, Class<?> ret, Class<?>... args) {
    return fn(LIBRARY, name, ret, args);
  }

  private static MemoryLayout layout(Class<?> type) {
    if (type == MemoryAddress.class) return CLinker.C_POINTER;
    if (type == int.class) return CLinker.C_INT;
    if (type == long.class) return CLinker.C_LONG; // 64 bits on Linux (LP64)
    throw new IllegalArgumentException(type.toString());
  }

  private static final Class<?> P = MemoryAddress.class;
  private static final Class<?> I = int.class;
  private static final Class<?> L = long.class;
  private static final Class<?> V = void.class;

  // library
  private static final MethodHandle VERSION = fn("glr_version", P);
  private static final MethodHandle ABI = fn("glr_abi_version", I);
  private static final MethodHandle STATUS_STR = fn("glr_status_str", P, I);
  private static final MethodHandle LAST_ERROR = fn("glr_last_error_message", L, P, L);
  private static final MethodHandle STRING_FREE = fn("glr_string_free", V, P);
  private static final MethodHandle SHUTDOWN = fn("glr_shutdown", I, L);
  private static final MethodHandle STRLEN = fn(CLinker.systemLookup(), "strlen", L, P);
  // registration
  private static final MethodHandle OPTIONS_NEW = fn("glr_register_options_new", I, P);
  private static final MethodHandle OPTIONS_FREE = fn("glr_register_options_free", V, P);
  private static final MethodHandle OPTIONS_DESCRIPTION = fn("glr_register_options_set_description", I, P, P);
  private static final MethodHandle OPTIONS_TAG = fn("glr_register_options_add_tag", I, P, P);
  private static final MethodHandle REGISTER = fn("glr_runner_register", I, P, P, P, P);
  // runner
  private static final MethodHandle RUNNER_ERROR = fn("glr_runner_last_error_message", L, P, P, L);
  private static final MethodHandle REQUEST_JOB = fn("glr_runner_request_job", I, P, P);
  private static final MethodHandle RUNNER_DUMPS = fn("glr_runner_dumps", I, P, P);
  private static final MethodHandle RUNNER_ID = fn("glr_runner_id", L, P);
  private static final MethodHandle RUNNER_FREE = fn("glr_runner_free", V, P);
  // job
  private static final MethodHandle JOB_ERROR = fn("glr_job_last_error_message", L, P, P, L);
  private static final MethodHandle JOB_ID = fn("glr_job_id", L, P);
  private static final MethodHandle JOB_STATE = fn("glr_job_state", I, P);
  private static final MethodHandle WAIT_STATE = fn("glr_job_wait_state", I, P, I, L, P);
  private static final MethodHandle SCRIPT_COUNT = fn("glr_job_script_count", L, P);
  private static final MethodHandle SCRIPT_LINE = fn("glr_job_script_line", P, P, L);
  private static final MethodHandle VARIABLE_COUNT = fn("glr_job_variable_count", L, P);
  private static final MethodHandle VARIABLE_KEY = fn("glr_job_variable_key", P, P, L);
  private static final MethodHandle VARIABLE_VALUE = fn("glr_job_variable_value", P, P, L);
  private static final MethodHandle VARIABLE_FLAGS = fn("glr_job_variable_flags", I, P, L);
  private static final MethodHandle VARIABLE = fn("glr_job_variable", P, P, P);
  private static final MethodHandle PAYLOAD = fn("glr_job_payload", I, P, P);
  private static final MethodHandle LOG = fn("glr_job_log", I, P, P, P);
  private static final MethodHandle LOG_APPEND = fn("glr_job_log_append", I, P, P, L);
  private static final MethodHandle LOG_FLUSH = fn("glr_job_log_flush", I, P);
  private static final MethodHandle SET_SUCCESS = fn("glr_job_set_success", I, P, P);
  private static final MethodHandle SET_FAILED = fn("glr_job_set_failed", I, P, I, P);
  private static final MethodHandle JOB_FREE = fn("glr_job_free", V, P);
  /** The job getters of one borrowed string, by their C name. */
  private static final java.util.Map<String, MethodHandle> JOB_STRINGS = new java.util.HashMap<>();

  static {
    for (String name : new String[] {"name", "ref", "commit_sha", "project_path", "pipeline_id"}) {
      JOB_STRINGS.put(name, fn("glr_job_" + name, P, P));
    }
    if (abiVersion() != ABI_VERSION) {
      throw new IllegalStateException(
          "libgitlab_runner_api has ABI " + abiVersion() + ", this binding was written for " + ABI_VERSION);
    }
  }

  private Glr() {}

  /** Calls a downcall handle; the library's functions throw nothing, so neither does this. */
  private static Object call(MethodHandle handle, Object... args) {
    try {
      return handle.invokeWithArguments(args);
    } catch (Throwable e) {
      throw new IllegalStateException(e);
    }
  }

  /** A failed call: what, the status's name and the library's message. */
  static final class Failure extends RuntimeException {
    private static final long serialVersionUID = 1L;
    final int status;

    Failure(String what, int status, String message) {
      super(what + ": " + borrowed((MemoryAddress) call(STATUS_STR, status)) + " (" + status + "): " + message);
      this.status = status;
    }
  }

  /** Throws Glr.Failure unless `status` is OK; `message` is read only then. */
  static void check(String what, int status, java.util.function.Supplier<String> message) {
    if (status != OK) throw new Failure(what, status, message.get());
  }

  // ---- strings ---------------------------------------------------------------------------

  /** A borrowed {@code const char *} as a Java string (null for NULL): copied, never freed. */
  static String borrowed(MemoryAddress p) {
    if (p.equals(MemoryAddress.NULL)) return null;
    return utf8(p, (long) call(STRLEN, p));
  }

  private static String utf8(MemoryAddress p, long length) {
    try (ResourceScope scope = ResourceScope.newConfinedScope()) {
      byte[] bytes = p.asSegment(length, scope).toByteArray();
      return new String(bytes, StandardCharsets.UTF_8);
    }
  }

  static final AtomicLong OWNED_TAKEN = new AtomicLong();
  static final AtomicLong OWNED_FREED = new AtomicLong();

  /**
   * Reads the owned string an out-parameter received and gives it back with glr_string_free,
   * whatever happens while reading. `length` < 0: NUL-terminated.
   */
  static String takeOwned(MemorySegment out, long length) {
    MemoryAddress p = MemoryAccess.getAddress(out);
    OWNED_TAKEN.incrementAndGet();
    try {
      return utf8(p, length >= 0 ? length : (long) call(STRLEN, p));
    } finally {
      call(STRING_FREE, p);
      OWNED_FREED.incrementAndGet();
    }
  }

  /** A pointer-sized out-parameter. */
  static MemorySegment outPointer(ResourceScope scope) {
    return MemorySegment.allocateNative(CLinker.C_POINTER, scope);
  }

  private static MemoryAddress cString(String s, ResourceScope scope) {
    byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
    MemorySegment segment = MemorySegment.allocateNative(bytes.length + 1, scope); // zero-filled: NUL at the end
    segment.copyFrom(MemorySegment.ofArray(bytes));
    return segment.address();
  }

  /** A message copied out snprintf-style (the first call asks for the length). */
  private static String copyMessage(java.util.function.BiFunction<MemoryAddress, Long, Long> read) {
    long length = read.apply(MemoryAddress.NULL, 0L);
    if (length == 0) return "";
    try (ResourceScope scope = ResourceScope.newConfinedScope()) {
      MemorySegment buf = MemorySegment.allocateNative(length + 1, scope);
      read.apply(buf.address(), length + 1);
      return utf8(buf.address(), length);
    }
  }

  static String threadError() {
    return copyMessage((buf, len) -> (long) call(LAST_ERROR, buf, len));
  }

  static String jobError(MemoryAddress job) {
    return copyMessage((buf, len) -> (long) call(JOB_ERROR, job, buf, len));
  }

  static String runnerError(MemoryAddress runner) {
    return copyMessage((buf, len) -> (long) call(RUNNER_ERROR, runner, buf, len));
  }

  // ---- library and runner ----------------------------------------------------------------

  static String version() {
    return borrowed((MemoryAddress) call(VERSION));
  }

  static int abiVersion() {
    return (int) call(ABI);
  }

  static int shutdown(long timeoutMs) {
    return (int) call(SHUTDOWN, timeoutMs);
  }

  /** Registers a runner (no handle yet: a failure is read from this thread's slot). */
  static MemoryAddress register(String url, String token, String description, String tag) {
    try (ResourceScope scope = ResourceScope.newConfinedScope()) {
      MemorySegment options = outPointer(scope);
      check("glr_register_options_new", (int) call(OPTIONS_NEW, options.address()), Glr::threadError);
      MemoryAddress opts = MemoryAccess.getAddress(options);
      try {
        check("set_description", (int) call(OPTIONS_DESCRIPTION, opts, cString(description, scope)), Glr::threadError);
        check("add_tag", (int) call(OPTIONS_TAG, opts, cString(tag, scope)), Glr::threadError);
        MemorySegment runner = outPointer(scope);
        int status = (int) call(REGISTER, cString(url, scope), cString(token, scope), opts, runner.address());
        check("glr_runner_register", status, Glr::threadError);
        return MemoryAccess.getAddress(runner);
      } finally {
        call(OPTIONS_FREE, opts);
      }
    }
  }

  /** One job request (long-polls); NULL when there is no job now. */
  static MemoryAddress requestJob(MemoryAddress runner) {
    try (ResourceScope scope = ResourceScope.newConfinedScope()) {
      MemorySegment out = outPointer(scope);
      check("glr_runner_request_job", (int) call(REQUEST_JOB, runner, out.address()), () -> runnerError(runner));
      return MemoryAccess.getAddress(out);
    }
  }

  static long runnerId(MemoryAddress runner) {
    return (long) call(RUNNER_ID, runner);
  }

  static String runnerDumps(MemoryAddress runner) {
    try (ResourceScope scope = ResourceScope.newConfinedScope()) {
      MemorySegment out = outPointer(scope);
      check("glr_runner_dumps", (int) call(RUNNER_DUMPS, runner, out.address()), () -> runnerError(runner));
      return takeOwned(out, -1);
    }
  }

  static void runnerFree(MemoryAddress runner) {
    call(RUNNER_FREE, runner);
  }

  // ---- job -------------------------------------------------------------------------------

  static long jobId(MemoryAddress job) {
    return (long) call(JOB_ID, job);
  }

  /** A borrowed string getter of the job, by its C name without glr_job_ ("name", "ref"...). */
  static String jobString(MemoryAddress job, String getter) {
    return borrowed((MemoryAddress) call(JOB_STRINGS.get(getter), job));
  }

  static int jobState(MemoryAddress job) {
    return (int) call(JOB_STATE, job);
  }

  /** Waits up to `timeoutMs` for the state to differ from `known`; returns the state then. */
  static int waitState(MemoryAddress job, int known, long timeoutMs) {
    try (ResourceScope scope = ResourceScope.newConfinedScope()) {
      MemorySegment out = MemorySegment.allocateNative(CLinker.C_INT, scope);
      check("glr_job_wait_state", (int) call(WAIT_STATE, job, known, timeoutMs, out.address()), () -> jobError(job));
      return MemoryAccess.getInt(out);
    }
  }

  static long scriptCount(MemoryAddress job) {
    return (long) call(SCRIPT_COUNT, job);
  }

  static String scriptLine(MemoryAddress job, long index) {
    return borrowed((MemoryAddress) call(SCRIPT_LINE, job, index));
  }

  static long variableCount(MemoryAddress job) {
    return (long) call(VARIABLE_COUNT, job);
  }

  static String variableKey(MemoryAddress job, long index) {
    return borrowed((MemoryAddress) call(VARIABLE_KEY, job, index));
  }

  static String variableValue(MemoryAddress job, long index) {
    return borrowed((MemoryAddress) call(VARIABLE_VALUE, job, index));
  }

  static int variableFlags(MemoryAddress job, long index) {
    return (int) call(VARIABLE_FLAGS, job, index);
  }

  static String variable(MemoryAddress job, String key) {
    try (ResourceScope scope = ResourceScope.newConfinedScope()) {
      return borrowed((MemoryAddress) call(VARIABLE, job, cString(key, scope)));
    }
  }

  static String payload(MemoryAddress job) {
    try (ResourceScope scope = ResourceScope.newConfinedScope()) {
      MemorySegment out = outPointer(scope);
      check("glr_job_payload", (int) call(PAYLOAD, job, out.address()), () -> jobError(job));
      return takeOwned(out, -1);
    }
  }

  static String log(MemoryAddress job) {
    try (ResourceScope scope = ResourceScope.newConfinedScope()) {
      MemorySegment out = outPointer(scope);
      MemorySegment length = MemorySegment.allocateNative(CLinker.C_LONG, scope);
      check("glr_job_log", (int) call(LOG, job, out.address(), length.address()), () -> jobError(job));
      return takeOwned(out, MemoryAccess.getLong(length));
    }
  }

  /** Appends to the job's log; returns the status (callers check it). */
  static int logAppend(MemoryAddress job, String text) {
    byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
    try (ResourceScope scope = ResourceScope.newConfinedScope()) {
      MemorySegment data = MemorySegment.allocateNative(Math.max(1, bytes.length), scope);
      data.copyFrom(MemorySegment.ofArray(bytes));
      return (int) call(LOG_APPEND, job, data.address(), (long) bytes.length);
    }
  }

  static int logFlush(MemoryAddress job) {
    return (int) call(LOG_FLUSH, job);
  }

  static int setSuccess(MemoryAddress job) {
    return (int) call(SET_SUCCESS, job, MemoryAddress.NULL);
  }

  static int setFailed(MemoryAddress job, int reason) {
    return (int) call(SET_FAILED, job, reason, MemoryAddress.NULL);
  }

  static void jobFree(MemoryAddress job) {
    call(JOB_FREE, job);
  }
}
