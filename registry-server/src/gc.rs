//! Garbage collection: mark every blob reachable from tags (and, unless untagged manifests
//! are being deleted, from every manifest), through indexes and referrers; sweep the rest.
//! Blobs, manifests, layer links and uploads younger than the grace period are never
//! deleted, so pushes in flight are safe. Online GC holds the registry's GC lock
//! exclusively, so no manifest or blob link is written between mark and sweep.

use crate::error::Result;
use crate::paths;
use crate::registry::Registry;
use rbuild_image::{Digest, RawManifest};
use serde::Serialize;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

/// How to collect.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Report only; delete nothing.
    pub dry_run: bool,
    /// Delete manifests no tag, index or referrer chain reaches.
    pub delete_untagged: bool,
    /// Never delete anything younger than this.
    pub grace: Duration,
}

/// What a collection did (or, dry, would do).
#[derive(Debug, Default, Clone, Serialize)]
pub struct GcReport {
    /// Blobs kept.
    pub blobs_kept: usize,
    /// Blobs deleted.
    pub blobs_deleted: Vec<Digest>,
    /// Bytes those blobs held.
    pub bytes_freed: u64,
    /// Manifests deleted, as `repo@digest`.
    pub manifests_deleted: Vec<String>,
    /// Uploads deleted, as `repo/uuid`.
    pub uploads_deleted: Vec<String>,
    /// Repository blob links removed because their blob went.
    pub links_deleted: usize,
}

async fn digests_under(reg: &Registry, base: &str) -> Result<Vec<(Digest, String)>> {
    let d = reg.driver();
    let mut out = Vec::new();
    for alg in d.list(base).await? {
        for hex in d.list(&format!("{base}/{alg}")).await? {
            if let Ok(dg) = Digest::parse(&format!("{alg}:{hex}")) {
                out.push((dg, format!("{base}/{alg}/{hex}")));
            }
        }
    }
    Ok(out)
}

/// Run one collection.
pub async fn collect(reg: &Registry, opts: &GcOptions) -> Result<GcReport> {
    let _exclusive = reg.gc_lock.write().await;
    let d = reg.driver().clone();
    let now = SystemTime::now();
    let young = |t: SystemTime| now.duration_since(t).map(|age| age < opts.grace).unwrap_or(true);
    let mut report = GcReport::default();
    let mut marked: HashSet<Digest> = HashSet::new();
    let repos = reg.catalog().await?;

    for repo in &repos {
        let revisions = reg.revisions(repo).await?;
        let revset: HashSet<Digest> = revisions.iter().cloned().collect();
        let mut work: Vec<Digest> = Vec::new();
        for t in d.list(&paths::tags(repo)).await? {
            if let Ok(b) = d.get_content(&paths::tag_link(repo, &t)).await {
                if let Ok(dg) = Digest::parse(String::from_utf8_lossy(&b).trim()) {
                    if revset.contains(&dg) {
                        work.push(dg);
                    }
                }
            }
        }
        for r in &revisions {
            let recent = match d.stat(&paths::revision_link(repo, r)).await? {
                Some(i) => young(i.modified),
                None => false,
            };
            if !opts.delete_untagged || recent {
                work.push(r.clone());
            }
        }
        let mut reached: HashSet<Digest> = HashSet::new();
        while let Some(m) = work.pop() {
            if !reached.insert(m.clone()) {
                continue;
            }
            marked.insert(m.clone());
            if let Some(sm) = reg.load_manifest(repo, &m).await? {
                if let Ok(raw) = RawManifest::parse_with(sm.bytes.to_vec(), Some(&sm.media_type), m.algorithm()) {
                    for desc in raw.references() {
                        if revset.contains(&desc.digest) {
                            work.push(desc.digest.clone());
                        } else {
                            marked.insert(desc.digest.clone());
                        }
                    }
                }
            }
            for r in reg.referrers(repo, &m, None).await? {
                if revset.contains(&r.digest) {
                    work.push(r.digest);
                }
            }
        }
        for r in revisions.iter().filter(|r| !reached.contains(*r)) {
            report.manifests_deleted.push(format!("{repo}@{r}"));
            if !opts.dry_run {
                reg.unlink_manifest(repo, r).await?;
                reg.forget_cached(r);
            }
        }
        // Blobs linked recently belong to pushes whose manifest has not arrived yet.
        for (dg, dir) in digests_under(reg, &paths::layers(repo)).await? {
            if let Some(i) = d.stat(&format!("{dir}/link")).await? {
                if young(i.modified) {
                    marked.insert(dg);
                }
            }
        }
        for id in d.list(&paths::uploads(repo)).await? {
            let mut newest = None;
            for p in [paths::upload_started(repo, &id), paths::upload_data(repo, &id)] {
                if let Some(i) = d.stat(&p).await? {
                    newest = newest.max(Some(i.modified));
                }
            }
            if newest.is_none_or(|t| !young(t)) {
                report.uploads_deleted.push(format!("{repo}/{id}"));
                if !opts.dry_run {
                    d.delete(&paths::upload_dir(repo, &id)).await?;
                    reg.forget_upload(&id);
                }
            }
        }
    }

    let mut deleted: HashSet<Digest> = HashSet::new();
    for alg in d.list(paths::BLOBS).await? {
        for xx in d.list(&format!("{}/{alg}", paths::BLOBS)).await? {
            for hex in d.list(&format!("{}/{alg}/{xx}", paths::BLOBS)).await? {
                let Ok(dg) = Digest::parse(&format!("{alg}:{hex}")) else { continue };
                if marked.contains(&dg) {
                    report.blobs_kept += 1;
                    continue;
                }
                let info = d.stat(&paths::blob_data(&dg)).await?;
                if info.is_some_and(|i| young(i.modified)) {
                    report.blobs_kept += 1;
                    continue;
                }
                report.bytes_freed += info.map(|i| i.size).unwrap_or(0);
                if !opts.dry_run {
                    d.delete(&paths::blob_dir(&dg)).await?;
                    reg.forget_cached(&dg);
                }
                report.blobs_deleted.push(dg.clone());
                deleted.insert(dg);
            }
        }
    }
    if !opts.dry_run && !deleted.is_empty() {
        for repo in &repos {
            for (dg, dir) in digests_under(reg, &paths::layers(repo)).await? {
                if deleted.contains(&dg) {
                    d.delete(&dir).await?;
                    report.links_deleted += 1;
                }
            }
        }
    }
    report.blobs_deleted.sort();
    Ok(report)
}
