//! rbuild-registry-client: the OCI distribution protocol, client side.
//!
//! Owns: talking to registries (auth, pull, push, copy, retries, progress events).
//! Leaves to others: what an image is and where it is stored locally (rbuild-image).
#![deny(missing_docs)]
