// executor_hpp.cpp - the minimal executor of executor.c, written with the C++17 wrapper
// gitlab_runner_api.hpp (RAII handles, exceptions, std::string_view, std::optional, ranges).
//
//   executor_hpp_cpp RUNNER.json [--once]   take jobs with the runner saved by `register` and run them
//   executor_hpp_cpp --job JOB.json         run a job that `get_job` or `persist_job take` saved
//
// Each `script` line runs as `/bin/sh -c LINE` with the job's variables in its environment, its
// output streamed into the job log after a `$ LINE` header; the first failing line stops the
// script, `after_script` always runs, and the job is reported successful or failed with
// `script_failure` and the exit code. A graceful cancel from GitLab kills the running command,
// runs after_script and reports; a hard cancel stops everything. Compare executor.cpp, the same
// program on the C API: the POSIX part (running a command, building its environment) is the same
// in both on purpose, so that the difference between the files is the wrapper's.
//
// Exit status: 0 the job was reported (whatever its outcome) or was canceled by GitLab;
//              1 usage or library error; 2 --once and no job arrived.

#include "gitlab_runner_api.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
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
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char **environ;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string str(std::optional<std::string_view> s, std::string_view unset = "") { return std::string(s.value_or(unset)); }

// ---- one job -------------------------------------------------------------------------------

class JobRun {
  public:
    // Owns the job: its cancel callback (which uses this object) ends with it.
    explicit JobRun(glr::Job job) : job_(std::move(job)) {
        // GitLab's cancel, as soon as any call (often the background uploader) learns of it.
        job_.set_cancel_callback([this](glr::JobState state) {
            if (state == glr::JobState::canceled)
                stopped_ = true;
            else
                canceling_ = true;
        });
    }
    ~JobRun() {
        std::error_code ignored;
        if (!dir_.empty())
            std::filesystem::remove_all(dir_, ignored);
    }

    void run();

  private:
    static constexpr double flush_interval = 1.0;     // seconds between uploads while printing
    static constexpr double keepalive_interval = 3.0; // silence before asking GitLab

    // Runs a job call: GitLab stopping the job is an outcome, not an error; with `transient_ok`,
    // network/HTTP errors only warn (the library sends the bytes again later).
    template <typename Call> bool job_call(Call call, bool transient_ok = false) {
        try {
            call();
            return true;
        } catch (const glr::JobCanceledError &) {
            stopped_ = true;
        } catch (const glr::Error &e) {
            if (!transient_ok || (e.status() != GLR_ERR_NETWORK && e.status() != GLR_ERR_HTTP))
                throw;
            std::cerr << "executor_hpp_cpp: warning: " << e.what() << " (will retry)\n";
        }
        return false;
    }

    bool cancel_requested() {
        glr::JobState state = job_.state();
        if (state == glr::JobState::canceled)
            stopped_ = true;
        else if (state == glr::JobState::canceling)
            canceling_ = true;
        return stopped_ || canceling_;
    }

    void log(std::string_view text) {
        if (stopped_ || text.empty())
            return;
        if (job_call([&] { job_.append_log(text); }))
            unflushed_ = true;
    }

    // Uploads the log if anything is new, else asks GitLab whether the job should go on.
    void talk_to_gitlab() {
        if (stopped_)
            return;
        if (unflushed_) {
            if (job_call([&] { job_.flush_log(); }, true))
                unflushed_ = false;
        } else {
            job_call([&] { job_.auth(); }, true);
        }
        last_contact_ = std::chrono::steady_clock::now();
        cancel_requested();
    }

    void log_command_header(std::string_view line) {
        auto newline = line.find('\n');
        log("\033[32;1m$ " + std::string(line.substr(0, newline)) +
            (newline == std::string_view::npos ? "" : " # collapsed multi-line command") + "\033[0;m\n");
    }

    void prepare_directories();
    void build_environment();
    int run_command(const std::string &line);

    std::filesystem::path dir_, workdir_;
    std::vector<std::string> env_; // "KEY=value" strings
    std::vector<char *> envp_;     // pointers into env_, NULL-terminated
    std::atomic<bool> canceling_{false}, stopped_{false}; // also set by the cancel callback
    bool unflushed_ = false;
    std::chrono::steady_clock::time_point last_contact_ = std::chrono::steady_clock::now();
    glr::Job job_; // last: destroyed first, so no cancel callback runs after the members it uses
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
    std::set<std::string, std::less<>> names;
    auto valid = [](std::string_view k) {
        if (k.empty() || std::isdigit(static_cast<unsigned char>(k[0])))
            return false;
        for (char c : k)
            if (!(c == '_' || std::isalnum(static_cast<unsigned char>(c))))
                return false;
        return true;
    };
    glr::Variables variables = job_.variables();
    for (std::size_t i = variables.size(); i-- > 0;) { // backwards: the last one wins
        glr::Variable var = variables[i];
        if (!valid(var.key) || !names.emplace(var.key).second)
            continue;
        std::string key(var.key);
        if (var.is_file()) {
            auto path = dir_ / "vars" / key;
            std::ofstream(path, std::ios::binary) << var.value;
            std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
            env_.push_back(key + "=" + path.string());
        } else {
            env_.push_back(key + "=" + std::string(var.value));
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
                log(std::string_view(buf, static_cast<std::size_t>(n)));
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
    long long id = job_.id();
    std::cout << "Job " << id << " (" << str(job_.name(), "?") << "): running" << std::endl;
    log("Running with gitlab_runner_api " + std::string(glr::version()) + " (examples-c/executor_hpp.cpp)\n");
    log("Starting job with id " + std::to_string(id) + " for " + (job_.is_branch() == false ? "tag " : "branch ") +
        str(job_.ref(), "(unknown)") + "\n");

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
    for (std::string_view line : job_.script()) {
        if (system_failure)
            break;
        talk_to_gitlab(); // upload what is new, or auth(): still wanted?
        if (cancel_requested())
            break;
        log_command_header(line);
        int rc = run_command(std::string(line));
        if (rc < 0)
            system_failure = true;
        else if (rc != 0) {
            exit_code = rc;
            break;
        }
    }
    cancel_requested();

    // after_script: always (after a failure or a graceful cancel too), failures ignored.
    glr::ScriptLines after = job_.after_script();
    if (!after.empty() && !stopped_ && !system_failure) {
        log("\033[32;1mRunning after_script\033[0;m\n");
        for (std::string_view line : after) {
            if (stopped_)
                break;
            log_command_header(line);
            int rc = run_command(std::string(line));
            if (rc != 0)
                log("WARNING: after_script failed, but the job goes on: exit code " + std::to_string(rc) + "\n");
        }
    }

    // Report: set_success/set_failed upload the rest of the log first. Whether the report went
    // through decides what is printed: the cancel callback runs on the library's own thread and
    // may mark the job stopped right after (GitLab answers a report of a canceling job with
    // "canceled").
    bool reported = false;
    if (!stopped_) {
        if (canceling_) {
            log("\033[31;1mERROR: Job canceled\033[0;m\n");
            reported = job_call([&] { job_.set_failed(glr::FailureReason::unknown); });
        } else if (system_failure) {
            log("\033[31;1mERROR: Job failed (system failure)\033[0;m\n");
            reported = job_call([&] { job_.set_failed(glr::FailureReason::runner_system); });
        } else if (exit_code == 0) {
            log("\033[32;1mJob succeeded\033[0;m\n");
            reported = job_call([&] { job_.set_success(); });
        } else {
            log("\033[31;1mERROR: Job failed: exit code " + std::to_string(exit_code) + "\033[0;m\n");
            reported = job_call([&] {
                job_.set_exit_code(exit_code);
                job_.set_failed(glr::FailureReason::script);
            });
        }
    }
    if (!reported) {
        std::cout << "Job " << id << ": canceled by GitLab" << std::endl;
    } else {
        std::cout << "Job " << id << ": reported, state " << glr::to_string(job_.state())
                  << (exit_code ? " (script failed)" : "") << std::endl;
    }
}

int usage() {
    std::cerr << "usage: executor_hpp_cpp RUNNER.json [--once]\n"
                 "       executor_hpp_cpp --job JOB.json\n";
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
    glr::check_abi_version(); // the library this program runs with has the ABI of its header
    std::signal(SIGPIPE, SIG_IGN);

    if (!job_path.empty()) {
        glr::Job job = glr::Job::load(job_path);
        if (job.state() != glr::JobState::running && job.state() != glr::JobState::canceling) {
            std::cerr << "executor_hpp_cpp: job " << job.id() << " is already finished\n";
            return 1;
        }
        JobRun(std::move(job)).run();
        return 0;
    }

    glr::Runner runner = glr::Runner::load(runner_path);
    runner.check_auth();
    runner.set_feature("variables", true);

    for (int tries = 0;;) {
        std::optional<glr::Job> job;
        try {
            job = runner.request_job();
        } catch (const glr::Error &e) {
            if (once || e.status() == GLR_ERR_AUTH)
                throw;
            std::cerr << "executor_hpp_cpp: warning: " << e.what() << "; retrying\n";
            std::this_thread::sleep_for(std::chrono::seconds(5));
            continue;
        }
        if (!job) {
            if (once && ++tries >= 5) {
                std::cout << "No job available" << std::endl;
                return 2;
            }
            std::this_thread::sleep_for(std::chrono::seconds(1)); // GitLab long-polls; others don't
            continue;
        }
        JobRun(std::move(*job)).run();
        if (once)
            return 0;
    }
}

} // namespace

int main(int argc, char **argv) {
    try {
        return run_main(argc, argv);
    } catch (const std::exception &e) {
        std::cerr << "executor_hpp_cpp: " << e.what() << "\n";
        return 1;
    }
}
