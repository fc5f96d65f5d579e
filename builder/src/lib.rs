//! rbuild-builder: executes a build graph.
//!
//! Owns: the solver, the build cache, snapshots ([`snapshot`]: layers extracted once per
//! chain ID, mounted as overlayfs or copied when overlayfs is missing), the sandbox
//! ([`sandbox`]: RUN steps and `rbuild run` in namespaces, via a re-executed init), layer
//! diffs of what a RUN changed ([`diff`]) and containers for `rbuild run` ([`run`]).
//! Leaves to others: Dockerfile parsing (rbuild-frontend), registries
//! (rbuild-registry-client), image formats, the layer tar writer/applier and the store
//! (rbuild-image).
//!
//! The sandbox re-executes the current binary; that binary's `main` must call
//! [`sandbox::init_hook`] first:
//!
//! ```no_run
//! if let Some(code) = rbuild_builder::sandbox::init_hook() {
//!     std::process::exit(code)
//! }
//! ```
#![deny(missing_docs)]

pub mod build;
pub mod diff;
mod error;
pub mod run;
pub mod sandbox;
pub mod snapshot;
pub(crate) mod util;

pub use error::{Error, Result};
