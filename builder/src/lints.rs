//! The lints a build reports: exactly what `rbuild check` finds (the frontend's
//! [`rbuild_frontend::check`]), each once, before anything runs; with `# check=error=true`
//! (or `BUILDKIT_DOCKERFILE_CHECK=error=true`) a violation stops the build, as in
//! `docker build`.

use crate::Error;
use crate::progress::Progress;
use crate::resolver::{Resolver, SeenResolver};
use rbuild_frontend::{Diagnostic, Location, LowerOptions, Severity};

/// rbuild's own notes that a build has already acted on: a base image that did not
/// resolve has failed the build by now, or belongs to a stage the build skips.
const BUILD_SKIPS: &[&str] = &["BaseImageNotResolved"];

/// `Dockerfile:3:1: message [Rule]`: a diagnostic as one warning line (the caller says it
/// is a warning, once).
pub fn line(d: &Diagnostic) -> String {
    let loc = Location::new(&d.file, d.span);
    match &d.rule {
        Some(r) => format!("{loc}: {} [{r}]", d.message),
        None => format!("{loc}: {}", d.message),
    }
}

/// Lint `text` as `rbuild check` does, with the base images the build's own lowering
/// resolved; print each warning once; fail when the Dockerfile asks for lints to be errors.
pub fn report(
    text: &str,
    name: &str,
    opts: &LowerOptions,
    resolver: &Resolver,
    progress: &Progress,
) -> Result<(), Error> {
    // Rule findings only: an error without a rule comes from lowering every stage, and the
    // build's own lowering (of the stages it needs) has already passed.
    let diags: Vec<Diagnostic> = rbuild_frontend::check(text, name, opts, &SeenResolver(resolver))
        .into_iter()
        .filter(|d| d.rule.as_deref().is_some_and(|r| !BUILD_SKIPS.contains(&r)))
        .collect();
    let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.severity == Severity::Error).collect();
    for d in diags.iter().filter(|d| d.severity == Severity::Warning) {
        progress.message(&format!("WARNING: {}", line(d)));
    }
    if errors.is_empty() {
        return Ok(());
    }
    let mut rules: Vec<&str> = errors.iter().filter_map(|d| d.rule.as_deref()).collect();
    rules.dedup();
    let mut msg = String::new();
    for d in &errors {
        msg.push_str(&d.render(text));
    }
    msg.push_str(&format!(
        "lint violations found for rules: {} (the Dockerfile sets check=error=true)",
        rules.join(", ")
    ));
    Err(Error::Frontend(msg))
}
