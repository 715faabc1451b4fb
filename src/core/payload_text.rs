//! A job payload's text read into a [`JobInfo`] without a `Value` tree for its variables.
//!
//! A payload is mostly its variables: a hundred objects and more, each of which becomes a map
//! with a hashed index when the payload is parsed into a `Value` (with `preserve_order`, an
//! `IndexMap` per variable), only to be turned into a [`Variable`] and dropped. Every job taken
//! and every job loaded from a dump reads its payload, so here the variables are read straight
//! into [`Variable`]s, only the other members the job reads (`payload::READ_MEMBERS`, and two of
//! `features`) become `Value`s, and the rest is skipped.
//!
//! The result is exactly what [`JobInfo::from_payload`] gives for the parsed text: the members
//! are read with the same rules (the last of duplicate members wins, as it does in a `Value`
//! map), and a payload whose variables are not a list of objects, whose features are not an
//! object, that nests too deeply, or is not JSON, is left to the ordinary reading, which then
//! gives its own result or error (slower, the same answer).

use super::error::Result;
use super::json;
use super::payload::{self, JobInfo, Variable, VariableMember, MAX_PAYLOAD_DEPTH};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// What the accessors need from the payload `text`: as [`JobInfo::from_payload`] of the parsed
/// text, errors included.
pub fn job_info(text: &str) -> Result<JobInfo> {
    match read(text) {
        Some(result) => result,
        None => payload::from_value_text(text),
    }
}

/// The payload read the fast way, or None when the ordinary reading decides.
fn read(text: &str) -> Option<Result<JobInfo>> {
    // Not an object: `Members` refuses it below.
    let depth = json::Cursor::new(text).skip_value()?;
    Some(read_nested(text, depth)?.job_info())
}

/// The payload `text`, known to nest `depth` levels deep (whoever found it in a larger document
/// walked it already), read the fast way; None when the ordinary reading decides.
pub fn read_nested(text: &str, depth: usize) -> Option<Members> {
    if depth > MAX_PAYLOAD_DEPTH {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// The payload's members that the job reads but `variables` (as a `Value` map, the last of
/// duplicates kept), and its variables read as [`Variable`]s.
pub struct Members {
    rest: Map<String, Value>,
    variables: Option<Vec<Variable>>,
}

impl Members {
    /// The members but `variables` that the job reads (`payload::READ_MEMBERS`), as the
    /// ordinary reading has them.
    pub fn read_members(&self) -> &Map<String, Value> {
        &self.rest
    }

    /// As [`job_info`] of the payload read.
    pub fn job_info(self) -> Result<JobInfo> {
        payload::from_members(&Value::Object(self.rest), self.variables.unwrap_or_default())
    }
}

impl<'de> de::Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a job payload object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Members, A::Error> {
        let mut members = Members { rest: Map::new(), variables: None };
        while let Some(key) = map.next_key::<String>()? {
            if key == "variables" {
                members.variables = Some(map.next_value_seed(VariablesSeed)?);
            } else if key == "features" {
                let value = map.next_value_seed(FeaturesSeed)?;
                members.rest.insert(key, value);
            } else if payload::READ_MEMBERS.contains(&key.as_str()) {
                let value = map.next_value::<Value>()?;
                members.rest.insert(key, value);
            } else {
                // Not read (artifacts, services, cache...): not built. Its text was checked by
                // the walk before (`json::Cursor::skip_value`), more strictly than serde_json
                // checks what it skips.
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(members)
    }
}

/// `features`: an object, of which only the members the job reads are kept (any other shape is
/// an error here: the ordinary reading then decides).
struct FeaturesSeed;

impl<'de> DeserializeSeed<'de> for FeaturesSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FeaturesSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a features object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut read = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if payload::READ_FEATURES.contains(&key.as_str()) {
                let value = map.next_value::<Value>()?;
                read.insert(key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(read))
    }
}

/// `variables`: a list of objects, or an error (the ordinary reading then takes any other
/// shape as it always did).
struct VariablesSeed;

impl<'de> DeserializeSeed<'de> for VariablesSeed {
    type Value = Vec<Variable>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Vec<Variable>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for VariablesSeed {
    type Value = Vec<Variable>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of variables")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Vec<Variable>, A::Error> {
        let mut variables = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(variable) = seq.next_element_seed(VariableSeed)? {
            variables.extend(variable);
        }
        Ok(variables)
    }
}

/// One variable object: None where the ordinary reading skips it (no usable `key`).
struct VariableSeed;

impl<'de> DeserializeSeed<'de> for VariableSeed {
    type Value = Option<Variable>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Option<Variable>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for VariableSeed {
    type Value = Option<Variable>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a variable object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Option<Variable>, A::Error> {
        let (mut key, mut value, mut flags) = (None, None, 0);
        while let Some(VariableName(name)) = map.next_key()? {
            match name {
                VariableMember::Key => key = Some(map.next_value::<Value>()?),
                VariableMember::Value => value = Some(map.next_value::<Value>()?),
                // Each flag as its last member says (as in a `Value` map).
                VariableMember::Flag(bit) => {
                    if payload::truthy(Some(&map.next_value::<Value>()?)) {
                        flags |= bit;
                    } else {
                        flags &= !bit;
                    }
                }
                VariableMember::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(payload::variable_from(key, value, flags))
    }
}

/// A member name of a variable object, told apart without keeping it.
struct VariableName(VariableMember);

impl<'de> de::Deserialize<'de> for VariableName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_identifier(VariableNameVisitor)
    }
}

struct VariableNameVisitor;

impl Visitor<'_> for VariableNameVisitor {
    type Value = VariableName;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> std::result::Result<VariableName, E> {
        Ok(VariableName(VariableMember::named(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The ordinary reading's result for `text`.
    fn ordinary(text: &str) -> Result<JobInfo> {
        payload::from_value_text(text)
    }

    #[track_caller]
    fn same(text: &str) {
        assert_eq!(job_info(text), ordinary(text), "for {text}");
    }

    #[test]
    fn a_real_payload_is_read_the_fast_way_with_the_ordinary_result() {
        let text = payload::tests::sample().to_string();
        assert!(read(&text).is_some(), "taken the fast way");
        same(&text);
    }

    #[test]
    fn the_members_left_unread_do_not_change_what_the_job_reads() {
        // Whatever the ordinary reading makes of a payload, it makes of the members listed alone.
        let mut full = payload::tests::sample();
        for (key, value) in [
            ("artifacts", json!([{"paths": ["out"]}])),
            ("image", json!({"name": "alpine"})),
            ("runner_info", json!({"timeout": 600})),
        ] {
            full.as_object_mut().unwrap().insert(key.into(), value);
        }
        let features = full["features"].as_object_mut().unwrap();
        features.insert("trace_sections".into(), json!(true));
        features.insert("failure_reasons".into(), json!(["script_failure"]));
        features.insert("token_mask_prefixes".into(), json!(["glpat-"]));
        let mut listed = full.clone();
        let members = listed.as_object_mut().unwrap();
        members.retain(|k, _| k == "variables" || k == "features" || payload::READ_MEMBERS.contains(&k.as_str()));
        members["features"].as_object_mut().unwrap().retain(|k, _| payload::READ_FEATURES.contains(&k.as_str()));
        assert!(full.as_object().unwrap().len() > members.len(), "the sample has members left unread");
        let info = ordinary(&full.to_string()).unwrap();
        assert_eq!(ordinary(&listed.to_string()).unwrap(), info);
        assert_eq!(info.failure_reasons, Some(vec!["script_failure".to_string()]));
        assert!(read(&full.to_string()).is_some(), "taken the fast way");
        same(&full.to_string());
        // And every member listed is read: without it, the job reads something else.
        for key in payload::READ_MEMBERS {
            let mut without = full.clone();
            assert!(without.as_object_mut().unwrap().remove(key).is_some(), "the sample has {key}");
            assert_ne!(ordinary(&without.to_string()), Ok(info.clone()), "{key} is read");
            same(&without.to_string());
        }
        for key in payload::READ_FEATURES {
            let mut without = full.clone();
            assert!(without["features"].as_object_mut().unwrap().remove(key).is_some(), "the sample has {key}");
            assert_ne!(ordinary(&without.to_string()), Ok(info.clone()), "features.{key} is read");
            same(&without.to_string());
        }
    }

    #[test]
    fn odd_payloads_give_what_the_ordinary_reading_gives() {
        let texts = [
            json!({"id": 1, "token": "t"}).to_string(),
            json!({"id": "12", "token": "t", "variables": []}).to_string(),
            json!({"token": "t", "variables": [{"key": "A", "value": "1"}]}).to_string(),
            json!({"id": 1}).to_string(),
            json!({"id": 1, "token": ""}).to_string(),
            json!([1, 2]).to_string(),
            json!({"id": 1, "token": "t", "steps": 5, "variables": {"a": 1}, "git_info": []}).to_string(),
            json!({"id": 1, "token": "t", "variables": null}).to_string(),
            json!({"id": 1, "token": "t", "variables": [
                "not an object", {"value": "no key"}, {"key": 7, "value": true, "masked": "yes", "raw": true, "x": 1},
                {"key": "E", "public": true, "masked": true, "file": false}, {"key": null}, {"key": {"a": 1}},
                {"key": "K", "value": [1], "masked": true}, {"key": 1.5, "value": -3}
            ]})
            .to_string(),
            // Duplicates: the last one wins, as in a `Value` map.
            r#"{"id": 1, "token": "t", "variables": [{"key": "A", "masked": true, "masked": false, "key": "B", "value": "x", "value": "y"}]}"#.into(),
            r#"{"id": 1, "token": "t", "variables": [{"key": "A"}], "variables": [{"key": "B", "raw": true}]}"#.into(),
            r#"{"id": 1, "id": 2, "token": "t", "token": "u"}"#.into(),
            // Escaped member names mean the same names.
            r#"{"i\u0064": 3, "token": "t", "v\u0061riables": [{"k\u0065y": "A", "m\u0061sked": true}]}"#.into(),
            // Not JSON, or not all of it.
            r#"{"id": 1, "token": "t""#.into(),
            r#"{"id": 1, "token": "t"} x"#.into(),
            r#"{"id": 1, "token": "t", "variables": [{"key": "\ud800"}]}"#.into(),
            "  {\"id\": 1, \"token\": \"t\"}  ".into(),
            "".into(),
            // Members the job does not read, of any shape; `features` of any shape, its members
            // read and not, duplicated, null.
            json!({"id": 1, "token": "t", "artifacts": 5, "services": [{"name": [1]}], "cache": null, "image": "x"})
                .to_string(),
            json!({"id": 1, "token": "t", "features": [["a"], ["b"]]}).to_string(),
            json!({"id": 1, "token": "t", "features": "failure_reasons"}).to_string(),
            json!({"id": 1, "token": "t", "features": null}).to_string(),
            json!({"id": 1, "token": "t", "features": {"failure_reasons": null, "token_mask_prefixes": "glp"}}).to_string(),
            json!({"id": 1, "token": "t", "features": {"trace_sections": true, "failure_reasons": ["a", 1, null]}})
                .to_string(),
            r#"{"id": 1, "token": "t", "features": {"failure_reasons": ["a"], "x": [], "failure_reasons": 5}}"#.into(),
            r#"{"id": 1, "token": "t", "features": {"failure_reasons": ["a"]}, "features": {}}"#.into(),
            r#"{"id": 1, "token": "t", "features": {"failure_reasons": ["a"]}, "artifacts": {"x": 1e999}}"#.into(),
        ];
        for text in &texts {
            same(text);
        }
    }

    #[test]
    fn nesting_is_limited_as_in_the_ordinary_reading() {
        for levels in [MAX_PAYLOAD_DEPTH - 2, MAX_PAYLOAD_DEPTH - 1, MAX_PAYLOAD_DEPTH, 130] {
            let deep = format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
            same(&format!(r#"{{"id": 1, "token": "t", "deep": {deep}}}"#));
            same(&format!(r#"{{"id": 1, "token": "t", "variables": [{{"key": "A", "value": {deep}}}]}}"#));
        }
    }
}
