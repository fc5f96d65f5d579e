//! Stage 2: raw nodes to typed instructions, with flag and argument validation
//! (BuildKit's `instructions` package). Nothing is expanded here: expansion needs the
//! stage's variables, which only lowering knows.

use crate::error::{FrontendError, Span, instr_err};
use crate::parser::{Args, Heredoc, Node};
use crate::suggest::edit_distance;
use serde::Serialize;
use std::collections::BTreeMap;

/// A command line: exec form (JSON) or shell form (one string, not yet wrapped in SHELL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CmdLine {
    /// `["a", "b"]`.
    Exec(Vec<String>),
    /// `a b`: run with the stage's SHELL.
    Shell(String),
}

/// Typed instruction.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Instruction {
    /// FROM [--platform=p] image [AS name].
    From {
        /// Image, stage name or `scratch`, unexpanded.
        base: String,
        /// Lowercased stage name.
        name: Option<String>,
        /// Stage name as written, for the casing lint.
        name_as_written: Option<String>,
        /// `AS` as written, for the casing lint.
        as_keyword: Option<String>,
        /// `--platform` value, unexpanded.
        platform: Option<String>,
    },
    /// RUN.
    Run {
        /// The command.
        cmd: CmdLine,
        /// Raw `--mount` values.
        mounts: Vec<(String, Span)>,
        /// `--network`.
        network: Option<String>,
        /// `--security`.
        security: Option<String>,
        /// Raw `--device` values (repeatable).
        devices: Vec<(String, Span)>,
        /// Heredoc bodies.
        heredocs: Vec<Heredoc>,
    },
    /// CMD.
    Cmd(CmdLine),
    /// ENTRYPOINT.
    Entrypoint(CmdLine),
    /// SHELL (always exec form).
    Shell(Vec<String>),
    /// ENV k=v ... (raw, unexpanded).
    Env {
        /// Pairs.
        pairs: Vec<(String, String)>,
        /// Legacy `ENV k v` form.
        legacy: bool,
    },
    /// LABEL k=v ...
    Label {
        /// Pairs.
        pairs: Vec<(String, String)>,
        /// Legacy `LABEL k v` form.
        legacy: bool,
    },
    /// ARG name[=default] ...
    Arg(Vec<(String, Option<String>)>),
    /// MAINTAINER.
    Maintainer(String),
    /// EXPOSE.
    Expose(Vec<String>),
    /// VOLUME.
    Volume(Vec<String>),
    /// USER.
    User(String),
    /// WORKDIR.
    Workdir(String),
    /// STOPSIGNAL.
    StopSignal(String),
    /// ONBUILD: the trigger text, stored in the image config.
    Onbuild(String),
    /// HEALTHCHECK.
    Healthcheck(Option<Health>),
    /// COPY or ADD.
    Copy(CopyArgs),
}

/// HEALTHCHECK CMD with its options; `None` in [`Instruction::Healthcheck`] is NONE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    /// Nanoseconds, 0 = default.
    pub interval: i64,
    /// Nanoseconds, 0 = default.
    pub timeout: i64,
    /// Nanoseconds, 0 = default.
    pub start_period: i64,
    /// Nanoseconds, 0 = default.
    pub start_interval: i64,
    /// 0 = default.
    pub retries: i64,
}

/// COPY/ADD arguments and flags, unexpanded.
#[derive(Debug, Clone, Serialize)]
pub struct CopyArgs {
    /// ADD rather than COPY.
    pub add: bool,
    /// Source paths (heredoc markers removed).
    pub sources: Vec<String>,
    /// Heredoc sources, in order: (marker name, body).
    pub inline: Vec<Heredoc>,
    /// Destination.
    pub dest: String,
    /// `--from`.
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude` (repeatable).
    pub exclude: Vec<String>,
    /// `--parents` (COPY only).
    pub parents: bool,
    /// `--checksum` (ADD only).
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD only).
    pub keep_git_dir: bool,
    /// `--unpack` (ADD only): None = the default (unpack local archives, not URLs).
    pub unpack: Option<bool>,
    /// Span of the `--from` flag, for reference errors.
    #[serde(skip)]
    pub from_span: Option<Span>,
}

#[derive(Clone, Copy, PartialEq)]
enum FlagKind {
    Bool,
    Str,
    Strs,
}

/// Parsed flag values (BuildKit's `BFlags`).
#[derive(Default)]
struct FlagValues {
    strs: BTreeMap<&'static str, Vec<(String, Span)>>,
    bools: BTreeMap<&'static str, bool>,
}

impl FlagValues {
    fn str(&self, n: &str) -> Option<String> {
        self.strs.get(n).and_then(|v| v.last()).map(|(s, _)| s.clone())
    }
    fn span(&self, n: &str) -> Option<Span> {
        self.strs.get(n).and_then(|v| v.last()).map(|(_, s)| *s)
    }
    fn all(&self, n: &str) -> Vec<(String, Span)> {
        self.strs.get(n).cloned().unwrap_or_default()
    }
    fn bool(&self, n: &str) -> bool {
        self.bools.get(n).copied().unwrap_or(false)
    }
}

fn parse_flags(node: &Node, spec: &[(&'static str, FlagKind)], file: &str) -> Result<FlagValues, FrontendError> {
    let mut out = FlagValues::default();
    for f in &node.flags {
        let err = |m: String| instr_err(file, f.span, m);
        let Some(arg) = f.text.strip_prefix("--") else {
            return Err(err(format!("Invalid flag {:?}, must start with --", f.text)));
        };
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg, None),
        };
        let Some(&(key, kind)) = spec.iter().find(|(n, _)| *n == name) else {
            return Err(err(format!("unknown flag: {name}")));
        };
        let seen = out.strs.contains_key(key) || out.bools.contains_key(key);
        if seen && kind != FlagKind::Strs {
            return Err(err(format!("duplicate flag specified: {name}")));
        }
        match kind {
            FlagKind::Bool => {
                let v = match value.map(|v| v.to_ascii_lowercase()) {
                    None => true,
                    Some(v) if v == "true" => true,
                    Some(v) if v == "false" => false,
                    Some(v) => {
                        return Err(err(format!("expecting boolean value for flag {name}, not: {v}")));
                    }
                };
                out.bools.insert(key, v);
            }
            FlagKind::Str | FlagKind::Strs => {
                let Some(v) = value else {
                    return Err(err(format!("missing a value on flag: {name}")));
                };
                out.strs.entry(key).or_default().push((v.to_string(), f.span));
            }
        }
    }
    Ok(out)
}

fn cmdline(args: &Args) -> Option<CmdLine> {
    match args {
        Args::Json(v) => Some(CmdLine::Exec(v.clone())),
        Args::Shell(s) => Some(CmdLine::Shell(s.clone())),
        _ => None,
    }
}

fn list(args: &Args) -> Vec<String> {
    match args {
        Args::Json(v) | Args::Words(v) => v.clone(),
        Args::Shell(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Type one node. `file` is used in error locations.
pub fn parse_instruction(node: &Node, file: &str) -> Result<Instruction, FrontendError> {
    use FlagKind::*;
    let at = node.span;
    let err = |m: &str| instr_err(file, at, m.to_string());
    let kw_upper = node.keyword.to_ascii_uppercase();
    let no_flags = |node: &Node| parse_flags(node, &[], file).map(|_| ());
    let one_arg = |node: &Node| -> Result<String, FrontendError> {
        no_flags(node)?;
        match &node.args {
            Args::Shell(s) if !s.trim().is_empty() => Ok(s.clone()),
            _ => Err(err(&format!("{kw_upper} requires exactly one argument"))),
        }
    };
    let at_least_one = |node: &Node| -> Result<Vec<String>, FrontendError> {
        let v = list(&node.args);
        if v.is_empty() {
            return Err(err(&format!("{kw_upper} requires at least one argument")));
        }
        Ok(v)
    };
    Ok(match node.keyword.as_str() {
        "from" => {
            let f = parse_flags(node, &[("platform", Str)], file)?;
            let args = list(&node.args);
            let (name, name_as_written, as_keyword) = match args.len() {
                1 => (None, None, None),
                3 if args[1].eq_ignore_ascii_case("as") => {
                    let name = args[2].to_ascii_lowercase();
                    if !valid_stage_name(&name) {
                        return Err(err(&format!(
                            "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                            args[2]
                        )));
                    }
                    (Some(name), Some(args[2].clone()), Some(args[1].clone()))
                }
                _ => return Err(err("FROM requires either one or three arguments")),
            };
            Instruction::From { base: args[0].clone(), name, name_as_written, as_keyword, platform: f.str("platform") }
        }
        "run" => {
            let f = parse_flags(node, &[("mount", Strs), ("network", Str), ("security", Str), ("device", Strs)], file)?;
            let Some(cmd) = cmdline(&node.args) else {
                return Err(err("RUN requires at least one argument"));
            };
            Instruction::Run {
                cmd,
                mounts: f.all("mount"),
                network: f.str("network"),
                security: f.str("security"),
                devices: f.all("device"),
                heredocs: node.heredocs.clone(),
            }
        }
        "cmd" => {
            no_flags(node)?;
            Instruction::Cmd(cmdline(&node.args).unwrap_or(CmdLine::Exec(Vec::new())))
        }
        "entrypoint" => {
            no_flags(node)?;
            Instruction::Entrypoint(cmdline(&node.args).unwrap_or(CmdLine::Exec(Vec::new())))
        }
        "shell" => {
            no_flags(node)?;
            match &node.args {
                Args::Json(v) if !v.is_empty() => Instruction::Shell(v.clone()),
                Args::Json(_) | Args::Empty => return Err(err("SHELL requires at least one argument")),
                _ => return Err(err("SHELL requires the arguments to be in JSON form")),
            }
        }
        "env" | "label" => {
            no_flags(node)?;
            let Args::KeyValues { pairs, legacy } = &node.args else {
                return Err(err(&format!("{kw_upper} requires at least one argument")));
            };
            if pairs.iter().any(|(k, _)| k.is_empty()) {
                return Err(err(&format!("{kw_upper} names can not be blank")));
            }
            if node.keyword == "env" {
                Instruction::Env { pairs: pairs.clone(), legacy: *legacy }
            } else {
                Instruction::Label { pairs: pairs.clone(), legacy: *legacy }
            }
        }
        "arg" => {
            no_flags(node)?;
            let words = list(&node.args);
            if words.is_empty() {
                return Err(err("ARG requires at least one argument"));
            }
            let mut out = Vec::new();
            for w in words {
                match w.split_once('=') {
                    Some(("", _)) => return Err(err("ARG names can not be blank")),
                    Some((k, v)) => out.push((k.to_string(), Some(v.to_string()))),
                    None => out.push((w, None)),
                }
            }
            Instruction::Arg(out)
        }
        "maintainer" => Instruction::Maintainer(one_arg(node)?),
        "user" => Instruction::User(one_arg(node)?),
        "workdir" => Instruction::Workdir(one_arg(node)?),
        "stopsignal" => Instruction::StopSignal(one_arg(node)?),
        "expose" => {
            no_flags(node)?;
            // BuildKit sorts the raw port words.
            let mut ports = at_least_one(node)?;
            ports.sort();
            Instruction::Expose(ports)
        }
        "volume" => {
            no_flags(node)?;
            let v: Vec<String> = at_least_one(node)?.iter().map(|s| s.trim().to_string()).collect();
            if v.iter().any(|s| s.is_empty()) {
                return Err(err("VOLUME specified can not be an empty string"));
            }
            Instruction::Volume(v)
        }
        "onbuild" => {
            no_flags(node)?;
            let Args::Sub(sub) = &node.args else {
                return Err(err("ONBUILD requires at least one argument"));
            };
            match sub.keyword.as_str() {
                "onbuild" => return Err(err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")),
                "maintainer" | "from" => {
                    return Err(err(&format!(
                        "{} isn't allowed as an ONBUILD trigger",
                        sub.keyword.to_ascii_uppercase()
                    )));
                }
                _ => {}
            }
            // Validate the trigger now so a bad one fails here, not in a child build.
            let mut sub = (**sub).clone();
            sub.heredocs = node.heredocs.clone();
            parse_instruction(&sub, file)?;
            // The stored trigger carries its heredoc bodies so it parses the same later.
            let mut expr = sub.original.clone();
            for h in &node.heredocs {
                expr.push('\n');
                expr.push_str(&h.content);
                expr.push_str(&h.name);
            }
            Instruction::Onbuild(expr)
        }
        "healthcheck" => healthcheck(node, file)?,
        "copy" | "add" => copy(node, file)?,
        _ => return Err(err(&unknown_instruction(&node.keyword_as_written))),
    })
}

const KEYWORDS: [&str; 18] = [
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// `unknown instruction: FORM (did you mean FROM?)`, with unprintable bytes escaped.
fn unknown_instruction(kw: &str) -> String {
    let shown: String = if kw.chars().all(|c| c.is_ascii_graphic()) {
        kw.to_string()
    } else {
        kw.chars().take(40).flat_map(char::escape_default).collect()
    };
    let lower = kw.to_ascii_lowercase();
    let best = KEYWORDS.iter().map(|k| (edit_distance(k, &lower), k)).min();
    match best {
        Some((d, k)) if d <= 2 && d > 0 => {
            format!("unknown instruction: {shown} (did you mean {}?)", k.to_ascii_uppercase())
        }
        _ => format!("unknown instruction: {shown}"),
    }
}

fn valid_stage_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "-_.".contains(ch))
}

fn copy(node: &Node, file: &str) -> Result<Instruction, FrontendError> {
    use FlagKind::*;
    let add = node.keyword == "add";
    let mut spec = vec![("chown", Str), ("chmod", Str), ("link", Bool), ("exclude", Strs)];
    if add {
        spec.extend([("keep-git-dir", Bool), ("checksum", Str), ("unpack", Bool)]);
    } else {
        spec.extend([("from", Str), ("parents", Bool)]);
    }
    let f = parse_flags(node, &spec, file)?;
    let kw = node.keyword.to_ascii_uppercase();
    let args = list(&node.args);
    if args.len() < 2 {
        return Err(instr_err(
            file,
            node.span,
            format!(
                "{kw} requires at least two arguments, but only one was provided. Destination could not be determined"
            ),
        ));
    }
    let dest = args[args.len() - 1].clone();
    if crate::parser::parse_heredoc(&dest).is_some() {
        return Err(instr_err(file, node.span, format!("{kw} cannot accept a heredoc as a destination")));
    }
    let mut sources = Vec::new();
    let mut inline = Vec::new();
    for s in &args[..args.len() - 1] {
        if let Some(marker) = crate::parser::parse_heredoc(s) {
            // Bodies are looked up by name, as BuildKit does; the marker decides chomp and
            // expansion.
            let content = node
                .heredocs
                .iter()
                .rev()
                .find(|h| h.name == marker.name)
                .map(|h| h.content.clone())
                .unwrap_or_default();
            inline.push(Heredoc { content, ..marker });
        } else {
            sources.push(s.clone());
        }
    }
    Ok(Instruction::Copy(CopyArgs {
        add,
        sources,
        inline,
        dest,
        from: f.str("from"),
        from_span: f.span("from"),
        chown: f.str("chown"),
        chmod: f.str("chmod"),
        link: f.bool("link"),
        exclude: f.all("exclude").into_iter().map(|(s, _)| s).collect(),
        parents: f.bool("parents"),
        checksum: f.str("checksum"),
        keep_git_dir: f.bool("keep-git-dir"),
        unpack: f.bools.get("unpack").copied(),
    }))
}

fn healthcheck(node: &Node, file: &str) -> Result<Instruction, FrontendError> {
    use FlagKind::*;
    let err = |m: String| instr_err(file, node.span, m);
    let Args::Health { kind, cmd } = &node.args else {
        return Err(err("HEALTHCHECK requires at least one argument".into()));
    };
    let typ = kind.to_ascii_uppercase();
    if typ == "NONE" {
        parse_flags(node, &[], file)?;
        if !matches!(**cmd, Args::Empty) {
            return Err(err("HEALTHCHECK NONE takes no arguments".into()));
        }
        return Ok(Instruction::Healthcheck(None));
    }
    let f = parse_flags(
        node,
        &[("interval", Str), ("timeout", Str), ("start-period", Str), ("start-interval", Str), ("retries", Str)],
        file,
    )?;
    if typ != "CMD" {
        return Err(err(format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)")));
    }
    let test = match &**cmd {
        Args::Json(v) if !v.is_empty() => [vec!["CMD".to_string()], v.clone()].concat(),
        Args::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
        _ => return Err(err("Missing command after HEALTHCHECK CMD".into())),
    };
    let dur = |name: &str| -> Result<i64, FrontendError> {
        let Some(v) = f.str(name) else { return Ok(0) };
        let sp = f.span(name).unwrap_or(node.span);
        let d = parse_go_duration(&v).map_err(|e| instr_err(file, sp, e))?;
        if d == 0 {
            return Ok(0);
        }
        if d < 1_000_000 {
            return Err(instr_err(file, sp, format!("Interval {name:?} cannot be less than 1ms")));
        }
        Ok(d)
    };
    let retries = match f.str("retries") {
        None => 0,
        Some(r) => {
            let sp = f.span("retries").unwrap_or(node.span);
            let n: i64 = r.parse().map_err(|_| instr_err(file, sp, format!("invalid value for --retries: {r:?}")))?;
            if n < 0 {
                return Err(instr_err(file, sp, format!("--retries cannot be negative ({n})")));
            }
            n
        }
    };
    Ok(Instruction::Healthcheck(Some(Health {
        test,
        interval: dur("interval")?,
        timeout: dur("timeout")?,
        start_period: dur("start-period")?,
        start_interval: dur("start-interval")?,
        retries,
    })))
}

/// Go's `time.ParseDuration`, in nanoseconds (`1m30s`, `1.5h`, `500ms`, `0`).
pub fn parse_go_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            u => return Err(format!("time: unknown unit {u:?} in duration {s:?}")),
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    let v = total.round() as i64;
    Ok(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_go_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_go_duration("1.5h").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_go_duration("500ms").unwrap(), 500_000_000);
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("5x").is_err());
    }
}
