//! Layer tars: compression with one-pass digests, the deterministic writer, and the applier
//! that can never write outside its target.
//!
//! ```no_run
//! use rbuild_image::layer::{self, ApplyOptions, LayerBlobWriter, WriterOptions};
//! use rbuild_image::Compression;
//! # fn main() -> rbuild_image::Result<()> {
//! // tar + gzip + both digests in one pass, straight into a file.
//! let out = std::fs::File::create("/tmp/layer.tar.gz")?;
//! let w = LayerBlobWriter::new(out, Compression::Gzip, None)?;
//! let (_file, info) = layer::write_dir("/some/rootfs".as_ref(), w, &WriterOptions::default())?.finish()?;
//! println!("{} (diffID {})", info.digest, info.diff_id);
//! // And back.
//! let blob = std::fs::File::open("/tmp/layer.tar.gz")?;
//! layer::apply_layer(blob, "/tmp/extracted".as_ref(), &ApplyOptions::default())?;
//! # Ok(()) }
//! ```

pub mod apply;
pub mod compress;
pub mod pgzip;
pub(crate) mod sys;
pub mod writer;

pub use apply::{ApplyOptions, ApplyStats, OverlayXattr, Resolve, WhiteoutMode, apply_layer, apply_tar};
pub use compress::{LayerBlobWriter, LayerInfo, compress_stream, decompress};
pub use writer::{
    AddEntry, Change, DirEntry, MetaOverride, WriterOptions, changes_from_dir, changes_from_overlay_upper, write_dir,
    write_layer,
};
