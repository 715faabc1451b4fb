/*
 * persist_job.c - chapter 4 "Persisting jobs": a job taken by one process, finished by another.
 *
 *   persist_job take RUNNER.json JOB.json    process A: take a job, log a line, save it, exit
 *   persist_job finish JOB.json              process B (later, elsewhere): load it, log, report
 *
 * This is how a long job is handed to a batch system: A takes the job from GitLab and submits
 * the work; hours later B, started by the batch system, reports the result. The saved job
 * (glr_job_dump, mode 0600: it holds tokens and secret variables) carries the payload, the
 * state and the log, with how much of the log GitLab already has; B's glr_job_load() is offline
 * and B's log continues after A's, so GitLab's log holds every line of both exactly once.
 *
 * Exit status: 0 done; 1 usage or library error; 2 (take) no job available.
 *
 * die() and CHECK() below are repeated in each program on purpose: every program reads, and can be
 * copied out, on its own (executor.c and slurm/glr-slurm-job.c take theirs from common/job_exec.h
 * together with the code they share).
 */
#define _POSIX_C_SOURCE 200809L /* getpid, sleep */

#include "gitlab_runner_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* Prints which call failed, glr_status_str() and the thread's last error message; exits 1. */
static void die(const char *what, glr_status status)
{
    char message[1024];
    /* First: the message belongs to the last library call made on this thread. */
    glr_last_error_message(message, sizeof message);
    fprintf(stderr, "persist_job: %s failed: %s (%d): %s\n", what, glr_status_str(status), (int)status, message);
    exit(1);
}

#define CHECK(call)                          \
    do {                                     \
        glr_status check_status_ = (call);   \
        if (check_status_ != GLR_OK)         \
            die(#call, check_status_);       \
    } while (0)

/* Appends one formatted line to the job log. */
static void log_line(glr_job *job, const char *what, const char *process)
{
    char line[256];
    int n = snprintf(line, sizeof line, "%s in process %s (pid %ld)\n", what, process, (long)getpid());
    CHECK(glr_job_log_append(job, line, (size_t)n));
}

/* Process A: take a job and save it. */
static int take(const char *runner_path, const char *job_path)
{
    glr_runner *runner = NULL;
    glr_job *job = NULL;
    int attempt;

    CHECK(glr_runner_load(runner_path, &runner));
    for (attempt = 0; attempt < 5 && job == NULL; attempt++) {
        if (attempt > 0)
            sleep(1);
        CHECK(glr_runner_request_job(runner, &job)); /* GLR_OK and NULL: no job now */
    }
    glr_runner_free(runner);
    if (job == NULL) {
        printf("No jobs are currently available\n");
        return 2;
    }

    log_line(job, "Job started", "A");
    log_line(job, "Work submitted to the batch system", "A");
    /* Optional: upload now, so GitLab shows these lines while the work waits. Without it the
       lines travel in the saved job and process B uploads them. */
    CHECK(glr_job_log_flush(job));
    CHECK(glr_job_dump(job, job_path));
    printf("Took job %lld and saved it to %s\n", (long long)glr_job_id(job), job_path);
    printf("Finish it with: persist_job finish %s\n", job_path);
    glr_job_free(job); /* the job stays running on GitLab */
    return 0;
}

/* Process B: load the saved job, log more, report it. */
static int finish(const char *job_path)
{
    glr_job *job = NULL;

    CHECK(glr_job_load(job_path, &job)); /* offline */
    CHECK(glr_job_auth(job));            /* still wanted by GitLab? (GLR_ERR_JOB_CANCELED if not) */
    if (glr_job_state(job) != GLR_JOB_RUNNING) {
        fprintf(stderr, "persist_job: job %lld is no longer running (state %d)\n", (long long)glr_job_id(job),
                (int)glr_job_state(job));
        glr_job_free(job);
        return 1;
    }
    log_line(job, "Batch work finished", "B");
    log_line(job, "Job finished", "B");
    CHECK(glr_job_set_success(job, NULL)); /* uploads the rest of the log, then reports */
    printf("Job %lld reported successful\n", (long long)glr_job_id(job));
    glr_job_free(job);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "take") == 0)
        return take(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "finish") == 0)
        return finish(argv[2]);
    fprintf(stderr, "usage: persist_job take RUNNER.json JOB.json\n"
                    "       persist_job finish JOB.json\n");
    return 1;
}
