//! The filesystem driver: one directory tree under a root. Small files are replaced with
//! temp + fsync + rename + fsync(dir); appends stream through a writer thread that starts
//! writeback as it goes, so the fsync before a blob becomes visible is short.

use super::{ByteStream, FileInfo, StorageDriver, check_path};
use crate::error::{Error, Result};
use bytes::Bytes;
use futures::StreamExt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Chunk size of reads: large enough that a GET costs few syscalls and wakeups.
const READ_CHUNK: usize = 1024 * 1024;
/// Chunks queued between the reader thread and the socket.
const READ_QUEUE: usize = 3;
/// Chunks queued between the request body and the writer thread.
const WRITE_QUEUE: usize = 16;
/// Start writeback every this many bytes, so the final fsync has little left to do.
const WRITEBACK_EVERY: u64 = 8 * 1024 * 1024;

/// Storage in a directory of the local filesystem.
#[derive(Debug, Clone)]
pub struct FsDriver {
    root: PathBuf,
    fsync: bool,
}

impl FsDriver {
    /// A driver rooted at `root` (created when missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<FsDriver> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|io| Error::File { setting: "root", path: root.clone(), io })?;
        Ok(FsDriver { root, fsync: true })
    }

    /// Turn fsync off (`storage.fsync = false`): faster, but a power loss or kernel crash may
    /// lose blobs that were already acknowledged. A killed process loses nothing either way.
    pub fn with_fsync(mut self, fsync: bool) -> FsDriver {
        self.fsync = fsync;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn resolve(&self, path: &str) -> Result<PathBuf> {
        check_path(path)?;
        Ok(self.root.join(path))
    }
}

async fn blocking<T: Send + 'static>(path: &str, f: impl FnOnce() -> io::Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Error::storage(path)),
        Err(e) => Err(Error::Storage { path: path.to_string(), source: io::Error::other(e.to_string()) }),
    }
}

fn temp_sibling(p: &Path) -> PathBuf {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    p.with_file_name(format!(".tmp-{}-{name}", uuid::Uuid::new_v4().simple()))
}

/// Read into `buf`'s spare capacity without zeroing it first; returns the bytes read.
fn read_uninit(f: &mut File, buf: &mut Vec<u8>) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let spare = buf.capacity() - buf.len();
    // SAFETY: read(2) writes at most `spare` bytes into the vector's spare capacity, and
    // set_len only covers the bytes it reported written.
    let n = unsafe { libc::read(f.as_raw_fd(), buf.as_mut_ptr().add(buf.len()).cast(), spare) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    unsafe { buf.set_len(buf.len() + n as usize) };
    Ok(n as usize)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn ensure_parent(p: &Path) -> io::Result<()> {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent)?;
    }
    Ok(())
}

fn write_all_vectored(f: &mut File, bufs: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        let n = f.write_vectored(slices)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn start_writeback(f: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a valid fd; failure only means writeback starts later.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_f: &File, _offset: u64, _len: u64) {}

/// Pipe `data` into `file` through a blocking writer thread; returns the file's size after.
async fn pump(path: &str, file: File, mut data: ByteStream, writeback: bool, sync: bool) -> Result<u64> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE);
    let writer = tokio::task::spawn_blocking(move || -> io::Result<u64> {
        let mut file = file;
        let mut size = file.metadata()?.len();
        let mut synced_to = size;
        let mut batch = Vec::with_capacity(64);
        while let Some(b) = rx.blocking_recv() {
            batch.push(b);
            while batch.len() < 64 {
                match rx.try_recv() {
                    Ok(b) => batch.push(b),
                    Err(_) => break,
                }
            }
            write_all_vectored(&mut file, &batch)?;
            size += batch.iter().map(|b| b.len() as u64).sum::<u64>();
            batch.clear();
            if writeback && size - synced_to >= WRITEBACK_EVERY {
                start_writeback(&file, synced_to, size - synced_to);
                synced_to = size;
            }
        }
        if sync {
            file.sync_data()?;
        }
        Ok(size)
    });
    let mut stream_err = None;
    while let Some(item) = data.next().await {
        match item {
            Ok(b) if b.is_empty() => {}
            Ok(b) => {
                if tx.send(b).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Err(e) => {
                stream_err = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let written = match writer.await {
        Ok(r) => r.map_err(Error::storage(path)),
        Err(e) => Err(Error::Storage { path: path.to_string(), source: io::Error::other(e.to_string()) }),
    };
    match stream_err {
        Some(e) => Err(Error::Storage { path: path.to_string(), source: e }),
        None => written,
    }
}

#[async_trait::async_trait]
impl StorageDriver for FsDriver {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    async fn stat(&self, path: &str) -> Result<Option<FileInfo>> {
        let p = self.resolve(path)?;
        let r = blocking(path, move || match fs::metadata(&p) {
            Ok(m) => Ok(Some(FileInfo {
                size: if m.is_dir() { 0 } else { m.len() },
                modified: m.modified()?,
                is_dir: m.is_dir(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
            Err(e) => Err(e),
        })
        .await?;
        Ok(r)
    }

    async fn get_content(&self, path: &str) -> Result<Bytes> {
        let p = self.resolve(path)?;
        blocking(path, move || fs::read(&p).map(Bytes::from)).await
    }

    async fn put_content(&self, path: &str, data: Bytes) -> Result<()> {
        let p = self.resolve(path)?;
        let fsync = self.fsync;
        blocking(path, move || {
            ensure_parent(&p)?;
            let tmp = temp_sibling(&p);
            let r = (|| {
                let mut f = File::create(&tmp)?;
                f.write_all(&data)?;
                if fsync {
                    f.sync_data()?;
                }
                fs::rename(&tmp, &p)?;
                if fsync { sync_dir(p.parent().unwrap_or(Path::new("."))) } else { Ok(()) }
            })();
            if r.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            r
        })
        .await
    }

    async fn put_volatile(&self, path: &str, data: Bytes) -> Result<()> {
        let p = self.resolve(path)?;
        blocking(path, move || {
            ensure_parent(&p)?;
            let tmp = temp_sibling(&p);
            let r = fs::write(&tmp, &data).and_then(|()| fs::rename(&tmp, &p));
            if r.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            r
        })
        .await
    }

    async fn create_new(&self, path: &str, data: Bytes) -> Result<bool> {
        let p = self.resolve(path)?;
        let fsync = self.fsync;
        blocking(path, move || {
            ensure_parent(&p)?;
            let tmp = temp_sibling(&p);
            // link(2) fails when the name exists: the file appears whole, or not at all.
            let r = (|| {
                let mut f = File::create(&tmp)?;
                f.write_all(&data)?;
                if fsync {
                    f.sync_data()?;
                }
                match fs::hard_link(&tmp, &p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
                    Err(e) => return Err(e),
                }
                if fsync {
                    sync_dir(p.parent().unwrap_or(Path::new(".")))?;
                }
                Ok(true)
            })();
            let _ = fs::remove_file(&tmp);
            r
        })
        .await
    }

    async fn read(&self, path: &str, offset: u64) -> Result<ByteStream> {
        let p = self.resolve(path)?;
        let mut file = blocking(path, move || {
            let mut f = File::open(&p)?;
            if f.metadata()?.is_dir() {
                return Err(io::ErrorKind::NotFound.into());
            }
            f.seek(SeekFrom::Start(offset))?;
            Ok(f)
        })
        .await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(READ_QUEUE);
        tokio::task::spawn_blocking(move || {
            loop {
                let mut buf = Vec::<u8>::with_capacity(READ_CHUNK);
                match read_uninit(&mut file, &mut buf) {
                    Ok(0) => break,
                    Ok(_) => {
                        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        break;
                    }
                }
            }
        });
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })))
    }

    async fn write(&self, path: &str, data: ByteStream) -> Result<u64> {
        let p = self.resolve(path)?;
        let p2 = p.clone();
        let tmp = temp_sibling(&p);
        let tmp2 = tmp.clone();
        let file = blocking(path, move || {
            ensure_parent(&p2)?;
            File::create(&tmp2)
        })
        .await?;
        let fsync = self.fsync;
        let size = match pump(path, file, data, fsync, fsync).await {
            Ok(s) => s,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        blocking(path, move || {
            let r = fs::rename(&tmp, &p)
                .and_then(|_| if fsync { sync_dir(p.parent().unwrap_or(Path::new("."))) } else { Ok(()) });
            if r.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            r
        })
        .await?;
        Ok(size)
    }

    async fn append(&self, path: &str, data: ByteStream) -> Result<u64> {
        let p = self.resolve(path)?;
        let file = blocking(path, move || {
            ensure_parent(&p)?;
            OpenOptions::new().create(true).append(true).open(&p)
        })
        .await?;
        // No fsync here: the rename that makes the data a blob syncs it.
        pump(path, file, data, self.fsync, false).await
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        let p = self.resolve(path)?;
        blocking(path, move || {
            let rd = match fs::read_dir(&p) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
                    return Ok(Vec::new());
                }
                Err(e) => return Err(e),
            };
            let mut names = Vec::new();
            for entry in rd {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') {
                    names.push(name);
                }
            }
            names.sort();
            Ok(names)
        })
        .await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let f = self.resolve(from)?;
        let t = self.resolve(to)?;
        let fsync = self.fsync;
        blocking(from, move || {
            // The bytes must be on disk before the name that makes them visible is.
            if fsync {
                OpenOptions::new().read(true).open(&f)?.sync_data()?;
            }
            ensure_parent(&t)?;
            fs::rename(&f, &t)?;
            if fsync { sync_dir(t.parent().unwrap_or(Path::new("."))) } else { Ok(()) }
        })
        .await
    }

    async fn delete(&self, path: &str) -> Result<bool> {
        let p = self.resolve(path)?;
        blocking(path, move || match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&p).map(|_| true),
            Ok(_) => fs::remove_file(&p).map(|_| true),
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => Ok(false),
            Err(e) => Err(e),
        })
        .await
    }

    async fn touch(&self, path: &str) -> Result<()> {
        let p = self.resolve(path)?;
        blocking(path, move || OpenOptions::new().write(true).open(&p)?.set_modified(std::time::SystemTime::now()))
            .await
    }
}
