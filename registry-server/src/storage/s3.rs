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
//! Reads are ranged GETs of [`READ_CHUNK`] bytes, [`READ_AHEAD`] of them in flight, so a
//! request to the store never carries more than a chunk (its time limit stays meaningful) and a
//! blob read is never held whole in memory. A file made of a single appended part (the usual
//! upload: one streamed PATCH or PUT) is renamed by a server-side copy.
//!
//! Faults: every request has a connect limit, a total limit and a bounded number of retries
//! (`[storage.s3]` `connect_timeout`, `request_timeout`, `max_retries`, `retry_timeout`). A store
//! that refuses connections, times out or answers 5xx gives [`Error::Unavailable`] (served as
//! 503 `UNAVAILABLE`); nothing is cached about it, so the next request tries again and the
//! driver recovers by itself when the store is back.
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
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, PutPayload, RetryConfig, WriteMultipart,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Size of the parts of a multipart upload (S3's minimum for all but the last part).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded at once by one write.
const PART_CONCURRENCY: usize = 4;
/// Bytes per ranged GET of a read.
pub const READ_CHUNK: u64 = 8 * 1024 * 1024;
/// Ranged GETs of one read in flight at once.
const READ_AHEAD: usize = 3;
/// S3's limit for a single server-side copy.
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;
/// The hidden metadata directory's name.
const META: &str = ".s3meta";

/// Storage in an S3 bucket (AWS or any S3-compatible store: SeaweedFS, MinIO, Ceph…).
#[derive(Debug)]
pub struct S3Driver {
    store: Arc<AmazonS3>,
    prefix: String,
    bucket_ready: tokio::sync::OnceCell<()>,
    at: Arc<Where>,
    path_style: bool,
    region: String,
    credential: Option<AwsCredential>,
    connect_timeout: Duration,
    request_timeout: Duration,
    redirect_expiry: Duration,
}

/// The store's endpoint and bucket, for error messages.
#[derive(Debug)]
struct Where {
    endpoint: String,
    bucket: String,
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

/// Why `e` means the store is unreachable or failing (not: the request was wrong), if it does.
fn unavailable_reason(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(e) = e.downcast_ref::<object_store::Error>() {
        use object_store::Error as E;
        if !matches!(e, E::Generic { .. } | E::JoinError { .. }) {
            return None; // not found, precondition, permission, bad path…: answers, not outages
        }
    }
    let mut cur = Some(e);
    while let Some(x) = cur {
        if let Some(r) = x.downcast_ref::<reqwest::Error>() {
            if r.is_connect() {
                return Some(format!("cannot connect: {}", innermost(x)));
            }
            if r.is_timeout() {
                return Some("timed out".into());
            }
            if r.is_request() || r.is_body() {
                return Some(format!("connection failed: {}", innermost(x)));
            }
        }
        if let Some(io) = x.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::NotConnected
                    | K::TimedOut
                    | K::BrokenPipe
                    | K::UnexpectedEof
            ) {
                return Some(io.to_string());
            }
        }
        // object_store's retry error is private; its text carries the status.
        let text = x.to_string();
        if let Some(i) = text.find("status code: ") {
            let code = &text[i + "status code: ".len()..];
            if code.len() >= 3 && code.starts_with('5') && code[..3].bytes().all(|b| b.is_ascii_digit()) {
                let line = code.lines().next().unwrap_or("");
                return Some(format!("the store answered {}", &line[..line.len().min(200)]));
            }
        }
        cur = x.source();
    }
    None
}

fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut e = e;
    while let Some(s) = e.source() {
        e = s;
    }
    e.to_string()
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

/// Map an object_store error from `op` on object `key` (storage path `path`).
fn classify(at: &Where, op: &'static str, path: &str, key: &str, e: object_store::Error) -> Error {
    if is_not_found(&e) {
        return Error::NotFound(path.to_string());
    }
    match unavailable_reason(&e) {
        Some(reason) => Error::Unavailable {
            endpoint: at.endpoint.clone(),
            bucket: at.bucket.clone(),
            op,
            key: key.to_string(),
            reason,
        },
        None => Error::Storage { path: path.to_string(), source: std::io::Error::other(e) },
    }
}

/// An error of a byte stream: the driver's own error when it carried one (a read of the store
/// that failed mid-way), else the stream's failure on `path` (a client that went away).
fn stream_error(path: &str, e: std::io::Error) -> Error {
    if e.get_ref().and_then(|x| x.downcast_ref::<Error>()).is_some() {
        if let Some(inner) = e.into_inner() {
            if let Ok(err) = inner.downcast::<Error>() {
                return *err;
            }
        }
        return Error::Storage { path: path.to_string(), source: std::io::Error::other("stream failed") };
    }
    Error::Storage { path: path.to_string(), source: e }
}

impl S3Driver {
    /// A driver on the bucket `cfg` names; settings it leaves out come from the `AWS_*`
    /// environment variables. Nothing is sent until the first operation.
    pub fn new(cfg: &S3Config) -> Result<S3Driver> {
        let bad = |reason: String| Error::Config { where_: "storage.s3".into(), reason };
        if cfg.bucket.is_empty() {
            return Err(bad("bucket is empty".into()));
        }
        let options = ClientOptions::new()
            .with_connect_timeout(cfg.connect_timeout)
            .with_timeout(cfg.request_timeout)
            .with_pool_idle_timeout(Duration::from_secs(30));
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: cfg.max_retries,
            retry_timeout: cfg.retry_timeout,
        };
        let mut b =
            AmazonS3Builder::from_env().with_bucket_name(&cfg.bucket).with_client_options(options).with_retry(retry);
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
            at: Arc::new(Where { endpoint: endpoint.trim_end_matches('/').to_string(), bucket: cfg.bucket.clone() }),
            path_style: cfg.path_style,
            region,
            credential,
            connect_timeout: cfg.connect_timeout,
            request_timeout: cfg.request_timeout,
            redirect_expiry: cfg.redirect_expiry,
        })
    }

    /// The endpoint URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.at.endpoint
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.at.bucket
    }

    /// A URL that lets its holder GET file `path` straight from the store for the configured
    /// `redirect_expiry` (signed locally: nothing is sent). Only for files stored as one object,
    /// which blobs are (they are written, or renamed into place, whole).
    pub async fn presigned_get(&self, path: &str) -> Result<String> {
        check_path(path)?;
        let key = self.key(path);
        let url = self
            .store
            .signed_url(http::Method::GET, &key, self.redirect_expiry)
            .await
            .map_err(|e| classify(&self.at, "presign GET", path, key.as_ref(), e))?;
        Ok(url.to_string())
    }

    /// How an object_store error from `op` on object `key` (storage path `path`) is reported.
    fn fail(&self, op: &'static str, path: &str, key: &OPath) -> impl Fn(object_store::Error) -> Error {
        let (at, path, key) = (self.at.clone(), path.to_string(), key.to_string());
        move |e| classify(&at, op, &path, &key, e)
    }

    /// Create the bucket when it does not exist yet (once per driver; retried after a failure).
    async fn ready(&self) -> Result<()> {
        self.bucket_ready.get_or_try_init(|| self.create_bucket()).await.map(|_| ())
    }

    async fn create_bucket(&self) -> Result<()> {
        let bucket = &self.at.bucket;
        let fail = |op: &'static str, e: &(dyn std::error::Error + 'static)| match unavailable_reason(e) {
            Some(reason) => Error::Unavailable {
                endpoint: self.at.endpoint.clone(),
                bucket: bucket.clone(),
                op,
                key: String::new(),
                reason,
            },
            None => Error::Storage { path: format!("bucket {bucket}"), source: std::io::Error::other(e.to_string()) },
        };
        let other =
            |reason: String| Error::Storage { path: format!("bucket {bucket}"), source: std::io::Error::other(reason) };
        let endpoint = &self.at.endpoint;
        let url = if self.path_style {
            format!("{endpoint}/{bucket}")
        } else {
            match endpoint.split_once("://") {
                Some((scheme, host)) => format!("{scheme}://{bucket}.{host}"),
                None => format!("https://{bucket}.{endpoint}"),
            }
        };
        let Some(credential) = &self.credential else {
            // Credentials from a role or profile: the bucket must exist already.
            return Ok(());
        };
        let client = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .build()
            .map_err(|e| other(e.to_string()))?;
        let send = |method: http::Method, body: Bytes| {
            let mut req = http::Request::builder()
                .method(method)
                .uri(&url)
                .body(object_store::client::HttpRequestBody::from(body.clone()))
                .map_err(|e| other(e.to_string()))?;
            AwsAuthorizer::new(credential, "s3", &self.region).authorize(&mut req, None);
            let mut r = client.request(req.method().clone(), &url).body(body);
            for (k, v) in req.headers() {
                r = r.header(k, v);
            }
            Ok::<_, Error>(r.send())
        };
        let head = send(http::Method::HEAD, Bytes::new())?.await.map_err(|e| fail("HEAD bucket", &e))?;
        if head.status().is_server_error() {
            return Err(fail("HEAD bucket", &std::io::Error::other(format!("status code: {}", head.status()))));
        }
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
        let put = send(http::Method::PUT, body)?.await.map_err(|e| fail("PUT bucket", &e))?;
        let status = put.status();
        if status.is_success() || status == reqwest::StatusCode::CONFLICT {
            return Ok(()); // CONFLICT: another replica created it first
        }
        let body = put.text().await.unwrap_or_default();
        if status.is_server_error() {
            return Err(fail("PUT bucket", &std::io::Error::other(format!("status code: {status}: {body}"))));
        }
        Err(other(format!("creating the bucket: {status}: {body}")))
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

    /// The appended parts (sorted) and the touch time of file `path`.
    async fn meta(&self, path: &str) -> Result<(Vec<object_store::ObjectMeta>, Option<SystemTime>)> {
        let dir = self.meta_dir(path);
        let meta: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&dir)).try_collect().await.map_err(self.fail("LIST", path, &dir))?;
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
        Ok((parts, touched))
    }

    async fn layout(&self, path: &str) -> Result<Layout> {
        let key = self.key(path);
        // The HEAD and the LIST at once: one round trip to the store, not two.
        let (base, meta) = tokio::join!(self.store.head(&key), self.meta(path));
        let base = match base {
            Ok(m) => Some(m),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(self.fail("HEAD", path, &key)(e)),
        };
        let (parts, touched) = meta?;
        Ok(Layout { base, parts, touched })
    }

    /// Delete every object below `dir` (a key prefix); whether there was any.
    async fn delete_below(&self, path: &str, dir: &OPath) -> Result<bool> {
        let keys: Vec<OPath> = self
            .store
            .list(Some(dir))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(self.fail("LIST", path, dir))?;
        let found = !keys.is_empty();
        let mut results = self.store.delete_stream(futures::stream::iter(keys.into_iter().map(Ok)).boxed());
        while let Some(r) = results.next().await {
            match r {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(self.fail("DELETE", path, dir)(e)),
            }
        }
        Ok(found)
    }

    /// Stream `data` into object `key`. On a stream error: with `keep_partial`, what came
    /// before the error is stored (append semantics) and the error returned; without, nothing
    /// is stored. Returns the bytes stored.
    async fn put_stream(&self, path: &str, key: &OPath, mut data: ByteStream, keep_partial: bool) -> Result<u64> {
        let put_err = self.fail("PUT", path, key);
        let mpu_err = self.fail("multipart PUT", path, key);
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
                    return Err(stream_error(path, e));
                }
                let n = buf.len() as u64;
                if n > 0 {
                    self.store.put(key, PutPayload::from(buf.freeze())).await.map_err(put_err)?;
                }
                return Err(stream_error(path, e));
            }
            let n = buf.len() as u64;
            self.store.put(key, PutPayload::from(buf.freeze())).await.map_err(put_err)?;
            return Ok(n);
        }
        let upload = self.store.put_multipart(key).await.map_err(&mpu_err)?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut n = buf.len() as u64;
        w.put(buf.freeze());
        let mut failed = None;
        while let Some(item) = data.next().await {
            match item {
                Ok(b) => {
                    if let Err(e) = w.wait_for_capacity(PART_CONCURRENCY).await {
                        let _ = w.abort().await;
                        return Err(mpu_err(e));
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
                Err(stream_error(path, e))
            }
            Some(e) => {
                w.finish().await.map_err(&mpu_err)?;
                Err(stream_error(path, e))
            }
            None => {
                w.finish().await.map_err(&mpu_err)?;
                Ok(n)
            }
        }
    }

    /// The concatenation of `segments` from `offset`: ranged GETs of at most [`READ_CHUNK`]
    /// bytes, [`READ_AHEAD`] in flight. The first is done before this returns, so a store that
    /// does not answer is an error here (a 503) rather than a response cut short.
    async fn stream_segments(&self, path: &str, segments: Vec<Segment>, offset: u64) -> Result<ByteStream> {
        let mut skip = offset;
        let mut ranges = Vec::new();
        for s in segments {
            if skip >= s.size {
                skip -= s.size;
                continue;
            }
            let mut a = skip;
            skip = 0;
            while a < s.size {
                let b = (a + READ_CHUNK).min(s.size);
                ranges.push((s.key.clone(), a, b));
                a = b;
            }
        }
        let (store, at, path) = (self.store.clone(), self.at.clone(), path.to_string());
        let fetch = move |(key, a, b): (OPath, u64, u64)| {
            let (store, at, path) = (store.clone(), at.clone(), path.clone());
            async move {
                let opts = GetOptions { range: Some(GetRange::Bounded(a..b)), ..Default::default() };
                let r = store.get_opts(&key, opts).await.map_err(|e| classify(&at, "GET", &path, key.as_ref(), e))?;
                let bytes = r.bytes().await.map_err(|e| classify(&at, "GET", &path, key.as_ref(), e))?;
                if bytes.len() as u64 != b - a {
                    return Err(Error::Storage {
                        path: path.clone(),
                        source: std::io::Error::other(format!(
                            "{key}: asked for bytes {a}-{b}, got {} (changed while read?)",
                            bytes.len()
                        )),
                    });
                }
                Ok::<Bytes, Error>(bytes)
            }
        };
        let mut ranges = ranges.into_iter();
        let Some(first) = ranges.next() else { return Ok(Box::pin(futures::stream::empty())) };
        let first = fetch.clone()(first).await?;
        let rest = futures::stream::iter(ranges).map(fetch).buffered(READ_AHEAD).map_err(std::io::Error::other);
        Ok(Box::pin(futures::stream::once(async move { Ok(first) }).chain(rest)))
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
        let key = self.key(path);
        let mut below = self.store.list(Some(&key));
        match below.next().await {
            Some(Ok(m)) => Ok(Some(FileInfo { size: 0, modified: m.last_modified.into(), is_dir: true })),
            Some(Err(e)) => Err(self.fail("LIST", path, &key)(e)),
            None => Ok(None),
        }
    }

    async fn get_content(&self, path: &str) -> Result<Bytes> {
        check_path(path)?;
        self.ready().await?;
        let key = self.key(path);
        // The GET and the parts' LIST at once: small files almost never have parts.
        let get = async { self.store.get(&key).await?.bytes().await };
        let (base, meta) = tokio::join!(get, self.meta(path));
        let base = match base {
            Ok(b) => Some(b),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(self.fail("GET", path, &key)(e)),
        };
        let (parts, _) = meta?;
        if parts.is_empty() {
            return base.ok_or_else(|| Error::NotFound(path.to_string()));
        }
        let l = self.layout(path).await?;
        let mut s = self.stream_segments(path, l.segments(), 0).await?;
        let mut buf = BytesMut::new();
        while let Some(b) = s.next().await {
            buf.extend_from_slice(&b.map_err(|e| stream_error(path, e))?);
        }
        Ok(buf.freeze())
    }

    async fn put_content(&self, path: &str, data: Bytes) -> Result<()> {
        check_path(path)?;
        self.ready().await?;
        let key = self.key(path);
        self.store.put(&key, PutPayload::from(data)).await.map_err(self.fail("PUT", path, &key))?;
        self.delete_below(path, &self.meta_dir(path)).await?;
        Ok(())
    }

    async fn create_new(&self, path: &str, data: Bytes) -> Result<bool> {
        check_path(path)?;
        self.ready().await?;
        let key = self.key(path);
        // A conditional PUT (`If-None-Match: *`): the store decides who was first.
        let opts = object_store::PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
        match self.store.put_opts(&key, PutPayload::from(data), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.fail("PUT", path, &key)(e)),
        }
    }

    async fn read(&self, path: &str, offset: u64) -> Result<ByteStream> {
        check_path(path)?;
        self.ready().await?;
        let l = self.layout(path).await?;
        if !l.exists() {
            return Err(Error::NotFound(path.to_string()));
        }
        self.stream_segments(path, l.segments(), offset).await
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
            let key = self.key(path);
            self.store.put(&key, PutPayload::default()).await.map_err(self.fail("PUT", path, &key))?;
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
        let key = self.key(path);
        let r = self.store.list_with_delimiter(Some(&key)).await.map_err(self.fail("LIST", path, &key))?;
        // Some stores (SeaweedFS) keep reporting a "directory" for a while after everything
        // below it is deleted: a child directory counts only when an object is below it.
        let dirs: Vec<(OPath, String)> = r
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().filter(|n| !n.starts_with('.')).map(|n| (p.clone(), n.to_string())))
            .collect();
        let checked: Vec<Option<String>> = futures::stream::iter(dirs)
            .map(|(p, name)| async move {
                match self.store.list(Some(&p)).next().await {
                    Some(Ok(_)) => Ok(Some(name)),
                    Some(Err(e)) => Err(self.fail("LIST", path, &p)(e)),
                    None => Ok(None),
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
        let base_empty = l.base.as_ref().is_none_or(|b| b.size == 0);
        if l.parts.is_empty() {
            self.store.copy(&src, &dst).await.map_err(self.fail("COPY", from, &src))?;
        } else if base_empty && l.parts.len() == 1 && l.parts[0].size <= MAX_COPY {
            // One appended part (the usual upload): a server-side copy, no bytes through here.
            let part = &l.parts[0].location;
            self.store.copy(part, &dst).await.map_err(self.fail("COPY", from, part))?;
        } else {
            let data = self.stream_segments(from, l.segments(), 0).await?;
            self.put_stream(to, &dst, data, false).await?;
        }
        self.delete_below(to, &self.meta_dir(to)).await?;
        match self.store.delete(&src).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(self.fail("DELETE", from, &src)(e)),
        }
        self.delete_below(from, &self.meta_dir(from)).await?;
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<bool> {
        check_path(path)?;
        self.ready().await?;
        let key = self.key(path);
        let mut found = match self.store.head(&key).await {
            Ok(_) => {
                self.store.delete(&key).await.map_err(self.fail("DELETE", path, &key))?;
                true
            }
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(self.fail("HEAD", path, &key)(e)),
        };
        found |= self.delete_below(path, &self.meta_dir(path)).await?;
        found |= self.delete_below(path, &key).await?;
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
        let dir = self.meta_dir(path);
        let key = dir.child(format!("touched-{now:020}"));
        self.store.put(&key, PutPayload::default()).await.map_err(self.fail("PUT", path, &key))?;
        let old: Vec<OPath> = self
            .store
            .list(Some(&dir))
            .map_ok(|m| m.location)
            .try_filter(|k| {
                futures::future::ready(k.filename().is_some_and(|n| n.starts_with("touched-")) && *k != key)
            })
            .try_collect()
            .await
            .map_err(self.fail("LIST", path, &dir))?;
        for k in old {
            let _ = self.store.delete(&k).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(source: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
        object_store::Error::Generic { store: "S3", source: Box::new(source) }
    }

    #[test]
    fn outages_are_told_from_answers() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(unavailable_reason(&generic(refused)).is_some());
        let e503 = std::io::Error::other("Server returned non-2xx status code: 503 Service Unavailable: SlowDown");
        assert!(unavailable_reason(&generic(e503)).unwrap().contains("503"));
        let e400 = std::io::Error::other("Server returned non-2xx status code: 400 Bad Request: nope");
        assert!(unavailable_reason(&generic(e400)).is_none());
        let missing = object_store::Error::NotFound { path: "k".into(), source: "gone".into() };
        assert!(unavailable_reason(&missing).is_none());

        let at = Where { endpoint: "http://store:8333".into(), bucket: "reg".into() };
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        match classify(&at, "GET", "blobs/x", "prod/blobs/x", generic(refused)) {
            Error::Unavailable { endpoint, bucket, op, key, .. } => {
                assert_eq!(
                    (endpoint.as_str(), bucket.as_str(), op, key.as_str()),
                    ("http://store:8333", "reg", "GET", "prod/blobs/x")
                );
            }
            other => panic!("{other:?}"),
        }
        let missing = object_store::Error::NotFound { path: "k".into(), source: "gone".into() };
        assert!(classify(&at, "GET", "blobs/x", "prod/blobs/x", missing).is_not_found());
        // A read of the store failing mid-stream keeps its kind through the byte stream.
        let inner = Error::Unavailable {
            endpoint: "e".into(),
            bucket: "b".into(),
            op: "GET",
            key: "k".into(),
            reason: "r".into(),
        };
        assert!(stream_error("p", std::io::Error::other(inner)).is_unavailable());
        assert!(!stream_error("p", std::io::Error::other("client went away")).is_unavailable());
    }
}
