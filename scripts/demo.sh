#!/usr/bin/env bash
# The demo: builds the library, the test server and the C examples, starts the test server (a
# GitLab double) with one queued job, registers a runner and runs the job with the C executor,
# then prints the job's log and state as the server stored them.
#
#   ./scripts/demo.sh        (from anywhere; needs cargo, a C/C++ compiler and make)
#
# Environment: CC, CXX (compilers for make), KEEP=1 (keep the temporary directory).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# ---- tools ----------------------------------------------------------------------------------
command -v cargo >/dev/null || fail "cargo not found: install Rust from https://rustup.rs"
command -v "${CC:-cc}" >/dev/null || fail "no C compiler (${CC:-cc}): install one, e.g. 'sudo apt install build-essential'"
command -v "${CXX:-g++}" >/dev/null || command -v c++ >/dev/null ||
    fail "no C++ compiler (${CXX:-g++}): install one, e.g. 'sudo apt install build-essential'"
command -v make >/dev/null || fail "make not found: install it, e.g. 'sudo apt install build-essential'"
if [ -z "${CXX:-}" ] && ! command -v g++ >/dev/null; then export CXX=c++; fi

# ---- build ----------------------------------------------------------------------------------
say "Building the library and the test server (cargo build --release)"
cargo build --release -p gitlab_runner_api -p glr-testserver

say "Building the C and C++ examples (make -C examples-c LIBDIR=../target/release)"
make -C examples-c LIBDIR=../target/release

# ---- the test server ------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/glr-demo.XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    if [ "${KEEP:-}" = 1 ]; then echo "demo: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One job: the default realistic payload with these overrides (the script and after_script).
cat >"$tmp/jobs.json" <<'EOF'
[
  {
    "job_info": {"name": "demo-job", "stage": "test"},
    "steps": [
      {"name": "script", "when": "on_success", "allow_failure": false, "timeout": 3600,
       "script": [
         "echo \"Hello from job $CI_JOB_ID of $CI_PROJECT_PATH ($CI_COMMIT_REF_NAME)\"",
         "uname -s",
         "for i in 1 2 3; do echo \"step $i of 3\"; sleep 0.3; done",
         "echo \"GREETING is: $GREETING\"",
         "echo \"the file variable DEPLOY_CONFIG is a file:\"; cat \"$DEPLOY_CONFIG\""
       ]},
      {"name": "after_script", "when": "always", "allow_failure": true, "timeout": 3600,
       "script": ["echo cleaning up"]}
    ]
  }
]
EOF

say "Starting the test server (target/release/glr-testserver --jobs jobs.json)"
target/release/glr-testserver --listen 127.0.0.1:0 --jobs "$tmp/jobs.json" --quiet >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
for _ in $(seq 1 100); do
    grep -q '^job=' "$tmp/server.out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.err" >&2; fail "the test server exited"; }
    sleep 0.1
done
grep -q '^job=' "$tmp/server.out" || fail "the test server did not start"
value() { sed -n "s/^$1=//p" "$tmp/server.out" | head -n 1; }
url=$(value url)
registration_token=$(value registration_token)
job_id=$(value job)
echo "test server at $url, job $job_id queued"

# GET on the server's control interface, with whatever this machine has.
http_get() {
    if command -v curl >/dev/null; then
        curl -fsS "$url$1"
    elif command -v python3 >/dev/null; then
        python3 -c 'import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())' "$url$1"
    else
        # bash alone: an HTTP/1.0 request over /dev/tcp, headers stripped.
        local hostport=${url#http://}
        exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"
        printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$1" "$hostport" >&3
        sed '1,/^\r\{0,1\}$/d' <&3
        exec 3<&-
    fi
}

# ---- the examples ---------------------------------------------------------------------------
say "Chapter 1: examples-c/build/register $url <registration token> runner.json --tag demo --run-untagged"
examples-c/build/register "$url" "$registration_token" "$tmp/runner.json" --tag demo --run-untagged \
    --description "gitlab_runner_api demo"

say "Chapter 3: examples-c/build/executor runner.json --once"
examples-c/build/executor "$tmp/runner.json" --once

# ---- what the server stored -----------------------------------------------------------------
say "The job's log as the test server stored it (GET /__control/jobs/$job_id/trace)"
http_get "/__control/jobs/$job_id/trace"

record=$(http_get "/__control/jobs/$job_id")
field() { printf '%s' "$record" | grep -o "\"$1\":[^,}]*" | head -n 1 | cut -d: -f2- | tr -d '"'; }
say "The job's record (GET /__control/jobs/$job_id)"
echo "state:            $(field state)"
echo "failure_reason:   $(field failure_reason)"
echo "exit_code:        $(field exit_code)"
echo "checksum_matches: $(field checksum_matches)"
[ "$(field state)" = success ] || fail "the job did not succeed"
echo
echo "Done. Next: run the tests with './scripts/test.sh'."
