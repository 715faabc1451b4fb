/*
 * common/job_exec.h - running a GitLab job's script on this machine: the code executor.c and
 * slurm/glr-slurm-job.c share. Both run a job the same way; they differ in where the job comes
 * from (a job request, or a file the Slurm daemon saved) and in who watches for GitLab's cancel
 * (executor.c asks GitLab itself; the Slurm batch job leaves that to the daemon and gets SIGTERM).
 * Each program keeps its own run_job(), the order of the steps below, so that it reads on its own;
 * this file holds the steps. It is not a library of the project: copy it along with the program.
 *
 * A job run, step by step:
 *   job_run_init          the bookkeeping (no side effects);
 *   job_run_prepare       a fresh directory <TMPDIR>/glr-job-XXXXXX/{build,vars} and the commands'
 *                         environment: the job's variables (file variables written to
 *                         vars/KEY, their path exported, as GitLab's runners do), CI_PROJECT_DIR,
 *                         then this process's environment;
 *   download_dependencies the artifacts of the jobs it depends on, unpacked into build/;
 *   run_command           each script line as `/bin/sh -c LINE` in build/, its output (stdout and
 *                         stderr) streamed into the job log as it arrives; killed when GitLab
 *                         cancels the job (or the program is told to stop);
 *   run_after_script      the after_script lines (their failures ignored);
 *   report_job            the job's own artifacts collected and uploaded with the outcome:
 *                         success, or failed (script_failure with the exit code, ...);
 *   job_run_cleanup       the directory removed, the environment freed.
 *
 * Cancellation: GitLab's answers (every log upload, glr_job_auth) carry the job's state, which the
 * library keeps (glr_job_state). A graceful cancel (GLR_JOB_CANCELING) kills the running command,
 * lets after_script run and is reported; a hard cancel (GLR_JOB_CANCELED, or GLR_ERR_JOB_CANCELED
 * from any call) kills the command and stops: nothing more can be reported.
 */
#ifndef EXAMPLES_C_COMMON_JOB_EXEC_H
#define EXAMPLES_C_COMMON_JOB_EXEC_H

#include "gitlab_runner_api.h"

#include <signal.h>
#include <stddef.h>

/* ---- error handling ----------------------------------------------------------------------- */

/* The program's name, the prefix of its messages: each program defines it. */
extern const char *const program_name;

/* Prints which call failed, glr_status_str() and the thread's last error message; exits 1. */
void die(const char *what, glr_status status);

#define CHECK(call)                          \
    do {                                     \
        glr_status check_status_ = (call);   \
        if (check_status_ != GLR_OK)         \
            die(#call, check_status_);       \
    } while (0)

/* ---- one job ------------------------------------------------------------------------------ */

struct job_run {
    glr_job *job;
    char dir[4096];      /* temporary directory of this job */
    char workdir[4200];  /* <dir>/build: where the commands run */
    char **envp;         /* the commands' environment */
    /* Seconds of silence (nothing to upload) before asking GitLab whether the job is still
       wanted (glr_job_auth); 0: never, someone else asks. */
    double keepalive_interval;
    /* Set (to nonzero) by the program's signal handler when it is told to stop; or NULL. */
    volatile sig_atomic_t *stop_signal;
    int canceling;       /* GitLab asked for a graceful stop */
    int stopped;         /* GitLab stopped the job: nothing more can be sent */
    int terminated;      /* *stop_signal was set */
    int unflushed;       /* log text appended since the last upload */
    double last_contact; /* when we last talked to GitLab about this job */
};

/* Fills in `run` for `job`; nothing else happens yet. */
void job_run_init(struct job_run *run, glr_job *job, double keepalive_interval, volatile sig_atomic_t *stop_signal);

/* Creates the job's directory and builds the commands' environment. Returns 0, or -1 (the reason
   is in the job log) when the job cannot run here: a system failure. */
int job_run_prepare(struct job_run *run);

/* Removes the job's directory and frees the environment. */
void job_run_cleanup(struct job_run *run);

double now_seconds(void);

/*
 * Checks the status of a call about the job. GLR_ERR_JOB_CANCELED is an outcome, not an error:
 * GitLab stopped the job. With `transient_ok`, network and HTTP errors only warn: the library
 * keeps every appended byte and sends it again with the next upload or the final report. Any
 * other failure exits the program (1). Returns 1 when the call succeeded.
 */
int job_call(struct job_run *run, glr_status status, const char *what, int transient_ok);

/* Reads the job's state as the library learned it from GitLab's answers, and the stop signal.
   Returns 1 when the job should stop (or stop early: a graceful cancel). */
int cancel_requested(struct job_run *run);

/* Appends to the job log (nothing once GitLab stopped the job). */
void log_bytes(struct job_run *run, const char *data, size_t len);
void log_printf(struct job_run *run, const char *format, ...);

/* The `$ command` header GitLab's runners print (bold green); multi-line commands collapsed. */
void log_command_header(struct job_run *run, const char *line);

/* Uploads the log if anything is new, else (with a keepalive_interval) asks GitLab whether the
   job should go on. */
void talk_to_gitlab(struct job_run *run);

/*
 * Runs `/bin/sh -c line` in the job's directory and environment, streaming its output into the
 * log, uploading it about every second and talking to GitLab after keepalive_interval of silence.
 * Returns its exit status (128 + signal number when killed), or -1 if it could not start.
 */
int run_command(struct job_run *run, const char *line);

/* Downloads each dependency's artifacts and unpacks them into the build directory, as GitLab
   runners do before the script. Returns 0, or -1 when a dependency cannot be had. */
int download_dependencies(struct job_run *run);

/* Runs the after_script lines (if any, and unless GitLab stopped the job); their failures are
   logged and ignored. */
void run_after_script(struct job_run *run);

/*
 * Reports the job, unless GitLab stopped it: canceled (graceful cancel), failed (a missing
 * dependency, a system failure, or script_failure with `exit_code`), or success. When the job ran
 * to its end, its own artifacts are collected from the build directory and uploaded with the
 * report. Prints "Job ID: reported, state STATE" or "Job ID: canceled by GitLab".
 */
void report_job(struct job_run *run, int exit_code, int system_failure, int dependency_failure);

#endif
