//! The `info` object a runner sends with verify, job requests and job updates: who it is and,
//! honestly, which features it supports (the library's own plus what the executor declared).

use super::model::{Identity, RunnerData};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Every feature key of the official runner, in its order; all are always sent.
pub const FEATURE_KEYS: &[&str] = &[
    "variables",
    "image",
    "services",
    "artifacts",
    "cache",
    "fallback_cache_keys",
    "shared",
    "upload_multiple_artifacts",
    "upload_raw_artifacts",
    "session",
    "terminal",
    "refspecs",
    "masking",
    "proxy",
    "raw_variables",
    "artifacts_exclude",
    "multi_build_steps",
    "trace_reset",
    "trace_checksum",
    "trace_size",
    "vault_secrets",
    "cancelable",
    "return_exit_code",
    "service_variables",
    "service_multiple_aliases",
    "image_executor_opts",
    "service_executor_opts",
    "cancel_gracefully",
    "native_steps_integration",
    "two_phase_job_commit",
    "job_inputs",
];

/// What the library itself does, whatever the executor: re-sending the whole trace on 412,
/// checksums and sizes on the final update, reporting GitLab's cancel (hard and graceful),
/// sending exit codes, and committing a job with `state=running` before using it.
pub const LIBRARY_FEATURES: &[&str] = &[
    "trace_reset",
    "trace_checksum",
    "trace_size",
    "cancelable",
    "cancel_gracefully",
    "return_exit_code",
    "two_phase_job_commit",
];

/// Whether `name` can be a feature key (lowercase letters, digits, `_`).
pub fn is_valid_feature_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// At most this many labels, as the official runner.
pub const MAX_LABELS: usize = 32;

/// Whether `key`/`value` is a label GitLab takes (the official runner's `common/labels.go`:
/// key `^[a-zA-Z0-9_][a-zA-Z0-9._-]{2,64}$`, value `^[a-zA-Z0-9._-]{1,256}$`).
pub fn is_valid_label(key: &str, value: &str) -> bool {
    let label_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    let key_ok = (3..=65).contains(&key.len())
        && key.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && key.bytes().all(label_char);
    let value_ok = (1..=256).contains(&value.len()) && value.bytes().all(label_char);
    key_ok && value_ok
}

/// GOARCH-style architecture names, as GitLab shows them for the official runner.
fn default_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

pub fn features_json(declared: &BTreeMap<String, bool>) -> Value {
    let mut map = Map::new();
    for key in FEATURE_KEYS {
        let on = declared.get(*key).copied().unwrap_or_else(|| LIBRARY_FEATURES.contains(key));
        map.insert((*key).to_string(), Value::Bool(on));
    }
    for (key, on) in declared {
        if !map.contains_key(key) {
            map.insert(key.clone(), Value::Bool(*on));
        }
    }
    Value::Object(map)
}

pub fn identity_json(
    identity: &Identity,
    features: &BTreeMap<String, bool>,
    labels: &BTreeMap<String, String>,
) -> Value {
    let mut info = Map::new();
    let or = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.to_string());
    info.insert("name".into(), json!(or(&identity.name, "gitlab_runner_api")));
    info.insert("version".into(), json!(or(&identity.version, env!("CARGO_PKG_VERSION"))));
    if let Some(r) = &identity.revision {
        info.insert("revision".into(), json!(r));
    }
    info.insert("platform".into(), json!(or(&identity.platform, std::env::consts::OS)));
    info.insert("architecture".into(), json!(or(&identity.architecture, default_architecture())));
    if let Some(e) = &identity.executor {
        info.insert("executor".into(), json!(e));
    }
    info.insert("features".into(), features_json(features));
    info.insert("config".into(), json!({"gpus": ""}));
    if !labels.is_empty() {
        info.insert("labels".into(), json!(labels));
    }
    Value::Object(info)
}

pub fn info_json(runner: &RunnerData) -> Value {
    identity_json(&runner.identity, &runner.features, &runner.labels)
}

/// [`info_json`] serialised once, to be spliced into every request body that carries it. Written
/// from borrowed parts (the same bytes: a test holds the two together) rather than through a
/// `Value` map, which costs an allocation per feature, and every job (taken or loaded) writes it.
pub fn info_raw(runner: &RunnerData) -> Box<serde_json::value::RawValue> {
    let Identity { name, version, revision, platform, architecture, executor } = &runner.identity;
    let info = InfoOut {
        name: name.as_deref().unwrap_or("gitlab_runner_api"),
        version: version.as_deref().unwrap_or(env!("CARGO_PKG_VERSION")),
        revision: revision.as_deref(),
        platform: platform.as_deref().unwrap_or(std::env::consts::OS),
        architecture: architecture.as_deref().unwrap_or_else(|| default_architecture()),
        executor: executor.as_deref(),
        features: FeaturesOut(&runner.features),
        config: ConfigOut { gpus: "" },
        labels: &runner.labels,
    };
    serde_json::value::to_raw_value(&info).expect("the runner info serialises")
}

/// [`identity_json`]'s members, in its order.
#[derive(Serialize)]
struct InfoOut<'a> {
    name: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<&'a str>,
    platform: &'a str,
    architecture: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    executor: Option<&'a str>,
    features: FeaturesOut<'a>,
    config: ConfigOut,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct ConfigOut {
    gpus: &'static str,
}

/// [`features_json`] as it serialises: every official key in its order, then the declared
/// others (in name order).
struct FeaturesOut<'a>(&'a BTreeMap<String, bool>);

impl Serialize for FeaturesOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let declared = self.0;
        let extra = declared.iter().filter(|(key, _)| !FEATURE_KEYS.contains(&key.as_str()));
        let mut map = s.serialize_map(Some(FEATURE_KEYS.len() + extra.clone().count()))?;
        for key in FEATURE_KEYS {
            let on = declared.get(*key).copied().unwrap_or_else(|| LIBRARY_FEATURES.contains(key));
            map.serialize_entry(key, &on)?;
        }
        for (key, on) in extra {
            map.serialize_entry(key, on)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_official_keys_are_sent_and_declared_ones_win() {
        let mut declared = BTreeMap::new();
        declared.insert("refspecs".to_string(), true);
        declared.insert("cancel_gracefully".to_string(), false);
        declared.insert("my_extra".to_string(), true);
        let f = features_json(&declared);
        let obj = f.as_object().unwrap();
        assert_eq!(obj.len(), FEATURE_KEYS.len() + 1);
        assert_eq!(obj["refspecs"], true);
        assert_eq!(obj["cancel_gracefully"], false);
        assert_eq!(obj["trace_checksum"], true);
        assert_eq!(obj["image"], false);
        assert_eq!(obj["my_extra"], true);
        assert_eq!(obj.keys().next().unwrap(), "variables");
    }

    #[test]
    fn identity_defaults_fill_the_wire_only() {
        let info = identity_json(
            &Identity { executor: Some("custom".into()), ..Default::default() },
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        assert_eq!(info["name"], "gitlab_runner_api");
        assert_eq!(info["executor"], "custom");
        assert!(info.get("revision").is_none());
        assert_eq!(info["config"]["gpus"], "");
        assert!(is_valid_feature_name("image") && !is_valid_feature_name("Bad-Name") && !is_valid_feature_name(""));
        assert!(info.get("labels").is_none(), "no labels: none sent");
        let labels = BTreeMap::from([("site".to_string(), "cern-batch".to_string())]);
        assert_eq!(identity_json(&Identity::default(), &BTreeMap::new(), &labels)["labels"]["site"], "cern-batch");
    }

    #[test]
    fn the_raw_info_is_the_info_json_serialised() {
        let identity = Identity {
            name: Some("n \"quoted\" é".into()),
            version: Some("1.2".into()),
            revision: Some("abc".into()),
            platform: Some("linux".into()),
            architecture: Some("arm64".into()),
            executor: Some("custom".into()),
        };
        let features = [("image", true), ("cancel_gracefully", false), ("zz_extra", true), ("aa_extra", false)]
            .into_iter()
            .map(|(k, on)| (k.to_string(), on))
            .collect();
        let labels =
            [("site", "cern"), ("a.b", "c-d")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let runners = [RunnerData::default(), RunnerData { identity, features, labels, ..RunnerData::default() }];
        for r in &runners {
            assert_eq!(info_raw(r).get(), serde_json::to_string(&info_json(r)).unwrap());
        }
    }

    #[test]
    fn labels_follow_the_official_runner_s_rules() {
        assert!(is_valid_label("site", "cern"));
        assert!(is_valid_label("_a.b-c", "1.2_3-x"));
        assert!(is_valid_label(&"k".repeat(65), &"v".repeat(256)));
        for (k, v) in [
            ("ab", "v"),
            ("-abc", "v"),
            ("a b", "v"),
            (&"k".repeat(66) as &str, "v"),
            ("key", ""),
            ("key", "a/b"),
            ("key", &"v".repeat(257) as &str),
        ] {
            assert!(!is_valid_label(k, v), "{k:?}={v:?}");
        }
    }
}
