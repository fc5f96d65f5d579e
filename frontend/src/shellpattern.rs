//! The patterns of `${v#p}`, `${v%p}` and `${v/p/r}`, matched as BuildKit does: it turns
//! them into a Go regular expression (`*` is `.*` or `.*?`, `?` is `.`, no bracket
//! expressions) and uses Go's leftmost-first matching. A small Pike VM with the same
//! priorities: linear in pattern times value, so a hostile pattern cannot blow up.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inst {
    Char(char),
    /// Go's `.`: any character but a newline.
    Any,
    /// Try the first branch, then the second.
    Split(usize, usize),
    Jmp(usize),
    Match,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    prog: Vec<Inst>,
    /// Match only at the start (`^`).
    anchored: bool,
}

/// BuildKit's `convertShellPatternToRegex`: `\*`, `\?` and `\\` are literals, `\}` and
/// `\/` drop the backslash (they only escape the `${}` syntax), any other escape is an
/// error. `greedy`: `*` prefers the longest run (`.*`) rather than the shortest (`.*?`).
pub(crate) fn compile(pattern: &str, greedy: bool, anchored: bool) -> Result<Pattern, String> {
    let mut prog = Vec::new();
    let mut it = pattern.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '*' => {
                let l1 = prog.len();
                prog.push(Inst::Split(0, 0));
                prog.push(Inst::Any);
                prog.push(Inst::Jmp(l1));
                let l3 = prog.len();
                prog[l1] = if greedy { Inst::Split(l1 + 1, l3) } else { Inst::Split(l3, l1 + 1) };
            }
            '?' => prog.push(Inst::Any),
            '\\' => match it.peek() {
                Some('}' | '/') => {}
                Some(&n @ ('*' | '?' | '\\')) => {
                    it.next();
                    prog.push(Inst::Char(n));
                }
                Some(&n) => return Err(format!("invalid escape '\\{n}'")),
                None => return Err("invalid escape '\\'".into()),
            },
            c => prog.push(Inst::Char(c)),
        }
    }
    prog.push(Inst::Match);
    Ok(Pattern { prog, anchored })
}

impl Pattern {
    /// The leftmost match at or after `from`, the highest-priority one there: (start, end).
    fn find(&self, s: &[char], from: usize) -> Option<(usize, usize)> {
        let n = self.prog.len();
        // marks[pc] == generation + 1: pc is already on the list being built.
        let mut marks = vec![0usize; n];
        let mut clist: Vec<(usize, usize)> = Vec::new();
        let mut nlist: Vec<(usize, usize)> = Vec::new();
        let mut stack = Vec::new();
        let mut found = None;
        for pos in from..=s.len() {
            if found.is_none() && (!self.anchored || pos == 0) {
                self.add(&mut clist, &mut marks, pos + 1, 0, pos, &mut stack);
            }
            if clist.is_empty() {
                break;
            }
            nlist.clear();
            for &(pc, start) in &clist {
                match self.prog[pc] {
                    Inst::Char(c) if s.get(pos) == Some(&c) => {
                        self.add(&mut nlist, &mut marks, pos + 2, pc + 1, start, &mut stack)
                    }
                    Inst::Any if s.get(pos).is_some_and(|c| *c != '\n') => {
                        self.add(&mut nlist, &mut marks, pos + 2, pc + 1, start, &mut stack)
                    }
                    Inst::Match => {
                        // Threads after this one have lower priority.
                        found = Some((start, pos));
                        break;
                    }
                    _ => {}
                }
            }
            std::mem::swap(&mut clist, &mut nlist);
        }
        found
    }

    /// Add the thread at `pc` and everything it reaches without consuming input, in
    /// priority order (an explicit stack: no recursion on hostile input).
    fn add(
        &self,
        list: &mut Vec<(usize, usize)>,
        marks: &mut [usize],
        generation: usize,
        pc: usize,
        start: usize,
        stack: &mut Vec<usize>,
    ) {
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if marks[pc] == generation {
                continue;
            }
            marks[pc] = generation;
            match self.prog[pc] {
                Inst::Jmp(x) => stack.push(x),
                Inst::Split(x, y) => {
                    stack.push(y);
                    stack.push(x);
                }
                _ => list.push((pc, start)),
            }
        }
    }
}

fn chars(s: &str) -> Vec<char> {
    s.chars().collect()
}

/// `${v#p}` / `${v##p}`: drop the shortest (longest) matching prefix.
pub(crate) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let re = compile(pattern, greedy, true).map_err(|e| invalid(pattern, &e))?;
    let v = chars(value);
    Ok(match re.find(&v, 0) {
        Some((_, e)) => v[e..].iter().collect(),
        None => value.to_string(),
    })
}

/// `${v%p}` / `${v%%p}`: as BuildKit, the prefix match on the reversed value and pattern.
pub(crate) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let rev: String = value.chars().rev().collect();
    let out = trim_prefix(&reverse_pattern(pattern), &rev, greedy).map_err(|_| {
        // Report the pattern as written, not reversed.
        compile(pattern, greedy, true).err().map(|e| invalid(pattern, &e)).unwrap_or_default()
    })?;
    Ok(out.chars().rev().collect())
}

/// Reverse a pattern keeping each `\x` escape in front of its character.
fn reverse_pattern(p: &str) -> String {
    let r = chars(p);
    let mut out = vec!['\0'; r.len()];
    let last = r.len().saturating_sub(1);
    let mut i = 0;
    while i < r.len() {
        let o = last - i;
        if r[i] == '\\' && i != last {
            out[o - 1] = '\\';
            out[o] = r[i + 1];
            i += 2;
        } else {
            out[o] = r[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn invalid(pattern: &str, e: &str) -> String {
    format!("invalid pattern ({pattern}) in substitution: {e}")
}

/// `${v/p/r}` (first match, replacement taken literally) and `${v//p/r}` (every match,
/// Go's `ReplaceAllString`: `$0`/`${0}` is the match, other `$name`s are empty, `$$` is
/// `$`; an empty match right after a match is skipped).
pub(crate) fn replace(value: &str, pattern: &str, repl: &str, all: bool) -> Result<String, String> {
    let re = compile(pattern, true, false).map_err(|e| invalid(pattern, &e))?;
    let v = chars(value);
    if !all {
        return Ok(match re.find(&v, 0) {
            Some((a, b)) => v[..a].iter().collect::<String>() + repl + &v[b..].iter().collect::<String>(),
            None => value.to_string(),
        });
    }
    let mut out = String::new();
    let (mut search, mut last_end) = (0usize, 0usize);
    while search <= v.len() {
        let Some((a, b)) = re.find(&v, search) else { break };
        out.extend(&v[last_end..a]);
        if b > last_end || a == 0 {
            expand_template(&mut out, repl, &v[a..b]);
        }
        last_end = b;
        search = if search + 1 > b { search + 1 } else { b };
    }
    out.extend(&v[last_end.min(v.len())..]);
    Ok(out)
}

/// Go's `Regexp.Expand` for a regexp without groups.
fn expand_template(out: &mut String, tmpl: &str, whole: &[char]) {
    let t = chars(tmpl);
    let mut i = 0;
    while i < t.len() {
        if t[i] != '$' {
            out.push(t[i]);
            i += 1;
            continue;
        }
        if t.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
            continue;
        }
        let is_name = |c: &char| c.is_alphanumeric() || *c == '_';
        let (name, next): (String, usize) = if t.get(i + 1) == Some(&'{') {
            match t[i + 2..].iter().position(|c| *c == '}') {
                Some(len) if len > 0 && t[i + 2..i + 2 + len].iter().all(is_name) => {
                    (t[i + 2..i + 2 + len].iter().collect(), i + 3 + len)
                }
                _ => (String::new(), i + 1),
            }
        } else {
            let len = t[i + 1..].iter().take_while(|c| is_name(c)).count();
            (t[i + 1..i + 1 + len].iter().collect(), i + 1 + len)
        };
        if name.is_empty() {
            // Malformed: the `$` is literal.
            out.push('$');
            i += 1;
            continue;
        }
        if name.chars().all(|c| c.is_ascii_digit()) && name.parse::<u64>() == Ok(0) {
            out.extend(whole);
        }
        i = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_suffix() {
        assert_eq!(trim_prefix("*x*y", "xxyy", false).unwrap(), "y");
        assert_eq!(trim_prefix("*", "xxyy", false).unwrap(), "xxyy");
        assert_eq!(trim_prefix("*x", "xxyy", true).unwrap(), "yy");
        assert_eq!(trim_prefix("?\\?", "???y", false).unwrap(), "?y");
        assert_eq!(trim_prefix("()[]{\\}^$.\\*\\?|\\\\", "()[]{}^$.*?|\\x", false).unwrap(), "x");
        assert_eq!(trim_suffix("\\**", "xx**", true).unwrap(), "xx");
        assert_eq!(trim_suffix("\\**\\*", "a***yy*", true).unwrap(), "a");
        assert_eq!(trim_suffix("x", "xxyy", false).unwrap(), "xxyy");
        assert!(trim_prefix("\\x", "a", false).is_err());
        assert!(trim_prefix("\\", "a", false).is_err());
    }

    #[test]
    fn replacements() {
        assert_eq!(replace("/foo*/*/*.txt", "\\*/", ".", false).unwrap(), "/foo.*/*.txt");
        assert_eq!(replace("/foo*/*/*.txt", "\\*/", ".", true).unwrap(), "/foo..*.txt");
        assert_eq!(replace("/tmp/tmp/bar.txt", "/tmp", "", true).unwrap(), "/bar.txt");
        assert_eq!(replace("/a/foo/b/c.txt", "/?/", "/", true).unwrap(), "/foo/c.txt");
        assert_eq!(replace("xxyy", "", "ww", false).unwrap(), "wwxxyy");
        assert_eq!(replace("xxyy", "", "", true).unwrap(), "xxyy");
        assert_eq!(replace("abc", "", "-", true).unwrap(), "-a-b-c-");
        assert_eq!(replace("/tmp/foo.txt", "\\/", "\\/", true).unwrap(), "\\/tmp\\/foo.txt");
        assert_eq!(replace("aXbYb", "a*b", "_", true).unwrap(), "_");
        assert_eq!(replace("ab", "b", "[$0$$]", true).unwrap(), "a[b$]");
    }

    #[test]
    fn hostile_patterns_finish() {
        let p = "*a".repeat(2000) + "b";
        let v = "a".repeat(3000);
        assert_eq!(replace(&v, &p, "", true).unwrap(), v);
    }
}
