//! The local image store: an OCI image layout on disk, shared safely by several rbuild
//! processes at once.
//!
//! Blobs are content-addressed and written once: an ingest goes to a temp file while it is
//! hashed, and is renamed into `blobs/` only after its digest (and size) check out, so a
//! reader never sees a partial or wrong blob, whatever happens to the writer. Tags are
//! entries of `index.json`, changed only under a lock. [`Store::gc`] removes what neither a
//! tag nor a gc root reaches. See [`layout`] for the files on disk.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! use rbuild_image::{Store, Digest};
//! let store = Store::open(dir.path()).unwrap();
//! let d = store.put_blob_bytes(b"hello").unwrap();
//! assert_eq!(d, Digest::sha256_of(b"hello"));
//! assert_eq!(store.read_blob(&d).unwrap(), b"hello");
//! ```

pub mod archive;
mod blob;
mod gc;
pub mod import;
mod index;
pub mod layout;
mod lock;

pub use blob::BlobWriter;
pub use gc::{GcOptions, GcReport, STALE_TMP_AGE};
pub use index::{CONTAINERD_NAME, REF_NAME};

use crate::config::ImageConfig;
use crate::descriptor::{Descriptor, Platform};
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, Result};
use crate::manifest::{MAX_MANIFEST_SIZE, RawManifest};
use crate::media_type as mt;
use crate::reference::Reference;
use layout::Layout;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The store root when neither `--root` nor `RBUILD_ROOT` says: `/var/lib/rbuild` for
/// root, `$XDG_DATA_HOME/rbuild` (or `~/.local/share/rbuild`) for everyone else.
pub fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/rbuild");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("rbuild");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/rbuild")
}

/// Configs bigger than this are refused by [`Store::read_blob`]'s callers that parse them.
pub const MAX_CONFIG_SIZE: u64 = 64 * 1024 * 1024;

/// An image found in the store: the manifest for this platform and its parsed config.
#[derive(Debug, Clone)]
pub struct Image {
    /// The tag it was found by, if it was found by one.
    pub reference: Option<Reference>,
    /// What the tag (or the digest asked for) points at: the manifest, or an index that
    /// contains it.
    pub descriptor: Descriptor,
    /// The image manifest (for an index, the host platform's).
    pub manifest: RawManifest,
    /// The parsed config.
    pub config: ImageConfig,
    /// The config's digest: the image ID.
    pub config_digest: Digest,
}

impl Image {
    /// The image ID (`sha256:` + config digest), as docker shows it.
    pub fn id(&self) -> &Digest {
        &self.config_digest
    }

    /// The layer descriptors, base first.
    pub fn layers(&self) -> &[Descriptor] {
        self.manifest.as_image().map(|m| m.layers.as_slice()).unwrap_or(&[])
    }

    /// The sum of the layer blobs' sizes.
    pub fn size(&self) -> u64 {
        self.layers().iter().map(|l| l.size).sum()
    }
}

/// The local store.
#[derive(Debug, Clone)]
pub struct Store {
    layout: Layout,
}

impl Store {
    /// Open the store at `root`, creating the layout when missing, and clean up temp files
    /// that killed processes left more than an hour ago.
    pub fn open(root: &Path) -> Result<Store> {
        std::fs::create_dir_all(root).map_err(Error::io(root))?;
        // One spelling per store: the process-wide lease is keyed by path.
        let root = root.canonicalize().map_err(Error::io(root))?;
        let layout = Layout { root };
        layout.create()?;
        let version = std::fs::read(layout.oci_layout()).map_err(Error::io(layout.oci_layout()))?;
        let v: serde_json::Value = serde_json::from_slice(&version).map_err(|e| Error::InvalidJson {
            what: "oci-layout",
            reason: format!("{}: {e}", layout.oci_layout().display()),
        })?;
        if v.get("imageLayoutVersion").and_then(|x| x.as_str()) != Some("1.0.0") {
            return Err(Error::InvalidJson {
                what: "oci-layout",
                reason: format!("{}: imageLayoutVersion must be \"1.0.0\"", layout.oci_layout().display()),
            });
        }
        layout::clean_stale_tmp(&layout.tmp(), STALE_TMP_AGE)?;
        Ok(Store { layout })
    }

    /// Where it lives.
    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    /// Is this blob here?
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.layout.blob(d).is_file()
    }

    /// The blob's size, or `None` when absent.
    pub fn blob_size(&self, d: &Digest) -> Result<Option<u64>> {
        let p = self.layout.blob(d);
        match std::fs::metadata(&p) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(p)(e)),
        }
    }

    /// Where the blob is (or would be) on disk.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.layout.blob(d)
    }

    /// Open a blob for reading; [`Error::NotFound`] when absent.
    pub fn open_blob(&self, d: &Digest) -> Result<std::fs::File> {
        let p = self.layout.blob(d);
        match std::fs::File::open(&p) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound(format!("blob {d}"))),
            Err(e) => Err(Error::io(p)(e)),
        }
    }

    /// Read a small blob (manifest, config) whole, verifying its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let mut f = self.open_blob(d)?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(Error::io(self.layout.blob(d)))?;
        d.verify(&bytes)?;
        Ok(bytes)
    }

    /// Start writing a blob (hashed with SHA-256). See [`BlobWriter`].
    pub fn ingest(&self) -> Result<BlobWriter> {
        self.ingest_with(Algorithm::Sha256)
    }

    /// Start writing a blob hashed with `alg`.
    pub fn ingest_with(&self, alg: Algorithm) -> Result<BlobWriter> {
        // From the first blob this process writes until it exits, gc in other processes
        // waits: blobs written but not yet tagged are not garbage.
        lock::ensure_lease(&self.layout.lease_lock())?;
        BlobWriter::new(self.layout.clone(), alg)
    }

    /// Start (or go on with) the download of blob `digest` of `size` bytes: a writer, and
    /// how many bytes of it an interrupted earlier download left (fetch from there). See
    /// [`BlobWriter`].
    pub fn ingest_resumable(&self, digest: &Digest, size: u64) -> Result<(BlobWriter, u64)> {
        lock::ensure_lease(&self.layout.lease_lock())?;
        BlobWriter::resume(self.layout.clone(), digest, size)
    }

    /// Give up this process's write lease early (long-running processes, once what they
    /// wrote is tagged or pinned by a gc root), so gc elsewhere need not wait for exit.
    pub fn release_lease(&self) {
        lock::release_lease(&self.layout.lease_lock());
    }

    /// Store `bytes` as a blob; returns its SHA-256 digest.
    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::sha256_of(bytes);
        if self.has_blob(&d) {
            lock::ensure_lease(&self.layout.lease_lock())?;
            return Ok(d);
        }
        let mut w = self.ingest()?;
        w.write_all(bytes)?;
        Ok(w.commit(Some(&d), Some(bytes.len() as u64))?.0)
    }

    /// Stream `r` into the store, refusing it (nothing stored) unless it hashes to `expected`
    /// and, when given, has `size` bytes. A blob already present is not read again.
    pub fn put_blob_verified(&self, mut r: impl Read, expected: &Digest, size: Option<u64>) -> Result<()> {
        if self.blob_size(expected)?.is_some_and(|s| size.is_none_or(|want| want == s)) {
            lock::ensure_lease(&self.layout.lease_lock())?;
            return Ok(());
        }
        let mut w = self.ingest_with(expected.algorithm())?;
        std::io::copy(&mut r, &mut w)?;
        w.commit(Some(expected), size)?;
        Ok(())
    }

    /// Store a manifest's bytes, under its digest.
    pub fn put_manifest(&self, raw: &RawManifest) -> Result<()> {
        self.put_blob_verified(raw.bytes(), raw.digest(), Some(raw.bytes().len() as u64))
    }

    /// Point the tag `r` at `manifest` (which must be in the store), replacing what the tag
    /// pointed at before. The index entry is annotated with the full normalized reference.
    pub fn tag(&self, r: &Reference, manifest: &Descriptor) -> Result<()> {
        self.tag_entry(r, manifest, index::named(manifest, r))
    }

    /// Name `manifest` as `r` the way docker, BuildKit and skopeo name images in an OCI
    /// layout they write for others: the tag alone in `org.opencontainers.image.ref.name`
    /// (so `layout:TAG` and `oci:DIR:TAG` find it), the full name in
    /// `io.containerd.image.name`. For layouts made to leave rbuild (`--output type=oci`).
    pub fn tag_for_peers(&self, r: &Reference, manifest: &Descriptor) -> Result<()> {
        self.tag_entry(r, manifest, index::archive_named(manifest, r))
    }

    fn tag_entry(&self, r: &Reference, manifest: &Descriptor, entry: Descriptor) -> Result<()> {
        if r.digest().is_some() {
            return Err(Error::InvalidReference {
                reference: r.to_string(),
                reason: "a tag cannot carry a digest".into(),
            });
        }
        if !mt::is_manifest(&manifest.media_type) && !mt::is_index(&manifest.media_type) {
            return Err(Error::UnsupportedMediaType(format!(
                "{} (a tag must point at a manifest or an index)",
                manifest.media_type
            )));
        }
        let name = index::tag_name(r);
        index::update(&self.layout, |idx| {
            // Checked under the lock: gc holds it too, so the manifest cannot vanish between
            // this check and the write.
            match self.blob_size(&manifest.digest)? {
                Some(s) if s == manifest.size => {}
                Some(s) => {
                    return Err(Error::CorruptLayer(format!(
                        "manifest {} is {s} bytes in the store, the descriptor says {}",
                        manifest.digest, manifest.size
                    )));
                }
                None => return Err(Error::NotFound(format!("manifest {}", manifest.digest))),
            }
            // The image the tag leaves stays, untagged, unless something else still names
            // it (docker keeps it as a dangling `<none>` image until prune or rmi).
            let before: Vec<Descriptor> = idx
                .manifests
                .iter()
                .filter(|d| index::full_name(d) == Some(name.as_str()) && d.digest != manifest.digest)
                .cloned()
                .collect();
            idx.manifests.retain(|d| {
                index::full_name(d) != Some(name.as_str()) && !(index::is_untagged(d) && d.digest == manifest.digest)
            });
            for old in before {
                if !idx.manifests.iter().any(|d| d.digest == old.digest) {
                    idx.manifests.push(index::unnamed(&old));
                }
            }
            idx.manifests.push(entry);
            Ok(())
        })
    }

    /// Keep `manifest` (which must be in the store) as an untagged image, unless an entry of
    /// the index already holds it; true when it was added.
    pub fn keep_untagged(&self, manifest: &Descriptor) -> Result<bool> {
        if !mt::is_manifest(&manifest.media_type) && !mt::is_index(&manifest.media_type) {
            return Err(Error::UnsupportedMediaType(format!(
                "{} (an image is a manifest or an index)",
                manifest.media_type
            )));
        }
        index::update(&self.layout, |idx| {
            if self.blob_size(&manifest.digest)? != Some(manifest.size) {
                return Err(Error::NotFound(format!("manifest {} ({} bytes)", manifest.digest, manifest.size)));
            }
            if idx.manifests.iter().any(|d| d.digest == manifest.digest) {
                return Ok(false);
            }
            idx.manifests.push(index::unnamed(manifest));
            Ok(true)
        })
    }

    /// Drop the untagged entry for `digest`; false when there was none. Blobs stay.
    pub fn remove_untagged(&self, digest: &Digest) -> Result<bool> {
        index::update(&self.layout, |idx| {
            let before = idx.manifests.len();
            idx.manifests.retain(|d| !(index::is_untagged(d) && &d.digest == digest));
            Ok(idx.manifests.len() != before)
        })
    }

    /// Every image of the index: tagged ones with their reference, untagged ones with
    /// `None`; tagged first, sorted by name.
    pub fn list_images(&self) -> Result<Vec<(Option<Reference>, Descriptor)>> {
        let mut out: Vec<(Option<Reference>, Descriptor)> =
            self.list_tags()?.into_iter().map(|(r, d)| (Some(r), d)).collect();
        let idx = index::read(&self.layout)?;
        out.extend(idx.manifests.into_iter().filter(index::is_untagged).map(|d| (None, d)));
        Ok(out)
    }

    /// Delete the blobs of the image `d` that nothing else needs: no index entry, gc root,
    /// or referrer of a kept image reaches them. Unlike [`Store::gc`], blobs outside `d`'s
    /// tree are never touched. With `no_wait`, a store another process is writing to is
    /// left alone ([`GcReport::deferred`]).
    pub fn remove_image(&self, d: &Descriptor, no_wait: bool) -> Result<GcReport> {
        gc::run_scoped(self, GcOptions { no_wait, ..Default::default() }, Some(d))
    }

    /// Remove the tag `r`; false when there was no such tag. Blobs stay until [`Store::gc`].
    pub fn untag(&self, r: &Reference) -> Result<bool> {
        let name = index::tag_name(r);
        index::update(&self.layout, |idx| {
            let before = idx.manifests.len();
            idx.manifests.retain(|d| index::full_name(d) != Some(name.as_str()));
            Ok(idx.manifests.len() != before)
        })
    }

    /// Every tag and what it points at, sorted by name.
    pub fn list_tags(&self) -> Result<Vec<(Reference, Descriptor)>> {
        let idx = index::read(&self.layout)?;
        let mut out: Vec<(Reference, Descriptor)> =
            idx.manifests.into_iter().filter_map(|d| index::entry_reference(&d).map(|r| (r, d))).collect();
        out.sort_by_key(|a| a.0.to_string());
        Ok(out)
    }

    /// What the tag `r` points at, if anything.
    pub fn lookup_tag(&self, r: &Reference) -> Result<Option<Descriptor>> {
        let name = index::tag_name(r);
        let idx = index::read(&self.layout)?;
        Ok(idx.manifests.into_iter().find(|d| index::full_name(d) == Some(name.as_str())))
    }

    /// Read and parse a manifest (or index) blob, verified.
    pub fn read_manifest(&self, d: &Descriptor) -> Result<RawManifest> {
        if d.size > MAX_MANIFEST_SIZE as u64 {
            return Err(Error::InvalidJson {
                what: "manifest",
                reason: format!("{}: {} bytes is over the 4 MiB limit", d.digest, d.size),
            });
        }
        let bytes = self.read_blob(&d.digest)?;
        RawManifest::parse_verified(bytes, Some(&d.media_type), &d.digest)
    }

    /// The image `d` points at: `d` itself when it is a manifest, the host platform's entry
    /// when it is an index.
    pub fn load_image(&self, d: &Descriptor, reference: Option<Reference>) -> Result<Image> {
        self.load_image_for(d, reference, &Platform::host())
    }

    /// Like [`Store::load_image`], choosing `platform` in an index.
    pub fn load_image_for(&self, d: &Descriptor, reference: Option<Reference>, platform: &Platform) -> Result<Image> {
        let top = self.read_manifest(d)?;
        let manifest = match top.as_index() {
            None => top,
            Some(idx) => {
                let child = idx
                    .manifests
                    .iter()
                    .find(|c| {
                        mt::is_manifest(&c.media_type) && c.platform.as_ref().is_some_and(|p| platform.matches(p))
                    })
                    .or_else(|| {
                        // An index with one unlabelled image (some tools write those).
                        let imgs: Vec<_> = idx.manifests.iter().filter(|c| mt::is_manifest(&c.media_type)).collect();
                        (imgs.len() == 1 && imgs[0].platform.is_none()).then(|| imgs[0])
                    })
                    .ok_or_else(|| Error::NotFound(format!("a {platform} manifest in index {}", d.digest)))?;
                if !self.has_blob(&child.digest) {
                    return Err(Error::NotFound(format!(
                        "the {platform} manifest {} of index {}",
                        child.digest, d.digest
                    )));
                }
                self.read_manifest(child)?
            }
        };
        let m = manifest.as_image().ok_or_else(|| Error::InvalidJson {
            what: "manifest",
            reason: format!("{} is an index inside an index", manifest.digest()),
        })?;
        if m.config.size > MAX_CONFIG_SIZE {
            return Err(Error::InvalidJson {
                what: "image config",
                reason: format!("{}: {} bytes is too big", m.config.digest, m.config.size),
            });
        }
        let config_digest = m.config.digest.clone();
        let config = ImageConfig::parse(&self.read_blob(&config_digest)?)?;
        Ok(Image { reference, descriptor: d.clone(), manifest, config, config_digest })
    }

    /// Find an image by what a person types: `app`, `app:tag`, a full reference,
    /// `name@sha256:…`, a manifest or config digest, or an image-ID prefix of at least 4
    /// hex characters (with or without `sha256:`). An ambiguous prefix is an error that
    /// lists the candidates.
    pub fn resolve(&self, s: &str) -> Result<Image> {
        let s = s.trim();
        if let Ok(d) = Digest::parse(s) {
            return self.resolve_digest(&d, None);
        }
        let parsed = Reference::parse(s);
        if let Ok(r) = &parsed {
            if let Some(d) = r.digest() {
                let mut img = self.resolve_digest(d, Some(r.clone()))?;
                img.reference = Some(r.clone());
                return Ok(img);
            }
            if let Some(d) = self.lookup_tag(r)? {
                return self.load_image(&d, Some(r.clone().with_default_tag()));
            }
        }
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if hex.len() >= 4 && hex.len() <= 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            let mut found: Vec<Image> = Vec::new();
            for (_, d) in self.list_images()? {
                let Ok(img) = self.load_image(&d, None) else { continue };
                if img.config_digest.algorithm() == Algorithm::Sha256
                    && img.config_digest.hex().starts_with(hex)
                    && !found.iter().any(|f| f.config_digest == img.config_digest)
                {
                    found.push(img);
                }
            }
            match found.len() {
                1 => return Ok(found.pop().expect("one")),
                0 => {}
                _ => {
                    let ids: Vec<String> = found.iter().map(|i| i.config_digest.short().to_string()).collect();
                    return Err(Error::InvalidReference {
                        reference: s.to_string(),
                        reason: format!("ambiguous image ID prefix: matches {}", ids.join(", ")),
                    });
                }
            }
        }
        match parsed {
            Err(e) if !s.bytes().all(|b| b.is_ascii_hexdigit()) => Err(e),
            _ => Err(Error::NotFound(format!("image {s:?}"))),
        }
    }

    /// An image by the digest of its manifest (or index), or of its config.
    fn resolve_digest(&self, d: &Digest, reference: Option<Reference>) -> Result<Image> {
        let images = self.list_images()?;
        if let Some((r, desc)) = images.iter().find(|(_, desc)| &desc.digest == d) {
            let r = reference.clone().or_else(|| r.clone());
            return self.load_image(desc, r);
        }
        for (r, desc) in &images {
            if let Ok(img) = self.load_image(desc, None) {
                if img.manifest.digest() == d || &img.config_digest == d {
                    return Ok(Image { reference: reference.or_else(|| r.clone()), ..img });
                }
            }
        }
        // Untagged but present (loaded by digest, or a child of an index).
        if let Some(size) = self.blob_size(d)? {
            if size <= MAX_MANIFEST_SIZE as u64 {
                let bytes = self.read_blob(d)?;
                if let Ok(raw) = RawManifest::parse_verified(bytes, None, d) {
                    let desc = raw.descriptor();
                    return self.load_image(&desc, reference);
                }
            }
        }
        Err(Error::NotFound(format!("image {d}")))
    }

    /// The tags that lead to the image whose config is `config_digest`.
    pub fn tags_of(&self, config_digest: &Digest) -> Result<Vec<Reference>> {
        let mut out = Vec::new();
        for (r, d) in self.list_tags()? {
            if let Ok(img) = self.load_image(&d, None) {
                if &img.config_digest == config_digest {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// Pin `descriptors` (and everything they reach) against gc, under `name`, replacing
    /// what that name pinned before. `name` is a file name: letters, digits, `-`, `_`, `.`.
    pub fn set_gc_root(&self, name: &str, descriptors: &[Descriptor]) -> Result<()> {
        let path = self.gc_root_path(name)?;
        let bytes = serde_json::to_vec(descriptors)
            .map_err(|e| Error::InvalidJson { what: "gc root", reason: e.to_string() })?;
        layout::write_atomic(&self.layout.tmp(), &path, &bytes)
    }

    /// Remove the gc root `name`; false when there was none.
    pub fn remove_gc_root(&self, name: &str) -> Result<bool> {
        let path = self.gc_root_path(name)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(path)(e)),
        }
    }

    fn gc_root_path(&self, name: &str) -> Result<PathBuf> {
        let ok = !name.is_empty()
            && !name.starts_with('.')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(Error::InvalidReference {
                reference: name.to_string(),
                reason: "gc root names are [A-Za-z0-9._-]+, not starting with '.'".into(),
            });
        }
        Ok(self.layout.gcroots().join(format!("{name}.json")))
    }

    /// Remove the blobs that neither a tag nor a gc root reaches (and stale temp files).
    pub fn gc(&self, dry_run: bool) -> Result<GcReport> {
        self.gc_with(GcOptions { dry_run, ..Default::default() })
    }

    /// [`Store::gc`] with options. Waits while other processes hold write leases.
    pub fn gc_with(&self, opts: GcOptions) -> Result<GcReport> {
        gc::run(self, opts)
    }
}
