//! Stage 1: Dockerfile text to an [`Ast`] of raw instruction nodes with spans.
//!
//! Follows BuildKit's `frontend/dockerfile/parser`: parser directives only before the
//! first non-directive line; physical lines joined with the escape character; comment
//! and empty lines inside continuations skipped; heredoc bodies read after the line that
//! opens them; each instruction's arguments split by its own rule (JSON-or-shell,
//! whitespace words, key=value pairs...). Typing and validation come later
//! ([`crate::instructions`]).

mod words;

pub(crate) use words::{parse_words, split_ws};

use crate::error::{Diagnostic, FrontendError, Span, parse_err};
use crate::expand::{Env, Lexer};
use serde::Serialize;
use words::{Json, RawFlag, extract_flags, parse_json};

/// A parsed Dockerfile.
#[derive(Debug, Clone, Serialize)]
pub struct Ast {
    /// The name used in locations (`Dockerfile`).
    pub file_name: String,
    /// Parser directives found at the top of the file.
    pub directives: Directives,
    /// The escape character in force (`\` unless `# escape=` says otherwise).
    pub escape: char,
    /// Instructions in file order.
    pub nodes: Vec<Node>,
    /// Parser-level warnings (empty continuation lines).
    #[serde(skip)]
    pub warnings: Vec<Diagnostic>,
}

/// The `# syntax=`, `# escape=` and `# check=` directives.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Directives {
    /// `# syntax=` (recorded; rbuild always uses its own frontend).
    pub syntax: Option<Directive>,
    /// `# escape=`.
    pub escape: Option<Directive>,
    /// `# check=` (lint configuration: `skip=Rule,...;error=true`).
    pub check: Option<Directive>,
}

/// One parser directive.
#[derive(Debug, Clone, Serialize)]
pub struct Directive {
    /// Lowercased name.
    pub name: String,
    /// Value, trimmed.
    pub value: String,
    /// Where it was written.
    pub span: Span,
}

/// One `--flag[=value]` written before an instruction's arguments.
#[derive(Debug, Clone, Serialize)]
pub struct Flag {
    /// The flag word with quotes removed, e.g. `--from=build`.
    pub text: String,
    /// Where it was written.
    pub span: Span,
}

/// A heredoc body attached to RUN, COPY or ADD.
#[derive(Debug, Clone, Serialize)]
pub struct Heredoc {
    /// The delimiter word, quotes removed.
    pub name: String,
    /// False when the delimiter was quoted: the body is then taken literally.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from body lines and the terminator.
    pub chomp: bool,
    /// File descriptor prefix (`3<<EOF`), 0 when absent.
    pub fd: u32,
    /// The body as written, line endings included.
    pub content: String,
}

/// An instruction's arguments, split by the rule BuildKit uses for that instruction.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Args {
    /// No arguments.
    Empty,
    /// Exec form: a JSON array of strings.
    Json(Vec<String>),
    /// Shell form or a single-string instruction: the text after the flags.
    Shell(String),
    /// Whitespace-separated words (quotes kept for later expansion).
    Words(Vec<String>),
    /// ENV/LABEL pairs, raw; `legacy` for the `KEY value` form.
    KeyValues {
        /// (key, value) as written.
        pairs: Vec<(String, String)>,
        /// `ENV key value` rather than `ENV key=value`.
        legacy: bool,
    },
    /// HEALTHCHECK: `NONE` or `CMD` plus a command.
    Health {
        /// `CMD`/`NONE` as written.
        kind: String,
        /// The command after the kind.
        cmd: Box<Args>,
    },
    /// ONBUILD's trigger instruction.
    Sub(Box<Node>),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Seg {
    off: usize,
    line: u32,
    col: u32,
}

/// One instruction.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Lowercased keyword (`run`).
    pub keyword: String,
    /// The keyword as written (`Run`), for casing lints.
    pub keyword_as_written: String,
    /// Flags before the arguments.
    pub flags: Vec<Flag>,
    /// The arguments.
    pub args: Args,
    /// Heredoc bodies, in the order their markers appear.
    pub heredocs: Vec<Heredoc>,
    /// The logical line (continuations joined, heredoc bodies excluded).
    pub original: String,
    /// From the keyword to the end of the last line (heredocs included).
    pub span: Span,
    /// Where the arguments start.
    pub args_span: Span,
    /// The comment lines right above the instruction, `#` and surrounding blanks removed
    /// (BuildKit's `PrevComment`: an empty `#` line ends a block, parser directives are
    /// not part of it). Descriptions and per-instruction `# check=` lines live here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<String>,
}

fn pos_in(segs: &[Seg], line: &str, off: usize) -> Span {
    let seg = segs.iter().rev().find(|s| s.off <= off).copied().unwrap_or(Seg { off: 0, line: 1, col: 1 });
    let end = off.min(line.len());
    let chars = line.get(seg.off.min(end)..end).map(|s| s.chars().count()).unwrap_or(0);
    Span::point(seg.line, seg.col + chars as u32)
}

/// Parse a Dockerfile. `file_name` is only used in locations.
pub fn parse(text: &str, file_name: &str) -> Result<Ast, FrontendError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut dirs = DirectiveParser::default();
    let mut escape = '\\';
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        i += 1;
        let lineno = i as u32;
        let tok = trim_newline(raw);
        let lead = tok.len() - tok.trim_start().len();
        let tok = &tok[lead..];
        let is_comment = tok.starts_with('#');
        let directive = dirs.line(tok, lineno, lead, file_name)?;
        if is_comment && directive.is_none() {
            // As BuildKit: the text after the line's first character, trimmed (for an
            // indented comment that keeps the `#`).
            let mut rest = trim_newline(raw).chars();
            rest.next();
            let c = rest.as_str().trim();
            if c.is_empty() {
                comments.clear();
            } else {
                comments.push(c.to_string());
            }
        }
        if let Some(d) = directive {
            if d.name == "escape" {
                escape = match d.value.as_str() {
                    "`" => '`',
                    "\\" => '\\',
                    v => {
                        return Err(parse_err(
                            file_name,
                            d.span,
                            format!("invalid escape token '{v}' does not match ` or \\"),
                        ));
                    }
                };
            }
        }
        if tok.starts_with('#') {
            continue;
        }
        let (first, mut eol) = trim_continuation(tok, escape);
        if eol && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        let mut segs = vec![Seg { off: 0, line: lineno, col: tok_col(raw, lead) }];
        let mut empty_cont = false;
        let mut end_line = lineno;
        while !eol && i < lines.len() {
            let raw = lines[i];
            i += 1;
            let t = trim_newline(raw);
            end_line = i as u32;
            if t.trim_start().starts_with('#') {
                continue;
            }
            if t.trim_start().is_empty() {
                empty_cont = true;
                continue;
            }
            let (piece, e) = trim_continuation(t, escape);
            eol = e;
            segs.push(Seg { off: line.len(), line: i as u32, col: 1 });
            line.push_str(piece);
        }
        let mut node = node_from_line(&line, 0, &segs, escape, file_name)?;
        node.comments = std::mem::take(&mut comments);
        let last_len = lines[end_line as usize - 1].trim_end_matches(['\r', '\n']).chars().count();
        node.span.end_line = end_line;
        node.span.end_col = last_len as u32 + 1;
        if empty_cont {
            // BuildKit reports it on the instruction's last line.
            let at = Span { line: end_line, col: 1, end_line, end_col: last_len as u32 + 1 };
            warnings.push(Diagnostic::warning("NoEmptyContinuation", file_name, at, "Empty continuation line".into()));
        }
        if can_contain_heredoc(&node) {
            for mut h in heredocs_from_line(&line) {
                let mut done = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    let mut t = trim_newline(raw);
                    if h.chomp {
                        t = t.trim_start_matches('\t');
                    }
                    if t == h.name {
                        done = true;
                        break;
                    }
                    h.content.push_str(raw);
                }
                if !done {
                    let mut sp = node.span;
                    sp.end_line = i as u32;
                    return Err(parse_err(file_name, sp, "unterminated heredoc"));
                }
                node.heredocs.push(h);
            }
            if !node.heredocs.is_empty() {
                node.span.end_line = i as u32;
                node.span.end_col = lines[i - 1].trim_end_matches(['\r', '\n']).chars().count() as u32 + 1;
            }
        }
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(parse_err(file_name, Span::point(1, 1), "the Dockerfile has no instructions"));
    }
    Ok(Ast { file_name: file_name.to_string(), directives: dirs.found, escape, nodes, warnings })
}

fn tok_col(raw: &str, lead_bytes: usize) -> u32 {
    raw[..lead_bytes].chars().count() as u32 + 1
}

/// Strip trailing CR/LF, as Go's `bytes.TrimRight(src, "\r\n")`.
fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

/// Remove a trailing escape (plus spaces/tabs after it); true when the line ends here.
/// BuildKit's rule (`([^E])E[ \t]*$|^E[ \t]*$`): the escape continues the line unless
/// another escape comes right before it, so `a\\` ends the line with an escaped escape.
fn trim_continuation(s: &str, escape: char) -> (&str, bool) {
    let t = s.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(head) if !head.ends_with(escape) => (head, false),
        _ => (s, true),
    }
}

#[derive(Default)]
struct DirectiveParser {
    done: bool,
    found: Directives,
}

impl DirectiveParser {
    /// Look at one top-level line (left-trimmed); directives stop at the first line that is
    /// not one, unknown directive names included (they count as comments).
    fn line(&mut self, tok: &str, lineno: u32, lead: usize, file: &str) -> Result<Option<Directive>, FrontendError> {
        if self.done {
            return Ok(None);
        }
        let Some((name, value)) = match_directive(tok) else {
            self.done = true;
            return Ok(None);
        };
        let name = name.to_ascii_lowercase();
        let span = Span {
            line: lineno,
            col: lead as u32 + 1,
            end_line: lineno,
            end_col: (lead + tok.chars().count()) as u32 + 1,
        };
        let slot = match name.as_str() {
            "syntax" => &mut self.found.syntax,
            "escape" => &mut self.found.escape,
            "check" => &mut self.found.check,
            _ => {
                self.done = true;
                return Ok(None);
            }
        };
        if slot.is_some() {
            return Err(parse_err(file, span, format!("only one {name} parser directive can be used")));
        }
        let d = Directive { name, value: value.to_string(), span };
        *slot = Some(d.clone());
        Ok(Some(d))
    }
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn match_directive(tok: &str) -> Option<(&str, &str)> {
    let rest = tok.strip_prefix('#')?.trim_start();
    let name_len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
    let name = &rest[..name_len];
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[name_len..].trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((name, value))
}

fn can_contain_heredoc(n: &Node) -> bool {
    // ONBUILD is looked through: `ONBUILD RUN <<EOF` carries its body too.
    let n = match &n.args {
        Args::Sub(sub) if n.keyword == "onbuild" => sub,
        _ => n,
    };
    matches!(n.keyword.as_str(), "run" | "copy" | "add") && !matches!(n.args, Args::Json(_))
}

/// Find heredoc markers in a logical line, as BuildKit: lex the line keeping quotes and
/// escapes, then test each word against `^(\d*)<<(-?)([^<]*)$`.
fn heredocs_from_line(line: &str) -> Vec<Heredoc> {
    if !line.contains("<<") {
        return Vec::new();
    }
    let lx = Lexer { escape: '\\', raw_quotes: true, raw_escapes: true, skip_unset: true, skip_quotes: false };
    let words = lx.process_words(line, &Env::new()).unwrap_or_default();
    words.iter().filter_map(|w| parse_heredoc(w)).collect()
}

/// Parse one word as a heredoc marker (`<<EOF`, `<<-"EOF"`, `3<<EOF`, `<< EOF`):
/// BuildKit's `^(\d*)<<(-?)\s*([^<]*)$`.
pub(crate) fn parse_heredoc(src: &str) -> Option<Heredoc> {
    let digits = src.len() - src.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let after = src[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, after),
    };
    let rest = rest.trim_start();
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let fd = src[..digits].parse::<u32>().unwrap_or(0);
    let mut lx = Lexer { escape: '\\', raw_quotes: false, raw_escapes: false, skip_unset: true, skip_quotes: false };
    let words = lx.process_words(rest, &Env::new()).ok()?;
    if words.len() != 1 {
        return None;
    }
    lx.raw_quotes = true;
    let raw = lx.process_words(rest, &Env::new()).ok()?;
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    let expand = raw.len() == 1 && quotes(&words[0]) == quotes(&raw[0]);
    Some(Heredoc { name: words[0].clone(), expand, chomp, fd, content: String::new() })
}

/// Split a logical line into keyword, flags and arguments (BuildKit's `newNodeFromLine`).
/// `base` is the offset of `line` within the logical line that `segs` maps.
fn node_from_line(line: &str, base: usize, segs: &[Seg], escape: char, file: &str) -> Result<Node, FrontendError> {
    let full_pos = |off: usize, whole: &str| pos_in(segs, whole, off);
    let lead = line.len() - line.trim_start().len();
    let t = line.trim();
    let kw_len = t.find(|c: char| c.is_whitespace()).unwrap_or(t.len());
    let kw = &t[..kw_len];
    let after_kw = &t[kw_len..];
    let rest_lead = after_kw.len() - after_kw.trim_start().len();
    let rest = after_kw.trim_start();
    let rest_off = base + lead + kw_len + rest_lead;
    let (raw_flags, args_off) = extract_flags(rest, rest_off);
    let args_str = &rest[args_off - rest_off..];
    let keyword = kw.to_ascii_lowercase();
    // Offsets are relative to the logical line that `segs` describes; for an ONBUILD
    // trigger that line starts `base` bytes before `line`.
    let whole: String = " ".repeat(base) + line;
    let span_start = full_pos(base + lead, &whole);
    let flags = raw_flags
        .into_iter()
        .map(|RawFlag { text, offset }| {
            let mut sp = full_pos(offset, &whole);
            sp.end_col = sp.col + text.chars().count() as u32;
            Flag { text, span: sp }
        })
        .collect();
    let args_span = full_pos(args_off, &whole);
    let err_at = |m: String| parse_err(file, span_start, m);
    let args = match keyword.as_str() {
        "run" | "cmd" | "entrypoint" | "shell" => maybe_json(args_str).map_err(err_at)?,
        "add" | "copy" | "volume" => match parse_json(args_str) {
            Json::Strings(v) => Args::Json(v),
            Json::NotStrings => return Err(err_at(NOT_STRINGS.into())),
            Json::No if args_str.trim().is_empty() => Args::Empty,
            Json::No => Args::Words(split_ws(args_str)),
        },
        "expose" | "from" => words_or_empty(split_ws(args_str)),
        "arg" => words_or_empty(parse_words(args_str, escape)),
        "env" | "label" => name_val(args_str, &kw.to_ascii_uppercase(), escape).map_err(err_at)?,
        "healthcheck" => {
            let sep = args_str.find(char::is_whitespace).unwrap_or(args_str.len());
            if sep == 0 {
                Args::Empty
            } else {
                let cmd = maybe_json(args_str[sep..].trim_start()).map_err(err_at)?;
                Args::Health { kind: args_str[..sep].to_string(), cmd: Box::new(cmd) }
            }
        }
        "onbuild" => {
            if args_str.trim().is_empty() {
                Args::Empty
            } else {
                let sub_off = args_off;
                let sub = node_from_line(&whole[sub_off..], sub_off, segs, escape, file)?;
                Args::Sub(Box::new(sub))
            }
        }
        _ if args_str.is_empty() => Args::Empty,
        _ => Args::Shell(args_str.to_string()),
    };
    Ok(Node {
        keyword,
        keyword_as_written: kw.to_string(),
        flags,
        args,
        heredocs: Vec::new(),
        original: t.to_string(),
        span: span_start,
        args_span,
        comments: Vec::new(),
    })
}

const NOT_STRINGS: &str = "when using JSON array syntax, arrays must be comprised of strings only";

fn words_or_empty(w: Vec<String>) -> Args {
    if w.is_empty() { Args::Empty } else { Args::Words(w) }
}

/// BuildKit's `parseMaybeJSON`: exec form if the text is a JSON array of strings, shell
/// form if it is not JSON at all, an error if it is JSON but not all strings.
fn maybe_json(rest: &str) -> Result<Args, String> {
    if rest.is_empty() {
        return Ok(Args::Empty);
    }
    match parse_json(rest) {
        Json::Strings(v) => Ok(Args::Json(v)),
        Json::NotStrings => Err(NOT_STRINGS.into()),
        Json::No => Ok(Args::Shell(rest.to_string())),
    }
}

/// BuildKit's `parseNameVal` for ENV and LABEL: `KEY value` (legacy) or `k=v ...`.
fn name_val(rest: &str, key: &str, escape: char) -> Result<Args, String> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Err(format!("{key} requires at least one argument"));
    }
    if !words[0].contains('=') {
        let t = rest.trim();
        let Some(p) = t.find([' ', '\t', '\x0b', '\x0c', '\r']) else {
            return Err(format!("{key} must have two arguments"));
        };
        let value = t[p..].trim_start_matches([' ', '\t', '\x0b', '\x0c', '\r']);
        return Ok(Args::KeyValues { pairs: vec![(t[..p].to_string(), value.to_string())], legacy: true });
    }
    let mut pairs = Vec::with_capacity(words.len());
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!("Syntax error - can't find = in {w:?}. Must be of the form: name=value"));
        };
        pairs.push((k.to_string(), v.to_string()));
    }
    Ok(Args::KeyValues { pairs, legacy: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_and_spans() {
        let ast = parse("FROM a\nRUN echo \\\n  # c\n\n  hi\nCOPY --from=x a b\n", "Dockerfile").unwrap();
        assert_eq!(ast.nodes.len(), 3);
        assert!(matches!(&ast.nodes[1].args, Args::Shell(s) if s == "echo   hi"));
        assert_eq!(ast.nodes[1].span.end_line, 5);
        assert_eq!(ast.nodes[2].flags[0].span, Span { line: 6, col: 6, end_line: 6, end_col: 14 });
        assert_eq!(ast.warnings.len(), 1);
    }

    #[test]
    fn directive_placement() {
        // Leading blanks are fine; case does not matter.
        let a = parse("  # ESCAPE = `\nFROM a\nRUN x `\n y\n", "D").unwrap();
        assert_eq!(a.escape, '`');
        assert_eq!(a.nodes.len(), 2);
        // After an empty line, a comment or an unknown directive: just a comment.
        for text in ["\n# escape=`\nFROM a\n", "# hi\n# escape=`\nFROM a\n", "# foo=bar\n# escape=`\nFROM a\n"] {
            let a = parse(text, "D").unwrap();
            assert_eq!(a.escape, '\\', "{text:?}");
            assert!(a.directives.escape.is_none());
        }
        let a = parse("# syntax=docker/dockerfile:1\n# check=skip=all\nFROM a\n", "D").unwrap();
        assert_eq!(a.directives.syntax.unwrap().value, "docker/dockerfile:1");
        assert_eq!(a.directives.check.unwrap().value, "skip=all");
    }

    #[test]
    fn crlf_heredoc_body_is_kept_raw() {
        let a = parse("FROM a\r\nRUN <<EOF\r\nx\r\nEOF\r\n", "D").unwrap();
        assert_eq!(a.nodes[1].heredocs[0].content, "x\r\n");
    }

    #[test]
    fn heredoc_marker() {
        let h = parse_heredoc("<<\"EOF\"").unwrap();
        assert_eq!((h.name.as_str(), h.expand), ("EOF", false));
        let h = parse_heredoc("<<-EOF").unwrap();
        assert!(h.chomp && h.expand);
        assert!(parse_heredoc("<<").is_none());
        assert!(parse_heredoc("a<<EOF").is_none());
    }
}
