//! rbuild-registry-server: the OCI distribution protocol, server side.
//!
//! Owns: the `/v2/` HTTP API, storage drivers, auth, garbage collection, and the
//! `rbuild-registry` binary. Leaves to others: digests, media types and manifest parsing
//! (rbuild-image).
#![deny(missing_docs)]
