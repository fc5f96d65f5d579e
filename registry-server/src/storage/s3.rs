//! The S3 driver: everything in one bucket (under an optional key prefix), so any number of
//! registry replicas behind a load balancer share blobs, manifests, tags and upload sessions.
//!
//! A storage path `p` is the object `<prefix>/p`. Directories are implied by keys below them
//! (`list` is a delimiter listing, `delete` of a directory deletes every key below it).
//!
//! S3 has no append and no way to change an object's time without rewriting it, so each file
//! has a hidden metadata directory next to it, `<dir>/.s3meta/<name>/` (names starting with
//! `.` never show in listings; registry paths never use them):
//! - `part-0000000001`, `part-0000000002`…: what [`StorageDriver::append`] added, one object
//!   per append. The file's content is the base object `p` followed by its parts in order, and
//!   `stat`, `read`, `get_content` and `rename` see that concatenation. An upload session is
//!   thus continued by whichever replica gets the next PATCH: it lists the parts and writes the
//!   next one. (Appends to one file must not race each other; the registry serializes them
//!   per upload through the protocol's `Content-Range` check.)
//! - `touched-<unix nanoseconds>`: an empty object written by [`StorageDriver::touch`] (S3
//!   times have a one-second resolution, so the time is in the name, which a listing shows);
//!   the file's modification time is the latest of the base object, its parts and this marker.
//!
//! `rename` of a plain file is a server-side copy + delete; of a file with parts it streams
//! the concatenation into one new object (multipart upload), then deletes the parts. Writes
//! stream: a body of up to [`PART_SIZE`] bytes is one PUT, anything larger a multipart upload
//! of [`PART_SIZE`] parts, so a blob is never held whole in memory. An object becomes visible
//! only when its PUT or multipart upload completes, which makes `write` atomic; replacing a
//! file with parts deletes the parts afterwards (a reader in between may see the old parts).
//!
//! The bucket is created on first use when missing (a signed `PUT Bucket`) if the credentials
//! are static keys (config or `AWS_*` variables); with a role or profile it must exist.

use super::{ByteStream, FileInfo, StorageDriver, check_path};
use crate::config::S3Config;
use crate::error::{Error, Result};
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsAuthorizer, AwsCredential};
use object_store::path::Path as OPath;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload, WriteMultipart};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Size of the parts of a multipart upload (S3's minimum for all but the last part).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded at once by one write.
const PART_CONCURRENCY: usize = 2;
/// The hidden metadata directory's name.
const META: &str = ".s3meta";

/// Storage in an S3 bucket (AWS or any S3-compatible store: SeaweedFS, MinIO, Ceph…).
#[derive(Debug)]
pub struct S3Driver {
    store: Arc<AmazonS3>,
    prefix: String,
    bucket_ready: tokio::sync::OnceCell<()>,
    bucket: String,
    endpoint: String,
    path_style: bool,
    region: String,
    credential: Option<AwsCredential>,
}

fn store_err(path: &str) -> impl Fn(object_store::Error) -> Error + '_ {
    move |e| match e {
        object_store::Error::NotFound { .. } => Error::NotFound(path.to_string()),
        e => Error::Storage { path: path.to_string(), source: std::io::Error::other(e) },
    }
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

/// One piece of a file: an object key and its size.
struct Segment {
    key: OPath,
    size: u64,
}

/// What is stored for one file: the base object, its appended parts, its touch marker.
struct Layout {
    base: Option<object_store::ObjectMeta>,
    parts: Vec<object_store::ObjectMeta>,
    touched: Option<SystemTime>,
}

impl Layout {
    fn exists(&self) -> bool {
        self.base.is_some() || !self.parts.is_empty()
    }

    fn size(&self) -> u64 {
        self.segments().iter().map(|s| s.size).sum()
    }

    fn modified(&self) -> SystemTime {
        let times = self.base.iter().chain(&self.parts).map(|m| SystemTime::from(m.last_modified));
        times.chain(self.touched).max().unwrap_or(SystemTime::UNIX_EPOCH)
    }

    fn segments(&self) -> Vec<Segment> {
        self.base.iter().chain(&self.parts).map(|m| Segment { key: m.location.clone(), size: m.size }).collect()
    }
}

impl S3Driver {
    /// A driver on the bucket `cfg` names; settings it leaves out come from the `AWS_*`
    /// environment variables. Nothing is sent until the first operation.
    pub fn new(cfg: &S3Config) -> Result<S3Driver> {
        let bad = |reason: String| Error::Config { where_: "storage.s3".into(), reason };
        if cfg.bucket.is_empty() {
            return Err(bad("bucket is empty".into()));
        }
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&cfg.bucket);
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let region = cfg
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        b = b.with_region(&region);
        if let Some(e) = &cfg.endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        if let Some(k) = &cfg.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &cfg.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        b = b.with_virtual_hosted_style_request(!cfg.path_style);
        let store = b.build().map_err(|e| bad(e.to_string()))?;
        let key_id = cfg.access_key_id.clone().or_else(|| env("AWS_ACCESS_KEY_ID"));
        let secret = cfg.secret_access_key.clone().or_else(|| env("AWS_SECRET_ACCESS_KEY"));
        let credential = match (key_id, secret) {
            (Some(key_id), Some(secret_key)) => {
                Some(AwsCredential { key_id, secret_key, token: env("AWS_SESSION_TOKEN") })
            }
            _ => None,
        };
        let endpoint = cfg.endpoint.clone().unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        Ok(S3Driver {
            store: Arc::new(store),
            prefix: cfg.prefix.trim_matches('/').to_string(),
            bucket_ready: tokio::sync::OnceCell::new(),
            bucket: cfg.bucket.clone(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            path_style: cfg.path_style,
            region,
            credential,
        })
    }

    /// Create the bucket when it does not exist yet (once per driver).
    async fn ready(&self) -> Result<()> {
        self.bucket_ready.get_or_try_init(|| self.create_bucket()).await.map(|_| ())
    }

    async fn create_bucket(&self) -> Result<()> {
        let fail = |reason: String| Error::Storage {
            path: format!("bucket {}", self.bucket),
            source: std::io::Error::other(reason),
        };
        let url = if self.path_style {
            format!("{}/{}", self.endpoint, self.bucket)
        } else {
            match self.endpoint.split_once("://") {
                Some((scheme, host)) => format!("{scheme}://{}.{host}", self.bucket),
                None => format!("https://{}.{}", self.bucket, self.endpoint),
            }
        };
        let Some(credential) = &self.credential else {
            // Credentials from a role or profile: the bucket must exist already.
            return Ok(());
        };
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let send = |method: http::Method, body: Bytes| {
            let mut req = http::Request::builder()
                .method(method)
                .uri(&url)
                .body(object_store::client::HttpRequestBody::from(body.clone()))
                .map_err(|e| fail(e.to_string()))?;
            AwsAuthorizer::new(credential, "s3", &self.region).authorize(&mut req, None);
            let mut r = client.request(req.method().clone(), &url).body(body);
            for (k, v) in req.headers() {
                r = r.header(k, v);
            }
            Ok::<_, Error>(r.send())
        };
        let head = send(http::Method::HEAD, Bytes::new())?.await.map_err(|e| fail(e.to_string()))?;
        if head.status() != reqwest::StatusCode::NOT_FOUND {
            // There (or not ours to see: a 403 is left for the first real request to report).
            return Ok(());
        }
        // Outside us-east-1, S3 wants the region in the body.
        let body = if self.region == "us-east-1" {
            Bytes::new()
        } else {
            Bytes::from(format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.region
            ))
        };
        let put = send(http::Method::PUT, body)?.await.map_err(|e| fail(e.to_string()))?;
        let status = put.status();
        if status.is_success() || status == reqwest::StatusCode::CONFLICT {
            return Ok(()); // CONFLICT: another replica created it first
        }
        let body = put.text().await.unwrap_or_default();
        Err(fail(format!("creating the bucket: {status}: {body}")))
    }

    fn key(&self, path: &str) -> OPath {
        if self.prefix.is_empty() { OPath::from(path) } else { OPath::from(format!("{}/{path}", self.prefix)) }
    }

    /// `<dir>/.s3meta/<name>`: the metadata directory of file `path`.
    fn meta_dir(&self, path: &str) -> OPath {
        match path.rsplit_once('/') {
            Some((dir, name)) => self.key(&format!("{dir}/{META}/{name}")),
            None => self.key(&format!("{META}/{path}")),
        }
    }

    async fn layout(&self, path: &str) -> Result<Layout> {
        let base = match self.store.head(&self.key(path)).await {
            Ok(m) => Some(m),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(store_err(path)(e)),
        };
        let meta: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&self.meta_dir(path))).try_collect().await.map_err(store_err(path))?;
        let mut parts = Vec::new();
        let mut touched = None;
        for m in meta {
            match m.location.filename() {
                Some(n) if n.starts_with("part-") => parts.push(m),
                Some(n) if n.starts_with("touched-") => {
                    let t = n["touched-".len()..].parse::<u64>().ok().map(|ns| UNIX_EPOCH + Duration::from_nanos(ns));
                    touched = touched.max(t);
                }
                _ => {}
            }
        }
        parts.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(Layout { base, parts, touched })
    }

    /// Delete every object below `dir` (a key prefix); whether there was any.
    async fn delete_below(&self, path: &str, dir: &OPath) -> Result<bool> {
        let keys: Vec<OPath> =
            self.store.list(Some(dir)).map_ok(|m| m.location).try_collect().await.map_err(store_err(path))?;
        let found = !keys.is_empty();
        let mut results = self.store.delete_stream(futures::stream::iter(keys.into_iter().map(Ok)).boxed());
        while let Some(r) = results.next().await {
            match r {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(store_err(path)(e)),
            }
        }
        Ok(found)
    }

    /// Stream `data` into object `key`. On a stream error: with `keep_partial`, what came
    /// before the error is stored (append semantics) and the error returned; without, nothing
    /// is stored. Returns the bytes stored.
    async fn put_stream(&self, path: &str, key: &OPath, mut data: ByteStream, keep_partial: bool) -> Result<u64> {
        let stream_err = |source| Error::Storage { path: path.to_string(), source };
        // Small bodies are one PUT; a body outgrowing one part becomes a multipart upload.
        let mut buf = BytesMut::new();
        let mut failed = None;
        while buf.len() < PART_SIZE {
            match data.next().await {
                Some(Ok(b)) => buf.extend_from_slice(&b),
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                None => break,
            }
        }
        if buf.len() < PART_SIZE || failed.is_some() {
            if let Some(e) = failed {
                if !keep_partial {
                    return Err(stream_err(e));
                }
                let n = buf.len() as u64;
                if n > 0 {
                    self.store.put(key, PutPayload::from(buf.freeze())).await.map_err(store_err(path))?;
                }
                return Err(stream_err(e));
            }
            let n = buf.len() as u64;
            self.store.put(key, PutPayload::from(buf.freeze())).await.map_err(store_err(path))?;
            return Ok(n);
        }
        let upload = self.store.put_multipart(key).await.map_err(store_err(path))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut n = buf.len() as u64;
        w.put(buf.freeze());
        let mut failed = None;
        while let Some(item) = data.next().await {
            match item {
                Ok(b) => {
                    if let Err(e) = w.wait_for_capacity(PART_CONCURRENCY).await {
                        let _ = w.abort().await;
                        return Err(store_err(path)(e));
                    }
                    n += b.len() as u64;
                    w.put(b);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            Some(e) if !keep_partial => {
                let _ = w.abort().await;
                Err(stream_err(e))
            }
            Some(e) => {
                w.finish().await.map_err(store_err(path))?;
                Err(stream_err(e))
            }
            None => {
                w.finish().await.map_err(store_err(path))?;
                Ok(n)
            }
        }
    }

    /// The concatenation of `segments` from `offset`, one ranged GET after another.
    fn stream_segments(&self, path: &str, segments: Vec<Segment>, offset: u64) -> ByteStream {
        let mut skip = offset;
        let mut ranges = Vec::new();
        for s in segments {
            if skip >= s.size {
                skip -= s.size;
                continue;
            }
            ranges.push((s.key, skip));
            skip = 0;
        }
        let store = self.store.clone();
        let path = path.to_string();
        let s = futures::stream::iter(ranges)
            .then(move |(key, from)| {
                let store = store.clone();
                let path = path.clone();
                async move {
                    let opts = GetOptions { range: (from > 0).then_some(GetRange::Offset(from)), ..Default::default() };
                    match store.get_opts(&key, opts).await {
                        Ok(r) => r.into_stream().map_err(std::io::Error::other).boxed(),
                        Err(e) => {
                            let e = std::io::Error::other(format!("{path}: {e}"));
                            futures::stream::once(async move { Err(e) }).boxed()
                        }
                    }
                }
            })
            .flatten();
        Box::pin(s)
    }
}

#[async_trait::async_trait]
impl StorageDriver for S3Driver {
    fn name(&self) -> &'static str {
        "s3"
    }

    async fn stat(&self, path: &str) -> Result<Option<FileInfo>> {
        check_path(path)?;
        self.ready().await?;
        let l = self.layout(path).await?;
        if l.exists() {
            return Ok(Some(FileInfo { size: l.size(), modified: l.modified(), is_dir: false }));
        }
        let mut below = self.store.list(Some(&self.key(path)));
        match below.next().await {
            Some(Ok(m)) => Ok(Some(FileInfo { size: 0, modified: m.last_modified.into(), is_dir: true })),
            Some(Err(e)) => Err(store_err(path)(e)),
            None => Ok(None),
        }
    }

    async fn get_content(&self, path: &str) -> Result<Bytes> {
        check_path(path)?;
        self.ready().await?;
        let l = self.layout(path).await?;
        if !l.exists() {
            return Err(Error::NotFound(path.to_string()));
        }
        if l.parts.is_empty() {
            let r = self.store.get(&self.key(path)).await.map_err(store_err(path))?;
            return r.bytes().await.map_err(store_err(path));
        }
        let mut s = self.stream_segments(path, l.segments(), 0);
        let mut buf = BytesMut::new();
        while let Some(b) = s.next().await {
            buf.extend_from_slice(&b.map_err(|source| Error::Storage { path: path.to_string(), source })?);
        }
        Ok(buf.freeze())
    }

    async fn put_content(&self, path: &str, data: Bytes) -> Result<()> {
        check_path(path)?;
        self.ready().await?;
        self.store.put(&self.key(path), PutPayload::from(data)).await.map_err(store_err(path))?;
        self.delete_below(path, &self.meta_dir(path)).await?;
        Ok(())
    }

    async fn read(&self, path: &str, offset: u64) -> Result<ByteStream> {
        check_path(path)?;
        self.ready().await?;
        let l = self.layout(path).await?;
        if !l.exists() {
            return Err(Error::NotFound(path.to_string()));
        }
        Ok(self.stream_segments(path, l.segments(), offset))
    }

    async fn write(&self, path: &str, data: ByteStream) -> Result<u64> {
        check_path(path)?;
        self.ready().await?;
        let n = self.put_stream(path, &self.key(path), data, false).await?;
        self.delete_below(path, &self.meta_dir(path)).await?;
        Ok(n)
    }

    async fn append(&self, path: &str, mut data: ByteStream) -> Result<u64> {
        check_path(path)?;
        self.ready().await?;
        let l = self.layout(path).await?;
        let before = l.size();
        if l.base.is_none() {
            // The base object makes the file show in listings even before its first part.
            self.store.put(&self.key(path), PutPayload::default()).await.map_err(store_err(path))?;
        }
        // Skip empty chunks so an empty append writes no part at all.
        let first = loop {
            match data.next().await {
                Some(Ok(b)) if b.is_empty() => {}
                Some(item) => break Some(item),
                None => break None,
            }
        };
        let Some(first) = first else { return Ok(before) };
        let seq =
            l.parts.last().and_then(|m| m.location.filename()?.strip_prefix("part-")?.parse::<u64>().ok()).unwrap_or(0)
                + 1;
        let key = self.meta_dir(path).child(format!("part-{seq:010}"));
        let rest: ByteStream = Box::pin(futures::stream::once(async move { first }).chain(data));
        let n = self.put_stream(path, &key, rest, true).await?;
        Ok(before + n)
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        check_path(path)?;
        self.ready().await?;
        let r = self.store.list_with_delimiter(Some(&self.key(path))).await.map_err(store_err(path))?;
        // Some stores (SeaweedFS) keep reporting a "directory" for a while after everything
        // below it is deleted: a child directory counts only when an object is below it.
        let dirs: Vec<(OPath, String)> = r
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().filter(|n| !n.starts_with('.')).map(|n| (p.clone(), n.to_string())))
            .collect();
        let checked: Vec<Option<String>> = futures::stream::iter(dirs)
            .map(|(p, name)| {
                let store = self.store.clone();
                let path = path.to_string();
                async move {
                    match store.list(Some(&p)).next().await {
                        Some(Ok(_)) => Ok(Some(name)),
                        Some(Err(e)) => Err(store_err(&path)(e)),
                        None => Ok(None),
                    }
                }
            })
            .buffer_unordered(16)
            .try_collect()
            .await?;
        let mut names: Vec<String> = checked
            .into_iter()
            .flatten()
            .chain(r.objects.iter().filter_map(|m| m.location.filename().map(str::to_string)))
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        check_path(from)?;
        check_path(to)?;
        self.ready().await?;
        let l = self.layout(from).await?;
        if !l.exists() {
            return Err(Error::NotFound(from.to_string()));
        }
        let (src, dst) = (self.key(from), self.key(to));
        if l.parts.is_empty() {
            self.store.copy(&src, &dst).await.map_err(store_err(from))?;
        } else {
            let data = self.stream_segments(from, l.segments(), 0);
            self.put_stream(to, &dst, data, false).await?;
        }
        self.delete_below(to, &self.meta_dir(to)).await?;
        match self.store.delete(&src).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(store_err(from)(e)),
        }
        self.delete_below(from, &self.meta_dir(from)).await?;
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<bool> {
        check_path(path)?;
        self.ready().await?;
        let mut found = match self.store.head(&self.key(path)).await {
            Ok(_) => {
                self.store.delete(&self.key(path)).await.map_err(store_err(path))?;
                true
            }
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(store_err(path)(e)),
        };
        found |= self.delete_below(path, &self.meta_dir(path)).await?;
        found |= self.delete_below(path, &self.key(path)).await?;
        Ok(found)
    }

    async fn touch(&self, path: &str) -> Result<()> {
        check_path(path)?;
        self.ready().await?;
        if !self.layout(path).await?.exists() {
            return Err(Error::NotFound(path.to_string()));
        }
        // S3 times have a one-second resolution: the marker's name carries the exact time.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        let key = self.meta_dir(path).child(format!("touched-{now:020}"));
        self.store.put(&key, PutPayload::default()).await.map_err(store_err(path))?;
        let old: Vec<OPath> = self
            .store
            .list(Some(&self.meta_dir(path)))
            .map_ok(|m| m.location)
            .try_filter(|k| {
                futures::future::ready(k.filename().is_some_and(|n| n.starts_with("touched-")) && *k != key)
            })
            .try_collect()
            .await
            .map_err(store_err(path))?;
        for k in old {
            let _ = self.store.delete(&k).await;
        }
        Ok(())
    }
}
