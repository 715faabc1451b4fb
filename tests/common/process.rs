//! Child processes with a deadline: a program that hangs fails its test instead of stalling the
//! test run, and its output shows in the failure.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a finished process left: its exit code (None when a signal ended it) and its output.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn describe(&self) -> String {
        format!("exit {:?}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    #[track_caller]
    pub fn expect_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(self.code, Some(code), "{what}: unexpected exit status\n{}", self.describe());
        self
    }

    #[track_caller]
    pub fn expect_ok(&self, what: &str) -> &Self {
        self.expect_code(0, what)
    }
}

/// A started process whose stdout and stderr are read by two threads as it writes them (so a
/// full pipe never blocks it).
pub struct Running {
    child: Child,
    what: String,
    readers: Vec<JoinHandle<String>>,
}

impl Running {
    /// Starts `cmd` with stdin from /dev/null; `what` names it in failures.
    pub fn start(mut cmd: Command, what: &str) -> Running {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let pipes: [Box<dyn Read + Send>; 2] =
            [Box::new(child.stdout.take().unwrap()), Box::new(child.stderr.take().unwrap())];
        let readers = pipes
            .into_iter()
            .map(|mut pipe| {
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let _ = pipe.read_to_end(&mut buf);
                    String::from_utf8_lossy(&buf).into_owned()
                })
            })
            .collect();
        Running { child, what: what.to_string(), readers }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What [`Running::start`] was told the process is.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Waits for the exit; after `timeout` kills the process and fails the test, showing its
    /// output.
    #[track_caller]
    pub fn wait(mut self, timeout: Duration) -> Out {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break Some(s);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut texts = self.readers.drain(..).map(|h| h.join().expect("reader thread"));
        let out =
            Out { code: status.and_then(|s| s.code()), stdout: texts.next().unwrap(), stderr: texts.next().unwrap() };
        assert!(status.is_some(), "{} did not finish within {timeout:?}\n{}", self.what, out.describe());
        out
    }
}

/// Runs `cmd` to its end (at most `timeout`, see [`Running::wait`]).
#[track_caller]
pub fn run(cmd: Command, what: &str, timeout: Duration) -> Out {
    Running::start(cmd, what).wait(timeout)
}

/// Set in the child process [`in_own_process`] starts: the name of the test it runs.
const ALONE_ENV: &str = "GLR_TEST_ALONE";

/// For a test that changes a process-wide setting (such as the request timeout) which would
/// disturb the tests running beside it in the same binary: in the test binary's own run, it
/// runs test `name` again, alone, in a child process, fails if that fails, and returns false; in
/// that child it returns true and the caller runs the test's body.
#[track_caller]
pub fn in_own_process(name: &str, timeout: Duration) -> bool {
    if std::env::var(ALONE_ENV).as_deref() == Ok(name) {
        return true;
    }
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args([name, "--exact", "--include-ignored", "--nocapture", "--test-threads=1"]).env(ALONE_ENV, name);
    let out = run(cmd, &format!("test {name} alone"), timeout);
    out.expect_ok(name);
    assert!(out.stdout.contains("1 passed"), "the child process did not run {name}\n{}", out.describe());
    false
}

/// Set in a child process [`start_child_test`] starts: the name of the test it runs.
const CHILD_ENV: &str = "GLR_TEST_CHILD";

/// Starts test `name` of this test binary in a child process, with `env` set: for the part of a
/// test that must be another process (the loader of a hand-over dump, a second runner sharing a
/// runner file). The child's test is `#[ignore]`d (it is not a test on its own) and begins with
/// [`is_child`]. Wait for it with [`Running::wait`] and check [`child_passed`].
pub fn start_child_test(name: &str, env: &[(&str, String)]) -> Running {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args([name, "--exact", "--include-ignored", "--nocapture", "--test-threads=1"]).env(CHILD_ENV, name);
    for (key, value) in env {
        cmd.env(key, value);
    }
    Running::start(cmd, &format!("child process {name}"))
}

/// Whether this process is the child [`start_child_test`] started for test `name` (otherwise
/// that test has nothing to do: it only runs as a child).
pub fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(name)
}

/// Fails unless the child process ran its test and it passed.
#[track_caller]
pub fn child_passed(out: &Out, what: &str) {
    out.expect_ok(what);
    assert!(out.stdout.contains("1 passed"), "{what}: the child process ran no test\n{}", out.describe());
}
