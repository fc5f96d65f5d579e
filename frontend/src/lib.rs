//! rbuild-frontend: Dockerfile text to a typed build graph (being written).
#![deny(missing_docs)]
