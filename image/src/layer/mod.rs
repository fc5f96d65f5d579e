//! Layer tars: compression with one-pass digests, the deterministic writer, and the applier
//! that can never write outside its target.

pub mod compress;

pub use compress::{LayerBlobWriter, LayerInfo, compress_stream, decompress};
