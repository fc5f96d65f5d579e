//! Containers as records in the store: `<root>/containers/<id>/` (config, state, log).

pub mod format;
pub mod logread;
