//! Writing images to an archive, streamed and deterministic.

use super::{ArchiveFormat, DockerManifestEntry};
use crate::descriptor::Descriptor;
use crate::digest::{Digest, VerifyingReader};
use crate::error::{Error, Result};
use crate::manifest::ImageIndex;
use crate::media_type as mt;
use crate::store::layout::OCI_LAYOUT_CONTENT;
use crate::store::{Image, Store, index};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().as_str(), d.hex())
}

fn header(path: &str, size: u64, dir: bool) -> Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).map_err(|e| Error::CorruptLayer(format!("archive path {path}: {e}")))?;
    h.set_size(size);
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_entry_type(if dir { tar::EntryType::Directory } else { tar::EntryType::Regular });
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("").ok();
    h.set_groupname("").ok();
    h.set_cksum();
    Ok(h)
}

/// Collect the descriptor tree under `d` (which must all be present): every blob with its
/// size. Returns false when a child blob is missing locally.
fn collect(store: &Store, d: &Descriptor, out: &mut BTreeMap<Digest, u64>) -> Result<bool> {
    let mut stack = vec![d.clone()];
    while let Some(d) = stack.pop() {
        match store.blob_size(&d.digest)? {
            Some(s) if s == d.size => {}
            Some(s) => {
                return Err(Error::CorruptLayer(format!(
                    "blob {} is {s} bytes in the store, its descriptor says {}",
                    d.digest, d.size
                )));
            }
            None => return Ok(false),
        }
        if out.insert(d.digest.clone(), d.size).is_some() {
            continue;
        }
        if mt::is_manifest(&d.media_type) || mt::is_index(&d.media_type) {
            let m = store.read_manifest(&d)?;
            stack.extend(m.references().into_iter().cloned());
        }
    }
    Ok(true)
}

/// Write `images` to `out` as an archive of `format`. Each image's `reference` (when it has
/// a tag) names it in the archive. Blobs are streamed from the store and verified on the
/// way out: a blob that no longer matches its digest fails the save.
pub fn save(store: &Store, images: &[Image], format: ArchiveFormat, out: impl Write) -> Result<()> {
    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut entries: Vec<Descriptor> = Vec::new();
    let mut docker: Vec<DockerManifestEntry> = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for img in images {
        // The whole index when every platform is here; else just this platform's image.
        let mut tree = BTreeMap::new();
        let top = if collect(store, &img.descriptor, &mut tree)? {
            img.descriptor.clone()
        } else {
            tree.clear();
            let d = img.manifest.descriptor();
            if !collect(store, &d, &mut tree)? {
                return Err(Error::NotFound(format!("a blob of image {}", img.manifest.digest())));
            }
            d
        };
        blobs.extend(tree);
        let mut plain = top.clone();
        plain.annotations.remove(index::REF_NAME);
        plain.annotations.remove(index::CONTAINERD_NAME);
        let tagged = img.reference.as_ref().filter(|r| r.digest().is_none() || r.tag().is_some());
        let entry = match tagged {
            Some(r) => index::archive_named(&plain, r),
            None => plain,
        };
        if !entries.contains(&entry) {
            entries.push(entry);
        }

        let repo_tag = tagged.map(|r| {
            let r = r.clone().with_default_tag();
            (r.familiar_name(), r.tag().unwrap_or("latest").to_string())
        });
        if let Some((name, tag)) = &repo_tag {
            repositories.entry(name.clone()).or_default().insert(tag.clone(), img.config_digest.hex().to_string());
        }
        let config = blob_path(&img.config_digest);
        match docker.iter_mut().find(|e| e.config == config) {
            Some(e) => {
                if let Some((name, tag)) = repo_tag {
                    let t = format!("{name}:{tag}");
                    let tags = e.repo_tags.get_or_insert_with(Vec::new);
                    if !tags.contains(&t) {
                        tags.push(t);
                    }
                }
            }
            None => docker.push(DockerManifestEntry {
                config,
                repo_tags: repo_tag.map(|(n, t)| vec![format!("{n}:{t}")]),
                layers: img.layers().iter().map(|l| blob_path(&l.digest)).collect(),
            }),
        }
    }

    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(mt::OCI_INDEX.to_string()),
        artifact_type: None,
        manifests: entries,
        subject: None,
        annotations: Default::default(),
    };
    let json_err = |e: serde_json::Error| Error::InvalidJson { what: "archive metadata", reason: e.to_string() };
    let index_bytes = crate::canonical::to_vec(&index).map_err(json_err)?;

    let mut tar = tar::Builder::new(out);
    let algs: BTreeSet<&str> = blobs.keys().map(|d| d.algorithm().as_str()).collect();
    tar.append(&header("blobs/", 0, true)?, std::io::empty())?;
    for alg in algs {
        tar.append(&header(&format!("blobs/{alg}/"), 0, true)?, std::io::empty())?;
        for (d, size) in blobs.iter().filter(|(d, _)| d.algorithm().as_str() == alg) {
            let f = store.open_blob(d)?;
            let r = VerifyingReader::new(f.take(*size + 1), d.clone(), Some(*size));
            tar.append(&header(&blob_path(d), *size, false)?, r)
                .map_err(|e| Error::Io { path: store.blob_path(d), source: e })?;
        }
    }
    let mut small: Vec<(&str, Vec<u8>)> =
        vec![("index.json", index_bytes), ("oci-layout", OCI_LAYOUT_CONTENT.to_vec())];
    if format == ArchiveFormat::Docker {
        small.push(("manifest.json", serde_json::to_vec(&docker).map_err(json_err)?));
        small.push(("repositories", serde_json::to_vec(&repositories).map_err(json_err)?));
    }
    small.sort_by(|a, b| a.0.cmp(b.0));
    for (name, bytes) in small {
        tar.append(&header(name, bytes.len() as u64, false)?, &bytes[..])?;
    }
    let mut out = tar.into_inner()?;
    out.flush()?;
    Ok(())
}

/// [`save`] into the file `path`, atomically: written to a temp file beside it, synced, and
/// renamed over `path` only when complete. A failed save leaves no partial archive.
pub fn save_to_path(store: &Store, images: &[Image], format: ArchiveFormat, path: &std::path::Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new().prefix(".rbuild-save-").tempfile_in(&dir).map_err(Error::io(&dir))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp);
    save(store, images, format, &mut w)?;
    let tmp = w.into_inner().map_err(|e| Error::io(path)(e.into_error()))?;
    // Temp files are private (0600); an archive is an ordinary file, as `docker save` makes.
    let mut perms = perms_of(tmp.as_file(), path)?;
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    tmp.as_file().set_permissions(perms).map_err(Error::io(path))?;
    tmp.as_file().sync_all().map_err(Error::io(path))?;
    tmp.persist(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e.error })?;
    crate::store::layout::fsync_dir(&dir)
}

fn perms_of(f: &std::fs::File, path: &std::path::Path) -> Result<std::fs::Permissions> {
    Ok(f.metadata().map_err(Error::io(path))?.permissions())
}
