//! Containers: records in the store ([`store`]: `config.json` + `state.json` under a lock),
//! run in the foreground by `rbuild run` or handed to a per-container monitor by `run -d`
//! and `start`.
//!
//! A container is `<root>/containers/<id>/`: what it is ([`Config`], fixed at create), what
//! it does ([`State`], changed only under its lock), its writable layer (the snapshot
//! `container-<id>`) and its log (docker's json-file format). There is no daemon: every
//! command reads and changes the record; a monitor owns a detached container's init.

pub mod commit;
pub mod config;
pub mod exec;
pub mod fs;
pub mod state;
pub mod store;

pub use config::{Config, Mount, MountKind, RestartPolicy, SecurityConfig, parse_signal};
pub use state::{State, Status, now_rfc3339, process_start_time};
pub use store::{Container, Containers, Locked, new_id, valid_name};
