//! rbuild-registry-server: the OCI distribution protocol, server side.
//!
//! Owns: the `/v2/` HTTP API ([`app`], one handler file per resource under `api/`), the
//! storage drivers ([`storage`]: filesystem, memory, S3; one shared test suite), the on-disk
//! layout ([`paths`]), auth (htpasswd basic, built-in bearer tokens), garbage collection
//! ([`gc`]), metrics, configuration, and the `rbuild-registry` binary. Leaves to others:
//! digests, media types, manifest parsing and the wire vocabulary (rbuild-image).
//!
//! Start one in-process (tests of other crates do this):
//!
//! ```no_run
//! # async fn demo() -> Result<(), rbuild_registry_server::Error> {
//! use rbuild_registry_server::{Config, Server};
//! let dir = tempfile::tempdir().unwrap();
//! let server = Server::start(Config::for_tests(dir.path())).await?;
//! println!("registry at {}", server.url()); // http://127.0.0.1:PORT
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! From synchronous code, [`BackgroundServer::start`] runs it on its own thread.
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod cache;
pub mod config;
mod error;
pub mod gc;
pub mod limits;
pub mod metrics;
pub mod paths;
pub mod registry;
pub mod server;
pub mod storage;

pub use api::{AppState, app};
pub use config::Config;
pub use error::{AppError, Error, Result};
pub use registry::Registry;
pub use server::{BackgroundServer, Server, serve};
pub use storage::{FsDriver, MemoryDriver, S3Driver, StorageDriver};
