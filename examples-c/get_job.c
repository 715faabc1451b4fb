/*
 * get_job.c - chapter 2 "Getting jobs".
 *
 *   get_job RUNNER.json JOB.json [--tries N]
 *
 * Loads the runner saved by `register`, checks its token, asks GitLab for a job (up to N times,
 * default 5; each request may wait while GitLab holds it), prints the job's properties and saves
 * the job to JOB.json with glr_job_dump(). The job is now running on GitLab: finish it with
 * `executor --job JOB.json` or `persist_job finish JOB.json`, in this process or another one.
 *
 * Secrets are not printed: values of masked variables show as [MASKED], the job token is
 * replaced by [MASKED] wherever it appears, and the repository URL (it embeds the token) is not
 * shown.
 *
 * Exit status: 0 a job was received and saved; 1 usage or library error; 2 no job available.
 *
 * die() and CHECK() below are repeated in each program on purpose: every program reads, and can be
 * copied out, on its own (executor.c and slurm/glr-slurm-job.c take theirs from common/job_exec.h
 * together with the code they share).
 */
#define _POSIX_C_SOURCE 200809L /* sleep */

#include "gitlab_runner_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Prints which call failed, glr_status_str() and the thread's last error message; exits 1. */
static void die(const char *what, glr_status status)
{
    char message[1024];
    /* First: the message belongs to the last library call made on this thread. */
    glr_last_error_message(message, sizeof message);
    fprintf(stderr, "get_job: %s failed: %s (%d): %s\n", what, glr_status_str(status), (int)status, message);
    exit(1);
}

#define CHECK(call)                          \
    do {                                     \
        glr_status check_status_ = (call);   \
        if (check_status_ != GLR_OK)         \
            die(#call, check_status_);       \
    } while (0)

/* Getters return NULL for what GitLab did not send. */
static const char *or_unset(const char *s)
{
    return s ? s : "(not sent)";
}

/*
 * Prints a value on one line: newlines and other control characters escaped, and the job token
 * replaced by [MASKED] wherever it appears (CI_REPOSITORY_URL, for one, embeds it unmasked).
 */
static void print_value(const char *s, const char *token)
{
    size_t token_len = token ? strlen(token) : 0;
    while (*s) {
        if (token_len > 0 && strncmp(s, token, token_len) == 0) {
            fputs("[MASKED]", stdout);
            s += token_len;
            continue;
        }
        if (*s == '\n')
            fputs("\\n", stdout);
        else if ((unsigned char)*s < 0x20)
            printf("\\x%02x", (unsigned)(unsigned char)*s);
        else
            putchar(*s);
        s++;
    }
}

static void print_variables(const glr_job *job)
{
    size_t i, n = glr_job_variable_count(job);
    printf("variables (%zu):\n", n);
    for (i = 0; i < n; i++) {
        uint32_t flags = glr_job_variable_flags(job, i);
        printf("  %s=", or_unset(glr_job_variable_key(job, i)));
        if (flags & GLR_VAR_MASKED)
            fputs("[MASKED]", stdout); /* never print a secret */
        else
            print_value(or_unset(glr_job_variable_value(job, i)), glr_job_token(job));
        printf("%s%s%s%s\n", flags & GLR_VAR_PUBLIC ? "  public" : "", flags & GLR_VAR_MASKED ? "  masked" : "",
               flags & GLR_VAR_FILE ? "  file" : "", flags & GLR_VAR_RAW ? "  raw" : "");
    }
}

int main(int argc, char **argv)
{
    const char *runner_path, *job_path;
    long tries = 5, attempt;
    glr_runner *runner = NULL;
    glr_job *job = NULL;
    size_t i;
    int32_t is_branch;

    if (argc == 5 && strcmp(argv[3], "--tries") == 0)
        tries = strtol(argv[4], NULL, 10);
    if ((argc != 3 && argc != 5) || tries < 1) {
        fprintf(stderr, "usage: get_job RUNNER.json JOB.json [--tries N]\n");
        return 1;
    }
    runner_path = argv[1];
    job_path = argv[2];

    CHECK(glr_runner_load(runner_path, &runner)); /* offline */
    CHECK(glr_runner_check_auth(runner));         /* is the token still good? */
    printf("Runner %lld at %s\n", (long long)glr_runner_id(runner), glr_runner_api_url(runner));

    /* GLR_OK with job == NULL means "no job now". */
    for (attempt = 1; attempt <= tries; attempt++) {
        CHECK(glr_runner_request_job(runner, &job));
        if (job != NULL)
            break;
        printf("No job yet (attempt %ld of %ld)\n", attempt, tries);
        if (attempt < tries)
            sleep(1);
    }
    glr_runner_free(runner); /* the job keeps what it needs */
    if (job == NULL) {
        printf("No jobs are currently available\n");
        return 2;
    }

    printf("Received job %lld\n", (long long)glr_job_id(job));
    printf("name:         %s\n", or_unset(glr_job_name(job)));
    printf("stage:        %s\n", or_unset(glr_job_stage(job)));
    is_branch = glr_job_is_branch(job);
    printf("ref:          %s (%s)\n", or_unset(glr_job_ref(job)),
           is_branch == 1 ? "branch" : is_branch == 0 ? "tag" : "unknown");
    printf("commit_sha:   %s\n", or_unset(glr_job_commit_sha(job)));
    printf("project_path: %s\n", or_unset(glr_job_project_path(job)));
    printf("project_url:  %s\n", or_unset(glr_job_project_url(job)));
    printf("job_url:      %s\n", or_unset(glr_job_job_url(job)));
    printf("pipeline_id:  %s\n", or_unset(glr_job_pipeline_id(job)));
    printf("username:     %s\n", or_unset(glr_job_username(job)));
    printf("script (%zu lines):\n", glr_job_script_count(job));
    for (i = 0; i < glr_job_script_count(job); i++)
        printf("  %s\n", glr_job_script_line(job, i));
    printf("after_script (%zu lines):\n", glr_job_after_script_count(job));
    for (i = 0; i < glr_job_after_script_count(job); i++)
        printf("  %s\n", glr_job_after_script_line(job, i));
    print_variables(job);

    /* Hand the job over: another process loads it with glr_job_load() and finishes it. */
    CHECK(glr_job_dump(job, job_path));
    printf("Job saved to %s; finish it with `executor --job %s` or `persist_job finish %s`\n", job_path,
           job_path, job_path);
    glr_job_free(job);
    return 0;
}
