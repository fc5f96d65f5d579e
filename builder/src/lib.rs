//! rbuild-builder: executes a build graph.
//!
//! Owns: the solver, the build cache, snapshots, the sandbox (RUN steps and `rbuild run`)
//! and the exporters. Leaves to others: Dockerfile parsing (rbuild-frontend), registries
//! (rbuild-registry-client), image formats and the store (rbuild-image).
#![deny(missing_docs)]
