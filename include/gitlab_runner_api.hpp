/**
 * @file gitlab_runner_api.hpp
 * @brief C++17 wrapper of gitlab_runner_api.h: RAII handles, exceptions, `std::string_view`,
 *        `std::optional` and ranges over a job's script lines and variables.
 *
 * Header-only: include it instead of (or after) gitlab_runner_api.h and link the same library
 * (`-lgitlab_runner_api`, or the CMake target `gitlab_runner_api::gitlab_runner_api`). It adds no
 * behaviour: every member is one call of the C function named in its documentation, whose
 * documentation in gitlab_runner_api.h (errors, blocking, network use) applies.
 *
 * @code
 * glr::Runner runner = glr::Runner::load("runner.json");
 * runner.check_auth();
 * if (std::optional<glr::Job> job = runner.request_job()) {
 *     job->append_log("Starting job " + std::to_string(job->id()) + "\n");
 *     for (std::string_view line : job->script())
 *         run(line, *job);                    // your executor
 *     job->set_success();
 * }
 * @endcode
 *
 * @par Ownership
 * glr::Runner, glr::Job, glr::RegisterOptions and glr::Artifacts own one C handle each and free
 * it in their destructor. They are move-only; a moved-from object holds no handle (its getters
 * return the C API's defaults, its operations throw glr::Error with #GLR_ERR_NULL_ARGUMENT).
 * get() lends the C handle, release() gives it up (the caller then frees it with the C function).
 *
 * @par Strings
 * Arguments are `std::string_view`, copied into a NUL-terminated string for the call (a view
 * holding a NUL byte is rejected with #GLR_ERR_INVALID_ARGUMENT, except log text, which may hold
 * any bytes). Getters return `std::string_view`s borrowed from the handle: valid until the
 * handle is destroyed or moved into another object's assignment, like the C getters' pointers.
 * Values GitLab did not send are `std::nullopt`. Strings the C API hands out (dumps, log,
 * payload) are returned as `std::string` and released with glr_string_free() at once.
 *
 * @par Errors
 * A failed C call throws glr::Error carrying its ::glr_status (status()), the library's message
 * (message(), read from glr_last_error_message() on the calling thread right after the call) and
 * the C function's name (function()). #GLR_ERR_AUTH, #GLR_ERR_JOB_CANCELED,
 * #GLR_ERR_ALREADY_FINISHED, #GLR_ERR_NOT_OWNER, #GLR_ERR_TIMEOUT and #GLR_ERR_INTERRUPTED throw
 * the subclasses glr::AuthError, glr::JobCanceledError, glr::AlreadyFinishedError,
 * glr::NotOwnerError, glr::TimeoutError and glr::InterruptedError. Getters never throw: when their default (std::nullopt, 0, an empty
 * view) could also be a valid value, glr::last_error_code() or glr::check_last_error() right
 * after the getter tells a failure (a moved-from object, an index out of range) apart.
 *
 * @par Diagnostics
 * glr::set_log_callback() takes any callable (a `std::function`) for the library's log lines;
 * it is called on the library's event thread "glr-events", one line at a time, never with a
 * library lock held. Replacing it is a sync point: it returns once the lines logged before
 * went to the previous callback.
 *
 * @par Coverage
 * Every function of gitlab_runner_api.h is called here, or listed at the end of this file as
 * not wrapped, with the reason; tests/cpp_wrapper_coverage.rs checks both ways.
 *
 * @par Threads
 * As the C API: one object may be used from several threads at once, except for assignment and
 * destruction, which must not race with any other use of the same object (to end a
 * request_job() on another thread, use Runner::interrupt()). Callbacks (log and cancel) run on
 * the library's event thread "glr-events", one at a time.
 *
 * @par One writer per job
 * Job::hand_over_dump() / hand_over_dumps() pass a job to another process and make the handle a
 * watcher (Job::watch_load() / watch_loads() make one from a dump); glr::shutdown() uploads
 * what every job still holds before the process exits.
 */

#ifndef GLR_HPP
#define GLR_HPP

#if defined(_MSVC_LANG)
#if _MSVC_LANG < 201703L
#error "gitlab_runner_api.hpp needs C++17 or later (/std:c++17); from C or C++11, use gitlab_runner_api.h"
#endif
#elif !defined(__cplusplus) || __cplusplus < 201703L
#error "gitlab_runner_api.hpp needs C++17 or later (e.g. -std=c++17); from C or C++11, use gitlab_runner_api.h"
#endif

#include "gitlab_runner_api.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <vector>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

/** The C++ API of gitlab_runner_api. */
namespace glr {

// ---- errors -----------------------------------------------------------------------------------

/**
 * A failed call of the C API: its status, the library's message and the C function's name.
 * what() is "<function>: <status description> (<status>): <message>".
 */
class Error : public std::runtime_error {
  public:
    /** An error of `function` with `status` and the library's `message`. */
    Error(glr_status status, std::string function, std::string message)
        : std::runtime_error(function + ": " + glr_status_str(status) + " (" + std::to_string(status) + ")" +
                             (message.empty() ? std::string() : ": " + message)),
          status_(status), function_(std::move(function)), message_(std::move(message)) {}

    /** The `GLR_ERR_*` status the C function returned. */
    glr_status status() const noexcept { return status_; }
    /** The C function that failed, e.g. "glr_runner_register". */
    const std::string &function() const noexcept { return function_; }
    /** The library's message for this failure (glr_last_error_message()); never holds a token. */
    const std::string &message() const noexcept { return message_; }

  private:
    glr_status status_;
    std::string function_;
    std::string message_;
};

/** #GLR_ERR_AUTH: GitLab rejected the runner token or the registration token. */
class AuthError : public Error {
  public:
    using Error::Error;
};

/** #GLR_ERR_JOB_CANCELED: GitLab stopped the job; it can no longer be reported. */
class JobCanceledError : public Error {
  public:
    using Error::Error;
};

/** #GLR_ERR_ALREADY_FINISHED: the job was already reported successful or failed. */
class AlreadyFinishedError : public Error {
  public:
    using Error::Error;
};

/** #GLR_ERR_NOT_OWNER: this handle does not write the job's log (a watcher, a handed-over job, or
 *  a fork()ed child's copy of its parent's job). */
class NotOwnerError : public Error {
  public:
    using Error::Error;
};

/** #GLR_ERR_TIMEOUT: the call's own bound ran out (Runner::set_call_timeout(),
 *  Job::set_call_timeout(), glr::shutdown()). */
class TimeoutError : public Error {
  public:
    using Error::Error;
};

/** #GLR_ERR_INTERRUPTED: another thread ended the call (Runner::interrupt(), or the handle was
 *  freed meanwhile through the C API). */
class InterruptedError : public Error {
  public:
    using Error::Error;
};

/** Implementation details; not part of the API. */
namespace detail {

/** The calling thread's last error message (glr_last_error_message()). */
inline std::string last_error_message() {
    std::string message(glr_last_error_message(nullptr, 0), '\0');
    if (!message.empty())
        glr_last_error_message(message.data(), message.size() + 1); // writes the NUL at data()[size()]
    return message;
}

/** Throws the exception for `status`, returned by the C function `function`. */
[[noreturn]] inline void fail(glr_status status, const char *function) {
    std::string message = last_error_message(); // first: any other call would clear it
    switch (status) {
    case GLR_ERR_AUTH:
        throw AuthError(status, function, std::move(message));
    case GLR_ERR_JOB_CANCELED:
        throw JobCanceledError(status, function, std::move(message));
    case GLR_ERR_ALREADY_FINISHED:
        throw AlreadyFinishedError(status, function, std::move(message));
    case GLR_ERR_NOT_OWNER:
        throw NotOwnerError(status, function, std::move(message));
    case GLR_ERR_TIMEOUT:
        throw TimeoutError(status, function, std::move(message));
    case GLR_ERR_INTERRUPTED:
        throw InterruptedError(status, function, std::move(message));
    default:
        throw Error(status, function, std::move(message));
    }
}

/** Throws unless `status` is #GLR_OK. */
inline void check(glr_status status, const char *function) {
    if (status != GLR_OK)
        fail(status, function);
}

/** A NUL-terminated copy of a string argument (NULL for std::nullopt). */
class CString {
  public:
    /** Copies `value`; a NUL byte inside it is an error of `function`. */
    CString(std::string_view value, const char *function) : value_(value) {
        if (value_.find('\0') != std::string::npos)
            throw Error(GLR_ERR_INVALID_ARGUMENT, function, "a string argument contains a NUL byte");
    }
    /** Copies `value`, or stands for NULL when it is std::nullopt. */
    CString(std::optional<std::string_view> value, const char *function)
        : CString(value.value_or(std::string_view()), function) {
        null_ = !value.has_value();
    }
    /** The string for the C call (NULL for std::nullopt). */
    const char *c_str() const noexcept { return null_ ? nullptr : value_.c_str(); }

  private:
    std::string value_;
    bool null_ = false;
};

/** A borrowed C string as a view (empty for NULL). */
inline std::string_view view(const char *s) noexcept { return s ? std::string_view(s) : std::string_view(); }

/** A borrowed C string as an optional view (std::nullopt for NULL). */
inline std::optional<std::string_view> optional_view(const char *s) noexcept {
    if (s == nullptr)
        return std::nullopt;
    return std::string_view(s);
}

/** The C API's 1 / 0 / -1 (unknown) as an optional bool. */
inline std::optional<bool> optional_bool(int32_t value) noexcept {
    if (value < 0)
        return std::nullopt;
    return value != 0;
}

/** Frees a string the library handed out. */
struct StringDeleter {
    /** glr_string_free(s). */
    void operator()(char *s) const noexcept { glr_string_free(s); }
};

/** Takes a string the library handed out: copies it and frees it. */
inline std::string take(char *s, std::size_t len) {
    std::unique_ptr<char, StringDeleter> owned(s);
    return s ? std::string(s, len) : std::string();
}

/** Takes a NUL-terminated string the library handed out. */
inline std::string take(char *s) {
    std::unique_ptr<char, StringDeleter> owned(s);
    return s ? std::string(s) : std::string();
}

/** Deleter of a C handle type: its `*_free` function. */
template <typename T, void (*Free)(T *)> struct HandleDeleter {
    /** Free(p). */
    void operator()(T *p) const noexcept { Free(p); }
};

/**
 * A read-only random-access view of `count(handle)` elements `at(handle, index)` of a handle
 * (script lines, tags, variables), valid while the handle lives.
 */
template <typename Handle, typename Value> class IndexedView {
  public:
    /** How many elements `handle` has. */
    using CountFn = std::size_t (*)(const Handle *);
    /** Element `index` of `handle`. */
    using AtFn = Value (*)(const Handle *, std::size_t);

    /** Iterates over the elements in order, yielding them by value. */
    class iterator {
      public:
        using iterator_category = std::input_iterator_tag; ///< Yields values, not references.
        using value_type = Value;                          ///< The element type.
        using difference_type = std::ptrdiff_t;            ///< Distance between positions.
        using pointer = void;                              ///< No element lives in the view.
        using reference = Value;                           ///< Elements are returned by value.

        iterator() = default;
        /** Position `index` of `view`. */
        iterator(const IndexedView *view, std::size_t index) noexcept : view_(view), index_(index) {}
        /** The element at this position. */
        Value operator*() const { return (*view_)[index_]; }
        /** Next position. */
        iterator &operator++() noexcept {
            ++index_;
            return *this;
        }
        /** Next position (postfix). */
        iterator operator++(int) noexcept {
            iterator before = *this;
            ++index_;
            return before;
        }
        /** Same position. */
        bool operator==(const iterator &other) const noexcept { return index_ == other.index_; }
        /** Different position. */
        bool operator!=(const iterator &other) const noexcept { return index_ != other.index_; }

      private:
        const IndexedView *view_ = nullptr;
        std::size_t index_ = 0;
    };

    /** A view of `handle`'s elements (counted once, here). */
    IndexedView(const Handle *handle, CountFn count, AtFn at) noexcept
        : handle_(handle), at_(at), size_(count(handle)) {}

    /** Number of elements. */
    std::size_t size() const noexcept { return size_; }
    /** Whether there is none. */
    bool empty() const noexcept { return size_ == 0; }
    /** Element `index` (< size()). */
    Value operator[](std::size_t index) const { return at_(handle_, index); }
    /** First position. */
    iterator begin() const noexcept { return iterator(this, 0); }
    /** Past the last position. */
    iterator end() const noexcept { return iterator(this, size_); }

  private:
    const Handle *handle_;
    AtFn at_;
    std::size_t size_;
};

} // namespace detail

/**
 * The status of the calling thread's last failure, or #GLR_OK if the last library call succeeded
 * (glr_last_error_code()). Read it right after the call, on the same thread, before any other
 * call of the library (most calls clear it). For getters, whose default may be a valid value.
 */
inline glr_status last_error_code() noexcept { return glr_last_error_code(); }

/**
 * Throws the calling thread's last failure as the failing call would have (glr::Error or its
 * subclass, with glr_last_error_code(), glr_last_error_message() and `function`, the C function
 * called); does nothing if the last library call succeeded. Call it right after a getter, e.g.
 * `auto size = job.dependency_artifacts_size(i); glr::check_last_error("glr_job_dependency_artifacts_size");`.
 */
inline void check_last_error(const char *function) {
    glr_status status = glr_last_error_code();
    if (status != GLR_OK)
        detail::fail(status, function);
}

// ---- versions and constants ----------------------------------------------------------------------

/** The loaded library's version, e.g. "0.1.0" (glr_version()). */
inline std::string_view version() noexcept { return glr_version(); }

/** The loaded library's ABI version (glr_abi_version()). */
inline uint32_t abi_version() noexcept { return glr_abi_version(); }

/**
 * Throws glr::Error (#GLR_ERR_INVALID_ARGUMENT) unless the loaded library has the ABI of this
 * header (#GLR_ABI_VERSION): call it once at start-up when the library may be another build.
 */
inline void check_abi_version() {
    if (glr_abi_version() != GLR_ABI_VERSION)
        throw Error(GLR_ERR_INVALID_ARGUMENT, "glr_abi_version",
                    "the library has ABI " + std::to_string(glr_abi_version()) + ", this header " +
                        std::to_string(GLR_ABI_VERSION));
}

/** A short description of a status code (glr_status_str()). */
inline std::string_view status_str(glr_status status) noexcept { return glr_status_str(status); }

/** A job's state (glr_job_state()). */
enum class JobState : int32_t {
    running = GLR_JOB_RUNNING,     ///< Running.
    success = GLR_JOB_SUCCESS,     ///< Reported successful.
    failed = GLR_JOB_FAILED,       ///< Reported failed.
    canceling = GLR_JOB_CANCELING, ///< GitLab asks for a graceful stop: run after_script, then finish.
    canceled = GLR_JOB_CANCELED,   ///< GitLab stopped the job: it can no longer be reported.
};

/** "running", "success", "failed", "canceling" or "canceled". */
inline std::string_view to_string(JobState state) noexcept {
    switch (state) {
    case JobState::running:
        return "running";
    case JobState::success:
        return "success";
    case JobState::failed:
        return "failed";
    case JobState::canceling:
        return "canceling";
    case JobState::canceled:
        return "canceled";
    }
    return "unknown";
}

/** Why a job failed, in GitLab's numbering (the `GLR_FAILURE_*` constants). */
enum class FailureReason : int32_t {
    unknown = GLR_FAILURE_UNKNOWN,                                       ///< unknown_failure
    script = GLR_FAILURE_SCRIPT,                                         ///< script_failure
    api = GLR_FAILURE_API,                                               ///< api_failure
    stuck_or_timeout = GLR_FAILURE_STUCK_OR_TIMEOUT,                     ///< stuck_or_timeout_failure
    runner_system = GLR_FAILURE_RUNNER_SYSTEM,                           ///< runner_system_failure
    missing_dependency = GLR_FAILURE_MISSING_DEPENDENCY,                 ///< missing_dependency_failure
    runner_unsupported = GLR_FAILURE_RUNNER_UNSUPPORTED,                 ///< runner_unsupported
    job_execution_timeout = GLR_FAILURE_JOB_EXECUTION_TIMEOUT,           ///< job_execution_timeout
    runner_configuration_error = GLR_FAILURE_RUNNER_CONFIGURATION_ERROR, ///< runner_configuration_error
    runner_external_dependency = GLR_FAILURE_RUNNER_EXTERNAL_DEPENDENCY, ///< runner_external_dependency_failure
    runner_interrupted = GLR_FAILURE_RUNNER_INTERRUPTED,                 ///< runner_interrupted
};

/** GitLab's name of a failure reason, e.g. "script_failure" (glr_failure_reason_str()). */
inline std::string_view to_string(FailureReason reason) noexcept {
    return detail::view(glr_failure_reason_str(static_cast<glr_failure_reason>(reason)));
}

// ---- diagnostics -------------------------------------------------------------------------------------

/** The severity of a diagnostics line (the `GLR_LOG_*` constants): smaller is more severe. */
enum class LogLevel : int32_t {
    error = GLR_LOG_ERROR, ///< Something failed (or an internal panic was caught).
    warn = GLR_LOG_WARN,   ///< Something unexpected the library worked around (a retry, a resync).
    info = GLR_LOG_INFO,   ///< A notable step (a request, a job received or finished).
    debug = GLR_LOG_DEBUG, ///< Detail for debugging the library.
};

/** "error", "warn", "info" or "debug". */
inline std::string_view to_string(LogLevel level) noexcept {
    switch (level) {
    case LogLevel::error:
        return "error";
    case LogLevel::warn:
        return "warn";
    case LogLevel::info:
        return "info";
    case LogLevel::debug:
        return "debug";
    }
    return "unknown";
}

/** Receives one diagnostics line: its level and its text, without a newline, borrowed for the call. */
using LogCallback = std::function<void(LogLevel level, std::string_view message)>;

namespace detail {

/** How deep the calling thread is in callbacks the library called through this wrapper (log
 *  and cancel trampolines): non-zero only on the library's event thread "glr-events". */
inline int &callback_depth() noexcept {
    static thread_local int depth = 0;
    return depth;
}

/** Marks the calling thread as running a library callback while it lives. */
class InCallback {
  public:
    InCallback() noexcept { ++callback_depth(); }
    ~InCallback() { --callback_depth(); }
    InCallback(const InCallback &) = delete;
    InCallback &operator=(const InCallback &) = delete;
};

/**
 * One callback given to glr::set_log_callback(), passed to the library as its userdata. Its
 * callback is destroyed once replaced and no call of it can be running, but the holder itself
 * is never freed: a line the library was logging at the very moment of the replacement may
 * still reach the trampoline afterwards, and then finds the holder empty and is dropped
 * (a few dozen bytes kept per replacement).
 */
struct LogCallbackHolder {
    /** Held while the callback runs and to empty the holder. Recursive: without an event
     *  thread (a fork() too deep), the library runs callbacks inline, possibly nested. */
    std::recursive_mutex mutex;
    std::unique_ptr<const LogCallback> callback; ///< Empty once replaced.
};

/** What the wrapper knows of the library's log callback. */
struct LogCallbackState {
    /** One replacement from outside callbacks at a time. Held while the library waits for the
     *  event thread, so never taken on it (replacements from callbacks do not take it). */
    std::mutex replacing;
    /** Guards the members below; never held while the library waits. */
    std::mutex mutex;
    LogCallbackHolder *installed = nullptr;              ///< What the library calls now (NULL: none).
    std::vector<LogCallbackHolder *> retired;            ///< Replaced; callback not yet destroyed.
    std::vector<std::unique_ptr<LogCallbackHolder>> all; ///< Every holder made (never freed).
    uint64_t replaced_from_callbacks = 0;                ///< Replacements made on the event thread.
};

/** The process's one state. Allocated once and never freed: the library's threads may log
 *  while static objects are destroyed at exit. */
inline LogCallbackState &log_callback_state() {
    static LogCallbackState *const state = new LogCallbackState();
    return *state;
}

/** The C callback: calls the holder's callback, if it still has one. */
inline void log_trampoline(void *userdata, int32_t level, const char *message) noexcept {
    InCallback in_callback;
    try {
        auto *holder = static_cast<LogCallbackHolder *>(userdata);
        std::lock_guard<std::recursive_mutex> lock(holder->mutex);
        if (holder->callback)
            (*holder->callback)(static_cast<LogLevel>(level), view(message));
    } catch (...) {
        // Nothing may unwind into the library.
    }
}

/** glr_set_log_callback() with `holder` (NULL: none). Off the event thread, returns once every
 *  line logged before was delivered and no call of the previous callback is running. */
inline void install_log_callback(LogCallbackHolder *holder) noexcept {
    glr_set_log_callback(holder ? log_trampoline : nullptr, holder);
}

/**
 * Installs `next` (NULL: none) from outside callbacks and returns the callbacks that can be
 * destroyed now. When a callback replaces the log callback while the library waits here (on
 * the event thread, without waiting itself), which of the two the library kept is unknown:
 * `next` is installed again over the callback's choice, and the wait repeated, so that the
 * caller returns with its own callback installed.
 */
inline std::vector<std::unique_ptr<const LogCallback>> replace_log_callback(LogCallbackHolder *next) {
    LogCallbackState &s = log_callback_state();
    std::vector<LogCallbackHolder *> finished;
    {
        std::lock_guard<std::mutex> replacing(s.replacing);
        uint64_t seen = 0;
        {
            std::lock_guard<std::mutex> lock(s.mutex);
            seen = s.replaced_from_callbacks;
        }
        for (;;) {
            install_log_callback(next); // waits for the event thread
            std::lock_guard<std::mutex> lock(s.mutex);
            if (s.installed != next) {
                if (s.installed)
                    s.retired.push_back(s.installed);
                s.installed = next;
            }
            if (s.replaced_from_callbacks == seen) {
                // Each was replaced before the wait that just ended began: none can run now.
                finished.swap(s.retired);
                break;
            }
            seen = s.replaced_from_callbacks;
        }
    }
    // Emptied with no other lock held: a straggling line may hold a holder's lock, and its
    // callback may replace the log callback (which takes `s.mutex`).
    std::vector<std::unique_ptr<const LogCallback>> callbacks;
    for (LogCallbackHolder *holder : finished) {
        std::lock_guard<std::recursive_mutex> lock(holder->mutex);
        callbacks.push_back(std::move(holder->callback));
    }
    return callbacks;
}

} // namespace detail

/**
 * Sends the library's diagnostics to `callback`, replacing the previous callback; an empty
 * function turns them off (back to the `GLR_LOG` environment variable's behaviour)
 * (glr_set_log_callback()). It receives every level: filter in it.
 *
 * Threads: `callback` runs on the library's event thread "glr-events", one line at a time and
 * in the order they were logged (the same thread runs the cancel callbacks, one callback at a
 * time), never on the thread that logged and never with a library lock held: it may call any
 * library function (they only touch that thread's last error). A slow callback delays other
 * callbacks, never an upload. An exception leaving it is caught and dropped.
 *
 * Replacement is a sync point: called outside callbacks, set_log_callback() returns once every
 * line logged before it was delivered to the previous callback, no call of that callback is
 * running, and it has been destroyed (on the calling thread). So `glr::set_log_callback({})`
 * before reading what a callback collected sees every line logged until then. Do not make a
 * callback wait for a thread that is calling set_log_callback(): that thread waits for it.
 *
 * From inside a callback this wrapper called (log or cancel), set_log_callback() returns at
 * once; lines logged before may still go to the previous callback afterwards, and it is
 * destroyed during the next replacement made outside callbacks. When such a replacement
 * happens while a call outside callbacks waits, the outside call's callback is the one left
 * installed. (From a callback given to the C API directly, the wrapper cannot tell it runs in a
 * callback and could deadlock with another thread's replacement: don't.) Do not mix with
 * glr_set_log_callback(): each replaces the other's callback.
 */
inline void set_log_callback(LogCallback callback) {
    detail::LogCallbackState &s = detail::log_callback_state();
    detail::LogCallbackHolder *next = nullptr;
    if (callback) {
        auto holder = std::make_unique<detail::LogCallbackHolder>();
        holder->callback = std::make_unique<const LogCallback>(std::move(callback));
        next = holder.get();
        std::lock_guard<std::mutex> lock(s.mutex);
        s.all.push_back(std::move(holder));
    }
    if (detail::callback_depth() > 0) {
        // On the event thread: the library does not wait (it would wait for this very call),
        // and lines for the previous callback may still be queued: it is destroyed later.
        std::lock_guard<std::mutex> lock(s.mutex);
        detail::install_log_callback(next);
        if (s.installed)
            s.retired.push_back(s.installed);
        s.installed = next;
        ++s.replaced_from_callbacks;
        return;
    }
    // The replaced callbacks are destroyed here, when this goes out of scope, with no lock held.
    std::vector<std::unique_ptr<const LogCallback>> finished = detail::replace_log_callback(next);
}

/**
 * Sends the library's diagnostics at `level` and more severe to descriptor `fd` as lines, for
 * programs that read them from their event loop; std::nullopt stops (glr_set_log_fd()). The
 * library never blocks on it nor closes it.
 */
inline void set_log_fd(std::optional<int> fd, LogLevel level = LogLevel::warn) {
    detail::check(glr_set_log_fd(fd ? *fd : -1, static_cast<int32_t>(level)), "glr_set_log_fd");
}

// ---- registration options ---------------------------------------------------------------------------

/**
 * Options for Runner::register_runner() (a glr_register_options handle). The setters return
 * `*this`, so they chain: `glr::RegisterOptions().description("slurm").tag("hpc").locked(true)`.
 * Unset options are not sent.
 */
class RegisterOptions {
  public:
    /** Empty options (glr_register_options_new()). */
    RegisterOptions() {
        glr_register_options *raw = nullptr;
        detail::check(glr_register_options_new(&raw), "glr_register_options_new");
        handle_.reset(raw);
    }
    /** Takes ownership of `options` (may be NULL). */
    explicit RegisterOptions(glr_register_options *options) noexcept : handle_(options) {}

    /** The runner's description (glr_register_options_set_description()). */
    RegisterOptions &description(std::string_view value) {
        return set(glr_register_options_set_description, value, "glr_register_options_set_description");
    }
    /** The maintenance note (glr_register_options_set_maintenance_note()). */
    RegisterOptions &maintenance_note(std::string_view value) {
        return set(glr_register_options_set_maintenance_note, value, "glr_register_options_set_maintenance_note");
    }
    /** `info.name` (glr_register_options_set_name()). */
    RegisterOptions &name(std::string_view value) {
        return set(glr_register_options_set_name, value, "glr_register_options_set_name");
    }
    /** `info.version` (glr_register_options_set_version()). */
    RegisterOptions &version(std::string_view value) {
        return set(glr_register_options_set_version, value, "glr_register_options_set_version");
    }
    /** `info.revision` (glr_register_options_set_revision()). */
    RegisterOptions &revision(std::string_view value) {
        return set(glr_register_options_set_revision, value, "glr_register_options_set_revision");
    }
    /** `info.platform` (glr_register_options_set_platform()). */
    RegisterOptions &platform(std::string_view value) {
        return set(glr_register_options_set_platform, value, "glr_register_options_set_platform");
    }
    /** `info.architecture` (glr_register_options_set_architecture()). */
    RegisterOptions &architecture(std::string_view value) {
        return set(glr_register_options_set_architecture, value, "glr_register_options_set_architecture");
    }
    /** `info.executor` (glr_register_options_set_executor()). */
    RegisterOptions &executor(std::string_view value) {
        return set(glr_register_options_set_executor, value, "glr_register_options_set_executor");
    }
    /** "not_protected" or "ref_protected" (glr_register_options_set_access_level()). */
    RegisterOptions &access_level(std::string_view value) {
        return set(glr_register_options_set_access_level, value, "glr_register_options_set_access_level");
    }
    /** Whether the runner takes jobs (glr_register_options_set_active()). */
    RegisterOptions &active(bool value) {
        detail::check(glr_register_options_set_active(get(), value ? 1 : 0), "glr_register_options_set_active");
        return *this;
    }
    /** Whether the runner is paused (glr_register_options_set_paused()). */
    RegisterOptions &paused(bool value) {
        detail::check(glr_register_options_set_paused(get(), value ? 1 : 0), "glr_register_options_set_paused");
        return *this;
    }
    /** Whether the runner is locked to its project (glr_register_options_set_locked()). */
    RegisterOptions &locked(bool value) {
        detail::check(glr_register_options_set_locked(get(), value ? 1 : 0), "glr_register_options_set_locked");
        return *this;
    }
    /** Whether the runner takes untagged jobs (glr_register_options_set_run_untagged()). */
    RegisterOptions &run_untagged(bool value) {
        detail::check(glr_register_options_set_run_untagged(get(), value ? 1 : 0),
                      "glr_register_options_set_run_untagged");
        return *this;
    }
    /** The maximum job timeout in seconds (glr_register_options_set_maximum_timeout()). */
    RegisterOptions &maximum_timeout(int64_t seconds) {
        detail::check(glr_register_options_set_maximum_timeout(get(), seconds),
                      "glr_register_options_set_maximum_timeout");
        return *this;
    }
    /** Adds a tag (glr_register_options_add_tag()). */
    RegisterOptions &tag(std::string_view tag) {
        return set(glr_register_options_add_tag, tag, "glr_register_options_add_tag");
    }
    /** Adds tags (glr_register_options_add_tag() for each). */
    RegisterOptions &tags(std::initializer_list<std::string_view> tags) {
        for (std::string_view t : tags)
            tag(t);
        return *this;
    }

    /** The C handle, still owned by this object. */
    glr_register_options *get() const noexcept { return handle_.get(); }
    /** Gives up the C handle (the caller frees it with glr_register_options_free()). */
    glr_register_options *release() noexcept { return handle_.release(); }
    /** Whether this object holds a handle. */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

  private:
    RegisterOptions &set(glr_status (*fn)(glr_register_options *, const char *), std::string_view value,
                         const char *function) {
        detail::CString c(value, function);
        detail::check(fn(get(), c.c_str()), function);
        return *this;
    }

    std::unique_ptr<glr_register_options,
                    detail::HandleDeleter<glr_register_options, glr_register_options_free>>
        handle_;
};

// ---- job ------------------------------------------------------------------------------------------

/** One variable of a job, borrowed from it (valid while the job lives). */
struct Variable {
    std::string_view key;   ///< The name, e.g. "CI_JOB_ID".
    std::string_view value; ///< The value (for a file variable, the file's content).
    uint32_t flags = 0;     ///< `GLR_VAR_*` bits.

    /** Not secret (#GLR_VAR_PUBLIC). */
    bool is_public() const noexcept { return (flags & GLR_VAR_PUBLIC) != 0; }
    /** Masked in the log (#GLR_VAR_MASKED). */
    bool is_masked() const noexcept { return (flags & GLR_VAR_MASKED) != 0; }
    /** A file variable: write `value` to a file and export its path (#GLR_VAR_FILE). */
    bool is_file() const noexcept { return (flags & GLR_VAR_FILE) != 0; }
    /** Not to be expanded (#GLR_VAR_RAW). */
    bool is_raw() const noexcept { return (flags & GLR_VAR_RAW) != 0; }
};

/** A registry user name and password for pulling an image (Job::get_registry_credential()). */
struct RegistryCredential {
    std::string username; ///< User name, e.g. "gitlab-ci-token".
    std::string password; ///< Password (a secret).
};

/** Lines of a job's `script` or `after_script`, as `std::string_view`s borrowed from the job. */
using ScriptLines = detail::IndexedView<glr_job, std::string_view>;

/** A job's variables in payload order, as glr::Variable values borrowed from the job. */
class Variables : public detail::IndexedView<glr_job, Variable> {
  public:
    /** The variables of `job`. */
    explicit Variables(const glr_job *job) noexcept
        : IndexedView(job, glr_job_variable_count, &Variables::at), job_(job) {}

    /** The value of the variable named `key` (the last one if repeated), or std::nullopt. */
    std::optional<std::string_view> find(std::string_view key) const {
        detail::CString c(key, "glr_job_variable");
        return detail::optional_view(glr_job_variable(job_, c.c_str()));
    }

  private:
    static Variable at(const glr_job *job, std::size_t index) {
        return Variable{detail::view(glr_job_variable_key(job, index)),
                        detail::view(glr_job_variable_value(job, index)), glr_job_variable_flags(job, index)};
    }
    const glr_job *job_;
};

class Artifacts;

namespace detail {
/** Guards every Job's list of cancel callbacks (set_cancel_callback() may race with itself). */
inline std::mutex &cancel_callbacks_mutex() {
    static std::mutex *const mutex = new std::mutex();
    return *mutex;
}
} // namespace detail

/**
 * A job taken from GitLab (a glr_job handle): its properties, its log, and how it ends.
 * Obtained from Runner::request_job(), Job::load() or Job::loads() (the owner of the job's
 * log), or Job::watch_load() / Job::watch_loads() (a watcher).
 *
 * One writer per job: hand_over_dump() / hand_over_dumps() pass the log to whoever loads the
 * dump, and this handle becomes a watcher (is_watcher()): it keeps the job alive at GitLab,
 * learns cancels and may finish the job, but its log functions throw glr::NotOwnerError.
 */
class Job {
  public:
    /** Takes ownership of `job` (may be NULL). */
    explicit Job(glr_job *job) noexcept : handle_(job) {}
    Job(Job &&) noexcept = default;
    /** Frees the current job (waiting for a cancel callback in progress), then takes `other`'s. */
    Job &operator=(Job &&other) noexcept {
        if (this != &other) {
            handle_ = std::move(other.handle_); // frees the old job first: no callback after this
            callbacks_ = std::move(other.callbacks_);
        }
        return *this;
    }
    Job(const Job &) = delete;
    Job &operator=(const Job &) = delete;
    ~Job() = default;

    /** Restores a job from dumps() output or the Python package's format, offline (glr_job_loads()). */
    static Job loads(std::string_view data) {
        detail::CString c(data, "glr_job_loads");
        glr_job *raw = nullptr;
        detail::check(glr_job_loads(c.c_str(), &raw), "glr_job_loads");
        return Job(raw);
    }
    /** Reads a job written by dump() (or the Python package), offline (glr_job_load()). */
    static Job load(std::string_view path) {
        detail::CString c(path, "glr_job_load");
        glr_job *raw = nullptr;
        detail::check(glr_job_load(c.c_str(), &raw), "glr_job_load");
        return Job(raw);
    }
    /**
     * A watcher of a handed-over job, from hand_over_dumps() output, offline
     * (glr_job_watch_loads()): it keeps the job alive at GitLab and learns cancels while the
     * process that loads the same dump with loads() writes the log.
     */
    static Job watch_loads(std::string_view data) {
        detail::CString c(data, "glr_job_watch_loads");
        glr_job *raw = nullptr;
        detail::check(glr_job_watch_loads(c.c_str(), &raw), "glr_job_watch_loads");
        return Job(raw);
    }
    /** A watcher of a job written by hand_over_dump(), offline (glr_job_watch_load()). */
    static Job watch_load(std::string_view path) {
        detail::CString c(path, "glr_job_watch_load");
        glr_job *raw = nullptr;
        detail::check(glr_job_watch_load(c.c_str(), &raw), "glr_job_watch_load");
        return Job(raw);
    }

    /** The job's id (glr_job_id()). */
    int64_t id() const noexcept { return glr_job_id(get()); }
    /** The job token, a secret (glr_job_token()). */
    std::string_view token() const noexcept { return detail::view(glr_job_token(get())); }
    /** `job_info.name` (glr_job_name()). */
    std::optional<std::string_view> name() const noexcept { return detail::optional_view(glr_job_name(get())); }
    /** `job_info.stage` (glr_job_stage()). */
    std::optional<std::string_view> stage() const noexcept { return detail::optional_view(glr_job_stage(get())); }
    /** The branch or tag name (glr_job_ref()). */
    std::optional<std::string_view> ref() const noexcept { return detail::optional_view(glr_job_ref(get())); }
    /** Whether ref() is a branch (true) or a tag (false) (glr_job_is_branch()). */
    std::optional<bool> is_branch() const noexcept { return detail::optional_bool(glr_job_is_branch(get())); }
    /** The repository URL, with the job token in it: never log it (glr_job_repo_url()). */
    std::optional<std::string_view> repo_url() const noexcept {
        return detail::optional_view(glr_job_repo_url(get()));
    }
    /** The commit (glr_job_commit_sha()). */
    std::optional<std::string_view> commit_sha() const noexcept {
        return detail::optional_view(glr_job_commit_sha(get()));
    }
    /** The commit message (glr_job_commit_message()). */
    std::optional<std::string_view> commit_message() const noexcept {
        return detail::optional_view(glr_job_commit_message(get()));
    }
    /** The user who started the job (glr_job_username()). */
    std::optional<std::string_view> username() const noexcept {
        return detail::optional_view(glr_job_username(get()));
    }
    /** The project's web URL (glr_job_project_url()). */
    std::optional<std::string_view> project_url() const noexcept {
        return detail::optional_view(glr_job_project_url(get()));
    }
    /** "group/project" (glr_job_project_path()). */
    std::optional<std::string_view> project_path() const noexcept {
        return detail::optional_view(glr_job_project_path(get()));
    }
    /** The project's name (glr_job_project_name()). */
    std::optional<std::string_view> project_name() const noexcept {
        return detail::optional_view(glr_job_project_name(get()));
    }
    /** The job's web URL (glr_job_job_url()). */
    std::optional<std::string_view> job_url() const noexcept { return detail::optional_view(glr_job_job_url(get())); }
    /** The pipeline's web URL (glr_job_pipeline_url()). */
    std::optional<std::string_view> pipeline_url() const noexcept {
        return detail::optional_view(glr_job_pipeline_url(get()));
    }
    /** The pipeline id, as text (glr_job_pipeline_id()). */
    std::optional<std::string_view> pipeline_id() const noexcept {
        return detail::optional_view(glr_job_pipeline_id(get()));
    }
    /**
     * Whether this handle is a watcher: handed over, loaded with watch_load(s), or a fork()ed
     * child's copy of its parent's job (glr_job_is_watcher()). Its log functions throw
     * glr::NotOwnerError. False for a moved-from job.
     */
    bool is_watcher() const noexcept { return glr_job_is_watcher(get()) == 1; }
    /** The job's state (glr_job_state()); JobState::running for a moved-from job. */
    JobState state() const noexcept {
        int32_t s = glr_job_state(get());
        return s < 0 ? JobState::running : static_cast<JobState>(s);
    }
    /**
     * Seconds GitLab gives the job (its `timeout:`, within the runner's maximum), or
     * std::nullopt when GitLab did not say (glr_job_timeout()). Tell a batch system this wall time.
     */
    std::optional<std::chrono::seconds> timeout() const noexcept {
        int64_t t = glr_job_timeout(get());
        return t < 0 ? std::nullopt : std::optional<std::chrono::seconds>(std::chrono::seconds(t));
    }
    /**
     * When GitLab stops the job (when it was taken plus timeout()), or std::nullopt when unknown
     * (glr_job_deadline()). The job token expires 5 minutes later. Saved in dumps.
     */
    std::optional<std::chrono::system_clock::time_point> deadline() const noexcept {
        int64_t t = glr_job_deadline(get());
        if (t < 0)
            return std::nullopt;
        return std::chrono::system_clock::time_point(std::chrono::seconds(t));
    }
    /**
     * Whether GitLab has acknowledged the job (the `state=running` commit); false while the
     * commit is retried in the background, and for a moved-from job (glr_job_acknowledged()).
     */
    bool acknowledged() const noexcept { return glr_job_acknowledged(get()) == 1; }
    /**
     * Waits until the job's state differs from `known`, at most `timeout` (std::nullopt: no
     * limit), and returns the state then: `known` when the time ran out (glr_job_wait_state()).
     * For a thread of your own that waits for GitLab's cancel instead of a callback.
     */
    JobState wait_state(JobState known, std::optional<std::chrono::milliseconds> timeout) {
        int32_t out = 0;
        int64_t ms = timeout ? static_cast<int64_t>(timeout->count()) : -1;
        if (timeout && ms < 0)
            ms = 0; // a time already passed: do not wait
        detail::check(glr_job_wait_state(get(), static_cast<int32_t>(known), ms, &out), "glr_job_wait_state");
        return static_cast<JobState>(out);
    }
    /**
     * A descriptor that becomes readable after each change of state, for poll()/epoll or an
     * event loop; read its 8-byte counter to reset it, then call state(). It belongs to the job:
     * do not close it (glr_job_event_fd()).
     */
    int event_fd() {
        int32_t fd = -1;
        detail::check(glr_job_event_fd(get(), &fd), "glr_job_event_fd");
        return fd;
    }
    /** The `script` lines (glr_job_script_count(), glr_job_script_line()). */
    ScriptLines script() const noexcept { return ScriptLines(get(), glr_job_script_count, script_line); }
    /** The `after_script` lines (glr_job_after_script_count(), glr_job_after_script_line()). */
    ScriptLines after_script() const noexcept {
        return ScriptLines(get(), glr_job_after_script_count, after_script_line);
    }
    /** The variables GitLab sent, in order (glr_job_variable_count() ...). */
    Variables variables() const noexcept { return Variables(get()); }
    /** The value of variable `key`, or std::nullopt (glr_job_variable()). */
    std::optional<std::string_view> variable(std::string_view key) const { return variables().find(key); }
    /** The payload as GitLab sent it, JSON (glr_job_payload()). */
    std::string payload() const {
        char *out = nullptr;
        detail::check(glr_job_payload(get(), &out), "glr_job_payload");
        return detail::take(out);
    }
    /**
     * The registry credential for pulling `image`, or std::nullopt when the job has none for it
     * (glr_job_get_registry_credential()).
     */
    std::optional<RegistryCredential> get_registry_credential(std::string_view image) const {
        detail::CString c(image, "glr_job_get_registry_credential");
        char *user = nullptr;
        char *password = nullptr;
        glr_status status = glr_job_get_registry_credential(get(), c.c_str(), &user, &password);
        if (status == GLR_ERR_NOT_FOUND)
            return std::nullopt;
        detail::check(status, "glr_job_get_registry_credential");
        RegistryCredential credential;
        credential.username = detail::take(user);
        credential.password = detail::take(password);
        return credential;
    }

    /** Appends any bytes to the log; never waits for the network (glr_job_log_append()). */
    void append_log(std::string_view text) {
        detail::check(glr_job_log_append(get(), text.data(), text.size()), "glr_job_log_append");
    }
    /** Uploads the log and returns when GitLab has all of it (glr_job_log_flush()). */
    void flush_log() { detail::check(glr_job_log_flush(get()), "glr_job_log_flush"); }
    /** The whole log as stored (glr_job_log()). */
    std::string log() const {
        char *out = nullptr;
        std::size_t len = 0;
        detail::check(glr_job_log(get(), &out, &len), "glr_job_log");
        return detail::take(out, len);
    }
    /** Caps the log at `limit_bytes` (glr_job_set_log_limit()). */
    void set_log_limit(std::size_t limit_bytes) {
        detail::check(glr_job_set_log_limit(get(), limit_bytes), "glr_job_set_log_limit");
    }
    /** Keep-alive and cancel check, watchers too; state() tells the outcome (glr_job_auth()). */
    void auth() { detail::check(glr_job_auth(get()), "glr_job_auth"); }
    /**
     * How long the job may go without an exchange with GitLab before the background sends a
     * keep-alive: 1 s to 2700 s, default 30 s (glr_job_set_keepalive_interval()).
     */
    void set_keepalive_interval(std::chrono::seconds interval) {
        detail::check(glr_job_set_keepalive_interval(get(), static_cast<int64_t>(interval.count())),
                      "glr_job_set_keepalive_interval");
    }
    /**
     * Bounds each of this job's network calls from now on (flush_log(), auth(), set_success() /
     * set_failed() with their uploads, download_artifacts()): past `timeout` they throw
     * glr::TimeoutError. Zero restores the default, 5 minutes; negative throws
     * (glr_job_set_call_timeout()).
     */
    void set_call_timeout(std::chrono::milliseconds timeout) {
        detail::check(glr_job_set_call_timeout(get(), static_cast<int64_t>(timeout.count())),
                      "glr_job_set_call_timeout");
    }
    /** The script's exit code, sent with set_failed() (glr_job_set_exit_code()). */
    void set_exit_code(int32_t exit_code) {
        detail::check(glr_job_set_exit_code(get(), exit_code), "glr_job_set_exit_code");
    }
    /** Reports the job successful, after uploading `artifacts` and the log (glr_job_set_success()). */
    inline void set_success(const Artifacts *artifacts = nullptr);
    /** Reports the job failed (glr_job_set_failed()). */
    inline void set_failed(FailureReason reason = FailureReason::unknown, const Artifacts *artifacts = nullptr);
    /**
     * Calls `callback` with the new state once for every change to JobState::canceling or
     * JobState::canceled, whichever request revealed it (glr_job_set_cancel_callback()). It runs
     * on the library's event thread "glr-events" (with the log callback, one callback at a
     * time), never with a library lock held: it may call any function of this job, e.g.
     * set_failed(), except destroying or assigning to it. An exception leaving it is caught and
     * dropped. An empty function removes the callback. Returns once a running call of the
     * previous callback has returned (unless called from that callback). Callbacks set earlier
     * stay alive until the job is destroyed.
     */
    void set_cancel_callback(std::function<void(JobState)> callback) {
        if (!callback) {
            detail::check(glr_job_set_cancel_callback(get(), nullptr, nullptr), "glr_job_set_cancel_callback");
            return;
        }
        auto owned = std::make_unique<std::function<void(JobState)>>(std::move(callback));
        std::function<void(JobState)> *raw = owned.get();
        {
            std::lock_guard<std::mutex> lock(detail::cancel_callbacks_mutex());
            callbacks_.push_back(std::move(owned));
        }
        glr_status status = glr_job_set_cancel_callback(get(), cancel_trampoline, raw);
        if (status != GLR_OK) {
            std::string message = detail::last_error_message();
            throw Error(status, "glr_job_set_cancel_callback", message); // `raw` stays with the job
        }
    }

    /** Serialises the job, offline (glr_job_dumps()); it holds secrets. */
    std::string dumps() const {
        char *out = nullptr;
        detail::check(glr_job_dumps(get(), &out), "glr_job_dumps");
        return detail::take(out);
    }
    /** Writes dumps() to `path`, atomically, mode 0600 (glr_job_dump()). */
    void dump(std::string_view path) const {
        detail::CString c(path, "glr_job_dump");
        detail::check(glr_job_dump(get(), c.c_str()), "glr_job_dump");
    }
    /**
     * Hands the job over to whoever loads the string returned with loads(): waits for an upload
     * in flight to get its answer, serialises the job, and makes this handle a watcher
     * (glr_job_hand_over_dumps()). The loader sends every byte this handle did not get
     * acknowledged, exactly once. On failure this handle is still the owner.
     */
    std::string hand_over_dumps() {
        char *out = nullptr;
        detail::check(glr_job_hand_over_dumps(get(), &out), "glr_job_hand_over_dumps");
        return detail::take(out);
    }
    /** As hand_over_dumps(), writing the dump to `path` for load(), atomically, mode 0600
     *  (glr_job_hand_over_dump()). When the file cannot be written, this handle is still the owner. */
    void hand_over_dump(std::string_view path) {
        detail::CString c(path, "glr_job_hand_over_dump");
        detail::check(glr_job_hand_over_dump(get(), c.c_str()), "glr_job_hand_over_dump");
    }

    /** How many jobs this one depends on (glr_job_dependency_count()). */
    std::size_t dependency_count() const noexcept { return glr_job_dependency_count(get()); }
    /** The job id of dependency `index` (glr_job_dependency_id()). */
    int64_t dependency_id(std::size_t index) const noexcept { return glr_job_dependency_id(get(), index); }
    /** The job name of dependency `index` (glr_job_dependency_name()). */
    std::optional<std::string_view> dependency_name(std::size_t index) const noexcept {
        return detail::optional_view(glr_job_dependency_name(get(), index));
    }
    /**
     * The file name of dependency `index`'s artifacts archive, as GitLab reported it, e.g.
     * "artifacts.zip"; std::nullopt when GitLab sent none (glr_job_dependency_artifacts_filename()).
     * Throws for an index out of range.
     */
    std::optional<std::string> dependency_artifacts_filename(std::size_t index) const {
        char *out = nullptr;
        detail::check(glr_job_dependency_artifacts_filename(get(), index, &out),
                      "glr_job_dependency_artifacts_filename");
        if (out == nullptr)
            return std::nullopt;
        return detail::take(out);
    }
    /**
     * The size in bytes of dependency `index`'s artifacts archive, as GitLab reported it;
     * std::nullopt when GitLab sent none, or for an index out of range (glr::check_last_error()
     * tells them apart) (glr_job_dependency_artifacts_size()).
     */
    std::optional<int64_t> dependency_artifacts_size(std::size_t index) const noexcept {
        int64_t size = glr_job_dependency_artifacts_size(get(), index);
        if (size < 0)
            return std::nullopt;
        return size;
    }
    /** Downloads dependency `index`'s artifacts archive to `dest_path` (glr_job_download_artifacts()). */
    void download_artifacts(std::size_t index, std::string_view dest_path) {
        detail::CString c(dest_path, "glr_job_download_artifacts");
        detail::check(glr_job_download_artifacts(get(), index, c.c_str()), "glr_job_download_artifacts");
    }

    /** The C handle, still owned by this object. */
    glr_job *get() const noexcept { return handle_.get(); }
    /** Gives up the C handle (the caller frees it with glr_job_free()); any cancel callback set
     *  here must then be removed first, as it lives in this object. */
    glr_job *release() noexcept { return handle_.release(); }
    /** Whether this object holds a handle. */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

  private:
    static std::string_view script_line(const glr_job *job, std::size_t index) {
        return detail::view(glr_job_script_line(job, index));
    }
    static std::string_view after_script_line(const glr_job *job, std::size_t index) {
        return detail::view(glr_job_after_script_line(job, index));
    }
    static void cancel_trampoline(void *userdata, glr_job *, int32_t state) noexcept {
        detail::InCallback in_callback;
        try {
            (*static_cast<std::function<void(JobState)> *>(userdata))(static_cast<JobState>(state));
        } catch (...) {
            // Nothing may unwind into the library.
        }
    }

    // Declared before handle_, so destroyed after it: glr_job_free() guarantees no call after it.
    std::vector<std::unique_ptr<std::function<void(JobState)>>> callbacks_;
    std::unique_ptr<glr_job, detail::HandleDeleter<glr_job, glr_job_free>> handle_;
};

// ---- artifacts -------------------------------------------------------------------------------------

/** Files to upload with Job::set_success() / set_failed() (a glr_artifacts handle). */
class Artifacts {
  public:
    /** An empty list (glr_artifacts_new()). */
    Artifacts() {
        glr_artifacts *raw = nullptr;
        detail::check(glr_artifacts_new(&raw), "glr_artifacts_new");
        handle_.reset(raw);
    }
    /** Takes ownership of `artifacts` (may be NULL). */
    explicit Artifacts(glr_artifacts *artifacts) noexcept : handle_(artifacts) {}

    /**
     * Adds a file you prepared (glr_artifacts_add_file()): std::nullopt `artifact_type` means
     * "archive", `artifact_format` "zip", `expire_in` the project's default.
     */
    Artifacts &add_file(std::string_view path, std::string_view name,
                        std::optional<std::string_view> artifact_type = std::nullopt,
                        std::optional<std::string_view> artifact_format = std::nullopt,
                        std::optional<std::string_view> expire_in = std::nullopt) {
        const char *fn = "glr_artifacts_add_file";
        detail::CString p(path, fn), n(name, fn), t(artifact_type, fn), f(artifact_format, fn), e(expire_in, fn);
        detail::check(glr_artifacts_add_file(get(), p.c_str(), n.c_str(), t.c_str(), f.c_str(), e.c_str()), fn);
        return *this;
    }
    /** Collects the job's own `artifacts:` from `workdir` (glr_artifacts_collect()). */
    Artifacts &collect(const Job &job, std::string_view workdir, bool job_succeeded) {
        detail::CString w(workdir, "glr_artifacts_collect");
        detail::check(glr_artifacts_collect(get(), job.get(), w.c_str(), job_succeeded ? 1 : 0),
                      "glr_artifacts_collect");
        return *this;
    }
    /** How many files the list holds (glr_artifacts_count()). */
    std::size_t size() const noexcept { return glr_artifacts_count(get()); }

    /** The C handle, still owned by this object. */
    glr_artifacts *get() const noexcept { return handle_.get(); }
    /** Gives up the C handle (the caller frees it with glr_artifacts_free()). */
    glr_artifacts *release() noexcept { return handle_.release(); }
    /** Whether this object holds a handle. */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

  private:
    std::unique_ptr<glr_artifacts, detail::HandleDeleter<glr_artifacts, glr_artifacts_free>> handle_;
};

inline void Job::set_success(const Artifacts *artifacts) {
    detail::check(glr_job_set_success(get(), artifacts ? artifacts->get() : nullptr), "glr_job_set_success");
}

inline void Job::set_failed(FailureReason reason, const Artifacts *artifacts) {
    detail::check(glr_job_set_failed(get(), static_cast<glr_failure_reason>(reason),
                                     artifacts ? artifacts->get() : nullptr),
                  "glr_job_set_failed");
}

/** Extracts a zip archive into `dest_dir`, refusing entries that escape it (glr_extract_artifacts()). */
inline void extract_artifacts(std::string_view zip_path, std::string_view dest_dir) {
    detail::CString z(zip_path, "glr_extract_artifacts"), d(dest_dir, "glr_extract_artifacts");
    detail::check(glr_extract_artifacts(z.c_str(), d.c_str()), "glr_extract_artifacts");
}

// ---- runner ----------------------------------------------------------------------------------------

/** The runner's tags, as `std::string_view`s borrowed from it. */
using Tags = detail::IndexedView<glr_runner, std::string_view>;

/**
 * A registered runner (a glr_runner handle). Obtained from Runner::register_runner(),
 * Runner::from_token(), Runner::load() or Runner::loads().
 */
class Runner {
  public:
    /** Takes ownership of `runner` (may be NULL). */
    explicit Runner(glr_runner *runner) noexcept : handle_(runner) {}

    /**
     * Registers a new runner with a registration token (glr_runner_register()). (`register` is a
     * C++ keyword, hence the name.)
     */
    static Runner register_runner(std::string_view api_url, std::string_view registration_token,
                                  const RegisterOptions &options) {
        return register_with(api_url, registration_token, options.get());
    }
    /** Registers a new runner with GitLab's defaults (glr_runner_register() with NULL options). */
    static Runner register_runner(std::string_view api_url, std::string_view registration_token) {
        return register_with(api_url, registration_token, nullptr);
    }
    /** Uses a runner created in GitLab, verifying its `glrt-` token (glr_runner_from_token()). */
    static Runner from_token(std::string_view api_url, std::string_view authentication_token) {
        detail::CString u(api_url, "glr_runner_from_token"), t(authentication_token, "glr_runner_from_token");
        glr_runner *raw = nullptr;
        detail::check(glr_runner_from_token(u.c_str(), t.c_str(), &raw), "glr_runner_from_token");
        return Runner(raw);
    }
    /** Restores a runner from dumps() output or the Python package's format, offline (glr_runner_loads()). */
    static Runner loads(std::string_view data) {
        detail::CString c(data, "glr_runner_loads");
        glr_runner *raw = nullptr;
        detail::check(glr_runner_loads(c.c_str(), &raw), "glr_runner_loads");
        return Runner(raw);
    }
    /** Reads a runner written by dump() (or the Python package), offline (glr_runner_load()). */
    static Runner load(std::string_view path) {
        detail::CString c(path, "glr_runner_load");
        glr_runner *raw = nullptr;
        detail::check(glr_runner_load(c.c_str(), &raw), "glr_runner_load");
        return Runner(raw);
    }

    /** Checks the token with GitLab (glr_runner_check_auth()). */
    void check_auth() const { detail::check(glr_runner_check_auth(get()), "glr_runner_check_auth"); }
    /** Unregisters the runner (glr_runner_unregister()). */
    void unregister() { detail::check(glr_runner_unregister(get()), "glr_runner_unregister"); }
    /** Declares an executor feature to GitLab (glr_runner_set_feature()). */
    void set_feature(std::string_view feature, bool enabled) {
        detail::CString c(feature, "glr_runner_set_feature");
        detail::check(glr_runner_set_feature(get(), c.c_str(), enabled ? 1 : 0), "glr_runner_set_feature");
    }
    /**
     * Rotates the runner's token now (glr_runner_reset_token()); the library also does it by
     * itself at 75 % of the token's lifetime. A runner from Runner::load() rewrites its file;
     * any other must be dumped again.
     */
    void reset_token() { detail::check(glr_runner_reset_token(get()), "glr_runner_reset_token"); }
    /**
     * Sets the runner label `key` to `value`, or removes it for std::nullopt; sent from the next
     * request on and persisted (glr_runner_set_label(), which gives the rules).
     */
    void set_label(std::string_view key, std::optional<std::string_view> value) {
        detail::CString k(key, "glr_runner_set_label");
        detail::CString v(value, "glr_runner_set_label");
        detail::check(glr_runner_set_label(get(), k.c_str(), v.c_str()), "glr_runner_set_label");
    }
    /**
     * Bounds each of this runner's network calls from now on (request_job() with its long
     * poll, check_auth(), unregister()): past `timeout` they throw glr::TimeoutError. Zero
     * restores the default, 5 minutes; negative throws (glr_runner_set_call_timeout()).
     */
    void set_call_timeout(std::chrono::milliseconds timeout) {
        detail::check(glr_runner_set_call_timeout(get(), static_cast<int64_t>(timeout.count())),
                      "glr_runner_set_call_timeout");
    }
    /**
     * Ends this runner's calls in progress on other threads at once: a request_job() waiting in
     * GitLab's long poll throws glr::InterruptedError (glr_runner_interrupt()). Calls started
     * afterwards are not affected. Safe from any thread, e.g. to stop a polling thread.
     */
    void interrupt() { detail::check(glr_runner_interrupt(get()), "glr_runner_interrupt"); }
    /**
     * Asks GitLab for a job, long-polling; std::nullopt when there is none now
     * (glr_runner_request_job()). Bounded by set_call_timeout(); interrupt() ends it.
     */
    std::optional<Job> request_job() {
        glr_job *raw = nullptr;
        detail::check(glr_runner_request_job(get(), &raw), "glr_runner_request_job");
        if (raw == nullptr)
            return std::nullopt;
        return Job(raw);
    }
    /** Serialises the runner, offline (glr_runner_dumps()); it holds the token. */
    std::string dumps() const {
        char *out = nullptr;
        detail::check(glr_runner_dumps(get(), &out), "glr_runner_dumps");
        return detail::take(out);
    }
    /** Writes dumps() to `path`, atomically, mode 0600 (glr_runner_dump()). */
    void dump(std::string_view path) const {
        detail::CString c(path, "glr_runner_dump");
        detail::check(glr_runner_dump(get(), c.c_str()), "glr_runner_dump");
    }

    /** The runner's id (glr_runner_id()). */
    int64_t id() const noexcept { return glr_runner_id(get()); }
    /** GitLab's base URL, normalised (glr_runner_api_url()). */
    std::string_view api_url() const noexcept { return detail::view(glr_runner_api_url(get())); }
    /** The runner token, a secret (glr_runner_token()). */
    std::string_view token() const noexcept { return detail::view(glr_runner_token(get())); }
    /** When the token expires (glr_runner_token_expires_at()). */
    std::optional<std::string_view> token_expires_at() const noexcept {
        return detail::optional_view(glr_runner_token_expires_at(get()));
    }
    /** This runner manager's system_id (glr_runner_system_id()). */
    std::string_view system_id() const noexcept { return detail::view(glr_runner_system_id(get())); }
    /**
     * Sets this runner manager's system_id, sent from the next request on and saved by dump():
     * `s_` or `r_` then 12 letters or digits, or std::nullopt for a new random one
     * (glr_runner_set_system_id()). Views system_id() returned before stay valid (on the old value).
     */
    void set_system_id(std::optional<std::string_view> system_id) {
        detail::CString c(system_id, "glr_runner_set_system_id");
        detail::check(glr_runner_set_system_id(get(), c.c_str()), "glr_runner_set_system_id");
    }
    /** The description (glr_runner_description()). */
    std::optional<std::string_view> description() const noexcept {
        return detail::optional_view(glr_runner_description(get()));
    }
    /** `info.name` (glr_runner_name()). */
    std::optional<std::string_view> name() const noexcept { return detail::optional_view(glr_runner_name(get())); }
    /** `info.version` (glr_runner_version()). */
    std::optional<std::string_view> version() const noexcept {
        return detail::optional_view(glr_runner_version(get()));
    }
    /** `info.revision` (glr_runner_revision()). */
    std::optional<std::string_view> revision() const noexcept {
        return detail::optional_view(glr_runner_revision(get()));
    }
    /** `info.platform` (glr_runner_platform()). */
    std::optional<std::string_view> platform() const noexcept {
        return detail::optional_view(glr_runner_platform(get()));
    }
    /** `info.architecture` (glr_runner_architecture()). */
    std::optional<std::string_view> architecture() const noexcept {
        return detail::optional_view(glr_runner_architecture(get()));
    }
    /** `info.executor` (glr_runner_executor()). */
    std::optional<std::string_view> executor() const noexcept {
        return detail::optional_view(glr_runner_executor(get()));
    }
    /** The access level (glr_runner_access_level()). */
    std::optional<std::string_view> access_level() const noexcept {
        return detail::optional_view(glr_runner_access_level(get()));
    }
    /** Registered locked? (glr_runner_locked()). */
    std::optional<bool> locked() const noexcept { return detail::optional_bool(glr_runner_locked(get())); }
    /** Registered active? (glr_runner_active()). */
    std::optional<bool> active() const noexcept { return detail::optional_bool(glr_runner_active(get())); }
    /** Registered to run untagged jobs? (glr_runner_run_untagged()). */
    std::optional<bool> run_untagged() const noexcept {
        return detail::optional_bool(glr_runner_run_untagged(get()));
    }
    /** The maximum job timeout in seconds (glr_runner_maximum_timeout()). */
    std::optional<int64_t> maximum_timeout() const noexcept {
        int64_t t = glr_runner_maximum_timeout(get());
        if (t < 0)
            return std::nullopt;
        return t;
    }
    /** The tags (glr_runner_tag_count(), glr_runner_tag()). */
    Tags tags() const noexcept { return Tags(get(), glr_runner_tag_count, tag_at); }

    /** The C handle, still owned by this object. */
    glr_runner *get() const noexcept { return handle_.get(); }
    /** Gives up the C handle (the caller frees it with glr_runner_free()). */
    glr_runner *release() noexcept { return handle_.release(); }
    /** Whether this object holds a handle. */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

  private:
    static Runner register_with(std::string_view api_url, std::string_view token,
                                const glr_register_options *options) {
        detail::CString u(api_url, "glr_runner_register"), t(token, "glr_runner_register");
        glr_runner *raw = nullptr;
        detail::check(glr_runner_register(u.c_str(), t.c_str(), options, &raw), "glr_runner_register");
        return Runner(raw);
    }
    static std::string_view tag_at(const glr_runner *runner, std::size_t index) {
        return detail::view(glr_runner_tag(runner, index));
    }

    std::unique_ptr<glr_runner, detail::HandleDeleter<glr_runner, glr_runner_free>> handle_;
};

// ---- the process -----------------------------------------------------------------------------------

/**
 * Uploads the pending log text of every live job of this process that owns its log, and
 * returns once GitLab acknowledged all of it (glr_shutdown()). Call it before the process
 * exits: text not acknowledged then is lost. Throws glr::TimeoutError when `timeout` runs out
 * (zero means one minute), else the error of the first job that could not upload (glr::Error
 * with #GLR_ERR_NETWORK or #GLR_ERR_HTTP, glr::JobCanceledError...); the message lists
 * "job N: B bytes not acknowledged". Jobs are not finished by it; the library stays usable.
 */
inline void shutdown(std::chrono::milliseconds timeout = std::chrono::minutes(1)) {
    detail::check(glr_shutdown(static_cast<int64_t>(timeout.count())), "glr_shutdown");
}

} // namespace glr

// ---- C functions not wrapped -----------------------------------------------------------------------
//
// Every function of gitlab_runner_api.h is called above, or listed here, one per line, as
// `// not wrapped: glr_name -- the reason`. tests/cpp_wrapper_coverage.rs fails on a function
// that is neither, and on a line here whose function the header no longer declares or the code
// above calls.
//
// not wrapped: glr_job_last_error_message -- C++ code stays on its OS thread through a call, so glr::Error already holds the message, read on that thread right after the failing call
// not wrapped: glr_runner_last_error_message -- same reason: glr::Error holds the per-thread message of the failing call

#endif /* GLR_HPP */
