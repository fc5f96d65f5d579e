//! Ingesting blobs: bytes go to a temp file under `tmp/` while hashed, and become visible
//! under `blobs/` only once whole, verified and synced.

use super::layout::{Layout, fsync_dir};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, Result};
use std::io::{self, BufWriter, Write};
use tempfile::NamedTempFile;

/// A blob being written into the store. Write the bytes, then [`BlobWriter::commit`]; a
/// writer dropped uncommitted removes its temp file, and a process killed mid-write leaves
/// only a temp file (cleaned later), never a partial blob.
pub struct BlobWriter {
    layout: Layout,
    file: BufWriter<NamedTempFile>,
    hasher: Hasher,
    size: u64,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter").field("temp", &self.file.get_ref().path()).field("size", &self.size).finish()
    }
}

impl BlobWriter {
    pub(crate) fn new(layout: Layout, alg: Algorithm) -> Result<BlobWriter> {
        let tmp = layout.tmp();
        let file = tempfile::Builder::new().prefix("ingest-").tempfile_in(&tmp).map_err(Error::io(&tmp))?;
        Ok(BlobWriter { layout, file: BufWriter::with_capacity(256 * 1024, file), hasher: alg.hasher(), size: 0 })
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest of what was written so far, without finishing.
    pub fn digest(&self) -> Digest {
        self.hasher.clone().finish()
    }

    /// Verify against `expected` (digest and size, when given), fsync, and move the blob into
    /// place. On a mismatch nothing is stored and the temp file is removed. Returns the
    /// blob's digest and size.
    pub fn commit(self, expected: Option<&Digest>, expected_size: Option<u64>) -> Result<(Digest, u64)> {
        let BlobWriter { layout, file, hasher, size } = self;
        let actual = hasher.finish();
        if let Some(want) = expected {
            if want.algorithm() != actual.algorithm() {
                return Err(Error::InvalidDigest {
                    digest: want.to_string(),
                    reason: format!("the writer hashed with {}", actual.algorithm().as_str()),
                });
            }
            if *want != actual {
                return Err(Error::DigestMismatch { expected: want.clone(), actual });
            }
        }
        if let Some(want) = expected_size {
            if want != size {
                return Err(Error::CorruptLayer(format!("blob {actual}: expected {want} bytes, got {size}")));
            }
        }
        let file = file.into_inner().map_err(|e| Error::Stream(e.into_error()))?;
        file.as_file().sync_all().map_err(Error::io(file.path()))?;
        let dest = layout.blob(&actual);
        let dir = dest.parent().expect("a blob path has a parent").to_path_buf();
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        // Same content, same name: when the blob is already there, the rename replaces it
        // with identical bytes, which is harmless and keeps this free of races.
        file.persist(&dest).map_err(|e| Error::Io { path: dest.clone(), source: e.error })?;
        fsync_dir(&dir)?;
        Ok((actual, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
