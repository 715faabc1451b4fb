//! Fuzzing with the stable toolchain: a seeded mutator over a committed corpus of real-shaped
//! inputs (tests/fuzz/corpus/), for the three parsers that take data from outside:
//!
//! - `runner`: glr_runner_loads (our v2 format and the Python package's v1 arrays);
//! - `job`: glr_job_loads (v2 and v1);
//! - `payload`: the job payload parser, i.e. what glr_runner_request_job accepts from GitLab
//!   (the body as UTF-8 text, then `Job::new`, which parses and reads it), and every accessor
//!   of the job it gives (through glr_job_loads of a dump holding the payload).
//!
//! Each input must give GLR_OK or GLR_ERR_PARSE (never a panic, never another status), and an
//! accepted input must survive dumps -> loads -> dumps unchanged. Mutations are byte-level (bit
//! flips, random bytes, insertions and deletions of runs, JSON tokens spliced in, splices of two
//! corpus entries) and JSON-level (a value replaced by another of any type, a key removed, an
//! array element duplicated, deep nesting, huge numbers, long strings). Inputs that give an
//! outcome not seen before (status + error message with digits removed) join the corpus, a
//! cheap stand-in for coverage feedback.
//!
//! `cargo test` runs a fixed number of iterations per target with a fixed seed (reproducible);
//! `GLR_FUZZ_SECONDS=N` runs each target for N seconds instead (CI: 20 s each), and
//! `GLR_FUZZ_SEED=S` changes the seed. A failing input is written to target/fuzz-failures/ and
//! its seed and iteration printed. cargo-fuzz (libFuzzer) and cargo-afl need a nightly
//! compiler or an extra toolchain that CI does not have: see RELIABILITY.md.

mod common;

use common::*;
use common::{job_dumps as job_dumps_of, runner_dumps as runner_dumps_of};
use gitlab_runner_api::ffi::job::*;
use gitlab_runner_api::ffi::runner::*;
use gitlab_runner_api::ffi::status::*;
use gitlab_runner_api::internal::{Job, RunnerData};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::ptr;
use std::time::{Duration, Instant};

/// Iterations per target in `cargo test` (a few seconds each in a debug build).
const DEFAULT_ITERATIONS: u64 = 15_000;
const DEFAULT_PAYLOAD_ITERATIONS: u64 = 5_000;
const MAX_CORPUS: usize = 3000;
const MAX_INPUT: usize = 256 * 1024;

/// xorshift64*: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e999",
    "-0",
    "1.5",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "\"\"",
    "\\u0000",
    "\\ud800",
    "\\udfff",
    "\\\"",
    "é",
    "✓",
    "\u{10FFFF}",
    "[[[[[[[[",
    "]]]]]]]]",
    "{\"a\":",
    "\"format\"",
    "\"version\"",
    "\"gitlab_runner_api.job\"",
    "\"gitlab_runner_api.runner\"",
    "\"runner\"",
    "\"payload\"",
    "\"log\"",
    "\"acknowledged\"",
    "\"state\"",
    "\"token\"",
    "\"id\"",
    "\"variables\"",
    "\"steps\"",
    "\"script\"",
    "\"dependencies\"",
    "\"credentials\"",
    "\"api_url\"",
    "\"masked\":true",
    "\"running\"",
    "\"success\"",
    "\"canceled\"",
    "2",
    "1",
    "[1,",
    "http://",
    "https://",
];

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.chance(2)),
        2 => json!(rng.next() as i64),
        3 => [json!(i64::MAX), json!(i64::MIN), json!(u64::MAX), json!(0), json!(-1), json!(1e300), json!(0.5)]
            [rng.below(7)]
        .clone(),
        4 => json!(["", "x", "running", "success", "glrt-x", "http://h", "\u{0}", "é✓"][rng.below(8)]),
        5 => json!("y".repeat(rng.below(100_000))),
        6 => Value::Array((0..rng.below(4)).map(|_| random_value(rng, depth + 1)).collect()),
        _ => {
            let keys = ["id", "token", "key", "value", "name", "script", "masked", "url", "format", "version"];
            Value::Object(
                (0..rng.below(4))
                    .map(|_| (keys[rng.below(keys.len())].to_string(), random_value(rng, depth + 1)))
                    .collect(),
            )
        }
    }
}

/// A random node of `v` (pre-order index), mutably.
fn nth_node(v: &mut Value, n: &mut usize) -> Option<*mut Value> {
    if *n == 0 {
        return Some(v as *mut Value);
    }
    *n -= 1;
    match v {
        Value::Array(items) => items.iter_mut().find_map(|i| nth_node(i, n)),
        Value::Object(map) => map.values_mut().find_map(|i| nth_node(i, n)),
        _ => None,
    }
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

fn mutate_json(rng: &mut Rng, mut v: Value) -> Value {
    let total = count_nodes(&v);
    for _ in 0..1 + rng.below(3) {
        let mut n = rng.below(total.max(1));
        let Some(node) = nth_node(&mut v, &mut n) else { continue };
        // SAFETY: `node` points into `v`, which is not otherwise borrowed here.
        let node = unsafe { &mut *node };
        match rng.below(6) {
            0 | 1 => *node = random_value(rng, 0),
            2 => {
                if let Value::Object(map) = node {
                    if !map.is_empty() {
                        let key = map.keys().nth(rng.below(map.len())).unwrap().clone();
                        map.remove(&key);
                    }
                }
            }
            3 => {
                if let Value::Array(items) = node {
                    if !items.is_empty() {
                        let item = items[rng.below(items.len())].clone();
                        items.push(item);
                    }
                }
            }
            4 => {
                let mut deep = node.clone();
                for _ in 0..rng.below(200) {
                    deep = json!([deep]);
                }
                *node = deep;
            }
            _ => {
                if let Value::String(s) = node {
                    s.push_str(&TOKENS[rng.below(TOKENS.len())].repeat(1 + rng.below(50)));
                }
            }
        }
    }
    v
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = corpus[rng.below(corpus.len())].clone();
    if rng.chance(3) {
        if let Ok(v) = serde_json::from_slice::<Value>(&data) {
            return serde_json::to_vec(&mutate_json(rng, v)).unwrap();
        }
    }
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(64)).min(len);
                data.drain(from..to);
            }
            3 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(64)).min(len);
                let run = data[from..to].to_vec();
                let at = rng.below(len);
                data.splice(at..at, run);
            }
            4 => {
                let at = rng.below(len + 1);
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                data.splice(at..at, token.iter().copied());
            }
            5 => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            6 => data.truncate(rng.below(len + 1)),
            _ => {
                let at = rng.below(len + 1);
                data.insert(at, rng.next() as u8);
            }
        }
    }
    data.truncate(MAX_INPUT);
    data
}

/// The input as the C string a caller would pass: cut at the first NUL.
fn c_input(data: &[u8]) -> CString {
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    CString::new(&data[..end]).unwrap()
}

/// What happened to one input: `Err` for a property violation, else an outcome signature.
type Outcome = Result<String, String>;

fn signature(status: glr_status) -> String {
    let message: String = last_error().chars().filter(|c| !c.is_ascii_digit()).take(120).collect();
    format!("{status} {message}")
}

fn expect_ok_or_parse(status: glr_status, what: &str) -> Result<(), String> {
    if status == GLR_OK || status == GLR_ERR_PARSE || status == GLR_ERR_INVALID_UTF8 {
        Ok(())
    } else {
        Err(format!("{what}: status {status}: {}", last_error()))
    }
}

fn fuzz_runner(data: &[u8]) -> Outcome {
    let input = c_input(data);
    let mut r = ptr::null_mut();
    let st = unsafe { glr_runner_loads(input.as_ptr(), &mut r) };
    let sig = signature(st);
    expect_ok_or_parse(st, "glr_runner_loads")?;
    if st == GLR_OK {
        let first = runner_dumps_of(r);
        unsafe {
            let _ = (glr_runner_id(r), glr_runner_locked(r), glr_runner_maximum_timeout(r));
            for i in 0..glr_runner_tag_count(r) {
                let _ = glr_runner_tag(r, i);
            }
            glr_runner_free(r);
        }
        let mut again = ptr::null_mut();
        let st = unsafe { glr_runner_loads(c(&first).as_ptr(), &mut again) };
        if st != GLR_OK {
            return Err(format!("a dump of an accepted runner does not load: {}\n{first}", last_error()));
        }
        let second = runner_dumps_of(again);
        unsafe { glr_runner_free(again) };
        if first != second {
            return Err(format!("runner dumps -> loads -> dumps changed it:\n{first}\n{second}"));
        }
    }
    Ok(sig)
}

/// Loads a job dump and exercises it; `Ok(None)` when the dump is rejected.
fn load_and_exercise_job(input: &CString) -> Result<(glr_status, String), String> {
    let mut j = ptr::null_mut();
    let st = unsafe { glr_job_loads(input.as_ptr(), &mut j) };
    let sig = signature(st);
    expect_ok_or_parse(st, "glr_job_loads")?;
    if st != GLR_OK {
        return Ok((st, sig));
    }
    let first = job_dumps_of(j);
    unsafe {
        let _ = (glr_job_id(j), glr_job_state(j), glr_job_is_branch(j));
        for get in
            [glr_job_token, glr_job_name, glr_job_ref, glr_job_repo_url, glr_job_project_path, glr_job_pipeline_id]
        {
            let _ = get(j);
        }
        for i in 0..glr_job_script_count(j) {
            let _ = glr_job_script_line(j, i);
        }
        for i in 0..glr_job_variable_count(j) {
            let _ = (glr_job_variable_key(j, i), glr_job_variable_value(j, i), glr_job_variable_flags(j, i));
        }
        for i in 0..glr_job_dependency_count(j) {
            let _ = (glr_job_dependency_id(j, i), glr_job_dependency_name(j, i));
        }
        let _ = glr_job_variable(j, c"CI_JOB_TOKEN".as_ptr());
        let (mut u, mut p) = (ptr::null_mut(), ptr::null_mut());
        if glr_job_get_registry_credential(j, c"registry.example.com/a/b".as_ptr(), &mut u, &mut p) == GLR_OK {
            let _ = (owned(u), owned(p));
        }
        let (mut log, mut len) = (ptr::null_mut(), 0usize);
        ok(glr_job_log(j, &mut log, &mut len));
        owned(log);
        glr_job_free(j);
    }
    let mut again = ptr::null_mut();
    let st2 = unsafe { glr_job_loads(c(&first).as_ptr(), &mut again) };
    if st2 != GLR_OK {
        return Err(format!("a dump of an accepted job does not load: {}\n{first}", last_error()));
    }
    let second = job_dumps_of(again);
    unsafe { glr_job_free(again) };
    if first != second {
        return Err(format!("job dumps -> loads -> dumps changed it:\n{first}\n{second}"));
    }
    Ok((st, sig))
}

fn fuzz_job(data: &[u8]) -> Outcome {
    load_and_exercise_job(&c_input(data)).map(|(_, sig)| sig)
}

fn runner_data() -> RunnerData {
    RunnerData {
        api_url: "http://127.0.0.1:9".into(),
        id: 1,
        token: "glrt-fuzz".into(),
        system_id: "s_0123456789ab".into(),
        ..Default::default()
    }
}

/// What request_job does with a 201 body: serde_json, then Job::new (payload parser, masker).
fn fuzz_payload(data: &[u8]) -> Outcome {
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        // As request_job: the body must be UTF-8, then Job::new parses and reads it.
        let text = match String::from_utf8(data.to_vec()) {
            Ok(t) => t,
            Err(_) => return Ok("not UTF-8".to_string()),
        };
        match Job::new(runner_data(), text.clone()) {
            Ok(job) => {
                let value: Value = serde_json::from_str(&text).expect("Job::new accepted it, so it is JSON");
                let info = job.info();
                let _ = (job.id(), job.state());
                // The shape of what was read, so that new shapes join the corpus.
                let shape = format!(
                    "v{} m{} s{} a{} d{} c{} {:?} {}",
                    info.variables.len().min(8),
                    info.variables.iter().filter(|v| v.flags & 2 != 0).count().min(4),
                    info.script.len().min(4),
                    info.after_script.len().min(4),
                    info.dependencies.len().min(4),
                    info.credentials.len().min(4),
                    info.is_branch,
                    info.name.is_some()
                );
                Err((value, shape))
            }
            Err(e) => {
                Ok(format!("{:?} {}", e.kind, e.message.chars().filter(|c| !c.is_ascii_digit()).collect::<String>()))
            }
        }
    }));
    match parsed {
        Err(_) => Err("Job::new panicked".to_string()),
        Ok(Ok(sig)) => Ok(sig),
        // Accepted: its accessors through the C API, via a dump holding it.
        Ok(Err((payload, shape))) => {
            let mut dump = job_template().clone();
            dump["payload"] = payload;
            let (st, sig) = load_and_exercise_job(&c(&dump.to_string()))?;
            if st != GLR_OK {
                return Err(format!("a payload Job::new accepts is refused in a dump: {}", last_error()));
            }
            Ok(format!("accepted {shape} {sig}"))
        }
    }
}

/// A real job dump (from the corpus) whose payload is replaced by the one under test.
fn job_template() -> &'static Value {
    static T: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let text = std::fs::read_to_string(corpus_dir("job").join("v2_running_with_log.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus").join(target)
}

fn load_corpus(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(corpus_dir(target)).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    let corpus: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(corpus.len() >= 3, "tests/fuzz/corpus/{target} has too few entries");
    corpus
}

fn seed() -> u64 {
    std::env::var("GLR_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_1234_ABCD_0001)
}

/// Runs one target; returns (executions, corpus size at the end, distinct outcomes).
fn fuzz(target: &str, iterations: u64, run: fn(&[u8]) -> Outcome) -> (u64, usize, usize) {
    let mut corpus = load_corpus(target);
    let mut seen = HashSet::new();
    // The corpus itself first: every committed entry must pass.
    for (i, input) in corpus.iter().enumerate() {
        match run(input) {
            Ok(sig) => {
                seen.insert(sig);
            }
            Err(e) => panic!("corpus entry {i} of {target} fails: {e}"),
        }
    }
    let seconds = std::env::var("GLR_FUZZ_SECONDS").ok().and_then(|s| s.parse::<u64>().ok());
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let seed = seed() ^ target.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
    let mut rng = Rng(seed | 1);
    let mut executions = 0u64;
    loop {
        match deadline {
            Some(d) if Instant::now() >= d => break,
            None if executions >= iterations => break,
            _ => {}
        }
        let input = mutate(&mut rng, &corpus);
        executions += 1;
        match catch_unwind(AssertUnwindSafe(|| run(&input))) {
            Ok(Ok(sig)) => {
                if seen.insert(sig) && corpus.len() < MAX_CORPUS {
                    corpus.push(input);
                }
            }
            Ok(Err(e)) => fail(target, seed, executions, &input, &e),
            Err(_) => fail(target, seed, executions, &input, "the harness panicked"),
        }
    }
    (executions, corpus.len(), seen.len())
}

fn fail(target: &str, seed: u64, iteration: u64, input: &[u8], why: &str) -> ! {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).and_then(Path::parent).unwrap().join("fuzz-failures");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{target}-{seed:x}-{iteration}"));
    std::fs::write(&file, input).unwrap();
    panic!("{target}: input {iteration} (seed {seed:#x}) breaks a property: {why}\ninput saved to {}", file.display());
}

fn report(target: &str, (executions, corpus, outcomes): (u64, usize, usize), started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "FUZZ {target}: {executions} executions in {secs:.1} s ({:.0}/s), 0 failures, corpus {corpus}, {outcomes} distinct outcomes",
        executions as f64 / secs
    );
}

#[test]
fn fuzz_glr_runner_loads() {
    let started = Instant::now();
    report("runner", fuzz("runner", DEFAULT_ITERATIONS, fuzz_runner), started);
}

#[test]
fn fuzz_glr_job_loads() {
    let started = Instant::now();
    report("job", fuzz("job", DEFAULT_ITERATIONS, fuzz_job), started);
}

#[test]
fn fuzz_job_payload_parser() {
    let started = Instant::now();
    report("payload", fuzz("payload", DEFAULT_PAYLOAD_ITERATIONS, fuzz_payload), started);
}

/// Writes the real-shaped corpus entries (from the test server) into tests/fuzz/corpus:
/// `cargo test --test reliability_fuzz -- --ignored write_corpus`.
#[test]
#[ignore]
fn write_corpus() {
    use gitlab_runner_api::ffi::options::*;
    let server = server();
    let write = |target: &str, name: &str, text: &str| std::fs::write(corpus_dir(target).join(name), text).unwrap();
    for t in ["runner", "job", "payload"] {
        std::fs::create_dir_all(corpus_dir(t)).unwrap();
    }
    // A runner registered with every option, and features.
    let mut o = ptr::null_mut();
    ok(unsafe { glr_register_options_new(&mut o) });
    unsafe {
        ok(glr_register_options_set_description(o, c"fuzz corpus runner".as_ptr()));
        ok(glr_register_options_add_tag(o, c"docker".as_ptr()));
        ok(glr_register_options_add_tag(o, c"linux".as_ptr()));
        ok(glr_register_options_set_locked(o, 1));
        ok(glr_register_options_set_run_untagged(o, 1));
        ok(glr_register_options_set_maximum_timeout(o, 7200));
        ok(glr_register_options_set_access_level(o, c"ref_protected".as_ptr()));
        ok(glr_register_options_set_executor(o, c"slurm".as_ptr()));
    }
    let mut r = ptr::null_mut();
    ok(unsafe { glr_runner_register(c(&server.url()).as_ptr(), c(&server.registration_token()).as_ptr(), o, &mut r) });
    ok(unsafe { glr_runner_set_feature(r, c"image".as_ptr(), 1) });
    write("runner", "v2_full.json", &runner_dumps_of(r));
    // Jobs: the default payload, and one with dependencies, artifacts, a file variable.
    let id = server.queue_job(json!({"job_info": {"name": "fuzz"}}));
    let j = take_job(&server, r);
    let text = "line one\nsecret: ".to_string() + glr_testserver::DEFAULT_MASKED_VALUE + "\n";
    ok(unsafe { glr_job_log_append(j, text.as_ptr().cast::<c_char>(), text.len()) });
    ok(unsafe { glr_job_log_flush(j) });
    ok(unsafe { glr_job_log_append(j, c"pending ✓\n".as_ptr(), 12) });
    write("job", "v2_running_with_log.json", &job_dumps_of(j));
    write("payload", "default.json", &serde_json::to_string_pretty(&server.job(id).unwrap().payload).unwrap());
    ok(unsafe { glr_job_set_success(j, ptr::null()) });
    write("job", "v2_success.json", &job_dumps_of(j));
    unsafe {
        glr_job_free(j);
        glr_runner_free(r);
        glr_register_options_free(o);
    }
    let minimal = json!({"id": 7, "token": "glcbt-x", "steps": [{"name": "script", "script": ["true"]}]});
    write("payload", "minimal.json", &minimal.to_string());
    let mut odd = server.job(id).unwrap().payload;
    odd["variables"] = json!([{"key": "A", "value": 1, "masked": "yes"}, {"value": "no key"}, "string", null]);
    odd["steps"] = json!({"not": "an array"});
    odd["dependencies"] = json!([{"id": "12", "name": 5}, {}]);
    write("payload", "odd_types.json", &odd.to_string());
    // The Python package's files, as the persistence tests have them.
    for f in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/persist")).unwrap() {
        let p = f.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let target = if name.starts_with("runner") { "runner" } else { "job" };
        std::fs::copy(&p, corpus_dir(target).join(name)).unwrap();
    }
}
