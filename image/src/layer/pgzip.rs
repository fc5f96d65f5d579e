//! Parallel gzip, pigz-style: the uncompressed stream is cut into fixed blocks, each block
//! is a raw deflate stream primed with the 32 KiB of input before it and ended with a sync
//! flush (the last one finished), so the blocks concatenate into one deflate stream. Blocks
//! are compressed on a few std threads and written in order; the CRC-32 of each block is
//! combined into the trailer's.
//!
//! The bytes written depend only on the input and the level: not on the thread count (one
//! thread runs the same code inline) nor on how the input was split into writes.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress, Status};

/// Uncompressed bytes per block.
const BLOCK: usize = 128 * 1024;
/// Deflate's window: how much of the preceding input primes each block.
const DICT: usize = 32 * 1024;
/// The most threads one encoder starts.
pub const MAX_THREADS: u32 = 8;
/// The largest stored (uncompressed) deflate block.
const STORED_MAX: usize = 65535;

/// A gzip encoder that compresses fixed blocks of its input on `threads` threads.
pub struct ParGzEncoder<W: Write> {
    out: W,
    level: u32,
    threads: u32,
    /// The dictionary (`dict_len` bytes, the end of the previous block) then the block being filled.
    buf: Vec<u8>,
    dict_len: usize,
    /// CRC-32 and length of the blocks written so far.
    crc: u32,
    total: u64,
    header_written: bool,
    /// Started when a second block shows the input is larger than one block.
    pool: Option<Pool>,
    in_flight: VecDeque<mpsc::Receiver<Done>>,
    spare_in: Vec<Vec<u8>>,
    spare_out: Vec<Vec<u8>>,
}

impl<W: Write> ParGzEncoder<W> {
    /// Gzip into `out` at `level` (0–9) using up to `threads` threads (clamped to 1..=[`MAX_THREADS`]).
    pub fn new(out: W, level: u32, threads: u32) -> Self {
        ParGzEncoder {
            out,
            level: level.min(9),
            threads: threads.clamp(1, MAX_THREADS),
            buf: Vec::with_capacity(DICT + BLOCK),
            dict_len: 0,
            crc: 0,
            total: 0,
            header_written: false,
            pool: None,
            in_flight: VecDeque::new(),
            spare_in: Vec::new(),
            spare_out: Vec::new(),
        }
    }

    /// Compress what is left, write the trailer and return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while let Some(rx) = self.in_flight.pop_front() {
            self.collect(rx)?;
        }
        self.write_header()?;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.to_le_bytes());
        trailer[4..].copy_from_slice(&(self.total as u32).to_le_bytes());
        self.out.write_all(&trailer)?;
        Ok(self.out)
    }

    fn block_len(&self) -> usize {
        self.buf.len() - self.dict_len
    }

    /// Hand the current block on (the last one with `last`), and start the next one with its
    /// dictionary.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let mut next = self.spare_in.pop().unwrap_or_else(|| Vec::with_capacity(DICT + BLOCK));
        next.clear();
        let keep = self.block_len().min(DICT);
        next.extend_from_slice(&self.buf[self.buf.len() - keep..]);
        let input = std::mem::replace(&mut self.buf, next);
        let dict_len = std::mem::replace(&mut self.dict_len, keep);
        let mut out = self.spare_out.pop().unwrap_or_default();

        if self.threads > 1 && !last && self.pool.is_none() {
            // A failure to start threads only costs speed: the bytes are the same inline.
            self.pool = Pool::start(self.threads, self.level).ok();
        }
        match &self.pool {
            Some(pool) => {
                let (reply, rx) = mpsc::sync_channel(1);
                let job = Job { input, dict_len, last, out, reply };
                pool.tx.as_ref().expect("open until dropped").send(job).map_err(|_| worker_gone())?;
                self.in_flight.push_back(rx);
                while self.in_flight.len() > 2 * self.threads as usize {
                    let rx = self.in_flight.pop_front().expect("non-empty");
                    self.collect(rx)?;
                }
            }
            None => {
                let crc = compress_block(self.level, &input, dict_len, last, &mut out)?;
                let len = input.len() - dict_len;
                self.emit(Done { input, out, crc, len, error: None })?;
            }
        }
        Ok(())
    }

    /// Wait for the oldest block in flight and write it.
    fn collect(&mut self, rx: mpsc::Receiver<Done>) -> io::Result<()> {
        let done = rx.recv().map_err(|_| worker_gone())?;
        self.emit(done)
    }

    fn emit(&mut self, done: Done) -> io::Result<()> {
        if let Some(e) = done.error {
            return Err(e);
        }
        self.write_header()?;
        self.out.write_all(&done.out)?;
        self.crc = zlib_rs::crc32::crc32_combine(self.crc, done.crc, done.len as u64);
        self.total += done.len as u64;
        self.spare_in.push(done.input);
        self.spare_out.push(done.out);
        Ok(())
    }

    fn write_header(&mut self) -> io::Result<()> {
        if self.header_written {
            return Ok(());
        }
        self.header_written = true;
        // No name, mtime 0, OS "unknown" (255), XFL as zlib sets it: the same header as
        // flate2's GzBuilder, identical on every run and machine.
        let xfl = match self.level {
            9 => 2,
            0 | 1 => 4,
            _ => 0,
        };
        self.out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])
    }
}

impl<W: Write> Write for ParGzEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            // A full block goes out only once more input shows it is not the last one.
            if self.block_len() == BLOCK {
                self.dispatch(false)?;
            }
            let n = (BLOCK - self.block_len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        Ok(data.len())
    }

    /// Does nothing: a flush mid-stream would put a block boundary where the caller happened
    /// to flush, and the bytes would depend on it.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn worker_gone() -> io::Error {
    io::Error::other("gzip: a compression thread stopped unexpectedly")
}

struct Job {
    input: Vec<u8>,
    dict_len: usize,
    last: bool,
    out: Vec<u8>,
    reply: mpsc::SyncSender<Done>,
}

struct Done {
    input: Vec<u8>,
    out: Vec<u8>,
    crc: u32,
    len: usize,
    error: Option<io::Error>,
}

/// The compression threads of one encoder; dropping it stops and joins them.
struct Pool {
    tx: Option<mpsc::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn start(threads: u32, level: u32) -> io::Result<Pool> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut pool = Pool { tx: Some(tx), workers: Vec::new() };
        for _ in 0..threads {
            let rx = Arc::clone(&rx);
            let h = std::thread::Builder::new().name("rbuild-gzip".into()).spawn(move || worker(&rx, level))?;
            pool.workers.push(h);
        }
        Ok(pool)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>, level: u32) {
    loop {
        let job = {
            let Ok(guard) = rx.lock() else { return };
            match guard.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let Job { input, dict_len, last, mut out, reply } = job;
        let (crc, error) = match compress_block(level, &input, dict_len, last, &mut out) {
            Ok(crc) => (crc, None),
            Err(e) => (0, Some(e)),
        };
        let len = input.len() - dict_len;
        // The encoder may have been dropped mid-stream: nobody is waiting then.
        let _ = reply.send(Done { input, out, crc, len, error });
    }
}

/// Compress `input[dict_len..]` (primed with `input[..dict_len]`) into `out` as a raw
/// deflate fragment: sync-flushed, or finished when `last`. Returns the block's CRC-32.
fn compress_block(level: u32, input: &[u8], dict_len: usize, last: bool, out: &mut Vec<u8>) -> io::Result<u32> {
    let data = &input[dict_len..];
    let crc = zlib_rs::crc32::crc32(0, data);
    out.clear();
    if level == 0 || looks_random(data) {
        stored(data, last, out);
        return Ok(crc);
    }
    // A fresh compressor for every block: zlib-rs's reset keeps the old window, and
    // set_dictionary hashes a few bytes past the dictionary, so a reused compressor's output
    // would depend on which blocks it compressed before (measured: a few bytes differ).
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if dict_len > 0 {
        c.set_dictionary(&input[..dict_len]).map_err(io::Error::other)?;
    }
    // Room for the whole block at once: how deflate splits its output can depend on the
    // space it is given, so the space must depend only on the input.
    out.reserve(data.len() + data.len() / 4 + 1024);
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    let start = c.total_in();
    loop {
        let used = (c.total_in() - start) as usize;
        let status = c.compress_vec(&data[used..], out, flush).map_err(io::Error::other)?;
        let all_in = (c.total_in() - start) as usize == data.len();
        let done = match status {
            Status::StreamEnd => true,
            _ => !last && all_in && out.len() < out.capacity(),
        };
        if done {
            break;
        }
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
    }
    // Never larger than the data itself: deflate at level 1 (static codes only) expands
    // incompressible input by about 6%.
    if out.len() > stored_len(data.len(), last) {
        out.clear();
        stored(data, last, out);
    }
    Ok(crc)
}

/// Size of `n` bytes as stored deflate blocks.
fn stored_len(n: usize, last: bool) -> usize {
    let blocks = n.div_ceil(STORED_MAX).max(usize::from(last));
    n + 5 * blocks
}

/// `data` as stored (uncompressed) deflate blocks, the final one marked when `last`.
fn stored(data: &[u8], last: bool, out: &mut Vec<u8>) {
    if data.is_empty() {
        if last {
            out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
        }
        return;
    }
    let n = data.len().div_ceil(STORED_MAX);
    for (i, chunk) in data.chunks(STORED_MAX).enumerate() {
        // Stored blocks start byte-aligned: 3 header bits then padding make one whole byte.
        out.push(u8::from(last && i + 1 == n));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// True when the byte histogram of `data` is so flat that deflate cannot win anything worth
/// the time (already compressed or encrypted data): the collision entropy of a sample (the
/// first 64 bytes of every 256) is above about 7.98 bits per byte. Integer arithmetic only,
/// so the decision is the same on every machine.
fn looks_random(data: &[u8]) -> bool {
    if data.len() < 4096 {
        return false;
    }
    let mut h = [[0u32; 256]; 4];
    let mut n = 0u64;
    for piece in data.chunks(256) {
        let sample = &piece[..piece.len().min(64)];
        let mut quads = sample.chunks_exact(4);
        for q in &mut quads {
            h[0][q[0] as usize] += 1;
            h[1][q[1] as usize] += 1;
            h[2][q[2] as usize] += 1;
            h[3][q[3] as usize] += 1;
        }
        for &b in quads.remainder() {
            h[0][b as usize] += 1;
        }
        n += sample.len() as u64;
    }
    let sum_sq: u64 = (0..256)
        .map(|i| {
            let c = u64::from(h[0][i] + h[1][i] + h[2][i] + h[3][i]);
            c * c
        })
        .sum();
    // Uniform bytes give sum_sq = n²/256 (plus noise of about n, 1/128 of that here); ask
    // for within 1/64 of it.
    sum_sq * 256 * 64 <= n * n * 65
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gz(data: &[u8], level: u32, threads: u32, step: usize) -> Vec<u8> {
        let mut e = ParGzEncoder::new(Vec::new(), level, threads);
        for piece in data.chunks(step.max(1)) {
            e.write_all(piece).unwrap();
        }
        e.finish().unwrap()
    }

    fn gunzip(blob: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(blob).read_to_end(&mut out).unwrap();
        out
    }

    /// Text-like, binary-like and random stretches, longer than a few blocks.
    fn mixed(n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        while v.len() < n {
            let kind = (v.len() / 100_000) % 3;
            for i in 0..10_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push(match kind {
                    0 => b"the quick brown fox jumps "[(i % 26) as usize],
                    1 => (i as u8 / 3) ^ (x as u8 & 3),
                    _ => x as u8,
                });
            }
        }
        v.truncate(n);
        v
    }

    #[test]
    fn roundtrip_and_same_bytes_for_any_threads_and_write_sizes() {
        for n in [0, 1, 1000, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK, 5 * BLOCK + 777, 1_300_000] {
            let data = mixed(n);
            let first = gz(&data, 1, 1, 1 << 20);
            assert_eq!(gunzip(&first), data, "n={n}");
            for threads in [1, 2, 4] {
                for step in [1 << 20, 65536, 4099, 511] {
                    if step < 4096 && n > 300_000 {
                        continue;
                    }
                    assert!(gz(&data, 1, threads, step) == first, "n={n} threads={threads} step={step}");
                }
            }
        }
    }

    #[test]
    fn every_level_round_trips() {
        let data = mixed(700_000);
        for level in 0..=9 {
            let blob = gz(&data, level, 2, 10_000);
            assert_eq!(gunzip(&blob), data, "level {level}");
            assert!(gz(&data, level, 1, 1 << 20) == blob, "level {level}");
        }
    }

    #[test]
    fn random_data_is_stored_not_expanded() {
        let mut x: u32 = 1;
        let data: Vec<u8> = (0..3 * BLOCK + 1000)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        assert!(looks_random(&data[..BLOCK]));
        assert!(!looks_random(&mixed(BLOCK)));
        let blob = gz(&data, 1, 2, 1 << 20);
        // Stored blocks cost 5 bytes per 64 KiB, plus the gzip header and trailer.
        assert!(blob.len() <= data.len() + data.len() / 8192 + 32, "{} > {}", blob.len(), data.len());
        assert_eq!(gunzip(&blob), data);
    }

    #[test]
    fn multi_member_reader_sees_one_member() {
        let data = mixed(600_000);
        let blob = gz(&data, 6, 4, 1 << 16);
        let mut d = flate2::read::MultiGzDecoder::new(&blob[..]);
        let mut back = Vec::new();
        d.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        // The trailer names the length mod 2^32 and the CRC of everything.
        let n = blob.len();
        assert_eq!(u32::from_le_bytes(blob[n - 4..].try_into().unwrap()), data.len() as u32);
        assert_eq!(u32::from_le_bytes(blob[n - 8..n - 4].try_into().unwrap()), zlib_rs::crc32::crc32(0, &data));
    }

    #[test]
    fn gnu_gzip_reads_it_back() {
        // GNU gzip checks the CRC and ISIZE of the trailer against what it inflated.
        let data = mixed(1_500_000);
        let blob = gz(&data, 1, 4, 100_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob.gz");
        std::fs::write(&path, &blob).unwrap();
        let t = std::process::Command::new("gzip").arg("-t").arg(&path).output();
        let t = t.expect("gzip (Debian package gzip) is needed by this test");
        assert!(t.status.success(), "gzip -t: {}", String::from_utf8_lossy(&t.stderr));
        let out = std::process::Command::new("gzip").arg("-dc").arg(&path).output().unwrap();
        assert!(out.status.success());
        assert!(out.stdout == data);
    }

    #[test]
    fn umoci_unpacks_a_many_block_layer() {
        // umoci reads layers with Go's compress/gzip: a layer of a few dozen blocks, some
        // stored (random), some deflated, must unpack to the same bytes.
        use crate::store::archive::{ArchiveFormat, save_to_path};
        use crate::store::import::{ImportOptions, import};
        let found = std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .any(|d| std::path::Path::new(d).join("umoci").is_file());
        assert!(found, "umoci is required for this test and is not installed (apt-get install umoci)");
        let mut content = mixed(3_000_000);
        let mut x: u32 = 7;
        content.extend((0..600_000).map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        }));
        content.extend(mixed(400_000));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_path("data/mixed.bin").unwrap();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &content[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(&dir.path().join("store")).unwrap();
        let i = import(&store, std::io::Cursor::new(tar), &ImportOptions::default()).unwrap();
        assert!(i.layer.size > 10 * BLOCK as u64 / 4, "the layer spans many blocks");
        let r = crate::Reference::parse("mixed").unwrap().with_default_tag();
        store.tag(&r, &i.manifest.descriptor()).unwrap();
        let archive = dir.path().join("mixed.tar");
        save_to_path(&store, &[store.resolve("mixed").unwrap()], ArchiveFormat::Oci, &archive).unwrap();
        let layout = dir.path().join("layout");
        tar::Archive::new(std::fs::File::open(&archive).unwrap()).unpack(&layout).unwrap();
        let bundle = dir.path().join("bundle");
        let out = std::process::Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(out.status.success(), "umoci: {}", String::from_utf8_lossy(&out.stderr));
        assert!(std::fs::read(bundle.join("rootfs/data/mixed.bin")).unwrap() == content);
    }
}
