//! Collecting a job's own artifacts the way the official runner's `artifacts-uploader` does
//! (`commands/helpers/file_archiver.go`): each entry of the payload's `artifacts` whose `when`
//! fits the job's result; `paths` globbed (doublestar syntax, `**` included) relative to the
//! working directory, a matched directory taken with everything below it; `exclude` patterns
//! tested against every path; `untracked` adding what `git ls-files -o` lists (git's ignore
//! rules are not applied, as with the official runner: GitLab documents that `untracked`
//! includes ignored files); `$VAR`/`${VAR}` in `name`, `paths` and `exclude` expanded from the
//! job's variables. An entry matching nothing is skipped with a warning, as the official runner
//! does. Unlike it, a path that leaves the working directory (`..`, an absolute path elsewhere,
//! a symbolic link pointing outside) is an error rather than a warning.

use super::archive::{self, Entry, Kind};
use super::glob::{self, Pattern};
use super::{ArtifactFile, Scratch};
use crate::core::diag;
use crate::core::error::{Error, Result};
use crate::core::payload::{strings, text, JobInfo, VAR_FILE};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

/// What [`collect`] built: the files to upload, living in `scratch`.
#[derive(Debug)]
pub struct Collected {
    pub files: Vec<ArtifactFile>,
    pub scratch: Scratch,
}

/// One entry of the payload's `artifacts` (protocol §2.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Spec {
    name: String,
    untracked: bool,
    paths: Vec<String>,
    exclude: Vec<String>,
    when: String,
    expire_in: Option<String>,
    artifact_type: String,
    artifact_format: String,
}

fn specs(payload: &Value) -> Vec<Spec> {
    let Some(Value::Array(items)) = payload.get("artifacts") else { return Vec::new() };
    items
        .iter()
        .filter(|i| i.is_object())
        .map(|i| Spec {
            name: text(i.get("name")).filter(|n| !n.is_empty()).unwrap_or_else(|| "artifacts".into()),
            untracked: matches!(i.get("untracked"), Some(Value::Bool(true))),
            paths: strings(i.get("paths")),
            exclude: strings(i.get("exclude")),
            when: text(i.get("when")).unwrap_or_default(),
            expire_in: text(i.get("expire_in")).filter(|e| !e.is_empty()),
            artifact_type: text(i.get("artifact_type")).filter(|t| !t.is_empty()).unwrap_or_else(|| "archive".into()),
            artifact_format: text(i.get("artifact_format")).unwrap_or_default(),
        })
        .collect()
}

/// Whether an entry with this `when` is uploaded for a job that succeeded or not (the official
/// runner's `ArtifactWhen.OnSuccess/OnFailure`: empty means on_success; unknown values never).
fn applies(when: &str, job_succeeded: bool) -> bool {
    match when {
        "" | "on_success" => job_succeeded,
        "on_failure" => !job_succeeded,
        "always" => true,
        _ => false,
    }
}

/// `$NAME` and `${NAME}` replaced by `lookup(NAME)`, unknown names by nothing (as a shell does);
/// any other `$` stays.
fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let chars: Vec<char> = s.chars().collect();
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '$' {
            if chars.get(i + 1) == Some(&'{') {
                if let Some(len) = chars[i + 2..].iter().position(|c| *c == '}') {
                    let name: String = chars[i + 2..i + 2 + len].iter().collect();
                    if !name.is_empty() && name.chars().all(is_name) {
                        out.push_str(&lookup(&name).unwrap_or_default());
                        i += len + 3;
                        continue;
                    }
                }
            } else if chars.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic() || *c == '_') {
                let len = chars[i + 1..].iter().take_while(|c| is_name(**c)).count();
                let name: String = chars[i + 1..i + 1 + len].iter().collect();
                out.push_str(&lookup(&name).unwrap_or_default());
                i += len + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// The file name GitLab stores: the base name of `name` (`default` when that is empty or `.`)
/// plus the format's extension, as the official runner's `artifactFilename`.
fn artifact_filename(name: &str, format: &str) -> String {
    let base = name.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let base = if base.is_empty() || base == "." { "default" } else { base };
    match format {
        "" | "zip" => format!("{base}.zip"),
        "gzip" => format!("{base}.gz"),
        _ => base.to_string(),
    }
}

/// `/`-separated components of `raw` with `.` and empty ones dropped and `..` applied; None when
/// `..` climbs above the start.
fn clean_components(raw: &str) -> Option<Vec<&str>> {
    let mut out: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out)
}

fn path_components(p: &Path) -> Vec<String> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

/// `path` lexically cleaned (`.`, `..`, duplicate separators).
fn lexical_clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The state of collecting one `artifacts:` entry.
struct Walker<'a> {
    /// The working directory, canonical (all file access goes through it).
    wd: &'a Path,
    /// Its absolute but unresolved spelling (for absolute patterns written against it).
    wd_abs: &'a Path,
    name: &'a str,
    exclude: Vec<Pattern>,
    entries: BTreeMap<String, Entry>,
    excluded: BTreeMap<String, usize>,
}

#[cfg(unix)]
fn mode_of(meta: &Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(meta: &Metadata) -> u32 {
    if meta.is_dir() {
        0o755
    } else {
        0o644
    }
}

fn join_rel(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}/{child}")
    }
}

impl Walker<'_> {
    fn outside(&self, what: &str, raw: &str) -> Error {
        Error::invalid(format!(
            "artifacts {:?}: {what} {raw:?} is outside the working directory {}",
            self.name,
            self.wd.display()
        ))
    }

    /// `raw` (a path or pattern from the payload, variables expanded) as a cleaned path relative
    /// to the working directory (`` for the directory itself), or an error when it leaves it.
    fn relative(&self, what: &str, raw: &str) -> Result<String> {
        let comps = clean_components(raw).ok_or_else(|| self.outside(what, raw))?;
        if !raw.starts_with('/') {
            return Ok(comps.join("/"));
        }
        for wd in [self.wd_abs, self.wd] {
            let wd_comps = path_components(wd);
            if comps.len() >= wd_comps.len() && comps.iter().zip(&wd_comps).all(|(a, b)| *a == b) {
                return Ok(comps[wd_comps.len()..].join("/"));
            }
        }
        Err(self.outside(what, raw))
    }

    /// Refuses a path whose parent directory is, through a symbolic link, outside the
    /// working directory (the official runner would archive what lies behind it).
    fn check_parent(&self, rel: &str) -> Result<()> {
        if rel.is_empty() {
            return Ok(());
        }
        let full = self.wd.join(rel);
        let Some(parent) = full.parent() else { return Ok(()) };
        match fs::canonicalize(parent) {
            Ok(real) if !real.starts_with(self.wd) => Err(Error::invalid(format!(
                "artifacts {:?}: {rel:?} lies behind a symbolic link to {}, outside the working directory {}",
                self.name,
                real.display(),
                self.wd.display()
            ))),
            _ => Ok(()),
        }
    }

    /// The target of the symbolic link `rel`, refused when it points outside the working
    /// directory (resolved when it exists, else lexically).
    fn symlink_target(&self, rel: &str) -> Result<String> {
        let full = self.wd.join(rel);
        let target = fs::read_link(&full).map_err(|e| Error::io(format!("{}: {e}", full.display())))?;
        let inside = match fs::canonicalize(&full) {
            Ok(real) => real.starts_with(self.wd),
            Err(_) => {
                let parent = full.parent().and_then(|p| fs::canonicalize(p).ok()).unwrap_or_else(|| self.wd.into());
                let joined = lexical_clean(&parent.join(&target));
                joined.starts_with(self.wd) || (target.is_absolute() && joined.starts_with(self.wd_abs))
            }
        };
        if !inside {
            return Err(Error::invalid(format!(
                "artifacts {:?}: {rel:?} is a symbolic link to {}, outside the working directory {}",
                self.name,
                target.display(),
                self.wd.display()
            )));
        }
        target.to_str().map(str::to_string).ok_or_else(|| {
            Error::invalid(format!("artifacts {:?}: the target of the symbolic link {rel:?} is not UTF-8", self.name))
        })
    }

    /// Adds one path (unless excluded); returns whether it was added.
    fn process(&mut self, rel: &str, meta: &Metadata) -> Result<bool> {
        if let Some(p) = self.exclude.iter().find(|p| p.matches(rel)) {
            *self.excluded.entry(p.as_str().to_string()).or_default() += 1;
            return Ok(false);
        }
        let ft = meta.file_type();
        let kind = if ft.is_symlink() {
            Kind::Symlink(self.symlink_target(rel)?)
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else {
            diag::warn(&format!("artifacts {:?}: {rel}: not a file, directory or symbolic link; ignored", self.name));
            return Ok(false);
        };
        self.entries.insert(rel.to_string(), Entry { kind, mode: mode_of(meta), modified: meta.modified().ok() });
        Ok(true)
    }

    /// Visits `rel` and, for a real directory, everything below it (links are not followed):
    /// a path is added when an ancestor was (`included`) or it matches `pattern` (every path when
    /// there is no pattern). Returns how many were added.
    fn walk(&mut self, rel: &str, meta: &Metadata, pattern: Option<&Pattern>, included: bool) -> Result<usize> {
        let included = included || pattern.is_none_or(|p| !rel.is_empty() && p.matches(rel));
        let mut added = 0;
        if included && !rel.is_empty() && self.process(rel, meta)? {
            added += 1;
        }
        if !meta.is_dir() {
            return Ok(added);
        }
        let dir = self.wd.join(rel);
        let read = fs::read_dir(&dir).map_err(|e| Error::io(format!("{}: {e}", dir.display())))?;
        let mut children = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| Error::io(format!("{}: {e}", dir.display())))?;
            match entry.file_name().into_string() {
                Ok(name) => children.push(name),
                Err(name) => diag::warn(&format!(
                    "artifacts {:?}: {}: the name is not UTF-8; ignored",
                    self.name,
                    dir.join(name).display()
                )),
            }
        }
        children.sort();
        for name in children {
            let child = join_rel(rel, &name);
            let Ok(meta) = fs::symlink_metadata(self.wd.join(&child)) else { continue };
            added += self.walk(&child, &meta, pattern, included)?;
        }
        Ok(added)
    }

    /// One `paths` entry (cleaned): a literal path, or a pattern walked from its literal bases.
    fn add_path(&mut self, rel: &str) -> Result<usize> {
        if !glob::has_meta(rel) {
            self.check_parent(rel)?;
            let Ok(meta) = fs::symlink_metadata(self.wd.join(rel)) else { return Ok(0) };
            return self.walk(rel, &meta, None, true);
        }
        let pattern = Pattern::new(rel)
            .map_err(|e| Error::invalid(format!("artifacts {:?}: bad pattern {rel:?}: {e}", self.name)))?;
        let mut added = 0;
        for base in pattern.literal_bases() {
            self.check_parent(&base)?;
            let full = self.wd.join(&base);
            let Ok(mut meta) = fs::symlink_metadata(&full) else { continue };
            if meta.file_type().is_symlink() && !pattern.matches(&base) {
                // The pattern looks inside a linked directory: a glob goes through it (as
                // doublestar does) when it stays inside the working directory.
                match fs::canonicalize(&full) {
                    Ok(real) if real.starts_with(self.wd) => {}
                    Ok(real) => {
                        return Err(Error::invalid(format!(
                            "artifacts {:?}: {base:?} is a symbolic link to {}, outside the working directory {}",
                            self.name,
                            real.display(),
                            self.wd.display()
                        )))
                    }
                    Err(_) => continue,
                }
                let Ok(followed) = fs::metadata(&full) else { continue };
                meta = followed;
            }
            added += self.walk(&base, &meta, Some(&pattern), false)?;
        }
        Ok(added)
    }

    /// `git ls-files -o -z` in the working directory: every untracked file (ignored ones too).
    fn add_untracked(&mut self) -> Result<usize> {
        let output = Command::new("git")
            .args(["ls-files", "-o", "-z"])
            .current_dir(self.wd)
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                Error::io(format!(
                    "artifacts {:?}: untracked: cannot run git ({e}); git is needed for `untracked: true`",
                    self.name
                ))
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            diag::warn(&format!(
                "artifacts {:?}: untracked: {} is not a git work tree ({})",
                self.name,
                self.wd.display(),
                stderr.lines().next().unwrap_or("git failed").trim()
            ));
            return Ok(0);
        }
        let mut added = 0;
        for raw in output.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
            let Ok(raw) = std::str::from_utf8(raw) else {
                diag::warn(&format!("artifacts {:?}: untracked: a file name is not UTF-8; ignored", self.name));
                continue;
            };
            let rel = self.relative("untracked file", raw)?;
            if rel.is_empty() {
                continue;
            }
            self.check_parent(&rel)?;
            let Ok(meta) = fs::symlink_metadata(self.wd.join(&rel)) else { continue };
            if self.process(&rel, &meta)? {
                added += 1;
            }
        }
        Ok(added)
    }
}

/// Applies the job's `artifacts:` (from its `payload`, with variables from `info`) to `workdir` for a job that succeeded or not, building each
/// entry's file in a new temporary directory. Nothing is kept when an entry fails.
///
/// Errors: `InvalidArgument` for a path leaving `workdir` (also through a symbolic link), a bad
/// pattern, more than one file for a `raw` artifact, an unsupported `artifact_format`; `Io` for a
/// missing `workdir`, unreadable files, a failing disk, or git missing when `untracked` is asked.
pub fn collect(payload: &str, info: &JobInfo, workdir: &Path, job_succeeded: bool) -> Result<Collected> {
    let lookup = |name: &str| {
        info.variables.iter().rev().find(|v| v.key == name && v.flags & VAR_FILE == 0).map(|v| v.value.clone())
    };
    let payload: Value = serde_json::from_str(payload).expect("a job's payload is valid JSON");
    collect_from(&payload, &lookup, workdir, job_succeeded)
}

pub(crate) fn collect_from(
    payload: &Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    workdir: &Path,
    job_succeeded: bool,
) -> Result<Collected> {
    let meta = fs::metadata(workdir).map_err(|e| Error::io(format!("workdir {}: {e}", workdir.display())))?;
    if !meta.is_dir() {
        return Err(Error::invalid(format!("workdir {} is not a directory", workdir.display())));
    }
    let wd = fs::canonicalize(workdir).map_err(|e| Error::io(format!("workdir {}: {e}", workdir.display())))?;
    let wd_abs = lexical_clean(&std::path::absolute(workdir).unwrap_or_else(|_| wd.clone()));
    let scratch = Scratch::new()?;
    let mut files = Vec::new();
    for (index, spec) in specs(payload).into_iter().enumerate() {
        let name = expand(&spec.name, lookup);
        if !applies(&spec.when, job_succeeded) {
            diag::debug(&format!(
                "artifacts {name:?}: when {:?} does not apply to this job's result; skipped",
                spec.when
            ));
            continue;
        }
        if spec.paths.is_empty() && !spec.untracked {
            continue;
        }
        if !matches!(spec.artifact_format.as_str(), "" | "zip" | "gzip" | "raw") {
            return Err(Error::invalid(format!(
                "artifacts {name:?}: artifact_format {:?} is not supported (zip, gzip or raw)",
                spec.artifact_format
            )));
        }
        let mut walker = Walker {
            wd: &wd,
            wd_abs: &wd_abs,
            name: &name,
            exclude: Vec::new(),
            entries: BTreeMap::new(),
            excluded: BTreeMap::new(),
        };
        for raw in &spec.exclude {
            let raw = expand(raw, lookup);
            match walker.relative("exclude", &raw) {
                Ok(rel) => walker
                    .exclude
                    .push(Pattern::new(&rel).map_err(|e| {
                        Error::invalid(format!("artifacts {name:?}: bad exclude pattern {raw:?}: {e}"))
                    })?),
                // As the official runner: an exclude outside the working directory excludes nothing.
                Err(e) => diag::warn(&e.message),
            }
        }
        for raw in &spec.paths {
            let raw = expand(raw, lookup);
            let rel = walker.relative("path", &raw)?;
            let found = walker.add_path(&rel)?;
            if found == 0 {
                diag::warn(&format!(
                    "artifacts {name:?}: {raw}: no matching files. Ensure that the artifact path is relative to the \
                     working directory ({})",
                    wd.display()
                ));
            } else {
                diag::info(&format!(
                    "artifacts {name:?}: {raw}: found {found} matching artifact files and directories"
                ));
            }
        }
        if spec.untracked {
            let found = walker.add_untracked()?;
            diag::info(&format!("artifacts {name:?}: untracked: found {found} files"));
        }
        for (pattern, count) in &walker.excluded {
            diag::info(&format!("artifacts {name:?}: {pattern}: excluded {count} files"));
        }
        let entries = std::mem::take(&mut walker.entries);
        let level = archive::Level::from_variable(lookup("ARTIFACT_COMPRESSION_LEVEL").as_deref());
        if let Some(file) = build(&wd, scratch.path(), index, &name, &spec, &entries, level)? {
            files.push(file);
        }
    }
    Ok(Collected { files, scratch })
}

/// Builds the file of one entry; None (with a warning) when nothing was collected for it.
fn build(
    wd: &Path,
    scratch: &Path,
    index: usize,
    name: &str,
    spec: &Spec,
    entries: &BTreeMap<String, Entry>,
    level: archive::Level,
) -> Result<Option<ArtifactFile>> {
    let format = spec.artifact_format.as_str();
    // Report formats take regular files only (a link is followed: it was checked to stay inside).
    let regular: Vec<(&String, &Entry)> = entries
        .iter()
        .filter(|(rel, e)| match e.kind {
            Kind::File => true,
            Kind::Symlink(_) => fs::metadata(wd.join(rel)).is_ok_and(|m| m.is_file()),
            Kind::Dir => false,
        })
        .collect();
    let nothing = match format {
        "gzip" | "raw" => regular.is_empty(),
        _ => entries.is_empty(),
    };
    if nothing {
        diag::warn(&format!("artifacts {name:?}: no files to upload"));
        return Ok(None);
    }
    if format == "raw" && regular.len() > 1 {
        let names: Vec<&str> = regular.iter().take(5).map(|(r, _)| r.as_str()).collect();
        return Err(Error::invalid(format!(
            "artifacts {name:?}: only one file can be sent as raw, {} matched ({}{})",
            regular.len(),
            names.join(", "),
            if regular.len() > 5 { ", ..." } else { "" }
        )));
    }
    let filename = artifact_filename(name, format);
    let dir = scratch.join(index.to_string());
    fs::create_dir(&dir).map_err(|e| Error::io(format!("{}: {e}", dir.display())))?;
    let out = dir.join(&filename);
    match format {
        "gzip" => archive::write_gzip(wd, &regular, level, &out)?,
        "raw" => archive::write_raw(wd, regular[0].0, &out)?,
        _ => archive::write_zip(wd, entries, level, &out)?,
    }
    let size = fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    diag::info(&format!(
        "artifacts {name:?}: {filename} ({} as {}, {size} bytes) ready to upload",
        spec.artifact_type,
        if format.is_empty() { "zip" } else { format }
    ));
    Ok(Some(ArtifactFile {
        path: out,
        name: filename,
        artifact_type: spec.artifact_type.clone(),
        artifact_format: spec.artifact_format.clone(),
        expire_in: spec.expire_in.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn when_follows_the_official_runner() {
        assert!(applies("", true) && !applies("", false));
        assert!(applies("on_success", true) && !applies("on_success", false));
        assert!(!applies("on_failure", true) && applies("on_failure", false));
        assert!(applies("always", true) && applies("always", false));
        assert!(!applies("sometimes", true) && !applies("sometimes", false));
    }

    #[test]
    fn variables_expand_like_a_shell() {
        let lookup = |n: &str| match n {
            "CI_JOB_NAME" => Some("build".to_string()),
            "REF" => Some("main".to_string()),
            _ => None,
        };
        assert_eq!(expand("$CI_JOB_NAME-${REF}", &lookup), "build-main");
        assert_eq!(expand("out/$UNKNOWN/x", &lookup), "out//x");
        assert_eq!(expand("cost: $5 and $ and ${} and ${REF", &lookup), "cost: $5 and $ and ${} and ${REF");
        assert_eq!(expand("${REF}${REF}$REF.zip", &lookup), "mainmainmain.zip");
    }

    #[test]
    fn file_names_as_the_official_runner() {
        assert_eq!(artifact_filename("artifacts", "zip"), "artifacts.zip");
        assert_eq!(artifact_filename("artifacts", ""), "artifacts.zip");
        assert_eq!(artifact_filename("junit", "gzip"), "junit.gz");
        assert_eq!(artifact_filename("sast", "raw"), "sast");
        assert_eq!(artifact_filename("a/b/name", "zip"), "name.zip");
        assert_eq!(artifact_filename(".", "zip"), "default.zip");
        assert_eq!(artifact_filename("", "raw"), "default");
    }

    #[test]
    fn specs_are_read_leniently() {
        let s = specs(&json!({"artifacts": [
            {"paths": "one", "when": "always"},
            {"name": "", "paths": ["a", "b"], "exclude": ["c"], "untracked": true, "expire_in": "",
             "artifact_type": "junit", "artifact_format": "gzip"},
            "junk"
        ]}));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "artifacts");
        assert_eq!(s[0].paths, vec!["one"]);
        assert_eq!(s[0].artifact_type, "archive");
        assert_eq!(s[0].artifact_format, "");
        assert_eq!(s[1].name, "artifacts");
        assert!(s[1].untracked);
        assert_eq!(s[1].expire_in, None);
        assert_eq!(s[1].exclude, vec!["c"]);
        assert!(specs(&json!({})).is_empty());
    }

    #[test]
    fn collected_files_live_as_long_as_a_set_holding_them() {
        let wd = tempfile::tempdir().unwrap();
        fs::write(wd.path().join("a.txt"), b"a").unwrap();
        let payload =
            json!({"artifacts": [{"paths": ["a.txt"], "artifact_type": "archive", "artifact_format": "zip"}]});
        let collected = collect_from(&payload, &|_| None, wd.path(), true).unwrap();
        assert_eq!(collected.files.len(), 1);
        let path = collected.files[0].path.clone();
        assert_eq!(path.file_name().unwrap(), "artifacts.zip");
        let mut set = super::super::ArtifactSet::default();
        set.add_collected(collected);
        let copy = set.clone();
        drop(set);
        assert!(path.exists(), "a copy (an upload in progress) keeps the files");
        drop(copy);
        assert!(!path.exists(), "the last copy removes them");
    }

    #[test]
    fn cleaning_refuses_escapes() {
        assert_eq!(clean_components("./a//b/../c/").unwrap(), vec!["a", "c"]);
        assert_eq!(clean_components("a/.."), Some(vec![]));
        assert_eq!(clean_components("../x"), None);
        assert_eq!(clean_components("a/../../x"), None);
    }
}
