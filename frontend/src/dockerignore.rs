//! `.dockerignore` with Docker's own rules (moby `dockerignore.ReadAll` +
//! `patternmatcher`), which gitignore libraries get wrong:
//!
//! - each line is trimmed; `#` lines and empty lines are skipped; `!` marks an exception;
//! - patterns are cleaned like Go's `filepath.Clean`, and one leading `/` is dropped, so
//!   `/a`, `./a` and `a/` all mean `a` (relative to the context root, never "anywhere");
//! - `*` and `?` never cross `/`; `[a-z]`/`[^a]` classes; `\` escapes; `**` matches any
//!   number of directories (`**/x`, `a/**`, `a/**/b`);
//! - the last pattern that matches decides; a pattern that matches a directory also
//!   matches everything inside it.

use crate::error::{FrontendError, Span, parse_err};
use crate::path::clean;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `*`: any run of non-`/`.
    Star,
    /// `?`: one non-`/`.
    Any,
    /// `**/` or `**` mid-pattern: `(.*/)?`.
    DirStar,
    /// `**` at the end: `.*`.
    Rest,
    /// `[...]`: (negated, ranges).
    Class(bool, Vec<(char, char)>),
}

/// One pattern line.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The cleaned pattern, without `!`.
    pub text: String,
    /// `!pattern`: re-includes what earlier patterns excluded.
    pub exclusion: bool,
    toks: Vec<Tok>,
    /// `**` followed only by literal text: Docker matches any path *ending* in that text
    /// (`**foo` matches `barfoo`), which the regex form would not.
    suffix: Option<String>,
}

/// A compiled `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

impl Matcher {
    /// Parse `.dockerignore` text. A malformed pattern (e.g. unclosed `[`) is an error
    /// with its line, in a file called `.dockerignore`.
    pub fn parse(text: &str) -> Result<Matcher, FrontendError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let mut p = line.trim();
            if p.is_empty() || p.starts_with('#') {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
            }
            let pat = normalize(p);
            let err = |m: String| parse_err(".dockerignore", Span::point(i as u32 + 1, 1), m);
            if exclusion && pat.is_empty() {
                return Err(err("illegal exclusion pattern: \"!\"".into()));
            }
            if pat.is_empty() {
                continue;
            }
            let toks = compile(&pat).map_err(|e| err(format!("{e}: {line:?}")))?;
            let suffix =
                pat.strip_prefix("**").filter(|rest| !rest.contains(['*', '?', '[', ']', '\\'])).map(str::to_string);
            patterns.push(Pattern { text: pat, exclusion, toks, suffix });
        }
        Ok(Matcher { patterns })
    }

    /// The patterns in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any `!` exception exists (if not, an excluded directory can be skipped
    /// whole).
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `rel_path` (relative to the context, `/`-separated) is ignored: the last
    /// pattern matching it or one of its parent directories decides.
    pub fn matches(&self, rel_path: &str) -> bool {
        let file = clean(rel_path.trim_start_matches('/'));
        let parents: Vec<&str> = match file.rfind('/') {
            Some(i) => file[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            // Only patterns that could change the answer are evaluated.
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(&file);
            if !m {
                for i in 0..parents.len() {
                    if p.matches(&parents[..=i].join("/")) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// For walking the context: whether the walker must descend into the ignored
    /// directory `dir` because files below it may be re-included. Docker's rule (moby's
    /// archive walker, BuildKit's fsutil): only when an exception pattern, as written
    /// (cleaned), starts with `dir/`. So `vendor` + `!vendor/keep/this` looks inside
    /// `vendor`, but `volume/` + `!**/keep.txt` does not look inside `volume`.
    pub fn may_contain_included(&self, dir: &str) -> bool {
        let dir = clean(dir.trim_start_matches('/'));
        let dir_slash = format!("{dir}/");
        self.patterns.iter().filter(|p| p.exclusion).any(|p| format!("{}/", p.text).starts_with(&dir_slash))
    }
}

impl Pattern {
    /// Whether this pattern (ignoring `!`) matches `path` exactly.
    pub fn matches(&self, path: &str) -> bool {
        if let Some(sfx) = &self.suffix {
            return path.ends_with(sfx.as_str()) || sfx.strip_prefix('/') == Some(path);
        }
        let s: Vec<char> = path.chars().collect();
        match_toks(&self.toks, &s)
    }
}

/// ReadAll's normalisation: Go `filepath.Clean`, then drop one leading `/`.
fn normalize(p: &str) -> String {
    if p.is_empty() {
        return String::new();
    }
    let c = clean(p);
    match c.strip_prefix('/') {
        Some(rest) if !rest.is_empty() => rest.to_string(),
        _ => c,
    }
}

fn compile(p: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                toks.push(if i >= chars.len() { Tok::Rest } else { Tok::DirStar });
            }
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::Any),
            '\\' => match chars.get(i) {
                Some(&n) => {
                    toks.push(Tok::Lit(n));
                    i += 1;
                }
                None => return Err("syntax error in pattern".into()),
            },
            '[' => {
                let mut neg = false;
                if chars.get(i) == Some(&'^') {
                    neg = true;
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    let Some(&c) = chars.get(i) else { return Err("syntax error in pattern".into()) };
                    i += 1;
                    if c == ']' && !ranges.is_empty() {
                        break;
                    }
                    let lo = if c == '\\' {
                        let n = *chars.get(i).ok_or("syntax error in pattern")?;
                        i += 1;
                        n
                    } else {
                        c
                    };
                    let hi = if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&n| n != ']') {
                        let mut n = chars[i + 1];
                        i += 2;
                        if n == '\\' {
                            n = *chars.get(i).ok_or("syntax error in pattern")?;
                            i += 1;
                        }
                        if n < lo {
                            return Err("syntax error in pattern".into());
                        }
                        n
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                toks.push(Tok::Class(neg, ranges));
            }
            // A `]` outside a class is an ordinary character (to Go's regexp as well).
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok(toks)
}

/// Whole-string match by dynamic programming over (token, position): linear in the
/// pattern times the path, so hostile patterns (`*a*a*a*...`) cannot blow up.
fn match_toks(t: &[Tok], s: &[char]) -> bool {
    let n = s.len();
    // next[i]: tokens after the current one match s[i..].
    let mut next = vec![false; n + 1];
    next[n] = true;
    let mut cur = vec![false; n + 1];
    for tok in t.iter().rev() {
        match tok {
            Tok::Lit(c) => {
                for i in 0..=n {
                    cur[i] = i < n && s[i] == *c && next[i + 1];
                }
            }
            Tok::Any => {
                for i in 0..=n {
                    cur[i] = i < n && s[i] != '/' && next[i + 1];
                }
            }
            Tok::Class(neg, ranges) => {
                for i in 0..=n {
                    cur[i] = i < n && ranges.iter().any(|&(lo, hi)| lo <= s[i] && s[i] <= hi) != *neg && next[i + 1];
                }
            }
            Tok::Star => {
                cur[n] = next[n];
                for i in (0..n).rev() {
                    cur[i] = next[i] || (s[i] != '/' && cur[i + 1]);
                }
            }
            Tok::Rest => cur.iter_mut().for_each(|c| *c = true),
            Tok::DirStar => {
                // (.*/)? : nothing, or anything up to and including a '/'.
                let mut after_slash = false;
                cur[n] = next[n];
                for i in (0..n).rev() {
                    if s[i] == '/' && next[i + 1] {
                        after_slash = true;
                    }
                    cur[i] = next[i] || after_slash;
                }
            }
        }
        std::mem::swap(&mut cur, &mut next);
    }
    next[0]
}

/// The ignore file for a build: `<Dockerfile>.dockerignore` next to the Dockerfile when
/// it exists, else `<context>/.dockerignore` when it exists.
pub fn find_ignore_file(context: &Path, dockerfile: &Path) -> Option<PathBuf> {
    if let Some(name) = dockerfile.file_name() {
        let mut n = name.to_os_string();
        n.push(".dockerignore");
        let specific = dockerfile.with_file_name(n);
        if specific.is_file() {
            return Some(specific);
        }
    }
    let general = context.join(".dockerignore");
    general.is_file().then_some(general)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Matcher {
        Matcher::parse(text).unwrap()
    }

    #[test]
    fn docker_documented_examples() {
        // From the Dockerfile reference's .dockerignore section.
        let x = m("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
        assert!(x.matches("somedir/temporary.txt"));
        assert!(x.matches("somedir/temp"));
        assert!(x.matches("somedir/subdir/temporary.txt"));
        assert!(x.matches("tempa"));
        assert!(x.matches("tempb"));
        assert!(!x.matches("temporary.txt"));
        assert!(!x.matches("a/b/c/temp"));

        let x = m("*.md\n!README.md\n");
        assert!(x.matches("CHANGELOG.md"));
        assert!(!x.matches("README.md"));

        let x = m("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(x.matches("README-secret.md"));
        assert!(!x.matches("README-public.md"));

        let x = m("*.md\nREADME-secret.md\n!README*.md\n");
        assert!(!x.matches("README-secret.md"));

        let x = m("**/*.go\n");
        assert!(x.matches("main.go"));
        assert!(x.matches("a/b/c.go"));
    }

    #[test]
    fn rules() {
        let x = m("/a\n./b/\nc/**\n**/d\n[x-z]1\ne\\*\nlit\\[\n");
        assert!(x.matches("a"));
        assert!(x.matches("a/deep/file"), "parent dir match");
        assert!(!x.matches("z/a"), "leading / anchors to root");
        assert!(x.matches("b/f"));
        assert!(x.matches("c/x/y"));
        assert!(!x.matches("c"), "c/** needs something below c");
        assert!(x.matches("d") && x.matches("q/r/d"));
        assert!(m("**foo\n").matches("a/barfoo"), "Docker's suffix match");
        assert!(m("a]\n").matches("a]"));
        assert!(x.matches("y1") && !x.matches("a1"));
        assert!(x.matches("e*") && !x.matches("ex"));
        assert!(x.matches("lit["));
        assert!(Matcher::parse("[abc").is_err());
        assert!(Matcher::parse("!").is_err());
    }

    #[test]
    fn picks_the_dockerfile_specific_ignore_file() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!("rbuild-ignore-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(dir.join("build")).unwrap();
        let df = dir.join("build/app.Dockerfile");
        assert_eq!(find_ignore_file(&dir, &df), None);
        std::fs::write(dir.join(".dockerignore"), "x").unwrap();
        assert_eq!(find_ignore_file(&dir, &df), Some(dir.join(".dockerignore")));
        std::fs::write(dir.join("build/app.Dockerfile.dockerignore"), "y").unwrap();
        assert_eq!(find_ignore_file(&dir, &df), Some(dir.join("build/app.Dockerfile.dockerignore")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hostile_pattern_is_fast() {
        let x = m(&format!("{}b", "*a".repeat(30)));
        assert!(!x.matches(&"a".repeat(200)));
    }

    #[test]
    fn walking_hint() {
        let x = m("vendor\n!vendor/keep/this\n");
        assert!(x.matches("vendor/other"));
        assert!(!x.matches("vendor/keep/this"));
        assert!(x.may_contain_included("vendor"));
        assert!(x.may_contain_included("vendor/keep"));
        assert!(!x.may_contain_included("vendor/other"));
        assert!(!m("vendor\n").may_contain_included("vendor"));
        // Docker descends only where an exception starts with the directory's path.
        let x = m("volume/\n!**/keep.txt\n");
        assert!(!x.may_contain_included("volume"));
        let x = m("**\n!folder1/file1\n");
        assert!(x.may_contain_included("folder1"));
        assert!(!x.may_contain_included("folder2"));
        assert!(!x.may_contain_included("folder1/sub"));
        assert!(m("a/*/c\n!a/*/c/keep\n").may_contain_included("a"));
    }
}
