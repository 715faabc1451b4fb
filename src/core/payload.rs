//! Reading GitLab's job payload leniently. The raw JSON is kept verbatim (for `glr_job_payload`
//! and for dumps); this module only pulls out what the accessors need. A missing or oddly typed
//! field gives "absent", never an error: only `id` and `token` are required, because without
//! them nothing can be reported back to GitLab.

use super::error::{Error, Result};
use serde_json::Value;

/// Variable flags, as `GLR_VAR_*` in the C API.
pub const VAR_PUBLIC: u32 = 1;
pub const VAR_MASKED: u32 = 2;
pub const VAR_FILE: u32 = 4;
pub const VAR_RAW: u32 = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    pub key: String,
    pub value: String,
    pub flags: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub kind: String,
    pub url: String,
    pub username: String,
    pub password: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    pub id: i64,
    pub name: Option<String>,
    pub token: Option<String>,
    pub artifacts_filename: Option<String>,
    pub artifacts_size: Option<i64>,
}

/// What the accessors of a job return, extracted once from the payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobInfo {
    pub id: i64,
    pub token: String,
    pub name: Option<String>,
    pub stage: Option<String>,
    pub git_ref: Option<String>,
    pub repo_url: Option<String>,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    pub username: Option<String>,
    pub project_url: Option<String>,
    pub project_path: Option<String>,
    pub project_name: Option<String>,
    pub job_url: Option<String>,
    pub pipeline_url: Option<String>,
    pub pipeline_id: Option<String>,
    /// `git_info.ref_type == "branch"`; None when GitLab did not say.
    pub is_branch: Option<bool>,
    pub script: Vec<String>,
    pub after_script: Vec<String>,
    pub variables: Vec<Variable>,
    pub credentials: Vec<Credential>,
    pub dependencies: Vec<Dependency>,
    /// `features.failure_reasons`: what this GitLab accepts; None for a GitLab too old to say.
    pub failure_reasons: Option<Vec<String>>,
    pub token_mask_prefixes: Vec<String>,
    /// `runner_info.timeout`: seconds GitLab gives the job (the job's `timeout:`, within the
    /// runner's `maximum_timeout`); None when GitLab did not say.
    pub timeout: Option<i64>,
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// A scalar as text: strings as they are, numbers and booleans printed; null/objects: None.
pub(crate) fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items.iter().filter_map(|i| text(Some(i))).collect(),
        // GitLab's own fixtures sometimes send a single string where the runner expects a list.
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

pub(crate) fn truthy(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true)))
}

/// The deepest nesting of arrays and objects a payload may have. serde_json reads at most 128
/// levels, and a dump puts the payload one or two levels down: a payload accepted from GitLab
/// must still load from its dump. (Real payloads nest about 5 levels.)
pub const MAX_PAYLOAD_DEPTH: usize = 100;

/// How deeply arrays and objects nest in `v` (a scalar is 0), without recursion.
fn nesting_depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(depth + 1);
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    deepest
}

/// The job id and token: the two fields without which a payload is unusable.
pub fn id_and_token(payload: &Value) -> Result<(i64, String)> {
    if !payload.is_object() {
        return Err(Error::parse("job payload is not a JSON object"));
    }
    if nesting_depth(payload) > MAX_PAYLOAD_DEPTH {
        return Err(Error::parse(format!("job payload nests deeper than {MAX_PAYLOAD_DEPTH} levels")));
    }
    id_and_token_of_object(payload)
}

/// [`id_and_token`] of an object whose nesting was checked.
fn id_and_token_of_object(payload: &Value) -> Result<(i64, String)> {
    let id = int(payload.get("id")).ok_or_else(|| Error::parse("job payload has no integer `id`"))?;
    let token = match payload.get("token") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => return Err(Error::parse(format!("job payload of job {id} has no `token`"))),
    };
    Ok((id, token))
}

fn variables(payload: &Value) -> Vec<Variable> {
    let Some(Value::Array(items)) = payload.get("variables") else { return Vec::new() };
    items.iter().filter_map(variable).collect()
}

/// One entry of `variables`. Its members are looked at one by one rather than looked up by name:
/// a payload has a hundred variables and more, and six hashed lookups each cost more than
/// going through their five or so members.
fn variable(item: &Value) -> Option<Variable> {
    let Value::Object(members) = item else { return None };
    let (mut key, mut value, mut flags) = (None, None, 0);
    for (name, v) in members {
        match VariableMember::named(name) {
            VariableMember::Key => key = Some(v),
            VariableMember::Value => value = Some(v),
            VariableMember::Flag(bit) if truthy(Some(v)) => flags |= bit,
            VariableMember::Flag(_) | VariableMember::Other => {}
        }
    }
    variable_from(key.cloned(), value.cloned(), flags)
}

/// A member of a variable object, by its name.
pub(crate) enum VariableMember {
    Key,
    Value,
    /// One of the `VAR_*` flags.
    Flag(u32),
    Other,
}

impl VariableMember {
    pub(crate) fn named(name: &str) -> VariableMember {
        match name {
            "key" => VariableMember::Key,
            "value" => VariableMember::Value,
            "public" => VariableMember::Flag(VAR_PUBLIC),
            "masked" => VariableMember::Flag(VAR_MASKED),
            "file" => VariableMember::Flag(VAR_FILE),
            "raw" => VariableMember::Flag(VAR_RAW),
            _ => VariableMember::Other,
        }
    }
}

/// A variable from its members (None without a usable `key`). Owned: a payload's hundred
/// variables and more are then not copied once more.
pub(crate) fn variable_from(key: Option<Value>, value: Option<Value>, flags: u32) -> Option<Variable> {
    Some(Variable { key: into_text(key)?, value: into_text(value).unwrap_or_default(), flags })
}

/// [`text`] of a value given away: a string is moved, not copied.
fn into_text(v: Option<Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s),
        other => text(Some(&other)),
    }
}

/// The script lines of every step with this name, in payload order (any number of steps; the
/// Python package picked steps by position and failed on a third one).
fn step_script(payload: &Value, name: &str) -> Vec<String> {
    let Some(Value::Array(steps)) = payload.get("steps") else { return Vec::new() };
    steps
        .iter()
        .filter(|s| s.get("name").and_then(Value::as_str) == Some(name))
        .flat_map(|s| strings(s.get("script")))
        .collect()
}

fn credentials(payload: &Value) -> Vec<Credential> {
    let Some(Value::Array(items)) = payload.get("credentials") else { return Vec::new() };
    items
        .iter()
        .filter_map(|c| {
            Some(Credential {
                kind: text(c.get("type"))?,
                url: text(c.get("url"))?,
                username: text(c.get("username")).unwrap_or_default(),
                password: text(c.get("password")).unwrap_or_default(),
            })
        })
        .collect()
}

fn dependencies(payload: &Value) -> Vec<Dependency> {
    let Some(Value::Array(items)) = payload.get("dependencies") else { return Vec::new() };
    items
        .iter()
        .filter_map(|d| {
            Some(Dependency {
                id: int(d.get("id"))?,
                name: text(d.get("name")),
                token: text(d.get("token")),
                artifacts_filename: text(at(d, &["artifacts_file", "filename"])),
                artifacts_size: int(at(d, &["artifacts_file", "size"])),
            })
        })
        .collect()
}

/// The payload's text parsed into a `Value`, then read: the ordinary reading (see
/// `payload_text` for the usual one).
pub(crate) fn from_value_text(text: &str) -> Result<JobInfo> {
    let parsed: Value =
        serde_json::from_str(text).map_err(|e| Error::parse(format!("job payload is not JSON: {e}")))?;
    JobInfo::from_payload(&parsed)
}

/// The members of a payload that [`from_members`] reads (besides `variables`), and of its
/// `features` the ones it reads: a reading that keeps only these gives the same [`JobInfo`].
pub(crate) const READ_MEMBERS: [&str; 8] =
    ["id", "token", "job_info", "git_info", "steps", "credentials", "dependencies", "runner_info"];
pub(crate) const READ_FEATURES: [&str; 2] = ["failure_reasons", "token_mask_prefixes"];

/// A [`JobInfo`] from a payload object whose nesting was checked, with its variables read
/// already (from this `Value`, or straight from the text by `payload_text`).
pub(crate) fn from_members(payload: &Value, variables: Vec<Variable>) -> Result<JobInfo> {
    let (id, token) = id_and_token_of_object(payload)?;
    let var = |key: &str| variables.iter().find(|v| v.key == key).map(|v| v.value.clone());
    let failure_reasons = match at(payload, &["features", "failure_reasons"]) {
        Some(Value::Array(_)) => Some(strings(at(payload, &["features", "failure_reasons"]))),
        _ => None,
    };
    Ok(JobInfo {
        id,
        token,
        name: text(at(payload, &["job_info", "name"])),
        stage: text(at(payload, &["job_info", "stage"])),
        git_ref: text(at(payload, &["git_info", "ref"])),
        repo_url: text(at(payload, &["git_info", "repo_url"])),
        commit_sha: text(at(payload, &["git_info", "sha"])),
        commit_message: var("CI_COMMIT_MESSAGE"),
        username: var("GITLAB_USER_LOGIN"),
        project_url: var("CI_PROJECT_URL"),
        project_path: var("CI_PROJECT_PATH"),
        project_name: var("CI_PROJECT_NAME").or_else(|| text(at(payload, &["job_info", "project_name"]))),
        job_url: var("CI_JOB_URL"),
        pipeline_url: var("CI_PIPELINE_URL"),
        pipeline_id: var("CI_PIPELINE_ID").or_else(|| text(at(payload, &["job_info", "pipeline_id"]))),
        is_branch: at(payload, &["git_info", "ref_type"]).and_then(Value::as_str).map(|t| t == "branch"),
        script: step_script(payload, "script"),
        after_script: step_script(payload, "after_script"),
        credentials: credentials(payload),
        dependencies: dependencies(payload),
        failure_reasons,
        token_mask_prefixes: strings(at(payload, &["features", "token_mask_prefixes"])),
        timeout: int(at(payload, &["runner_info", "timeout"])).filter(|t| *t > 0),
        variables,
    })
}

impl JobInfo {
    pub fn from_payload(payload: &Value) -> Result<JobInfo> {
        id_and_token(payload)?;
        from_members(payload, variables(payload))
    }

    /// The value of variable `key` (the last one wins, as when exported to a shell).
    pub fn variable(&self, key: &str) -> Option<&str> {
        self.variables.iter().rev().find(|v| v.key == key).map(|v| v.value.as_str())
    }

    /// The registry credential for `image`: among `type == "registry"` entries whose `url` is a
    /// prefix of the image name, the longest (most specific) one.
    pub fn registry_credential(&self, image: &str) -> Option<&Credential> {
        self.credentials
            .iter()
            .filter(|c| c.kind == "registry" && !c.url.is_empty() && image.starts_with(&c.url))
            .max_by_key(|c| c.url.len())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads_nested_too_deeply_for_a_dump_are_refused() {
        let nest = |levels: usize| {
            let mut v = json!("leaf");
            for _ in 0..levels {
                v = json!([v]);
            }
            json!({"id": 1, "token": "t", "deep": v})
        };
        assert_eq!(nesting_depth(&json!(1)), 0);
        assert_eq!(nesting_depth(&json!({"a": [1, {"b": []}]})), 4);
        assert!(id_and_token(&nest(MAX_PAYLOAD_DEPTH - 1)).is_ok());
        let e = id_and_token(&nest(MAX_PAYLOAD_DEPTH)).unwrap_err();
        assert!(e.message.contains("nests deeper"), "{e}");
    }

    pub(crate) fn sample() -> Value {
        json!({
            "id": 42, "token": "glcbt-secret",
            "job_info": {"name": "build", "stage": "test", "project_name": "p", "pipeline_id": 7},
            "git_info": {"repo_url": "https://x/g/p.git", "ref": "main", "sha": "abc", "ref_type": "branch"},
            "variables": [
                {"key": "CI_PROJECT_PATH", "value": "g/p", "public": true, "masked": false},
                {"key": "SECRET", "value": "hunter2", "public": false, "masked": true},
                {"key": "F", "value": "x", "public": false, "file": true, "raw": true},
                {"key": "N", "value": 5}
            ],
            "steps": [
                {"name": "script", "script": ["a", "b"]},
                {"name": "after_script", "script": "c"},
                {"name": "release", "script": ["r"]}
            ],
            "credentials": [
                {"type": "registry", "url": "registry.example.com", "username": "u1", "password": "p1"},
                {"type": "registry", "url": "registry.example.com/group", "username": "u2", "password": "p2"}
            ],
            "dependencies": [{"id": 9, "name": "build", "token": "t", "artifacts_file": {"filename": "a.zip", "size": 10}}],
            "features": {"failure_reasons": ["unknown_failure", "script_failure"]}
        })
    }

    #[test]
    fn extracts_the_accessor_values() {
        let info = JobInfo::from_payload(&sample()).unwrap();
        assert_eq!((info.id, info.token.as_str()), (42, "glcbt-secret"));
        assert_eq!(info.name.as_deref(), Some("build"));
        assert_eq!(info.git_ref.as_deref(), Some("main"));
        assert_eq!(info.is_branch, Some(true));
        assert_eq!(info.pipeline_id.as_deref(), Some("7"));
        assert_eq!(info.project_path.as_deref(), Some("g/p"));
        assert_eq!(info.job_url, None);
        assert_eq!(info.script, ["a", "b"]);
        assert_eq!(info.after_script, ["c"]);
        assert_eq!(info.variables[1].flags, VAR_MASKED);
        assert_eq!(info.variables[2].flags, VAR_FILE | VAR_RAW);
        assert_eq!(info.variable("N"), Some("5"));
        assert_eq!(info.dependencies[0].artifacts_size, Some(10));
        assert_eq!(info.failure_reasons.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn odd_variables_are_skipped_or_read_leniently() {
        let payload = json!({"id": 1, "token": "t", "variables": [
            "not an object", {"value": "no key"}, {"key": 7, "value": true, "masked": "yes", "raw": true, "x": 1},
            {"key": "E", "public": true, "masked": true, "file": false}
        ]});
        let info = JobInfo::from_payload(&payload).unwrap();
        assert_eq!(
            info.variables,
            [
                Variable { key: "7".into(), value: "true".into(), flags: VAR_RAW },
                Variable { key: "E".into(), value: String::new(), flags: VAR_PUBLIC | VAR_MASKED },
            ]
        );
    }

    #[test]
    fn registry_credential_takes_the_longest_match() {
        let info = JobInfo::from_payload(&sample()).unwrap();
        assert_eq!(info.registry_credential("registry.example.com/group/img:1").unwrap().username, "u2");
        assert_eq!(info.registry_credential("registry.example.com/other/img").unwrap().username, "u1");
        assert!(info.registry_credential("docker.io/library/alpine").is_none());
    }

    #[test]
    fn only_id_and_token_are_required() {
        assert!(JobInfo::from_payload(&json!({"id": 1, "token": "t"})).is_ok());
        assert!(JobInfo::from_payload(&json!({"id": "12", "token": "t"})).is_ok());
        assert!(JobInfo::from_payload(&json!({"token": "t"})).is_err());
        assert!(JobInfo::from_payload(&json!({"id": 1})).is_err());
        assert!(JobInfo::from_payload(&json!([1, 2])).is_err());
        let odd = json!({"id": 1, "token": "t", "steps": 5, "variables": {"a": 1}, "git_info": []});
        let info = JobInfo::from_payload(&odd).unwrap();
        assert!(info.script.is_empty() && info.variables.is_empty() && info.git_ref.is_none());
    }
}
