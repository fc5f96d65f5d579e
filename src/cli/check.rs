//! `rbuild check`: parse, lower and lint a Dockerfile without building.

use super::global::Global;
use rbuild_frontend::dockerignore::{Matcher, find_ignore_file};
use rbuild_frontend::{BaseImageInfo, ImageResolver, LintInputs, LowerOptions, Severity, check_with};
use rbuild_image::{Platform, Reference, Store};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Flags of `rbuild check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Dockerfile (default: CONTEXT/Dockerfile; `-` reads stdin).
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Set a build-time variable: KEY=VALUE, or KEY to take it from the environment.
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,
    /// Check as if building this stage (default: every stage).
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// The build context (for the .dockerignore check).
    #[arg(default_value = ".", value_name = "CONTEXT")]
    pub context: PathBuf,
}

/// Base images from the local store only: `check` never goes to a registry, but an image
/// that was pulled or built before is known (its ENV, WORKDIR, SHELL, platform).
struct LocalImages(Option<Store>);

impl ImageResolver for LocalImages {
    fn resolve(&self, image_ref: &str, platform: &str) -> Result<Option<BaseImageInfo>, String> {
        let Some(store) = &self.0 else { return Ok(None) };
        let Ok(r) = Reference::parse(image_ref) else { return Ok(None) };
        let r = if r.digest().is_some() { r } else { r.with_default_tag() };
        let Ok(Some(d)) = store.lookup_tag(&r) else { return Ok(None) };
        let p = Platform::parse(platform).unwrap_or_else(|_| Platform::host());
        // Anything unreadable is "not known", as offline: check must not fail on it.
        Ok(store
            .load_image_for(&d, Some(r), &p)
            .ok()
            .map(|img| rbuild_builder::resolver::info_of(&img.config, img.manifest.digest())))
    }
}

/// Run `rbuild check`: print every diagnostic to stderr; 1 if any is an error.
pub fn run(args: Args, g: &Global) -> anyhow::Result<i32> {
    let path = args.file.clone().unwrap_or_else(|| args.context.join("Dockerfile"));
    let (name, bytes) = if path == Path::new("-") {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b)?;
        ("Dockerfile".to_string(), b)
    } else {
        let b = std::fs::read(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        (path.display().to_string(), b)
    };
    // Invalid UTF-8 is shown as U+FFFD; such a file fails with a located error anyway.
    let text = String::from_utf8_lossy(&bytes);
    let opts = LowerOptions {
        build_args: parse_build_args(&args.build_args)?,
        target: args.target.clone(),
        dockerfile_name: name.clone(),
        ..LowerOptions::default()
    };
    let mut out = String::new();
    let mut ignore_errors = Vec::new();
    let mut matcher = None;
    if path != Path::new("-") {
        if let Some(ignore) = find_ignore_file(&args.context, &path) {
            let t = std::fs::read_to_string(&ignore).unwrap_or_default();
            match Matcher::parse(&t) {
                Ok(m) => matcher = Some(m),
                Err(e) => {
                    let mut d = e.to_diagnostic();
                    d.file = ignore.display().to_string();
                    out.push_str(&d.render(&t));
                    ignore_errors.push(d);
                }
            }
        }
    }
    // Only an existing store is read: check does not create one.
    let store = if g.root.join("index.json").is_file() { Store::open(&g.root).ok() } else { None };
    let inputs = LintInputs { dockerignore: matcher.as_ref() };
    let mut diags = check_with(&text, &name, &opts, &LocalImages(store), &inputs);
    diags.extend(ignore_errors);
    for d in diags.iter().filter(|d| d.file == name) {
        out.push_str(&d.render(&text));
    }
    let errors = diags.iter().filter(|d| d.severity == Severity::Error).count();
    let warnings = diags.iter().filter(|d| d.severity == Severity::Warning).count();
    let notes = diags.len() - errors - warnings;
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    if errors + warnings == 0 {
        out.push_str("Check complete, no warnings found");
    } else {
        out.push_str(&format!(
            "Check complete, {errors} error{} and {warnings} warning{} found",
            plural(errors),
            plural(warnings)
        ));
    }
    if notes > 0 {
        out.push_str(&format!(" ({notes} note{})", plural(notes)));
    }
    out.push_str(".\n");
    eprint!("{out}");
    Ok(if errors > 0 { 1 } else { 0 })
}

/// `K=V` pairs; a bare `K` takes the value from the environment and is dropped when unset
/// (as `docker build` does).
fn parse_build_args(raw: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in raw {
        match a.split_once('=') {
            Some(("", _)) => anyhow::bail!("invalid --build-arg {a:?}: empty name"),
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(out)
}
