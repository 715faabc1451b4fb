/*
 * glr-slurm-job.c - the program a Slurm batch job runs: finishes one GitLab job that
 * glr-slurm-daemon took from GitLab and saved (glr_job_dump) in its spool directory.
 *
 *   glr-slurm-job SPOOL/ID.json
 *
 * It loads the job (glr_job_load, offline), asks GitLab whether the job is still wanted (it may
 * have waited in the Slurm queue for hours), then runs it as examples-c/executor.c does: each
 * `script` line as `/bin/sh -c LINE` in a fresh directory under $TMPDIR with the job's variables,
 * its output streamed into the job log as it arrives (the log continues after the daemon's lines),
 * the first failing line stops the script, `after_script` always runs, the dependencies' artifacts
 * are downloaded first and the job's own `artifacts:` are collected and uploaded with the report
 * (glr_artifacts_collect + glr_job_set_success / glr_job_set_failed with script_failure and the
 * exit code).
 *
 * When it has reported (or learned that GitLab stopped the job) it rewrites SPOOL/ID.json with the
 * finished job and writes SPOOL/ID.done (one word: success, failed or canceled). The daemon reads
 * that marker: a batch job that ends without it did not finish its GitLab job, and the daemon
 * fails it with runner_system_failure.
 *
 * Cancellation. The daemon is the one that asks GitLab about the job (glr_job_auth every few
 * seconds) and `scancel`s the batch job when GitLab cancels it; this program does not poll GitLab
 * on its own, it only uploads its log (and the library's keep-alive), whose answers also carry a
 * cancel. Slurm's scancel (or a time limit) sends SIGTERM, then SIGKILL after KillWait. On
 * SIGTERM this program kills the running command and asks GitLab (glr_job_auth) why:
 *   - GitLab canceled the job (hard): nothing more can be reported; marker `canceled`, exit 0;
 *   - GitLab is canceling it gracefully: after_script runs, the job is reported canceled (as the
 *     official runner does) and the marker written; this has to fit in Slurm's KillWait;
 *   - GitLab still wants it: Slurm stopped the job (scancel by someone, time limit, preemption).
 *     It logs that, uploads the log and exits 143 without a marker: the daemon reports the job
 *     (runner_system_failure), so one place decides what a vanished batch job means, whether it
 *     got SIGTERM or SIGKILL or its node died.
 *
 * Left out on purpose, as in executor.c: cloning the repository, images and services, caches,
 * timeouts, expanding $VARIABLES inside variable values, one shell session for all lines. A batch
 * job that Slurm requeues runs the job again from the daemon's dump (its log continues).
 *
 * Exit status: 0 the job was reported (whatever its outcome) or was canceled by GitLab;
 *              1 usage or library error (the message names the call and says why);
 *              143 stopped by Slurm (SIGTERM) while GitLab still wanted the job.
 */
#define _XOPEN_SOURCE 700 /* POSIX 2008 + XSI: fork, pipe, poll, mkdtemp, nftw, setpgid, sigaction */

#include "gitlab_runner_api.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;


#define FLUSH_INTERVAL 1.0 /* seconds between log uploads while a command prints */

/* Set by SIGTERM (scancel, time limit): stop the running command and find out why. */
static volatile sig_atomic_t terminated_by_signal = 0;

static void on_sigterm(int signo)
{
    (void)signo;
    terminated_by_signal = 1;
}

/* ---- error handling ----------------------------------------------------------------------- */

/* Prints which call failed, glr_status_str() and the thread's last error message; exits 1. */
static void die(const char *what, glr_status status)
{
    char message[1024];
    /* First: the message belongs to the last library call made on this thread. */
    glr_last_error_message(message, sizeof message);
    fprintf(stderr, "glr-slurm-job: %s failed: %s (%d): %s\n", what, glr_status_str(status), (int)status,
            message);
    exit(1);
}

#define CHECK(call)                          \
    do {                                     \
        glr_status check_status_ = (call);   \
        if (check_status_ != GLR_OK)         \
            die(#call, check_status_);       \
    } while (0)

/* ---- one job ------------------------------------------------------------------------------ */

struct job_run {
    glr_job *job;
    char dir[4096];      /* temporary directory of this job */
    char workdir[4200];  /* <dir>/build: where the commands run */
    char **envp;         /* the commands' environment */
    int canceling;       /* GitLab asked for a graceful stop */
    int stopped;         /* GitLab stopped the job: nothing more can be sent */
    int terminated;      /* Slurm sent SIGTERM */
    int unflushed;       /* log text appended since the last upload */
    double last_contact; /* when we last talked to GitLab about this job */
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Checks the status of a call about the job. GLR_ERR_JOB_CANCELED is an outcome, not an error:
 * GitLab stopped the job. With `transient_ok`, network and HTTP errors only warn: the library
 * keeps every appended byte and sends it again with the next upload or the final report.
 * Returns 1 when the call succeeded.
 */
static int job_call(struct job_run *run, glr_status status, const char *what, int transient_ok)
{
    char message[1024];
    if (status == GLR_OK)
        return 1;
    glr_last_error_message(message, sizeof message);
    if (status == GLR_ERR_JOB_CANCELED) {
        run->stopped = 1;
        return 0;
    }
    if (transient_ok && (status == GLR_ERR_NETWORK || status == GLR_ERR_HTTP)) {
        fprintf(stderr, "glr-slurm-job: warning: %s: %s: %s (will retry)\n", what, glr_status_str(status),
                message);
        return 0;
    }
    fprintf(stderr, "glr-slurm-job: %s failed: %s (%d): %s\n", what, glr_status_str(status), (int)status,
            message);
    exit(1);
}

/* Reads the job's state as the library learned it from GitLab's answers, and our SIGTERM flag. */
static int cancel_requested(struct job_run *run)
{
    int32_t state = glr_job_state(run->job);
    if (state == GLR_JOB_CANCELED)
        run->stopped = 1;
    else if (state == GLR_JOB_CANCELING)
        run->canceling = 1;
    if (terminated_by_signal)
        run->terminated = 1;
    return run->stopped || run->canceling || run->terminated;
}

static void log_bytes(struct job_run *run, const char *data, size_t len)
{
    if (run->stopped || len == 0)
        return;
    if (job_call(run, glr_job_log_append(run->job, data, len), "glr_job_log_append", 0))
        run->unflushed = 1;
}

static void log_printf(struct job_run *run, const char *format, ...)
{
    char text[2048];
    int n;
    va_list ap;
    va_start(ap, format);
    n = vsnprintf(text, sizeof text, format, ap);
    va_end(ap);
    if (n < 0)
        return;
    log_bytes(run, text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
}

/* Uploads the log if anything is new (the answer also tells of a cancel). Unlike executor.c it
   does not ask GitLab about a silent job: the daemon does, and scancels the batch job. */
static void talk_to_gitlab(struct job_run *run)
{
    if (run->stopped)
        return;
    if (run->unflushed) {
        if (job_call(run, glr_job_log_flush(run->job), "glr_job_log_flush", 1))
            run->unflushed = 0;
    }
    run->last_contact = now_seconds();
    cancel_requested(run);
}

/* The `$ command` header GitLab's runners print (bold green); multi-line commands collapsed. */
static void log_command_header(struct job_run *run, const char *line)
{
    const char *newline = strchr(line, '\n');
    size_t len = newline ? (size_t)(newline - line) : strlen(line);
    log_printf(run, "\033[32;1m$ ");
    log_bytes(run, line, len);
    log_printf(run, "%s\033[0;m\n", newline ? " # collapsed multi-line command" : "");
}

/*
 * Runs `/bin/sh -c line` in the job's directory and environment, streaming its output into the
 * log. Returns its exit status (128 + signal number when killed), or -1 if it could not start.
 */
static int run_command(struct job_run *run, const char *line)
{
    char *argv[4];
    int fds[2], status = 0, reaped = 0, killed = 0;
    int was_stopping = run->canceling || run->terminated; /* after_script runs on then */
    pid_t pid;

    argv[0] = (char *)"sh";
    argv[1] = (char *)"-c";
    argv[2] = (char *)line;
    argv[3] = NULL;
    if (pipe(fds) != 0) {
        log_printf(run, "ERROR: pipe: %s\n", strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        log_printf(run, "ERROR: fork: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        /* Child. The library runs threads, so only async-signal-safe calls until execve. */
        int devnull = open("/dev/null", O_RDONLY);
        setpgid(0, 0); /* its own process group, so a cancel can kill everything it started */
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        if (chdir(run->workdir) != 0)
            _exit(127);
        execve("/bin/sh", argv, run->envp);
        _exit(127);
    }
    setpgid(pid, 0); /* also here: whichever runs first */
    close(fds[1]);

    for (;;) {
        struct pollfd pfd;
        int ready;
        pfd.fd = fds[0];
        pfd.events = POLLIN;
        pfd.revents = 0;
        ready = poll(&pfd, 1, 200);
        if (ready > 0) {
            char buf[8192];
            ssize_t n = read(fds[0], buf, sizeof buf);
            if (n > 0)
                log_bytes(run, buf, (size_t)n);
            else if (n == 0 || errno != EINTR)
                break; /* end of output */
        } else if (ready == 0 && waitpid(pid, &status, WNOHANG) == pid) {
            reaped = 1; /* the shell is gone; a background process of it keeps the pipe open */
            break;
        } else if (ready < 0 && errno != EINTR) {
            break;
        }
        if (run->unflushed && now_seconds() - run->last_contact >= FLUSH_INTERVAL)
            talk_to_gitlab(run);
        if (!killed && cancel_requested(run) && (run->stopped || !was_stopping)) {
            kill(-pid, SIGKILL);
            killed = 1;
        }
    }
    close(fds[0]);
    kill(-pid, SIGKILL); /* whatever the command left running */
    if (!reaped)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

/* ---- the job's environment ---------------------------------------------------------------- */

static char *join3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);
    if (s == NULL) {
        perror("glr-slurm-job: malloc");
        exit(1);
    }
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

static int valid_name(const char *key)
{
    size_t i;
    if (key == NULL || key[0] == '\0' || (key[0] >= '0' && key[0] <= '9'))
        return 0;
    for (i = 0; key[i]; i++)
        if (!(key[i] == '_' || (key[i] >= 'A' && key[i] <= 'Z') || (key[i] >= 'a' && key[i] <= 'z') ||
              (key[i] >= '0' && key[i] <= '9')))
            return 0;
    return 1;
}

/* Whether envp[0..count) already defines the variable `entry` ("NAME=..." or "NAME"). */
static int env_has(char **envp, size_t count, const char *entry)
{
    size_t len = strcspn(entry, "="), i;
    for (i = 0; i < count; i++)
        if (strncmp(envp[i], entry, len) == 0 && envp[i][len] == '=')
            return 1;
    return 0;
}

/* Writes a file variable's value to <dir>/vars/KEY (mode 0600); returns its path. */
static char *write_file_variable(struct job_run *run, const char *key, const char *value)
{
    char *path = join3(run->dir, "/vars/", key);
    size_t len = strlen(value);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, value, len) != (ssize_t)len) {
        fprintf(stderr, "glr-slurm-job: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    close(fd);
    return path;
}

/* The job's variables (the last of a repeated key wins), CI_PROJECT_DIR, then our environment. */
static void build_environment(struct job_run *run)
{
    size_t nvars = glr_job_variable_count(run->job), nenv = 0, count = 0, i;
    char **envp;
    while (environ[nenv] != NULL)
        nenv++;
    envp = calloc(nvars + nenv + 2, sizeof *envp);
    if (envp == NULL) {
        perror("glr-slurm-job: calloc");
        exit(1);
    }
    for (i = nvars; i-- > 0;) { /* backwards, so the last definition of a key is the one kept */
        const char *key = glr_job_variable_key(run->job, i);
        const char *value = glr_job_variable_value(run->job, i);
        char *entry;
        if (!valid_name(key) || value == NULL)
            continue;
        entry = join3(key, "=", "");
        if (env_has(envp, count, entry)) {
            free(entry);
            continue;
        }
        free(entry);
        if (glr_job_variable_flags(run->job, i) & GLR_VAR_FILE) {
            char *path = write_file_variable(run, key, value);
            envp[count++] = join3(key, "=", path);
            free(path);
        } else {
            envp[count++] = join3(key, "=", value);
        }
    }
    if (!env_has(envp, count, "CI_PROJECT_DIR="))
        envp[count++] = join3("CI_PROJECT_DIR", "=", run->workdir);
    for (i = 0; i < nenv; i++)
        if (!env_has(envp, count, environ[i]))
            envp[count++] = join3(environ[i], "", "");
    envp[count] = NULL;
    run->envp = envp;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* ---- running a job ------------------------------------------------------------------------ */

/* Runs the job and reports it to GitLab. */
/* Dependencies: download each one's artifacts and unpack them into the build directory, as
   GitLab runners do before the script. Returns 0, or -1 when a dependency cannot be had. */
static int download_dependencies(struct job_run *run)
{
    size_t i, count = glr_job_dependency_count(run->job);
    for (i = 0; i < count; i++) {
        const char *name = glr_job_dependency_name(run->job, i);
        char *zip = join3(run->dir, "/dependency.zip", "");
        glr_status status;
        log_printf(run, "Downloading artifacts for %s (%lld)...\n", name ? name : "?",
                   (long long)glr_job_dependency_id(run->job, i));
        status = glr_job_download_artifacts(run->job, i, zip);
        if (status == GLR_ERR_NOT_FOUND) {
            log_printf(run, "WARNING: %s has no artifacts\n", name ? name : "the dependency");
        } else if (status != GLR_OK || (status = glr_extract_artifacts(zip, run->workdir)) != GLR_OK) {
            char msg[1024];
            glr_last_error_message(msg, sizeof msg);
            log_printf(run, "ERROR: artifacts of %s: %s\n", name ? name : "the dependency", msg);
            unlink(zip);
            free(zip);
            return -1;
        }
        unlink(zip);
        free(zip);
    }
    return 0;
}

/* The job's own artifacts (its `artifacts:` entries), collected from the build directory after
   the script; NULL when none apply. The caller passes them to set_success/set_failed. */
static glr_artifacts *collect_artifacts(struct job_run *run, int succeeded)
{
    glr_artifacts *artifacts = NULL;
    if (glr_artifacts_new(&artifacts) != GLR_OK)
        return NULL;
    if (glr_artifacts_collect(artifacts, run->job, run->workdir, succeeded) != GLR_OK) {
        char msg[1024];
        glr_last_error_message(msg, sizeof msg);
        log_printf(run, "WARNING: artifacts not uploaded: %s\n", msg);
    } else if (glr_artifacts_count(artifacts) > 0) {
        log_printf(run, "Uploading artifacts: %zu file(s)\n", glr_artifacts_count(artifacts));
        return artifacts;
    }
    glr_artifacts_free(artifacts);
    return NULL;
}

/* A command killed by SIGTERM: most likely Slurm is stopping the whole batch job and signals
   every process of it, in no particular order. Give our own SIGTERM a moment to arrive, so the
   job is not reported as a script failure when Slurm (or GitLab, through the daemon) stopped it. */
static void await_own_sigterm(struct job_run *run)
{
    int i;
    for (i = 0; i < 20 && !terminated_by_signal; i++) {
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
    cancel_requested(run);
}

/* Runs the job and reports it to GitLab. Returns 0 when the job was reported or GitLab stopped
   it, 143 when Slurm stopped the batch job while GitLab still wanted it (not reported). */
static int run_job(glr_job *job)
{
    struct job_run run;
    size_t i, count;
    int exit_code = 0, system_failure = 0, dependency_failure = 0, slurm_stopped = 0;
    const char *slurm_job = getenv("SLURM_JOB_ID"), *node = getenv("SLURMD_NODENAME");
    glr_artifacts *artifacts = NULL;
    const char *tmp = getenv("TMPDIR");
    const char *ref = glr_job_ref(job);

    memset(&run, 0, sizeof run);
    run.job = job;
    run.last_contact = now_seconds();
    printf("Job %lld (%s): running\n", (long long)glr_job_id(job), glr_job_name(job) ? glr_job_name(job) : "?");
    fflush(stdout);

    log_printf(&run, "Running with gitlab_runner_api %s (examples-c/slurm/glr-slurm-job)\n", glr_version());
    log_printf(&run, "Running as Slurm job %s on %s\n", slurm_job ? slurm_job : "?", node ? node : "?");
    log_printf(&run, "Starting job with id %lld for %s %s\n", (long long)glr_job_id(job),
               glr_job_is_branch(job) == 0 ? "tag" : "branch", ref ? ref : "(unknown)");

    /* A fresh directory per job: <tmp>/glr-job-XXXXXX/{build,vars}. */
    snprintf(run.dir, sizeof run.dir, "%s/glr-job-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(run.dir) == NULL) {
        log_printf(&run, "ERROR: cannot create a directory for the job: %s\n", strerror(errno));
        system_failure = 1;
    } else {
        char *vars = join3(run.dir, "/vars", "");
        snprintf(run.workdir, sizeof run.workdir, "%s/build", run.dir);
        if (mkdir(run.workdir, 0700) != 0 || mkdir(vars, 0700) != 0) {
            log_printf(&run, "ERROR: cannot create %s: %s\n", run.workdir, strerror(errno));
            system_failure = 1;
        }
        free(vars);
    }
    if (!system_failure)
        build_environment(&run);
    if (!system_failure && download_dependencies(&run) != 0)
        dependency_failure = 1;

    /* script: stop at the first failing line, or when GitLab cancels the job. */
    count = glr_job_script_count(job);
    for (i = 0; i < count && !system_failure && !dependency_failure; i++) {
        const char *line = glr_job_script_line(job, i);
        int rc;
        if (line == NULL)
            continue;
        talk_to_gitlab(&run); /* upload what is new */
        if (cancel_requested(&run))
            break;
        log_command_header(&run, line);
        rc = run_command(&run, line);
        if (rc == 128 + SIGTERM)
            await_own_sigterm(&run);
        if (rc < 0)
            system_failure = 1;
        else if (rc != 0) {
            exit_code = rc;
            break;
        }
    }
    cancel_requested(&run);

    /* SIGTERM: GitLab's cancel (the daemon's scancel), or Slurm's own decision? Ask GitLab. */
    if (run.terminated && !run.stopped && !run.canceling) {
        job_call(&run, glr_job_auth(job), "glr_job_auth", 1);
        cancel_requested(&run);
        slurm_stopped = !run.stopped && !run.canceling;
    }
    if (slurm_stopped) {
        log_printf(&run, "\033[31;1mERROR: Slurm stopped batch job %s (SIGTERM: scancel, time limit or "
                         "preemption); the runner daemon reports the job\033[0;m\n", slurm_job ? slurm_job : "?");
        job_call(&run, glr_job_log_flush(job), "glr_job_log_flush", 1);
        printf("Job %lld: stopped by Slurm, not reported\n", (long long)glr_job_id(job));
    }

    /* after_script: always (even after a failure or a graceful cancel), failures ignored. */
    count = glr_job_after_script_count(job);
    if (count > 0 && !run.stopped && !system_failure && !slurm_stopped) {
        log_printf(&run, "\033[32;1mRunning after_script\033[0;m\n");
        for (i = 0; i < count && !run.stopped; i++) {
            const char *line = glr_job_after_script_line(job, i);
            int rc;
            if (line == NULL)
                continue;
            log_command_header(&run, line);
            rc = run_command(&run, line);
            if (rc != 0)
                log_printf(&run, "WARNING: after_script failed, but the job goes on: exit code %d\n", rc);
        }
    }

    /* Report. set_success/set_failed upload the artifacts, then the rest of the log. */
    if (!run.stopped && !run.canceling && !system_failure && !dependency_failure)
        artifacts = collect_artifacts(&run, exit_code == 0);
    if (!run.stopped && !slurm_stopped) {
        if (run.canceling) {
            log_printf(&run, "\033[31;1mERROR: Job canceled\033[0;m\n");
            /* The official runner reports job_canceled, which GitLab files as unknown_failure;
               GitLab then marks the job canceled. */
            job_call(&run, glr_job_set_failed(job, GLR_FAILURE_UNKNOWN, NULL), "glr_job_set_failed", 0);
        } else if (dependency_failure) {
            log_printf(&run, "\033[31;1mERROR: Job failed: a dependency's artifacts are missing\033[0;m\n");
            job_call(&run, glr_job_set_failed(job, GLR_FAILURE_MISSING_DEPENDENCY, NULL), "glr_job_set_failed", 0);
        } else if (system_failure) {
            log_printf(&run, "\033[31;1mERROR: Job failed (system failure)\033[0;m\n");
            job_call(&run, glr_job_set_failed(job, GLR_FAILURE_RUNNER_SYSTEM, NULL), "glr_job_set_failed", 0);
        } else if (exit_code == 0) {
            log_printf(&run, "\033[32;1mJob succeeded\033[0;m\n");
            job_call(&run, glr_job_set_success(job, artifacts), "glr_job_set_success", 0);
        } else {
            log_printf(&run, "\033[31;1mERROR: Job failed: exit code %d\033[0;m\n", exit_code);
            if (job_call(&run, glr_job_set_exit_code(job, exit_code), "glr_job_set_exit_code", 0))
                job_call(&run, glr_job_set_failed(job, GLR_FAILURE_SCRIPT, artifacts), "glr_job_set_failed", 0);
        }
    }
    if (run.stopped)
        printf("Job %lld: canceled by GitLab\n", (long long)glr_job_id(job));
    else if (!slurm_stopped) {
        static const char *const names[] = {"running", "success", "failed", "canceling", "canceled"};
        int32_t state = glr_job_state(job);
        printf("Job %lld: reported, state %s%s\n", (long long)glr_job_id(job),
               state >= 0 && state <= 4 ? names[state] : "?", exit_code ? " (script failed)" : "");
    }

    glr_artifacts_free(artifacts);
    if (run.envp != NULL) {
        for (i = 0; run.envp[i] != NULL; i++)
            free(run.envp[i]);
        free(run.envp);
    }
    if (run.workdir[0] != '\0')
        nftw(run.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    fflush(stdout);
    return slurm_stopped ? 143 : 0;
}

/* ---- main --------------------------------------------------------------------------------- */

static const char *state_name(int32_t state)
{
    static const char *const names[] = {"running", "success", "failed", "canceling", "canceled"};
    return state >= 0 && state <= 4 ? names[state] : "unknown";
}

/* Writes `word` to SPOOL/ID.done (the job file's name with .done for .json), atomically: the
   daemon reads it as "the batch job finished its GitLab job". */
static void write_marker(const char *job_path, const char *word)
{
    char path[4096], tmp[4200];
    size_t len = strlen(job_path);
    FILE *f;
    if (len > 5 && strcmp(job_path + len - 5, ".json") == 0)
        len -= 5;
    snprintf(path, sizeof path, "%.*s.done", (int)len, job_path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%s\n", word) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "glr-slurm-job: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    const char *job_path;
    glr_job *job = NULL;
    glr_status status;
    int32_t state;
    struct sigaction sa;
    int rc;

    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: glr-slurm-job SPOOL/ID.json   (run by the batch job glr-slurm-daemon submits)\n");
        return 1;
    }
    job_path = argv[1];
    if (glr_abi_version() != GLR_ABI_VERSION) {
        fprintf(stderr, "glr-slurm-job: library ABI %u, but built for ABI %d\n", glr_abi_version(), GLR_ABI_VERSION);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigterm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);

    CHECK(glr_job_load(job_path, &job)); /* offline */
    /* Still wanted? The job may have waited in the Slurm queue for a long time. */
    status = glr_job_auth(job);
    if (status == GLR_ERR_JOB_CANCELED || status == GLR_ERR_ALREADY_FINISHED) {
        printf("Job %lld: GitLab no longer runs it; nothing to do\n", (long long)glr_job_id(job));
        write_marker(job_path, status == GLR_ERR_JOB_CANCELED ? "canceled" : state_name(glr_job_state(job)));
        glr_job_free(job);
        return 0;
    }
    if (status == GLR_ERR_NETWORK || status == GLR_ERR_HTTP) {
        char message[1024];
        glr_last_error_message(message, sizeof message);
        fprintf(stderr, "glr-slurm-job: warning: glr_job_auth: %s; running the job anyway\n", message);
    } else if (status != GLR_OK) {
        die("glr_job_auth", status);
    }
    state = glr_job_state(job);
    if (state != GLR_JOB_RUNNING && state != GLR_JOB_CANCELING) {
        printf("Job %lld is already %s\n", (long long)glr_job_id(job), state_name(state));
        write_marker(job_path, state_name(state));
        glr_job_free(job);
        return 0;
    }

    rc = run_job(job);
    if (rc == 0) {
        state = glr_job_state(job);
        CHECK(glr_job_dump(job, job_path)); /* the finished job, for whoever looks at the spool */
        write_marker(job_path, state == GLR_JOB_RUNNING ? "canceled" : state_name(state));
    }
    glr_job_free(job);
    return rc;
}
