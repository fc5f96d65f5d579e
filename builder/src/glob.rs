//! Go's `filepath.Match` (what Docker matches COPY sources with): `*` any run of
//! non-`/` characters, `?` one non-`/` character, `[...]` classes with ranges and `^`/`!`
//! negation, `\` escapes.

/// Does `name` match `pattern`? A malformed pattern matches nothing.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n).unwrap_or(false)
}

/// Does `s` contain glob metacharacters?
pub fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

fn m(p: &[char], n: &[char]) -> Option<bool> {
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() && n[ni] != '/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' if ni < n.len() => {
                    let (ok, len) = class(&p[pi..], n[ni])?;
                    if ok && n[ni] != '/' {
                        pi += len;
                        ni += 1;
                        continue;
                    }
                }
                '\\' if ni < n.len() => {
                    let c = *p.get(pi + 1)?;
                    if c == n[ni] {
                        pi += 2;
                        ni += 1;
                        continue;
                    }
                }
                c if c != '?' && c != '[' && c != '\\' && ni < n.len() && c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return Some(true);
        }
        // Backtrack: let the last star eat one more character (never a '/').
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp + 1;
                ni = sn + 1;
            }
            _ => return Some(false),
        }
    }
}

/// Match a `[...]` class at the start of `p` against `c`: (matched, pattern length).
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(1), Some('^') | Some('!'));
    if negate {
        i += 1;
    }
    let mut ok = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            ch
        };
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|x| *x != ']') {
            i += 1;
            hi = if p[i] == '\\' {
                i += 1;
                *p.get(i)?
            } else {
                p[i]
            };
            i += 1;
        }
        if lo <= c && c <= hi {
            ok = true;
        }
    }
    Some((ok != negate, i))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn go_filepath_match_cases() {
        assert!(matches("abc", "abc"));
        assert!(matches("*", "abc"));
        assert!(matches("*c", "abc"));
        assert!(matches("a*", "a"));
        assert!(!matches("a*", "ab/c"));
        assert!(matches("a*/b", "abc/b"));
        assert!(!matches("a*/b", "a/c/b"));
        assert!(matches("a*b*c*d*e*/f", "axbxcxdxe/f"));
        assert!(!matches("a*b*c*d*e*/f", "axbxcxdxexxx/fff"));
        assert!(matches("ab[c]", "abc"));
        assert!(matches("ab[b-d]", "abc"));
        assert!(!matches("ab[^c]", "abc"));
        assert!(matches("ab[^e-g]", "abc"));
        assert!(matches("a\\*b", "a*b"));
        assert!(!matches("a\\*b", "ab"));
        assert!(matches("a?b", "a☺b"));
        assert!(!matches("a?b", "a/b"));
        assert!(matches("*.txt", "notes.txt"));
        assert!(!matches("*.txt", "dir/notes.txt"));
    }
}
