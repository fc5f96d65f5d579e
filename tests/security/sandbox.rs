//! The sandbox: seccomp, devices, capabilities on the host network.

#[allow(unused_imports)]
use crate::common;
