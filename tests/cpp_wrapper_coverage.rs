//! The C++ wrapper include/gitlab_runner_api.hpp keeps up with the C header: every function that
//! gitlab_runner_api.h declares is referenced by the wrapper's code (comments and string literals
//! do not count), or is listed in the wrapper, with a reason, on a line of the form
//!
//! ```text
//! // not wrapped: glr_name -- why it is left to the C API
//! ```
//!
//! The list cannot rot: a listed name that the header no longer declares, or that the wrapper in
//! fact calls, fails the test too. The header checked is the committed one and the one this
//! build generated from src/ffi (they differ only until `GLR_UPDATE_HEADER=1 cargo test --test
//! header` is run), so a function added to src/ffi fails this test until it is wrapped or listed.

use std::collections::BTreeSet;
use std::path::Path;

/// What marks an entry of the "not wrapped" list in the wrapper.
const LIST_MARK: &str = "not wrapped:";
/// The wrapper, relative to the package.
const WRAPPER: &str = "include/gitlab_runner_api.hpp";

// ---- a small C/C++ lexer -------------------------------------------------------------------

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `src` with comments, string literals and character literals replaced by spaces (newlines
/// kept, so line structure survives), leaving only code. Handles `//` comments continued by a
/// backslash, `/* */`, escapes in literals and C++ raw strings (`R"d(...)d"` and prefixed forms).
fn code_only(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && !(chars[i] == '\n' && chars[i - 1] != '\\') {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let end = (i + 2..chars.len().saturating_sub(1)).find(|&j| chars[j] == '*' && chars[j + 1] == '/');
            let end = end.map_or(chars.len(), |j| j + 2);
            chars[i..end].iter().for_each(|&c| blank(&mut out, c));
            i = end;
        } else if c == '"' && raw_string_prefix(&out) {
            // R"delim( ... )delim": no escapes inside.
            let open = (i + 1..chars.len()).find(|&j| chars[j] == '(').unwrap_or(chars.len());
            let closing: Vec<char> =
                std::iter::once(')').chain(chars[i + 1..open].iter().copied()).chain(['"']).collect();
            let end = (open..chars.len())
                .find(|&j| chars[j..].starts_with(&closing))
                .map_or(chars.len(), |j| j + closing.len());
            chars[i..end].iter().for_each(|&c| blank(&mut out, c));
            i = end;
        } else if c == '"' || c == '\'' {
            blank(&mut out, c);
            i += 1;
            while i < chars.len() && chars[i] != c && chars[i] != '\n' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                blank(&mut out, chars[i]);
                i += 1;
            }
            if i < chars.len() {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether the code before a `"` ends in a raw-string prefix (`R`, `u8R`, `uR`, `UR`, `LR`).
fn raw_string_prefix(before: &str) -> bool {
    let ident: String =
        before.chars().rev().take_while(|&c| is_ident_char(c)).collect::<Vec<_>>().into_iter().rev().collect();
    matches!(ident.as_str(), "R" | "u8R" | "uR" | "UR" | "LR")
}

/// The identifiers of a piece of code.
fn identifiers(code: &str) -> BTreeSet<String> {
    code.split(|c: char| !is_ident_char(c))
        .filter(|t| t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
        .map(str::to_owned)
        .collect()
}

// ---- the header's function declarations ----------------------------------------------------

/// Removes preprocessor directives (with their backslash continuations) from comment-free code.
fn without_directives(code: &str) -> String {
    let mut out = String::new();
    let mut continued = false;
    for line in code.lines() {
        let directive = continued || line.trim_start().starts_with('#');
        continued = directive && line.trim_end().ends_with('\\');
        if !directive {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The names of the functions a C header declares. Panics on a top-level declaration it does not
/// understand, so that a new style of declaration is noticed rather than skipped.
fn declared_functions(header: &str) -> BTreeSet<String> {
    let code = without_directives(&code_only(header));
    let mut names = BTreeSet::new();
    let mut statement = String::new();
    // true for a linkage block (`extern "C" {`), false for a struct/enum/union/initialiser body.
    let mut braces: Vec<bool> = Vec::new();
    let in_body = |braces: &[bool]| braces.iter().any(|&linkage| !linkage);
    for c in code.chars() {
        match c {
            // The string of `extern "C"` was blanked by code_only: `extern` then `{`.
            '{' if !in_body(&braces) && statement.trim() == "extern" => {
                braces.push(true);
                statement.clear();
            }
            '{' => {
                braces.push(false);
                statement.push(c);
            }
            '}' => {
                let linkage = braces.pop().unwrap_or_else(|| panic!("unbalanced `}}` in the header"));
                if linkage {
                    assert!(statement.trim().is_empty(), "unterminated declaration in the header: {statement}");
                } else {
                    statement.push(c);
                }
            }
            ';' if !in_body(&braces) => {
                if let Some(name) = function_name(&statement) {
                    names.insert(name);
                }
                statement.clear();
            }
            _ => statement.push(c),
        }
    }
    assert!(braces.is_empty() && statement.trim().is_empty(), "the header ends inside a declaration: {statement}");
    names
}

/// The function a top-level declaration declares, None for a type definition.
fn function_name(statement: &str) -> Option<String> {
    let s = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    let s = s.strip_prefix("extern ").unwrap_or(&s);
    let first_word = s.split(|c: char| !is_ident_char(c)).next().unwrap_or("");
    if s.is_empty()
        || first_word == "typedef"
        || (matches!(first_word, "struct" | "enum" | "union") && (s.contains('{') || !s.contains('(')))
    {
        return None;
    }
    let open = s.find('(').unwrap_or_else(|| panic!("a header declaration this test does not understand: `{s}`"));
    let before = s[..open].trim_end();
    let after = s[open + 1..].trim_start();
    let name = if let Some(rest) = after.strip_prefix('*') {
        // A function returning a function pointer: `ret (*name(params))(params)`.
        let rest = rest.trim_start();
        let name: String = rest.chars().take_while(|&c| is_ident_char(c)).collect();
        let follows = rest[name.len()..].trim_start();
        assert!(follows.starts_with('('), "a function-pointer variable in the header is not supported: `{s}`");
        name
    } else {
        let name: String =
            before.chars().rev().take_while(|&c| is_ident_char(c)).collect::<Vec<_>>().into_iter().rev().collect();
        let return_type = before[..before.len() - name.len()].trim();
        assert!(!return_type.is_empty(), "a declaration without a return type in the header: `{s}`");
        name
    };
    assert!(
        name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && !matches!(name.as_str(), "void" | "int" | "char"),
        "cannot find the function's name in `{s}`"
    );
    Some(name)
}

// ---- the wrapper's "not wrapped" list --------------------------------------------------------

/// One entry of the list: the name and the line it is on (1-based).
struct Listed {
    name: String,
    line: usize,
}

/// The wrapper's not-wrapped list: its entries, and the lines that look like entries but are
/// malformed (a comment whose text starts with the mark in another form: `//not wrapped :`,
/// ` * Not wrapped:`, no reason...), so that a broken entry is reported rather than ignored.
/// The mark elsewhere in a line (quoted, as here) is not an entry.
#[derive(Default)]
struct NotWrappedList {
    entries: Vec<Listed>,
    /// The malformed lines, as `path:line: text`.
    malformed: Vec<String>,
}

fn not_wrapped_list(wrapper: &str) -> NotWrappedList {
    let mut list = NotWrappedList::default();
    for (n, line) in wrapper.lines().enumerate() {
        let text = line.trim_start().trim_start_matches(['/', '*']).trim_start();
        let mark = LIST_MARK.trim_end_matches(':');
        let Some(rest) = text.get(..mark.len()).filter(|t| t.eq_ignore_ascii_case(mark)).map(|_| &text[mark.len()..])
        else {
            continue;
        };
        if !rest.trim_start().starts_with(':') {
            continue; // prose: "not wrapped, ..."
        }
        let entry = line.trim().strip_prefix("// ").and_then(|l| l.strip_prefix(LIST_MARK)).map(str::trim);
        let parsed = entry.and_then(|e| e.split_once(" -- ")).map(|(name, reason)| (name.trim(), reason.trim()));
        match parsed {
            Some((name, reason)) if !name.is_empty() && name.chars().all(is_ident_char) && !reason.is_empty() => {
                list.entries.push(Listed { name: name.to_owned(), line: n + 1 })
            }
            _ => list.malformed.push(format!("{WRAPPER}:{}: {}", n + 1, line.trim())),
        }
    }
    list
}

// ---- the checks --------------------------------------------------------------------------------

/// Everything wrong with the wrapper's coverage of `declared`, one line each (empty when fine).
fn coverage_problems(declared: &BTreeSet<String>, wrapper: &str) -> Vec<String> {
    let referenced = identifiers(&code_only(wrapper));
    let list = not_wrapped_list(wrapper);
    let listed = &list.entries;
    let listed_names: BTreeSet<&str> = listed.iter().map(|l| l.name.as_str()).collect();
    let mut problems: Vec<String> = list
        .malformed
        .iter()
        .map(|line| {
            format!(
                "{line}: looks like an entry of the not-wrapped list but is not `// {LIST_MARK} glr_name -- reason`"
            )
        })
        .collect();
    for name in declared {
        if !referenced.contains(name) && !listed_names.contains(name.as_str()) {
            problems.push(format!(
                "{name}: declared in gitlab_runner_api.h but neither called by {WRAPPER} nor listed there \
                 as `// {LIST_MARK} {name} -- reason`"
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for entry in listed {
        let at = format!("{WRAPPER}:{}", entry.line);
        if !seen.insert(entry.name.as_str()) {
            problems.push(format!("{}: listed as not wrapped more than once ({at})", entry.name));
        }
        if !declared.contains(&entry.name) {
            problems.push(format!(
                "{}: listed as not wrapped ({at}) but gitlab_runner_api.h does not declare it: remove the line",
                entry.name
            ));
        } else if referenced.contains(&entry.name) {
            problems.push(format!(
                "{}: listed as not wrapped ({at}) but the wrapper calls it: remove the line",
                entry.name
            ));
        }
    }
    problems
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_header_function_is_wrapped_or_listed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut declared = declared_functions(&read(&root.join("include/gitlab_runner_api.h")));
    declared.extend(declared_functions(&read(Path::new(env!("GLR_GENERATED_HEADER")))));
    // The parse found the declarations it polices, in each of cbindgen's styles.
    for expected in [
        "glr_version",               // `const char *glr_version(void);`
        "glr_set_log_callback",      // parameters over two lines
        "glr_job_after_script_line", // pointer return and two lines
        "glr_runner_free",           // void
        "glr_status_str",
        "glr_extract_artifacts", // the last one
    ] {
        assert!(declared.contains(expected), "{expected} not found among the header's functions: the parse is broken");
    }
    assert!(declared.len() > 100, "only {} functions found in the header: the parse is broken", declared.len());

    let problems = coverage_problems(&declared, &read(&root.join(WRAPPER)));
    assert!(
        problems.is_empty(),
        "the C++ wrapper does not cover the C header ({} problems):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

// ---- the parsers on cbindgen's styles and on what could fool them ---------------------------

const SAMPLE_HEADER: &str = r#"
/** A doc comment naming glr_in_comment(void); */
#define GLR_MACRO(x) glr_in_macro(x)
#define GLR_LONG(a) \
    glr_in_continued_macro(a)
#ifdef __cplusplus
extern "C" {
#endif // __cplusplus
typedef void (*glr_callback)(void *userdata, int32_t level);
typedef struct glr_opaque glr_opaque;
typedef struct { void (*field)(int); int32_t n; } glr_plain;
struct glr_tagged { int32_t (*other)(void); };
enum glr_kind { GLR_A = 1, GLR_B = 2 };
const char *glr_pointer_return(const struct glr_opaque *o);
GLR_MUST_USE glr_status glr_two_lines(struct glr_opaque *o,
                                      const char *s);
void glr_no_params(void);
void (*glr_returns_callback(int32_t which))(void *userdata, int32_t level);
uint32_t glr_text_arg(const char *s /* ";" */);
#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus
"#;

#[test]
fn header_parser_reads_every_style_and_nothing_else() {
    let found = declared_functions(SAMPLE_HEADER);
    let expected: BTreeSet<String> =
        ["glr_pointer_return", "glr_two_lines", "glr_no_params", "glr_returns_callback", "glr_text_arg"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    assert_eq!(found, expected);
}

#[test]
#[should_panic(expected = "does not understand")]
fn header_parser_refuses_what_it_does_not_understand() {
    declared_functions("extern const int glr_variable;\n");
}

#[test]
fn wrapper_references_ignore_comments_and_strings() {
    let code = code_only(
        "// glr_line_comment()\n/* glr_block */ auto s = \"glr_string\"; char q = '\"'; glr_called(x);\n\
         auto r = R\"x(glr_raw \" )\" )x\"; detail::check(glr_after_raw(), \"glr_after_raw\");\n\
         using D = HandleDeleter<glr_job, glr_job_free>;",
    );
    let ids = identifiers(&code);
    for present in ["glr_called", "glr_after_raw", "glr_job_free", "glr_job"] {
        assert!(ids.contains(present), "{present} missing from {ids:?}");
    }
    for absent in ["glr_line_comment", "glr_block", "glr_string", "glr_raw"] {
        assert!(!ids.contains(absent), "{absent} taken from a comment or a string");
    }
}

#[test]
fn coverage_reports_each_kind_of_problem() {
    let declared: BTreeSet<String> =
        ["glr_wrapped", "glr_forgotten", "glr_listed", "glr_listed_and_called"].iter().map(|s| s.to_string()).collect();
    let wrapper = "inline void f() { glr_wrapped(); glr_listed_and_called(); }\n\
                   // glr_forgotten() is only mentioned in a comment\n\
                   // not wrapped: glr_listed -- a reason\n\
                   // not wrapped: glr_listed_and_called -- stale\n\
                   // not wrapped: glr_gone -- removed from the header\n\
                   // not wrapped: glr_listed -- twice\n";
    let problems = coverage_problems(&declared, wrapper);
    let has = |name: &str, what: &str| problems.iter().any(|p| p.starts_with(&format!("{name}: ")) && p.contains(what));
    assert!(has("glr_forgotten", "neither called"), "{problems:#?}");
    assert!(has("glr_listed_and_called", "the wrapper calls it"), "{problems:#?}");
    assert!(has("glr_gone", "does not declare it"), "{problems:#?}");
    assert!(has("glr_listed", "more than once"), "{problems:#?}");
    assert_eq!(problems.len(), 4, "{problems:#?}");
}

#[test]
fn list_entries_are_read_and_prose_is_not() {
    let list = not_wrapped_list(
        "// not wrapped: glr_a -- a reason -- with dashes\n\
         // Functions not wrapped, with the reason, are listed as `// not wrapped: glr_name -- why`.\n\
         /** Not wrapped, as explained. */\n",
    );
    assert!(list.malformed.is_empty(), "{:?}", list.malformed);
    assert_eq!(list.entries.iter().map(|l| (l.name.as_str(), l.line)).collect::<Vec<_>>(), [("glr_a", 1)]);
}

#[test]
fn malformed_list_entries_are_errors() {
    for bad in [
        "// not wrapped: glr_no_reason",
        "// not wrapped: glr_empty_reason -- ",
        "//not wrapped: glr_x -- no space",
        "// Not Wrapped : glr_x -- capitals",
        " * not wrapped: glr_x -- in a doc comment",
        "// not wrapped: glr_x glr_y -- two names",
    ] {
        let list = not_wrapped_list(bad);
        assert!(list.entries.is_empty() && list.malformed.len() == 1, "`{bad}` was accepted");
        let problems = coverage_problems(&BTreeSet::new(), bad);
        assert!(problems.len() == 1 && problems[0].contains("looks like an entry"), "{problems:?}");
    }
}
