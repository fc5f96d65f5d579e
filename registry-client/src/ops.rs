//! The operations people run: pull into the local store, push from it, copy between
//! registries, and fetch one blob lazily (the builder, for a base layer it needs).

use crate::client::Client;
use crate::error::{Error, Result};
use crate::progress::{Event, EventKind, Progress};
use crate::repo::{BlobSource, ByteStream, FileSource, PushOutcome, Repository};
use crate::sources::BlobSources;
use futures::{StreamExt, TryStreamExt, future::BoxFuture};
use rbuild_image::store::Store;
use rbuild_image::{Descriptor, Digest, Platform, RawManifest, Reference, media_type};
use std::sync::{Arc, Mutex};

/// What a reference resolved to at a registry.
#[derive(Clone)]
pub struct Resolved {
    /// The repository that answered (a mirror, or the registry itself).
    pub repository: Repository,
    /// What the tag or digest points at (an index, or the manifest itself).
    pub top: RawManifest,
    /// The image manifest for the platform asked for.
    pub manifest: RawManifest,
}

/// What a pull put in the store.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference as asked (normalized, default tag applied).
    pub reference: Reference,
    /// The digest of what the reference points at (an index, or the manifest).
    pub digest: Digest,
    /// The image manifest stored and tagged.
    pub manifest: RawManifest,
    /// Blobs downloaded (the rest were already in the store).
    pub downloaded: usize,
}

/// What a push sent.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Where it went.
    pub reference: Reference,
    /// The digest of the manifest (or index) pushed.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    /// Blobs already there.
    pub existing: usize,
}

/// Pick the manifest for `platform` in an index.
pub fn select_platform<'a>(index: &'a RawManifest, platform: &Platform, reference: &str) -> Result<&'a Descriptor> {
    let idx = index.as_index().ok_or_else(|| Error::Invalid(format!("{reference} is not an index")))?;
    let images = || idx.manifests.iter().filter(|d| media_type::is_manifest(&d.media_type));
    let exact = images().find(|d| d.platform.as_ref().is_some_and(|p| p == platform));
    let found =
        exact.or_else(|| images().find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))).or_else(|| {
            let v: Vec<_> = images().collect();
            (v.len() == 1 && v[0].platform.is_none()).then(|| v[0])
        });
    found.ok_or_else(|| Error::PlatformNotFound {
        reference: reference.to_string(),
        platform: platform.to_string(),
        available: {
            let v: Vec<String> = images()
                .filter_map(|d| d.platform.as_ref())
                .filter(|p| p.os != "unknown")
                .map(|p| p.to_string())
                .collect();
            if v.is_empty() { "no platforms".into() } else { v.join(", ") }
        },
    })
}

impl Client {
    /// The repositories to pull `r` from: its mirrors in order, then the registry itself.
    /// A mirror gets its own credentials, never the registry's.
    pub fn pull_repositories(&self, r: &Reference) -> Vec<Repository> {
        let mut v: Vec<Repository> = self
            .options()
            .registries
            .mirrors(r)
            .iter()
            .map(|m| self.repository_at(m, m, r.repository(), false))
            .collect();
        v.push(self.repository(r, false));
        v
    }

    /// Fetch what `r` points at, and for an index the manifest for `platform`, trying
    /// mirrors first.
    pub async fn resolve(&self, r: &Reference, platform: &Platform) -> Result<Resolved> {
        let mut last = None;
        for repo in self.pull_repositories(r) {
            match self.resolve_at(&repo, r, platform).await {
                Ok(res) => return Ok(res),
                Err(e) => {
                    if repo.api_host() != r.api_host() {
                        tracing::warn!("mirror {} for {r}: {e}; trying the next source", repo.api_host());
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.expect("the registry itself is always tried"))
    }

    async fn resolve_at(&self, repo: &Repository, r: &Reference, platform: &Platform) -> Result<Resolved> {
        let top = repo.get_manifest(&r.api_reference()).await?;
        let manifest = if top.as_index().is_some() {
            let d = select_platform(&top, platform, &r.to_string())?;
            let m = repo.get_manifest(&d.digest.to_string()).await?;
            if m.as_image().is_none() {
                return Err(Error::Protocol {
                    registry: r.registry().into(),
                    detail: format!("{} in index {} is not an image manifest", d.digest, top.digest()),
                });
            }
            m
        } else {
            top.clone()
        };
        Ok(Resolved { repository: repo.clone(), top, manifest })
    }

    /// Pull `r` for `platform` into `store`: blobs in parallel (skipped when present,
    /// verified, resumed), then the manifest's raw bytes, then the tag.
    pub async fn pull(
        &self,
        store: &Store,
        r: &Reference,
        platform: &Platform,
        progress: &Arc<dyn Progress>,
    ) -> Result<Pulled> {
        let r = r.clone().with_default_tag();
        let res = self.resolve(&r, platform).await?;
        let m = res.manifest.as_image().expect("resolved to an image manifest");
        let mut blobs: Vec<Descriptor> = vec![m.config.clone()];
        blobs.extend(
            m.layers.iter().filter(|l| !media_type::is_non_distributable(&l.media_type) || l.urls.is_empty()).cloned(),
        );
        for b in &blobs[1..] {
            progress.event(Event { digest: b.digest.clone(), size: b.size, kind: EventKind::Waiting });
        }
        let downloaded = Arc::new(Mutex::new(0usize));
        futures::stream::iter(blobs.iter().map(|d| {
            let downloaded = downloaded.clone();
            let repo = &res.repository;
            async move {
                if store.blob_size(&d.digest)? == Some(d.size) {
                    progress.event(Event { digest: d.digest.clone(), size: d.size, kind: EventKind::AlreadyExists });
                    return Ok(());
                }
                fetch_into_store(repo, store, d, progress).await?;
                *downloaded.lock().expect("lock") += 1;
                Ok::<(), Error>(())
            }
        }))
        .buffer_unordered(self.options().concurrency)
        .try_collect::<Vec<()>>()
        .await?;
        let mut sources = BlobSources::load(store.root());
        for b in &blobs {
            sources.record(&b.digest, r.registry(), r.repository());
        }
        if let Err(e) = sources.save() {
            tracing::warn!("cannot note where blobs came from: {e}");
        }
        store.put_manifest(&res.manifest)?;
        if res.top.digest() != res.manifest.digest() {
            store.put_manifest(&res.top)?;
        }
        if let Some(tag) = r.tag() {
            let tagged = Reference::new(r.registry(), r.repository(), Some(tag), None)?;
            store.tag(&tagged, &res.manifest.descriptor())?;
        }
        progress.message(&format!("Digest: {}", res.top.digest()));
        let downloaded = *downloaded.lock().expect("lock");
        Ok(Pulled { reference: r, digest: res.top.digest().clone(), manifest: res.manifest, downloaded })
    }

    /// Fetch one blob of `r`'s repository into the store (nothing when already there):
    /// what the builder calls when a step needs a base layer's bytes.
    pub async fn fetch_blob_to_store(
        &self,
        store: &Store,
        r: &Reference,
        d: &Descriptor,
        progress: &Arc<dyn Progress>,
    ) -> Result<()> {
        if store.blob_size(&d.digest)? == Some(d.size) {
            return Ok(());
        }
        let mut last = None;
        for repo in self.pull_repositories(r) {
            match fetch_into_store(&repo, store, d, progress).await {
                Ok(()) => {
                    let mut s = BlobSources::load(store.root());
                    s.record(&d.digest, r.registry(), r.repository());
                    let _ = s.save();
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("the registry itself is always tried"))
    }

    /// Push the image `manifest` (and what it reaches) from `store` to `dest`: blobs in
    /// parallel — skipped when present, mounted when the store knows another repository of
    /// the same registry has them, else streamed — and the manifest's raw bytes last,
    /// under `dest`'s tag (or digest).
    pub async fn push(
        &self,
        store: &Store,
        manifest: &RawManifest,
        dest: &Reference,
        progress: &Arc<dyn Progress>,
    ) -> Result<Pushed> {
        let repo = self.repository(dest, true);
        let sources = Arc::new(Mutex::new(BlobSources::load(store.root())));
        let mut out = Pushed {
            reference: dest.clone(),
            digest: manifest.digest().clone(),
            size: manifest.bytes().len() as u64,
            uploaded: 0,
            mounted: 0,
            existing: 0,
        };
        let images: Vec<RawManifest> = match manifest.as_index() {
            None => vec![manifest.clone()],
            Some(idx) => {
                idx.manifests.iter().map(|d| store.read_manifest(d).map_err(Error::from)).collect::<Result<Vec<_>>>()?
            }
        };
        for img in &images {
            let Some(m) = img.as_image() else {
                return Err(Error::Invalid(format!("{}: nested indexes cannot be pushed", img.digest())));
            };
            let mut blobs = vec![m.config.clone()];
            blobs.extend(m.layers.iter().filter(|l| !media_type::is_non_distributable(&l.media_type)).cloned());
            let outcomes: Vec<PushOutcome> = futures::stream::iter(blobs.iter().map(|d| {
                let repo = &repo;
                let sources = sources.clone();
                async move {
                    let (mount, remote) = {
                        let s = sources.lock().expect("lock");
                        let mount = s.repository_on(&d.digest, dest.registry(), dest.repository());
                        let remote = s.get(&d.digest).first().cloned();
                        (mount, remote)
                    };
                    let outcome = if store.has_blob(&d.digest) {
                        let src = FileSource(store.blob_path(&d.digest));
                        repo.push_blob(d, &src, mount.as_deref(), progress).await?
                    } else {
                        // Not in the store (a base layer never needed locally): mount it, or
                        // stream it from where it came from.
                        let Some(from) = remote else {
                            return Err(Error::Invalid(format!(
                                "blob {} of {} is not in the local store and its origin is unknown; pull the image first",
                                d.digest,
                                img.digest()
                            )));
                        };
                        let origin = Reference::parse(&from)?;
                        let src = RemoteSource { repo: self.repository(&origin, false), desc: d.clone() };
                        repo.push_blob(d, &src, mount.as_deref(), progress).await?
                    };
                    sources.lock().expect("lock").record(&d.digest, dest.registry(), dest.repository());
                    Ok::<_, Error>(outcome)
                }
            }))
            .buffer_unordered(self.options().concurrency)
            .try_collect()
            .await?;
            for o in outcomes {
                match o {
                    PushOutcome::Exists => out.existing += 1,
                    PushOutcome::Mounted => out.mounted += 1,
                    PushOutcome::Uploaded => out.uploaded += 1,
                }
            }
            if manifest.as_index().is_some() {
                repo.put_manifest(&img.digest().to_string(), img).await?;
            }
        }
        let reference = match (dest.tag(), dest.digest()) {
            (Some(t), _) => t.to_string(),
            (None, Some(d)) => d.to_string(),
            (None, None) => rbuild_image::reference::DEFAULT_TAG.to_string(),
        };
        repo.put_manifest(&reference, manifest).await?;
        if let Err(e) = sources.lock().expect("lock").save() {
            tracing::warn!("cannot note where blobs went: {e}");
        }
        let tagline = dest.tag().map(|t| format!("{t}: ")).unwrap_or_default();
        progress.message(&format!("{tagline}digest: {} size: {}", manifest.digest(), manifest.bytes().len()));
        Ok(out)
    }

    /// Copy `src` to `dest` between registries without the local store: blobs streamed
    /// from one to the other (mounted when both are the same registry), manifests' raw
    /// bytes unchanged. With `all`, every platform of an index; else the one for `platform`.
    pub async fn copy(
        &self,
        src: &Reference,
        dest: &Reference,
        all: bool,
        platform: &Platform,
        progress: &Arc<dyn Progress>,
    ) -> Result<Pushed> {
        let src = src.clone().with_default_tag();
        let res = self.resolve(&src, platform).await?;
        let dest = if dest.tag().is_none() && dest.digest().is_none() {
            match src.tag() {
                Some(t) => dest.with_tag(t)?,
                None => dest.clone(),
            }
        } else {
            dest.clone()
        };
        let dst = self.repository(&dest, true);
        let from = &res.repository;
        let same_registry = from.registry() == dest.registry() && from.api_host() == dst.api_host();
        let (top, images) = if all && res.top.as_index().is_some() {
            let idx = res.top.as_index().expect("index");
            let mut v = Vec::new();
            for d in &idx.manifests {
                v.push(from.get_manifest(&d.digest.to_string()).await?);
            }
            (res.top.clone(), v)
        } else {
            (res.manifest.clone(), vec![res.manifest.clone()])
        };
        let mut out = Pushed {
            reference: dest.clone(),
            digest: top.digest().clone(),
            size: top.bytes().len() as u64,
            uploaded: 0,
            mounted: 0,
            existing: 0,
        };
        for img in &images {
            let blobs: Vec<Descriptor> = match img.as_image() {
                Some(m) => std::iter::once(m.config.clone())
                    .chain(m.layers.iter().filter(|l| !media_type::is_non_distributable(&l.media_type)).cloned())
                    .collect(),
                // An index inside an index (attestations and the like): copied as is.
                None => Vec::new(),
            };
            let outcomes: Vec<PushOutcome> = futures::stream::iter(blobs.iter().map(|d| {
                let dst = &dst;
                async move {
                    let src = RemoteSource { repo: from.clone(), desc: d.clone() };
                    let mount = same_registry.then(|| from.name());
                    dst.push_blob(d, &src, mount, progress).await
                }
            }))
            .buffer_unordered(self.options().concurrency)
            .try_collect()
            .await?;
            for o in outcomes {
                match o {
                    PushOutcome::Exists => out.existing += 1,
                    PushOutcome::Mounted => out.mounted += 1,
                    PushOutcome::Uploaded => out.uploaded += 1,
                }
            }
            if img.digest() != top.digest() {
                dst.put_manifest(&img.digest().to_string(), img).await?;
            }
        }
        let reference = dest.tag().map(str::to_string).unwrap_or_else(|| top.digest().to_string());
        dst.put_manifest(&reference, &top).await?;
        progress.message(&format!("{}: digest: {} size: {}", dest.familiar(), top.digest(), top.bytes().len()));
        Ok(out)
    }
}

/// Download one blob into the store: streamed to a temp file, verified by the store's
/// commit (digest and size), resumed on dropped connections, and resumed from what an
/// interrupted earlier pull (another process, killed) left in the store's `tmp/`.
async fn fetch_into_store(
    repo: &Repository,
    store: &Store,
    d: &Descriptor,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    let (w, have) = store.ingest_resumable(&d.digest, d.size)?;
    if have > 0 {
        tracing::info!("blob {}: resuming an interrupted download at byte {have} of {}", d.digest, d.size);
    }
    let w = repo.fetch_blob_from(d, w, have, false, progress).await?;
    let (digest, size) = (d.digest.clone(), d.size);
    let registry = repo.registry().to_string();
    let what = format!("blob {} of {}", d.digest, repo.name());
    tokio::task::spawn_blocking(move || w.commit(Some(&digest), Some(size)))
        .await
        .map_err(|e| Error::Invalid(format!("commit task failed: {e}")))?
        .map_err(|e| match e {
            rbuild_image::Error::DigestMismatch { expected, actual } => {
                Error::DigestMismatch { registry, what, expected, actual }
            }
            e => Error::Image(e),
        })?;
    progress.event(Event { digest: d.digest.clone(), size: d.size, kind: EventKind::PullComplete });
    Ok(())
}

/// A blob read from another repository (for copy and for pushing blobs the store lacks),
/// verified as it streams through: a mismatch fails the upload before it is committed.
pub struct RemoteSource {
    /// Where to read it.
    pub repo: Repository,
    /// What to read.
    pub desc: Descriptor,
}

impl BlobSource for RemoteSource {
    fn open(&self) -> BoxFuture<'_, Result<ByteStream>> {
        Box::pin(async move {
            let (_, s) = self.repo.blob_stream(&self.desc.digest, 0).await?;
            let expected = self.desc.digest.clone();
            let size = self.desc.size;
            let mut hasher = Some(expected.algorithm().hasher());
            let mut seen = 0u64;
            let host = self.repo.api_host().to_string();
            let s = s.map(move |r| {
                let b = r?;
                seen += b.len() as u64;
                if seen > size {
                    return Err(std::io::Error::other(format!("{expected} from {host}: more than {size} bytes")));
                }
                if let Some(h) = hasher.as_mut() {
                    h.update(&b);
                }
                if seen == size {
                    let got = hasher.take().map(|h| h.finish());
                    if got.as_ref() != Some(&expected) {
                        return Err(std::io::Error::other(format!(
                            "{expected} from {host}: digest mismatch ({got:?})"
                        )));
                    }
                }
                Ok(b)
            });
            Ok(Box::pin(s) as ByteStream)
        })
    }
}
