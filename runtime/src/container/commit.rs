//! `rbuild commit`: a container's writable layer becomes a new image.
//!
//! The layer is the snapshot's changes ([`super::fs::layer_changes`]: without the sandbox's
//! mount points and injected files, nor the container's mount targets) written by the
//! differ ([`crate::diff`]) into the store as a gzip layer, owners as the container saw them
//! (rootless: mapped back through the user namespace's id maps). The new config is the
//! image's, with the container's own settings (`Cmd`, `Env`, … as it was created) when
//! given, then each `--change` (Dockerfile instructions, as `import --change`), `author`,
//! a fresh `created` and a history entry; the manifest is the image's layers plus the new
//! one. The tag, when asked for, is written last.

use crate::error::{Error, Result};
use crate::sandbox::IdMap;
use crate::snapshot::Snapshotter;
use rbuild_image::config::{ContainerConfig, History};
use rbuild_image::layer::WriterOptions;
use rbuild_image::manifest::ImageManifest;
use rbuild_image::media_type as mt;
use rbuild_image::{Compression, Descriptor, Digest, RawManifest, Reference, Store};

/// What `commit` was asked for.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `-m`: the history entry's comment.
    pub message: Option<String>,
    /// `-a`: the image's author.
    pub author: Option<String>,
    /// `-c`: Dockerfile instructions applied to the config (`CMD`, `ENV`, `WORKDIR`, …).
    pub changes: Vec<String>,
    /// The container's own settings, replacing the image's `config` (docker commits the
    /// container's Cmd, Env, …); `None` keeps the image's.
    pub config: Option<ContainerConfig>,
    /// The history entry's `created_by` (docker: the container's command).
    pub created_by: String,
    /// Container paths to leave out of the layer (its mount targets).
    pub exclude: Vec<String>,
    /// Tag the image.
    pub reference: Option<Reference>,
}

/// What `commit` stored.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The image ID (config digest).
    pub image_id: Digest,
    /// The manifest (tagged when a reference was given).
    pub manifest: Descriptor,
    /// The new layer.
    pub layer: Descriptor,
}

/// OCI's name for a layer media type (docker's types become OCI's, the manifest is OCI).
fn oci_layer(media_type: &str) -> String {
    match media_type {
        mt::DOCKER_LAYER_GZIP => mt::OCI_LAYER_GZIP.into(),
        mt::DOCKER_LAYER_TAR => mt::OCI_LAYER_TAR.into(),
        other => other.into(),
    }
}

/// Commit active snapshot `key` (the container's writable layer, on `image_id`'s layers)
/// as a new image. `id_map`: the rootless sandbox's id maps (owners recorded as the
/// container saw them), `None` when root.
pub fn commit(
    store: &Store,
    sn: &dyn Snapshotter,
    key: &str,
    image_id: &str,
    id_map: Option<&IdMap>,
    opts: &CommitOptions,
) -> Result<Committed> {
    let base = store.resolve(image_id)?;
    let mut config = base.config.clone();
    if let Some(c) = &opts.config {
        config.config = Some(c.clone());
    }
    for c in &opts.changes {
        rbuild_image::store::import::apply_change(&mut config, c)?;
    }
    let (mut changes, _) = super::fs::layer_changes(sn, key, &opts.exclude)?;
    if let Some(map) = id_map {
        for c in &mut changes {
            if let rbuild_image::layer::Change::Add(a) = c {
                let m = std::fs::symlink_metadata(&a.source).map_err(Error::io(&a.source))?;
                use std::os::unix::fs::MetadataExt;
                a.meta.uid = a.meta.uid.or(map.uid_inside(m.uid()));
                a.meta.gid = a.meta.gid.or(map.gid_inside(m.gid()));
            }
        }
    }
    let layer = crate::diff::write_to_store(store, changes, Compression::Gzip, &WriterOptions::default())?;
    let now = super::now_rfc3339();
    if let Some(a) = &opts.author {
        config.author = Some(a.clone());
    }
    config.created = Some(now.clone());
    config.rootfs.diff_ids.push(layer.diff_id.clone());
    config.history.push(History {
        created: Some(now),
        created_by: Some(opts.created_by.clone()),
        author: opts.author.clone(),
        comment: opts.message.clone().filter(|m| !m.is_empty()),
        ..Default::default()
    });
    let config_bytes = config.to_canonical_bytes();
    let config_digest = store.put_blob_bytes(&config_bytes)?;
    let mut layers: Vec<Descriptor> = base
        .layers()
        .iter()
        .map(|l| {
            let mut d = l.clone();
            d.media_type = oci_layer(&l.media_type);
            d
        })
        .collect();
    layers.push(layer.descriptor());
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(mt::OCI_CONFIG, config_digest.clone(), config_bytes.len() as u64),
        layers,
        subject: None,
        annotations: Default::default(),
    };
    let raw = RawManifest::from_image(&m)?;
    store.put_manifest(&raw)?;
    let desc = Descriptor::new(raw.media_type().to_string(), raw.digest().clone(), raw.bytes().len() as u64);
    if let Some(r) = &opts.reference {
        store.tag(r, &desc)?;
    }
    Ok(Committed { image_id: config_digest, manifest: desc, layer: layer.descriptor() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_layer_types_become_ocis() {
        assert_eq!(oci_layer(mt::DOCKER_LAYER_GZIP), mt::OCI_LAYER_GZIP);
    }
}
