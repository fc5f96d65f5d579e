//! Step identities: deterministic, chained through parents, blind to spans and proxies.

use rbuild_frontend::{BuildGraph, LowerOptions, NoResolver, Op, lower, parse};

fn graph(src: &str, opts: &LowerOptions) -> BuildGraph {
    lower(&parse(src, "Dockerfile").unwrap(), opts, &NoResolver).unwrap().graph
}

fn ids(g: &BuildGraph) -> Vec<String> {
    g.stages.iter().flat_map(|s| s.steps.iter().map(|st| st.id.clone())).collect()
}

const SRC: &str = "FROM alpine AS build\nRUN make\nFROM scratch\nCOPY --from=build /out /out\nCMD [\"/out\"]\n";

#[test]
fn same_input_same_ids() {
    let a = graph(SRC, &LowerOptions::default());
    let b = graph(SRC, &LowerOptions::default());
    assert_eq!(ids(&a), ids(&b));
    assert!(ids(&a).iter().all(|i| i.len() == 64));
}

#[test]
fn spans_are_not_part_of_identity() {
    // Same instructions, moved down by comments and blank lines.
    let moved = format!("# a comment\n\n\n{SRC}");
    let a = graph(SRC, &LowerOptions::default());
    let b = graph(&moved, &LowerOptions::default());
    assert_eq!(ids(&a), ids(&b));
    assert_ne!(a.stages[0].steps[1].span, b.stages[0].steps[1].span);
}

#[test]
fn a_change_propagates_to_children_and_dependent_stages() {
    let a = graph(SRC, &LowerOptions::default());
    let b = graph(&SRC.replace("RUN make", "RUN make all"), &LowerOptions::default());
    assert_eq!(a.stages[0].steps[0].id, b.stages[0].steps[0].id);
    assert_ne!(a.stages[0].steps[1].id, b.stages[0].steps[1].id);
    // The final stage copies from build: its COPY and CMD change too, its FROM does not.
    assert_eq!(a.stages[1].steps[0].id, b.stages[1].steps[0].id);
    assert_ne!(a.stages[1].steps[1].id, b.stages[1].steps[1].id);
    assert_ne!(a.stages[1].id, b.stages[1].id);
    for s in &a.stages {
        for w in s.steps.windows(2) {
            assert_eq!(w[1].parent, w[0].id);
        }
    }
}

#[test]
fn proxies_do_not_change_identity_but_args_do() {
    let src = "FROM alpine\nARG V\nRUN echo\n";
    let base = graph(src, &LowerOptions::default());
    let mut o = LowerOptions::default();
    o.build_args.insert("HTTP_PROXY".into(), "http://proxy:3128".into());
    let proxied = graph(src, &o);
    assert_eq!(ids(&base), ids(&proxied));
    assert_eq!(proxied.proxy_env.get("HTTP_PROXY").map(String::as_str), Some("http://proxy:3128"));
    o.build_args.insert("V".into(), "1".into());
    let with_arg = graph(src, &o);
    assert_ne!(ids(&base).last(), ids(&with_arg).last(), "ARGs are in RUN's environment");
    // steps: FROM, ARG (a history-only step), RUN.
    let Op::Exec(e) = &with_arg.stages[0].steps[2].op else { panic!("not exec") };
    assert!(e.env.contains(&"V=1".to_string()));
}

#[test]
fn dry_run_json_round_trips() {
    let g = graph(SRC, &LowerOptions::default());
    let back: BuildGraph = serde_json::from_str(&g.to_json_pretty()).unwrap();
    assert_eq!(g, back);
}

#[test]
fn an_arg_value_changes_what_reads_it_not_what_follows() {
    let src = "FROM scratch\nARG V=1\nCOPY a /a\nRUN true\n";
    let a = graph(src, &LowerOptions::default());
    let mut o = LowerOptions::default();
    o.build_args.insert("V".into(), "2".into());
    let b = graph(src, &o);
    let (sa, sb) = (&a.stages[0].steps, &b.stages[0].steps);
    // FROM, ARG, COPY keep their ids; RUN sees V=2 in its environment.
    assert_eq!(sa[1].id, sb[1].id);
    assert_eq!(sa[2].id, sb[2].id);
    assert_ne!(sa[3].id, sb[3].id);
}
