//! Reading an archive into the store: OCI layout tars and docker archives (docker ≥ 25's
//! combined form, and the older `<id>/layer.tar` form), possibly compressed.

use super::DockerManifestEntry;
use crate::config::ImageConfig;
use crate::descriptor::Descriptor;
use crate::digest::{Digest, DigestWriter};
use crate::error::{Error, Result};
use crate::manifest::{ImageIndex, ImageManifest};
use crate::media_type::{self as mt, Compression};
use crate::reference::Reference;
use crate::store::{Store, index};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;

/// The most the metadata files of an archive (index.json, manifest.json…) may weigh.
const MAX_METADATA: u64 = 16 * 1024 * 1024;

/// An image `load` put in the store.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The tag it was given, if the archive named it.
    pub reference: Option<Reference>,
    /// What the tag points at.
    pub descriptor: Descriptor,
    /// The image ID (for an index, the host platform's config digest when present).
    pub config_digest: Option<Digest>,
}

#[derive(Default)]
struct Contents {
    /// Small metadata files, by name.
    meta: HashMap<String, Vec<u8>>,
    /// Files outside blobs/ that were stored anyway (legacy docker archives): path -> blob.
    files: HashMap<String, (Digest, u64)>,
    /// Symlinks (legacy docker archives share layers that way): path -> target path.
    links: HashMap<String, String>,
}

fn corrupt(what: impl Into<String>) -> Error {
    Error::CorruptLayer(format!("image archive: {}", what.into()))
}

/// `a/./b/../c` -> `a/c`, refusing anything that climbs out or is absolute.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    if path.starts_with('/') {
        return None;
    }
    Some(parts.join("/"))
}

fn blob_digest_of_path(path: &str) -> Option<Digest> {
    let mut it = path.split('/');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some("blobs"), Some(alg), Some(hex), None) => Digest::parse(&format!("{alg}:{hex}")).ok(),
        _ => None,
    }
}

/// Read the archive's entries once, in order: blobs into the store (verified against their
/// names), metadata into memory.
fn read_entries(store: &Store, input: impl Read + Send + 'static) -> Result<Contents> {
    let (_, r) = crate::layer::decompress(input)?;
    let mut ar = tar::Archive::new(r);
    let mut c = Contents::default();
    for entry in ar.entries().map_err(|e| corrupt(e.to_string()))? {
        let mut entry = entry.map_err(|e| corrupt(format!("reading the tar: {e}")))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(path) = normalize(&raw) else {
            return Err(corrupt(format!("entry {raw:?} climbs out of the archive")));
        };
        let kind = entry.header().entry_type();
        let size = entry.header().size().map_err(|e| corrupt(format!("{path}: {e}")))?;
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name_bytes().map(|t| String::from_utf8_lossy(&t).into_owned()).unwrap_or_default();
            let joined = if kind.is_symlink() {
                let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                format!("{dir}/{target}")
            } else {
                target
            };
            if let Some(t) = normalize(&joined) {
                c.links.insert(path, t);
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        if let Some(d) = blob_digest_of_path(&path) {
            store.put_blob_verified(&mut entry, &d, Some(size)).map_err(|e| corrupt(format!("{path}: {e}")))?;
            continue;
        }
        match path.as_str() {
            "index.json" | "oci-layout" | "manifest.json" | "repositories" => {
                if size > MAX_METADATA {
                    return Err(corrupt(format!("{path} is {size} bytes")));
                }
                let mut b = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut b).map_err(|e| corrupt(format!("{path}: {e}")))?;
                c.meta.insert(path, b);
            }
            p if p.ends_with(".json") || p.ends_with(".tar") || p.ends_with(".tar.gz") => {
                // A legacy docker archive names blobs by position, not digest: store them
                // under the digest they hash to; manifest.json and the config's diff_ids
                // check them afterwards.
                if p.ends_with("/json") || p.ends_with("VERSION") {
                    continue;
                }
                let mut w = store.ingest()?;
                std::io::copy(&mut entry, &mut w).map_err(|e| corrupt(format!("{path}: {e}")))?;
                let (d, n) = w.commit(None, Some(size)).map_err(|e| corrupt(format!("{path}: {e}")))?;
                c.files.insert(path, (d, n));
            }
            _ => {}
        }
    }
    Ok(c)
}

impl Contents {
    /// The blob at `path` in the archive (following symlinks).
    fn blob_at(&self, store: &Store, path: &str) -> Result<(Digest, u64)> {
        let mut p = normalize(path).ok_or_else(|| corrupt(format!("bad path {path:?}")))?;
        for _ in 0..16 {
            if let Some(d) = blob_digest_of_path(&p) {
                let size =
                    store.blob_size(&d)?.ok_or_else(|| corrupt(format!("{p} is referenced but not in the archive")))?;
                return Ok((d, size));
            }
            if let Some(x) = self.files.get(&p) {
                return Ok(x.clone());
            }
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        Err(corrupt(format!("{path} is referenced but not in the archive")))
    }
}

/// Check that everything `d` reaches is in the store, with the right sizes and digests.
fn check_tree(store: &Store, d: &Descriptor) -> Result<()> {
    let mut stack = vec![d.clone()];
    while let Some(d) = stack.pop() {
        match store.blob_size(&d.digest)? {
            Some(s) if s == d.size => {}
            Some(s) => return Err(corrupt(format!("{} is {s} bytes, its descriptor says {}", d.digest, d.size))),
            None => {
                return Err(corrupt(format!("{} ({}) is referenced but not in the archive", d.digest, d.media_type)));
            }
        }
        if mt::is_manifest(&d.media_type) || mt::is_index(&d.media_type) {
            let m = store.read_manifest(&d)?;
            stack.extend(m.references().into_iter().cloned());
        } else if mt::is_config(&d.media_type) {
            ImageConfig::parse(&store.read_blob(&d.digest)?)?;
        }
    }
    Ok(())
}

/// The diffID of a layer blob: its digest when uncompressed, else the digest of what it
/// decompresses to.
fn diff_id_of(store: &Store, d: &Digest) -> Result<(Digest, Compression)> {
    let f = store.open_blob(d)?;
    let (c, mut r) = crate::layer::decompress(f)?;
    if c == Compression::None {
        return Ok((d.clone(), c));
    }
    let mut w = DigestWriter::new(std::io::sink(), crate::digest::Algorithm::Sha256);
    std::io::copy(&mut r, &mut w).map_err(|e| corrupt(format!("layer {d}: {e}")))?;
    Ok((w.finish().1, c))
}

/// A bare tag (`latest`), as docker ≥ 25 and umoci put in `ref.name`, rather than a name.
fn is_bare_tag(s: &str) -> bool {
    !s.contains('/') && !s.contains(':') && !s.contains('@')
}

/// Read an archive from `input` into the store and tag what it names; what it does not name
/// is kept untagged. Every blob is verified on the way in; nothing is tagged or kept unless
/// every image of the archive checks out.
pub fn load(store: &Store, input: impl Read + Send + 'static) -> Result<Vec<LoadedImage>> {
    let c = read_entries(store, input)?;
    let docker: Option<Vec<DockerManifestEntry>> = match c.meta.get("manifest.json") {
        Some(b) => Some(serde_json::from_slice(b).map_err(|e| corrupt(format!("manifest.json: {e}")))?),
        None => None,
    };
    // RepoTags by config digest, for OCI entries that carry no full name.
    let mut repo_tags: BTreeMap<Digest, Vec<Reference>> = BTreeMap::new();
    if let Some(entries) = &docker {
        for e in entries {
            let (cd, _) = c.blob_at(store, &e.config)?;
            for t in e.repo_tags.iter().flatten() {
                let r = Reference::parse(t).map_err(|err| corrupt(format!("manifest.json RepoTags: {err}")))?;
                repo_tags.entry(cd.clone()).or_default().push(r.with_default_tag());
            }
        }
    }

    let mut out: Vec<LoadedImage> = Vec::new();
    if let (Some(idx), Some(layout)) = (c.meta.get("index.json"), c.meta.get("oci-layout")) {
        let v: serde_json::Value = serde_json::from_slice(layout).map_err(|e| corrupt(format!("oci-layout: {e}")))?;
        if v.get("imageLayoutVersion").and_then(|x| x.as_str()) != Some("1.0.0") {
            return Err(corrupt("oci-layout: imageLayoutVersion must be \"1.0.0\""));
        }
        let idx: ImageIndex = serde_json::from_slice(idx).map_err(|e| corrupt(format!("index.json: {e}")))?;
        for d in &idx.manifests {
            check_tree(store, d)?;
            let mut plain = d.clone();
            let name = plain.annotations.remove(index::CONTAINERD_NAME);
            let ref_name = plain.annotations.remove(index::REF_NAME);
            let config_digest = store.load_image(&plain, None).ok().map(|i| i.config_digest);
            let mut refs: Vec<Reference> = Vec::new();
            match (name, ref_name) {
                (Some(n), tag) => {
                    let mut r = Reference::parse(&n).map_err(|e| corrupt(format!("index.json: {e}")))?;
                    if let Some(t) = tag.filter(|t| is_bare_tag(t)) {
                        r = r.with_tag(&t).map_err(|e| corrupt(format!("index.json: {e}")))?;
                    }
                    refs.push(r.with_default_tag());
                }
                (None, Some(n)) if !is_bare_tag(&n) => {
                    refs.push(
                        Reference::parse(&n).map_err(|e| corrupt(format!("index.json: {e}")))?.with_default_tag(),
                    );
                }
                _ => {
                    if let Some(rt) = config_digest.as_ref().and_then(|cd| repo_tags.get(cd)) {
                        refs.extend(rt.iter().cloned());
                    }
                }
            }
            if refs.is_empty() {
                out.push(LoadedImage {
                    reference: None,
                    descriptor: plain.clone(),
                    config_digest: config_digest.clone(),
                });
            }
            for r in refs {
                out.push(LoadedImage {
                    reference: Some(r),
                    descriptor: plain.clone(),
                    config_digest: config_digest.clone(),
                });
            }
        }
    } else if let Some(entries) = &docker {
        for e in entries {
            let (cd, csize) = c.blob_at(store, &e.config)?;
            let config = ImageConfig::parse(&store.read_blob(&cd)?)?;
            if config.rootfs.diff_ids.len() != e.layers.len() {
                return Err(corrupt(format!(
                    "{}: manifest.json lists {} layers, the config's rootfs has {} diff_ids",
                    e.config,
                    e.layers.len(),
                    config.rootfs.diff_ids.len()
                )));
            }
            let mut layers = Vec::new();
            for (path, want) in e.layers.iter().zip(&config.rootfs.diff_ids) {
                let (ld, lsize) = c.blob_at(store, path)?;
                let (diff_id, comp) = diff_id_of(store, &ld)?;
                if &diff_id != want {
                    return Err(corrupt(format!(
                        "layer {path}: its content is {diff_id}, the config's diff_id says {want}"
                    )));
                }
                layers.push(Descriptor::new(comp.oci_layer_type(), ld, lsize));
            }
            let m = ImageManifest {
                schema_version: 2,
                media_type: Some(mt::OCI_MANIFEST.to_string()),
                artifact_type: None,
                config: Descriptor::new(mt::OCI_CONFIG, cd.clone(), csize),
                layers,
                subject: None,
                annotations: Default::default(),
            };
            let raw = crate::manifest::RawManifest::from_image(&m)?;
            store.put_manifest(&raw)?;
            let desc = raw.descriptor();
            let refs = repo_tags.get(&cd).cloned().unwrap_or_default();
            if refs.is_empty() {
                out.push(LoadedImage { reference: None, descriptor: desc.clone(), config_digest: Some(cd.clone()) });
            }
            for r in refs {
                out.push(LoadedImage { reference: Some(r), descriptor: desc.clone(), config_digest: Some(cd.clone()) });
            }
        }
    } else {
        return Err(corrupt("neither an OCI layout (index.json + oci-layout) nor a docker archive (manifest.json)"));
    }
    for l in &out {
        match &l.reference {
            Some(r) => store.tag(r, &l.descriptor)?,
            // As docker load: an image without a name stays, untagged, listed as <none>.
            None => {
                store.keep_untagged(&l.descriptor)?;
            }
        }
    }
    Ok(out)
}
