//! Garbage collection: mark from index.json and the gc roots, sweep what nothing reaches.

use super::layout::{Layout, clean_stale_tmp};
use super::{Store, index, lock};
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{MAX_MANIFEST_SIZE, RawManifest};
use crate::media_type as mt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Temp files older than this are what a killed process left behind.
pub const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

/// How to collect.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcOptions {
    /// Report what would go, remove nothing.
    pub dry_run: bool,
    /// Ignore (and remove) the gc roots under `gcroots/`, so only tags keep blobs.
    pub ignore_roots: bool,
    /// Don't wait for other processes that are writing blobs: when one is, collect nothing
    /// and say so in [`GcReport::deferred`].
    pub no_wait: bool,
    /// Also remove the untagged (dangling) images, as `docker image prune` does.
    pub untagged: bool,
}

/// What a collection removed (or, on a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs removed, with their sizes.
    pub removed: Vec<(Digest, u64)>,
    /// Bytes those blobs held.
    pub freed_bytes: u64,
    /// Blobs still referenced.
    pub kept: usize,
    /// Stale temp files removed (left by killed processes).
    pub stale_tmp_files: usize,
    /// Ingest files removed because no live process held them (interrupted loads, pulls).
    pub stale_ingests: usize,
    /// Their bytes.
    pub stale_ingest_bytes: u64,
    /// Gc root files removed (with [`GcOptions::ignore_roots`]).
    pub roots_removed: usize,
    /// Untagged images dropped from the index (with [`GcOptions::untagged`]).
    pub untagged_removed: Vec<Digest>,
    /// True when nothing was actually removed.
    pub dry_run: bool,
    /// True when gc did not run because another process was writing (see
    /// [`GcOptions::no_wait`]).
    pub deferred: bool,
}

impl GcReport {
    /// How many blobs went.
    pub fn removed_count(&self) -> usize {
        self.removed.len()
    }
}

fn is_manifest_type(media_type: &str) -> bool {
    mt::is_manifest(media_type) || mt::is_index(media_type)
}

/// Read a manifest blob that may be absent or unparsable (gc must not fail on either).
fn try_manifest(layout: &Layout, d: &Digest) -> Option<RawManifest> {
    let path = layout.blob(d);
    let meta = std::fs::metadata(&path).ok()?;
    if meta.len() > MAX_MANIFEST_SIZE as u64 {
        return None;
    }
    // Layers are most of the store and never start with '{': don't read them whole.
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut std::fs::File::open(&path).ok()?, &mut first).ok()?;
    if first[0] != b'{' {
        return None;
    }
    let bytes = std::fs::read(&path).ok()?;
    RawManifest::parse_with(bytes, None, d.algorithm()).ok()
}

fn mark(layout: &Layout, marked: &mut BTreeSet<Digest>, d: &Descriptor) {
    let mut stack = vec![d.clone()];
    while let Some(d) = stack.pop() {
        if !marked.insert(d.digest.clone()) {
            continue;
        }
        if is_manifest_type(&d.media_type) {
            if let Some(m) = try_manifest(layout, &d.digest) {
                stack.extend(m.references().into_iter().cloned());
            }
        }
    }
}

/// Every blob under blobs/, with its size.
fn all_blobs(layout: &Layout) -> Result<BTreeMap<Digest, u64>> {
    let mut out = BTreeMap::new();
    let blobs = layout.blobs();
    let Ok(algs) = std::fs::read_dir(&blobs) else { return Ok(out) };
    for alg in algs.flatten() {
        let alg_name = alg.file_name().to_string_lossy().into_owned();
        let rd = std::fs::read_dir(alg.path()).map_err(Error::io(alg.path()))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // Anything that is not a well-formed digest is not ours to judge; leave it.
            if let Ok(d) = Digest::parse(&format!("{alg_name}:{name}")) {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                out.insert(d, size);
            }
        }
    }
    Ok(out)
}

/// The gc root files and the descriptors they pin.
fn read_roots(layout: &Layout) -> Result<Vec<(std::path::PathBuf, Vec<Descriptor>)>> {
    let dir = layout.gcroots();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else { return Ok(out) };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&p).map_err(Error::io(&p))?;
        // A root we cannot read is a root we cannot honour: refuse to collect rather than
        // delete what it may pin.
        let descs: Vec<Descriptor> = serde_json::from_slice(&bytes)
            .map_err(|e| Error::InvalidJson { what: "gc root", reason: format!("{}: {e}", p.display()) })?;
        out.push((p, descs));
    }
    Ok(out)
}

pub(crate) fn run(store: &Store, opts: GcOptions) -> Result<GcReport> {
    run_scoped(store, opts, None)
}

/// Collect; with `scope`, only blobs of that descriptor's tree are candidates (an image
/// being removed), everything else stays whether reachable or not.
pub(crate) fn run_scoped(store: &Store, opts: GcOptions, scope: Option<&Descriptor>) -> Result<GcReport> {
    let layout = &store.layout;
    // Wait for writers in other processes to finish their ingest-then-tag, then keep tags
    // still from mark to sweep.
    let mut report = GcReport { dry_run: opts.dry_run, ..Default::default() };
    let Some(_lease) = lock::exclusive_lease(&layout.lease_lock(), !opts.no_wait)? else {
        report.deferred = true;
        return Ok(report);
    };
    let _index = lock::exclusive(&layout.index_lock())?;

    let mut marked = BTreeSet::new();
    let mut idx = index::read(layout)?;
    if opts.untagged {
        let (dangling, kept): (Vec<Descriptor>, Vec<Descriptor>) =
            idx.manifests.into_iter().partition(index::is_untagged);
        idx.manifests = kept;
        report.untagged_removed = dangling.into_iter().map(|d| d.digest).collect();
        if !opts.dry_run && !report.untagged_removed.is_empty() {
            index::write(layout, &idx)?;
        }
    }
    for d in &idx.manifests {
        mark(layout, &mut marked, d);
    }
    let roots = read_roots(layout)?;
    if opts.ignore_roots {
        for (p, _) in &roots {
            if !opts.dry_run {
                std::fs::remove_file(p).map_err(Error::io(p))?;
            }
            report.roots_removed += 1;
        }
    } else {
        for (_, descs) in &roots {
            for d in descs {
                mark(layout, &mut marked, d);
            }
        }
    }

    // Referrers (signatures, SBOMs) live while their subject does. Finding them means
    // looking at the unmarked small JSON blobs; repeat until nothing new is marked, since a
    // referrer may itself have referrers.
    let blobs = all_blobs(layout)?;
    loop {
        let mut added = false;
        for (d, size) in &blobs {
            if marked.contains(d) || *size > MAX_MANIFEST_SIZE as u64 {
                continue;
            }
            if let Some(m) = try_manifest(layout, d) {
                if m.subject().is_some_and(|s| marked.contains(&s.digest)) {
                    mark(layout, &mut marked, &m.descriptor());
                    added = true;
                }
            }
        }
        if !added {
            break;
        }
    }

    let candidates = scope.map(|d| {
        let mut tree = BTreeSet::new();
        mark(layout, &mut tree, d);
        tree
    });
    for (d, size) in blobs {
        if candidates.as_ref().is_some_and(|c| !c.contains(&d)) {
            continue;
        }
        if marked.contains(&d) {
            report.kept += 1;
            continue;
        }
        if !opts.dry_run {
            let p = layout.blob(&d);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&p)(e)),
            }
        }
        report.freed_bytes += size;
        report.removed.push((d, size));
    }
    if !opts.dry_run && scope.is_none() {
        // Ingests no live writer holds: what killed loads, pulls and builds left (an
        // interrupted pull's partial download included), whatever their age.
        let (n, bytes) = super::blob::clean_stale_ingests(&layout.tmp())?;
        report.stale_ingests = n;
        report.stale_ingest_bytes = bytes;
        report.stale_tmp_files = clean_stale_tmp(&layout.tmp(), STALE_TMP_AGE)?.0;
    }
    Ok(report)
}
