/*
 * register.c - chapter 1 "Registering a Runner".
 *
 *   register URL TOKEN OUT.json [--tag TAG]... [--locked] [--run-untagged] [--description TEXT]
 *
 * With a registration token (the legacy workflow, "Register a runner" in the project's CI/CD
 * settings) the runner is registered with glr_runner_register() and the options given. With an
 * authentication token made in GitLab's UI (`glrt-...`, the current workflow) the runner already
 * exists and its settings (tags, locked...) live in GitLab: glr_runner_from_token() verifies the
 * token and learns the runner's id.
 *
 * Either way the runner is saved to OUT.json with glr_runner_dump() (mode 0600: it holds the
 * runner's token), ready for get_job, executor and persist_job.
 *
 * Exit status: 0 registered and saved; 1 usage or library error.
 *
 * die() and CHECK() below are repeated in each program on purpose: every program reads, and can be
 * copied out, on its own (executor.c and slurm/glr-slurm-job.c take theirs from common/job_exec.h
 * together with the code they share).
 */
#include "gitlab_runner_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints which call failed, glr_status_str() and the thread's last error message; exits 1. */
static void die(const char *what, glr_status status)
{
    char message[1024];
    /* First: the message belongs to the last library call made on this thread. */
    glr_last_error_message(message, sizeof message);
    fprintf(stderr, "register: %s failed: %s (%d): %s\n", what, glr_status_str(status), (int)status, message);
    exit(1);
}

#define CHECK(call)                          \
    do {                                     \
        glr_status check_status_ = (call);   \
        if (check_status_ != GLR_OK)         \
            die(#call, check_status_);       \
    } while (0)

static int usage(void)
{
    fprintf(stderr, "usage: register URL TOKEN OUT.json [--tag TAG]... [--locked] [--run-untagged]"
                    " [--description TEXT]\n"
                    "  TOKEN: a registration token, or a runner authentication token (glrt-...)\n");
    return 1;
}

int main(int argc, char **argv)
{
    const char *url, *token, *out_path, *description = NULL;
    int locked = 0, run_untagged = 0, ntags = 0, i;
    glr_register_options *options = NULL;
    glr_runner *runner = NULL;
    size_t t;

    if (argc < 4)
        return usage();
    url = argv[1];
    token = argv[2];
    out_path = argv[3];

    /* Options go straight into a glr_register_options (they are only sent if set). */
    CHECK(glr_register_options_new(&options));
    for (i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--tag") == 0 && i + 1 < argc) {
            CHECK(glr_register_options_add_tag(options, argv[++i])); /* rejects "" and commas */
            ntags++;
        } else if (strcmp(argv[i], "--description") == 0 && i + 1 < argc) {
            description = argv[++i];
        } else if (strcmp(argv[i], "--locked") == 0) {
            locked = 1;
        } else if (strcmp(argv[i], "--run-untagged") == 0) {
            run_untagged = 1;
        } else {
            glr_register_options_free(options);
            return usage();
        }
    }

    if (strncmp(token, "glrt-", 5) == 0) {
        /* The runner was created in GitLab, with its settings: only verify the token. */
        if (ntags > 0 || locked || run_untagged || description != NULL)
            fprintf(stderr, "register: note: a glrt- runner's tags and settings are set in GitLab;"
                            " ignoring the options given\n");
        CHECK(glr_runner_from_token(url, token, &runner));
    } else {
        CHECK(glr_register_options_set_description(options, description ? description : "gitlab_runner_api C example"));
        CHECK(glr_register_options_set_executor(options, "examples-c"));
        if (locked)
            CHECK(glr_register_options_set_locked(options, 1));
        if (run_untagged)
            CHECK(glr_register_options_set_run_untagged(options, 1));
        CHECK(glr_runner_register(url, token, options, &runner));
    }
    glr_register_options_free(options);

    /* Borrowed strings: valid until glr_runner_free(); NULL when unset. */
    printf("Registered runner %lld (%s) at %s\n", (long long)glr_runner_id(runner),
           glr_runner_description(runner) ? glr_runner_description(runner) : "no description",
           glr_runner_api_url(runner));
    if (glr_runner_tag_count(runner) > 0) {
        printf("Tags:");
        for (t = 0; t < glr_runner_tag_count(runner); t++)
            printf(" %s", glr_runner_tag(runner, t));
        printf("\n");
    }
    if (glr_runner_locked(runner) == 1)
        printf("Locked to its project\n");

    CHECK(glr_runner_dump(runner, out_path));
    printf("Saved to %s (keep it private: it holds the runner token)\n", out_path);
    glr_runner_free(runner);
    return 0;
}
