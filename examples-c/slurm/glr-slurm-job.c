/*
 * glr-slurm-job.c - the program a Slurm batch job runs: finishes one GitLab job that
 * glr-slurm-daemon took from GitLab and handed over (glr_job_hand_over_dump) in its spool
 * directory.
 *
 *   glr-slurm-job SPOOL/ID.json
 *
 * It loads the job (glr_job_load, offline) and so becomes the one writer of its log: the dump
 * holds whatever of the daemon's lines GitLab did not acknowledge, and the first upload sends
 * them, once (the daemon's handle is a watcher and sends no log text). It asks GitLab whether
 * the job is still wanted (it may have waited in the Slurm queue for hours), then runs it as
 * examples-c/executor.c does: each `script` line as `/bin/sh -c LINE` in a fresh directory under
 * $TMPDIR with the job's variables, its output streamed into the job log as it arrives (the log
 * continues after the daemon's lines), the first failing line stops the script, `after_script`
 * always runs, the dependencies' artifacts are downloaded first and the job's own `artifacts:`
 * are collected and uploaded with the report (glr_artifacts_collect + glr_job_set_success /
 * glr_job_set_failed with script_failure and the exit code).
 *
 * When it has reported (or learned that GitLab stopped the job) it rewrites SPOOL/ID.json with the
 * finished job and writes SPOOL/ID.done (one word: success, failed or canceled). The daemon reads
 * that marker: a batch job that ends without it did not finish its GitLab job, and the daemon
 * fails it with runner_system_failure.
 *
 * Cancellation. The daemon is the one that asks GitLab about the job (its watcher's keep-alive)
 * and `scancel`s the batch job when GitLab cancels it; this program does not poll GitLab on its
 * own, it only uploads its log (and the library's keep-alive), whose answers also carry a
 * cancel. Slurm's scancel (or a time limit) sends SIGTERM, then SIGKILL after KillWait. On
 * SIGTERM this program kills the running command and asks GitLab (glr_job_auth) why:
 *   - GitLab canceled the job (hard): nothing more can be reported; marker `canceled`, exit 0;
 *   - GitLab is canceling it gracefully: after_script runs, the job is reported canceled (as the
 *     official runner does) and the marker written; this has to fit in Slurm's KillWait;
 *   - GitLab still wants it: Slurm stopped the job (scancel by someone, time limit, preemption).
 *     It logs that, uploads the log and exits 143 without a marker: the daemon's watcher reports
 *     the job (runner_system_failure), so one place decides what a vanished batch job means,
 *     whether it got SIGTERM or SIGKILL or its node died.
 *
 * Left out on purpose, as in executor.c: cloning the repository, images and services, caches,
 * timeouts, expanding $VARIABLES inside variable values, one shell session for all lines. A batch
 * job that Slurm requeues runs the job again from the daemon's dump (its log continues).
 *
 * The steps of a job run are executor.c's, in ../common/job_exec.c (built together with this file,
 * see the Makefile); this file is the batch job's part: the spool files, SIGTERM, and the order
 * of the steps.
 *
 * Exit status: 0 the job was reported (whatever its outcome) or was canceled by GitLab;
 *              1 usage or library error (the message names the call and says why);
 *              143 stopped by Slurm (SIGTERM) while GitLab still wanted the job.
 */
#define _XOPEN_SOURCE 700 /* POSIX 2008: sigaction, nanosleep */

#include "gitlab_runner_api.h"
#include "../common/job_exec.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const program_name = "glr-slurm-job";

/* Set by SIGTERM (scancel, time limit): stop the running command and find out why. */
static volatile sig_atomic_t terminated_by_signal = 0;

static void on_sigterm(int signo)
{
    (void)signo;
    terminated_by_signal = 1;
}

/* ---- running a job ------------------------------------------------------------------------ */

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
    const char *ref = glr_job_ref(job);

    /* Not asking GitLab about a silent job (keepalive 0): the daemon does, and scancels the
       batch job. Slurm's SIGTERM stops the running command. */
    job_run_init(&run, job, 0, &terminated_by_signal);
    printf("Job %lld (%s): running\n", (long long)glr_job_id(job), glr_job_name(job) ? glr_job_name(job) : "?");
    fflush(stdout);

    log_printf(&run, "Running with gitlab_runner_api %s (examples-c/slurm/glr-slurm-job)\n", glr_version());
    log_printf(&run, "Running as Slurm job %s on %s\n", slurm_job ? slurm_job : "?", node ? node : "?");
    log_printf(&run, "Starting job with id %lld for %s %s\n", (long long)glr_job_id(job),
               glr_job_is_branch(job) == 0 ? "tag" : "branch", ref ? ref : "(unknown)");

    if (job_run_prepare(&run) != 0)
        system_failure = 1;
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
    if (!system_failure && !slurm_stopped)
        run_after_script(&run);

    if (!slurm_stopped)
        report_job(&run, exit_code, system_failure, dependency_failure);
    job_run_cleanup(&run);
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
