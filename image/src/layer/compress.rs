//! Compression of layer blobs, with the blob digest and the diffID computed in the same
//! single pass: uncompressed bytes go in once, and come out hashed twice.

use super::pgzip::ParGzEncoder;
use crate::descriptor::Descriptor;
use crate::digest::{Algorithm, Digest, DigestWriter, Hasher};
use crate::error::{Error, Result};
use crate::media_type::Compression;
use std::io::{self, BufRead, BufReader, Read, Write};

/// gzip level when none is asked for. Level 1 (zlib-rs's "quick" strategy, as
/// go-containerregistry defaults to) compresses about 2.6x faster than level 6 for blobs about
/// 25% larger; `--compression-level` trades the other way.
pub const DEFAULT_GZIP_LEVEL: u32 = 1;
/// zstd level when none is asked for (zstd's own default).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// The size of the pieces a zstd stream is cut into for its workers, at levels 1–3 and below.
const ZSTD_JOB_SIZE: u32 = 8 << 20;

/// What a finished layer blob is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// Digest of the blob (compressed bytes).
    pub digest: Digest,
    /// Digest of the uncompressed tar: the diffID in the config.
    pub diff_id: Digest,
    /// Size of the blob.
    pub size: u64,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
    /// How the blob is compressed.
    pub compression: Compression,
}

impl LayerInfo {
    /// An OCI layer descriptor for this blob.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.compression.oci_layer_type(), self.digest.clone(), self.size)
    }
}

enum Encoder<W: Write> {
    None(W),
    Gzip(ParGzEncoder<DigestWriter<W>>),
    Zstd(zstd::stream::write::Encoder<'static, DigestWriter<W>>),
}

/// A writer that takes an uncompressed tar stream and writes the compressed blob to `W`,
/// hashing both sides as it goes.
pub struct LayerBlobWriter<W: Write> {
    // Uncompressed blobs are hashed once: their digest is their diffID.
    encoder: Encoder<W>,
    // Input for the compressor, fed to it in fixed CHUNK-sized pieces: deflate's output
    // depends on how its input is split, so the split must not depend on the caller.
    pending: Vec<u8>,
    diff_hasher: Hasher,
    uncompressed: u64,
    compression: Compression,
}

/// The size of the pieces the compressor is fed.
const CHUNK: usize = 64 * 1024;

impl<W: Write> LayerBlobWriter<W> {
    /// Compress into `out` with `compression` at `level` (the default when `None`).
    pub fn new(out: W, compression: Compression, level: Option<i32>) -> Result<Self> {
        let workers = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
        Self::with_threads(out, compression, level, workers)
    }

    /// Like [`new`](Self::new) with the number of compression threads fixed (at least 1;
    /// gzip uses at most [`super::pgzip::MAX_THREADS`]; ignored for none). The bytes written are the
    /// same for any count.
    pub fn with_threads(out: W, compression: Compression, level: Option<i32>, threads: u32) -> Result<Self> {
        let encoder = match compression {
            Compression::None => Encoder::None(out),
            Compression::Gzip => {
                let level = level.map(|l| l.clamp(0, 9) as u32).unwrap_or(DEFAULT_GZIP_LEVEL);
                // Blocks compressed in parallel (pigz-style); same bytes for any thread count.
                let out = DigestWriter::new(out, Algorithm::Sha256);
                Encoder::Gzip(ParGzEncoder::new(out, level, threads))
            }
            Compression::Zstd => {
                let level = level.unwrap_or(DEFAULT_ZSTD_LEVEL);
                let out = DigestWriter::new(out, Algorithm::Sha256);
                let mut enc = zstd::stream::write::Encoder::new(out, level)?;
                // Always multithreaded (>= 1 worker): zstd's output is then the same for any
                // worker count, so digests do not depend on the machine's cores.
                enc.multithread(threads.max(1))?;
                enc.include_checksum(false)?;
                if level <= 3 {
                    // zstd's default job is four windows: 2 MiB at level 1, where starting jobs
                    // then costs a third of the time on one core. 8 MiB is level 3's default
                    // (its bytes are unchanged) and makes zstd ~30% faster at level 1 and below.
                    enc.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB_SIZE))?;
                }
                Encoder::Zstd(enc)
            }
        };
        // The gzip encoder cuts its own fixed blocks; only zstd needs fixed pieces from us.
        let pending = if compression == Compression::Zstd { Vec::with_capacity(CHUNK) } else { Vec::new() };
        Ok(LayerBlobWriter { encoder, pending, diff_hasher: Algorithm::Sha256.hasher(), uncompressed: 0, compression })
    }

    /// Flush the compressor and return the inner writer and what was written.
    pub fn finish(mut self) -> Result<(W, LayerInfo)> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.feed(&rest)?;
        }
        let diff_id = self.diff_hasher.finish();
        let (inner, digest, size) = match self.encoder {
            Encoder::None(w) => (w, diff_id.clone(), self.uncompressed),
            Encoder::Gzip(g) => g.finish()?.finish(),
            Encoder::Zstd(z) => z.finish()?.finish(),
        };
        let info =
            LayerInfo { digest, diff_id, size, uncompressed_size: self.uncompressed, compression: self.compression };
        Ok((inner, info))
    }
}

impl<W: Write> LayerBlobWriter<W> {
    /// Hand one piece to the compressor.
    fn feed(&mut self, piece: &[u8]) -> io::Result<()> {
        match &mut self.encoder {
            Encoder::None(w) => w.write_all(piece),
            Encoder::Gzip(g) => g.write_all(piece),
            Encoder::Zstd(z) => z.write_all(piece),
        }
    }
}

impl<W: Write> Write for LayerBlobWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.encoder {
            Encoder::None(w) => {
                let n = w.write(buf)?;
                self.diff_hasher.update(&buf[..n]);
                self.uncompressed += n as u64;
                return Ok(n);
            }
            Encoder::Gzip(g) => {
                g.write_all(buf)?;
                self.diff_hasher.update(buf);
                self.uncompressed += buf.len() as u64;
                return Ok(buf.len());
            }
            Encoder::Zstd(_) => {}
        }
        let mut rest = buf;
        if !self.pending.is_empty() || rest.len() < CHUNK {
            let take = rest.len().min(CHUNK - self.pending.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == CHUNK {
                let full = std::mem::take(&mut self.pending);
                self.feed(&full)?;
                self.pending = full;
                self.pending.clear();
            }
        }
        // The pending buffer is empty here whenever `rest` is not: whole chunks go straight in.
        while rest.len() >= CHUNK {
            let (piece, tail) = rest.split_at(CHUNK);
            self.feed(piece)?;
            rest = tail;
        }
        self.pending.extend_from_slice(rest);
        self.diff_hasher.update(buf);
        self.uncompressed += buf.len() as u64;
        Ok(buf.len())
    }

    /// Flushes only an uncompressed stream: flushing a compressor mid-stream would put a
    /// sync block where the caller happened to flush, and the bytes would depend on it.
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.encoder {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(_) | Encoder::Zstd(_) => Ok(()),
        }
    }
}

/// Open a possibly compressed stream for reading the tar inside, sniffing the compression
/// from its first bytes.
pub fn decompress(reader: impl Read + Send + 'static) -> Result<(Compression, Box<dyn Read + Send>)> {
    let mut br = BufReader::with_capacity(256 * 1024, reader);
    let head = br.fill_buf().map_err(|e| Error::CorruptLayer(format!("reading layer: {e}")))?;
    let c = Compression::sniff(head);
    let r: Box<dyn Read + Send> = match c {
        Compression::None => Box::new(br),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(br)?),
    };
    Ok((c, r))
}

/// Compress a whole uncompressed tar stream into `out`, returning what was written.
pub fn compress_stream<R: Read, W: Write>(
    mut tar: R,
    out: W,
    compression: Compression,
    level: Option<i32>,
) -> Result<(W, LayerInfo)> {
    let mut w = LayerBlobWriter::new(out, compression, level)?;
    io::copy(&mut tar, &mut w)?;
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_digests_match_two_pass() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let (blob, info) = compress_stream(&data[..], Vec::new(), c, None).unwrap();
            assert_eq!(info.digest, Digest::sha256_of(&blob), "{c:?}");
            assert_eq!(info.diff_id, Digest::sha256_of(&data));
            assert_eq!(info.size, blob.len() as u64);
            assert_eq!(info.uncompressed_size, data.len() as u64);
            let (sniffed, mut r) = decompress(std::io::Cursor::new(blob.clone())).unwrap();
            assert_eq!(sniffed, c);
            let mut back = Vec::new();
            r.read_to_end(&mut back).unwrap();
            assert_eq!(back, data);
            // Deterministic: the same bytes twice.
            let (again, _) = compress_stream(&data[..], Vec::new(), c, None).unwrap();
            assert_eq!(again, blob);
        }
    }

    #[test]
    fn bytes_do_not_depend_on_write_sizes() {
        let data: Vec<u8> = (0..700_000u32).flat_map(|i| (i / 3 % 251).to_le_bytes()).collect();
        for c in [Compression::Gzip, Compression::Zstd] {
            let blob = |step: usize| {
                let mut w = LayerBlobWriter::new(Vec::new(), c, None).unwrap();
                for piece in data.chunks(step) {
                    w.write_all(piece).unwrap();
                    w.flush().unwrap();
                }
                w.finish().unwrap()
            };
            let (first, info) = blob(1 << 20);
            for step in [1, 7, 512, 4096, 65535, 65536, 65537, 300_000] {
                let (b, i) = blob(step);
                assert_eq!(i, info, "{c:?} step {step}");
                assert_eq!(b, first, "{c:?} step {step}");
            }
        }
    }

    #[test]
    fn zstd_bytes_do_not_depend_on_threads() {
        let data: Vec<u8> = (0..3_000_000u32).flat_map(|i| (i / 7 % 251).to_le_bytes()).collect();
        let blob = |t| {
            let mut w = LayerBlobWriter::with_threads(Vec::new(), Compression::Zstd, None, t).unwrap();
            w.write_all(&data).unwrap();
            w.finish().unwrap()
        };
        let (one, i1) = blob(1);
        let (four, i4) = blob(4);
        assert!(one == four);
        assert_eq!(i1, i4);
    }

    #[test]
    fn zstd_level_3_keeps_zstd_default_jobs() {
        // More than two 8 MiB jobs: the explicit job size must equal level 3's default, so
        // level-3 layers keep the bytes (and digests) they had before it was set.
        let data: Vec<u8> =
            (0..5_500_000u32).flat_map(|i| (i.wrapping_mul(2_654_435_761) >> 29).to_le_bytes()).collect();
        let mut w = LayerBlobWriter::with_threads(Vec::new(), Compression::Zstd, Some(3), 2).unwrap();
        w.write_all(&data).unwrap();
        let (ours, _) = w.finish().unwrap();
        let mut plain = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        plain.multithread(2).unwrap();
        plain.include_checksum(false).unwrap();
        for piece in data.chunks(CHUNK) {
            plain.write_all(piece).unwrap();
        }
        let plain = plain.finish().unwrap();
        assert!(ours == plain, "{} vs {} bytes", ours.len(), plain.len());
    }

    #[test]
    fn gzip_bytes_do_not_depend_on_threads_or_write_sizes() {
        let data: Vec<u8> = (0..900_000u32).flat_map(|i| (i / 5 % 241).to_le_bytes()).collect();
        let blob = |threads, step: usize| {
            let mut w = LayerBlobWriter::with_threads(Vec::new(), Compression::Gzip, None, threads).unwrap();
            for piece in data.chunks(step) {
                w.write_all(piece).unwrap();
            }
            w.finish().unwrap()
        };
        let (one, info) = blob(1, 1 << 20);
        for (threads, step) in [(2, 1 << 20), (4, 1 << 20), (2, 4097), (4, 333), (1, 65_537)] {
            let (b, i) = blob(threads, step);
            assert_eq!(i, info, "threads {threads} step {step}");
            assert!(b == one, "threads {threads} step {step}");
        }
    }
}
