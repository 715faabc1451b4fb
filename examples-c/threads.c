/*
 * threads.c - one runner and one job shared by many threads.
 *
 *   threads RUNNER.json THREADS LINES [DUMP_DIR]
 *
 * Takes a job, then starts THREADS POSIX threads that all use the same glr_runner and glr_job
 * handles at once: each appends LINES numbered lines to the job log and, between lines, reads
 * the job's properties, flushes the log, serialises the job (to a string, and to a file in
 * DUMP_DIR if given) and the runner. The handles lock internally, so no locking is needed here;
 * appending never waits for the network, even while another thread flushes. When every thread
 * is done, the main thread reports the job successful: GitLab's log then holds every line of
 * every thread exactly once.
 *
 * A flush may fail while GitLab (or the network) misbehaves: nothing is lost, the text is sent
 * again later, so the threads only count such failures. Any other failure is an error.
 *
 * Exit status: 0 done; 1 usage or library error; 2 no job available.
 */
#define _POSIX_C_SOURCE 200809L

#include "gitlab_runner_api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 256

struct shared {
    glr_runner *runner;
    glr_job *job;
    int lines;
    const char *dump_dir;
};

struct worker {
    pthread_t thread;
    const struct shared *shared;
    int index;
    int errors;         /* calls that failed in a way they must not */
    int network_errors; /* flushes that failed while the server misbehaved (retried later) */
};

/* Prints a failed call with this thread's last error message (read on the failing thread). */
static void report(const struct worker *w, const char *what, glr_status status)
{
    char message[512];
    glr_last_error_message(message, sizeof message);
    fprintf(stderr, "threads: thread %d: %s failed: %s (%d): %s\n", w->index, what, glr_status_str(status),
            (int)status, message);
}

static void check(struct worker *w, const char *what, glr_status status)
{
    if (status != GLR_OK) {
        report(w, what, status);
        w->errors++;
    }
}

static void *work(void *arg)
{
    struct worker *w = arg;
    const struct shared *s = w->shared;
    char line[128];
    char path[4096];
    int k;

    if (s->dump_dir != NULL)
        snprintf(path, sizeof path, "%s/job-%d.json", s->dump_dir, w->index);
    for (k = 0; k < s->lines; k++) {
        int n = snprintf(line, sizeof line, "thread %02d line %03d\n", w->index, k);
        check(w, "glr_job_log_append", glr_job_log_append(s->job, line, (size_t)n));
        switch (k % 10) {
        case 0: {
            glr_status st = glr_job_log_flush(s->job);
            if (st == GLR_ERR_NETWORK || st == GLR_ERR_HTTP)
                w->network_errors++;
            else
                check(w, "glr_job_log_flush", st);
            break;
        }
        case 1: {
            char *dump = NULL;
            check(w, "glr_job_dumps", glr_job_dumps(s->job, &dump));
            glr_string_free(dump);
            break;
        }
        case 2:
            if (s->dump_dir != NULL)
                check(w, "glr_job_dump", glr_job_dump(s->job, path));
            break;
        case 3: {
            size_t i, count = glr_job_variable_count(s->job);
            if (glr_job_id(s->job) <= 0 || glr_job_token(s->job) == NULL || glr_runner_token(s->runner) == NULL) {
                fprintf(stderr, "threads: thread %d: a property is missing\n", w->index);
                w->errors++;
            }
            for (i = 0; i < count; i++) {
                if (glr_job_variable_key(s->job, i) == NULL) {
                    fprintf(stderr, "threads: thread %d: variable %zu has no key\n", w->index, i);
                    w->errors++;
                }
            }
            if (glr_job_state(s->job) != GLR_JOB_RUNNING) {
                fprintf(stderr, "threads: thread %d: the job is no longer running\n", w->index);
                w->errors++;
            }
            break;
        }
        case 4: {
            char *log = NULL;
            size_t len = 0;
            check(w, "glr_job_log", glr_job_log(s->job, &log, &len));
            glr_string_free(log);
            break;
        }
        case 5: {
            char *dump = NULL;
            check(w, "glr_runner_dumps", glr_runner_dumps(s->runner, &dump));
            glr_string_free(dump);
            check(w, "glr_runner_set_feature", glr_runner_set_feature(s->runner, "image", k % 2));
            break;
        }
        default:
            break;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct shared shared;
    struct worker *workers;
    glr_runner *runner = NULL;
    glr_job *job = NULL;
    glr_status st;
    int threads, i, attempt, errors = 0, network_errors = 0;
    char message[512];

    if (argc < 4 || argc > 5 || (threads = atoi(argv[2])) < 1 || threads > MAX_THREADS || atoi(argv[3]) < 1) {
        fprintf(stderr, "usage: threads RUNNER.json THREADS LINES [DUMP_DIR]   (1 <= THREADS <= %d)\n", MAX_THREADS);
        return 1;
    }
    if ((st = glr_runner_load(argv[1], &runner)) != GLR_OK) {
        glr_last_error_message(message, sizeof message);
        fprintf(stderr, "threads: glr_runner_load failed: %s\n", message);
        return 1;
    }
    for (attempt = 0; attempt < 5 && job == NULL; attempt++) {
        if ((st = glr_runner_request_job(runner, &job)) != GLR_OK) {
            glr_last_error_message(message, sizeof message);
            fprintf(stderr, "threads: glr_runner_request_job failed: %s\n", message);
            glr_runner_free(runner);
            return 1;
        }
    }
    if (job == NULL) {
        printf("No job available\n");
        glr_runner_free(runner);
        return 2;
    }

    shared.runner = runner;
    shared.job = job;
    shared.lines = atoi(argv[3]);
    shared.dump_dir = argc == 5 ? argv[4] : NULL;
    workers = calloc((size_t)threads, sizeof *workers);
    if (workers == NULL) {
        fprintf(stderr, "threads: out of memory\n");
        return 1;
    }
    for (i = 0; i < threads; i++) {
        workers[i].shared = &shared;
        workers[i].index = i;
        if (pthread_create(&workers[i].thread, NULL, work, &workers[i]) != 0) {
            fprintf(stderr, "threads: cannot start thread %d\n", i);
            return 1;
        }
    }
    for (i = 0; i < threads; i++) {
        pthread_join(workers[i].thread, NULL);
        errors += workers[i].errors;
        network_errors += workers[i].network_errors;
    }
    free(workers);

    st = errors == 0 ? glr_job_set_success(job, NULL) : glr_job_set_failed(job, GLR_FAILURE_RUNNER_SYSTEM, NULL);
    if (st != GLR_OK) {
        glr_last_error_message(message, sizeof message);
        fprintf(stderr, "threads: reporting the job failed: %s\n", message);
        errors++;
    }
    printf("Job %lld: %d threads x %d lines, %d flushes failed and were retried, %d errors\n",
           (long long)glr_job_id(job), threads, shared.lines, network_errors, errors);
    glr_job_free(job);
    glr_runner_free(runner);
    return errors == 0 ? 0 : 1;
}
