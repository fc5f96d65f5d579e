//! rbuild-builder: executes a build graph: `rbuild build`, a Dockerfile and a context into
//! an image.
//!
//! Owns: the solver, the build cache, the build context, COPY and ADD, and the exporters.
//! Leaves to others: Dockerfile parsing (rbuild-frontend), registries
//! (rbuild-registry-client), running RUN steps (rbuild-runtime: snapshots, the sandbox,
//! layer diffs), image formats, the layer tar writer/applier and the store (rbuild-image).
//!
//! [`build`] lowers the Dockerfile (the frontend asks [`resolver`] for base images' configs:
//! the local store first, else the registry, manifest and config only), runs the graph in
//! [`solver`] (independent stages on their own threads, identical steps once, every step
//! looked up in the [`cache`] by a key of its parent's key, its definition and the content
//! of what it reads), and hands the result to [`export`]: config + manifest into the
//! store, tags last; push; archives; root filesystem outputs.
//!
//! Layers made by a build are stored uncompressed (their digest is their diffID) and
//! compressed only when they leave the machine or `--compression` says so.
//!
//! A build is cancelled through its cancel flag ([`cancel`] sets it on SIGINT/SIGTERM): no
//! step starts after it, the running RUN's sandbox is killed, and no tag is written.
//!
//! RUN steps run in rbuild-runtime's sandbox, which re-executes the current binary; that
//! binary's `main` must call `rbuild_runtime::sandbox::init_hook` first.
#![deny(missing_docs)]

mod add;
pub mod cache;
pub mod cancel;
pub mod config;
pub mod context;
pub mod copy;
mod error;
mod exec;
pub mod export;
pub mod glob;
pub mod lints;
pub mod progress;
pub mod resolver;
pub mod solver;
pub mod view;

pub use error::{Error, Result};
pub use export::{OutputKind, OutputSpec};
pub use progress::{Progress, ProgressMode};

use rbuild_frontend::{LowerOptions, Platform as FrontendPlatform};
use rbuild_image::{Compression, Descriptor, Digest, Platform, Reference, Store};
use rbuild_runtime::sandbox::SecretSource;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Where the context comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextSource {
    /// A directory.
    Dir(PathBuf),
    /// A tar (plain, gzip or zstd) on stdin (`-`).
    Stdin,
}

/// `--cache-to` / `--cache-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheSpec {
    /// `type=local,dest=DIR` / `src=DIR`: an OCI layout directory.
    Local(PathBuf),
    /// `type=registry,ref=REF`.
    Registry(String),
}

impl CacheSpec {
    /// Parse `type=local,dest=DIR`, `type=local,src=DIR`, `type=registry,ref=REF` (or a
    /// bare reference, meaning registry).
    pub fn parse(s: &str) -> Result<CacheSpec> {
        if !s.contains('=') {
            return Ok(CacheSpec::Registry(s.to_string()));
        }
        let mut kind = "";
        let mut path = None;
        let mut reference = None;
        for f in s.split(',') {
            match f.split_once('=') {
                Some(("type", v)) => {
                    kind = if v == "local" {
                        "local"
                    } else if v == "registry" {
                        "registry"
                    } else {
                        "?"
                    }
                }
                Some(("dest" | "src", v)) => path = Some(PathBuf::from(v)),
                Some(("ref", v)) => reference = Some(v.to_string()),
                Some(("mode" | "compression" | "oci-mediatypes" | "image-manifest" | "ignore-error", _)) => {}
                _ => return Err(Error::Invalid(format!("cache option {f:?} in {s:?} is not understood"))),
            }
        }
        match (kind, path, reference) {
            ("local", Some(p), _) => Ok(CacheSpec::Local(p)),
            ("registry", _, Some(r)) => Ok(CacheSpec::Registry(r)),
            _ => Err(Error::Invalid(format!("cache {s:?}: use type=local,dest=DIR|src=DIR or type=registry,ref=REF"))),
        }
    }
}

/// Everything a build needs, validated (the CLI turns flags into this).
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The context.
    pub context: Option<ContextSource>,
    /// The Dockerfile path (default `<context>/Dockerfile`).
    pub dockerfile: Option<PathBuf>,
    /// The Dockerfile's text when it was read elsewhere (`-f -`).
    pub dockerfile_text: Option<String>,
    /// `--build-arg`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `-t`, normalized.
    pub tags: Vec<Reference>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--no-cache-filter` (stage names).
    pub no_cache_filter: Vec<String>,
    /// `--pull`.
    pub pull: bool,
    /// `--platform` (must be the host's).
    pub platform: Option<String>,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--network` (`default`, `host`, `none`).
    pub network: Option<String>,
    /// `--allow`: entitlements (`security.insecure`).
    pub allow: Vec<String>,
    /// `--secret`.
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--ssh`.
    pub ssh: BTreeMap<String, PathBuf>,
    /// `--progress`.
    pub progress: ProgressMode,
    /// `--output` (empty: the local store).
    pub outputs: Vec<OutputSpec>,
    /// `--push`.
    pub push: bool,
    /// `--compression` (None: uncompressed in the store, gzip when pushed or archived).
    pub compression: Option<Compression>,
    /// `--compression-level`.
    pub compression_level: Option<i32>,
    /// `--source-date-epoch` / SOURCE_DATE_EPOCH.
    pub source_date_epoch: Option<i64>,
    /// `--cache-from`.
    pub cache_from: Vec<CacheSpec>,
    /// `--cache-to`.
    pub cache_to: Vec<CacheSpec>,
    /// `--dry-run`: lower only.
    pub dry_run: bool,
    /// The binary the sandbox re-executes (tests); default `/proc/self/exe`.
    pub init_exe: Option<PathBuf>,
    /// Registry client options (tests); default from the environment.
    pub client_options: Option<ClientOptionsBox>,
}

/// Registry client options, wrapped so the request stays `Debug`.
#[derive(Clone)]
pub struct ClientOptionsBox(pub rbuild_registry_client::ClientOptions);

impl std::fmt::Debug for ClientOptionsBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientOptions")
    }
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct Built {
    /// The image ID (config digest).
    pub image_id: Digest,
    /// The manifest's descriptor (in the store).
    pub manifest: Descriptor,
    /// Tags written.
    pub tags: Vec<Reference>,
    /// Pushed: reference and manifest digest.
    pub pushed: Vec<(Reference, Digest)>,
    /// Steps that came from the cache / steps executed.
    pub cached_steps: usize,
    /// `--dry-run`: the graph's JSON.
    pub graph_json: Option<String>,
}

/// The host platform, in both crates' words.
fn host_platform() -> (Platform, FrontendPlatform) {
    let p = Platform::host();
    let f = FrontendPlatform {
        os: p.os.clone(),
        arch: p.architecture.clone(),
        variant: p.variant.clone().unwrap_or_default(),
    };
    (p, f)
}

/// `RUN --security=insecure` runs only when the build was started with `--allow
/// security.insecure` (BuildKit's entitlement): refuse the build up front, naming the step.
fn check_entitlements(graph: &rbuild_frontend::BuildGraph, allow: &[String]) -> Result<()> {
    if allow.iter().any(|a| a == "security.insecure") {
        return Ok(());
    }
    let steps = graph.stages.iter().flat_map(|s| &s.steps);
    for step in steps {
        if let rbuild_frontend::graph::Op::Exec(e) = &step.op {
            if e.security == rbuild_frontend::graph::SecurityMode::Insecure {
                return Err(Error::Step {
                    span: step.span,
                    instruction: step.description.clone(),
                    message: "RUN --security=insecure is not allowed: start the build with \
                              --allow security.insecure to run this step with every capability and no seccomp"
                        .into(),
                    tail: Vec::new(),
                });
            }
        }
    }
    Ok(())
}

/// Run a build.
pub fn build(store: &Store, req: &BuildRequest, progress: Arc<Progress>, cancel: Arc<AtomicBool>) -> Result<Built> {
    let (platform, fplatform) = host_platform();
    if let Some(p) = &req.platform {
        let asked = Platform::parse(p).map_err(|e| Error::Invalid(format!("--platform: {e}")))?;
        if !platform.matches(&asked) || asked.architecture != platform.architecture {
            return Err(Error::Invalid(format!(
                "--platform {p}: only this machine's platform ({}/{}) can be built (no emulation)",
                platform.os, platform.architecture
            )));
        }
    }
    let context = req.context.clone().unwrap_or(ContextSource::Dir(".".into()));
    let (dockerfile_name, text, dockerfile_path) = match (&req.dockerfile_text, &req.dockerfile, &context) {
        (Some(t), _, _) => ("Dockerfile".to_string(), t.clone(), None),
        (None, Some(p), _) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| Error::Invalid(format!("reading Dockerfile {}: {e}", p.display())))?;
            (p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or("Dockerfile".into()), t, Some(p.clone()))
        }
        (None, None, ContextSource::Dir(d)) => {
            let p = d.join("Dockerfile");
            let t = std::fs::read_to_string(&p)
                .map_err(|e| Error::Invalid(format!("reading Dockerfile {}: {e}", p.display())))?;
            ("Dockerfile".to_string(), t, Some(p))
        }
        (None, None, ContextSource::Stdin) => (String::new(), String::new(), None),
    };
    let remote = Arc::new(resolver::Remote::new(req.client_options.clone().map(|c| c.0), cancel.clone())?);
    let resolver = resolver::Resolver::new(store, remote, req.pull, platform.clone());
    // The context (a tar on stdin may carry the Dockerfile).
    let ctx = match &context {
        ContextSource::Dir(d) => {
            let df = dockerfile_path.clone().unwrap_or_else(|| d.join("Dockerfile"));
            let ignore =
                rbuild_frontend::dockerignore::find_ignore_file(d, &df).and_then(|p| std::fs::read_to_string(p).ok());
            context::Context::from_dir(d, ignore)?
        }
        ContextSource::Stdin => context::Context::from_tar(std::io::stdin(), &store.root().join("tmp"))?,
    };
    let (dockerfile_name, text) = if text.is_empty() && dockerfile_path.is_none() {
        let p = ctx.root().join("Dockerfile");
        let t = std::fs::read_to_string(&p)
            .map_err(|e| Error::Invalid(format!("the context tar has no Dockerfile: {e}")))?;
        ("Dockerfile".to_string(), t)
    } else {
        (dockerfile_name, text)
    };
    let n = progress.start(&format!("[internal] load build definition from {dockerfile_name}"));
    progress.note(n, &format!("transferring dockerfile: {}B", text.len()));
    progress.done(n);
    let ast = rbuild_frontend::parse(&text, &dockerfile_name).map_err(|e| Error::Frontend(e.render(&text)))?;
    let mut build_args = req.build_args.clone();
    if let Some(e) = req.source_date_epoch {
        build_args.entry("SOURCE_DATE_EPOCH".into()).or_insert(e.to_string());
    }
    let opts = LowerOptions {
        build_args,
        target: req.target.clone(),
        target_platform: fplatform.clone(),
        build_platform: fplatform,
        dockerfile_name: dockerfile_name.clone(),
    };
    let fr = resolver::FrontendResolver(&resolver);
    let lowered = rbuild_frontend::lower(&ast, &opts, &fr).map_err(|e| Error::Frontend(e.render(&text)))?;
    lints::report(&text, &dockerfile_name, &opts, &resolver, &progress)?;
    let graph = lowered.graph;
    check_entitlements(&graph, &req.allow).map_err(|e| Error::Frontend(e.render(&dockerfile_name, &text)))?;
    if req.dry_run {
        return Ok(Built {
            image_id: Digest::sha256_of(b""),
            manifest: Descriptor::new("", Digest::sha256_of(b""), 0),
            tags: vec![],
            pushed: vec![],
            cached_steps: 0,
            graph_json: Some(graph.to_json_pretty()),
        });
    }
    let builder = solver::Builder::new(req, &graph, store, ctx, &resolver, progress.clone(), cancel)?;
    for c in &req.cache_from {
        if let Err(e) = cache_io::import(&builder, c) {
            progress.message(&format!("WARNING: importing cache {c:?}: {e}"));
        }
    }
    let result = builder.solve().map_err(|e| match e {
        Error::Cancelled => Error::Cancelled,
        e => Error::Frontend(e.render(&dockerfile_name, &text)),
    });
    let _ = builder.stat.save();
    let state = result?;
    let check_cancel = || {
        if builder.cancel.load(std::sync::atomic::Ordering::SeqCst) { Err(Error::Cancelled) } else { Ok(()) }
    };
    check_cancel()?;
    builder.cache.pin()?;
    let stage = graph.stage(graph.target).ok_or_else(|| Error::Invalid("no target stage".into()))?;

    // The config.
    let n = progress.start("exporting to image");
    let created = match req.source_date_epoch {
        Some(e) => Some(config::rfc3339(e)),
        None => state
            .history
            .iter()
            .filter_map(|h| h.created.clone())
            .max()
            .or_else(|| state.base_config.as_ref().and_then(|c| c.created.clone())),
    };
    let cfg = config::assemble(config::Parts {
        base: state.base_config.as_deref(),
        stage: &stage.config,
        labels: &req.labels,
        platform: &platform,
        diff_ids: state.layers.iter().map(|l| l.diff_id.clone()).collect(),
        history: state.history.clone(),
        created,
    });
    let leaves =
        req.push || req.outputs.iter().any(|o| o.push || matches!(o.kind, OutputKind::Oci | OutputKind::Docker));
    let compression = req.compression.unwrap_or(if leaves { Compression::Gzip } else { Compression::None });
    let raw = export::write_image(&builder, &state.layers, &cfg, compression, req.compression_level)?;
    progress.note(
        n,
        &format!("writing image {} done", raw.as_image().map(|m| m.config.digest.to_string()).unwrap_or_default()),
    );
    let desc = raw.descriptor();
    let mut tags = req.tags.clone();
    for o in &req.outputs {
        for name in &o.names {
            let r = Reference::parse(name).map_err(|e| Error::Invalid(format!("--output name={name}: {e}")))?;
            tags.push(r.with_default_tag());
        }
    }
    let to_store = req.outputs.is_empty() || req.outputs.iter().any(|o| o.kind == OutputKind::Image);
    let mut written_tags = Vec::new();
    // Tags are the point of no return: a cancelled build leaves none.
    if let Err(e) = check_cancel() {
        progress.error(n, &e.to_string());
        return Err(e);
    }
    if to_store {
        for t in &tags {
            store.tag(t, &desc)?;
            progress.note(n, &format!("naming to {t} done"));
            written_tags.push(t.clone());
        }
    }
    progress.done(n);
    for o in &req.outputs {
        let dest = o.dest.clone().unwrap_or_default();
        let n = progress.start(&format!("exporting to {:?} {}", o.kind, dest.display()).to_lowercase());
        // Base layers are fetched for archives and rootfs outputs.
        let r = solver::in_step(Some(n), || match o.kind {
            OutputKind::Image => Ok(()),
            OutputKind::Oci | OutputKind::Docker => builder.ensure_all_local(&state.layers).and_then(|_| {
                let f = if o.kind == OutputKind::Oci {
                    rbuild_image::store::archive::ArchiveFormat::Oci
                } else {
                    rbuild_image::store::archive::ArchiveFormat::Docker
                };
                export::write_archive(&builder, &raw, &tags, f, &dest, o.tar)
            }),
            OutputKind::Local => export::write_rootfs_dir(&builder, &state.layers, &dest),
            OutputKind::Tar => export::write_rootfs_tar(&builder, &state.layers, &dest),
        });
        if let Err(e) = r {
            progress.error(n, &e.to_string());
            return Err(e);
        }
        progress.done(n);
    }
    let mut pushed = Vec::new();
    let push_all = req.push || req.outputs.iter().any(|o| o.kind == OutputKind::Image && o.push);
    if push_all {
        if tags.is_empty() {
            return Err(Error::Invalid("--push needs a name: add -t REGISTRY/NAME:TAG".into()));
        }
        let client = resolver.remote().client()?;
        let rp: Arc<dyn rbuild_registry_client::Progress> = Arc::new(rbuild_registry_client::progress::NoProgress);
        for t in &tags {
            check_cancel()?;
            let n = progress.start(&format!("pushing {t}"));
            match resolver.remote().block_on(client.push(store, &raw, t, &rp))? {
                Ok(p) => {
                    progress.note(
                        n,
                        &format!(
                            "pushed {} (uploaded {}, mounted {}, already there {})",
                            p.digest, p.uploaded, p.mounted, p.existing
                        ),
                    );
                    progress.done(n);
                    pushed.push((t.clone(), p.digest));
                }
                Err(source) => {
                    progress.error(n, &source.to_string());
                    return Err(Error::Registry { what: format!("pushing {t}"), source: Box::new(source) });
                }
            }
        }
    }
    for c in &req.cache_to {
        let n = progress.start(&format!("exporting cache to {c:?}"));
        if let Err(e) = cache_io::export(&builder, c) {
            progress.error(n, &e.to_string());
            return Err(e);
        }
        progress.done(n);
    }
    let cached_steps = 0;
    Ok(Built {
        image_id: raw.as_image().map(|m| m.config.digest.clone()).expect("an image manifest"),
        manifest: desc,
        tags: written_tags,
        pushed,
        cached_steps,
        graph_json: None,
    })
}

mod cache_io;
