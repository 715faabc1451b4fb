//! The `rust-version` each workspace member declares (Cargo.toml, testserver/, bench/) is not
//! lower than what its locked dependencies need. For every registry package of Cargo.lock that a
//! member builds on this platform (its normal, build and dev dependencies, then their normal and
//! build dependencies: the resolve of `cargo metadata --offline --locked --filter-platform
//! <host>`), the published Cargo.toml in the cargo registry's source directory ($CARGO_HOME or
//! ~/.cargo, `registry/src/*/<name>-<version>/`) is read for its `rust-version`. A dependency that
//! needs a newer Rust than the member declares fails the test, and so does a locked package whose
//! source is not there (nothing was checked for it) and a member declaring no `rust-version`.
//!
//! Locked packages that are not built for this platform are skipped and listed on stderr (on
//! x86_64 Linux: windows-*, wasm-bindgen and web-sys, core-foundation and security-framework,
//! r-efi, wasi; and arbitrary, an optional feature nobody enables). Their sources are usually not
//! even downloaded, so they cannot be checked here.
//!
//! What this does not check: our own code. Only the dependencies can be read mechanically; the
//! newest language and library features our own code uses, found by reading it (keep this table
//! up to date when you use something newer than the declared version allows):
//!
//! | Feature                                      | Since | Where                                   |
//! |----------------------------------------------|-------|-----------------------------------------|
//! | `Option::is_none_or`                         | 1.82  | testserver/src/routes/jobs.rs           |
//! | C string literals `c"..."`                   | 1.77  | src/ffi/status.rs, src/ffi/, tests/     |
//! | `usize::div_ceil`                            | 1.73  | testserver/src/util.rs                  |
//! | `std::sync::OnceLock`                        | 1.70  | src/core/, tests/                       |
//! | `Option::is_some_and`, `Result::is_ok_and`   | 1.70  | src/, testserver/, bench/, tests/       |
//! | `CStr::from_bytes_until_nul`                 | 1.69  | bench/src/capi.rs, tests/common/        |
//! | let-else                                     | 1.65  | src/, testserver/, bench/, tests/       |
//! | `std::thread::scope`                         | 1.63  | src/ffi/diagnostics.rs, bench/, tests/  |
//!
//! The dependencies need more (1.88: the icu_* 2.4 crates under url/idna, and encoding_rs), so
//! they set the declared version. This machine has one toolchain, so a build with exactly the
//! declared version has not been tried: this test and the table are the evidence.
//!
//! Run alone: `cargo test --test msrv` (needs the registry sources: `cargo fetch` downloads them).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---- versions and manifests ----------------------------------------------------------------

/// A Rust version as Cargo.toml writes it ("1.88" or "1.85.0"), compared numerically.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RustVersion([u32; 3]);

impl RustVersion {
    fn parse(text: &str) -> Option<RustVersion> {
        let mut parts = [0u32; 3];
        let mut count = 0;
        for (slot, part) in parts.iter_mut().zip(text.split('.')) {
            *slot = part.parse().ok()?;
            count += 1;
        }
        (count >= 2 && text.split('.').count() == count).then_some(RustVersion(parts))
    }
}

impl fmt::Display for RustVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [major, minor, patch] = self.0;
        if patch == 0 {
            write!(f, "{major}.{minor}")
        } else {
            write!(f, "{major}.{minor}.{patch}")
        }
    }
}

/// What a manifest's `[package]` table says about `rust-version`.
#[derive(Debug, PartialEq)]
enum Declared {
    Version(RustVersion),
    /// `rust-version.workspace = true`: inherited from `[workspace.package]`.
    FromWorkspace,
    Absent,
}

/// The `key = value` lines of one TOML table (`[name]`), as (key, raw value) pairs. Enough for
/// Cargo.toml's `[package]` (published manifests are normalised: one key per line).
fn table_entries<'a>(toml: &'a str, name: &str) -> Vec<(&'a str, &'a str)> {
    let header = format!("[{name}]");
    let mut inside = false;
    let mut entries = Vec::new();
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == header;
        } else if let (true, Some((key, value))) = (inside, line.split_once('=')) {
            entries.push((key.trim(), value.trim()));
        }
    }
    entries
}

fn unquote(value: &str) -> Option<&str> {
    value.strip_prefix('"')?.strip_suffix('"')
}

/// The `rust-version` of `[package]` (or, with `table`, of another table such as
/// `workspace.package`). Err: a value this reader does not understand.
fn declared_rust_version(toml: &str, table: &str) -> Result<Declared, String> {
    for (key, value) in table_entries(toml, table) {
        let inherits = value.replace(' ', "") == "{workspace=true}";
        match key {
            "rust-version.workspace" if value == "true" => return Ok(Declared::FromWorkspace),
            "rust-version" if inherits => return Ok(Declared::FromWorkspace),
            "rust-version" => {
                let text = unquote(value).ok_or_else(|| format!("rust-version = {value}: not a string"))?;
                let version =
                    RustVersion::parse(text).ok_or_else(|| format!("rust-version = {value}: not a version"))?;
                return Ok(Declared::Version(version));
            }
            _ => {}
        }
    }
    Ok(Declared::Absent)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ---- Cargo.lock ----------------------------------------------------------------------------

/// A registry package of Cargo.lock.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Locked {
    name: String,
    version: String,
    source: String,
}

impl fmt::Display for Locked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

/// The `[[package]]` entries of Cargo.lock whose source is a registry (path and git packages
/// have no registry source directory; our workspace members are path packages).
fn locked_registry_packages(lock: &str) -> Vec<Locked> {
    let mut packages = Vec::new();
    for block in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            block
                .lines()
                .filter_map(|line| line.split_once('='))
                .find(|(k, _)| k.trim() == key)
                .and_then(|(_, v)| unquote(v.trim()).map(str::to_string))
        };
        let (Some(name), Some(version)) = (field("name"), field("version")) else {
            panic!("Cargo.lock: a [[package]] without name or version:{block}");
        };
        if let Some(source) = field("source").filter(|s| s.starts_with("registry+") || s.starts_with("sparse+")) {
            packages.push(Locked { name, version, source });
        }
    }
    packages
}

// ---- the registry sources ------------------------------------------------------------------

fn cargo_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return PathBuf::from(home);
    }
    let home = std::env::var_os("HOME").expect("neither CARGO_HOME nor HOME is set");
    Path::new(&home).join(".cargo")
}

/// registry/src/<one directory per registry index>/.
fn registry_source_dirs() -> Vec<PathBuf> {
    let src = cargo_home().join("registry/src");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&src)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn registry_manifest(dirs: &[PathBuf], package: &Locked) -> Option<PathBuf> {
    dirs.iter()
        .map(|dir| dir.join(format!("{}-{}", package.name, package.version)).join("Cargo.toml"))
        .find(|path| path.is_file())
}

// ---- what is built on this platform ---------------------------------------------------------

fn host_triple() -> String {
    let out = Command::new("rustc").arg("-vV").output().expect("cannot run rustc -vV");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find_map(|l| l.strip_prefix("host: ")).map(str::to_string).expect("rustc -vV names no host")
}

/// `cargo metadata` of the workspace, resolved for `host` only.
fn metadata(host: &str) -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked", "--filter-platform", host])
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .output()
        .expect("cannot run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata --offline --locked failed (a locked package's source missing? `cargo fetch` \
         downloads them):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON")
}

/// A package of the metadata, by id.
struct Package {
    name: String,
    version: String,
    /// None for path packages (the workspace members).
    source: Option<String>,
    manifest_path: PathBuf,
}

fn packages(meta: &Value) -> HashMap<String, Package> {
    let text =
        |p: &Value, key: &str| p[key].as_str().unwrap_or_else(|| panic!("metadata: package without {key}")).to_string();
    meta["packages"]
        .as_array()
        .expect("metadata: packages")
        .iter()
        .map(|p| {
            let package = Package {
                name: text(p, "name"),
                version: text(p, "version"),
                source: p["source"].as_str().map(str::to_string),
                manifest_path: PathBuf::from(text(p, "manifest_path")),
            };
            (text(p, "id"), package)
        })
        .collect()
}

/// What building and testing `member` compiles: its dependencies of every kind, then the
/// normal and build dependencies of those (a dependency's dev-dependencies are not built).
fn closure(meta: &Value, member: &str) -> BTreeSet<String> {
    let deps: HashMap<&str, Vec<(&str, bool)>> = meta["resolve"]["nodes"]
        .as_array()
        .expect("metadata: resolve.nodes")
        .iter()
        .map(|node| {
            let edges = node["deps"]
                .as_array()
                .expect("metadata: node deps")
                .iter()
                .map(|d| {
                    let kinds = d["dep_kinds"].as_array().expect("metadata: dep_kinds");
                    let not_only_dev = kinds.iter().any(|k| k["kind"].as_str() != Some("dev"));
                    (d["pkg"].as_str().expect("metadata: dep pkg"), not_only_dev)
                })
                .collect();
            (node["id"].as_str().expect("metadata: node id"), edges)
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<&str> = deps[member].iter().map(|&(id, _)| id).collect();
    while let Some(id) = queue.pop_front() {
        if seen.insert(id.to_string()) {
            queue.extend(deps[id].iter().filter(|&&(_, built)| built).map(|&(dep, _)| dep));
        }
    }
    seen.remove(member);
    seen
}

/// A workspace member's declared rust-version (inherited from the root's [workspace.package]
/// when it says so). Err: the reason it has none.
fn member_rust_version(manifest_path: &Path) -> Result<RustVersion, String> {
    match declared_rust_version(&read(manifest_path), "package")? {
        Declared::Version(v) => Ok(v),
        Declared::Absent => Err("declares no rust-version".into()),
        Declared::FromWorkspace => {
            match declared_rust_version(&read(&workspace_root().join("Cargo.toml")), "workspace.package")? {
                Declared::Version(v) => Ok(v),
                _ => Err("inherits rust-version, but [workspace.package] declares none".into()),
            }
        }
    }
}

// ---- the test ------------------------------------------------------------------------------

#[test]
fn no_locked_dependency_needs_a_newer_rust_than_the_workspace_declares() {
    let locked = locked_registry_packages(&read(&workspace_root().join("Cargo.lock")));
    assert!(!locked.is_empty(), "Cargo.lock lists no registry package");
    let locked_set: BTreeSet<&Locked> = locked.iter().collect();

    let host = host_triple();
    let meta = metadata(&host);
    let packages = packages(&meta);
    let dirs = registry_source_dirs();

    let mut problems = Vec::new();
    // Each locked package's rust-version, read once: None when it declares none.
    let mut required: BTreeMap<Locked, Option<RustVersion>> = BTreeMap::new();
    let mut built_anywhere = BTreeSet::new();
    let members = meta["workspace_members"].as_array().expect("metadata: workspace_members");
    assert!(members.len() >= 3, "the workspace has the root crate, testserver and bench: {members:?}");

    for member_id in members.iter().map(|m| m.as_str().expect("metadata: member id")) {
        let member = &packages[member_id];
        let declared = match member_rust_version(&member.manifest_path) {
            Ok(v) => v,
            Err(why) => {
                problems.push(format!("{} ({}) {why}", member.name, member.manifest_path.display()));
                continue;
            }
        };
        let mut too_new = Vec::new();
        for id in closure(&meta, member_id) {
            let package = &packages[&id];
            let Some(source) = &package.source else {
                // Another workspace member (a path dependency): its own rust-version counts.
                if let Ok(v) = member_rust_version(&package.manifest_path) {
                    if v > declared {
                        too_new.push((v, format!("{} {} (a workspace member)", package.name, package.version)));
                    }
                }
                continue;
            };
            let key = Locked { name: package.name.clone(), version: package.version.clone(), source: source.clone() };
            if !locked_set.contains(&key) {
                problems.push(format!("{key} ({source}) is built but is not a registry package of Cargo.lock"));
                continue;
            }
            built_anywhere.insert(key.clone());
            if !required.contains_key(&key) {
                let Some(manifest) = registry_manifest(&dirs, &key) else {
                    problems.push(format!(
                        "{key}: its source is not in {}/registry/src/*/{}-{}/ (run `cargo fetch`): its rust-version \
                         cannot be checked",
                        cargo_home().display(),
                        key.name,
                        key.version
                    ));
                    required.insert(key, None);
                    continue;
                };
                let version = match declared_rust_version(&read(&manifest), "package") {
                    Ok(Declared::Version(v)) => Some(v),
                    Ok(Declared::Absent) => None,
                    Ok(Declared::FromWorkspace) => {
                        problems
                            .push(format!("{}: rust-version.workspace in a published manifest", manifest.display()));
                        None
                    }
                    Err(why) => {
                        problems.push(format!("{}: {why}", manifest.display()));
                        None
                    }
                };
                required.insert(key.clone(), version);
            }
            if let Some(v) = required[&key].as_ref().filter(|v| **v > declared) {
                too_new.push((v.clone(), key.to_string()));
            }
        }
        if !too_new.is_empty() {
            too_new.sort_by(|a, b| b.cmp(a));
            let lines: Vec<String> = too_new.iter().map(|(v, what)| format!("{what}: rust-version {v}")).collect();
            problems.push(format!(
                "{} declares rust-version {declared} ({}), but it builds dependencies that need a newer Rust:\n    {}",
                member.name,
                member.manifest_path.display(),
                lines.join("\n    ")
            ));
        }
    }

    let skipped: Vec<String> = locked.iter().filter(|p| !built_anywhere.contains(p)).map(|p| p.to_string()).collect();
    let newest = required.iter().filter_map(|(p, v)| v.as_ref().map(|v| (v, p))).max();
    eprintln!(
        "{} locked registry packages built on {host}, the newest rust-version among them: {}; {} not built here \
         (skipped): {}",
        built_anywhere.len(),
        newest.map_or("none".to_string(), |(v, p)| format!("{v} ({p})")),
        skipped.len(),
        skipped.join(", ")
    );
    assert!(problems.is_empty(), "rust-version check failed:\n  {}", problems.join("\n  "));
}

#[test]
fn the_manifest_reader_understands_what_cargo_writes() {
    let v = |s| RustVersion::parse(s).unwrap();
    assert!(v("1.88") > v("1.85.0") && v("1.85.1") > v("1.85") && v("1.9") < v("1.10"));
    assert_eq!(v("1.85.0"), v("1.85"));
    assert_eq!(RustVersion::parse("1"), None);
    assert_eq!(RustVersion::parse("1.x"), None);
    assert_eq!(RustVersion::parse("1.2.3.4"), None);

    let published = "[package]\nedition = \"2021\"\nrust-version = \"1.71.1\"\nname = \"x\"\n\n[dependencies.y]\nrust-version = \"9.9\"\n";
    assert_eq!(declared_rust_version(published, "package"), Ok(Declared::Version(v("1.71.1"))));
    let late = "[lib]\nrust-version = \"9.9\"\n[package]\nname = \"x\"\n";
    assert_eq!(declared_rust_version(late, "package"), Ok(Declared::Absent));
    let inherited = "[package]\nrust-version.workspace = true\n";
    assert_eq!(declared_rust_version(inherited, "package"), Ok(Declared::FromWorkspace));
    let inline = "[package]\nrust-version = { workspace = true }\n";
    assert_eq!(declared_rust_version(inline, "package"), Ok(Declared::FromWorkspace));
    let workspace = "[workspace]\nmembers = []\n[workspace.package]\nrust-version = \"1.88\"\n";
    assert_eq!(declared_rust_version(workspace, "workspace.package"), Ok(Declared::Version(v("1.88"))));
    assert!(declared_rust_version("[package]\nrust-version = 1.88\n", "package").is_err());

    let lock = "version = 3\n\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"00\"\n\n[[package]]\nname = \"ours\"\nversion = \"0.1.0\"\ndependencies = [\n \"a\",\n]\n";
    let packages = locked_registry_packages(lock);
    assert_eq!(packages.len(), 1);
    assert_eq!((packages[0].name.as_str(), packages[0].version.as_str()), ("a", "1.0.0"));
}
