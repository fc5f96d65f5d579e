//! rbuild-runtime: runs a process in namespaces on a snapshot.
//!
//! Owns: snapshots ([`snapshot`]: layers extracted once per chain ID, mounted as overlayfs
//! or copied when overlayfs is missing), the sandbox ([`sandbox`]: a RUN step or a
//! container in namespaces, via a re-executed init, with capabilities, seccomp and
//! cgroups), layer diffs of what a run changed ([`diff`]), containers ([`container`]: records
//! in the store, run in the foreground or by a per-container monitor, exec, cp, commit),
//! their limits ([`cgroup`]: v1 and v2, beneath the caller's own cgroup) and volumes
//! ([`volume`]), plus the filesystem helpers they share ([`util`]).
//! Leaves to others: what to run and when (rbuild-builder for RUN steps, the CLI for
//! `rbuild run`), image formats, the layer tar writer/applier and the store (rbuild-image).
//! It knows nothing of Dockerfiles, builds or registries.
//!
//! The sandbox re-executes the current binary; that binary's `main` must call
//! [`sandbox::init_hook`] first:
//!
//! ```no_run
//! if let Some(code) = rbuild_runtime::sandbox::init_hook() {
//!     std::process::exit(code)
//! }
//! // Containers started detached hand themselves to a monitor: the same binary again.
//! if let Some(code) = rbuild_runtime::container::monitor::monitor_hook() {
//!     std::process::exit(code)
//! }
//! ```
#![deny(missing_docs)]

pub mod cgroup;
pub mod container;
pub mod diff;
mod error;
pub mod sandbox;
pub mod snapshot;
pub mod util;
pub mod volume;

pub use error::{Error, Result};
