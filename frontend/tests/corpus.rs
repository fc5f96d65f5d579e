//! Data-driven corpus: `testdata/dockerfiles/<case>/Dockerfile` lowered and linted, checked
//! against `expected.json`; `testdata/dockerfiles/errors/<case>/Dockerfile` must fail with
//! `expected-error.txt`. Optional per case: `options.json` (LowerOptions),
//! `resolver.json` (image ref -> BaseImageInfo) and `dockerignore` (the context's
//! `.dockerignore`, for CopyIgnoredFile).
//!
//! `UPDATE_SNAPSHOTS=1 cargo test -p rbuild-frontend --test corpus` rewrites the expected
//! files; review the diff by hand before keeping it.

use rbuild_frontend::dockerignore::Matcher;
use rbuild_frontend::{LintInputs, LowerOptions, MapResolver, check_with, lower, parse};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dockerfiles")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_SNAPSHOTS").is_some()
}

fn load_opts(dir: &Path) -> (LowerOptions, MapResolver) {
    let opts = fs::read_to_string(dir.join("options.json"))
        .map(|s| serde_json::from_str(&s).expect("options.json"))
        .unwrap_or_default();
    let res = fs::read_to_string(dir.join("resolver.json"))
        .map(|s| serde_json::from_str(&s).expect("resolver.json"))
        .unwrap_or_default();
    (opts, res)
}

/// Step identities are blake3 hex: checked by unit tests, left out of snapshots so they
/// stay reviewable.
fn strip_ids(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in ["id", "parent"] {
                if m.get(k).and_then(Value::as_str).is_some_and(|s| s.len() == 64 || s.is_empty()) {
                    m.remove(k);
                }
            }
            m.values_mut().for_each(strip_ids);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_ids),
        _ => {}
    }
}

fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.join("Dockerfile").is_file()).collect();
    v.sort();
    v
}

fn compare(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if updating() {
        fs::write(path, actual).unwrap();
        return;
    }
    match fs::read_to_string(path) {
        Ok(exp) if exp == actual => {}
        Ok(exp) => failures.push(format!("{}: mismatch\n--- expected\n{exp}\n--- actual\n{actual}", path.display())),
        Err(_) => failures.push(format!("{}: missing (run with UPDATE_SNAPSHOTS=1)", path.display())),
    }
}

#[test]
fn corpus_positive() {
    let mut failures = Vec::new();
    let all = cases(&corpus_dir());
    assert!(all.len() >= 20, "corpus too small: {}", all.len());
    for dir in all {
        let src = fs::read_to_string(dir.join("Dockerfile")).unwrap();
        let (opts, res) = load_opts(&dir);
        let ast = match parse(&src, "Dockerfile") {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("{}: parse failed: {e}", dir.display()));
                continue;
            }
        };
        let lowered = match lower(&ast, &opts, &res) {
            Ok(l) => l,
            Err(e) => {
                failures.push(format!("{}: lower failed: {e}", dir.display()));
                continue;
            }
        };
        let ignore =
            fs::read_to_string(dir.join("dockerignore")).ok().map(|t| Matcher::parse(&t).expect("dockerignore"));
        let inputs = LintInputs { dockerignore: ignore.as_ref() };
        let diags: Vec<String> =
            check_with(&src, "Dockerfile", &opts, &res, &inputs).iter().map(|d| d.headline()).collect();
        let mut graph = serde_json::to_value(&lowered.graph).unwrap();
        strip_ids(&mut graph);
        let out = serde_json::json!({ "check": diags, "graph": graph });
        let text = serde_json::to_string_pretty(&out).unwrap() + "\n";
        compare(&dir.join("expected.json"), &text, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn corpus_errors() {
    let mut failures = Vec::new();
    let all = cases(&corpus_dir().join("errors"));
    assert!(all.len() >= 10, "error corpus too small");
    for dir in all {
        let src = fs::read_to_string(dir.join("Dockerfile")).unwrap();
        let (opts, res) = load_opts(&dir);
        let result = parse(&src, "Dockerfile").and_then(|ast| lower(&ast, &opts, &res));
        let text = match result {
            Ok(_) => {
                failures.push(format!("{}: expected an error, lowering succeeded", dir.display()));
                continue;
            }
            Err(e) => e.render(&src),
        };
        compare(&dir.join("expected-error.txt"), &text, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
