//! What a build adds to the crate's [`Error`]: attaching a step's location and rendering
//! an error for people with its Dockerfile line.

use rbuild_frontend::Span;

use crate::Error;

impl Error {
    /// Attach a step's location to an error that has none.
    pub fn at_step(self, span: Span, instruction: &str) -> Error {
        match self {
            Error::Step { span: s, instruction: i, message, tail } if s.line == 0 => {
                Error::Step { span, instruction: if i.is_empty() { instruction.to_string() } else { i }, message, tail }
            }
            e @ (Error::Step { .. } | Error::Cancelled) => e,
            e => Error::Step { span, instruction: instruction.to_string(), message: e.to_string(), tail: Vec::new() },
        }
    }

    /// Render for people: the Dockerfile location and source line when the error has one.
    pub fn render(&self, dockerfile_name: &str, dockerfile_text: &str) -> String {
        match self {
            Error::Step { span, instruction, message, tail } => {
                let mut out = String::new();
                if span.line > 0 {
                    out.push_str(&format!("{dockerfile_name}:{}\n", span.line));
                    out.push_str("--------------------\n");
                    let lines: Vec<&str> = dockerfile_text.lines().collect();
                    let first = span.line.saturating_sub(2).max(1);
                    let last = span.end_line.max(span.line).min(span.line + 4);
                    for n in first..=last {
                        if let Some(l) = lines.get(n as usize - 1) {
                            let mark = if n >= span.line && n <= span.end_line.max(span.line) { ">>>" } else { "   " };
                            out.push_str(&format!(" {n:>4} | {mark} {l}\n"));
                        }
                    }
                    out.push_str("--------------------\n");
                } else if !instruction.is_empty() {
                    out.push_str(&format!("{instruction}\n"));
                }
                if !tail.is_empty() {
                    out.push_str("last output:\n");
                    for l in tail {
                        out.push_str(&format!("  {l}\n"));
                    }
                }
                out.push_str(message);
                out
            }
            e => e.to_string(),
        }
    }
}
