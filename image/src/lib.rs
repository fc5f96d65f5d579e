//! rbuild-image: what an image is, and where it lives on this machine.
//!
//! Owns: [`Digest`] (sha256, sha512, verification while streaming), media types,
//! [`Descriptor`]s, manifests and indexes kept as raw bytes with a parsed view
//! ([`RawManifest`]), the image config ([`ImageConfig`], canonical and lossless), image
//! [`Reference`]s in Docker's grammar, the vocabulary of the distribution HTTP API shared by
//! client and server ([`distribution`]), layer tars (writer, applier, compression) and the
//! local store (an OCI image layout).
//!
//! Leaves to others: talking to registries (rbuild-registry-client, rbuild-registry-server),
//! executing builds (rbuild-builder), Dockerfiles (rbuild-frontend).
//!
//! ```
//! use rbuild_image::{Digest, Reference};
//! let d = Digest::sha256_of(b"");
//! assert_eq!(d.to_string(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
//! let r = Reference::parse("alpine").unwrap().with_default_tag();
//! assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
//! ```
#![deny(missing_docs)]

pub mod canonical;
pub mod config;
pub mod descriptor;
pub mod digest;
pub mod distribution;
mod error;
pub mod inroot;
pub mod layer;
pub mod manifest;
pub mod media_type;
pub mod reference;
pub mod store;

pub use config::ImageConfig;
pub use descriptor::{Descriptor, Platform};
pub use digest::{Algorithm, Digest};
pub use error::{Error, Result};
pub use manifest::{ImageIndex, ImageManifest, RawManifest};
pub use media_type::Compression;
pub use reference::Reference;
pub use store::{Image, Store};
