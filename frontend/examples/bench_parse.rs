//! Parse + lower a generated 1,000-instruction Dockerfile N times and print the time per
//! iteration (goal: under 5 ms). Run with
//! `cargo run --release -p rbuild-frontend --example bench_parse [N]`.

use rbuild_frontend::{LowerOptions, NoResolver, lower, parse};
use std::fmt::Write;
use std::time::Instant;

/// A Dockerfile of `n` instructions mixing every common kind, in 10 stages.
fn generate(n: usize) -> String {
    let mut s = String::from("# syntax=docker/dockerfile:1\nARG BASE=alpine:3.20\n");
    let per_stage = n / 10;
    let mut count = 2;
    for stage in 0..10 {
        writeln!(s, "FROM ${{BASE}} AS s{stage}").unwrap();
        count += 1;
        let mut i = 0;
        while i < per_stage - 1 && count < n {
            let line = match i % 10 {
                0 => format!("ARG V{i}=value-{i}"),
                1 => format!("ENV E{i}=${{V{}:-x}} P{i}=\"a b\"", i - 1),
                2 => format!("RUN --mount=type=cache,target=/root/.cache/{i} \\\n    echo step {i} && \\\n    true"),
                3 => format!("COPY --chown=1000:1000 src/{i} /app/{i}/"),
                4 => format!("WORKDIR /work/{i}"),
                5 => format!("LABEL l{i}=\"v {i}\""),
                6 => "RUN <<EOF\necho heredoc\nEOF".to_string(),
                7 if stage > 0 => format!("COPY --from=s{} /app /prev/{i}", stage - 1),
                7 => format!("EXPOSE {}", 8000 + i),
                8 => format!("USER u{i}"),
                _ => "CMD [\"/bin/app\", \"--serve\"]".to_string(),
            };
            s.push_str(&line);
            s.push('\n');
            i += 1;
            count += 1;
        }
    }
    s
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let text = generate(1000);
    let opts = LowerOptions::default();
    let ast = parse(&text, "Dockerfile").expect("generated Dockerfile parses");
    let instructions = ast.nodes.len();
    let steps: usize =
        lower(&ast, &opts, &NoResolver).expect("lowers").graph.stages.iter().map(|s| s.steps.len()).sum();
    // Warm up, then measure.
    for _ in 0..5 {
        let ast = parse(&text, "Dockerfile").unwrap();
        std::hint::black_box(lower(&ast, &opts, &NoResolver).unwrap());
    }
    let start = Instant::now();
    for _ in 0..n {
        let ast = parse(&text, "Dockerfile").unwrap();
        std::hint::black_box(lower(&ast, &opts, &NoResolver).unwrap());
    }
    let per = start.elapsed() / n as u32;
    println!(
        "{instructions} instructions ({} bytes) -> {steps} steps: {:.3} ms per parse+lower ({n} iterations)",
        text.len(),
        per.as_secs_f64() * 1000.0
    );
}
