// The C++ wrapper (include/gitlab_runner_api.hpp): errors become glr::Error with the status,
// function and message, and the last error can be read or thrown after a getter; handles move;
// getters give string_view / optional; script lines, variables and tags iterate; strings handed
// out are copied; the log callback gets the library's lines on its event thread, and replacing
// it is a sync point (also while it runs, and from inside it); one writer per job: hand-over,
// watchers, keep-alive interval, call timeouts, interrupting a request, shutdown; the job's
// timeout, deadline and acknowledgement, waiting for a state, its event descriptor, labels, token
// rotation, diagnostics to a descriptor.
//
//   wrapper_test                                  offline checks only
//   wrapper_test GITLAB_URL REGISTRATION_TOKEN    also against a test server holding three queued
//                                                 jobs (the default payload), the first one's
//                                                 first log upload failing once, and long polls
//                                                 held for seconds
//
// Built and run by tests/header.rs (with a server) and tests/c_examples.rs (offline, under the
// memory and thread checkers); prints "wrapper ok (N checks, offline)" or "(N checks, with a
// server)" and exits 0 when every check passes.
#include "gitlab_runner_api.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <pthread.h>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace {

int checks = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::cerr << __FILE__ << ":" << __LINE__ << ": check failed: " #cond "\n";             \
            std::exit(1);                                                                          \
        }                                                                                          \
        ++checks;                                                                                  \
    } while (0)

// Runs `f`, which must throw glr::Error (or a subclass E) with `status` from `function`.
template <typename E = glr::Error, typename F> E expect_error(F f, glr_status status, const char *function) {
    try {
        f();
    } catch (const E &e) {
        CHECK(e.status() == status);
        CHECK(e.function() == function);
        CHECK(!e.message().empty());
        CHECK(std::string(e.what()).rfind(std::string(function) + ": ", 0) == 0);
        return e;
    }
    std::cerr << function << " did not throw\n";
    std::exit(1);
}

const char *const RUNNER_V1 = R"([1, "http://127.0.0.1:9/", 42, "runner-token", {"info": {"name": "wrapped", "executor": "custom"}, "description": "d", "locked": true, "run_untagged": false, "tag_list": "alpha,beta", "maximum_timeout": 3600}])";

const char *const JOB_V1 = R"([1, "[1, \"http://127.0.0.1:9\", 42, \"runner-token\", {\"info\": {}}]",
 {"id": 7, "token": "job-token",
  "job_info": {"name": "build", "stage": "test", "project_name": "p"},
  "git_info": {"ref": "main", "ref_type": "branch", "sha": "0123abcd", "repo_url": "http://127.0.0.1:9/g/p.git"},
  "variables": [
    {"key": "CI_PROJECT_PATH", "value": "g/p", "public": true, "masked": false},
    {"key": "SECRET", "value": "s3cr3t-value", "public": false, "masked": true},
    {"key": "CONF", "value": "a=1\n", "public": false, "masked": false, "file": true}],
  "steps": [{"name": "script", "script": ["make", "make test"]}, {"name": "after_script", "script": ["echo bye"]}],
  "credentials": [{"type": "registry", "url": "registry.example.com", "username": "gitlab-ci-token", "password": "job-token"}]},
 "running", "log so far\n"])";

// A job with two dependencies (one with an archive, one without) and an artifact entry that
// matches nothing in an empty directory.
const char *const JOB_DEPENDENCIES_V1 = R"([1, "[1, \"http://127.0.0.1:9\", 42, \"runner-token\", {\"info\": {}}]",
 {"id": 8, "token": "job-token",
  "dependencies": [
    {"id": 3, "name": "build", "token": "dep-token", "artifacts_file": {"filename": "build.zip", "size": 1234}},
    {"id": 4, "name": "lint"}],
  "artifacts": [{"name": "out", "paths": ["missing.txt"], "when": "on_success"}]},
 "running", ""])";

// A fresh private directory under $TMPDIR (or /tmp).
std::string make_temp_dir() {
    const char *tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/glr-wrapper-test-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    CHECK(mkdtemp(buf.data()) != nullptr);
    return std::string(buf.data());
}

// Whether `flag` becomes true within `seconds`.
bool wait_for(const std::atomic<bool> &flag, int seconds) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!flag.load()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

// The calling thread's name (the library names its event thread "glr-events").
std::string thread_name() {
    char name[32] = {0};
    pthread_getname_np(pthread_self(), name, sizeof name);
    return name;
}

const char *const EVENT_THREAD = "glr-events";

struct LogLine {
    glr::LogLevel level;
    std::string message;
    std::thread::id thread;
    std::string thread_name;
};

// What a log callback received, from whichever threads called it.
class LogRecorder {
  public:
    void add(glr::LogLevel level, std::string_view message) {
        std::lock_guard<std::mutex> lock(mutex_);
        lines_.push_back(LogLine{level, std::string(message), std::this_thread::get_id(), thread_name()});
    }
    std::vector<LogLine> lines() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return lines_;
    }
    template <typename Pred> std::size_t count(Pred pred) const {
        std::size_t n = 0;
        for (const LogLine &line : lines())
            n += pred(line) ? 1u : 0u;
        return n;
    }
    // A callback that records here; it owns a reference to this recorder.
    static glr::LogCallback into(const std::shared_ptr<LogRecorder> &recorder) {
        return [recorder](glr::LogLevel level, std::string_view message) { recorder->add(level, message); };
    }

  private:
    mutable std::mutex mutex_;
    std::vector<LogLine> lines_;
};

bool contains(const std::string &text, std::string_view part) { return text.find(part) != std::string::npos; }

// A warning the library logs offline: collecting an artifact entry that matches nothing.
void log_a_warning(const glr::Job &job, const std::string &workdir) {
    glr::Artifacts artifacts;
    artifacts.collect(job, workdir, true);
    CHECK(artifacts.size() == 0);
}

// How many of those warnings `recorder` received, each on the library's event thread.
std::size_t warnings(const std::shared_ptr<LogRecorder> &recorder) {
    return recorder->count([](const LogLine &line) {
        return line.level == glr::LogLevel::warn && contains(line.message, "missing.txt: no matching files") &&
               line.thread_name == EVENT_THREAD && line.thread != std::this_thread::get_id();
    });
}

// The log callback, offline: lines arrive on the event thread, and replacing the callback (an
// empty function removes it) is the sync point after which they have all arrived and the
// replaced callback is gone. An exception leaving the callback stays in the wrapper.
void check_log_callback_offline() {
    glr::Job job = glr::Job::loads(JOB_DEPENDENCIES_V1);
    std::string workdir = make_temp_dir();
    auto recorder = std::make_shared<LogRecorder>();
    glr::set_log_callback(LogRecorder::into(recorder));
    log_a_warning(job, workdir);
    glr::set_log_callback({});
    CHECK(warnings(recorder) == 1);
    CHECK(recorder.use_count() == 1); // the wrapper destroyed the removed callback

    glr::set_log_callback([](glr::LogLevel, std::string_view) { throw std::runtime_error("from the callback"); });
    log_a_warning(job, workdir);

    glr::set_log_callback(LogRecorder::into(recorder));
    log_a_warning(job, workdir);
    glr::set_log_callback({});
    CHECK(warnings(recorder) == 2);
    log_a_warning(job, workdir);
    glr::set_log_callback({});
    CHECK(warnings(recorder) == 2);
    CHECK(recorder.use_count() == 1);
    std::filesystem::remove_all(workdir);
    CHECK(glr::to_string(glr::LogLevel::warn) == "warn" && glr::to_string(glr::LogLevel::debug) == "debug");
}

// Coordinates a log callback's call on the event thread with the main thread's replacement.
struct Handshake {
    explicit Handshake(std::thread::id caller) : main(caller) {}
    const std::thread::id main;
    std::atomic<bool> entered{false};              // the callback runs (on the event thread)
    std::atomic<bool> replacing{false};            // the main thread is about to replace it
    std::atomic<bool> returned{false};             // the call returned
    std::atomic<bool> destroyed{false};            // the replaced callback was destroyed
    std::atomic<bool> destroyed_on_caller{false};  // ... on the main thread
};

// Part of the replaced callback's state: records its destruction.
struct Probe {
    explicit Probe(std::shared_ptr<Handshake> h) : handshake(std::move(h)) {}
    ~Probe() {
        handshake->destroyed_on_caller = std::this_thread::get_id() == handshake->main;
        handshake->destroyed = true;
    }
    Probe(const Probe &) = delete;
    Probe &operator=(const Probe &) = delete;
    std::shared_ptr<Handshake> handshake;
};

// Replacing the callback while it runs waits for that call, then destroys it, on the caller's
// thread. And a callback that replaces the callback itself while the main thread's replacement
// waits for it does not deadlock; the main thread's callback is the one installed afterwards.
void check_log_callback_replacement_offline() {
    glr::Job job = glr::Job::loads(JOB_DEPENDENCIES_V1);
    std::string workdir = make_temp_dir();
    auto handshake = std::make_shared<Handshake>(std::this_thread::get_id());
    {
        auto probe = std::make_shared<Probe>(handshake);
        glr::set_log_callback([probe](glr::LogLevel, std::string_view message) {
            std::shared_ptr<Handshake> h = probe->handshake;
            bool first = false;
            if (!contains(std::string(message), "missing.txt") || !h->entered.compare_exchange_strong(first, true))
                return;
            wait_for(h->replacing, 30);
            std::this_thread::sleep_for(std::chrono::milliseconds(100)); // the main thread waits meanwhile
            h->returned = true;
        });
    }
    log_a_warning(job, workdir);
    CHECK(wait_for(handshake->entered, 30));
    handshake->replacing = true;
    auto inner = std::make_shared<LogRecorder>();
    auto outer = std::make_shared<LogRecorder>();
    auto racing = std::make_shared<Handshake>(std::this_thread::get_id());
    glr::set_log_callback([racing, inner](glr::LogLevel level, std::string_view message) {
        bool first = false;
        if (!contains(std::string(message), "missing.txt") || !racing->entered.compare_exchange_strong(first, true))
            return;
        wait_for(racing->replacing, 30);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        glr::set_log_callback(LogRecorder::into(inner)); // from a callback: returns at once
        inner->add(level, message);
        racing->returned = true;
    });
    CHECK(handshake->returned);            // the replacement waited for the running call
    CHECK(handshake->destroyed);           // and destroyed the callback before returning,
    CHECK(handshake->destroyed_on_caller); // on this thread

    log_a_warning(job, workdir);
    CHECK(wait_for(racing->entered, 30));
    racing->replacing = true;
    glr::set_log_callback(LogRecorder::into(outer)); // waits for the callback that replaces it
    CHECK(racing->returned);
    log_a_warning(job, workdir);
    glr::set_log_callback({});
    CHECK(warnings(inner) == 1); // only the line the racing callback passed on itself
    CHECK(warnings(outer) == 1); // this thread's choice is the one left installed
    CHECK(inner.use_count() == 1 && outer.use_count() == 1 && racing.use_count() == 1);
    std::filesystem::remove_all(workdir);
}

// One writer per job, offline: a hand-over makes a watcher whose log functions throw
// NotOwnerError, the dump loads as an owner (loads/load) or a watcher (watch_loads/watch_load),
// a failed hand-over leaves the owner; the keep-alive interval and call timeouts are checked;
// shutdown reports the text an unreachable GitLab did not acknowledge.
void check_one_writer_offline() {
    glr::Job job = glr::Job::loads(JOB_V1);
    CHECK(!job.is_watcher());
    expect_error([&] { job.set_keepalive_interval(std::chrono::seconds(0)); }, GLR_ERR_INVALID_ARGUMENT,
                 "glr_job_set_keepalive_interval");
    expect_error([&] { job.set_keepalive_interval(std::chrono::seconds(2701)); }, GLR_ERR_INVALID_ARGUMENT,
                 "glr_job_set_keepalive_interval");
    job.set_keepalive_interval(std::chrono::minutes(2));
    expect_error([&] { job.set_call_timeout(std::chrono::milliseconds(-1)); }, GLR_ERR_INVALID_ARGUMENT,
                 "glr_job_set_call_timeout");
    job.set_call_timeout(std::chrono::seconds(0));

    std::string dir = make_temp_dir();
    expect_error([&] { job.hand_over_dump(dir + "/missing/job.json"); }, GLR_ERR_IO, "glr_job_hand_over_dump");
    CHECK(!job.is_watcher()); // still the owner
    std::string dump = job.hand_over_dumps();
    CHECK(job.is_watcher());
    CHECK(job.log() == "log so far\n"); // the log as it was at hand-over
    expect_error<glr::NotOwnerError>([&] { job.append_log("x"); }, GLR_ERR_NOT_OWNER, "glr_job_log_append");
    expect_error<glr::NotOwnerError>([&] { job.flush_log(); }, GLR_ERR_NOT_OWNER, "glr_job_log_flush");
    expect_error<glr::NotOwnerError>([&] { job.dumps(); }, GLR_ERR_NOT_OWNER, "glr_job_dumps");
    expect_error<glr::NotOwnerError>([&] { job.hand_over_dumps(); }, GLR_ERR_NOT_OWNER, "glr_job_hand_over_dumps");
    expect_error<glr::NotOwnerError>([&] { job.set_log_limit(4096); }, GLR_ERR_NOT_OWNER, "glr_job_set_log_limit");

    glr::Job watcher = glr::Job::watch_loads(dump);
    CHECK(watcher.is_watcher() && watcher.id() == 7);
    expect_error<glr::NotOwnerError>([&] { watcher.append_log("x"); }, GLR_ERR_NOT_OWNER, "glr_job_log_append");
    expect_error([] { glr::Job::watch_loads("not json"); }, GLR_ERR_PARSE, "glr_job_watch_loads");
    expect_error([&] { glr::Job::watch_load(dir + "/missing.json"); }, GLR_ERR_IO, "glr_job_watch_load");

    glr::Job owner = glr::Job::loads(dump);
    CHECK(!owner.is_watcher() && owner.log() == "log so far\n");
    std::string path = dir + "/job.json";
    owner.hand_over_dump(path);
    CHECK(owner.is_watcher());
    CHECK(glr::Job::watch_load(path).is_watcher());
    glr::Job next = glr::Job::load(path);
    CHECK(!next.is_watcher());

    // The owner's text cannot reach GitLab (nothing listens on port 9): shutdown says so.
    next.append_log("never acknowledged\n");
    expect_error([] { glr::shutdown(std::chrono::milliseconds(-1)); }, GLR_ERR_INVALID_ARGUMENT, "glr_shutdown");
    try {
        glr::shutdown(std::chrono::milliseconds(300));
        std::cerr << "glr::shutdown did not throw\n";
        std::exit(1);
    } catch (const glr::Error &e) {
        CHECK(e.status() == GLR_ERR_TIMEOUT || e.status() == GLR_ERR_NETWORK);
        CHECK(e.status() != GLR_ERR_TIMEOUT || dynamic_cast<const glr::TimeoutError *>(&e) != nullptr);
        CHECK(e.function() == "glr_shutdown");
        CHECK(contains(e.message(), "job 7: ") && contains(e.message(), " bytes not acknowledged"));
    }
    std::filesystem::remove_all(dir);

    glr::Runner runner = glr::Runner::loads(RUNNER_V1);
    expect_error([&] { runner.set_call_timeout(std::chrono::milliseconds(-5)); }, GLR_ERR_INVALID_ARGUMENT,
                 "glr_runner_set_call_timeout");
    runner.set_call_timeout(std::chrono::milliseconds(0));
    runner.interrupt(); // nothing in progress: a no-op
    glr::Runner moved = std::move(runner);
    expect_error([&] { runner.interrupt(); }, GLR_ERR_NULL_ARGUMENT, "glr_runner_interrupt");
}

// Dependencies' artifact files, offline; and telling an unknown size from a bad index.
void check_dependencies_offline() {
    glr::Job job = glr::Job::loads(JOB_DEPENDENCIES_V1);
    CHECK(job.dependency_count() == 2);
    CHECK(job.dependency_artifacts_filename(0) == std::optional<std::string>("build.zip"));
    CHECK(job.dependency_artifacts_size(0) == std::optional<int64_t>(1234));
    CHECK(!job.dependency_artifacts_filename(1));
    CHECK(!job.dependency_artifacts_size(1));
    CHECK(glr::last_error_code() == GLR_OK); // unknown, not a failure
    glr::check_last_error("glr_job_dependency_artifacts_size");
    expect_error([&] { job.dependency_artifacts_filename(2); }, GLR_ERR_INVALID_ARGUMENT,
                 "glr_job_dependency_artifacts_filename");
    CHECK(!job.dependency_artifacts_size(2));
    CHECK(glr::last_error_code() == GLR_ERR_INVALID_ARGUMENT);
    expect_error([] { glr::check_last_error("glr_job_dependency_artifacts_size"); }, GLR_ERR_INVALID_ARGUMENT,
                 "glr_job_dependency_artifacts_size");
}

// The system_id, offline: set, validated, persisted, renewed; earlier views stay valid.
void check_system_id_offline() {
    glr::Runner runner = glr::Runner::loads(RUNNER_V1);
    runner.set_system_id("s_cppwrapper12");
    CHECK(runner.system_id() == "s_cppwrapper12");
    CHECK(glr::Runner::loads(runner.dumps()).system_id() == "s_cppwrapper12");
    expect_error([&] { runner.set_system_id("x_cppwrapper12"); }, GLR_ERR_INVALID_ARGUMENT, "glr_runner_set_system_id");
    expect_error([&] { runner.set_system_id(std::string_view("s_cpp\0rapper12", 14)); }, GLR_ERR_INVALID_ARGUMENT,
                 "glr_runner_set_system_id");
    CHECK(runner.system_id() == "s_cppwrapper12");
    std::string_view before = runner.system_id();
    runner.set_system_id(std::nullopt);
    std::string_view renewed = runner.system_id();
    CHECK(renewed.size() == 14 && renewed.substr(0, 2) == "r_" && renewed != before);
    CHECK(before == "s_cppwrapper12");
}

// GitLab's clocks and the ways to learn of a cancel without callbacks, offline: a Python dump
// has no timeout, waiting for a change that does not come returns the known state, the event
// descriptor is the job's own, labels are checked and persisted, diagnostics go to a pipe.
void check_clocks_and_events_offline() {
    glr::Job job = glr::Job::loads(JOB_V1);
    CHECK(!job.timeout() && !job.deadline());
    CHECK(job.wait_state(glr::JobState::running, std::chrono::milliseconds(20)) == glr::JobState::running);
    CHECK(job.wait_state(glr::JobState::running, std::chrono::milliseconds(-5)) == glr::JobState::running);
    CHECK(job.wait_state(glr::JobState::success, std::nullopt) == glr::JobState::running); // differs: no wait
    int fd = job.event_fd();
    CHECK(fd >= 0 && job.event_fd() == fd);
    glr::Job moved = std::move(job);
    CHECK(!job.acknowledged() && !job.timeout());
    expect_error([&] { job.event_fd(); }, GLR_ERR_NULL_ARGUMENT, "glr_job_event_fd");
    expect_error([&] { job.wait_state(glr::JobState::running, std::nullopt); }, GLR_ERR_NULL_ARGUMENT,
                 "glr_job_wait_state");

    glr::Runner runner = glr::Runner::loads(RUNNER_V1);
    runner.set_label("team", "hpc");
    CHECK(contains(runner.dumps(), "\"team\""));
    CHECK(contains(glr::Runner::loads(runner.dumps()).dumps(), "\"hpc\""));
    runner.set_label("team", std::nullopt);
    CHECK(!contains(runner.dumps(), "\"team\""));
    expect_error([&] { runner.set_label("ab", "x"); }, GLR_ERR_INVALID_ARGUMENT, "glr_runner_set_label");
    expect_error([&] { runner.set_label("team", ""); }, GLR_ERR_INVALID_ARGUMENT, "glr_runner_set_label");
    expect_error([&] { runner.set_label(std::string_view("te\0am", 5), "x"); }, GLR_ERR_INVALID_ARGUMENT,
                 "glr_runner_set_label");

    int pipe_fds[2];
    CHECK(pipe(pipe_fds) == 0);
    glr::set_log_fd(pipe_fds[1], glr::LogLevel::warn);
    std::string dir = make_temp_dir();
    log_a_warning(glr::Job::loads(JOB_DEPENDENCIES_V1), dir);
    glr::set_log_fd(std::nullopt); // from here no line goes to the pipe
    close(pipe_fds[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = read(pipe_fds[0], buf, sizeof buf)) > 0;)
        text.append(buf, static_cast<std::size_t>(n));
    close(pipe_fds[0]);
    CHECK(contains(text, "gitlab_runner_api: warn: ") && contains(text, "missing.txt: no matching files"));
    expect_error([] { glr::set_log_fd(-2); }, GLR_ERR_INVALID_ARGUMENT, "glr_set_log_fd");
    std::filesystem::remove_all(dir);
}

// Takes the next queued job (each comes at once: they were queued before the program started).
glr::Job take_job(glr::Runner &runner) {
    std::optional<glr::Job> job;
    for (int i = 0; i < 50 && !job; ++i)
        job = runner.request_job();
    CHECK(job);
    return std::move(*job);
}

// Against the test server: the second job is handed over as a string and finished by its new
// owner (its former handle, a watcher, refuses log text but keeps the job alive); the third is
// handed over through a file (after a hand-over that could not write it) and failed by the
// process that loads it. tests/header.rs checks what the server stored.
void check_hand_over_with_server(glr::Runner &runner) {
    glr::Job first = take_job(runner);
    first.append_log("wrapper_test handover: by the first owner\n");
    std::string dump = first.hand_over_dumps();
    CHECK(first.is_watcher());
    expect_error<glr::NotOwnerError>([&] { first.append_log("lost\n"); }, GLR_ERR_NOT_OWNER, "glr_job_log_append");
    expect_error<glr::NotOwnerError>([&] { first.flush_log(); }, GLR_ERR_NOT_OWNER, "glr_job_log_flush");
    CHECK(contains(first.log(), "wrapper_test handover: by the first owner\n"));
    first.set_keepalive_interval(std::chrono::seconds(1));
    first.auth(); // a watcher keeps the job alive
    CHECK(first.state() == glr::JobState::running);

    glr::Job owner = glr::Job::loads(dump);
    CHECK(!owner.is_watcher() && owner.id() == first.id());
    owner.append_log("wrapper_test handover: by the new owner\n");
    glr::shutdown(std::chrono::seconds(30)); // GitLab acknowledges the new owner's text
    owner.set_success();
    CHECK(owner.state() == glr::JobState::success);

    glr::Job third = take_job(runner);
    third.append_log("wrapper_test file handover: before\n");
    std::string dir = make_temp_dir();
    expect_error([&] { third.hand_over_dump(dir + "/missing/job.json"); }, GLR_ERR_IO, "glr_job_hand_over_dump");
    CHECK(!third.is_watcher());
    std::string path = dir + "/job.json";
    third.hand_over_dump(path);
    CHECK(third.is_watcher());
    glr::Job watcher = glr::Job::watch_load(path);
    CHECK(watcher.is_watcher() && watcher.id() == third.id());
    glr::Job loaded = glr::Job::load(path);
    CHECK(!loaded.is_watcher());
    loaded.append_log("wrapper_test file handover: after\n");
    expect_error<glr::NotOwnerError>([&] { watcher.append_log("lost\n"); }, GLR_ERR_NOT_OWNER, "glr_job_log_append");
    loaded.set_exit_code(3);
    loaded.set_failed(glr::FailureReason::script);
    CHECK(loaded.state() == glr::JobState::failed);
    std::filesystem::remove_all(dir);
}

// Against the test server, once no job is left: Runner::interrupt() from this thread ends a
// request_job() held in GitLab's long poll on another thread within a second; the next call is
// not affected, and runs into the runner's call timeout instead.
void check_interrupt_and_timeout_with_server(glr::Runner &runner) {
    using clock = std::chrono::steady_clock;
    std::atomic<int> calls{0};
    std::atomic<bool> done{false};
    std::atomic<bool> interrupted{false};
    std::atomic<bool> unexpected{false};
    std::thread poller([&] {
        const clock::time_point deadline = clock::now() + std::chrono::seconds(30);
        while (clock::now() < deadline) {
            ++calls;
            try {
                if (runner.request_job()) {
                    unexpected = true; // no job is queued
                    break;
                }
            } catch (const glr::InterruptedError &e) {
                interrupted = e.status() == GLR_ERR_INTERRUPTED && e.function() == "glr_runner_request_job";
                break;
            } catch (...) {
                unexpected = true;
                break;
            }
        }
        done = true;
    });
    // The first call learns the queue's state; the second waits in the long poll.
    const clock::time_point waiting = clock::now() + std::chrono::seconds(10);
    while (calls.load() < 2 && clock::now() < waiting)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const clock::time_point sent = clock::now();
    runner.interrupt();
    CHECK(wait_for(done, 30));
    const clock::duration took = clock::now() - sent;
    poller.join();
    CHECK(calls.load() >= 2 && !unexpected && interrupted);
    CHECK(took < std::chrono::seconds(1));

    runner.set_call_timeout(std::chrono::milliseconds(300));
    const clock::time_point started = clock::now();
    expect_error<glr::TimeoutError>(
        [&] {
            for (int i = 0; i < 3; ++i)
                runner.request_job(); // the long poll holds each for seconds
        },
        GLR_ERR_TIMEOUT, "glr_runner_request_job");
    CHECK(clock::now() - started < std::chrono::seconds(2));
    runner.set_call_timeout(std::chrono::milliseconds(0));
}

// Against the test server: the system_id reaches GitLab, dependency archives are described and
// downloaded, the log callback gets the library's lines on its event thread (the retry of the
// first upload's failure included) and replacing it is the sync point after which they are all
// there; then one writer per job, interrupting and timing out.
void check_with_server(const std::string &url, const std::string &registration_token) {
    auto recorder = std::make_shared<LogRecorder>();
    glr::set_log_callback(LogRecorder::into(recorder));

    expect_error<glr::AuthError>([&] { glr::Runner::register_runner(url, "wrong-token"); }, GLR_ERR_AUTH,
                                 "glr_runner_register");
    CHECK(glr::last_error_code() == GLR_ERR_AUTH);
    expect_error<glr::AuthError>([] { glr::check_last_error("glr_runner_register"); }, GLR_ERR_AUTH,
                                 "glr_runner_register");

    glr::Runner runner = glr::Runner::register_runner(url, registration_token);
    runner.set_system_id("s_cppwrapper12"); // the server records it with the job it hands out
    const std::string first_token(runner.token());
    runner.reset_token(); // the old token stops working at once; the new one takes jobs
    CHECK(runner.token() != first_token && !runner.token().empty());
    runner.check_auth();
    glr::Job job = take_job(runner);
    CHECK(job.acknowledged());
    CHECK(job.timeout() == std::optional<std::chrono::seconds>(std::chrono::seconds(3600)));
    CHECK(job.deadline() && *job.deadline() > std::chrono::system_clock::now() + std::chrono::minutes(50));

    // The default payload depends on the server's fixture job "build" and its archive.
    CHECK(job.dependency_count() == 1);
    std::optional<std::string> filename = job.dependency_artifacts_filename(0);
    CHECK(filename == std::optional<std::string>("artifacts.zip"));
    std::optional<int64_t> size = job.dependency_artifacts_size(0);
    CHECK(size && *size > 0);
    std::string dir = make_temp_dir();
    std::string zip = dir + "/" + *filename;
    job.download_artifacts(0, zip);
    CHECK(std::filesystem::file_size(zip) == static_cast<std::uintmax_t>(*size));
    std::filesystem::remove_all(dir);

    // The first upload of the log fails once; the library retries and says so.
    job.append_log("wrapper_test: first line\n");
    job.flush_log();
    auto replacement = std::make_shared<LogRecorder>();
    glr::set_log_callback(LogRecorder::into(replacement)); // sync point
    CHECK(recorder.use_count() == 1);                       // the replaced callback is gone
    std::vector<LogLine> lines = recorder->lines();
    CHECK(!lines.empty());
    CHECK(recorder->count([](const LogLine &l) { return l.thread_name != EVENT_THREAD; }) == 0);
    CHECK(recorder->count([](const LogLine &l) {
        return l.level == glr::LogLevel::info && contains(l.message, "registered runner");
    }) == 1);
    // Retried within flush_log() (a debug line), or, when the background's first upload met the
    // failure, by the job's next turn (a warning: background turns make one attempt each).
    CHECK(recorder->count([](const LogLine &l) {
        return contains(l.message, "500") &&
               ((l.level == glr::LogLevel::debug && contains(l.message, "retrying in")) ||
                (l.level == glr::LogLevel::warn && contains(l.message, "will retry")));
    }) >= 1);

    job.append_log("wrapper_test: after the replacement\n");
    job.set_success();
    CHECK(job.state() == glr::JobState::success);

    check_hand_over_with_server(runner);
    check_interrupt_and_timeout_with_server(runner);
    glr::set_log_callback({});

    std::vector<LogLine> later = replacement->lines();
    CHECK(replacement->count([](const LogLine &l) { return contains(l.message, "reported success"); }) >= 2);
    lines.insert(lines.end(), later.begin(), later.end());
    std::string job_token(job.token()), runner_token(runner.token());
    CHECK(!job_token.empty() && !runner_token.empty() && !registration_token.empty());
    for (const LogLine &line : lines)
        CHECK(!contains(line.message, job_token) && !contains(line.message, runner_token) &&
              !contains(line.message, first_token) && !contains(line.message, registration_token));
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 1 && argc != 3) {
        std::cerr << "usage: wrapper_test [GITLAB_URL REGISTRATION_TOKEN]\n";
        return 2;
    }
    glr::check_abi_version();
    CHECK(glr::version() == GLR_VERSION_STRING);
    CHECK(glr::abi_version() == GLR_ABI_VERSION);
    CHECK(glr::to_string(glr::FailureReason::script) == "script_failure");
    CHECK(glr::to_string(glr::FailureReason::runner_interrupted) == "runner_interrupted");
    CHECK(glr::to_string(glr::JobState::canceling) == "canceling");
    CHECK(glr::status_str(GLR_ERR_AUTH) == glr_status_str(GLR_ERR_AUTH));

    // Errors; the last error is the one just thrown, until the next call.
    expect_error([] { glr::Runner::loads("not json"); }, GLR_ERR_PARSE, "glr_runner_loads");
    CHECK(glr::last_error_code() == GLR_ERR_PARSE);
    expect_error([] { glr::RegisterOptions().access_level("everything"); }, GLR_ERR_INVALID_ARGUMENT,
                 "glr_register_options_set_access_level");
    glr::Error nul = expect_error([] { glr::Runner::loads(std::string_view("[1,\0]", 5)); },
                                  GLR_ERR_INVALID_ARGUMENT, "glr_runner_loads");
    CHECK(nul.message().find("NUL") != std::string::npos);
    expect_error([] { glr::Runner::load("/nonexistent/runner.json"); }, GLR_ERR_IO, "glr_runner_load");

    // Options build fluently.
    glr::RegisterOptions options;
    options.description("c++").tag("a").tags({"b", "c"}).locked(true).run_untagged(false).maximum_timeout(600);
    CHECK(options);

    // A runner, offline, from the Python package's format.
    glr::Runner runner = glr::Runner::loads(RUNNER_V1);
    CHECK(runner.id() == 42);
    CHECK(runner.api_url() == "http://127.0.0.1:9");
    CHECK(runner.token() == "runner-token");
    CHECK(runner.description() == std::optional<std::string_view>("d"));
    CHECK(runner.name() == std::optional<std::string_view>("wrapped"));
    CHECK(runner.executor() == std::optional<std::string_view>("custom"));
    CHECK(!runner.version());
    CHECK(runner.locked() == std::optional<bool>(true));
    CHECK(runner.run_untagged() == std::optional<bool>(false));
    CHECK(!runner.active());
    CHECK(runner.maximum_timeout() == std::optional<int64_t>(3600));
    CHECK(!runner.system_id().empty());
    std::vector<std::string> tags(runner.tags().begin(), runner.tags().end());
    CHECK((tags == std::vector<std::string>{"alpha", "beta"}));
    CHECK(runner.tags().size() == 2 && runner.tags()[1] == "beta");
    glr::Runner again = glr::Runner::loads(runner.dumps());
    CHECK(again.id() == 42 && again.token() == "runner-token");

    // Moves: the moved-from object holds nothing; its operations throw, its getters default.
    glr::Runner moved = std::move(runner);
    CHECK(moved && !runner);
    CHECK(moved.id() == 42);
    CHECK(runner.id() == 0 && runner.api_url().empty() && !runner.locked() && runner.tags().empty());
    expect_error([&] { runner.dumps(); }, GLR_ERR_NULL_ARGUMENT, "glr_runner_dumps");
    // A getter's default does not tell the failure; the last error does.
    CHECK(!runner.description());
    CHECK(glr::last_error_code() == GLR_ERR_NULL_ARGUMENT);
    expect_error([] { glr::check_last_error("glr_runner_description"); }, GLR_ERR_NULL_ARGUMENT,
                 "glr_runner_description");
    CHECK(moved.description());
    CHECK(glr::last_error_code() == GLR_OK);
    glr::check_last_error("glr_runner_description");
    glr_runner *raw = moved.release();
    CHECK(raw != nullptr && !moved);
    glr::Runner adopted(raw);
    CHECK(adopted.id() == 42);

    // A job, offline.
    glr::Job job = glr::Job::loads(JOB_V1);
    CHECK(job.id() == 7);
    CHECK(job.token() == "job-token");
    CHECK(job.name() == std::optional<std::string_view>("build"));
    CHECK(job.stage() == std::optional<std::string_view>("test"));
    CHECK(job.ref() == std::optional<std::string_view>("main"));
    CHECK(job.is_branch() == std::optional<bool>(true));
    CHECK(job.commit_sha() == std::optional<std::string_view>("0123abcd"));
    CHECK(job.project_path() == std::optional<std::string_view>("g/p"));
    CHECK(!job.job_url() && !job.pipeline_url() && !job.username());
    CHECK(job.state() == glr::JobState::running);
    CHECK(job.log() == "log so far\n");

    std::vector<std::string> script;
    for (std::string_view line : job.script())
        script.emplace_back(line);
    CHECK((script == std::vector<std::string>{"make", "make test"}));
    glr::ScriptLines after = job.after_script();
    CHECK(after.size() == 1 && after[0] == "echo bye" && !after.empty());

    glr::Variables variables = job.variables();
    CHECK(variables.size() == 3);
    std::vector<std::string> keys;
    for (const glr::Variable &var : variables)
        keys.emplace_back(var.key);
    CHECK((keys == std::vector<std::string>{"CI_PROJECT_PATH", "SECRET", "CONF"}));
    CHECK(variables[0].is_public() && !variables[0].is_masked());
    CHECK(variables[1].is_masked() && !variables[1].is_public() && variables[1].value == "s3cr3t-value");
    CHECK(variables[2].is_file() && !variables[2].is_raw() && variables[2].value == "a=1\n");
    CHECK(job.variable("SECRET") == std::optional<std::string_view>("s3cr3t-value"));
    CHECK(!job.variable("MISSING"));

    std::optional<glr::RegistryCredential> credential = job.get_registry_credential("registry.example.com/g/img:1");
    CHECK(credential && credential->username == "gitlab-ci-token" && credential->password == "job-token");
    CHECK(!job.get_registry_credential("docker.io/library/alpine"));
    CHECK(job.payload().find("\"job-token\"") != std::string::npos);
    CHECK(job.dependency_count() == 0);

    glr::Job copy = glr::Job::loads(job.dumps());
    CHECK(copy.id() == 7 && copy.log() == "log so far\n");

    // Cancel callbacks live in the job object; assignment frees the old job first.
    int calls = 0;
    copy.set_cancel_callback([&calls](glr::JobState) { ++calls; });
    copy.set_cancel_callback({});
    copy = glr::Job::loads(JOB_V1);
    copy = std::move(job);
    CHECK(copy.id() == 7 && !job);
    CHECK(job.state() == glr::JobState::running); // a moved-from job reports the default
    expect_error([&] { job.append_log("x"); }, GLR_ERR_NULL_ARGUMENT, "glr_job_log_append");

    // Artifacts.
    glr::Artifacts artifacts;
    CHECK(artifacts.size() == 0);
    expect_error([&] { artifacts.add_file("/nonexistent/a.zip", "a.zip"); }, GLR_ERR_IO, "glr_artifacts_add_file");
    expect_error([&] { artifacts.add_file("/etc/hostname", "a.zip", std::nullopt, "tar"); }, GLR_ERR_INVALID_ARGUMENT,
                 "glr_artifacts_add_file");
    expect_error([] { glr::extract_artifacts("/nonexistent.zip", "/tmp"); }, GLR_ERR_IO, "glr_extract_artifacts");
    CHECK(calls == 0);

    check_dependencies_offline();
    check_system_id_offline();
    check_log_callback_offline();
    check_log_callback_replacement_offline();
    check_one_writer_offline();
    check_clocks_and_events_offline();
    if (argc == 3)
        check_with_server(argv[1], argv[2]);

    std::cout << "wrapper ok (" << checks << " checks, " << (argc == 3 ? "with a server" : "offline") << ")\n";
    return 0;
}
