//! The manual covers the CLI: every subcommand and every flag of `rbuild` (walked from
//! clap's own command tree, so new ones are seen) appears in README.md or docs/*.md. A
//! subcommand counts as documented where a page says `rbuild NAME`; its flags must appear
//! (`--long`, or `-s` for a flag with no long form) on one of those pages, the global flags
//! on any page.

use clap::CommandFactory;
use std::path::{Path, PathBuf};

/// (file, text) of README.md and every docs/*.md.
fn pages() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).expect("readable page"))).collect()
}

/// Does `word` occur in `text` with no name character right after it?
fn mentions(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let after = text[i + word.len()..].chars().next();
        let before = text[..i].chars().next_back();
        !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

/// How a flag may be written in the manual: `--long` or `-s` (either will do).
fn spellings(a: &clap::Arg) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(l) = a.get_long() {
        out.push(format!("--{l}"));
    }
    if let Some(s) = a.get_short() {
        out.push(format!("-{s}"));
    }
    out
}

/// The flag as the failure message names it.
fn shown(a: &clap::Arg) -> String {
    spellings(a).into_iter().next().unwrap_or_else(|| a.get_id().to_string())
}

fn is_flag(a: &clap::Arg) -> bool {
    !a.is_positional() && !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version")
}

/// What the manual lacks, one line each.
fn missing() -> Vec<String> {
    let pages = pages();
    let cli = super::Cli::command();
    let mut out = Vec::new();
    for a in cli.get_arguments().filter(|a| is_flag(a) && a.is_global_set()) {
        if !spellings(a).iter().any(|s| pages.iter().any(|(_, t)| mentions(t, s))) {
            out.push(format!("global flag {}", shown(a)));
        }
    }
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        let word = format!("rbuild {name}");
        let on: Vec<&(PathBuf, String)> = pages.iter().filter(|(_, t)| mentions(t, &word)).collect();
        if on.is_empty() {
            out.push(format!("command `rbuild {name}` (no page says `rbuild {name}`)"));
            continue;
        }
        for a in sub.get_arguments().filter(|a| is_flag(a) && !a.is_global_set()) {
            if !spellings(a).iter().any(|s| on.iter().any(|(_, t)| mentions(t, s))) {
                let where_: Vec<String> =
                    on.iter().map(|(p, _)| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
                out.push(format!("`rbuild {name} {}` (looked in {})", shown(a), where_.join(", ")));
            }
        }
    }
    out
}

#[test]
fn every_command_and_flag_is_documented() {
    let m = missing();
    assert!(m.is_empty(), "README.md and docs/*.md do not document:\n  {}", m.join("\n  "));
}

#[test]
fn mentions_needs_whole_words() {
    assert!(mentions("use `--tag NAME`", "--tag"));
    assert!(!mentions("use `--tags`", "--tag"));
    assert!(!mentions("use `--no-tag`", "--tag"));
    assert!(mentions("rbuild rmi app", "rbuild rmi"));
    assert!(!mentions("rbuild rmiall", "rbuild rmi"));
}
