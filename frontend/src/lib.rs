//! rbuild-frontend: Dockerfile text to a [`BuildGraph`].
//!
//! Three stages, as BuildKit's frontend: [`parse`] gives an [`Ast`] of raw instruction
//! nodes with source spans (directives, continuations, heredocs, flags); the
//! [`instructions`] module types and validates them; [`lower`] applies Docker's semantics
//! (word expansion, ARG/ENV scoping, stage references, ONBUILD, `--target` pruning) and
//! emits a serializable [`BuildGraph`] whose steps carry everything their cache key needs.
//! [`lint`] runs BuildKit's build checks and returns a [`LintReport`] (findings with rule,
//! message and span; whether `# check=error=true` makes them fail the build); [`check`]
//! is the same plus parse and lowering errors, for `rbuild check`; [`dockerignore`]
//! matches build-context paths with Docker's rules.
//!
//! Behaviour follows BuildKit's code where it and the docs differ, notably:
//! - ARG and ENV write one build-time environment, the later write winning (so `ENV x=1`
//!   then `ARG x=2` gives RUN `x=2`; the image config keeps only ENV);
//! - a whole instruction is expanded before it applies (`ENV a=bye b=$a` gives b the old a);
//! - stages nothing needs are not lowered; `COPY --from` may not name a later stage;
//! - UndefinedVar counts `${x:-default}` as a use of an undefined `x`.
//!
//! Pure: no execution, no network. What it cannot know itself (a base image's ENV,
//! WORKDIR, ONBUILD triggers) it asks through [`ImageResolver`], which the builder
//! implements.
//!
//! ```
//! use rbuild_frontend::{parse, lower, LowerOptions, NoResolver};
//! let ast = parse("FROM scratch\nCOPY a /b/\n", "Dockerfile").unwrap();
//! let out = lower(&ast, &LowerOptions::default(), &NoResolver).unwrap();
//! assert_eq!(out.graph.stages[0].steps.len(), 2);
//! ```
#![deny(missing_docs)]

pub mod dockerignore;
mod error;
pub mod expand;
pub mod graph;
pub mod instructions;
mod lint;
mod lower;
mod options;
mod parser;
pub mod path;
mod reference;
mod shellpattern;
mod suggest;

pub use error::{Diagnostic, FrontendError, Location, Severity, Span};
pub use graph::{BuildGraph, ConfigChange, CopyOp, Device, ExecOp, ImageConfig, Op, SourceOp, SourceRef, Stage, Step};
pub use lint::{CheckConfig, EXPERIMENTAL_RULES, LintReport, check, check_with, lint};
pub use lower::{Lowered, lower};
pub use options::{BaseImageInfo, ImageResolver, LintInputs, LowerOptions, MapResolver, NoResolver, Platform};
pub use parser::{Args, Ast, Directive, Directives, Flag, Heredoc, Node, parse};
