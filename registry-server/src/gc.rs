//! Garbage collection: mark every blob reachable from tags (and, unless untagged manifests
//! are being deleted, from every manifest), through indexes and referrers; sweep the rest.
//! Safe while any number of replicas share the storage and keep serving pushes.
//!
//! # One collector at a time: the lease
//! A collection first takes the bucket's GC lease: `_rbuild/gc/lease-<epoch>` objects, the
//! highest epoch being the current one (JSON: owner, expiry, released). A collector takes epoch
//! `n+1` with [`StorageDriver::create_new`] (a conditional PUT on S3, `link(2)` on a
//! filesystem), only when lease `n` is released or expired by more than the clock-skew margin;
//! of two collectors racing, exactly one creates it, the other fails with an error
//! [`is_busy`] recognizes. The holder rewrites its expiry every third of the TTL and stops
//! deleting once its own (local-clock) validity ends; a crashed collector's lease simply
//! expires. Mutual exclusion is for efficiency and clear reports: the safety argument below
//! does not depend on it.
//!
//! # Pushes on every replica: claims and condemned markers
//! Two small objects per blob, next to its data (`blobs/<alg>/<xx>/<hex>/`):
//! - `claims/<id>`: written by a push (upload finish, mount, manifest PUT — for every blob
//!   the manifest references and for the manifest itself) *before* it checks that the blob
//!   is there, and deleted only after everything the push writes (layer link, revision link,
//!   tags) is written. A push that takes longer than [`CLAIM_LIMIT`] fails before writing its
//!   revision link, so a claim older than that (plus [`CLOCK_SKEW`]) is a leftover.
//! - `condemned`: written by the collector for each candidate before it reads the claims.
//!   A push that finds a fresh one waits (up to 30 s, else 503) until the collector removes
//!   it (blob kept) or deletes the blob (the push then sees it missing: an upload puts its
//!   own bytes in place, a manifest PUT answers `MANIFEST_BLOB_UNKNOWN`). The collector
//!   never deletes a blob more than [`CONDEMN_LIMIT`] after condemning it, so an older marker
//!   is a leftover and pushes ignore it.
//!
//! A collection, in order:
//! 1. mark (M1), from a listing of every repository; candidates are blobs M1 did not reach
//!    whose last-used mark (data written, touched by a HEAD, GET, mount or upload) is older
//!    than the grace period, plus (with `delete_untagged`) manifests M1 did not reach whose
//!    revision link is older than the grace period;
//! 2. write `condemned` on every candidate;
//! 3. read every candidate's claims; a candidate with a live claim is kept;
//! 4. mark again (M2), from a fresh listing; a candidate M2 reaches is kept;
//! 5. unlink the manifests left, bump the cache generation and wait one refresh interval
//!    (so no replica serves them from its cache any more), delete the blobs left, remove
//!    their repository links, remove the `condemned` markers of the kept, bump again.
//!
//! # Why no referenced blob is ever deleted
//! Assume storage is linearizable per key and listings are consistent (S3 since 2020, a local
//! filesystem, the memory driver), and clocks agree within [`CLOCK_SKEW`]. Take a blob `X`
//! deleted in step 5 and a manifest `M` referencing it that a push P makes visible (revision
//! link written at `w`). P wrote its claim `K` on `X` (at `k`), then read `condemned` (at
//! `r`), then wrote `M` (at `w`), then deleted `K` (at `d`): `k < r < w < d`. The collector
//! wrote `condemned` (at `c`), read the claims (at `q`), listed for M2 (at `l`): `c < q < l`.
//! - If `r > c`, P saw the marker and waited until it was gone; the collector removes it
//!   only after deleting `X`'s data (or deciding to keep `X`), so P found `X` missing when it
//!   looked next, and wrote no `M`.
//! - Else `r < c`, so `k < r < c < q`: when the claims were read, `K` already existed. If it
//!   still did (`q < d`), step 3 kept `X`. If P had already deleted it (`d < q`), then
//!   `w < d < q < l`: `M` was written before the M2 listing, so M2 reached `X` and step 4 kept
//!   it.
//!
//! Either way `X` is not deleted. The same argument covers a manifest an index PUT references
//! (its revision link is unlinked only in step 5, under the same marker) and a layer link a
//! mount writes. A claim older than [`CLAIM_LIMIT`] is ignored only because its push fails
//! before writing anything at that age; a marker older than [`CONDEMN_LIMIT`] is ignored only
//! because its collector deletes nothing past that age.
//!
//! The grace period is a separate, weaker promise: a blob uploaded (or HEADed, or mounted)
//! less than `grace` ago survives even with no manifest yet, so a client that uploads its
//! layers and then PUTs the manifest within `grace` is not refused. With `grace = 0` a push
//! still never leaves a manifest pointing at a deleted blob: its PUT is refused instead.
//! Upload sessions whose last byte arrived less than `grace` ago are kept.

use crate::error::{Error, Result};
use crate::paths;
use crate::registry::{Registry, claims_dir, condemned_path, now_ms, parse_ms};
use crate::storage::StorageDriver;
use futures::StreamExt;
use rbuild_image::{Digest, RawManifest};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A push must write everything within this long of claiming its blobs (else it fails).
pub const CLAIM_LIMIT: Duration = Duration::from_secs(600);
/// A collector deletes nothing later than this after condemning it.
pub const CONDEMN_LIMIT: Duration = Duration::from_secs(600);
/// The clock difference between replicas the protocol tolerates.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5);
/// Where the GC lease objects live.
pub const LEASE_DIR: &str = "_rbuild/gc";
/// Storage requests of one phase in flight at once.
const CONCURRENCY: usize = 16;

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
    /// Candidates kept because a push claimed them or linked them during the collection.
    pub kept_in_use: usize,
}

// ---- the lease ----

/// The lease's timing.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// How long a lease lasts without a refresh (refreshed every third of it).
    pub ttl: Duration,
    /// Clock-skew margin: a lease is taken over only this long after it expired.
    pub skew: Duration,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        LeaseOptions { ttl: Duration::from_secs(60), skew: CLOCK_SKEW }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseRecord {
    owner: String,
    expires_ms: u64,
    released: bool,
}

/// The bucket's GC lease, held.
pub struct GcLease {
    driver: Arc<dyn StorageDriver>,
    epoch: u64,
    owner: String,
    ttl: Duration,
    valid_until: Mutex<Instant>,
}

fn lease_path(epoch: u64) -> String {
    format!("{LEASE_DIR}/lease-{epoch:020}")
}

async fn lease_epochs(driver: &dyn StorageDriver) -> Result<Vec<u64>> {
    let mut v: Vec<u64> =
        driver.list(LEASE_DIR).await?.iter().filter_map(|n| n.strip_prefix("lease-")?.parse().ok()).collect();
    v.sort_unstable();
    Ok(v)
}

fn busy(path: &str, msg: String) -> Error {
    Error::Storage { path: path.to_string(), source: std::io::Error::new(std::io::ErrorKind::WouldBlock, msg) }
}

/// Is `e` "another garbage collection holds the lease"?
pub fn is_busy(e: &Error) -> bool {
    matches!(e, Error::Storage { source, .. } if source.kind() == std::io::ErrorKind::WouldBlock)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

fn fmt_ms(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64).map(|t| t.to_rfc3339()).unwrap_or_else(|| ms.to_string())
}

/// Take the GC lease of `driver`'s storage, or fail ([`is_busy`]) naming who holds it.
pub async fn acquire_lease(driver: &Arc<dyn StorageDriver>, opts: &LeaseOptions) -> Result<GcLease> {
    let epochs = lease_epochs(&**driver).await?;
    if let Some(&n) = epochs.last() {
        let path = lease_path(n);
        match driver.get_content(&path).await {
            Ok(b) => {
                if let Ok(rec) = serde_json::from_slice::<LeaseRecord>(&b) {
                    if !rec.released && now_ms() < rec.expires_ms + opts.skew.as_millis() as u64 {
                        return Err(busy(
                            &path,
                            format!(
                                "garbage collection is already running: {} holds the lease until {}",
                                rec.owner,
                                fmt_ms(rec.expires_ms)
                            ),
                        ));
                    }
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let epoch = epochs.last().map_or(1, |n| n + 1);
    let owner =
        format!("{} pid {} ({})", hostname(), std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let before = Instant::now();
    let rec = LeaseRecord { owner: owner.clone(), expires_ms: now_ms() + opts.ttl.as_millis() as u64, released: false };
    let body = bytes::Bytes::from(serde_json::to_vec(&rec).map_err(|e| busy(LEASE_DIR, e.to_string()))?);
    let path = lease_path(epoch);
    if !driver.create_new(&path, body).await? {
        return Err(busy(
            &path,
            "garbage collection is already running: another collector took the lease first".into(),
        ));
    }
    // Older epochs are history; keep the previous one for the record.
    for old in epochs.iter().filter(|&&e| e + 1 < epoch) {
        let _ = driver.delete(&lease_path(*old)).await;
    }
    tracing::info!(%owner, epoch, "gc lease taken");
    Ok(GcLease { driver: driver.clone(), epoch, owner, ttl: opts.ttl, valid_until: Mutex::new(before + opts.ttl) })
}

impl GcLease {
    /// The lease's epoch (its object's number).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Is the lease still ours, by this process's clock?
    pub fn valid(&self) -> bool {
        Instant::now() < *self.valid_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lost(&self, why: &str) -> Error {
        *self.valid_until.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        busy(&lease_path(self.epoch), format!("garbage collection lost its lease: {why}"))
    }

    /// Push the expiry one TTL further.
    pub async fn refresh(&self) -> Result<()> {
        if !self.valid() {
            return Err(self.lost("it expired before the refresh"));
        }
        if lease_epochs(&*self.driver).await?.last().is_some_and(|&n| n > self.epoch) {
            return Err(self.lost("another collector took it over"));
        }
        let before = Instant::now();
        let rec = LeaseRecord {
            owner: self.owner.clone(),
            expires_ms: now_ms() + self.ttl.as_millis() as u64,
            released: false,
        };
        let body = bytes::Bytes::from(serde_json::to_vec(&rec).unwrap_or_default());
        self.driver.put_content(&lease_path(self.epoch), body).await?;
        // Extended only if the write landed while the old term still held.
        if !self.valid() {
            return Err(self.lost("it expired during the refresh"));
        }
        *self.valid_until.lock().unwrap_or_else(|p| p.into_inner()) = before + self.ttl;
        Ok(())
    }

    /// Give the lease up, so the next collection need not wait for it to expire.
    pub async fn release(self) -> Result<()> {
        if !self.valid() {
            return Ok(());
        }
        let rec = LeaseRecord { owner: self.owner.clone(), expires_ms: now_ms(), released: true };
        let body = bytes::Bytes::from(serde_json::to_vec(&rec).unwrap_or_default());
        self.driver.put_content(&lease_path(self.epoch), body).await
    }
}

// ---- marking ----

/// What one mark found.
struct Marks {
    /// Blobs reached (layers, configs, manifests) or linked recently.
    blobs: HashSet<Digest>,
    /// Manifests, as (repository, digest), no root reaches (only with `delete_untagged`).
    unreached: Vec<(String, Digest)>,
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

async fn mark(reg: &Registry, opts: &GcOptions, young: &(dyn Fn(SystemTime) -> bool + Sync)) -> Result<Marks> {
    let d = reg.driver().clone();
    let mut marks = Marks { blobs: HashSet::new(), unreached: Vec::new() };
    for repo in reg.catalog().await? {
        let revisions = reg.revisions(&repo).await?;
        let revset: HashSet<Digest> = revisions.iter().cloned().collect();
        let mut work: Vec<Digest> = Vec::new();
        for t in d.list(&paths::tags(&repo)).await? {
            if let Ok(b) = d.get_content(&paths::tag_link(&repo, &t)).await {
                if let Ok(dg) = Digest::parse(String::from_utf8_lossy(&b).trim()) {
                    if revset.contains(&dg) {
                        work.push(dg);
                    }
                }
            }
        }
        for r in &revisions {
            let recent = match d.stat(&paths::revision_link(&repo, r)).await? {
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
            marks.blobs.insert(m.clone());
            if let Some(sm) = reg.load_manifest(&repo, &m).await? {
                if let Ok(raw) = RawManifest::parse_with(sm.bytes.to_vec(), Some(&sm.media_type), m.algorithm()) {
                    for desc in raw.references() {
                        if revset.contains(&desc.digest) {
                            work.push(desc.digest.clone());
                        } else {
                            marks.blobs.insert(desc.digest.clone());
                        }
                    }
                }
            }
            for r in reg.referrers(&repo, &m, None).await? {
                if revset.contains(&r.digest) {
                    work.push(r.digest);
                }
            }
        }
        for r in revisions.into_iter().filter(|r| !reached.contains(r)) {
            marks.unreached.push((repo.clone(), r));
        }
        // Blobs linked recently belong to pushes whose manifest has not arrived yet.
        for (dg, dir) in digests_under(reg, &paths::layers(&repo)).await? {
            if let Some(i) = d.stat(&format!("{dir}/link")).await? {
                if young(i.modified) {
                    marks.blobs.insert(dg);
                }
            }
        }
    }
    Ok(marks)
}

// ---- collecting ----

/// Run one collection under the bucket's GC lease (default timing). Fails with an error
/// [`is_busy`] recognizes when another collection holds it.
pub async fn collect(reg: &Registry, opts: &GcOptions) -> Result<GcReport> {
    collect_with(reg, opts, &LeaseOptions::default()).await
}

/// [`collect`] with explicit lease timing. A dry run takes no lease.
pub async fn collect_with(reg: &Registry, opts: &GcOptions, lease_opts: &LeaseOptions) -> Result<GcReport> {
    if opts.dry_run {
        return run(reg, opts, None).await;
    }
    let lease = Arc::new(acquire_lease(reg.driver(), lease_opts).await?);
    let refresher = {
        let lease = lease.clone();
        let every = lease_opts.ttl / 3;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = lease.refresh().await {
                    tracing::warn!(error = %e, "gc lease refresh failed");
                    if !lease.valid() {
                        break;
                    }
                }
            }
        })
    };
    let result = run(reg, opts, Some(&lease)).await;
    refresher.abort();
    let _ = refresher.await;
    if let Ok(lease) = Arc::try_unwrap(lease) {
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "could not release the gc lease; it expires on its own");
        }
    }
    result
}

/// Stop unless the lease still holds and the condemned markers are young enough to act on.
fn still_ours(lease: &GcLease, condemned_at: Instant) -> Result<()> {
    if !lease.valid() {
        return Err(lease.lost("it expired while collecting"));
    }
    if condemned_at.elapsed() >= CONDEMN_LIMIT {
        return Err(busy(
            &lease_path(lease.epoch),
            format!(
                "garbage collection took longer than {}s after condemning blobs; nothing more deleted",
                CONDEMN_LIMIT.as_secs()
            ),
        ));
    }
    Ok(())
}

async fn run(reg: &Registry, opts: &GcOptions, lease: Option<&GcLease>) -> Result<GcReport> {
    let d = reg.driver().clone();
    let t0 = SystemTime::now();
    let young = move |t: SystemTime| t0.duration_since(t).map(|age| age < opts.grace).unwrap_or(true);
    let mut report = GcReport::default();

    // Upload sessions idle for longer than the grace period.
    for repo in reg.catalog().await? {
        for id in d.list(&paths::uploads(&repo)).await? {
            let mut newest = None;
            for p in [paths::upload_started(&repo, &id), paths::upload_data(&repo, &id)] {
                if let Some(i) = d.stat(&p).await? {
                    newest = newest.max(Some(i.modified));
                }
            }
            if newest.is_none_or(|t| !young(t)) {
                report.uploads_deleted.push(format!("{repo}/{id}"));
                if !opts.dry_run {
                    d.delete(&paths::upload_dir(&repo, &id)).await?;
                    reg.forget_upload(&id);
                }
            }
        }
    }

    // 1. Mark, and find the candidates.
    let m1 = mark(reg, opts, &young).await?;
    let mut candidates: Vec<(Digest, u64)> = Vec::new();
    // Directories whose data is gone (a push that died after its claim, say): removed under
    // the same protocol, since a push may be about to put the data there.
    let mut leftovers: Vec<Digest> = Vec::new();
    for alg in d.list(paths::BLOBS).await? {
        for xx in d.list(&format!("{}/{alg}", paths::BLOBS)).await? {
            for hex in d.list(&format!("{}/{alg}/{xx}", paths::BLOBS)).await? {
                let Ok(dg) = Digest::parse(&format!("{alg}:{hex}")) else { continue };
                match d.stat(&paths::blob_data(&dg)).await? {
                    Some(i) if i.is_dir => {}
                    None => leftovers.push(dg),
                    Some(i) if m1.blobs.contains(&dg) || young(i.modified) => report.blobs_kept += 1,
                    Some(i) => candidates.push((dg, i.size)),
                }
            }
        }
    }
    let unreached: Vec<(String, Digest)> = if opts.delete_untagged { m1.unreached } else { Vec::new() };
    let (Some(lease), false) = (lease, opts.dry_run) else {
        report.manifests_deleted = unreached.iter().map(|(r, dg)| format!("{r}@{dg}")).collect();
        report.bytes_freed = candidates.iter().map(|(_, s)| s).sum();
        report.blobs_deleted = candidates.into_iter().map(|(dg, _)| dg).collect();
        report.blobs_deleted.sort();
        return Ok(report);
    };
    let condemned: BTreeSet<Digest> = candidates
        .iter()
        .map(|(dg, _)| dg.clone())
        .chain(unreached.iter().map(|(_, dg)| dg.clone()))
        .chain(leftovers.iter().cloned())
        .collect();
    if condemned.is_empty() {
        return Ok(report);
    }

    // 2. Condemn.
    let condemned_at = Instant::now();
    let stamp = bytes::Bytes::from(now_ms().to_string());
    let writes: Vec<Result<()>> = futures::stream::iter(condemned.iter().cloned())
        .map(|dg| {
            let (d, stamp) = (d.clone(), stamp.clone());
            async move { d.put_volatile(&condemned_path(&dg), stamp).await }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let outcome = async {
        writes.into_iter().collect::<Result<Vec<()>>>()?;

        // 3. Claims.
        let claim_limit = (CLAIM_LIMIT + CLOCK_SKEW).as_millis() as u64;
        let claimed: Vec<Result<Option<Digest>>> = futures::stream::iter(condemned.iter().cloned())
            .map(|dg| {
                let d = d.clone();
                async move {
                    let mut live = false;
                    for id in d.list(&claims_dir(&dg)).await? {
                        let k = format!("{}/{id}", claims_dir(&dg));
                        match d.get_content(&k).await {
                            Ok(b) if now_ms().saturating_sub(parse_ms(&b).unwrap_or(0)) < claim_limit => live = true,
                            Ok(_) => {
                                let _ = d.delete(&k).await; // a leftover of a push that died
                            }
                            Err(e) if e.is_not_found() => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(live.then_some(dg))
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut in_use: HashSet<Digest> = HashSet::new();
        for c in claimed {
            if let Some(dg) = c? {
                in_use.insert(dg);
            }
        }

        // 4. Mark again: whatever a push linked before its claim went is reached now.
        let m2 = mark(reg, opts, &young).await?;
        let m2_unreached: HashSet<(String, Digest)> = m2.unreached.into_iter().collect();
        let unlink: Vec<&(String, Digest)> =
            unreached.iter().filter(|u| !in_use.contains(&u.1) && m2_unreached.contains(*u)).collect();
        let mut sweep: Vec<(Digest, u64)> = Vec::new();
        for (dg, size) in &candidates {
            if in_use.contains(dg) || m2.blobs.contains(dg) {
                report.kept_in_use += 1;
                report.blobs_kept += 1;
            } else {
                sweep.push((dg.clone(), *size));
            }
        }

        // 5. Unlink, let every replica's cache forget, sweep.
        still_ours(lease, condemned_at)?;
        for (repo, dg) in &unlink {
            still_ours(lease, condemned_at)?;
            reg.unlink_manifest(repo, dg).await?;
            reg.forget_cached(dg);
            report.manifests_deleted.push(format!("{repo}@{dg}"));
        }
        if !unlink.is_empty() && reg.cache_refresh() > Duration::ZERO {
            reg.hot.bump(&*d).await?;
            let r = reg.cache_refresh();
            tokio::time::sleep(r + r / 10 + Duration::from_millis(100)).await;
        }
        let mut deleted: HashSet<Digest> = HashSet::new();
        for (dg, size) in sweep {
            still_ours(lease, condemned_at)?;
            // The data first: the marker keeps pushes waiting until the data is gone.
            d.delete(&paths::blob_data(&dg)).await?;
            if let Err(e) = d.delete(&paths::blob_dir(&dg)).await {
                tracing::warn!(blob = %dg, error = %e, "gc: blob directory left behind");
            }
            reg.forget_cached(&dg);
            report.bytes_freed += size;
            report.blobs_deleted.push(dg.clone());
            deleted.insert(dg);
        }
        if !deleted.is_empty() {
            for repo in reg.catalog().await? {
                for (dg, dir) in digests_under(reg, &paths::layers(&repo)).await? {
                    if deleted.contains(&dg) {
                        d.delete(&dir).await?;
                        report.links_deleted += 1;
                    }
                }
            }
        }
        if !deleted.is_empty() || !unlink.is_empty() {
            reg.hot.bump(&*d).await?;
        }
        for dg in leftovers.iter().filter(|dg| !in_use.contains(*dg)) {
            still_ours(lease, condemned_at)?;
            // Claims were read after condemning: data put here since is seen now.
            if d.stat(&paths::blob_data(dg)).await?.is_none() {
                if let Err(e) = d.delete(&paths::blob_dir(dg)).await {
                    tracing::warn!(blob = %dg, error = %e, "gc: could not remove an empty blob directory");
                }
                deleted.insert(dg.clone());
            }
        }
        Ok::<HashSet<Digest>, Error>(deleted)
    }
    .await;

    // Lift the markers of everything kept (also after a failure: pushes must not wait on them).
    let deleted = outcome.as_ref().ok().cloned().unwrap_or_default();
    futures::stream::iter(condemned.iter().filter(|dg| !deleted.contains(*dg)).cloned())
        .for_each_concurrent(CONCURRENCY, |dg| {
            let d = d.clone();
            async move {
                if let Err(e) = d.delete(&condemned_path(&dg)).await {
                    tracing::warn!(blob = %dg, error = %e, "gc: could not lift a condemned marker; it expires on its own");
                }
            }
        })
        .await;
    outcome?;
    report.blobs_deleted.sort();
    Ok(report)
}
