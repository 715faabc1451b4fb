/*
 * common/job_exec.c - running a GitLab job's script on this machine, shared by executor.c and
 * slurm/glr-slurm-job.c: see job_exec.h for what each step does and why it is shared.
 */
#define _XOPEN_SOURCE 700 /* POSIX 2008 + XSI: fork, pipe, poll, mkdtemp, nftw, setpgid */

#include "job_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
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

/* ---- error handling ----------------------------------------------------------------------- */

void die(const char *what, glr_status status)
{
    char message[1024];
    /* First: the message belongs to the last library call made on this thread. */
    glr_last_error_message(message, sizeof message);
    fprintf(stderr, "%s: %s failed: %s (%d): %s\n", program_name, what, glr_status_str(status), (int)status,
            message);
    exit(1);
}

/* ---- talking to GitLab about the job ------------------------------------------------------ */

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int job_call(struct job_run *run, glr_status status, const char *what, int transient_ok)
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
        fprintf(stderr, "%s: warning: %s: %s: %s (will retry)\n", program_name, what, glr_status_str(status),
                message);
        return 0;
    }
    fprintf(stderr, "%s: %s failed: %s (%d): %s\n", program_name, what, glr_status_str(status), (int)status,
            message);
    exit(1);
}

int cancel_requested(struct job_run *run)
{
    int32_t state = glr_job_state(run->job);
    if (state == GLR_JOB_CANCELED)
        run->stopped = 1;
    else if (state == GLR_JOB_CANCELING)
        run->canceling = 1;
    if (run->stop_signal != NULL && *run->stop_signal)
        run->terminated = 1;
    return run->stopped || run->canceling || run->terminated;
}

void log_bytes(struct job_run *run, const char *data, size_t len)
{
    if (run->stopped || len == 0)
        return;
    if (job_call(run, glr_job_log_append(run->job, data, len), "glr_job_log_append", 0))
        run->unflushed = 1;
}

void log_printf(struct job_run *run, const char *format, ...)
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

void talk_to_gitlab(struct job_run *run)
{
    if (run->stopped)
        return;
    if (run->unflushed) {
        if (job_call(run, glr_job_log_flush(run->job), "glr_job_log_flush", 1))
            run->unflushed = 0;
    } else if (run->keepalive_interval > 0) {
        job_call(run, glr_job_auth(run->job), "glr_job_auth", 1);
    }
    run->last_contact = now_seconds();
    cancel_requested(run);
}

void log_command_header(struct job_run *run, const char *line)
{
    const char *newline = strchr(line, '\n');
    size_t len = newline ? (size_t)(newline - line) : strlen(line);
    log_printf(run, "\033[32;1m$ ");
    log_bytes(run, line, len);
    log_printf(run, "%s\033[0;m\n", newline ? " # collapsed multi-line command" : "");
}

/* ---- running a command -------------------------------------------------------------------- */

/* Time to talk to GitLab: the log has news for a second, or the command was silent too long. */
static int time_to_talk(const struct job_run *run)
{
    double quiet = now_seconds() - run->last_contact;
    if (run->unflushed)
        return quiet >= FLUSH_INTERVAL;
    return run->keepalive_interval > 0 && quiet >= run->keepalive_interval;
}

int run_command(struct job_run *run, const char *line)
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
        if (time_to_talk(run))
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

/* ---- the job's directory and environment -------------------------------------------------- */

static char *join3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);
    if (s == NULL) {
        fprintf(stderr, "%s: malloc: %s\n", program_name, strerror(errno));
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
        fprintf(stderr, "%s: %s: %s\n", program_name, path, strerror(errno));
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
        fprintf(stderr, "%s: calloc: %s\n", program_name, strerror(errno));
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

void job_run_init(struct job_run *run, glr_job *job, double keepalive_interval, volatile sig_atomic_t *stop_signal)
{
    memset(run, 0, sizeof *run);
    run->job = job;
    run->keepalive_interval = keepalive_interval;
    run->stop_signal = stop_signal;
    run->last_contact = now_seconds();
}

int job_run_prepare(struct job_run *run)
{
    const char *tmp = getenv("TMPDIR");
    char *vars;
    int failed = 0;
    /* A fresh directory per job: <tmp>/glr-job-XXXXXX/{build,vars}. */
    snprintf(run->dir, sizeof run->dir, "%s/glr-job-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(run->dir) == NULL) {
        log_printf(run, "ERROR: cannot create a directory for the job: %s\n", strerror(errno));
        return -1;
    }
    vars = join3(run->dir, "/vars", "");
    snprintf(run->workdir, sizeof run->workdir, "%s/build", run->dir);
    if (mkdir(run->workdir, 0700) != 0 || mkdir(vars, 0700) != 0) {
        log_printf(run, "ERROR: cannot create %s: %s\n", run->workdir, strerror(errno));
        failed = 1;
    }
    free(vars);
    if (failed)
        return -1;
    build_environment(run);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void job_run_cleanup(struct job_run *run)
{
    size_t i;
    if (run->envp != NULL) {
        for (i = 0; run->envp[i] != NULL; i++)
            free(run->envp[i]);
        free(run->envp);
        run->envp = NULL;
    }
    if (run->workdir[0] != '\0')
        nftw(run->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- artifacts, after_script and the report ----------------------------------------------- */

int download_dependencies(struct job_run *run)
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

void run_after_script(struct job_run *run)
{
    size_t i, count = glr_job_after_script_count(run->job);
    if (count == 0 || run->stopped)
        return;
    log_printf(run, "\033[32;1mRunning after_script\033[0;m\n");
    for (i = 0; i < count && !run->stopped; i++) {
        const char *line = glr_job_after_script_line(run->job, i);
        int rc;
        if (line == NULL)
            continue;
        log_command_header(run, line);
        rc = run_command(run, line);
        if (rc != 0)
            log_printf(run, "WARNING: after_script failed, but the job goes on: exit code %d\n", rc);
    }
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

void report_job(struct job_run *run, int exit_code, int system_failure, int dependency_failure)
{
    glr_job *job = run->job;
    glr_artifacts *artifacts = NULL;
    /* set_success/set_failed upload the artifacts, then the rest of the log. */
    if (!run->stopped && !run->canceling && !system_failure && !dependency_failure)
        artifacts = collect_artifacts(run, exit_code == 0);
    if (!run->stopped) {
        if (run->canceling) {
            log_printf(run, "\033[31;1mERROR: Job canceled\033[0;m\n");
            /* The official runner reports job_canceled, which GitLab files as unknown_failure;
               GitLab then marks the job canceled. */
            job_call(run, glr_job_set_failed(job, GLR_FAILURE_UNKNOWN, NULL), "glr_job_set_failed", 0);
        } else if (dependency_failure) {
            log_printf(run, "\033[31;1mERROR: Job failed: a dependency's artifacts are missing\033[0;m\n");
            job_call(run, glr_job_set_failed(job, GLR_FAILURE_MISSING_DEPENDENCY, NULL), "glr_job_set_failed", 0);
        } else if (system_failure) {
            log_printf(run, "\033[31;1mERROR: Job failed (system failure)\033[0;m\n");
            job_call(run, glr_job_set_failed(job, GLR_FAILURE_RUNNER_SYSTEM, NULL), "glr_job_set_failed", 0);
        } else if (exit_code == 0) {
            log_printf(run, "\033[32;1mJob succeeded\033[0;m\n");
            job_call(run, glr_job_set_success(job, artifacts), "glr_job_set_success", 0);
        } else {
            log_printf(run, "\033[31;1mERROR: Job failed: exit code %d\033[0;m\n", exit_code);
            if (job_call(run, glr_job_set_exit_code(job, exit_code), "glr_job_set_exit_code", 0))
                job_call(run, glr_job_set_failed(job, GLR_FAILURE_SCRIPT, artifacts), "glr_job_set_failed", 0);
        }
    }
    if (run->stopped)
        printf("Job %lld: canceled by GitLab\n", (long long)glr_job_id(job));
    else {
        static const char *const names[] = {"running", "success", "failed", "canceling", "canceled"};
        int32_t state = glr_job_state(job);
        printf("Job %lld: reported, state %s%s\n", (long long)glr_job_id(job),
               state >= 0 && state <= 4 ? names[state] : "?", exit_code ? " (script failed)" : "");
    }
    glr_artifacts_free(artifacts);
}
