//! rbuild-builder: executes a build graph.
//!
//! Owns: the solver, the build cache, the build context, COPY and ADD, and the exporters.
//! Leaves to others: Dockerfile parsing (rbuild-frontend), registries
//! (rbuild-registry-client), running RUN steps (rbuild-runtime: snapshots, the sandbox,
//! layer diffs), image formats, the layer tar writer/applier and the store (rbuild-image).
//!
//! RUN steps run in rbuild-runtime's sandbox, which re-executes the current binary; that
//! binary's `main` must call `rbuild_runtime::sandbox::init_hook` first.
#![deny(missing_docs)]

pub mod build;
mod error;

pub use error::{Error, Result};
