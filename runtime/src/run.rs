//! `-v` for `rbuild run` and `rbuild create`: kept here for the callers that name it so;
//! parsing, `--mount` and resolving live in [`crate::container::mounts`], containers in
//! [`crate::container`].

pub use crate::container::mounts::{Volume, VolumeSource};
