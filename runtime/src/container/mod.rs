//! Containers: exec into one, copy files in and out, diff, export and commit its
//! writable layer.

pub mod commit;
pub mod exec;
pub mod fs;
