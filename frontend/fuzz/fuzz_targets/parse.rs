//! Fuzz the whole frontend: any bytes through parse, lower, check and rendering must
//! give a result or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbuild_frontend::{LowerOptions, NoResolver, check, lower, parse};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let opts = LowerOptions::default();
    match parse(&text, "Dockerfile") {
        Ok(ast) => {
            if let Err(e) = lower(&ast, &opts, &NoResolver) {
                let _ = e.render(&text);
            }
        }
        Err(e) => {
            let _ = e.render(&text);
        }
    }
    for d in check(&text, "Dockerfile", &opts, &NoResolver) {
        let _ = d.render(&text);
    }
    if let Ok(m) = rbuild_frontend::dockerignore::Matcher::parse(&text) {
        let _ = m.matches("a/b/c");
    }
});
