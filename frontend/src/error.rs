//! Errors and diagnostics, all carrying a Dockerfile location.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A region of the Dockerfile: 1-based lines and 1-based character columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Span {
    /// First line.
    pub line: u32,
    /// Column of the first character on `line`.
    pub col: u32,
    /// Last line (inclusive; heredoc bodies included).
    pub end_line: u32,
    /// Column just after the last character on `end_line`.
    pub end_col: u32,
}

impl Span {
    /// A span that starts and ends at one point.
    pub fn point(line: u32, col: u32) -> Span {
        Span { line, col, end_line: line, end_col: col }
    }
}

/// A file:line:col location, as printed in errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The Dockerfile's name as the user gave it.
    pub file: String,
    /// 1-based line; 0 when the problem concerns the whole file.
    pub line: u32,
    /// 1-based column; 0 when unknown.
    pub col: u32,
}

impl Location {
    /// A location at the start of `span` in `file`.
    pub fn new(file: &str, span: Span) -> Location {
        Location { file: file.to_string(), line: span.line, col: span.col }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.col) {
            (0, _) => write!(f, "{}", self.file),
            (l, 0) => write!(f, "{}:{}", self.file, l),
            (l, c) => write!(f, "{}:{}:{}", self.file, l, c),
        }
    }
}

/// Everything that can go wrong turning a Dockerfile into a graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontendError {
    /// The text is not a Dockerfile: bad directive, unterminated heredoc, empty file...
    #[error("{loc}: {message}")]
    Parse {
        /// Where.
        loc: Location,
        /// What, in BuildKit's words where it has them.
        message: String,
    },
    /// An instruction is malformed: unknown instruction or flag, wrong argument count...
    #[error("{loc}: {message}")]
    Instruction {
        /// Where.
        loc: Location,
        /// What.
        message: String,
    },
    /// The instructions do not form a buildable graph: bad stage reference, cycle, bad
    /// expansion, unknown `--target`.
    #[error("{loc}: {message}")]
    Graph {
        /// Where.
        loc: Location,
        /// What.
        message: String,
    },
    /// The resolver failed for a base image (offline "not found" is not an error).
    #[error("{loc}: resolving base image {image}: {message}")]
    Resolve {
        /// The FROM line.
        loc: Location,
        /// The expanded image reference.
        image: String,
        /// The resolver's message.
        message: String,
    },
}

impl FrontendError {
    /// Where the error points.
    pub fn location(&self) -> &Location {
        match self {
            FrontendError::Parse { loc, .. }
            | FrontendError::Instruction { loc, .. }
            | FrontendError::Graph { loc, .. }
            | FrontendError::Resolve { loc, .. } => loc,
        }
    }

    /// The message without the location.
    pub fn message(&self) -> String {
        match self {
            FrontendError::Parse { message, .. }
            | FrontendError::Instruction { message, .. }
            | FrontendError::Graph { message, .. } => message.clone(),
            FrontendError::Resolve { image, message, .. } => {
                format!("resolving base image {image}: {message}")
            }
        }
    }

    /// The error as an error-severity diagnostic (what `rbuild check` prints).
    pub fn to_diagnostic(&self) -> Diagnostic {
        let loc = self.location();
        Diagnostic {
            severity: Severity::Error,
            rule: None,
            message: self.message(),
            file: loc.file.clone(),
            span: Span::point(loc.line, loc.col),
        }
    }

    /// `file:line:col: error: message`, the source line and a caret.
    pub fn render(&self, source: &str) -> String {
        self.to_diagnostic().render(source)
    }
}

pub(crate) fn parse_err(file: &str, span: Span, message: impl Into<String>) -> FrontendError {
    FrontendError::Parse { loc: Location::new(file, span), message: message.into() }
}

pub(crate) fn instr_err(file: &str, span: Span, message: impl Into<String>) -> FrontendError {
    FrontendError::Instruction { loc: Location::new(file, span), message: message.into() }
}

pub(crate) fn graph_err(file: &str, span: Span, message: impl Into<String>) -> FrontendError {
    FrontendError::Graph { loc: Location::new(file, span), message: message.into() }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The build would fail.
    Error,
    /// The build works but probably not as meant.
    Warning,
    /// Information: something could not be checked (offline, say). Never an error.
    Note,
}

/// One lint finding or error, renderable against the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// BuildKit's rule name (`JSONArgsRecommended`...), if it is a lint.
    pub rule: Option<String>,
    /// What is wrong.
    pub message: String,
    /// The Dockerfile name.
    pub file: String,
    /// Where; line 0 for whole-file findings (unused build args).
    pub span: Span,
}

impl Diagnostic {
    pub(crate) fn warning(rule: &str, file: &str, span: Span, message: String) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, rule: Some(rule.to_string()), message, file: file.to_string(), span }
    }

    pub(crate) fn note(rule: &str, file: &str, span: Span, message: String) -> Diagnostic {
        Diagnostic { severity: Severity::Note, rule: Some(rule.to_string()), message, file: file.to_string(), span }
    }

    /// One line: `Dockerfile:12:5: warning: message [Rule]`.
    pub fn headline(&self) -> String {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        let loc = Location { file: self.file.clone(), line: self.span.line, col: self.span.col };
        match &self.rule {
            Some(r) => format!("{loc}: {sev}: {} [{r}]", self.message),
            None => format!("{loc}: {sev}: {}", self.message),
        }
    }

    /// The headline, then the source line and a caret under the column.
    pub fn render(&self, source: &str) -> String {
        let mut out = self.headline();
        out.push('\n');
        if self.span.line == 0 {
            return out;
        }
        let Some(text) = source.lines().nth(self.span.line as usize - 1) else {
            return out;
        };
        // Control characters (binary input) would garble the terminal.
        let text: String = text
            .trim_end_matches('\r')
            .chars()
            .map(|c| if c.is_control() && c != '\t' { '\u{fffd}' } else { c })
            .collect();
        let gutter = format!("{:>4} | ", self.span.line);
        out.push_str(&gutter);
        out.push_str(&text);
        out.push('\n');
        out.push_str(&" ".repeat(gutter.len() - 2));
        out.push_str("| ");
        // Keep tabs so the caret lines up under tab-indented text.
        let col = self.span.col.max(1) as usize;
        for c in text.chars().take(col - 1) {
            out.push(if c == '\t' { '\t' } else { ' ' });
        }
        out.push('^');
        out.push('\n');
        out
    }
}
