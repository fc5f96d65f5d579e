//! Cgroups: a container's resource limits ([`Limits`]) and, below, the cgroups that
//! enforce them.

pub mod limits;

pub use limits::{Limits, Ulimit};
