//! Base images: found in the local store, or resolved at their registry (manifest and
//! config only; layers are fetched later, and only when a step needs their bytes). Also
//! the frontend's [`ImageResolver`], which asks this for a base image's config.

use crate::{Error, Result};
use rbuild_frontend::{BaseImageInfo, ImageResolver};
use rbuild_image::config::ImageConfig;
use rbuild_image::{Descriptor, Digest, Platform, RawManifest, Reference, Store};
use rbuild_registry_client::{Client, ClientOptions};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The registry side: a tokio runtime and a client made on first use.
pub struct Remote {
    rt: tokio::runtime::Runtime,
    client: OnceLock<Result<Client, String>>,
    options: Mutex<Option<ClientOptions>>,
    cancel: Arc<AtomicBool>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Remote")
    }
}

impl Remote {
    /// A runtime; the client comes from the environment (docker config, registries.toml)
    /// unless `options` are given. Setting `cancel` abandons whatever transfer is running.
    pub fn new(options: Option<ClientOptions>, cancel: Arc<AtomicBool>) -> Result<Remote> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Invalid(format!("starting the async runtime: {e}")))?;
        Ok(Remote { rt, client: OnceLock::new(), options: Mutex::new(options), cancel })
    }

    /// The client.
    pub fn client(&self) -> Result<&Client> {
        let c = self.client.get_or_init(|| {
            let opts = match self.options.lock().expect("lock").take() {
                Some(o) => o,
                None => ClientOptions::from_environment().map_err(|e| e.to_string())?,
            };
            Client::new(opts).map_err(|e| e.to_string())
        });
        c.as_ref().map_err(|e| Error::Invalid(format!("registry client: {e}")))
    }

    /// Run a future to completion (from any non-async thread), or drop it, mid-transfer,
    /// when the build is cancelled: `Error::Cancelled`. What it was writing to the store
    /// is a temp file that goes with it.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> Result<F::Output> {
        let cancel = &self.cancel;
        self.rt.block_on(async move {
            let watch = async {
                while !cancel.load(Ordering::SeqCst) {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            };
            tokio::select! {
                out = f => Ok(out),
                () = watch => Err(Error::Cancelled),
            }
        })
    }
}

/// A base image as the build uses it.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// The reference as resolved (normalized).
    pub reference: Reference,
    /// The image manifest for the build's platform.
    pub manifest: RawManifest,
    /// Its config.
    pub config: ImageConfig,
    /// Where missing layers can be fetched from (None: all local).
    pub origin: Option<Reference>,
}

impl BaseImage {
    /// Layer descriptors, base first.
    pub fn layers(&self) -> Vec<Descriptor> {
        self.manifest.as_image().map(|m| m.layers.clone()).unwrap_or_default()
    }
}

/// Resolves base images once per build.
pub struct Resolver {
    store: Store,
    remote: Arc<Remote>,
    pull: bool,
    platform: Platform,
    seen: Mutex<HashMap<String, Result<BaseImage, String>>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl Resolver {
    /// A resolver over `store`, asking registries through `remote`; with `pull`, the
    /// registry is asked even when the store has the image.
    pub fn new(store: &Store, remote: Arc<Remote>, pull: bool, platform: Platform) -> Resolver {
        Resolver { store: store.clone(), remote, pull, platform, seen: Mutex::new(HashMap::new()) }
    }

    /// The remote side.
    pub fn remote(&self) -> &Arc<Remote> {
        &self.remote
    }

    /// What an earlier [`Resolver::base`] found for `image_ref`, without looking again.
    pub fn seen(&self, image_ref: &str) -> Option<std::result::Result<BaseImage, String>> {
        self.seen.lock().expect("lock").get(image_ref).cloned()
    }

    /// Find `image_ref` (the store first unless `--pull`, then its registry).
    pub fn base(&self, image_ref: &str) -> Result<BaseImage> {
        if let Some(r) = self.seen.lock().expect("lock").get(image_ref) {
            return r.clone().map_err(Error::Invalid);
        }
        let r = self.find(image_ref);
        let kept = match &r {
            Ok(b) => Ok(b.clone()),
            Err(e) => Err(e.to_string()),
        };
        self.seen.lock().expect("lock").insert(image_ref.to_string(), kept);
        r
    }

    fn find(&self, image_ref: &str) -> Result<BaseImage> {
        let reference = Reference::parse(image_ref)
            .map_err(|e| Error::Invalid(format!("invalid base image reference {image_ref:?}: {e}")))?;
        let reference = if reference.digest().is_some() { reference } else { reference.with_default_tag() };
        if !self.pull {
            let local = match reference.digest() {
                Some(_) => self.store.resolve(&reference.to_string()),
                None => match self.store.lookup_tag(&reference)? {
                    Some(d) => self.store.load_image_for(&d, Some(reference.clone()), &self.platform),
                    None => Err(rbuild_image::Error::NotFound(image_ref.to_string())),
                },
            };
            if let Ok(img) = local {
                let all_local = img.layers().iter().all(|l| self.store.has_blob(&l.digest));
                let origin = (!all_local).then(|| reference.clone());
                return Ok(BaseImage { reference, manifest: img.manifest, config: img.config, origin });
            }
        }
        let client = self.remote.client()?;
        let what = resolving(image_ref);
        let res = self
            .remote
            .block_on(client.resolve(&reference, &self.platform))?
            .map_err(|source| Error::Registry { what: what.clone(), source: Box::new(source) })?;
        let m = res.manifest.as_image().ok_or_else(|| Error::Invalid(format!("{image_ref}: not an image manifest")))?;
        let progress: Arc<dyn rbuild_registry_client::Progress> =
            Arc::new(rbuild_registry_client::progress::NoProgress);
        self.remote.block_on(client.fetch_blob_to_store(&self.store, &reference, &m.config, &progress))?.map_err(
            |source| Error::Registry { what: format!("fetching the config of {image_ref}"), source: Box::new(source) },
        )?;
        let config = ImageConfig::parse(&self.store.read_blob(&m.config.digest)?)?;
        self.store.put_manifest(&res.manifest)?;
        // Where the layers are, so a push can mount them and a step can fetch them.
        let mut sources = rbuild_registry_client::sources::BlobSources::load(self.store.root());
        for l in &m.layers {
            sources.record(&l.digest, reference.registry(), reference.repository());
        }
        if let Err(e) = sources.save() {
            tracing::warn!("cannot note where the layers of {image_ref} are: {e}");
        }
        Ok(BaseImage { reference: reference.clone(), manifest: res.manifest.clone(), config, origin: Some(reference) })
    }

    /// Make sure the blobs `want` (each with the image it comes from) are in the store,
    /// as many at a time as a pull transfers (the client's `concurrency`); `note` hears each
    /// start and end.
    pub fn fetch_all(&self, want: Vec<(Reference, Descriptor)>, note: Arc<dyn Fn(String) + Send + Sync>) -> Result<()> {
        let want: Vec<_> =
            want.into_iter().filter(|(_, d)| self.store.blob_size(&d.digest).ok() != Some(Some(d.size))).collect();
        if want.is_empty() {
            return Ok(());
        }
        let client = self.remote.client()?.clone();
        let store = self.store.clone();
        let gate = Arc::new(tokio::sync::Semaphore::new(client.options().concurrency));
        self.remote.block_on(async move {
            // Dropped (on cancel or the first error), the set aborts the other fetches.
            let mut set = tokio::task::JoinSet::new();
            for (origin, d) in want {
                let (client, store, gate, note) = (client.clone(), store.clone(), gate.clone(), note.clone());
                set.spawn(async move {
                    let _turn = gate.acquire_owned().await;
                    note(format!("pulling {} {}", d.digest, rbuild_registry_client::progress::human(d.size)));
                    let t = std::time::Instant::now();
                    let progress: Arc<dyn rbuild_registry_client::Progress> =
                        Arc::new(rbuild_registry_client::progress::NoProgress);
                    client.fetch_blob_to_store(&store, &origin, &d, &progress).await.map_err(|source| {
                        Error::Registry {
                            what: format!("fetching layer {} of {origin}", d.digest),
                            source: Box::new(source),
                        }
                    })?;
                    note(format!("pulled {} in {:.1}s", d.digest, t.elapsed().as_secs_f64()));
                    Ok::<_, Error>(())
                });
            }
            while let Some(r) = set.join_next().await {
                r.map_err(|e| Error::Invalid(format!("a layer fetch failed: {e}")))??;
            }
            Ok(())
        })?
    }

    /// Make sure the blob `d` of `base` is in the store (fetched from its registry).
    pub fn fetch(&self, origin: &Reference, d: &Descriptor) -> Result<()> {
        if self.store.blob_size(&d.digest)? == Some(d.size) {
            return Ok(());
        }
        let client = self.remote.client()?;
        let progress: Arc<dyn rbuild_registry_client::Progress> =
            Arc::new(rbuild_registry_client::progress::NoProgress);
        self.remote.block_on(client.fetch_blob_to_store(&self.store, origin, d, &progress))?.map_err(|source| {
            Error::Registry { what: format!("fetching layer {} of {origin}", d.digest), source: Box::new(source) }
        })
    }
}

/// The context a failed base-image lookup carries.
fn resolving(image_ref: &str) -> String {
    format!("resolving base image {image_ref}")
}

/// The frontend's view of [`Resolver`].
pub struct FrontendResolver<'a>(pub &'a Resolver);

impl ImageResolver for FrontendResolver<'_> {
    fn resolve(&self, image_ref: &str, _platform: &str) -> Result<Option<BaseImageInfo>, String> {
        // The frontend says "resolving base image X" itself: hand it the cause alone (a
        // failure seen before comes back from the cache as text, so trim the text).
        let b = self.0.base(image_ref).map_err(|e| {
            let msg = e.to_string();
            let context = format!("{}: ", resolving(image_ref));
            msg.strip_prefix(&context).map(str::to_string).unwrap_or(msg)
        })?;
        Ok(Some(info_of(&b.config, b.manifest.digest())))
    }
}

/// The frontend's view of what [`Resolver`] already found: images it did not look up are
/// unknown, never fetched (linting must not reach the network for stages a build skips).
pub struct SeenResolver<'a>(pub &'a Resolver);

impl ImageResolver for SeenResolver<'_> {
    fn resolve(&self, image_ref: &str, _platform: &str) -> Result<Option<BaseImageInfo>, String> {
        match self.0.seen(image_ref) {
            Some(Ok(b)) => Ok(Some(info_of(&b.config, b.manifest.digest()))),
            _ => Ok(None),
        }
    }
}

/// What the frontend needs of an image config.
pub fn info_of(c: &ImageConfig, digest: &Digest) -> BaseImageInfo {
    let cc = c.config.clone().unwrap_or_default();
    let platform = (!c.os.is_empty() && !c.architecture.is_empty()).then(|| match c.variant.as_deref() {
        Some(v) if !v.is_empty() => format!("{}/{}/{v}", c.os, c.architecture),
        _ => format!("{}/{}", c.os, c.architecture),
    });
    BaseImageInfo {
        digest: Some(digest.to_string()),
        platform,
        env: cc.env,
        working_dir: cc.working_dir.unwrap_or_default(),
        user: cc.user.unwrap_or_default(),
        onbuild: cc.on_build.unwrap_or_default(),
        entrypoint: cc.entrypoint,
        cmd: cc.cmd,
        shell: cc.shell,
        labels: cc.labels,
        exposed_ports: cc.exposed_ports.keys().cloned().collect(),
        volumes: cc.volumes.keys().cloned().collect(),
        stop_signal: cc.stop_signal,
        healthcheck: cc.healthcheck.map(|h| rbuild_frontend::graph::Healthcheck {
            test: h.test,
            interval: h.interval.unwrap_or(0),
            timeout: h.timeout.unwrap_or(0),
            start_period: h.start_period.unwrap_or(0),
            start_interval: h.start_interval.unwrap_or(0),
            retries: h.retries.unwrap_or(0),
        }),
    }
}
