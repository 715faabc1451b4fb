/*
 * stop_polling.c - stopping a thread that waits for jobs: glr_runner_interrupt(), and
 * glr_runner_free() while the thread is inside glr_runner_request_job().
 *
 *   stop_polling RUNNER.json interrupt|free [DELAY_MS]
 *
 * A poller thread asks GitLab for jobs in a loop; GitLab holds each request in its long poll
 * (up to about a minute) while there is no job. DELAY_MS (default 300) after the poller went
 * into such a request, the main thread stops it:
 *  - interrupt: glr_runner_interrupt(). The poller's glr_runner_request_job() returns
 *    GLR_ERR_INTERRUPTED at once and the poller ends. Later calls are not affected: the main
 *    thread then asks for a job itself with a call timeout of 1 s, which the long poll outlasts,
 *    so that call returns GLR_ERR_TIMEOUT after 1 s. This is the way to stop polling (a signal,
 *    a shutdown request): interrupt, join the thread, then free the runner.
 *  - free: glr_runner_free() while the poller is inside glr_runner_request_job(). The call
 *    returns GLR_ERR_INTERRUPTED, and glr_runner_free() returns once it did. No thread may
 *    start a call on a runner once it is being freed, which this program can only promise
 *    because the poller is known to wait in the long poll by then (DELAY_MS after it went in),
 *    and because it stops at GLR_ERR_INTERRUPTED.
 * It prints how long the poller took to return after the stop.
 *
 * Exit status: 0 done; 1 usage or library error, or a call returned something else than
 * described above.
 */
#define _POSIX_C_SOURCE 200809L

#include "gitlab_runner_api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct poller {
    glr_runner *runner;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int requests;            /* requests started so far */
    glr_status last;         /* the status of the request that ended the loop */
    char message[512];       /* and its message */
    struct timespec stopped; /* when that request returned */
};

static void now(struct timespec *t)
{
    clock_gettime(CLOCK_MONOTONIC, t);
}

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* Asks for jobs until a request fails; a job received is freed (this program runs none). */
static void *poll_jobs(void *arg)
{
    struct poller *p = arg;
    for (;;) {
        glr_job *job = NULL;
        glr_status st;
        pthread_mutex_lock(&p->lock);
        p->requests++;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
        st = glr_runner_request_job(p->runner, &job);
        if (st != GLR_OK) {
            glr_last_error_message(p->message, sizeof p->message);
            pthread_mutex_lock(&p->lock);
            p->last = st;
            now(&p->stopped);
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        glr_job_free(job);
    }
}

static void sleep_ms(long ms)
{
    struct timespec t;
    t.tv_sec = ms / 1000;
    t.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&t, NULL);
}

int main(int argc, char **argv)
{
    struct poller p;
    struct timespec stop, before, after;
    long delay = 300;
    int use_free, failed = 0;
    glr_job *job = NULL;
    glr_status st;

    if (argc < 3 || argc > 4 || (strcmp(argv[2], "interrupt") != 0 && strcmp(argv[2], "free") != 0) ||
        (argc == 4 && (delay = atol(argv[3])) < 0)) {
        fprintf(stderr, "usage: stop_polling RUNNER.json interrupt|free [DELAY_MS]\n");
        return 1;
    }
    use_free = strcmp(argv[2], "free") == 0;
    memset(&p, 0, sizeof p);
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.changed, NULL);
    if (glr_runner_load(argv[1], &p.runner) != GLR_OK) {
        glr_last_error_message(p.message, sizeof p.message);
        fprintf(stderr, "stop_polling: glr_runner_load failed: %s\n", p.message);
        return 1;
    }
    if (pthread_create(&p.thread, NULL, poll_jobs, &p) != 0) {
        fprintf(stderr, "stop_polling: cannot start the poller\n");
        return 1;
    }
    /* GitLab answers a runner's first request at once; the second one waits in the long poll. */
    pthread_mutex_lock(&p.lock);
    while (p.requests < 2)
        pthread_cond_wait(&p.changed, &p.lock);
    pthread_mutex_unlock(&p.lock);
    sleep_ms(delay);

    now(&stop);
    if (use_free) {
        glr_runner_free(p.runner);
        now(&after);
        printf("glr_runner_free returned after %.3f s\n", seconds_between(&stop, &after));
    } else if (glr_runner_interrupt(p.runner) != GLR_OK) {
        fprintf(stderr, "stop_polling: glr_runner_interrupt failed\n");
        return 1;
    }
    pthread_join(p.thread, NULL);
    printf("poller: request %d returned %s (%d) %.3f s after the %s: %s\n", p.requests, glr_status_str(p.last),
           (int)p.last, seconds_between(&stop, &p.stopped), use_free ? "free" : "interrupt", p.message);
    if (p.last != GLR_ERR_INTERRUPTED)
        failed = 1;

    if (!use_free) {
        /* Not interrupted any more: bounded by the call timeout instead. */
        if (glr_runner_set_call_timeout(p.runner, 1000) != GLR_OK) {
            fprintf(stderr, "stop_polling: glr_runner_set_call_timeout failed\n");
            return 1;
        }
        now(&before);
        st = glr_runner_request_job(p.runner, &job);
        now(&after);
        glr_last_error_message(p.message, sizeof p.message);
        printf("afterwards: request_job returned %s (%d) after %.3f s: %s\n", glr_status_str(st), (int)st,
               seconds_between(&before, &after), p.message);
        if (st != GLR_ERR_TIMEOUT)
            failed = 1;
        glr_job_free(job);
        glr_runner_free(p.runner);
    }
    pthread_cond_destroy(&p.changed);
    pthread_mutex_destroy(&p.lock);
    return failed;
}
