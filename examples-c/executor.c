/*
 * executor.c - chapter 3 "Executing jobs": a minimal GitLab CI executor in C.
 *
 *   executor RUNNER.json [--once]   take jobs with the runner saved by `register` and run them
 *                                   (--once: at most one job, a few tries to get it)
 *   executor --job JOB.json         run a job that `get_job` or `persist_job take` saved
 *
 * For every job: each `script` line runs as `/bin/sh -c LINE` in a fresh directory, with the job's
 * variables in its environment (file variables are written to a file whose path is exported, as
 * GitLab's runners do). Its output (stdout and stderr) is streamed into the job log as it
 * arrives, after a `$ LINE` header like GitLab's runners print. The first failing line stops the
 * script; the `after_script` lines then always run (their failures are ignored). The job is
 * reported successful, or failed with `script_failure` and the exit code. Before the script, the
 * artifacts of the jobs it depends on are downloaded and unpacked into its directory; after it,
 * the job's own `artifacts:` entries are collected there and uploaded with the report.
 *
 * GitLab may cancel the job: the executor asks (glr_job_auth) between lines and while a command
 * is silent, and learns it from every log upload. A graceful cancel (GLR_JOB_CANCELING) kills the
 * running command, runs after_script and reports; a hard cancel (GLR_JOB_CANCELED, or
 * GLR_ERR_JOB_CANCELED from any call) kills the command and stops: nothing more can be reported.
 *
 * Left out on purpose (a real executor adds them): cloning the repository (glr_job_repo_url(),
 * glr_job_commit_sha()), images and services, caches, timeouts,
 * expanding $VARIABLES inside variable values, one shell session for all lines.
 *
 * The steps of a job run (the process runner, the job's environment, artifacts, the report) are in
 * common/job_exec.c, which the Slurm batch program (slurm/glr-slurm-job.c) shares; this file is
 * the executor's part: taking jobs and the order of the steps. Build both files together (the
 * Makefile does).
 *
 * Exit status: 0 the job was reported (whatever its outcome) or was canceled by GitLab;
 *              1 usage or library error (the message names the call and says why);
 *              2 --once and no job arrived.
 */
#define _XOPEN_SOURCE 700 /* POSIX 2008: sleep */

#include "gitlab_runner_api.h"
#include "common/job_exec.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NO_JOB_TRIES 5          /* --once: job requests before giving up (each may long-poll) */
#define KEEPALIVE_INTERVAL 3.0  /* seconds of silence before asking GitLab about the job */

const char *const program_name = "executor";

/* ---- running a job ------------------------------------------------------------------------ */

/* Runs the job and reports it to GitLab. */
static void run_job(glr_job *job)
{
    struct job_run run;
    size_t i, count;
    int exit_code = 0, system_failure = 0, dependency_failure = 0;
    const char *ref = glr_job_ref(job);

    /* The executor asks GitLab about the job itself, between lines and while a command is silent. */
    job_run_init(&run, job, KEEPALIVE_INTERVAL, NULL);
    printf("Job %lld (%s): running\n", (long long)glr_job_id(job), glr_job_name(job) ? glr_job_name(job) : "?");
    fflush(stdout);

    log_printf(&run, "Running with gitlab_runner_api %s (examples-c/executor)\n", glr_version());
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
        talk_to_gitlab(&run); /* upload what is new, or glr_job_auth: still wanted? */
        if (cancel_requested(&run))
            break;
        log_command_header(&run, line);
        rc = run_command(&run, line);
        if (rc < 0)
            system_failure = 1;
        else if (rc != 0) {
            exit_code = rc;
            break;
        }
    }
    cancel_requested(&run);

    /* after_script: always (even after a failure or a graceful cancel), failures ignored. */
    if (!system_failure)
        run_after_script(&run);

    report_job(&run, exit_code, system_failure, dependency_failure);
    job_run_cleanup(&run);
}

/* ---- main --------------------------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: executor RUNNER.json [--once]\n"
                    "       executor --job JOB.json\n");
    return 1;
}

int main(int argc, char **argv)
{
    const char *runner_path = NULL, *job_path = NULL;
    int once = 0, tries = 0, i;
    glr_runner *runner = NULL;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0)
            once = 1;
        else if (strcmp(argv[i], "--job") == 0 && i + 1 < argc)
            job_path = argv[++i];
        else if (argv[i][0] != '-' && runner_path == NULL)
            runner_path = argv[i];
        else
            return usage();
    }
    if ((runner_path == NULL) == (job_path == NULL))
        return usage();

    /* The library loaded at run time must be the one this program was compiled for. */
    if (glr_abi_version() != GLR_ABI_VERSION) {
        fprintf(stderr, "executor: library ABI %u, but built for ABI %d\n", glr_abi_version(), GLR_ABI_VERSION);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    if (job_path != NULL) {
        /* A job another process took (get_job, persist_job take): load it, offline, and run it. */
        glr_job *job = NULL;
        int32_t state;
        CHECK(glr_job_load(job_path, &job));
        state = glr_job_state(job);
        if (state != GLR_JOB_RUNNING && state != GLR_JOB_CANCELING) {
            fprintf(stderr, "executor: job %lld in %s is already finished\n", (long long)glr_job_id(job), job_path);
            glr_job_free(job);
            return 1;
        }
        run_job(job);
        glr_job_free(job);
        return 0;
    }

    CHECK(glr_runner_load(runner_path, &runner));
    CHECK(glr_runner_check_auth(runner));
    /* Tell GitLab what this executor supports beyond the library's own features. */
    CHECK(glr_runner_set_feature(runner, "variables", 1));

    for (;;) {
        glr_job *job = NULL;
        glr_status status = glr_runner_request_job(runner, &job);
        if (status != GLR_OK && (once || status == GLR_ERR_AUTH))
            die("glr_runner_request_job", status);
        if (status != GLR_OK) {
            char message[1024];
            glr_last_error_message(message, sizeof message);
            fprintf(stderr, "executor: warning: no job request possible now: %s; retrying\n", message);
            sleep(5);
            continue;
        }
        if (job == NULL) {
            if (once && ++tries >= NO_JOB_TRIES) {
                printf("No job available\n");
                glr_runner_free(runner);
                return 2;
            }
            sleep(1); /* GitLab holds requests (long polling); a GitLab without it answers at once */
            continue;
        }
        run_job(job);
        glr_job_free(job);
        if (once)
            break;
    }
    glr_runner_free(runner);
    return 0;
}
