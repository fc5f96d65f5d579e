//! Where everything lives in storage. Every key the registry reads or writes is made here,
//! from validated repository names, tags and digests only.
//!
//! ```text
//! <root>
//! ├── blobs/                                   one content-addressed store shared by all repositories
//! │   └── <alg>/<hex[0..2]>/<hex>/data         the bytes; written only after the digest is verified
//! └── repositories/
//!     └── <name…>/                             the name's slashes are directories (team/app/api)
//!         ├── _layers/<alg>/<hex>/link         "this repository may serve blob <alg>:<hex>" (content: the digest)
//!         ├── _manifests/
//!         │   ├── revisions/<alg>/<hex>/link   a manifest pushed here (content: the digest)
//!         │   ├── revisions/<alg>/<hex>/mediatype   the media type it was pushed with
//!         │   └── tags/<tag>/current/link      the manifest the tag points at (content: the digest)
//!         ├── _referrers/<alg>/<hex>/<ralg>/<rhex>/link
//!         │                                    manifest <ralg>:<rhex> has subject <alg>:<hex>
//!         │                                    (content: the referrer's descriptor, JSON)
//!         └── _uploads/<uuid>/
//!             ├── data                         the bytes received so far
//!             └── startedat                    RFC 3339 time the upload began
//! ```
//!
//! Repository name components start with a letter or digit, so they never collide with the
//! `_`-prefixed directories.

use rbuild_image::Digest;

/// `blobs/<alg>/<xx>/<hex>`.
pub fn blob_dir(d: &Digest) -> String {
    format!("blobs/{}/{}/{}", d.algorithm().as_str(), &d.hex()[..2], d.hex())
}

/// `blobs/<alg>/<xx>/<hex>/data`.
pub fn blob_data(d: &Digest) -> String {
    format!("{}/data", blob_dir(d))
}

/// `blobs`.
pub const BLOBS: &str = "blobs";

/// `repositories`.
pub const REPOSITORIES: &str = "repositories";

/// `repositories/<name>`.
pub fn repo(name: &str) -> String {
    format!("repositories/{name}")
}

/// `repositories/<name>/_layers`.
pub fn layers(name: &str) -> String {
    format!("repositories/{name}/_layers")
}

/// `repositories/<name>/_layers/<alg>/<hex>/link`.
pub fn layer_link(name: &str, d: &Digest) -> String {
    format!("repositories/{name}/_layers/{}/{}/link", d.algorithm().as_str(), d.hex())
}

/// `repositories/<name>/_manifests/revisions`.
pub fn revisions(name: &str) -> String {
    format!("repositories/{name}/_manifests/revisions")
}

/// `repositories/<name>/_manifests/revisions/<alg>/<hex>`.
pub fn revision_dir(name: &str, d: &Digest) -> String {
    format!("repositories/{name}/_manifests/revisions/{}/{}", d.algorithm().as_str(), d.hex())
}

/// `…/revisions/<alg>/<hex>/link`.
pub fn revision_link(name: &str, d: &Digest) -> String {
    format!("{}/link", revision_dir(name, d))
}

/// `…/revisions/<alg>/<hex>/mediatype`.
pub fn revision_media_type(name: &str, d: &Digest) -> String {
    format!("{}/mediatype", revision_dir(name, d))
}

/// `repositories/<name>/_manifests/tags`.
pub fn tags(name: &str) -> String {
    format!("repositories/{name}/_manifests/tags")
}

/// `repositories/<name>/_manifests/tags/<tag>`.
pub fn tag_dir(name: &str, tag: &str) -> String {
    format!("repositories/{name}/_manifests/tags/{tag}")
}

/// `repositories/<name>/_manifests/tags/<tag>/current/link`.
pub fn tag_link(name: &str, tag: &str) -> String {
    format!("repositories/{name}/_manifests/tags/{tag}/current/link")
}

/// `repositories/<name>/_referrers/<alg>/<hex>`.
pub fn referrers_of(name: &str, subject: &Digest) -> String {
    format!("repositories/{name}/_referrers/{}/{}", subject.algorithm().as_str(), subject.hex())
}

/// `repositories/<name>/_referrers/<alg>/<hex>/<ralg>/<rhex>/link`.
pub fn referrer_link(name: &str, subject: &Digest, referrer: &Digest) -> String {
    format!("{}/{}/{}/link", referrers_of(name, subject), referrer.algorithm().as_str(), referrer.hex())
}

/// `repositories/<name>/_referrers`.
pub fn referrers(name: &str) -> String {
    format!("repositories/{name}/_referrers")
}

/// `repositories/<name>/_uploads`.
pub fn uploads(name: &str) -> String {
    format!("repositories/{name}/_uploads")
}

/// `repositories/<name>/_uploads/<uuid>`.
pub fn upload_dir(name: &str, id: &str) -> String {
    format!("repositories/{name}/_uploads/{id}")
}

/// `repositories/<name>/_uploads/<uuid>/data`.
pub fn upload_data(name: &str, id: &str) -> String {
    format!("repositories/{name}/_uploads/{id}/data")
}

/// `repositories/<name>/_uploads/<uuid>/startedat`.
pub fn upload_started(name: &str, id: &str) -> String {
    format!("repositories/{name}/_uploads/{id}/startedat")
}
