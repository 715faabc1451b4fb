//! The glob patterns of `artifacts:paths` and `artifacts:exclude`, matched like the official
//! runner's doublestar library: `*` (any run of characters within one path segment), `?` (one
//! character), `[abc]`, `[a-z]`, `[!a]`/`[^a]`, `{alt1,alt2}` (nestable), `**` as a whole segment
//! (zero or more directories) and `\` to escape the next character. Paths use `/`, are relative
//! to the working directory and have no `.`/`..`/empty segments. `*` also matches names that
//! start with a dot, as in doublestar.

/// At most this many alternatives after `{}` expansion (a hostile pattern cannot explode).
const MAX_ALTERNATIVES: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `*`
    Any,
    /// `?`
    One,
    /// `[...]`: ranges (single characters are `(c, c)`), negated or not.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// `**`
    AnyDirs,
    Tokens(Vec<Token>),
}

/// A compiled pattern: the alternatives left after `{}` expansion.
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    alternatives: Vec<Vec<Segment>>,
}

/// Whether `s` holds a character with a glob meaning (so it is not a literal path).
pub fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '{', '\\'])
}

impl Pattern {
    /// Compiles `pattern` (already cleaned: relative, `/`-separated, no `.`/`..` segments).
    pub fn new(pattern: &str) -> Result<Pattern, String> {
        let expanded = expand_braces(pattern)?;
        let alternatives = expanded.iter().map(|p| compile(p)).collect::<Result<Vec<_>, _>>()?;
        Ok(Pattern { source: pattern.to_string(), alternatives })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the relative path `path` (`/`-separated) matches.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = if path.is_empty() { Vec::new() } else { path.split('/').collect() };
        self.alternatives.iter().any(|segs| match_segments(segs, &parts))
    }

    /// The literal directory prefixes the alternatives start with (`out/{a,b}/*.xml` gives
    /// `out/a` and `out/b`; `**/*.xml` gives ``): matches can only lie below these, so a walk
    /// starts there. Deduplicated; a prefix below another one is dropped.
    pub fn literal_bases(&self) -> Vec<String> {
        let mut bases: Vec<String> = self
            .alternatives
            .iter()
            .map(|segs| {
                let literal: Vec<String> = segs
                    .iter()
                    .take_while(|s| matches!(s, Segment::Tokens(t) if t.iter().all(|t| matches!(t, Token::Char(_)))))
                    .map(|s| match s {
                        Segment::Tokens(t) => t
                            .iter()
                            .map(|t| match t {
                                Token::Char(c) => *c,
                                _ => unreachable!("literal segments hold only characters"),
                            })
                            .collect(),
                        Segment::AnyDirs => unreachable!("taken only while literal"),
                    })
                    .collect();
                literal.join("/")
            })
            .collect();
        bases.sort();
        bases.dedup();
        let all = bases.clone();
        bases.retain(|b| !all.iter().any(|other| other != b && is_below(b, other)));
        bases
    }
}

/// Whether `path` is `base` or lies below it (`` is the root, above everything).
pub fn is_below(path: &str, base: &str) -> bool {
    base.is_empty() || path == base || (path.starts_with(base) && path.as_bytes().get(base.len()) == Some(&b'/'))
}

fn match_segments(pattern: &[Segment], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((Segment::AnyDirs, rest)) => {
            // `**` followed by more `**` is the same as one.
            if matches!(rest.first(), Some(Segment::AnyDirs)) {
                return match_segments(rest, path);
            }
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((Segment::Tokens(tokens), rest)) => match path.split_first() {
            Some((first, others)) => {
                let name: Vec<char> = first.chars().collect();
                match_tokens(tokens, &name) && match_segments(rest, others)
            }
            None => false,
        },
    }
}

/// Wildcard matching of one segment, iterative with backtracking to the last `*` (linear in
/// practice, never exponential).
fn match_tokens(tokens: &[Token], name: &[char]) -> bool {
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match tokens.get(t) {
            Some(Token::Any) => {
                star = Some((t, n));
                t += 1;
                continue;
            }
            Some(tok) if single_matches(tok, name[n]) => {
                t += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((st, sn)) => {
                t = st + 1;
                n = sn + 1;
                star = Some((st, sn + 1));
            }
            None => return false,
        }
    }
    tokens[t..].iter().all(|tok| *tok == Token::Any)
}

fn single_matches(token: &Token, c: char) -> bool {
    match token {
        Token::Char(x) => *x == c,
        Token::One => true,
        Token::Any => false,
        Token::Class { negated, ranges } => ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated,
    }
}

fn compile(pattern: &str) -> Result<Vec<Segment>, String> {
    if pattern.is_empty() {
        return Ok(Vec::new());
    }
    split_segments(pattern)
        .into_iter()
        .map(|seg| if seg == "**" { Ok(Segment::AnyDirs) } else { tokens(&seg).map(Segment::Tokens) })
        .collect()
}

/// Splits at unescaped `/` (an escaped `/` stays in its segment, escape included).
fn split_segments(pattern: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let last = out.last_mut().expect("never empty");
                last.push('\\');
                if let Some(n) = chars.next() {
                    last.push(n);
                }
            }
            '/' => out.push(String::new()),
            c => out.last_mut().expect("never empty").push(c),
        }
    }
    out
}

fn tokens(segment: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = segment.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                i += 1;
                // A trailing backslash stands for itself.
                out.push(Token::Char(chars.get(i).copied().unwrap_or('\\')));
            }
            '*' => {
                if out.last() != Some(&Token::Any) {
                    out.push(Token::Any);
                }
            }
            '?' => out.push(Token::One),
            '[' => {
                let (token, next) = class(&chars, i)?;
                out.push(token);
                i = next;
                continue;
            }
            c => out.push(Token::Char(c)),
        }
        i += 1;
    }
    Ok(out)
}

/// Parses `[...]` starting at `chars[start] == '['`; returns the token and the index after `]`.
fn class(chars: &[char], start: usize) -> Result<(Token, usize), String> {
    let mut i = start + 1;
    let negated = matches!(chars.get(i), Some('!') | Some('^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err("unterminated character class `[`".into());
        };
        if c == ']' && !first {
            return Ok((Token::Class { negated, ranges }, i + 1));
        }
        first = false;
        let lo = if c == '\\' {
            i += 1;
            *chars.get(i).ok_or("unterminated character class `[`")?
        } else {
            c
        };
        i += 1;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
            let mut hi = chars[i + 1];
            i += 2;
            if hi == '\\' {
                hi = *chars.get(i).ok_or("unterminated character class `[`")?;
                i += 1;
            }
            if hi < lo {
                return Err(format!("bad range `{lo}-{hi}` in a character class"));
            }
            ranges.push((lo, hi));
        } else {
            ranges.push((lo, lo));
        }
    }
}

/// `a{b,c{d,e}}f` -> `abf`, `acdf`, `acef`. An unmatched `{` is literal.
fn expand_braces(pattern: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '{' => {
                if let Some((close, commas)) = brace_group(&chars, i) {
                    let prefix: String = chars[..i].iter().collect();
                    let suffix: String = chars[close + 1..].iter().collect();
                    let mut bounds = vec![i];
                    bounds.extend(&commas);
                    bounds.push(close);
                    let mut out = Vec::new();
                    for w in bounds.windows(2) {
                        let alt: String = chars[w[0] + 1..w[1]].iter().collect();
                        for rest in expand_braces(&format!("{alt}{suffix}"))? {
                            out.push(format!("{prefix}{rest}"));
                            if out.len() > MAX_ALTERNATIVES {
                                return Err(format!(
                                    "more than {MAX_ALTERNATIVES} alternatives after `{{}}` expansion"
                                ));
                            }
                        }
                    }
                    return Ok(out);
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(vec![pattern.to_string()])
}

/// The matching `}` of the `{` at `open` and the top-level commas in between.
fn brace_group(chars: &[char], open: usize) -> Option<(usize, Vec<usize>)> {
    let mut depth = 0;
    let mut commas = Vec::new();
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '{' => depth += 1,
            '}' if depth == 0 => return Some((i, commas)),
            '}' => depth -= 1,
            ',' if depth == 0 => commas.push(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, path: &str) -> bool {
        Pattern::new(p).unwrap().matches(path)
    }

    #[test]
    fn stars_stay_within_a_segment() {
        assert!(m("*.xml", "report.xml"));
        assert!(m("*.xml", ".hidden.xml"));
        assert!(!m("*.xml", "dir/report.xml"));
        assert!(m("out/*", "out/a"));
        assert!(!m("out/*", "out/a/b"));
        assert!(!m("out/*", "out"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("*", "anything"));
        assert!(m("?.txt", "a.txt"));
        assert!(!m("?.txt", "ab.txt"));
    }

    #[test]
    fn double_star_matches_zero_or_more_directories() {
        assert!(m("**/*.xml", "a.xml"));
        assert!(m("**/*.xml", "x/y/z/a.xml"));
        assert!(m("out/**", "out"));
        assert!(m("out/**", "out/a/b/c"));
        assert!(!m("out/**", "outside/a"));
        assert!(m("out/**/tmp", "out/tmp"));
        assert!(m("out/**/tmp", "out/x/y/tmp"));
        assert!(!m("out/**/tmp", "out/x/y/tmp2"));
        assert!(m("**", "a/b"));
        assert!(m("a/**/**/b", "a/b"));
        // `**` inside a segment is a plain `*`.
        assert!(m("a**b", "aXb"));
        assert!(!m("a**b", "a/b"));
    }

    #[test]
    fn classes_braces_and_escapes() {
        assert!(m("[abc].txt", "b.txt"));
        assert!(!m("[abc].txt", "d.txt"));
        assert!(m("[a-c]x", "cx"));
        assert!(m("[!a-c]x", "dx"));
        assert!(m("[^a-c]x", "dx"));
        assert!(!m("[!a-c]x", "ax"));
        assert!(m("[]]", "]"));
        assert!(m("{out,build}/*.o", "build/a.o"));
        assert!(m("{out,build}/*.o", "out/a.o"));
        assert!(!m("{out,build}/*.o", "src/a.o"));
        assert!(m("a{b,c{d,e}}f", "acef"));
        assert!(m("x{", "x{"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("a\\[b", "a[b"));
        assert!(Pattern::new("[abc").is_err());
        assert!(Pattern::new("[z-a]").is_err());
        let many = "{a,b}".repeat(12);
        assert!(Pattern::new(&many).is_err());
    }

    #[test]
    fn literal_bases_are_where_a_walk_starts() {
        assert_eq!(Pattern::new("out/a/*.xml").unwrap().literal_bases(), vec!["out/a"]);
        assert_eq!(Pattern::new("**/*.xml").unwrap().literal_bases(), vec![""]);
        assert_eq!(Pattern::new("{out,build}/x/*").unwrap().literal_bases(), vec!["build/x", "out/x"]);
        assert_eq!(Pattern::new("{out,out/sub}/*").unwrap().literal_bases(), vec!["out"]);
        assert_eq!(Pattern::new("out").unwrap().literal_bases(), vec!["out"]);
        assert!(has_meta("a/*"));
        assert!(!has_meta("a/b.txt"));
        assert!(is_below("out/a", "out"));
        assert!(!is_below("outside", "out"));
        assert!(is_below("x", ""));
    }
}
