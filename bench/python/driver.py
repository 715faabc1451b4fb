"""The Python side of the benchmark harness: the same scenarios as `bench/src/ours.rs`, done with
the Python package gitlab-runner-api 1.0.4 against the same test server process.

Run by the harness as `venv/bin/python driver.py MODE JSON_ARGS`; prints `RESULT <json>` last.
The package is used as shipped (its default INFO logging goes to stderr, which the harness
discards). Its `job.log += text` PATCHes synchronously; against current GitLab (and the test
server) every append after the first gets 416, and its PUT-`trace` fallback is answered 400
(current GitLab requires `state`), which the package raises as NotImplementedError: each append
is wrapped in try/except, counted, and the run goes on, as a caller who wants to finish the job
would do.
"""

import json
import os
import sys
import threading
import time

import requests

import gitlab_runner_api
from gitlab_runner_api import Job, Runner


LETTERS = "abcdefghijklmnopqrstuvwxyz" * 40


def line(i, length):
    """Line i of `length` bytes, as bench/src/content.rs `line`."""
    head = "%08d " % (i % 100000000)
    return head + LETTERS[:length - 1 - len(head)] + "\n"


def stream(total):
    """The first `total` bytes of the stream of 100-byte lines (content.rs `stream`)."""
    out, size, i = [], 0, 0
    while size < total:
        l = line(i, 100)
        out.append(l)
        size += len(l)
        i += 1
    return "".join(out)[:total]


def job_lines(job_id, lines, length):
    prefix = "job %d " % job_id
    return [prefix + line(i, max(length - len(prefix), 10)) for i in range(lines)]


def status_kib(field):
    with open("/proc/self/status") as f:
        for l in f:
            if l.startswith(field + ":"):
                return int(l.split()[1])
    return 0


class Appender:
    """`job.log += text`, counting the exceptions the package raises."""

    def __init__(self):
        self.errors = {}

    def append(self, job, text):
        try:
            job.log += text
        except Exception as e:  # the package raises NotImplementedError, KeyError, ...
            name = type(e).__name__
            self.errors[name] = self.errors.get(name, 0) + 1


def take_job(runner):
    for _ in range(50):
        job = runner.request_job()
        if job is not None:
            return job
    raise RuntimeError("no job received after 50 requests")


def e2e(a):
    lines = [line(i, 100) for i in range(a["appends"])]
    secs, jobs, app = [], [], Appender()
    for _ in range(a["runs"]):
        t = time.perf_counter()
        runner = Runner.register(a["url"], a["reg"])
        job = take_job(runner)
        for l in lines:
            app.append(job, l)
        job.set_success()
        secs.append(time.perf_counter() - t)
        jobs.append(job.id)
    return {"secs": secs, "jobs": jobs, "append_errors": app.errors}


def percentiles(samples, ps):
    s = sorted(samples)
    out = []
    for p in ps:
        rank = int(-(-p / 100.0 * len(s) // 1))  # ceil
        out.append(s[min(max(rank, 1), len(s)) - 1])
    return out


def latency(a):
    lines = [line(i, 100) for i in range(a["appends"])]
    runner = Runner.register(a["url"], a["reg"])
    out, app = [], Appender()
    for _ in range(a["runs"]):
        job = take_job(runner)
        samples = []
        for l in lines:
            t = time.perf_counter_ns()
            app.append(job, l)
            samples.append(time.perf_counter_ns() - t)
        job.set_success()
        p50, p99, mx = percentiles(samples, [50, 99, 100])
        out.append({"job": job.id, "p50_ns": p50, "p99_ns": p99, "max_ns": mx})
    return {"runs": out, "append_errors": app.errors}


def dumpsloads(a):
    runner = Runner.register(a["url"], a["reg"])
    job = take_job(runner)
    app = Appender()
    app.append(job, stream(a["log_bytes"]))  # one append: the first PATCH is accepted
    dump = job.dumps()
    dumps, loads = [], []
    for _ in range(a["runs"]):
        t = time.perf_counter()
        for _ in range(a["iters"]):
            job.dumps()
        dumps.append(a["iters"] / (time.perf_counter() - t))
        t = time.perf_counter()
        for _ in range(a["iters"]):
            Job.loads(dump)  # verifies the runner over the network, as the package always does
        loads.append(a["iters"] / (time.perf_counter() - t))
    job.set_success()
    return {"dumps_per_s": dumps, "loads_per_s": loads, "dump_bytes": len(dump.encode()), "job": job.id,
            "append_errors": app.errors}


def hold(a):
    baseline = status_kib("VmRSS")
    runner = Runner.register(a["url"], a["reg"])
    jobs = [take_job(runner) for _ in range(a["n"])]
    return {"n": len(jobs), "baseline_kib": baseline, "rss_kib": status_kib("VmRSS"),
            "hwm_kib": status_kib("VmHWM"), "threads": len(os.listdir("/proc/self/task"))}


def rtt(a):
    runner = Runner.register(a["url"], a["reg"])
    endpoint = a["url"] + "/api/v4/jobs/request"
    body = {"token": runner.token, "info": runner._info}  # what request_job sends
    for _ in range(10):
        if runner.request_job() is not None:
            raise RuntimeError("a job was queued; this scenario needs an empty queue")
        requests.post(endpoint, json=body)
    pkg, raw = [], []
    n = a["n"]
    for _ in range(a["runs"]):
        t = time.perf_counter()
        for _ in range(n):
            runner.request_job()
        pkg.append(n / (time.perf_counter() - t))
        t = time.perf_counter()
        for _ in range(n):
            r = requests.post(endpoint, json=body)
            if r.status_code != 204:
                raise RuntimeError("raw request: %d" % r.status_code)
        raw.append(n / (time.perf_counter() - t))
    return {"package_per_s": pkg, "raw_per_s": raw}


def logsize(a):
    text = stream(a["bytes"])
    chunk = a["chunk"]
    runner = Runner.register(a["url"], a["reg"])
    job = take_job(runner)
    before = status_kib("VmRSS")
    app = Appender()
    t = time.perf_counter()
    for k in range(0, len(text), chunk):
        app.append(job, text[k:k + chunk])
    job.set_success()
    secs = time.perf_counter() - t
    return {"secs": secs, "job": job.id, "before_kib": before, "hwm_kib": status_kib("VmHWM"),
            "append_errors": app.errors}


def concurrent(a):
    n, threads, appends = a["jobs"], a["threads"], a["appends"]
    baseline = status_kib("VmRSS")
    runner = Runner.register(a["url"], a["reg"])
    lines = [line(i, 100) for i in range(appends)]
    ids, errors, failures = [], [], []
    lock = threading.Lock()

    def work(share):
        try:
            app = Appender()
            jobs = [take_job(runner) for _ in range(share)]
            for l in lines:
                for j in jobs:
                    app.append(j, l)
            for j in jobs:
                j.set_success()
            with lock:
                ids.extend(j.id for j in jobs)
                errors.append(app.errors)
        except Exception as e:
            with lock:
                failures.append(repr(e))

    t = time.perf_counter()
    ts = [threading.Thread(target=work, args=(n // threads + (1 if k < n % threads else 0),))
          for k in range(threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    secs = time.perf_counter() - t
    merged = {}
    for e in errors:
        for k, v in e.items():
            merged[k] = merged.get(k, 0) + v
    if failures:
        raise RuntimeError("; ".join(failures[:3]))
    return {"secs": secs, "jobs": ids, "baseline_kib": baseline, "hwm_kib": status_kib("VmHWM"),
            "append_errors": merged}


def worker(a):
    runner = Runner.register(a["url"], a["reg"])
    t = time.perf_counter()
    taken, app = [], Appender()
    while True:
        job = runner.request_job()
        if job is None:
            break
        for l in job_lines(job.id, a["lines"], a["line_len"]):
            app.append(job, l)
        job.set_success()
        taken.append(job.id)
    return {"jobs": taken, "secs": time.perf_counter() - t, "append_errors": app.errors}


MODES = {"e2e": e2e, "latency": latency, "dumpsloads": dumpsloads, "hold": hold, "rtt": rtt,
         "logsize": logsize, "concurrent": concurrent, "worker": worker}


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--version":
        print("RESULT " + json.dumps({"version": gitlab_runner_api.__version__,
                                      "python": sys.version.split()[0]}))
        return
    mode, args = sys.argv[1], json.loads(sys.argv[2])
    out = MODES[mode](args)
    sys.stdout.write("RESULT " + json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
