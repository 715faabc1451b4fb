#!/usr/bin/env python3
"""Tests of the ctypes module gitlab_runner_api against a GitLab test double, written against the
documented behaviour of the Python package gitlab_runner_api 1.0.4 (its documentation's chapters:
registering a runner, getting jobs, executing jobs, persisting jobs) plus the documented
differences (bindings/python/README.md). Standard library only (unittest).

    GLR_TEST_URL=http://127.0.0.1:PORT GLR_TEST_REGISTRATION_TOKEN=... \\
    GITLAB_RUNNER_API_LIB=target/debug/libgitlab_runner_api.so \\
    PYTHONPATH=bindings/python python3 bindings/python/tests/test_api.py

The server is `glr-testserver` (cargo run -p glr-testserver prints its url and token; run it with
--long-poll-seconds 0 to go fast); tests/python_bindings.rs starts one and runs this file. Every
check of what GitLab received reads the server's control interface (/__control/...). With
GLR_TEST_SUMMARY=<file>, the id and the expected final state of every job the tests finished are
written there, for the Rust test to check independently.
"""

import asyncio
import base64
import io
import json
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
import uuid
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # bindings/python: the package under test

import gitlab_runner_api  # noqa: E402
from gitlab_runner_api import (  # noqa: E402
    AlreadyFinishedExcpetion,
    APIExcpetion,
    Artifacts,
    AuthException,
    CallInterruptedError,
    CallTimeoutError,
    Job,
    JobCancelledException,
    NotOwnerError,
    Runner,
    failure_reasons,
)
from gitlab_runner_api import _lib, exceptions  # noqa: E402

URL = os.environ.get("GLR_TEST_URL", "")
REGISTRATION_TOKEN = os.environ.get("GLR_TEST_REGISTRATION_TOKEN", "")
EXPECTED_STATES = {}  # job id -> {state, checksum_matches} the server must have (written to GLR_TEST_SUMMARY)


# ---- the test server's control interface ------------------------------------------------------


def control(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def queue_job(tag, overrides=None):
    """Queues a job for runners with `tag`; returns {id, token}."""
    return control("POST", "/__control/jobs", {"overrides": overrides or {}, "tags": [tag]})


def job_record(job_id):
    return control("GET", "/__control/jobs/%d" % job_id)


def trace(job_id):
    return base64.b64decode(job_record(job_id)["trace_base64"]).decode("utf-8")


def server_runner(runner_id):
    for r in control("GET", "/__control/runners"):
        if r["id"] == runner_id:
            return r
    raise AssertionError("runner %d is not on the server" % runner_id)


def add_fault(**fault):
    """Makes the server misbehave on its next request(s) to `endpoint` (see glr-testserver)."""
    control("POST", "/__control/faults", fault)


def unique_tag():
    return "t" + uuid.uuid4().hex[:12]


def script_steps(script, after_script=None):
    steps = [{"name": "script", "script": script, "timeout": 3600, "when": "on_success", "allow_failure": False}]
    if after_script is not None:
        steps.append(
            {"name": "after_script", "script": after_script, "timeout": 3600, "when": "always", "allow_failure": True}
        )
    return steps


class ServerTestCase(unittest.TestCase):
    def setUp(self):
        if not URL or not REGISTRATION_TOKEN:
            self.fail("GLR_TEST_URL and GLR_TEST_REGISTRATION_TOKEN must name a running glr-testserver")
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def new_runner(self, **kwargs):
        """A registered runner with its own tag (so only its tests' jobs go to it)."""
        tag = unique_tag()
        tags = kwargs.pop("tags", []) + [tag]
        runner = Runner.register(URL, REGISTRATION_TOKEN, tags=tags, **kwargs)
        self.addCleanup(runner.close)
        return runner, tag

    def take_job(self, runner, tag, overrides=None, cleanup=True):
        """Queues a job for `tag` and takes it with `runner` (closed after the test if `cleanup`)."""
        queued = queue_job(tag, overrides)
        for _ in range(20):
            job = runner.request_job()
            if job is not None:
                if cleanup:
                    self.addCleanup(job.close)
                self.assertEqual(job.id, queued["id"])
                return job
        self.fail("job %d never came" % queued["id"])

    def expect_final(self, job_id, state, checksum=True):
        """The job ended in `state` on the server; with `checksum`, the final update's checksum
        matched the stored log (None: not checked)."""
        EXPECTED_STATES[job_id] = {"state": state, "checksum_matches": checksum}
        record = job_record(job_id)
        self.assertEqual(record["state"], state)
        if checksum is not None and state in ("success", "failed"):
            self.assertEqual(record["checksum_matches"], checksum)


# ---- chapter 1: registering a runner ------------------------------------------------------------


class RegisteringARunner(ServerTestCase):
    def test_register_with_every_option(self):
        runner, tag = self.new_runner(
            description="python bindings \u2014 caf\u00e9",
            active=True,
            locked=True,
            run_untagged=False,
            tags=["python", "bindings"],
            maximum_timeout=3600,
            name="py-runner",
            version="1.2",
            revision="abc",
            platform="linux",
            architecture="amd64",
            executor="custom",
            access_level="ref_protected",
        )
        self.assertIsInstance(runner.id, int)
        self.assertGreater(runner.id, 0)
        self.assertEqual(runner.api_url, URL)
        self.assertTrue(runner.token)
        self.assertEqual(runner.description, "python bindings \u2014 caf\u00e9")
        self.assertIs(runner.locked, True)
        self.assertIs(runner.active, True)
        self.assertIs(runner.run_untagged, False)
        self.assertEqual(runner.maximum_timeout, 3600)
        self.assertEqual(runner.tags, {"python", "bindings", tag})
        self.assertEqual(
            (runner.name, runner.version, runner.revision, runner.platform, runner.architecture, runner.executor),
            ("py-runner", "1.2", "abc", "linux", "amd64", "custom"),
        )
        self.assertEqual(runner.access_level, "ref_protected")
        runner.check_auth()

        stored = server_runner(runner.id)
        self.assertEqual(stored["token"], runner.token)
        self.assertEqual(stored["description"], "python bindings \u2014 caf\u00e9")
        self.assertEqual(sorted(stored["tags"]), sorted(["python", "bindings", tag]))
        self.assertTrue(stored["locked"])
        self.assertFalse(stored["run_untagged"])
        self.assertEqual(stored["maximum_timeout"], 3600)
        self.assertEqual(stored["name"], "py-runner")
        # Documented difference: sent top-level, where GitLab reads it (the package put it in info).
        self.assertEqual(stored["access_level"], "ref_protected")
        self.assertNotIn(runner.token, repr(runner))

    def test_defaults_are_unknown(self):
        runner = Runner.register(URL, REGISTRATION_TOKEN)
        self.addCleanup(runner.close)
        self.assertIsNone(runner.description)
        self.assertIsNone(runner.locked)
        self.assertIsNone(runner.maximum_timeout)
        self.assertEqual(runner.tags, set())  # a set, also when empty

    def test_arguments_are_checked_before_any_request(self):
        before = len(control("GET", "/__control/runners"))
        bad = [
            dict(token=1234),
            dict(description=5),
            dict(active="yes"),
            dict(locked=1),
            dict(run_untagged=None, maximum_timeout="3600"),
            dict(tags="a,b"),
            dict(tags=["a,b"]),
            dict(tags=[1]),
            dict(access_level="everything"),
            dict(name=1.5),
        ]
        for kwargs in bad:
            token = kwargs.pop("token", REGISTRATION_TOKEN)
            with self.assertRaises(ValueError, msg=repr(kwargs)):
                Runner.register(URL, token, **kwargs)
        self.assertEqual(len(control("GET", "/__control/runners")), before, "a rejected registration reached GitLab")

    def test_bad_registration_token_raises_auth_exception(self):
        with self.assertRaises(AuthException) as cm:
            Runner.register(URL, "not-a-registration-token")
        e = cm.exception
        self.assertIsInstance(e, gitlab_runner_api.GitlabRunnerApiError)
        self.assertEqual(e.status, _lib.GLR_ERR_AUTH)
        self.assertEqual(e.function, "glr_runner_register")
        self.assertTrue(e.message)
        self.assertNotIn("not-a-registration-token", str(e))

    def test_unreachable_gitlab_raises_api_exception(self):
        with self.assertRaises(APIExcpetion) as cm:
            Runner.register("http://127.0.0.1:9", REGISTRATION_TOKEN)
        self.assertIsInstance(cm.exception, ConnectionError)

    def test_dump_and_load(self):
        runner, _ = self.new_runner(description="saved", locked=True)
        filename = self.path("my-runner-data.json")
        runner.dump(filename)
        self.assertEqual(stat.S_IMODE(os.stat(filename).st_mode), 0o600, "it holds the token")
        loaded = Runner.load(filename)
        self.addCleanup(loaded.close)
        self.assertEqual(loaded, runner)
        self.assertEqual((loaded.id, loaded.token, loaded.description), (runner.id, runner.token, "saved"))
        loaded.check_auth()
        again = Runner.loads(runner.dumps(), do_auth=True)
        self.addCleanup(again.close)
        self.assertEqual(again, runner)

    def test_set_system_id(self):
        runner, _ = self.new_runner()
        runner.set_system_id("r_0123456789ab")
        self.assertEqual(json.loads(runner.dumps())["system_id"], "r_0123456789ab")
        runner.set_system_id()
        self.assertNotEqual(json.loads(runner.dumps())["system_id"], "r_0123456789ab")
        with self.assertRaises(ValueError):
            runner.set_system_id("not an id")

    def test_loads_the_python_package_format(self):
        runner, _ = self.new_runner(locked=True, maximum_timeout=7200)
        v1 = json.dumps([1, URL, runner.id, runner.token, {"info": {}, "locked": True, "maximum_timeout": 7200}])
        loaded = Runner.loads(v1)
        self.addCleanup(loaded.close)
        self.assertEqual((loaded.id, loaded.token, loaded.locked, loaded.maximum_timeout), (runner.id, runner.token, True, 7200))
        loaded.check_auth()
        # The Python package's constructor: verifies with GitLab.
        constructed = Runner(URL + "/", runner.id, runner.token, {"info": {}})
        self.addCleanup(constructed.close)
        self.assertEqual(constructed.api_url, URL, "the URL is normalised")
        with self.assertRaises(AuthException):
            Runner(URL, runner.id, "wrong-token", {"info": {}})

    def test_unreadable_data_is_a_value_error(self):
        for data in ["[2, \"x\", 1, \"t\", {}]", "{}", "not json", "[1, \"http://x\", 1]"]:
            with self.assertRaises(ValueError, msg=data):
                Runner.loads(data)
        with self.assertRaises(OSError):
            Runner.load(self.path("missing.json"))

    def test_register_runner_command(self):
        filename = self.path("cli-runner.json")
        env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
        cmd = [sys.executable, "-m", "gitlab_runner_api.cli", URL, REGISTRATION_TOKEN, filename]
        out = subprocess.run(cmd + ["--locked", "--maximum-timeout", "7200"], env=env, capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        runner = Runner.load(filename)
        self.addCleanup(runner.close)
        self.assertIs(runner.locked, True)
        self.assertEqual(server_runner(runner.id)["maximum_timeout"], 7200)
        out = subprocess.run(cmd[:-1] + [self.path("runner.txt")], env=env, capture_output=True, text=True)
        self.assertEqual(out.returncode, 2)
        self.assertIn("must end in .json", out.stderr)

    def test_closed_handles(self):
        runner, _ = self.new_runner()
        with Runner.loads(runner.dumps()) as copy:
            self.assertEqual(copy.id, runner.id)
        self.assertTrue(copy.closed)
        with self.assertRaises(ValueError):
            copy.id
        copy.close()  # twice is fine
        self.assertEqual(repr(copy), "Runner(closed)")


# ---- chapter 2: getting jobs ------------------------------------------------------------------


class GettingJobs(ServerTestCase):
    def test_no_job(self):
        runner, _ = self.new_runner()
        runner.check_auth()
        self.assertIsNone(runner.request_job())

    def test_job_properties(self):
        runner, tag = self.new_runner()
        overrides = {
            "job_info": {"name": "build-docs", "stage": "docs"},
            "steps": script_steps(["pwd", "ls", "env"], ["echo bye"]),
            "variables": [
                {"key": "GREETING", "value": "hello \u2713", "public": True, "masked": False},
                {"key": "MY_SECRET", "value": "s3cr3t-value-1234", "public": False, "masked": True},
            ],
        }
        job = self.take_job(runner, tag, overrides)
        record = job_record(job.id)
        payload = record["payload"]
        variables = {v["key"]: v["value"] for v in payload["variables"]}

        self.assertEqual(job.token, record["token"])
        self.assertEqual(job.state, "running")
        self.assertEqual((job.name, job.stage), ("build-docs", "docs"))
        self.assertEqual(job.ref, payload["git_info"]["ref"])
        self.assertIs(job.is_branch, payload["git_info"]["ref_type"] == "branch")
        self.assertEqual(job.repo_url, payload["git_info"]["repo_url"])
        self.assertEqual(job.commit_sha, payload["git_info"]["sha"])
        self.assertEqual(job.username, variables["GITLAB_USER_LOGIN"])
        self.assertEqual(job.project_url, variables["CI_PROJECT_URL"])
        self.assertEqual(job.project_path, variables["CI_PROJECT_PATH"])
        self.assertEqual(job.project_name, variables["CI_PROJECT_NAME"])
        self.assertEqual(job.job_url, variables["CI_JOB_URL"])
        self.assertEqual(job.pipeline_url, variables["CI_PIPELINE_URL"])
        self.assertEqual(job.commit_message, variables["CI_COMMIT_MESSAGE"])
        self.assertIsInstance(job.pipeline_id, str)
        self.assertEqual(job.pipeline_id, variables["CI_PIPELINE_ID"])
        self.assertEqual(job.script, ["pwd", "ls", "env"])
        self.assertEqual(job.after_script, ["echo bye"])
        self.assertEqual(job.payload, payload)
        self.assertEqual(job._job_info, payload)
        self.assertNotIn(job.token, repr(job))

        by_key = {v.key: v for v in job.variables}
        self.assertEqual(by_key["GREETING"].value, "hello \u2713")
        self.assertTrue(by_key["GREETING"].is_public)
        self.assertFalse(by_key["GREETING"].is_masked)
        self.assertTrue(by_key["MY_SECRET"].is_masked)
        self.assertFalse(by_key["MY_SECRET"].is_public)
        self.assertEqual(by_key["GREETING"].bash(), 'export GREETING="hello \u2713"')
        self.assertEqual(repr(by_key["MY_SECRET"]), "EnvVar(key=MY_SECRET)")
        # As the Python package: GitLab's variables in order, then three internal ones.
        keys = [v.key for v in job.variables]
        self.assertEqual(keys[-3:], ["CI_PROJECT_DIR", "CI_SERVER", "CI_DISPOSABLE_ENVIRONMENT"])
        self.assertEqual(keys[: len(keys) - 3], list(dict.fromkeys(v["key"] for v in payload["variables"])))
        self.assertEqual(by_key["CI_PROJECT_DIR"].value, "/builds/" + job.project_path)
        self.assertEqual(by_key["CI_SERVER"].value, "yes")
        # The log starts as the Python package's did.
        self.assertEqual(str(job.log), "Running with gitlab_runner_api %s\n" % gitlab_runner_api.__version__)

    def test_after_script_is_none_without_the_step(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag, {"steps": script_steps(["make"])})
        self.assertEqual(job.script, ["make"])
        self.assertIsNone(job.after_script)

    def test_registry_credential(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        registry = job.payload["credentials"][0]["url"]
        credential = job.get_registry_credential(registry + "/group/image:1.0")
        self.assertEqual(credential["type"], "registry")
        self.assertEqual(credential["url"], registry)
        self.assertEqual(credential["username"], "gitlab-ci-token")
        self.assertEqual(credential["password"], job.token)
        with self.assertRaises(KeyError):
            job.get_registry_credential("docker.io/library/alpine")


# ---- chapter 3: executing jobs ----------------------------------------------------------------


class ExecutingJobs(ServerTestCase):
    def test_success(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        job.log += "Starting job with id %d for branch %s\n" % (job.id, job.ref)
        job.log += "caf\u00e9 \u2713 \U0001F600\n"
        job.log += ""
        job.log += b"raw bytes \xff\n"
        job.log += "All tests ran successfully\n"
        job.set_success()
        self.assertEqual(job.state, "success")
        self.expect_final(job.id, "success")
        record = job_record(job.id)
        self.assertTrue(record["checksum_matches"])
        self.assertIsNone(record["failure_reason"])
        expected = (
            "Running with gitlab_runner_api %s\n" % gitlab_runner_api.__version__
            + "Starting job with id %d for branch main\n" % job.id
            + "caf\u00e9 \u2713 \U0001F600\n"
            + "raw bytes \ufffd\n"
            + "All tests ran successfully\n"
        )
        self.assertEqual(trace(job.id), expected)
        self.assertEqual(str(job.log), expected)
        self.assertTrue(job.log == expected)
        self.assertEqual(len(job.log), len(expected))

        with self.assertRaises(AlreadyFinishedExcpetion):
            job.set_success()
        with self.assertRaises(AlreadyFinishedExcpetion):
            job.set_failed(failure_reasons.ScriptFailure())
        with self.assertRaises(AlreadyFinishedExcpetion):
            job.log += "too late\n"
        self.assertEqual(trace(job.id), expected)

    def test_failed_with_script_failure(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        job.log += "\u001b[31mJob failed!!!\u001b[0m\n"
        job.set_failed(failure_reasons.ScriptFailure(), exit_code=3)
        self.assertEqual(job.state, "failed")
        self.expect_final(job.id, "failed")
        record = job_record(job.id)
        self.assertEqual(record["failure_reason"], "script_failure")
        self.assertEqual(record["exit_code"], 3)
        self.assertTrue(trace(job.id).endswith("\u001b[31mJob failed!!!\u001b[0m\n"))

    def test_failed_default_reason_and_bad_reasons(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        for bad in ["script_failure", 1, failure_reasons.ScriptFailure]:
            with self.assertRaises(ValueError):
                job.set_failed(bad)
        self.assertEqual(job_record(job.id)["state"], "running", "a rejected reason reached GitLab")
        job.set_failed()
        self.expect_final(job.id, "failed")
        self.assertEqual(job_record(job.id)["failure_reason"], "unknown_failure")

    def test_failure_reasons(self):
        expected = {
            "UnknownFailure": "unknown_failure",
            "ScriptFailure": "script_failure",
            "ApiFailure": "api_failure",
            "StuckOrTimeoutFailure": "stuck_or_timeout_failure",
            "RunnerSystemFailure": "runner_system_failure",
            "MissingDependencyFailure": "missing_dependency_failure",
        }
        for name, text in expected.items():
            reason = getattr(failure_reasons, name)()
            self.assertEqual(str(reason), text)
            self.assertEqual(_lib.py_str(_lib.lib.glr_failure_reason_str(reason.code)), text)
        with self.assertRaises(TypeError):
            failure_reasons._FailureReason()
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        job.set_failed(failure_reasons.MissingDependencyFailure())
        self.expect_final(job.id, "failed")
        self.assertEqual(job_record(job.id)["failure_reason"], "missing_dependency_failure")

    def test_log_rules(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        before = str(job.log)
        with self.assertRaises(AttributeError):
            job.log + "x"
        with self.assertRaises(TypeError):
            job.log += 5
        with self.assertRaises(TypeError):
            job.log = "replaced"
        self.assertEqual(str(job.log), before, "a rejected append changed the log")
        job.log += "flushed line\n"
        job.log.flush()
        self.assertEqual(trace(job.id), before + "flushed line\n", "flush() returns once GitLab has the log")
        job.set_success()
        self.expect_final(job.id, "success")

    def test_closing_a_job_uploads_its_log(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag, cleanup=False)
        job_id = job.id
        job.log += "appended just before the job object went away\n"
        del job  # garbage-collected: the text still reaches GitLab, as with the Python package
        self.assertTrue(trace(job_id).endswith("appended just before the job object went away\n"))
        # Nothing pending: closing makes no request.
        again = self.take_job(runner, tag)
        again.log.flush()
        control("DELETE", "/__control/requests")
        again.close()
        self.assertEqual(control("GET", "/__control/requests"), [])

    def test_masked_variables_are_masked_in_the_log(self):
        runner, tag = self.new_runner()
        secret = "hunter2-" + uuid.uuid4().hex
        job = self.take_job(
            runner, tag, {"variables": [{"key": "MY_SECRET", "value": secret, "public": False, "masked": True}]}
        )
        job.log += "the secret is %s\n" % secret
        job.set_success()
        self.expect_final(job.id, "success")
        stored = trace(job.id)
        self.assertNotIn(secret, stored)
        self.assertIn("the secret is [MASKED]", stored)

    def test_auth_and_hard_cancel(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        job.auth()
        self.assertEqual(job.state, "running")
        control("POST", "/__control/jobs/%d/cancel" % job.id, {"graceful": False})
        with self.assertRaises(JobCancelledException):
            job.auth()
        self.assertEqual(job.state, "canceled")
        with self.assertRaises(JobCancelledException):
            job.set_success()
        self.expect_final(job.id, "canceled")

    def test_graceful_cancel(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        control("POST", "/__control/jobs/%d/cancel" % job.id, {"graceful": True})
        job.auth()  # not an error: GitLab asks the job to stop
        self.assertEqual(job.state, "canceling")
        job.log += "Running after_script\n"
        job.set_failed()
        self.expect_final(job.id, "canceled")
        self.assertIn("Running after_script\n", trace(job.id))

    def test_artifacts(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        archive = self.path("artifacts.zip")
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("build/result.txt", "42\n")
        with self.assertRaises(TypeError):
            job.set_success(artifacts=[archive])
        artifacts = Artifacts().add_file(archive, "artifacts.zip", expire_in="1 week")
        self.addCleanup(artifacts.close)
        self.assertEqual(len(artifacts), 1)
        job.set_success(artifacts)
        self.expect_final(job.id, "success")
        stored = job_record(job.id)["artifacts"]
        self.assertEqual(len(stored), 1, stored)
        self.assertEqual(stored[0]["filename"], "artifacts.zip")
        self.assertEqual(stored[0]["expire_in"], "1 week")
        with zipfile.ZipFile(io.BytesIO(base64.b64decode(stored[0]["data_base64"]))) as z:
            self.assertEqual(z.read("build/result.txt"), b"42\n")


# ---- chapter 4: persisting jobs ---------------------------------------------------------------


class PersistingJobs(ServerTestCase):
    def test_dumps_then_loads_in_another_process(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        job.log += "line from process A\n"
        job_data = job.dumps()
        job_id = job.id
        job.close()

        # The documentation's chapter 4, in a fresh interpreter.
        code = (
            "import sys\n"
            "from gitlab_runner_api import Job\n"
            "job = Job.loads(sys.stdin.read())\n"
            "job.log += 'line from process B\\n'\n"
            "job.set_success()\n"
            "print(job.id, job.state)\n"
        )
        env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
        out = subprocess.run(
            [sys.executable, "-c", code], input=job_data, env=env, capture_output=True, text=True, timeout=120
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.split(), [str(job_id), "success"])
        self.expect_final(job_id, "success")
        stored = trace(job_id)
        for line in ["line from process A\n", "line from process B\n"]:
            self.assertEqual(stored.count(line), 1, stored)
        self.assertLess(stored.index("process A"), stored.index("process B"))
        self.assertTrue(job_record(job_id)["checksum_matches"])

    def test_dump_and_load_a_file(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        filename = self.path("job.json")
        job.dump(filename)
        self.assertEqual(stat.S_IMODE(os.stat(filename).st_mode), 0o600, "it holds tokens")
        loaded = Job.load(filename)
        self.addCleanup(loaded.close)
        self.assertEqual(loaded, job)
        self.assertEqual((loaded.id, loaded.token, loaded.state), (job.id, job.token, "running"))
        loaded.log += "from the loaded job\n"
        loaded.set_success()
        self.expect_final(job.id, "success")
        self.assertTrue(trace(job.id).endswith("from the loaded job\n"))

    def test_loading_twice_keeps_both_logs(self):
        # Documented difference: the Python package loses lines here; this library keeps them.
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        data = job.dumps()
        first, second = Job.loads(data), Job.loads(data)
        self.addCleanup(first.close)
        self.addCleanup(second.close)
        first.log += "from the first copy\n"
        first.log.flush()
        second.log += "from the second copy\n"
        second.set_success()
        # The finishing copy's checksum covers the bytes it sent, not the other copy's.
        self.expect_final(job.id, "success", checksum=None)
        stored = trace(job.id)
        self.assertEqual(stored.count("from the first copy\n"), 1, stored)
        self.assertEqual(stored.count("from the second copy\n"), 1, stored)

    def test_loads_the_python_package_format(self):
        runner, tag = self.new_runner(locked=True)
        job = self.take_job(runner, tag)
        job.log.flush()  # GitLab has the log, as the Python package assumed of a saved one
        runner_v1 = json.dumps([1, URL, runner.id, runner.token, {"info": {}, "locked": True}])
        job_v1 = json.dumps([1, runner_v1, job.payload, "running", str(job.log)])
        job_id = job.id
        job.close()
        loaded = Job.loads(job_v1)
        self.addCleanup(loaded.close)
        self.assertEqual((loaded.id, loaded.state), (job_id, "running"))
        loaded.log += "after loading a v1 job\n"
        loaded.set_success()
        self.expect_final(job_id, "success")
        stored = trace(job_id)
        self.assertEqual(stored.count("Running with gitlab_runner_api"), 1, stored)
        self.assertTrue(stored.endswith("after loading a v1 job\n"), stored)
        self.assertTrue(job_record(job_id)["checksum_matches"])

    def test_job_constructor(self):
        runner, tag = self.new_runner()
        # As in the Python package: Job(runner, job_info) is offline; without `log` the log is new.
        taken = self.take_job(runner, tag)
        fresh = Job(runner, taken.payload)
        self.addCleanup(fresh.close)
        self.assertEqual((fresh.id, fresh.state), (taken.id, "running"))
        self.assertEqual(str(fresh.log), "Running with gitlab_runner_api %s\n" % gitlab_runner_api.__version__)
        with self.assertRaises(ValueError):
            Job(runner, taken.payload, state="canceled")

        # With `log`, the text GitLab already has: the log continues after it.
        job = self.take_job(runner, tag)
        job.log += "from the taken job\n"
        job.log.flush()
        payload, text, job_id = job.payload, str(job.log), job.id
        job.close()
        rebuilt = Job(runner, payload, log=text)
        self.addCleanup(rebuilt.close)
        rebuilt.log += "from a rebuilt job\n"
        rebuilt.set_success()
        self.expect_final(job_id, "success")
        self.assertEqual(trace(job_id), text + "from a rebuilt job\n")

    def test_unreadable_job_data(self):
        for data in ["[1, \"not a runner\", {}, \"running\", \"\"]", "{\"format\": \"x\"}", ""]:
            with self.assertRaises(ValueError, msg=data):
                Job.loads(data)


# ---- one writer per job (not in the Python package) -------------------------------------------


class OneWriterPerJob(ServerTestCase):
    def assert_lines_once(self, job_id, lines):
        stored = trace(job_id)
        for line in lines:
            self.assertEqual(stored.count(line), 1, stored)
        self.assertEqual(stored.count("Running with gitlab_runner_api"), 1, stored)
        self.assertTrue(stored.endswith(lines[-1]), stored)
        self.assertNotIn("refused", stored, "a watcher's text reached GitLab")

    def test_hand_over_then_load_in_another_process(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        job.log += "line from the first owner\n"
        self.assertFalse(job.is_watcher)
        job_data = job.hand_over_dumps()
        job_id = job.id
        self.assertTrue(job.is_watcher)
        # A watcher refuses log text, but still reads the log as it was and keeps the job alive.
        with self.assertRaises(NotOwnerError) as cm:
            job.log += "refused\n"
        self.assertEqual((cm.exception.status, cm.exception.function), (_lib.GLR_ERR_NOT_OWNER, "glr_job_log_append"))
        for refused in (job.log.flush, job.dumps, job.hand_over_dumps):
            with self.assertRaises(NotOwnerError):
                refused()
        self.assertTrue(str(job.log).endswith("line from the first owner\n"))
        job.auth()
        self.assertEqual(job.state, "running")

        code = (
            "import sys\n"
            "from gitlab_runner_api import Job\n"
            "job = Job.loads(sys.stdin.read())\n"
            "assert not job.is_watcher\n"
            "job.log += 'line from the new owner\\n'\n"
            "job.set_success()\n"
            "print(job.id, job.state)\n"
        )
        env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
        out = subprocess.run(
            [sys.executable, "-c", code], input=job_data, env=env, capture_output=True, text=True, timeout=120
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.split(), [str(job_id), "success"])
        self.expect_final(job_id, "success")
        self.assert_lines_once(job_id, ["line from the first owner\n", "line from the new owner\n"])
        self.assertTrue(job_record(job_id)["checksum_matches"])

    def test_hand_over_through_a_file(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        job.log += "before the hand-over\n"
        with self.assertRaises(OSError):
            job.hand_over_dump(self.path("missing/job.json"))
        self.assertFalse(job.is_watcher, "a failed hand-over keeps the owner")
        filename = self.path("job.json")
        job.hand_over_dump(filename)
        self.assertTrue(job.is_watcher)
        self.assertEqual(stat.S_IMODE(os.stat(filename).st_mode), 0o600, "it holds tokens")
        watcher = Job.watch_load(filename)
        self.addCleanup(watcher.close)
        self.assertTrue(watcher.is_watcher)
        self.assertEqual(watcher.id, job.id)
        owner = Job.load(filename)
        self.addCleanup(owner.close)
        self.assertFalse(owner.is_watcher)
        owner.log += "after the hand-over\n"
        with self.assertRaises(NotOwnerError):
            watcher.log += "refused\n"
        owner.set_failed(failure_reasons.ScriptFailure(), exit_code=2)
        self.expect_final(job.id, "failed")
        self.assertEqual(job_record(job.id)["exit_code"], 2)
        self.assert_lines_once(job.id, ["before the hand-over\n", "after the hand-over\n"])
        for data in ["not json", "{}"]:
            with self.assertRaises(ValueError):
                Job.watch_loads(data)
        with self.assertRaises(OSError):
            Job.watch_load(self.path("missing.json"))

    def test_a_watcher_keeps_the_job_alive_and_learns_a_cancel(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        for bad, error in [(0, ValueError), (2701, ValueError), (1.5, ValueError), ("1", TypeError), (True, TypeError)]:
            with self.assertRaises(error, msg=repr(bad)):
                job.set_keepalive_interval(bad)
        owner = Job.loads(job.hand_over_dumps())
        self.addCleanup(owner.close)
        job.set_keepalive_interval(1)
        updates = job_record(job.id)["updates"]
        control("POST", "/__control/jobs/%d/cancel" % job.id, {"graceful": True})
        # Nothing is called on the watcher: its keep-alive, every second, learns the cancel.
        deadline = time.monotonic() + 10
        while job.state != "canceling" and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(job.state, "canceling")
        self.assertGreater(job_record(job.id)["updates"], updates)
        owner.log += "Running after_script\n"
        owner.set_failed()
        self.expect_final(job.id, "canceled")
        self.assertIn("Running after_script\n", trace(job.id))

    def test_interrupt_a_request_in_another_thread(self):
        runner, _ = self.new_runner()  # no job is queued for its tag
        settings = control("GET", "/__control/settings")
        self.addCleanup(control, "PATCH", "/__control/settings", {"long_poll_timeout_ms": settings["long_poll_timeout_ms"]})
        control("PATCH", "/__control/settings", {"long_poll_timeout_ms": 5000})
        calls, outcome = [], []

        def poll():
            deadline = time.monotonic() + 30
            try:
                while time.monotonic() < deadline:
                    calls.append(time.monotonic())
                    if runner.request_job() is not None:
                        outcome.append("a job")
                        return
                outcome.append("not interrupted")
            except Exception as e:
                outcome.append(e)

        poller = threading.Thread(target=poll)
        poller.start()
        # The first request learns the queue's state; the second waits in the long poll.
        deadline = time.monotonic() + 10
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        sent = time.monotonic()
        runner.interrupt()
        poller.join(10)
        took = time.monotonic() - sent
        self.assertFalse(poller.is_alive(), "request_job was not interrupted")
        self.assertEqual(len(outcome), 1)
        self.assertIsInstance(outcome[0], CallInterruptedError)
        self.assertIsInstance(outcome[0], InterruptedError)
        self.assertEqual(outcome[0].function, "glr_runner_request_job")
        self.assertLess(took, 1.0)
        self.assertGreaterEqual(len(calls), 2)

        # The next call is not interrupted: it waits, into the runner's call timeout.
        runner.set_call_timeout(0.3)
        started = time.monotonic()
        with self.assertRaises(CallTimeoutError) as cm:
            for _ in range(3):
                runner.request_job()
        self.assertIsInstance(cm.exception, TimeoutError)
        self.assertLess(time.monotonic() - started, 3.0)
        runner.set_call_timeout(None)
        with self.assertRaises(ValueError):
            runner.set_call_timeout(-1)
        with self.assertRaises(TypeError):
            runner.set_call_timeout("1")

    def test_a_job_call_timeout(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        job.log.flush()
        job.set_call_timeout(0.3)
        add_fault(endpoint="trace", kind="delay", delay_ms=2000)
        job.log += "sent while GitLab is slow\n"
        started = time.monotonic()
        with self.assertRaises(CallTimeoutError) as cm:
            job.log.flush()
        self.assertLess(time.monotonic() - started, 1.5)
        self.assertEqual(cm.exception.function, "glr_job_log_flush")
        for bad, error in [(-0.5, ValueError), (float("nan"), ValueError), ("1", TypeError)]:
            with self.assertRaises(error, msg=repr(bad)):
                job.set_call_timeout(bad)
        job.set_call_timeout(None)
        job.set_success()  # the text is not lost, and not sent twice
        self.expect_final(job.id, "success")
        self.assertEqual(trace(job.id).count("sent while GitLab is slow\n"), 1)

    def test_shutdown(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        job.log += "acknowledged before shutdown returns\n"
        self.assertIs(gitlab_runner_api.shutdown(timeout=30), True)
        self.assertTrue(trace(job.id).endswith("acknowledged before shutdown returns\n"))

        add_fault(endpoint="trace", kind="delay", delay_ms=2000)
        job.log += "not acknowledged in time\n"
        with self.assertRaises(CallTimeoutError) as cm:
            gitlab_runner_api.shutdown(timeout=0.3)
        self.assertIn("job %d: " % job.id, cm.exception.message)
        self.assertIn(" bytes not acknowledged", cm.exception.message)
        self.assertEqual(cm.exception.function, "glr_shutdown")
        with self.assertRaises(ValueError):
            gitlab_runner_api.shutdown(timeout=-1)
        with self.assertRaises(TypeError):
            gitlab_runner_api.shutdown(timeout=None)
        job.set_success()  # the library stays usable
        self.expect_final(job.id, "success")
        self.assertEqual(trace(job.id).count("not acknowledged in time\n"), 1)


# ---- GitLab's clocks and the runner's token (not in the Python package) ---------------------------


class GitLabsClocks(ServerTestCase):
    def test_timeout_deadline_and_acknowledged(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag, {"runner_info": {"timeout": 1800}})
        self.assertEqual(job.timeout, 1800)
        self.assertIsInstance(job.deadline, int)
        self.assertLessEqual(abs(job.deadline - (time.time() + 1800)), 60)
        self.assertIs(job.acknowledged, True, "request_job acknowledges at once")
        copy = Job.loads(job.dumps())
        self.addCleanup(copy.close)
        self.assertEqual((copy.timeout, copy.deadline), (job.timeout, job.deadline), "saved in dumps")

        # GitLab refuses the acknowledgement twice (a status not retried at once): not
        # acknowledged, until the background's next tries.
        add_fault(endpoint="job_update", kind="status", code=501, count=2)
        late = self.take_job(runner, tag)
        self.assertIs(late.acknowledged, False)
        deadline = time.monotonic() + 10
        while not late.acknowledged and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIs(late.acknowledged, True)
        self.assertEqual(job_record(late.id)["state"], "running")
        for finished in (job, late):
            finished.set_success()
            self.expect_final(finished.id, "success")

    def test_no_timeout_from_gitlab(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag, {"runner_info": {"timeout": None}})
        self.assertIsNone(job.timeout)
        self.assertIsNone(job.deadline)

    def test_reset_token(self):
        runner, _ = self.new_runner()
        filename = self.path("runner.json")
        runner.dump(filename)
        loaded = Runner.load(filename)
        self.addCleanup(loaded.close)
        old = loaded.token
        loaded.reset_token()
        # Compared without assertEqual, whose failure message would show the tokens.
        self.assertTrue(loaded.token != old, "the token did not change")
        stored = server_runner(loaded.id)
        self.assertTrue(stored["token"] == loaded.token, "GitLab has another token")
        self.assertEqual(stored["token_resets"], 1)
        again = Runner.load(filename)
        self.addCleanup(again.close)
        self.assertTrue(again.token == loaded.token, "a loaded runner writes the new token to its file")
        again.check_auth()
        # A runner not backed by the file keeps the old token, which GitLab no longer takes.
        with self.assertRaises(AuthException) as cm:
            runner.check_auth()
        self.assertNotIn(old, str(cm.exception))
        with self.assertRaises(AuthException):
            runner.reset_token()

    def test_set_label(self):
        runner, tag = self.new_runner()
        runner.set_label("region", "eu-west.1")
        runner.set_label("rack_no", "42")
        self.assertIsNone(runner.request_job())

        def labels():
            managers = server_runner(runner.id)["managers"]
            self.assertEqual(len(managers), 1, managers)
            return managers[0]["info"].get("labels")

        self.assertEqual(labels(), {"region": "eu-west.1", "rack_no": "42"})
        copy = Runner.loads(runner.dumps())
        self.addCleanup(copy.close)
        copy.set_label("rack_no", None)
        self.assertIsNone(copy.request_job())
        self.assertEqual(labels(), {"region": "eu-west.1"}, "kept by dumps, removed with None")
        for key, value in [("ab", "x"), ("-key", "x"), ("key", ""), ("key", "a b"), ("k" * 66, "x")]:
            with self.assertRaises(ValueError, msg=(key, value)):
                runner.set_label(key, value)
        with self.assertRaises(TypeError):
            runner.set_label("key", 5)


# ---- learning state changes without callbacks (not in the Python package) ----------------------


class LearningStateChanges(ServerTestCase):
    def cancel_later(self, job_id, seconds, graceful=True):
        timer = threading.Timer(seconds, control, ("POST", "/__control/jobs/%d/cancel" % job_id, {"graceful": graceful}))
        timer.start()
        self.addCleanup(timer.cancel)

    def test_wait_state(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        self.assertEqual(job.wait_state("running", 0), "running")
        started = time.monotonic()
        self.assertEqual(job.wait_state("running", 0.2), "running", "the time ran out")
        self.assertGreaterEqual(time.monotonic() - started, 0.15)
        self.assertEqual(job.wait_state("success", 0), "running", "differs from `known` at once")
        for bad, error in [("bogus", ValueError), (0, ValueError)]:
            with self.assertRaises(error):
                job.wait_state(bad)
        with self.assertRaises(ValueError):
            job.wait_state("running", -1)
        with self.assertRaises(TypeError):
            job.wait_state("running", "1")

        job.set_keepalive_interval(1)  # the keep-alive learns the cancel
        self.cancel_later(job.id, 0.3)
        started = time.monotonic()
        self.assertEqual(job.wait_state("running", 15), "canceling")
        self.assertLess(time.monotonic() - started, 10)
        job.log += "Running after_script\n"
        job.set_failed()
        self.expect_final(job.id, "canceled")

    def test_event_fd_in_asyncio(self):
        runner, tag = self.new_runner()
        job = self.take_job(runner, tag)
        job.set_keepalive_interval(1)
        fd = job.event_fd()
        self.assertEqual(job.event_fd(), fd, "the same descriptor every time")
        os.fstat(fd)
        calls = []

        async def main():
            # The pattern of Job.event_fd()'s documentation.
            loop = asyncio.get_running_loop()
            changed = asyncio.Event()

            def on_change():
                os.read(fd, 8)
                calls.append(job.state)
                changed.set()

            loop.add_reader(fd, on_change)
            try:
                self.cancel_later(job.id, 0.2)
                await asyncio.wait_for(changed.wait(), 15)
                changed.clear()
                self.assertEqual(job.state, "canceling")
                job.log += "Running after_script\n"
                await loop.run_in_executor(None, job.set_failed)
                await asyncio.wait_for(changed.wait(), 15)  # the end is a change too
                await asyncio.sleep(0.2)  # a reader never reset would be called again meanwhile
            finally:
                loop.remove_reader(fd)

        asyncio.run(main())
        self.assertEqual(calls[0], "canceling")
        self.assertEqual(calls[-1], job.state)
        self.assertIn(job.state, ("canceled", "failed"))
        self.assertLessEqual(len(calls), 3, calls)
        self.expect_final(job.id, "canceled")

    def test_set_log_fd(self):
        read_end, write_end = os.pipe()
        self.addCleanup(os.close, read_end)
        self.addCleanup(os.close, write_end)
        self.addCleanup(gitlab_runner_api.set_log_fd, None)  # before the descriptor is closed
        os.set_blocking(read_end, False)

        def lines(wait):
            data, deadline = b"", time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    chunk = os.read(read_end, 65536)
                except BlockingIOError:
                    chunk = b""
                data += chunk
                if not chunk:
                    if data.endswith(b"\n") and wait > 0.5:
                        break
                    time.sleep(0.02)
            return data.decode("utf-8").splitlines()

        gitlab_runner_api.set_log_fd(write_end, "info")
        runner = Runner.register(URL, REGISTRATION_TOKEN)
        self.addCleanup(runner.close)
        got = lines(5)
        self.assertIn("gitlab_runner_api: info: registered runner %d at %s" % (runner.id, URL), got)
        self.assertTrue(all(line.startswith("gitlab_runner_api: ") for line in got), got)
        self.assertFalse(runner.token in "\n".join(got), "a log line holds the token")

        gitlab_runner_api.set_log_fd(write_end, "error")  # info is below it
        other = Runner.register(URL, REGISTRATION_TOKEN)
        self.addCleanup(other.close)
        gitlab_runner_api.set_log_fd(None)
        Runner.register(URL, REGISTRATION_TOKEN).close()
        self.assertEqual([line for line in lines(0.5) if "registered runner" in line], [])
        for fd, level, error in [(write_end, "loud", ValueError), ("3", "info", TypeError), (-5, "info", ValueError)]:
            with self.assertRaises(error, msg=(fd, level)):
                gitlab_runner_api.set_log_fd(fd, level)

    def test_per_handle_error_messages(self):
        runner, tag = self.new_runner()
        jobs = [self.take_job(runner, tag) for _ in range(2)]
        for job in jobs:
            self.assertEqual(job.last_error_message, "")
        errors = {}

        def fail(job):
            try:
                job.dump(self.path("missing-%d/job.json" % job.id))
            except OSError as e:
                errors[job.id] = e

        threads = [threading.Thread(target=fail, args=(job,)) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        # Each exception has its own job's message, and the job keeps it for any thread to read.
        for job in jobs:
            e = errors[job.id]
            self.assertEqual(e.function, "glr_job_dump")
            self.assertTrue(e.message)
            self.assertEqual(job.last_error_message, e.message)
        self.assertNotEqual(errors[jobs[0].id].message, errors[jobs[1].id].message)
        self.assertEqual(_lib.last_error_message(), "", "this thread made no failing call")

        # The message is the failing call's, as the thread's own slot says (never an older one).
        failing = [
            (jobs[0], lambda: jobs[0].download_artifacts(7, self.path("artifacts.zip"))),
            (jobs[0], lambda: jobs[0].hand_over_dump(self.path("missing/job.json"))),
            (runner, lambda: runner.set_label("-bad", "x")),
            (runner, lambda: runner.dump(self.path("missing/runner.json"))),
        ]
        for handle, action in failing:
            with self.assertRaises(gitlab_runner_api.GitlabRunnerApiError) as cm:
                action()
            self.assertEqual(cm.exception.message, _lib.last_error_message())
            self.assertEqual(handle.last_error_message, cm.exception.message)
        self.assertEqual(runner.last_error_message, cm.exception.message)
        for job in jobs:
            job.set_success()
            self.expect_final(job.id, "success")


# ---- the module itself ------------------------------------------------------------------------


class Module(unittest.TestCase):
    def test_every_c_function_is_declared(self):
        header = os.path.join(HERE, os.pardir, os.pardir, os.pardir, "include", "gitlab_runner_api.h")
        with open(header) as f:
            text = f.read()
        import re

        declared = set(re.findall(r"^[a-z].*?\b(glr_[a-z0-9_]+)\(", text, re.M))
        self.assertGreater(len(declared), 100)
        self.assertEqual(sorted(declared - set(_lib.SIGNATURES)), [])

    def test_package_names(self):
        for name in gitlab_runner_api.__all__:
            self.assertTrue(hasattr(gitlab_runner_api, name), name)
        for name in ["AlreadyFinishedExcpetion", "APIExcpetion", "AuthException", "JobCancelledException",
                     "ImagePullException", "JobTimeoutException"]:
            self.assertTrue(issubclass(getattr(exceptions, name), Exception), name)
        # Every status has its exception class, and the new ones are built-in exceptions too.
        for status, cls, builtin in [
            (_lib.GLR_ERR_NOT_OWNER, NotOwnerError, Exception),
            (_lib.GLR_ERR_TIMEOUT, CallTimeoutError, TimeoutError),
            (_lib.GLR_ERR_INTERRUPTED, CallInterruptedError, InterruptedError),
        ]:
            e = _lib.error(status, "glr_x")
            self.assertIs(type(e), cls)
            self.assertIsInstance(e, builtin)
            self.assertIsInstance(e, gitlab_runner_api.GitlabRunnerApiError)
        self.assertEqual(gitlab_runner_api.ABI_VERSION, _lib.lib.glr_abi_version())
        from gitlab_runner_api.job import EnvVar
        from gitlab_runner_api.utils import Retrier, ansi

        self.assertEqual(ansi.BOLD_RED, "\033[31;1m")
        with self.assertRaises(ValueError):
            EnvVar("bad key")
        calls = []

        def flaky():
            calls.append(1)
            raise KeyError("x")

        with self.assertLogs("gitlab_runner_api", "WARNING") as logs, self.assertRaises(RuntimeError):
            Retrier(flaky, KeyError, RuntimeError("gave up"), n_retries=2, wait_seconds=0)()
        self.assertEqual(len(calls), 2)
        self.assertIn("on retry 2 of 2", logs.output[-1])

    def test_library_checks(self):
        # The dlopen user's checks: a missing library, a library that is not this one, another ABI.
        with self.assertRaises(ImportError) as cm:
            _lib.load_library(self_path("no-such-library.so"))
        self.assertIn("no such file", str(cm.exception))
        libc = _find_libc()
        with self.assertRaises(ImportError) as cm:
            _lib.load_library(libc)
        self.assertIn("no glr_abi_version", str(cm.exception))
        with self.assertRaises(ImportError) as cm:
            _lib.load_library(_lib.path, expected_abi=_lib.ABI_VERSION + 1)
        self.assertIn("ABI version %d, this module needs %d" % (_lib.ABI_VERSION, _lib.ABI_VERSION + 1), str(cm.exception))
        env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE), GITLAB_RUNNER_API_LIB=self_path("missing.so"))
        out = subprocess.run([sys.executable, "-c", "import gitlab_runner_api"], env=env, capture_output=True, text=True)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("ImportError: cannot load libgitlab_runner_api", out.stderr)

    def test_strings_in(self):
        with self.assertRaises(ValueError):
            Runner.loads("[1, \"http://x\", 1, \"t\0\", {}]")
        with self.assertRaises(TypeError):
            Runner.loads(42)


def self_path(name):
    return os.path.join(tempfile.gettempdir(), "glr-%s-%s" % (uuid.uuid4().hex, name))


def _find_libc():
    import ctypes.util

    return ctypes.util.find_library("c") or "libc.so.6"


def tearDownModule():
    summary = os.environ.get("GLR_TEST_SUMMARY")
    if summary:
        with open(summary, "w") as f:
            json.dump({str(k): v for k, v in EXPECTED_STATES.items()}, f, indent=1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
