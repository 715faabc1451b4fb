//! The default job payload (protocol §2.3) and how overrides are merged into it.
//!
//! Values are consistent with one another and with the server: ids, URLs built from the server's
//! own URL, the job token inside `repo_url`, `CI_JOB_TOKEN` and the registry password, and the
//! `CI_*` variables derived from the (merged) job fields, so an override of `job_info.name` also
//! changes `CI_JOB_NAME`.

use serde_json::{json, Map, Value};

/// Everything the template needs that is not a fixed example value.
pub(crate) struct TemplateContext<'a> {
    pub job_id: i64,
    pub job_token: &'a str,
    /// `http://127.0.0.1:PORT`
    pub server_url: &'a str,
    pub pipeline_id: i64,
    pub created_at: &'a str,
    /// The fixture job whose archive the default `dependencies` entry points to.
    pub dependency: Option<(i64, &'a str, &'a str, usize)>, // (id, name, filename, size)
}

pub(crate) const PROJECT_ID: i64 = 123;
pub(crate) const PROJECT_PATH: &str = "group/test-project";
const REGISTRY: &str = "registry.example.com";

/// The failure reasons current GitLab accepts (`CommitStatus.failure_reasons.keys`, protocol §6.1),
/// sent as `features.failure_reasons` and used to map unknown reasons to `unknown_failure`.
pub(crate) const FAILURE_REASONS: &[&str] = &[
    "unknown_failure",
    "script_failure",
    "api_failure",
    "stuck_or_timeout_failure",
    "runner_system_failure",
    "missing_dependency_failure",
    "runner_unsupported",
    "stale_schedule",
    "job_execution_timeout",
    "archived_failure",
    "unmet_prerequisites",
    "scheduler_failure",
    "data_integrity_failure",
    "forward_deployment_failure",
    "user_blocked",
    "project_deleted",
    "ci_quota_exceeded",
    "pipeline_loop_detected",
    "no_matching_runner",
    "trace_size_exceeded",
    "builds_disabled",
    "environment_creation_failure",
    "deployment_rejected",
    "failed_outdated_deployment_job",
    "job_execution_server_timeout",
    "stuck_pending_with_matching_runners",
    "stuck_pending_no_matching_runners",
    "no_updates_running",
    "no_updates_canceling",
    "server_timeout_running",
    "server_timeout_canceling",
    "runner_configuration_error",
    "runner_external_dependency_failure",
    "runner_interrupted",
    "protected_environment_failure",
    "insufficient_bridge_permissions",
    "downstream_bridge_project_not_found",
    "invalid_bridge_trigger",
    "upstream_bridge_project_not_found",
    "insufficient_upstream_permissions",
    "bridge_pipeline_is_child_pipeline",
    "downstream_pipeline_creation_failed",
    "secrets_provider_not_found",
    "reached_max_descendant_pipelines_depth",
    "ip_restriction_failure",
    "reached_max_pipeline_hierarchy_size",
    "reached_downstream_pipeline_trigger_rate_limit",
    "duo_workflow_not_allowed",
    "job_router_failure",
    "job_token_expired",
    "id_token_burned_project_path",
    "downstream_project_trigger_resolved_to_empty",
];

/// The masked example secret of the default payload (tests check it never reaches the trace).
pub const DEFAULT_MASKED_VALUE: &str = "s3cr3t-Pa55w0rd-xyzzy";

/// The whole default payload for one job, with `overrides` merged in.
///
/// Merge rules: objects are merged key by key, arrays and scalars are replaced, except
/// `variables`, which is merged by `key` (an override entry replaces the entry with the same key,
/// new keys are appended) so that the generated `CI_JOB_TOKEN` & co. survive. `id` and `token`
/// cannot be overridden (they are the server's). A dependency without `token` gets this job's
/// token (GitLab's `ci_expose_running_job_token_for_artifacts` behaviour).
pub(crate) fn build_payload(ctx: &TemplateContext, overrides: &Value) -> Value {
    let mut base = base_without_variables(ctx);
    let mut extra_vars = Vec::new();
    if let Value::Object(o) = overrides {
        for (k, v) in o {
            match k.as_str() {
                "id" | "token" => {}
                "variables" => {
                    if let Value::Array(a) = v {
                        extra_vars.clone_from(a);
                    }
                }
                _ => {
                    let slot = base.entry(k.clone()).or_insert(Value::Null);
                    deep_merge(slot, v);
                }
            }
        }
    }
    let mut variables = default_variables(ctx, &base);
    for v in extra_vars {
        let key = v.get("key").and_then(Value::as_str).map(str::to_owned);
        match key.and_then(|k| variables.iter().position(|e| e["key"] == k.as_str())) {
            Some(i) => variables[i] = v,
            None => variables.push(v),
        }
    }
    if let Some(Value::Array(deps)) = base.get_mut("dependencies") {
        for d in deps.iter_mut().filter_map(Value::as_object_mut) {
            d.entry("token").or_insert_with(|| json!(ctx.job_token));
        }
    }
    // GitLab's field order: variables come right after runner_info.
    let mut out = Map::new();
    for (k, v) in base {
        let after_runner_info = k == "runner_info";
        out.insert(k, v);
        if after_runner_info {
            out.insert("variables".into(), Value::Array(std::mem::take(&mut variables)));
        }
    }
    if !out.contains_key("variables") {
        out.insert("variables".into(), Value::Array(variables));
    }
    Value::Object(out)
}

/// What GitLab fills in when a runner picks the job: the time spent queued, the runner's
/// variables, and the timeout capped by the runner's `maximum_timeout`.
pub(crate) fn finalize_for_runner(
    payload: &mut Value,
    runner_id: i64,
    description: Option<&str>,
    tags: &[String],
    maximum_timeout: Option<i64>,
    time_in_queue: f64,
) {
    payload["job_info"]["time_in_queue_seconds"] = json!((time_in_queue * 1000.0).round() / 1000.0);
    if let Some(max) = maximum_timeout {
        let capped = payload["runner_info"]["timeout"].as_i64().map_or(max, |t| t.min(max));
        payload["runner_info"]["timeout"] = json!(capped);
        if let Some(Value::Array(steps)) = payload.get_mut("steps") {
            for st in steps.iter_mut().filter(|st| st.get("timeout").is_some()) {
                st["timeout"] = json!(capped);
            }
        }
    }
    let tag_list = Value::from(tags.to_vec()).to_string();
    let runner_vars = [
        ("CI_RUNNER_ID", runner_id.to_string()),
        ("CI_RUNNER_DESCRIPTION", description.unwrap_or("").to_string()),
        ("CI_RUNNER_TAGS", tag_list),
    ];
    if let Some(Value::Array(vars)) = payload.get_mut("variables") {
        for (k, v) in runner_vars {
            if !vars.iter().any(|e| e["key"] == k) {
                vars.push(json!({ "key": k, "value": v, "public": true, "masked": false }));
            }
        }
    }
}

/// Objects merge recursively; everything else replaces.
pub(crate) fn deep_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                deep_merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn base_without_variables(ctx: &TemplateContext) -> Map<String, Value> {
    let id = ctx.job_id;
    let pipeline = ctx.pipeline_id;
    let sha = fake_sha(id as u64 * 7 + 1);
    let before_sha = fake_sha(id as u64 * 7 + 2);
    let repo_url = with_credentials(&format!("{}/{PROJECT_PATH}.git", ctx.server_url), ctx.job_token);
    let dependencies = match ctx.dependency {
        Some((dep_id, name, filename, size)) => json!([{
            "id": dep_id,
            "name": name,
            "token": ctx.job_token,
            "artifacts_file": { "filename": filename, "size": size }
        }]),
        None => json!([]),
    };
    let v = json!({
        "id": id,
        "token": ctx.job_token,
        "allow_git_fetch": true,
        "job_info": {
            "id": id,
            "name": "test-job",
            "stage": "test",
            "pipeline_id": pipeline,
            "project_id": PROJECT_ID,
            "project_name": "test-project",
            "project_full_path": PROJECT_PATH,
            "namespace_id": 5,
            "root_namespace_id": 2,
            "organization_id": 1,
            "instance_id": "glr-testserver",
            "instance_uuid": "00000000-0000-4000-8000-00000000c0de",
            "user_id": 7,
            "scoped_user_id": null,
            "time_in_queue_seconds": 0.0,
            "project_jobs_running_on_instance_runners_count": "+Inf",
            "queue_size": 0,
            "queue_depth": 0
        },
        "git_info": {
            "repo_url": repo_url,
            "ref": "main",
            "sha": sha,
            "before_sha": before_sha,
            "ref_type": "branch",
            "refspecs": [
                format!("+refs/pipelines/{pipeline}:refs/pipelines/{pipeline}"),
                "+refs/heads/main:refs/remotes/origin/main"
            ],
            "depth": 20,
            "repo_object_format": "sha1",
            "protected": true
        },
        "runner_info": {
            "timeout": 3600,
            "runner_session_url": null
        },
        "steps": [
            {
                "name": "script",
                "script": ["echo \"Hello from job $CI_JOB_ID\"", "make test"],
                "timeout": 3600,
                "when": "on_success",
                "allow_failure": false
            },
            {
                "name": "after_script",
                "script": ["echo cleanup"],
                "timeout": 3600,
                "when": "always",
                "allow_failure": true
            }
        ],
        "hooks": [],
        "image": {
            "name": "alpine:3.20",
            "entrypoint": null,
            "ports": [],
            "executor_opts": {},
            "pull_policy": ["if-not-present"]
        },
        "services": [
            {
                "name": "postgres:16",
                "entrypoint": null,
                "command": null,
                "alias": "db",
                "ports": [],
                "variables": [ { "key": "POSTGRES_PASSWORD", "value": "postgres-pw" } ],
                "executor_opts": {},
                "pull_policy": null
            }
        ],
        "artifacts": [
            {
                "name": "artifacts",
                "untracked": false,
                "paths": ["out/"],
                "exclude": [],
                "when": "on_success",
                "expire_in": "7 days",
                "artifact_type": "archive",
                "artifact_format": "zip"
            },
            {
                "name": "junit",
                "untracked": false,
                "paths": ["report.xml"],
                "when": "always",
                "expire_in": "7 days",
                "artifact_type": "junit",
                "artifact_format": "gzip"
            }
        ],
        "cache": [
            {
                "key": "main-protected",
                "untracked": false,
                "paths": ["vendor/"],
                "policy": "pull-push",
                "when": "on_success",
                "fallback_keys": []
            }
        ],
        "credentials": [
            {
                "type": "registry",
                "url": REGISTRY,
                "username": "gitlab-ci-token",
                "password": ctx.job_token
            }
        ],
        "dependencies": dependencies,
        "features": {
            "trace_sections": true,
            "token_mask_prefixes": ["glpat-", "glcbt-", "glrt-", "gldt-", "glptt-"],
            "failure_reasons": FAILURE_REASONS
        }
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The predefined `CI_*` set plus a few project variables (masked, file, raw), derived from the
/// merged payload so that they agree with it.
fn default_variables(ctx: &TemplateContext, p: &Map<String, Value>) -> Vec<Value> {
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let ji = p.get("job_info").cloned().unwrap_or(Value::Null);
    let gi = p.get("git_info").cloned().unwrap_or(Value::Null);
    let job_id = ctx.job_id;
    let name = s(&ji["name"]);
    let stage = s(&ji["stage"]);
    let pipeline_id = s(&ji["pipeline_id"]);
    let project_id = s(&ji["project_id"]);
    let project_name = s(&ji["project_name"]);
    let project_path = match s(&ji["project_full_path"]) {
        e if e.is_empty() => PROJECT_PATH.to_string(),
        path => path,
    };
    let namespace = project_path.rsplit_once('/').map(|x| x.0).unwrap_or("").to_string();
    let root_namespace = project_path.split('/').next().unwrap_or("").to_string();
    let git_ref = s(&gi["ref"]);
    let sha = s(&gi["sha"]);
    let before_sha = s(&gi["before_sha"]);
    let is_tag = gi["ref_type"] == "tag";
    let protected = gi["protected"].as_bool().unwrap_or(false);
    let url = ctx.server_url;
    let host_port = url.split("://").nth(1).unwrap_or(url);
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "80"));
    let project_url = format!("{url}/{project_path}");
    let message = "Add the frobnicator\n\nIt frobnicates the widgets before they are tested.\n";
    let title = message.lines().next().unwrap_or("");

    let public = |k: &str, v: &str| json!({ "key": k, "value": v, "public": true, "masked": false });
    let secret = |k: &str, v: &str| json!({ "key": k, "value": v, "public": false, "masked": true });
    let mut vars = vec![
        public("CI_PIPELINE_ID", &pipeline_id),
        public("CI_PIPELINE_URL", &format!("{project_url}/-/pipelines/{pipeline_id}")),
        public("CI_JOB_ID", &job_id.to_string()),
        public("CI_JOB_URL", &format!("{project_url}/-/jobs/{job_id}")),
        secret("CI_JOB_TOKEN", ctx.job_token),
        public("CI_JOB_STARTED_AT", ctx.created_at),
        public("CI_REGISTRY_USER", "gitlab-ci-token"),
        secret("CI_REGISTRY_PASSWORD", ctx.job_token),
        json!({ "key": "CI_REPOSITORY_URL", "value": with_credentials(&format!("{project_url}.git"), ctx.job_token), "public": false, "masked": false }),
        secret("CI_DEPENDENCY_PROXY_PASSWORD", ctx.job_token),
        public("CI_JOB_NAME", &name),
        public("CI_JOB_NAME_SLUG", &slug(&name)),
        public("CI_JOB_STAGE", &stage),
        public("CI_NODE_TOTAL", "1"),
        public("CI", "true"),
        public("GITLAB_CI", "true"),
        public("CI_SERVER_URL", url),
        public("CI_SERVER_HOST", host),
        public("CI_SERVER_PORT", port),
        public("CI_SERVER_PROTOCOL", url.split("://").next().unwrap_or("http")),
        public("CI_SERVER_NAME", "GitLab"),
        public("CI_SERVER_VERSION", "18.5.0"),
        public("CI_API_V4_URL", &format!("{url}/api/v4")),
        public("CI_PROJECT_ID", &project_id),
        public("CI_PROJECT_NAME", &project_name),
        public("CI_PROJECT_TITLE", &project_name),
        public("CI_PROJECT_PATH", &project_path),
        public("CI_PROJECT_PATH_SLUG", &slug(&project_path)),
        public("CI_PROJECT_NAMESPACE", &namespace),
        public("CI_PROJECT_ROOT_NAMESPACE", &root_namespace),
        public("CI_PROJECT_URL", &project_url),
        public("CI_PROJECT_VISIBILITY", "private"),
        public("CI_DEFAULT_BRANCH", "main"),
        public("CI_REGISTRY", REGISTRY),
        public("CI_REGISTRY_IMAGE", &format!("{REGISTRY}/{project_path}")),
        public("CI_PIPELINE_IID", "42"),
        public("CI_PIPELINE_SOURCE", "push"),
        public("CI_PIPELINE_CREATED_AT", ctx.created_at),
        public("CI_CONFIG_PATH", ".gitlab-ci.yml"),
        public("CI_COMMIT_SHA", &sha),
        public("CI_COMMIT_SHORT_SHA", sha.get(..8).unwrap_or(&sha)),
        public("CI_COMMIT_BEFORE_SHA", &before_sha),
        public("CI_COMMIT_REF_NAME", &git_ref),
        public("CI_COMMIT_REF_SLUG", &slug(&git_ref)),
    ];
    if is_tag {
        vars.push(public("CI_COMMIT_TAG", &git_ref));
    } else {
        vars.push(public("CI_COMMIT_BRANCH", &git_ref));
    }
    vars.extend([
        public("CI_COMMIT_REF_PROTECTED", if protected { "true" } else { "false" }),
        public("CI_COMMIT_MESSAGE", message),
        public("CI_COMMIT_TITLE", title),
        public("CI_COMMIT_DESCRIPTION", "It frobnicates the widgets before they are tested.\n"),
        public("CI_COMMIT_TIMESTAMP", ctx.created_at),
        public("CI_COMMIT_AUTHOR", "Test User <test.user@example.com>"),
        public("GITLAB_USER_ID", "7"),
        public("GITLAB_USER_EMAIL", "test.user@example.com"),
        public("GITLAB_USER_LOGIN", "test.user"),
        public("GITLAB_USER_NAME", "Test User"),
        // Project-level variables: GitLab sends user-defined variables with public: false and
        // omits `file`/`raw` when false.
        secret("SECRET_PASSWORD", DEFAULT_MASKED_VALUE),
        json!({ "key": "DEPLOY_CONFIG", "value": "host=deploy.example.com\nport=2222\n", "public": false, "file": true, "masked": false }),
        json!({ "key": "RAW_VALUE", "value": "literal $CI_JOB_ID stays unexpanded", "public": false, "masked": false, "raw": true }),
        json!({ "key": "GREETING", "value": "hello world", "public": false, "masked": false }),
    ]);
    vars
}

/// `https://host/p.git` -> `https://gitlab-ci-token:TOKEN@host/p.git`, as GitLab builds `repo_url`.
fn with_credentials(url: &str, token: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://gitlab-ci-token:{token}@{rest}"),
        None => url.to_string(),
    }
}

/// GitLab's slug: lowercase, non-alphanumerics to `-`, trimmed, at most 63 chars.
fn slug(s: &str) -> String {
    let mapped: String = s.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let trimmed: String = mapped.chars().take(63).collect();
    trimmed.trim_matches('-').to_string()
}

/// A deterministic 40-hex "commit sha".
fn fake_sha(seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..40)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit((x % 16) as u32, 16).unwrap_or('0')
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TemplateContext<'static> {
        TemplateContext {
            job_id: 5,
            job_token: "glcbt-TOKEN",
            server_url: "http://127.0.0.1:1234",
            pipeline_id: 77,
            created_at: "2024-01-01T00:00:00Z",
            dependency: None,
        }
    }

    fn var<'a>(p: &'a Value, key: &str) -> &'a Value {
        p["variables"].as_array().unwrap().iter().find(|v| v["key"] == key).unwrap()
    }

    #[test]
    fn overrides_merge_and_variables_follow() {
        let p = build_payload(
            &ctx(),
            &json!({"id": 99, "job_info": {"name": "build docs"}, "steps": [{"name": "script", "script": ["x"]}],
                     "variables": [{"key": "GREETING", "value": "hi", "public": false, "masked": false},
                                   {"key": "NEW", "value": "1", "public": false, "masked": true}]}),
        );
        assert_eq!(p["id"], 5, "id cannot be overridden");
        assert_eq!(p["job_info"]["name"], "build docs");
        assert_eq!(p["job_info"]["stage"], "test", "sibling keys kept");
        assert_eq!(p["steps"].as_array().unwrap().len(), 1, "arrays replaced");
        assert_eq!(var(&p, "CI_JOB_NAME")["value"], "build docs");
        assert_eq!(var(&p, "CI_JOB_NAME_SLUG")["value"], "build-docs");
        assert_eq!(var(&p, "GREETING")["value"], "hi");
        assert_eq!(var(&p, "NEW")["masked"], true);
        assert_eq!(var(&p, "CI_JOB_TOKEN")["value"], "glcbt-TOKEN");
        assert_eq!(var(&p, "CI_JOB_URL")["value"], "http://127.0.0.1:1234/group/test-project/-/jobs/5");
        assert!(p["git_info"]["repo_url"]
            .as_str()
            .unwrap()
            .starts_with("http://gitlab-ci-token:glcbt-TOKEN@127.0.0.1:1234/"));
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        let ri = keys.iter().position(|k| *k == "runner_info").unwrap();
        assert_eq!(keys[ri + 1], "variables");
    }

    #[test]
    fn dependency_without_token_gets_job_token() {
        let p = build_payload(&ctx(), &json!({"dependencies": [{"id": 1, "name": "build"}]}));
        assert_eq!(p["dependencies"][0]["token"], "glcbt-TOKEN");
    }
}
