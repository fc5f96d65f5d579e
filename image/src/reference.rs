//! Image references in Docker's grammar, with its normalization:
//! `alpine` is `docker.io/library/alpine:latest`.
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [domain '/'] path-component ['/' path-component]*
//! domain     := host [':' port]        host: dns name, IPv4, or [IPv6]
//! path-comp  := [a-z0-9]+ ( ( [_.] | __ | -+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! ```

use crate::digest::Digest;
use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's API is served.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The tag when none is given.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME: usize = 255;

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

fn err(reference: &str, reason: impl Into<String>) -> Error {
    Error::InvalidReference { reference: reference.to_string(), reason: reason.into() }
}

/// Check one path component of a repository name.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: `.`, `_`, `__`, or a run of `-`.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !is_alnum(b[i]) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Check a repository path (`library/alpine`, `team/app/api`) against the grammar.
pub fn validate_repository(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("repository name is empty".into());
    }
    if path.len() > MAX_NAME {
        return Err(format!("repository name is longer than {MAX_NAME} characters"));
    }
    for c in path.split('/') {
        if c.is_empty() {
            return Err("repository name has an empty path component".into());
        }
        if c.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err("repository name must be lowercase".into());
        }
        if !valid_component(c) {
            return Err(format!(
                "path component {c:?} must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

/// Check a tag against the grammar.
pub fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    let b = tag.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    if b.is_empty() {
        return Err("tag is empty".into());
    }
    if b.len() > 128 {
        return Err("tag is longer than 128 characters".into());
    }
    if !word(b[0]) {
        return Err(format!("tag {tag:?} must start with a letter, digit or '_'"));
    }
    if !b.iter().all(|&c| word(c) || c == b'.' || c == b'-') {
        return Err(format!("tag {tag:?} may only contain letters, digits, '_', '.' and '-'"));
    }
    Ok(())
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, tail)) => {
                if v6.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                let port = match tail.strip_prefix(':') {
                    Some(p) => Some(p),
                    None if tail.is_empty() => None,
                    None => return false,
                };
                (None, port)
            }
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    match host {
        None => true,
        Some(h) => {
            !h.is_empty()
                && h.split('.').all(|c| {
                    let b = c.as_bytes();
                    !b.is_empty()
                        && b[0].is_ascii_alphanumeric()
                        && b[b.len() - 1].is_ascii_alphanumeric()
                        && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
                })
        }
    }
}

impl Reference {
    /// Parse and normalize, as `docker pull` does.
    pub fn parse(s: &str) -> Result<Reference> {
        if s.is_empty() {
            return Err(err(s, "reference is empty"));
        }
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(err(s, "a 64-character hexadecimal string is an image ID, not a reference"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(Digest::parse(d).map_err(|e| err(s, e.to_string()))?)),
            None => (s, None),
        };
        // A tag follows the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            validate_tag(t).map_err(|e| err(s, e))?;
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" { DOCKER_HUB.to_string() } else { registry };
        if !valid_domain(&registry) {
            return Err(err(s, format!("registry {registry:?} is not a valid host[:port]")));
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository).map_err(|e| err(s, e))?;
        if registry.len() + 1 + repository.len() > MAX_NAME {
            return Err(err(s, format!("name is longer than {MAX_NAME} characters")));
        }
        Ok(Reference { registry, repository, tag: tag.map(str::to_string), digest })
    }

    /// A reference from parts already validated elsewhere.
    pub fn new(registry: &str, repository: &str, tag: Option<&str>, digest: Option<Digest>) -> Result<Reference> {
        let text = format!("{registry}/{repository}");
        validate_repository(repository).map_err(|e| err(&text, e))?;
        if !valid_domain(registry) {
            return Err(err(&text, format!("registry {registry:?} is not a valid host[:port]")));
        }
        if let Some(t) = tag {
            validate_tag(t).map_err(|e| err(&text, e))?;
        }
        Ok(Reference { registry: registry.into(), repository: repository.into(), tag: tag.map(Into::into), digest })
    }

    /// The registry as written in references (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host to talk to for the API (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB { DOCKER_HUB_API } else { &self.registry }
    }

    /// The repository path (`library/alpine`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if one was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same reference with `latest` when neither tag nor digest was given.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.into());
        }
        self
    }

    /// The same name with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        validate_tag(tag).map_err(|e| err(tag, e))?;
        Ok(Reference { tag: Some(tag.into()), digest: None, ..self.clone() })
    }

    /// The same name with a digest (and no tag).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference { tag: None, digest: Some(digest), ..self.clone() }
    }

    /// What to ask the registry for: the digest if there is one, else the tag.
    pub fn api_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.into(),
        }
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form people type: `alpine`, `team/app`, `localhost:5000/app`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            self.repository.strip_prefix("library/").unwrap_or(&self.repository).to_string()
        } else {
            self.name()
        }
    }

    /// The familiar form with tag and digest.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        Reference::parse(s).unwrap().with_default_tag().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(n("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(n("user/app:1.0"), "docker.io/user/app:1.0");
        assert_eq!(n("index.docker.io/alpine"), "docker.io/library/alpine:latest");
        assert_eq!(n("localhost/app"), "localhost/app:latest");
        assert_eq!(n("localhost:5000/a/b/c:v1"), "localhost:5000/a/b/c:v1");
        assert_eq!(n("127.0.0.1:5000/app"), "127.0.0.1:5000/app:latest");
        assert_eq!(n("[::1]:5000/app"), "[::1]:5000/app:latest");
        assert_eq!(n("ghcr.io/o/r"), "ghcr.io/o/r:latest");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = Reference::parse(&format!("app:1@{d}")).unwrap();
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.api_reference(), d);
        assert_eq!(Reference::parse("alpine").unwrap().familiar_name(), "alpine");
        assert_eq!(Reference::parse("alpine").unwrap().api_host(), "registry-1.docker.io");
    }

    #[test]
    fn refuses_with_the_rule() {
        let e = |s: &str| Reference::parse(s).unwrap_err().to_string();
        assert!(e("Alpine").contains("lowercase"), "{}", e("Alpine"));
        assert!(e("app:").contains("tag is empty"));
        assert!(e("app:-x").contains("must start"));
        assert!(e("a//b").contains("empty path component"));
        assert!(e("a_-b").contains("path component"));
        assert!(e("app@sha256:12").contains("64 hex"));
        assert!(e(&"a".repeat(300)).contains("longer than"));
        assert!(e("").contains("empty"));
        assert!(e(&"a".repeat(64).replace('a', "f")).contains("image ID"));
    }

    #[test]
    fn component_separators() {
        for ok in ["a", "a.b", "a_b", "a__b", "a-b", "a---b", "a1-2.3_4"] {
            assert!(valid_component(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a___b", "a..b", "a._b", "A"] {
            assert!(!valid_component(bad), "{bad}");
        }
    }
}
