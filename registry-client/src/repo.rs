//! One repository on one registry: manifests (raw bytes, never re-serialized) and blobs
//! (streamed both ways, verified, resumed, mounted).

use crate::auth::repository_scope;
use crate::client::{Client, Host, Req, read_limited};
use crate::error::{Error, Result};
use crate::progress::{Event, EventKind, Progress};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, future::BoxFuture};
use rbuild_image::distribution::{HEADER_CHUNK_MIN_LENGTH, HEADER_CONTENT_DIGEST, TagList};
use rbuild_image::manifest::MAX_MANIFEST_SIZE;
use rbuild_image::{Descriptor, Digest, RawManifest, Reference, media_type};
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, StatusCode};
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// A stream of blob bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Where an upload's bytes come from; opened once per try.
pub trait BlobSource: Send + Sync {
    /// A fresh stream of the whole blob.
    fn open(&self) -> BoxFuture<'_, Result<ByteStream>>;
}

/// A blob in a local file.
pub struct FileSource(pub PathBuf);

impl BlobSource for FileSource {
    fn open(&self) -> BoxFuture<'_, Result<ByteStream>> {
        Box::pin(async move {
            let f = tokio::fs::File::open(&self.0).await.map_err(Error::io(&self.0))?;
            let s = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024);
            Ok(Box::pin(s) as ByteStream)
        })
    }
}

/// Bytes in memory (configs, small blobs).
pub struct BytesSource(pub Bytes);

impl BlobSource for BytesSource {
    fn open(&self) -> BoxFuture<'_, Result<ByteStream>> {
        let b = self.0.clone();
        Box::pin(async move { Ok(Box::pin(futures::stream::once(async move { Ok(b) })) as ByteStream) })
    }
}

/// How a blob got to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// It was there already.
    Exists,
    /// Mounted from another repository.
    Mounted,
    /// Its bytes were sent.
    Uploaded,
}

/// A repository at a registry, with the access it was opened for.
#[derive(Clone)]
pub struct Repository {
    client: Client,
    host: Arc<Host>,
    name: String,
    push: bool,
}

impl Client {
    /// The repository a reference names, on its own registry, for pulling (or pushing too).
    pub fn repository(&self, r: &Reference, push: bool) -> Repository {
        self.repository_at(r.registry(), r.api_host(), r.repository(), push)
    }

    /// A repository on a given API host (a mirror, say) that serves `registry`.
    pub fn repository_at(&self, registry: &str, api_host: &str, name: &str, push: bool) -> Repository {
        Repository { client: self.clone(), host: self.host(registry, api_host), name: name.to_string(), push }
    }
}

fn digest_header(h: &reqwest::header::HeaderMap) -> Option<Digest> {
    h.get(HEADER_CONTENT_DIGEST).and_then(|v| v.to_str().ok()).and_then(|s| Digest::parse(s.trim()).ok())
}

impl Repository {
    /// The registry as written in references.
    pub fn registry(&self) -> &str {
        &self.host.registry
    }

    /// The host spoken to.
    pub fn api_host(&self) -> &str {
        &self.host.host
    }

    /// The repository path.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client it belongs to.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn scopes(&self) -> Vec<String> {
        vec![repository_scope(&self.name, if self.push { &["pull", "push"] } else { &["pull"] })]
    }

    fn req(&self, method: Method, path: String) -> Req {
        Req::new(method, path, self.scopes())
    }

    /// Fetch a manifest by tag or digest, negotiating every OCI and Docker type. The bytes
    /// are verified against the digest asked for (or `Docker-Content-Digest`), and
    /// manifests over 4 MiB are refused.
    pub async fn get_manifest(&self, reference: &str) -> Result<RawManifest> {
        let path = format!("/v2/{}/manifests/{reference}", self.name);
        let accept = media_type::MANIFEST_ACCEPT.join(", ");
        let resp =
            self.client.send(&self.host, self.req(Method::GET, path.clone()).header(header::ACCEPT, &accept)).await?;
        let st = resp.status();
        if !st.is_success() {
            return Err(self.manifest_error(reference, &path, "GET", resp).await);
        }
        let too_large = |size: u64| Error::ManifestTooLarge {
            registry: self.host.registry.clone(),
            reference: format!("{}:{reference}", self.name),
            size,
        };
        if let Some(len) = resp.content_length().filter(|&l| l > MAX_MANIFEST_SIZE as u64) {
            return Err(too_large(len));
        }
        let ct = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let header_digest = digest_header(resp.headers());
        let bytes = read_limited(resp, MAX_MANIFEST_SIZE).await.map_err(|n| too_large(n as u64))?;
        let expected = Digest::parse(reference).ok().or(header_digest);
        let raw = match &expected {
            Some(d) => {
                let actual = Digest::of(d.algorithm(), &bytes);
                if &actual != d {
                    return Err(Error::DigestMismatch {
                        registry: self.host.registry.clone(),
                        what: format!("manifest {}:{reference}", self.name),
                        expected: d.clone(),
                        actual,
                    });
                }
                RawManifest::parse_verified(bytes, ct.as_deref(), d)?
            }
            None => RawManifest::parse(bytes, ct.as_deref())?,
        };
        Ok(raw)
    }

    /// HEAD a manifest: its descriptor, or None when absent.
    pub async fn head_manifest(&self, reference: &str) -> Result<Option<Descriptor>> {
        let path = format!("/v2/{}/manifests/{reference}", self.name);
        let accept = media_type::MANIFEST_ACCEPT.join(", ");
        let resp =
            self.client.send(&self.host, self.req(Method::HEAD, path.clone()).header(header::ACCEPT, &accept)).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.manifest_error(reference, &path, "HEAD", resp).await);
        }
        let mt = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let size = resp.content_length().unwrap_or(0);
        Ok(digest_header(resp.headers()).map(|d| Descriptor::new(mt, d, size)))
    }

    async fn manifest_error(&self, reference: &str, path: &str, method: &str, resp: reqwest::Response) -> Error {
        let st = resp.status().as_u16();
        let e = self.client.error_for(&self.host, method, path, resp).await;
        match e {
            Error::Http { ref code, .. } if code.trim() == "NAME_UNKNOWN" => {
                Error::NameUnknown { registry: self.host.registry.clone(), repository: self.name.clone() }
            }
            Error::Http { ref code, .. } if st == 404 || code.trim() == "MANIFEST_UNKNOWN" => Error::ManifestUnknown {
                registry: self.host.registry.clone(),
                repository: self.name.clone(),
                kind: if Digest::parse(reference).is_ok() { "digest" } else { "tag" },
                reference: reference.to_string(),
            },
            Error::Http { ref code, ref message, .. } if st == 403 || code.trim() == "DENIED" => Error::Denied {
                registry: self.host.registry.clone(),
                repository: self.name.clone(),
                action: if method == "PUT" { "push to".into() } else { "pull from".into() },
                detail: message.clone(),
            },
            e => e,
        }
    }

    /// Store a manifest's raw bytes under a tag or its digest; returns the digest the
    /// registry computed.
    pub async fn put_manifest(&self, reference: &str, m: &RawManifest) -> Result<Digest> {
        let path = format!("/v2/{}/manifests/{reference}", self.name);
        let bytes = Bytes::copy_from_slice(m.bytes());
        let req = self
            .req(Method::PUT, path.clone())
            .header(header::CONTENT_TYPE, m.media_type())
            .body(Arc::new(move || Ok(reqwest::Body::from(bytes.clone()))));
        let resp = self.client.send(&self.host, req).await?;
        if !resp.status().is_success() {
            return Err(self.manifest_error(reference, &path, "PUT", resp).await);
        }
        let got = digest_header(resp.headers()).unwrap_or_else(|| m.digest().clone());
        if got.algorithm() == m.digest().algorithm() && &got != m.digest() {
            return Err(Error::Protocol {
                registry: self.host.registry.clone(),
                detail: format!("PUT {path}: registry stored digest {got}, rbuild sent {}", m.digest()),
            });
        }
        Ok(m.digest().clone())
    }

    /// The repository's tags.
    pub async fn tags(&self) -> Result<Vec<String>> {
        let path = format!("/v2/{}/tags/list", self.name);
        let resp = self.client.send(&self.host, self.req(Method::GET, path.clone())).await?;
        if !resp.status().is_success() {
            return Err(self.manifest_error("", &path, "GET", resp).await);
        }
        let body = read_limited(resp, 16 * 1024 * 1024).await.map_err(|n| Error::Protocol {
            registry: self.host.registry.clone(),
            detail: format!("tag list of {} is over {n} bytes", self.name),
        })?;
        let tl: TagList = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
            registry: self.host.registry.clone(),
            detail: format!("tag list of {} is not JSON: {e}", self.name),
        })?;
        Ok(tl.tags)
    }

    /// Is the blob here? Its size when it is.
    pub async fn blob_exists(&self, d: &Digest) -> Result<Option<u64>> {
        let path = format!("/v2/{}/blobs/{d}", self.name);
        let resp = self.client.send(&self.host, self.req(Method::HEAD, path.clone())).await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(resp.content_length().unwrap_or(0))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.client.error_for(&self.host, "HEAD", &path, resp).await),
        }
    }

    /// Open a blob from `offset` (a `Range` request when non-zero). Redirects to other
    /// hosts are followed without credentials. The stream is not verified: use
    /// [`Repository::fetch_blob`] for that, or verify what you read.
    pub async fn blob_stream(&self, d: &Digest, offset: u64) -> Result<(u64, ByteStream)> {
        let resp = self.blob_response(d, offset).await?;
        let skip = if offset > 0 && resp.status() == StatusCode::OK { offset } else { 0 };
        let start = offset;
        let total = resp.content_length().map(|l| l + start - skip);
        let mut to_skip = skip;
        let s = resp.bytes_stream().map(move |r| r.map_err(std::io::Error::other)).filter_map(move |r| {
            let out = match r {
                Ok(mut b) if to_skip > 0 => {
                    let n = (to_skip as usize).min(b.len());
                    to_skip -= n as u64;
                    let rest = b.split_off(n);
                    if rest.is_empty() { None } else { Some(Ok(rest)) }
                }
                other => Some(other),
            };
            futures::future::ready(out)
        });
        Ok((total.unwrap_or(0), Box::pin(s)))
    }

    async fn blob_response(&self, d: &Digest, offset: u64) -> Result<reqwest::Response> {
        let path = format!("/v2/{}/blobs/{d}", self.name);
        let mut req = self.req(Method::GET, path.clone());
        if offset > 0 {
            req = req.header(header::RANGE, &format!("bytes={offset}-"));
        }
        let resp = self.client.send(&self.host, req).await?;
        let st = resp.status();
        if st == StatusCode::OK || st == StatusCode::PARTIAL_CONTENT {
            if st == StatusCode::PARTIAL_CONTENT {
                let start = resp
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if start != Some(offset) {
                    return Err(Error::Protocol {
                        registry: self.host.registry.clone(),
                        detail: format!("GET {path}: asked for bytes from {offset}, got Content-Range {start:?}"),
                    });
                }
            }
            return Ok(resp);
        }
        if st == StatusCode::NOT_FOUND {
            return Err(Error::BlobUnknown {
                registry: self.host.registry.clone(),
                repository: self.name.clone(),
                digest: d.clone(),
            });
        }
        Err(self.client.error_for(&self.host, "GET", &path, resp).await)
    }

    /// Download a blob into `w` (written on a blocking thread), resuming with `Range`
    /// after a dropped connection (what was received is kept, hashing continues) and
    /// checking size and — when `verify` — digest. Leave `verify` off only when `w`
    /// verifies itself (the store's `BlobWriter::commit` does).
    pub async fn fetch_blob<W: Write + Send + 'static>(
        &self,
        desc: &Descriptor,
        w: W,
        verify: bool,
        progress: &Arc<dyn Progress>,
    ) -> Result<W> {
        self.fetch_blob_from(desc, w, 0, verify, progress).await
    }

    /// [`Repository::fetch_blob`] of what follows the first `offset` bytes, which `w`
    /// already holds (an interrupted download's, kept in the store): a `Range` request from
    /// there. With an offset, only `w` can verify the digest (`verify` must be off).
    pub async fn fetch_blob_from<W: Write + Send + 'static>(
        &self,
        desc: &Descriptor,
        w: W,
        offset: u64,
        verify: bool,
        progress: &Arc<dyn Progress>,
    ) -> Result<W> {
        if verify && offset > 0 {
            return Err(Error::Invalid(format!(
                "blob {}: a resumed download is verified by its writer, not here",
                desc.digest
            )));
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let alg = desc.digest.algorithm();
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<(W, Option<Digest>)> {
            let mut w = w;
            let mut hasher = verify.then(|| alg.hasher());
            while let Some(b) = rx.blocking_recv() {
                w.write_all(&b)?;
                if let Some(h) = hasher.as_mut() {
                    h.update(&b);
                }
            }
            w.flush()?;
            Ok((w, hasher.map(|h| h.finish())))
        });
        let what = format!("blob {} of {}/{}", desc.digest, self.host.registry, self.name);
        let received =
            if offset >= desc.size { Ok(offset) } else { self.download_into(desc, &tx, progress, &what, offset).await };
        drop(tx);
        let joined = writer.await.map_err(|e| Error::Invalid(format!("writer task failed: {e}")))?;
        let received = received?;
        let (w, digest) = joined.map_err(|e| Error::Image(rbuild_image::Error::Stream(e)))?;
        if received != desc.size {
            return Err(Error::SizeMismatch {
                registry: self.host.registry.clone(),
                what,
                expected: desc.size,
                actual: received,
            });
        }
        if let Some(actual) = digest {
            if actual != desc.digest {
                return Err(Error::DigestMismatch {
                    registry: self.host.registry.clone(),
                    what,
                    expected: desc.digest.clone(),
                    actual,
                });
            }
        }
        Ok(w)
    }

    async fn download_into(
        &self,
        desc: &Descriptor,
        tx: &tokio::sync::mpsc::Sender<Bytes>,
        progress: &Arc<dyn Progress>,
        what: &str,
        offset: u64,
    ) -> Result<u64> {
        let max = self.client.options().max_tries;
        let mut received = offset;
        let mut failures = 0u32;
        let mut buf = BytesMut::with_capacity(256 * 1024);
        let ev = |kind| Event { digest: desc.digest.clone(), size: desc.size, kind };
        loop {
            let before = received;
            let res: Result<()> = async {
                let resp = self.blob_response(&desc.digest, received).await?;
                let mut skip = if received > 0 && resp.status() == StatusCode::OK { received } else { 0 };
                let mut stream = resp.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    let mut chunk = chunk.map_err(|e| Error::from_reqwest(&self.host.host, e))?;
                    if skip > 0 {
                        let n = (skip as usize).min(chunk.len());
                        skip -= n as u64;
                        chunk = chunk.split_off(n);
                    }
                    if received + chunk.len() as u64 > desc.size {
                        return Err(Error::SizeMismatch {
                            registry: self.host.registry.clone(),
                            what: what.to_string(),
                            expected: desc.size,
                            actual: received + chunk.len() as u64,
                        });
                    }
                    received += chunk.len() as u64;
                    // Big chunks go as they are (no copy); small ones are gathered so the
                    // writer thread is not woken per few kilobytes.
                    let out = if buf.is_empty() && chunk.len() >= 64 * 1024 {
                        Some(chunk)
                    } else {
                        buf.extend_from_slice(&chunk);
                        (buf.len() >= 256 * 1024).then(|| buf.split().freeze())
                    };
                    if let Some(out) = out {
                        if tx.send(out).await.is_err() {
                            // The writer stopped: its error is reported by the caller.
                            return Ok(());
                        }
                        progress.event(ev(EventKind::Downloading { done: received }));
                    }
                }
                if received < desc.size {
                    return Err(Error::Network {
                        host: self.host.host.clone(),
                        detail: format!("connection closed after {received} of {} bytes", desc.size),
                    });
                }
                Ok(())
            }
            .await;
            match res {
                Ok(()) => break,
                Err(e) if e.is_transient() => {
                    failures = if received > before { 1 } else { failures + 1 };
                    if failures >= max {
                        return Err(Error::RetriesExhausted {
                            what: format!("GET {what}"),
                            tries: failures,
                            last: Box::new(e),
                        });
                    }
                    progress.event(ev(EventKind::Retrying { reason: e.to_string() }));
                    let d = self.client.backoff(failures, None);
                    tracing::warn!("{what}: {e}; resuming at byte {received} in {:.1}s", d.as_secs_f64());
                    tokio::time::sleep(d).await;
                }
                Err(e) => return Err(e),
            }
        }
        if !buf.is_empty() {
            let _ = tx.send(buf.split().freeze()).await;
        }
        progress.event(ev(EventKind::Downloading { done: received }));
        Ok(received)
    }

    /// Put a blob here: skipped when present (HEAD), mounted from `mount_from` (another
    /// repository of this registry) when given and the registry agrees, else uploaded.
    pub async fn push_blob(
        &self,
        desc: &Descriptor,
        source: &dyn BlobSource,
        mount_from: Option<&str>,
        progress: &Arc<dyn Progress>,
    ) -> Result<PushOutcome> {
        let ev = |kind| Event { digest: desc.digest.clone(), size: desc.size, kind };
        if self.blob_exists(&desc.digest).await?.is_some() {
            progress.event(ev(EventKind::AlreadyExists));
            return Ok(PushOutcome::Exists);
        }
        let mut location = None;
        if let Some(from) = mount_from.filter(|f| *f != self.name) {
            match self.mount_blob(&desc.digest, from).await? {
                None => {
                    progress.event(ev(EventKind::Mounted { from: from.to_string() }));
                    return Ok(PushOutcome::Mounted);
                }
                Some(loc) => location = Some(loc),
            }
        }
        self.upload_blob(desc, source, location, progress).await?;
        progress.event(ev(EventKind::Pushed));
        Ok(PushOutcome::Uploaded)
    }

    /// Ask for a cross-repository mount. None: mounted; Some(location): the registry
    /// started an upload instead (202), to be used for sending the bytes.
    pub async fn mount_blob(&self, d: &Digest, from: &str) -> Result<Option<(String, u64)>> {
        let path = format!("/v2/{}/blobs/uploads/?mount={d}&from={from}", self.name);
        let mut scopes = self.scopes();
        scopes.push(repository_scope(from, &["pull"]));
        let resp = self.client.send(&self.host, Req::new(Method::POST, path.clone(), scopes)).await?;
        match resp.status() {
            StatusCode::CREATED => Ok(None),
            StatusCode::ACCEPTED => Ok(Some(self.upload_location(&path, &resp)?)),
            _ => {
                // A registry that cannot mount (or lets us read `from` no more) still takes uploads.
                let e = self.client.error_for(&self.host, "POST", &path, resp).await;
                tracing::debug!("mount of {d} from {from} refused: {e}");
                Ok(Some(self.start_upload().await?))
            }
        }
    }

    fn upload_location(&self, path: &str, resp: &reqwest::Response) -> Result<(String, u64)> {
        let loc =
            resp.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| Error::Protocol {
                registry: self.host.registry.clone(),
                detail: format!("POST {path}: 202 without a Location"),
            })?;
        let min = resp
            .headers()
            .get(HEADER_CHUNK_MIN_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Ok((self.absolute(loc)?, min))
    }

    fn absolute(&self, loc: &str) -> Result<String> {
        let base = url::Url::parse(&format!("{}/", self.host.base())).map_err(|e| Error::Protocol {
            registry: self.host.registry.clone(),
            detail: format!("bad base URL: {e}"),
        })?;
        base.join(loc).map(|u| u.to_string()).map_err(|e| Error::Protocol {
            registry: self.host.registry.clone(),
            detail: format!("bad upload location {loc:?}: {e}"),
        })
    }

    async fn start_upload(&self) -> Result<(String, u64)> {
        let path = format!("/v2/{}/blobs/uploads/", self.name);
        let resp = self.client.send(&self.host, self.req(Method::POST, path.clone())).await?;
        if resp.status() != StatusCode::ACCEPTED {
            let st = resp.status().as_u16();
            let e = self.client.error_for(&self.host, "POST", &path, resp).await;
            return Err(match e {
                Error::Http { ref code, ref message, .. } if st == 403 || code.trim() == "DENIED" => Error::Denied {
                    registry: self.host.registry.clone(),
                    repository: self.name.clone(),
                    action: "push to".into(),
                    detail: message.clone(),
                },
                e => e,
            });
        }
        self.upload_location(&path, &resp)
    }

    /// Send a blob's bytes: one streamed PUT, or PATCH chunks when the client has a chunk
    /// size. A failed try starts a fresh upload session (bounded by `max_tries`).
    pub async fn upload_blob(
        &self,
        desc: &Descriptor,
        source: &dyn BlobSource,
        location: Option<(String, u64)>,
        progress: &Arc<dyn Progress>,
    ) -> Result<()> {
        let max = self.client.options().max_tries;
        let mut location = location;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let res = async {
                let loc = match location.take() {
                    Some(l) => l,
                    None => self.start_upload().await?,
                };
                match self.client.options().chunk_size {
                    Some(max_req) if desc.size > max_req => {
                        self.upload_chunked(desc, source, loc, max_req, progress).await
                    }
                    _ => self.upload_monolithic(desc, source, &loc.0, progress).await,
                }
            }
            .await;
            match res {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() && attempt < max => {
                    progress.event(Event {
                        digest: desc.digest.clone(),
                        size: desc.size,
                        kind: EventKind::Retrying { reason: e.to_string() },
                    });
                    let d = self.client.backoff(attempt, None);
                    tracing::warn!(
                        "upload of {} to {}/{}: {e}; again in {:.1}s",
                        desc.digest,
                        self.host.registry,
                        self.name,
                        d.as_secs_f64()
                    );
                    tokio::time::sleep(d).await;
                }
                Err(e) if e.is_transient() => {
                    return Err(Error::RetriesExhausted {
                        what: format!("upload of {} to {}/{}", desc.digest, self.host.registry, self.name),
                        tries: attempt,
                        last: Box::new(e),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn with_digest(&self, loc: &str, d: &Digest) -> Result<String> {
        let mut u = url::Url::parse(loc).map_err(|e| Error::Protocol {
            registry: self.host.registry.clone(),
            detail: format!("bad upload location {loc:?}: {e}"),
        })?;
        u.query_pairs_mut().append_pair("digest", &d.to_string());
        Ok(u.to_string())
    }

    async fn upload_monolithic(
        &self,
        desc: &Descriptor,
        source: &dyn BlobSource,
        loc: &str,
        progress: &Arc<dyn Progress>,
    ) -> Result<()> {
        let url = self.with_digest(loc, &desc.digest)?;
        let stream = counting(source.open().await?, desc, progress);
        let cell = Mutex::new(Some(stream));
        let body = Arc::new(move || {
            let s = cell.lock().expect("lock").take().ok_or_else(|| Error::Invalid("upload body used twice".into()))?;
            Ok(reqwest::Body::wrap_stream(s))
        });
        let mut req = self
            .req(Method::PUT, url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, &desc.size.to_string())
            .body(body);
        req.once = true;
        self.finish_upload(desc, req).await
    }

    async fn finish_upload(&self, desc: &Descriptor, req: Req) -> Result<()> {
        let resp = self.client.send(&self.host, req).await?;
        let st = resp.status();
        if st == StatusCode::CREATED || st == StatusCode::NO_CONTENT {
            if let Some(got) = digest_header(resp.headers()) {
                if got != desc.digest {
                    return Err(Error::Protocol {
                        registry: self.host.registry.clone(),
                        detail: format!("upload of {} was stored as {got}", desc.digest),
                    });
                }
            }
            return Ok(());
        }
        Err(self.client.error_for(&self.host, "PUT", &format!("/v2/{}/blobs/uploads/…", self.name), resp).await)
    }

    async fn upload_chunked(
        &self,
        desc: &Descriptor,
        source: &dyn BlobSource,
        loc: (String, u64),
        max_req: u64,
        progress: &Arc<dyn Progress>,
    ) -> Result<()> {
        let (mut loc, min) = loc;
        let chunk = max_req.max(min).max(1) as usize;
        let mut stream = counting(source.open().await?, desc, progress);
        let mut offset = 0u64;
        let mut buf = BytesMut::with_capacity(chunk.min(64 * 1024 * 1024));
        let mut eof = false;
        while !eof {
            while buf.len() < chunk {
                match stream.next().await {
                    Some(b) => buf.extend_from_slice(&b.map_err(|e| Error::Image(rbuild_image::Error::Stream(e)))?),
                    None => {
                        eof = true;
                        break;
                    }
                }
            }
            while buf.len() >= chunk || (eof && !buf.is_empty()) {
                let n = buf.len().min(chunk);
                let part = buf.split_to(n).freeze();
                let end = offset + n as u64 - 1;
                let mut req = self
                    .req(Method::PATCH, loc.clone())
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(header::CONTENT_RANGE, &format!("{offset}-{end}"))
                    .header(header::CONTENT_LENGTH, &n.to_string())
                    .body(Arc::new(move || Ok(reqwest::Body::from(part.clone()))));
                req.once = true;
                let resp = self.client.send(&self.host, req).await?;
                if resp.status() != StatusCode::ACCEPTED && resp.status() != StatusCode::NO_CONTENT {
                    let path = format!("/v2/{}/blobs/uploads/…", self.name);
                    return Err(self.client.error_for(&self.host, "PATCH", &path, resp).await);
                }
                if let Some(l) = resp.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()) {
                    loc = self.absolute(l)?;
                }
                offset += n as u64;
            }
        }
        let url = self.with_digest(&loc, &desc.digest)?;
        let mut req = self.req(Method::PUT, url).header(header::CONTENT_LENGTH, "0");
        req.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        req.once = true;
        self.finish_upload(desc, req).await
    }
}

/// Count bytes as they go out, for progress.
fn counting(s: ByteStream, desc: &Descriptor, progress: &Arc<dyn Progress>) -> ByteStream {
    let progress = progress.clone();
    let digest = desc.digest.clone();
    let size = desc.size;
    let mut done = 0u64;
    let mut reported = 0u64;
    Box::pin(s.inspect(move |r| {
        if let Ok(b) = r {
            done += b.len() as u64;
            if done - reported >= 1024 * 1024 || done == size {
                reported = done;
                progress.event(Event { digest: digest.clone(), size, kind: EventKind::Pushing { done } });
            }
        }
    }))
}
