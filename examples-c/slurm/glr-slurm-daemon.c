/*
 * glr-slurm-daemon.c - a GitLab runner that hands every job to Slurm.
 *
 *   glr-slurm-daemon RUNNER.json SPOOL_DIR [--max-jobs N] [--poll-seconds S]
 *                    [--keepalive-seconds K] [--job-program PATH] [--sbatch-arg ARG]...
 *
 * Two threads. The main thread takes jobs from GitLab (glr_runner_request_job, which long-polls)
 * while fewer than N (default 8) of its jobs are in Slurm, and submits each:
 *   1. it logs two lines and uploads them (glr_job_log_flush), so GitLab shows them while the job
 *      waits in the Slurm queue;
 *   2. it writes SPOOL/ID.sbatch, a two-line shell script `exec glr-slurm-job SPOOL/ID.json`
 *      (ID = GitLab's job id);
 *   3. it hands the job over to the batch job: glr_job_hand_over_dump writes SPOOL/ID.json (mode
 *      0600: it holds the job's secrets) with every log byte GitLab did not acknowledge, and turns
 *      the daemon's handle into a *watcher*;
 *   4. it runs `sbatch --parsable --job-name=glr-ID --output=SPOOL/ID.out --chdir=SPOOL
 *      [--time=MINUTES] [ARG...] SPOOL/ID.sbatch`; Slurm's job id goes to SPOOL/ID.slurm.
 *      MINUTES is what is left until the job's deadline (glr_job_deadline: when GitLab took the
 *      job plus its timeout), rounded down, at least 1: GitLab stops the job then, and refuses its
 *      token 5 minutes later, so a batch job that waited in the queue must not be given the whole
 *      timeout again. No --time when GitLab gave the job no timeout (Slurm's default applies).
 * From the hand-over on, the batch job is the one writer of the job's log: glr-slurm-job
 * (started by Slurm, on whichever node) loads the dump with glr_job_load, runs the script,
 * streams the log, uploads artifacts, reports, and writes SPOOL/ID.done. The daemon never sends
 * log text again (the library refuses it: GLR_ERR_NOT_OWNER). Why a hand-over and not a dump:
 * a dumped handle stays the owner and keeps retrying what GitLab did not acknowledge (a flush
 * that failed on a few 503s) while the batch job sends the same bytes from the dump; GitLab would
 * store them twice.
 *
 * The watcher is what the daemon keeps of each job. In the background it sends GitLab the
 * keep-alive GitLab's runners send (`PUT state=running` every K seconds, default 30, or GitLab's
 * update interval when that is longer) and records GitLab's answer in glr_job_state: a cancel
 * shows there. And it can finish the job (without a log checksum: it has no log) when the
 * batch job cannot.
 * If sbatch fails, the watcher fails the job at once with runner_system_failure; sbatch's
 * message goes to stderr.
 *
 * The monitor thread looks at every submitted job each S seconds (default 30; each look runs one
 * squeue per job, and what it learns is only needed that often: GitLab's cancels reach the
 * watchers every K seconds, and a job waiting in the queue needs nothing from the daemon but its
 * watcher's keep-alives):
 *   - `squeue -h -t all -j SLURM_ID -o %T`: is the batch job still pending/running, or ended (a
 *     final state such as COMPLETED, CANCELLED, FAILED, TIMEOUT, NODE_FAIL, or no longer known to
 *     Slurm)? An squeue that fails otherwise (controller down) decides nothing: next round.
 *     (sacct would also work, but needs Slurm accounting; squeue/scontrol always work, and Slurm
 *     keeps ended jobs listed for MinJobAge seconds, 300 by default.)
 *   - SPOOL/ID.done exists (read after squeue, so a batch job that ended after writing it is never
 *     mistaken for one that died): the job is finished; the daemon forgets it and removes its
 *     spool files except ID.out (the batch job's stdout and stderr).
 *   - ended without ID.done: the batch job died (scancel, time limit, node failure, a crash). The
 *     watcher fails the job with runner_system_failure (GLR_FAILURE_RUNNER_SYSTEM). GitLab keeps
 *     what the batch job uploaded (on SIGTERM it logs why it stops); the daemon says what
 *     happened on stdout.
 *   - still in Slurm: if the watcher's state says GitLab canceled the job, the batch job is
 *     `scancel`ed, whether it still waits in the queue or runs. A running glr-slurm-job gets
 *     SIGTERM, asks GitLab itself and stops (a graceful cancel runs after_script and reports the
 *     job canceled first).
 *
 * All state is in the spool directory, so the daemon can be stopped (SIGTERM/SIGINT: it finishes
 * the job request in progress and exits; the batch jobs keep running) and started again: it picks
 * up every SPOOL/ID.slurm it finds and watches the job again (glr_job_watch_load: a watcher, never
 * a second writer next to the batch job). Jobs go on without the daemon; only a dead batch job
 * goes unreported until it is back. SPOOL_DIR must be on a file system the Slurm nodes share
 * (here: one node), and the runner must run as a user who may submit and cancel the jobs.
 *
 * It prints one line per event on stdout ("Job 12: submitted as Slurm job 7", ...) and warnings
 * on stderr. Exit status: 0 stopped by a signal; 1 usage or library error.
 *
 * die() and CHECK() below are repeated in each program on purpose: every program reads, and can be
 * copied out, on its own (executor.c and slurm/glr-slurm-job.c take theirs from common/job_exec.h
 * together with the code they share).
 */
#define _XOPEN_SOURCE 700 /* POSIX 2008 + XSI: fork, pipe, readlink, nanosleep, dirent, sigaction */

#include "gitlab_runner_api.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SLOTS 256
#define MAX_SBATCH_ARGS 32
#define PATH_LEN 4096 /* >= PATH_MAX on Linux */

/* ---- configuration and state -------------------------------------------------------------- */

static const char *spool;                      /* SPOOL_DIR */
static char job_program[PATH_LEN];             /* glr-slurm-job */
static char sbatch_path[PATH_LEN], squeue_path[PATH_LEN], scancel_path[PATH_LEN];
static const char *sbatch_args[MAX_SBATCH_ARGS];
static int sbatch_arg_count = 0;
static int max_jobs = 8;
static int poll_seconds = 30;
static int keepalive_seconds = 30; /* the official runner's pace for a silent job */

static volatile sig_atomic_t stopping = 0; /* SIGTERM or SIGINT */

/* A job the daemon submitted. The main thread fills a free slot and then marks it used; only
   the monitor thread reads used slots and frees them. `lock` guards `used` (and `active`). */
struct tracked {
    int used;
    int64_t id;
    glr_job *watcher;    /* keeps the job alive, learns cancels, fails it if the batch job dies */
    char slurm_id[32];
    int scancel_sent;    /* GitLab canceled it and we scancel'ed the batch job */
};
static struct tracked slots[MAX_SLOTS];
static int active = 0;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int signo)
{
    (void)signo;
    stopping = 1;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void die(const char *what, glr_status status)
{
    char message[1024];
    glr_last_error_message(message, sizeof message);
    fprintf(stderr, "glr-slurm-daemon: %s failed: %s (%d): %s\n", what, glr_status_str(status), (int)status,
            message);
    exit(1);
}

#define CHECK(call)                          \
    do {                                     \
        glr_status check_status_ = (call);   \
        if (check_status_ != GLR_OK)         \
            die(#call, check_status_);       \
    } while (0)

static void warn_status(long long id, const char *what, glr_status status)
{
    char message[1024];
    glr_last_error_message(message, sizeof message);
    fprintf(stderr, "glr-slurm-daemon: job %lld: %s: %s: %s\n", id, what, glr_status_str(status), message);
}

static void log_line(glr_job *job, const char *text)
{
    glr_job_log_append(job, text, strlen(text)); /* fails only for a finished or canceled job */
}

static void spool_path(char *buf, size_t len, int64_t id, const char *ext)
{
    snprintf(buf, len, "%s/%lld.%s", spool, (long long)id, ext);
}

/* Sleeps `seconds`, waking early when the daemon is stopping. */
static void nap(int seconds)
{
    int i;
    for (i = 0; i < seconds * 10 && !stopping; i++) {
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
}

/* Writes `text` to `path` atomically (a temporary file renamed over it). Returns 0 or -1. */
static int write_file(const char *path, const char *text, mode_t mode)
{
    char tmp[PATH_LEN + 8];
    FILE *f;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    chmod(tmp, mode);
    if (fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Reads the first line of `path` into buf (without the newline). Returns 0, or -1 if unreadable. */
static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    if (fgets(buf, (int)len, f) == NULL)
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* `name` found in $PATH (or taken as is when it has a '/'), into out. Returns 0 or -1. */
static int find_program(const char *name, char *out, size_t len)
{
    const char *path = getenv("PATH");
    if (strchr(name, '/') != NULL) {
        snprintf(out, len, "%s", name);
        return access(out, X_OK);
    }
    if (path == NULL)
        path = "/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(out, len, "%.*s/%s", (int)n, n ? path : ".", name);
        if (access(out, X_OK) == 0)
            return 0;
        path += n;
        if (*path == ':')
            path++;
    }
    return -1;
}

/*
 * Runs argv (argv[0] a full path) without a shell, stdin from /dev/null, stdout and stderr
 * captured into out (NUL-terminated, cut at len). Returns its exit status, or -1.
 */
static int run_capture(char *const argv[], char *out, size_t len)
{
    int fds[2], status = 0;
    size_t used = 0;
    pid_t pid;
    out[0] = '\0';
    if (pipe(fds) != 0)
        return -1;
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        /* The library runs threads: only async-signal-safe calls until execv. */
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        char buf[1024];
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (used + 1 < len) {
            size_t take = (size_t)n < len - 1 - used ? (size_t)n : len - 1 - used;
            memcpy(out + used, buf, take);
            used += take;
            out[used] = '\0';
        }
    }
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Appends `s` to the shell script text in buf, single-quoted. */
static void append_quoted(char *buf, size_t len, const char *s)
{
    size_t at = strlen(buf);
    if (at + 1 < len)
        buf[at++] = '\'';
    for (; *s && at + 5 < len; s++) {
        if (*s == '\'') {
            memcpy(buf + at, "'\\''", 4);
            at += 4;
        } else {
            buf[at++] = *s;
        }
    }
    if (at + 1 < len)
        buf[at++] = '\'';
    buf[at] = '\0';
}

/* Removes a job's spool files, except ID.out (what the batch job printed). */
static void remove_spool_files(int64_t id)
{
    static const char *const exts[] = {"json", "sbatch", "slurm", "done"};
    size_t i;
    for (i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        char path[PATH_LEN];
        spool_path(path, sizeof path, id, exts[i]);
        unlink(path);
    }
}

static void track(glr_job *watcher, const char *slurm_id)
{
    int i;
    pthread_mutex_lock(&lock);
    for (i = 0; i < MAX_SLOTS; i++) {
        if (!slots[i].used) {
            memset(&slots[i], 0, sizeof slots[i]);
            slots[i].id = glr_job_id(watcher);
            slots[i].watcher = watcher;
            snprintf(slots[i].slurm_id, sizeof slots[i].slurm_id, "%s", slurm_id);
            slots[i].used = 1;
            active++;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    if (i == MAX_SLOTS) { /* cannot happen: max_jobs <= MAX_SLOTS, and a resumed spool is capped */
        fprintf(stderr, "glr-slurm-daemon: job %lld: no free slot; not followed\n", (long long)glr_job_id(watcher));
        glr_job_free(watcher);
    }
}

static int active_count(void)
{
    int n;
    pthread_mutex_lock(&lock);
    n = active;
    pthread_mutex_unlock(&lock);
    return n;
}

/* ---- submitting --------------------------------------------------------------------------- */

/* Fails a job the daemon still owns (before the hand-over) with runner_system_failure, logging
   `why`. */
static void fail_system(glr_job *job, const char *why)
{
    char line[3 * PATH_LEN];
    glr_status status;
    snprintf(line, sizeof line, "\033[31;1mERROR: %s\033[0;m\n", why);
    log_line(job, line);
    status = glr_job_set_failed(job, GLR_FAILURE_RUNNER_SYSTEM, NULL);
    if (status != GLR_OK)
        warn_status((long long)glr_job_id(job), "glr_job_set_failed", status);
}

/* `--time=MINUTES` for a job whose deadline (unix seconds, or -1 unknown) is `deadline`: the
   minutes left until then, rounded down, at least 1. Returns 0, or -1 (no --time) when unknown. */
static int time_limit_arg(int64_t deadline, char *buf, size_t len)
{
    int64_t minutes;
    if (deadline < 0)
        return -1;
    minutes = (deadline - (int64_t)time(NULL)) / 60;
    if (minutes < 1)
        minutes = 1;
    snprintf(buf, len, "--time=%lld", (long long)minutes);
    return 0;
}

/* Runs sbatch on the job's script, limited to the time left until `deadline` (see
   time_limit_arg); Slurm's job id goes to slurm_id. Returns 0, or -1 with sbatch's first line of
   output in `why`. */
static int sbatch(int64_t id, int64_t deadline, const char *script_path, char *slurm_id, size_t id_len, char *why,
                  size_t why_len)
{
    char name_arg[64], output_arg[PATH_LEN + 16], chdir_arg[PATH_LEN + 16], out_path[PATH_LEN], output[4096];
    char time_arg[64];
    char *argv[MAX_SBATCH_ARGS + 8];
    int argc = 0, i, rc;
    const char *line;

    spool_path(out_path, sizeof out_path, id, "out");
    snprintf(name_arg, sizeof name_arg, "--job-name=glr-%lld", (long long)id);
    snprintf(output_arg, sizeof output_arg, "--output=%s", out_path);
    snprintf(chdir_arg, sizeof chdir_arg, "--chdir=%s", spool);
    argv[argc++] = sbatch_path;
    argv[argc++] = (char *)"--parsable";
    argv[argc++] = name_arg;
    argv[argc++] = output_arg;
    argv[argc++] = chdir_arg;
    if (time_limit_arg(deadline, time_arg, sizeof time_arg) == 0)
        argv[argc++] = time_arg;
    for (i = 0; i < sbatch_arg_count; i++)
        argv[argc++] = (char *)sbatch_args[i];
    argv[argc++] = (char *)script_path;
    argv[argc] = NULL;
    rc = run_capture(argv, output, sizeof output);

    /* --parsable prints "ID" or "ID;cluster"; warnings may come before it. */
    slurm_id[0] = '\0';
    for (line = output; *line;) {
        size_t n = strcspn(line, "\n"), digits = strspn(line, "0123456789");
        if (digits > 0 && digits < id_len && (digits == n || line[digits] == ';')) {
            memcpy(slurm_id, line, digits);
            slurm_id[digits] = '\0';
        }
        line += n;
        if (*line == '\n')
            line++;
    }
    if (rc != 0 || slurm_id[0] == '\0') {
        output[strcspn(output, "\n")] = '\0';
        snprintf(why, why_len, "sbatch failed (exit status %d): %s", rc, output);
        return -1;
    }
    return 0;
}

/* Hands the job over to a Slurm batch job; on success the daemon keeps watching it. */
static void submit(glr_job *job)
{
    int64_t id = glr_job_id(job);
    char json[PATH_LEN], script_path[PATH_LEN], slurm_path[PATH_LEN];
    char script[3 * PATH_LEN], text[2 * PATH_LEN], slurm_id[32];
    glr_status status;

    spool_path(json, sizeof json, id, "json");
    spool_path(script_path, sizeof script_path, id, "sbatch");
    spool_path(slurm_path, sizeof slurm_path, id, "slurm");

    snprintf(text, sizeof text, "Running with gitlab_runner_api %s (examples-c/slurm/glr-slurm-daemon)\n"
                                "Submitting the job to Slurm\n", glr_version());
    log_line(job, text);
    /* Upload now, so GitLab shows these lines while the job waits in the Slurm queue. A failed
       upload (GitLab unreachable, a run of 503s) is no loss: the hand-over below puts whatever
       GitLab did not acknowledge into the dump, and the batch job sends it, once. */
    status = glr_job_log_flush(job);
    if (status == GLR_ERR_JOB_CANCELED) {
        printf("Job %lld: canceled by GitLab before it was submitted\n", (long long)id);
        glr_job_free(job);
        return;
    }
    if (status != GLR_OK)
        warn_status((long long)id, "glr_job_log_flush (the batch job sends the lines)", status);

    snprintf(script, sizeof script, "#!/bin/sh\n# GitLab job %lld, written by glr-slurm-daemon\nexec ", (long long)id);
    append_quoted(script, sizeof script, job_program);
    strcat(script, " ");
    append_quoted(script, sizeof script, json);
    strcat(script, "\n");
    if (write_file(script_path, script, 0700) != 0) {
        snprintf(text, sizeof text, "the runner cannot write the job to its spool directory %s", spool);
        fail_system(job, text);
        remove_spool_files(id);
        glr_job_free(job);
        return;
    }

    /* The hand-over: from here on the batch job that loads SPOOL/ID.json is the job's one
       writer and `job` is a watcher. It waits for an upload still in flight to get its answer
       (so the dump knows whether GitLab stored those bytes) and starts no other. When it fails
       (spool not writable, GitLab canceled the job), `job` is still the owner. */
    status = glr_job_hand_over_dump(job, json);
    if (status == GLR_ERR_JOB_CANCELED) {
        printf("Job %lld: canceled by GitLab before it was submitted\n", (long long)id);
        remove_spool_files(id);
        glr_job_free(job);
        return;
    }
    if (status != GLR_OK) {
        warn_status((long long)id, "glr_job_hand_over_dump", status);
        snprintf(text, sizeof text, "the runner cannot save the job to its spool directory %s (%s)", spool,
                 glr_status_str(status));
        fail_system(job, text);
        remove_spool_files(id);
        glr_job_free(job);
        return;
    }
    /* How often the watcher's background keep-alive asks GitLab: also how soon a cancel
       reaches glr_job_state. */
    glr_job_set_keepalive_interval(job, keepalive_seconds); /* in range: checked in main */

    if (sbatch(id, glr_job_deadline(job), script_path, slurm_id, sizeof slurm_id, text, sizeof text) != 0) {
        /* No batch job will load the dump. The watcher cannot log (only the owner writes the
           log): it reports the failure, and the reason goes to stderr. */
        fprintf(stderr, "glr-slurm-daemon: job %lld: %s\n", (long long)id, text);
        status = glr_job_set_failed(job, GLR_FAILURE_RUNNER_SYSTEM, NULL);
        if (status != GLR_OK)
            warn_status((long long)id, "glr_job_set_failed", status);
        remove_spool_files(id);
        glr_job_free(job);
        return;
    }
    snprintf(text, sizeof text, "%s\n", slurm_id);
    if (write_file(slurm_path, text, 0600) != 0)
        fprintf(stderr, "glr-slurm-daemon: job %lld: cannot write %s: %s (followed until the daemon stops)\n",
                (long long)id, slurm_path, strerror(errno));
    printf("Job %lld: submitted as Slurm job %s\n", (long long)id, slurm_id);
    fflush(stdout);
    track(job, slurm_id);
}

/* Picks up the jobs a previous run of the daemon submitted (SPOOL/ID.slurm). */
static void resume(void)
{
    DIR *d = opendir(spool);
    struct dirent *e;
    if (d == NULL) {
        fprintf(stderr, "glr-slurm-daemon: %s: %s\n", spool, strerror(errno));
        exit(1);
    }
    while ((e = readdir(d)) != NULL && active_count() < MAX_SLOTS) {
        char *end, slurm_path[PATH_LEN], json[PATH_LEN], slurm_id[32];
        long long id = strtoll(e->d_name, &end, 10);
        glr_job *watcher = NULL;
        glr_status status;
        if (end == e->d_name || strcmp(end, ".slurm") != 0)
            continue;
        spool_path(slurm_path, sizeof slurm_path, id, "slurm");
        spool_path(json, sizeof json, id, "json");
        if (read_line(slurm_path, slurm_id, sizeof slurm_id) != 0 || slurm_id[0] == '\0')
            continue;
        /* A watcher, not glr_job_load: the batch job may be running and writing the log, and a
           job has one writer. */
        status = glr_job_watch_load(json, &watcher);
        if (status != GLR_OK) {
            warn_status(id, "glr_job_watch_load", status);
            continue;
        }
        glr_job_set_keepalive_interval(watcher, keepalive_seconds); /* in range: checked in main */
        printf("Job %lld: following Slurm job %s again\n", id, slurm_id);
        track(watcher, slurm_id);
    }
    closedir(d);
    fflush(stdout);
}

/* ---- following the batch jobs ------------------------------------------------------------- */

enum slurm_state { SLURM_UNKNOWN, SLURM_ACTIVE, SLURM_ENDED };

/* Asks squeue about the batch job; `state` gets Slurm's word for it ("gone" when purged). */
static enum slurm_state slurm_state(const char *slurm_id, char *state, size_t len)
{
    static const char *const final[] = {"COMPLETED", "CANCELLED", "FAILED",       "TIMEOUT",  "NODE_FAIL",
                                        "PREEMPTED", "BOOT_FAIL", "OUT_OF_MEMORY", "DEADLINE", "REVOKED"};
    char output[1024];
    char *argv[] = {squeue_path, (char *)"-h", (char *)"-t", (char *)"all", (char *)"-j", (char *)slurm_id,
                    (char *)"-o", (char *)"%T", NULL};
    int rc = run_capture(argv, output, sizeof output);
    size_t i, n;
    const char *s = output;
    while (*s == ' ' || *s == '\n')
        s++;
    n = strcspn(s, " \n");
    snprintf(state, len, "%.*s", (int)n, s);
    if (rc == 0 && n == 0) {
        snprintf(state, len, "gone");
        return SLURM_ENDED;
    }
    if (rc != 0) {
        if (strstr(output, "Invalid job id") != NULL) {
            snprintf(state, len, "gone");
            return SLURM_ENDED;
        }
        output[strcspn(output, "\n")] = '\0';
        fprintf(stderr, "glr-slurm-daemon: squeue -j %s failed (%d): %s\n", slurm_id, rc, output);
        return SLURM_UNKNOWN;
    }
    for (i = 0; i < sizeof final / sizeof final[0]; i++)
        if (strcmp(state, final[i]) == 0)
            return SLURM_ENDED;
    return SLURM_ACTIVE;
}

static void forget(struct tracked *t)
{
    glr_job *watcher = t->watcher;
    int64_t id = t->id;
    pthread_mutex_lock(&lock);
    t->used = 0;
    t->watcher = NULL;
    active--;
    pthread_mutex_unlock(&lock);
    glr_job_free(watcher);
    remove_spool_files(id);
}

static void check(struct tracked *t)
{
    char state[64], done_path[PATH_LEN], outcome[64];
    enum slurm_state s = slurm_state(t->slurm_id, state, sizeof state);
    glr_status status;
    int32_t job_state;

    if (s == SLURM_UNKNOWN)
        return;
    /* After squeue: a batch job that has ended wrote its marker before it ended. */
    spool_path(done_path, sizeof done_path, t->id, "done");
    if (read_line(done_path, outcome, sizeof outcome) == 0) {
        printf("Job %lld: finished by Slurm job %s (%s)\n", (long long)t->id, t->slurm_id, outcome);
        fflush(stdout);
        forget(t);
        return;
    }

    if (s == SLURM_ENDED) {
        if (t->scancel_sent) {
            printf("Job %lld: canceled by GitLab; Slurm job %s ended (%s)\n", (long long)t->id, t->slurm_id, state);
            fflush(stdout);
            forget(t);
            return;
        }
        /* The batch job, the job's one writer, is gone without reporting: the watcher reports
           for it. It cannot add a line to the log (it has none to add to); what the batch job
           uploaded stays, and glr-slurm-job logs why it stops when Slurm sends SIGTERM. */
        status = glr_job_set_failed(t->watcher, GLR_FAILURE_RUNNER_SYSTEM, NULL);
        if (status == GLR_OK)
            printf("Job %lld: Slurm job %s ended (%s) without finishing it (scancel, time limit, node failure or "
                   "a crash of glr-slurm-job; see %s/%lld.out): failed with runner_system_failure\n",
                   (long long)t->id, t->slurm_id, state, spool, (long long)t->id);
        else if (status == GLR_ERR_JOB_CANCELED || status == GLR_ERR_ALREADY_FINISHED)
            printf("Job %lld: Slurm job %s ended (%s); GitLab no longer runs the job\n", (long long)t->id,
                   t->slurm_id, state);
        else {
            warn_status((long long)t->id, "glr_job_set_failed (retried next round)", status);
            return;
        }
        fflush(stdout);
        forget(t);
        return;
    }

    /* Still in Slurm: does GitLab still want it? The watcher's background keep-alive asks
       GitLab every --keepalive-seconds and keeps the answer in the job's state, so reading it
       here costs no request. (glr_job_set_cancel_callback would tell the same on the library's
       event thread; the monitor looks every round anyway.) */
    if (t->scancel_sent)
        return;
    job_state = glr_job_state(t->watcher);
    if (job_state == GLR_JOB_CANCELED || job_state == GLR_JOB_CANCELING) {
        char output[1024];
        char *argv[] = {scancel_path, t->slurm_id, NULL};
        if (access(done_path, F_OK) == 0)
            return; /* GitLab no longer runs it because the batch job just reported it */
        printf("Job %lld: canceled by GitLab: scancel Slurm job %s\n", (long long)t->id, t->slurm_id);
        fflush(stdout);
        if (run_capture(argv, output, sizeof output) != 0) {
            output[strcspn(output, "\n")] = '\0';
            fprintf(stderr, "glr-slurm-daemon: scancel %s failed: %s (retried next round)\n", t->slurm_id, output);
            return;
        }
        t->scancel_sent = 1;
    }
}

static void *monitor(void *arg)
{
    (void)arg;
    while (!stopping) {
        int i;
        for (i = 0; i < MAX_SLOTS && !stopping; i++) {
            int used;
            pthread_mutex_lock(&lock);
            used = slots[i].used;
            pthread_mutex_unlock(&lock);
            if (used)
                check(&slots[i]);
        }
        nap(poll_seconds);
    }
    return NULL;
}

/* ---- main --------------------------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: glr-slurm-daemon RUNNER.json SPOOL_DIR [--max-jobs N] [--poll-seconds S]\n"
                    "                        [--keepalive-seconds K] [--job-program PATH] [--sbatch-arg ARG]...\n");
    return 1;
}

int main(int argc, char **argv)
{
    const char *runner_path = NULL;
    glr_runner *runner = NULL;
    static char spool_abs[PATH_MAX], job_abs[PATH_MAX];
    pthread_t monitor_thread;
    struct sigaction sa;
    int i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--max-jobs") == 0 && i + 1 < argc)
            max_jobs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--poll-seconds") == 0 && i + 1 < argc)
            poll_seconds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--keepalive-seconds") == 0 && i + 1 < argc)
            keepalive_seconds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--job-program") == 0 && i + 1 < argc)
            snprintf(job_program, sizeof job_program, "%s", argv[++i]);
        else if (strcmp(argv[i], "--sbatch-arg") == 0 && i + 1 < argc && sbatch_arg_count < MAX_SBATCH_ARGS)
            sbatch_args[sbatch_arg_count++] = argv[++i];
        else if (argv[i][0] != '-' && runner_path == NULL)
            runner_path = argv[i];
        else if (argv[i][0] != '-' && spool == NULL)
            spool = argv[i];
        else
            return usage();
    }
    if (runner_path == NULL || spool == NULL || max_jobs < 1 || max_jobs > MAX_SLOTS || poll_seconds < 1 ||
        keepalive_seconds < 1 || keepalive_seconds > 2700 /* GitLab drops a job after an hour of silence */)
        return usage();
    if (glr_abi_version() != GLR_ABI_VERSION) {
        fprintf(stderr, "glr-slurm-daemon: library ABI %u, but built for ABI %d\n", glr_abi_version(),
                GLR_ABI_VERSION);
        return 1;
    }

    /* glr-slurm-job: given, or next to this program. */
    if (job_program[0] == '\0') {
        char self[PATH_LEN];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        char *slash;
        if (n <= 0)
            n = (ssize_t)snprintf(self, sizeof self, "%s", argv[0]);
        self[n] = '\0';
        slash = strrchr(self, '/');
        snprintf(job_program, sizeof job_program, "%.*s/glr-slurm-job", slash ? (int)(slash - self) : 1,
                 slash ? self : ".");
    }
    if (access(job_program, X_OK) != 0) {
        fprintf(stderr, "glr-slurm-daemon: %s: %s (use --job-program)\n", job_program, strerror(errno));
        return 1;
    }
    if (find_program("sbatch", sbatch_path, sizeof sbatch_path) != 0 ||
        find_program("squeue", squeue_path, sizeof squeue_path) != 0 ||
        find_program("scancel", scancel_path, sizeof scancel_path) != 0) {
        fprintf(stderr, "glr-slurm-daemon: sbatch, squeue and scancel must be in PATH (Slurm's client commands)\n");
        return 1;
    }
    if (mkdir(spool, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "glr-slurm-daemon: %s: %s\n", spool, strerror(errno));
        return 1;
    }
    /* Absolute paths: the batch job runs elsewhere (another directory, maybe another node). */
    if (realpath(spool, spool_abs) == NULL || realpath(job_program, job_abs) == NULL) {
        fprintf(stderr, "glr-slurm-daemon: %s: %s\n", spool, strerror(errno));
        return 1;
    }
    spool = spool_abs;
    snprintf(job_program, sizeof job_program, "%s", job_abs);

    signal(SIGPIPE, SIG_IGN);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    CHECK(glr_runner_load(runner_path, &runner));
    CHECK(glr_runner_check_auth(runner));
    CHECK(glr_runner_set_feature(runner, "variables", 1));
    resume();
    if (pthread_create(&monitor_thread, NULL, monitor, NULL) != 0) {
        fprintf(stderr, "glr-slurm-daemon: cannot start the monitor thread\n");
        return 1;
    }
    printf("Polling for jobs (at most %d in Slurm at once), spool %s\n", max_jobs, spool);
    fflush(stdout);

    while (!stopping) {
        glr_job *job = NULL;
        glr_status status;
        if (active_count() >= max_jobs) {
            nap(1);
            continue;
        }
        status = glr_runner_request_job(runner, &job);
        if (status == GLR_ERR_AUTH)
            die("glr_runner_request_job", status);
        if (status != GLR_OK) {
            char message[1024];
            glr_last_error_message(message, sizeof message);
            fprintf(stderr, "glr-slurm-daemon: warning: no job request possible now: %s; retrying\n", message);
            nap(5);
            continue;
        }
        if (job == NULL) {
            nap(1); /* GitLab holds requests (long polling); a GitLab without it answers at once */
            continue;
        }
        submit(job);
    }

    pthread_join(monitor_thread, NULL);
    for (i = 0; i < MAX_SLOTS; i++)
        if (slots[i].used)
            glr_job_free(slots[i].watcher); /* the dumps stay: the next run follows these jobs */
    glr_runner_free(runner);
    printf("Stopped; %d job(s) left in Slurm, followed again by the next start\n", active);
    return 0;
}
