//! `--format`: the subset of Go's text/template that docker's `--format` flags are written
//! in, evaluated against JSON values, plus docker's table and `json` modes.
//!
//! Templates: text with `{{ACTION}}`s; `{{- x -}}` trims the whitespace beside it. Actions:
//! a pipeline (`.A.B`, `.`, `$`, `$v.A`, `"str"`, numbers, `true`/`false`/`nil`,
//! `(pipeline)`, function calls, `a | f b`), `{{$v := pipeline}}`, `{{if}}`/`{{else if}}`/
//! `{{else}}`/`{{end}}`, `{{range [$i, $e :=] pipeline}}...{{else}}...{{end}}` and
//! `{{with}}`. Functions: docker's (`json`, `join`, `split`, `lower`, `upper`, `title`,
//! `pad`, `truncate`) and Go's (`len`, `index`, `print`, `printf`, `println`, `eq`, `ne`,
//! `lt`, `le`, `gt`, `ge`, `and`, `or`, `not`). Values print as Go prints them: strings
//! bare, lists `[a b]`, maps `map[k:v]`, null `<nil>`.
//!
//! [`Format`] is what a `--format` flag says: `table TEMPLATE` (a header row, then columns
//! aligned as docker's tabwriter aligns them), `json` (one JSON object a line) or a plain
//! template (one line a value). As in docker, a literal `\t` or `\n` in the flag's text
//! means a tab or a newline.
//!
//! The rest of this module is what `rbuild ps` shows of a container: docker's status texts
//! ("Up 5 seconds", "Exited (0) 3 minutes ago"), its human durations and the row values a
//! ps template sees ([`PsRow`]).

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------
// Parsing.

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If { cond: Pipeline, then: Vec<Node>, otherwise: Vec<Node> },
    With { value: Pipeline, then: Vec<Node>, otherwise: Vec<Node> },
    Range { over: Pipeline, body: Vec<Node>, otherwise: Vec<Node> },
}

#[derive(Debug, Clone, Default)]
struct Pipeline {
    /// `$a := ...` or `$i, $e := ...`.
    decl: Vec<String>,
    cmds: Vec<Vec<Operand>>,
}

#[derive(Debug, Clone)]
enum Operand {
    /// `.A.B` (empty: `.`).
    Field(Vec<String>),
    /// `$name.A.B` (`$` alone is the data the template was given).
    Var(String, Vec<String>),
    /// `(pipeline).A.B`.
    Sub(Box<Pipeline>, Vec<String>),
    Lit(Value),
    Func(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Lit(Value),
    Ident(String),
    Pipe,
    Open,
    Close(Vec<String>),
    Declare,
    Comma,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

fn err(template: &str, reason: impl Into<String>) -> Error {
    Error::Template { template: template.to_string(), reason: reason.into() }
}

/// `.A.B.C` after the leading dot has been consumed: the names.
fn field_chain(s: &str) -> Vec<String> {
    s.split('.').filter(|p| !p.is_empty()).map(str::to_string).collect()
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn lex(src: &str, action: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = action.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && (is_name_char(chars[*i]) || chars[*i] == '.') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                i += 1;
                let mut fields = Vec::new();
                if i < chars.len() && chars[i] == '.' {
                    fields = field_chain(&word(&mut i));
                }
                out.push(Tok::Close(fields));
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            '.' => {
                let w = word(&mut i);
                out.push(Tok::Field(field_chain(&w)));
            }
            '$' => {
                i += 1;
                let start = i;
                while i < chars.len() && is_name_char(chars[i]) {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                let mut fields = Vec::new();
                if i < chars.len() && chars[i] == '.' {
                    fields = field_chain(&word(&mut i));
                }
                out.push(Tok::Var(name, fields));
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(src, "unterminated quoted string")),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some('\\') => s.push('\\'),
                                Some('"') => s.push('"'),
                                Some(o) => return Err(err(src, format!("unknown escape \\{o} in a string"))),
                                None => return Err(err(src, "unterminated quoted string")),
                            }
                        }
                        Some(c) => s.push(*c),
                    }
                    i += 1;
                }
                i += 1;
                out.push(Tok::Lit(Value::String(s)));
            }
            '`' => {
                let start = i + 1;
                let end =
                    chars[start..].iter().position(|c| *c == '`').ok_or_else(|| err(src, "unterminated raw string"))?;
                out.push(Tok::Lit(Value::String(chars[start..start + end].iter().collect())));
                i = start + end + 1;
            }
            c if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let t: String = chars[start..i].iter().collect();
                let v = if let Ok(n) = t.parse::<i64>() {
                    Value::from(n)
                } else if let Ok(f) = t.parse::<f64>() {
                    Value::from(f)
                } else {
                    return Err(err(src, format!("bad number {t:?}")));
                };
                out.push(Tok::Lit(v));
            }
            c if is_name_char(c) => {
                let start = i;
                while i < chars.len() && is_name_char(chars[i]) {
                    i += 1;
                }
                let w: String = chars[start..i].iter().collect();
                out.push(match w.as_str() {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "nil" => Tok::Lit(Value::Null),
                    _ => Tok::Ident(w),
                });
            }
            other => return Err(err(src, format!("unexpected {other:?} in {{{{{action}}}}}"))),
        }
    }
    Ok(out)
}

/// One `{{...}}` as the parser sees it.
enum Piece {
    Text(String),
    Action(String),
}

/// Split the source into text and actions, applying `{{-` / `-}}` trimming.
fn pieces(src: &str) -> Result<Vec<Piece>> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let trim_before = after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_before {
            text = text.trim_end();
        }
        if !text.is_empty() {
            out.push(Piece::Text(text.to_string()));
        }
        // The end of the action: the first `}}` outside a quoted string.
        let bytes = after.as_bytes();
        let mut i = 0;
        let mut quote: Option<u8> = None;
        let end = loop {
            if i >= bytes.len() {
                return Err(err(src, "unclosed action (a {{ without }})"));
            }
            let b = bytes[i];
            match quote {
                Some(q) if b == b'\\' && q == b'"' => i += 1,
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None if b == b'"' || b == b'`' => quote = Some(b),
                None if b == b'}' && bytes.get(i + 1) == Some(&b'}') => break i,
                None => {}
            }
            i += 1;
        };
        let mut inner = &after[..end];
        if trim_before {
            inner = &inner[1..];
        }
        trim_next = inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-");
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        out.push(Piece::Action(inner.trim().to_string()));
        rest = &after[end + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        out.push(Piece::Text(text.to_string()));
    }
    Ok(out)
}

/// How a list of nodes ended.
enum Stop {
    Eof,
    End,
    Else,
    ElseIf(Pipeline),
}

struct Parser<'a> {
    src: &'a str,
    pieces: Vec<Piece>,
    at: usize,
}

impl Parser<'_> {
    fn list(&mut self) -> Result<(Vec<Node>, Stop)> {
        let mut nodes = Vec::new();
        while self.at < self.pieces.len() {
            let piece = std::mem::replace(&mut self.pieces[self.at], Piece::Text(String::new()));
            self.at += 1;
            let action = match piece {
                Piece::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Piece::Action(a) => a,
            };
            if action.starts_with("/*") && action.ends_with("*/") {
                continue;
            }
            let toks = lex(self.src, &action)?;
            match toks.first() {
                Some(Tok::Ident(k)) if k == "end" => return Ok((nodes, Stop::End)),
                Some(Tok::Ident(k)) if k == "else" => {
                    if let Some(Tok::Ident(k2)) = toks.get(1) {
                        if k2 == "if" {
                            return Ok((nodes, Stop::ElseIf(self.pipeline(&toks[2..])?)));
                        }
                    }
                    if toks.len() > 1 {
                        return Err(err(self.src, format!("unexpected words after else in {{{{{action}}}}}")));
                    }
                    return Ok((nodes, Stop::Else));
                }
                Some(Tok::Ident(k)) if k == "if" => {
                    let cond = self.pipeline(&toks[1..])?;
                    nodes.push(self.if_rest(cond)?);
                }
                Some(Tok::Ident(k)) if k == "with" || k == "range" => {
                    let p = self.pipeline(&toks[1..])?;
                    let (body, end) = self.list()?;
                    let otherwise = match end {
                        Stop::End => Vec::new(),
                        Stop::Else => match self.list()? {
                            (o, Stop::End) => o,
                            _ => return Err(err(self.src, format!("{{{{{k}}}}} without a matching {{{{end}}}}"))),
                        },
                        _ => return Err(err(self.src, format!("{{{{{k}}}}} without a matching {{{{end}}}}"))),
                    };
                    nodes.push(if k == "with" {
                        Node::With { value: p, then: body, otherwise }
                    } else {
                        Node::Range { over: p, body, otherwise }
                    });
                }
                Some(Tok::Ident(k)) if matches!(k.as_str(), "define" | "template" | "block" | "break" | "continue") => {
                    return Err(err(self.src, format!("{{{{{k}}}}} is not supported")));
                }
                None => return Err(err(self.src, "empty action {{}}")),
                _ => nodes.push(Node::Action(self.pipeline(&toks)?)),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    /// After `{{if cond}}`: the branches up to the matching `{{end}}`.
    fn if_rest(&mut self, cond: Pipeline) -> Result<Node> {
        let (then, end) = self.list()?;
        let otherwise = match end {
            Stop::End => Vec::new(),
            Stop::Else => match self.list()? {
                (o, Stop::End) => o,
                _ => return Err(err(self.src, "{{if}} without a matching {{end}}")),
            },
            Stop::ElseIf(c) => vec![self.if_rest(c)?],
            Stop::Eof => return Err(err(self.src, "{{if}} without a matching {{end}}")),
        };
        Ok(Node::If { cond, then, otherwise })
    }

    fn pipeline(&self, toks: &[Tok]) -> Result<Pipeline> {
        let mut p = Pipeline::default();
        let mut toks = toks;
        // `$a := ` / `$i, $e := `
        if let Some(pos) = toks.iter().position(|t| *t == Tok::Declare) {
            for t in &toks[..pos] {
                match t {
                    Tok::Var(v, f) if f.is_empty() => p.decl.push(v.clone()),
                    Tok::Comma => {}
                    _ => return Err(err(self.src, "only variables go before :=")),
                }
            }
            if p.decl.is_empty() || p.decl.len() > 2 {
                return Err(err(self.src, "one or two variables go before :="));
            }
            toks = &toks[pos + 1..];
        }
        let mut i = 0;
        let mut cmd = Vec::new();
        while i < toks.len() {
            match &toks[i] {
                Tok::Pipe => {
                    if cmd.is_empty() {
                        return Err(err(self.src, "missing command before |"));
                    }
                    p.cmds.push(std::mem::take(&mut cmd));
                }
                Tok::Open => {
                    let mut depth = 1;
                    let mut j = i + 1;
                    while j < toks.len() {
                        match toks[j] {
                            Tok::Open => depth += 1,
                            Tok::Close(_) => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        j += 1;
                    }
                    let Some(Tok::Close(fields)) = toks.get(j) else {
                        return Err(err(self.src, "unclosed ("));
                    };
                    let inner = self.pipeline(&toks[i + 1..j])?;
                    cmd.push(Operand::Sub(Box::new(inner), fields.clone()));
                    i = j;
                }
                Tok::Close(_) => return Err(err(self.src, "unexpected )")),
                Tok::Field(f) => cmd.push(Operand::Field(f.clone())),
                Tok::Var(v, f) => cmd.push(Operand::Var(v.clone(), f.clone())),
                Tok::Lit(v) => cmd.push(Operand::Lit(v.clone())),
                Tok::Ident(name) => {
                    if !FUNCTIONS.contains(&name.as_str()) {
                        return Err(err(self.src, format!("function {name:?} not defined")));
                    }
                    cmd.push(Operand::Func(name.clone()));
                }
                Tok::Declare | Tok::Comma => return Err(err(self.src, "unexpected := or ,")),
            }
            i += 1;
        }
        if cmd.is_empty() {
            return Err(err(self.src, "missing value"));
        }
        p.cmds.push(cmd);
        Ok(p)
    }
}

const FUNCTIONS: &[&str] = &[
    "json", "join", "split", "lower", "upper", "title", "pad", "truncate", "len", "index", "print", "printf",
    "println", "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not",
];

impl Template {
    /// Parse a template; `\t`/`\n` are taken as written (see [`Format::parse`] for the
    /// flag's escapes).
    pub fn parse(src: &str) -> Result<Template> {
        let mut p = Parser { src, pieces: pieces(src)?, at: 0 };
        let (nodes, end) = p.list()?;
        match end {
            Stop::Eof => Ok(Template { source: src.to_string(), nodes }),
            Stop::End => Err(err(src, "unexpected {{end}}")),
            Stop::Else | Stop::ElseIf(_) => Err(err(src, "unexpected {{else}}")),
        }
    }

    /// The text the template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Render against `data`.
    pub fn render(&self, data: &Value) -> Result<String> {
        self.render_with(data, &|_, _| None)
    }

    /// Render against `data`, with `methods` answering `.Name ARGS...` calls on the data
    /// (docker's `{{.Label "key"}}`): `None` when it has no such method.
    pub fn render_with(&self, data: &Value, methods: &dyn Fn(&str, &[Value]) -> Option<Value>) -> Result<String> {
        let mut ex = Exec { src: &self.source, root: data, vars: vec![("".into(), data.clone())], methods };
        let mut out = String::new();
        ex.list(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation.

struct Exec<'a> {
    src: &'a str,
    root: &'a Value,
    vars: Vec<(String, Value)>,
    methods: &'a dyn Fn(&str, &[Value]) -> Option<Value>,
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// A value as Go's `%v` prints it.
pub fn print_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(s),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_value(e, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("map[");
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                print_value(e, out);
            }
            out.push(']');
        }
    }
}

fn to_text(v: &Value) -> String {
    let mut s = String::new();
    print_value(v, &mut s);
    s
}

fn cmp_values(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(std::cmp::Ordering::Equal),
        _ => None,
    }
}

impl Exec<'_> {
    fn fail(&self, reason: impl Into<String>) -> Error {
        err(self.src, reason)
    }

    fn list(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<()> {
        let depth = self.vars.len();
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        print_value(&v, out);
                    }
                }
                Node::If { cond, then, otherwise } => {
                    let v = self.pipeline(cond, dot)?;
                    self.list(if truthy(&v) { then } else { otherwise }, dot, out)?;
                }
                Node::With { value, then, otherwise } => {
                    let v = self.pipeline(value, dot)?;
                    if truthy(&v) {
                        self.list(then, &v, out)?;
                    } else {
                        self.list(otherwise, dot, out)?;
                    }
                }
                Node::Range { over, body, otherwise } => {
                    let v = self.eval_cmds(&over.cmds, dot)?;
                    let items: Vec<(Value, Value)> = match v {
                        Value::Array(a) => a.into_iter().enumerate().map(|(i, e)| (Value::from(i), e)).collect(),
                        Value::Object(m) => m.into_iter().map(|(k, e)| (Value::String(k), e)).collect(),
                        Value::Null => Vec::new(),
                        other => return Err(self.fail(format!("range can't iterate over {}", to_text(&other)))),
                    };
                    if items.is_empty() {
                        self.list(otherwise, dot, out)?;
                    }
                    for (k, e) in items {
                        let mark = self.vars.len();
                        match over.decl.as_slice() {
                            [v] => self.vars.push((v.clone(), e.clone())),
                            [i, v] => {
                                self.vars.push((i.clone(), k));
                                self.vars.push((v.clone(), e.clone()));
                            }
                            _ => {}
                        }
                        self.list(body, &e, out)?;
                        self.vars.truncate(mark);
                    }
                }
            }
        }
        self.vars.truncate(depth);
        Ok(())
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value> {
        let v = self.eval_cmds(&p.cmds, dot)?;
        if let Some(name) = p.decl.first() {
            self.vars.push((name.clone(), v.clone()));
        }
        Ok(v)
    }

    fn eval_cmds(&mut self, cmds: &[Vec<Operand>], dot: &Value) -> Result<Value> {
        let mut prev: Option<Value> = None;
        for cmd in cmds {
            prev = Some(self.command(cmd, dot, prev)?);
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    fn fields(&self, mut v: Value, path: &[String], shown: &str) -> Result<Value> {
        let mut parent = "";
        for key in path {
            v = match v {
                Value::Object(mut m) => match m.remove(key) {
                    Some(x) => x,
                    // Maps of strings (labels, options) answer "" for a missing key, as Go's
                    // map[string]string does; anything else is a typo worth an error.
                    None if parent.ends_with("Labels") || parent == "Options" => Value::String(String::new()),
                    None => return Err(self.fail(format!("can't evaluate field {key} in {shown}"))),
                },
                Value::Null => Value::Null,
                other => {
                    return Err(
                        self.fail(format!("can't evaluate field {key} in {shown}: {} is not a map", to_text(&other)))
                    );
                }
            };
            parent = key;
        }
        Ok(v)
    }

    fn operand(&mut self, o: &Operand, dot: &Value) -> Result<Value> {
        match o {
            Operand::Field(f) => self.fields(dot.clone(), f, &format!(".{}", f.join("."))),
            Operand::Var(name, f) => {
                let v = if name.is_empty() {
                    self.root.clone()
                } else {
                    self.vars
                        .iter()
                        .rev()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| self.fail(format!("undefined variable ${name}")))?
                };
                self.fields(v, f, &format!("${name}"))
            }
            Operand::Sub(p, f) => {
                let v = self.eval_cmds(&p.cmds, dot)?;
                self.fields(v, f, "(...)")
            }
            Operand::Lit(v) => Ok(v.clone()),
            Operand::Func(name) => self.call(name, Vec::new()),
        }
    }

    fn command(&mut self, cmd: &[Operand], dot: &Value, prev: Option<Value>) -> Result<Value> {
        match &cmd[0] {
            Operand::Func(name) => {
                let mut args = Vec::new();
                for o in &cmd[1..] {
                    args.push(self.operand(o, dot)?);
                }
                args.extend(prev);
                self.call(name, args)
            }
            Operand::Field(f) if cmd.len() > 1 || prev.is_some() => {
                let mut args = Vec::new();
                for o in &cmd[1..] {
                    args.push(self.operand(o, dot)?);
                }
                args.extend(prev);
                let name = f.join(".");
                (f.len() == 1)
                    .then(|| (self.methods)(&name, &args))
                    .flatten()
                    .ok_or_else(|| self.fail(format!(".{name} is not a method: it takes no arguments")))
            }
            first => {
                if cmd.len() > 1 || prev.is_some() {
                    return Err(self.fail("can't give an argument to a value that is not a function"));
                }
                self.operand(first, dot)
            }
        }
    }

    fn call(&self, name: &str, args: Vec<Value>) -> Result<Value> {
        let want = |n: usize| -> Result<()> {
            if args.len() != n {
                Err(self.fail(format!("{name} takes {n} argument(s), got {}", args.len())))
            } else {
                Ok(())
            }
        };
        let text = |i: usize| to_text(&args[i]);
        let int = |i: usize| -> Result<i64> {
            args[i]
                .as_i64()
                .or_else(|| args[i].as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| self.fail(format!("{name}: {} is not a number", text(i))))
        };
        Ok(match name {
            "json" => {
                want(1)?;
                Value::String(serde_json::to_string(&args[0]).unwrap_or_default())
            }
            "join" => {
                want(2)?;
                let items: Vec<String> = match &args[0] {
                    Value::Array(a) => a.iter().map(to_text).collect(),
                    Value::Null => Vec::new(),
                    other => vec![to_text(other)],
                };
                Value::String(items.join(&text(1)))
            }
            "split" => {
                want(2)?;
                Value::Array(text(0).split(&text(1)).map(|s| Value::String(s.to_string())).collect())
            }
            "lower" => {
                want(1)?;
                Value::String(text(0).to_lowercase())
            }
            "upper" => {
                want(1)?;
                Value::String(text(0).to_uppercase())
            }
            "title" => {
                want(1)?;
                let mut s = String::new();
                let mut start = true;
                for c in text(0).chars() {
                    if start {
                        s.extend(c.to_uppercase());
                    } else {
                        s.push(c);
                    }
                    start = !c.is_alphanumeric();
                }
                Value::String(s)
            }
            "pad" => {
                want(3)?;
                let (l, r) = (int(1)?.max(0) as usize, int(2)?.max(0) as usize);
                Value::String(format!("{}{}{}", " ".repeat(l), text(0), " ".repeat(r)))
            }
            "truncate" => {
                want(2)?;
                let n = int(1)?.max(0) as usize;
                Value::String(text(0).chars().take(n).collect())
            }
            "len" => {
                want(1)?;
                Value::from(match &args[0] {
                    Value::String(s) => s.chars().count(),
                    Value::Array(a) => a.len(),
                    Value::Object(m) => m.len(),
                    Value::Null => 0,
                    other => return Err(self.fail(format!("len of {}", to_text(other)))),
                })
            }
            "index" => {
                if args.is_empty() {
                    return Err(self.fail("index takes a value and keys"));
                }
                let mut v = args[0].clone();
                for k in &args[1..] {
                    v = match (v, k) {
                        (Value::Object(mut m), k) => m.remove(&to_text(k)).unwrap_or(Value::String(String::new())),
                        (Value::Array(a), Value::Number(n)) => {
                            let i = n.as_u64().unwrap_or(u64::MAX) as usize;
                            a.get(i).cloned().ok_or_else(|| self.fail(format!("index {i} out of range")))?
                        }
                        (Value::Null, _) => Value::Null,
                        (other, _) => return Err(self.fail(format!("can't index {}", to_text(&other)))),
                    };
                }
                v
            }
            "print" | "println" => {
                let mut s = String::new();
                for (i, a) in args.iter().enumerate() {
                    let both_non_strings = i > 0 && !a.is_string() && !args[i - 1].is_string();
                    if i > 0 && (name == "println" || both_non_strings) {
                        s.push(' ');
                    }
                    print_value(a, &mut s);
                }
                if name == "println" {
                    s.push('\n');
                }
                Value::String(s)
            }
            "printf" => {
                if args.is_empty() {
                    return Err(self.fail("printf takes a format"));
                }
                Value::String(self.printf(&text(0), &args[1..])?)
            }
            "eq" | "ne" => {
                if args.len() < 2 {
                    return Err(self.fail(format!("{name} takes two or more arguments")));
                }
                let eq = args[1..].iter().any(|b| cmp_values(&args[0], b) == Some(std::cmp::Ordering::Equal));
                Value::Bool(if name == "eq" { eq } else { !eq })
            }
            "lt" | "le" | "gt" | "ge" => {
                want(2)?;
                let o = cmp_values(&args[0], &args[1])
                    .ok_or_else(|| self.fail(format!("{name}: can't compare {} with {}", text(0), text(1))))?;
                use std::cmp::Ordering::*;
                Value::Bool(match name {
                    "lt" => o == Less,
                    "le" => o != Greater,
                    "gt" => o == Greater,
                    _ => o != Less,
                })
            }
            "not" => {
                want(1)?;
                Value::Bool(!truthy(&args[0]))
            }
            "and" | "or" => {
                if args.is_empty() {
                    return Err(self.fail(format!("{name} takes one or more arguments")));
                }
                let pick =
                    if name == "and" { args.iter().find(|a| !truthy(a)) } else { args.iter().find(|a| truthy(a)) };
                pick.cloned().unwrap_or_else(|| args[args.len() - 1].clone())
            }
            other => return Err(self.fail(format!("function {other:?} not defined"))),
        })
    }

    fn printf(&self, f: &str, args: &[Value]) -> Result<String> {
        let mut out = String::new();
        let mut it = f.chars();
        let mut n = 0;
        while let Some(c) = it.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let verb = it.next().ok_or_else(|| self.fail("printf: the format ends in %"))?;
            if verb == '%' {
                out.push('%');
                continue;
            }
            let Some(a) = args.get(n) else {
                out.push_str(&format!("%!{verb}(MISSING)"));
                continue;
            };
            n += 1;
            match verb {
                'v' | 's' | 'd' => print_value(a, &mut out),
                'q' => out.push_str(&serde_json::to_string(&to_text(a)).unwrap_or_default()),
                other => return Err(self.fail(format!("printf: verb %{other} is not supported (%s %v %d %q %%)"))),
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// Output modes.

/// Answers `.Name ARGS...` on row `i`: `methods(i, name, args)`, None when there is no such
/// method.
pub type RowMethods<'a> = dyn Fn(usize, &str, &[Value]) -> Option<Value> + 'a;

/// What a `--format` flag asks for.
#[derive(Debug, Clone)]
pub enum Format {
    /// `table TEMPLATE`: a header row made by rendering the template against the header
    /// names, then the rows, aligned in columns at the tabs.
    Table(Template),
    /// `json`: each value as one line of JSON.
    Json,
    /// A template: each value rendered, one line each.
    Lines(Template),
}

impl Format {
    /// Parse a flag's text; `default_table` is what a bare `table` means.
    pub fn parse(flag: &str, default_table: &str) -> Result<Format> {
        let s = flag.replace("\\t", "\t").replace("\\n", "\n");
        let t = s.trim();
        if t == "json" {
            return Ok(Format::Json);
        }
        if t == "table" {
            return Ok(Format::Table(Template::parse(default_table)?));
        }
        if let Some(rest) = t.strip_prefix("table ").or_else(|| t.strip_prefix("table\t")) {
            return Ok(Format::Table(Template::parse(rest.trim_matches(' '))?));
        }
        Ok(Format::Lines(Template::parse(&s)?))
    }

    /// Does the template use `.NAME` anywhere (so a costly field, like a container's size,
    /// is computed only when shown)?
    pub fn mentions(&self, name: &str) -> bool {
        match self {
            Format::Json => true,
            Format::Table(t) | Format::Lines(t) => {
                let src = t.source();
                let pat = format!(".{name}");
                src.match_indices(&pat).any(|(i, _)| !src[i + pat.len()..].starts_with(is_name_char))
                    || src.contains("json .}}")
                    || src.contains("json . }}")
            }
        }
    }

    /// Render the template once against `sample` (a row with every field, such as the
    /// header names), so a misspelt field is an error even when there are no rows.
    pub fn check(&self, sample: &Value) -> Result<()> {
        match self {
            Format::Json => Ok(()),
            Format::Table(t) | Format::Lines(t) => {
                t.render_with(sample, &|_, _| Some(Value::String(String::new()))).map(|_| ())
            }
        }
    }

    /// Render `rows`: `header` gives the header name of each field (for tables), `methods`
    /// answers method calls (`.Label "k"`) on row `i`.
    pub fn render(&self, rows: &[Value], header: &Value, methods: &RowMethods) -> Result<String> {
        let mut out = String::new();
        match self {
            Format::Json => {
                for r in rows {
                    out.push_str(&serde_json::to_string(r).unwrap_or_default());
                    out.push('\n');
                }
            }
            Format::Lines(t) => {
                for (i, r) in rows.iter().enumerate() {
                    out.push_str(&t.render_with(r, &|m, a| methods(i, m, a))?);
                    out.push('\n');
                }
            }
            Format::Table(t) => {
                let mut lines = vec![t.render_with(header, &|m, _| Some(Value::String(m.to_uppercase())))?];
                for (i, r) in rows.iter().enumerate() {
                    lines.push(t.render_with(r, &|m, a| methods(i, m, a))?);
                }
                out = tabwrite(&lines.join("\n"));
                out.push('\n');
            }
        }
        Ok(out)
    }
}

/// Align tab-separated cells as docker's tabwriter does (minimum width 10, padding 3,
/// spaces): each column as wide as its widest cell plus 3; the last cell of a line unpadded.
pub fn tabwrite(text: &str) -> String {
    tabwrite_min(text, 10)
}

/// [`tabwrite`] with another minimum column width (docker's `top` uses 20).
pub fn tabwrite_min(text: &str, min_width: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let cols = lines.iter().map(|l| l.len().saturating_sub(1)).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for l in &lines {
        for (c, cell) in l.iter().enumerate().take(l.len().saturating_sub(1)) {
            widths[c] = widths[c].max((cell.chars().count() + 3).max(min_width));
        }
    }
    let mut out = String::new();
    for (n, l) in lines.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        for (c, cell) in l.iter().enumerate() {
            out.push_str(cell);
            if c + 1 < l.len() {
                out.push_str(&" ".repeat(widths[c] - cell.chars().count()));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// What ps shows.

/// Docker's human duration (go-units `HumanDuration`): "Less than a second", "1 second",
/// "5 seconds", "About a minute", "3 minutes", "About an hour", "5 hours", "3 days",
/// "2 weeks", "4 months", "2 years".
pub fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    let minutes = secs / 60;
    let hours = (d.num_milliseconds() as f64 / 3_600_000.0 + 0.5) as i64;
    if secs < 1 {
        "Less than a second".into()
    } else if secs == 1 {
        "1 second".into()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", secs / 3600 / 24 / 365)
    }
}

/// A container's state as [`status_text`] needs it.
#[derive(Debug, Clone, Default)]
pub struct StatusInfo<'a> {
    /// created, running, paused, restarting, exited, dead (or removing).
    pub status: &'a str,
    /// The last exit code.
    pub exit_code: i64,
    /// When it last started.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it last ended.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Docker's STATUS column: "Up 5 seconds", "Up 2 minutes (Paused)", "Restarting (1) 3
/// seconds ago", "Exited (0) 3 minutes ago", "Created", "Dead", "Removal In Progress".
pub fn status_text(s: &StatusInfo, now: chrono::DateTime<chrono::Utc>) -> String {
    let since = |t: Option<chrono::DateTime<chrono::Utc>>| human_duration(now - t.unwrap_or(now));
    match s.status {
        "running" => format!("Up {}", since(s.started_at)),
        "paused" => format!("Up {} (Paused)", since(s.started_at)),
        "restarting" => format!("Restarting ({}) {} ago", s.exit_code, since(s.finished_at)),
        "removing" => "Removal In Progress".into(),
        "dead" => "Dead".into(),
        _ if s.started_at.is_none() => "Created".into(),
        "exited" if s.finished_at.is_some() => format!("Exited ({}) {} ago", s.exit_code, since(s.finished_at)),
        "exited" => format!("Exited ({})", s.exit_code),
        _ => "Created".into(),
    }
}

/// Docker's COMMAND: the path and its arguments, those with a space in single quotes.
pub fn command_text(argv: &[String]) -> String {
    argv.iter()
        .enumerate()
        .map(|(i, a)| if i > 0 && a.contains(' ') { format!("'{a}'") } else { a.clone() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Cut `s` to `width` characters, the last one an ellipsis, when it is longer.
pub fn ellipsis(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// Go's `time.Time.String()` in UTC: `2026-12-02 13:45:25 +0000 UTC` (docker's CreatedAt).
pub fn go_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()
}

/// Everything a ps row shows of one container, before it is turned into text.
#[derive(Debug, Clone, Default)]
pub struct PsRow {
    /// 64 hex.
    pub id: String,
    /// The name, without docker's leading slash.
    pub name: String,
    /// The image as asked at create.
    pub image: String,
    /// The image's config digest (`sha256:...`).
    pub image_id: String,
    /// Path and args.
    pub command: Vec<String>,
    /// When it was created.
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    /// created, running, paused, restarting, exited, dead.
    pub status: String,
    /// The last exit code.
    pub exit_code: i64,
    /// When it last started.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it last ended.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Named volumes and the destinations of other mounts.
    pub mounts: Vec<String>,
    /// How many of the mounts are named (local) volumes.
    pub local_volumes: usize,
    /// The network mode.
    pub networks: String,
    /// Published ports as docker prints them (`0.0.0.0:8080->80/tcp`).
    pub ports: String,
    /// (writable layer bytes, image bytes), when asked for.
    pub size: Option<(u64, u64)>,
}

/// Sizes as docker prints them: decimal units, three significant digits (`4.23MB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS[i])
}

/// Docker's short image name: `busybox:latest` stays, `docker.io/library/busybox` becomes
/// `busybox`, an image given by ID prints as the short ID.
fn short_image(image: &str, image_id: &str) -> String {
    let short_id = |s: &str| s.strip_prefix("sha256:").unwrap_or(s).chars().take(12).collect::<String>();
    let hexy = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
    let bare = image.strip_prefix("sha256:").unwrap_or(image);
    if hexy(bare) && short_id(image_id).starts_with(&bare[..bare.len().min(12)]) {
        return short_id(image_id);
    }
    let name = image.split('@').next().unwrap_or(image);
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    name.strip_prefix("library/").unwrap_or(name).to_string()
}

impl PsRow {
    /// The fields a ps template sees (all strings, as docker's), truncated unless
    /// `no_trunc`.
    pub fn to_value(&self, no_trunc: bool, now: chrono::DateTime<chrono::Utc>) -> Value {
        let info = StatusInfo {
            status: &self.status,
            exit_code: self.exit_code,
            started_at: self.started_at,
            finished_at: self.finished_at,
        };
        let command = command_text(&self.command);
        let command = if no_trunc { command } else { ellipsis(&command, 20) };
        let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let size = match self.size {
            Some((rw, virt)) => format!("{} (virtual {})", human_size(rw), human_size(virt)),
            None => String::new(),
        };
        let mut m = Map::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), Value::String(v));
        };
        put("Command", serde_json::to_string(&command).unwrap_or_default());
        put("CreatedAt", self.created.map(go_time).unwrap_or_default());
        put("ID", if no_trunc { self.id.clone() } else { self.id.chars().take(12).collect() });
        put("Image", if no_trunc { self.image.clone() } else { short_image(&self.image, &self.image_id) });
        put("Labels", labels.join(","));
        put("LocalVolumes", self.local_volumes.to_string());
        put(
            "Mounts",
            self.mounts
                .iter()
                .map(|m| if no_trunc { m.clone() } else { ellipsis(m, 15) })
                .collect::<Vec<_>>()
                .join(","),
        );
        put("Names", self.name.clone());
        put("Networks", self.networks.clone());
        put("Ports", self.ports.clone());
        put("RunningFor", self.created.map(|c| format!("{} ago", human_duration(now - c))).unwrap_or_default());
        put("Size", size);
        put("State", self.status.clone());
        put("Status", status_text(&info, now));
        Value::Object(m)
    }

    /// `.Label "key"`: the label's value, "" when it has none.
    pub fn label(&self, key: &str) -> String {
        self.labels.get(key).cloned().unwrap_or_default()
    }
}

/// The header names of the ps fields.
pub fn ps_header() -> Value {
    serde_json::json!({
        "Command": "COMMAND", "CreatedAt": "CREATED AT", "ID": "CONTAINER ID", "Image": "IMAGE",
        "Labels": "LABELS", "LocalVolumes": "LOCAL VOLUMES", "Mounts": "MOUNTS", "Names": "NAMES",
        "Networks": "NETWORKS", "Ports": "PORTS", "RunningFor": "CREATED", "Size": "SIZE",
        "State": "STATE", "Status": "STATUS",
    })
}

/// `ps`'s table when no `--format` is given (`size`: with `-s`).
pub fn ps_default_table(size: bool) -> String {
    let mut t = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".to_string();
    if size {
        t.push_str("\t{{.Size}}");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    #[test]
    fn fields_text_and_values_print_as_go_prints_them() {
        let v = json!({"ID": "abc", "State": {"Pid": 42, "Running": true}, "Env": ["A=1", "B=2"],
                       "Labels": {"a": "x", "b": "y"}, "Null": null});
        assert_eq!(r("id={{.ID}} pid={{.State.Pid}} {{.State.Running}}", &v), "id=abc pid=42 true");
        assert_eq!(r("{{.Env}}", &v), "[A=1 B=2]");
        assert_eq!(r("{{.Labels}}", &v), "map[a:x b:y]");
        assert_eq!(r("{{.Null}}", &v), "<nil>");
        assert_eq!(r("{{.Labels.missing}}", &v), "");
        assert_eq!(r("plain", &v), "plain");
        assert_eq!(r("{{json .State}}", &v), r#"{"Pid":42,"Running":true}"#);
        assert_eq!(r("{{ json .Env }}", &v), r#"["A=1","B=2"]"#);
        assert_eq!(r("{{.}}", &json!("dot")), "dot");
        let e = Template::parse("{{.Nope}}").unwrap().render(&v).unwrap_err().to_string();
        assert!(e.contains("can't evaluate field Nope"), "{e}");
    }

    #[test]
    fn functions_and_pipelines() {
        let v = json!({"Name": "/web", "Env": ["A=1", "B=2"], "N": 3});
        assert_eq!(r(r#"{{join .Env ","}}"#, &v), "A=1,B=2");
        assert_eq!(r(r#"{{.Name | upper}}"#, &v), "/WEB");
        assert_eq!(r(r#"{{lower "AbC"}} {{title "hello world"}}"#, &v), "abc Hello World");
        assert_eq!(r(r#"{{index .Env 1}}"#, &v), "B=2");
        assert_eq!(r(r#"{{len .Env}} {{truncate .Name 2}}"#, &v), "2 /w");
        assert_eq!(r(r#"{{split "a:b" ":"}}"#, &v), "[a b]");
        assert_eq!(r(r#"[{{pad "x" 1 2}}]"#, &v), "[ x  ]");
        assert_eq!(r(r#"{{printf "%s-%d%%" .Name .N}}"#, &v), "/web-3%");
        assert_eq!(r(r#"{{println "a" 1}}"#, &v), "a 1\n");
        assert_eq!(r(r#"{{(index .Env 0) | lower}}"#, &v), "a=1");
        assert_eq!(r(r#"{{if eq .N 3}}three{{else}}other{{end}}"#, &v), "three");
        assert_eq!(r(r#"{{if gt .N 5}}big{{else if gt .N 2}}mid{{else}}small{{end}}"#, &v), "mid");
        assert_eq!(r(r#"{{if and .Name (not .Missing)}}y{{end}}"#, &json!({"Name": "x", "Missing": ""})), "y");
    }

    #[test]
    fn range_with_variables_and_trimming() {
        let v = json!({"Mounts": [{"Source": "/a", "Destination": "/x"}, {"Source": "/b", "Destination": "/y"}],
                       "Labels": {"k1": "v1", "k2": "v2"}});
        assert_eq!(r("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", &v), "/a:/x /b:/y ");
        assert_eq!(r("{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}", &v), "k1=v1;k2=v2;");
        assert_eq!(r("{{range $i, $m := .Mounts}}{{$i}}{{$m.Source}}{{end}}", &v), "0/a1/b");
        assert_eq!(r("{{range .Nothing}}x{{else}}none{{end}}", &json!({"Nothing": []})), "none");
        assert_eq!(r("{{with .Labels}}{{.k1}}{{end}}", &v), "v1");
        assert_eq!(r("{{$x := .Labels.k2}}{{$x}} {{$.Labels.k1}}", &v), "v2 v1");
        assert_eq!(r("a  {{- .Labels.k1 -}}  b", &v), "av1b");
        assert_eq!(r("{{/* a comment */}}ok", &v), "ok");
    }

    #[test]
    fn bad_templates_are_clear_errors() {
        for (t, want) in [
            ("{{.ID", "unclosed action"),
            ("{{if .A}}x", "without a matching {{end}}"),
            ("x{{end}}", "unexpected {{end}}"),
            ("{{frob .A}}", "function \"frob\" not defined"),
            ("{{\"abc}}", "unclosed action"),
            ("{{(.A}}", "unclosed ("),
            ("{{}}", "empty action"),
            ("{{template \"x\"}}", "not supported"),
        ] {
            let e = Template::parse(t).unwrap_err().to_string();
            assert!(e.contains(want), "{t}: {e}");
            assert!(e.starts_with("template \""), "the error names the template: {e}");
        }
        let e = Template::parse("{{.ID 1}}").unwrap().render(&json!({"ID": "x"})).unwrap_err().to_string();
        assert!(e.contains("not a method"), "{e}");
    }

    #[test]
    fn tables_align_like_docker_tabwriter() {
        let f = Format::parse("table {{.ID}}\\t{{.Names}}", "").unwrap();
        let rows = vec![json!({"ID": "abc", "Names": "web"}), json!({"ID": "0123456789abcdef", "Names": "db"})];
        let out = f.render(&rows, &ps_header(), &|_, _, _| None).unwrap();
        assert_eq!(out, "CONTAINER ID       NAMES\nabc                web\n0123456789abcdef   db\n");
        // Columns are at least 10 wide.
        assert_eq!(tabwrite("a\tb\nc\td"), "a         b\nc         d");
        let f = Format::parse("{{.ID}}:{{.Names}}", "").unwrap();
        assert_eq!(f.render(&rows, &ps_header(), &|_, _, _| None).unwrap(), "abc:web\n0123456789abcdef:db\n");
        let f = Format::parse("json", "").unwrap();
        assert_eq!(
            f.render(&rows[..1], &ps_header(), &|_, _, _| None).unwrap(),
            "{\"ID\":\"abc\",\"Names\":\"web\"}\n"
        );
        let f = Format::parse("table", "{{.ID}}").unwrap();
        assert_eq!(f.render(&rows[..1], &ps_header(), &|_, _, _| None).unwrap(), "CONTAINER ID\nabc\n");
        let f = Format::parse(r#"{{.Label "a"}}"#, "").unwrap();
        assert_eq!(f.render(&rows[..1], &ps_header(), &|_, m, a| (m == "Label").then(|| a[0].clone())).unwrap(), "a\n");
        assert!(Format::parse("{{.Size}}", "").unwrap().mentions("Size"));
        assert!(!Format::parse("{{.SizeX}}", "").unwrap().mentions("Size"));
        assert!(Format::parse("{{json .}}", "").unwrap().mentions("Size"));
    }

    #[test]
    fn docker_status_texts_and_durations() {
        use chrono::{Duration, TimeZone, Utc};
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
        let ago = |s: i64| Some(now - Duration::seconds(s));
        assert_eq!(human_duration(Duration::milliseconds(300)), "Less than a second");
        assert_eq!(human_duration(Duration::seconds(1)), "1 second");
        assert_eq!(human_duration(Duration::seconds(59)), "59 seconds");
        assert_eq!(human_duration(Duration::seconds(90)), "About a minute");
        assert_eq!(human_duration(Duration::minutes(3)), "3 minutes");
        assert_eq!(human_duration(Duration::minutes(70)), "About an hour");
        assert_eq!(human_duration(Duration::hours(5)), "5 hours");
        assert_eq!(human_duration(Duration::days(3)), "3 days");
        assert_eq!(human_duration(Duration::days(15)), "2 weeks");
        assert_eq!(human_duration(Duration::days(90)), "3 months");
        assert_eq!(human_duration(Duration::days(800)), "2 years");
        let st = |status, code, started, finished| StatusInfo {
            status,
            exit_code: code,
            started_at: started,
            finished_at: finished,
        };
        assert_eq!(status_text(&st("running", 0, ago(5), None), now), "Up 5 seconds");
        assert_eq!(status_text(&st("paused", 0, ago(120), None), now), "Up 2 minutes (Paused)");
        assert_eq!(status_text(&st("exited", 0, ago(400), ago(180)), now), "Exited (0) 3 minutes ago");
        assert_eq!(status_text(&st("exited", 137, ago(400), ago(2)), now), "Exited (137) 2 seconds ago");
        assert_eq!(status_text(&st("created", 0, None, None), now), "Created");
        assert_eq!(status_text(&st("restarting", 1, ago(9), ago(3)), now), "Restarting (1) 3 seconds ago");
        assert_eq!(status_text(&st("dead", 0, ago(9), ago(3)), now), "Dead");
    }

    #[test]
    fn ps_rows_as_docker_shows_them() {
        use chrono::{Duration, TimeZone, Utc};
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
        let row = PsRow {
            id: "0123456789abcdef".repeat(4),
            name: "web".into(),
            image: "docker.io/library/busybox:latest".into(),
            image_id: format!("sha256:{}", "ab".repeat(32)),
            command: vec!["sh".into(), "-c".into(), "echo hello; sleep 100".into()],
            created: Some(now - Duration::seconds(30)),
            status: "running".into(),
            started_at: Some(now - Duration::seconds(29)),
            labels: [("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())].into(),
            networks: "host".into(),
            size: Some((0, 4_230_000)),
            ..Default::default()
        };
        let v = row.to_value(false, now);
        assert_eq!(v["ID"], "0123456789ab");
        assert_eq!(v["Image"], "busybox:latest");
        assert_eq!(v["Command"], "\"sh -c 'echo hello; …\"");
        assert_eq!(v["RunningFor"], "30 seconds ago");
        assert_eq!(v["Status"], "Up 29 seconds");
        assert_eq!(v["State"], "running");
        assert_eq!(v["Labels"], "a=1,b=2");
        assert_eq!(v["CreatedAt"], "2026-12-02 11:59:30 +0000 UTC");
        assert_eq!(v["Size"], "0B (virtual 4.23MB)");
        let full = row.to_value(true, now);
        assert_eq!(full["ID"].as_str().unwrap().len(), 64);
        assert_eq!(full["Command"], "\"sh -c 'echo hello; sleep 100'\"");
        assert_eq!(row.label("b"), "2");
        assert_eq!(row.label("zz"), "");
        assert_eq!(short_image("abababababab", &format!("sha256:{}", "ab".repeat(32))), "abababababab");
        assert_eq!(short_image("registry.local:5000/app:1", ""), "registry.local:5000/app:1");
    }
}
