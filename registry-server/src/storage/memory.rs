//! The in-memory driver: everything in a map, for tests and throwaway registries.

use super::{ByteStream, FileInfo, StorageDriver, check_path};
use crate::error::{Error, Result};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// Storage in memory; lost when dropped.
#[derive(Debug, Default)]
pub struct MemoryDriver {
    files: Mutex<BTreeMap<String, (Bytes, SystemTime)>>,
}

impl MemoryDriver {
    /// An empty store.
    pub fn new() -> MemoryDriver {
        MemoryDriver::default()
    }

    fn files(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Bytes, SystemTime)>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn collect(path: &str, mut data: ByteStream) -> Result<BytesMut> {
    let mut buf = BytesMut::new();
    while let Some(b) = data.next().await {
        buf.extend_from_slice(&b.map_err(|source| Error::Storage { path: path.to_string(), source })?);
    }
    Ok(buf)
}

#[async_trait::async_trait]
impl StorageDriver for MemoryDriver {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn stat(&self, path: &str) -> Result<Option<FileInfo>> {
        check_path(path)?;
        let files = self.files();
        if let Some((b, t)) = files.get(path) {
            return Ok(Some(FileInfo { size: b.len() as u64, modified: *t, is_dir: false }));
        }
        let prefix = format!("{path}/");
        Ok(files.range(prefix.clone()..).next().filter(|(k, _)| k.starts_with(&prefix)).map(|(_, (_, t))| FileInfo {
            size: 0,
            modified: *t,
            is_dir: true,
        }))
    }

    async fn get_content(&self, path: &str) -> Result<Bytes> {
        check_path(path)?;
        self.files().get(path).map(|(b, _)| b.clone()).ok_or_else(|| Error::NotFound(path.to_string()))
    }

    async fn put_content(&self, path: &str, data: Bytes) -> Result<()> {
        check_path(path)?;
        self.files().insert(path.to_string(), (data, SystemTime::now()));
        Ok(())
    }

    async fn create_new(&self, path: &str, data: Bytes) -> Result<bool> {
        check_path(path)?;
        let mut files = self.files();
        if files.contains_key(path) {
            return Ok(false);
        }
        files.insert(path.to_string(), (data, SystemTime::now()));
        Ok(true)
    }

    async fn read(&self, path: &str, offset: u64) -> Result<ByteStream> {
        let b = self.get_content(path).await?;
        let start = (offset as usize).min(b.len());
        let chunks: Vec<std::io::Result<Bytes>> =
            b.slice(start..).chunks(64 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        Ok(Box::pin(futures::stream::iter(chunks)))
    }

    async fn write(&self, path: &str, data: ByteStream) -> Result<u64> {
        check_path(path)?;
        let buf = collect(path, data).await?;
        let n = buf.len() as u64;
        self.files().insert(path.to_string(), (buf.freeze(), SystemTime::now()));
        Ok(n)
    }

    async fn append(&self, path: &str, mut data: ByteStream) -> Result<u64> {
        check_path(path)?;
        // Bytes received before a stream error stay, as on a filesystem.
        let mut buf = BytesMut::new();
        let mut err = None;
        while let Some(b) = data.next().await {
            match b {
                Ok(b) => buf.extend_from_slice(&b),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        let mut files = self.files();
        let old = files.get(path).map(|(b, _)| b.clone()).unwrap_or_default();
        let mut all = BytesMut::from(&old[..]);
        all.extend_from_slice(&buf);
        let n = all.len() as u64;
        files.insert(path.to_string(), (all.freeze(), SystemTime::now()));
        match err {
            Some(source) => Err(Error::Storage { path: path.to_string(), source }),
            None => Ok(n),
        }
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        check_path(path)?;
        let prefix = format!("{path}/");
        let files = self.files();
        let mut names: Vec<String> = files
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, _)| k[prefix.len()..].split('/').next().map(str::to_string))
            .collect();
        names.dedup();
        Ok(names)
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        check_path(from)?;
        check_path(to)?;
        let mut files = self.files();
        let v = files.remove(from).ok_or_else(|| Error::NotFound(from.to_string()))?;
        files.insert(to.to_string(), v);
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<bool> {
        check_path(path)?;
        let prefix = format!("{path}/");
        let mut files = self.files();
        let mut found = files.remove(path).is_some();
        let below: Vec<String> =
            files.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)).map(|(k, _)| k.clone()).collect();
        for k in below {
            files.remove(&k);
            found = true;
        }
        Ok(found)
    }

    async fn touch(&self, path: &str) -> Result<()> {
        check_path(path)?;
        match self.files().get_mut(path) {
            Some((_, t)) => {
                *t = SystemTime::now();
                Ok(())
            }
            None => Err(Error::NotFound(path.to_string())),
        }
    }
}
