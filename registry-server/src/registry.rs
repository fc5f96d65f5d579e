//! The registry's domain operations on a storage driver: blobs, uploads, manifests, tags,
//! referrers, catalog. HTTP handlers call these; so does garbage collection.

use crate::error::{AppError, Result};
use crate::paths;
use crate::storage::{ByteStream, StorageDriver};
use bytes::Bytes;
use futures::StreamExt;
use rbuild_image::digest::Hasher;
use rbuild_image::distribution::ErrorCode;
use rbuild_image::{Algorithm, Descriptor, Digest, RawManifest, media_type as mt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The most manifest bytes kept in the in-memory cache (content-addressed, so never stale).
const MANIFEST_CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Chunks queued between the request body and the hashing thread.
const HASH_QUEUE: usize = 16;

/// A manifest reference in a URL: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRef {
    /// A tag.
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl ManifestRef {
    /// Parse a URL's `<reference>`: a digest when it has a colon, else a tag.
    pub fn parse(s: &str) -> std::result::Result<ManifestRef, AppError> {
        if s.contains(':') {
            Digest::parse(s)
                .map(ManifestRef::Digest)
                .map_err(|e| AppError::new(ErrorCode::DigestInvalid, e.to_string()))
        } else {
            rbuild_image::reference::validate_tag(s).map_err(|e| AppError::new(ErrorCode::TagInvalid, e))?;
            Ok(ManifestRef::Tag(s.to_string()))
        }
    }
}

/// A manifest as stored: its bytes, the media type it was pushed with, its digest.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// The bytes exactly as pushed.
    pub bytes: Bytes,
    /// The media type it was pushed with.
    pub media_type: String,
    /// The digest of the bytes.
    pub digest: Digest,
}

/// What a manifest PUT did.
#[derive(Debug, Clone)]
pub struct PutManifest {
    /// The manifest's digest.
    pub digest: Digest,
    /// Its subject, if it has one.
    pub subject: Option<Digest>,
}

#[derive(Default)]
struct UploadState {
    /// A running hash over the first `hashed` bytes of the upload's data, when known.
    hasher: Option<Hasher>,
    hashed: u64,
}

#[derive(Default)]
struct ManifestCache {
    entries: HashMap<Digest, (Bytes, String)>,
    bytes: usize,
}

/// The registry: repositories on one storage driver.
pub struct Registry {
    driver: Arc<dyn StorageDriver>,
    uploads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<UploadState>>>>,
    cache: Mutex<ManifestCache>,
    /// Pushes that make content reachable hold it shared; garbage collection holds it exclusive.
    pub(crate) gc_lock: tokio::sync::RwLock<()>,
    bytes_in: AtomicU64,
}

fn bad_manifest(e: impl std::fmt::Display) -> AppError {
    AppError::new(ErrorCode::ManifestInvalid, e.to_string())
}

impl Registry {
    /// A registry on `driver`.
    pub fn new(driver: Arc<dyn StorageDriver>) -> Registry {
        Registry {
            driver,
            uploads: Mutex::new(HashMap::new()),
            cache: Mutex::new(ManifestCache::default()),
            gc_lock: tokio::sync::RwLock::new(()),
            bytes_in: AtomicU64::new(0),
        }
    }

    /// The storage driver.
    pub fn driver(&self) -> &Arc<dyn StorageDriver> {
        &self.driver
    }

    /// Blob bytes received so far (for metrics).
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    async fn read_link(&self, path: &str) -> Result<Option<Digest>> {
        match self.driver.get_content(path).await {
            Ok(b) => Ok(std::str::from_utf8(&b).ok().and_then(|s| Digest::parse(s.trim()).ok())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn write_link(&self, path: &str, d: &Digest) -> Result<()> {
        self.driver.put_content(path, Bytes::from(d.to_string())).await
    }

    async fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.driver.stat(path).await?.is_some())
    }

    /// Does the repository exist (anything stored under its name)?
    pub async fn repo_exists(&self, name: &str) -> Result<bool> {
        Ok(self.driver.stat(&paths::repo(name)).await?.is_some_and(|i| i.is_dir))
    }

    // ---- blobs ----

    /// The size of blob `d` if repository `name` may serve it (a layer link or a manifest).
    pub async fn blob_size(&self, name: &str, d: &Digest) -> Result<Option<u64>> {
        if !self.exists(&paths::layer_link(name, d)).await? && !self.exists(&paths::revision_link(name, d)).await? {
            return Ok(None);
        }
        Ok(self.driver.stat(&paths::blob_data(d)).await?.filter(|i| !i.is_dir).map(|i| i.size))
    }

    /// Stream blob `d` from `offset` (the caller checked access with [`Registry::blob_size`]).
    pub async fn blob_read(&self, d: &Digest, offset: u64) -> Result<ByteStream> {
        self.driver.read(&paths::blob_data(d), offset).await
    }

    /// Is blob `d` stored anywhere in the registry?
    pub async fn blob_exists_anywhere(&self, d: &Digest) -> Result<bool> {
        self.exists(&paths::blob_data(d)).await
    }

    /// Unlink blob `d` from repository `name`; false when it was not linked.
    pub async fn blob_delete(&self, name: &str, d: &Digest) -> Result<bool> {
        let link = paths::layer_link(name, d);
        if !self.exists(&link).await? {
            return Ok(false);
        }
        self.driver.delete(link.trim_end_matches("/link")).await
    }

    /// Link blob `d` into `name` when `from` (or, without `from`, any repository) has it.
    pub async fn mount(&self, name: &str, from: Option<&str>, d: &Digest) -> Result<bool> {
        let _g = self.gc_lock.read().await;
        let available = match from {
            Some(from) => self.blob_size(from, d).await?.is_some(),
            None => self.blob_exists_anywhere(d).await?,
        };
        if !available {
            return Ok(false);
        }
        // Touch first: a blob that was unreferenced must not be swept between here and the manifest.
        let _ = self.driver.touch(&paths::blob_data(d)).await;
        self.write_link(&paths::layer_link(name, d), d).await?;
        Ok(true)
    }

    // ---- uploads ----

    fn upload_state(&self, id: &str) -> Arc<tokio::sync::Mutex<UploadState>> {
        let mut map = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_string()).or_default().clone()
    }

    pub(crate) fn forget_upload(&self, id: &str) {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Start an upload session in `name`; returns its id.
    pub async fn upload_start(&self, name: &str) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        self.driver
            .put_content(&paths::upload_started(name, &id), Bytes::from(chrono::Utc::now().to_rfc3339()))
            .await?;
        self.driver.put_content(&paths::upload_data(name, &id), Bytes::new()).await?;
        Ok(id)
    }

    /// Bytes received by upload `id`, or `None` when there is no such upload.
    pub async fn upload_size(&self, name: &str, id: &str) -> Result<Option<u64>> {
        if !self.exists(&paths::upload_started(name, id)).await? {
            return Ok(None);
        }
        Ok(Some(self.driver.stat(&paths::upload_data(name, id)).await?.map(|i| i.size).unwrap_or(0)))
    }

    /// Append `body` to upload `id`. With `start`, the chunk must begin where the data ends
    /// (else `RANGE_INVALID`, 416). `alg` picks the running hash when the upload is empty.
    /// Returns the size after.
    pub async fn upload_append(
        &self,
        name: &str,
        id: &str,
        start: Option<u64>,
        body: ByteStream,
        alg: Algorithm,
    ) -> std::result::Result<u64, AppError> {
        let state = self.upload_state(id);
        let mut st = state.lock().await;
        let size = match self.upload_size(name, id).await? {
            Some(s) => s,
            None => {
                drop(st);
                self.forget_upload(id);
                return Err(AppError::new(ErrorCode::BlobUploadUnknown, format!("upload {id} not found in {name}")));
            }
        };
        if let Some(start) = start {
            if start != size {
                return Err(AppError::new(
                    ErrorCode::RangeInvalid,
                    format!("chunk starts at {start}, but upload {id} has {size} bytes"),
                ));
            }
        }
        if size == 0 {
            st.hasher = Some(alg.hasher());
            st.hashed = 0;
        } else if st.hashed != size {
            // Another replica, or a restart, wrote part of it: re-hash from storage at the end.
            st.hasher = None;
        }
        // Hash on a thread of its own, so receiving, hashing and writing run in parallel.
        let (htx, mut hrx) = tokio::sync::mpsc::channel::<Bytes>(HASH_QUEUE);
        let hash_task = st.hasher.take().map(|mut h| {
            tokio::task::spawn_blocking(move || {
                while let Some(b) = hrx.blocking_recv() {
                    h.update(&b);
                }
                h
            })
        });
        let hashing = hash_task.is_some();
        let counted = Arc::new(AtomicU64::new(0));
        let c2 = counted.clone();
        let stream: ByteStream = Box::pin(body.then(move |item| {
            let htx = htx.clone();
            let c2 = c2.clone();
            async move {
                if let Ok(b) = &item {
                    if hashing && !b.is_empty() {
                        let _ = htx.send(b.clone()).await;
                    }
                    c2.fetch_add(b.len() as u64, Ordering::Relaxed);
                }
                item
            }
        }));
        let result = self.driver.append(&paths::upload_data(name, id), stream).await;
        self.bytes_in.fetch_add(counted.load(Ordering::Relaxed), Ordering::Relaxed);
        let hasher = match hash_task {
            Some(t) => t.await.ok(),
            None => None,
        };
        match result {
            Ok(new_size) => {
                st.hashed = if hasher.is_some() { new_size } else { 0 };
                st.hasher = hasher;
                Ok(new_size)
            }
            Err(e) => {
                st.hasher = None;
                st.hashed = 0;
                Err(AppError::new(ErrorCode::BlobUploadInvalid, format!("upload {id}: {e}")))
            }
        }
    }

    /// Finish upload `id`: check the data against `expected`, make the blob visible and link
    /// it into `name`. On a mismatch the upload is cancelled (`DIGEST_INVALID`).
    pub async fn upload_finish(&self, name: &str, id: &str, expected: &Digest) -> std::result::Result<u64, AppError> {
        let state = self.upload_state(id);
        let mut st = state.lock().await;
        let data = paths::upload_data(name, id);
        let size = match self.upload_size(name, id).await? {
            Some(s) => s,
            None => {
                drop(st);
                self.forget_upload(id);
                return Err(AppError::new(ErrorCode::BlobUploadUnknown, format!("upload {id} not found in {name}")));
            }
        };
        let actual = match st.hasher.take() {
            Some(h) if st.hashed == size && h_alg(&h) == expected.algorithm() => h.finish(),
            _ => {
                let mut h = expected.algorithm().hasher();
                let mut s = self.driver.read(&data, 0).await?;
                while let Some(b) = s.next().await {
                    h.update(&b.map_err(|e| AppError::internal(format!("reading upload {id}: {e}")))?);
                }
                h.finish()
            }
        };
        st.hashed = 0;
        if &actual != expected {
            let _ = self.driver.delete(&paths::upload_dir(name, id)).await;
            drop(st);
            self.forget_upload(id);
            return Err(AppError::new(
                ErrorCode::DigestInvalid,
                format!("upload {id}: expected {expected}, the data hashes to {actual}"),
            ));
        }
        {
            let _g = self.gc_lock.read().await;
            let target = paths::blob_data(expected);
            if self.exists(&target).await? {
                let _ = self.driver.touch(&target).await;
            } else {
                self.driver.rename(&data, &target).await?;
            }
            self.write_link(&paths::layer_link(name, expected), expected).await?;
        }
        self.driver.delete(&paths::upload_dir(name, id)).await?;
        drop(st);
        self.forget_upload(id);
        Ok(size)
    }

    /// Cancel upload `id`; false when there was none.
    pub async fn upload_cancel(&self, name: &str, id: &str) -> Result<bool> {
        let state = self.upload_state(id);
        let _st = state.lock().await;
        let found = self.exists(&paths::upload_started(name, id)).await?;
        if found {
            self.driver.delete(&paths::upload_dir(name, id)).await?;
        }
        drop(_st);
        self.forget_upload(id);
        Ok(found)
    }

    // ---- manifests ----

    async fn resolve(&self, name: &str, r: &ManifestRef) -> Result<Option<Digest>> {
        let d = match r {
            ManifestRef::Tag(t) => match self.read_link(&paths::tag_link(name, t)).await? {
                Some(d) => d,
                None => return Ok(None),
            },
            ManifestRef::Digest(d) => d.clone(),
        };
        Ok(self.exists(&paths::revision_link(name, &d)).await?.then_some(d))
    }

    pub(crate) async fn load_manifest(&self, name: &str, d: &Digest) -> Result<Option<StoredManifest>> {
        if let Some((b, m)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).entries.get(d) {
            return Ok(Some(StoredManifest { bytes: b.clone(), media_type: m.clone(), digest: d.clone() }));
        }
        let bytes = match self.driver.get_content(&paths::blob_data(d)).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let media_type = match self.driver.get_content(&paths::revision_media_type(name, d)).await {
            Ok(m) => String::from_utf8_lossy(&m).into_owned(),
            Err(_) => RawManifest::parse(bytes.to_vec(), None)
                .map(|r| r.media_type().to_string())
                .unwrap_or_else(|_| mt::OCI_MANIFEST.to_string()),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.bytes + bytes.len() > MANIFEST_CACHE_BYTES {
            cache.entries.clear();
            cache.bytes = 0;
        }
        cache.bytes += bytes.len();
        cache.entries.insert(d.clone(), (bytes.clone(), media_type.clone()));
        Ok(Some(StoredManifest { bytes, media_type, digest: d.clone() }))
    }

    pub(crate) fn forget_cached(&self, d: &Digest) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((b, _)) = cache.entries.remove(d) {
            cache.bytes -= b.len();
        }
    }

    /// The manifest `r` of repository `name`.
    pub async fn manifest_get(&self, name: &str, r: &ManifestRef) -> Result<Option<StoredManifest>> {
        match self.resolve(name, r).await? {
            Some(d) => self.load_manifest(name, &d).await,
            None => Ok(None),
        }
    }

    async fn check_reference(&self, name: &str, d: &Descriptor, in_index: bool) -> std::result::Result<(), AppError> {
        if !d.urls.is_empty() && mt::is_non_distributable(&d.media_type) {
            return Ok(());
        }
        let as_manifest = self.exists(&paths::revision_link(name, &d.digest)).await?;
        let as_blob = !in_index && self.blob_size(name, &d.digest).await?.is_some();
        let ok = as_manifest || as_blob || (in_index && self.blob_size(name, &d.digest).await?.is_some());
        if ok {
            Ok(())
        } else {
            Err(AppError::new(
                ErrorCode::ManifestBlobUnknown,
                format!("{} ({}) is not in {name}", d.digest, d.media_type),
            ))
        }
    }

    /// Store a manifest pushed to `name` as `r` (and as each of `extra_tags`). Checks the
    /// bytes against a digest reference, the JSON, and that everything it references is in
    /// the repository.
    pub async fn manifest_put(
        &self,
        name: &str,
        r: &ManifestRef,
        bytes: Bytes,
        content_type: Option<&str>,
        extra_tags: &[String],
    ) -> std::result::Result<PutManifest, AppError> {
        let raw = match r {
            ManifestRef::Digest(d) => {
                let actual = Digest::of(d.algorithm(), &bytes);
                if &actual != d {
                    return Err(AppError::new(
                        ErrorCode::DigestInvalid,
                        format!("manifest pushed as {d} hashes to {actual}"),
                    ));
                }
                RawManifest::parse_with(bytes.to_vec(), content_type, d.algorithm()).map_err(bad_manifest)?
            }
            ManifestRef::Tag(_) => RawManifest::parse(bytes.to_vec(), content_type).map_err(bad_manifest)?,
        };
        if let Some(ct) = content_type.map(|c| c.split(';').next().unwrap_or(c).trim()) {
            if !ct.is_empty() && ct != raw.media_type() && ct != "application/json" && ct != "application/octet-stream"
            {
                return Err(bad_manifest(format!(
                    "content type {ct:?} does not match the manifest's {:?}",
                    raw.media_type()
                )));
            }
        }
        let is_index = raw.as_index().is_some();
        for d in raw.references() {
            self.check_reference(name, d, is_index).await?;
        }
        let digest = raw.digest().clone();
        let subject = raw.subject().map(|s| s.digest.clone());
        let _g = self.gc_lock.read().await;
        let blob = paths::blob_data(&digest);
        if self.exists(&blob).await? {
            let _ = self.driver.touch(&blob).await;
        } else {
            self.driver.put_content(&blob, bytes.clone()).await?;
        }
        self.driver
            .put_content(&paths::revision_media_type(name, &digest), Bytes::from(raw.media_type().to_string()))
            .await?;
        self.write_link(&paths::revision_link(name, &digest), &digest).await?;
        if let Some(s) = &subject {
            let desc = referrer_descriptor(&raw);
            let json = serde_json::to_vec(&desc).map_err(AppError::internal)?;
            self.driver.put_content(&paths::referrer_link(name, s, &digest), Bytes::from(json)).await?;
        }
        let tags = match r {
            ManifestRef::Tag(t) => std::iter::once(t).chain(extra_tags.iter()).collect::<Vec<_>>(),
            ManifestRef::Digest(_) => extra_tags.iter().collect(),
        };
        for t in tags {
            self.write_link(&paths::tag_link(name, t), &digest).await?;
        }
        Ok(PutManifest { digest, subject })
    }

    /// Delete manifest `r`: by tag, the tag only; by digest, the manifest, every tag
    /// pointing at it and its referrer entry. False when there was nothing.
    pub async fn manifest_delete(&self, name: &str, r: &ManifestRef) -> Result<bool> {
        match r {
            ManifestRef::Tag(t) => {
                if !self.exists(&paths::tag_link(name, t)).await? {
                    return Ok(false);
                }
                self.driver.delete(&paths::tag_dir(name, t)).await
            }
            ManifestRef::Digest(d) => {
                if !self.exists(&paths::revision_link(name, d)).await? {
                    return Ok(false);
                }
                self.unlink_manifest(name, d).await?;
                Ok(true)
            }
        }
    }

    /// Remove a manifest revision, the tags pointing at it and its referrer entry.
    pub(crate) async fn unlink_manifest(&self, name: &str, d: &Digest) -> Result<()> {
        if let Some(m) = self.load_manifest(name, d).await? {
            if let Ok(raw) = RawManifest::parse_with(m.bytes.to_vec(), Some(&m.media_type), d.algorithm()) {
                if let Some(s) = raw.subject() {
                    let link = paths::referrer_link(name, &s.digest, d);
                    self.driver.delete(link.trim_end_matches("/link")).await?;
                }
            }
        }
        self.driver.delete(&paths::revision_dir(name, d)).await?;
        for t in self.driver.list(&paths::tags(name)).await? {
            if self.read_link(&paths::tag_link(name, &t)).await?.as_ref() == Some(d) {
                self.driver.delete(&paths::tag_dir(name, &t)).await?;
            }
        }
        Ok(())
    }

    // ---- listings ----

    /// Tags of `name`, sorted; `None` when the repository does not exist.
    pub async fn tags(&self, name: &str) -> Result<Option<Vec<String>>> {
        if !self.repo_exists(name).await? {
            return Ok(None);
        }
        let mut tags = self.driver.list(&paths::tags(name)).await?;
        tags.sort();
        Ok(Some(tags))
    }

    /// Every manifest digest stored in `name`.
    pub async fn revisions(&self, name: &str) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        let base = paths::revisions(name);
        for alg in self.driver.list(&base).await? {
            for hex in self.driver.list(&format!("{base}/{alg}")).await? {
                if let Ok(d) = Digest::parse(&format!("{alg}:{hex}")) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Descriptors of the manifests in `name` whose subject is `subject`, optionally only
    /// those of `artifact_type`; sorted by digest.
    pub async fn referrers(
        &self,
        name: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let base = paths::referrers_of(name, subject);
        let mut out = Vec::new();
        for alg in self.driver.list(&base).await? {
            for hex in self.driver.list(&format!("{base}/{alg}")).await? {
                let Ok(d) = Digest::parse(&format!("{alg}:{hex}")) else { continue };
                if !self.exists(&paths::revision_link(name, &d)).await? {
                    continue;
                }
                let Ok(b) = self.driver.get_content(&paths::referrer_link(name, subject, &d)).await else { continue };
                let Ok(desc) = serde_json::from_slice::<Descriptor>(&b) else { continue };
                if artifact_type.is_none_or(|t| desc.artifact_type.as_deref() == Some(t)) {
                    out.push(desc);
                }
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Every repository name, sorted.
    pub async fn catalog(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(name) = stack.pop() {
            let dir = if name.is_empty() { paths::REPOSITORIES.to_string() } else { paths::repo(&name) };
            let children = self.driver.list(&dir).await?;
            if children.iter().any(|c| c.starts_with('_')) {
                out.push(name.clone());
            }
            for c in children.into_iter().filter(|c| !c.starts_with('_')) {
                stack.push(if name.is_empty() { c } else { format!("{name}/{c}") });
            }
        }
        out.sort();
        Ok(out)
    }
}

fn h_alg(h: &Hasher) -> Algorithm {
    match h {
        Hasher::Sha256(_) => Algorithm::Sha256,
        Hasher::Sha512(_) => Algorithm::Sha512,
    }
}

/// The descriptor the referrers API lists for `raw`: its artifact type (or, for an image
/// manifest without one, its config's media type) and its annotations.
pub fn referrer_descriptor(raw: &RawManifest) -> Descriptor {
    let mut d = raw.descriptor();
    match raw.parsed() {
        rbuild_image::manifest::Parsed::Image(m) => {
            d.artifact_type = m.artifact_type.clone().or_else(|| Some(m.config.media_type.clone()));
            d.annotations = m.annotations.clone();
        }
        rbuild_image::manifest::Parsed::Index(i) => {
            d.artifact_type = i.artifact_type.clone();
            d.annotations = i.annotations.clone();
        }
    }
    d
}
