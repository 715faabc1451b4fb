// executor.cpp - the minimal executor of executor.c in C++17, using the C API directly.
//
//   executor_cpp RUNNER.json [--once]   take jobs with the runner saved by `register` and run them
//   executor_cpp --job JOB.json         run a job that `get_job` or `persist_job take` saved
//
// Handles are owned by std::unique_ptr with the library's free functions as deleters; library
// errors become a GlrError exception carrying the status and the thread's last error message.
// Each `script` line runs as `/bin/sh -c LINE` with the job's variables in its environment, its
// output streamed into the job log after a `$ LINE` header; the first failing line stops the
// script, `after_script` always runs, and the job is reported successful or failed with
// `script_failure` and the exit code. A graceful cancel from GitLab kills the running command,
// runs after_script and reports; a hard cancel stops everything.
//
// Exit status: 0 the job was reported (whatever its outcome) or was canceled by GitLab;
//              1 usage or library error; 2 --once and no job arrived.
//
// executor_hpp.cpp is this program written with the C++ wrapper instead. The two repeat the same
// POSIX part (running a command, building its environment) on purpose, line for line, so that
// comparing the files shows exactly what the wrapper changes; they share no code for the same
// reason (and common/job_exec.c, which the C programs share, is C in the C style).

#include "gitlab_runner_api.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char **environ;

namespace {

// ---- ownership and errors ------------------------------------------------------------------

struct RunnerDeleter {
    void operator()(glr_runner *r) const noexcept { glr_runner_free(r); }
};
struct JobDeleter {
    void operator()(glr_job *j) const noexcept { glr_job_free(j); }
};
using RunnerPtr = std::unique_ptr<glr_runner, RunnerDeleter>;
using JobPtr = std::unique_ptr<glr_job, JobDeleter>;

// A failed library call: the status, and the message read right after the call.
class GlrError : public std::runtime_error {
  public:
    GlrError(const std::string &what, glr_status status)
        : std::runtime_error(what + " failed: " + glr_status_str(status) + " (" + std::to_string(status) +
                             "): " + last_error_message()),
          status_(status) {}
    glr_status status() const noexcept { return status_; }

  private:
    static std::string last_error_message() {
        std::string message(glr_last_error_message(nullptr, 0), '\0'); // ask for the length
        glr_last_error_message(message.data(), message.size() + 1);   // writes the NUL too
        return message;
    }
    glr_status status_;
};

void check(glr_status status, const char *what) {
    if (status != GLR_OK)
        throw GlrError(what, status);
}

// Getters return NULL for what GitLab did not send.
std::string str(const char *s, const char *unset = "") { return s ? s : unset; }

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// ---- one job -------------------------------------------------------------------------------

class JobRun {
  public:
    explicit JobRun(glr_job *job) : job_(job) {}
    ~JobRun() {
        std::error_code ignored;
        if (!dir_.empty())
            std::filesystem::remove_all(dir_, ignored);
    }

    void run();

  private:
    static constexpr double flush_interval = 1.0;     // seconds between uploads while printing
    static constexpr double keepalive_interval = 3.0; // silence before asking GitLab

    // GLR_ERR_JOB_CANCELED is an outcome (GitLab stopped the job), not an error; with
    // `transient_ok`, network/HTTP errors only warn (the library sends the bytes again later).
    bool job_call(glr_status status, const char *what, bool transient_ok = false) {
        if (status == GLR_OK)
            return true;
        GlrError error(what, status); // reads the message now, before any other call
        if (status == GLR_ERR_JOB_CANCELED) {
            stopped_ = true;
            return false;
        }
        if (transient_ok && (status == GLR_ERR_NETWORK || status == GLR_ERR_HTTP)) {
            std::cerr << "executor_cpp: warning: " << error.what() << " (will retry)\n";
            return false;
        }
        throw error;
    }

    bool cancel_requested() {
        int32_t state = glr_job_state(job_);
        if (state == GLR_JOB_CANCELED)
            stopped_ = true;
        else if (state == GLR_JOB_CANCELING)
            canceling_ = true;
        return stopped_ || canceling_;
    }

    void log(const std::string &text) {
        if (stopped_ || text.empty())
            return;
        if (job_call(glr_job_log_append(job_, text.data(), text.size()), "glr_job_log_append"))
            unflushed_ = true;
    }

    // Uploads the log if anything is new, else asks GitLab whether the job should go on.
    void talk_to_gitlab() {
        if (stopped_)
            return;
        if (unflushed_) {
            if (job_call(glr_job_log_flush(job_), "glr_job_log_flush", true))
                unflushed_ = false;
        } else {
            job_call(glr_job_auth(job_), "glr_job_auth", true);
        }
        last_contact_ = std::chrono::steady_clock::now();
        cancel_requested();
    }

    void log_command_header(const std::string &line) {
        auto newline = line.find('\n');
        log("\033[32;1m$ " + line.substr(0, newline) +
            (newline == std::string::npos ? "" : " # collapsed multi-line command") + "\033[0;m\n");
    }

    void prepare_directories();
    void build_environment();
    int run_command(const std::string &line);

    glr_job *job_;
    std::filesystem::path dir_, workdir_;
    std::vector<std::string> env_;   // "KEY=value" strings
    std::vector<char *> envp_;       // pointers into env_, NULL-terminated
    bool canceling_ = false, stopped_ = false, unflushed_ = false;
    std::chrono::steady_clock::time_point last_contact_ = std::chrono::steady_clock::now();
};

void JobRun::prepare_directories() {
    const char *tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/glr-job-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr)
        throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
    dir_ = templ;
    workdir_ = dir_ / "build";
    std::filesystem::create_directory(workdir_);
    std::filesystem::create_directory(dir_ / "vars");
}

// The job's variables (the last of a repeated key wins; file variables become a file whose path
// is exported), CI_PROJECT_DIR, then this process's environment.
void JobRun::build_environment() {
    std::set<std::string> names;
    auto valid = [](const std::string &k) {
        if (k.empty() || std::isdigit(static_cast<unsigned char>(k[0])))
            return false;
        for (char c : k)
            if (!(c == '_' || std::isalnum(static_cast<unsigned char>(c))))
                return false;
        return true;
    };
    for (size_t i = glr_job_variable_count(job_); i-- > 0;) {
        std::string key = str(glr_job_variable_key(job_, i));
        const char *value = glr_job_variable_value(job_, i);
        if (!valid(key) || value == nullptr || !names.insert(key).second)
            continue;
        if (glr_job_variable_flags(job_, i) & GLR_VAR_FILE) {
            auto path = dir_ / "vars" / key;
            std::ofstream(path, std::ios::binary) << value;
            std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
            env_.push_back(key + "=" + path.string());
        } else {
            env_.push_back(key + "=" + value);
        }
    }
    if (names.insert("CI_PROJECT_DIR").second)
        env_.push_back("CI_PROJECT_DIR=" + workdir_.string());
    for (char **e = environ; *e != nullptr; ++e) {
        std::string entry = *e;
        if (names.insert(entry.substr(0, entry.find('='))).second)
            env_.push_back(entry);
    }
    for (auto &entry : env_)
        envp_.push_back(entry.data());
    envp_.push_back(nullptr);
}

// Runs `/bin/sh -c line`, streaming its output into the log; returns its exit status (128 +
// signal when killed), or -1 if it could not be started.
int JobRun::run_command(const std::string &line) {
    char *argv[] = {const_cast<char *>("sh"), const_cast<char *>("-c"), const_cast<char *>(line.c_str()), nullptr};
    std::string workdir = workdir_.string();
    bool was_canceling = canceling_; // after_script runs on during a graceful cancel
    int fds[2];
    if (pipe(fds) != 0) {
        log("ERROR: pipe: " + std::string(std::strerror(errno)) + "\n");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log("ERROR: fork: " + std::string(std::strerror(errno)) + "\n");
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        // Child: the library runs threads, so only async-signal-safe calls until execve.
        int devnull = open("/dev/null", O_RDONLY);
        setpgid(0, 0);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        if (chdir(workdir.c_str()) != 0)
            _exit(127);
        execve("/bin/sh", argv, envp_.data());
        _exit(127);
    }
    setpgid(pid, 0);
    close(fds[1]);

    int status = 0;
    bool reaped = false, killed = false;
    for (;;) {
        pollfd pfd{fds[0], POLLIN, 0};
        int ready = poll(&pfd, 1, 200);
        if (ready > 0) {
            char buf[8192];
            ssize_t n = read(fds[0], buf, sizeof buf);
            if (n > 0)
                log(std::string(buf, static_cast<size_t>(n)));
            else if (n == 0 || errno != EINTR)
                break; // end of output
        } else if (ready == 0 && waitpid(pid, &status, WNOHANG) == pid) {
            reaped = true; // the shell is gone; a background process keeps the pipe open
            break;
        } else if (ready < 0 && errno != EINTR) {
            break;
        }
        if (seconds_since(last_contact_) >= (unflushed_ ? flush_interval : keepalive_interval))
            talk_to_gitlab();
        if (!killed && cancel_requested() && (stopped_ || !was_canceling)) {
            kill(-pid, SIGKILL);
            killed = true;
        }
    }
    close(fds[0]);
    kill(-pid, SIGKILL); // whatever the command left running
    if (!reaped)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

void JobRun::run() {
    long long id = glr_job_id(job_);
    std::cout << "Job " << id << " (" << str(glr_job_name(job_), "?") << "): running" << std::endl;
    log("Running with gitlab_runner_api " + std::string(glr_version()) + " (examples-c/executor.cpp)\n");
    log("Starting job with id " + std::to_string(id) + " for " + (glr_job_is_branch(job_) == 0 ? "tag " : "branch ") +
        str(glr_job_ref(job_), "(unknown)") + "\n");

    bool system_failure = false;
    try {
        prepare_directories();
        build_environment();
    } catch (const std::exception &e) {
        log(std::string("ERROR: cannot prepare the job: ") + e.what() + "\n");
        system_failure = true;
    }

    // script: stop at the first failing line, or when GitLab cancels the job.
    int exit_code = 0;
    for (size_t i = 0; i < glr_job_script_count(job_) && !system_failure; i++) {
        std::string line = str(glr_job_script_line(job_, i));
        talk_to_gitlab(); // upload what is new, or glr_job_auth: still wanted?
        if (cancel_requested())
            break;
        log_command_header(line);
        int rc = run_command(line);
        if (rc < 0)
            system_failure = true;
        else if (rc != 0) {
            exit_code = rc;
            break;
        }
    }
    cancel_requested();

    // after_script: always (after a failure or a graceful cancel too), failures ignored.
    size_t after = glr_job_after_script_count(job_);
    if (after > 0 && !stopped_ && !system_failure) {
        log("\033[32;1mRunning after_script\033[0;m\n");
        for (size_t i = 0; i < after && !stopped_; i++) {
            std::string line = str(glr_job_after_script_line(job_, i));
            log_command_header(line);
            int rc = run_command(line);
            if (rc != 0)
                log("WARNING: after_script failed, but the job goes on: exit code " + std::to_string(rc) + "\n");
        }
    }

    // Report: set_success/set_failed upload the rest of the log first.
    if (!stopped_) {
        if (canceling_) {
            log("\033[31;1mERROR: Job canceled\033[0;m\n");
            job_call(glr_job_set_failed(job_, GLR_FAILURE_UNKNOWN, nullptr), "glr_job_set_failed");
        } else if (system_failure) {
            log("\033[31;1mERROR: Job failed (system failure)\033[0;m\n");
            job_call(glr_job_set_failed(job_, GLR_FAILURE_RUNNER_SYSTEM, nullptr), "glr_job_set_failed");
        } else if (exit_code == 0) {
            log("\033[32;1mJob succeeded\033[0;m\n");
            job_call(glr_job_set_success(job_, nullptr), "glr_job_set_success");
        } else {
            log("\033[31;1mERROR: Job failed: exit code " + std::to_string(exit_code) + "\033[0;m\n");
            if (job_call(glr_job_set_exit_code(job_, exit_code), "glr_job_set_exit_code"))
                job_call(glr_job_set_failed(job_, GLR_FAILURE_SCRIPT, nullptr), "glr_job_set_failed");
        }
    }
    if (stopped_) {
        std::cout << "Job " << id << ": canceled by GitLab" << std::endl;
    } else {
        static const char *const names[] = {"running", "success", "failed", "canceling", "canceled"};
        int32_t state = glr_job_state(job_);
        std::cout << "Job " << id << ": reported, state " << (state >= 0 && state <= 4 ? names[state] : "?")
                  << (exit_code ? " (script failed)" : "") << std::endl;
    }
}

int usage() {
    std::cerr << "usage: executor_cpp RUNNER.json [--once]\n"
                 "       executor_cpp --job JOB.json\n";
    return 1;
}

int run_main(int argc, char **argv) {
    std::string runner_path, job_path;
    bool once = false;
    for (int i = 1; i < argc; i++) {
        std::string arg = argv[i];
        if (arg == "--once")
            once = true;
        else if (arg == "--job" && i + 1 < argc)
            job_path = argv[++i];
        else if (arg[0] != '-' && runner_path.empty())
            runner_path = arg;
        else
            return usage();
    }
    if (runner_path.empty() == job_path.empty())
        return usage();
    if (glr_abi_version() != GLR_ABI_VERSION) {
        std::cerr << "executor_cpp: library ABI " << glr_abi_version() << ", built for " << GLR_ABI_VERSION << "\n";
        return 1;
    }
    std::signal(SIGPIPE, SIG_IGN);

    if (!job_path.empty()) {
        glr_job *raw = nullptr;
        check(glr_job_load(job_path.c_str(), &raw), "glr_job_load");
        JobPtr job(raw);
        int32_t state = glr_job_state(job.get());
        if (state != GLR_JOB_RUNNING && state != GLR_JOB_CANCELING) {
            std::cerr << "executor_cpp: job " << glr_job_id(job.get()) << " is already finished\n";
            return 1;
        }
        JobRun(job.get()).run();
        return 0;
    }

    glr_runner *raw_runner = nullptr;
    check(glr_runner_load(runner_path.c_str(), &raw_runner), "glr_runner_load");
    RunnerPtr runner(raw_runner);
    check(glr_runner_check_auth(runner.get()), "glr_runner_check_auth");
    check(glr_runner_set_feature(runner.get(), "variables", 1), "glr_runner_set_feature");

    for (int tries = 0;;) {
        glr_job *raw = nullptr;
        glr_status status = glr_runner_request_job(runner.get(), &raw);
        if (status != GLR_OK) {
            GlrError error("glr_runner_request_job", status);
            if (once || status == GLR_ERR_AUTH)
                throw error;
            std::cerr << "executor_cpp: warning: " << error.what() << "; retrying\n";
            std::this_thread::sleep_for(std::chrono::seconds(5));
            continue;
        }
        JobPtr job(raw); // NULL: no job now
        if (!job) {
            if (once && ++tries >= 5) {
                std::cout << "No job available" << std::endl;
                return 2;
            }
            std::this_thread::sleep_for(std::chrono::seconds(1)); // GitLab long-polls; others don't
            continue;
        }
        JobRun(job.get()).run();
        if (once)
            return 0;
    }
}

} // namespace

int main(int argc, char **argv) {
    try {
        return run_main(argc, argv);
    } catch (const std::exception &e) {
        std::cerr << "executor_cpp: " << e.what() << "\n";
        return 1;
    }
}
