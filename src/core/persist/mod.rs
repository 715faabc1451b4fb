//! `dumps`/`loads` of runners and jobs, and the file helpers behind `dump`/`load`.
//!
//! We write one format, v2: a JSON object tagged with `"format"` and `"version"`. We read v2 and
//! the Python package's v1 arrays (`[1, api_url, id, token, data]` and
//! `[1, "<runner v1 string>", payload, state, log]`), so files written by the Python package keep
//! working. Loading is offline and strict: anything malformed is an `ErrorKind::Parse` whose
//! message says what is wrong but never repeats a string from the input, since dumps hold tokens.
//!
//! Reading walks a `serde_json::Value` by hand instead of deriving `Deserialize`: serde's type
//! errors quote the offending value (`invalid type: string "glrt-..."`), which could leak a token,
//! and by hand every message can name the field. `serde_json`'s recursion limit (128) turns deeply
//! nested input into an error instead of a stack overflow. A v2 job has its two large parts (the
//! log text and the payload) lifted out before that (see "Reading: v2 jobs, fast"), so that a
//! load costs about a scan and a copy of its log; the payload is then kept as the text it was
//! dumped as.
//!
//! Version policy (also in the README): dumps outlive the process that wrote them, and the
//! process that loads one may run another version of the library.
//! - A new optional field whose absence means the old behaviour keeps the version: older readers
//!   ignore keys they do not know, newer readers give the field its default in older dumps.
//! - A field whose meaning or type changes, a field removed, or a new field an older reader must
//!   not ignore (ignoring it would make it send GitLab something wrong, such as log text twice)
//!   takes a new version number. Older readers then refuse the dump ("unsupported format
//!   version") instead of misreading it.
//! - We always write the newest version and keep reading every older one (v2 and Python's v1).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::{Error, Result};
use super::model::{Identity, JobData, JobState, JobView, LoadedJob, LogData, LogView, Registration, RunnerData};
use super::payload_text;
use super::system_id;
use super::trace::MIN_LOG_LIMIT;
use super::url::normalize_api_url;
use super::{info, json, time};

const FORMAT_VERSION: i64 = 2;

/// The two kinds of persisted data; each loader names the other when given the wrong one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Runner,
    Job,
}

impl Kind {
    fn format(self) -> &'static str {
        match self {
            Kind::Runner => "gitlab_runner_api.runner",
            Kind::Job => "gitlab_runner_api.job",
        }
    }
    fn what(self) -> &'static str {
        match self {
            Kind::Runner => "runner data",
            Kind::Job => "job data",
        }
    }
    fn other(self) -> Kind {
        match self {
            Kind::Runner => Kind::Job,
            Kind::Job => Kind::Runner,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing (v2): the model types' own `Serialize`, behind the format header.

#[derive(Serialize)]
struct Tagged<'a, T> {
    format: &'static str,
    version: i64,
    #[serde(flatten)]
    data: &'a T,
}

fn tagged<T>(kind: Kind, data: &T) -> Tagged<'_, T> {
    Tagged { format: kind.format(), version: FORMAT_VERSION, data }
}

fn to_json(value: &impl Serialize) -> String {
    // Only strings, numbers, bools and checked JSON text: serialising cannot fail.
    serde_json::to_string(value).expect("persisted data always serialises")
}

/// The runner in our v2 format (compact JSON, one object).
pub fn runner_to_string(r: &RunnerData) -> String {
    to_json(&tagged(Kind::Runner, r))
}

/// The job in our v2 format (compact JSON, one object, the runner and the payload inside).
pub fn job_to_string(j: &JobData) -> String {
    let mut out = Vec::with_capacity(job_size_hint(&j.view()));
    write_job(&j.view(), &mut out);
    String::from_utf8(out).expect("a dump of UTF-8 text is UTF-8")
}

/// Enough room for most dumps of `j` in one allocation: the log, one escape per 8 bytes of it
/// (a line break per line, some colours), the payload, and the rest, which is small.
pub fn job_size_hint(j: &JobView<'_>) -> usize {
    let log: usize = j.log.text.iter().map(|p| p.len()).sum();
    log + log / 8 + j.payload.len() + 4096
}

/// Appends the job in our v2 format to `out`: the bytes the model types' `Serialize` gives
/// (the header, the runner as a runner dump of its own, then the job's fields), written by hand
/// so that the log is escaped fast (see `json`) and the payload, already checked JSON, is copied
/// rather than parsed again. The output holds no NUL byte: JSON escapes it in strings and
/// allows it nowhere else.
pub fn write_job(j: &JobView<'_>, out: &mut Vec<u8>) {
    let JobView { runner, payload, state, committed, exit_code, log, taken_at } = j;
    out.push(b'{');
    write_member(out, "format", &Kind::Job.format());
    write_member(out, "version", &FORMAT_VERSION);
    write_member(out, "runner", &tagged(Kind::Runner, *runner));
    write_key(out, "payload");
    // As serde_json embeds a RawValue: without the whitespace around it.
    out.extend_from_slice(payload.trim_matches([' ', '\t', '\n', '\r']).as_bytes());
    write_member(out, "state", state);
    write_member(out, "committed", committed);
    write_member(out, "exit_code", exit_code);
    write_key(out, "log");
    write_log(log, out);
    if let Some(t) = taken_at {
        write_member(out, "taken_at", t);
    }
    out.push(b'}');
}

/// `LogData`'s members, left out as its `Serialize` leaves them out.
fn write_log(log: &LogView<'_>, out: &mut Vec<u8>) {
    let LogView { text, acknowledged, remote, pending, mask_mode, limit, limited } = log;
    out.push(b'{');
    write_key(out, "text");
    json::write_str_pieces(out, text);
    write_member(out, "acknowledged", acknowledged);
    write_member(out, "remote", remote);
    if !pending.is_empty() {
        write_member(out, "pending", pending);
    }
    if *mask_mode != 0 {
        write_member(out, "mask_mode", mask_mode);
    }
    if let Some(l) = limit {
        write_member(out, "limit", l);
    }
    if *limited {
        write_member(out, "limited", limited);
    }
    out.push(b'}');
}

/// `"key":` after a `,` unless it is the object's first member. Keys are our own names: no
/// escape needed.
fn write_key(out: &mut Vec<u8>, key: &str) {
    if out.last() != Some(&b'{') {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

fn write_member(out: &mut Vec<u8>, key: &str, value: &impl Serialize) {
    write_key(out, key);
    // Only strings, numbers, bools and the runner's plain data: writing to a Vec cannot fail.
    serde_json::to_writer(&mut *out, value).expect("persisted data always serialises");
}

// ---------------------------------------------------------------------------------------------
// Reading: field extraction. Values are moved out of the parsed tree (no copies of big payloads
// or logs), and every error names the field and the expected type, never the value.

/// How to turn a JSON value into a `T`, and what to call the expected type in messages.
struct Conv<T> {
    expected: &'static str,
    convert: fn(Value) -> std::result::Result<T, Value>,
}

const STRING: Conv<String> = Conv {
    expected: "a string",
    convert: |v| match v {
        Value::String(s) => Ok(s),
        v => Err(v),
    },
};
const BOOL: Conv<bool> = Conv { expected: "a boolean", convert: |v| v.as_bool().ok_or(v) };
const INT: Conv<i64> = Conv { expected: "an integer", convert: |v| v.as_i64().ok_or(v) };
const SIZE: Conv<usize> =
    Conv { expected: "a non-negative integer", convert: |v| v.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or(v) };
const I32: Conv<i32> =
    Conv { expected: "a 32-bit integer", convert: |v| v.as_i64().and_then(|n| i32::try_from(n).ok()).ok_or(v) };
const OBJECT: Conv<Map<String, Value>> = Conv {
    expected: "an object",
    convert: |v| match v {
        Value::Object(m) => Ok(m),
        v => Err(v),
    },
};
const STRING_LIST: Conv<Vec<String>> = Conv {
    expected: "an array of strings",
    convert: |v| match v {
        Value::Array(items) if items.iter().all(Value::is_string) => {
            Ok(items.into_iter().filter_map(|i| (STRING.convert)(i).ok()).collect())
        }
        v => Err(v),
    },
};
const BYTES: Conv<Vec<u8>> = Conv {
    expected: "an array of bytes (integers 0-255)",
    convert: |v| {
        let Value::Array(items) = &v else { return Err(v) };
        items.iter().map(|i| i.as_u64().and_then(|n| u8::try_from(n).ok())).collect::<Option<Vec<u8>>>().ok_or(v)
    },
};
/// Any value, for what is checked separately (the job payload).
const ANY: Conv<Value> = Conv { expected: "any value", convert: Ok };
const STRING_MAP: Conv<BTreeMap<String, String>> = Conv {
    expected: "an object of strings",
    convert: |v| {
        let Value::Object(map) = &v else { return Err(v) };
        map.iter().map(|(k, s)| Some((k.clone(), s.as_str()?.to_string()))).collect::<Option<BTreeMap<_, _>>>().ok_or(v)
    },
};
const BOOL_MAP: Conv<BTreeMap<String, bool>> = Conv {
    expected: "an object of booleans",
    convert: |v| {
        let Value::Object(map) = &v else { return Err(v) };
        map.iter().map(|(k, b)| Some((k.clone(), b.as_bool()?))).collect::<Option<BTreeMap<_, _>>>().ok_or(v)
    },
};

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// "`what` must be `expected`, not a number". For containers the type alone would be confusing
/// ("must be an array of strings, not an array"), so only the expectation is given.
fn wrong_type(what: &str, expected: &str, got: &Value) -> Error {
    match got {
        Value::Array(_) | Value::Object(_) if expected.starts_with(type_name(got)) => {
            Error::parse(format!("{what} must be {expected}"))
        }
        _ => Error::parse(format!("{what} must be {expected}, not {}", type_name(got))),
    }
}

/// A JSON object being read; `prefix` places it in messages (`field "registration.tags"`).
struct Fields {
    map: Map<String, Value>,
    prefix: &'static str,
}

impl Fields {
    fn new(map: Map<String, Value>, prefix: &'static str) -> Self {
        Fields { map, prefix }
    }

    fn name(&self, key: &str) -> String {
        format!("field \"{}{key}\"", self.prefix)
    }

    /// An optional member; `null` counts as absent.
    fn opt<T>(&mut self, key: &str, conv: Conv<T>) -> Result<Option<T>> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => (conv.convert)(v).map(Some).map_err(|v| wrong_type(&self.name(key), conv.expected, &v)),
        }
    }

    fn req<T>(&mut self, key: &str, conv: Conv<T>) -> Result<T> {
        self.opt(key, conv)?.ok_or_else(|| Error::parse(format!("missing {}", self.name(key))))
    }

    fn object(&mut self, key: &str, prefix: &'static str) -> Result<Fields> {
        Ok(Fields::new(self.req(key, OBJECT)?, prefix))
    }

    fn opt_object(&mut self, key: &str, prefix: &'static str) -> Result<Option<Fields>> {
        Ok(self.opt(key, OBJECT)?.map(|m| Fields::new(m, prefix)))
    }
}

/// The elements of a Python v1 array, taken by index (`element 3 (token)` in messages).
struct Elements(Vec<Value>);

impl Elements {
    fn take<T>(&mut self, index: usize, name: &str, conv: Conv<T>) -> Result<T> {
        let v = std::mem::take(&mut self.0[index]);
        (conv.convert)(v).map_err(|v| wrong_type(&format!("element {index} ({name})"), conv.expected, &v))
    }
}

// ---------------------------------------------------------------------------------------------
// Reading: shared checks.

fn parse_json(s: &str) -> Result<Value> {
    if s.trim().is_empty() {
        return Err(Error::parse("empty input"));
    }
    // serde_json's syntax errors say where and what ("EOF while parsing a list at line 1
    // column 5"), never quote the input.
    serde_json::from_str(s).map_err(|e| Error::parse(format!("not valid JSON: {e}")))
}

fn not_object_or_array(v: &Value) -> Error {
    Error::parse(format!("expected a JSON object (or the Python package's v1 array), got {}", type_name(v)))
}

/// `"format"` and `"version"` of a v2 object.
fn check_header(f: &mut Fields, kind: Kind) -> Result<()> {
    let format = f.req("format", STRING)?;
    if format != kind.format() {
        if format == kind.other().format() {
            return Err(Error::parse(format!("this is {}, not {}", kind.other().what(), kind.what())));
        }
        return Err(Error::parse(format!("field \"format\" is not \"{}\"", kind.format())));
    }
    match f.req("version", INT)? {
        FORMAT_VERSION => Ok(()),
        n => Err(Error::parse(format!("unsupported format version {n} (this library reads version {FORMAT_VERSION})"))),
    }
}

/// The first element and the length of a Python v1 array, and that it is not the other kind.
fn check_v1_header(items: &[Value], kind: Kind) -> Result<()> {
    let Some(version) = items.first() else {
        return Err(Error::parse("empty array (the Python package's format is [1, ...])"));
    };
    // Exactly the integer 1: Python would also take `true` and `1.0`, but nothing writes those.
    if version.as_i64() != Some(1) {
        return Err(match version {
            Value::Number(n) => Error::parse(format!("unrecognised data version {n}")),
            other => Error::parse(format!("unrecognised data version ({}, expected 1)", type_name(other))),
        });
    }
    if items.len() != 5 {
        return Err(Error::parse(format!("the Python v1 format has 5 elements, this array has {}", items.len())));
    }
    // A runner has its integer id at index 2, a job its payload object.
    let looks_like_other = match kind {
        Kind::Runner => items[2].is_object(),
        Kind::Job => items[2].is_number(),
    };
    if looks_like_other {
        return Err(Error::parse(format!(
            "this is {} in the Python v1 format, not {}",
            kind.other().what(),
            kind.what()
        )));
    }
    Ok(())
}

/// The one normalisation of `url::normalize_api_url` (so `{api_url}/api/v4/...` never has `//`,
/// a Python v1 bug), with a message that does not repeat the value (it may hold a password).
fn normalise_api_url(url: String) -> Result<String> {
    if url.trim().trim_end_matches('/').is_empty() {
        return Err(Error::parse("api_url is empty"));
    }
    normalize_api_url(&url).map_err(|_| Error::parse("api_url is not an http:// or https:// URL with a host"))
}

/// The raw GitLab payload: kept verbatim, but it must carry what every job operation needs.
fn check_payload(payload: &Value) -> Result<()> {
    let Value::Object(map) = payload else {
        return Err(wrong_type("payload", "an object", payload));
    };
    check_payload_members(map)
}

/// [`check_payload`] of an object's members.
fn check_payload_members(map: &Map<String, Value>) -> Result<()> {
    let id_ok = match map.get("id") {
        Some(Value::String(s)) => s.parse::<i64>().is_ok(),
        Some(v) => v.as_i64().is_some(),
        None => false,
    };
    if !id_ok {
        return Err(Error::parse("payload has no integer \"id\""));
    }
    if !map.get("token").is_some_and(Value::is_string) {
        return Err(Error::parse("payload has no string \"token\""));
    }
    Ok(())
}

fn parse_state(state: &str, allowed: &[JobState]) -> Result<JobState> {
    match JobState::parse(state) {
        Some(s) if allowed.contains(&s) => Ok(s),
        _ => {
            let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            Err(Error::parse(format!("field \"state\" must be one of {}", names.join(", "))))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading: runners.

/// A runner from our v2 format or from the Python package's v1 array.
pub fn runner_from_str(s: &str) -> Result<RunnerData> {
    runner_from_json(s).map_err(|e| e.context(Kind::Runner.what()))
}

fn runner_from_json(s: &str) -> Result<RunnerData> {
    match parse_json(s)? {
        Value::Object(map) => runner_from_v2(map),
        Value::Array(items) => runner_from_v1(items),
        other => Err(not_object_or_array(&other)),
    }
}

fn runner_from_v2(map: Map<String, Value>) -> Result<RunnerData> {
    let mut f = Fields::new(map, "");
    check_header(&mut f, Kind::Runner)?;
    let api_url = normalise_api_url(f.req("api_url", STRING)?)?;
    let id = f.req("id", INT)?;
    let token = f.req("token", STRING)?;
    let token_expires_at = f.opt("token_expires_at", STRING)?;
    // A system_id that is lost or damaged is replaced rather than rejected: GitLab then merely
    // sees a new runner manager, which is better than a runner that cannot be loaded.
    let system_id = match f.opt("system_id", STRING) {
        Ok(Some(id)) if system_id::is_valid(&id) => id,
        _ => system_id::new_system_id(),
    };

    let registration = match f.opt_object("registration", "registration.")? {
        None => Registration::default(),
        Some(mut r) => Registration {
            description: r.opt("description", STRING)?,
            active: r.opt("active", BOOL)?,
            paused: r.opt("paused", BOOL)?,
            locked: r.opt("locked", BOOL)?,
            run_untagged: r.opt("run_untagged", BOOL)?,
            tags: r.opt("tags", STRING_LIST)?.unwrap_or_default(),
            maximum_timeout: r.opt("maximum_timeout", INT)?,
            access_level: r.opt("access_level", STRING)?,
            maintenance_note: r.opt("maintenance_note", STRING)?,
        },
    };
    let identity = match f.opt_object("identity", "identity.")? {
        None => Identity::default(),
        Some(mut i) => identity_from(&mut i)?,
    };
    let features = f.opt("features", BOOL_MAP)?.unwrap_or_default();
    // Both optional (added after version 2 was first written).
    let token_obtained_at = f.opt("token_obtained_at", STRING)?;
    if token_obtained_at.as_deref().is_some_and(|t| time::parse_rfc3339(t).is_none()) {
        return Err(Error::parse("field \"token_obtained_at\" is not an RFC 3339 time"));
    }
    let labels = f.opt("labels", STRING_MAP)?.unwrap_or_default();
    if let Some(key) = labels.iter().find(|(k, v)| !info::is_valid_label(k, v)).map(|(k, _)| k) {
        return Err(Error::parse(format!(
            "field \"labels\" has an invalid label (key {} characters long, or its value)",
            key.chars().count()
        )));
    }

    Ok(RunnerData {
        api_url,
        id,
        token,
        token_expires_at,
        token_obtained_at,
        system_id,
        registration,
        identity,
        features,
        labels,
    })
}

fn identity_from(i: &mut Fields) -> Result<Identity> {
    Ok(Identity {
        name: i.opt("name", STRING)?,
        version: i.opt("version", STRING)?,
        revision: i.opt("revision", STRING)?,
        platform: i.opt("platform", STRING)?,
        architecture: i.opt("architecture", STRING)?,
        executor: i.opt("executor", STRING)?,
    })
}

/// `[1, api_url, id, token, data]`, `data` being the Python registration body minus token/active.
fn runner_from_v1(items: Vec<Value>) -> Result<RunnerData> {
    check_v1_header(&items, Kind::Runner)?;
    let mut e = Elements(items);
    let api_url = normalise_api_url(e.take(1, "api_url", STRING)?)?;
    let id = e.take(2, "id", INT)?;
    let token = e.take(3, "token", STRING)?;
    let mut data = Fields::new(e.take(4, "data", OBJECT)?, "data.");

    let (identity, info_access_level) = match data.opt_object("info", "data.info.")? {
        None => (Identity::default(), None),
        Some(mut info) => (identity_from(&mut info)?, info.opt("access_level", STRING)?),
    };
    // Python 1.0.4 put access_level into `info` (where GitLab ignores it); accept both places.
    let access_level = data.opt("access_level", STRING)?.or(info_access_level);
    let tags = match data.opt("tag_list", STRING)? {
        // GitLab's own parsing of tag_list: comma separated, blanks trimmed, empty items dropped.
        Some(list) => list.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect(),
        None => Vec::new(),
    };
    let registration = Registration {
        description: data.opt("description", STRING)?,
        locked: data.opt("locked", BOOL)?,
        run_untagged: data.opt("run_untagged", BOOL)?,
        tags,
        maximum_timeout: data.opt("maximum_timeout", INT)?,
        access_level,
        ..Registration::default()
    };

    Ok(RunnerData {
        api_url,
        id,
        token,
        token_expires_at: None,
        system_id: system_id::new_system_id(),
        registration,
        identity,
        ..RunnerData::default()
    })
}

// ---------------------------------------------------------------------------------------------
// Reading: jobs.

/// A job from our v2 format or from the Python package's v1 array.
pub fn load_job(s: &str) -> Result<LoadedJob> {
    job_from_json(s).map_err(|e| e.context(Kind::Job.what()))
}

/// [`load_job`]'s data.
#[cfg(test)]
fn job_from_str(s: &str) -> Result<JobData> {
    load_job(s).map(|job| job.data)
}

fn job_from_json(s: &str) -> Result<LoadedJob> {
    if let Some(job) = job_from_v2_lifted(s) {
        return job;
    }
    let data = match parse_json(s)? {
        Value::Object(map) => job_from_v2(map, payload_from_value),
        Value::Array(items) => job_from_v1(items),
        other => Err(not_object_or_array(&other)),
    }?;
    Ok(LoadedJob { data, info: None })
}

/// The payload parsed with the rest of the dump: checked, and written back as JSON text.
fn payload_from_value(payload: Value) -> Result<String> {
    check_payload(&payload)?;
    Ok(payload.to_string())
}

/// `payload_text` turns the member `payload` into the job's payload text (checking it).
fn job_from_v2(map: Map<String, Value>, payload_text: impl FnOnce(Value) -> Result<String>) -> Result<JobData> {
    let mut f = Fields::new(map, "");
    check_header(&mut f, Kind::Job)?;
    let runner = runner_from_v2(f.req("runner", OBJECT)?).map_err(|e| e.context("runner"))?;
    let payload = payload_text(f.req("payload", ANY)?)?;
    let state = parse_state(&f.req("state", STRING)?, &ALL_STATES)?;
    let committed = f.req("committed", BOOL)?;
    let exit_code = f.opt("exit_code", I32)?;
    // Optional (added after version 2 was first written): older dumps have no deadline.
    let taken_at = f.opt("taken_at", INT)?;

    let mut l = f.object("log", "log.")?;
    let text = l.req("text", STRING)?;
    let acknowledged = l.req("acknowledged", SIZE)?;
    // `remote` may be left out (hand-written files): then GitLab has what it acknowledged.
    let remote = l.opt("remote", SIZE)?.unwrap_or(acknowledged);
    let pending = l.opt("pending", BYTES)?.unwrap_or_default();
    let mask_mode = match l.opt("mask_mode", I32)?.unwrap_or(0) {
        m @ 0..=4 => m as u8,
        m => return Err(Error::parse(format!("field \"log.mask_mode\" ({m}) is not a masking state"))),
    };
    // Both optional (added after version 2 was first written; older dumps have neither).
    let limit = l.opt("limit", SIZE)?;
    let limited = l.opt("limited", BOOL)?.unwrap_or(false);
    if limit.is_some_and(|n| n < MIN_LOG_LIMIT) {
        return Err(Error::parse(format!("field \"log.limit\" is below the smallest limit ({MIN_LOG_LIMIT} bytes)")));
    }
    // The offsets decide where the upload resumes: out of range, they would resend or skip log.
    if acknowledged > text.len() {
        return Err(Error::parse(format!(
            "field \"log.acknowledged\" ({acknowledged}) is beyond the end of the log ({} bytes)",
            text.len()
        )));
    }
    if remote < acknowledged {
        return Err(Error::parse(format!(
            "field \"log.remote\" ({remote}) is less than \"log.acknowledged\" ({acknowledged})"
        )));
    }

    Ok(JobData {
        runner: Arc::new(runner),
        payload,
        state,
        committed,
        exit_code,
        log: LogData { text, acknowledged, remote, pending, mask_mode, limit, limited },
        taken_at,
    })
}

const ALL_STATES: [JobState; 5] =
    [JobState::Running, JobState::Success, JobState::Failed, JobState::Canceling, JobState::Canceled];

/// `[1, "<runner v1 JSON string>", payload, state, log]`.
fn job_from_v1(items: Vec<Value>) -> Result<JobData> {
    check_v1_header(&items, Kind::Job)?;
    let mut e = Elements(items);
    let runner = runner_from_json(&e.take(1, "runner", STRING)?).map_err(|e| e.context("runner"))?;
    let payload = e.take(2, "payload", OBJECT).map(Value::Object)?;
    check_payload(&payload)?;
    let state = parse_state(&e.take(3, "state", STRING)?, &[JobState::Running, JobState::Success, JobState::Failed])?;
    let text = e.take(4, "log", STRING)?;
    // Python assumed everything stored had been uploaded (it never stored the offset), and the
    // job came from a job request, so GitLab already has it running.
    let len = text.len();
    Ok(JobData {
        runner: Arc::new(runner),
        payload: payload.to_string(),
        state,
        committed: true,
        exit_code: None,
        log: LogData { text, acknowledged: len, remote: len, pending: Vec::new(), mask_mode: 0, ..Default::default() },
        taken_at: None,
    })
}

// ---------------------------------------------------------------------------------------------
// Reading: v2 jobs, fast. A dump is mostly its log (a MiB and more) and its payload (kilobytes):
// parsing both into a `Value` tree, as `job_from_v2` gets them, costs most of a load, and the
// ordinary reading parses the payload a second time for the job's accessors. So the two are
// lifted out first: the log text read straight into its `String` (`json::read_str`), the payload
// read once for both its checks and the job (`payload_text`) and kept as the text it was dumped
// as. serde_json parses what is left, with stand-ins where they were, and `job_from_v2` reads
// that as always. Whenever the input is not plainly what our writer gives (duplicate members,
// escaped keys, anything this reading cannot vouch for), the ordinary reading runs instead and
// gives exactly the result and error it always gave.

/// The large parts of a v2 job dump, and where they were in it.
struct Lifted {
    payload: std::ops::Range<usize>,
    payload_depth: usize,
    text: std::ops::Range<usize>,
    log_text: String,
}

/// A v2 job read with its large parts lifted out; None: read it the ordinary way.
fn job_from_v2_lifted(s: &str) -> Option<Result<LoadedJob>> {
    let lifted = lift_job_parts(s)?;
    let payload = &s[lifted.payload.clone()];
    // The payload's strings were checked by the walk that found it, more strictly than
    // serde_json checks what it skips (lone surrogates).
    let members = payload_text::read_nested(payload, lifted.payload_depth)?;
    check_payload_members(members.read_members()).ok()?;
    // An error here (an empty token) is the job's to give, and it gives it again when it reads
    // the payload that the ordinary reading hands it.
    let info = members.job_info().ok()?;
    let rest = with_stand_ins(s, [(lifted.payload.clone(), "0"), (lifted.text.clone(), "\"\"")]);
    // Any error here is reported by the ordinary reading, with its own positions.
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(&rest) else { return None };
    let Some(Value::Object(log)) = map.get_mut("log") else { return None };
    log.insert("text".into(), Value::String(lifted.log_text));
    let data = job_from_v2(map, |_stand_in| Ok(payload.to_string()));
    Some(data.map(|data| LoadedJob { data, info: Some(info) }))
}

/// Finds `payload` and `log.text` in the object `s`, each exactly once (with duplicates,
/// serde_json keeps the last one, which need not be the one lifted), and reads the text.
fn lift_job_parts(s: &str) -> Option<Lifted> {
    let mut payloads = Vec::new();
    let mut texts = Vec::new();
    let mut logs = 0;
    json::Cursor::new(s).members(|c, key| {
        match key {
            "payload" => {
                c.peek()?;
                let start = c.at();
                let depth = c.skip_value()?;
                payloads.push((start..c.at(), depth));
            }
            "log" => {
                logs += 1;
                c.members(|c, key| {
                    if key != "text" {
                        return c.skip_value().map(drop);
                    }
                    c.peek()?;
                    let start = c.at();
                    let text = c.read_str()?;
                    texts.push((start..c.at(), text));
                    Some(())
                })?;
            }
            _ => {
                c.skip_value()?;
            }
        }
        Some(())
    })?;
    let ([(payload, payload_depth)], [(text, log_text)], 1) = (&mut payloads[..], &mut texts[..], logs) else {
        return None;
    };
    Some(Lifted {
        payload: payload.clone(),
        payload_depth: *payload_depth,
        text: text.clone(),
        log_text: std::mem::take(log_text),
    })
}

/// `s` with each range replaced by its stand-in (the ranges do not overlap).
fn with_stand_ins<const N: usize>(s: &str, mut parts: [(std::ops::Range<usize>, &str); N]) -> String {
    parts.sort_by_key(|(range, _)| range.start);
    let mut out = String::with_capacity(s.len() - parts.iter().map(|(r, _)| r.len()).sum::<usize>() + 16);
    let mut from = 0;
    for (range, stand_in) in parts {
        out.push_str(&s[from..range.start]);
        out.push_str(stand_in);
        from = range.end;
    }
    out.push_str(&s[from..]);
    out
}

// ---------------------------------------------------------------------------------------------
// Files.

/// Write `contents` to `path` so that readers see either the old file or the new one, never a
/// part: a temporary file in the same directory (same filesystem, so rename is atomic), created
/// with mode 0600 because dumps hold tokens, written, fsynced, then renamed over `path`.
pub fn write_file_atomic(path: &Path, contents: &str) -> Result<()> {
    write_bytes_atomic(path, contents.as_bytes())
}

/// [`write_file_atomic`] for text already in bytes (a dump written with [`write_job`]).
pub fn write_bytes_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let io_err = |e: std::io::Error| Error::io(format!("cannot write {}: {e}", path.display()));
    let file_name =
        path.file_name().ok_or_else(|| Error::io(format!("cannot write {}: not a file name", path.display())))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };

    let (tmp_path, mut file) = create_temp_file(dir, file_name).map_err(io_err)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp_path, path)) {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(io_err(e));
    }
    // Make the rename itself durable. Best effort: some filesystems cannot sync a directory.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `.<name>.<pid>.<n>.tmp` next to the target, created exclusively (never reusing or following
/// an existing file). The name is unique per process and call; a clash only with a stale file.
fn create_temp_file(dir: &Path, file_name: &std::ffi::OsStr) -> std::io::Result<(PathBuf, std::fs::File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = std::ffi::OsString::from(".");
        name.push(file_name);
        name.push(format!(".{}.{n}.tmp", std::process::id()));
        let tmp_path = dir.join(name);

        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&tmp_path) {
            Ok(file) => return Ok((tmp_path, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The whole file as text. A missing or unreadable file is `Io`; content that is not UTF-8 is
/// malformed data, so `Parse`.
pub fn read_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|_| Error::parse(format!("{} is not UTF-8 text", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::ErrorKind;
    use crate::core::payload::MAX_PAYLOAD_DEPTH;
    use serde_json::json;

    // The Python package's real outputs (reference sections 1.9, 3.1 and 3.2), byte for byte.
    const V1_RUNNER_CERN: &str = include_str!("../../../tests/data/persist/runner_v1_cern.json");
    const V1_RUNNER_CLI: &str = include_str!("../../../tests/data/persist/runner_v1_cli.json");
    const V1_RUNNER_FULL: &str = include_str!("../../../tests/data/persist/runner_v1_full.json");
    const V1_RUNNER_OF_JOB: &str = include_str!("../../../tests/data/persist/runner_v1_job_owner.json");
    const V1_JOB_RUNNING: &str = include_str!("../../../tests/data/persist/job_v1_running.json");
    const V1_JOB_FAILED: &str = include_str!("../../../tests/data/persist/job_v1_failed.json");
    // Our own format, pinned: a change here breaks every file already written.
    const V2_RUNNER: &str = include_str!("../../../tests/data/persist/runner_v2.json");
    const V2_JOB: &str = include_str!("../../../tests/data/persist/job_v2.json");

    const PY_HEADER: &str = "Running with gitlab_runner_api 1.0.4\n";

    fn full_runner() -> RunnerData {
        RunnerData {
            api_url: "https://gitlab.example.com".into(),
            id: 6602,
            token: "glrt-SECRETTOKEN".into(),
            token_expires_at: Some("2030-01-02T03:04:05.000Z".into()),
            system_id: "s_0123456789ab".into(),
            registration: Registration {
                description: Some("Déscription ☃".into()),
                active: Some(true),
                paused: Some(false),
                locked: Some(true),
                run_untagged: Some(false),
                tags: vec!["docker".into(), "big iron".into()],
                maximum_timeout: Some(3600),
                access_level: Some("ref_protected".into()),
                maintenance_note: Some("ask \"ops\"".into()),
            },
            identity: Identity {
                name: Some("myrunner".into()),
                version: Some("1.2".into()),
                revision: Some("abc".into()),
                platform: Some("linux".into()),
                architecture: Some("amd64".into()),
                executor: Some("custom".into()),
            },
            features: [("image".to_string(), false), ("refspecs".to_string(), true)].into(),
            ..RunnerData::default()
        }
    }

    fn minimal_runner() -> RunnerData {
        RunnerData {
            api_url: "http://127.0.0.1:8080".into(),
            token: "SECRETTOKEN".into(),
            system_id: "r_abcdefABCDEF".into(),
            ..RunnerData::default()
        }
    }

    fn sample_job(state: JobState) -> JobData {
        JobData {
            runner: Arc::new(full_runner()),
            // Keys deliberately not sorted: the payload must come back in GitLab's order.
            payload: json!({
                "id": 1234567, "token": "SECRETJOB", "zeta": [1, 2.5, null, {"b": 1, "a": 2}],
                "job_info": {"name": "build", "stage": "test"}, "alpha": "üñí €"
            })
            .to_string(),
            state,
            committed: true,
            exit_code: Some(3),
            log: LogData {
                text: "Running ✓\nüñí € 😀\n".into(),
                acknowledged: 11,
                remote: 14,
                pending: vec![0xf0, 0x9f, 0x98],
                mask_mode: 2,
                ..Default::default()
            },
            taken_at: None,
        }
    }

    // ---- v2 round trips and the pinned format ----

    #[test]
    fn runner_round_trips() {
        for r in [full_runner(), minimal_runner()] {
            let s = runner_to_string(&r);
            assert_eq!(runner_from_str(&s).unwrap(), r, "{s}");
        }
    }

    #[test]
    fn runner_v2_format_is_pinned() {
        assert_eq!(runner_to_string(&full_runner()), V2_RUNNER);
        assert_eq!(runner_from_str(V2_RUNNER).unwrap(), full_runner());
        // Unset members are left out, the rest is always there.
        let s = runner_to_string(&minimal_runner());
        assert_eq!(
            s,
            r#"{"format":"gitlab_runner_api.runner","version":2,"api_url":"http://127.0.0.1:8080","id":0,"token":"SECRETTOKEN","token_expires_at":null,"system_id":"r_abcdefABCDEF","registration":{"tags":[]},"identity":{},"features":{}}"#
        );
    }

    #[test]
    fn job_round_trips_in_every_state() {
        for state in ALL_STATES {
            let mut j = sample_job(state);
            assert_eq!(job_from_str(&job_to_string(&j)).unwrap(), j);
            // And without the optional parts.
            j.exit_code = None;
            j.committed = false;
            j.log = LogData {
                text: String::new(),
                acknowledged: 0,
                remote: 0,
                pending: Vec::new(),
                mask_mode: 0,
                ..Default::default()
            };
            j.runner = Arc::new(minimal_runner());
            let s = job_to_string(&j);
            assert!(!s.contains("pending"), "{s}");
            assert_eq!(job_from_str(&s).unwrap(), j);
        }
    }

    #[test]
    fn job_v2_format_is_pinned() {
        assert_eq!(job_to_string(&sample_job(JobState::Canceling)), V2_JOB);
        let j = job_from_str(V2_JOB).unwrap();
        assert_eq!(j, sample_job(JobState::Canceling));
        // The payload comes back verbatim, in GitLab's key order.
        assert_eq!(
            j.payload,
            r#"{"id":1234567,"token":"SECRETJOB","zeta":[1,2.5,null,{"b":1,"a":2}],"job_info":{"name":"build","stage":"test"},"alpha":"üñí €"}"#
        );
    }

    /// The model types' own `Serialize` behind the format header: what `write_job` writes by hand.
    fn derived(j: &JobData) -> String {
        #[derive(Serialize)]
        struct Derived<'a> {
            format: &'static str,
            version: i64,
            runner: Tagged<'a, RunnerData>,
            #[serde(flatten)]
            job: &'a JobData,
        }
        let d = Derived {
            format: Kind::Job.format(),
            version: FORMAT_VERSION,
            runner: tagged(Kind::Runner, &j.runner),
            job: j,
        };
        serde_json::to_string(&d).unwrap()
    }

    #[test]
    fn the_hand_written_job_is_the_derived_serialisation() {
        let mut jobs = Vec::new();
        for state in ALL_STATES {
            let mut j = sample_job(state);
            jobs.push(j.clone());
            j.exit_code = None;
            j.taken_at = Some(-5);
            j.log.pending.clear();
            j.log.mask_mode = 0;
            j.log.limit = Some(4096);
            j.log.limited = true;
            // Every ASCII character and some longer ones, across the escaper's chunks.
            j.log.text = (0u8..0x80).map(char::from).collect::<String>() + &"é😀\n\"\u{1b}[0m".repeat(40);
            // GitLab's body as it came: a RawValue drops the whitespace around it.
            j.payload = format!(" \n\t{}\r\n ", j.payload);
            jobs.push(j.clone());
            j.runner = Arc::new(minimal_runner());
            j.log = LogData::default();
            jobs.push(j);
        }
        for j in &jobs {
            assert_eq!(job_to_string(j), derived(j));
            let mut out = b"prefix".to_vec();
            write_job(&j.view(), &mut out);
            assert_eq!(&out[..6], b"prefix");
            assert_eq!(std::str::from_utf8(&out[6..]).unwrap(), derived(j));
            assert!(!out.contains(&0));
        }
    }

    #[test]
    fn token_lifetime_labels_and_the_deadline_survive_and_older_dumps_have_none() {
        let mut j = sample_job(JobState::Running);
        j.taken_at = Some(1_700_000_000);
        let runner = Arc::make_mut(&mut j.runner);
        runner.token_obtained_at = Some("2029-12-02T03:04:05Z".into());
        runner.labels = [("site".to_string(), "cern-batch".to_string())].into();
        let s = job_to_string(&j);
        assert!(s.contains(r#""token_obtained_at":"2029-12-02T03:04:05Z""#), "{s}");
        assert!(s.contains(r#""labels":{"site":"cern-batch"}"#), "{s}");
        assert!(s.contains(r#""taken_at":1700000000"#), "{s}");
        assert_eq!(job_from_str(&s).unwrap(), j);
        let older = job_from_str(V2_JOB).unwrap();
        assert_eq!(
            (older.taken_at, older.runner.token_obtained_at.clone(), older.runner.labels.len()),
            (None, None, 0)
        );
        let with = |key: &str, value: Value| edit(V2_RUNNER, |v| v[key] = value);
        assert!(runner_from_str(&with("token_obtained_at", json!("yesterday"))).is_err());
        assert!(runner_from_str(&with("labels", json!({"a b": "x"}))).is_err());
        assert!(runner_from_str(&with("labels", json!({"site": 1}))).is_err());
        assert!(runner_from_str(&with("labels", json!({"site": "x"}))).is_ok());
    }

    #[test]
    fn the_log_limit_survives_and_older_dumps_have_the_default() {
        let mut j = sample_job(JobState::Running);
        j.log.limit = Some(2048);
        j.log.limited = true;
        let s = job_to_string(&j);
        assert!(s.contains(r#""limit":2048,"limited":true"#), "{s}");
        assert_eq!(job_from_str(&s).unwrap(), j);
        let older = job_from_str(V2_JOB).unwrap();
        assert_eq!((older.log.limit, older.log.limited), (None, false));
        let too_small = set(&s, "/log/limit", json!(10));
        assert!(job_from_str(&too_small).unwrap_err().message.contains("log.limit"));
    }

    #[test]
    fn v2_details_on_load() {
        // Trailing slashes are dropped.
        let s = runner_to_string(&RunnerData { api_url: "https://gitlab.example.com//".into(), ..full_runner() });
        assert_eq!(runner_from_str(&s).unwrap().api_url, "https://gitlab.example.com");
        // A missing or damaged system_id is replaced by a fresh valid one.
        for bad in [json!(null), json!("x_123"), json!(17)] {
            let s = edit(V2_RUNNER, |v| v["system_id"] = bad);
            let r = runner_from_str(&s).unwrap();
            assert!(system_id::is_valid(&r.system_id), "{}", r.system_id);
        }
        let s = edit(V2_RUNNER, |v| drop(v.as_object_mut().unwrap().remove("system_id")));
        assert!(system_id::is_valid(&runner_from_str(&s).unwrap().system_id));
        // `remote` may be absent (then it is `acknowledged`); numeric-string job ids are accepted.
        let s = edit(V2_JOB, |v| {
            v["log"].as_object_mut().unwrap().remove("remote");
            v["payload"]["id"] = json!("1234567");
        });
        let j = job_from_str(&s).unwrap();
        assert_eq!((j.log.acknowledged, j.log.remote), (11, 11));
        // Everything may be acknowledged.
        let s = edit(V2_JOB, |v| {
            v["log"]["acknowledged"] = json!(28);
            v["log"]["remote"] = json!(28);
        });
        assert_eq!(job_from_str(&s).unwrap().log.acknowledged, sample_job(JobState::Running).log.text.len());
    }

    // ---- the Python package's v1 files ----

    fn assert_fresh_extras(r: &RunnerData) {
        assert!(system_id::is_valid(&r.system_id), "{}", r.system_id);
        assert_eq!(r.token_expires_at, None);
        assert!(r.features.is_empty());
        assert_eq!((r.registration.active, r.registration.paused), (None, None));
    }

    #[test]
    fn python_v1_runners_load() {
        let r = runner_from_str(V1_RUNNER_CERN).unwrap();
        assert_eq!(
            (r.api_url.as_str(), r.id, r.token.as_str()),
            ("https://gitlab.cern.ch", 0, "9d3b6fc126fd34513c3bc46a6146d5")
        );
        assert_eq!(r.registration, Registration::default());
        assert_eq!(r.identity, Identity::default());
        assert_fresh_extras(&r);

        // What the register-runner CLI writes.
        let r = runner_from_str(V1_RUNNER_CLI).unwrap();
        assert_eq!((r.api_url.as_str(), r.id, r.token.as_str()), ("http://127.0.0.1:35119", 6602, "abcdefghij"));
        assert_eq!(r.registration.locked, Some(true));
        assert_eq!(r.registration.maximum_timeout, Some(7200));
        assert!(r.registration.tags.is_empty());
        assert_eq!(r.identity, Identity::default());
        assert_fresh_extras(&r);

        let r = runner_from_str(V1_RUNNER_FULL).unwrap();
        assert_eq!((r.api_url.as_str(), r.id, r.token.as_str()), ("http://127.0.0.1:36137", 6602, "RUNNERTOKEN"));
        let expected_identity = Identity {
            name: Some("myrunner".into()),
            version: Some("1.2".into()),
            revision: Some("abc".into()),
            platform: Some("linux".into()),
            architecture: Some("amd64".into()),
            executor: Some("custom".into()),
        };
        assert_eq!(r.identity, expected_identity);
        let expected_registration = Registration {
            description: Some("desc".into()),
            locked: Some(true),
            run_untagged: Some(false),
            tags: vec!["a".into(), "b".into()],
            maximum_timeout: Some(3600),
            access_level: Some("ref_protected".into()),
            ..Registration::default()
        };
        assert_eq!(r.registration, expected_registration);
        assert_fresh_extras(&r);

        let r = runner_from_str(V1_RUNNER_OF_JOB).unwrap();
        assert_eq!((r.api_url.as_str(), r.id, r.token.as_str()), ("http://127.0.0.1:39935", 7, "RTOKEN"));
        assert_eq!(r.identity.name.as_deref(), Some("custom"));
        assert_eq!(r.registration.locked, Some(true));
        assert_fresh_extras(&r);
    }

    #[test]
    fn python_v1_runner_details() {
        let r = runner_from_str(r#"[1, "https://gitlab.cern.ch/", 0, "T", {"info": {}, "tag_list": ""}]"#).unwrap();
        assert_eq!(r.api_url, "https://gitlab.cern.ch");
        assert!(r.registration.tags.is_empty());
        // access_level at the top level (where GitLab wants it), tags as GitLab parses tag_list.
        let r =
            runner_from_str(r#"[1, "http://h", 1, "T", {"access_level": "not_protected", "tag_list": " a , b,,"}]"#)
                .unwrap();
        assert_eq!(r.registration.access_level.as_deref(), Some("not_protected"));
        assert_eq!(r.registration.tags, ["a", "b"]);
        // A loaded v1 runner is saved as v2 and loads back the same.
        let r = runner_from_str(V1_RUNNER_FULL).unwrap();
        assert_eq!(runner_from_str(&runner_to_string(&r)).unwrap(), r);
    }

    #[test]
    fn python_v1_jobs_load() {
        let owner = runner_from_str(V1_RUNNER_OF_JOB).unwrap();
        for (s, state, log) in [
            (V1_JOB_RUNNING, JobState::Running, PY_HEADER.to_string()),
            (V1_JOB_FAILED, JobState::Failed, format!("{PY_HEADER}step 1\n")),
        ] {
            let j = job_from_str(s).unwrap();
            assert_eq!(RunnerData { system_id: owner.system_id.clone(), ..(*j.runner).clone() }, owner);
            let payload: Value = serde_json::from_str(&j.payload).unwrap();
            assert_eq!(payload["id"], 42);
            assert_eq!(payload["token"], "JOBTOK");
            assert_eq!(payload["job_info"]["name"], "test");
            assert_eq!(payload["git_info"]["ref_type"], "branch");
            assert_eq!(payload["variables"][0]["value"], "g/p");
            assert_eq!(j.state, state);
            // Python assumed all of the stored log was uploaded.
            assert_eq!(
                j.log,
                LogData {
                    acknowledged: log.len(),
                    remote: log.len(),
                    text: log,
                    pending: vec![],
                    mask_mode: 0,
                    ..Default::default()
                }
            );
            assert!(j.committed);
            assert_eq!(j.exit_code, None);
            // Migrating to v2 keeps everything.
            assert_eq!(job_from_str(&job_to_string(&j)).unwrap(), j);
        }
        assert_eq!(PY_HEADER.len(), 37);
    }

    // ---- hostile and broken input ----

    /// `json` re-serialised after `change`.
    fn edit(json: &str, change: impl FnOnce(&mut Value)) -> String {
        let mut v: Value = serde_json::from_str(json).unwrap();
        change(&mut v);
        v.to_string()
    }

    fn remove(json: &str, pointer: &str) -> String {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        edit(json, |v| drop(v.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key)))
    }

    fn set(json: &str, pointer: &str, new: Value) -> String {
        edit(json, |v| *v.pointer_mut(pointer).unwrap() = new)
    }

    fn assert_parse_error(result: Result<impl std::fmt::Debug>, prefix: &str, input: &str, expect: &str) {
        let e = result.expect_err(&format!("accepted: {input:.200}"));
        assert_eq!(e.kind, ErrorKind::Parse, "{e}");
        assert!(e.message.starts_with(prefix), "{e}");
        assert!(e.message.contains(expect), "{:?} does not contain {expect:?} for {input:.200}", e.message);
        assert!(!e.message.contains("SECRET"), "leaks a secret: {e}");
        assert!(e.message.len() < 200, "too long: {e}");
    }

    /// Inputs that are broken for both loaders, with what the message must say.
    fn generic_bad_inputs() -> Vec<(String, &'static str)> {
        vec![
            (String::new(), "empty input"),
            (" \n\t".into(), "empty input"),
            ("null".into(), "got null"),
            ("42".into(), "got a number"),
            ("\"SECRET\"".into(), "got a string"),
            ("[]".into(), "empty array"),
            ("{}".into(), "missing field \"format\""),
            ("[2, \"http://h\", 1, \"SECRET\", {}]".into(), "unrecognised data version 2"),
            ("[true, \"http://h\", 1, \"SECRET\", {}]".into(), "unrecognised data version (a boolean"),
            ("[1.0, \"http://h\", 1, \"SECRET\", {}]".into(), "unrecognised data version 1.0"),
            ("[\"1\", \"http://h\", 1, \"SECRET\", {}]".into(), "unrecognised data version (a string"),
            ("[1, \"http://h\", 1, \"SECRET\"]".into(), "has 4"),
            ("[1, \"http://h\", 1, \"SECRET\", {}, 5]".into(), "has 6"),
            ("[".repeat(10_000), "recursion limit"),
            ("{\"a\":".repeat(10_000), "recursion limit"),
            (format!("[1{}]", "0".repeat(400)), "not valid JSON"),
            (format!("[1e{}]", "9".repeat(100_000)), "not valid JSON"),
            ("x".repeat(1 << 20), "not valid JSON"),
            ("{\"format\":\"\\ud800\"}".into(), "not valid JSON"),
            ("{\"format\":\"SECRET\"".into(), "not valid JSON"),
            (format!("{V2_RUNNER} x"), "not valid JSON"),
            (format!("{V2_RUNNER}{V2_RUNNER}"), "not valid JSON"),
        ]
    }

    #[test]
    fn bad_runner_inputs_are_parse_errors() {
        let mut cases = generic_bad_inputs();
        cases.extend([
            // Wrong kind, in both formats.
            (V2_JOB.to_string(), "this is job data, not runner data"),
            (V1_JOB_RUNNING.to_string(), "this is job data in the Python v1 format, not runner data"),
            // Header.
            (set(V2_RUNNER, "/version", json!(3)), "unsupported format version 3"),
            (set(V2_RUNNER, "/version", json!(1)), "unsupported format version 1"),
            (set(V2_RUNNER, "/version", json!("2")), "field \"version\" must be an integer, not a string"),
            (remove(V2_RUNNER, "/version"), "missing field \"version\""),
            (remove(V2_RUNNER, "/format"), "missing field \"format\""),
            (set(V2_RUNNER, "/format", json!("SECRET")), "field \"format\" is not \"gitlab_runner_api.runner\""),
            (set(V2_RUNNER, "/format", json!(5)), "field \"format\" must be a string, not a number"),
            // Missing and wrong-typed fields.
            (remove(V2_RUNNER, "/api_url"), "missing field \"api_url\""),
            (remove(V2_RUNNER, "/id"), "missing field \"id\""),
            (remove(V2_RUNNER, "/token"), "missing field \"token\""),
            (set(V2_RUNNER, "/token", json!(null)), "missing field \"token\""),
            (set(V2_RUNNER, "/token", json!(["SECRET"])), "field \"token\" must be a string, not an array"),
            (set(V2_RUNNER, "/api_url", json!("/")), "api_url is empty"),
            (set(V2_RUNNER, "/id", json!("SECRET")), "field \"id\" must be an integer, not a string"),
            (set(V2_RUNNER, "/id", json!(1.5)), "field \"id\" must be an integer"),
            (set(V2_RUNNER, "/id", json!(u64::MAX)), "field \"id\" must be an integer"),
            (set(V2_RUNNER, "/token_expires_at", json!(5)), "field \"token_expires_at\" must be a string"),
            (set(V2_RUNNER, "/registration", json!("SECRET")), "field \"registration\" must be an object"),
            (set(V2_RUNNER, "/registration/tags", json!("a,b")), "field \"registration.tags\" must be an array"),
            (set(V2_RUNNER, "/registration/tags", json!(["a", 1])), "must be an array of strings"),
            (set(V2_RUNNER, "/registration/locked", json!("yes")), "field \"registration.locked\" must be a boolean"),
            (set(V2_RUNNER, "/registration/maximum_timeout", json!(1e3)), "registration.maximum_timeout"),
            (set(V2_RUNNER, "/identity/name", json!({"x": "SECRET"})), "field \"identity.name\" must be a string"),
            (set(V2_RUNNER, "/features", json!({"image": 1})), "field \"features\" must be an object of booleans"),
            (set(V2_RUNNER, "/features", json!([true])), "field \"features\" must be an object of booleans"),
            // Python v1 element and data types.
            ("[1, 5, 1, \"SECRET\", {}]".into(), "element 1 (api_url) must be a string, not a number"),
            ("[1, \"http://h\", \"SECRET\", \"SECRET\", {}]".into(), "element 2 (id) must be an integer"),
            ("[1, \"http://h\", 1, 5, {}]".into(), "element 3 (token) must be a string"),
            ("[1, \"http://h\", 1, \"SECRET\", \"SECRET\"]".into(), "element 4 (data) must be an object"),
            ("[1, \"http://h\", 1, \"SECRET\", {\"info\": []}]".into(), "field \"data.info\" must be an object"),
            ("[1, \"http://h\", 1, \"SECRET\", {\"info\": {\"name\": 5}}]".into(), "field \"data.info.name\""),
            ("[1, \"http://h\", 1, \"SECRET\", {\"tag_list\": [\"a\"]}]".into(), "field \"data.tag_list\""),
            ("[1, \"http://h\", 1, \"SECRET\", {\"locked\": \"SECRET\"}]".into(), "field \"data.locked\""),
            ("[1, \"http://h\", 1, \"SECRET\", {\"maximum_timeout\": 1.5}]".into(), "data.maximum_timeout"),
            ("[1, \"\", 1, \"SECRET\", {}]".into(), "api_url is empty"),
        ]);
        for (input, expect) in &cases {
            assert_parse_error(runner_from_str(input), "runner data: ", input, expect);
        }
    }

    #[test]
    fn bad_job_inputs_are_parse_errors() {
        let v1 = V1_JOB_RUNNING;
        let mut cases = generic_bad_inputs();
        cases.extend([
            (V2_RUNNER.to_string(), "this is runner data, not job data"),
            (V1_RUNNER_FULL.to_string(), "this is runner data in the Python v1 format, not job data"),
            (set(V2_JOB, "/version", json!(3)), "unsupported format version 3"),
            (set(V2_JOB, "/format", json!("gitlab_runner_api.jobs")), "field \"format\" is not"),
            // The runner inside.
            (remove(V2_JOB, "/runner"), "missing field \"runner\""),
            (set(V2_JOB, "/runner", json!("SECRET")), "field \"runner\" must be an object"),
            (remove(V2_JOB, "/runner/token"), "job data: runner: missing field \"token\""),
            (set(V2_JOB, "/runner/version", json!(3)), "job data: runner: unsupported format version 3"),
            (set(V2_JOB, "/runner/format", json!("gitlab_runner_api.job")), "runner: this is job data"),
            // The payload.
            (remove(V2_JOB, "/payload"), "missing field \"payload\""),
            (set(V2_JOB, "/payload", json!(["SECRET"])), "payload must be an object"),
            (remove(V2_JOB, "/payload/id"), "payload has no integer \"id\""),
            (set(V2_JOB, "/payload/id", json!("SECRET")), "payload has no integer \"id\""),
            (set(V2_JOB, "/payload/id", json!(4.5)), "payload has no integer \"id\""),
            (remove(V2_JOB, "/payload/token"), "payload has no string \"token\""),
            (set(V2_JOB, "/payload/token", json!(7)), "payload has no string \"token\""),
            // State, commit, exit code.
            (remove(V2_JOB, "/state"), "missing field \"state\""),
            (set(V2_JOB, "/state", json!("SECRET")), "field \"state\" must be one of running, success, failed"),
            (set(V2_JOB, "/state", json!("Running")), "field \"state\" must be one of"),
            (set(V2_JOB, "/state", json!(0)), "field \"state\" must be a string"),
            (remove(V2_JOB, "/committed"), "missing field \"committed\""),
            (set(V2_JOB, "/committed", json!(1)), "field \"committed\" must be a boolean"),
            (set(V2_JOB, "/exit_code", json!(1i64 << 40)), "field \"exit_code\" must be a 32-bit integer"),
            (set(V2_JOB, "/exit_code", json!("1")), "field \"exit_code\" must be a 32-bit integer"),
            // The log and its offsets.
            (remove(V2_JOB, "/log"), "missing field \"log\""),
            (set(V2_JOB, "/log", json!("SECRET")), "field \"log\" must be an object"),
            (remove(V2_JOB, "/log/text"), "missing field \"log.text\""),
            (set(V2_JOB, "/log/text", json!(5)), "field \"log.text\" must be a string"),
            (remove(V2_JOB, "/log/acknowledged"), "missing field \"log.acknowledged\""),
            (set(V2_JOB, "/log/acknowledged", json!(-1)), "field \"log.acknowledged\" must be a non-negative"),
            (set(V2_JOB, "/log/acknowledged", json!(1000)), "is beyond the end of the log (28 bytes)"),
            (set(V2_JOB, "/log/remote", json!(10)), "\"log.remote\" (10) is less than \"log.acknowledged\" (11)"),
            (set(V2_JOB, "/log/pending", json!([1, 256])), "field \"log.pending\" must be an array of bytes"),
            (set(V2_JOB, "/log/pending", json!([-1])), "field \"log.pending\" must be an array of bytes"),
            (set(V2_JOB, "/log/pending", json!("SECRET")), "field \"log.pending\" must be an array of bytes"),
            // Python v1.
            (set(v1, "/3", json!("canceled")), "field \"state\" must be one of running, success, failed"),
            (set(v1, "/3", json!("canceling")), "field \"state\" must be one of running, success, failed"),
            (set(v1, "/3", json!(1)), "element 3 (state) must be a string"),
            (set(v1, "/1", json!("[1, \"http://h\", 1")), "job data: runner: not valid JSON"),
            (set(v1, "/1", json!("[2, \"http://h\", 1, \"SECRET\", {}]")), "runner: unrecognised data version 2"),
            (set(v1, "/1", json!("[1, \"http://h\", 1, 5, {}]")), "runner: element 3 (token) must be a string"),
            (set(v1, "/1", json!("")), "job data: runner: empty input"),
            (set(v1, "/1", json!([1, "http://h", 1, "SECRET", {}])), "element 1 (runner) must be a string"),
            (set(v1, "/2", json!("SECRET")), "element 2 (payload) must be an object"),
            (remove(v1, "/2/id"), "payload has no integer \"id\""),
            (set(v1, "/4", json!(["SECRET"])), "element 4 (log) must be a string"),
            (set(v1, "/0", json!(2)), "unrecognised data version 2"),
        ]);
        for (input, expect) in &cases {
            assert_parse_error(job_from_str(input), "job data: ", input, expect);
        }
    }

    #[test]
    fn every_truncation_and_mutation_fails_cleanly() {
        type Load = fn(&str) -> Result<()>;
        let runner: Load = |s| runner_from_str(s).map(drop);
        let job: Load = |s| job_from_str(s).map(drop);
        // The v1 fixtures with secrets we can look for in messages.
        let v1_runner = V1_RUNNER_FULL.replace("RUNNERTOKEN", "SECRETTOKEN");
        let v1_job = V1_JOB_FAILED.replace("RTOKEN", "SECRETR").replace("JOBTOK", "SECRETJOB");
        for (valid, load, prefix) in [
            (V2_RUNNER, runner, "runner data: "),
            (&v1_runner, runner, "runner data: "),
            (V2_JOB, job, "job data: "),
            (&v1_job, job, "job data: "),
        ] {
            load(valid).unwrap();
            let check = |e: Error| {
                assert_eq!(e.kind, ErrorKind::Parse, "{e}");
                assert!(e.message.starts_with(prefix), "{e}");
                assert!(!e.message.contains("SECRET"), "leaks a secret: {e}");
            };
            for cut in (0..valid.len()).filter(|&i| valid.is_char_boundary(i)) {
                check(load(&valid[..cut]).expect_err(&valid[..cut]));
            }
            // Single-character damage anywhere: it loads or fails with Parse, never panics.
            for at in (0..valid.len()).filter(|&i| valid.is_char_boundary(i)) {
                let rest: String = valid[at..].chars().skip(1).collect();
                for c in ['0', '9', '-', '"', '\\', '[', ']', '{', '}', ',', ':', 'n', ' '] {
                    if let Err(e) = load(&format!("{}{c}{rest}", &valid[..at])) {
                        check(e);
                    }
                }
            }
        }
    }

    // ---- the lifted reading of v2 jobs ----

    /// The reading `job_from_json` did before the lifted one (and still does when that declines).
    fn ordinary(s: &str) -> Result<JobData> {
        match parse_json(s)? {
            Value::Object(map) => job_from_v2(map, payload_from_value),
            Value::Array(items) => job_from_v1(items),
            other => Err(not_object_or_array(&other)),
        }
    }

    /// The lifted reading gives what the ordinary one gives: the same job (its payload the same
    /// JSON, kept as it was written, and read as the job reads it), or the same error. Returns
    /// whether it read `s` at all.
    fn assert_lifted_is_ordinary(s: &str) -> bool {
        let Some(lifted) = job_from_v2_lifted(s) else { return false };
        match (lifted, ordinary(s)) {
            (Ok(LoadedJob { data: mut a, info }), Ok(b)) => {
                assert_eq!(info.as_ref(), payload_text::job_info(&b.payload).as_ref().ok(), "{s:.300}");
                let (pa, pb): (Value, Value) =
                    (serde_json::from_str(&a.payload).unwrap(), serde_json::from_str(&b.payload).unwrap());
                assert_eq!(pa, pb, "{s:.300}");
                a.payload = b.payload.clone();
                assert_eq!(a, b, "{s:.300}");
            }
            (Err(a), Err(b)) => assert_eq!(a.message, b.message, "{s:.300}"),
            (a, b) => panic!("lifted {:?}, ordinary {:?}, for {s:.300}", a.map(drop), b.map(drop)),
        }
        true
    }

    /// A job with a large log (every escape, lines, non-ASCII) and a payload like GitLab's.
    fn big_job() -> JobData {
        let mut j = sample_job(JobState::Running);
        let line = "\u{1b}[32;1m$ make\u{1b}[0m \"quoted\" back\\slash tab\t é € 😀 \u{0}\u{7f}\r\n";
        j.log.text = line.repeat(2000);
        j.log.acknowledged = j.log.text.len() / 2;
        j.log.remote = j.log.acknowledged;
        j.payload = json!({
            "id": 7, "token": "SECRETJOB", "allow_git_fetch": true, "timeout": 3600.5,
            "variables": (0..50).map(|i| json!({"key": format!("V{i}"), "value": "x\"y\\z\u{1}", "public": i % 2 == 0}))
                .collect::<Vec<_>>(),
            "steps": [{"name": "script", "script": ["echo \"hi\"", "make -j8"], "when": "on_success"}],
            "nested": [[[[{"deep": [1, -2, 3.25, null, false]}]]]], "empty": {}, "none": [],
        })
        .to_string();
        j
    }

    #[test]
    fn our_dumps_are_read_the_lifted_way_with_the_ordinary_result() {
        let mut jobs: Vec<JobData> = ALL_STATES.into_iter().map(sample_job).collect();
        jobs.push(big_job());
        for j in &jobs {
            let s = job_to_string(j);
            assert!(assert_lifted_is_ordinary(&s), "not lifted: {s:.300}");
            assert_eq!(&job_from_str(&s).unwrap(), j);
        }
        // Pretty-printed (a hand-edited file) as well.
        let pretty = serde_json::to_string_pretty(&serde_json::from_str::<Value>(&job_to_string(&big_job())).unwrap());
        assert!(assert_lifted_is_ordinary(&pretty.unwrap()));
    }

    #[test]
    fn every_truncation_and_mutation_reads_the_same_lifted_or_not() {
        let mut lifted = 0;
        for cut in (0..V2_JOB.len()).filter(|&i| V2_JOB.is_char_boundary(i)) {
            assert_lifted_is_ordinary(&V2_JOB[..cut]);
        }
        for at in (0..V2_JOB.len()).filter(|&i| V2_JOB.is_char_boundary(i)) {
            let rest: String = V2_JOB[at..].chars().skip(1).collect();
            for c in ['0', '9', '-', '"', '\\', '[', ']', '{', '}', ',', ':', 'n', ' ', 'e', '\n', '\u{1}'] {
                lifted += usize::from(assert_lifted_is_ordinary(&format!("{}{c}{rest}", &V2_JOB[..at])));
            }
        }
        // Most of them are read the lifted way (those changing neither the structure nor a string).
        assert!(lifted > 1000, "{lifted}");
    }

    #[test]
    fn the_lifted_reading_declines_what_it_cannot_vouch_for() {
        let job = V2_JOB;
        let log_at = job.find("\"log\":").unwrap();
        let payload_at = job.find("\"payload\":").unwrap();
        let declined = [
            // Duplicates: serde_json keeps the last one.
            job.replacen("\"log\":", "\"log\":{\"text\":\"other\",\"acknowledged\":0},\"log\":", 1),
            job.replacen("\"payload\":", "\"payload\":{\"id\":1,\"token\":\"x\"},\"payload\":", 1),
            job.replacen("{\"text\":", "{\"text\":\"first\",\"text\":", 1),
            // Keys with escapes, which serde_json reads unescaped.
            job.replacen("\"log\":", "\"l\\u006fg\":", 1),
            format!("{}\"pay\\u006coad\":{{\"id\":1,\"token\":\"x\"}},{}", &job[..payload_at], &job[payload_at..]),
            // A payload that is not an object, or fails the checks, or holds what is not vouched for.
            set(job, "/payload", json!([1, "x"])),
            set(job, "/payload/id", json!("x")),
            remove(job, "/payload/token"),
            set(job, "/payload/token", json!("")),
            set(job, "/payload/zeta", json!(1e300)),
            job.replacen("\"zeta\":[", "\"zeta\":[\"\\udc00\",", 1),
            edit(job, |v| v["payload"]["deep"] = (0..MAX_PAYLOAD_DEPTH).fold(json!(1), |v, _| json!([v]))),
            // Not where our writer puts things.
            remove(job, "/log/text"),
            set(job, "/log", json!("text")),
            format!("[{}]", &job[..log_at]),
        ];
        for s in &declined {
            assert!(job_from_v2_lifted(s).is_none(), "lifted: {s:.400}");
        }
        // An empty token passes the dump's checks: the job reads the payload and refuses it.
        assert_eq!(load_job(&set(job, "/payload/token", json!(""))).unwrap().info, None);
        // Just within the nesting allowed.
        let deep = edit(job, |v| v["payload"]["deep"] = (0..MAX_PAYLOAD_DEPTH - 2).fold(json!(1), |v, _| json!([v])));
        assert!(assert_lifted_is_ordinary(&deep));
    }

    #[test]
    fn the_payload_is_kept_as_it_was_dumped() {
        // GitLab escapes `<`, `>` and `&`; a hand-edited file may have spaces. The payload text
        // stays as written (the ordinary reading writes it anew, with the same content).
        let payload = r#"{ "id": 1234567, "token": "SECRETJOB", "html": "\u003cb\u003e \u0026" }"#;
        let s = V2_JOB.replacen(&sample_job(JobState::Canceling).payload, payload, 1);
        assert_ne!(s, V2_JOB);
        let j = job_from_str(&s).unwrap();
        assert_eq!(j.payload, payload.trim());
        assert!(assert_lifted_is_ordinary(&s));
    }

    // ---- files ----

    /// A fresh empty directory under the system temp dir, removed by the caller.
    fn temp_dir(tag: &str) -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "glr-persist-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn write_file_atomic_creates_private_files_and_leaves_no_temp() {
        let dir = temp_dir("create");
        let path = dir.join("runner.json");
        let s = runner_to_string(&full_runner());
        write_file_atomic(&path, &s).unwrap();
        assert_eq!(read_file(&path).unwrap(), s);
        assert_eq!(runner_from_str(&read_file(&path).unwrap()).unwrap(), full_runner());
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        assert_eq!(entries(&dir), ["runner.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_file_atomic_replaces_an_existing_file() {
        let dir = temp_dir("replace");
        let path = dir.join("job.json");
        std::fs::write(&path, "old contents, longer than the new ones").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        write_file_atomic(&path, "new ✓").unwrap();
        assert_eq!(read_file(&path).unwrap(), "new ✓");
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        write_file_atomic(&path, "").unwrap();
        assert_eq!(read_file(&path).unwrap(), "");
        assert_eq!(entries(&dir), ["job.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_errors_are_io_and_name_the_path() {
        let dir = temp_dir("errors");
        let missing = dir.join("no-such-dir").join("runner.json");
        let e = write_file_atomic(&missing, "x").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Io, "{e}");
        assert!(e.message.contains(&*missing.to_string_lossy()), "{e}");
        assert!(e.message.contains("os error"), "{e}");

        let e = read_file(&missing).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Io, "{e}");
        assert!(e.message.contains(&*missing.to_string_lossy()), "{e}");

        // Renaming over a directory fails; the temp file must not stay behind.
        std::fs::create_dir(dir.join("sub")).unwrap();
        let e = write_file_atomic(&dir.join("sub"), "x").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Io, "{e}");
        assert_eq!(entries(&dir), ["sub"]);

        // Not UTF-8: the file is there but its content is malformed.
        std::fs::write(dir.join("bin"), [0xff, 0xfe]).unwrap();
        assert_eq!(read_file(&dir.join("bin")).unwrap_err().kind, ErrorKind::Parse);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
