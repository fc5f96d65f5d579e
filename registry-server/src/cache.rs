//! A per-replica cache of what the hot read paths ask storage (a blob HEAD/GET, a manifest
//! GET by tag), kept correct across replicas that share one bucket.
//!
//! What is cached, only ever as a *positive* fact (something that exists):
//! - a link path exists (a repository's layer link, a manifest revision link);
//! - blob data exists, with its size (content-addressed, so the size never changes);
//! - a tag points at a digest, for at most the refresh interval.
//!
//! Absence is never cached, so anything created on any replica is visible on every other
//! replica at once (a push on A, then a pull on B, always works). A positive fact turns false
//! in two ways only: a delete (API `DELETE`, garbage collection) or a tag moving to another
//! manifest. Every delete, on any replica, rewrites the bucket's small *generation* object
//! ([`GENERATION`]) after it is done; each replica re-reads that object at most once per
//! refresh interval `R` (when a request needs the cache) and drops everything it cached when
//! the value changed. Tag entries also expire on their own after `R`.
//!
//! So, with `R` the refresh interval (1 s by default on S3):
//! - a tag moved on replica A is served by replica B within `R` (before that, B serves the
//!   previous manifest — whole and digest-verified: manifests are cached by digest, so a
//!   response is never a mix of two manifests);
//! - a blob, link or manifest deleted on A may still be answered by B for up to `R` after the
//!   delete returned; the replica that deleted stops at once.
//! - a push is never refused because of the cache: the checks a manifest PUT makes (do the
//!   blobs it references exist?) and the claims that protect them from garbage collection go
//!   to storage, never to this cache (see `crate::gc`).
//!
//! A fill that raced an invalidation is dropped: each fill carries the epoch its read began
//! in, and every drop starts a new epoch. Should a delete fail to rewrite the generation (the
//! store failing right after the delete), no entry outlives [`MAX_AGE`] anyway.

use crate::error::Result;
use crate::storage::StorageDriver;
use bytes::Bytes;
use rbuild_image::Digest;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The generation object: rewritten (random content) after every delete.
pub const GENERATION: &str = "_rbuild/generation";
/// Entries of one kind kept at most; beyond that the kind starts over (cheap, rare).
const MAX_ENTRIES: usize = 200_000;
/// No entry is used longer than this after it was read, generation or not.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// Attempts at rewriting the generation after a delete.
const BUMP_ATTEMPTS: u32 = 3;

#[derive(Default)]
struct Inner {
    /// The generation last read (`None`: not there yet).
    generation: Option<Bytes>,
    /// When the last generation read *began*.
    checked: Option<Instant>,
    epoch: u64,
    links: HashMap<String, Instant>,
    blobs: HashMap<Digest, (u64, Instant)>,
    tags: HashMap<String, (Digest, Instant)>,
}

impl Inner {
    fn drop_all(&mut self) {
        self.epoch += 1;
        self.links.clear();
        self.blobs.clear();
        self.tags.clear();
    }
}

/// The cache of one registry process. Disabled (every lookup misses) when the refresh
/// interval is zero.
pub struct Cache {
    refresh: Duration,
    inner: Mutex<Inner>,
    sync_lock: tokio::sync::Mutex<()>,
}

impl Cache {
    /// A cache that re-reads the generation at most every `refresh`; zero disables it.
    pub fn new(refresh: Duration) -> Cache {
        Cache { refresh, inner: Mutex::new(Inner::default()), sync_lock: tokio::sync::Mutex::new(()) }
    }

    /// Is it caching at all?
    pub fn enabled(&self) -> bool {
        !self.refresh.is_zero()
    }

    /// The refresh interval (the staleness bound).
    pub fn refresh(&self) -> Duration {
        self.refresh
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh(&self, g: &Inner) -> bool {
        g.checked.is_some_and(|t| t.elapsed() < self.refresh)
    }

    /// Make sure the generation was read less than one refresh interval ago (reading it when
    /// not), then return the epoch fills of this request must carry.
    pub async fn sync(&self, driver: &dyn StorageDriver) -> Result<u64> {
        if !self.enabled() {
            return Ok(0);
        }
        {
            let g = self.lock();
            if self.fresh(&g) {
                return Ok(g.epoch);
            }
        }
        // One read per replica at a time; the others wait for it rather than pile up.
        let _one = self.sync_lock.lock().await;
        {
            let g = self.lock();
            if self.fresh(&g) {
                return Ok(g.epoch);
            }
        }
        let started = Instant::now();
        let generation = match driver.get_content(GENERATION).await {
            Ok(b) => Some(b),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let mut g = self.lock();
        if g.generation != generation {
            g.drop_all();
            g.generation = generation;
        }
        g.checked = Some(started);
        Ok(g.epoch)
    }

    /// Rewrite the generation object (after a delete), so every replica drops its cache
    /// within one refresh interval; this replica drops it now.
    pub async fn bump(&self, driver: &dyn StorageDriver) -> Result<()> {
        self.lock().drop_all();
        if !self.enabled() {
            return Ok(());
        }
        let value = Bytes::from(uuid::Uuid::new_v4().to_string());
        let mut attempt = 1;
        while let Err(e) = driver.put_content(GENERATION, value.clone()).await {
            if attempt >= BUMP_ATTEMPTS {
                tracing::error!(error = %e, "could not rewrite the cache generation: other replicas may serve what was deleted for up to a minute");
                return Err(e);
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            attempt += 1;
        }
        let mut g = self.lock();
        g.drop_all();
        g.generation = Some(value);
        Ok(())
    }

    /// Drop everything this replica cached (it deleted something).
    pub fn drop_local(&self) {
        self.lock().drop_all();
    }

    /// Is `path` known to exist?
    pub fn link(&self, path: &str) -> bool {
        self.enabled() && self.lock().links.get(path).is_some_and(|at| at.elapsed() < MAX_AGE)
    }

    /// Record that `path` exists (read in `epoch`).
    pub fn fill_link(&self, epoch: u64, path: &str) {
        if !self.enabled() {
            return;
        }
        let mut g = self.lock();
        if g.epoch == epoch {
            if g.links.len() >= MAX_ENTRIES {
                g.links.clear();
            }
            g.links.insert(path.to_string(), Instant::now());
        }
    }

    /// The size of blob `d`, when its data is known to exist.
    pub fn blob(&self, d: &Digest) -> Option<u64> {
        if !self.enabled() {
            return None;
        }
        self.lock().blobs.get(d).filter(|(_, at)| at.elapsed() < MAX_AGE).map(|(s, _)| *s)
    }

    /// Record that blob `d` exists with `size` bytes (read in `epoch`).
    pub fn fill_blob(&self, epoch: u64, d: &Digest, size: u64) {
        if !self.enabled() {
            return;
        }
        let mut g = self.lock();
        if g.epoch == epoch {
            if g.blobs.len() >= MAX_ENTRIES {
                g.blobs.clear();
            }
            g.blobs.insert(d.clone(), (size, Instant::now()));
        }
    }

    /// The digest tag link `path` pointed at, if read less than one refresh interval ago.
    pub fn tag(&self, path: &str) -> Option<Digest> {
        if !self.enabled() {
            return None;
        }
        let g = self.lock();
        g.tags.get(path).filter(|(_, at)| at.elapsed() < self.refresh).map(|(d, _)| d.clone())
    }

    /// Record that tag link `path` points at `d`, as read (or written) at `at`, in `epoch`.
    pub fn fill_tag(&self, epoch: u64, path: &str, d: &Digest, at: Instant) {
        if !self.enabled() {
            return;
        }
        let mut g = self.lock();
        if g.epoch == epoch {
            if g.tags.len() >= MAX_ENTRIES {
                g.tags.clear();
            }
            g.tags.insert(path.to_string(), (d.clone(), at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryDriver;

    #[tokio::test]
    async fn a_generation_change_drops_entries_and_stale_fills() {
        let store = MemoryDriver::new();
        let (a, b) = (Cache::new(Duration::from_millis(1)), Cache::new(Duration::from_millis(1)));
        let d = Digest::sha256_of(b"x");
        let e = b.sync(&store).await.unwrap();
        b.fill_link(e, "l");
        b.fill_blob(e, &d, 1);
        b.fill_tag(e, "t", &d, Instant::now());
        assert!(b.link("l") && b.blob(&d) == Some(1) && b.tag("t").is_some());
        // A delete on replica a: b drops everything at its next sync.
        a.bump(&store).await.unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let e2 = b.sync(&store).await.unwrap();
        assert_ne!(e, e2);
        assert!(!b.link("l") && b.blob(&d).is_none() && b.tag("t").is_none());
        // A fill that began before the drop is ignored.
        b.fill_link(e, "l");
        assert!(!b.link("l"));
        // Disabled: nothing is kept.
        let off = Cache::new(Duration::ZERO);
        off.fill_link(off.sync(&store).await.unwrap(), "l");
        assert!(!off.link("l"));
    }
}
