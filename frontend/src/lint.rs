//! Lints behind `rbuild check` (BuildKit's `docker build --check` rules and messages).
//!
//! Static rules look at the typed instructions of every stage; semantic ones
//! (UndefinedVar, unused build args, unresolved base images) come from lowering.

use crate::error::{Diagnostic, Severity, Span};
use crate::instructions::{CmdLine, Instruction, parse_instruction};
use crate::lower::lower_with;
use crate::options::{ImageResolver, LowerOptions};
use crate::parser::{Ast, Node, parse};
use std::collections::{BTreeMap, BTreeSet};

/// Lint configuration from `# check=skip=Rule1,Rule2;error=true` (or the
/// `BUILDKIT_DOCKERFILE_CHECK` build arg, which wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// Rules not reported.
    pub skip: BTreeSet<String>,
    /// `skip=all`.
    pub skip_all: bool,
    /// Report warnings as errors.
    pub error: bool,
}

impl CheckConfig {
    /// Parse the directive's value; unknown keys are ignored.
    pub fn parse(value: &str) -> CheckConfig {
        let mut c = CheckConfig::default();
        for part in value.split(';') {
            let Some((k, v)) = part.split_once('=') else { continue };
            match k.trim() {
                "skip" => {
                    for r in v.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                        if r == "all" {
                            c.skip_all = true;
                        } else {
                            c.skip.insert(r.to_string());
                        }
                    }
                }
                "error" => c.error = v.trim().eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        c
    }

    fn skips(&self, rule: &str) -> bool {
        self.skip_all || self.skip.contains(rule)
    }
}

/// Parse, lower and lint `text`: every error and warning, sorted by line. Never fails:
/// a parse or lowering error is returned as an error diagnostic.
pub fn check(text: &str, file_name: &str, opts: &LowerOptions, resolver: &dyn ImageResolver) -> Vec<Diagnostic> {
    let ast = match parse(text, file_name) {
        Ok(a) => a,
        Err(e) => return vec![e.to_diagnostic()],
    };
    let cfg = match opts.build_args.get("BUILDKIT_DOCKERFILE_CHECK") {
        Some(v) => CheckConfig::parse(v),
        None => ast.directives.check.as_ref().map(|d| CheckConfig::parse(&d.value)).unwrap_or_default(),
    };
    let mut out = ast.warnings.clone();
    out.extend(static_lints(&ast));
    // BuildKit's lint mode dispatches every stage when no target is given.
    match lower_with(&ast, opts, resolver, opts.target.is_none()) {
        Ok(l) => out.extend(l.warnings),
        Err(e) => out.push(e.to_diagnostic()),
    }
    let mut out: Vec<Diagnostic> = out
        .into_iter()
        .filter(|d| d.rule.as_deref().is_none_or(|r| !cfg.skips(r)))
        .map(|mut d| {
            // Only BuildKit's lint rules are promoted; rbuild's own notes stay warnings.
            let ours = matches!(d.rule.as_deref(), Some("BaseImageNotResolved" | "UnusedBuildArg"));
            if cfg.error && !ours {
                d.severity = Severity::Error;
            }
            d
        })
        .collect();
    out.sort_by_key(|d| (d.span.line, d.span.col));
    out.dedup();
    out
}

fn is_upper(s: &str) -> bool {
    s == s.to_ascii_uppercase()
}

fn is_lower(s: &str) -> bool {
    s == s.to_ascii_lowercase()
}

/// Rules that need only the typed instructions.
pub(crate) fn static_lints(ast: &Ast) -> Vec<Diagnostic> {
    let file = ast.file_name.as_str();
    let mut out = Vec::new();
    let mut w = |rule: &str, span: Span, msg: String| out.push(Diagnostic::warning(rule, file, span, msg));

    // ConsistentInstructionCasing: compare with the majority.
    let upper = ast.nodes.iter().filter(|n| is_upper(&n.keyword_as_written)).count();
    let lower_n = ast.nodes.iter().filter(|n| is_lower(&n.keyword_as_written)).count();
    let majority_upper = upper >= lower_n;
    for n in &ast.nodes {
        let ok = if majority_upper { is_upper(&n.keyword_as_written) } else { is_lower(&n.keyword_as_written) };
        if !ok {
            w(
                "ConsistentInstructionCasing",
                n.span,
                format!(
                    "Command '{}' should match the case of the command majority ({})",
                    n.keyword_as_written,
                    if majority_upper { "uppercase" } else { "lowercase" }
                ),
            );
        }
    }

    let mut names: BTreeMap<String, Span> = BTreeMap::new();
    // Per stage: spans of CMD/ENTRYPOINT/HEALTHCHECK, and whether SHELL was set.
    let mut seen: BTreeMap<&'static str, Vec<Span>> = BTreeMap::new();
    let mut shell_set = false;
    let flush = |seen: &mut BTreeMap<&'static str, Vec<Span>>, out: &mut Vec<(String, Span, String)>| {
        for (kw, spans) in seen.iter() {
            for sp in &spans[..spans.len().saturating_sub(1)] {
                out.push((
                    "MultipleInstructionsDisallowed".into(),
                    *sp,
                    format!(
                        "Multiple {kw} instructions should not be used in the same stage because only the last one will be used"
                    ),
                ));
            }
        }
        seen.clear();
    };
    let mut deferred: Vec<(String, Span, String)> = Vec::new();
    for n in &ast.nodes {
        let Ok(ins) = parse_instruction(n, file) else { continue };
        match &ins {
            Instruction::From { name, name_as_written, as_keyword, platform, .. } => {
                flush(&mut seen, &mut deferred);
                shell_set = false;
                if let (Some(name), Some(written), Some(as_kw)) = (name, name_as_written, as_keyword) {
                    if written != name {
                        w("StageNameCasing", n.span, format!("Stage name '{written}' should be lowercase"));
                    }
                    let from_kw = &n.keyword_as_written;
                    if (is_upper(from_kw) && !is_upper(as_kw)) || (is_lower(from_kw) && !is_lower(as_kw)) {
                        w("FromAsCasing", n.span, format!("'{as_kw}' and '{from_kw}' keywords' casing do not match"));
                    }
                    if let Some(prev) = names.insert(name.clone(), n.span) {
                        let _ = prev;
                        w(
                            "DuplicateStageName",
                            n.span,
                            format!("Duplicate stage name {name:?}, stage names should be unique"),
                        );
                    }
                    if name == "scratch" || name == "context" {
                        w(
                            "ReservedStageName",
                            n.span,
                            format!("Stage name should not use the same name as reserved stage {name:?}"),
                        );
                    }
                }
                if let Some(p) = platform {
                    if p == "$TARGETPLATFORM" || p == "${TARGETPLATFORM}" {
                        w(
                            "RedundantTargetPlatform",
                            n.span,
                            format!(
                                "Setting platform to predefined {p} in FROM is redundant as this is the default behavior"
                            ),
                        );
                    } else if !p.contains('$') {
                        // As BuildKit: a stage named for its platform (`AS build-arm64`)
                        // is deliberate, and an unparsable value fails later anyway.
                        let parsed = crate::options::Platform::parse_with_default(p, &Default::default());
                        let stage = name.as_deref().unwrap_or("");
                        if let Some(pl) = parsed {
                            if !stage.contains(&pl.os) && !stage.contains(&pl.arch) {
                                w(
                                    "FromPlatformFlagConstDisallowed",
                                    n.span,
                                    format!("FROM --platform flag should not use constant value {p:?}"),
                                );
                            }
                        }
                    }
                }
            }
            Instruction::Cmd(c) | Instruction::Entrypoint(c) => {
                let kw = if matches!(ins, Instruction::Cmd(_)) { "CMD" } else { "ENTRYPOINT" };
                seen.entry(kw).or_default().push(n.span);
                if matches!(c, CmdLine::Shell(_)) && !shell_set {
                    w(
                        "JSONArgsRecommended",
                        n.span,
                        format!(
                            "JSON arguments recommended for {kw} to prevent unintended behavior related to OS signals"
                        ),
                    );
                }
            }
            Instruction::Healthcheck(_) => seen.entry("HEALTHCHECK").or_default().push(n.span),
            Instruction::Shell(_) => shell_set = true,
            Instruction::Maintainer(_) => {
                w("MaintainerDeprecated", n.span, "Maintainer instruction is deprecated in favor of using label".into())
            }
            Instruction::Env { pairs, legacy } | Instruction::Label { pairs, legacy } => {
                let kw = n.keyword.to_ascii_uppercase();
                if *legacy {
                    w(
                        "LegacyKeyValueFormat",
                        n.span,
                        format!("\"{kw} key=value\" should be used instead of legacy \"{kw} key value\" format"),
                    );
                }
                if kw == "ENV" {
                    for (k, _) in pairs {
                        secret_lint(&mut w, n, "ENV", k);
                    }
                }
            }
            Instruction::Arg(args) => {
                for (k, _) in args {
                    secret_lint(&mut w, n, "ARG", k);
                }
            }
            _ => {}
        }
    }
    flush(&mut seen, &mut deferred);
    for (r, sp, m) in deferred {
        w(&r, sp, m);
    }
    out
}

/// SecretsUsedInArgOrEnv: a name made of words like `password` or `token`.
fn secret_lint(w: &mut impl FnMut(&str, Span, String), n: &Node, kw: &str, key: &str) {
    const DENY: [&str; 10] =
        ["apikey", "auth", "credential", "credentials", "key", "password", "pword", "passwd", "secret", "token"];
    const ALLOW: [&str; 1] = ["public"];
    let tokens: Vec<String> = key.split(['_', '-']).map(|t| t.to_ascii_lowercase()).collect();
    if tokens.iter().any(|t| ALLOW.contains(&t.as_str())) {
        return;
    }
    if tokens.iter().any(|t| DENY.contains(&t.as_str())) {
        w(
            "SecretsUsedInArgOrEnv",
            n.span,
            format!("Do not use ARG or ENV instructions for sensitive data ({kw} {key:?})"),
        );
    }
}
