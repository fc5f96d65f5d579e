//! The solver: runs the stages of a [`BuildGraph`], independent stages on their own
//! threads (a stage starts when the stages it reads from are done), identical steps once
//! (same cache key => computed once, the other waits), each step looked up in the cache
//! before it is executed.

use crate::BuildRequest;
use crate::cache::{Cache, LayerRecord, Record};
use crate::config;
use crate::context::{Context, StatCache};
use crate::copy::{self, Placement, Tree};
use crate::progress::Progress;
use crate::resolver::{BaseImage, Resolver};
use crate::view::{self, Listing, View};
use crate::{Error, Result};
use rbuild_frontend::BuildGraph;
use rbuild_frontend::graph::{ConfigChange, CopyOp, Op, SourceOp, SourceRef, Stage, Step};
use rbuild_image::config::{History, ImageConfig};
use rbuild_image::layer::{Change, DirEntry, WriterOptions};
use rbuild_image::{Descriptor, Digest, Reference, Store};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// One layer of an image being built.
#[derive(Debug, Clone)]
pub struct LayerRef {
    /// The blob (maybe not local yet: a base layer).
    pub desc: Descriptor,
    /// Its diffID.
    pub diff_id: Digest,
    /// Where to fetch it from when it is not local.
    pub origin: Option<Reference>,
}

thread_local! {
    /// The progress number of the step this thread is running, for notes from deep inside
    /// it (layer fetches).
    static CURRENT_STEP: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// Run `f` with `n` as this thread's current step.
pub(crate) fn in_step<T>(n: Option<u32>, f: impl FnOnce() -> T) -> T {
    let before = CURRENT_STEP.replace(n);
    let out = f();
    CURRENT_STEP.set(before);
    out
}

/// The image after a step.
#[derive(Debug, Clone)]
pub struct State {
    /// The cache key of the step.
    pub key: String,
    /// Layers, base first.
    pub layers: Vec<LayerRef>,
    /// History, base first.
    pub history: Vec<History>,
    /// The base image's config (`None` for scratch).
    pub base_config: Option<Arc<ImageConfig>>,
}

type Memo = Arc<OnceLock<Result<State, String>>>;
type TreeCell = Arc<OnceLock<Result<PathBuf, String>>>;

/// Everything a build shares between its stage threads.
pub struct Builder<'a> {
    pub(crate) req: &'a BuildRequest,
    pub(crate) graph: &'a BuildGraph,
    pub(crate) store: Store,
    pub(crate) cache: Cache,
    pub(crate) stat: StatCache,
    pub(crate) progress: Arc<Progress>,
    pub(crate) ctx: Context,
    pub(crate) resolver: &'a Resolver,
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) cancel: Arc<AtomicBool>,
    listings: Mutex<HashMap<Digest, Arc<Listing>>>,
    trees: Mutex<HashMap<String, TreeCell>>,
    steps: Mutex<HashMap<String, Memo>>,
    stages: Mutex<HashMap<usize, Result<State, String>>>,
    stages_cv: Condvar,
    first_error: Mutex<Option<Error>>,
    pub(crate) records_used: Mutex<Vec<(String, Record)>>,
    pub(crate) snapshotter: OnceLock<Result<Box<dyn rbuild_runtime::snapshot::Snapshotter>, String>>,
    /// Base images whose metadata step was shown (once per image, as BuildKit does).
    metadata_shown: Mutex<std::collections::HashSet<String>>,
}

/// A cache key: blake3 over its parts.
pub fn key_of(parts: &[&[u8]]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"rbuild-cache-v1\0");
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().to_hex().to_string()
}

impl<'a> Builder<'a> {
    /// A builder for one build.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        req: &'a BuildRequest,
        graph: &'a BuildGraph,
        store: &Store,
        ctx: Context,
        resolver: &'a Resolver,
        progress: Arc<Progress>,
        cancel: Arc<AtomicBool>,
    ) -> Result<Builder<'a>> {
        let tmp_parent = store.root().join("tmp");
        let tmp = tempfile::Builder::new()
            .prefix(&format!("build-{}-", std::process::id()))
            .tempdir_in(&tmp_parent)
            .map_err(Error::io(&tmp_parent))?;
        Ok(Builder {
            req,
            graph,
            store: store.clone(),
            cache: Cache::open(store),
            stat: StatCache::load(&store.root().join("cache").join("statcache.bin")),
            progress,
            ctx,
            resolver,
            tmp,
            cancel,
            listings: Mutex::new(HashMap::new()),
            trees: Mutex::new(HashMap::new()),
            steps: Mutex::new(HashMap::new()),
            stages: Mutex::new(HashMap::new()),
            stages_cv: Condvar::new(),
            first_error: Mutex::new(None),
            records_used: Mutex::new(Vec::new()),
            snapshotter: OnceLock::new(),
            metadata_shown: Mutex::new(Default::default()),
        })
    }

    /// Run every stage; the target stage's final state.
    pub fn solve(&self) -> Result<State> {
        std::thread::scope(|s| {
            for stage in &self.graph.stages {
                s.spawn(move || {
                    let r = self.run_stage(stage);
                    let kept = match r {
                        Ok(st) => Ok(st),
                        Err(e) => {
                            let msg = e.to_string();
                            let mut first = self.first_error.lock().expect("lock");
                            if first.is_none() && !matches!(e, Error::Invalid(ref m) if m == DEP_FAILED) {
                                *first = Some(e);
                            }
                            Err(msg)
                        }
                    };
                    self.stages.lock().expect("lock").insert(stage.index, kept);
                    self.stages_cv.notify_all();
                });
            }
        });
        if let Some(e) = self.first_error.lock().expect("lock").take() {
            return Err(e);
        }
        let st = self.stages.lock().expect("lock").remove(&self.graph.target);
        match st {
            Some(Ok(s)) => Ok(s),
            Some(Err(e)) => Err(Error::Invalid(e)),
            None => Err(Error::Invalid(format!("target stage {} was not built", self.graph.target))),
        }
    }

    /// Wait for stage `index` to finish.
    pub(crate) fn stage_state(&self, index: usize) -> Result<State> {
        let mut g = self.stages.lock().expect("lock");
        loop {
            if let Some(r) = g.get(&index) {
                return r.clone().map_err(|_| Error::Invalid(DEP_FAILED.into()));
            }
            g = self.stages_cv.wait(g).expect("lock");
        }
    }

    /// `[stage i/n] desc`, where i and n count the steps that show a line of their own
    /// (FROM an image, WORKDIR, COPY, RUN…; not ENV, CMD or FROM a stage), as BuildKit
    /// counts them: numbers never skip.
    fn label(&self, stage: &Stage, i: usize, desc: &str) -> String {
        let n = stage.steps.iter().filter(|s| shows_a_line(s)).count();
        let at = stage.steps[..=i].iter().filter(|s| shows_a_line(s)).count();
        if self.graph.stages.len() > 1 {
            let name = stage.name.clone().unwrap_or_else(|| format!("stage-{}", stage.index));
            format!("[{name} {at}/{n}] {desc}")
        } else {
            format!("[{at}/{n}] {desc}")
        }
    }

    fn run_stage(&self, stage: &Stage) -> Result<State> {
        for d in &stage.depends_on {
            self.stage_state(*d)?;
        }
        let mut state: Option<State> = None;
        for (i, step) in stage.steps.iter().enumerate() {
            if self.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            let label = self.label(stage, i, &step.description);
            let next = match (&step.op, &state) {
                (Op::Source(src), _) => self
                    .source(src, &|desc: &str| self.label(stage, i, desc))
                    .map_err(|e| e.at_step(step.span, &step.description))?,
                (_, Some(parent)) => self.step(stage, step, parent, &label)?,
                (_, None) => return Err(Error::Invalid("a stage must start with its source".into())),
            };
            state = Some(next);
        }
        state.ok_or_else(|| Error::Invalid(format!("stage {} has no steps", stage.index)))
    }

    /// The state a stage starts from; `label` makes the step's line from what it shows.
    fn source(&self, src: &SourceOp, label: &dyn Fn(&str) -> String) -> Result<State> {
        match src {
            SourceOp::Scratch => {
                Ok(State { key: key_of(&[b"scratch"]), layers: Vec::new(), history: Vec::new(), base_config: None })
            }
            SourceOp::Stage { index, .. } => self.stage_state(*index),
            SourceOp::Image { reference, .. } => {
                let first = self.metadata_shown.lock().expect("lock").insert(reference.to_string());
                let n = first.then(|| self.progress.start(&format!("[internal] load metadata for {reference}")));
                let b = match self.resolver.base(reference) {
                    Ok(b) => b,
                    Err(e) => {
                        if let Some(n) = n {
                            self.progress.error(n, &e.to_string());
                        }
                        return Err(e);
                    }
                };
                if let Some(n) = n {
                    self.progress.done(n);
                }
                // The image as resolved, not the Dockerfile's text (`${BASE} AS build`).
                let shown = match b.reference.digest() {
                    Some(_) => format!("FROM {}", b.reference),
                    None => format!("FROM {}@{}", b.reference, b.manifest.digest()),
                };
                let n = self.progress.start(&label(&shown));
                self.progress.done(n);
                Ok(state_of_image(&b))
            }
        }
    }

    fn step(&self, stage: &Stage, step: &Step, parent: &State, label: &str) -> Result<State> {
        let at = |e: Error| e.at_step(step.span, &step.description);
        let inputs = self.inputs(step, parent).map_err(at)?;
        let epoch = self.req.source_date_epoch.map(|e| e.to_string()).unwrap_or_default();
        let key = key_of(&[parent.key.as_bytes(), step.id.as_bytes(), inputs.as_bytes(), epoch.as_bytes()]);
        let memo = self.steps.lock().expect("lock").entry(key.clone()).or_default().clone();
        let mut failure: Option<Error> = None;
        let r = memo.get_or_init(|| match self.step_uncached(stage, step, parent, label, &key) {
            Ok(s) => Ok(s),
            Err(e) => {
                let m = e.to_string();
                failure = Some(e);
                Err(m)
            }
        });
        if let Some(e) = failure {
            return Err(at(e));
        }
        r.clone().map_err(|m| at(Error::Invalid(m)))
    }

    fn no_cache_for(&self, stage: &Stage) -> bool {
        self.req.no_cache
            || stage.name.as_ref().is_some_and(|n| self.req.no_cache_filter.iter().any(|f| f.eq_ignore_ascii_case(n)))
            || self.req.no_cache_filter.iter().any(|f| f == &stage.index.to_string())
    }

    fn step_uncached(&self, stage: &Stage, step: &Step, parent: &State, label: &str, key: &str) -> Result<State> {
        let config_only = !shows_a_line(step);
        let n = if config_only { None } else { Some(self.progress.start(label)) };
        let rec = if self.no_cache_for(stage) { None } else { self.cache.get(key) };
        let rec = match rec {
            Some(r) => {
                if let Some(n) = n {
                    self.progress.cached(n);
                }
                r
            }
            None => {
                let rootfs_later = self.rootfs_needed_after(stage, step);
                let made = in_step(n, || match &step.op {
                    Op::Config(c) => self.config_step(c, parent, rootfs_later),
                    Op::Copy(c) => self.copy_step(c, parent, n.unwrap_or(0), rootfs_later),
                    Op::Exec(e) => self.exec_step(e, parent, n.unwrap_or(0), step),
                    Op::Source(_) => unreachable!("handled by the stage"),
                });
                let layer = match made {
                    Ok(l) => l,
                    Err(e) => {
                        if let Some(n) = n {
                            self.progress.error(n, &e.to_string());
                        }
                        return Err(e);
                    }
                };
                let created = config::now_or(self.req.source_date_epoch);
                let created_by = created_by(step);
                let rec = Record { history: config::history(created_by, &created, layer.is_none()), layer };
                self.cache.put(key, &rec)?;
                if let Some(n) = n {
                    self.progress.done(n);
                }
                rec
            }
        };
        let mut rec = rec;
        if matches!(&step.op, Op::Config(ConfigChange::Arg { .. })) {
            // The step's identity leaves out the values; the history must show this build's.
            rec.history.created_by = Some(created_by(step));
        }
        self.records_used.lock().expect("lock").push((key.to_string(), rec.clone()));
        let mut next = parent.clone();
        next.key = key.to_string();
        if let Some(l) = &rec.layer {
            next.layers.push(LayerRef { desc: l.descriptor(), diff_id: l.diff_id.clone(), origin: None });
        }
        next.history.push(rec.history);
        Ok(next)
    }

    /// Does a later RUN work on top of this step's result (a RUN later in the stage, or in
    /// a stage built FROM this one)? Then the step's layer is also written into a snapshot.
    fn rootfs_needed_after(&self, stage: &Stage, step: &Step) -> bool {
        let is_run = |s: &Step| matches!(s.op, Op::Exec(_));
        let i = stage.steps.iter().position(|s| std::ptr::eq(s, step)).unwrap_or(stage.steps.len());
        if stage.steps.get(i + 1..).unwrap_or(&[]).iter().any(is_run) {
            return true;
        }
        self.graph.stages.iter().any(|other| {
            matches!(other.steps.first().map(|s| &s.op), Some(Op::Source(SourceOp::Stage { index, .. })) if *index == stage.index)
                && other.steps.iter().any(is_run)
        })
    }

    /// The layer of `changes`, into a snapshot too when a later RUN needs it.
    fn finish_layer(&self, changes: Vec<Change>, parent: &State, rootfs_later: bool) -> Result<Option<LayerRecord>> {
        if rootfs_later { self.write_layer_snapshotted(changes, parent) } else { self.write_layer(changes) }
    }

    /// What a step reads beyond its definition and its parent: the content of COPY
    /// sources, the stages and images it copies from or mounts.
    fn inputs(&self, step: &Step, _parent: &State) -> Result<String> {
        match &step.op {
            Op::Copy(c) => match &c.from {
                SourceRef::Context => {
                    if c.add && c.sources.iter().any(|s| is_remote(s)) {
                        // Git repositories: the commit each resolves to (`git ls-remote`).
                        // URLs: the checksum when given, else never cached.
                        if c.sources.iter().all(|s| is_git(s)) {
                            let mut key = String::new();
                            for s in &c.sources {
                                match crate::add::git_commit(s, &self.cancel)? {
                                    Some(commit) => key.push_str(&format!("git:{s}@{commit}\n")),
                                    None => return Ok(format!("remote:{}", uuid_like())),
                                }
                            }
                            return Ok(key);
                        }
                        return Ok(match &c.checksum {
                            Some(sum) => format!("checksum:{sum}"),
                            None => format!("remote:{}", uuid_like()),
                        });
                    }
                    let tree = self.ctx.entries()?;
                    let sel =
                        copy::select(tree, &c.sources, &c.exclude, "the build context", &|p| self.missing_hint(p))?;
                    copy::hash_selection(tree, &sel, &self.stat, false, &self.cancel)
                }
                SourceRef::Stage { index, .. } => Ok(self.stage_state(*index)?.key),
                SourceRef::Image { reference } => Ok(self.resolver.base(reference)?.manifest.digest().to_string()),
            },
            Op::Exec(e) => {
                let mut parts = String::new();
                for m in &e.mounts {
                    match &m.from {
                        Some(SourceRef::Context) if m.kind == rbuild_frontend::graph::MountType::Bind => {
                            let tree = self.ctx.entries()?;
                            let src = view::clean(m.source.as_deref().unwrap_or(""));
                            let sel = copy::select(
                                tree,
                                &[if src.is_empty() { ".".into() } else { src }],
                                &[],
                                "the build context",
                                &|p| self.missing_hint(p),
                            )?;
                            parts.push_str(&copy::hash_selection(tree, &sel, &self.stat, false, &self.cancel)?);
                        }
                        Some(SourceRef::Stage { index, .. }) => parts.push_str(&self.stage_state(*index)?.key),
                        Some(SourceRef::Image { reference }) => {
                            parts.push_str(&self.resolver.base(reference)?.manifest.digest().to_string())
                        }
                        _ => {}
                    }
                    parts.push('\n');
                }
                if let Some(n) = &self.req.network {
                    parts.push_str(n);
                }
                Ok(parts)
            }
            _ => Ok(String::new()),
        }
    }

    pub(crate) fn missing_hint(&self, rel: &str) -> Option<String> {
        if crate::glob::has_meta(rel) {
            return self.missing_glob_hint(rel);
        }
        let p = self.ctx.root().join(rel);
        if std::fs::symlink_metadata(&p).is_ok() && self.ctx.is_ignored(rel) {
            return Some("excluded by .dockerignore".into());
        }
        let mut cur = String::new();
        for comp in rel.split('/') {
            cur = if cur.is_empty() { comp.to_string() } else { format!("{cur}/{comp}") };
            if self.ctx.is_ignored(&cur) && std::fs::symlink_metadata(self.ctx.root().join(&cur)).is_ok() {
                return Some(format!("{cur} is excluded by .dockerignore"));
            }
        }
        None
    }

    /// A wildcard source that matched nothing: is a file on disk that it matches kept out
    /// by .dockerignore? (Looks at the disk only on this error path.)
    fn missing_glob_hint(&self, pattern: &str) -> Option<String> {
        let comps: Vec<&str> = pattern.split('/').collect();
        let root = self.ctx.root();
        let rel_of = |p: &std::path::Path| p.strip_prefix(root).ok().map(|r| r.to_string_lossy().into_owned());
        let walker = walkdir::WalkDir::new(root)
            .min_depth(1)
            .max_depth(comps.len())
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| {
                rel_of(e.path()).is_some_and(|r| {
                    let d = r.split('/').count();
                    d <= comps.len() && crate::glob::matches(&comps[..d].join("/"), &r)
                })
            });
        for e in walker.flatten() {
            if e.depth() != comps.len() {
                continue;
            }
            let Some(r) = rel_of(e.path()) else { continue };
            let mut cur = String::new();
            for comp in r.split('/') {
                cur = if cur.is_empty() { comp.to_string() } else { format!("{cur}/{comp}") };
                if self.ctx.is_ignored(&cur) {
                    return Some(if cur == r {
                        format!("{r} matches but is excluded by .dockerignore")
                    } else {
                        format!("{r} matches but {cur} is excluded by .dockerignore")
                    });
                }
            }
        }
        None
    }

    // ----- layers, views, files of the parent image -----

    /// Make sure the layers' blobs are in the store: the missing ones fetched in parallel,
    /// each noted on the step being run on this thread (if any).
    pub(crate) fn ensure_all_local(&self, layers: &[LayerRef]) -> Result<()> {
        let mut want = Vec::new();
        for l in layers {
            if self.store.blob_size(&l.desc.digest)? == Some(l.desc.size) {
                continue;
            }
            match &l.origin {
                Some(o) => want.push((o.clone(), l.desc.clone())),
                None => return Err(Error::Image(rbuild_image::Error::NotFound(format!("layer {}", l.desc.digest)))),
            }
        }
        let progress = self.progress.clone();
        let step = CURRENT_STEP.get();
        let note: Arc<dyn Fn(String) + Send + Sync> = Arc::new(move |text: String| {
            if let Some(n) = step {
                progress.note(n, &text);
            }
        });
        self.resolver.fetch_all(want, note)
    }

    /// Make sure a layer's blob is in the store.
    pub(crate) fn ensure_local(&self, l: &LayerRef) -> Result<()> {
        if self.store.blob_size(&l.desc.digest)? == Some(l.desc.size) {
            return Ok(());
        }
        match &l.origin {
            Some(o) => self.resolver.fetch(o, &l.desc),
            None => Err(Error::Image(rbuild_image::Error::NotFound(format!("layer {}", l.desc.digest)))),
        }
    }

    fn listing(&self, l: &LayerRef) -> Result<Arc<Listing>> {
        if let Some(x) = self.listings.lock().expect("lock").get(&l.diff_id) {
            return Ok(x.clone());
        }
        let path = self.store.root().join("cache").join("listings").join(format!("{}.json", l.diff_id.hex()));
        let listing = match std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Listing>(&b).ok()) {
            Some(x) => x,
            None => {
                self.ensure_local(l)?;
                let x = view::listing_of(self.store.open_blob(&l.desc.digest)?)?;
                if let Ok(b) = serde_json::to_vec(&x) {
                    let _ = crate::context::write_atomic(&path, &b);
                }
                x
            }
        };
        let x = Arc::new(listing);
        self.listings.lock().expect("lock").insert(l.diff_id.clone(), x.clone());
        Ok(x)
    }

    /// The merged view of a state's layers.
    pub(crate) fn view(&self, st: &State) -> Result<View> {
        let mut v = Vec::with_capacity(st.layers.len());
        for l in &st.layers {
            v.push(self.listing(l)?);
        }
        Ok(View::new(v))
    }

    /// Read a small file of the image (`/etc/passwd`).
    pub(crate) fn read_image_file(&self, st: &State, v: &View, path: &str) -> Result<Option<Vec<u8>>> {
        let Some((i, p)) = v.file_layer(path) else { return Ok(None) };
        let l = &st.layers[i];
        self.ensure_local(l)?;
        view::read_from_layer(self.store.open_blob(&l.desc.digest)?, &p, 4 << 20)
    }

    /// `user[:group]` to numbers, names looked up in the image's /etc/passwd and /etc/group.
    pub(crate) fn resolve_owner(&self, st: &State, v: &View, spec: &str) -> Result<(u32, u32)> {
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let passwd = || -> Result<String> {
            Ok(String::from_utf8_lossy(&self.read_image_file(st, v, "etc/passwd")?.unwrap_or_default()).into_owned())
        };
        let (uid, primary) = match u.parse::<u32>() {
            Ok(n) => (n, n),
            Err(_) => view::lookup_passwd(&passwd()?, u).ok_or_else(|| {
                Error::Invalid(format!("unable to find user {u}: no matching entries in passwd file"))
            })?,
        };
        let gid = match g {
            None => primary,
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => {
                    let text = String::from_utf8_lossy(&self.read_image_file(st, v, "etc/group")?.unwrap_or_default())
                        .into_owned();
                    view::lookup_group(&text, g).ok_or_else(|| {
                        Error::Invalid(format!("unable to find group {g}: no matching entries in group file"))
                    })?
                }
            },
        };
        Ok((uid, gid))
    }

    /// Extract a state's whole rootfs into a directory of this build (once per state).
    pub(crate) fn materialize(&self, st: &State) -> Result<PathBuf> {
        let cell = self.trees.lock().expect("lock").entry(st.key.clone()).or_default().clone();
        let r = cell.get_or_init(|| {
            let dir = self.tmp.path().join(format!("tree-{}", &st.key[..16.min(st.key.len())]));
            let go = || -> Result<PathBuf> {
                std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
                self.ensure_all_local(&st.layers)?;
                for l in &st.layers {
                    let blob = crate::cancel::Checked::new(self.store.open_blob(&l.desc.digest)?, &self.cancel);
                    rbuild_image::layer::apply_layer(blob, &dir, &Default::default())
                        .map_err(|e| self.cancelled_or(e.into()))?;
                }
                Ok(dir.clone())
            };
            go().map_err(|e| e.to_string())
        });
        r.clone().map_err(Error::Invalid)
    }

    /// Write `changes` as an uncompressed layer blob into the store.
    pub(crate) fn write_layer(&self, changes: Vec<Change>) -> Result<Option<LayerRecord>> {
        if changes.is_empty() {
            return Ok(None);
        }
        let opts = WriterOptions { source_date_epoch: self.req.source_date_epoch, xattrs: true };
        let w = crate::cancel::Checked::new(self.store.ingest()?, &self.cancel);
        let w = rbuild_image::layer::write_layer(changes, w, &opts).map_err(|e| self.cancelled_or(e.into()))?;
        let (diff_id, size) = w.into_inner().commit(None, None)?;
        Ok(Some(LayerRecord { diff_id, size }))
    }

    /// `e`, or [`Error::Cancelled`] when the build was cancelled meanwhile (a stream that
    /// stopped on the flag fails with an I/O error).
    pub(crate) fn cancelled_or(&self, e: Error) -> Error {
        if self.cancel.load(std::sync::atomic::Ordering::SeqCst) { Error::Cancelled } else { e }
    }

    // ----- steps -----

    fn config_step(&self, c: &ConfigChange, parent: &State, rootfs_later: bool) -> Result<Option<LayerRecord>> {
        let ConfigChange::Workdir { path, user } = c else { return Ok(None) };
        let v = self.view(parent)?;
        let (real, meta) = v.resolve(path, true);
        if meta.is_some_and(|m| m.is_dir()) || real.is_empty() {
            return Ok(None);
        }
        let (uid, gid) = if user.is_empty() { (0, 0) } else { self.resolve_owner(parent, &v, user).unwrap_or((0, 0)) };
        let mut changes = Vec::new();
        let mut cur = String::new();
        for comp in real.split('/') {
            cur = if cur.is_empty() { comp.to_string() } else { format!("{cur}/{comp}") };
            // Every directory WORKDIR creates belongs to the USER, the missing parents too
            // (BuildKit's mkdir with parents chowns each one it makes).
            if !v.resolve(&cur, true).1.is_some_and(|m| m.is_dir()) {
                changes.push(Change::Dir(DirEntry { path: cur.clone(), mode: 0o755, uid, gid, mtime: None }));
            }
        }
        self.finish_layer(changes, parent, rootfs_later)
    }

    fn copy_step(&self, c: &CopyOp, parent: &State, n: u32, rootfs_later: bool) -> Result<Option<LayerRecord>> {
        let v = if c.link { None } else { Some(self.view(parent)?) };
        let owner = match &c.chown {
            Some(spec) => {
                let v2 = match &v {
                    Some(v) => v.clone(),
                    None => self.view(parent)?,
                };
                Some(self.resolve_owner(parent, &v2, spec)?)
            }
            None => None,
        };
        let mode = c.chmod.as_deref().map(copy::parse_chmod).transpose()?;
        let mut placement = Placement {
            dest: c.dest.clone(),
            dest_is_dir: c.dest_is_dir,
            parents: c.parents,
            owner,
            default_owner: None,
            mode: mode.clone(),
            file_mode: None,
        };
        let mut changes = Vec::new();
        // Heredoc files.
        if !c.inline_files.is_empty() {
            let dir = self.tmp.path().join(format!("inline-{}", rbuild_runtime::snapshot::unique()));
            std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
            let mut tree = Tree::new();
            tree.insert(String::new(), dir.clone());
            for f in &c.inline_files {
                let p = dir.join(&f.name);
                std::fs::write(&p, &f.data).map_err(Error::io(&p))?;
                set_mode(&p, f.mode.unwrap_or(0o644))?;
                tree.insert(f.name.clone(), p);
            }
            let names: Vec<String> = c.inline_files.iter().map(|f| f.name.clone()).collect();
            let sel = copy::select(&tree, &names, &[], "the heredoc", &|_| None)?;
            let p = Placement { default_owner: Some((0, 0)), ..placement.clone() };
            changes.extend(copy::plan(&tree, &sel, &p, v.as_ref())?);
        }
        if c.sources.is_empty() {
            return self.finish_layer(dedupe(changes), parent, rootfs_later);
        }
        match &c.from {
            SourceRef::Context if c.add && c.sources.iter().any(|s| is_remote(s)) => {
                let (tree, names) = crate::add::fetch_remote(self, c, n)?;
                placement.default_owner = Some((0, 0));
                if c.sources.iter().any(|s| is_url(s)) {
                    placement.file_mode = Some(mode.as_ref().map(|m| m.apply(0o600, false)).unwrap_or(0o600));
                }
                let sel = copy::select(&tree, &names, &c.exclude, "the downloaded sources", &|_| None)?;
                changes.extend(copy::plan(&tree, &sel, &placement, v.as_ref())?);
            }
            SourceRef::Context => {
                let tree = self.ctx.entries()?;
                let note = |w: &str| self.progress.note(n, &format!("warning: {w}"));
                let hint = |p: &str| self.missing_hint(p);
                let sel = copy::select_noting(tree, &c.sources, &c.exclude, "the build context", &hint, &note)?;
                placement.default_owner = Some((0, 0));
                if c.add {
                    let (archives, plain): (Vec<_>, Vec<_>) =
                        sel.into_iter().partition(|s| !s.is_dir && copy::is_archive(&tree[&s.rel]));
                    changes.extend(copy::plan(tree, &plain, &placement, v.as_ref())?);
                    for a in archives {
                        let (t, s) = crate::add::extract_archive(self, &tree[&a.rel])?;
                        let mut p = placement.clone();
                        p.dest_is_dir = true;
                        p.default_owner = None;
                        changes.extend(copy::plan(&t, &s, &p, v.as_ref())?);
                    }
                } else {
                    changes.extend(copy::plan(tree, &sel, &placement, v.as_ref())?);
                }
            }
            SourceRef::Stage { index, .. } => {
                let st = self.stage_state(*index)?;
                let dir = self.materialize(&st)?;
                let tree = copy::tree_of_root(&dir)?;
                let sel = copy::select(&tree, &c.sources, &c.exclude, &format!("stage {index}"), &|_| None)?;
                changes.extend(copy::plan(&tree, &sel, &placement, v.as_ref())?);
            }
            SourceRef::Image { reference } => {
                let b = self.resolver.base(reference)?;
                let dir = self.materialize(&state_of_image(&b))?;
                let tree = copy::tree_of_root(&dir)?;
                let sel = copy::select(&tree, &c.sources, &c.exclude, reference, &|_| None)?;
                changes.extend(copy::plan(&tree, &sel, &placement, v.as_ref())?);
            }
        }
        self.finish_layer(dedupe(changes), parent, rootfs_later)
    }
}

const DEP_FAILED: &str = "a stage this one depends on failed";

/// A state for a base image.
pub fn state_of_image(b: &BaseImage) -> State {
    let diff_ids = b.config.rootfs.diff_ids.clone();
    let layers = b
        .layers()
        .into_iter()
        .zip(diff_ids)
        .map(|(desc, diff_id)| LayerRef { desc, diff_id, origin: b.origin.clone() })
        .collect();
    State {
        key: key_of(&[b"image", b.manifest.digest().to_string().as_bytes()]),
        layers,
        history: b.config.history.clone(),
        base_config: Some(Arc::new(b.config.clone())),
    }
}

fn dedupe(changes: Vec<Change>) -> Vec<Change> {
    let mut m: std::collections::BTreeMap<String, Change> = std::collections::BTreeMap::new();
    for c in changes {
        let p = match &c {
            Change::Add(a) => view::clean(&a.path),
            Change::Dir(d) => view::clean(&d.path),
            Change::Whiteout(p) | Change::Opaque(p) => format!("\0{p}"),
        };
        match (m.get(&p), &c) {
            // A real directory beats a made-up one at the same path.
            (Some(Change::Add(_)), Change::Dir(_)) => {}
            _ => {
                m.insert(p, c);
            }
        }
    }
    m.into_values().collect()
}

fn set_mode(p: &std::path::Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(Error::io(p))
}

/// Is this ADD source fetched from elsewhere (a URL or a git repository)?
pub fn is_remote(s: &str) -> bool {
    is_url(s) || is_git(s)
}

/// http(s) URL.
pub fn is_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://")) && !is_git(s)
}

/// A git repository, as BuildKit tells one: `git://…`, `ssh://…`, an scp-like
/// `user@host:path`, or an http(s) URL whose path ends in `.git` (a fragment `#ref:dir`
/// may follow any of them).
pub fn is_git(s: &str) -> bool {
    let url = s.split('#').next().unwrap_or(s);
    if url.starts_with("git://") || url.starts_with("ssh://") {
        return true;
    }
    if let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) {
        let path = rest.split('?').next().unwrap_or(rest);
        return path.contains('/') && path.ends_with(".git");
    }
    // user@host:path, user [A-Za-z0-9_-]+ and host [A-Za-z0-9.-]+.
    let Some((user, rest)) = url.split_once('@') else { return false };
    let Some((host, _path)) = rest.split_once(':') else { return false };
    !user.is_empty()
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

fn uuid_like() -> String {
    format!("{}-{}", std::process::id(), rbuild_runtime::snapshot::unique())
}

/// The history `created_by` of a step, BuildKit style.
fn created_by(step: &Step) -> String {
    match &step.op {
        Op::Exec(e) => format!("RUN {} # buildkit", e.args.join(" ")),
        Op::Copy(_) => format!("{} # buildkit", step.description),
        // BuildKit writes the values the ARGs took, not the line as written.
        Op::Config(ConfigChange::Arg { pairs }) => {
            let kv: Vec<String> = pairs
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k.clone(),
                })
                .collect();
            format!("ARG {}", kv.join(" "))
        }
        _ => step.description.clone(),
    }
}

/// Does this step print a progress line of its own? Config changes (ENV, CMD, LABEL…) do
/// not, except WORKDIR (which makes the directory); a stage's start does only when it is an
/// image.
fn shows_a_line(step: &Step) -> bool {
    match &step.op {
        Op::Source(SourceOp::Image { .. }) => true,
        Op::Source(_) => false,
        Op::Config(c) => matches!(c, ConfigChange::Workdir { .. }),
        _ => true,
    }
}
