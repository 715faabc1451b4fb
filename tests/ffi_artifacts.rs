//! Artifacts through the C API against the test server: collecting a job's own `artifacts:`
//! (`when`, `**` globs, `exclude`, `untracked`, zip/gzip/raw), uploading them (several types in
//! one job, 400/403/413/503/307), dependency downloads (200, 302 to storage, 404, 401/403) and
//! extraction that refuses entries escaping the destination.

mod common;

use common::*;
use gitlab_runner_api::ffi::artifacts::*;
use gitlab_runner_api::ffi::guard::glr_last_error_code;
use gitlab_runner_api::ffi::job::*;
use gitlab_runner_api::ffi::job_artifacts::*;
use gitlab_runner_api::ffi::runner::*;
use gitlab_runner_api::ffi::status::*;
use glr_testserver::{ArtifactRecord, Endpoint, Fault, FaultKind, TestServer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A list of artifacts, freed on drop.
struct Artifacts(*mut glr_artifacts);

impl Artifacts {
    fn new() -> Self {
        let mut a = ptr::null_mut();
        ok(unsafe { glr_artifacts_new(&mut a) });
        Artifacts(a)
    }
    fn count(&self) -> usize {
        unsafe { glr_artifacts_count(self.0) }
    }
    fn collect(&self, job: *const glr_job, workdir: &Path, succeeded: bool) -> glr_status {
        let wd = c(workdir.to_str().unwrap());
        unsafe { glr_artifacts_collect(self.0, job, wd.as_ptr(), i32::from(succeeded)) }
    }
    fn add(&self, path: &Path, name: &str, artifact_type: &str, format: &str) {
        let (p, n, t, f) = (c(path.to_str().unwrap()), c(name), c(artifact_type), c(format));
        ok(unsafe { glr_artifacts_add_file(self.0, p.as_ptr(), n.as_ptr(), t.as_ptr(), f.as_ptr(), ptr::null()) });
    }
}

impl Drop for Artifacts {
    fn drop(&mut self) {
        unsafe { glr_artifacts_free(self.0) }
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn write(dir: &Path, rel: &str, content: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// The entries of a zip: name -> content (directories end in `/` and are empty; symbolic links
/// hold `-> target`).
fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid zip");
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        if f.is_symlink() {
            data = [b"-> ".as_slice(), &data].concat();
        }
        out.insert(f.name().to_string(), data);
    }
    out
}

/// The members of a multi-member gzip stream: (header name, header comment, content).
fn gunzip_members(bytes: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let mut rest = bytes;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let mut gz = flate2::bufread::GzDecoder::new(rest);
        let mut data = Vec::new();
        gz.read_to_end(&mut data).unwrap();
        let h = gz.header().unwrap();
        let name = String::from_utf8(h.filename().unwrap_or_default().to_vec()).unwrap();
        let comment = String::from_utf8(h.comment().unwrap_or_default().to_vec()).unwrap();
        out.push((name, comment, data));
        rest = gz.into_inner();
    }
    out
}

fn artifact<'a>(records: &'a [ArtifactRecord], artifact_type: &str) -> &'a ArtifactRecord {
    records
        .iter()
        .find(|a| a.artifact_type == artifact_type)
        .unwrap_or_else(|| panic!("no {artifact_type} artifact among {records:?}"))
}

fn artifact_posts(server: &TestServer) -> Vec<glr_testserver::RequestRecord> {
    server.requests().into_iter().filter(|r| r.method == "POST" && r.path.contains("/artifacts")).collect()
}

/// The job `job` with its payload's `artifacts` replaced, loaded offline from its own dump.
fn with_artifacts(job: *const glr_job, artifacts: Value) -> *mut glr_job {
    let mut s = ptr::null_mut();
    ok(unsafe { glr_job_dumps(job, &mut s) });
    let mut dump: Value = serde_json::from_str(&owned(s)).unwrap();
    dump["payload"]["artifacts"] = artifacts;
    let mut j = ptr::null_mut();
    ok(unsafe { glr_job_loads(c(&dump.to_string()).as_ptr(), &mut j) });
    j
}

/// The workdir most tests use.
fn project() -> tempfile::TempDir {
    let wd = tempdir();
    write(wd.path(), "out/a.txt", b"alpha\n");
    write(wd.path(), "out/sub/b.bin", &[0u8, 1, 2, 255]);
    write(wd.path(), "out/tmp/scratch.txt", b"excluded\n");
    write(wd.path(), "reports/unit.xml", b"<testsuite name=\"unit\"/>\n");
    write(wd.path(), "reports/deep/x/int.xml", b"<testsuite name=\"int\"/>\n");
    write(wd.path(), "reports/notes.txt", b"not a report\n");
    write(wd.path(), "fail.log", b"it failed\n");
    write(wd.path(), "gl-sast-report.json", br#"{"version":"15.0.0","vulnerabilities":[]}"#);
    wd
}

fn project_artifacts() -> Value {
    json!([
        {"name": "build-$CI_JOB_NAME", "paths": ["out/"], "exclude": ["out/tmp/**"], "when": "on_success",
         "expire_in": "1 week", "artifact_type": "archive", "artifact_format": "zip", "untracked": false},
        {"name": "junit", "paths": ["reports/**/*.xml"], "when": "always",
         "artifact_type": "junit", "artifact_format": "gzip"},
        {"name": "failure", "paths": ["fail.log"], "when": "on_failure",
         "artifact_type": "archive", "artifact_format": "zip"},
        {"name": "gl-sast-report.json", "paths": ["gl-sast-report.json"],
         "artifact_type": "sast", "artifact_format": "raw"}
    ])
}

fn check_junit(records: &[ArtifactRecord]) {
    let junit = artifact(records, "junit");
    assert_eq!((junit.artifact_format.as_str(), junit.filename.as_str()), ("gzip", "junit.gz"));
    let members = gunzip_members(&junit.data);
    assert_eq!(
        members,
        vec![
            ("int.xml".into(), "reports/deep/x/int.xml".into(), b"<testsuite name=\"int\"/>\n".to_vec()),
            ("unit.xml".into(), "reports/unit.xml".into(), b"<testsuite name=\"unit\"/>\n".to_vec()),
        ]
    );
}

#[test]
fn a_successful_job_uploads_its_on_success_and_always_artifacts_of_each_type() {
    let t = taken(json!({"job_info": {"name": "compile"}, "artifacts": project_artifacts()}));
    let wd = project();
    let a = Artifacts::new();
    ok(a.collect(t.job, wd.path(), true));
    assert_eq!(a.count(), 3, "archive, junit and sast; the on_failure entry is not for a successful job");
    ok(unsafe { glr_job_set_success(t.job, a.0) });

    let rec = t.server.job(t.id).unwrap();
    assert_eq!(rec.state, "success");
    assert_eq!(rec.artifacts.len(), 3);
    let archive = artifact(&rec.artifacts, "archive");
    assert_eq!(archive.artifact_format, "zip");
    assert_eq!(archive.filename, "build-compile.zip", "name with $CI_JOB_NAME expanded");
    assert_eq!(archive.expire_in.as_deref(), Some("1 week"));
    let files = unzip(&archive.data);
    let expected: BTreeMap<String, Vec<u8>> =
        [("out/", &b""[..]), ("out/a.txt", b"alpha\n"), ("out/sub/", b""), ("out/sub/b.bin", &[0, 1, 2, 255])]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
    assert_eq!(files, expected, "out/ minus out/tmp/** (the directory and its content)");
    check_junit(&rec.artifacts);
    let sast = artifact(&rec.artifacts, "sast");
    assert_eq!((sast.artifact_format.as_str(), sast.filename.as_str()), ("raw", "gl-sast-report.json"));
    assert_eq!(sast.data, br#"{"version":"15.0.0","vulnerabilities":[]}"#);
    assert_eq!(sast.expire_in.as_deref(), Some("30 days"), "none sent: the server stores GitLab's default");

    // The wire: one part `file`, type/format/expiry in the query, the job token as header.
    let posts = artifact_posts(&t.server);
    assert_eq!(posts.len(), 3);
    assert!(posts[0].path.ends_with("/artifacts?artifact_format=zip&artifact_type=archive&expire_in=1%20week"));
    assert!(posts[0].headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("job-token")));
}

#[test]
fn a_failed_job_uploads_its_on_failure_and_always_artifacts() {
    let t = taken(json!({"artifacts": project_artifacts()}));
    let wd = project();
    let a = Artifacts::new();
    ok(a.collect(t.job, wd.path(), false));
    assert_eq!(a.count(), 2, "failure and junit");
    ok(unsafe { glr_job_set_failed(t.job, GLR_FAILURE_SCRIPT, a.0) });
    let rec = t.server.job(t.id).unwrap();
    assert_eq!(rec.state, "failed");
    assert_eq!(rec.artifacts.len(), 2);
    let archive = artifact(&rec.artifacts, "archive");
    assert_eq!(archive.filename, "failure.zip");
    assert_eq!(unzip(&archive.data), BTreeMap::from([("fail.log".to_string(), b"it failed\n".to_vec())]));
    check_junit(&rec.artifacts);
}

#[test]
fn globs_excludes_links_and_absolute_paths_inside_the_workdir() {
    let t = taken(json!({}));
    let wd = project();
    write(wd.path(), "build/x86/app", b"x86");
    write(wd.path(), "build/arm/app", b"arm");
    write(wd.path(), "build/arm/app.debug", b"debug symbols");
    write(wd.path(), "build/.hidden/app", b"dot");
    std::os::unix::fs::symlink("x86/app", wd.path().join("build/current")).unwrap();
    let abs = wd.path().join("fail.log");
    let job = with_artifacts(
        t.job,
        json!([{"name": "bin", "paths": ["build/**/app*", "{reports,nothing}/unit.?ml", "build/current", abs.to_str()],
                "exclude": ["**/*.debug"], "artifact_type": "archive", "artifact_format": "zip"}]),
    );
    let a = Artifacts::new();
    ok(a.collect(job, wd.path(), true));
    assert_eq!(a.count(), 1);
    ok(unsafe { glr_job_set_success(t.job, a.0) });
    let rec = t.server.job(t.id).unwrap();
    let names: Vec<String> = unzip(&artifact(&rec.artifacts, "archive").data).into_keys().collect();
    assert_eq!(
        names,
        ["build/.hidden/app", "build/arm/app", "build/current", "build/x86/app", "fail.log", "reports/unit.xml"]
    );
    let files = unzip(&artifact(&rec.artifacts, "archive").data);
    assert_eq!(files["build/current"], b"-> x86/app", "a link inside the workdir stays a link");
    unsafe { glr_job_free(job) };
}

#[test]
fn nothing_matched_uploads_nothing_for_that_entry() {
    let t = taken(json!({}));
    let wd = tempdir();
    write(wd.path(), "other.txt", b"x");
    let job = with_artifacts(
        t.job,
        json!([{"name": "a", "paths": ["missing/", "*.xml"], "artifact_type": "archive", "artifact_format": "zip"},
               {"name": "b", "paths": ["*.xml"], "artifact_type": "junit", "artifact_format": "gzip"},
               {"name": "c", "paths": [], "artifact_type": "dotenv", "artifact_format": "gzip"}]),
    );
    let a = Artifacts::new();
    ok(a.collect(job, wd.path(), true));
    assert_eq!(a.count(), 0);
    unsafe { glr_job_free(job) };
}

#[test]
fn paths_leaving_the_workdir_are_refused() {
    let t = taken(json!({}));
    let outside = tempdir();
    write(outside.path(), "secret.txt", b"secret");
    let wd = project();
    std::os::unix::fs::symlink(outside.path(), wd.path().join("linkdir")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), wd.path().join("out/evil")).unwrap();
    let cases = [
        json!(["../outside.txt"]),
        json!(["out/../../x"]),
        json!([outside.path().join("secret.txt").to_str()]),
        json!(["/etc/hostname"]),
        json!(["linkdir/secret.txt"]),
        json!(["linkdir/*.txt"]),
        json!(["out/"]),
        json!(["**/evil"]),
    ];
    for paths in cases {
        let job = with_artifacts(
            t.job,
            json!([{"name": "x", "paths": paths, "artifact_type": "archive", "artifact_format": "zip"}]),
        );
        let a = Artifacts::new();
        let msg = expect(a.collect(job, wd.path(), true), GLR_ERR_INVALID_ARGUMENT);
        assert!(msg.contains("outside the working directory"), "{paths}: {msg}");
        assert_eq!(a.count(), 0, "{paths}: nothing added on error");
        unsafe { glr_job_free(job) };
    }
    // A raw artifact is one file.
    let job = with_artifacts(
        t.job,
        json!([{"name": "r", "paths": ["reports/"], "artifact_type": "sast", "artifact_format": "raw"}]),
    );
    let a = Artifacts::new();
    let msg = expect(a.collect(job, wd.path(), true), GLR_ERR_INVALID_ARGUMENT);
    assert!(msg.contains("only one file can be sent as raw"), "{msg}");
    unsafe { glr_job_free(job) };

    let a = Artifacts::new();
    expect(a.collect(t.job, wd.path().join("nope").as_path(), true), GLR_ERR_IO);
    expect(unsafe { glr_artifacts_collect(a.0, t.job, ptr::null(), 1) }, GLR_ERR_NULL_ARGUMENT);
    expect(unsafe { glr_artifacts_collect(a.0, ptr::null(), c("/").as_ptr(), 1) }, GLR_ERR_NULL_ARGUMENT);
    expect(unsafe { glr_artifacts_collect(ptr::null_mut(), t.job, c("/").as_ptr(), 1) }, GLR_ERR_NULL_ARGUMENT);
    expect(unsafe { glr_artifacts_collect(a.0, t.job, invalid_utf8().as_ptr(), 1) }, GLR_ERR_INVALID_UTF8);
}

fn git(dir: &Path, args: &[&str]) -> bool {
    std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn untracked_files_of_a_git_work_tree() {
    let wd = tempdir();
    if !git(wd.path(), &["--version"]) {
        eprintln!("git is not installed: skipped");
        return;
    }
    write(wd.path(), "tracked.txt", b"tracked");
    write(wd.path(), ".gitignore", b"*.log\n");
    assert!(git(wd.path(), &["init", "-q"]));
    assert!(git(wd.path(), &["add", "tracked.txt", ".gitignore"]));
    assert!(git(wd.path(), &["commit", "-q", "-m", "one"]));
    write(wd.path(), "new.txt", b"new");
    write(wd.path(), "build.log", b"ignored by .gitignore, included like the official runner does");
    write(wd.path(), "sub/u.txt", b"excluded");
    write(wd.path(), "sub/keep.txt", b"kept");

    let t = taken(json!({}));
    let job = with_artifacts(
        t.job,
        json!([{"name": "untracked", "untracked": true, "paths": [], "exclude": ["sub/u.*"],
                "artifact_type": "archive", "artifact_format": "zip"}]),
    );
    let a = Artifacts::new();
    ok(a.collect(job, wd.path(), true));
    assert_eq!(a.count(), 1);
    ok(unsafe { glr_job_set_success(t.job, a.0) });
    let files = unzip(&artifact(&t.server.job(t.id).unwrap().artifacts, "archive").data);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(names, ["build.log", "new.txt", "sub/keep.txt"]);
    assert_eq!(files["new.txt"], b"new");

    // Not a git work tree: a warning and nothing, not an error.
    let plain = tempdir();
    write(plain.path(), "x.txt", b"x");
    let a = Artifacts::new();
    ok(a.collect(job, plain.path(), true));
    assert_eq!(a.count(), 0);
    unsafe { glr_job_free(job) };
}

#[test]
fn a_second_upload_of_the_same_type_is_refused_with_gitlabs_message_and_the_job_stays_running() {
    let t = taken(json!({}));
    let dir = tempdir();
    write(dir.path(), "one.zip", b"first archive");
    write(dir.path(), "two.zip", b"second archive");
    let a = Artifacts::new();
    a.add(&dir.path().join("one.zip"), "one.zip", "archive", "zip");
    a.add(&dir.path().join("two.zip"), "two.zip", "archive", "zip");
    let msg = expect(unsafe { glr_job_set_success(t.job, a.0) }, GLR_ERR_HTTP);
    assert!(msg.contains("another artifact of the same type already exists"), "{msg}");
    assert!(msg.contains("400"), "{msg}");
    assert!(msg.contains("after 3 attempts"), "retried like the official runner: {msg}");
    assert_eq!(unsafe { glr_job_state(t.job) }, GLR_JOB_RUNNING);
    let rec = t.server.job(t.id).unwrap();
    assert_eq!(rec.state, "running");
    assert_eq!(rec.artifacts.len(), 1);
    assert_eq!(rec.artifacts[0].data, b"first archive");
    // The caller decides: here it finishes without the artifacts.
    ok(unsafe { glr_job_set_success(t.job, ptr::null()) });
    assert_eq!(t.server.job(t.id).unwrap().state, "success");
}

#[test]
fn too_large_is_a_clear_error_without_retries() {
    let t = taken(json!({}));
    t.server.set_config(|c| c.max_artifact_size = 1000);
    let dir = tempdir();
    write(dir.path(), "big.zip", &vec![7u8; 5000]);
    let a = Artifacts::new();
    a.add(&dir.path().join("big.zip"), "big.zip", "archive", "zip");
    let msg = expect(unsafe { glr_job_set_success(t.job, a.0) }, GLR_ERR_HTTP);
    assert!(msg.contains("413") && msg.contains("maximum artifact size") && msg.contains("5000 bytes"), "{msg}");
    assert_eq!(artifact_posts(&t.server).len(), 1, "413 is not retried");
    assert_eq!(t.server.job(t.id).unwrap().state, "running");
    assert_eq!(unsafe { glr_job_state(t.job) }, GLR_JOB_RUNNING);
}

#[test]
fn forbidden_means_the_job_was_canceled() {
    let t = taken(json!({}));
    let dir = tempdir();
    write(dir.path(), "a.zip", b"zip");
    let a = Artifacts::new();
    a.add(&dir.path().join("a.zip"), "a.zip", "archive", "zip");
    // GitLab's answer to an upload for a job it no longer runs, without racing the log uploader.
    t.server.inject_fault(Fault {
        endpoint: Endpoint::ArtifactsUpload,
        count: 1,
        kind: FaultKind::Status { code: 403, retry_after: None },
    });
    let msg = expect(unsafe { glr_job_set_success(t.job, a.0) }, GLR_ERR_JOB_CANCELED);
    assert!(msg.contains("403"), "{msg}");
    assert_eq!(artifact_posts(&t.server).len(), 1, "403 is not retried");
    assert!(t.server.job(t.id).unwrap().artifacts.is_empty());
    assert_eq!(unsafe { glr_job_state(t.job) }, GLR_JOB_CANCELED, "as after a 403 on PATCH or PUT");

    // And for real: GitLab canceled the job.
    t.server.cancel_job(t.id, false);
    expect(unsafe { glr_job_set_success(t.job, a.0) }, GLR_ERR_JOB_CANCELED);
    assert!(artifact_posts(&t.server).len() <= 2, "403 is not retried");
    let rec = t.server.job(t.id).unwrap();
    assert_eq!(rec.state, "canceled");
    assert!(rec.artifacts.is_empty());
}

#[test]
fn service_unavailable_is_retried() {
    let t = taken(json!({}));
    let dir = tempdir();
    write(dir.path(), "a.zip", b"zip bytes");
    let a = Artifacts::new();
    a.add(&dir.path().join("a.zip"), "a.zip", "archive", "zip");
    t.server.inject_fault(Fault {
        endpoint: Endpoint::ArtifactsUpload,
        count: 2,
        kind: FaultKind::Status { code: 503, retry_after: None },
    });
    ok(unsafe { glr_job_set_success(t.job, a.0) });
    let posts = artifact_posts(&t.server);
    assert_eq!(posts.iter().map(|p| p.status).collect::<Vec<_>>(), [503, 503, 201]);
    let rec = t.server.job(t.id).unwrap();
    assert_eq!(rec.artifacts[0].data, b"zip bytes");
    assert_eq!(rec.state, "success");
}

/// A front that answers every request with `307` to the same path on `target`, like a GitLab
/// moved behind another host. Returns its URL and how many artifact uploads it saw.
fn redirecting_front(target: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let uploads = Arc::new(AtomicUsize::new(0));
    let seen = uploads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let (target, seen) = (target.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push(line);
                }
                let Some(request_line) = head.first() else { return };
                let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
                let header = |name: &str| {
                    head.iter().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                };
                if let Some(len) = header("content-length").and_then(|v| v.parse::<u64>().ok()) {
                    std::io::copy(&mut (&mut reader).take(len), &mut std::io::sink()).unwrap();
                } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                    loop {
                        let mut size = String::new();
                        reader.read_line(&mut size).unwrap();
                        let n = u64::from_str_radix(size.trim(), 16).unwrap_or(0);
                        std::io::copy(&mut (&mut reader).take(n + 2), &mut std::io::sink()).unwrap();
                        if n == 0 {
                            break;
                        }
                    }
                }
                if request_line.starts_with("POST") && path.contains("/artifacts") {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                let answer = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}{path}\r\nContent-Length: 0\r\n\
                     Connection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes());
            });
        }
    });
    (url, uploads)
}

#[test]
fn a_temporary_redirect_moves_the_upload_to_the_new_host() {
    let server = server();
    let id = server.queue_job(json!({}));
    let (front, uploads) = redirecting_front(server.url());
    let mut runner = ptr::null_mut();
    ok(unsafe {
        glr_runner_register(c(&front).as_ptr(), c(&server.registration_token()).as_ptr(), ptr::null(), &mut runner)
    });
    let job = take_job(&server, runner);
    let dir = tempdir();
    write(dir.path(), "a.zip", b"redirected bytes");
    let a = Artifacts::new();
    a.add(&dir.path().join("a.zip"), "a.zip", "archive", "zip");
    ok(unsafe { glr_job_set_success(job, a.0) });
    assert_eq!(uploads.load(Ordering::SeqCst), 1, "the first upload went to the front and got a 307");
    let rec = server.job(id).unwrap();
    assert_eq!(rec.artifacts[0].data, b"redirected bytes");
    assert_eq!(rec.state, "success");
    unsafe {
        glr_job_free(job);
        glr_runner_free(runner);
    }
}

fn download(job: *mut glr_job, index: usize, dest: &Path) -> glr_status {
    unsafe { glr_job_download_artifacts(job, index, c(dest.to_str().unwrap()).as_ptr()) }
}

fn fixture_archive(server: &TestServer) -> Vec<u8> {
    server.job(1).unwrap().artifacts[0].data.clone()
}

#[test]
fn dependencies_are_described_and_downloaded() {
    let t = taken(json!({}));
    let archive = fixture_archive(&t.server);
    unsafe {
        assert_eq!(glr_job_dependency_count(t.job), 1);
        assert_eq!(borrowed(glr_job_dependency_name(t.job, 0)).as_deref(), Some("build"));
        let mut name = ptr::null_mut();
        ok(glr_job_dependency_artifacts_filename(t.job, 0, &mut name));
        assert_eq!(owned(name), "artifacts.zip");
        assert_eq!(glr_job_dependency_artifacts_size(t.job, 0), archive.len() as i64);
        expect(glr_job_dependency_artifacts_filename(t.job, 1, &mut name), GLR_ERR_INVALID_ARGUMENT);
        expect(glr_job_dependency_artifacts_filename(t.job, 0, ptr::null_mut()), GLR_ERR_NULL_ARGUMENT);
        assert_eq!(glr_job_dependency_artifacts_size(t.job, 1), -1);
        assert_eq!(glr_last_error_code(), GLR_ERR_INVALID_ARGUMENT);
        assert_eq!(glr_job_dependency_artifacts_size(ptr::null(), 0), -1);
    }

    let dir = tempdir();
    let dest = dir.path().join("dep.zip");
    write(dir.path(), "dep.zip", b"an older download, replaced");
    t.server.inject_fault(Fault {
        endpoint: Endpoint::ArtifactsDownload,
        count: 1,
        kind: FaultKind::Status { code: 500, retry_after: None },
    });
    ok(download(t.job, 0, &dest));
    assert_eq!(std::fs::read(&dest).unwrap(), archive);
    let gets: Vec<_> = t.server.requests().into_iter().filter(|r| r.method == "GET").collect();
    assert_eq!(gets.len(), 2, "a 500 is retried");
    assert!(gets[0].path.ends_with("/api/v4/jobs/1/artifacts?direct_download=true"), "{}", gets[0].path);
    assert!(gets[1].path.ends_with("/api/v4/jobs/1/artifacts"), "direct_download only at first: {}", gets[1].path);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["dep.zip"], "no temporary file left behind");

    let out = dir.path().join("extracted");
    ok(unsafe { glr_extract_artifacts(c(dest.to_str().unwrap()).as_ptr(), c(out.to_str().unwrap()).as_ptr()) });
    assert_eq!(std::fs::read(out.join("build/output.txt")).unwrap(), b"built by the fixture job\n");
    assert_eq!(std::fs::read(out.join("build/version.txt")).unwrap(), b"1.0.0\n");

    expect(download(t.job, 1, &dest), GLR_ERR_INVALID_ARGUMENT);
    expect(download(t.job, 0, dir.path()), GLR_ERR_INVALID_ARGUMENT);
    expect(unsafe { glr_job_download_artifacts(t.job, 0, ptr::null()) }, GLR_ERR_NULL_ARGUMENT);
    expect(unsafe { glr_job_download_artifacts(ptr::null_mut(), 0, c("x").as_ptr()) }, GLR_ERR_NULL_ARGUMENT);
}

#[test]
fn a_redirect_to_storage_is_followed_without_the_job_token() {
    let server = server();
    server.set_config(|c| c.artifacts_direct_download = true);
    server.queue_job(json!({}));
    // Talk to GitLab as "localhost": the storage link names 127.0.0.1, another host.
    let url = server.url().replace("127.0.0.1", "localhost");
    let mut runner = ptr::null_mut();
    ok(unsafe {
        glr_runner_register(c(&url).as_ptr(), c(&server.registration_token()).as_ptr(), ptr::null(), &mut runner)
    });
    let job = take_job(&server, runner);
    let dir = tempdir();
    let dest = dir.path().join("dep.zip");
    ok(download(job, 0, &dest));
    assert_eq!(std::fs::read(&dest).unwrap(), fixture_archive(&server));
    let reqs = server.requests();
    let api = reqs.iter().find(|r| r.path.contains("/jobs/1/artifacts")).unwrap();
    assert_eq!(api.status, 302);
    let storage = reqs.iter().find(|r| r.path.starts_with("/__storage/")).expect("the storage link was followed");
    assert_eq!(storage.status, 200);
    assert!(
        !storage.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("job-token")),
        "the job token stays with GitLab: {:?}",
        storage.headers
    );
    unsafe {
        glr_job_free(job);
        glr_runner_free(runner);
    }
}

#[test]
fn missing_artifacts_and_rejected_tokens() {
    let server = server();
    let first = server.queue_job(json!({"dependencies": []}));
    server.queue_job(json!({"dependencies": [
        {"id": first, "name": "no-artifacts"},
        {"id": 99_999, "name": "gone"},
        {"id": 1, "name": "build", "token": "glcbt-not-a-token"}
    ]}));
    let runner = register(&server);
    let job_a = take_job(&server, runner);
    let job_b = take_job(&server, runner);
    let dir = tempdir();
    let dest = dir.path().join("dep.zip");
    unsafe {
        let mut name = ptr::null_mut();
        ok(glr_job_dependency_artifacts_filename(job_b, 0, &mut name));
        assert!(name.is_null(), "no artifacts_file for a job without archive");
        assert_eq!(glr_job_dependency_artifacts_size(job_b, 0), -1);
        assert_eq!(glr_last_error_code(), GLR_OK);
    }
    let msg = expect(download(job_b, 0, &dest), GLR_ERR_NOT_FOUND);
    assert!(msg.contains("404"), "{msg}");
    expect(download(job_b, 1, &dest), GLR_ERR_AUTH);
    expect(download(job_b, 2, &dest), GLR_ERR_AUTH);
    assert!(!dest.exists(), "nothing written on error");
    let gets = server.requests().into_iter().filter(|r| r.method == "GET").count();
    assert_eq!(gets, 3, "404, 403 and 401 are not retried");
    unsafe {
        glr_job_free(job_a);
        glr_job_free(job_b);
        glr_runner_free(runner);
    }
}

/// A zip with `entries`: (name, content, unix mode incl. file type bits).
fn zip_with(path: &Path, entries: &[(&str, &[u8], u32)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, content, mode) in entries {
        let options = zip::write::SimpleFileOptions::default().unix_permissions(mode & 0o777);
        if mode & 0o170_000 == 0o120_000 {
            zip.add_symlink(*name, std::str::from_utf8(content).unwrap(), options).unwrap();
        } else {
            zip.start_file(*name, options).unwrap();
            zip.write_all(content).unwrap();
        }
    }
    zip.finish().unwrap();
}

fn extract(zip: &Path, dest: &Path) -> glr_status {
    unsafe { glr_extract_artifacts(c(zip.to_str().unwrap()).as_ptr(), c(dest.to_str().unwrap()).as_ptr()) }
}

#[test]
fn extraction_refuses_entries_escaping_the_destination() {
    let root = tempdir();
    let zip = root.path().join("a.zip");
    let dest = root.path().join("dest");
    let hostile: &[&[(&str, &[u8], u32)]] = &[
        &[("ok.txt", b"fine", 0o100644), ("../evil.txt", b"slip", 0o100644)],
        &[("a/../../evil.txt", b"slip", 0o100644)],
        &[("/tmp/evil-absolute.txt", b"abs", 0o100644)],
        &[("link", b"/etc", 0o120777)],
        &[("up", b"../..", 0o120777)],
        &[("a/b", b"../../..", 0o120777)],
        &[("a/q", b"x/../..", 0o120777)],
        &[("dir", b"sub", 0o120777), ("dir/evil.txt", b"through a link", 0o100644)],
    ];
    for entries in hostile {
        zip_with(&zip, entries);
        let msg = expect(extract(&zip, &dest), GLR_ERR_INVALID_ARGUMENT);
        assert!(msg.contains("nothing was extracted"), "{msg}");
        assert!(!dest.exists(), "{entries:?}: nothing written");
        assert!(!root.path().join("evil.txt").exists());
    }
    assert!(!Path::new("/tmp/evil-absolute.txt").exists());

    // Links that stay inside are kept; files and modes come back.
    zip_with(
        &zip,
        &[
            ("bin/tool", b"#!/bin/sh\n", 0o100755),
            ("lib/libx.so.1", b"ELF", 0o100644),
            ("lib/libx.so", b"libx.so.1", 0o120777),
            ("lib/tool", b"../bin/tool", 0o120777),
        ],
    );
    ok(extract(&zip, &dest));
    assert_eq!(std::fs::read(dest.join("lib/libx.so")).unwrap(), b"ELF");
    assert_eq!(std::fs::read_link(dest.join("lib/tool")).unwrap(), Path::new("../bin/tool"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(dest.join("bin/tool")).unwrap().permissions().mode() & 0o777, 0o755);

    // A link already in the destination is never written through.
    let outside = tempdir();
    std::os::unix::fs::symlink(outside.path(), dest.join("pre")).unwrap();
    zip_with(&zip, &[("pre/x.txt", b"through a planted link", 0o100644)]);
    expect(extract(&zip, &dest), GLR_ERR_INVALID_ARGUMENT);
    assert!(!outside.path().join("x.txt").exists());
    // A file replaces an existing link instead of writing to its target.
    std::fs::write(outside.path().join("target.txt"), b"untouched").unwrap();
    std::os::unix::fs::symlink(outside.path().join("target.txt"), dest.join("victim.txt")).unwrap();
    zip_with(&zip, &[("victim.txt", b"new content", 0o100644)]);
    ok(extract(&zip, &dest));
    assert_eq!(std::fs::read(outside.path().join("target.txt")).unwrap(), b"untouched");
    assert_eq!(std::fs::read(dest.join("victim.txt")).unwrap(), b"new content");

    // Not a zip, a damaged one, a missing one.
    std::fs::write(&zip, b"PK\x03\x04 this is not really a zip").unwrap();
    expect(extract(&zip, &dest), GLR_ERR_PARSE);
    zip_with(&zip, &[("big.txt", &[b'z'; 10_000], 0o100644)]);
    let mut bytes = std::fs::read(&zip).unwrap();
    let at = bytes.windows(4).position(|w| w == b"zzzz").unwrap_or(60);
    bytes[at] ^= 0xff; // stored entry: its CRC no longer matches
    std::fs::write(&zip, &bytes).unwrap();
    expect(extract(&zip, &root.path().join("damaged")), GLR_ERR_PARSE);
    expect(extract(&root.path().join("missing.zip"), &dest), GLR_ERR_IO);
    expect(unsafe { glr_extract_artifacts(ptr::null(), c("x").as_ptr()) }, GLR_ERR_NULL_ARGUMENT);
    expect(unsafe { glr_extract_artifacts(c("x").as_ptr(), ptr::null()) }, GLR_ERR_NULL_ARGUMENT);
}

#[test]
fn a_collected_archive_extracts_to_the_collected_files() {
    let t = taken(json!({}));
    let wd = project();
    std::os::unix::fs::symlink("a.txt", wd.path().join("out/link")).unwrap();
    let job = with_artifacts(
        t.job,
        json!([{"name": "a", "paths": ["out/"], "artifact_type": "archive", "artifact_format": "zip"}]),
    );
    let a = Artifacts::new();
    ok(a.collect(job, wd.path(), true));
    ok(unsafe { glr_job_set_success(t.job, a.0) });
    drop(a);
    let data = artifact(&t.server.job(t.id).unwrap().artifacts, "archive").data.clone();
    let dir = tempdir();
    std::fs::write(dir.path().join("a.zip"), &data).unwrap();
    ok(extract(&dir.path().join("a.zip"), &dir.path().join("x")));
    for rel in ["out/a.txt", "out/sub/b.bin", "out/tmp/scratch.txt"] {
        assert_eq!(std::fs::read(dir.path().join("x").join(rel)).unwrap(), std::fs::read(wd.path().join(rel)).unwrap());
    }
    assert_eq!(std::fs::read_link(dir.path().join("x/out/link")).unwrap(), Path::new("a.txt"));
    unsafe { glr_job_free(job) };
}
