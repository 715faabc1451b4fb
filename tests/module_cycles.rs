//! No module cycles in the library: reads every `crate::...`, `super::...` and `self::...` path
//! in the non-test code of src/ (use lines and paths inside bodies alike), builds the graph of
//! which module file depends on which, and fails on any cycle, naming the lines that close it.
//!
//! A module declaring or re-exporting its own submodules is not a dependency (a `mod.rs` always
//! names its children); a child using its parent is. Test modules (`#[cfg(test)] mod ...`) are
//! left out: a test may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One dependency: `from` uses `to` at `file:line`.
#[derive(Clone, Debug)]
struct Edge {
    to: String,
    at: String,
}

/// Module path (`crate::core::job`) -> source file, for every module file under `src_dir`
/// (src/bin/ holds separate crates and is skipped).
fn module_files(src_dir: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, module: &str, out: &mut BTreeMap<String, PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if path.is_dir() {
                if name != "bin" {
                    walk(&path, &format!("{module}::{name}"), out);
                }
            } else if let Some(stem) = name.strip_suffix(".rs") {
                let m = match stem {
                    "lib" | "main" if module == "crate" => module.to_string(),
                    "mod" => module.to_string(),
                    _ => format!("{module}::{stem}"),
                };
                out.insert(m, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src_dir, "crate", &mut out);
    out
}

/// The source without test modules and comments, as (line number, text) pairs.
fn code_lines(source: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = source.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim();
        if trimmed == "#[cfg(test)]" {
            let next = lines.get(i + 1).map_or("", |l| l.trim());
            if next.starts_with("mod ") || next.contains(" mod ") {
                // Skip the module: up to the line where its braces balance.
                let mut depth = 0i32;
                let mut j = i + 1;
                let mut opened = false;
                while j < lines.len() {
                    for c in lines[j].chars() {
                        match c {
                            '{' => {
                                depth += 1;
                                opened = true;
                            }
                            '}' => depth -= 1,
                            _ => {}
                        }
                    }
                    j += 1;
                    if opened && depth <= 0 {
                        break;
                    }
                }
                i = j;
                continue;
            }
        }
        if !trimmed.starts_with("//") {
            let code = match lines[i].find(" //") {
                Some(at) if !lines[i][..at].contains('"') => &lines[i][..at],
                _ => lines[i],
            };
            out.push((i + 1, code.to_string()));
        }
        i += 1;
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path starting at `crate::`, `super::` or `self::` in `text`, with `{a, b::c}` groups
/// expanded: `use super::{x, y::z}` gives `super::x` and `super::y::z`.
fn paths_in(text: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !is_ident(chars[i - 1]) && chars[i - 1] != ':';
        if starts_word {
            for root in ["crate", "super", "self"] {
                let end = i + root.len();
                let matches = chars.len() > end + 1
                    && chars[i..end].iter().collect::<String>() == root
                    && chars[end] == ':'
                    && chars[end + 1] == ':';
                if matches {
                    let mut prefixes = Vec::new();
                    parse_tail(&chars, i, &[], &mut prefixes);
                    out.extend(prefixes);
                }
            }
        }
        i += 1;
    }
    out
}

/// Reads `seg::seg::...` at `i`, then an optional `{...}` group; pushes every complete path.
/// Returns the index after what it read.
fn parse_tail(chars: &[char], mut i: usize, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix.to_vec();
    loop {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i < chars.len() && chars[i] == '{' {
            i += 1;
            loop {
                while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
                    i += 1;
                }
                if i >= chars.len() || chars[i] == '}' {
                    return i + 1;
                }
                let before = i;
                i = parse_tail(chars, i, &path, out);
                if i == before {
                    i += 1;
                }
            }
        }
        let start = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        if i == start {
            out.push(path);
            return i;
        }
        path.push(chars[start..i].iter().collect());
        if chars.len() > i + 1 && chars[i] == ':' && chars[i + 1] == ':' {
            i += 2;
        } else {
            out.push(path);
            return i;
        }
    }
}

/// The module file a path names, resolved from module `here` (whose file is a `mod.rs` or
/// `lib.rs` when `here_is_dir`).
fn resolve(path: &[String], here: &str, here_is_dir: bool, modules: &BTreeMap<String, PathBuf>) -> Option<String> {
    let mut base: Vec<String> = here.split("::").map(str::to_string).collect();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base = vec!["crate".to_string()];
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            // `super` of a file module is its directory's module, of a mod.rs the one above.
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
            let _ = here_is_dir;
        }
        _ => return None,
    }
    let mut best = None;
    let mut candidate = base.clone();
    if modules.contains_key(&candidate.join("::")) {
        best = Some(candidate.join("::"));
    }
    for seg in rest {
        candidate.push(seg.clone());
        let name = candidate.join("::");
        if modules.contains_key(&name) {
            best = Some(name);
        } else {
            break;
        }
    }
    best
}

/// Module -> its dependencies on other module files of the crate.
fn dependency_graph(src_dir: &Path) -> BTreeMap<String, Vec<Edge>> {
    let modules = module_files(src_dir);
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let source = std::fs::read_to_string(file).unwrap();
        let is_dir = matches!(file.file_name().and_then(|n| n.to_str()), Some("mod.rs" | "lib.rs"));
        // `super` in a file module `a::b` (a/b.rs) is `a`; in a/b/mod.rs it is `a` too: resolve
        // both from the module path, which already says which one it is.
        let mut edges: Vec<Edge> = Vec::new();
        for (line_no, line) in code_lines(&source) {
            for path in paths_in(&line) {
                let Some(to) = resolve(&path, module, is_dir, &modules) else { continue };
                let own_child = to.starts_with(&format!("{module}::"));
                if to != *module && !own_child && !edges.iter().any(|e| e.to == to) {
                    let rel = file.strip_prefix(src_dir.parent().unwrap()).unwrap_or(file);
                    edges.push(Edge { to, at: format!("{}:{line_no}", rel.display()) });
                }
            }
        }
        graph.insert(module.clone(), edges);
    }
    graph
}

/// Strongly connected components with more than one module (Tarjan), each sorted.
fn cycles(graph: &BTreeMap<String, Vec<Edge>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, Vec<Edge>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for e in s.graph.get(v).map(Vec::as_slice).unwrap_or(&[]) {
            let w = e.to.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

/// The edges inside each cycle, for the failure message.
fn describe(graph: &BTreeMap<String, Vec<Edge>>, found: &[Vec<String>]) -> String {
    let mut text = String::new();
    for component in found {
        text.push_str(&format!("cycle among {}:\n", component.join(", ")));
        for m in component {
            for e in &graph[m] {
                if component.contains(&e.to) {
                    text.push_str(&format!("  {m} -> {} ({})\n", e.to, e.at));
                }
            }
        }
    }
    text
}

#[test]
fn the_library_has_no_module_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = dependency_graph(&src);
    assert!(graph.contains_key("crate::core::job") && graph.contains_key("crate::ffi::guard"), "modules found");
    let edges: usize = graph.values().map(Vec::len).sum();
    assert!(edges > 50, "the reader found only {edges} dependencies: it is not reading the sources");
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "module cycles (move the shared piece into a module of its own):\n{}",
        describe(&graph, &found)
    );
}

/// The checker itself: on a small crate written here, it finds the cycles a real edit could
/// bring back (through a grouped `use super::{...}`, a path in a function body, a child using its
/// parent) and ignores what is not one (a parent naming its children, test modules, comments).
#[test]
fn the_checker_finds_cycles_and_only_cycles() {
    let dir = std::env::temp_dir().join(format!("glr-module-cycles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("core/artifacts")).unwrap();
    let write = |rel: &str, text: &str| std::fs::write(src.join(rel), text).unwrap();
    write("lib.rs", "mod core;\npub mod ffi;\n");
    write("ffi.rs", "use crate::core::job::Job;\n");
    write("core/mod.rs", "pub mod artifacts;\npub mod job;\npub mod runner;\npub mod uploader;\npub mod sync;\n");
    write("core/sync.rs", "pub fn lock() {}\n");
    write("core/artifacts/mod.rs", "mod collect;\npub use collect::collect;\npub struct Set;\n");
    write("core/artifacts/collect.rs", "use super::Set;\nuse crate::core::sync::lock;\n");
    write(
        "core/job.rs",
        "use super::{sync::lock, artifacts::{self, Set}};\n\
         fn f() { super::runner::warn(); } // a comment naming crate::core::uploader\n\
         #[cfg(test)]\nmod tests {\n    use crate::core::uploader::x;\n    fn g() { if true { } }\n}\n",
    );
    write("core/runner.rs", "use super::job::Job;\n/// docs naming crate::core::uploader\npub fn warn() {}\n");
    write("core/uploader.rs", "use crate::core::sync::lock;\n");
    let graph = dependency_graph(&src);
    let deps = |m: &str| graph[m].iter().map(|e| e.to.clone()).collect::<Vec<_>>();
    assert_eq!(deps("crate::core::job"), ["crate::core::sync", "crate::core::artifacts", "crate::core::runner"]);
    assert_eq!(deps("crate::core::artifacts"), Vec::<String>::new(), "a parent naming its children is no dependency");
    assert_eq!(deps("crate::core::artifacts::collect"), ["crate::core::artifacts", "crate::core::sync"]);
    assert_eq!(deps("crate::core::uploader"), ["crate::core::sync"]);
    let found = cycles(&graph);
    assert_eq!(found, vec![vec!["crate::core::job".to_string(), "crate::core::runner".to_string()]]);
    let text = describe(&graph, &found);
    assert!(text.contains("crate::core::job -> crate::core::runner (src/core/job.rs:2)"), "{text}");
    assert!(text.contains("crate::core::runner -> crate::core::job (src/core/runner.rs:1)"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
