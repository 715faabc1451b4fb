/*
 * quickstart.c - the smallest complete runner, built against an installed gitlab_runner_api
 * (with pkg-config or CMake, see README.md "Installing"): registers a runner, takes one job,
 * logs its script lines, and reports it successful. It does not run the script.
 *
 *   quickstart API_URL REGISTRATION_TOKEN [DESCRIPTION]
 *
 * Exit status: 0 a job was taken and reported; 1 error (the message says which call failed and
 * why); 2 no job arrived.
 */
#include <gitlab_runner_api.h>

#include <stdio.h>
#include <string.h>

/* Prints which call failed and the library's message; returns 1. */
static int fail(const char *what, glr_status status)
{
    char message[512];
    glr_last_error_message(message, sizeof message); /* first: the next call clears it */
    fprintf(stderr, "quickstart: %s: %s (%d): %s\n", what, glr_status_str(status), (int)status, message);
    return 1;
}

static glr_status log_line(glr_job *job, const char *text)
{
    return glr_job_log_append(job, text, strlen(text));
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: quickstart API_URL REGISTRATION_TOKEN [DESCRIPTION]\n");
        return 1;
    }
    if (glr_abi_version() != GLR_ABI_VERSION) {
        fprintf(stderr, "quickstart: library ABI %u, header ABI %u\n", (unsigned)glr_abi_version(),
                (unsigned)GLR_ABI_VERSION);
        return 1;
    }

    /* 1. Register a runner. */
    glr_register_options *options = NULL;
    glr_status status = glr_register_options_new(&options);
    if (status != GLR_OK)
        return fail("glr_register_options_new", status);
    status = glr_register_options_set_description(options, argc > 3 ? argv[3] : "quickstart");
    if (status != GLR_OK) {
        glr_register_options_free(options);
        return fail("glr_register_options_set_description", status);
    }
    glr_runner *runner = NULL;
    status = glr_runner_register(argv[1], argv[2], options, &runner);
    glr_register_options_free(options);
    if (status != GLR_OK)
        return fail("glr_runner_register", status);
    printf("Registered runner %lld\n", (long long)glr_runner_id(runner));

    /* 2. Get a job (each request may long-poll; NULL means no job now). */
    glr_job *job = NULL;
    for (int tries = 0; tries < 10 && job == NULL; tries++) {
        status = glr_runner_request_job(runner, &job);
        if (status != GLR_OK) {
            int rc = fail("glr_runner_request_job", status);
            glr_runner_free(runner);
            return rc;
        }
    }
    glr_runner_free(runner); /* the job keeps what it needs */
    if (job == NULL) {
        printf("No job available\n");
        return 2;
    }

    /* 3. Log and report (a real executor runs the script lines here). */
    char line[512];
    snprintf(line, sizeof line, "Running with gitlab_runner_api %s (quickstart.c)\n", glr_version());
    status = log_line(job, line);
    for (size_t i = 0; status == GLR_OK && i < glr_job_script_count(job); i++) {
        snprintf(line, sizeof line, "$ %s\n", glr_job_script_line(job, i));
        status = log_line(job, line);
    }
    if (status == GLR_OK)
        status = log_line(job, "Job succeeded\n");
    if (status == GLR_OK)
        status = glr_job_set_success(job, NULL); /* uploads the log, then reports */
    if (status != GLR_OK) {
        int rc = fail("reporting the job", status);
        glr_job_free(job);
        return rc;
    }
    printf("Job %lld: success\n", (long long)glr_job_id(job));
    glr_job_free(job);
    return 0;
}
