//! `RUN --mount`: bind mounts of the context and of stages never write back, and hide what .dockerignore excludes.

#[allow(unused_imports)]
use crate::common;
