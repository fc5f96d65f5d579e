//! index.json: the store's tags, one manifest descriptor per reference.

use super::layout::{Layout, write_atomic};
use super::lock;
use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::manifest::ImageIndex;
use crate::media_type as mt;
use crate::reference::Reference;

/// The annotation the OCI image spec gives a reference name.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's (and docker ≥ 25's) annotation for the full image name.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

pub(crate) const EMPTY_INDEX: &[u8] =
    br#"{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#;

/// Read index.json. A missing file is an empty index.
pub(crate) fn read(layout: &Layout) -> Result<ImageIndex> {
    let path = layout.index();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => EMPTY_INDEX.to_vec(),
        Err(e) => return Err(Error::io(&path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::InvalidJson { what: "store index.json", reason: format!("{}: {e}", path.display()) })
}

/// Write index.json whole (callers hold the index lock).
pub(crate) fn write(layout: &Layout, idx: &ImageIndex) -> Result<()> {
    let bytes =
        crate::canonical::to_vec(idx).map_err(|e| Error::InvalidJson { what: "index", reason: e.to_string() })?;
    write_atomic(&layout.tmp(), &layout.index(), &bytes)
}

/// Read, change and write index.json under the index lock, so that concurrent writers in
/// other processes never lose each other's changes.
pub(crate) fn update<T>(layout: &Layout, f: impl FnOnce(&mut ImageIndex) -> Result<T>) -> Result<T> {
    let _g = lock::exclusive(&layout.index_lock())?;
    let mut idx = read(layout)?;
    let out = f(&mut idx)?;
    idx.schema_version = 2;
    idx.media_type = Some(mt::OCI_INDEX.to_string());
    // Sorted by name: the same tags always give the same file.
    sort(&mut idx);
    write(layout, &idx)?;
    Ok(out)
}

/// Put entries in their one order: by name, untagged ones (no name) first, then by digest.
pub(crate) fn sort(idx: &mut ImageIndex) {
    idx.manifests.sort_by(|a, b| ref_name(a).cmp(&ref_name(b)).then_with(|| a.digest.cmp(&b.digest)));
}

/// An entry without a name: an untagged (dangling) image, kept until prune or rmi.
pub(crate) fn is_untagged(d: &Descriptor) -> bool {
    !d.annotations.contains_key(REF_NAME) && !d.annotations.contains_key(CONTAINERD_NAME)
}

/// `d` without the name annotations.
pub(crate) fn unnamed(d: &Descriptor) -> Descriptor {
    let mut d = d.clone();
    d.annotations.remove(REF_NAME);
    d.annotations.remove(CONTAINERD_NAME);
    d
}

/// The reference name annotation of an entry.
pub(crate) fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations.get(REF_NAME).map(String::as_str)
}

/// The full name an entry carries: `io.containerd.image.name` where set (both conventions
/// write it), else `org.opencontainers.image.ref.name`.
pub(crate) fn full_name(d: &Descriptor) -> Option<&str> {
    d.annotations.get(CONTAINERD_NAME).or_else(|| d.annotations.get(REF_NAME)).map(String::as_str)
}

/// The entry's reference, when its name is a full reference.
pub(crate) fn entry_reference(d: &Descriptor) -> Option<Reference> {
    let name = d.annotations.get(CONTAINERD_NAME).or_else(|| d.annotations.get(REF_NAME))?;
    Reference::parse(name).ok()
}

/// The normalized name under which a tag is stored: full reference, tag defaulted, no digest.
pub(crate) fn tag_name(r: &Reference) -> String {
    let r = r.clone().with_default_tag();
    match r.tag() {
        Some(t) => format!("{}:{t}", r.name()),
        None => r.to_string(),
    }
}

/// `d`, annotated with `r` as its name.
pub(crate) fn named(d: &Descriptor, r: &Reference) -> Descriptor {
    let mut d = d.clone();
    let name = tag_name(r);
    d.annotations.insert(REF_NAME.to_string(), name.clone());
    d.annotations.insert(CONTAINERD_NAME.to_string(), name);
    d
}

/// `d` named for an archive the way docker, containerd, buildah and skopeo name it: the full
/// reference in `io.containerd.image.name`, the tag alone in
/// `org.opencontainers.image.ref.name` (so `oci-archive:FILE:TAG` and `layout:TAG` find it).
pub(crate) fn archive_named(d: &Descriptor, r: &Reference) -> Descriptor {
    let mut d = unnamed(d);
    let r = r.clone().with_default_tag();
    d.annotations.insert(CONTAINERD_NAME.to_string(), tag_name(&r));
    if let Some(t) = r.tag() {
        d.annotations.insert(REF_NAME.to_string(), t.to_string());
    }
    d
}
