//! Shell-word expansion as BuildKit's `shell` lexer does it: quotes, the escape
//! character, `$v`, `${v}`, `${v:-w}`, `${v-w}`, `${v:+w}`, `${v+w}`, `${v:?e}`, `${v?e}`,
//! `${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`, `${v/p/r}`, `${v//p/r}`.
//!
//! This is not a shell: no command substitution, no arithmetic, no globbing of files.

use crate::shellpattern;
use std::collections::{BTreeMap, BTreeSet};

/// Variables visible to an expansion: later writes win, names are case-sensitive.
pub type Env = BTreeMap<String, String>;

/// Something variables can be looked up in.
pub trait Vars {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<&str>;

    /// The names that are set (for "did you mean" hints); none by default.
    fn keys(&self) -> Vec<&str> {
        Vec::new()
    }
}

impl Vars for Env {
    fn var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        BTreeMap::keys(self).map(String::as_str).collect()
    }
}

/// An ordered list of assignments; the last one for a name wins.
impl Vars for [(String, String)] {
    fn var(&self, name: &str) -> Option<&str> {
        self.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Lexer options (BuildKit's `Lex` fields).
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    /// The escape character (`\` or `` ` ``).
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave `$name` as written when `name` is unset (used for heredoc names).
    pub skip_unset: bool,
    /// Treat quotes as ordinary characters (heredoc bodies).
    pub skip_quotes: bool,
}

/// The result of expanding one word.
#[derive(Debug, Clone, Default)]
pub struct Expanded {
    /// The word after expansion and quote removal.
    pub value: String,
    /// Variables referenced and found.
    pub matched: BTreeSet<String>,
    /// Variables referenced, not found, and with no default operator handling that.
    pub unmatched: BTreeSet<String>,
}

impl Lexer {
    /// A lexer with the given escape character and default options.
    pub fn new(escape: char) -> Lexer {
        Lexer { escape, raw_quotes: false, raw_escapes: false, skip_unset: false, skip_quotes: false }
    }

    /// Expand `word` as one word (whitespace kept literally).
    pub fn process_word<V: Vars + ?Sized>(&self, word: &str, env: &V) -> Result<Expanded, String> {
        let mut w = Walker::new(self, word, env);
        let (value, _) = w.process_stop_on(None, self.raw_escapes).map_err(|e| wrap(word, e))?;
        Ok(Expanded { value, matched: w.matched, unmatched: w.unmatched })
    }

    /// Expand `word` and split it into words on unquoted whitespace.
    pub fn process_words<V: Vars + ?Sized>(&self, word: &str, env: &V) -> Result<Vec<String>, String> {
        let mut w = Walker::new(self, word, env);
        let (_, words) = w.process_stop_on(None, self.raw_escapes).map_err(|e| wrap(word, e))?;
        Ok(words)
    }
}

fn wrap(word: &str, e: String) -> String {
    format!("failed to process {word:?}: {e}")
}

/// BuildKit's `wordsStruct`: collects words while the walker produces characters.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    word: String,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() && self.in_word {
            if !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else if !c.is_whitespace() {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct Walker<'a, V: Vars + ?Sized> {
    lx: &'a Lexer,
    chars: Vec<char>,
    pos: usize,
    env: &'a V,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

impl<'a, V: Vars + ?Sized> Walker<'a, V> {
    fn new(lx: &'a Lexer, word: &str, env: &'a V) -> Self {
        Walker { lx, chars: word.chars().collect(), pos: 0, env, matched: BTreeSet::new(), unmatched: BTreeSet::new() }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Look a name up, recording it as matched or unmatched (BuildKit records every
    /// lookup, `${x:-default}` included: that is what UndefinedVar reports).
    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.var(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v.to_string())
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    fn process_stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        let mut found = false;
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                found = true;
                break;
            }
            match ch {
                // BuildKit's processPossibleHeredoc: `<<` swallows the blanks after it so
                // `<< EOF` stays one word for heredoc detection.
                '<' if self.chars.get(self.pos + 1) == Some(&'<') => {
                    self.pos += 2;
                    let mut tmp = String::from("<<");
                    while let Some(c) = self.peek().filter(|c| *c == ' ' || *c == '\t') {
                        tmp.push(c);
                        self.next();
                    }
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                '\'' | '"' if self.lx.skip_quotes => {
                    self.next();
                    words.add_char(ch);
                    result.push(ch);
                }
                '\'' | '"' | '$' => {
                    let tmp = match ch {
                        '\'' => self.single_quote()?,
                        '"' => self.double_quote()?,
                        _ => self.dollar()?,
                    };
                    result.push_str(&tmp);
                    if ch == '$' {
                        words.add_string(&tmp);
                    } else {
                        words.add_raw_string(&tmp);
                    }
                }
                _ => {
                    self.next();
                    if ch == self.lx.escape {
                        if raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // An escape at the very end is dropped.
                        let Some(esc) = self.next() else { break };
                        words.add_raw_char(esc);
                        result.push(esc);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(s) = stop {
            if !found {
                return Err(format!("unexpected end of statement while looking for matching {s}"));
            }
        }
        Ok((result, words.finish()))
    }

    fn single_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let q = self.next().unwrap_or('\'');
        if self.lx.raw_quotes {
            out.push(q);
        }
        loop {
            match self.next() {
                None => {
                    return Err("unexpected end of statement while looking for matching single-quote".into());
                }
                Some('\'') => {
                    if self.lx.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let q = self.next().unwrap_or('"');
        if self.lx.raw_quotes {
            out.push(q);
        }
        loop {
            match self.peek() {
                None => {
                    return Err("unexpected end of statement while looking for matching double-quote".into());
                }
                Some('"') => {
                    self.next();
                    if self.lx.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.lx.escape {
                        if self.lx.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            // A trailing escape inside an unterminated quote: the quote
                            // error comes next iteration.
                            None => continue,
                            // Only these can be escaped inside double quotes; any other
                            // escape stays as written.
                            Some(c) if c == '"' || c == '$' || c == self.lx.escape => {
                                ch = c;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(|c| c.is_ascii_digit()) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.next(); // the '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lx.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // the '{'
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.process_name();
        let Some(mut ch) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut chs = ch.to_string();
        match ch {
            '}' => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lx.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = ch == ':';
                if null_is_unset {
                    ch = self.next().unwrap_or('}');
                    chs.push(ch);
                }
                let raw = ch == '#' || ch == '%';
                // BuildKit: `${v:#p}` and `${v:%p}` are not a thing.
                if ch == '}' || (null_is_unset && raw) {
                    return Err(format!("unsupported modifier ({chs}) in substitution"));
                }
                let word = self.sub_word('}', raw)?;
                let value = self.get_env(&name);
                if self.lx.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let set = value.is_some();
                let value = value.unwrap_or_default();
                let empty_unset = !set || (null_is_unset && value.is_empty());
                match ch {
                    '-' => Ok(if empty_unset { word } else { value }),
                    '+' => Ok(if empty_unset { String::new() } else { word }),
                    '?' => {
                        if !set {
                            let m = if word.is_empty() { "is not allowed to be unset" } else { &word };
                            Err(format!("{name}: {m}"))
                        } else if null_is_unset && value.is_empty() {
                            let m = if word.is_empty() { "is not allowed to be empty" } else { &word };
                            Err(format!("{name}: {m}"))
                        } else {
                            Ok(value)
                        }
                    }
                    '#' | '%' => {
                        // `##` and `%%` are the longest-match forms.
                        let (pat, longest) = match word.strip_prefix(ch) {
                            Some(p) => (p, true),
                            None => (word.as_str(), false),
                        };
                        if ch == '#' {
                            shellpattern::trim_prefix(pat, &value, longest)
                        } else {
                            shellpattern::trim_suffix(pat, &value, longest)
                        }
                    }
                    _ => Err(format!("unsupported modifier ({chs}) in substitution")),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                // Pattern and replacement are words of their own: variables expand in
                // them and escapes stay for the pattern compiler (BuildKit's raw escapes).
                let pat = match self.process_stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(_) if self.peek().is_none() => return Err("syntax error: missing '/' in ${}".into()),
                    Err(e) => return Err(e),
                };
                let repl = self.sub_word('}', true)?;
                let value = match self.get_env(&name) {
                    Some(v) => v,
                    None if self.lx.skip_unset => {
                        return Ok(format!("${{{name}/{}{pat}/{repl}}}", if all { "/" } else { "" }));
                    }
                    None => String::new(),
                };
                shellpattern::replace(&value, &pat, &repl, all)
            }
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }

    fn sub_word(&mut self, stop: char, raw_escapes: bool) -> Result<String, String> {
        match self.process_stop_on(Some(stop), raw_escapes) {
            Ok((w, _)) => Ok(w),
            Err(_) if self.peek().is_none() => Err("syntax error: missing '}'".into()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        [("a", "1"), ("e", ""), ("p", "/usr/local/bin.tar.gz")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn w(s: &str) -> String {
        Lexer::new('\\').process_word(s, &env()).unwrap().value
    }

    #[test]
    fn expansions() {
        assert_eq!(w("$a"), "1");
        assert_eq!(w("${a}x"), "1x");
        assert_eq!(w("${u:-d}"), "d");
        assert_eq!(w("${e:-d}"), "d");
        assert_eq!(w("${e-d}"), "");
        assert_eq!(w("${a:+w}"), "w");
        assert_eq!(w("${e:+w}"), "");
        assert_eq!(w("${e+w}"), "w");
        assert_eq!(w("'$a'"), "$a");
        assert_eq!(w("\"$a\""), "1");
        assert_eq!(w("\\$a"), "$a");
        assert_eq!(w("\"\\$a\\x\""), "$a\\x");
        assert_eq!(w("${p#*/}"), "usr/local/bin.tar.gz");
        assert_eq!(w("${p##*/}"), "bin.tar.gz");
        assert_eq!(w("${p%.*}"), "/usr/local/bin.tar");
        assert_eq!(w("${p%%.*}"), "/usr/local/bin");
        assert_eq!(w("${p/local/opt}"), "/usr/opt/bin.tar.gz");
        assert_eq!(w("${a:-\"x y\"}"), "1");
        assert_eq!(w("$"), "$");
        assert_eq!(w("a b"), "a b");
        assert!(Lexer::new('\\').process_word("${u:?missing}", &env()).is_err());
        assert!(Lexer::new('\\').process_word("${a", &env()).is_err());
        assert!(Lexer::new('\\').process_word("'abc", &env()).is_err());
    }

    /// BuildKit's `TestProcessWithMatches` cases (frontend/dockerfile/shell/lex_test.go).
    #[test]
    fn buildkit_process_with_matches() {
        let lx = Lexer::new('\\');
        let env = |kv: &[(&str, &str)]| -> Env { kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let ok: &[Case] = &[
            ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", &[("FOO", "xxx"), ("BAR", "")], "xxx  ccc"),
            ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", &[("FOO", "xxx"), ("BAR", "")], "xxx bbb ccc"),
            ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", &[("FOO", "xxx"), ("BAR", "")], "aaa bbb "),
            ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", &[("FOO", "xxx"), ("BAR", "")], "aaa  "),
            ("${BAR?bbb}", &[("BAR", "")], ""),
            ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", &[("FOO", "()[]{}^$.*?|\\x")], "x"),
            ("${FOO%%\\**}", &[("FOO", "xx**")], "xx"),
            ("${FOO#*x*y}", &[("FOO", "xxyy")], "y"),
            ("${FOO#*}", &[("FOO", "xxyy")], "xxyy"),
            ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "x")], "xyy"),
            ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "")], "xxyy"),
            ("${FOO#}", &[("FOO", "xxyy")], "xxyy"),
            ("${FOO##*x}", &[("FOO", "xxyy")], "yy"),
            ("${FOO##}", &[("FOO", "xxyy")], "xxyy"),
            ("${FOO#?\\?}", &[("FOO", "???y")], "?y"),
            ("${ABC:-.}${FOO%x}${ABC:-.}", &[("FOO", "xxyy")], ".xxyy."),
            ("${FOO%%\\**\\*}", &[("FOO", "a***yy*")], "a"),
            ("${FOO%}", &[("FOO", "xxyy")], "xxyy"),
            ("${FOO%%$BAR}", &[("FOO", "xxyy"), ("BAR", "")], "xxyy"),
            (
                "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
                &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
                "/foo.*/*.txt - /foo..*.txt",
            ),
            (
                "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
                &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
                "/tmp/bar.txt - /bar.txt",
            ),
            (
                "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
                &[("FOO", "/a/foo/b/c.txt"), ("NEEDLE", "/?/"), ("REPLACEMENT", "/")],
                "/foo/b/c.txt - /foo/c.txt",
            ),
            (
                "${FOO/$NEEDLE/$REPLACEMENT}",
                &[("FOO", "http://google.de"), ("NEEDLE", "http://"), ("REPLACEMENT", "https://")],
                "https://google.de",
            ),
            ("${FOO//\\//\\/}", &[("FOO", "/tmp/foo.txt")], "\\/tmp\\/foo.txt"),
            ("${FOO/$BAR/ww}", &[("FOO", "xxyy"), ("BAR", "")], "wwxxyy"),
            ("${FOO///}", &[("FOO", "xxyy")], "xxyy"),
            ("${FOO///}", &[], ""),
        ];
        for (input, kv, want) in ok {
            let got = lx.process_word(input, &env(kv));
            assert_eq!(got.as_ref().map(|e| e.value.as_str()), Ok(*want), "{input}");
        }
        let bad: &[(&str, &[(&str, &str)])] = &[
            ("${BAZ?ccc}", &[]),
            ("${BAR:?bbb}", &[("BAR", "")]),
            ("${BAZ:?}", &[]),
            ("${FOO=aaa}", &[("FOO", "xxx")]),
            ("${FOO=:aaa}", &[("FOO", "xxx")]),
            ("${FOO=}", &[]),
            ("${FOO//ww}", &[("FOO", "xxyy")]),
            ("${FOO//}", &[("FOO", "xxyy")]),
            ("${FOO/x}", &[("FOO", "xxyy")]),
            ("${FOO:#}", &[("FOO", "xxyy")]),
            ("${FOO:##}", &[("FOO", "xxyy")]),
            ("${FOO:%}", &[("FOO", "xxyy")]),
            ("${FOO:%%}", &[("FOO", "xxyy")]),
            ("${FOO#\\x}", &[("FOO", "xxyy")]),
        ];
        for (input, kv) in bad {
            assert!(lx.process_word(input, &env(kv)).is_err(), "{input} should fail");
        }
        // Pattern variables count as uses.
        let e = lx.process_word("${FOO/$NEEDLE/$R}", &env(&[("FOO", "a")])).unwrap();
        assert!(e.unmatched.contains("NEEDLE") && e.unmatched.contains("R"));
    }

    #[test]
    fn words() {
        let lx = Lexer::new('\\');
        assert_eq!(lx.process_words("a \"b c\" d\\ e", &env()).unwrap(), ["a", "b c", "d e"]);
    }
}
