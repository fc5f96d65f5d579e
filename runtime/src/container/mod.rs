//! Containers as records in the store.

pub mod mounts;
