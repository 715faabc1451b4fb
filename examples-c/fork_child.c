/*
 * fork_child.c - fork() while a job runs: the child works on a job of its own, the parent's job
 * stays the parent's.
 *
 *   fork_child RUNNER.json
 *
 * The parent takes a job (it owns the job's log), appends a line and 2 MiB of numbered filler
 * lines (a long log: the library's block thread is busy preparing memory for it) and fork()s at
 * once, while that text is still waiting in memory for the background upload. The child has a copy of the
 * parent's memory, the job handle included, but not the parent's threads:
 *  - the parent's job is not the child's: glr_job_is_watcher() says 1, glr_job_log_append()
 *    returns GLR_ERR_NOT_OWNER, and nothing of it (not even the pending line) is sent from the
 *    child; its id and state can still be read, and glr_job_free() releases nothing;
 *  - the library works in the child at once (its own connections and threads): with the
 *    parent's runner it takes another job, logs a line and 3 MiB of filler (a long log of its
 *    own, with its own block thread) and reports that job successful;
 *  - it prints how long it took from fork() to having its job, then _exit()s.
 * The parent waits for the child, appends another line and reports its own job successful.
 *
 * Exit status: 0 done; 1 usage or library error, or a check failed (in the child or the
 * parent); 2 no job available.
 */
#define _POSIX_C_SOURCE 200809L

#include "gitlab_runner_api.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char PARENT_BEFORE[] = "parent: before the fork\n";
static const char PARENT_AFTER[] = "parent: after the child is done\n";
static const char NOT_SENT[] = "child: must not reach the parent's job\n";
static const size_t MIB = 1024 * 1024;

static int fail(const char *who, const char *what)
{
    char message[512];
    glr_last_error_message(message, sizeof message);
    fprintf(stderr, "fork_child: %s: %s failed: %s\n", who, what, message);
    return 1;
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Appends "<who> filler 0000000\n", "<who> filler 0000001\n"... until at least `bytes` bytes. */
static glr_status append_filler(glr_job *job, const char *who, size_t bytes)
{
    char line[64];
    size_t done = 0;
    long i;
    for (i = 0; done < bytes; i++) {
        int n = snprintf(line, sizeof line, "%s filler %07ld\n", who, i);
        glr_status st = glr_job_log_append(job, line, (size_t)n);
        if (st != GLR_OK)
            return st;
        done += (size_t)n;
    }
    return GLR_OK;
}

static glr_status take_job(glr_runner *runner, glr_job **job)
{
    glr_status st = GLR_OK;
    int attempt;
    for (attempt = 0; attempt < 5 && *job == NULL && st == GLR_OK; attempt++)
        st = glr_runner_request_job(runner, job);
    return st;
}

/* Everything the child does; returns its exit status. */
static int child(glr_runner *runner, glr_job *parents_job, const struct timespec *forked)
{
    glr_job *job = NULL;
    char line[128];
    glr_status st;
    int n;

    if (glr_job_is_watcher(parents_job) != 1) {
        fprintf(stderr, "fork_child: child: the parent's job should be a watcher here\n");
        return 1;
    }
    st = glr_job_log_append(parents_job, NOT_SENT, strlen(NOT_SENT));
    if (st != GLR_ERR_NOT_OWNER) {
        fprintf(stderr, "fork_child: child: appending to the parent's job returned %d, not GLR_ERR_NOT_OWNER\n",
                (int)st);
        return 1;
    }
    printf("child: the parent's job %lld is not ours (state %d): %s\n", (long long)glr_job_id(parents_job),
           (int)glr_job_state(parents_job), glr_status_str(st));
    /* Releases nothing in the child: the memory belongs to the parent's copy. */
    glr_job_free(parents_job);

    if (take_job(runner, &job) != GLR_OK)
        return fail("child", "glr_runner_request_job");
    if (job == NULL) {
        printf("child: no job available\n");
        return 2;
    }
    printf("child: took job %lld %.3f s after fork()\n", (long long)glr_job_id(job), seconds_since(forked));
    fflush(stdout);
    n = snprintf(line, sizeof line, "child: the only line of job %lld\n", (long long)glr_job_id(job));
    if (glr_job_log_append(job, line, (size_t)n) != GLR_OK || append_filler(job, "child", 3 * MIB) != GLR_OK)
        return fail("child", "glr_job_log_append");
    if (glr_job_set_success(job, NULL) != GLR_OK)
        return fail("child", "glr_job_set_success");
    printf("child: job %lld reported successful\n", (long long)glr_job_id(job));
    glr_job_free(job);
    return 0;
}

int main(int argc, char **argv)
{
    glr_runner *runner = NULL;
    glr_job *job = NULL;
    struct timespec forked;
    int status, failed = 0;
    pid_t pid;

    if (argc != 2) {
        fprintf(stderr, "usage: fork_child RUNNER.json\n");
        return 1;
    }
    if (glr_runner_load(argv[1], &runner) != GLR_OK)
        return fail("parent", "glr_runner_load");
    if (take_job(runner, &job) != GLR_OK)
        return fail("parent", "glr_runner_request_job");
    if (job == NULL) {
        printf("No job available\n");
        glr_runner_free(runner);
        return 2;
    }
    printf("parent: took job %lld\n", (long long)glr_job_id(job));
    if (glr_job_log_append(job, PARENT_BEFORE, strlen(PARENT_BEFORE)) != GLR_OK ||
        append_filler(job, "parent", 2 * MIB) != GLR_OK)
        return fail("parent", "glr_job_log_append");

    fflush(stdout); /* or the child's exit would print the parent's buffered lines again */
    clock_gettime(CLOCK_MONOTONIC, &forked);
    pid = fork();
    if (pid < 0) {
        perror("fork_child: fork");
        return 1;
    }
    if (pid == 0) {
        int code = child(runner, job, &forked);
        fflush(stdout);
        /* _exit: the parent's atexit handlers and stdio buffers are the parent's business. */
        _exit(code);
    }

    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "fork_child: parent: the child failed (wait status %d)\n", status);
        failed = 1;
    }
    if (glr_job_is_watcher(job) != 0) {
        fprintf(stderr, "fork_child: parent: the job should still be ours\n");
        failed = 1;
    }
    if (glr_job_log_append(job, PARENT_AFTER, strlen(PARENT_AFTER)) != GLR_OK)
        failed = fail("parent", "glr_job_log_append");
    if (glr_job_set_success(job, NULL) != GLR_OK)
        failed = fail("parent", "glr_job_set_success");
    else
        printf("parent: job %lld reported successful\n", (long long)glr_job_id(job));
    glr_job_free(job);
    glr_runner_free(runner);
    return failed;
}
