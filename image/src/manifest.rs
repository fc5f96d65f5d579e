//! Manifests and indexes: the raw bytes as received, with a parsed view beside them.
//! A manifest that came from elsewhere is never re-serialized: its digest is of its bytes.

use crate::descriptor::Descriptor;
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, Result};
use crate::media_type as mt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most a manifest may weigh; registries and clients refuse larger ones.
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// An image manifest (OCI, or Docker schema 2 which has the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type (recommended by OCI, required by Docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type, for artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (referrers API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type, for artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifests it lists.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (referrers API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The parsed view of a manifest's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// An image manifest.
    Image(Box<ImageManifest>),
    /// An index or manifest list.
    Index(Box<ImageIndex>),
}

/// A manifest as bytes, its media type and digest, and a parsed view of it.
#[derive(Debug, Clone)]
pub struct RawManifest {
    bytes: Vec<u8>,
    media_type: String,
    digest: Digest,
    parsed: Parsed,
}

impl RawManifest {
    /// Parse `bytes`. `content_type` is what the transport said (HTTP `Content-Type`, a
    /// descriptor's media type); when the JSON carries `mediaType`, the two must agree.
    pub fn parse(bytes: Vec<u8>, content_type: Option<&str>) -> Result<RawManifest> {
        Self::parse_with(bytes, content_type, Algorithm::Sha256)
    }

    /// Like [`RawManifest::parse`], with the digest computed in `alg`.
    pub fn parse_with(bytes: Vec<u8>, content_type: Option<&str>, alg: Algorithm) -> Result<RawManifest> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(Error::InvalidJson {
                what: "manifest",
                reason: format!("{} bytes is over the 4 MiB limit", bytes.len()),
            });
        }
        let probe: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::InvalidJson { what: "manifest", reason: e.to_string() })?;
        let obj =
            probe.as_object().ok_or(Error::InvalidJson { what: "manifest", reason: "not a JSON object".into() })?;
        let declared = obj.get("mediaType").and_then(|v| v.as_str()).map(str::to_string);
        let content_type = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim())
            .filter(|c| !c.is_empty() && *c != "application/json" && *c != "application/octet-stream");
        if let (Some(d), Some(c)) = (&declared, content_type) {
            if d != c {
                return Err(Error::InvalidJson {
                    what: "manifest",
                    reason: format!("mediaType {d:?} does not match the content type {c:?}"),
                });
            }
        }
        let media_type = match declared.as_deref().or(content_type) {
            Some(m) => m.to_string(),
            None if obj.contains_key("manifests") => mt::OCI_INDEX.to_string(),
            None if obj.contains_key("config") => mt::OCI_MANIFEST.to_string(),
            None => {
                return Err(Error::InvalidJson {
                    what: "manifest",
                    reason: "no mediaType, config or manifests".into(),
                });
            }
        };
        match obj.get("schemaVersion").and_then(|v| v.as_u64()) {
            Some(2) => {}
            Some(1) => {
                return Err(Error::UnsupportedMediaType(format!(
                    "{media_type} (schema 1 manifests are not supported)"
                )));
            }
            _ => return Err(Error::InvalidJson { what: "manifest", reason: "schemaVersion must be 2".into() }),
        }
        let bad = |e: serde_json::Error| Error::InvalidJson { what: "manifest", reason: e.to_string() };
        let parsed = if mt::is_manifest(&media_type) {
            let m: ImageManifest = serde_json::from_value(probe).map_err(bad)?;
            Parsed::Image(Box::new(m))
        } else if mt::is_index(&media_type) {
            let i: ImageIndex = serde_json::from_value(probe).map_err(bad)?;
            Parsed::Index(Box::new(i))
        } else {
            return Err(Error::UnsupportedMediaType(media_type));
        };
        let digest = Digest::of(alg, &bytes);
        Ok(RawManifest { bytes, media_type, digest, parsed })
    }

    /// Parse, and check the bytes against `expected` (by its algorithm).
    pub fn parse_verified(bytes: Vec<u8>, content_type: Option<&str>, expected: &Digest) -> Result<RawManifest> {
        expected.verify(&bytes)?;
        Self::parse_with(bytes, content_type, expected.algorithm())
    }

    /// Serialize a manifest rbuild made itself (canonical JSON) and wrap it.
    pub fn from_image(m: &ImageManifest) -> Result<RawManifest> {
        let bytes =
            crate::canonical::to_vec(m).map_err(|e| Error::InvalidJson { what: "manifest", reason: e.to_string() })?;
        let ct = m.media_type.clone().unwrap_or_else(|| mt::OCI_MANIFEST.to_string());
        Self::parse(bytes, Some(&ct))
    }

    /// Serialize an index rbuild made itself (canonical JSON) and wrap it.
    pub fn from_index(i: &ImageIndex) -> Result<RawManifest> {
        let bytes =
            crate::canonical::to_vec(i).map_err(|e| Error::InvalidJson { what: "index", reason: e.to_string() })?;
        let ct = i.media_type.clone().unwrap_or_else(|| mt::OCI_INDEX.to_string());
        Self::parse(bytes, Some(&ct))
    }

    /// The bytes, exactly as received or written.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The media type.
    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    /// The digest of the bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The parsed view.
    pub fn parsed(&self) -> &Parsed {
        &self.parsed
    }

    /// The image manifest, when this is one.
    pub fn as_image(&self) -> Option<&ImageManifest> {
        match &self.parsed {
            Parsed::Image(m) => Some(m),
            Parsed::Index(_) => None,
        }
    }

    /// The index, when this is one.
    pub fn as_index(&self) -> Option<&ImageIndex> {
        match &self.parsed {
            Parsed::Index(i) => Some(i),
            Parsed::Image(_) => None,
        }
    }

    /// The subject, if any (for the referrers API).
    pub fn subject(&self) -> Option<&Descriptor> {
        match &self.parsed {
            Parsed::Image(m) => m.subject.as_ref(),
            Parsed::Index(i) => i.subject.as_ref(),
        }
    }

    /// Every descriptor this manifest points at (config, layers, child manifests).
    pub fn references(&self) -> Vec<&Descriptor> {
        match &self.parsed {
            Parsed::Image(m) => std::iter::once(&m.config).chain(m.layers.iter()).collect(),
            Parsed::Index(i) => i.manifests.iter().collect(),
        }
    }

    /// A descriptor of this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.digest.clone(), self.bytes.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ImageManifest {
        ImageManifest {
            schema_version: 2,
            media_type: Some(mt::OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(mt::OCI_CONFIG, Digest::sha256_of(b"{}"), 2),
            layers: vec![Descriptor::new(mt::OCI_LAYER_GZIP, Digest::sha256_of(b"l"), 1)],
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn keeps_bytes_as_received() {
        // Whitespace and key order as some other tool wrote them: must survive untouched.
        let text = "{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n  \"layers\": [],\n  \"config\": {\"mediaType\": \"application/vnd.oci.image.config.v1+json\", \"size\": 2, \"digest\": \"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\"}, \"x-unknown\": 1\n}";
        let raw = RawManifest::parse(text.as_bytes().to_vec(), None).unwrap();
        assert_eq!(raw.bytes(), text.as_bytes());
        assert_eq!(raw.digest(), &Digest::sha256_of(text.as_bytes()));
        assert!(raw.as_image().is_some());
    }

    #[test]
    fn refuses_mismatch_and_garbage() {
        let raw = RawManifest::from_image(&sample()).unwrap();
        let err = RawManifest::parse(raw.bytes().to_vec(), Some(mt::DOCKER_MANIFEST)).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(RawManifest::parse(b"[1,2]".to_vec(), None).is_err());
        assert!(RawManifest::parse(b"{\"schemaVersion\":1,\"mediaType\":\"x\"}".to_vec(), None).is_err());
        assert!(RawManifest::parse(vec![b' '; MAX_MANIFEST_SIZE + 1], None).is_err());
        let other = Digest::sha256_of(b"other");
        assert!(RawManifest::parse_verified(raw.bytes().to_vec(), None, &other).is_err());
    }

    #[test]
    fn own_manifests_are_canonical() {
        let a = RawManifest::from_image(&sample()).unwrap();
        let b = RawManifest::from_image(&sample()).unwrap();
        assert_eq!(a.digest(), b.digest());
        assert!(std::str::from_utf8(a.bytes()).unwrap().starts_with("{\"config\":"));
    }
}
