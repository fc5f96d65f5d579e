//! Image archives: what `rbuild save` writes and `rbuild load` reads.
//!
//! Two formats, both tars. `oci` is an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/`) named as docker, containerd, buildah and skopeo name it: each entry's
//! `org.opencontainers.image.ref.name` is the tag alone and `io.containerd.image.name` the
//! full reference, so `skopeo … oci-archive:FILE:TAG` and `umoci … layout:TAG` find it.
//! Loading reads that convention and the older one (a full reference in `ref.name`); an
//! image the archive does not name fully is kept untagged, addressable by its ID. `docker` is what docker ≥ 25 writes: the same
//! OCI layout plus `manifest.json` and `repositories`, so `docker load`, `skopeo …
//! docker-archive:` and OCI readers all accept the one file. Writing is deterministic
//! (sorted entries, fixed mtimes and owners) and streamed, blob by blob.

mod load;
mod save;

pub use load::{LoadedImage, load};
pub use save::{save, save_to_path};

use serde::{Deserialize, Serialize};

/// Which archive to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// An OCI image layout.
    Oci,
    /// An OCI image layout plus docker's `manifest.json` and `repositories`.
    Docker,
}

impl std::str::FromStr for ArchiveFormat {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "oci" | "oci-archive" => Ok(ArchiveFormat::Oci),
            "docker" | "docker-archive" => Ok(ArchiveFormat::Docker),
            other => Err(crate::Error::UnsupportedMediaType(format!("archive format {other:?} (oci or docker)"))),
        }
    }
}

/// One entry of a docker-archive `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DockerManifestEntry {
    /// Path of the config inside the archive.
    pub config: String,
    /// Familiar references (`busybox:latest`).
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// Paths of the layers inside the archive, base first.
    #[serde(default)]
    pub layers: Vec<String>,
}
