#!/usr/bin/env python3
"""The four chapters of the Python package's documentation (registering a runner, getting
jobs, executing jobs, persisting jobs) as a user runs them after `pip install`: nothing but the
installed package, from a directory of its own. tests/python_wheel.rs runs it in fresh venvs
(`pip install ./bindings/python`, and a wheel) against the test server, which has two jobs
queued, and checks what the server stored.

    python3 chapters.py API_URL REGISTRATION_TOKEN

The last line on stdout is JSON: {"library": the path gitlab_runner_api loaded, "runner_id",
"jobs": [{"id", "state", "lines": the log lines this script appended, in order}]}.
"""

import json
import os
import subprocess
import sys


def run_tests(job, outcome):
    """Stands in for the user's executor: the first job passes, the second fails."""
    job.log += "Running %d script lines of %s\n" % (len(job.script), job.name)
    return outcome == "success"


def main(api_url, registration_token):
    # Chapter 1: registering a runner, with the included command line tool.
    register_runner = os.path.join(os.path.dirname(sys.executable), "register-runner")
    subprocess.run([register_runner, api_url, registration_token, "my-runner-data.json", "--locked"], check=True)

    import gitlab_runner_api
    from gitlab_runner_api import Job, Runner, failure_reasons

    # Chapter 2: getting jobs.
    runner = Runner.load("my-runner-data.json")
    runner.check_auth()
    jobs = []
    for outcome in ("success", "failed"):
        job = runner.request_job()
        if not job:
            raise SystemExit("No jobs are currently available (two were queued)")
        lines = ["Starting job with id %d for branch %s\n" % (job.id, job.ref)]

        # Chapter 3: executing jobs (with chapter 4 in the middle: the job is persisted and
        # loaded again, as a long job between two calls of the executor would be).
        job.log += lines[0]
        job_data = job.dumps()
        job = Job.loads(job_data)
        lines.append("Running %d script lines of %s\n" % (len(job.script), job.name))
        if run_tests(job, outcome):
            lines.append("All tests ran successfully\n")
            job.log += lines[-1]
            job.set_success()
        else:
            # ANSI formatting codes can be used to enhance the CI logs
            lines.append("\u001b[31mJob failed!!!\u001b[0m\n")
            job.log += lines[-1]
            job.set_failed(failure_reasons.ScriptFailure())
        jobs.append({"id": job.id, "state": job.state, "lines": lines})

    gitlab_runner_api.shutdown()
    print(json.dumps({"library": gitlab_runner_api._lib.path, "runner_id": runner.id, "jobs": jobs}))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
