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
    let now = chrono_now();
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

/// Now as RFC 3339 with nanoseconds (UTC), as docker writes `created`.
fn chrono_now() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let t = chrono_now();
        assert_eq!(t.len(), "2026-12-02T13:45:25.123456789Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert_eq!(oci_layer(mt::DOCKER_LAYER_GZIP), mt::OCI_LAYER_GZIP);
    }
}
