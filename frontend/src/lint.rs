//! Lints behind `rbuild check` (BuildKit's `docker build --check` rules and messages).
//!
//! Static rules look at the typed instructions of every stage; semantic ones
//! (UndefinedVar, unused build args, unresolved base images) come from lowering.

use crate::error::{Diagnostic, FrontendError, Severity, Span};
use crate::instructions::{Instruction, parse_instruction};
use crate::lower::lower_with;
use crate::options::{ImageResolver, LintInputs, LowerOptions};
use crate::parser::{Ast, Node, parse};
use std::collections::{BTreeMap, BTreeSet};

/// Lint configuration from `# check=skip=Rule1,Rule2;experimental=Rule3;error=true` (or
/// the `BUILDKIT_DOCKERFILE_CHECK` build arg, which wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// Rules not reported.
    pub skip: BTreeSet<String>,
    /// `skip=all`.
    pub skip_all: bool,
    /// Experimental rules turned on (they are off by default; `skip` does not touch them).
    pub experimental: BTreeSet<String>,
    /// `experimental=all`.
    pub experimental_all: bool,
    /// Report warnings as errors.
    pub error: bool,
}

/// BuildKit's experimental rules: reported only when `experimental=` names them.
pub const EXPERIMENTAL_RULES: [&str; 2] = ["CopyIgnoredFile", "InvalidDefinitionDescription"];

/// rbuild's own findings: never promoted by `error=true`.
const OWN_RULES: [&str; 2] = ["BaseImageNotResolved", "UnusedBuildArg"];

impl CheckConfig {
    /// Parse the directive's value; unknown keys are ignored.
    pub fn parse(value: &str) -> CheckConfig {
        let mut c = CheckConfig::default();
        let list = |v: &str, all: &mut bool, set: &mut BTreeSet<String>| {
            for r in v.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                if r == "all" {
                    *all = true;
                } else {
                    set.insert(r.to_string());
                }
            }
        };
        for part in value.split(';') {
            let Some((k, v)) = part.split_once('=') else { continue };
            match k.trim() {
                "skip" => list(v, &mut c.skip_all, &mut c.skip),
                "experimental" => list(v, &mut c.experimental_all, &mut c.experimental),
                // Go's strconv.ParseBool; anything else leaves it off.
                "error" => c.error = matches!(v.trim(), "1" | "t" | "T" | "true" | "TRUE" | "True"),
                _ => {}
            }
        }
        c
    }

    /// Whether a finding of `rule` is reported (BuildKit's `Linter.Run`).
    pub fn reports(&self, rule: &str) -> bool {
        if EXPERIMENTAL_RULES.contains(&rule) {
            self.experimental_all || self.experimental.contains(rule)
        } else {
            !(self.skip_all || self.skip.contains(rule))
        }
    }

    fn skips(&self, rule: &str) -> bool {
        self.skip_all || self.skip.contains(rule)
    }
}

/// The findings of BuildKit's build checks for one Dockerfile (what `rbuild check` and
/// `rbuild build` print).
#[derive(Debug, Clone, Default)]
pub struct LintReport {
    /// Rule findings in line order, skips applied: warnings (BuildKit's rules and
    /// rbuild's `UnusedBuildArg`) and notes (what could not be checked offline). Each has
    /// its rule name, message, file and span.
    pub findings: Vec<Diagnostic>,
    /// The configuration in force (the `# check=` directive, or the
    /// `BUILDKIT_DOCKERFILE_CHECK` build arg).
    pub config: CheckConfig,
    /// A parse or lowering error that stopped the pass (findings before it are kept).
    pub error: Option<FrontendError>,
}

impl LintReport {
    /// Whether `error=true` makes this finding fail the build (a warning of one of
    /// BuildKit's rules; never a note or one of rbuild's own).
    pub fn is_error(&self, d: &Diagnostic) -> bool {
        self.config.error
            && d.severity == Severity::Warning
            && d.rule.as_deref().is_some_and(|r| !OWN_RULES.contains(&r))
    }

    /// With `error=true` and findings that count: BuildKit's failure message,
    /// `lint violation found for rules: A, B` (the build fails after printing them).
    pub fn violation(&self) -> Option<String> {
        let rules: BTreeSet<&str> =
            self.findings.iter().filter(|d| self.is_error(d)).filter_map(|d| d.rule.as_deref()).collect();
        if rules.is_empty() {
            return None;
        }
        Some(format!("lint violation found for rules: {}", rules.into_iter().collect::<Vec<_>>().join(", ")))
    }
}

/// Run the lint rules over a parsed Dockerfile. `all_stages`: lint every stage (what
/// `check` does without `--target`); otherwise only what the build lowers.
pub fn lint(
    ast: &Ast,
    opts: &LowerOptions,
    resolver: &dyn ImageResolver,
    inputs: &LintInputs,
    all_stages: bool,
) -> LintReport {
    let config = match opts.build_args.get("BUILDKIT_DOCKERFILE_CHECK") {
        Some(v) => CheckConfig::parse(v),
        None => ast.directives.check.as_ref().map(|d| CheckConfig::parse(&d.value)).unwrap_or_default(),
    };
    let mut out = ast.warnings.clone();
    out.extend(static_lints(ast));
    let mut error = None;
    match lower_with(ast, opts, resolver, inputs, all_stages, &mut out) {
        Ok(l) => out.extend(l.warnings),
        Err(e) => error = Some(e),
    }
    let local = local_configs(ast);
    let mut findings: Vec<Diagnostic> = out
        .into_iter()
        .filter(|d| {
            let Some(r) = d.rule.as_deref() else { return true };
            if !config.reports(r) {
                return false;
            }
            // A `# check=skip=...` comment right above an instruction covers it alone.
            !local.iter().any(|(from, to, c)| (*from..=*to).contains(&d.span.line) && c.skips(r))
        })
        .collect();
    findings.sort_by_key(|d| (d.span.line, d.span.col));
    findings.dedup();
    LintReport { findings, config, error }
}

/// Per-instruction `# check=` comments: (first line, last line, config).
fn local_configs(ast: &Ast) -> Vec<(u32, u32, CheckConfig)> {
    let mut out = Vec::new();
    for n in &ast.nodes {
        for c in &n.comments {
            if let Some(v) = check_comment(c) {
                out.push((n.span.line, n.span.end_line, CheckConfig::parse(v)));
            }
        }
    }
    out
}

/// The value of a `check=...` comment (the text after `#`).
fn check_comment(c: &str) -> Option<&str> {
    let name_len = c.find(|ch: char| !ch.is_ascii_alphanumeric()).unwrap_or(c.len());
    if !c[..name_len].eq_ignore_ascii_case("check") {
        return None;
    }
    let v = c[name_len..].trim_start().strip_prefix('=')?.trim();
    (!v.is_empty()).then_some(v)
}

/// Parse, lower and lint `text`: every error and warning, sorted by line. Never fails:
/// a parse or lowering error is returned as an error diagnostic. With `error=true`,
/// rule warnings come back as errors.
pub fn check(text: &str, file_name: &str, opts: &LowerOptions, resolver: &dyn ImageResolver) -> Vec<Diagnostic> {
    check_with(text, file_name, opts, resolver, &LintInputs::default())
}

/// [`check`] with the inputs only the caller has (the `.dockerignore`).
pub fn check_with(
    text: &str,
    file_name: &str,
    opts: &LowerOptions,
    resolver: &dyn ImageResolver,
    inputs: &LintInputs,
) -> Vec<Diagnostic> {
    let ast = match parse(text, file_name) {
        Ok(a) => a,
        Err(e) => return vec![e.to_diagnostic()],
    };
    // BuildKit's lint mode dispatches every stage when no target is given.
    let report = lint(&ast, opts, resolver, inputs, opts.target.is_none());
    let mut out: Vec<Diagnostic> = report
        .findings
        .iter()
        .map(|d| {
            let mut d = d.clone();
            if report.is_error(&d) {
                d.severity = Severity::Error;
            }
            d
        })
        .collect();
    if let Some(e) = &report.error {
        out.push(e.to_diagnostic());
    }
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
    // Per stage: spans of CMD/ENTRYPOINT/HEALTHCHECK.
    let mut seen: BTreeMap<&'static str, Vec<Span>> = BTreeMap::new();
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
                if let Some(name) = name {
                    definition_description(&mut w, n, "FROM", std::slice::from_ref(name));
                }
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
            Instruction::Cmd(_) | Instruction::Entrypoint(_) => {
                let kw = if matches!(ins, Instruction::Cmd(_)) { "CMD" } else { "ENTRYPOINT" };
                seen.entry(kw).or_default().push(n.span);
            }
            Instruction::Healthcheck(_) => seen.entry("HEALTHCHECK").or_default().push(n.span),
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
                let keys: Vec<String> = args.iter().map(|(k, _)| k.clone()).collect();
                definition_description(&mut w, n, "ARG", &keys);
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

/// SecretsUsedInArgOrEnv: a name with a `_`-separated word like `password` or `token`,
/// and none like `public`, `file` or `version` (BuildKit's two regexps).
fn secret_lint(w: &mut impl FnMut(&str, Span, String), n: &Node, kw: &str, key: &str) {
    const DENY: [&str; 10] =
        ["apikey", "auth", "credential", "credentials", "key", "password", "pword", "passwd", "secret", "token"];
    const ALLOW: [&str; 3] = ["public", "file", "version"];
    let tokens: Vec<String> = key.split('_').map(|t| t.to_ascii_lowercase()).collect();
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

/// InvalidDefinitionDescription (experimental): the comment right above a named FROM
/// or an ARG should start with the name it describes. `# check=` lines are not
/// descriptions.
fn definition_description(w: &mut impl FnMut(&str, Span, String), n: &Node, kw: &str, keys: &[String]) {
    let Some(last) = n.comments.iter().rfind(|c| check_comment(c).is_none()) else { return };
    if keys.is_empty() {
        return;
    }
    let first = last.split(' ').next().unwrap_or("");
    if keys.iter().any(|k| k == first) {
        return;
    }
    let example = if keys.len() > 1 { "<arg_key>" } else { keys[0].as_str() };
    w(
        "InvalidDefinitionDescription",
        n.span,
        format!("Comment for {kw} should follow the format: `# {example} <description>`"),
    );
}
