//! The vocabulary of the OCI distribution API, shared by the client and the server: error
//! codes with their HTTP statuses, header names, and the error body.

use serde::{Deserialize, Serialize};

/// `Docker-Content-Digest`.
pub const HEADER_CONTENT_DIGEST: &str = "Docker-Content-Digest";
/// `Docker-Distribution-API-Version`.
pub const HEADER_API_VERSION: &str = "Docker-Distribution-API-Version";
/// `Docker-Upload-UUID`.
pub const HEADER_UPLOAD_UUID: &str = "Docker-Upload-UUID";
/// `OCI-Chunk-Min-Length`.
pub const HEADER_CHUNK_MIN_LENGTH: &str = "OCI-Chunk-Min-Length";
/// `OCI-Subject`.
pub const HEADER_OCI_SUBJECT: &str = "OCI-Subject";
/// `OCI-Filters-Applied`.
pub const HEADER_FILTERS_APPLIED: &str = "OCI-Filters-Applied";

/// An error code of the distribution spec, with the status it is served with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Blob unknown to registry.
    BlobUnknown,
    /// Blob upload invalid.
    BlobUploadInvalid,
    /// Blob upload unknown to registry.
    BlobUploadUnknown,
    /// Provided digest did not match uploaded content.
    DigestInvalid,
    /// Blob unknown to registry (referenced by a manifest).
    ManifestBlobUnknown,
    /// Manifest invalid.
    ManifestInvalid,
    /// Manifest unknown.
    ManifestUnknown,
    /// Invalid repository name.
    NameInvalid,
    /// Repository name not known to registry.
    NameUnknown,
    /// Provided length did not match content length.
    SizeInvalid,
    /// Authentication required.
    Unauthorized,
    /// Requested access to the resource is denied.
    Denied,
    /// The operation is unsupported.
    Unsupported,
    /// Too many requests.
    TooManyRequests,
    /// Range not satisfiable (chunk out of order).
    RangeInvalid,
    /// Tag invalid.
    TagInvalid,
    /// Manifest references a manifest or blob of the wrong kind.
    ManifestUnverified,
    /// Pagination number invalid.
    PaginationNumberInvalid,
    /// The registry is read-only or unavailable.
    Unavailable,
}

impl ErrorCode {
    /// The code string in error bodies.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BlobUnknown => "BLOB_UNKNOWN",
            BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            DigestInvalid => "DIGEST_INVALID",
            ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ManifestInvalid => "MANIFEST_INVALID",
            ManifestUnknown => "MANIFEST_UNKNOWN",
            NameInvalid => "NAME_INVALID",
            NameUnknown => "NAME_UNKNOWN",
            SizeInvalid => "SIZE_INVALID",
            Unauthorized => "UNAUTHORIZED",
            Denied => "DENIED",
            Unsupported => "UNSUPPORTED",
            TooManyRequests => "TOOMANYREQUESTS",
            RangeInvalid => "RANGE_INVALID",
            TagInvalid => "TAG_INVALID",
            ManifestUnverified => "MANIFEST_UNVERIFIED",
            PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Unavailable => "UNAVAILABLE",
        }
    }

    /// The HTTP status it is served with.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            BlobUnknown | BlobUploadUnknown | ManifestUnknown | NameUnknown => 404,
            Unauthorized => 401,
            Denied => 403,
            Unsupported => 405,
            TooManyRequests => 429,
            RangeInvalid => 416,
            Unavailable => 503,
            BlobUploadInvalid
            | DigestInvalid
            | ManifestBlobUnknown
            | ManifestInvalid
            | NameInvalid
            | SizeInvalid
            | TagInvalid
            | ManifestUnverified
            | PaginationNumberInvalid => 400,
        }
    }

    /// The spec's message for it.
    pub fn message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BlobUnknown => "blob unknown to registry",
            BlobUploadInvalid => "blob upload invalid",
            BlobUploadUnknown => "blob upload unknown to registry",
            DigestInvalid => "provided digest did not match uploaded content",
            ManifestBlobUnknown => "manifest references a blob unknown to registry",
            ManifestInvalid => "manifest invalid",
            ManifestUnknown => "manifest unknown",
            NameInvalid => "invalid repository name",
            NameUnknown => "repository name not known to registry",
            SizeInvalid => "provided length did not match content length",
            Unauthorized => "authentication required",
            Denied => "requested access to the resource is denied",
            Unsupported => "the operation is unsupported",
            TooManyRequests => "too many requests",
            RangeInvalid => "requested range not satisfiable",
            TagInvalid => "manifest tag did not match URI",
            ManifestUnverified => "manifest failed signature verification",
            PaginationNumberInvalid => "invalid number of results requested",
            Unavailable => "service unavailable",
        }
    }

    /// Look a code string up.
    pub fn from_code(s: &str) -> Option<ErrorCode> {
        use ErrorCode::*;
        [
            BlobUnknown,
            BlobUploadInvalid,
            BlobUploadUnknown,
            DigestInvalid,
            ManifestBlobUnknown,
            ManifestInvalid,
            ManifestUnknown,
            NameInvalid,
            NameUnknown,
            SizeInvalid,
            Unauthorized,
            Denied,
            Unsupported,
            TooManyRequests,
            RangeInvalid,
            TagInvalid,
            ManifestUnverified,
            PaginationNumberInvalid,
            Unavailable,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// One entry of an error body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorInfo {
    /// The code (`BLOB_UNKNOWN`).
    pub code: String,
    /// A human message.
    #[serde(default)]
    pub message: String,
    /// Anything else the server adds.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

/// The error body: `{"errors":[…]}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ErrorBody {
    /// The errors.
    #[serde(default)]
    pub errors: Vec<ErrorInfo>,
}

impl ErrorBody {
    /// A body with one error, the spec's message, and `detail`.
    pub fn single(code: ErrorCode, detail: serde_json::Value) -> ErrorBody {
        ErrorBody { errors: vec![ErrorInfo { code: code.as_str().into(), message: code.message().into(), detail }] }
    }
}

/// The tag list body: `{"name":…, "tags":[…]}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TagList {
    /// The repository.
    pub name: String,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The catalog body: `{"repositories":[…]}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Catalog {
    /// Repository names.
    #[serde(default)]
    pub repositories: Vec<String>,
}
