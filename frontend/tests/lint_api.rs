//! The lint API behind `rbuild check` and the warnings `rbuild build` prints: what is
//! reported, where, and what `# check=` makes of it.

use rbuild_frontend::{LintInputs, LowerOptions, NoResolver, Severity, check, lint, parse};

fn report(src: &str) -> rbuild_frontend::LintReport {
    let ast = parse(src, "Dockerfile").unwrap();
    lint(&ast, &LowerOptions::default(), &NoResolver, &LintInputs::default(), true)
}

fn rules(r: &rbuild_frontend::LintReport) -> Vec<(u32, String)> {
    r.findings.iter().map(|d| (d.span.line, d.rule.clone().unwrap_or_default())).collect()
}

#[test]
fn error_true_turns_rule_warnings_into_a_violation() {
    let r = report("# check=error=true\nFROM scratch\nCMD echo hi\nMAINTAINER me\n");
    assert!(r.config.error);
    assert!(r.findings.iter().all(|d| r.is_error(d)));
    assert_eq!(
        r.violation().as_deref(),
        Some("lint violation found for rules: JSONArgsRecommended, MaintainerDeprecated")
    );
    // Notes never fail a build.
    let r = report("# check=error=true\nFROM alpine\n");
    assert_eq!(r.findings[0].severity, Severity::Note);
    assert!(r.violation().is_none());
    // Without error=true nothing fails.
    assert!(report("FROM scratch\nCMD echo hi\n").violation().is_none());
}

#[test]
fn platform_typo_warns_with_a_hint_and_fails() {
    let d = check("FROM --platform=$BULIDPLATFORM scratch\n", "Dockerfile", &LowerOptions::default(), &NoResolver);
    let lines: Vec<String> = d.iter().map(|d| d.headline()).collect();
    assert_eq!(
        lines,
        [
            "Dockerfile:1:1: warning: FROM argument 'BULIDPLATFORM' is not declared (did you mean BUILDPLATFORM?) [UndefinedArgInFrom]",
            "Dockerfile:1:1: error: empty platform value from expression $BULIDPLATFORM (did you mean BUILDPLATFORM?)",
        ]
    );
}

#[test]
fn skip_comment_covers_only_the_next_instruction() {
    let src = "FROM scratch\n# check=skip=JSONArgsRecommended\nCMD echo one\n\nENTRYPOINT echo two\n";
    assert_eq!(rules(&report(src)), [(5, "JSONArgsRecommended".to_string())]);
    // An empty `#` line ends the comment block: the skip no longer applies.
    let src = "FROM scratch\n# check=skip=JSONArgsRecommended\n#\nCMD echo one\n";
    assert_eq!(rules(&report(src)), [(4, "JSONArgsRecommended".to_string())]);
    // skip=all above an instruction, over its continuation lines too.
    let src = "FROM scratch\n# check=skip=all\nRUN a \\\n\n  b\nENV k v\n";
    assert_eq!(rules(&report(src)), [(6, "LegacyKeyValueFormat".to_string())]);
}

#[test]
fn experimental_rules_are_off_unless_named() {
    let src = "# nothing to do with the stage\nFROM scratch AS base\n";
    assert!(rules(&report(src)).is_empty());
    let on = report(&format!("# check=experimental=InvalidDefinitionDescription\n{src}"));
    assert_eq!(rules(&on), [(3, "InvalidDefinitionDescription".to_string())]);
    // skip=all does not silence an experimental rule that is turned on (BuildKit).
    let on = report(&format!("# check=skip=all;experimental=all\n{src}"));
    assert_eq!(rules(&on).len(), 1);
}

#[test]
fn no_empty_continuation_is_on_the_last_line() {
    let r = report("FROM scratch\nRUN echo \\\n\n  a \\\n  b\n");
    assert_eq!(rules(&r), [(5, "NoEmptyContinuation".to_string())]);
}
