//! Ingesting blobs: bytes go to a temp file under `tmp/` while hashed, and become visible
//! under `blobs/` only once whole, verified and synced.
//!
//! Every ingest file is held with an exclusive `flock` by the writer that owns it, so
//! [`clean_stale_ingests`] (`rbuild prune`) can tell the ones a killed process left (the
//! lock is free) from live ones. A download names its ingest after the blob's digest
//! (`tmp/ingest-<alg>-<hex>.partial`), so when its process is killed, the next download of
//! the same blob resumes where it stopped ([`BlobWriter::resume`]). An ingest that fails or
//! is cancelled in a live process is removed, as any other.

use super::layout::{Layout, fsync_dir};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What the writer gathers before a write to the file.
const BUF: usize = 256 * 1024;
/// Aligned blocks of zeros this long are left as holes (a layer tar of a sparse file stays
/// sparse on disk).
const BLOCK: usize = 4096;

/// A blob being written into the store. Write the bytes, then [`BlobWriter::commit`]; a
/// writer dropped uncommitted removes its temp file, and a process killed mid-write leaves
/// only a temp file (resumed or cleaned later), never a partial blob.
pub struct BlobWriter {
    layout: Layout,
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
    /// Bytes already in the file (the buffer's offset).
    flushed: u64,
    hasher: Hasher,
    size: u64,
    done: bool,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter").field("temp", &self.path).field("size", &self.size).finish()
    }
}

use super::lock::try_lock;

impl BlobWriter {
    pub(crate) fn new(layout: Layout, alg: Algorithm) -> Result<BlobWriter> {
        let tmp = layout.tmp();
        let (file, path) = tempfile::Builder::new()
            .prefix("ingest-")
            .tempfile_in(&tmp)
            .map_err(Error::io(&tmp))?
            .keep()
            .map_err(|e| Error::io(&tmp)(e.error))?;
        try_lock(&file).map_err(Error::io(&path))?;
        Ok(BlobWriter::with(layout, file, path, alg.hasher(), 0))
    }

    fn with(layout: Layout, file: File, path: PathBuf, hasher: Hasher, size: u64) -> BlobWriter {
        BlobWriter { layout, file, path, buf: Vec::with_capacity(BUF), flushed: size, hasher, size, done: false }
    }

    /// A writer for the blob `digest` that goes on from what an earlier, interrupted
    /// download of it left in `tmp/` (hashed again here), with the number of bytes already
    /// there: fetch the rest from that offset. When another process is downloading the
    /// same blob, a fresh writer of its own (offset 0). A partial longer than `size` (the
    /// blob's) is not this blob's beginning: it starts over.
    pub(crate) fn resume(layout: Layout, digest: &Digest, size: u64) -> Result<(BlobWriter, u64)> {
        let path = layout.tmp().join(format!("ingest-{}-{}.partial", digest.algorithm().as_str(), digest.hex()));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Error::io(&path))?;
        if !try_lock(&file).map_err(Error::io(&path))? {
            return Ok((BlobWriter::new(layout, digest.algorithm())?, 0));
        }
        let mut hasher = digest.algorithm().hasher();
        let mut have = 0u64;
        let mut buf = vec![0u8; BUF];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(&path)(e)),
            };
            hasher.update(&buf[..n]);
            have += n as u64;
        }
        if have > size {
            file.set_len(0).map_err(Error::io(&path))?;
            (hasher, have) = (digest.algorithm().hasher(), 0);
        }
        Ok((BlobWriter::with(layout, file, path, hasher, have), have))
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest of what was written so far, without finishing.
    pub fn digest(&self) -> Digest {
        self.hasher.clone().finish()
    }

    /// Write the buffer at its offset, leaving aligned zero blocks as holes.
    fn flush_buf(&mut self) -> io::Result<()> {
        let (buf, base) = (&self.buf, self.flushed);
        let mut i = 0;
        let zero_at = |i: usize| {
            (base + i as u64) % BLOCK as u64 == 0 && i + BLOCK <= buf.len() && buf[i..i + BLOCK].iter().all(|&b| b == 0)
        };
        while i < buf.len() {
            if zero_at(i) {
                i += BLOCK;
                continue;
            }
            let start = i;
            // To the next block boundary, then block by block while not zero.
            i = (i + BLOCK - ((base as usize + i) % BLOCK)).min(buf.len());
            while i < buf.len() && !zero_at(i) {
                i = (i + BLOCK).min(buf.len());
            }
            self.file.write_all_at(&buf[start..i], base + start as u64)?;
        }
        self.flushed += buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Verify against `expected` (digest and size, when given), fsync, and move the blob into
    /// place. On a mismatch nothing is stored and the temp file is removed. Returns the
    /// blob's digest and size.
    pub fn commit(mut self, expected: Option<&Digest>, expected_size: Option<u64>) -> Result<(Digest, u64)> {
        let actual = self.hasher.clone().finish();
        let size = self.size;
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
        self.flush_buf().map_err(Error::Stream)?;
        // Holes at the end: the length says where the blob ends.
        self.file.set_len(size).map_err(Error::io(&self.path))?;
        self.file.sync_all().map_err(Error::io(&self.path))?;
        let dest = self.layout.blob(&actual);
        let dir = dest.parent().expect("a blob path has a parent").to_path_buf();
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        // Same content, same name: when the blob is already there, the rename replaces it
        // with identical bytes, which is harmless and keeps this free of races.
        std::fs::rename(&self.path, &dest).map_err(Error::io(&dest))?;
        self.done = true;
        fsync_dir(&dir)?;
        Ok((actual, size))
    }
}

#[cfg(test)]
impl BlobWriter {
    /// Drop as a killed process would: the file stays, its lock goes.
    fn abandon(mut self) {
        self.done = true;
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BUF - self.buf.len());
        self.buf.extend_from_slice(&buf[..n]);
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        if self.buf.len() == BUF {
            self.flush_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()
    }
}

/// Remove the ingest files under `tmp_dir` that no live writer holds (what killed or failed
/// loads, pulls and builds left); returns how many and their bytes. Other temp files are
/// left to [`super::layout::clean_stale_tmp`]'s age rule.
pub(crate) fn clean_stale_ingests(tmp_dir: &Path) -> Result<(usize, u64)> {
    let mut removed = (0usize, 0u64);
    let rd = match std::fs::read_dir(tmp_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(Error::io(tmp_dir)(e)),
    };
    for entry in rd.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("ingest-") {
            continue;
        }
        let p = entry.path();
        let Ok(f) = std::fs::OpenOptions::new().read(true).open(&p) else { continue };
        let Ok(meta) = f.metadata() else { continue };
        if !meta.is_file() || !try_lock(&f).unwrap_or(false) {
            continue;
        }
        // Held now by us: no writer can be using it. Removed while locked, so a download
        // starting now opens a new file rather than this one.
        if std::fs::remove_file(&p).is_ok() {
            removed.0 += 1;
            removed.1 += meta.len();
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> (tempfile::TempDir, Layout) {
        let d = tempfile::tempdir().unwrap();
        let l = Layout { root: d.path().to_path_buf() };
        l.create().unwrap();
        (d, l)
    }

    #[test]
    fn zero_blocks_become_holes_and_the_blob_reads_back_whole() {
        use std::os::unix::fs::MetadataExt;
        let (_d, l) = layout();
        let mut w = BlobWriter::new(l.clone(), Algorithm::Sha256).unwrap();
        let mut all = Vec::new();
        for part in [b"head".to_vec(), vec![0u8; 8 << 20], b"tail".to_vec(), vec![0u8; 3 << 20]] {
            w.write_all(&part).unwrap();
            all.extend_from_slice(&part);
        }
        let (d, size) = w.commit(None, None).unwrap();
        assert_eq!(size, all.len() as u64);
        assert_eq!(std::fs::read(l.blob(&d)).unwrap(), all);
        assert_eq!(d, Digest::of(Algorithm::Sha256, &all));
        assert!(std::fs::metadata(l.blob(&d)).unwrap().blocks() < 64);
    }

    #[test]
    fn a_kept_partial_is_resumed_and_a_stale_one_is_cleaned() {
        let (_d, l) = layout();
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let digest = Digest::of(Algorithm::Sha256, &data);
        let (mut w, have) = BlobWriter::resume(l.clone(), &digest, data.len() as u64).unwrap();
        assert_eq!(have, 0);
        w.write_all(&data[..300_000]).unwrap();
        // Held: neither cleaned nor shared with a second download.
        assert_eq!(clean_stale_ingests(&l.tmp()).unwrap().0, 0);
        let (other, other_have) = BlobWriter::resume(l.clone(), &digest, data.len() as u64).unwrap();
        assert_eq!(other_have, 0);
        drop(other);
        // A killed process: what was flushed stays, its lock goes with the file.
        w.flush().unwrap();
        w.abandon();
        let (mut w, have) = BlobWriter::resume(l.clone(), &digest, data.len() as u64).unwrap();
        assert_eq!(have, 300_000);
        w.write_all(&data[300_000..]).unwrap();
        let (d, _) = w.commit(Some(&digest), Some(data.len() as u64)).unwrap();
        assert_eq!(std::fs::read(l.blob(&d)).unwrap(), data);
        // A partial left unlocked is stale.
        let (mut w, _) = BlobWriter::resume(l.clone(), &Digest::of(Algorithm::Sha256, b"x"), 100).unwrap();
        w.write_all(b"partial").unwrap();
        w.flush().unwrap();
        w.abandon();
        assert_eq!(clean_stale_ingests(&l.tmp()).unwrap(), (1, 7));
        assert!(
            std::fs::read_dir(l.tmp()).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("ingest-"))
        );
    }
}
