/*
 * shutdown_exit.c - leaving a program without losing the job's log: glr_shutdown().
 *
 *   shutdown_exit RUNNER.json [--no-shutdown]
 *
 * Takes a job, appends 7,000 bytes to its log (70 numbered lines of 100 bytes) and returns from
 * main while the job is still running, as a program does that is told to stop, or that leaves
 * the job to another process. Appending only copies the text: the library's background thread
 * uploads it a little later. Whatever GitLab has not acknowledged when the process exits is
 * lost, so before returning this calls glr_shutdown(10000), which uploads the pending text of
 * every live job and returns GLR_OK once GitLab has acknowledged all of it (or an error naming
 * the jobs and the bytes left, after at most 10 s).
 *
 * With --no-shutdown it returns from main right after the last append: GitLab then has only
 * what the background happened to send in time (RELIABILITY.md says what such runs showed).
 *
 * The handles are deliberately left open at the return from main (static, so memory checkers
 * see them as reachable): it is the exit, not a glr_job_free(), that would lose the text.
 *
 * Exit status: 0 done; 1 usage or library error; 2 no job available; 3 glr_shutdown failed.
 */
#include "gitlab_runner_api.h"

#include <stdio.h>
#include <string.h>

#define LINES 70
#define LINE_BYTES 100

static glr_runner *runner;
static glr_job *job;

static int fail(const char *what)
{
    char message[512];
    glr_last_error_message(message, sizeof message);
    fprintf(stderr, "shutdown_exit: %s failed: %s\n", what, message);
    return 1;
}

int main(int argc, char **argv)
{
    char line[LINE_BYTES + 1];
    int attempt, i, shutdown = 1;
    glr_status st;

    if (argc == 3 && strcmp(argv[2], "--no-shutdown") == 0)
        shutdown = 0;
    else if (argc != 2) {
        fprintf(stderr, "usage: shutdown_exit RUNNER.json [--no-shutdown]\n");
        return 1;
    }
    if (glr_runner_load(argv[1], &runner) != GLR_OK)
        return fail("glr_runner_load");
    for (attempt = 0; attempt < 5 && job == NULL; attempt++) {
        if (glr_runner_request_job(runner, &job) != GLR_OK)
            return fail("glr_runner_request_job");
    }
    if (job == NULL) {
        printf("No job available\n");
        return 2;
    }

    for (i = 1; i <= LINES; i++) {
        /* "line 01 of 70 " padded with dots to LINE_BYTES, newline included. */
        int n = snprintf(line, sizeof line, "line %02d of %d ", i, LINES);
        memset(line + n, '.', (size_t)(LINE_BYTES - 1 - n));
        line[LINE_BYTES - 1] = '\n';
        if (glr_job_log_append(job, line, LINE_BYTES) != GLR_OK)
            return fail("glr_job_log_append");
    }
    printf("Job %lld: appended %d bytes\n", (long long)glr_job_id(job), LINES * LINE_BYTES);

    if (shutdown) {
        if ((st = glr_shutdown(10000)) != GLR_OK) {
            fail("glr_shutdown");
            return 3;
        }
        printf("glr_shutdown: GitLab has all of it\n");
    } else {
        printf("Returning without glr_shutdown\n");
    }
    return 0;
}
