//! Security cases, one test per hole found by attacking rbuild (a malicious Dockerfile, a
//! malicious base image): each asserts the outcome that keeps the host out of reach. The
//! registry's cases live in `registry-server/tests/security.rs`.

#[path = "../common/mod.rs"]
mod common;

mod build_tree;
mod mounts;
mod sandbox;
