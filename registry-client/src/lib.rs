//! rbuild-registry-client: the OCI distribution protocol, client side.
//!
//! Owns: talking to registries — reference resolution to endpoints (mirrors, insecure
//! registries, plain HTTP for loopback), auth (anonymous, basic, bearer tokens, OAuth2
//! refresh tokens, docker's `config.json` and credential helpers), manifests (raw bytes,
//! never re-serialized) and blobs (streamed, verified, resumed, mounted), retries with
//! backoff, progress events, and the pull/push/copy operations between the local store
//! and registries.
//!
//! Leaves to others: what an image is and where it is stored locally (rbuild-image),
//! drawing a command line (the `rbuild` CLI uses [`progress::for_console`]).
//!
//! ```no_run
//! # async fn f() -> rbuild_registry_client::Result<()> {
//! use rbuild_registry_client::{Client, ClientOptions};
//! let client = Client::new(ClientOptions::from_environment()?)?;
//! let r = rbuild_image::Reference::parse("localhost:5000/app:1")?;
//! let manifest = client.repository(&r, false).get_manifest(&r.api_reference()).await?;
//! println!("{}", manifest.digest());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod auth;
mod client;
pub mod credentials;
mod error;
mod ops;
pub mod progress;
pub mod registries;
mod repo;
pub mod sources;

pub use client::{Client, ClientOptions};
pub use credentials::{Credential, DockerConfig};
pub use error::{Error, Result, Sent, is_retryable_status};
pub use ops::{Pulled, Pushed, RemoteSource, Resolved, select_platform};
pub use progress::{Event, EventKind, Progress};
pub use registries::RegistriesConfig;
pub use repo::{BlobSource, ByteStream, BytesSource, FileSource, PushOutcome, Repository};
