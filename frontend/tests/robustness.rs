//! Fuzz-style robustness test that runs in CI (the `cargo fuzz` target in `fuzz/` needs a
//! nightly toolchain): thousands of mutated Dockerfiles through parse, lower, check and
//! error rendering, plus random `.dockerignore` files. Must never panic. Deterministic:
//! a fixed xorshift seed, no new dependencies.

use rbuild_frontend::dockerignore::Matcher;
use rbuild_frontend::{LowerOptions, MapResolver, NoResolver, check, lower, parse};
use std::path::Path;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

const TOKENS: &[&str] = &[
    "\\\n",
    "`\n",
    "\r\n",
    "\n",
    "<<EOF",
    "<<-EOF",
    "<<'EOF'",
    "EOF\n",
    "\tEOF\n",
    "\"",
    "'",
    "${",
    "}",
    "${a:-",
    "${a#",
    "$",
    "[",
    "]",
    "[\"a\", \"b\"]",
    "--mount=type=cache,target=/x",
    "--mount=",
    "--from=0",
    "--from=",
    "--chown=1:1",
    "--platform=$BUILDPLATFORM",
    "# escape=`\n",
    "# syntax=x\n",
    "# check=error=true\n",
    "ONBUILD ",
    "FROM ",
    "FROM scratch AS a\n",
    "COPY ",
    "RUN ",
    "ENV ",
    "ARG ",
    "ARG A=1\n",
    "HEALTHCHECK --interval=",
    "SHELL ",
    "EXPOSE 1-65535",
    "WORKDIR ",
    "USER ",
    " AS ",
    "=",
    " ",
    "\t",
    "#",
    "\u{0}",
    "\u{feff}",
    "é",
    "\\",
    "--",
    ",",
    "--device=",
    "--device=a/b=c,required",
    "${a/",
    "${a//*/",
    "${a:#",
    "\\\\\n",
    "``\n",
    "# check=skip=all\n",
    "# check=experimental=all\n",
    "#\n",
    "WORKDIR /x/\n",
];

fn seeds() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dockerfiles");
    let mut out = vec![
        "FROM alpine\nRUN <<EOF\necho\nEOF\n".to_string(),
        "ARG V=1\nFROM a:$V AS b\nCOPY --from=b <<X /y\nx\nX\n".to_string(),
    ];
    let mut dirs = vec![dir.clone(), dir.join("errors")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let f = e.path().join("Dockerfile");
            if f.is_file() {
                out.push(String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned());
            }
        }
    }
    out
}

fn mutate(rng: &mut Rng, src: &str) -> String {
    let mut b = src.as_bytes().to_vec();
    for _ in 0..1 + rng.below(6) {
        match rng.below(5) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            1 => {
                let i = rng.below(b.len() + 1);
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                b.splice(i..i, t.iter().copied());
            }
            2 if !b.is_empty() => {
                let i = rng.below(b.len());
                let j = (i + rng.below(16)).min(b.len());
                b.drain(i..j);
            }
            3 if !b.is_empty() => {
                let i = rng.below(b.len());
                let j = (i + rng.below(32)).min(b.len());
                let chunk: Vec<u8> = b[i..j].to_vec();
                let k = rng.below(b.len() + 1);
                b.splice(k..k, chunk);
            }
            _ => {
                let i = rng.below(b.len() + 1);
                let n = rng.below(8);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(i..i, junk);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn exercise(text: &str) {
    let opts = LowerOptions::default();
    match parse(text, "Dockerfile") {
        Ok(ast) => match lower(&ast, &opts, &NoResolver) {
            Ok(l) => {
                let _ = l.graph.to_json_pretty();
                for w in &l.warnings {
                    let _ = w.render(text);
                }
            }
            Err(e) => {
                let _ = e.render(text);
            }
        },
        Err(e) => {
            let _ = e.render(text);
        }
    }
    let mut res = MapResolver::default();
    res.0.insert(
        "alpine".into(),
        rbuild_frontend::BaseImageInfo {
            onbuild: vec![text.lines().next().unwrap_or("").to_string()],
            platform: Some("linux/arm64".into()),
            shell: Some(vec!["/bin/sh".into(), "-c".into()]),
            ..Default::default()
        },
    );
    for d in check(text, "Dockerfile", &opts, &res) {
        let _ = d.render(text);
    }
    // The context-dependent rules (CopyIgnoredFile) with every experimental rule on.
    let ignore = Matcher::parse("*\n!a\nsecret*\n").expect("matcher");
    let inputs = rbuild_frontend::LintInputs { dockerignore: Some(&ignore) };
    let with_all = format!("# check=experimental=all\n{text}");
    for d in rbuild_frontend::check_with(&with_all, "Dockerfile", &opts, &res, &inputs) {
        let _ = d.render(&with_all);
    }
}

#[test]
fn mutated_dockerfiles_never_panic() {
    let seeds = seeds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..20000 {
        let s = &seeds[i % seeds.len()];
        let m = mutate(&mut rng, s);
        let r = std::panic::catch_unwind(|| exercise(&m));
        assert!(r.is_ok(), "panic on input {m:?}");
    }
}

#[test]
fn random_dockerignore_never_panics() {
    let mut rng = Rng(42);
    let alphabet = b"ab*?[]^-\\/!.#\n \t";
    for _ in 0..3000 {
        let n = rng.below(40);
        let text: String = (0..n).map(|_| alphabet[rng.below(alphabet.len())] as char).collect();
        let path: String = (0..rng.below(20)).map(|_| b"ab/.*"[rng.below(5)] as char).collect();
        let r = std::panic::catch_unwind(|| {
            if let Ok(m) = Matcher::parse(&text) {
                let _ = m.matches(&path);
                let _ = m.may_contain_included(&path);
            }
        });
        assert!(r.is_ok(), "panic on {text:?} / {path:?}");
    }
}
