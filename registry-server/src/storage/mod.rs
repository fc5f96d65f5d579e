//! Storage drivers: a path key/value store the registry keeps everything in.
//!
//! Paths are `/`-separated, relative, without empty, `.` or `..` components (see
//! [`check_path`]). Directories are implied by the files below them. Every backend runs the
//! shared suite in [`testsuite`].

use crate::error::{Error, Result};
use bytes::Bytes;
use futures::Stream;
use std::pin::Pin;
use std::time::SystemTime;

pub mod fs;
pub mod memory;
pub mod s3;
pub mod testsuite;

pub use fs::FsDriver;
pub use memory::MemoryDriver;
pub use s3::S3Driver;

/// A stream of bytes, read from or written to storage.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + 'static>>;

/// What [`StorageDriver::stat`] tells about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// Size in bytes (0 for a directory).
    pub size: u64,
    /// Last modification.
    pub modified: SystemTime,
    /// True for a directory (a prefix with files below it).
    pub is_dir: bool,
}

/// A storage backend. Object-safe and async, so the registry holds an `Arc<dyn StorageDriver>`.
#[async_trait::async_trait]
pub trait StorageDriver: Send + Sync + 'static {
    /// A short name for logs (`filesystem`, `memory`).
    fn name(&self) -> &'static str;

    /// Size, time and kind of `path`, or `None` when nothing is there.
    async fn stat(&self, path: &str) -> Result<Option<FileInfo>>;

    /// The whole content of a small file. [`Error::NotFound`] when absent.
    async fn get_content(&self, path: &str) -> Result<Bytes>;

    /// Replace a small file atomically (readers see the old or the new content, never a mix).
    async fn put_content(&self, path: &str, data: Bytes) -> Result<()>;

    /// Stream a file from `offset`. [`Error::NotFound`] when absent.
    async fn read(&self, path: &str, offset: u64) -> Result<ByteStream>;

    /// Replace a file atomically with a stream's bytes; returns the size written. If the
    /// stream fails, the old content (or absence) stays.
    async fn write(&self, path: &str, data: ByteStream) -> Result<u64>;

    /// Append a stream's bytes to a file (created when missing); returns the size after.
    /// The bytes appended before a stream error stay.
    async fn append(&self, path: &str, data: ByteStream) -> Result<u64>;

    /// Names of the direct children of a directory, sorted; empty when it does not exist.
    async fn list(&self, path: &str) -> Result<Vec<String>>;

    /// Move a file atomically and durably, replacing `to`. [`Error::NotFound`] when `from` is absent.
    async fn rename(&self, from: &str, to: &str) -> Result<()>;

    /// Delete a file or a directory and everything below it; returns whether anything was there.
    async fn delete(&self, path: &str) -> Result<bool>;

    /// Set a file's modification time to now (garbage collection's grace period reads it).
    async fn touch(&self, path: &str) -> Result<()>;

    /// Like [`StorageDriver::put_content`], but the file need not survive a crash of the
    /// machine (it must still be visible to every reader once this returns): for short-lived
    /// markers such as garbage collection's claims. The filesystem driver skips its fsyncs.
    async fn put_volatile(&self, path: &str, data: Bytes) -> Result<()> {
        self.put_content(path, data).await
    }

    /// Create a small file only when nothing is there: of several callers racing (in one
    /// process or on several replicas), exactly one gets `true`; the others get `false` and
    /// change nothing. The garbage collector's lease is built on it.
    ///
    /// The default is a stat then a put, which is not atomic: every driver of the crate
    /// overrides it (filesystem: `link(2)`; memory: one map lock; S3: `If-None-Match: *`).
    async fn create_new(&self, path: &str, data: Bytes) -> Result<bool> {
        if self.stat(path).await?.is_some() {
            return Ok(false);
        }
        self.put_content(path, data).await?;
        Ok(true)
    }
}

/// Check a storage path: relative, `/`-separated, no empty, `.` or `..` components, no
/// backslash or NUL.
pub fn check_path(path: &str) -> Result<()> {
    let bad = |reason| Err(Error::InvalidPath { path: path.to_string(), reason });
    if path.is_empty() {
        return bad("empty path");
    }
    if path.starts_with('/') {
        return bad("absolute path");
    }
    if path.bytes().any(|b| b == 0 || b == b'\\') {
        return bad("NUL or backslash");
    }
    for c in path.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return bad("empty, '.' or '..' component");
        }
    }
    Ok(())
}

/// A stream of one chunk.
pub fn once_stream(b: Bytes) -> ByteStream {
    Box::pin(futures::stream::once(async move { Ok(b) }))
}
