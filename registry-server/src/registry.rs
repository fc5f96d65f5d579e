//! The registry's domain operations on a storage driver: blobs, uploads, manifests, tags,
//! referrers, catalog. HTTP handlers call these; so does garbage collection.
//!
//! Reads go through the replica's [`Cache`] (see [`crate::cache`] for what it may serve
//! stale, and for how long). Everything that makes a blob referenced — finishing an upload,
//! a mount, a manifest PUT — first *claims* the blobs it relies on, in storage, so garbage
//! collection on any replica leaves them alone (the protocol and its argument are in
//! [`crate::gc`]).

use crate::cache::Cache;
use crate::config::Config;
use crate::error::{AppError, Error, Result};
use crate::gc::{CLAIM_LIMIT, CLOCK_SKEW, CONDEMN_LIMIT};
use crate::paths;
use crate::storage::{ByteStream, StorageDriver};
use bytes::Bytes;
use futures::StreamExt;
use rbuild_image::digest::Hasher;
use rbuild_image::distribution::ErrorCode;
use rbuild_image::{Algorithm, Descriptor, Digest, RawManifest, media_type as mt};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The most manifest bytes kept in the in-memory cache (content-addressed, so never stale).
const MANIFEST_CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Chunks queued between the request body and the hashing thread.
const HASH_QUEUE: usize = 16;
/// The longest a push waits for garbage collection to decide about a blob it claims.
const CONDEMNED_WAIT: Duration = Duration::from_secs(30);
/// Storage requests of one claim or release in flight at once.
const CLAIM_CONCURRENCY: usize = 8;
/// The refresh interval of the cache on S3 when the config leaves it out.
pub const DEFAULT_S3_CACHE_REFRESH: Duration = Duration::from_secs(1);

/// `blobs/<alg>/<xx>/<hex>/condemned`: garbage collection is deciding whether to delete the
/// blob (content: the collector's clock, Unix milliseconds).
pub fn condemned_path(d: &Digest) -> String {
    format!("{}/condemned", paths::blob_dir(d))
}

/// `blobs/<alg>/<xx>/<hex>/claims`: one object per push relying on the blob right now.
pub fn claims_dir(d: &Digest) -> String {
    format!("{}/claims", paths::blob_dir(d))
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A time in Unix milliseconds written by [`now_ms`], if `b` holds one.
pub(crate) fn parse_ms(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.trim().parse().ok()
}

/// How a [`Registry`] caches and refreshes.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Re-read the bucket's generation this often (the cache's staleness bound); zero: no cache.
    pub cache_refresh: Duration,
    /// Refresh a blob's last-used mark on HEAD/GET at most this often per replica.
    pub touch_every: Duration,
}

impl RegistryOptions {
    /// The defaults for a driver named `driver`: the cache on for `s3`, off otherwise.
    pub fn for_driver(driver: &str) -> RegistryOptions {
        let cache_refresh = if driver == "s3" { DEFAULT_S3_CACHE_REFRESH } else { Duration::ZERO };
        RegistryOptions { cache_refresh, touch_every: Duration::from_secs(900) }
    }

    /// What `config` asks for, on a driver named `driver`.
    pub fn from_config(config: &Config, driver: &str) -> RegistryOptions {
        let mut o = RegistryOptions::for_driver(driver);
        if let Some(r) = config.storage.cache_refresh {
            o.cache_refresh = r;
        }
        // A HEAD then a manifest PUT within the grace period must find the blob still there.
        o.touch_every = config.gc.grace / 4;
        o
    }
}

/// Blobs a push relies on, claimed in storage until [`Registry::release`].
pub(crate) struct Claim {
    id: String,
    digests: Vec<Digest>,
    present: HashSet<Digest>,
    at: Instant,
}

impl Claim {
    /// Was blob `d`'s data there once the claim held?
    pub(crate) fn present(&self, d: &Digest) -> bool {
        self.present.contains(d)
    }
}

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
    /// Links, blob sizes and tags, invalidated across replicas.
    pub(crate) hot: Cache,
    /// When this replica last refreshed each blob's last-used mark on a read.
    touched: Mutex<HashMap<Digest, Instant>>,
    touch_every: Duration,
    bytes_in: AtomicU64,
}

fn bad_manifest(e: impl std::fmt::Display) -> AppError {
    AppError::new(ErrorCode::ManifestInvalid, e.to_string())
}

impl Registry {
    /// A registry on `driver`, with the defaults for its kind (the cache on for S3).
    pub fn new(driver: Arc<dyn StorageDriver>) -> Registry {
        let opts = RegistryOptions::for_driver(driver.name());
        Registry::with_options(driver, opts)
    }

    /// A registry on `driver`, cached as `config` says.
    pub fn with_config(driver: Arc<dyn StorageDriver>, config: &Config) -> Registry {
        let opts = RegistryOptions::from_config(config, driver.name());
        Registry::with_options(driver, opts)
    }

    /// A registry on `driver` with explicit options.
    pub fn with_options(driver: Arc<dyn StorageDriver>, opts: RegistryOptions) -> Registry {
        Registry {
            driver,
            uploads: Mutex::new(HashMap::new()),
            cache: Mutex::new(ManifestCache::default()),
            hot: Cache::new(opts.cache_refresh),
            touched: Mutex::new(HashMap::new()),
            touch_every: opts.touch_every,
            bytes_in: AtomicU64::new(0),
        }
    }

    /// The cache's refresh interval (zero: no cache).
    pub fn cache_refresh(&self) -> Duration {
        self.hot.refresh()
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

    /// Does link `path` exist? From the cache when known, else from storage (and cached).
    async fn link_cached(&self, epoch: u64, path: &str) -> Result<bool> {
        if self.hot.link(path) {
            return Ok(true);
        }
        let found = self.exists(path).await?;
        if found {
            self.hot.fill_link(epoch, path);
        }
        Ok(found)
    }

    /// Size of blob `d`'s data if it is there, from the cache when known.
    async fn data_size_cached(&self, epoch: u64, d: &Digest) -> Result<Option<u64>> {
        if let Some(s) = self.hot.blob(d) {
            return Ok(Some(s));
        }
        let size = self.driver.stat(&paths::blob_data(d)).await?.filter(|i| !i.is_dir).map(|i| i.size);
        if let Some(s) = size {
            self.hot.fill_blob(epoch, d, s);
        }
        Ok(size)
    }

    /// Refresh blob `d`'s last-used mark (at most once per `touch_every` on this replica),
    /// so a HEAD followed by a manifest PUT within the grace period finds it still there.
    /// False when the blob is gone or garbage collection is deleting it.
    async fn touch_used(&self, d: &Digest) -> Result<bool> {
        {
            let t = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            if t.get(d).is_some_and(|at| at.elapsed() < self.touch_every) {
                return Ok(true);
            }
        }
        match self.driver.touch(&paths::blob_data(d)).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e),
        }
        if self.condemned_fresh(d).await?.is_some() {
            return Ok(false);
        }
        let mut t = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        if t.len() > 100_000 {
            t.clear();
        }
        t.insert(d.clone(), Instant::now());
        Ok(true)
    }

    /// The time of blob `d`'s condemned marker, when there is one a collector may still act on.
    async fn condemned_fresh(&self, d: &Digest) -> Result<Option<u64>> {
        let at = match self.driver.get_content(&condemned_path(d)).await {
            Ok(b) => parse_ms(&b).unwrap_or(0),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let limit = (CONDEMN_LIMIT + CLOCK_SKEW).as_millis() as u64;
        Ok((now_ms().saturating_sub(at) < limit).then_some(at))
    }

    /// Claim blobs `digests` for a push: write a claim object for each, then wait out any
    /// collector deciding about it, then see which are there. Garbage collection never deletes
    /// a blob with a live claim (the argument is in [`crate::gc`]). Release with
    /// [`Registry::release`] whatever happens.
    pub(crate) async fn claim(&self, digests: &[Digest]) -> std::result::Result<Claim, AppError> {
        let mut uniq: Vec<Digest> = digests.to_vec();
        uniq.sort();
        uniq.dedup();
        let claim = Claim {
            id: uuid::Uuid::new_v4().simple().to_string(),
            digests: uniq,
            present: HashSet::new(),
            at: Instant::now(),
        };
        let id = claim.id.clone();
        let results: Vec<std::result::Result<Option<Digest>, AppError>> = futures::stream::iter(claim.digests.clone())
            .map(|d| {
                let id = id.clone();
                async move {
                    let k = format!("{}/{id}", claims_dir(&d));
                    self.driver.put_volatile(&k, Bytes::from(now_ms().to_string())).await?;
                    // The claim is written before the condemned marker is read: a collector
                    // that condemned the blob after this read sees the claim.
                    let waited = Instant::now();
                    while self.condemned_fresh(&d).await?.is_some() {
                        if waited.elapsed() > CONDEMNED_WAIT {
                            return Err(AppError::new(
                                ErrorCode::Unavailable,
                                format!("blob {d} is being garbage-collected; retry in a minute"),
                            ));
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    let there = self.driver.stat(&paths::blob_data(&d)).await?.is_some_and(|i| !i.is_dir);
                    Ok(there.then_some(d))
                }
            })
            .buffer_unordered(CLAIM_CONCURRENCY)
            .collect()
            .await;
        let mut claim = claim;
        let mut err = None;
        for r in results {
            match r {
                Ok(Some(d)) => {
                    claim.present.insert(d);
                }
                Ok(None) => {}
                Err(e) => err = Some(e),
            }
        }
        if let Some(e) = err {
            self.release(claim).await;
            return Err(e);
        }
        Ok(claim)
    }

    /// Drop a claim's objects (best effort: a leftover claim expires after [`CLAIM_LIMIT`]).
    pub(crate) async fn release(&self, claim: Claim) {
        let id = claim.id;
        futures::stream::iter(claim.digests)
            .for_each_concurrent(CLAIM_CONCURRENCY, |d| {
                let k = format!("{}/{id}", claims_dir(&d));
                async move {
                    if let Err(e) = self.driver.delete(&k).await {
                        tracing::warn!(claim = %k, error = %e, "could not remove a blob claim; it expires on its own");
                    }
                }
            })
            .await;
    }

    /// Fail when a claim is too old for garbage collection to still honour it.
    fn check_claim_age(claim: &Claim) -> std::result::Result<(), AppError> {
        if claim.at.elapsed() >= CLAIM_LIMIT {
            return Err(AppError::new(
                ErrorCode::Unavailable,
                format!("the push took longer than {}s; retry", CLAIM_LIMIT.as_secs()),
            ));
        }
        Ok(())
    }

    /// Does the repository exist (anything stored under its name)?
    pub async fn repo_exists(&self, name: &str) -> Result<bool> {
        Ok(self.driver.stat(&paths::repo(name)).await?.is_some_and(|i| i.is_dir))
    }

    // ---- blobs ----

    /// The size of blob `d` if repository `name` may serve it (a layer link or a manifest).
    /// Answers from the cache when it can, and refreshes the blob's last-used mark (a client
    /// that HEADs a blob, finds it, and skips the upload must still find it at its manifest
    /// PUT).
    pub async fn blob_size(&self, name: &str, d: &Digest) -> Result<Option<u64>> {
        let epoch = self.hot.sync(&*self.driver).await?;
        if !self.link_cached(epoch, &paths::layer_link(name, d)).await?
            && !self.link_cached(epoch, &paths::revision_link(name, d)).await?
        {
            return Ok(None);
        }
        let Some(size) = self.data_size_cached(epoch, d).await? else { return Ok(None) };
        if !self.touch_used(d).await? {
            return Ok(None);
        }
        Ok(Some(size))
    }

    /// [`Registry::blob_size`] from storage, without the cache or a touch.
    async fn blob_size_uncached(&self, name: &str, d: &Digest) -> Result<Option<u64>> {
        if !self.exists(&paths::layer_link(name, d)).await? && !self.exists(&paths::revision_link(name, d)).await? {
            return Ok(None);
        }
        Ok(self.driver.stat(&paths::blob_data(d)).await?.filter(|i| !i.is_dir).map(|i| i.size))
    }

    /// Stream blob `d` from `offset` (the caller checked access with [`Registry::blob_size`]).
    /// Gone since the cache said it was there (deleted on another replica less than one
    /// refresh interval ago): `BLOB_UNKNOWN`, and this replica forgets what it cached.
    pub async fn blob_read(&self, d: &Digest, offset: u64) -> std::result::Result<ByteStream, AppError> {
        match self.driver.read(&paths::blob_data(d), offset).await {
            Ok(s) => Ok(s),
            Err(e) if e.is_not_found() => {
                self.hot.drop_local();
                Err(AppError::new(ErrorCode::BlobUnknown, format!("blob {d} was deleted")))
            }
            Err(e) => Err(e.into()),
        }
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
        let found = self.driver.delete(link.trim_end_matches("/link")).await?;
        self.hot.bump(&*self.driver).await?;
        Ok(found)
    }

    /// Link blob `d` into `name` when `from` (or, without `from`, any repository) has it.
    pub async fn mount(&self, name: &str, from: Option<&str>, d: &Digest) -> std::result::Result<bool, AppError> {
        let available = match from {
            Some(from) => self.blob_size_uncached(from, d).await?.is_some(),
            None => self.blob_exists_anywhere(d).await?,
        };
        if !available {
            return Ok(false);
        }
        // Claimed, a blob nobody referenced cannot be swept between here and the link; and the
        // fresh mark keeps it through the grace period, until the manifest arrives.
        let claim = self.claim(std::slice::from_ref(d)).await?;
        let r = async {
            if !claim.present(d) {
                return Ok(false);
            }
            let _ = self.driver.touch(&paths::blob_data(d)).await;
            Self::check_claim_age(&claim)?;
            self.write_link(&paths::layer_link(name, d), d).await?;
            Ok::<bool, AppError>(true)
        }
        .await;
        self.release(claim).await;
        r
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
                // The store failing mid-chunk is a 503 (retry), not the client's fault.
                Err(if e.is_unavailable() {
                    e.into()
                } else if e.is_not_found() {
                    // A collection took the idle session between the client's requests.
                    AppError::new(ErrorCode::BlobUploadUnknown, format!("upload {id} not found in {name}"))
                } else if let Error::Storage { source, .. } = &e
                    && source.kind() == std::io::ErrorKind::TimedOut
                {
                    // The session keeps what arrived: the client asks for the Range and goes on.
                    AppError::new(
                        ErrorCode::BlobUploadInvalid,
                        format!("upload {id}: {source}; continue from its Range"),
                    )
                    .with_status(http::StatusCode::REQUEST_TIMEOUT)
                } else {
                    AppError::new(ErrorCode::BlobUploadInvalid, format!("upload {id}: {e}"))
                })
            }
        }
    }

    /// Finish upload `id`: check the data against `expected`, make the blob visible and link
    /// it into `name`. On a mismatch the upload is cancelled (`DIGEST_INVALID`).
    pub async fn upload_finish(&self, name: &str, id: &str, expected: &Digest) -> std::result::Result<u64, AppError> {
        let state = self.upload_state(id);
        let mut st = state.lock().await;
        let data = paths::upload_data(name, id);
        // A collection may take an idle session between our look at it and our use of its
        // data: to the client that is the session being gone, not a server fault.
        let gone = |e: Error| -> AppError {
            if e.is_not_found() {
                AppError::new(ErrorCode::BlobUploadUnknown, format!("upload {id} not found in {name}"))
            } else {
                e.into()
            }
        };
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
                let mut s = self.driver.read(&data, 0).await.map_err(gone)?;
                while let Some(b) = s.next().await {
                    h.update(&b.map_err(|e| match e.kind() {
                        std::io::ErrorKind::NotFound => gone(Error::NotFound(data.clone())),
                        _ => AppError::internal(format!("reading upload {id}: {e}")),
                    })?);
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
            let target = paths::blob_data(expected);
            let claim = self.claim(std::slice::from_ref(expected)).await?;
            let r = async {
                if claim.present(expected) {
                    let _ = self.driver.touch(&target).await;
                } else {
                    self.driver.rename(&data, &target).await.map_err(gone)?;
                }
                Self::check_claim_age(&claim)?;
                self.write_link(&paths::layer_link(name, expected), expected).await?;
                Ok::<(), AppError>(())
            }
            .await;
            self.release(claim).await;
            r?;
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
        let epoch = self.hot.sync(&*self.driver).await?;
        let d = match r {
            ManifestRef::Tag(t) => {
                let path = paths::tag_link(name, t);
                match self.hot.tag(&path) {
                    Some(d) => d,
                    None => {
                        let at = Instant::now();
                        match self.read_link(&path).await? {
                            Some(d) => {
                                self.hot.fill_tag(epoch, &path, &d, at);
                                d
                            }
                            None => return Ok(None),
                        }
                    }
                }
            }
            ManifestRef::Digest(d) => d.clone(),
        };
        Ok(self.link_cached(epoch, &paths::revision_link(name, &d)).await?.then_some(d))
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

    /// Is `d` in `name`? Asked of storage, never the cache, with `d` already claimed.
    async fn check_reference(&self, name: &str, d: &Descriptor, claim: &Claim) -> std::result::Result<(), AppError> {
        if !d.urls.is_empty() && mt::is_non_distributable(&d.media_type) {
            return Ok(());
        }
        let ok = claim.present(&d.digest)
            && (self.exists(&paths::revision_link(name, &d.digest)).await?
                || self.exists(&paths::layer_link(name, &d.digest)).await?);
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
        // Claim everything the manifest relies on (and its own blob) before checking it is
        // there; hold the claims until the manifest and its tags are written.
        let mut wanted: Vec<Digest> = raw
            .references()
            .iter()
            .filter(|d| d.urls.is_empty() || !mt::is_non_distributable(&d.media_type))
            .map(|d| d.digest.clone())
            .collect();
        wanted.push(raw.digest().clone());
        let claim = self.claim(&wanted).await?;
        let result = self.manifest_put_claimed(name, r, &raw, bytes, extra_tags, &claim).await;
        self.release(claim).await;
        result
    }

    async fn manifest_put_claimed(
        &self,
        name: &str,
        r: &ManifestRef,
        raw: &RawManifest,
        bytes: Bytes,
        extra_tags: &[String],
        claim: &Claim,
    ) -> std::result::Result<PutManifest, AppError> {
        // Read before anything is written, so a store failing here leaves no half-PUT.
        let epoch = self.hot.sync(&*self.driver).await?;
        for d in raw.references() {
            self.check_reference(name, d, claim).await?;
        }
        let digest = raw.digest().clone();
        let subject = raw.subject().map(|s| s.digest.clone());
        Self::check_claim_age(claim)?;
        let blob = paths::blob_data(&digest);
        if claim.present(&digest) {
            let _ = self.driver.touch(&blob).await;
        } else {
            self.driver.put_content(&blob, bytes.clone()).await?;
        }
        self.driver
            .put_content(&paths::revision_media_type(name, &digest), Bytes::from(raw.media_type().to_string()))
            .await?;
        self.write_link(&paths::revision_link(name, &digest), &digest).await?;
        if let Some(s) = &subject {
            let desc = referrer_descriptor(raw);
            let json = serde_json::to_vec(&desc).map_err(AppError::internal)?;
            self.driver.put_content(&paths::referrer_link(name, s, &digest), Bytes::from(json)).await?;
        }
        let tags = match r {
            ManifestRef::Tag(t) => std::iter::once(t).chain(extra_tags.iter()).collect::<Vec<_>>(),
            ManifestRef::Digest(_) => extra_tags.iter().collect(),
        };
        for t in tags {
            let path = paths::tag_link(name, t);
            let at = Instant::now();
            self.write_link(&path, &digest).await?;
            // This replica sees its own tag move at once; the others within the refresh interval.
            self.hot.fill_tag(epoch, &path, &digest, at);
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
                let found = self.driver.delete(&paths::tag_dir(name, t)).await?;
                self.hot.bump(&*self.driver).await?;
                Ok(found)
            }
            ManifestRef::Digest(d) => {
                if !self.exists(&paths::revision_link(name, d)).await? {
                    return Ok(false);
                }
                self.unlink_manifest(name, d).await?;
                self.hot.bump(&*self.driver).await?;
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
